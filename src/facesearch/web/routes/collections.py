"""Collections, for administrators: create one with its legal basis and retention, upload photos or a zip
into it with a progress bar that follows the ingest job, see what was skipped and why, set its quality
policy and retention."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from facesearch.errors import AccessDenied
from facesearch.ingest.jobs import JobRunner
from facesearch.web.pages import EXPECTED_ERRORS, Page, PageRefused, error_status, signed_in

router = APIRouter(include_in_schema=False)

MANAGERS = ("collections.manage",)


def _jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def _page(current: Page, *, status: int = 200, error: str | None = None, **extra: Any) -> Response:
    principal = current.principal
    try:
        skipped = current.engine.collections.skipped(principal, limit=50)
    except AccessDenied:
        skipped = []  # a limited administrator does not see other collections' file names
    return current.render(
        "collections.html",
        status=status,
        collections=current.engine.collections.list(principal),
        jobs=_jobs(current.request).list(principal, limit=20),
        skipped=skipped,
        error=error,
        **extra,
    )


@router.get("/collections")
def collections(current: Annotated[Page, Depends(signed_in(*MANAGERS))]) -> Response:
    """The collections with their counts, legal basis, retention and quality policy; recent ingest jobs."""
    return _page(current)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip() else None


def _float_or_none(text: str) -> float | None:
    return float(text) if text.strip() else None


@router.post("/collections")
def create(
    current: Annotated[Page, Depends(signed_in(*MANAGERS))],
    name: Annotated[str, Form(max_length=100)],
    legal_basis: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form()] = "",
    description: Annotated[str, Form(max_length=2000)] = "",
    retention_days: Annotated[str, Form(max_length=10)] = "",
    min_quality: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Create a collection: its legal basis is required (why these photos may be held and searched)."""
    current.check_form(csrf)
    try:
        current.engine.collections.create(
            current.principal,
            name.strip(),
            legal_basis=legal_basis.strip() or None,
            description=description.strip() or None,
            retention_days=_int_or_none(retention_days),
            min_quality=_float_or_none(min_quality),
        )
    except (*EXPECTED_ERRORS, ValueError) as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return current.redirect("/collections")


@router.post("/collections/{name}/policy")
def policy(
    name: str,
    current: Annotated[Page, Depends(signed_in(*MANAGERS))],
    csrf: Annotated[str, Form()] = "",
    retention_days: Annotated[str, Form(max_length=10)] = "",
    min_quality: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Set the collection's quality policy and retention."""
    current.check_form(csrf)
    try:
        current.engine.collections.set_quality_policy(current.principal, name, _float_or_none(min_quality))
        current.engine.collections.set_retention(current.principal, name, _int_or_none(retention_days))
    except (*EXPECTED_ERRORS, ValueError) as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return current.redirect("/collections")


@router.post("/collections/{name}/upload")
def upload(
    name: str,
    current: Annotated[Page, Depends(signed_in(*MANAGERS, "jobs"))],
    files: Annotated[list[UploadFile], File()],
    csrf: Annotated[str, Form()] = "",
    subject_from_folder: Annotated[bool, Form()] = False,
    source_url: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Store the photos (or zip archives) and follow their ingest on the job's page."""
    current.check_form(csrf)
    try:
        job = current.engine.intake.upload(
            current.principal,
            name,
            [(f.file, f.filename) for f in files if f.filename],
            _jobs(current.request),
            subject_from_folder=subject_from_folder,
            source_url=source_url.strip() or None,
        )
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return current.redirect(f"/ingest/{job.id}")


@router.get("/ingest/{job_id}")
def job_page(job_id: int, current: Annotated[Page, Depends(signed_in("jobs"))]) -> Response:
    """One ingest job: a progress bar (kept current by the page's script), then what was indexed and skipped."""
    job = _jobs(current.request).get(current.principal, job_id)
    if job is None:
        raise PageRefused(404, current.gettext("There is no such job."))
    return current.render("job.html", job=job)


@router.get("/ingest/{job_id}/progress")
def job_progress(job_id: int, current: Annotated[Page, Depends(signed_in("jobs"))]) -> Response:
    """The job's progress as JSON, for the progress bar."""
    job = _jobs(current.request).get(current.principal, job_id)
    if job is None:
        raise PageRefused(404, current.gettext("There is no such job."))
    body = {
        "status": job.status,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "faces": job.faces,
        "finished": job.status in {"done", "failed", "interrupted"},
    }
    return current.finish(JSONResponse(body))
