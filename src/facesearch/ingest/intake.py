"""Photos that arrive through an interface (the API, the workbench): uploads and server-side folders made into
background ingest jobs, and enrolment of one person from one photo.

Each interface used to hold these steps itself; here they are once, so that the API and the workbench apply
the same checks (a collection the principal may change, pictures decided by their bytes, a server-side path
inside the ingest roots) and leave nothing on disk when they refuse. A refusal is a
:class:`facesearch.errors.SourceRefused` (or the access errors of the services called), which each interface
answers in its own way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from facesearch.config import Settings
from facesearch.errors import SourceRefused
from facesearch.governance.access import Principal
from facesearch.governance.collections import Collections
from facesearch.governance.subjects import Subject, Subjects
from facesearch.ingest.jobs import Job, JobRunner
from facesearch.ingest.service import Ingest
from facesearch.ingest.sources.confined import confine, confined_files
from facesearch.ingest.sources.uploads import (
    check_image_bytes,
    new_upload_folder,
    remove_folder,
    safe_name,
    store_upload,
)
from facesearch.search.service import analysis_lock
from facesearch.vision.packs import Packs

LABEL_PATTERN = r"^[^/\\\x00-\x1f]*[^/\\\x00-\x1f\s][^/\\\x00-\x1f]*$"
"""A label is a person's name, not a path: no separators, no control characters, not only spaces."""
_LABEL = re.compile(LABEL_PATTERN)


class Intake:
    """Uploads, server-side folders and enrolments, as a principal may make them."""

    def __init__(
        self,
        settings: Settings,
        uploads_dir: Path,
        collections: Collections,
        subjects: Subjects,
        ingest: Ingest,
        packs: Packs,
    ) -> None:
        self.settings = settings
        self.uploads_dir = uploads_dir
        self.collections = collections
        self.subjects = subjects
        self.ingest = ingest
        self.packs = packs

    def upload(
        self,
        principal: Principal,
        collection: str,
        files: Sequence[tuple[BinaryIO, str | None]],
        jobs: JobRunner,
        *,
        subject_from_folder: bool = False,
        source_url: str | None = None,
    ) -> Job:
        """Store uploaded pictures (or zip archives of pictures) in a batch folder of their own and queue their
        ingest into ``collection``; returns the queued job. Nothing stays on disk when the upload is refused."""
        self.collections.get(principal, collection)
        if not files:
            raise SourceRefused("validation_error", "no file was uploaded")
        folder = new_upload_folder(self.uploads_dir, collection)
        stored: list[str] = []
        try:
            for stream, name in files:
                limit = self.settings.max_ingest_upload_bytes
                stored.extend(str(p) for p in store_upload(stream, name, folder, limit=limit))
        except BaseException:  # refused or failed: nothing of this request stays on disk
            remove_folder(folder)
            raise
        if not stored:
            remove_folder(folder)
            raise SourceRefused("no_pictures", "nothing uploaded was a picture")
        job = jobs.submit_ingest(
            collection=collection,
            paths=[str(folder)] if subject_from_folder else stored,
            principal=principal,
            subject_from_folder=subject_from_folder,
            source_url=source_url,
        )
        job.files_total = len(stored)
        return job

    def ingest_path(
        self,
        principal: Principal,
        collection: str,
        path: str,
        jobs: JobRunner,
        *,
        subject_from_folder: bool = False,
        source_url: str | None = None,
    ) -> Job:
        """Queue the ingest of a folder or file on the server, which must lie inside the ingest roots."""
        self.collections.get(principal, collection)
        roots = self.settings.ingest_roots
        files = list(confined_files(confine(path, roots), roots))
        if not files:
            raise SourceRefused("no_pictures", "no picture files were found at that path")
        return jobs.submit_ingest(
            collection=collection,
            paths=files,
            principal=principal,
            subject_from_folder=subject_from_folder,
            source_url=source_url,
        )

    def enrol(self, principal: Principal, collection: str, label: str, data: bytes, filename: str | None) -> Subject:
        """Enrol a person: index the photo into ``collection`` with its main face under ``label``.

        The photo is stored under a neutral name (a label never becomes a path); refused without a face
        (``no_face``) or when the photo was already in the collection (``not_enrolled``).
        """
        label = label.strip()
        if not _LABEL.match(label) or len(label) > 200:
            raise SourceRefused(
                "invalid_label", "a label is 1-200 characters, not only spaces, without slashes or control characters"
            )
        self.collections.get(principal, collection)
        check_image_bytes(data, "image")
        folder = new_upload_folder(self.uploads_dir, collection)
        target = folder / safe_name(filename, "photo.jpg")
        target.write_bytes(data)
        with analysis_lock(self.packs.pack()):  # one file: analysed in this process, on the pack searches use
            summary = self.ingest.index(
                [str(target)], collection=collection, subject=label, workers=1, principal=principal
            )
        if summary.faces == 0:
            remove_folder(folder)
            if summary.duplicates:
                raise SourceRefused("not_enrolled", "the photo was already in the collection; nothing new was enrolled")
            raise SourceRefused("no_face", "no face was found in the photo")
        subject = self.subjects.enrolled(principal, label)
        if subject is not None:
            return subject
        raise SourceRefused("not_enrolled", "the photo was already in the collection; nothing new was enrolled")
