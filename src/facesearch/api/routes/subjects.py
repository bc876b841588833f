"""Subjects (enrol, list, rename, merge) and face crops."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from facesearch.api.auth import engine_of, require
from facesearch.api.crops import face_crop_jpeg
from facesearch.api.deps import Limit, Offset, PathId, read_upload, visible_collections
from facesearch.api.errors import ApiError
from facesearch.api.schemas import ErrorBody, SubjectMergeIn, SubjectOut, SubjectRenameIn
from facesearch.api.uploads import check_image_bytes, new_upload_folder, remove_folder, safe_name
from facesearch.governance.accounts import Principal
from facesearch.governance.context import ActionContext
from facesearch.governance.subjects import SubjectError
from facesearch.search.service import analysis_lock
from facesearch.vision.image import ImageRejected

router = APIRouter(prefix="/v1", tags=["subjects"])
# The issue names crops ``GET /faces/{id}/crop.jpg``: the same answer without the version prefix.
aliases = APIRouter(tags=["faces"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 413, 415, 422, 429)}
# A label becomes a folder name for the enrolment ingest: no separators, no NUL, not "." or "..".
_LABEL = re.compile(r"^(?!\.{1,2}$)[^/\\\x00-\x1f]{1,200}$")


def _not_found(what: str, ident: int) -> ApiError:
    return ApiError(404, f"unknown_{what}", f"unknown {what} {ident}")


@router.get("/subjects", response_model=list[SubjectOut], responses=ERRORS)
def list_subjects(
    request: Request,
    principal: Annotated[Principal, Depends(require("subjects.read"))],
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Subjects with faces in the collections you may see."""
    return engine_of(request).subjects.list(collections=visible_collections(principal), limit=limit, offset=offset)


@router.get("/subjects/{subject_id}", response_model=SubjectOut, responses=ERRORS)
def get_subject(
    request: Request, subject_id: PathId, principal: Annotated[Principal, Depends(require("subjects.read"))]
) -> dict[str, Any]:
    """One subject."""
    try:
        return engine_of(request).subjects.get(subject_id, collections=visible_collections(principal))
    except SubjectError as error:
        raise _not_found("subject", subject_id) from error


@router.post("/subjects", status_code=201, response_model=SubjectOut, responses=ERRORS)
def enrol_subject(
    request: Request,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
    image: Annotated[UploadFile, File(description="A photo of the person (their face the largest).")],
    label: Annotated[str, Form(max_length=200)],
    collection: Annotated[str, Form(max_length=200)],
) -> dict[str, Any]:
    """Enrol a person: index the photo into ``collection`` with its main face under ``label``."""
    engine = engine_of(request)
    label = label.strip()
    if not _LABEL.match(label):
        raise ApiError(422, "invalid_label", "a label is 1-200 characters without slashes or control characters")
    if engine.catalog.collection_id(collection) is None or not principal.may_see(collection):
        raise ApiError(404, "unknown_collection", f"unknown collection {collection!r}")
    data = read_upload(image, engine.settings.max_upload_bytes, "image")
    check_image_bytes(data, "image")
    folder = new_upload_folder(engine.uploads_dir, collection)
    target = folder / label / safe_name(image.filename, "photo.jpg")
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    with analysis_lock(engine.pack()):  # one file: analysed in this process, on the pack searches use
        summary = engine.index([str(target)], collection=collection, subject_from_folder=True, workers=1)
    if summary.faces == 0:
        remove_folder(folder)
        raise ApiError(422, "no_face", "no face was found in the photo")
    engine.audit.append(
        actor=principal.actor, action="enrol", details={"collection": collection, "faces": summary.faces}
    )
    for subject in engine.subjects.list(limit=10_000):
        if subject["label"] == label:
            return subject
    raise ApiError(409, "not_enrolled", "the photo was already in the collection; nothing new was enrolled")


@router.patch("/subjects/{subject_id}", response_model=SubjectOut, responses=ERRORS)
def rename_subject(
    request: Request,
    subject_id: PathId,
    body: SubjectRenameIn,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
) -> dict[str, Any]:
    """Give a subject another label (a label already taken is refused: merge instead)."""
    try:
        return engine_of(request).subjects.rename(subject_id, body.label, ActionContext(actor=principal.actor))
    except SubjectError as error:
        status, code = (404, "unknown_subject") if "unknown" in str(error) else (409, "label_taken")
        raise ApiError(status, code, str(error)) from error


@router.post("/subjects/{subject_id}/merge", response_model=SubjectOut, responses=ERRORS)
def merge_subject(
    request: Request,
    subject_id: PathId,
    body: SubjectMergeIn,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
) -> dict[str, Any]:
    """Move every face of this subject to subject ``into``, and remove this one."""
    try:
        return engine_of(request).subjects.merge(subject_id, body.into, ActionContext(actor=principal.actor))
    except SubjectError as error:
        status, code = (404, "unknown_subject") if "unknown" in str(error) else (422, "invalid_merge")
        raise ApiError(status, code, str(error)) from error


def _face(request: Request, principal: Principal, face_id: int) -> Any:
    details = engine_of(request).catalog.face_details([face_id])
    face = details.get(face_id)
    if face is None or not principal.may_see(face.collection):
        raise _not_found("face", face_id)
    return face


@router.get("/faces/{face_id}", tags=["faces"], responses=ERRORS)
def get_face(
    request: Request, face_id: PathId, principal: Annotated[Principal, Depends(require("faces.read"))]
) -> dict[str, Any]:
    """A stored face: image, collection, subject, source, box, quality and pack."""
    face = _face(request, principal, face_id)
    return {
        "face_id": face.face_id,
        "image_id": face.image_id,
        "image": face.image_path,
        "collection": face.collection,
        "subject": face.subject,
        "source_url": face.source_url,
        "bbox": [round(float(v), 1) for v in face.bbox],
        "quality": face.quality,
        "pack": face.pack,
    }


@router.get(
    "/faces/{face_id}/crop.jpg",
    tags=["faces"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **ERRORS},
)
@aliases.get(
    "/faces/{face_id}/crop.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **ERRORS},
    summary="Face Crop (same as /v1/faces/{face_id}/crop.jpg)",
)
def face_crop(
    request: Request, face_id: PathId, principal: Annotated[Principal, Depends(require("faces.read"))]
) -> Response:
    """The face cut from its image (with a margin), as JPEG; cut on request, never stored."""
    face = _face(request, principal, face_id)
    try:
        jpeg = face_crop_jpeg(face.image_path, face.bbox, max_pixels=engine_of(request).settings.max_probe_pixels * 4)
    except ImageRejected as error:
        raise ApiError(404, "image_unavailable", f"the face's image can no longer be read ({error.reason})") from error
    return Response(jpeg, media_type="image/jpeg")
