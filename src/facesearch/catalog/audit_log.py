"""The audit log store: records in chain order and the one-row head whose lock serialises appends."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import AuditRow
from facesearch.catalog.schema import AuditHead, AuditRecord


def _row(record: AuditRecord) -> AuditRow:
    return AuditRow(
        record.seq,
        record.at,
        record.actor,
        record.action,
        record.purpose,
        record.case_ref,
        record.probe_sha256,
        record.details,
        record.prev_hash,
        record.hash,
        record.seal,
    )


class AuditStore(Store):
    """Audit records and the chain's head."""

    def take_head(self, tx: Transaction) -> tuple[int, str] | None:
        """Move the head's sequence number on by one and return ``(new seq, previous record's hash)``; ``None``
        when the head row is gone.

        The UPDATE comes first: it takes the head row's lock (the write lock on SQLite), so concurrent appends
        from any process queue here, and each reads the head the previous one left.
        """
        moved = tx.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return None
        seq, prev_hash = tx.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
        return int(seq), str(prev_hash)

    def append(self, tx: Transaction, row: AuditRow) -> None:
        """Insert a record and make it the head."""
        tx.add(
            AuditRecord(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                purpose=row.purpose,
                case_ref=row.case_ref,
                probe_sha256=row.probe_sha256,
                details=row.details,
                prev_hash=row.prev_hash,
                hash=row.hash,
                seal=row.seal,
            )
        )
        tx.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=row.hash))
        tx.flush()

    def hash_at(self, seq: int, tx: Transaction | None = None) -> str | None:
        """The stored hash of record ``seq``, or ``None`` when there is no such record."""
        with self._reading(tx) as session:
            value = session.scalar(select(AuditRecord.hash).where(AuditRecord.seq == seq))
            return str(value) if value is not None else None

    def head(self) -> tuple[int, str] | None:
        """The head row: ``(seq, hash)`` of the newest record, or ``None`` when the row is gone."""
        with self._reading(None) as session:
            row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
            return (int(row[0]), str(row[1])) if row is not None else None

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
    ) -> list[AuditRow]:
        """Records after ``after_seq`` (and before ``before_seq``) in chain order, or newest first; optionally
        of one action, case or actor, and at or after ``since`` / before ``until`` (ISO 8601 UTC text, which
        orders as the times do)."""
        query = select(AuditRecord).where(AuditRecord.seq > after_seq)
        if before_seq is not None:
            query = query.where(AuditRecord.seq < before_seq)
        if action is not None:
            query = query.where(AuditRecord.action == action)
        if case_ref is not None:
            query = query.where(AuditRecord.case_ref == case_ref)
        if actor is not None:
            query = query.where(AuditRecord.actor == actor)
        if since is not None:
            query = query.where(AuditRecord.at >= since)
        if until is not None:
            query = query.where(AuditRecord.at < until)
        order = AuditRecord.seq.desc() if newest_first else AuditRecord.seq
        with self._reading(None) as session:
            return [_row(record) for record in session.scalars(query.order_by(order).limit(limit))]

    def iterate(self, after_seq: int = 0, chunk: int = 5000) -> Iterator[AuditRow]:
        """Every record after ``after_seq`` in chain order, read ``chunk`` at a time."""
        last = after_seq
        while True:
            with self._reading(None) as session:
                rows = session.scalars(
                    select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(chunk)
                ).all()
                batch = [_row(record) for record in rows]
            if not batch:
                return
            yield from batch
            last = batch[-1].seq
