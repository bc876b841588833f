"""The append-only, hash-chained audit log: who did what, when, for which purpose and case, with what result.

Each record holds who, when, the action, the purpose and case, the probe's sha256 (never the image), the
details (for a search: the face ids and scores returned) and the previous record's hash. Its own hash is the
sha256 of all of these, so changing, removing or reordering any record breaks the chain from there on; the
seal and the checkpoint of :mod:`facesearch.governance.anchor` catch what a hash chain alone cannot (a chain
recomputed after an edit, and records removed from its end).

Removing records from the end and then letting normal use append new ones would leave a chain that verifies
from end to end, once the checkpoint has moved past the gap. So every append first checks that the record the
checkpoint names is still there, unchanged, and not beyond the chain's head, and refuses (raises
:class:`AuditError`, so the action it was for does not happen) otherwise: a shortened chain stops the data
folder's use until an operator looks at it (``facesearch audit verify``) and, having understood what
happened, re-anchors it (``facesearch audit reanchor``), which is itself recorded.

Appends from several processes (a server and the CLI on one data folder) are serialised by the row lock of
the ``audit_head`` row, updated first in every append's transaction, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from facesearch.catalog.base import Transaction
from facesearch.catalog.records import AuditRow
from facesearch.catalog.store import Catalog
from facesearch.errors import AuditError
from facesearch.governance.anchor import AuditAnchor, Checkpoint, key_fingerprint, verify_signature
from facesearch.governance.witness import AuditWitness, WitnessCheckpoint, WitnessError

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""

ANCHOR_FOLDER = "audit"
_VERIFY_CHUNK = 5000


def canonical_json(value: Any) -> str:
    """One fixed JSON text for a value (sorted keys, no spaces), as hashed and stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(
    seq: int,
    at: str,
    actor: str,
    action: str,
    purpose: str | None,
    case_ref: str | None,
    probe_sha256: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """The sha256 of a record's fields and its predecessor's hash."""
    payload = canonical_json([seq, at, actor, action, purpose, case_ref, probe_sha256, details, prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _hash_of(record: AuditRow) -> str:
    return record_hash(
        record.seq,
        record.at,
        record.actor,
        record.action,
        record.purpose,
        record.case_ref,
        record.probe_sha256,
        record.details,
        record.prev_hash,
    )


@dataclass
class Verification:
    """The result of :meth:`AuditTrail.verify`: ``ok``, how many records were checked, and the first problem."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq, "problem": self.problem}


def _record_dict(record: AuditRow) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at,
        "actor": record.actor,
        "action": record.action,
        "purpose": record.purpose,
        "case_id": record.case_ref,
        "probe_sha256": record.probe_sha256,
        "details": json.loads(record.details),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


class AuditTrail:
    """The audit log of one catalog, anchored in one data folder."""

    def __init__(self, catalog: Catalog, anchor: AuditAnchor, *, witness: AuditWitness | None = None) -> None:
        self.catalog = catalog
        self.anchor = anchor
        self.witness = witness

    @classmethod
    def beside(cls, catalog: Catalog) -> AuditTrail:
        """The audit trail of an SQLite catalog, anchored in the folder that holds the catalog file.

        For code that builds a search service on a bare catalog (benchmarks, tests); engines pass their data
        folder explicitly.
        """
        if not catalog.url.startswith("sqlite:///") or catalog.url == "sqlite:///:memory:":
            raise AuditError("an audit trail needs a data folder for its signing key: pass one explicitly")
        folder = Path(catalog.url.removeprefix("sqlite:///")).parent / ANCHOR_FOLDER
        return cls(catalog, AuditAnchor(folder))

    # Writing --------------------------------------------------------------------------------------------------

    def append(
        self,
        *,
        actor: str,
        action: str,
        details: dict[str, Any],
        purpose: str | None = None,
        case_ref: str | None = None,
        probe_sha256: str | None = None,
        also: Callable[[Transaction, int], None] | None = None,
    ) -> int:
        """Write one record at the end of the chain and move the checkpoint; returns its sequence number.

        ``also(tx, seq)`` runs in the same transaction (what must be stored with the record, such as the
        candidates a search returned under a case). Raises :class:`AuditError` when it cannot be written:
        callers must then not hand out what it was for.
        """
        try:
            with self.catalog.transaction() as tx:
                seq, digest = self.append_in(
                    tx,
                    actor=actor,
                    action=action,
                    details=details,
                    purpose=purpose,
                    case_ref=case_ref,
                    probe_sha256=probe_sha256,
                )
                if also is not None:
                    also(tx, seq)
        except AuditError:
            raise
        except Exception as error:  # any storage failure: the caller must refuse, never go on unaudited
            raise AuditError(f"could not write the audit record: {error}") from error
        self.committed(seq, digest)
        return seq

    def append_in(
        self,
        tx: Transaction,
        *,
        actor: str,
        action: str,
        details: dict[str, Any],
        purpose: str | None = None,
        case_ref: str | None = None,
        probe_sha256: str | None = None,
        guard: bool = True,
    ) -> tuple[int, str]:
        """Add a record inside the caller's transaction (so that it commits with the change it records).

        Returns ``(seq, hash)``; after the commit, call :meth:`committed` with them to move the checkpoint.
        Raises :class:`AuditError` (and the caller's transaction must roll back) when the chain no longer holds
        the record its checkpoint names; ``guard=False`` is for :meth:`reanchor` only.
        """
        details_text = canonical_json(details)
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        # The UPDATE comes first: it takes the head row's lock (the write lock on SQLite), so concurrent
        # appends from any process queue here and each reads the head the previous one left.
        head = self.catalog.audit_log.take_head(tx)
        if head is None:
            raise AuditError("the audit chain's head row is missing: the catalog was tampered with")
        seq, prev_hash = head
        if guard:
            self._check_anchored(tx, seq - 1)
        digest = record_hash(seq, at, actor, action, purpose, case_ref, probe_sha256, details_text, prev_hash)
        seal = self.anchor.seal(digest)
        row = AuditRow(seq, at, actor, action, purpose, case_ref, probe_sha256, details_text, prev_hash, digest, seal)
        self.catalog.audit_log.append(tx, row)
        return int(seq), digest

    def _check_anchored(self, tx: Transaction, head_seq: int) -> None:
        """Refuse to extend a chain that lost the record its signed checkpoint names (see the module's doc)."""
        try:
            checkpoint = self.anchor.read_checkpoint()
        except ValueError as error:
            raise AuditError(f"refusing to append to the audit log: {error}") from error
        if checkpoint is None:
            if head_seq > 0:
                raise AuditError(
                    f"refusing to append to the audit log: its checkpoint {self.anchor.checkpoint_path} is missing "
                    f"while the chain holds {head_seq} records (run `facesearch audit verify`)"
                )
            # The first record: a checkpoint naming no record is written before it commits, so that from then on
            # a missing checkpoint always means one was removed (never one still being written).
            self.anchor.advance(0, GENESIS, force=True)
            return
        if checkpoint.seq == 0:
            return
        problem = self._checkpoint_problem(tx, checkpoint, head_seq)
        if problem is not None:
            raise AuditError(f"refusing to append to the audit log: {problem} (run `facesearch audit verify`)")

    def _checkpoint_problem(self, tx: Transaction, checkpoint: Checkpoint, head_seq: int) -> str | None:
        if checkpoint.seq > head_seq:
            return f"records {head_seq + 1} to {checkpoint.seq} were removed from the end of the chain"
        stored = self.catalog.audit_log.hash_at(checkpoint.seq, tx)
        if stored is None:
            return f"record {checkpoint.seq}, named by the signed checkpoint, was removed"
        if stored != checkpoint.hash:
            return f"record {checkpoint.seq} differs from the signed checkpoint"
        return None

    def committed(self, seq: int, digest: str) -> None:
        """Move the signed checkpoint to a committed record (and write it to the witness when one is due)."""
        try:
            self.anchor.advance(seq, digest)
        except Exception as error:
            raise AuditError(f"could not write the audit checkpoint: {error}") from error
        if self.witness is not None:
            try:
                self.witness.committed(seq, digest)
            except WitnessError as error:
                raise AuditError(str(error)) from error

    def head(self) -> tuple[int, str]:
        """The chain's head: the newest record's sequence number and hash (``(0, GENESIS)`` when empty)."""
        row = self.catalog.audit_log.head()
        if row is None:
            raise AuditError("the audit chain's head row is missing: the catalog was tampered with")
        return row

    def witness_now(self) -> str:
        """Write a checkpoint of the chain's head to the configured witness now; returns the line written."""
        if self.witness is None:
            raise AuditError("no audit witness is configured (audit_witness or audit_witness_command in config.toml)")
        seq, digest = self.head()
        if seq == 0:
            raise AuditError("the audit log is empty: nothing to witness yet")
        try:
            return self.witness.write(seq, digest)
        except WitnessError as error:
            raise AuditError(str(error)) from error

    def close(self) -> None:
        """Witness the newest committed record, if the witness has not seen it yet."""
        if self.witness is not None:
            try:
                self.witness.flush()
            except WitnessError as error:
                raise AuditError(str(error)) from error

    def reanchor(self, *, actor: str) -> dict[str, Any]:
        """Accept the chain as it stands after an operator checked it, and record that this was done.

        For a chain whose checkpoint no longer matches (records lost from its end, a checkpoint lost in a
        crash): every record must still be intact, sealed and in sequence; the checkpoint then moves to a new
        record, ``audit_reanchored``, which names the checkpoint it replaces. The gap stays visible in the chain
        (and in any witness), so this cannot hide a removal, only end the refusal to append.
        """
        result = self.verify(check_checkpoint=False)
        if not result.ok:
            raise AuditError(f"the chain itself is broken, re-anchoring would not help: {result.problem}")
        try:
            previous = self.anchor.read_checkpoint()
            previous_text: dict[str, Any] | str | None = (
                {"seq": previous.seq, "hash": previous.hash} if previous is not None else None
            )
        except ValueError as error:
            previous_text = f"unreadable: {error}"
        details = {"previous_checkpoint": previous_text, "records": result.records}
        with self.catalog.transaction() as tx:
            seq, digest = self.append_in(tx, actor=actor, action="audit_reanchored", details=details, guard=False)
        # The checkpoint may stand beyond the new record (records removed from the end): replace it outright.
        self.anchor.advance(seq, digest, force=True)
        if self.witness is not None:
            self.witness.write(seq, digest)
        return {"seq": seq, **details}

    # Reading --------------------------------------------------------------------------------------------------

    def records(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        action: str | None = None,
        case_ref: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        before_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Records after ``after_seq`` in chain order (or newest first, before ``before_seq``), optionally of one
        action, case or actor, and from ``since`` until ``until`` (ISO 8601 UTC)."""
        rows = self.catalog.audit_log.records(
            after_seq=after_seq,
            limit=limit,
            action=action,
            case_ref=case_ref,
            actor=actor,
            since=since,
            until=until,
            before_seq=before_seq,
            newest_first=newest_first,
        )
        return [_record_dict(row) for row in rows]

    def _iter_records(self, after_seq: int = 0) -> Iterator[AuditRow]:
        return self.catalog.audit_log.iterate(after_seq, _VERIFY_CHUNK)

    # Verifying ------------------------------------------------------------------------------------------------

    def verify(self, *, witness: list[WitnessCheckpoint] | None = None, check_checkpoint: bool = True) -> Verification:
        """Recompute the chain and compare it with its seals, head row and the signed checkpoint.

        Names the first record that was changed, removed or reordered, whoever did it and however (the API,
        or someone editing the database directly). ``witness`` adds checkpoints read from a witness
        (:func:`facesearch.governance.witness.read_witness`): each record they name must still hold the hash
        they name.
        """
        expected, previous, count = 1, GENESIS, 0
        checkpoint_error = None
        checkpoint = None
        if check_checkpoint:
            try:
                checkpoint = self.anchor.read_checkpoint()
            except ValueError as error:
                checkpoint_error = str(error)
        witnessed: dict[int, WitnessCheckpoint] = {}
        for entry in witness or []:
            witnessed.setdefault(entry.seq, entry)
            if witnessed[entry.seq].hash != entry.hash:
                problem = f"the witness names two hashes for record {entry.seq} (lines {witnessed[entry.seq].line}"
                return Verification(False, 0, entry.seq, f"{problem} and {entry.line}): history was rewritten")
        hash_at_checkpoint = None
        for record in self._iter_records():
            if record.seq != expected:
                if record.seq > expected:
                    return Verification(False, count, expected, f"record {expected} was removed")
                return Verification(False, count, record.seq, f"record {record.seq} is out of order")
            if _hash_of(record) != record.hash or not hmac.compare_digest(self.anchor.seal(record.hash), record.seal):
                return Verification(False, count, record.seq, f"record {record.seq} was altered (or reordered)")
            if record.prev_hash != previous:
                return Verification(
                    False, count, record.seq, f"record {record.seq} does not follow record {record.seq - 1}"
                )
            if checkpoint is not None and record.seq == checkpoint.seq:
                hash_at_checkpoint = record.hash
            seen = witnessed.get(record.seq)
            if seen is not None and seen.hash != record.hash:
                problem = f"record {record.seq} differs from the witness checkpoint of {seen.at} (line {seen.line})"
                return Verification(False, count, record.seq, problem)
            previous, expected, count = record.hash, expected + 1, count + 1
        last = expected - 1
        beyond = [entry for entry in witnessed.values() if entry.seq > last]
        if beyond:
            entry = max(beyond, key=lambda e: e.seq)
            removed = f"records {last + 1} to {entry.seq} were removed (the witness saw {entry.seq} on {entry.at})"
            return Verification(False, count, last + 1, f"record {last + 1} was removed ({removed})")
        if checkpoint_error is not None:
            return Verification(False, count, None, checkpoint_error)
        head = self.catalog.audit_log.head()
        if head is None:
            return Verification(False, count, None, "the audit chain's head row was removed")
        if check_checkpoint:
            failed = self._verify_checkpoint(checkpoint, count, last, hash_at_checkpoint)
            if failed is not None:
                return failed
        if head[0] > last:
            removed = f"record {last + 1} was removed (the chain's head says {head[0]})"
            return Verification(False, count, last + 1, removed)
        if head[0] < last or head[1] != previous:
            return Verification(False, count, None, "the audit chain's head row was altered")
        return Verification(True, count)

    def _verify_checkpoint(
        self, checkpoint: Checkpoint | None, count: int, last: int, hash_at_checkpoint: str | None
    ) -> Verification | None:
        if checkpoint is None:
            if count or self.anchor.has_key():
                missing = f"the audit checkpoint {self.anchor.checkpoint_path} is missing"
                return Verification(False, count, None, missing)
            return None
        if checkpoint.seq == 0:
            return None  # written before the first record: names none
        if checkpoint.seq > last:
            first = last + 1
            what = "every record was removed" if last == 0 else f"records {first} to {checkpoint.seq} were removed"
            return Verification(False, count, first, f"record {first} was removed ({what})")
        if hash_at_checkpoint != checkpoint.hash:
            return Verification(
                False, count, checkpoint.seq, f"record {checkpoint.seq} differs from the signed checkpoint"
            )
        return None

    # Export ---------------------------------------------------------------------------------------------------

    def export(self, out: IO[str], *, actor: str, after_seq: int = 0) -> int:
        """Write the records after ``after_seq`` as JSON lines, then one signature line; returns the count.

        The export is itself recorded first (action ``audit_export``, by ``actor``), so it is in the file.
        The signature line holds the Ed25519 signature (by the data folder's key) of the sha256 of every
        line before it, and the public key, so the file can be checked anywhere with :func:`verify_export`.
        """
        self.append(actor=actor, action="audit_export", details={"after_seq": after_seq})
        digest = hashlib.sha256()
        count, first, last_hash = 0, None, None
        for record in self._iter_records(after_seq):
            line = canonical_json({"type": "record", **_record_dict(record)}) + "\n"
            digest.update(line.encode("utf-8"))
            out.write(line)
            count += 1
            first = record.seq if first is None else first
            last_hash = record.hash
        summary = {
            "type": "signature",
            "algorithm": "ed25519",
            "records": count,
            "first_seq": first,
            "last_hash": last_hash,
            "sha256": digest.hexdigest(),
            "public_key": self.anchor.public_key_pem(),
        }
        summary["signature"] = self.anchor.sign(_signed_message(summary))
        out.write(canonical_json(summary) + "\n")
        return count


def _signed_message(summary: dict[str, Any]) -> bytes:
    fields = {key: summary[key] for key in ("records", "first_seq", "last_hash", "sha256")}
    return ("facesearch-audit-export:" + canonical_json(fields)).encode("utf-8")


def verify_export(lines: list[str], *, public_key_pem: str | None = None) -> Verification:
    """Check a signed export: the signature, every record's hash, and the chain between records.

    ``public_key_pem`` is the key the verifier trusts (the data folder's, or one its operator published).
    Without it, an export is never accepted: its own embedded key proves only that *someone* signed it, and
    whoever edited it could have re-signed it with a key of their own. The records are still checked, so the
    answer says whether the file is intact as well as that its signer is unknown.
    """
    if not lines:
        return Verification(False, 0, None, "the export is empty")
    try:
        summary = json.loads(lines[-1])
        records = [json.loads(line) for line in lines[:-1]]
    except json.JSONDecodeError as error:
        return Verification(False, 0, None, f"the export is not JSON lines: {error}")
    if summary.get("type") != "signature":
        return Verification(False, 0, None, "the export has no signature line (it was cut short)")
    digest = hashlib.sha256("".join(line if line.endswith("\n") else line + "\n" for line in lines[:-1]).encode())
    if digest.hexdigest() != summary.get("sha256") or summary.get("records") != len(records):
        return Verification(False, len(records), None, "the export's records do not match its signature line")
    embedded = str(summary.get("public_key", ""))
    if public_key_pem is not None and embedded.strip() != public_key_pem.strip():
        return Verification(False, len(records), None, "the export was signed by another key")
    if not verify_signature(public_key_pem or embedded, _signed_message(summary), str(summary.get("signature", ""))):
        return Verification(False, len(records), None, "the export's signature is invalid")
    previous = None
    for count, record in enumerate(records):
        details = canonical_json(record["details"])
        expected = record_hash(
            record["seq"],
            record["at"],
            record["actor"],
            record["action"],
            record["purpose"],
            record["case_id"],
            record["probe_sha256"],
            details,
            record["prev_hash"],
        )
        if expected != record["hash"]:
            return Verification(False, count, record["seq"], f"record {record['seq']} was altered")
        if previous is not None and (record["seq"] != previous["seq"] + 1 or record["prev_hash"] != previous["hash"]):
            return Verification(False, count, record["seq"], f"record {record['seq']} does not follow its predecessor")
        previous = record
    if public_key_pem is None:
        unknown = (
            "the records are intact and signed, but nothing says by whom: give the signer's public key "
            f"(its fingerprint in the file is {key_fingerprint(embedded)})"
        )
        return Verification(False, len(records), None, unknown)
    return Verification(True, len(records))
