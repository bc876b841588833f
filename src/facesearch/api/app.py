"""The FastAPI application: one engine per server process, routes that call its services only.

``create_app(settings)`` builds everything: the engine (pack loaded and index caught up before the first
request), the job runner, the retention schedule, the middleware (body limits, security headers, CORS only
when origins are configured) and JSON errors with stable codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from facesearch import __version__
from facesearch.api.auth import FailedAuthLimiter, RateLimiter, engine_of, require
from facesearch.api.docs_page import install_docs
from facesearch.api.errors import install_error_handlers
from facesearch.api.middleware import BodyLimit, FailedAuthGate, SecurityHeaders
from facesearch.api.openapi import install_openapi
from facesearch.api.routes import accounts, audit, cases, clusters, collections, governance, search, subjects
from facesearch.api.schemas import ErrorBody, Health
from facesearch.config import Settings
from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from facesearch.governance.retention import RetentionSchedule
from facesearch.ingest.jobs import JobRunner
from facesearch.web import install_web

DESCRIPTION = """Self-hosted, accountable face search.

Every endpoint but `/health` needs an API key (`Authorization: Bearer KEY`, from `facesearch keys create NAME`).
Every search and verify names a `purpose` and a `case_id` and is written to a hash-chained audit log.
**A candidate is a lead for a person to review, never an identification.**
Errors are JSON: `{"code": "...", "message": "..."}`.
"""


def create_app(
    settings: Settings, *, engine: FaceSearch | None = None, schedule: bool = True, warm: bool = True
) -> FastAPI:
    """The API for one data folder.

    ``schedule=False`` leaves the retention schedule off (tests); ``warm=False`` skips loading the pack and
    the index before the first request (for writing the OpenAPI document).
    """
    engine = engine or FaceSearch(settings)
    if warm:
        # Load the pack and catch the index up now, so that the first request is not the slow one.
        engine.searching.service()
    jobs = JobRunner(engine.catalog, engine.ingest, engine.packs)
    scheduler = RetentionSchedule(engine.retention, settings.retention_interval_s if schedule else 0)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            jobs.shutdown()
            engine.close()

    app = FastAPI(
        title="facesearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,  # served by install_docs, from local files
        # Every operation may meet a body it cannot parse (400) and the failed-key limit (429).
        responses={400: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    )
    install_openapi(app, settings.purposes)
    install_docs(app)
    app.state.engine = engine
    app.state.jobs = jobs
    app.state.scheduler = scheduler
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.auth_failures = FailedAuthLimiter(settings.failed_auth_per_minute)
    install_error_handlers(app)

    @app.get("/health", response_model=Health, tags=["system"])
    def health() -> dict[str, str]:
        """Liveness: 200 when the server answers (no key needed)."""
        return {"status": "ok"}

    @app.get("/v1/status", tags=["system"], responses={s: {"model": ErrorBody} for s in (401, 403)})
    def status(
        request: Request, principal: Annotated[Principal, Depends(require("collections.read"))]
    ) -> dict[str, Any]:
        """What the collections you may see hold (counts), the pack and the configured purposes."""
        current = engine_of(request)
        report = current.collections.status(principal)
        report.pop("home", None)  # the server's file system layout is nobody's business
        return {**report, "pack": current.packs.pack().key, "purposes": list(current.settings.purposes)}

    for module in (search, collections, subjects, cases, clusters, audit, governance, accounts):
        app.include_router(module.router)
    app.include_router(collections.aliases)
    app.include_router(subjects.aliases)
    install_web(app)  # the workbench under /, after the API's error handlers (it makes them pages on its paths)

    # Middleware: the last added runs first. CORS is off unless origins are configured.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes, ingest_limit=settings.max_ingest_upload_bytes)
    app.add_middleware(FailedAuthGate, limiter=app.state.auth_failures, is_verified=engine.accounts.is_verified)
    app.add_middleware(SecurityHeaders)
    return app
