"""Collections (with legal basis and retention), ingest by upload or by server-side path, and jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import PathId
from facesearch.api.errors import ApiError
from facesearch.api.schemas import (
    CollectionIn,
    CollectionOut,
    ErasureOut,
    ErrorBody,
    IngestPathIn,
    QualityPolicyIn,
    RetentionIn,
)
from facesearch.governance.access import Principal
from facesearch.ingest.jobs import Job, JobRunner

router = APIRouter(prefix="/v1", tags=["collections"])
# The issue names job progress ``GET /jobs/{id}``: the same answer without the version prefix.
aliases = APIRouter(tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (401, 403, 404, 409, 413, 415, 422, 429, 507)
}


def _jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


@router.get("/collections", response_model=list[CollectionOut], responses=ERRORS)
def list_collections(
    request: Request, principal: Annotated[Principal, Depends(require("collections.read"))]
) -> list[dict[str, Any]]:
    """The collections you may see, with legal basis, retention and counts."""
    return engine_of(request).collections.list(principal)


@router.post("/collections", status_code=201, response_model=CollectionOut, responses=ERRORS)
def create_collection(
    request: Request, body: CollectionIn, principal: Annotated[Principal, Depends(require("collections.manage"))]
) -> dict[str, Any]:
    """Create a collection (administrators who see every collection); its legal basis is required."""
    return engine_of(request).collections.create(
        principal,
        body.name,
        legal_basis=body.legal_basis,
        description=body.description,
        source=body.source,
        retention_days=body.retention_days,
        min_quality=body.min_quality,
    )


@router.get("/collections/{name}", response_model=CollectionOut, responses=ERRORS)
def get_collection(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("collections.read"))]
) -> dict[str, Any]:
    """One collection."""
    return engine_of(request).collections.get(principal, name)


@router.delete("/collections/{name}", response_model=ErasureOut, responses=ERRORS)
def delete_collection(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("collections.manage"))]
) -> dict[str, Any]:
    """Erase a collection: every image, face, vector and uploaded file in it (audited)."""
    engine = engine_of(request)
    engine.collections.get(principal, name)
    return engine.erasure.erase(principal, "collection", [name]).to_dict()


@router.put("/collections/{name}/quality-policy", response_model=CollectionOut, responses=ERRORS)
def set_quality_policy(
    request: Request,
    name: str,
    body: QualityPolicyIn,
    principal: Annotated[Principal, Depends(require("collections.manage"))],
) -> dict[str, Any]:
    """Set the quality below which the collection's later ingests do not index faces (faces already in stay)."""
    return engine_of(request).collections.set_quality_policy(principal, name, body.min_quality)


@router.put("/collections/{name}/retention", response_model=CollectionOut, responses=ERRORS)
def set_retention(
    request: Request, name: str, body: RetentionIn, principal: Annotated[Principal, Depends(require("retention"))]
) -> dict[str, Any]:
    """Set how many days the collection keeps its images (``null``: until erased)."""
    return engine_of(request).collections.set_retention(principal, name, body.days)


@router.post("/collections/{name}/uploads", status_code=202, response_model=Job, responses=ERRORS)
def upload_images(
    request: Request,
    name: str,
    principal: Annotated[Principal, Depends(require("collections.manage"))],
    files: Annotated[list[UploadFile], File(description="Pictures, or zip archives of pictures.")],
    subject_from_folder: Annotated[bool, Form(description="Enrol each photo's main face under its folder.")] = False,
    source_url: Annotated[str | None, Form(max_length=2000)] = None,
) -> JSONResponse:
    """Upload pictures (or zip archives) into a collection; they are ingested by a background job."""
    job = engine_of(request).intake.upload(
        principal,
        name,
        [(upload.file, upload.filename) for upload in files],
        _jobs(request),
        subject_from_folder=subject_from_folder,
        source_url=source_url,
    )
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.post("/collections/{name}/ingest", status_code=202, response_model=Job, responses=ERRORS)
def ingest_path(
    request: Request,
    name: str,
    body: IngestPathIn,
    principal: Annotated[Principal, Depends(require("collections.manage"))],
) -> JSONResponse:
    """Ingest a folder or file on the server; it must lie inside the configured ingest roots."""
    job = engine_of(request).intake.ingest_path(
        principal,
        name,
        body.path,
        _jobs(request),
        subject_from_folder=body.subject_from_folder,
        source_url=body.source_url,
    )
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/jobs", response_model=list[Job], tags=["jobs"], responses=ERRORS)
def list_jobs(request: Request, principal: Annotated[Principal, Depends(require("jobs"))]) -> list[Job]:
    """Jobs of the collections you may see, newest first."""
    return _jobs(request).list(principal)


@router.get("/jobs/{job_id}", response_model=Job, tags=["jobs"], responses=ERRORS)
@aliases.get("/jobs/{job_id}", response_model=Job, responses=ERRORS, summary="Get Job (same as /v1/jobs/{job_id})")
def get_job(request: Request, job_id: PathId, principal: Annotated[Principal, Depends(require("jobs"))]) -> Job:
    """One job and its progress."""
    job = _jobs(request).get(principal, job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"unknown job {job_id}")
    return job
