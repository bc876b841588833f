"""Cases (open, list, read, close, members) and reviewers' decisions on their candidates.

A case is its owner's and its members': the cases service refuses anyone else (and answers them as if the case
did not exist), and accepts a decision only on a face a search under the case returned.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from facesearch.api.auth import authenticate, engine_of, require
from facesearch.api.schemas import CaseIn, CaseOut, DecisionIn, ErrorBody, MemberIn
from facesearch.governance.access import Principal

router = APIRouter(prefix="/v1", tags=["cases"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)}


@router.get("/cases", response_model=list[CaseOut], responses=ERRORS)
def list_cases(
    request: Request, principal: Annotated[Principal, Depends(authenticate)], open_only: bool = False
) -> list[dict[str, Any]]:
    """Your cases and those you were added to (administrators: all), newest first."""
    return engine_of(request).cases.list(principal, open_only=open_only)


@router.post("/cases", status_code=201, response_model=CaseOut, responses=ERRORS)
def create_case(
    request: Request, body: CaseIn, principal: Annotated[Principal, Depends(require("cases"))]
) -> dict[str, Any]:
    """Open a case of your own (searches may also open one by naming a new ``case_id``)."""
    return engine_of(request).cases.create(principal, body.case_id, title=body.title)


@router.get("/cases/{case_id}", response_model=CaseOut, responses=ERRORS)
def get_case(request: Request, case_id: str, principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    """One case with its members, candidates and decisions."""
    return engine_of(request).cases.get(principal, case_id)


@router.post("/cases/{case_id}/close", response_model=CaseOut, responses=ERRORS)
def close_case(
    request: Request, case_id: str, principal: Annotated[Principal, Depends(authenticate)]
) -> dict[str, Any]:
    """Close a case (its owner or an administrator): its history stays, no more searches can be made for it."""
    return engine_of(request).cases.close(principal, case_id)


@router.post("/cases/{case_id}/members", response_model=CaseOut, responses=ERRORS)
def add_member(
    request: Request, case_id: str, body: MemberIn, principal: Annotated[Principal, Depends(authenticate)]
) -> dict[str, Any]:
    """Add an investigator or a reviewer to a case (its owner or an administrator)."""
    return engine_of(request).cases.add_member(principal, case_id, body.user)


@router.delete("/cases/{case_id}/members/{user}", response_model=CaseOut, responses=ERRORS)
def remove_member(
    request: Request, case_id: str, user: str, principal: Annotated[Principal, Depends(authenticate)]
) -> dict[str, Any]:
    """Take a user off a case (its owner or an administrator)."""
    return engine_of(request).cases.remove_member(principal, case_id, user)


@router.post("/cases/{case_id}/decisions", status_code=201, responses=ERRORS)
def decide(
    request: Request, case_id: str, body: DecisionIn, principal: Annotated[Principal, Depends(require("decide"))]
) -> dict[str, Any]:
    """Record a reviewer's decision (match, no_match, unsure) on a candidate face of a case you were added to."""
    return engine_of(request).cases.decide(
        principal, case_id, body.face_id, body.decision, note=body.note, audit_seq=body.audit_seq
    )
