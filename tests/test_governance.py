"""Governance services on a real catalog (SQLite file and PostgreSQL): audit chain, accounts, cases, context."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update

from facesearch.catalog.schema import AuditHead, AuditRecord
from facesearch.catalog.store import Catalog
from facesearch.governance.access import AccessDenied, NotVisible, Principal
from facesearch.governance.accounts import AccountError, Accounts, Role
from facesearch.governance.anchor import AuditAnchor
from facesearch.governance.audit import AuditError, AuditTrail, record_hash, verify_export
from facesearch.governance.cases import CaseError, Cases
from facesearch.governance.context import ContextError, check_case, check_purpose


@pytest.fixture()
def catalog(catalog_url: str) -> Catalog:
    store = Catalog(catalog_url)
    yield store
    store.close()


@pytest.fixture()
def trail(catalog: Catalog, tmp_path: Path) -> AuditTrail:
    return AuditTrail(catalog, AuditAnchor(tmp_path / "audit"))


def write(trail: AuditTrail, count: int) -> list[int]:
    return [
        trail.append(
            actor=f"user{i % 3}",
            action="search",
            purpose="humanitarian",
            case_ref=f"C-{i}",
            probe_sha256=f"{i:064x}",
            details={"results": [[[i, 0.5 + i / 100]]], "top_k": 10},
        )
        for i in range(count)
    ]


def sql(catalog: Catalog, statement: str) -> None:
    """Edit the database directly, as someone bypassing facesearch would."""
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql(statement)


def test_audit_chain_appends_in_order_and_verifies(trail: AuditTrail) -> None:
    assert trail.verify().ok and trail.verify().records == 0
    assert write(trail, 5) == [1, 2, 3, 4, 5]
    result = trail.verify()
    assert (result.ok, result.records, result.first_bad_seq) == (True, 5, None)
    records = trail.records()
    assert records[0]["prev_hash"] == "0" * 64
    assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert records[2]["details"] == {"results": [[[2, 0.52]]], "top_k": 10}
    assert records[2]["case_id"] == "C-2" and records[2]["probe_sha256"] == f"{2:064x}"
    assert trail.anchor.read_checkpoint() is not None and trail.anchor.read_checkpoint().seq == 5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE audit_log SET actor = 'someone else' WHERE seq = 3", 3),
        ('UPDATE audit_log SET details = \'{"results":[],"top_k":10}\' WHERE seq = 2', 2),
        ("DELETE FROM audit_log WHERE seq = 4", 4),
        ("DELETE FROM audit_log WHERE seq = 6", 6),  # the last record
        ("DELETE FROM audit_log", 1),  # every record
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 5", 5),  # moved to the end: reordered
    ],
)
def test_audit_verify_names_the_first_record_changed_removed_or_reordered(
    trail: AuditTrail, catalog: Catalog, tamper: str, first_bad: int
) -> None:
    write(trail, 6)
    sql(catalog, tamper)
    result = trail.verify()
    assert not result.ok
    assert result.first_bad_seq == first_bad, result.problem
    assert str(first_bad) in (result.problem or "")


def test_audit_verify_catches_a_recomputed_chain_and_a_hidden_deletion(trail: AuditTrail, catalog: Catalog) -> None:
    """An editor who recomputes every hash after an edit, and one who also rewinds the head row, are caught."""
    write(trail, 5)
    with catalog.session() as session, session.begin():
        rows = session.query(AuditRecord).order_by(AuditRecord.seq).all()
        rows[1].actor = "rewritten"
        previous = rows[0].hash
        for row in rows[1:]:
            row.prev_hash = previous
            row.hash = record_hash(
                row.seq,
                row.at,
                row.actor,
                row.action,
                row.purpose,
                row.case_ref,
                row.probe_sha256,
                row.details,
                row.prev_hash,
            )
            previous = row.hash
        session.execute(update(AuditHead).values(hash=previous))
    result = trail.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)  # the seal, keyed outside the database, breaks

    with catalog.session() as session, session.begin():
        session.execute(delete(AuditRecord))
        session.execute(update(AuditHead).values(seq=0, hash="0" * 64))
    assert trail.verify().first_bad_seq == 1  # the signed checkpoint still says 5 records


def test_audit_checkpoint_file_removed_or_forged_is_reported(trail: AuditTrail) -> None:
    write(trail, 2)
    trail.anchor.checkpoint_path.write_text('{"seq": 1, "hash": "00", "signature": "AAAA"}')
    assert not trail.verify().ok and "signature" in (trail.verify().problem or "")
    trail.anchor.checkpoint_path.unlink()
    assert not trail.verify().ok and "missing" in (trail.verify().problem or "")


def test_audit_appends_from_many_threads_form_one_chain(trail: AuditTrail) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                trail.append(actor=f"t{n}", action="search", details={"i": i})
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = trail.verify()
    assert (result.ok, result.records) == (True, 40)


def test_audit_fails_closed_when_its_head_is_gone(trail: AuditTrail, catalog: Catalog) -> None:
    sql(catalog, "DELETE FROM audit_head")
    with pytest.raises(AuditError, match="head row"):
        trail.append(actor="a", action="search", details={})


def test_signed_export_verifies_and_detects_edits(trail: AuditTrail) -> None:
    write(trail, 4)
    buffer = io.StringIO()
    assert trail.export(buffer, actor="auditor") == 5  # the export records itself first
    lines = buffer.getvalue().splitlines()
    public = trail.anchor.public_key_pem()
    assert verify_export(lines, public_key_pem=public).ok
    edited = [lines[0], lines[1].replace('"user1"', '"user9"'), *lines[2:]]
    assert not verify_export(edited).ok
    assert not verify_export(lines[:-1]).ok  # signature line cut off
    assert not verify_export([lines[0], *lines[2:]]).ok  # a record removed
    other = AuditAnchor(trail.anchor.folder.parent / "other").public_key_pem()
    assert not verify_export(lines, public_key_pem=other).ok


def test_accounts_keys_are_hashed_revocable_and_role_bound(catalog: Catalog, trail: AuditTrail) -> None:
    accounts = Accounts(catalog, trail)
    operator = Principal.operator_as("local:test")
    accounts.add_user(operator, "ann", "investigator")
    key_id, key = accounts.create_key(operator, "ann")
    assert key.startswith(f"fsk_{key_id}_")
    with catalog.engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_hash FROM api_keys")).scalar_one()
    assert key not in stored and stored.startswith("$argon2id$")
    principal = accounts.authenticate(key)
    assert principal is not None and principal.role is Role.INVESTIGATOR and principal.key_id == key_id
    assert principal.can("search") and not principal.can("audit") and not principal.can("accounts")
    assert accounts.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert accounts.authenticate("not a key") is None
    accounts.revoke_key(principal, key_id)  # a key's owner may revoke it
    assert accounts.authenticate(key) is None
    _, second = accounts.create_key(operator, "ann")
    accounts.revoke_user(operator, "ann")
    assert accounts.authenticate(second) is None
    with pytest.raises(AccountError, match="revoked"):
        accounts.create_key(operator, "ann")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user(operator, "bob", "superuser")
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_user(operator, "ann", "auditor")
    actions = [r["action"] for r in trail.records()]
    assert actions == ["user_add", "key_create", "key_revoke", "key_create", "user_revoke"]  # refusals leave none


def test_collection_grants_limit_what_a_user_sees(catalog: Catalog, trail: AuditTrail) -> None:
    accounts = Accounts(catalog, trail)
    operator = Principal.operator_as("local:test")
    catalog.ensure_collection("a")
    catalog.ensure_collection("b")
    accounts.add_user(operator, "limited", "reviewer", collections=["a"])
    _, key = accounts.create_key(operator, "limited")
    principal = accounts.authenticate(key)
    assert principal is not None and principal.may_see("a") and not principal.may_see("b")
    accounts.grant(operator, "limited", "b")
    assert accounts.user(operator, "limited")["collections"] == ["a", "b"]
    accounts.ungrant(operator, "limited", "a")
    principal = accounts.authenticate(key)
    assert principal is not None and not principal.may_see("a") and principal.may_see("b")


def test_cases_open_on_first_search_belong_to_their_owner_and_refuse_when_closed(
    catalog: Catalog, trail: AuditTrail
) -> None:
    accounts = Accounts(catalog, trail)
    operator = Principal.operator_as("local:test")
    people = {}
    for name in ("ann", "bob", "rita"):
        accounts.add_user(operator, name, "reviewer" if name == "rita" else "investigator")
        people[name] = accounts.authenticate(accounts.create_key(operator, name)[1])
    ann, bob, rita = people["ann"], people["bob"], people["rita"]
    assert ann is not None and bob is not None and rita is not None
    cases = Cases(catalog, trail)
    assert cases.open_for_search(ann, "2024-017")["opened_by"] == "ann"
    with pytest.raises(AccessDenied):
        cases.open_for_search(bob, "2024-017")  # someone else's case
    with pytest.raises(NotVisible):
        cases.get(bob, "2024-017")
    assert cases.list(bob) == []
    cases.add_member(ann, "2024-017", "bob")
    assert cases.open_for_search(bob, "2024-017")["opened_by"] == "ann"  # a member may search under it
    with pytest.raises(AccessDenied):
        cases.close(bob, "2024-017")  # but only the owner (or an administrator) closes it
    cases.close(ann, "2024-017")
    with pytest.raises(CaseError, match="closed"):
        cases.open_for_search(ann, "2024-017")
    with pytest.raises(CaseError, match="already exists"):
        cases.create(ann, "2024-017")
    assert [c["case_id"] for c in cases.list(ann)] == ["2024-017"]
    assert [c["case_id"] for c in cases.list(bob)] == ["2024-017"]
    assert cases.list(rita) == []
    with pytest.raises(NotVisible):
        cases.decide(rita, "2024-017", 1, "match")  # not assigned
    actions = [r["action"] for r in trail.records() if r["case_id"] == "2024-017"]
    assert actions == ["case_open", "case_member_add", "case_close"]


def test_purpose_and_case_rules() -> None:
    allowed = ("humanitarian", "investigation", "verification")
    assert check_purpose("humanitarian", allowed, required=True) == "humanitarian"
    assert check_purpose(None, allowed, required=False) == "unspecified"
    with pytest.raises(ContextError, match="required"):
        check_purpose(None, allowed, required=True)
    with pytest.raises(ContextError, match="not allowed"):
        check_purpose("curiosity", allowed, required=True)
    assert check_case(" C-1 ", required=True) == "C-1"
    with pytest.raises(ContextError):
        check_case("../etc", required=True)
    with pytest.raises(ContextError):
        check_case("", required=True)
