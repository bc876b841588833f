"""Every public method of every service that changes state leaves exactly one audit record.

The services are enumerated by introspection: each public method must be classified below (as a change, an
audited read, or a read / helper that records nothing), so a method added later cannot escape the rule. Each
change is then called, as the interfaces call it, on a real data folder (SQLite and PostgreSQL), and the
audit log must have grown by exactly one record, of the expected action. Interfaces never write records
themselves (``tests/test_architecture.py``), so this holds whichever interface made the call.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesearch.catalog.records import FileOutcome, NewFace
from facesearch.engine import FaceSearch
from tests.test_api_support import catalog_url, probe_bytes, settings, write_photos

SERVICES = (
    "accounts",
    "cases",
    "collections",
    "subjects",
    "erasure",
    "optouts",
    "retention",
    "ingest",
    "indexes",
    "reads",
    "searching",
    "crossmatch",
    "sessions",
    "intake",
    "clusters",
    "review",
    "provenance",
)

# Public methods that record nothing: reads of unaudited data, checks, and helpers that run inside a change
# made (and recorded) by another method.
SILENT = {
    "accounts": {"user", "users", "is_verified", "key_owner", "authenticate", "check_password", "principal_of"},
    "cases": {"get", "list", "history", "is_candidate", "candidate_ids", "may_use", "record_candidates", "searchers"},
    "collections": {"list", "names", "get", "status", "skipped"},
    "subjects": {"enrolled"},
    "erasure": {"preview", "erase_in", "finish"},
    "optouts": {"check", "list", "count", "for_pack"},
    "retention": {"policies", "expired"},
    "ingest": set(),
    # The index is derived from the catalog: catching it up changes no state of record (doctor and reindex,
    # which an operator runs, are audited).
    "indexes": {"close", "of", "ingesting", "remove_vectors", "faces_matching", "sync", "stored_dim", "stored"}
    | {"pack_keys", "stats"},
    "reads": set(),
    "searching": {"service", "calibration", "optout_list", "forget_threshold", "embed_person"},
    # Matching a standing cross-match's new faces is recorded by the search service (one search_vectors record
    # a batch) and by the queue (review_queue_add, when pairs went in); making it standing is its own record.
    "crossmatch": {"run_standing"},
    # One stored cluster, shown with its faces (read and recorded by ``faces``) or after a recorded change.
    # and face ids to show (their crops are read through ``reads.grid``, which records them).
    "clusters": {"cluster", "sample_faces"},
    "review": set(),
    "provenance": set(),
    # Resolving a session reads it (and refreshes its idle time); expired ones are housekeeping.
    "sessions": {"resolve", "purge_expired"},
    # Intake's uploads and server-side folders queue jobs, whose ingest records itself when it runs.
    "intake": {"upload", "ingest_path"},
}


def public_methods(service: Any) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(type(service), predicate=inspect.isfunction)
        if not name.startswith("_")
    }


class Fixture:
    """A data folder with photos indexed, and makers of fresh things to change."""

    def __init__(self, engine: FaceSearch, photos: Path) -> None:
        self.engine = engine
        self.photos = photos
        self.op = engine.operator

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def user(self, role: str = "investigator") -> str:
        name = self.name("u")
        self.engine.accounts.add_user(self.op, name, role)
        return name

    def faces(self, subject: str | None = None, collection: str = "demo") -> list[int]:
        pack = self.engine.packs.pack()
        vector = np.random.default_rng().normal(size=pack.dim).astype(np.float32)
        vector /= np.linalg.norm(vector)
        token = uuid.uuid4().hex
        outcome = FileOutcome(
            f"/fixtures/{token}.jpg",
            1,
            0.0,
            token * 2,
            "ok",
            faces=[NewFace((1, 1, 9, 9), None, 1, 1, [], vector, subject)],
        )
        collection_id = self.engine.catalog.collection_id(collection)
        assert collection_id is not None
        return self.engine.catalog.record_files(collection_id, pack.key, [outcome])[0].face_ids

    def video_face(self) -> int:
        """A face tracked in a video (made in the catalog: reading it needs only its record)."""
        pack = self.engine.packs.pack()
        vector = np.random.default_rng().normal(size=pack.dim).astype(np.float32)
        vector /= np.linalg.norm(vector)
        token = uuid.uuid4().hex
        track = NewFace((1, 1, 9, 9), None, 1, 1, [], vector / np.linalg.norm(vector), None, (1.0, 4.5), 2.0)
        outcome = FileOutcome(f"/fixtures/{token}.mp4", 1, 0.0, token * 2, "ok", faces=[track], media="video")
        collection_id = self.engine.catalog.collection_id("demo")
        assert collection_id is not None
        return self.engine.catalog.record_files(collection_id, pack.key, [outcome])[0].face_ids[0]

    def subject(self) -> int:
        label = self.name("s")
        self.faces(subject=label)
        return next(s.id for s in self.engine.subjects.list(self.op) if s.label == label)

    def cluster(self, size: int = 2) -> int:
        """A new cluster of ``size`` new faces of ``demo`` (made in the catalog, as a reviewer's would be)."""
        faces = [face for _ in range(size) for face in self.faces()]
        with self.engine.catalog.transaction() as tx:
            return self.engine.catalog.clusters.move_to_new(tx, self.engine.packs.pack().key, faces)

    def review_item(self) -> int:
        """A new cross-match pair of two new faces in the review queue."""
        from facesearch.catalog.review import NewReviewItem

        a, b = self.faces()[0], self.faces()[0]
        item = NewReviewItem(
            f"crossmatch_pair:{a}:{b}", "crossmatch_pair", self.engine.packs.pack().key, face_a=a, face_b=b
        )
        with self.engine.catalog.transaction() as tx:
            self.engine.catalog.review.add(tx, [item])
        return next(row.id for row in self.engine.catalog.review.items(limit=100_000) if row.face_a == a)

    def case(self) -> str:
        reference = self.name("C")
        self.engine.cases.create(self.op, reference)
        return reference


# What each change does, on fresh things, and the action it must record.
CHANGES: dict[tuple[str, str], tuple[str, Callable[[Fixture], Any]]] = {
    ("accounts", "add_user"): ("user_add", lambda f: f.engine.accounts.add_user(f.op, f.name("n"), "reviewer")),
    ("accounts", "revoke_user"): ("user_revoke", lambda f: f.engine.accounts.revoke_user(f.op, f.user())),
    ("accounts", "grant"): ("user_grant", lambda f: f.engine.accounts.grant(f.op, f.user(), "demo")),
    ("accounts", "ungrant"): ("user_ungrant", lambda f: f.engine.accounts.ungrant(f.op, f.user(), "demo")),
    ("accounts", "create_key"): ("key_create", lambda f: f.engine.accounts.create_key(f.op, f.user())),
    ("accounts", "revoke_key"): (
        "key_revoke",
        lambda f: f.engine.accounts.revoke_key(f.op, f.engine.accounts.create_key(f.op, f.user())[0]),
    ),
    ("cases", "open_for_search"): ("case_open", lambda f: f.engine.cases.open_for_search(f.op, f.name("C"))),
    ("cases", "create"): ("case_open", lambda f: f.engine.cases.create(f.op, f.name("C"))),
    ("cases", "close"): ("case_close", lambda f: f.engine.cases.close(f.op, f.case())),
    ("cases", "add_member"): ("case_member_add", lambda f: f.engine.cases.add_member(f.op, f.case(), f.user())),
    ("cases", "remove_member"): (
        "case_member_remove",
        lambda f: f.engine.cases.remove_member(f.op, f.case(), f.user()),
    ),
    ("cases", "decide"): ("decision", lambda f: decide(f)),
    ("collections", "create"): (
        "collection_create",
        lambda f: f.engine.collections.create(f.op, f.name("c"), legal_basis="test"),
    ),
    ("collections", "set_quality_policy"): (
        "quality_policy_set",
        lambda f: f.engine.collections.set_quality_policy(f.op, "demo", 0.2),
    ),
    ("collections", "set_retention"): (
        "retention_set",
        lambda f: f.engine.collections.set_retention(f.op, "demo", None),
    ),
    ("subjects", "list"): ("subjects_list", lambda f: f.engine.subjects.list(f.op)),
    ("subjects", "get"): ("subject_read", lambda f: f.engine.subjects.get(f.op, f.subject())),
    ("subjects", "rename"): ("subject_rename", lambda f: f.engine.subjects.rename(f.op, f.subject(), f.name("r"))),
    ("subjects", "merge"): ("subject_merge", lambda f: f.engine.subjects.merge(f.op, f.subject(), f.subject())),
    ("erasure", "erase"): ("erase", lambda f: f.engine.erasure.erase(f.op, "face", f.faces())),
    ("erasure", "erase_images"): ("purge", lambda f: erase_images(f)),
    ("optouts", "add"): ("optout_add", lambda f: f.engine.optouts.add(f.op, random_embedding(f))),
    ("optouts", "add_photo"): ("optout_add", lambda f: f.engine.optouts.add_photo(f.op, a_photo_of_her(f))),
    ("optouts", "remove"): (
        "optout_remove",
        lambda f: f.engine.optouts.remove(f.op, f.engine.optouts.add(f.op, random_embedding(f))["id"]),
    ),
    ("retention", "purge"): ("purge", lambda f: purge(f)),
    ("ingest", "index"): (
        "ingest",
        lambda f: f.engine.ingest.index([f.photos / "other"], collection="demo", workers=1),
    ),
    ("indexes", "doctor"): ("index_repair", lambda f: damaged_doctor(f)),
    ("indexes", "reindex"): ("reindex", lambda f: f.engine.indexes.reindex("Flat")),
    ("reads", "face"): ("face_read", lambda f: f.engine.reads.face(f.op, real_face(f))),
    ("reads", "crop"): ("face_crop", lambda f: f.engine.reads.crop(f.op, real_face(f))),
    ("reads", "image"): ("image_read", lambda f: f.engine.reads.image(f.op, real_face(f))),
    ("searching", "context"): ("case_open", lambda f: f.engine.searching.context(case_id=f.name("C"))),
    ("searching", "search"): ("search", lambda f: f.engine.searching.search(probe_bytes())),
    ("searching", "verify"): ("verify", lambda f: f.engine.searching.verify(probe_bytes(), probe_bytes("JPEG"))),
    ("searching", "forget_candidates"): (
        "forget_search",
        lambda f: f.engine.searching.forget_candidates(probe_bytes()),
    ),
    ("crossmatch", "run"): ("search_vectors", lambda f: f.engine.crossmatch.run("demo", "demo", batch=100)),
    ("crossmatch", "stand"): ("crossmatch_standing", lambda f: f.engine.crossmatch.stand("demo", "demo")),
    ("clusters", "run"): ("cluster", lambda f: f.engine.clusters.run(f.op, ["demo"])),
    ("clusters", "rows"): ("clusters_list", lambda f: f.engine.clusters.rows(f.op)),
    ("clusters", "faces"): ("cluster_read", lambda f: f.engine.clusters.faces(f.op, f.cluster())),
    ("clusters", "move_out"): (
        "cluster_split",
        lambda f: (lambda c: f.engine.clusters.move_out(f.op, c, f.engine.clusters.faces(f.op, c)[:1]))(f.cluster()),
    ),
    ("clusters", "merge"): ("cluster_merge", lambda f: f.engine.clusters.merge(f.op, f.cluster(), f.cluster())),
    ("clusters", "mark_apart"): (
        "cluster_apart",
        lambda f: f.engine.clusters.mark_apart(f.op, f.cluster(), f.cluster()),
    ),
    ("clusters", "name"): ("cluster_name", lambda f: f.engine.clusters.name(f.op, f.cluster(), f.name("p"))),
    ("review", "items"): ("review_list", lambda f: f.engine.review.items(f.op)),
    ("review", "confirmed"): ("review_report", lambda f: f.engine.review.confirmed(f.op)),
    ("review", "decide"): ("review_decision", lambda f: f.engine.review.decide(f.op, f.review_item(), "unsure")),
    ("accounts", "set_password"): (
        "password_set",
        lambda f: f.engine.accounts.set_password(f.op, f.user(), "a long enough passphrase"),
    ),
    ("sessions", "sign_in"): ("sign_in", lambda f: sign_in(f)),
    ("sessions", "sign_out"): ("sign_out", lambda f: f.engine.sessions.sign_out(sign_in(f))),
    ("subjects", "faces"): ("subject_read", lambda f: f.engine.subjects.faces(f.op, f.subject())),
    ("subjects", "split"): ("subject_split", lambda f: split(f)),
    ("reads", "video"): ("video_read", lambda f: f.engine.reads.video(f.op, f.video_face())),
    ("reads", "crops"): ("face_crops", lambda f: f.engine.reads.crops(f.op, [real_face(f)])),
    ("reads", "grid"): ("face_crops", lambda f: f.engine.reads.grid(f.op, [real_face(f)])),
    ("searching", "search_as"): (
        "search",
        lambda f: f.engine.searching.search_as(f.op, probe_bytes(), purpose="investigation", case_id=f.name("C")),
    ),
    ("searching", "verify_as"): (
        "verify",
        lambda f: f.engine.searching.verify_as(
            f.op, probe_bytes(), probe_bytes("JPEG"), purpose="investigation", case_id=f.name("C")
        ),
    ),
    ("provenance", "lookup"): (
        "provenance",
        lambda f: f.engine.provenance.lookup(probe_bytes(), context=f.engine.searching.context()),
    ),
    ("provenance", "backfill"): ("fingerprint_backfill", lambda f: f.engine.provenance.backfill(f.op, limit=1)),
    ("provenance", "lookup_as"): (
        "provenance",
        lambda f: f.engine.provenance.lookup_as(f.op, probe_bytes(), purpose="investigation", case_id=f.name("C")),
    ),
    ("intake", "enrol"): (
        "enrol",
        lambda f: f.engine.intake.enrol(f.op, "demo", f.name("p"), a_photo_of_her(f), "p.png"),
    ),
}


def sign_in(f: Fixture) -> Any:
    name = f.user()
    f.engine.accounts.set_password(f.op, name, "a long enough passphrase")
    signed = f.engine.sessions.sign_in(name, "a long enough passphrase")
    assert signed is not None
    return signed


def split(f: Fixture) -> Any:
    label = f.name("s")
    f.faces(subject=label)
    moved = f.faces(subject=label)
    subject = next(s.id for s in f.engine.subjects.list(f.op) if s.label == label)
    return f.engine.subjects.split(f.op, subject, moved, f.name("t"))


def decide(f: Fixture) -> Any:
    reference = f.case()
    face_id = real_face(f)
    with f.engine.catalog.transaction() as tx:
        f.engine.cases.record_candidates(tx, reference, 1, [(face_id, 0.9)])
    return f.engine.cases.decide(f.op, reference, face_id, "unsure")


def erase_images(f: Fixture) -> Any:
    face_id = f.faces()[0]
    image_id = f.engine.catalog.face_details([face_id])[face_id].image_id
    return f.engine.erasure.erase_images(f.op, [image_id], action="purge")


def purge(f: Fixture) -> Any:
    from datetime import timedelta

    from facesearch.catalog.schema import utcnow

    name = f.name("old")
    f.engine.collections.create(f.op, name, legal_basis="test", retention_days=1)
    f.faces(collection=name)
    return f.engine.retention.purge(f.op, now=utcnow() + timedelta(days=2))


def random_embedding(f: Fixture) -> dict[str, tuple[np.ndarray, float]]:
    pack = f.engine.packs.pack()
    vector = np.random.default_rng().normal(size=pack.dim).astype(np.float32)
    return {pack.key: (vector / np.linalg.norm(vector), 0.999)}


def a_photo_of_her(f: Fixture) -> bytes:
    """A photo of the stored person, mirrored and darkened (her stored faces are erased with the opt-out)."""
    import io

    from PIL import Image, ImageEnhance

    from tests.test_api_support import astronaut

    picture = Image.fromarray(np.ascontiguousarray(astronaut()[:, ::-1]))
    buffer = io.BytesIO()
    ImageEnhance.Brightness(picture).enhance(0.5).save(buffer, "PNG")
    return buffer.getvalue()


def real_face(f: Fixture) -> int:
    found = f.engine.searching.service().search(probe_bytes(), top_k=1)
    return found.faces[0].candidates[0].face_id


def damaged_doctor(f: Fixture) -> Any:
    pack = f.engine.packs.pack()
    index = f.engine.indexes.of(pack.key, pack.dim)
    index.remove(index.ids()[:1])
    return f.engine.indexes.doctor()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    folder = tmp_path_factory.mktemp(f"services-{request.param}")
    photos = write_photos(folder / "photos")
    with catalog_url(request.param, folder) as url, FaceSearch(settings(folder / "home", url)) as engine:
        engine.ingest.index([photos], collection="demo", subject_from_folder=True, workers=1)
        yield Fixture(engine, photos)


def test_every_public_method_of_every_service_is_classified(fixture: Fixture) -> None:
    for name in SERVICES:
        methods = public_methods(getattr(fixture.engine, name))
        classified = SILENT[name] | {method for service, method in CHANGES if service == name}
        assert methods == classified, (
            f"{name}: unclassified {sorted(methods - classified)}, gone {sorted(classified - methods)}"
        )


# The opt-out of a stored person erases her faces, which the changes after it would miss: it goes last.
ORDER = sorted(CHANGES, key=lambda change: (change == ("optouts", "add_photo"), change))


@pytest.mark.parametrize(("service", "method"), ORDER)
def test_each_change_leaves_exactly_one_audit_record(fixture: Fixture, service: str, method: str) -> None:
    action, call = CHANGES[(service, method)]
    before = fixture.engine.audit.head()[0]
    call(fixture)
    records = fixture.engine.audit.records(after_seq=before, limit=100)
    # Preparing the call (a new user, case or subject) writes records of its own actions; the call, one of its.
    mine = [r for r in records if r["action"] == action]
    assert len(mine) == 1, [r["action"] for r in records]
