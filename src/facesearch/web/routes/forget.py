"""Forget a person and opt-outs, for administrators: from one photo, review every stored face above the
strict threshold, tick the ones that are the person, confirm, and they are erased; or put the person on the
opt-out list (their faces erased now, and never indexed again)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response

from facesearch.api.deps import read_upload
from facesearch.errors import AccessDenied
from facesearch.ingest.sources.uploads import check_image_bytes
from facesearch.web.pages import EXPECTED_ERRORS, Page, PageRefused, error_status, signed_in

router = APIRouter(include_in_schema=False)


def _listed_signature(current: Page, listed: str) -> str:
    """Binds the faces a review listed to this session, so that the confirmation erases only faces that were
    shown for the photo (as ``facesearch forget --confirm`` refuses others)."""
    assert current.signed_in is not None
    return hmac.new(current.signed_in.csrf.encode(), listed.encode(), hashlib.sha256).hexdigest()


def _page(current: Page, *, status: int = 200, error: str | None = None, **extra: object) -> Response:
    try:
        optouts = current.engine.optouts.list(current.principal)
    except AccessDenied:
        optouts = None
    context = {"candidates": None, "erased": None, "optout_added": None, **extra}
    return current.render("forget.html", status=status, error=error, optouts=optouts, **context)


@router.get("/forget")
def forget_form(current: Annotated[Page, Depends(signed_in("erase", "optout"))]) -> Response:
    """Upload a photo of the person to forget; the opt-out list."""
    return _page(current)


@router.post("/forget/review")
def review(
    current: Annotated[Page, Depends(signed_in("erase"))],
    image: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Every stored face above the strict threshold for the photo's person, to tick and confirm."""
    current.check_form(csrf)
    try:
        data = read_upload(image, current.engine.settings.max_upload_bytes, "image")
        check_image_bytes(data, "image")
        candidates, problem = current.engine.searching.forget_candidates(data, principal=current.principal)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    if problem:
        return _page(current, status=422, error=problem)
    grid = current.engine.reads.grid(current.principal, [c.face_id for c in candidates]) if candidates else []
    crops = {details.face_id: crop for details, crop in grid}
    listed = ",".join(str(c.face_id) for c in candidates)
    return _page(
        current,
        candidates=candidates,
        crops=crops,
        listed=listed,
        listed_sig=_listed_signature(current, listed),
        threshold=current.engine.searching.forget_threshold(),
    )


@router.post("/forget/erase")
def erase(
    current: Annotated[Page, Depends(signed_in("erase"))],
    csrf: Annotated[str, Form()] = "",
    listed: Annotated[str, Form(max_length=100_000)] = "",
    listed_sig: Annotated[str, Form(max_length=200)] = "",
    face_ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Erase the ticked faces (only faces the review listed): gone from the catalog, index and disk."""
    current.check_form(csrf)
    if not hmac.compare_digest(_listed_signature(current, listed), listed_sig):
        raise PageRefused(403, current.gettext("This confirmation does not belong to a review of yours."))
    shown = {int(part) for part in listed.split(",") if part.strip().isdigit()}
    chosen = sorted(set(face_ids or []))
    if not chosen:
        return _page(current, status=422, error=current.gettext("Tick at least one face to erase."))
    if not set(chosen) <= shown:
        raise PageRefused(422, current.gettext("Only faces listed for the photo can be erased here."))
    try:
        report = current.engine.erasure.erase(current.principal, "face", chosen)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return _page(current, erased=report.to_dict())


@router.post("/optouts")
def add_optout(
    current: Annotated[Page, Depends(signed_in("optout"))],
    image: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Put the photo's person on the opt-out list (their stored faces are erased; the photo is not kept)."""
    current.check_form(csrf)
    try:
        data = read_upload(image, current.engine.settings.max_upload_bytes, "image")
        check_image_bytes(data, "image")
        added = current.engine.optouts.add_photo(current.principal, data, note=note.strip() or None)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return _page(current, optout_added=added)
