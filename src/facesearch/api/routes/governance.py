"""Erasure, "forget this person", the opt-out list and retention purges (administrators; all audited by the
services, which also keep an administrator limited to some collections inside them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import PathId, read_upload
from facesearch.api.errors import ApiError
from facesearch.api.schemas import ErasureIn, ErasureOut, ErrorBody, ForgetEraseIn, ForgetOut, OptOutOut
from facesearch.governance.access import Principal
from facesearch.governance.optout import OptOuts
from facesearch.ingest.sources.uploads import check_image_bytes

router = APIRouter(prefix="/v1", tags=["erasure and opt-out"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 413, 415, 422, 429)}


@router.post("/erasure", response_model=ErasureOut, responses=ERRORS)
def erase(
    request: Request, body: ErasureIn, principal: Annotated[Principal, Depends(require("erase"))]
) -> dict[str, Any]:
    """Erase images (id or path), faces, subjects (label), source URLs or collections, in your collections.

    Rows, vectors, crops and uploaded files go; the audit record keeps counts, never what was erased.
    """
    return engine_of(request).erasure.erase(principal, body.kind, body.values).to_dict()


@router.post("/forget/candidates", response_model=ForgetOut, responses=ERRORS)
def forget_candidates(
    request: Request,
    principal: Annotated[Principal, Depends(require("erase"))],
    image: Annotated[UploadFile, File(description="A photo of the person who asked to be forgotten.")],
    threshold: Annotated[float | None, Form(ge=-1, le=1, description="Default: strict, per pack.")] = None,
) -> dict[str, Any]:
    """Every face (of your collections) at or above a strict threshold for the person in the photo."""
    engine = engine_of(request)
    data = read_upload(image, engine.settings.max_upload_bytes, "image")
    check_image_bytes(data, "image")
    limit = threshold if threshold is not None else engine.searching.forget_threshold()
    candidates, error = engine.searching.forget_candidates(data, threshold=limit, principal=principal)
    if error:
        raise ApiError(422, "image_rejected", error)
    return {"threshold": limit, "candidates": [c.model_dump() for c in candidates]}


@router.post("/forget/erase", response_model=ErasureOut, responses=ERRORS)
def forget_erase(
    request: Request, body: ForgetEraseIn, principal: Annotated[Principal, Depends(require("erase"))]
) -> dict[str, Any]:
    """Erase the faces confirmed after review."""
    return engine_of(request).erasure.erase(principal, "face", body.face_ids).to_dict()


@router.get("/optouts", responses=ERRORS)
def list_optouts(request: Request, principal: Annotated[Principal, Depends(require("optout"))]) -> list[dict[str, Any]]:
    """Opt-outs: ids, dates, notes (never faces). Administrators who see every collection."""
    return engine_of(request).optouts.list(principal)


@router.post("/optouts", status_code=201, response_model=OptOutOut, responses=ERRORS)
def add_optout(
    request: Request,
    principal: Annotated[Principal, Depends(require("optout"))],
    image: Annotated[UploadFile, File(description="A photo of the person; it is not kept.")],
    note: Annotated[str | None, Form(max_length=2000)] = None,
) -> dict[str, Any]:
    """Put a person on the opt-out list and erase their stored faces; from now on ingests drop them."""
    OptOuts.check(principal)  # before the upload is read and analysed
    engine = engine_of(request)
    data = read_upload(image, engine.settings.max_upload_bytes, "image")
    check_image_bytes(data, "image")
    return engine.optouts.add_photo(principal, data, note=note)


@router.delete("/optouts/{optout_id}", status_code=204, response_class=Response, responses=ERRORS)
def remove_optout(
    request: Request, optout_id: PathId, principal: Annotated[Principal, Depends(require("optout"))]
) -> Response:
    """Withdraw an opt-out (what was erased stays erased)."""
    engine_of(request).optouts.remove(principal, optout_id)
    return Response(status_code=204)


@router.post("/retention/purge", responses=ERRORS)
def purge(
    request: Request, principal: Annotated[Principal, Depends(require("retention"))], dry_run: bool = False
) -> dict[str, Any]:
    """Erase now every image (of your collections) older than its collection's retention."""
    return engine_of(request).retention.purge(principal, dry_run=dry_run)
