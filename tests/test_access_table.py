"""Every endpoint x role x grant of docs/server.md's table, sent to a real ``facesearch serve`` process.

The table in docs/server.md ("Who may do what") is the specification: this test parses it, builds each
request afresh for each caller (new users, keys, faces, subjects, cases and collections are made through the
services for the one request that needs them), sends it over HTTP to a server running on SQLite and on
PostgreSQL, and reports every cell whose status differs. It also checks that every operation of the OpenAPI
document has at least one row, so that a new endpoint cannot go unlisted.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from facesearch.catalog.records import FileOutcome, NewFace
from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from tests.test_api_support import astronaut, catalog_url, server, settings, write_photos

DOC = Path(__file__).resolve().parents[1] / "docs" / "server.md"
CALLERS = (
    "anonymous",
    "admin",
    "admin·demo",
    "investigator",
    "investigator·other",
    "investigator 2",
    "reviewer",
    "reviewer 2",
    "auditor",
)
ROLES = {
    "admin": ("admin", None),
    "admin·demo": ("admin", ["demo"]),
    "investigator": ("investigator", None),
    "investigator·other": ("investigator", ["other"]),
    "investigator 2": ("investigator", None),
    "reviewer": ("reviewer", None),
    "reviewer 2": ("reviewer", None),
    "auditor": ("auditor", None),
}
CASE = "OWN-1"


def access_table() -> list[tuple[str, str, dict[str, int]]]:
    """(request, target, caller -> status) for every row of the table, in order."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- access-table: begin -->", 1)[1].split("<!-- access-table: end -->", 1)[0]
    lines = [line.strip() for line in block.strip().splitlines()]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["request", "target", *CALLERS], header
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        request, target, *codes = cells
        rows.append((request.strip("`"), target, {c: int(code) for c, code in zip(CALLERS, codes, strict=True)}))
    return rows


def fresh_photo() -> bytes:
    """A photo of the astronaut no one has sent before (crop and light drawn at random)."""
    rng = np.random.default_rng()
    left, top, size = int(rng.integers(40, 100)), int(rng.integers(0, 40)), int(rng.integers(340, 400))
    picture = Image.fromarray(astronaut()).crop((left, top, left + size, top + size))
    picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(0.8, 1.2)))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class World:
    """The running server, its data (through the services, as the operator) and every caller's key."""

    base: str
    engine: FaceSearch
    keys: dict[str, str]
    principals: dict[str, Principal]
    ingest_root: Path
    demo_face: int = 0
    other_face: int = 0
    candidate_face: int = 0
    other_job: int = 0
    demo_subject: int = 0
    made: list[str] = field(default_factory=list)

    @property
    def operator(self) -> Principal:
        return self.engine.operator

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def user(self, collections: list[str] | None, role: str = "investigator") -> str:
        name = self.name("u")
        self.engine.accounts.add_user(self.operator, name, role, collections=collections)
        return name

    def key_of(self, name: str) -> str:
        return self.engine.accounts.create_key(self.operator, name)[0]

    def collection(self) -> str:
        name = self.name("c")
        self.engine.collections.create(self.operator, name, legal_basis="test")
        return name

    def faces(self, collection: str, count: int = 1, subject: str | None = None) -> list[int]:
        """New faces (random embeddings, a made-up path) stored in ``collection`` through the catalog."""
        pack = self.engine.packs.pack().key
        collection_id = self.engine.catalog.collection_id(collection)
        assert collection_id is not None
        rng = np.random.default_rng()
        outcomes = []
        for _ in range(count):
            vector = rng.normal(size=self.engine.packs.pack().dim).astype(np.float32)
            vector /= np.linalg.norm(vector)
            face = NewFace((10.0, 10.0, 80.0, 80.0), None, 0.9, 0.9, [], vector, subject)
            token = uuid.uuid4().hex
            outcomes.append(FileOutcome(f"/fixtures/{token}.jpg", 1, 0.0, token * 2, "ok", 100, 100, faces=[face]))
        recorded = self.engine.catalog.record_files(collection_id, pack, outcomes)
        return [face_id for item in recorded for face_id in item.face_ids]

    def subject(self, *collections: str) -> tuple[str, int]:
        label = self.name("s")
        for collection in collections:
            self.faces(collection, subject=label)
        subject_id = next(s.id for s in self.engine.subjects.list(self.operator) if s.label == label)
        return label, subject_id

    def cluster(self, collection: str, size: int = 1) -> tuple[int, list[int]]:
        """A new reviewed cluster of ``size`` new faces of ``collection``: (its id, its faces)."""
        faces = self.faces(collection, size)
        with self.engine.catalog.transaction() as tx:
            cluster_id = self.engine.catalog.clusters.move_to_new(tx, self.engine.packs.pack().key, faces)
        return cluster_id, faces

    def review_item(self) -> int:
        """A new item of the review queue: a cross-match pair of two new faces of ``demo``."""
        from facesearch.catalog.review import NewReviewItem

        a, b = self.faces("demo", 2)
        pack = self.engine.packs.pack().key
        item = NewReviewItem(f"crossmatch_pair:{a}:{b}", "crossmatch_pair", pack, face_a=a, face_b=b, similarity=0.9)
        with self.engine.catalog.transaction() as tx:
            self.engine.catalog.review.add(tx, [item])
        return next(row.id for row in self.engine.catalog.review.items() if row.face_a == a)

    def investigator_case(self) -> str:
        reference = self.name("CASE")
        self.engine.cases.create(self.principals["investigator"], reference)
        return reference


Request = tuple[str, str, dict[str, Any]]
Builder = Callable[[World, str], Request]


def search_form(case: str) -> dict[str, Any]:
    return {
        "files": {"image": ("probe.png", fresh_photo(), "image/png")},
        "data": {"purpose": "humanitarian", "case_id": case},
    }


def verify_form(case: str) -> dict[str, Any]:
    return {
        "files": {"image_a": ("a.png", fresh_photo(), "image/png"), "image_b": ("b.png", fresh_photo(), "image/png")},
        "data": {"purpose": "verification", "case_id": case},
    }


def picture_upload() -> dict[str, Any]:
    return {"files": [("files", ("p.png", fresh_photo(), "image/png"))]}


def enrol(collection: str) -> dict[str, Any]:
    label = f"Person {uuid.uuid4().hex[:8]}"
    return {
        "files": {"image": ("p.png", fresh_photo(), "image/png")},
        "data": {"label": label, "collection": collection},
    }


BUILDERS: dict[tuple[str, str], Builder] = {
    ("GET /health", ""): lambda w, c: ("GET", "/health", {}),
    ("GET /openapi.json", ""): lambda w, c: ("GET", "/openapi.json", {}),
    ("GET /docs", ""): lambda w, c: ("GET", "/docs", {}),
    ("GET /docs/assets/swagger-ui-bundle.js", ""): lambda w, c: ("GET", "/docs/assets/swagger-ui-bundle.js", {}),
    ("GET /v1/status", ""): lambda w, c: ("GET", "/v1/status", {}),
    ("GET /v1/me", ""): lambda w, c: ("GET", "/v1/me", {}),
    ("POST /v1/me/keys", ""): lambda w, c: ("POST", "/v1/me/keys", {}),
    ("GET /v1/users", ""): lambda w, c: ("GET", "/v1/users", {}),
    ("POST /v1/users", "new investigator limited to demo"): lambda w, c: (
        "POST",
        "/v1/users",
        {"json": {"name": w.name("n"), "role": "investigator", "collections": ["demo"]}},
    ),
    ("POST /v1/users", "new investigator seeing every collection"): lambda w, c: (
        "POST",
        "/v1/users",
        {"json": {"name": w.name("n"), "role": "investigator"}},
    ),
    ("POST /v1/users", "new auditor"): lambda w, c: (
        "POST",
        "/v1/users",
        {"json": {"name": w.name("n"), "role": "auditor"}},
    ),
    ("GET /v1/users/{name}", "user limited to demo"): lambda w, c: ("GET", "/v1/users/demo-user", {}),
    ("GET /v1/users/{name}", "user seeing every collection"): lambda w, c: ("GET", "/v1/users/investigator-2", {}),
    ("POST /v1/users/{name}/revoke", "new user limited to demo"): lambda w, c: (
        "POST",
        f"/v1/users/{w.user(['demo'])}/revoke",
        {},
    ),
    ("POST /v1/users/{name}/revoke", "new user seeing every collection"): lambda w, c: (
        "POST",
        f"/v1/users/{w.user(None)}/revoke",
        {},
    ),
    ("POST /v1/users/{name}/grants", "new user limited to demo, grant demo"): lambda w, c: (
        "POST",
        f"/v1/users/{w.user(['demo'])}/grants",
        {"json": {"collection": "demo"}},
    ),
    ("POST /v1/users/{name}/grants", "new user limited to demo, grant other"): lambda w, c: (
        "POST",
        f"/v1/users/{w.user(['demo'])}/grants",
        {"json": {"collection": "other"}},
    ),
    ("DELETE /v1/users/{name}/grants/{collection}", "new user limited to demo, take demo"): lambda w, c: (
        "DELETE",
        f"/v1/users/{w.user(['demo'])}/grants/demo",
        {},
    ),
    ("POST /v1/users/{name}/keys", "oneself"): lambda w, c: ("POST", f"/v1/users/{user_name(c)}/keys", {}),
    ("POST /v1/users/{name}/keys", "another user"): lambda w, c: ("POST", f"/v1/users/{w.user(None)}/keys", {}),
    ("DELETE /v1/keys/{key_id}", "new key of one's own"): lambda w, c: (
        "DELETE",
        f"/v1/keys/{w.key_of(user_name(c)) if c != 'anonymous' else w.key_of('investigator')}",
        {},
    ),
    ("DELETE /v1/keys/{key_id}", "new key of a new user limited to demo"): lambda w, c: (
        "DELETE",
        f"/v1/keys/{w.key_of(w.user(['demo']))}",
        {},
    ),
    ("DELETE /v1/keys/{key_id}", "new key of a new user seeing every collection"): lambda w, c: (
        "DELETE",
        f"/v1/keys/{w.key_of(w.user(None))}",
        {},
    ),
    ("GET /v1/collections", ""): lambda w, c: ("GET", "/v1/collections", {}),
    ("POST /v1/collections", "new collection"): lambda w, c: (
        "POST",
        "/v1/collections",
        {"json": {"name": w.name("c"), "legal_basis": "test"}},
    ),
    ("GET /v1/collections/{name}", "demo"): lambda w, c: ("GET", "/v1/collections/demo", {}),
    ("GET /v1/collections/{name}", "other"): lambda w, c: ("GET", "/v1/collections/other", {}),
    ("DELETE /v1/collections/{name}", "new collection"): lambda w, c: (
        "DELETE",
        f"/v1/collections/{w.collection()}",
        {},
    ),
    ("PUT /v1/collections/{name}/quality-policy", "demo"): lambda w, c: (
        "PUT",
        "/v1/collections/demo/quality-policy",
        {"json": {"min_quality": None}},
    ),
    ("PUT /v1/collections/{name}/quality-policy", "other"): lambda w, c: (
        "PUT",
        "/v1/collections/other/quality-policy",
        {"json": {"min_quality": None}},
    ),
    ("PUT /v1/collections/{name}/retention", "demo"): lambda w, c: (
        "PUT",
        "/v1/collections/demo/retention",
        {"json": {"days": None}},
    ),
    ("PUT /v1/collections/{name}/retention", "other"): lambda w, c: (
        "PUT",
        "/v1/collections/other/retention",
        {"json": {"days": None}},
    ),
    ("POST /v1/collections/{name}/uploads", "a picture into demo"): lambda w, c: (
        "POST",
        "/v1/collections/demo/uploads",
        picture_upload(),
    ),
    ("POST /v1/collections/{name}/uploads", "a picture into other"): lambda w, c: (
        "POST",
        "/v1/collections/other/uploads",
        picture_upload(),
    ),
    ("POST /v1/collections/{name}/ingest", "a server folder into demo"): lambda w, c: (
        "POST",
        "/v1/collections/demo/ingest",
        {"json": {"path": str(w.ingest_root)}},
    ),
    ("POST /v1/collections/{name}/ingest", "a server folder into other"): lambda w, c: (
        "POST",
        "/v1/collections/other/ingest",
        {"json": {"path": str(w.ingest_root)}},
    ),
    ("GET /v1/jobs", ""): lambda w, c: ("GET", "/v1/jobs", {}),
    ("GET /v1/jobs/{job_id}", "a job of other"): lambda w, c: ("GET", f"/v1/jobs/{w.other_job}", {}),
    ("GET /jobs/{job_id}", "a job of other"): lambda w, c: ("GET", f"/jobs/{w.other_job}", {}),
    ("POST /v1/search", "under a new case"): lambda w, c: ("POST", "/v1/search", search_form(w.name("NEW"))),
    ("POST /v1/search", "under OWN-1"): lambda w, c: ("POST", "/v1/search", search_form(CASE)),
    ("POST /v1/provenance", "under a new case"): lambda w, c: (
        "POST",
        "/v1/provenance",
        search_form(w.name("NEW")),
    ),
    ("POST /v1/provenance", "under OWN-1"): lambda w, c: ("POST", "/v1/provenance", search_form(CASE)),
    ("POST /v1/verify", "under a new case"): lambda w, c: ("POST", "/v1/verify", verify_form(w.name("NEW"))),
    ("POST /v1/verify", "under OWN-1"): lambda w, c: ("POST", "/v1/verify", verify_form(CASE)),
    ("GET /v1/cases", ""): lambda w, c: ("GET", "/v1/cases", {}),
    ("POST /v1/cases", "new case"): lambda w, c: ("POST", "/v1/cases", {"json": {"case_id": w.name("NEW")}}),
    ("GET /v1/cases/{case_id}", "OWN-1"): lambda w, c: ("GET", f"/v1/cases/{CASE}", {}),
    ("POST /v1/cases/{case_id}/close", "new case of investigator"): lambda w, c: (
        "POST",
        f"/v1/cases/{w.investigator_case()}/close",
        {},
    ),
    ("POST /v1/cases/{case_id}/members", "new case of investigator, add reviewer 2"): lambda w, c: (
        "POST",
        f"/v1/cases/{w.investigator_case()}/members",
        {"json": {"user": "reviewer-2"}},
    ),
    ("DELETE /v1/cases/{case_id}/members/{user}", "new case of investigator, take reviewer 2 off"): lambda w, c: (
        "DELETE",
        f"/v1/cases/{member_case(w)}/members/reviewer-2",
        {},
    ),
    ("POST /v1/cases/{case_id}/decisions", "OWN-1, a face its search returned"): lambda w, c: (
        "POST",
        f"/v1/cases/{CASE}/decisions",
        {"json": {"face_id": w.candidate_face, "decision": "unsure"}},
    ),
    ("POST /v1/cases/{case_id}/decisions", "OWN-1, a face no search under it returned"): lambda w, c: (
        "POST",
        f"/v1/cases/{CASE}/decisions",
        {"json": {"face_id": w.faces("demo")[0], "decision": "match"}},
    ),
    ("GET /v1/subjects", ""): lambda w, c: ("GET", "/v1/subjects", {}),
    ("GET /v1/subjects/{subject_id}", "subject with faces in demo only"): lambda w, c: (
        "GET",
        f"/v1/subjects/{w.demo_subject}",
        {},
    ),
    ("POST /v1/subjects", "new photo enrolled into demo"): lambda w, c: ("POST", "/v1/subjects", enrol("demo")),
    ("POST /v1/subjects", "new photo enrolled into other"): lambda w, c: ("POST", "/v1/subjects", enrol("other")),
    ("PATCH /v1/subjects/{subject_id}", "new subject in demo"): lambda w, c: (
        "PATCH",
        f"/v1/subjects/{w.subject('demo')[1]}",
        {"json": {"label": w.name("renamed")}},
    ),
    ("PATCH /v1/subjects/{subject_id}", "new subject in demo and other"): lambda w, c: (
        "PATCH",
        f"/v1/subjects/{w.subject('demo', 'other')[1]}",
        {"json": {"label": w.name("renamed")}},
    ),
    ("POST /v1/clusters/run", "collection demo"): lambda w, c: (
        "POST",
        "/v1/clusters/run",
        {"json": {"collections": ["demo"]}},
    ),
    ("GET /v1/clusters", ""): lambda w, c: ("GET", "/v1/clusters", {}),
    ("GET /v1/clusters/{cluster_id}", "new cluster in demo"): lambda w, c: (
        "GET",
        f"/v1/clusters/{w.cluster('demo')[0]}",
        {},
    ),
    ("POST /v1/clusters/{cluster_id}/split", "new cluster of two faces in demo, one moved out"): lambda w, c: (
        lambda made: ("POST", f"/v1/clusters/{made[0]}/split", {"json": {"face_ids": made[1][:1]}})
    )(w.cluster("demo", 2)),
    ("POST /v1/clusters/{cluster_id}/merge", "new cluster in demo into another"): lambda w, c: (
        "POST",
        f"/v1/clusters/{w.cluster('demo')[0]}/merge",
        {"json": {"into": w.cluster("demo")[0]}},
    ),
    ("POST /v1/clusters/{cluster_id}/apart", "new cluster in demo and another"): lambda w, c: (
        "POST",
        f"/v1/clusters/{w.cluster('demo')[0]}/apart",
        {"json": {"other": w.cluster("demo")[0]}},
    ),
    ("POST /v1/clusters/{cluster_id}/name", "new cluster in demo"): lambda w, c: (
        "POST",
        f"/v1/clusters/{w.cluster('demo')[0]}/name",
        {"json": {"label": w.name("Person")}},
    ),
    ("GET /v1/review", ""): lambda w, c: ("GET", "/v1/review", {}),
    ("GET /v1/review/confirmed", ""): lambda w, c: ("GET", "/v1/review/confirmed", {}),
    ("POST /v1/review/{item_id}/decision", "new cross-match pair in demo"): lambda w, c: (
        "POST",
        f"/v1/review/{w.review_item()}/decision",
        {"json": {"decision": "unsure", "note": "checked"}},
    ),
    ("POST /v1/subjects/{subject_id}/merge", "new subject in demo into another"): lambda w, c: (
        "POST",
        f"/v1/subjects/{w.subject('demo')[1]}/merge",
        {"json": {"into": w.subject("demo")[1]}},
    ),
    ("POST /v1/subjects/{subject_id}/merge", "new subject in demo into one in other"): lambda w, c: (
        "POST",
        f"/v1/subjects/{w.subject('demo')[1]}/merge",
        {"json": {"into": w.subject("other")[1]}},
    ),
    ("GET /v1/faces/{face_id}", "face in demo"): lambda w, c: ("GET", f"/v1/faces/{w.demo_face}", {}),
    ("GET /v1/faces/{face_id}", "face in other"): lambda w, c: ("GET", f"/v1/faces/{w.other_face}", {}),
    ("GET /v1/faces/{face_id}", "face in demo returned under OWN-1, read under OWN-1"): lambda w, c: (
        "GET",
        f"/v1/faces/{w.candidate_face}",
        {"params": {"case_id": CASE}},
    ),
    ("GET /v1/faces/{face_id}/crop.jpg", "face in demo"): lambda w, c: (
        "GET",
        f"/v1/faces/{w.demo_face}/crop.jpg",
        {},
    ),
    ("GET /v1/faces/{face_id}/crop.jpg", "face in demo returned under OWN-1, read under OWN-1"): lambda w, c: (
        "GET",
        f"/v1/faces/{w.candidate_face}/crop.jpg",
        {"params": {"case_id": CASE}},
    ),
    ("GET /faces/{face_id}/crop.jpg", "face in demo"): lambda w, c: ("GET", f"/faces/{w.demo_face}/crop.jpg", {}),
    ("GET /v1/faces/{face_id}/image.jpg", "face in demo returned under OWN-1, read under OWN-1"): lambda w, c: (
        "GET",
        f"/v1/faces/{w.candidate_face}/image.jpg",
        {"params": {"case_id": CASE}},
    ),
    ("POST /v1/erasure", "new face in demo"): lambda w, c: (
        "POST",
        "/v1/erasure",
        {"json": {"kind": "face", "values": w.faces("demo")}},
    ),
    ("POST /v1/erasure", "new face in other"): lambda w, c: (
        "POST",
        "/v1/erasure",
        {"json": {"kind": "face", "values": w.faces("other")}},
    ),
    ("POST /v1/erasure", "new subject with faces in demo and other"): lambda w, c: (
        "POST",
        "/v1/erasure",
        {"json": {"kind": "subject", "values": [w.subject("demo", "other")[0]]}},
    ),
    ("POST /v1/forget/candidates", "a photo of the astronaut"): lambda w, c: (
        "POST",
        "/v1/forget/candidates",
        {"files": {"image": ("p.png", fresh_photo(), "image/png")}},
    ),
    ("POST /v1/forget/erase", "new face in demo"): lambda w, c: (
        "POST",
        "/v1/forget/erase",
        {"json": {"face_ids": w.faces("demo")}},
    ),
    ("POST /v1/forget/erase", "new face in other"): lambda w, c: (
        "POST",
        "/v1/forget/erase",
        {"json": {"face_ids": w.faces("other")}},
    ),
    ("POST /v1/retention/purge", "dry run"): lambda w, c: (
        "POST",
        "/v1/retention/purge",
        {"params": {"dry_run": "true"}},
    ),
    ("GET /v1/optouts", ""): lambda w, c: ("GET", "/v1/optouts", {}),
    ("DELETE /v1/optouts/{optout_id}", "new opt-out"): lambda w, c: ("DELETE", f"/v1/optouts/{new_optout(w)}", {}),
    ("GET /v1/audit", ""): lambda w, c: ("GET", "/v1/audit", {}),
    ("GET /v1/audit/verify", ""): lambda w, c: ("GET", "/v1/audit/verify", {}),
    ("GET /v1/audit/export", ""): lambda w, c: ("GET", "/v1/audit/export", {}),
    ("POST /v1/optouts", "a photo of the astronaut (erases her faces: the last row)"): lambda w, c: (
        "POST",
        "/v1/optouts",
        {"files": {"image": ("p.png", fresh_photo(), "image/png")}},
    ),
}


def user_name(caller: str) -> str:
    """The user name of a caller (the anonymous caller borrows the investigator's: it has no key anyway)."""
    return "investigator" if caller == "anonymous" else caller.replace("·", "-").replace(" ", "-")


def member_case(world: World) -> str:
    reference = world.investigator_case()
    world.engine.cases.add_member(world.operator, reference, "reviewer-2")
    return reference


def new_optout(world: World) -> int:
    vector = np.random.default_rng().normal(size=world.engine.packs.pack().dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    added = world.engine.optouts.add(world.operator, {world.engine.packs.pack().key: (vector, 0.999)})
    return int(added["id"])


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    photos = write_photos(tmp_path / "photos")
    ingest_root = tmp_path / "roots" / "incoming"
    ingest_root.mkdir(parents=True)
    (ingest_root / "one.png").write_bytes(fresh_photo())
    with catalog_url(request.param, tmp_path) as url:
        home = tmp_path / "home"
        engine = FaceSearch(settings(home, url, rate_limit_per_minute=10**6))
        try:
            engine.index([photos], collection="demo", subject_from_folder=True, workers=1)
            engine.index([photos / "Eileen_Collins" / "mirror.webp"], collection="other", workers=1)
            keys: dict[str, str] = {}
            principals: dict[str, Principal] = {}
            for caller, (role, collections) in ROLES.items():
                name = user_name(caller)
                engine.accounts.add_user(engine.operator, name, role, collections=collections)
                keys[caller] = engine.accounts.create_key(engine.operator, name)[1]
                found = engine.accounts.authenticate(keys[caller])
                assert found is not None
                principals[caller] = found
            engine.accounts.add_user(engine.operator, "demo-user", "investigator", collections=["demo"])
            (home / "config.toml").write_text("failed_auth_per_minute = 1000000\nrate_limit_per_minute = 1000000\n")
            with server(home, url, "--ingest-root", str(ingest_root.parent)) as base:
                world = World(base, engine, keys, principals, ingest_root)
                prepare(world)
                yield world
        finally:
            engine.close()


def prepare(world: World) -> None:
    """The investigator's search under OWN-1 (its candidates), the reviewer on it, a job of ``other``."""
    with httpx.Client(base_url=world.base, timeout=120) as http:
        headers = {"Authorization": f"Bearer {world.keys['investigator']}"}
        found = http.post("/v1/search", headers=headers, **search_form(CASE))
        assert found.status_code == 200, found.text
        candidates = [c for face in found.json()["faces"] for c in face["candidates"]]
        world.candidate_face = next(c["face_id"] for c in candidates if c["collection"] == "demo")
        world.other_face = next(c["face_id"] for c in candidates if c["collection"] == "other")
        world.demo_face = next(
            c["face_id"] for c in candidates if c["collection"] == "demo" and c["face_id"] != world.candidate_face
        )
        world.demo_subject = next(
            s.id for s in world.engine.subjects.list(world.operator) if s.label == "Eileen_Collins"
        )
        world.engine.cases.add_member(world.operator, CASE, "reviewer")
        admin = {"Authorization": f"Bearer {world.keys['admin']}"}
        job = http.post("/v1/collections/other/uploads", headers=admin, **picture_upload())
        assert job.status_code == 202, job.text
        world.other_job = job.json()["id"]
        deadline = time.monotonic() + 120
        while http.get(f"/v1/jobs/{world.other_job}", headers=admin).json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the upload job did not finish"
            time.sleep(0.2)


def test_every_endpoint_answers_every_role_and_grant_as_documented(world: World) -> None:
    rows = access_table()
    assert {(request, target) for request, target, _ in rows} == set(BUILDERS), "the table and the builders differ"
    mismatches = []
    with httpx.Client(base_url=world.base, timeout=120) as http:
        documented = http.get("/openapi.json").json()["paths"]
        listed = {request for request, _, _ in rows}
        for path, operations in documented.items():
            for method in operations:
                assert f"{method.upper()} {path}" in listed, f"{method.upper()} {path} is not in the access table"
        for request, target, expected in rows:
            for caller, status in expected.items():
                method, url, options = BUILDERS[(request, target)](world, caller)
                headers = {} if caller == "anonymous" else {"Authorization": f"Bearer {world.keys[caller]}"}
                answer = http.request(method, url, headers=headers, **options)
                if answer.status_code != status:
                    detail = answer.text[:160] if answer.status_code >= 400 else ""
                    mismatches.append(f"{request} [{target}] as {caller}: {answer.status_code}, not {status} {detail}")
        verified = http.get("/v1/audit/verify", headers={"Authorization": f"Bearer {world.keys['auditor']}"})
        assert verified.json()["ok"] is True
    assert not mismatches, "\n".join(mismatches)


def test_a_limited_administrators_erasure_stays_inside_its_collections(world: World) -> None:
    """What the table's 200 for admin·demo erasing a subject with faces in both collections means."""
    label, subject_id = world.subject("demo", "other")
    with httpx.Client(base_url=world.base, timeout=120) as http:
        headers = {"Authorization": f"Bearer {world.keys['admin·demo']}"}
        erased = http.post("/v1/erasure", headers=headers, json={"kind": "subject", "values": [label]})
        assert erased.status_code == 200 and erased.json()["faces"] == 1 and erased.json()["subjects"] == 0
    left = world.engine.subjects.get(world.operator, subject_id)
    assert left.label == label and left.faces == 1  # the face in other, and the label with it, stay
    assert re.fullmatch(r"s-[0-9a-f]{10}", label)


def test_a_refused_change_leaves_nothing_behind(world: World) -> None:
    """A limited administrator's collection, broader user, auditor, out-of-scope grant, another's key: each
    refused before anything is written, so there is neither the thing nor an audit record of it."""
    count = len(world.engine.audit.records(limit=100_000))
    headers = {"Authorization": f"Bearer {world.keys['admin·demo']}"}
    refused = [
        ("POST", "/v1/collections", {"json": {"name": "sneaky", "legal_basis": "none"}}),
        ("POST", "/v1/users", {"json": {"name": "broad", "role": "investigator"}}),
        ("POST", "/v1/users", {"json": {"name": "watcher", "role": "auditor"}}),
        ("POST", "/v1/users", {"json": {"name": "wider", "role": "admin", "collections": ["demo", "other"]}}),
        ("POST", "/v1/users/demo-user/grants", {"json": {"collection": "other"}}),
        ("POST", "/v1/users/demo-user/keys", {}),
    ]
    with httpx.Client(base_url=world.base, timeout=60) as http:
        for method, url, options in refused:
            answer = http.request(method, url, headers=headers, **options)
            assert answer.status_code in (403, 404), (url, answer.text)
    assert world.engine.catalog.collection_id("sneaky") is None
    assert {u["name"] for u in world.engine.accounts.users(world.operator)} & {"broad", "watcher", "wider"} == set()
    assert world.engine.accounts.user(world.operator, "demo-user")["collections"] == ["demo"]
    assert world.engine.accounts.user(world.operator, "demo-user")["keys"] == []
    assert len(world.engine.audit.records(limit=100_000)) == count
