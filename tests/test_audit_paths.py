"""No code path searches without writing its audit record: the Python API, the CLI and the API, all of them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from facesearch.api.app import create_app
from facesearch.cli import app as cli_app
from facesearch.engine import FaceSearch
from facesearch.governance.audit import AuditError
from facesearch.governance.context import ContextError, local_actor
from tests.conftest import IndexedFolders
from tests.test_api_support import PURPOSE, auth, make_users, probe_bytes, settings, write_photos

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
runner = CliRunner()


@pytest.fixture()
def indexed(tmp_path: Path, indexed_folders: IndexedFolders) -> tuple[Path, Path]:
    """(home, photos): the photos indexed with dlib in an SQLite catalog."""
    return indexed_folders.copy(tmp_path / "home", ("", "demo", True))


def open_engine(home: Path) -> FaceSearch:
    return FaceSearch(settings(home, f"sqlite:///{home / 'catalog.sqlite3'}"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_python_api_search_verify_and_vector_search_are_audited(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    portrait, crop = photos / "Eileen_Collins" / "portrait.jpg", photos / "Eileen_Collins" / "crop.png"
    with open_engine(home) as fs:
        result = fs.search(portrait, top_k=3)
        fs.verify(portrait, crop, purpose="verification", case_id="V-1")
        vectors = np.stack([f.embedding for f in fs.searching.service().analyse(crop)])
        found = fs.searching.service().search_vectors(vectors, top_k=2)
        missing = fs.search(photos / "missing.jpg")
        everything = fs.audit.records()
        with pytest.raises(ContextError):
            fs.search(portrait, purpose="curiosity")
        assert len(fs.audit.records()) == len(everything)  # refused before searching, nothing to record
    assert [r["action"] for r in everything] == ["ingest", "search", "case_open", "verify", "search_vectors", "search"]
    records = [r for r in everything if r["action"] not in ("ingest", "case_open")]
    search, verify, by_vector, failed = records
    assert search["actor"] == local_actor() and search["purpose"] == "unspecified" and search["case_id"] is None
    assert search["probe_sha256"] == sha256(portrait)
    returned = [[[c.face_id, c.similarity] for c in face.candidates] for face in result.faces]
    assert search["details"]["results"] == returned
    assert verify["purpose"] == "verification" and verify["case_id"] == "V-1"
    assert verify["probe_sha256"] == f"{sha256(portrait)},{sha256(crop)}"
    assert by_vector["details"]["results"] == [[[c.face_id, c.similarity] for c in row] for row in found]
    assert missing.error and failed["details"]["error"] == "unreadable" and failed["probe_sha256"] is None


def test_cli_search_and_verify_are_audited_with_purpose_and_case(
    indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, photos = indexed
    monkeypatch.setenv("FACESEARCH_IDENTITY", "desk-officer-7")
    portrait = photos / "Eileen_Collins" / "portrait.jpg"
    base = ["--home", str(home), "--pack", "dlib"]
    result = runner.invoke(cli_app, [*base, "search", str(portrait), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli_app, [*base, "search", str(portrait), "--json", "--purpose", "investigation", "--case", "INV-9"]
    )
    printed = json.loads(result.stdout.splitlines()[-1])
    result = runner.invoke(cli_app, [*base, "verify", str(portrait), str(photos / "Eileen_Collins" / "crop.png")])
    assert result.exit_code == 0
    refused = runner.invoke(cli_app, [*base, "search", str(portrait), "--purpose", "curiosity"])
    assert refused.exit_code == 2 and "not allowed" in refused.output
    with open_engine(home) as fs:
        records = [r for r in fs.audit.records() if r["action"] in ("search", "verify", "case_open")]
        cases = fs.cases.list(fs.operator)
    assert [r["action"] for r in records] == ["search", "case_open", "search", "verify"]
    records = [r for r in records if r["action"] != "case_open"]
    assert {r["actor"] for r in records} == {"desk-officer-7"}
    assert records[0]["purpose"] == "unspecified"
    assert (records[1]["purpose"], records[1]["case_id"]) == ("investigation", "INV-9")
    assert records[1]["details"]["results"] == [
        [[c["face_id"], c["similarity"]] for c in face["candidates"]] for face in printed["faces"]
    ]
    assert [c["case_id"] for c in cases] == ["INV-9"]


def test_api_search_is_audited_as_the_key_holder(indexed: tuple[Path, Path]) -> None:
    home, _ = indexed
    with open_engine(home) as fs:
        keys = make_users(fs)
    app = create_app(settings(home, f"sqlite:///{home / 'catalog.sqlite3'}"), schedule=False)
    with TestClient(app) as client:
        probe = probe_bytes()
        answer = client.post(
            "/v1/search",
            files={"image": ("p.png", probe, "image/png")},
            data=PURPOSE,
            headers=auth(keys["investigator"]),
        )
        assert answer.status_code == 200
        record = app.state.engine.audit.records(action="search")[-1]
    assert record["actor"] == "investigator" and record["probe_sha256"] == hashlib.sha256(probe).hexdigest()


def test_every_path_fails_closed_when_the_audit_cannot_be_written(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    portrait = photos / "Eileen_Collins" / "portrait.jpg"
    with open_engine(home) as fs:
        keys = make_users(fs)
        with fs.catalog.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_head"))
        with pytest.raises(AuditError):
            fs.search(portrait)
        with pytest.raises(AuditError):
            fs.verify(portrait, portrait)
        with pytest.raises(AuditError):
            fs.searching.service().search_vectors(np.ones((1, 128), dtype=np.float32) / np.sqrt(128))
    result = runner.invoke(cli_app, ["--home", str(home), "--pack", "dlib", "search", str(portrait), "--json"])
    assert result.exit_code != 0 and not result.stdout.strip()
    app = create_app(settings(home, f"sqlite:///{home / 'catalog.sqlite3'}"), schedule=False)
    with TestClient(app) as client:
        answer = client.post(
            "/v1/search",
            files={"image": ("p.png", probe_bytes(), "image/png")},
            data=PURPOSE,
            headers=auth(keys["investigator"]),
        )
    assert answer.status_code == 503 and answer.json()["code"] == "audit_unavailable"
    assert "candidates" not in answer.text


def test_every_cli_state_change_is_audited_and_a_refused_one_leaves_no_record(tmp_path: Path) -> None:
    """index, users, keys, grants, retention, purge, erase, forget, opt-out, reindex, doctor --repair, cases:
    each leaves its audit record (as the local identity), in the transaction that makes the change."""
    from datetime import timedelta

    from sqlalchemy import update

    from facesearch.catalog.schema import Image, utcnow

    photos = write_photos(tmp_path / "photos")
    home = tmp_path / "home"
    base = ["--home", str(home), "--pack", "dlib"]

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, [*base, *args], env={"FACESEARCH_IDENTITY": "operator-1"})
        assert result.exit_code == code, result.output
        return result.output

    def actions() -> list[str]:
        with open_engine(home) as fs:
            return [r["action"] for r in fs.audit.records(limit=1000)]

    steps = [
        (("index", str(photos), "--collection", "demo", "--subject-from-folder", "--workers", "1"), "ingest"),
        (("users", "add", "ann", "--role", "investigator"), "user_add"),
        (("users", "grant", "ann", "demo"), "user_grant"),
        (("users", "grant", "ann", "demo", "--remove"), "user_ungrant"),
        (("keys", "create", "ann"), "key_create"),
        (("retention", "set", "demo", "--days", "30"), "retention_set"),
        (("search", str(photos / "Eileen_Collins" / "crop.png"), "--case", "C-1"), "search"),
        (("cases", "member", "C-1", "ann"), "case_member_add"),
        (("cases", "close", "C-1"), "case_close"),
        (("reindex", "--factory", "Flat"), "reindex"),
        (("erase", "--face", "1"), "erase"),
        (("optout", "add", str(photos / "Eileen_Collins" / "portrait.jpg")), "optout_add"),
        (("optout", "remove", "1"), "optout_remove"),
    ]
    for args, action in steps:
        before = actions()
        cli(*args)
        added = actions()[len(before) :]
        assert action in added, (args, added)
    key_id = cli("users", "list", "--json").split('"key_id": "')[1].split('"')[0]
    cli("keys", "revoke", key_id)
    cli("users", "revoke", "ann")
    # A purge with something past its retention, and a repair of a damaged index.
    with open_engine(home) as fs, fs.catalog.session() as session, session.begin():
        session.execute(update(Image).values(created_at=utcnow() - timedelta(days=31)))
    cli("purge")
    cli("index", str(photos), "--collection", "again", "--workers", "1")
    for path in (home / "index").glob("*.faiss"):
        path.unlink()
    cli("doctor", "--check-only")
    checked = actions()
    cli("doctor", "--repair")
    repaired = actions()[len(checked) :]
    assert "index_repair" not in checked and repaired == ["index_repair"]
    every = actions()
    for action in ("key_revoke", "user_revoke", "purge", "case_open"):
        assert action in every, action
    with open_engine(home) as fs:
        assert {r["actor"] for r in fs.audit.records(limit=1000)} == {"operator-1"}
        assert fs.audit.verify().ok

    # Refused changes leave neither the change nor a record, and exit 1 (something could not be done).
    count = len(actions())
    cli("users", "add", "ann", "--role", "investigator", code=1)  # exists
    cli("users", "grant", "nobody", "demo", code=1)
    cli("retention", "set", "no-such-collection", "--days", "3", code=1)
    cli("erase", "--face", "999999", code=1)
    cli("cases", "close", "NO-SUCH", code=1)
    assert len(actions()) == count
