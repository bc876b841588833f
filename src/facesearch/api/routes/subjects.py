"""Subjects (enrol, list, read, rename, merge), face metadata, crops and whole photos.

Reads are authorized per collection and audited by the services (who read which face, under which case); a
reviewer names the case whose candidate they read. Labels never become folder names: an enrolment's photo is
stored under a neutral name and its label given to the ingest directly.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import Limit, Offset, PathId, read_upload
from facesearch.api.errors import ApiError
from facesearch.api.schemas import ErrorBody, SubjectMergeIn, SubjectRenameIn
from facesearch.governance.access import Principal
from facesearch.governance.subjects import Subject
from facesearch.ingest.intake import LABEL_PATTERN
from facesearch.vision.image import ImageRejected

router = APIRouter(prefix="/v1", tags=["subjects"])
# The issue names crops ``GET /faces/{id}/crop.jpg``: the same answer without the version prefix.
aliases = APIRouter(tags=["faces"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 413, 415, 422, 429)}
CaseQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,199}$",
        description="The case you read this for (required of reviewers: a case you were assigned).",
    ),
]
JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}


@router.get("/subjects", response_model=list[Subject], responses=ERRORS)
def list_subjects(
    request: Request,
    principal: Annotated[Principal, Depends(require("subjects.read"))],
    limit: Limit = 1000,
    offset: Offset = 0,
    case_id: CaseQuery = None,
) -> list[Subject]:
    """Subjects with faces in the collections you may see (audited)."""
    return engine_of(request).subjects.list(principal, limit=limit, offset=offset, case_ref=case_id)


@router.get("/subjects/{subject_id}", response_model=Subject, responses=ERRORS)
def get_subject(
    request: Request,
    subject_id: PathId,
    principal: Annotated[Principal, Depends(require("subjects.read"))],
    case_id: CaseQuery = None,
) -> Subject:
    """One subject (audited)."""
    return engine_of(request).subjects.get(principal, subject_id, case_ref=case_id)


@router.post("/subjects", status_code=201, response_model=Subject, responses=ERRORS)
def enrol_subject(
    request: Request,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
    image: Annotated[UploadFile, File(description="A photo of the person (their face the largest).")],
    label: Annotated[str, Form(max_length=200, pattern=LABEL_PATTERN)],
    collection: Annotated[str, Form(min_length=1, max_length=200)],
) -> Subject:
    """Enrol a person: index the photo into ``collection`` with its main face under ``label``."""
    engine = engine_of(request)
    data = read_upload(image, engine.settings.max_upload_bytes, "image")
    return engine.intake.enrol(principal, collection, label, data, image.filename)


@router.patch("/subjects/{subject_id}", response_model=Subject, responses=ERRORS)
def rename_subject(
    request: Request,
    subject_id: PathId,
    body: SubjectRenameIn,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
) -> Subject:
    """Give a subject another label (a label already taken is refused: merge instead)."""
    return engine_of(request).subjects.rename(principal, subject_id, body.label)


@router.post("/subjects/{subject_id}/merge", response_model=Subject, responses=ERRORS)
def merge_subject(
    request: Request,
    subject_id: PathId,
    body: SubjectMergeIn,
    principal: Annotated[Principal, Depends(require("subjects.manage"))],
) -> Subject:
    """Move every face of this subject to subject ``into``, and remove this one."""
    return engine_of(request).subjects.merge(principal, subject_id, body.into)


@router.get("/faces/{face_id}", tags=["faces"], responses=ERRORS)
def get_face(
    request: Request,
    face_id: PathId,
    principal: Annotated[Principal, Depends(require("faces.read"))],
    case_id: CaseQuery = None,
) -> dict[str, Any]:
    """A stored face: image, collection, subject, source, box, quality and pack (audited)."""
    face = engine_of(request).reads.face(principal, face_id, case_ref=case_id)
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


def _jpeg(read: Any) -> Response:
    try:
        return Response(read(), media_type="image/jpeg")
    except ImageRejected as error:
        raise ApiError(404, "image_unavailable", f"the face's image can no longer be read ({error.reason})") from error


@router.get("/faces/{face_id}/crop.jpg", tags=["faces"], response_class=Response, responses={**JPEG, **ERRORS})
@aliases.get(
    "/faces/{face_id}/crop.jpg",
    response_class=Response,
    responses={**JPEG, **ERRORS},
    summary="Face Crop (same as /v1/faces/{face_id}/crop.jpg)",
)
def face_crop(
    request: Request,
    face_id: PathId,
    principal: Annotated[Principal, Depends(require("faces.read"))],
    case_id: CaseQuery = None,
) -> Response:
    """The face cut from its image (with a margin), as JPEG; cut on request, never stored (audited)."""
    reads = engine_of(request).reads
    return _jpeg(lambda: reads.crop(principal, face_id, case_ref=case_id))


@router.get("/faces/{face_id}/image.jpg", tags=["faces"], response_class=Response, responses={**JPEG, **ERRORS})
def face_image(
    request: Request,
    face_id: PathId,
    principal: Annotated[Principal, Depends(require("faces.read"))],
    case_id: CaseQuery = None,
) -> Response:
    """The whole photo the face was found in, re-encoded as JPEG, at most 2048 pixels a side (audited)."""
    reads = engine_of(request).reads
    return _jpeg(lambda: reads.image(principal, face_id, case_ref=case_id))
