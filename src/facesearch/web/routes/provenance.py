"""Provenance for fact-checkers: where has this picture appeared, and since when (the copies on a timeline,
with their sources and content credentials), and other pictures of its faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response

from facesearch.api.deps import read_upload
from facesearch.ingest.sources.uploads import check_image_bytes, safe_name
from facesearch.web.pages import EXPECTED_ERRORS, Page, signed_in
from facesearch.web.routes.searching import case_and_purpose, form_context, form_error, shown_probe

router = APIRouter(include_in_schema=False)


@router.get("/provenance")
def provenance_form(current: Annotated[Page, Depends(signed_in("search"))], case: str | None = None) -> Response:
    """The form: a case (or a new one), a purpose and the picture to trace."""
    return current.render(
        "provenance.html", result=None, error=None, chosen={"case_id": case or ""}, **form_context(current)
    )


@router.post("/provenance")
def provenance(
    current: Annotated[Page, Depends(signed_in("search"))],
    image: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form(max_length=200)] = "",
    new_case: Annotated[str, Form(max_length=200)] = "",
    purpose: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Trace the picture: its copies by first-known date, their sources and claims, and the same faces."""
    current.check_form(csrf)
    case_ref, purpose = case_and_purpose(case_id, new_case, purpose)
    chosen = {"case_id": case_ref, "purpose": purpose}
    engine = current.engine
    try:
        data = read_upload(image, engine.settings.max_upload_bytes, "picture")
        check_image_bytes(data, "picture")
        result = engine.provenance.lookup_as(
            current.principal,
            data,
            purpose=purpose or None,
            case_id=case_ref or None,
            probe_name=safe_name(image.filename, "upload"),
        )
    except EXPECTED_ERRORS as error:
        return form_error(current, "provenance.html", error, chosen)
    by_id = {copy.image_id: copy for copy in result.duplicates}
    return current.render(
        "provenance.html",
        status=422 if result.error else 200,
        result=result,
        timeline=[by_id[image_id] for image_id in result.timeline],
        probe=shown_probe(data, engine.settings.max_probe_pixels),
        error=result.error,
        chosen=chosen,
        **form_context(current),
    )
