"""Search (1:N) and verify (1:1) pages, for investigators: every search names a case and a purpose, and every
candidate is shown as a lead with what its score means for the gallery searched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse, Response

from facesearch.api.deps import read_upload
from facesearch.api.errors import ApiError
from facesearch.ingest.sources.uploads import check_image_bytes, safe_name
from facesearch.search.results import Candidate, ProbeFace, ProbeResult
from facesearch.vision.crops import GRID_CROP_SIZE, crops_jpeg, preview_jpeg
from facesearch.vision.image import ImageRejected, load_image
from facesearch.web import meaning
from facesearch.web.pages import EXPECTED_ERRORS, Page, error_status, jpeg_answer, signed_in

router = APIRouter(include_in_schema=False)

FRAGMENT_HEADER = "x-workbench-fragment"
"""Sent by the page's script when it asks for the results alone, to put them in the page without a reload."""
PREVIEW_HEADER = "x-workbench-preview"
"""Sent by the page's script (``local``) when the browser shows the probe from the user's own file."""

FMR_CHOICES = (1e-2, 1e-3, 1e-4, 1e-5)
"""The false-match rates a user may filter candidates by, and decide a verification at."""


@dataclass
class ShownCandidate:
    """A candidate as the page shows it: the search's answer, its crop and what its score means."""

    candidate: Candidate
    crop: bytes | None
    meaning: str
    lazy: bool = False  # the crop is read (an audited read) when the face is chosen, from /crops/{face_id}


@dataclass
class ShownFace:
    """A face of the probe: where it is, its crop, its warnings and its candidates."""

    number: int
    face: ProbeFace
    crop: bytes | None
    candidates: list[ShownCandidate]
    warnings: list[str]


def form_context(current: Page) -> dict[str, Any]:
    """What the search and verify forms offer: the user's open cases, the purposes, collections, FMRs (nothing
    for the results alone, which hold no form)."""
    if current.request.headers.get(FRAGMENT_HEADER) == "results":
        return {}
    principal = current.principal
    return {
        "cases": current.engine.cases.list(principal, open_only=True),
        "purposes": list(current.engine.settings.purposes),
        "collections": current.engine.collections.names(principal),
        "fmr_choices": FMR_CHOICES,
    }


def parse_fmr(text: str) -> float | None:
    """A false-match rate from a form ("" for none); refused unless between 0 and 1."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise ApiError(422, "validation_error", "a false-match rate is a number between 0 and 1")
    return value


def case_and_purpose(case_id: str, new_case: str, purpose: str) -> tuple[str, str]:
    """The case a form names (a new one typed in wins over the one chosen) and its purpose, trimmed."""
    return (new_case.strip() or case_id.strip()), purpose.strip()


@router.get("/search")
def search_form(current: Annotated[Page, Depends(signed_in("search"))], case: str | None = None) -> Response:
    """The search form: a case (or a new one), a purpose, a probe photo and the filters."""
    return current.render(
        "search.html", result=None, error=None, chosen={"case_id": case or ""}, **form_context(current)
    )


@router.post("/search")
def search(
    current: Annotated[Page, Depends(signed_in("search"))],
    image: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form(max_length=200)] = "",
    new_case: Annotated[str, Form(max_length=200)] = "",
    purpose: Annotated[str, Form(max_length=200)] = "",
    collection: Annotated[str, Form(max_length=200)] = "",
    max_fmr: Annotated[str, Form(max_length=20)] = "",
    by_subject: Annotated[bool, Form()] = False,
    top_k: Annotated[int, Form(ge=1, le=50)] = 10,
) -> Response:
    """Search the probe under the case; show its faces boxed and each face's candidates with their meaning."""
    current.check_form(csrf)
    case_ref, purpose = case_and_purpose(case_id, new_case, purpose)
    chosen = {
        "case_id": case_ref,
        "purpose": purpose,
        "collection": collection,
        "max_fmr": max_fmr,
        "by_subject": by_subject,
    }
    engine = current.engine
    try:
        data = read_upload(image, engine.settings.max_upload_bytes, "probe image")
        check_image_bytes(data, "probe image")
        fmr = parse_fmr(max_fmr)
        result = engine.searching.search_as(
            current.principal,
            data,
            purpose=purpose or None,
            case_id=case_ref or None,
            top_k=top_k,
            collection=collection or None,
            max_fmr=fmr,
            by_subject=by_subject,
            probe_name=safe_name(image.filename, "upload"),
            crops=True,  # the largest face's, shown with the results under the search's own audit record
        )
    except EXPECTED_ERRORS as error:
        return form_error(current, _search_template(current), error, chosen)
    if result.error is not None:
        return current.render(
            _search_template(current),
            status=422,
            result=None,
            error=result.error,
            chosen=chosen,
            **form_context(current),
        )
    pixels = result.pixels()
    if pixels is None:  # decoded by the search when it answered (kept for this page)
        pixels = load_image(data, max_pixels=engine.settings.max_probe_pixels)
    # The page's script shows the probe from the user's own file when the browser can display it (it says
    # so): no preview to encode and send back.
    template = _search_template(current)
    local = template == "search_results.html" and current.request.headers.get(PREVIEW_HEADER) == "local"
    return current.render(
        template,
        result=result,
        faces=show_result(current, pixels, result),
        probe=probe_of(pixels, preview=not local),
        error=None,
        chosen=chosen,
        **form_context(current),
    )


def _search_template(current: Page) -> str:
    """The whole search page, or only its results when the page's script asked for them."""
    return "search_results.html" if current.request.headers.get(FRAGMENT_HEADER) == "results" else "search.html"


def form_error(current: Page, template: str, error: Exception, chosen: dict[str, Any]) -> Response:
    """The form's page again, with the error in words and what was chosen kept."""
    status, message = error_status(error)
    return current.render(template, status=status, result=None, error=message, chosen=chosen, **form_context(current))


@dataclass
class ShownProbe:
    """The probe as the page shows it: a preview (``None``: the page's script shows the user's own file) and
    the size its face boxes are measured in."""

    preview: bytes | None
    width: int
    height: int


def probe_of(rgb: np.ndarray, *, preview: bool = True) -> ShownProbe:
    """A decoded photo as the page shows it: a preview (unless ``preview`` is false), and the size its face
    boxes are measured in."""
    return ShownProbe(preview_jpeg(rgb) if preview else None, int(rgb.shape[1]), int(rgb.shape[0]))


def shown_probe(data: bytes, max_pixels: int) -> ShownProbe | None:
    """A photo as a preview (its faces are boxed over it in the page, in the photo's own pixels)."""
    try:
        return probe_of(load_image(data, max_pixels=max_pixels))
    except ImageRejected:
        return None


def show_result(current: Page, rgb: np.ndarray, result: ProbeResult) -> list[ShownFace]:
    """Every probe face with its crop and candidates (the largest face's crops came with the search)."""
    shown = []
    probe_crops = crops_jpeg(rgb, [face.bbox for face in result.faces], size=GRID_CROP_SIZE)
    for number, (face, crop) in enumerate(zip(result.faces, probe_crops, strict=True), start=1):
        candidates = []
        for candidate in face.candidates:
            words = meaning.strangers(current.language, candidate.expected_false_matches, candidate.fmr_beyond_data)
            # The largest face's crops came with the search; another face's are read when it is chosen.
            crop_of = result.crop(candidate.face_id) if number == 1 else None
            candidates.append(ShownCandidate(candidate, crop_of, words, lazy=number > 1))
        shown.append(ShownFace(number, face, crop, candidates, list(face.quality_reasons)))
    return shown


@router.get("/verify")
def verify_form(current: Annotated[Page, Depends(signed_in("verify"))]) -> Response:
    """Two photos side by side: are their largest faces the same person?"""
    return current.render("verify.html", result=None, error=None, chosen={}, **form_context(current))


@router.post("/verify")
def verify(
    current: Annotated[Page, Depends(signed_in("verify"))],
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form(max_length=200)] = "",
    new_case: Annotated[str, Form(max_length=200)] = "",
    purpose: Annotated[str, Form(max_length=200)] = "",
    fmr: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Compare the two photos' largest faces and say what the decision means at the chosen FMR."""
    current.check_form(csrf)
    case_ref, purpose = case_and_purpose(case_id, new_case, purpose)
    chosen = {"case_id": case_ref, "purpose": purpose, "fmr": fmr}
    engine = current.engine
    try:
        first = read_upload(image_a, engine.settings.max_upload_bytes, "first image")
        second = read_upload(image_b, engine.settings.max_upload_bytes, "second image")
        check_image_bytes(first, "first image")
        check_image_bytes(second, "second image")
        result = engine.searching.verify_as(
            current.principal,
            first,
            second,
            purpose=purpose or None,
            case_id=case_ref or None,
            fmr=parse_fmr(fmr),
        )
    except EXPECTED_ERRORS as error:
        return form_error(current, "verify.html", error, chosen)
    max_pixels = engine.settings.max_probe_pixels
    verdict = meaning.verdict(current.language, result.same_person, result.decision_fmr)
    return current.render(
        "verify.html",
        status=422 if result.error else 200,
        result=result,
        verdict=verdict,
        photos=[shown_probe(first, max_pixels), shown_probe(second, max_pixels)],
        error=result.error,
        chosen=chosen,
        **form_context(current),
    )


@router.get("/crops/{face_id}")
def crop(face_id: int, current: Annotated[Page, Depends(signed_in("faces.read"))], case: str = "") -> Response:
    """One stored face's crop, read under the case (audited as ``face_crop``): the candidates of a probe
    face other than the largest, fetched by the browser when that face is chosen."""
    return jpeg_answer(current, lambda: current.engine.reads.crop(current.principal, face_id, case_ref=case or None))


VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


@router.get("/media/{face_id}")
def media(face_id: int, current: Annotated[Page, Depends(signed_in("faces.read"))], case: str = "") -> Response:
    """The video a face was tracked in, for the page's player to play from the face's time (audited as
    ``video_read``; the browser asks for parts of it, by range)."""
    try:
        face = current.engine.reads.video(current.principal, face_id, case_ref=case or None)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return Response(message, status_code=status, media_type="text/plain")
    kind = VIDEO_TYPES.get(Path(face.image_path).suffix.lower(), "application/octet-stream")
    if not Path(face.image_path).is_file():
        return Response("the video is no longer there", status_code=404, media_type="text/plain")
    return FileResponse(face.image_path, media_type=kind, headers={"cache-control": "private, no-store"})
