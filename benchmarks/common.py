"""Helpers shared by the benchmarks: where ../shared is, and machine facts for the record."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared")).resolve()
LFW = SHARED / "data" / "lfw-dev" / "images"


def use_shared_models() -> None:
    """Let packs find the ONNX models in ../shared/models (read in place, never copied)."""
    models = SHARED / "models"
    if models.is_dir() and not os.environ.get("FACESEARCH_MODEL_DIRS"):
        os.environ["FACESEARCH_MODEL_DIRS"] = str(models)


def machine() -> dict[str, Any]:
    """CPU, cores and memory of this machine, with the date, for benchmark records."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "commit": commit,
    }


def lfw_images(limit: int) -> list[Path]:
    """The first ``limit`` LFW images in a stable order spread over people (round-robin by person)."""
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    queues = [sorted(p.glob("*.jpg")) for p in people]
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < limit and any(len(q) > depth for q in queues):
        for queue in queues:
            if len(queue) > depth:
                chosen.append(queue[depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return chosen
