"""The server contract against a real ``facesearch serve`` process, with the CLI changing the data beside it.

Covers the "Interface relied on by scripts" of the server: /health without a key, users and keys from the
CLI, POST /v1/search answering the CLI's JSON, 422 without purpose or case, audit verify, and that what the
CLI changes while the server runs (erase, ingest, opt-out) is in force from the server's next request. Then
ingest (from the CLI and through the API) while clients search, and `facesearch doctor` finds nothing wrong.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.test_api_support import PURPOSE, astronaut, auth, catalog_url, run_cli, server, write_photos


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str, Path]]:
    """(home, catalog URL, photos): the photos indexed by the CLI, as a user would."""
    photos = write_photos(tmp_path / "photos")
    with catalog_url(request.param, tmp_path) as url:
        home = tmp_path / "home"
        run_cli(home, url, "index", str(photos), "--collection", "demo", "--subject-from-folder", "--workers", "1")
        yield home, url, photos


def new_key(home: Path, url: str, name: str, role: str) -> str:
    run_cli(home, url, "users", "add", name, "--role", role)
    output = run_cli(home, url, "keys", "create", name).stdout
    return output.strip().splitlines()[-1]  # the key alone on the last line


def search(base: str, key: str, probe: Path, **data: str) -> httpx.Response:
    with probe.open("rb") as handle:
        return httpx.post(
            f"{base}/v1/search",
            files={"image": (probe.name, handle.read(), "image/png")},
            data={**PURPOSE, **data},
            headers=auth(key),
            timeout=60,
        )


def test_server_contract_and_cross_process_freshness(deployment: tuple[Path, str, Path], tmp_path: Path) -> None:
    home, url, _photos = deployment
    probe = tmp_path / "probe.png"
    Image.fromarray(astronaut()[10:430, 50:470]).save(probe)
    key = new_key(home, url, "alice", "investigator")
    assert key.startswith("fsk_")
    cli_json = json.loads(run_cli(home, url, "search", str(probe), "--json").stdout.splitlines()[-1])
    with server(home, url) as base:
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.post(f"{base}/v1/search", data=PURPOSE).status_code == 401
        answer = search(base, key, probe)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["probe"] == "probe.png"
        assert {k: v for k, v in body.items() if k != "probe"} == {k: v for k, v in cli_json.items() if k != "probe"}
        for missing in ("purpose", "case_id"):
            data = {k: v for k, v in PURPOSE.items() if k != missing}
            with probe.open("rb") as handle:
                refused = httpx.post(
                    f"{base}/v1/search", files={"image": handle}, data=data, headers=auth(key), timeout=60
                )
            assert refused.status_code == 422 and refused.json()["code"] == "validation_error"
        erased = {c["face_id"] for f in body["faces"] for c in f["candidates"] if c["subject"] == "Eileen_Collins"}
        assert len(erased) == 3

        # Erased from the CLI while the server runs: never returned from its next request on.
        run_cli(home, url, "erase", "--subject", "Eileen_Collins")
        after = search(base, key, probe).json()
        assert not {c["face_id"] for f in after["faces"] for c in f["candidates"]} & erased

        # Indexed from the CLI while the server runs: found from its next request on.
        later = tmp_path / "later" / "Eileen_Collins"
        later.mkdir(parents=True)
        Image.fromarray(astronaut()[5:470, 30:480]).save(later / "new.jpg", quality=85)
        run_cli(home, url, "index", str(later.parent), "--collection", "later", "--subject-from-folder")
        found = search(base, key, probe).json()
        assert found["faces"][0]["candidates"][0]["collection"] == "later"

        # Opted out from the CLI while the server runs: hidden from its next request on.
        run_cli(home, url, "optout", "add", str(probe))
        hidden = search(base, key, probe).json()
        assert found["faces"][0]["candidates"][0]["subject"] == "Eileen_Collins"
        assert all(c["subject"] != "Eileen_Collins" for f in hidden["faces"] for c in f["candidates"])

    verified = run_cli(home, url, "audit", "verify", "--json")
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["records"] >= 9
    records = [
        json.loads(line) for line in run_cli(home, url, "audit", "list", "--action", "search").stdout.splitlines()
    ]
    assert {r["actor"] for r in records if r["purpose"] == "humanitarian"} == {"alice"}

    # Someone edits the database directly: verify fails and names the record.
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3"))
    engine.dispose()
    broken = run_cli(home, url, "audit", "verify", check=False)
    assert broken.returncode != 0 and "record 3" in broken.stdout


def test_a_truncated_audit_tail_stops_the_server_until_an_operator_reanchors(
    deployment: tuple[Path, str, Path], tmp_path: Path
) -> None:
    """The attack: someone with the database password deletes the newest audit records (the searches that
    would embarrass them) and rewinds the chain's head, so that later records chain on seamlessly. The
    server refuses to hand out results from then on (fail-closed), the auditor sees which records went,
    and the chain only moves on after the operator re-anchors it, on record."""
    from sqlalchemy import create_engine, text

    home, url, _photos = deployment
    probe = tmp_path / "probe.png"
    Image.fromarray(astronaut()[10:430, 50:470]).save(probe)
    key = new_key(home, url, "alice", "investigator")
    auditor = new_key(home, url, "ada", "auditor")
    with server(home, url) as base:
        for _ in range(3):
            assert search(base, key, probe).status_code == 200
        last = httpx.get(f"{base}/v1/audit/verify", headers=auth(auditor)).json()["records"]
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log WHERE seq > :keep"), {"keep": last - 2})
            kept = connection.execute(text("SELECT hash FROM audit_log WHERE seq = :keep"), {"keep": last - 2})
            connection.execute(
                text("UPDATE audit_head SET seq = :seq, hash = :hash"), {"seq": last - 2, "hash": kept.scalar_one()}
            )
        engine.dispose()
        refused = search(base, key, probe)
        assert refused.status_code == 503 and refused.json()["code"] == "audit_unavailable"
        report = httpx.get(f"{base}/v1/audit/verify", headers=auth(auditor))
        assert report.status_code == 200 and report.json()["ok"] is False
        assert report.json()["first_bad_seq"] == last - 1
        assert search(base, key, probe).status_code == 503  # and it stays refused, however often it is tried
        run_cli(home, url, "audit", "reanchor", "--yes")
        assert search(base, key, probe).status_code == 200
        records = httpx.get(f"{base}/v1/audit", headers=auth(auditor), params={"action": "audit_reanchored"}).json()
        assert records[0]["details"]["previous_checkpoint"]["seq"] == last


def variants(folder: Path, count: int) -> Path:
    """``count`` distinct real photos (crops and scales of the astronaut) in ``folder/Eileen_Collins``."""
    person = folder / "Eileen_Collins"
    person.mkdir(parents=True)
    rgb = astronaut()
    for i in range(count):
        crop = rgb[i % 7 * 4 : 440 + i % 5 * 10, i % 9 * 5 : 460 + i % 4 * 10]
        Image.fromarray(np.ascontiguousarray(crop)).resize((300 + i * 3, 300 + i * 3)).save(person / f"v{i}.jpg")
    return folder


def test_ingest_while_searching_leaves_catalog_and_index_consistent(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos")
    with catalog_url("sqlite", tmp_path) as url:
        home = tmp_path / "home"
        run_cli(home, url, "index", str(photos), "--collection", "demo", "--workers", "1")
        investigator = new_key(home, url, "ivan", "investigator")
        admin = new_key(home, url, "ada", "admin")
        probe = photos / "Eileen_Collins" / "crop.png"
        statuses: list[int] = []
        stop = threading.Event()
        with server(home, url) as base:

            def client() -> None:
                while not stop.is_set():
                    statuses.append(search(base, investigator, probe).status_code)

            clients = [threading.Thread(target=client) for _ in range(2)]
            for thread in clients:
                thread.start()
            try:
                # One ingest through the API (in the server's process) and one from the CLI (another process).
                httpx.post(
                    f"{base}/v1/collections",
                    json={"name": "api", "legal_basis": "test"},
                    headers=auth(admin),
                    timeout=60,
                ).raise_for_status()
                archive = io.BytesIO()
                with zipfile.ZipFile(archive, "w") as zf:
                    for path in sorted(variants(tmp_path / "zip", 12).rglob("*.jpg")):
                        zf.write(path, f"Eileen_Collins/{path.name}")
                job = httpx.post(
                    f"{base}/v1/collections/api/uploads",
                    files=[("files", ("batch.zip", archive.getvalue(), "application/zip"))],
                    headers=auth(admin),
                    timeout=60,
                ).json()
                run_cli(
                    home, url, "index", str(variants(tmp_path / "cli", 12)), "--collection", "cli", "--workers", "2"
                )
                for _ in range(600):
                    state = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=auth(admin), timeout=60).json()
                    if state["status"] != "queued" and state["status"] != "running":
                        break
                    stop.wait(0.2)
                assert state["status"] == "done", state
            finally:
                stop.set()
                for thread in clients:
                    thread.join()
            final = search(base, investigator, probe).json()
        assert statuses and set(statuses) == {200}
        assert {c["collection"] for c in final["faces"][0]["candidates"]} >= {"api", "cli"}
        doctor = json.loads(run_cli(home, url, "doctor", "--json").stdout)
        assert doctor["ok"] is True, doctor
        status = json.loads(run_cli(home, url, "status", "--json").stdout)
        assert status["images"] == 4 + 12 + 12
        assert json.loads(run_cli(home, url, "audit", "verify", "--json").stdout)["ok"] is True
