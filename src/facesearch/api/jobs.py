"""Background jobs of the server (ingests), one at a time, with their progress kept in the catalog.

Jobs run in one worker thread of the server process, so that the ingest adds its vectors to the index the
server searches; the ingest itself spreads decoding and embedding over worker processes. A job still queued
or running when the server stopped is marked ``interrupted``: running the same ingest again resumes it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update

from facesearch.catalog.schema import Job, iso_utc, utcnow
from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from facesearch.ingest.pipeline import IngestProgress
from facesearch.vision.packs import ModelPack

log = logging.getLogger("facesearch.jobs")
PROGRESS_EVERY_S = 1.0
SERVER_ACTOR = "facesearch-server"
"""How the server's own scheduled work (retention purges) is named in the audit log."""


def job_dict(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": job.id,
        "kind": job.kind,
        "collection": job.collection,
        "status": job.status,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "faces": job.faces,
        "result": json.loads(job.result) if job.result else None,
        "error": job.error,
        "created_by": job.created_by,
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
    }


class JobRunner:
    """Queues ingest jobs and runs them one after the other in a background thread."""

    def __init__(self, engine: FaceSearch) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facesearch-job")
        self._pack: ModelPack | None = None
        self._interrupt_leftovers()

    def _interrupt_leftovers(self) -> None:
        with self.engine.catalog.session() as session, session.begin():
            session.execute(
                update(Job)
                .where(Job.status.in_(["queued", "running"]))
                .values(status="interrupted", error="the server stopped before the job finished; run it again")
            )

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
    ) -> dict[str, Any]:
        """Queue an ingest of ``paths`` into ``collection`` for ``principal``; returns the job as queued."""
        with self.engine.catalog.session() as session, session.begin():
            job = Job(
                kind="ingest",
                collection=collection,
                status="queued",
                files_total=len(paths),
                files_done=0,
                faces=0,
                created_by=principal.actor,
            )
            session.add(job)
            session.flush()
            queued = job_dict(job)
        self._executor.submit(
            self._run_ingest, queued["id"], collection, list(paths), principal, subject_from_folder, source_url, on_done
        )
        return queued

    def _own_pack(self) -> ModelPack:
        """The jobs' own loaded pack: what an ingest analyses in this process never shares models with searches
        (dlib's models keep state per call and must not run in two threads at once)."""
        if self._pack is None:
            self._pack = ModelPack(self.engine.pack_spec(), self.engine.settings.models_dir, threads=1)
        return self._pack

    def _update(self, job_id: int, **values: Any) -> None:
        with self.engine.catalog.session() as session, session.begin():
            session.execute(update(Job).where(Job.id == job_id).values(**values))

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
        self._update(job_id, status="running", started_at=utcnow())
        last = 0.0

        def progress(update_: IngestProgress) -> None:
            nonlocal last
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self._update(
                    job_id, files_total=update_.files_total, files_done=update_.files_done, faces=update_.faces
                )

        try:
            summary = self.engine.index(
                paths,
                collection=collection,
                subject_from_folder=subject_from_folder,
                source_url=source_url,
                on_progress=progress,
                model_pack=self._own_pack(),
                principal=principal,  # the ingest is audited as them, before any photo is read
            )
            result = summary.to_dict()
            self._update(
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
            self._update(job_id, status="failed", error=f"{type(error).__name__}: {error}", finished_at=utcnow())
        finally:
            if on_done is not None:
                on_done()

    def get(self, principal: Principal, job_id: int) -> dict[str, Any] | None:
        """One job of a collection ``principal`` may see, or ``None``."""
        with self.engine.catalog.session() as session:
            job = session.get(Job, job_id)
            if job is None or (job.collection is not None and not principal.may_see(job.collection)):
                return None
            return job_dict(job)

    def list(self, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs of the collections ``principal`` may see, newest first."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if principal.scope is not None:
            query = query.where(Job.collection.in_(sorted(principal.scope)))
        with self.engine.catalog.session() as session:
            return [job_dict(j) for j in session.scalars(query)]


class RetentionScheduler:
    """Runs the retention purge at start and then every ``interval_s`` seconds, in a daemon thread."""

    def __init__(self, engine: FaceSearch, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="facesearch-retention", daemon=True)
        self.last_report: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the schedule (the first purge runs at once)."""
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop after the current purge."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_report = self.engine.purge(principal=Principal.operator_as(SERVER_ACTOR))
            except Exception:  # the schedule goes on; the next round tries again
                log.exception("scheduled retention purge failed")
            self._stop.wait(self.interval_s)
