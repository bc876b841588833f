"""Attacks on the audit trail: removals that later appends would hide, a rewritten history, forged exports.

Each attack edits the real catalog (SQLite file and PostgreSQL) or the real data folder the way someone
bypassing facesearch would, then checks that the trail refuses to go on or that `audit verify` names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from facesearch.catalog.schema import AuditHead, AuditRecord
from facesearch.catalog.store import Catalog
from facesearch.governance.anchor import AuditAnchor, read_public_key
from facesearch.governance.audit import AuditError, AuditTrail, record_hash
from facesearch.governance.witness import AuditWitness, read_witness


@pytest.fixture()
def catalog(catalog_url: str) -> Catalog:
    store = Catalog(catalog_url)
    yield store
    store.close()


def write(trail: AuditTrail, count: int) -> None:
    for i in range(count):
        trail.append(actor=f"user{i % 3}", action="search", details={"results": [[[i, 0.5]]]}, case_ref=f"C-{i}")


def cut_tail(catalog: Catalog, keep: int) -> None:
    """Delete every record after ``keep`` and rewind the head row to match: a truncation that hides itself."""
    with catalog.session() as session, session.begin():
        session.execute(delete(AuditRecord).where(AuditRecord.seq > keep))
        last = session.scalar(select(AuditRecord.hash).where(AuditRecord.seq == keep))
        session.execute(update(AuditHead).values(seq=keep, hash=last))


def test_a_truncated_tail_stops_every_later_append_and_stays_visible(catalog: Catalog, tmp_path: Path) -> None:
    trail = AuditTrail(catalog, AuditAnchor(tmp_path / "audit"))
    write(trail, 10)
    cut_tail(catalog, 6)
    # Normal use would append record 7 after record 6 and move the checkpoint past the gap: refused instead.
    for _ in range(3):
        with pytest.raises(AuditError, match="7 to 10 were removed"):
            trail.append(actor="investigator", action="search", details={})
    result = trail.verify()
    assert (result.ok, result.first_bad_seq) == (False, 7)
    assert trail.verify().records == 6  # nothing was appended after the cut


def test_an_edit_of_the_checkpointed_record_stops_appends(catalog: Catalog, tmp_path: Path) -> None:
    trail = AuditTrail(catalog, AuditAnchor(tmp_path / "audit"))
    write(trail, 4)
    with catalog.session() as session, session.begin():
        session.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(hash="f" * 64))
    with pytest.raises(AuditError, match="record 4 differs from the signed checkpoint"):
        trail.append(actor="x", action="search", details={})
    with catalog.session() as session, session.begin():
        session.execute(delete(AuditRecord).where(AuditRecord.seq == 4))
    with pytest.raises(AuditError, match="record 4, named by the signed checkpoint, was removed"):
        trail.append(actor="x", action="search", details={})


def test_a_lost_checkpoint_stops_appends_until_reanchored_and_the_gap_stays_recorded(
    catalog: Catalog, tmp_path: Path
) -> None:
    trail = AuditTrail(catalog, AuditAnchor(tmp_path / "audit"))
    write(trail, 5)
    cut_tail(catalog, 3)
    with pytest.raises(AuditError):
        trail.append(actor="x", action="search", details={})
    report = trail.reanchor(actor="local:operator")
    assert report["seq"] == 4 and report["previous_checkpoint"]["seq"] == 5
    write(trail, 2)
    assert trail.verify().ok and trail.verify().records == 6
    reanchored = trail.records(action="audit_reanchored")
    assert reanchored[0]["details"]["previous_checkpoint"]["seq"] == 5  # the loss of records 4-5 is on record

    trail.anchor.checkpoint_path.unlink()
    with pytest.raises(AuditError, match=r"checkpoint .* is missing"):
        trail.append(actor="x", action="search", details={})


def test_reanchoring_cannot_paper_over_a_broken_middle(catalog: Catalog, tmp_path: Path) -> None:
    trail = AuditTrail(catalog, AuditAnchor(tmp_path / "audit"))
    write(trail, 5)
    with catalog.session() as session, session.begin():
        session.execute(delete(AuditRecord).where(AuditRecord.seq == 2))
    with pytest.raises(AuditError, match="broken"):
        trail.reanchor(actor="local:operator")


def _rewrite_history_with_the_key(catalog: Catalog, trail: AuditTrail, keep: int) -> None:
    """What someone holding both the database and the data folder (with its key) can do: drop the records
    after ``keep``, forge new ones, re-seal them, move the head and re-sign the checkpoint."""
    with catalog.session() as session, session.begin():
        session.execute(delete(AuditRecord).where(AuditRecord.seq > keep))
        previous = session.scalar(select(AuditRecord.hash).where(AuditRecord.seq == keep))
        for seq in range(keep + 1, keep + 4):
            fields = (seq, "2026-01-01T00:00:00+00:00", "nobody", "search", None, None, None, "{}", previous)
            digest = record_hash(*fields)
            session.add(
                AuditRecord(
                    seq=seq,
                    at=fields[1],
                    actor="nobody",
                    action="search",
                    details="{}",
                    prev_hash=previous,
                    hash=digest,
                    seal=trail.anchor.seal(digest),
                )
            )
            previous = digest
        session.execute(update(AuditHead).values(seq=keep + 3, hash=previous))
    trail.anchor.advance(keep + 3, previous, force=True)


def test_a_witness_catches_a_history_rewritten_with_the_data_folders_key(catalog: Catalog, tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "audit")
    witness_file = tmp_path / "elsewhere" / "witness.log"
    witness_file.parent.mkdir()
    trail = AuditTrail(catalog, anchor, witness=AuditWitness(anchor, path=witness_file, interval_s=0))
    write(trail, 8)
    lines = witness_file.read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["seq"] == 8
    assert oct(witness_file.stat().st_mode & 0o777) == oct(0o600)

    _rewrite_history_with_the_key(catalog, trail, keep=5)
    assert trail.verify().ok  # the data folder alone can no longer tell
    checkpoints = read_witness(witness_file.read_text(), read_public_key(anchor.folder) or "")
    result = trail.verify(witness=checkpoints)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "witness" in (result.problem or "")

    # A witness line forged or signed by another key is itself reported.
    forged = json.loads(lines[0]) | {"hash": "0" * 64}
    with pytest.raises(ValueError, match="not signed"):
        read_witness(json.dumps(forged), read_public_key(anchor.folder) or "")


def test_the_witness_interval_and_a_failing_witness_command(catalog: Catalog, tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "audit")
    sink = tmp_path / "sink.log"
    witness = AuditWitness(anchor, command=f"cat >> {sink}", interval_s=3600)
    trail = AuditTrail(catalog, anchor, witness=witness)
    write(trail, 5)
    assert [json.loads(line)["seq"] for line in sink.read_text().splitlines()] == [1]  # then quiet for an hour
    trail.close()  # closing the data folder witnesses the newest record
    assert [json.loads(line)["seq"] for line in sink.read_text().splitlines()] == [1, 5]

    failing = AuditTrail(catalog, anchor, witness=AuditWitness(anchor, command="exit 3", interval_s=0))
    with pytest.raises(AuditError, match="exited 3"):
        failing.append(actor="x", action="search", details={})


# The command line ------------------------------------------------------------------------------------------------


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FACESEARCH_IDENTITY": "operator"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}): {result.stdout} {result.stderr}")
    return result


def test_verify_export_needs_a_key_it_trusts_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli(home, "users", "add", "ada", "--role", "admin")
    export = tmp_path / "audit.jsonl"
    cli(home, "audit", "export", "-o", str(export))
    public = tmp_path / "public.pem"
    public.write_text(cli(home, "audit", "public-key").stdout)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    unknown = cli(elsewhere / "no-home", "audit", "verify-export", str(export), check=False)
    assert unknown.returncode == 1 and "nothing says by whom" in unknown.stdout
    assert not (elsewhere / "no-home").exists() and list(elsewhere.iterdir()) == []

    trusted = cli(elsewhere / "no-home", "audit", "verify-export", str(export), "--public-key", str(public))
    assert trusted.returncode == 0 and "intact: 2 records" in trusted.stdout
    assert cli(home, "audit", "verify-export", str(export)).returncode == 0  # the data folder's own key

    other = tmp_path / "other-home"
    cli(other, "users", "add", "bob", "--role", "admin")
    wrong = cli(other, "audit", "verify-export", str(export), check=False)
    assert wrong.returncode == 1 and "another key" in wrong.stdout


def test_cli_verify_reads_the_configured_witness_and_reanchor_needs_yes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    witness = tmp_path / "witness.log"
    (home / "config.toml").write_text(f'audit_witness = "{witness}"\naudit_witness_interval_s = 0\n')
    cli(home, "users", "add", "ada", "--role", "admin")
    cli(home, "users", "add", "bob", "--role", "investigator")
    assert len(witness.read_text().splitlines()) >= 2
    report = json.loads(cli(home, "audit", "verify", "--json").stdout)
    assert report["ok"] and report["witness_checkpoints"] >= 2

    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        cut_tail(catalog, 1)
    finally:
        catalog.close()
    refused = cli(home, "users", "add", "eve", "--role", "admin", check=False)
    assert refused.returncode != 0 and "refusing to append" in refused.stdout + refused.stderr
    broken = cli(home, "audit", "verify", check=False)
    assert broken.returncode == 1 and "record 2 was removed" in broken.stdout
    assert cli(home, "audit", "reanchor", check=False).returncode == 2
    cli(home, "audit", "reanchor", "--yes")
    cli(home, "users", "add", "eve", "--role", "admin")
    # The data folder's own checkpoint is satisfied again, but the witness remembers record 2's hash.
    still = cli(home, "audit", "verify", check=False)
    assert still.returncode == 1 and "witness" in still.stdout
