"""The composition root: one data folder's catalog, audit trail, packs, indexes and services, built from the
settings and handed to the interfaces (CLI, API, notebooks). Behaviour lives in the services.

``facesearch.open(home)`` returns a :class:`FaceSearch`; its ``index``, ``search`` and ``verify`` are the
notebook API (each the service's own method, acting as the local operator).
"""

from __future__ import annotations

import os
from pathlib import Path

from facesearch.catalog.store import Catalog
from facesearch.config import UPLOADS_FOLDER, Settings, make_private, use_model_dirs
from facesearch.governance.access import Principal
from facesearch.governance.accounts import Accounts
from facesearch.governance.anchor import AuditAnchor
from facesearch.governance.audit import ANCHOR_FOLDER, AuditTrail
from facesearch.governance.cases import Cases
from facesearch.governance.collections import Collections
from facesearch.governance.context import local_actor
from facesearch.governance.erasure import Erasure
from facesearch.governance.optout import OptOuts
from facesearch.governance.reads import FaceReads
from facesearch.governance.retention import Retention
from facesearch.governance.sessions import Sessions
from facesearch.governance.subjects import Subjects
from facesearch.governance.witness import AuditWitness
from facesearch.ingest.intake import Intake
from facesearch.ingest.reconcile import Indexes
from facesearch.ingest.service import Ingest
from facesearch.search.clusters import Clusters
from facesearch.search.crossmatch import Crossmatch
from facesearch.search.provenance import Provenance
from facesearch.search.review import ReviewQueue
from facesearch.search.searching import Searching
from facesearch.vision import accelerator
from facesearch.vision.packs import Packs

"""Where the server keeps uploaded photos (files facesearch manages, and erases)."""


def audit_witness(settings: Settings, anchor: AuditAnchor) -> AuditWitness | None:
    """The witness the data folder's config names (a file or a command), or ``None``."""
    if settings.audit_witness is None and settings.audit_witness_command is None:
        return None
    command = None if settings.audit_witness is not None else settings.audit_witness_command
    return AuditWitness(
        anchor, path=settings.audit_witness, command=command, interval_s=settings.audit_witness_interval_s
    )


class FaceSearch:
    """A facesearch data folder: its services, ready to use. Close it (or use it as a context manager)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        accelerator.use(settings.accelerator)  # before anything is written: a missing GPU is refused at once
        make_private(settings.home)
        use_model_dirs(settings)
        self.catalog = Catalog(settings.catalog_url)
        # Whoever holds the data folder (the CLI, a notebook) acts as the local operator, with every permission.
        self.operator = Principal.operator_as(local_actor(settings.identity))
        anchor = AuditAnchor(settings.home / ANCHOR_FOLDER)
        self.audit = AuditTrail(self.catalog, anchor, witness=audit_witness(settings, anchor))
        self.packs = Packs(settings.pack, settings.models_dir, stored=lambda: self.catalog.stats()["packs"])
        self.indexes = Indexes(settings, self.catalog, self.audit, self.operator)
        self.accounts = Accounts(self.catalog, self.audit)
        self.sessions = Sessions(
            self.catalog,
            self.audit,
            self.accounts,
            idle_minutes=settings.session_idle_minutes,
            max_hours=settings.session_max_hours,
        )
        self.cases = Cases(self.catalog, self.audit, four_eyes=settings.four_eyes)
        self.collections = Collections(self.catalog, self.audit)
        self.subjects = Subjects(self.catalog, self.audit)
        self.reads = FaceReads(self.catalog, self.audit, self.cases, max_pixels=settings.max_probe_pixels * 4)
        self.erasure = Erasure(
            self.catalog,
            self.audit,
            self.uploads_dir,
            self.indexes.remove_vectors,
            rewrite_tables=settings.erasure_rewrite_tables,
        )
        self.retention = Retention(self.catalog, self.erasure)
        self.searching = Searching(
            settings, self.catalog, self.audit, self.packs, self.indexes, self.cases, self.operator
        )
        self.optouts = OptOuts(
            self.catalog, self.audit, self.erasure, self.indexes.faces_matching, self.searching.embed_person
        )
        self.ingest = Ingest(settings, self.catalog, self.audit, self.packs, self.indexes, self.operator)
        self.crossmatch = Crossmatch(self.catalog, self.searching)
        # Faces arriving in a collection of a standing cross-match are matched against the other at once.
        self.ingest.after_ingest.append(lambda collection: self.crossmatch.run_standing(collection))
        self.clusters = Clusters(self.catalog, self.audit, self.searching)
        self.review = ReviewQueue(self.catalog, self.audit)
        self.provenance = Provenance(self.catalog, self.audit, self.searching, max_pixels=settings.max_probe_pixels)
        self.intake = Intake(settings, self.uploads_dir, self.collections, self.subjects, self.ingest, self.packs)
        # The notebook API: the services' own methods.
        self.index = self.ingest.index
        self.search = self.searching.search
        self.verify = self.searching.verify

    @property
    def uploads_dir(self) -> Path:
        """The folder of uploaded photos, which facesearch manages (and deletes on erasure)."""
        return self.settings.home / UPLOADS_FOLDER

    def close(self) -> None:
        """Save the indexes, witness the audit log, release the catalog."""
        self.indexes.close()
        try:
            self.audit.close()
        finally:
            self.catalog.close()

    def __enter__(self) -> FaceSearch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open(home: str | os.PathLike[str] | None = None, *, pack: str | None = None) -> FaceSearch:
    """Open (or create) a facesearch data folder; the notebook entry point.

    >>> fs = facesearch.open("~/faces")                         # doctest: +SKIP
    >>> fs.index(["photos/"], collection="family")              # doctest: +SKIP
    >>> fs.search("probe.jpg").faces[0].candidates[0]           # doctest: +SKIP
    """
    return FaceSearch(Settings.load(home, pack=pack))
