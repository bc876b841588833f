"""ASGI middleware: request body limits and security headers on every answer."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from facesearch.governance.accounts import key_id_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INGEST_UPLOAD_PATH = re.compile(r"^(/v1/collections/[^/]+/uploads|/collections/[^/]+/upload)$")
"""Ingest uploads, of the API and of the workbench: they have the larger body limit."""

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    # Answers hold personal data: no shared cache may keep them.
    (b"cache-control", b"no-store"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeaders:
    """Adds security headers (no sniffing, no framing, no referrer, no caching, a strict CSP) to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:  # /docs sets its own (api/docs_page.py)
                    headers.append((b"content-security-policy", API_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


TARPIT_S = 2.0
"""The longest a refused flood request is held before its 429 goes out (asleep: it costs no CPU)."""


class FailedAuthGate:
    """Refuses, before anything else is done, requests whose address or key id used up its failure budget.

    A flood of wrong secrets would otherwise make the server route each request, read its body (a multipart
    upload is parsed before any dependency runs) and look the key up. Here a request bearing a key that this
    process has verified before goes on whatever the budgets say (the attacker shares the victim's key id and
    perhaps their address, not their secret); any other request from an address or for a key id past its
    budget is answered 429 after a pause (``TARPIT_S`` at most), so that each flooding connection is slowed to a
    request every few seconds instead of being answered as fast as the server can.
    """

    def __init__(self, app: ASGIApp, *, limiter: Any, is_verified: Callable[[str], bool]) -> None:
        self.app = app
        self.limiter = limiter
        self.is_verified = is_verified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    key = credentials.strip()
                break
        if key is None or self.is_verified(key):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.refusal(client[0] if client else "unknown", key_id_of(key))
        if not wait:
            await self.app(scope, receive, send)
            return
        await asyncio.sleep(min(wait, TARPIT_S))
        body = json.dumps({"code": "rate_limited", "message": "too many invalid keys; try again later"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses request bodies over a limit with 413, by Content-Length or by counting what arrives.

    Ingest uploads (``POST /v1/collections/{name}/uploads``) have their own, larger limit. A body that grows
    past the limit while streaming is cut off; whatever the application answers then is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, *, limit: int, ingest_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.ingest_limit = ingest_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ingest_limit if INGEST_UPLOAD_PATH.match(scope.get("path", "")) else self.limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _too_large(send, "Content-Length is not a number", status=400, code="bad_request")
                    return
                if declared > limit:
                    await _too_large(send, f"the request body is over the limit of {limit} bytes")
                    return
        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    # Hand the application an end of body; its answer is replaced below.
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if exceeded:
                if not replaced:
                    replaced = True
                    await _too_large(send, f"the request body is over the limit of {limit} bytes")
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


async def _too_large(send: Send, message: str, *, status: int = 413, code: str = "payload_too_large") -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
