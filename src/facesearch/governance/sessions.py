"""Signed-in workbench sessions: sign in with a name and password, act as that user until signing out, an idle
timeout or the session's end.

A session is a random token in an HttpOnly cookie; only its sha256 is stored, so a copy of the database
holds no usable session. Each session carries its own CSRF token, which every form of the workbench must
send back. Signing in always starts a new session (a token set before signing in is never promoted: no
session fixation); revoking a user, or setting their password, ends all of theirs. Signing in and out are
audited; a failed sign-in is not (the interface counts failures and slows them down).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from facesearch.catalog.records import SessionRecord
from facesearch.catalog.schema import utcnow
from facesearch.catalog.store import Catalog
from facesearch.governance.access import Principal
from facesearch.governance.accounts import Accounts
from facesearch.governance.audit import AuditTrail

TOUCH_EVERY = timedelta(seconds=60)
"""How stale a session's last-seen time may get before a request writes it again (fewer writes)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands times back without their zone: they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class SignedIn:
    """A session as its holder sees it: who acts, the cookie's token and the CSRF token of its forms."""

    principal: Principal
    token: str
    csrf: str
    expires_at: datetime


class Sessions:
    """Workbench sessions over the accounts of the data folder."""

    def __init__(
        self, catalog: Catalog, audit: AuditTrail, accounts: Accounts, *, idle_minutes: int, max_hours: int
    ) -> None:
        self.catalog = catalog
        self.store = catalog.sessions
        self.audit = audit
        self.accounts = accounts
        self.idle = timedelta(minutes=idle_minutes)
        self.lifetime = timedelta(hours=max_hours)

    def sign_in(self, name: str, password: str, *, before_hash: Callable[[str], None] | None = None) -> SignedIn | None:
        """A new session for ``name`` if ``password`` is theirs (audited as ``sign_in``), else ``None``."""
        principal = self.accounts.check_password(name, password, before_hash=before_hash)
        if principal is None or principal.user_id is None:
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + self.lifetime
        with self.catalog.transaction() as tx:
            self.store.add(tx, _digest(token), principal.user_id, csrf, now, expires)
            audit = self.audit.append_in(tx, actor=principal.actor, action="sign_in", details={})
        self.audit.committed(*audit)
        return SignedIn(principal, token, csrf, expires)

    def resolve(self, token: str) -> SignedIn | None:
        """The session of ``token`` if it is current (not past its end nor idle too long, its user active),
        else ``None``; using it restarts its idle time."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        record = self.store.get(digest)
        if record is None:
            return None
        now = utcnow()
        if not self._current(record, now):
            return None
        principal = self.accounts.principal_of(record.user_id)
        if principal is None:
            return None
        if now - _aware(record.last_seen_at) > TOUCH_EVERY:
            self.store.touch(digest, now)
        return SignedIn(principal, token, record.csrf, _aware(record.expires_at))

    def _current(self, record: SessionRecord, now: datetime) -> bool:
        return _aware(record.expires_at) > now and now - _aware(record.last_seen_at) <= self.idle

    def sign_out(self, signed_in: SignedIn) -> None:
        """End the session (audited as ``sign_out``)."""
        with self.catalog.transaction() as tx:
            if not self.store.remove(tx, _digest(signed_in.token)):
                return
            audit = self.audit.append_in(tx, actor=signed_in.principal.actor, action="sign_out", details={})
        self.audit.committed(*audit)

    def purge_expired(self) -> int:
        """Delete sessions past their end or idle too long (housekeeping; how many)."""
        now = utcnow()
        return self.store.remove_expired(now, now - self.idle)
