"""The audit log, for auditors: the chain's state at the top (intact, or the first bad record), the records
filtered by user, case, action and date, newest first, and the signed export."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from facesearch.web.pages import Page, signed_in

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100


def _day(text: str, *, end: bool) -> str | None:
    """A date of the filter form (YYYY-MM-DD) as the start or the end of that day, UTC; None when empty or
    not a date."""
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        return None
    return day.strftime("%Y-%m-%dT23:59:59.999999+00:00" if end else "%Y-%m-%dT00:00:00+00:00")


@router.get("/audit")
def audit(
    current: Annotated[Page, Depends(signed_in("audit"))],
    actor: str = "",
    case: str = "",
    action: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    """The chain's state and the records, newest first, filtered."""
    trail = current.engine.audit
    verification = trail.verify()
    records = trail.records(
        limit=PAGE_SIZE,
        actor=actor.strip() or None,
        case_ref=case.strip() or None,
        action=action.strip() or None,
        since=_day(since, end=False),
        until=_day(until, end=True),
        before_seq=before,
        newest_first=True,
    )
    filters = {"actor": actor, "case": case, "action": action, "since": since, "until": until}
    older = records[-1]["seq"] if len(records) == PAGE_SIZE else None
    return current.render("audit.html", verification=verification, records=records, filters=filters, older=older)


@router.get("/audit/export")
def export(current: Annotated[Page, Depends(signed_in("audit"))]) -> Response:
    """The whole log as signed JSON lines (the export is itself audited)."""
    buffer = io.StringIO()
    current.engine.audit.export(buffer, actor=current.principal.actor)
    response = Response(
        buffer.getvalue(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="facesearch-audit.jsonl"'},
    )
    return current.finish(response)
