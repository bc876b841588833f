"""What every store of the catalog shares: the session factory and the transaction handle callers pass in.

A *transaction* is opened by a service (``with catalog.transaction() as tx``) and handed to the store methods
that must commit together, such as a change and its audit record. Store methods that only read take
``tx=None`` to read on their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

Transaction = Session
"""An open database transaction (opaque to callers outside the catalog: only stores use what is inside)."""


class Store:
    """A store of one aggregate (accounts, audit, cases, jobs...) over the catalog's session factory."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions

    @contextlib.contextmanager
    def _reading(self, tx: Transaction | None) -> Iterator[Session]:
        """The caller's transaction, or a short session of our own for a read."""
        if tx is not None:
            yield tx
            return
        with self._sessions() as session:
            yield session
