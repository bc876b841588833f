"""The sessions store: signed-in workbench sessions, by the sha256 of their cookie's token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import SessionRecord
from facesearch.catalog.schema import WebSession


def _session(row: WebSession) -> SessionRecord:
    return SessionRecord(row.id, row.user_id, row.csrf, row.created_at, row.last_seen_at, row.expires_at)


class SessionStore(Store):
    """Workbench sessions."""

    def add(self, tx: Transaction, digest: str, user_id: int, csrf: str, now: datetime, expires: datetime) -> None:
        """A new session."""
        tx.add(WebSession(id=digest, user_id=user_id, csrf=csrf, created_at=now, last_seen_at=now, expires_at=expires))

    def get(self, digest: str) -> SessionRecord | None:
        """The session of a token's digest, or ``None``."""
        with self._reading(None) as session:
            row = session.get(WebSession, digest)
            return _session(row) if row is not None else None

    def touch(self, digest: str, now: datetime) -> None:
        """Record that the session was used now (its idle time starts again)."""
        with self._sessions() as session, session.begin():
            session.execute(update(WebSession).where(WebSession.id == digest).values(last_seen_at=now))

    def remove(self, tx: Transaction, digest: str) -> bool:
        """End one session; True when it existed."""
        return bool(tx.execute(delete(WebSession).where(WebSession.id == digest)).rowcount)  # type: ignore[attr-defined]

    def remove_of_user(self, tx: Transaction, user_id: int) -> int:
        """End every session of a user; how many there were."""
        return int(tx.execute(delete(WebSession).where(WebSession.user_id == user_id)).rowcount)  # type: ignore[attr-defined]

    def remove_expired(self, now: datetime, idle_before: datetime) -> int:
        """Delete sessions past their end or idle since before ``idle_before``; how many."""
        with self._sessions() as session, session.begin():
            gone = session.execute(
                delete(WebSession).where((WebSession.expires_at < now) | (WebSession.last_seen_at < idle_before))
            )
            return int(gone.rowcount)  # type: ignore[attr-defined]
