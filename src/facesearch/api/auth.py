"""Authentication (``Authorization: Bearer KEY``), role checks, per-key rate limits and the failed-key limit."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from facesearch.api.errors import ApiError
from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from facesearch.governance.accounts import key_id_of

bearer = HTTPBearer(auto_error=False, description="An API key from `facesearch keys create NAME`.")

FAILED_AUTH_PER_MINUTE = 30
"""Bad keys a client address, and a key id, may be sent with per minute before they are refused unhashed."""


class RateLimiter:
    """Token buckets by name: ``per_minute`` requests a minute, with bursts of a tenth of that (at least 5)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = max(1, per_minute) / 60.0
        self.capacity = max(5.0, per_minute / 10.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, name: str, now: float) -> float:
        tokens, stamp = self._buckets.get(name, (self.capacity, now))
        return min(self.capacity, tokens + (now - stamp) * self.rate)

    def take(self, name: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(name, now)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def peek(self, name: str) -> float:
        """The seconds to wait before ``name`` has a token again (0: it has one now); takes nothing."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(name, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


class FailedAuthLimiter:
    """Counts failed authentications per client address and per key id, and refuses past either budget.

    Checked before any hash is computed (see :meth:`facesearch.governance.accounts.Accounts.authenticate`),
    so that wrong secrets sent for a known key id, from one address or from many, cost a lookup each.
    """

    def __init__(self, per_minute: int = FAILED_AUTH_PER_MINUTE) -> None:
        self.by_address = RateLimiter(per_minute)
        self.by_key = RateLimiter(per_minute)

    def refusal(self, client: str, key_id: str | None) -> float:
        """Seconds until the address and the key id both have budget left again (0: neither is spent)."""
        wait = self.by_address.peek(client)
        if key_id is not None:
            wait = max(wait, self.by_key.peek(key_id))
        return wait

    def check(self, client: str, key_id: str | None) -> None:
        """Raise 429 when the address or the key id has used its budget of failures."""
        wait = self.by_address.peek(client)
        what = "this address"
        if key_id is not None and not wait:
            wait, what = self.by_key.peek(key_id), "this key id"
        if wait:
            raise ApiError(
                429, "rate_limited", f"too many invalid keys from {what}", headers={"Retry-After": _secs(wait)}
            )

    def failed(self, client: str, key_id: str | None) -> None:
        """Count one failure against the address and the key id."""
        self.by_address.take(client)
        if key_id is not None:
            self.by_key.take(key_id)


def engine_of(request: Request) -> FaceSearch:
    """The server's engine."""
    engine: FaceSearch = request.app.state.engine
    return engine


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from their API key; 401 without a valid key, 429 past their rate limit or the failure limit."""
    client = request.client.host if request.client else "unknown"
    failures: FailedAuthLimiter = request.app.state.auth_failures
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "unauthorized", "send an API key: Authorization: Bearer KEY", headers={"WWW-Authenticate": "Bearer"}
        )
    key = credentials.credentials
    key_id = key_id_of(key)
    if key_id is None:
        failures.check(client, None)
    principal = engine_of(request).accounts.authenticate(key, before_hash=lambda kid: failures.check(client, kid))
    if principal is None:
        failures.failed(client, key_id)
        raise ApiError(401, "unauthorized", "the API key is invalid or revoked", headers={"WWW-Authenticate": "Bearer"})
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take(principal.key_id or principal.name)
    if wait:
        raise ApiError(429, "rate_limited", "rate limit of this key exceeded", headers={"Retry-After": _secs(wait)})
    request.state.principal = principal
    return principal


def _secs(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def require(permission: str) -> Callable[[Principal], Principal]:
    """A dependency: the authenticated caller, if their role includes ``permission`` (else 403)."""

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.can(permission):
            raise ApiError(403, "forbidden", f"the {principal.role.value} role may not do this ({permission})")
        return principal

    return check
