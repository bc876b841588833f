"""The accounts store: users, their collection grants and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import KeyRecord, UserRecord
from facesearch.catalog.schema import ApiKey, Collection, CollectionGrant, User


def _user(row: User) -> UserRecord:
    return UserRecord(row.id, row.name, row.role, bool(row.all_collections), row.created_at, row.disabled_at)


def _key(row: ApiKey) -> KeyRecord:
    return KeyRecord(row.key_id, row.user_id, row.secret_hash, row.created_at, row.revoked_at)


class AccountStore(Store):
    """Users, grants and keys."""

    def user(self, name: str, tx: Transaction | None = None) -> UserRecord | None:
        """The user called ``name``, or ``None``."""
        with self._reading(tx) as session:
            row = session.scalar(select(User).where(User.name == name))
            return _user(row) if row is not None else None

    def users(self) -> list[UserRecord]:
        """Every user, by name."""
        with self._reading(None) as session:
            return [_user(row) for row in session.scalars(select(User).order_by(User.name))]

    def grants(self, user_id: int, tx: Transaction | None = None) -> frozenset[str]:
        """The names of the collections granted to a user."""
        with self._reading(tx) as session:
            return frozenset(
                session.scalars(
                    select(Collection.name)
                    .join(CollectionGrant, CollectionGrant.collection_id == Collection.id)
                    .where(CollectionGrant.user_id == user_id)
                )
            )

    def collection_exists(self, name: str, tx: Transaction | None = None) -> bool:
        """True when a collection called ``name`` exists."""
        with self._reading(tx) as session:
            return session.scalar(select(Collection.id).where(Collection.name == name)) is not None

    def add_user(self, tx: Transaction, name: str, role: str, collections: list[str] | None) -> UserRecord:
        """A new user; ``collections`` (which must exist) limit what it sees, ``None`` gives it every one."""
        row = User(name=name, role=role, all_collections=collections is None)
        tx.add(row)
        tx.flush()
        for collection in sorted(set(collections or [])):
            self._grant(tx, row.id, collection)
        return _user(row)

    def _grant(self, tx: Transaction, user_id: int, collection: str) -> None:
        collection_id = tx.scalar(select(Collection.id).where(Collection.name == collection))
        if collection_id is None:
            raise LookupError(f"unknown collection {collection!r}")
        if tx.get(CollectionGrant, (user_id, collection_id)) is None:
            tx.add(CollectionGrant(user_id=user_id, collection_id=collection_id))

    def set_grant(self, tx: Transaction, user_id: int, collection: str, *, granted: bool) -> None:
        """Grant a collection to a user, or take it away; either way the user now sees only their grants."""
        tx.execute(update(User).where(User.id == user_id).values(all_collections=False))
        if granted:
            self._grant(tx, user_id, collection)
            return
        collection_id = tx.scalar(select(Collection.id).where(Collection.name == collection))
        if collection_id is None:
            raise LookupError(f"unknown collection {collection!r}")
        tx.execute(
            delete(CollectionGrant).where(
                CollectionGrant.user_id == user_id, CollectionGrant.collection_id == collection_id
            )
        )

    def disable_user(self, tx: Transaction, user_id: int, when: datetime) -> None:
        """Disable a user and revoke every key they hold (rows stay, for the audit log's sake)."""
        tx.execute(update(User).where(User.id == user_id, User.disabled_at.is_(None)).values(disabled_at=when))
        tx.execute(update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=when))

    def set_password(self, tx: Transaction, user_id: int, password_hash: str | None, when: datetime) -> None:
        """Store a user's password hash (``None`` removes the password)."""
        tx.execute(update(User).where(User.id == user_id).values(password_hash=password_hash, password_set_at=when))

    def password_hash(self, name: str, tx: Transaction | None = None) -> tuple[UserRecord, str | None] | None:
        """A user and their password hash (``None`` without a password), or ``None`` for an unknown name."""
        with self._reading(tx) as session:
            row = session.scalar(select(User).where(User.name == name))
            return (_user(row), row.password_hash) if row is not None else None

    def has_password(self, user_id: int, tx: Transaction | None = None) -> bool:
        """True when the user has a password."""
        with self._reading(tx) as session:
            return session.scalar(select(User.password_hash).where(User.id == user_id)) is not None

    def user_by_id(self, user_id: int, tx: Transaction | None = None) -> UserRecord | None:
        """The user with id ``user_id``, or ``None``."""
        with self._reading(tx) as session:
            row = session.get(User, user_id)
            return _user(row) if row is not None else None

    def keys_of(self, user_id: int, tx: Transaction | None = None) -> list[KeyRecord]:
        """A user's keys (revoked ones included)."""
        with self._reading(tx) as session:
            return [_key(row) for row in session.scalars(select(ApiKey).where(ApiKey.user_id == user_id))]

    def add_key(self, tx: Transaction, key_id: str, user_id: int, secret_hash: str) -> None:
        """Store a new key's hash."""
        tx.add(ApiKey(key_id=key_id, user_id=user_id, secret_hash=secret_hash))

    def key(self, key_id: str, tx: Transaction | None = None) -> tuple[KeyRecord, UserRecord] | None:
        """A key and its owner, or ``None``."""
        with self._reading(tx) as session:
            row = session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_id == key_id)
            ).one_or_none()
            return (_key(row[0]), _user(row[1])) if row is not None else None

    def revoke_key(self, tx: Transaction, key_id: str, when: datetime) -> None:
        """Revoke a key (a revoked key stays revoked at its first revocation time)."""
        tx.execute(update(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=when))
