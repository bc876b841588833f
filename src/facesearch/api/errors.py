"""Errors as JSON: every error answer is ``{"code": <stable code>, "message": <for people>}`` (plus details).

Codes are part of the API contract (clients branch on them); messages may change.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facesearch.errors import IndexUnavailable, SourceRefused
from facesearch.governance.access import AccessDenied, NotVisible
from facesearch.governance.accounts import AccountError
from facesearch.governance.audit import AuditError
from facesearch.governance.cases import CaseError
from facesearch.governance.collections import CollectionError
from facesearch.governance.context import ContextError
from facesearch.governance.erasure import ErasureError
from facesearch.governance.optout import OptOutError
from facesearch.governance.subjects import SubjectError
from facesearch.search.clusters import ClusterError

SOURCE_STATUS = {
    "empty_file": 422,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "bad_archive": 422,
    "storage_full": 507,
    "path_not_allowed": 403,
    "not_found": 404,
    "validation_error": 422,
    "no_pictures": 422,
    "no_face": 422,
    "invalid_label": 422,
    "not_enrolled": 409,
}
"""The status each refusal of an upload or a server-side path is answered with."""

log = logging.getLogger("facesearch.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answer with an HTTP status, a stable ``code`` and a human ``message``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of an error."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return body


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(
        error_body(code, message, extra.get("details")), status_code=status, headers=extra.get("headers")
    )


def _validation_details(error: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a large upload or something crafted to be reflected.
    return [
        {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", "")), "type": item.get("type")}
        for item in error.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, a JSON body with a code and a message."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, headers=error.headers, details=error.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "error")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        return error_response(error.status_code, code, message, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = _validation_details(error)
        if details and all(d["loc"][-1:] == ["case_id"] and d["type"] != "missing" for d in details):
            # The code clients already branch on for a malformed case reference (before it was in the schema).
            message = "case_id must be 1-200 letters, digits or . _ : # - (starting with a letter or digit)"
            return error_response(422, "invalid_case", message, details=details)
        missing = [d["loc"][-1] for d in details if d["type"] == "missing" and d["loc"]]
        message = f"missing: {', '.join(missing)}" if missing else "the request is not valid"
        return error_response(422, "validation_error", message, details=details)

    # Services raise their own errors; these turn them into answers, so that routes need no try/except.
    @app.exception_handler(AccessDenied)
    async def _denied(_request: Request, error: AccessDenied) -> JSONResponse:
        return error_response(403, error.code, str(error))

    @app.exception_handler(NotVisible)
    async def _not_visible(_request: Request, error: NotVisible) -> JSONResponse:
        return error_response(404, error.code, str(error))

    @app.exception_handler(AccountError)
    async def _account(_request: Request, error: AccountError) -> JSONResponse:
        text = str(error)
        if text.startswith("unknown collection"):
            return error_response(404, "unknown_collection", text)
        if text.startswith("unknown user"):
            return error_response(404, "unknown_user", text)
        if "already exists" in text:
            return error_response(409, "user_exists", text)
        return error_response(422, "invalid_account", text)

    @app.exception_handler(CaseError)
    async def _case(_request: Request, error: CaseError) -> JSONResponse:
        text = str(error)
        if "is closed" in text:
            return error_response(409, "case_closed", text)
        if "already exists" in text:
            return error_response(409, "case_exists", text)
        if "decision must be" in text:
            return error_response(422, "invalid_decision", text)
        return error_response(409, "conflict", text)

    @app.exception_handler(CollectionError)
    async def _collection(_request: Request, error: CollectionError) -> JSONResponse:
        text = str(error)
        if "already exists" in text:
            return error_response(409, "collection_exists", text)
        return error_response(422, "invalid_retention" if "retention" in text else "validation_error", text)

    @app.exception_handler(ContextError)
    async def _context(_request: Request, error: ContextError) -> JSONResponse:
        code = "invalid_purpose" if "purpose" in str(error) else "invalid_case"
        return error_response(422, code, str(error))

    @app.exception_handler(ClusterError)
    async def _cluster(_request: Request, error: ClusterError) -> JSONResponse:
        return error_response(error.status, error.code, str(error))

    @app.exception_handler(SubjectError)
    async def _subject(_request: Request, error: SubjectError) -> JSONResponse:
        text = str(error)
        if "is taken" in text:
            return error_response(409, "label_taken", text)
        return error_response(422, "invalid_merge" if "merged" in text else "invalid_label", text)

    @app.exception_handler(ErasureError)
    async def _erasure(_request: Request, error: ErasureError) -> JSONResponse:
        return error_response(404, "nothing_to_erase", str(error))

    @app.exception_handler(OptOutError)
    async def _optout(_request: Request, error: OptOutError) -> JSONResponse:
        return error_response(422, "no_face", str(error))

    @app.exception_handler(SourceRefused)
    async def _source(_request: Request, error: SourceRefused) -> JSONResponse:
        return error_response(SOURCE_STATUS.get(error.code, 422), error.code, str(error))

    @app.exception_handler(AuditError)
    async def _audit_error(_request: Request, error: AuditError) -> JSONResponse:
        # Fail closed: what could not be audited is not handed out.
        log.error("audit unavailable: %s", error)
        return error_response(503, "audit_unavailable", "the audit log cannot be written, so no result is given")

    @app.exception_handler(IndexUnavailable)
    async def _index_unavailable(_request: Request, error: IndexUnavailable) -> JSONResponse:
        log.error("vector index unavailable: %s", error)
        return error_response(503, "index_unavailable", "the vector index's server does not answer; try again later")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
