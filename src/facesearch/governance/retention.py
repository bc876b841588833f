"""Retention: each collection may keep its images for at most so many days; older ones are purged.

The age of an image is the time since it was indexed (what the data folder has held it for). A purge erases
the expired images through :class:`facesearch.governance.erasure.Erasure`, so it is audited like any other
erasure (action ``purge``). The server runs one at start and then every ``retention_interval_s`` seconds.
A collection's retention is set through :class:`facesearch.governance.collections.Collections`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from facesearch.catalog.schema import Collection, Image, utcnow
from facesearch.catalog.store import Catalog
from facesearch.governance.access import Principal, require
from facesearch.governance.erasure import Erasure


class Retention:
    """Per-collection maximum ages and the purge that enforces them."""

    def __init__(self, catalog: Catalog, erasure: Erasure) -> None:
        self.catalog = catalog
        self.erasure = erasure

    def policies(self) -> dict[str, int]:
        """Collection name -> maximum age in days, for the collections that have one."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(Collection.name, Collection.retention_days).where(Collection.retention_days.is_not(None))
            ).all()
        return {name: int(days) for name, days in rows if days is not None}

    def expired(self, now: datetime | None = None, *, principal: Principal | None = None) -> dict[str, list[int]]:
        """Ids of the images past their collection's retention, by collection name (in the principal's scope)."""
        now = now or utcnow()
        found: dict[str, list[int]] = {}
        with self.catalog.session() as session:
            policies = session.execute(
                select(Collection.id, Collection.name, Collection.retention_days).where(
                    Collection.retention_days.is_not(None)
                )
            ).all()
            for collection_id, name, days in policies:
                if principal is not None and not principal.may_see(name):
                    continue
                cutoff = now - timedelta(days=int(days or 0))
                ids = session.scalars(
                    select(Image.id).where(Image.collection_id == collection_id, Image.created_at < cutoff)
                ).all()
                if ids:
                    found[name] = [int(i) for i in ids]
        return found

    def purge(self, principal: Principal, *, now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Erase every image past its collection's retention (of the principal's collections); how many each."""
        require(principal, "retention")
        expired = self.expired(now, principal=principal)
        report: dict[str, Any] = {"dry_run": dry_run, "collections": {}}
        for name, image_ids in sorted(expired.items()):
            if dry_run:
                report["collections"][name] = {"images": len(image_ids)}
                continue
            erased = self.erasure.erase_images(principal, image_ids, action="purge")
            report["collections"][name] = {"images": erased.images, "faces": erased.faces}
        return report
