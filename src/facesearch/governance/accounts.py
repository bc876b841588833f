"""Accounts: users with one role each, their API keys (stored as argon2 hashes, revocable) and collection grants.

A key reads ``fsk_<key id>_<secret>``. The key id is public (it names the key in listings and the audit log);
only the argon2 hash of the whole key is stored, so a copy of the database gives no usable key. Verifying an
argon2 hash is deliberately slow, so a verified key is remembered in memory by its sha256; revocation still
takes effect on the next request, because the key's and the user's rows are read on every request.

Who may change whom (:mod:`facesearch.governance.access`): an administrator limited to some collections
manages only users limited to a subset of them (never an auditor, whose work spans every collection), and
creates no user broader than itself. Nobody mints a key for someone else: a key is created by its owner (or
by the local operator, who prints it once on the server's machine), so every key acts as the person it names.
Every change is written to the audit log in the same transaction as the change itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from facesearch.catalog.base import Transaction
from facesearch.catalog.records import UserRecord
from facesearch.catalog.schema import iso_utc, utcnow
from facesearch.catalog.store import Catalog
from facesearch.errors import AccountError
from facesearch.governance.access import (
    GLOBAL_ROLES,
    PERMISSIONS,
    AccessDenied,
    NotVisible,
    Principal,
    Role,
    require,
)
from facesearch.governance.audit import AuditTrail

__all__ = ["PERMISSIONS", "AccountError", "Accounts", "Principal", "Role"]

KEY_PREFIX = "fsk"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_KEY_PATTERN = re.compile(r"^fsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# OWASP's minimum for argon2id: about 20 ms here, a few for an attacker's GPU per guess of a 256-bit secret.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


MIN_PASSWORD = 10
"""The shortest password accepted (NIST SP 800-63B asks at least 8; a long passphrase is better)."""
MAX_PASSWORD = 1024
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def password_problem(name: str, password: str) -> str | None:
    """Why ``password`` may not be ``name``'s password, or ``None`` when it may."""
    if len(password) < MIN_PASSWORD:
        return f"a password has at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if password.strip().casefold() == name.casefold():
        return "a password may not be the user's name"
    return None


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public key id of a well-formed key (``None`` for anything else); reads nothing, hashes nothing."""
    match = _KEY_PATTERN.match(key)
    return match.group(1) if match is not None else None


class Accounts:
    """Users, keys and grants; every change checked against the acting principal and audited in its own
    transaction."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.store = catalog.accounts
        self.audit = audit
        self._verified: dict[str, str] = {}  # sha256(key) -> key id, for keys whose argon2 hash verified
        self._lock = threading.Lock()

    def _audited(self, tx: Transaction, actor: Principal, action: str, details: dict[str, Any]) -> tuple[int, str]:
        return self.audit.append_in(tx, actor=actor.actor, action=action, details=details)

    # Scope ----------------------------------------------------------------------------------------------------

    def _manages(self, actor: Principal, user: UserRecord, tx: Transaction | None = None) -> bool:
        """True when ``actor`` may see and change ``user``: an unlimited administrator any user; a limited one
        only users limited to a subset of its own collections, and never an auditor."""
        if actor.operator or actor.unlimited or user.name == actor.name:
            return True
        if user.all_collections or Role(user.role) in GLOBAL_ROLES:
            return False
        return actor.covers(self.store.grants(user.id, tx))

    def _managed_user(self, actor: Principal, name: str, tx: Transaction | None = None) -> UserRecord:
        """The user ``name`` if ``actor`` may manage them; otherwise "unknown" (outside the scope, absent)."""
        require(actor, "accounts")
        user = self.store.user(name, tx)
        if user is None or not self._manages(actor, user, tx):
            raise NotVisible(f"unknown user {name!r}", code="unknown_user")
        return user

    def _check_not_broader(self, actor: Principal, role: Role, collections: list[str] | None) -> None:
        """Refuse a user that would see or do more than the limited administrator creating it."""
        if actor.operator or actor.unlimited:
            return
        if role in GLOBAL_ROLES:
            raise AccessDenied(f"a user limited to some collections may not create an {role.value}")
        if collections is None:
            raise AccessDenied("a user limited to some collections may only create users limited to them too")
        outside = sorted(set(collections) - actor.collections)
        if outside:
            raise AccessDenied(f"outside your collections: {', '.join(outside)}")

    # Users ----------------------------------------------------------------------------------------------------

    def add_user(
        self, actor: Principal, name: str, role: str, *, collections: list[str] | None = None
    ) -> dict[str, Any]:
        """Create a user with ``role``; with ``collections`` they see only those, otherwise every collection."""
        require(actor, "accounts")
        if not NAME_PATTERN.match(name):
            raise AccountError("a user name is 1-100 letters, digits or . _ @ - (starting with a letter or digit)")
        try:
            role_value = Role(role)
        except ValueError as error:
            raise AccountError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from error
        self._check_not_broader(actor, role_value, collections)
        with self.catalog.transaction() as tx:
            if self.store.user(name, tx) is not None:
                raise AccountError(f"user {name!r} already exists")
            try:
                user = self.store.add_user(tx, name, role_value.value, collections)
            except LookupError as error:
                raise AccountError(str(error).strip("'\"")) from error
            details = {"user": name, "role": role_value.value, "collections": sorted(set(collections or [])) or None}
            audit = self._audited(tx, actor, "user_add", details)
            described = self._describe(user, tx)
        self.audit.committed(*audit)
        return described

    def user(self, actor: Principal, name: str) -> dict[str, Any]:
        """One user: name, role, status, collections and keys (ids only)."""
        return self._describe(self._managed_user(actor, name))

    def users(self, actor: Principal) -> list[dict[str, Any]]:
        """Every user ``actor`` may manage, by name."""
        require(actor, "accounts")
        return [self._describe(user) for user in self.store.users() if self._manages(actor, user)]

    def _describe(self, user: UserRecord, tx: Transaction | None = None) -> dict[str, Any]:
        return {
            "name": user.name,
            "role": user.role,
            "active": user.disabled_at is None,
            "created_at": iso_utc(user.created_at),
            "collections": None if user.all_collections else sorted(self.store.grants(user.id, tx)),
            "password": self.store.has_password(user.id, tx),  # whether they can sign in to the workbench
            "keys": [
                {"key_id": key.key_id, "created_at": iso_utc(key.created_at), "active": key.revoked_at is None}
                for key in self.store.keys_of(user.id, tx)
            ],
        }

    def revoke_user(self, actor: Principal, name: str) -> dict[str, Any]:
        """Disable a user and revoke every key they hold (rows stay, for the audit log's sake)."""
        with self.catalog.transaction() as tx:
            user = self._managed_user(actor, name, tx)
            self.store.disable_user(tx, user.id, utcnow())
            self.catalog.sessions.remove_of_user(tx, user.id)  # signed-in workbench sessions end with the user
            audit = self._audited(tx, actor, "user_revoke", {"user": name})
            described = self._describe(self.store.user(name, tx) or user, tx)
        self.audit.committed(*audit)
        self._forget_verified_of(user.id)
        return described

    def grant(self, actor: Principal, name: str, collection: str) -> dict[str, Any]:
        """Let a user see ``collection``; a user who saw every collection now sees only the granted ones."""
        return self._change_grant(actor, name, collection, add=True)

    def ungrant(self, actor: Principal, name: str, collection: str) -> dict[str, Any]:
        """Take ``collection`` away from a user limited to granted collections."""
        return self._change_grant(actor, name, collection, add=False)

    def _change_grant(self, actor: Principal, name: str, collection: str, *, add: bool) -> dict[str, Any]:
        if not actor.may_see(collection):
            raise NotVisible(f"unknown collection {collection!r}", code="unknown_collection")
        with self.catalog.transaction() as tx:
            user = self._managed_user(actor, name, tx)
            if user.name == actor.name and not (actor.operator or actor.unlimited):
                raise AccessDenied("a user limited to some collections may not change their own grants")
            try:
                self.store.set_grant(tx, user.id, collection, granted=add)
            except LookupError as error:
                raise AccountError(str(error).strip("'\"")) from error
            action = "user_grant" if add else "user_ungrant"
            audit = self._audited(tx, actor, action, {"user": name, "collection": collection})
            described = self._describe(self.store.user(name, tx) or user, tx)
        self.audit.committed(*audit)
        return described

    # Passwords (the workbench) ------------------------------------------------------------------------------

    def set_password(self, actor: Principal, name: str, password: str) -> None:
        """Set user ``name``'s workbench password: by the user themself, an administrator who manages them, or
        the local operator. Stored as an argon2 hash; every session of the user ends (sign in again)."""
        problem = password_problem(name, password)
        if problem:
            raise AccountError(problem)
        with self.catalog.transaction() as tx:
            if actor.operator or actor.name == name:
                user = self.store.user(name, tx)
                if user is None:
                    raise AccountError(f"unknown user {name!r}")
            else:
                user = self._managed_user(actor, name, tx)
            if user.disabled_at is not None:
                raise AccountError(f"user {name!r} is revoked")
            self.store.set_password(tx, user.id, _HASHER.hash(password), utcnow())
            self.catalog.sessions.remove_of_user(tx, user.id)
            audit = self._audited(tx, actor, "password_set", {"user": name})
        self.audit.committed(*audit)

    def check_password(
        self, name: str, password: str, *, before_hash: Callable[[str], None] | None = None
    ) -> Principal | None:
        """The active user ``name`` if ``password`` is theirs, else ``None``. ``before_hash`` is called with the
        name before the slow hash (a caller counting failures may refuse first); an unknown name or a user
        without a password costs the same hash, so the answer's time does not tell which names exist."""
        if before_hash is not None:
            before_hash(name)
        found = self.store.password_hash(name) if NAME_PATTERN.match(name) else None
        stored = found[1] if found is not None else None
        try:
            _HASHER.verify(stored or _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if found is None or stored is None or found[0].disabled_at is not None:
            return None
        return self._principal(found[0])

    def principal_of(self, user_id: int) -> Principal | None:
        """The principal of an active user, by id (``None`` if unknown or revoked): what a session acts as."""
        user = self.store.user_by_id(user_id)
        if user is None or user.disabled_at is not None:
            return None
        return self._principal(user)

    def _principal(self, user: UserRecord, key_id: str | None = None) -> Principal:
        return Principal(
            user_id=user.id,
            name=user.name,
            role=Role(user.role),
            key_id=key_id,
            all_collections=user.all_collections,
            collections=self.store.grants(user.id),
        )

    # Keys -----------------------------------------------------------------------------------------------------

    def create_key(self, actor: Principal, name: str) -> tuple[str, str]:
        """A new key for user ``name``: returns ``(key_id, key)``; the key is shown once and never stored.

        Only the user themself (or the local operator, on the server's machine) may create it: a key made for
        someone else would let its maker act, and be recorded, as them.
        """
        if not actor.operator and actor.name != name:
            raise AccessDenied("a key is created by its owner: nobody may obtain a key that acts as someone else")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.catalog.transaction() as tx:
            user = self.store.user(name, tx)
            if user is None:
                raise AccountError(f"unknown user {name!r}")
            if user.disabled_at is not None:
                raise AccountError(f"user {name!r} is revoked")
            self.store.add_key(tx, key_id, user.id, _HASHER.hash(key))
            audit = self._audited(tx, actor, "key_create", {"user": name, "key_id": key_id})
        self.audit.committed(*audit)
        return key_id, key

    def revoke_key(self, actor: Principal, key_id: str) -> None:
        """Revoke one key by its id (takes effect on the next request): its owner's, or an administrator's
        act on a user they manage."""
        with self.catalog.transaction() as tx:
            found = self.store.key(key_id, tx)
            if found is None:
                raise NotVisible(f"unknown key {key_id!r}", code="unknown_key")
            _key, owner = found
            if not actor.operator and owner.name != actor.name:
                if not actor.can("accounts"):
                    raise AccessDenied("only the key's owner or an administrator may revoke it")
                if not self._manages(actor, owner, tx):
                    raise NotVisible(f"unknown key {key_id!r}", code="unknown_key")
            self.store.revoke_key(tx, key_id, utcnow())
            audit = self._audited(tx, actor, "key_revoke", {"key_id": key_id, "user": owner.name})
        self.audit.committed(*audit)
        with self._lock:
            self._verified = {digest: kid for digest, kid in self._verified.items() if kid != key_id}

    def _forget_verified_of(self, user_id: int) -> None:
        ids = {key.key_id for key in self.store.keys_of(user_id)}
        with self._lock:
            self._verified = {digest: kid for digest, kid in self._verified.items() if kid not in ids}

    def is_verified(self, key: str) -> bool:
        """True when ``key`` was verified before by this process (a cheap, in-memory check; revocation is still
        checked on every request by :meth:`authenticate`)."""
        key_id = key_id_of(key)
        if key_id is None:
            return False
        digest = _key_digest(key)
        with self._lock:
            return self._verified.get(digest) == key_id

    def key_owner(self, key_id: str) -> str | None:
        """The name of the user holding key ``key_id`` (``None`` if there is no such key)."""
        found = self.store.key(key_id)
        return found[1].name if found is not None else None

    def authenticate(self, key: str, *, before_hash: Callable[[str], None] | None = None) -> Principal | None:
        """The user holding ``key`` if it is valid, unrevoked and its user active; ``None`` otherwise.

        A key verified before is recognised by its sha256 without hashing again (and without asking
        ``before_hash``). For any other key, ``before_hash`` is called with its key id before the database is
        read and before the deliberately slow argon2 hash is computed, so that a caller counting failures can
        refuse (raise) first: a flood of wrong secrets then costs a dictionary lookup each, and a valid client's
        requests are not queued behind a thousand hashes.
        """
        key_id = key_id_of(key)
        if key_id is None:
            return None
        digest = _key_digest(key)
        with self._lock:
            known = self._verified.get(digest) == key_id
        if not known and before_hash is not None:
            before_hash(key_id)
        found = self.store.key(key_id)
        if found is None:
            return None
        record, user = found
        if record.revoked_at is not None or user.disabled_at is not None:
            return None
        if not known:
            try:
                _HASHER.verify(record.secret_hash, key)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return None
            with self._lock:
                self._verified[digest] = key_id
        return self._principal(user, key_id)
