"""The ingest's analysis (decode, detect, align, assess, embed) on a Ray cluster: ``facesearch index --ray``.

One analyser actor per CPU of the cluster loads the pack once and analyses chunks of files; this process only
records what comes back, through the same code as local ingest (content stored once, per-file errors with
their reasons, the index added to, everything resumable). So the guarantees are those of local ingest: a
chunk is recorded only when its analysis came back whole, and an interrupted run is resumed by running the
same command again (the files already recorded are not analysed twice).

A worker (or a whole worker node) killed mid-run costs time, not files: the chunk it was analysing goes back
to the queue for another analyser, and a replacement is started where a CPU is still free. The files
are read by path on the node that analyses them: every node must see the sources at the same paths (shared
storage, or the data folder's copy of ``s3://`` objects on shared storage). ``address`` is a Ray cluster's
address (``ray://host:10001`` or ``host:6379``) or ``local``, a throwaway cluster in this process's machine.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from facesearch.catalog.records import FileOutcome
from facesearch.errors import RayUnavailable
from facesearch.ingest.analyse import FileTask, analyse_in_worker, init_worker
from facesearch.vision.packs import PackSpec

log = logging.getLogger(__name__)

LOCAL = "local"
CONNECT_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0  # an analyser that cannot start (no free CPU, a dead node) in this time is given up
# Environment the analysers need wherever they run (model folders, quiet OpenCV).
_FORWARDED_ENV = ("FACESEARCH_MODEL_DIRS", "FACESEARCH_MODELS", "OPENCV_LOG_LEVEL")


class Analyser:
    """A pack loaded in one Ray worker process, analysing chunks of files (a Ray actor)."""

    def __init__(self, spec: PackSpec, models_dir: str) -> None:
        init_worker(spec, Path(models_dir))

    def analyse(self, tasks: Sequence[FileTask], max_pixels: int) -> list[FileOutcome]:
        """The outcomes of a chunk of files, as local ingest's worker processes give them."""
        return analyse_in_worker(tasks, max_pixels)

    def node(self) -> str:
        """The id of the node this analyser runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError as error:
        raise RayUnavailable("--ray needs Ray: pip install 'facesearch[ray]'") from error
    if address != LOCAL:
        _check_reachable(address)
    env = {name: os.environ[name] for name in _FORWARDED_ENV if os.environ.get(name)}
    try:
        ray.init(
            address=None if address == LOCAL else address,
            runtime_env={"env_vars": env},
            logging_level=logging.ERROR,
            log_to_driver=False,
            include_dashboard=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {error}") from error
    return ray


def _check_reachable(address: str) -> None:
    """Refuse at once an address where nothing listens (Ray itself would keep retrying for minutes)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"{address} is not a Ray address (host:port, ray://host:port, or local)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {error}") from error


def run_on_ray(
    spec: PackSpec,
    models_dir: Path,
    chunks: Iterator[list[FileTask]],
    max_pixels: int,
    address: str,
    record: Callable[[list[FileOutcome]], None],
) -> int:
    """Analyse ``chunks`` on the Ray cluster at ``address`` and ``record`` each chunk's outcomes as it comes
    back (in no particular order); returns how many analysers were started. The connection is closed at the
    end.

    A chunk whose analyser died (its process, or its whole node) goes back to the queue and is analysed by
    another; a replacement analyser is started where the cluster still has a free CPU, and only once it is
    ready is it given work, so a dead node's share never waits for resources that are gone."""
    ray = _connect(address)
    from ray.exceptions import RayActorError

    try:
        remote = ray.remote(num_cpus=1, max_restarts=0)(Analyser)

        def started(count: int) -> list[Any]:
            if count <= 0:
                return []
            actors = [remote.remote(spec, str(models_dir)) for _ in range(count)]
            probes = {actor.node.remote(): actor for actor in actors}
            ready, late = ray.wait(list(probes), num_returns=len(probes), timeout=READY_TIMEOUT_S)
            for probe in late:
                ray.kill(probes[probe])
            alive = []
            for probe in ready:
                try:
                    ray.get(probe)
                    alive.append(probes[probe])
                except RayActorError:
                    continue
            return alive

        idle = started(max(1, int(ray.cluster_resources().get("CPU", 1))))
        if not idle:
            raise RayUnavailable(f"no analyser could start on the Ray cluster at {address}")
        total = len(idle)
        queue = deque(chunks)
        running: dict[Any, tuple[Any, list[FileTask]]] = {}
        while queue or running:
            while queue and idle:
                actor, chunk = idle.pop(), queue.popleft()
                running[actor.analyse.remote(chunk, max_pixels)] = (actor, chunk)
            if not running:
                raise RayUnavailable(f"every analyser on the Ray cluster at {address} died")
            done, _ = ray.wait(list(running), num_returns=1)
            actor, chunk = running.pop(done[0])
            try:
                outcomes = ray.get(done[0])
            except RayActorError as error:
                log.warning("a Ray analyser died (%s); its %d files go to another", error, len(chunk))
                queue.appendleft(chunk)
                free = int(ray.available_resources().get("CPU", 0))
                replacements = started(min(1, free))
                total += len(replacements)
                idle.extend(replacements)
                continue
            record(outcomes)
            idle.append(actor)
        return total
    finally:
        ray.shutdown()
