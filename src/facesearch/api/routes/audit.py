"""The audit log, for auditors: read it, verify the chain, export it signed."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import Limit, Offset
from facesearch.api.schemas import ErrorBody, VerificationOut
from facesearch.governance.access import Principal

router = APIRouter(prefix="/v1", tags=["audit"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 422, 429)}


@router.get("/audit", responses=ERRORS)
def list_records(
    request: Request,
    _principal: Annotated[Principal, Depends(require("audit"))],
    after_seq: Offset = 0,
    limit: Limit = 100,
    action: str | None = None,
    case_id: str | None = None,
    actor: str | None = None,
) -> list[dict[str, Any]]:
    """Audit records after ``after_seq``, in chain order (filter by action, case or actor)."""
    return engine_of(request).audit.records(
        after_seq=after_seq, limit=limit, action=action, case_ref=case_id, actor=actor
    )


@router.get("/audit/verify", response_model=VerificationOut, responses=ERRORS)
def verify_chain(request: Request, _principal: Annotated[Principal, Depends(require("audit"))]) -> dict[str, Any]:
    """Recompute the chain: ``ok``, or the first record changed, removed or reordered."""
    return engine_of(request).audit.verify().to_dict()


@router.get(
    "/audit/export",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}}, **ERRORS},
)
def export(
    request: Request, principal: Annotated[Principal, Depends(require("audit"))], after_seq: Offset = 0
) -> Response:
    """The log as JSON lines with a final Ed25519 signature line (the export itself is audited)."""
    buffer = io.StringIO()
    engine_of(request).audit.export(buffer, after_seq=after_seq, actor=principal.actor)
    return Response(
        buffer.getvalue(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="facesearch-audit.jsonl"'},
    )
