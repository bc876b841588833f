"""Helpers shared by routes: the audit context of a caller, their visible collections, reading uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, UploadFile

from facesearch.api.errors import ApiError
from facesearch.api.schemas import MAX_ID
from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from facesearch.governance.context import ActionContext

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def search_context(engine: FaceSearch, principal: Principal, purpose: str, case_id: str) -> ActionContext:
    """The audit context of an API search: the caller, a configured purpose and an open case of theirs (both
    required; the errors become 422, 403 or 409 answers through the exception handlers)."""
    return engine.searching.context(principal=principal, purpose=purpose, case_id=case_id, required=True)


def visible_collections(principal: Principal) -> list[str] | None:
    """The collections the caller may see (``None``: all)."""
    return None if principal.all_collections else sorted(principal.collections)


def read_upload(upload: UploadFile, limit: int, what: str = "upload") -> bytes:
    """The bytes of an uploaded file, refused (413) past ``limit``."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"the {what} is over the limit of {limit} bytes")
    return data
