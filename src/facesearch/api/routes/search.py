"""Search (1:N) and verify (1:1): purpose and case required, audited by the search service on every call."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import read_upload, search_context
from facesearch.api.errors import ApiError
from facesearch.api.schemas import ErrorBody
from facesearch.governance.access import Principal
from facesearch.governance.context import CASE_PATTERN
from facesearch.ingest.sources.uploads import check_image_bytes, safe_name
from facesearch.search.provenance import ProvenanceResult
from facesearch.search.results import ProbeResult, VerifyResult
from facesearch.search.service import SearchService

router = APIRouter(prefix="/v1", tags=["search"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 409, 413, 415, 422, 429)
}
_SUPPORTS_MAX_FMR = "max_fmr" in inspect.signature(SearchService.search).parameters

PURPOSE = Form(description="Why you search: one of the configured purposes (e.g. humanitarian).")
CASE = Form(
    pattern=CASE_PATTERN.pattern,
    max_length=200,
    description="The case this search is for (a reference; opened on first use, refused once closed).",
)


def _rejected(error: str) -> ApiError:
    reason = error.split(":", 1)[0]
    if reason == "too_large":
        return ApiError(413, "image_too_large", error)
    if reason.startswith("image ") and "too_large" in error:
        return ApiError(413, "image_too_large", error)
    return ApiError(422, "image_rejected", error)


@router.post("/search", response_model=ProbeResult, responses={404: {"model": ErrorBody}, **ERRORS})
def search(
    request: Request,
    principal: Annotated[Principal, Depends(require("search"))],
    image: Annotated[UploadFile, File(description="The probe photo.")],
    purpose: Annotated[str, PURPOSE],
    case_id: Annotated[str, CASE],
    top_k: Annotated[int, Form(ge=1, le=1000)] = 10,
    collection: Annotated[str | None, Form(max_length=200)] = None,
    max_fmr: Annotated[float | None, Form(gt=0, le=1, description="Keep candidates at or below this FMR.")] = None,
    by_subject: Annotated[
        bool, Form(description="Also rank the enrolled people by the template of all their photos (subjects).")
    ] = False,
) -> JSONResponse:
    """Search every face of a probe photo; answers what ``facesearch search --json`` prints for one probe.

    Each candidate is a lead for a person to review, never an identification.
    """
    engine = engine_of(request)
    search_context(engine, principal, purpose, case_id)  # purpose and case are checked before the upload is read
    if max_fmr is not None and not _SUPPORTS_MAX_FMR:
        raise ApiError(422, "max_fmr_unavailable", "this version has no calibrated scores to filter by FMR")
    data = read_upload(image, engine.settings.max_upload_bytes, "probe image")
    check_image_bytes(data, "probe image")
    result = engine.searching.search_as(
        principal,
        data,
        purpose=purpose,
        case_id=case_id,
        top_k=top_k,
        collection=collection,
        max_fmr=max_fmr,
        by_subject=by_subject,
        probe_name=safe_name(image.filename, "upload"),
    )
    if result.error is not None:
        if result.error.startswith("unknown collection"):
            raise ApiError(404, "unknown_collection", result.error)
        raise _rejected(result.error)
    return JSONResponse(result.model_dump(mode="json"))


@router.post("/verify", response_model=VerifyResult, responses=ERRORS)
def verify(
    request: Request,
    principal: Annotated[Principal, Depends(require("verify"))],
    image_a: Annotated[UploadFile, File(description="First photo.")],
    image_b: Annotated[UploadFile, File(description="Second photo.")],
    purpose: Annotated[str, PURPOSE],
    case_id: Annotated[str, CASE],
) -> JSONResponse:
    """Are the largest faces of two photos the same person? Answers what ``facesearch verify --json`` prints."""
    engine = engine_of(request)
    search_context(engine, principal, purpose, case_id)  # purpose and case are checked before the uploads are read
    first = read_upload(image_a, engine.settings.max_upload_bytes, "first image")
    second = read_upload(image_b, engine.settings.max_upload_bytes, "second image")
    check_image_bytes(first, "first image")
    check_image_bytes(second, "second image")
    result = engine.searching.verify_as(principal, first, second, purpose=purpose, case_id=case_id)
    if result.error is not None and "no face found" in result.error:
        # Nothing to compare is not an answer: the client gets an error it must handle, not a 200 with nulls.
        raise ApiError(422, "no_face", result.error)
    if result.error is not None:
        raise _rejected(result.error)
    return JSONResponse(result.model_dump(mode="json"))


@router.post("/provenance", response_model=ProvenanceResult, responses=ERRORS)
def provenance(
    request: Request,
    principal: Annotated[Principal, Depends(require("search"))],
    image: Annotated[UploadFile, File(description="The picture to trace.")],
    purpose: Annotated[str, PURPOSE],
    case_id: Annotated[str, CASE],
) -> JSONResponse:
    """Where has this picture appeared, and since when: the stored copies of it (re-encoded, resized, cropped,
    framed, mirrored, written over), nearest first, with their first-known dates and sources, and the other
    pictures of its faces. Answers what ``facesearch provenance --json`` prints; audited as one search."""
    engine = engine_of(request)
    search_context(engine, principal, purpose, case_id)  # purpose and case are checked before the upload is read
    data = read_upload(image, engine.settings.max_upload_bytes, "image")
    check_image_bytes(data, "image")
    result = engine.provenance.lookup_as(
        principal, data, purpose=purpose, case_id=case_id, probe_name=safe_name(image.filename, "upload")
    )
    if result.error is not None:
        raise _rejected(result.error)
    return JSONResponse(result.model_dump(mode="json"))
