"""Authentication (``Authorization: Bearer KEY``), role checks and per-key rate limits."""

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
from facesearch.governance.accounts import Principal

bearer = HTTPBearer(auto_error=False, description="An API key from `facesearch keys create NAME`.")

FAILED_AUTH_PER_MINUTE = 30
"""Bad keys a client address may send per minute before it is refused (keeps argon2 from being a lever)."""


class RateLimiter:
    """Token buckets by name: ``per_minute`` requests a minute, with bursts of a tenth of that (at least 5)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = max(1, per_minute) / 60.0
        self.capacity = max(5.0, per_minute / 10.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate


def engine_of(request: Request) -> FaceSearch:
    """The server's engine."""
    engine: FaceSearch = request.app.state.engine
    return engine


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from their API key; 401 without a valid key, 429 past their rate limit."""
    client = request.client.host if request.client else "unknown"
    failures: RateLimiter = request.app.state.auth_failures
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "unauthorized", "send an API key: Authorization: Bearer KEY", headers={"WWW-Authenticate": "Bearer"}
        )
    principal = engine_of(request).accounts.authenticate(credentials.credentials)
    if principal is None:
        wait = failures.take(client)
        if wait:
            raise ApiError(
                429, "rate_limited", "too many invalid keys from this address", headers={"Retry-After": _secs(wait)}
            )
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
