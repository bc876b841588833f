"""Cases: the list, one case with its searches, candidates and decisions, its members, its history and its
report (HTML to print, or PDF); and a candidate's whole source photo, read under the case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from facesearch.governance.cases import DECISIONS
from facesearch.web import case_view, report_pdf
from facesearch.web.pages import EXPECTED_ERRORS, Page, PageRefused, error_status, jpeg_answer, signed_in
from facesearch.web.report_pdf import DECISION_LABELS

router = APIRouter(include_in_schema=False)

READERS = ("cases.read", "cases.manage")


@router.get("/cases")
def cases(current: Annotated[Page, Depends(signed_in(*READERS))]) -> Response:
    """The cases this user may read, newest first; investigators open new ones here."""
    listed = current.engine.cases.list(current.principal)
    return current.render("cases.html", cases=listed, error=None)


@router.post("/cases")
def create_case(
    current: Annotated[Page, Depends(signed_in("cases"))],
    csrf: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form(max_length=200)] = "",
    title: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Open a new case owned by this investigator."""
    current.check_form(csrf)
    try:
        current.engine.cases.create(current.principal, case_id.strip(), title=title.strip() or None)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        listed = current.engine.cases.list(current.principal)
        return current.render("cases.html", status=status, cases=listed, error=message)
    return current.redirect(f"/cases/{case_id.strip()}")


def _case_page(current: Page, reference: str, *, status: int = 200, error: str | None = None) -> Response:
    view = case_view.build(current.engine, current.principal, reference, current.language)
    may_manage = current.principal.can("cases.manage") or view.case["opened_by"] == current.principal.actor
    return current.render(
        "case.html",
        status=status,
        view=view,
        error=error,
        decisions=DECISIONS,
        decision_labels=DECISION_LABELS,
        may_decide=current.may("decide"),
        may_manage=may_manage and view.case["open"],
        four_eyes=current.engine.settings.four_eyes,
    )


@router.get("/cases/{reference}")
def case(reference: str, current: Annotated[Page, Depends(signed_in(*READERS))]) -> Response:
    """One case: its searches and their candidates, each with its decisions and a form to decide."""
    return _case_page(current, reference)


@router.post("/cases/{reference}/decisions")
def decide(
    reference: str,
    current: Annotated[Page, Depends(signed_in("decide"))],
    face_id: Annotated[int, Form()],
    decision: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A reviewer's decision on one candidate (the four-eyes rule and the case's membership apply)."""
    current.check_form(csrf)
    try:
        current.engine.cases.decide(current.principal, reference, face_id, decision, note=note.strip() or None)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        if status == 404:
            raise PageRefused(404, message) from error
        return _case_page(current, reference, status=status, error=message)
    return current.redirect(f"/cases/{reference}#candidate-{face_id}")


@router.post("/cases/{reference}/members")
def members(
    reference: str,
    current: Annotated[Page, Depends(signed_in("cases", "cases.manage"))],
    user: Annotated[str, Form(max_length=100)],
    csrf: Annotated[str, Form()] = "",
    remove: Annotated[bool, Form()] = False,
) -> Response:
    """Add (or take off) an investigator or reviewer: the case's owner or an administrator."""
    current.check_form(csrf)
    try:
        if remove:
            current.engine.cases.remove_member(current.principal, reference, user.strip())
        else:
            current.engine.cases.add_member(current.principal, reference, user.strip())
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _case_page(current, reference, status=status, error=message)
    return current.redirect(f"/cases/{reference}#members")


@router.post("/cases/{reference}/close")
def close(
    reference: str,
    current: Annotated[Page, Depends(signed_in("cases", "cases.manage"))],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Close the case: no more searches under it (its record stays)."""
    current.check_form(csrf)
    try:
        current.engine.cases.close(current.principal, reference)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _case_page(current, reference, status=status, error=message)
    return current.redirect(f"/cases/{reference}")


@router.get("/cases/{reference}/report.html")
def report_html(reference: str, current: Annotated[Page, Depends(signed_in(*READERS))]) -> Response:
    """The case as a printable page: crops, scores and their meaning, decisions, audit references."""
    view = case_view.build(current.engine, current.principal, reference, current.language)
    return current.render("report.html", view=view, decision_labels=DECISION_LABELS, printed_by=current.principal.actor)


@router.get("/cases/{reference}/report.pdf")
def report_as_pdf(reference: str, current: Annotated[Page, Depends(signed_in(*READERS))]) -> Response:
    """The same report as a PDF file."""
    view = case_view.build(current.engine, current.principal, reference, current.language)
    data = report_pdf.render(view, current.language, printed_by=current.principal.actor)
    response = Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="case-{_file_safe(reference)}.pdf"'},
    )
    return current.finish(response)


def _file_safe(reference: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in reference)[:100]


@router.get("/photo/{face_id}")
def source_photo(face_id: int, current: Annotated[Page, Depends(signed_in("faces.read"))], case: str = "") -> Response:
    """The whole photo a candidate was found in (audited as ``image_read`` under the case)."""
    return jpeg_answer(current, lambda: current.engine.reads.image(current.principal, face_id, case_ref=case or None))
