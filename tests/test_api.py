"""API routes through FastAPI's TestClient, on a real data folder (dlib pack, real photos), SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facesearch.api.app import create_app
from facesearch.engine import FaceSearch
from facesearch.governance.audit import verify_export
from tests.test_api_support import PURPOSE, auth, catalog_url, make_users, probe_bytes, settings, write_photos

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclasses.dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    home: Path
    root: Path  # an ingest root with photos
    engine: FaceSearch

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=auth(self.keys[role]), **kwargs)

    def post(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(path, headers=auth(self.keys[role]), **kwargs)

    def search(self, role: str = "investigator", data: dict[str, str] | None = None, image: bytes | None = None) -> Any:
        files = {"image": ("probe.png", image if image is not None else probe_bytes(), "image/png")}
        return self.post("/v1/search", role, files=files, data=PURPOSE if data is None else data)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"api-{request.param}")
    root = folder / "roots" / "photos"
    write_photos(root)
    with catalog_url(request.param, folder) as url:
        config = settings(folder / "home", url, ingest_roots=(folder / "roots",), rate_limit_per_minute=100_000)
        with FaceSearch(config) as engine:
            engine.index([root], collection="demo", subject_from_folder=True, legal_basis="test", workers=1)
            engine.catalog.ensure_collection("other", legal_basis="test")
            keys = make_users(engine)
            engine.accounts.add_user(engine.operator, "limited", "investigator", collections=["other"])
            keys["limited"] = engine.accounts.create_key(engine.operator, "limited")[1]
        app = create_app(config, schedule=False)
        with TestClient(app) as client:
            yield Api(client, keys, folder / "home", folder / "roots", app.state.engine)


def wait_for_job(api: Api, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "interrupted"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_health_needs_no_key_and_everything_else_does(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    for method, path in [("GET", "/v1/collections"), ("POST", "/v1/search"), ("GET", "/v1/audit"), ("GET", "/v1/me")]:
        answer = api.client.request(method, path)
        assert answer.status_code == 401, path
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    bad = api.client.get("/v1/me", headers=auth("fsk_000000000000_" + "A" * 43))
    assert bad.status_code == 401 and bad.json()["message"]


def test_docs_page_works_offline_under_its_own_csp(api: Api) -> None:
    """/docs loads nothing from another origin, and its CSP allows its one inline script by hash only."""
    page = api.client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/docs/assets/") for source in sources), sources
    for source in sources:
        asset = api.client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 500, source
    policy = page.headers["content-security-policy"]
    assert "http" not in policy and "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    inline = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert len(inline) == 1 and f"'sha256-{digest}'" in policy


def test_security_headers_and_no_cors_by_default(api: Api) -> None:
    response = api.client.get("/health", headers={"Origin": "https://evil.example"})
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "server" not in headers
    assert "access-control-allow-origin" not in headers
    preflight = api.client.options(
        "/v1/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_errors_are_json_with_a_code_and_a_message(api: Api) -> None:
    missing = api.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong_method = api.client.delete("/health")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"
    invalid = api.get("/v1/jobs/not-a-number")
    assert invalid.status_code == 422 and invalid.json()["code"] == "validation_error"


def test_roles_allow_only_their_own_actions(api: Api) -> None:
    for role in ("admin", "reviewer", "auditor"):
        answer = api.search(role)
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden", role
    for role in ("admin", "investigator", "reviewer"):
        assert api.get("/v1/audit", role).status_code == 403, role
    assert api.get("/v1/collections", "auditor").status_code == 403
    assert api.get("/v1/users", "investigator").status_code == 403
    assert api.post("/v1/erasure", "investigator", json={"kind": "face", "values": [1]}).status_code == 403
    assert api.get("/v1/me", "reviewer").json()["role"] == "reviewer"


def test_search_answers_the_cli_object_and_is_audited(api: Api) -> None:
    probe = probe_bytes()
    response = api.search(image=probe)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"probe", "error", "faces", "pack", "threshold", "warnings", "faces_searched"}
    assert body["pack"] == "dlib@2" and body["error"] is None
    top = body["faces"][0]["candidates"][0]
    assert top["subject"] == "Eileen_Collins" and top["similarity"] >= body["threshold"]
    assert set(top) >= {"rank", "face_id", "image", "subject", "collection", "similarity", "source_url", "bbox"}
    # The same object the CLI prints for the same probe.
    expected = api.engine.searching.service().search(probe, top_k=10, probe_name="probe.png").model_dump()
    assert body == expected
    record = api.get("/v1/audit", "auditor", params={"action": "search", "actor": "investigator"}).json()[-1]
    assert record["probe_sha256"] == hashlib.sha256(probe).hexdigest()
    assert (record["purpose"], record["case_id"]) == ("humanitarian", "CASE-1")
    returned = [[c["face_id"], c["similarity"]] for c in body["faces"][0]["candidates"]]
    assert record["details"]["results"][0] == returned


def test_search_by_subject_adds_people_ranked_by_their_template(api: Api) -> None:
    body = api.search(data={**PURPOSE, "by_subject": "true", "top_k": "3"}).json()
    face = body["faces"][0]
    best = face["subjects"][0]
    assert best["rank"] == 1 and best["subject"] == "Eileen_Collins" and best["faces"] >= 2
    assert best["best_face_id"] == face["candidates"][0]["face_id"]
    assert best["mean_similarity"] <= best["similarity"] and best["fmr"] is not None
    assert best["fmr"] >= face["candidates"][0]["fmr"]  # a bound at the mean, not at the best face
    assert api.search().json()["faces"][0]["subjects"] is None


def test_search_requires_a_configured_purpose_and_an_open_case(api: Api) -> None:
    for data in ({"case_id": "CASE-1"}, {"purpose": "humanitarian"}, {}):
        answer = api.search(data=data)
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error", data
    answer = api.search(data={"purpose": "curiosity", "case_id": "CASE-1"})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_purpose"
    answer = api.search(data={"purpose": "humanitarian", "case_id": "../../etc"})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_case"
    assert api.post("/v1/cases", "investigator", json={"case_id": "CLOSED-1"}).status_code == 201
    assert api.post("/v1/cases/CLOSED-1/close", "investigator").status_code == 200
    answer = api.search(data={"purpose": "investigation", "case_id": "CLOSED-1"})
    assert answer.status_code == 409 and answer.json()["code"] == "case_closed"


def test_hostile_uploads_are_refused_before_decoding(api: Api) -> None:
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
    answer = api.search(image=pdf)
    assert answer.status_code == 415 and answer.json()["code"] == "unsupported_media_type"
    answer = api.search(image=b"")
    assert answer.status_code == 422
    bomb = png_header(200_000, 200_000)
    answer = api.search(image=bomb)
    assert answer.status_code == 413 and answer.json()["code"] == "image_too_large"
    too_big = b"\xff\xd8\xff" + b"\0" * (api.engine.settings.max_upload_bytes + 10)
    answer = api.search(image=too_big)
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge picture (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_grants_limit_search_to_granted_collections(api: Api) -> None:
    own_case = {"purpose": "humanitarian", "case_id": "CASE-limited"}
    answer = api.search("limited", data=own_case)
    assert answer.status_code == 200
    assert all(not face["candidates"] for face in answer.json()["faces"])
    answer = api.search("limited", data={**own_case, "collection": "demo"})
    assert answer.status_code == 404 and answer.json()["code"] == "unknown_collection"
    names = [c["name"] for c in api.get("/v1/collections", "limited").json()]
    assert names == ["other"]


def test_verify(api: Api) -> None:
    files = {"image_a": ("a.png", probe_bytes(), "image/png"), "image_b": ("b.jpg", probe_bytes("JPEG"), "image/jpeg")}
    answer = api.post("/v1/verify", "investigator", files=files, data=PURPOSE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["same_person"] is True and body["similarity"] > 0.9
    record = api.get("/v1/audit", "auditor", params={"action": "verify"}).json()[-1]
    assert record["probe_sha256"].count(",") == 1 and record["details"]["same_person"] is True

    # A photo without a face has nothing to compare: an error the client must handle, never a 200 with nulls.
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 160, 200)).save(blank, "PNG")
    files = {"image_a": ("a.png", probe_bytes(), "image/png"), "image_b": ("sky.png", blank.getvalue(), "image/png")}
    answer = api.post("/v1/verify", "investigator", files=files, data=PURPOSE)
    assert answer.status_code == 422 and answer.json()["code"] == "no_face", answer.text
    assert "image B: no face found" in answer.json()["message"]


def test_collections_create_list_retention(api: Api) -> None:
    answer = api.post("/v1/collections", json={"name": "archive"})
    assert answer.status_code == 422  # a legal basis is required
    answer = api.post("/v1/collections", json={"name": "archive", "legal_basis": "consent", "retention_days": 30})
    assert answer.status_code == 201 and answer.json()["retention_days"] == 30
    assert (
        api.post("/v1/collections", json={"name": "archive", "legal_basis": "x"}).json()["code"] == "collection_exists"
    )
    answer = api.client.put("/v1/collections/archive/retention", json={"days": 7}, headers=auth(api.keys["admin"]))
    assert answer.json()["retention_days"] == 7
    assert api.get("/v1/collections/archive", "investigator").json()["legal_basis"] == "consent"
    assert api.get("/v1/collections/nope").status_code == 404
    strict = {"name": "strict", "legal_basis": "consent", "min_quality": 0.5}
    assert api.post("/v1/collections", json=strict).json()["min_quality"] == 0.5
    assert api.get("/v1/collections/archive", "investigator").json()["min_quality"] is None
    assert api.post("/v1/collections", json={**strict, "name": "x", "min_quality": 2}).status_code == 422
    # The policy of an existing collection changes (and goes back to "index all" with null), audited.
    policy = "/v1/collections/archive/quality-policy"
    admin = auth(api.keys["admin"])
    assert api.client.put(policy, json={"min_quality": 0.4}, headers=admin).json()["min_quality"] == 0.4
    assert api.get("/v1/collections/archive").json()["min_quality"] == 0.4
    assert api.client.put(policy, json={"min_quality": None}, headers=admin).json()["min_quality"] is None
    assert api.client.put(policy, json={"min_quality": 1.5}, headers=admin).status_code == 422
    assert api.client.put(policy, json={"min_quality": 0.4}, headers=auth(api.keys["investigator"])).status_code == 403
    assert api.client.put("/v1/collections/nowhere/quality-policy", json={}, headers=admin).status_code == 404
    actions = [r["action"] for r in api.get("/v1/audit", "auditor").json()]
    assert actions.count("quality_policy_set") == 2


def test_upload_a_zip_with_hostile_members_runs_a_job(api: Api) -> None:
    api.post("/v1/collections", json={"name": "uploads", "legal_basis": "consent"})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Pat_Doe/one.png", probe_bytes())
        zf.writestr("../../escape.png", probe_bytes("JPEG"))
        zf.writestr("/abs/path.png", probe_bytes())
        zf.writestr("notes.txt", "not a picture")
        link = zipfile.ZipInfo("Pat_Doe/link.png")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    files = [("files", ("batch.zip", archive.getvalue(), "application/zip"))]
    answer = api.post("/v1/collections/uploads/uploads", files=files, data={"subject_from_folder": "true"})
    assert answer.status_code == 202, answer.text
    job = wait_for_job(api, answer.json()["id"])
    assert job["status"] == "done", job
    assert api.get(f"/jobs/{job['id']}").json() == job  # the unversioned path
    # Three pictures got through (two have the same bytes: stored once); the rest were never written.
    assert job["result"]["images_indexed"] == 2 and job["result"]["duplicates"] == 1 and job["faces"] >= 2
    stored = sorted(p.relative_to(api.home / "uploads") for p in (api.home / "uploads").rglob("*") if p.is_file())
    assert len(stored) == 3 and all(p.parts[0] == "uploads" for p in stored)
    assert not (api.home.parent / "escape.png").exists()
    labels = [s["label"] for s in api.get("/v1/subjects").json()]
    assert "Pat_Doe" in labels
    answer = api.post("/v1/collections/uploads/uploads", files=[("files", ("x.pdf", b"%PDF-1.4 x", "image/png"))])
    assert answer.status_code == 415


def _uploaded_files(api: Api) -> set[Path]:
    return {p for p in (api.home / "uploads").rglob("*") if p.is_file()}


def test_upload_archives_whose_names_clash_are_handled_or_refused_never_a_500(api: Api) -> None:
    api.post("/v1/collections", json={"name": "clashes", "legal_basis": "consent"})
    faces = [probe_bytes(), probe_bytes("JPEG")]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("same.jpg", faces[1])
        zf.writestr("same.jpg/inner.png", faces[0])  # a folder named like the file before it
        zf.writestr("dir.png/inner.png", faces[0])
        zf.writestr("dir.png", faces[0])  # a file named like the folder before it
        zf.writestr("twice.png", faces[0])
        zf.writestr("twice.png", faces[0])  # the same name twice
        zf.writestr("Case.PNG", faces[0])
        zf.writestr("case.png", faces[0])  # names that differ only in case
        zf.writestr("odd?.png", faces[0])
        zf.writestr("odd*.png", faces[0])  # names that become the same safe name
        zf.writestr(("x" * 300) + ".png", faces[0])
        zf.writestr(("x" * 301) + ".png", faces[0])  # names cut to the same length
    before = _uploaded_files(api)
    files = [("files", ("clash.zip", archive.getvalue(), "application/zip"))]
    answer = api.post("/v1/collections/clashes/uploads", files=files)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(api, answer.json()["id"])
    assert job["status"] == "done" and job["result"]["files_seen"] == 12, job
    assert len(_uploaded_files(api) - before) == 12  # every member kept, under a name of its own

    # An archive that fails halfway is refused as a whole, and nothing of it stays behind.
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("first.png", faces[0])
        zf.writestr("second.png", faces[0])
    data = bytearray(broken.getvalue())
    second = data.find(b"second.png")  # its local header: the compressed bytes follow
    data[second + 40 : second + 60] = b"\xff" * 20  # corrupt the second member's compressed bytes
    before = _uploaded_files(api)
    answer = api.post(
        "/v1/collections/clashes/uploads", files=[("files", ("broken.zip", bytes(data), "application/zip"))]
    )
    assert answer.status_code in (413, 422), answer.text
    assert answer.json()["code"] in ("bad_archive", "payload_too_large")
    assert _uploaded_files(api) == before
    assert not [p for p in (api.home / "uploads" / "clashes").iterdir() if not any(p.rglob("*.*"))]


def test_server_side_ingest_is_confined_to_the_roots(api: Api, tmp_path: Path) -> None:
    api.post("/v1/collections", json={"name": "bypath", "legal_basis": "consent"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(probe_bytes())
    escape = api.root / "photos" / "escape"
    if not escape.exists():
        os.symlink(outside, escape)
    for path in ("/etc", str(api.root / ".." / "home"), str(escape), str(escape / "secret.png")):
        answer = api.post("/v1/collections/bypath/ingest", json={"path": path})
        assert answer.status_code == 403 and answer.json()["code"] == "path_not_allowed", path
    answer = api.post("/v1/collections/bypath/ingest", json={"path": str(api.root / "photos")})
    assert answer.status_code == 202
    job = wait_for_job(api, answer.json()["id"])
    assert job["status"] == "done" and job["files_total"] == 4  # the linked folder's file was not taken
    assert api.get("/v1/jobs/999999").json()["code"] == "unknown_job"


def test_subjects_faces_and_crops(api: Api) -> None:
    subjects = api.get("/v1/subjects", "investigator").json()
    eileen = next(s for s in subjects if s["label"] == "Eileen_Collins")
    assert eileen["faces"] == 3
    files = {"image": ("p.png", probe_bytes(), "image/png")}
    enrolled = api.post("/v1/subjects", files=files, data={"label": "Second Label", "collection": "other"})
    assert enrolled.status_code == 201, enrolled.text
    renamed = api.client.patch(
        f"/v1/subjects/{enrolled.json()['id']}", json={"label": "Renamed"}, headers=auth(api.keys["admin"])
    )
    assert renamed.json()["label"] == "Renamed"
    taken = api.client.patch(
        f"/v1/subjects/{enrolled.json()['id']}", json={"label": "Eileen_Collins"}, headers=auth(api.keys["admin"])
    )
    assert taken.status_code == 409
    merged = api.post(f"/v1/subjects/{enrolled.json()['id']}/merge", json={"into": eileen["id"]})
    assert merged.status_code == 200 and merged.json()["faces"] == 4
    candidates = api.search(data={"purpose": "humanitarian", "case_id": "CROPS-1"}).json()["faces"][0]["candidates"]
    face_id = next(c["face_id"] for c in candidates if c["collection"] == "demo")
    face = api.get(f"/v1/faces/{face_id}", "investigator").json()
    assert face["subject"] == "Eileen_Collins"
    crop = api.get(f"/v1/faces/{face_id}/crop.jpg", "investigator", params={"case_id": "CROPS-1"})
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert crop.content[:3] == b"\xff\xd8\xff"
    assert api.get(f"/faces/{face_id}/crop.jpg", "investigator").content == crop.content  # the unversioned path
    assert api.get(f"/v1/faces/{face_id}/crop.jpg", "limited").status_code == 404  # not in their collections
    assert api.get("/v1/faces/99999999/crop.jpg").status_code == 404
    # A reviewer reads a face only under a case they were assigned whose search returned it.
    assert api.get(f"/v1/faces/{face_id}/crop.jpg", "reviewer").status_code == 403
    assert api.get(f"/v1/faces/{face_id}/crop.jpg", "reviewer", params={"case_id": "CROPS-1"}).status_code == 404
    assert api.post("/v1/cases/CROPS-1/members", "investigator", json={"user": "reviewer"}).status_code == 200
    reviewed = api.get(f"/v1/faces/{face_id}/crop.jpg", "reviewer", params={"case_id": "CROPS-1"})
    assert reviewed.status_code == 200 and reviewed.content == crop.content
    reads = api.get("/v1/audit", "auditor", params={"action": "face_crop"}).json()
    assert [(r["actor"], r["case_id"], r["details"]["face_id"]) for r in reads][-1] == ("reviewer", "CROPS-1", face_id)
    whole = api.get(f"/v1/faces/{face_id}/image.jpg", "investigator")
    assert whole.status_code == 200 and whole.content[:3] == b"\xff\xd8\xff"


def test_cases_and_reviewer_decisions(api: Api) -> None:
    assert api.post("/v1/cases", "investigator", json={"case_id": "2024-017", "title": "flood"}).status_code == 201
    face_id = api.search(data={"purpose": "humanitarian", "case_id": "2024-017"}).json()["faces"][0]["candidates"][0][
        "face_id"
    ]
    seq = api.get("/v1/audit", "auditor", params={"case_id": "2024-017", "action": "search"}).json()[-1]["seq"]
    payload = {"face_id": face_id, "decision": "match", "audit_seq": seq}
    assert api.post("/v1/cases/2024-017/decisions", "reviewer", json=payload).status_code == 404  # not assigned
    assert api.post("/v1/cases/2024-017/members", "investigator", json={"user": "reviewer"}).status_code == 200
    decision = api.post("/v1/cases/2024-017/decisions", "reviewer", json=payload)
    assert decision.status_code == 201
    # Only a face that a search under the case returned can be decided on.
    other = api.post("/v1/cases/2024-017/decisions", "reviewer", json={"face_id": 99999, "decision": "match"})
    assert other.status_code == 404 and other.json()["code"] == "unknown_face"
    assert (
        api.post("/v1/cases/2024-017/decisions", "investigator", json={"face_id": 1, "decision": "match"}).status_code
        == 403
    )
    case = api.get("/v1/cases/2024-017", "reviewer").json()
    assert case["decisions"][0]["decision"] == "match" and case["decisions"][0]["decided_by"] == "reviewer"
    assert api.get("/v1/cases/unknown-case", "reviewer").json()["code"] == "unknown_case"


def test_audit_endpoints(api: Api) -> None:
    assert api.get("/v1/audit/verify", "auditor").json()["ok"] is True
    export = api.get("/v1/audit/export", "auditor")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = export.text.splitlines()
    assert verify_export(lines, public_key_pem=api.engine.audit.anchor.public_key_pem()).ok
    assert '"action":"audit_export"' in lines[-2]


def test_accounts_through_the_api(api: Api) -> None:
    assert api.post("/v1/users", json={"name": "newbie", "role": "investigator"}).status_code == 201
    assert api.post("/v1/users", json={"name": "newbie", "role": "auditor"}).json()["code"] == "user_exists"
    assert api.post("/v1/users/newbie/keys").status_code == 403  # nobody mints a key for someone else
    key_id, secret = api.engine.accounts.create_key(api.engine.operator, "newbie")  # the operator, once
    key = {"key_id": key_id, "key": secret}
    own = api.client.post("/v1/me/keys", headers=auth(secret))
    assert own.status_code == 201 and own.json()["key"].startswith("fsk_")
    assert api.client.get("/v1/me", headers=auth(key["key"])).json()["name"] == "newbie"
    assert api.client.delete(f"/v1/keys/{key['key_id']}", headers=auth(api.keys["admin"])).status_code == 204
    assert api.client.get("/v1/me", headers=auth(key["key"])).status_code == 401
    users = {u["name"]: u for u in api.get("/v1/users").json()}
    assert users["limited"]["collections"] == ["other"] and users["newbie"]["keys"][0]["active"] is False


def test_rate_limit_per_key(tmp_path: Path) -> None:
    with catalog_url("sqlite", tmp_path) as url:
        config = settings(tmp_path / "home", url, rate_limit_per_minute=60)
        with FaceSearch(config) as engine:
            keys = make_users(engine)
        with TestClient(create_app(config, schedule=False)) as client:
            codes = [client.get("/v1/me", headers=auth(keys["reviewer"])).status_code for _ in range(12)]
            assert codes[:5] == [200] * 5 and codes[-1] == 429
            limited = client.get("/v1/me", headers=auth(keys["reviewer"]))
            assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
            assert client.get("/v1/me", headers=auth(keys["auditor"])).status_code == 200  # per key


def test_a_flood_of_wrong_secrets_is_refused_before_hashing_and_spares_the_key_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesearch.governance import accounts

    hashed = []
    real = accounts._HASHER

    class CountingHasher:
        def hash(self, secret: str) -> str:
            return real.hash(secret)

        def verify(self, stored: str, key: str) -> bool:
            hashed.append(key)
            return real.verify(stored, key)

    monkeypatch.setattr(accounts, "_HASHER", CountingHasher())
    with catalog_url("sqlite", tmp_path) as url:
        config = settings(tmp_path / "home", url, rate_limit_per_minute=100_000)
        with FaceSearch(config) as engine:
            keys = make_users(engine)
        with TestClient(create_app(config, schedule=False)) as client:
            valid = keys["investigator"]
            assert client.get("/v1/me", headers=auth(valid)).status_code == 200  # verified once
            wrong = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
            codes = [client.get("/v1/me", headers=auth(wrong)).status_code for _ in range(5)]
            assert codes == [401] * 5
            started = time.monotonic()
            refused = client.post("/v1/search", headers=auth(wrong), files={"image": ("p.png", probe_bytes())})
            assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1 and time.monotonic() - started >= 0.5  # held back
            assert len(hashed) == 6  # the first verification and five wrong secrets; the refused one: none
            # The key's owner is not refused: their key was verified before, and is recognised without a hash.
            assert client.get("/v1/me", headers=auth(valid)).status_code == 200
            assert len(hashed) == 6


def test_clusters_run_list_read_and_correct(api: Api) -> None:
    """Clustering through the API: admins only, every collection; the astronaut's three photos are one
    cluster; a split is marked apart (a merge back is refused unless said so); naming enrols the faces."""
    assert api.post("/v1/clusters/run", "investigator", json={}).status_code == 403
    assert api.post("/v1/clusters/run", json={"fmr": 2}).status_code == 422
    assert api.post("/v1/clusters/run", json={"collections": ["nowhere"]}).status_code == 404
    ran = api.post("/v1/clusters/run", json={"collections": ["demo"]})
    assert ran.status_code == 200, ran.text
    summary = ran.json()
    assert summary["faces"] >= 3 and summary["full"] and summary["fmr"] == 1.8e-6 and 0 < summary["threshold"] < 1
    listed = api.get("/v1/clusters").json()
    # Risky first: flagged clusters, then clusters of several faces by their weakest link, then faces alone.
    keys = [(not r["mixed"], r["size"] < 2, r["weakest_link"] if r["weakest_link"] is not None else 2) for r in listed]
    assert keys == sorted(keys)
    assert len(api.get("/v1/clusters", params={"limit": 1}).json()) == 1
    biggest = max(listed, key=lambda row: row["size"])
    assert biggest["size"] >= 3 and not biggest["mixed"] and biggest["weakest_link"] >= summary["threshold"]
    read = api.get(f"/v1/clusters/{biggest['id']}").json()
    assert len(read["face_ids"]) == biggest["size"]
    assert api.get("/v1/clusters/999999").status_code == 404
    face = read["face_ids"][0]
    split = api.post(f"/v1/clusters/{biggest['id']}/split", json={"face_ids": [face]})
    assert split.status_code == 200 and split.json()["size"] == 1 and split.json()["reviewed"]
    again = api.post("/v1/clusters/run", json={"collections": ["demo"], "full": True}).json()
    assert again["faces"] == summary["faces"]
    assert face not in api.get(f"/v1/clusters/{biggest['id']}").json()["face_ids"]
    back = api.post(f"/v1/clusters/{split.json()['id']}/merge", json={"into": biggest["id"]})
    assert back.status_code == 409 and back.json()["code"] == "clusters_apart"
    merged = api.post(f"/v1/clusters/{split.json()['id']}/merge", json={"into": biggest["id"], "despite_apart": True})
    assert merged.status_code == 200 and merged.json()["size"] == biggest["size"]
    named = api.post(f"/v1/clusters/{biggest['id']}/name", json={"label": "Eileen_Collins"})
    assert named.status_code == 200 and named.json()["subject"] == "Eileen_Collins"
    assert api.post(f"/v1/clusters/{biggest['id']}/name", json={"label": "../x"}).status_code == 422
    assert api.post(f"/v1/clusters/{biggest['id']}/apart", json={"other": biggest["id"]}).status_code == 422


def test_review_queue_lists_and_decides(api: Api) -> None:
    assert api.get("/v1/review", "investigator").status_code == 403
    listed = api.get("/v1/review", params={"kind": "near_threshold"})
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    assert api.get("/v1/review", params={"kind": "nonsense"}).status_code == 422
    assert api.post("/v1/review/999999/decision", json={"decision": "same"}).status_code == 404
    assert api.post("/v1/review/1/decision", json={"decision": "maybe"}).status_code == 422
    confirmed = api.get("/v1/review/confirmed")
    assert confirmed.status_code == 200 and isinstance(confirmed.json()["pairs"], list)
    assert api.get("/v1/review/confirmed", "reviewer").status_code == 403
