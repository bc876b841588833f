"""Collections as users see and manage them: listing within one's grants, creation under a legal basis,
retention and quality policy; every change audited in its own transaction.

Creating a collection concerns every collection's users (it is a new place to put faces), so a user limited
to some collections may not do it; the check comes before anything is written, so a refused creation leaves
nothing behind.
"""

from __future__ import annotations

import builtins
from typing import Any

from facesearch.catalog.store import Catalog
from facesearch.errors import CollectionError
from facesearch.governance.access import Principal, require, require_collection, require_unlimited
from facesearch.governance.audit import AuditTrail


class Collections:
    """Collections of the catalog, seen and changed through a principal's grants."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.audit = audit

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        """The collections ``principal`` may see, with legal basis, retention, quality policy and counts."""
        require(principal, "collections.read")
        return [row for row in self.catalog.collections() if principal.may_see(row["name"])]

    def names(self, principal: Principal) -> builtins.list[str]:
        """The names of the collections ``principal`` may see, sorted (what a filter offers; no counts)."""
        require(principal, "collections.read")
        return [name for name in self.catalog.collection_names() if principal.may_see(name)]

    def status(self, principal: Principal) -> dict[str, Any]:
        """What the data folder holds: images, faces, skipped files (by reason), subjects, collections and
        packs; a user limited to some collections gets the figures of those only."""
        require(principal, "collections.read")
        stats = self.catalog.stats()
        report = {
            "images": stats["images"],
            "faces": stats["faces"],
            "skipped": stats["skipped"],
            "skipped_by_reason": stats["skipped_by_reason"],
            "subjects": stats["subjects"],
            "collections": [c["name"] for c in self.catalog.collections()],
            "packs": [{"pack": key, "faces": count} for key, count in stats["packs"].items()],
        }
        if principal.scope is not None:
            # A limited user's figures cover their collections only: others' names and sizes are not theirs.
            visible = [c for c in self.catalog.collections() if principal.may_see(c["name"])]
            report.update(
                images=sum(c["images"] for c in visible),
                faces=sum(c["faces"] for c in visible),
                skipped=sum(c["skipped"] for c in visible),
                skipped_by_reason={},
                subjects=self.catalog.subject_count(collections=[c["name"] for c in visible]),
                collections=[c["name"] for c in visible],
            )
        return report

    def skipped(self, principal: Principal, limit: int = 1000) -> builtins.list[dict[str, Any]]:
        """Files that could not be used, with the reason, newest first (an unlimited user's view: the list names
        paths of every collection)."""
        require(principal, "collections.manage")
        require_unlimited(principal, "the list of skipped files")
        return self.catalog.skipped_files(limit)

    def get(self, principal: Principal, name: str) -> dict[str, Any]:
        """One collection (404 when it does not exist or lies outside the principal's grants)."""
        require(principal, "collections.read")
        for row in self.list(principal):
            if row["name"] == name:
                return row
        require_collection(principal, name, exists=False)
        raise AssertionError("unreachable")

    def _visible_for_change(self, principal: Principal, name: str) -> None:
        require(principal, "collections.manage")
        require_collection(principal, name, exists=self.catalog.collection_id(name) is not None)

    def create(
        self,
        principal: Principal,
        name: str,
        *,
        legal_basis: str | None,
        description: str | None = None,
        source: str | None = None,
        retention_days: int | None = None,
        min_quality: float | None = None,
    ) -> dict[str, Any]:
        """Create a collection (an unlimited administrator only); refused if it exists."""
        require(principal, "collections.manage")
        require_unlimited(principal, "creating a collection")
        if retention_days is not None and retention_days < 1:
            raise CollectionError("retention is at least 1 day (or none)")
        with self.catalog.transaction() as tx:
            if self.catalog.collection_exists(name, tx):
                raise CollectionError(f"collection {name!r} already exists")
            self.catalog.create_collection(
                tx,
                name,
                description=description,
                legal_basis=legal_basis,
                source=source,
                retention_days=retention_days,
                min_quality=min_quality if min_quality else None,
            )
            details = {"collection": name, "retention_days": retention_days, "min_quality": min_quality}
            audit = self.audit.append_in(tx, actor=principal.actor, action="collection_create", details=details)
        self.audit.committed(*audit)
        return self.get(principal, name)

    def set_quality_policy(self, principal: Principal, name: str, min_quality: float | None) -> dict[str, Any]:
        """Faces below ``min_quality`` are not indexed by later ingests (``None`` or 0: every face is)."""
        self._visible_for_change(principal, name)
        value = min_quality if min_quality else None
        self._change(principal, name, "quality_policy_set", {"min_quality": value}, min_quality=value)
        return self.get(principal, name)

    def set_retention(self, principal: Principal, name: str, days: int | None) -> dict[str, Any]:
        """Keep the collection's images at most ``days`` days (``None``: until erased)."""
        require(principal, "retention")
        require_collection(principal, name, exists=self.catalog.collection_id(name) is not None)
        if days is not None and days < 1:
            raise CollectionError("retention is at least 1 day (or none)")
        self._change(principal, name, "retention_set", {"days": days}, retention_days=days)
        return self.get(principal, name)

    def _change(self, principal: Principal, name: str, action: str, details: dict[str, Any], **values: Any) -> None:
        with self.catalog.transaction() as tx:
            if not self.catalog.update_collection(tx, name, **values):
                require_collection(principal, name, exists=False)
            audit = self.audit.append_in(
                tx, actor=principal.actor, action=action, details={"collection": name, **details}
            )
        self.audit.committed(*audit)
