"""Retention: each collection may keep its images for at most so many days; older ones are purged.

The age of an image is the time since it was indexed (what the data folder has held it for). A purge erases
the expired images through :class:`facesearch.governance.erasure.Erasure`, so it is audited like any other
erasure (action ``purge``). The server runs one at start and then every ``retention_interval_s`` seconds.
A collection's retention is set through :class:`facesearch.governance.collections.Collections`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from facesearch.catalog.schema import utcnow
from facesearch.catalog.store import Catalog
from facesearch.governance.access import Principal, require
from facesearch.governance.erasure import Erasure

log = logging.getLogger(__name__)


class Retention:
    """Per-collection maximum ages and the purge that enforces them."""

    def __init__(self, catalog: Catalog, erasure: Erasure) -> None:
        self.catalog = catalog
        self.erasure = erasure

    def policies(self) -> dict[str, int]:
        """Collection name -> maximum age in days, for the collections that have one."""
        return self.catalog.retention_policies()

    def expired(self, now: datetime | None = None, *, principal: Principal | None = None) -> dict[str, list[int]]:
        """Ids of the images past their collection's retention, by collection name (in the principal's scope)."""
        now = now or utcnow()
        cutoffs = {
            name: now - timedelta(days=days)
            for name, days in self.policies().items()
            if principal is None or principal.may_see(name)
        }
        return self.catalog.images_older_than(cutoffs)

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


SERVER_ACTOR = "facesearch-server"
"""How a server's own scheduled work (retention purges) is named in the audit log."""


class RetentionSchedule:
    """Runs the retention purge at start and then every ``interval_s`` seconds, in a daemon thread."""

    def __init__(self, retention: Retention, interval_s: float) -> None:
        self.retention = retention
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="facesearch-retention", daemon=True)
        self.last_report: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the schedule (the first purge runs at once)."""
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop after the current purge."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_report = self.retention.purge(Principal.operator_as(SERVER_ACTOR))
            except Exception:  # the schedule goes on; the next round tries again
                log.exception("scheduled retention purge failed")
            self._stop.wait(self.interval_s)
