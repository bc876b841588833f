"""Cases (open, list, read, close) and reviewers' decisions on their candidates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from facesearch.api.auth import engine_of, require
from facesearch.api.errors import ApiError
from facesearch.api.schemas import CaseIn, CaseOut, DecisionIn, ErrorBody
from facesearch.governance.accounts import Principal
from facesearch.governance.cases import CaseError

router = APIRouter(prefix="/v1", tags=["cases"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)}


def _case_error(error: CaseError) -> ApiError:
    text = str(error)
    if "unknown case" in text:
        return ApiError(404, "unknown_case", text)
    if "unknown face" in text:
        return ApiError(404, "unknown_face", text)
    return ApiError(409, "conflict", text)


@router.get("/cases", response_model=list[CaseOut], responses=ERRORS)
def list_cases(
    request: Request, _principal: Annotated[Principal, Depends(require("cases.read"))], open_only: bool = False
) -> list[dict[str, Any]]:
    """Cases, newest first."""
    return engine_of(request).cases.list(open_only=open_only)


@router.post("/cases", status_code=201, response_model=CaseOut, responses=ERRORS)
def create_case(
    request: Request, body: CaseIn, principal: Annotated[Principal, Depends(require("cases"))]
) -> dict[str, Any]:
    """Open a case (searches may also open one by naming a new ``case_id``)."""
    try:
        return engine_of(request).cases.create(body.case_id, principal.actor, title=body.title)
    except CaseError as error:
        raise _case_error(error) from error


@router.get("/cases/{case_id}", response_model=CaseOut, responses=ERRORS)
def get_case(
    request: Request, case_id: str, _principal: Annotated[Principal, Depends(require("cases.read"))]
) -> dict[str, Any]:
    """One case with its decisions."""
    try:
        return engine_of(request).cases.get(case_id)
    except CaseError as error:
        raise _case_error(error) from error


@router.post("/cases/{case_id}/close", response_model=CaseOut, responses=ERRORS)
def close_case(
    request: Request, case_id: str, principal: Annotated[Principal, Depends(require("cases"))]
) -> dict[str, Any]:
    """Close a case: its history stays, no more searches can be made for it."""
    engine = engine_of(request)
    try:
        closed = engine.cases.close(case_id)
    except CaseError as error:
        raise _case_error(error) from error
    engine.audit.append(actor=principal.actor, action="case_close", details={}, case_ref=case_id)
    return closed


@router.post("/cases/{case_id}/decisions", status_code=201, responses=ERRORS)
def decide(
    request: Request, case_id: str, body: DecisionIn, principal: Annotated[Principal, Depends(require("decide"))]
) -> dict[str, Any]:
    """Record a reviewer's decision (match, no_match, unsure) on a candidate face of the case."""
    engine = engine_of(request)
    try:
        decision = engine.cases.decide(
            case_id, body.face_id, body.decision, principal.actor, note=body.note, audit_seq=body.audit_seq
        )
    except CaseError as error:
        raise _case_error(error) from error
    engine.audit.append(
        actor=principal.actor,
        action="decision",
        case_ref=case_id,
        details={"face_id": body.face_id, "decision": body.decision, "audit_seq": body.audit_seq},
    )
    return decision
