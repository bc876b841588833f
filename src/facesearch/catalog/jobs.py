"""The jobs store: the server's background jobs (ingests) and their progress."""

from __future__ import annotations

from collections.abc import Collection as Names
from typing import Any

from sqlalchemy import select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import JobRecord
from facesearch.catalog.schema import Job


def _job(row: Job) -> JobRecord:
    return JobRecord(
        row.id,
        row.kind,
        row.collection,
        row.status,
        row.files_total,
        row.files_done,
        row.faces,
        row.result,
        row.error,
        row.created_by,
        row.created_at,
        row.started_at,
        row.finished_at,
    )


class JobStore(Store):
    """Jobs."""

    def add(self, kind: str, collection: str | None, files_total: int, created_by: str) -> JobRecord:
        """A new queued job."""
        with self._sessions() as session, session.begin():
            row = Job(
                kind=kind,
                collection=collection,
                status="queued",
                files_total=files_total,
                files_done=0,
                faces=0,
                created_by=created_by,
            )
            session.add(row)
            session.flush()
            return _job(row)

    def update(self, job_id: int, **values: Any) -> None:
        """Change fields of a job (status, progress, result, error, times)."""
        with self._sessions() as session, session.begin():
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def interrupt_unfinished(self, message: str) -> None:
        """Mark every queued or running job interrupted (a server that stopped left them so)."""
        with self._sessions() as session, session.begin():
            session.execute(
                update(Job).where(Job.status.in_(["queued", "running"])).values(status="interrupted", error=message)
            )

    def job(self, job_id: int, tx: Transaction | None = None) -> JobRecord | None:
        """One job, or ``None``."""
        with self._reading(tx) as session:
            row = session.get(Job, job_id)
            return _job(row) if row is not None else None

    def jobs(self, *, collections: Names[str] | None = None, limit: int = 100) -> list[JobRecord]:
        """Jobs, newest first (of ``collections`` when given)."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if collections is not None:
            query = query.where(Job.collection.in_(sorted(collections)))
        with self._reading(None) as session:
            return [_job(row) for row in session.scalars(query)]
