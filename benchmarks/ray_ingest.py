"""Ingest on a Ray cluster against local ingest on the same machine: the overhead of the distributed path.

    python benchmarks/ray_ingest.py [--images 1000] [--json]

The same lfw-dev photos are indexed (default pack, SQLite catalog, a fresh data folder each time) by local
ingest with 2 worker processes, and with ``--ray`` on a cluster started here as separate processes: a head
with one CPU (1 Ray worker), then a head and a worker node with one CPU each (2 Ray workers). Wall time of
the whole command (Ray's connection and the analysers' model loading included) and images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import lfw_images, machine, use_shared_models

RAY = Path(sys.executable).with_name("ray")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _index(photos: Path, home: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "index", str(photos), "-c", "bench"]
    started = time.perf_counter()
    done = subprocess.run([*command, *extra, "--json"], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "images_per_s": round(summary["files_seen"] / wall, 1), "faces": summary["faces"]}


def run(count: int) -> dict[str, Any]:
    """Local ingest, then Ray with 1 and 2 workers, on the same ``count`` photos."""
    use_shared_models()
    with tempfile.TemporaryDirectory(prefix="facesearch-ray-bench-") as scratch:
        root = Path(scratch)
        photos = root / "photos"
        photos.mkdir()
        for number, photo in enumerate(lfw_images(count)):
            (photos / f"{number:05d}_{photo.name}").symlink_to(photo)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(root)}
        result: dict[str, Any] = {"images": count, "local_2_processes": _index(photos, root / "local", env)}
        port = _port()
        ray = [str(RAY), "start", "--num-cpus=1"]
        subprocess.run([*ray, "--head", f"--port={port}", "--include-dashboard=false"], env=env, check=True)
        try:
            result["ray_1_worker"] = _index(photos, root / "ray1", env, "--ray", f"127.0.0.1:{port}")
            subprocess.run([*ray, f"--address=127.0.0.1:{port}"], env=env, check=True, capture_output=True)
            result["ray_2_workers"] = _index(photos, root / "ray2", env, "--ray", f"127.0.0.1:{port}")
        finally:
            subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True)
    result["machine"] = machine()
    return result


def main() -> int:
    """Print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.images)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
