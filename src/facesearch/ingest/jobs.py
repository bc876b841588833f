"""Background jobs (ingests), one at a time, with their progress kept in the catalog.

A server queues an ingest here (an upload, a server-side folder) and answers at once with the job; the job
runs in one worker thread of the server process, so that the ingest adds its vectors to the index the server
searches, while the ingest itself spreads decoding and embedding over worker processes. A job still queued or
running when the server stopped is marked ``interrupted``: running the same ingest again resumes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from facesearch.catalog.records import JobRecord
from facesearch.catalog.schema import iso_utc, utcnow
from facesearch.catalog.store import Catalog
from facesearch.governance.access import Principal, require
from facesearch.ingest.pipeline import IngestProgress
from facesearch.ingest.service import Ingest
from facesearch.vision.packs import ModelPack, Packs

log = logging.getLogger("facesearch.jobs")
PROGRESS_EVERY_S = 1.0


class Job(BaseModel):
    """A background job and its progress (what ``GET /v1/jobs/{id}`` answers)."""

    id: int
    kind: str
    collection: str | None
    status: str = Field(description="queued, running, done, failed or interrupted")
    files_total: int
    files_done: int
    faces: int
    result: dict[str, Any] | None = Field(description="the ingest's summary, once done")
    error: str | None
    created_by: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, job: JobRecord) -> Job:
        """The job as stored."""
        return cls(
            id=job.id,
            kind=job.kind,
            collection=job.collection,
            status=job.status,
            files_total=job.files_total,
            files_done=job.files_done,
            faces=job.faces,
            result=json.loads(job.result) if job.result else None,
            error=job.error,
            created_by=job.created_by,
            created_at=iso_utc(job.created_at),
            started_at=iso_utc(job.started_at),
            finished_at=iso_utc(job.finished_at),
        )


class JobRunner:
    """Queues ingest jobs and runs them one after the other in a background thread."""

    def __init__(self, catalog: Catalog, ingest: Ingest, packs: Packs) -> None:
        self.store = catalog.jobs
        self.ingest = ingest
        self.packs = packs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facesearch-job")
        self._pack: ModelPack | None = None
        self.store.interrupt_unfinished("the server stopped before the job finished; run it again")

    def shutdown(self) -> None:
        """Stop taking jobs; the running one finishes its current chunk (what it recorded is kept)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit_ingest(
        self,
        *,
        collection: str,
        paths: Sequence[str],
        principal: Principal,
        subject_from_folder: bool = False,
        source_url: str | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> Job:
        """Queue an ingest of ``paths`` into ``collection`` for ``principal``; returns the job as queued."""
        require(principal, "collections.manage")
        job = self.store.add("ingest", collection, len(paths), principal.actor)
        self._executor.submit(
            self._run_ingest, job.id, collection, list(paths), principal, subject_from_folder, source_url, on_done
        )
        return Job.of(job)

    def _own_pack(self) -> ModelPack:
        """The jobs' own loaded pack: what an ingest analyses in this process never shares models with searches
        (dlib's models keep state per call and must not run in two threads at once)."""
        if self._pack is None:
            self._pack = ModelPack(self.packs.spec(), self.packs.models_dir, threads=1)
        return self._pack

    def _run_ingest(
        self,
        job_id: int,
        collection: str,
        paths: list[str],
        principal: Principal,
        subject_from_folder: bool,
        source_url: str | None,
        on_done: Callable[[], None] | None,
    ) -> None:
        self.store.update(job_id, status="running", started_at=utcnow())
        last = 0.0

        def progress(update_: IngestProgress) -> None:
            nonlocal last
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self.store.update(
                    job_id, files_total=update_.files_total, files_done=update_.files_done, faces=update_.faces
                )

        try:
            summary = self.ingest.index(
                paths,
                collection=collection,
                subject_from_folder=subject_from_folder,
                source_url=source_url,
                on_progress=progress,
                model_pack=self._own_pack(),
                principal=principal,  # the ingest is audited as them, before any photo is read
            )
            result = summary.to_dict()
            self.store.update(
                job_id,
                status="done",
                files_total=result["files_seen"],
                files_done=result["files_seen"],
                faces=result["faces"],
                result=json.dumps(result),
                finished_at=utcnow(),
            )
        except Exception as error:  # a failed job is reported on the job, never lost
            log.exception("job %s failed", job_id)
            self.store.update(job_id, status="failed", error=f"{type(error).__name__}: {error}", finished_at=utcnow())
        finally:
            if on_done is not None:
                on_done()

    def get(self, principal: Principal, job_id: int) -> Job | None:
        """One job of a collection ``principal`` may see, or ``None``."""
        require(principal, "jobs")
        job = self.store.job(job_id)
        if job is None or (job.collection is not None and not principal.may_see(job.collection)):
            return None
        return Job.of(job)

    def list(self, principal: Principal, limit: int = 100) -> list[Job]:
        """Jobs of the collections ``principal`` may see, newest first."""
        require(principal, "jobs")
        return [Job.of(job) for job in self.store.jobs(collections=principal.scope, limit=limit)]
