"""Who may do what: roles, their permissions, collection grants, and the errors a refusal raises.

Every service method that reads or changes something takes the :class:`Principal` acting and checks it
here, so a rule holds whichever interface (API, CLI, web, Python) made the call. Three ideas carry it:

- a *role* gives permissions (:data:`PERMISSIONS`); the command line's local operator (who holds the data
  folder, and so could do anything to it anyway) acts as :meth:`Principal.operator` with every permission;
- a *scope*: a user is either unlimited or limited to granted collections, and a limited user stays inside
  them on every route: what lies outside is answered as absent (:class:`NotVisible`, a 404), and changes
  that would reach outside (a broader user, a global action) are refused (:class:`AccessDenied`, a 403)
  before anything is written;
- actions that concern everyone (opt-outs, creating collections, auditor accounts) need an unlimited user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from facesearch.errors import AccessDenied, NotVisible


class Role(StrEnum):
    """What a user may do (see :data:`PERMISSIONS`)."""

    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


PERMISSIONS: dict[Role, frozenset[str]] = {
    # Accounts, collections and what is in them (ingest, subjects, erasure, opt-out, retention), case members.
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
            "cases.manage",
            "clusters",
        }
    ),
    # Search, verify and their own cases.
    Role.INVESTIGATOR: frozenset(
        {"search", "verify", "cases", "cases.read", "collections.read", "subjects.read", "faces.read"}
    ),
    # Decisions on the candidates of the cases they were assigned; they read those candidates' faces only.
    Role.REVIEWER: frozenset({"decide", "cases.read", "collections.read", "faces.read"}),
    # The audit log, and nothing else.
    Role.AUDITOR: frozenset({"audit"}),
}

GLOBAL_ROLES = frozenset({Role.AUDITOR})
"""Roles whose work is not bounded by collections: only an unlimited user may create or manage them."""


@dataclass(frozen=True)
class Principal:
    """Who acts: a user with one role and a scope of collections (or the command line's local operator)."""

    user_id: int | None
    name: str
    role: Role
    key_id: str | None
    all_collections: bool
    collections: frozenset[str] = field(default_factory=frozenset)
    operator: bool = False

    @classmethod
    def operator_as(cls, actor: str) -> Principal:
        """The local operator (the CLI, a notebook): whoever holds the data folder, recorded as ``actor``."""
        return cls(user_id=None, name=actor, role=Role.ADMIN, key_id=None, all_collections=True, operator=True)

    @property
    def actor(self) -> str:
        """How the principal is named in the audit log."""
        return self.name

    @property
    def scope(self) -> frozenset[str] | None:
        """The collections the principal may see (``None``: every one)."""
        return None if self.all_collections else self.collections

    @property
    def unlimited(self) -> bool:
        """True when the principal sees every collection."""
        return self.all_collections

    def can(self, permission: str) -> bool:
        """True when the principal's role includes ``permission`` (the operator has every permission)."""
        return self.operator or permission in PERMISSIONS[self.role]

    def may_see(self, collection: str) -> bool:
        """True when the principal may see the faces of ``collection``."""
        return self.all_collections or collection in self.collections

    def covers(self, collections: Iterable[str]) -> bool:
        """True when every one of ``collections`` lies inside the principal's scope."""
        return self.all_collections or set(collections) <= self.collections

    def visible(self, collections: Iterable[str]) -> list[str]:
        """The ones of ``collections`` the principal may see, sorted."""
        return sorted(c for c in collections if self.may_see(c))


def require(principal: Principal, permission: str) -> None:
    """Raise :class:`AccessDenied` unless the principal's role includes ``permission``."""
    if not principal.can(permission):
        raise AccessDenied(f"the {principal.role.value} role may not do this ({permission})")


def require_unlimited(principal: Principal, what: str) -> None:
    """Raise :class:`AccessDenied` for a principal limited to some collections: ``what`` concerns them all."""
    if not principal.unlimited:
        raise AccessDenied(f"{what} concerns every collection: a user limited to some collections may not do it")


def require_collection(principal: Principal, collection: str, exists: bool) -> None:
    """Raise :class:`NotVisible` for a collection that does not exist or lies outside the principal's scope."""
    if not exists or not principal.may_see(collection):
        raise NotVisible(f"unknown collection {collection!r}", code="unknown_collection")
