"""Server load: concurrent clients sending real searches to ``facesearch serve`` over loopback.

Builds a data folder whose catalog and index hold ``--faces`` faces (synthetic unit vectors inserted through
the catalog store, plus the real faces of the probe photo, indexed normally), starts the real server as its
own process, and has ``--clients`` threads each POST /v1/search with a real photo (multipart, purpose and
case, top 10) for ``--seconds`` seconds. Every request goes the whole way: upload, content sniffing, decode,
detection, embedding, index search, candidate metadata, and the audit record with its signed checkpoint.

    python benchmarks/load_api.py [--faces 100000] [--clients 8] [--seconds 60] [--pack NAME] [--json]

Prints requests/s, latency p50/p99 and errors (any answer but 200, or a failed connection).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, use_shared_models

PURPOSE = {"purpose": "humanitarian", "case_id": "LOAD-1", "top_k": "10"}


def probe_photo() -> bytes:
    """The probe: scikit-image's astronaut photo (public domain), as a 512x512 JPEG."""
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build(home: Path, faces: int, pack: str | None, photo: bytes) -> tuple[str, str]:
    """A data folder with ``faces`` synthetic faces and the photo's real ones; returns (pack key, API key)."""
    from facesearch.catalog.store import FileOutcome, NewFace
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch

    home.mkdir(parents=True)
    # The benchmark measures throughput, not the per-key rate limit (600 a minute by default).
    (home / "config.toml").write_text("rate_limit_per_minute = 1000000\n")
    with FaceSearch(Settings.load(home, pack=pack)) as engine:
        model_pack = engine.packs.pack()
        index = engine.indexes.of(model_pack.key, model_pack.dim)
        collection = engine.catalog.ensure_collection("gallery", legal_basis="benchmark (synthetic)")
        rng = np.random.default_rng(0)
        for start in range(0, faces, 5000):
            count = min(5000, faces - start)
            vectors = rng.normal(size=(count, model_pack.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            outcomes = [
                FileOutcome(
                    f"/synthetic/{start + i}.jpg",
                    1000,
                    0.0,
                    f"{start + i:064x}",
                    "ok",
                    250,
                    250,
                    faces=[NewFace((10, 10, 100, 100), None, 0.9, 0.9, [], vectors[i], None)],
                )
                for i in range(count)
            ]
            recorded = engine.catalog.record_files(collection, model_pack.key, outcomes)
            index.add(
                np.array([r.face_ids[0] for r in recorded], dtype=np.int64),
                np.stack([r.embeddings[0] for r in recorded]),
            )
        index.save()
        real = home.parent / "real" / "Eileen_Collins"
        real.mkdir(parents=True)
        (real / "astronaut.jpg").write_bytes(photo)
        engine.index([real.parent], collection="gallery", subject_from_folder=True, workers=1)
        engine.accounts.add_user(engine.operator, "loadtest", "investigator")
        _, key = engine.accounts.create_key(engine.operator, "loadtest")
        return model_pack.key, key


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, pack: str | None, port: int) -> subprocess.Popen[bytes]:
    """``facesearch --home H serve`` as its own process; returns once /health answers."""
    import httpx

    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home)]
    command += ["--pack", pack] if pack else []
    command += ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited before answering /health")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start in time")


def run_load(base: str, key: str, photo: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads searching for ``seconds``; returns counts and latencies."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(number: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            start_line.wait()
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    answer = http.post("/v1/search", files={"image": ("probe.jpg", photo, "image/jpeg")}, data=PURPOSE)
                    if answer.status_code != 200:
                        errors[number].append(f"{answer.status_code} {answer.text[:120]}")
                except httpx.HTTPError as error:
                    errors[number].append(f"{type(error).__name__}: {error}")
                latencies[number].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = np.array([t for per_client in latencies for t in per_client]) * 1000
    failed = [e for per_client in errors for e in per_client]
    return {
        "requests": int(every.size),
        "elapsed_s": round(elapsed, 1),
        "requests_per_s": round(every.size / elapsed, 2),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "p99_ms": round(float(np.percentile(every, 99)), 1),
        "max_ms": round(float(every.max()), 1),
        "errors": len(failed),
        "error_samples": failed[:5],
    }


def main() -> None:
    """Build, serve, load, report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pack", default=None, help="model pack (default: the best available)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_shared_models()
    photo = probe_photo()
    with tempfile.TemporaryDirectory(prefix="facesearch-load-") as scratch:
        home = Path(scratch) / "home"
        t0 = time.perf_counter()
        pack_key, key = build(home, args.faces, args.pack, photo)
        build_s = time.perf_counter() - t0
        port = free_port()
        server = start_server(home, args.pack, port)
        try:
            base = f"http://127.0.0.1:{port}"
            warm = run_load(base, key, photo, 2, 3.0)  # first requests pay for caches
            result = run_load(base, key, photo, args.clients, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=60)
    report = {
        "faces": args.faces,
        "clients": args.clients,
        "seconds": args.seconds,
        "pack": pack_key,
        **result,
        "warmup_errors": warm["errors"],
        "build_s": round(build_s, 1),
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['clients']} clients, {report['seconds']:.0f} s, {report['faces']} faces ({pack_key}): "
            f"{report['requests_per_s']} requests/s, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
            f"{report['errors']} errors ({report['requests']} requests)"
        )
    if report["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
