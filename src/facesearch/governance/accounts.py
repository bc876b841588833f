"""Accounts: users with one role each, their API keys (stored as argon2 hashes, revocable) and collection grants.

A key reads ``fsk_<key id>_<secret>``. The key id is public (it names the key in listings and the audit log);
only the argon2 hash of the whole key is stored, so a copy of the database gives no usable key. Verifying an
argon2 hash is deliberately slow, so a verified key is remembered in memory by its sha256; revocation still
takes effect on the next request, because the key's and the user's rows are read on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select

from facesearch.catalog.schema import ApiKey, Collection, CollectionGrant, User, iso_utc, utcnow
from facesearch.catalog.store import Catalog

KEY_PREFIX = "fsk"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_KEY_PATTERN = re.compile(r"^fsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# OWASP's minimum for argon2id: about 20 ms here, a few for an attacker's GPU per guess of a 256-bit secret.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class Role(StrEnum):
    """What a user may do (see :data:`PERMISSIONS`)."""

    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


PERMISSIONS: dict[Role, frozenset[str]] = {
    # Accounts, collections and what is in them (ingest, subjects, erasure, opt-out, retention).
    Role.ADMIN: frozenset(
        {
            "accounts",
            "collections.read",
            "collections.manage",
            "jobs",
            "subjects.read",
            "subjects.manage",
            "faces.read",
            "erase",
            "optout",
            "retention",
        }
    ),
    # Search, verify and cases.
    Role.INVESTIGATOR: frozenset(
        {"search", "verify", "cases", "cases.read", "collections.read", "subjects.read", "faces.read"}
    ),
    # Decisions on the candidates of cases.
    Role.REVIEWER: frozenset({"decide", "cases.read", "collections.read", "subjects.read", "faces.read"}),
    # The audit log, and nothing else.
    Role.AUDITOR: frozenset({"audit"}),
}


class AccountError(ValueError):
    """An account operation cannot be done (unknown user, bad name, duplicate...)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated user: who, which role, which key, and which collections they may see."""

    user_id: int
    name: str
    role: Role
    key_id: str | None
    all_collections: bool
    collections: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        """True when the user's role includes ``permission``."""
        return permission in PERMISSIONS[self.role]

    def may_see(self, collection: str) -> bool:
        """True when the user may see the faces of ``collection``."""
        return self.all_collections or collection in self.collections

    @property
    def actor(self) -> str:
        """How the user is named in the audit log."""
        return self.name


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Accounts:
    """Users, keys and grants stored in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._verified: dict[str, str] = {}  # sha256(key) -> key id, for keys whose argon2 hash verified
        self._lock = threading.Lock()

    # Users ----------------------------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, *, collections: list[str] | None = None) -> dict[str, Any]:
        """Create a user with ``role``; with ``collections`` they see only those, otherwise every collection."""
        if not NAME_PATTERN.match(name):
            raise AccountError("a user name is 1-100 letters, digits or . _ @ - (starting with a letter or digit)")
        try:
            role_value = Role(role)
        except ValueError as error:
            raise AccountError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from error
        with self.catalog.session() as session, session.begin():
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                raise AccountError(f"user {name!r} already exists")
            user = User(name=name, role=role_value.value, all_collections=collections is None)
            session.add(user)
            session.flush()
            for collection in collections or []:
                session.add(CollectionGrant(user_id=user.id, collection_id=self._collection_id(session, collection)))
        return self.user(name)

    @staticmethod
    def _collection_id(session: Any, name: str) -> int:
        collection_id = session.scalar(select(Collection.id).where(Collection.name == name))
        if collection_id is None:
            raise AccountError(f"unknown collection {name!r}")
        return int(collection_id)

    def _user_row(self, session: Any, name: str) -> User:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise AccountError(f"unknown user {name!r}")
        return user

    def user(self, name: str) -> dict[str, Any]:
        """One user: name, role, status, collections and keys (ids only)."""
        with self.catalog.session() as session:
            user = self._user_row(session, name)
            return self._describe(session, user)

    def users(self) -> list[dict[str, Any]]:
        """Every user, by name."""
        with self.catalog.session() as session:
            return [self._describe(session, user) for user in session.scalars(select(User).order_by(User.name))]

    @staticmethod
    def _describe(session: Any, user: User) -> dict[str, Any]:
        granted = session.scalars(
            select(Collection.name)
            .join(CollectionGrant, CollectionGrant.collection_id == Collection.id)
            .where(CollectionGrant.user_id == user.id)
            .order_by(Collection.name)
        ).all()
        keys = session.execute(
            select(ApiKey.key_id, ApiKey.created_at, ApiKey.revoked_at).where(ApiKey.user_id == user.id)
        ).all()
        return {
            "name": user.name,
            "role": user.role,
            "active": user.disabled_at is None,
            "created_at": iso_utc(user.created_at),
            "collections": None if user.all_collections else list(granted),
            "keys": [
                {"key_id": key_id, "created_at": iso_utc(created), "active": revoked is None}
                for key_id, created, revoked in keys
            ],
        }

    def revoke_user(self, name: str) -> dict[str, Any]:
        """Disable a user and revoke every key they hold (rows stay, for the audit log's sake)."""
        now = utcnow()
        with self.catalog.session() as session, session.begin():
            user = self._user_row(session, name)
            user.disabled_at = user.disabled_at or now
            for key in session.scalars(select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))):
                key.revoked_at = now
        return self.user(name)

    def grant(self, name: str, collection: str) -> dict[str, Any]:
        """Let a user see ``collection``; a user who saw every collection now sees only the granted ones."""
        with self.catalog.session() as session, session.begin():
            user = self._user_row(session, name)
            collection_id = self._collection_id(session, collection)
            user.all_collections = False
            exists = session.get(CollectionGrant, (user.id, collection_id))
            if exists is None:
                session.add(CollectionGrant(user_id=user.id, collection_id=collection_id))
        return self.user(name)

    def ungrant(self, name: str, collection: str) -> dict[str, Any]:
        """Take ``collection`` away from a user limited to granted collections."""
        with self.catalog.session() as session, session.begin():
            user = self._user_row(session, name)
            collection_id = self._collection_id(session, collection)
            session.execute(
                delete(CollectionGrant).where(
                    CollectionGrant.user_id == user.id, CollectionGrant.collection_id == collection_id
                )
            )
            user.all_collections = False
        return self.user(name)

    # Keys -----------------------------------------------------------------------------------------------------

    def create_key(self, name: str) -> tuple[str, str]:
        """A new key for user ``name``: returns ``(key_id, key)``; the key is shown once and never stored."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.catalog.session() as session, session.begin():
            user = self._user_row(session, name)
            if user.disabled_at is not None:
                raise AccountError(f"user {name!r} is revoked")
            session.add(ApiKey(key_id=key_id, user_id=user.id, secret_hash=_HASHER.hash(key)))
        return key_id, key

    def revoke_key(self, key_id: str) -> None:
        """Revoke one key by its id (takes effect on the next request)."""
        with self.catalog.session() as session, session.begin():
            key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if key is None:
                raise AccountError(f"unknown key {key_id!r}")
            key.revoked_at = key.revoked_at or utcnow()
        with self._lock:
            self._verified = {digest: kid for digest, kid in self._verified.items() if kid != key_id}

    def key_owner(self, key_id: str) -> str | None:
        """The name of the user holding key ``key_id`` (``None`` if there is no such key)."""
        with self.catalog.session() as session:
            owner = session.scalar(
                select(User.name).join(ApiKey, ApiKey.user_id == User.id).where(ApiKey.key_id == key_id)
            )
            return str(owner) if owner is not None else None

    def authenticate(self, key: str) -> Principal | None:
        """The user holding ``key`` if it is valid, unrevoked and its user active; ``None`` otherwise."""
        match = _KEY_PATTERN.match(key)
        if match is None:
            return None
        key_id = match.group(1)
        digest = _key_digest(key)
        with self.catalog.session() as session:
            row = session.execute(
                select(ApiKey.secret_hash, ApiKey.revoked_at, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_id == key_id)
            ).one_or_none()
            if row is None:
                return None
            secret_hash, revoked_at, user = row
            if revoked_at is not None or user.disabled_at is not None:
                return None
            with self._lock:
                known = self._verified.get(digest) == key_id
            if not known:
                try:
                    _HASHER.verify(secret_hash, key)
                except (VerifyMismatchError, VerificationError, InvalidHashError):
                    return None
                with self._lock:
                    self._verified[digest] = key_id
            granted = frozenset(
                session.scalars(
                    select(Collection.name)
                    .join(CollectionGrant, CollectionGrant.collection_id == Collection.id)
                    .where(CollectionGrant.user_id == user.id)
                ).all()
            )
            return Principal(
                user_id=user.id,
                name=user.name,
                role=Role(user.role),
                key_id=key_id,
                all_collections=bool(user.all_collections),
                collections=granted,
            )
