"""A flood of wrong secrets for a known key id must not slow a valid client down (issue 10: at most 2x).

Starts the real server (``facesearch serve``, its own process) on a small data folder, and measures one valid
client's requests, one after the other, while another process floods the server from ``--flooders``
connections with the valid key's id and wrong secrets, as fast as the server answers:

- ``cheap``: ``GET /v1/me`` with a wrong secret;
- ``upload``: ``POST /v1/search`` with a wrong secret and a real photo in the body (what would make the
  server parse a multipart body before it looked at the key).

The valid client runs ``GET /v1/me`` (authentication alone) and ``POST /v1/search`` (the real work), each
without a flood and under each flood. Reports p50 / p95 latency and the ratio to the quiet p50.

    python benchmarks/auth_flood.py [--seconds 10] [--flooders 4] [--json]

Every failed secret would cost an argon2 hash (about 20 ms of a core) if the failure limit were checked after
hashing; checked before (per address and per key id), a refused attempt costs a dictionary lookup.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, use_shared_models
from load_api import PURPOSE, build, free_port, probe_photo, start_server


def flood(base: str, key: str, kind: str, connections: int, stop_at: float, photo: bytes, counts: Any) -> None:
    """Send wrong secrets for ``key``'s id from ``connections`` threads until ``stop_at`` (wall clock)."""
    import threading

    import httpx

    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    def one(number: int) -> None:
        sent = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {wrong}"}, timeout=30) as http:
            while time.time() < stop_at:
                try:
                    if kind == "cheap":
                        http.get("/v1/me")
                    else:
                        http.post("/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")}, data=PURPOSE)
                except httpx.HTTPError:
                    pass
                sent += 1
        counts[number] = sent

    threads = [threading.Thread(target=one, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(base: str, key: str, what: str, seconds: float, photo: bytes) -> list[float]:
    """Latencies (ms) of one valid client's requests, one after the other, for ``seconds``."""
    import httpx

    latencies = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            if what == "me":
                answer = http.get("/v1/me")
            else:
                answer = http.post("/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")}, data=PURPOSE)
            latencies.append((time.perf_counter() - t0) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"the valid client was refused: {answer.status_code} {answer.text[:200]}")
    return latencies


def phase(base: str, key: str, what: str, kind: str | None, args: argparse.Namespace, photo: bytes) -> dict[str, Any]:
    """One measurement, with a flood of ``kind`` running in another process (or none)."""
    process = None
    counts = multiprocessing.Array("l", args.flooders)
    if kind is not None:
        stop_at = time.time() + args.seconds + 2
        process = multiprocessing.Process(
            target=flood, args=(base, key, kind, args.flooders, stop_at, photo, counts), daemon=True
        )
        process.start()
        time.sleep(1.0)  # the flood is under way before the measurement starts
    latencies = np.array(measure(base, key, what, args.seconds, photo))
    if process is not None:
        process.join()
    flood_sent = int(sum(counts[:])) if kind is not None else 0
    return {
        "valid": what,
        "flood": kind or "none",
        "requests": int(latencies.size),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "flood_requests_per_s": round(flood_sent / (args.seconds + 2), 1) if kind else 0.0,
    }


def main() -> None:
    """Build, serve, flood, report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--pack", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_shared_models()
    photo = probe_photo()
    rows = []
    with tempfile.TemporaryDirectory(prefix="facesearch-flood-") as scratch:
        home = Path(scratch) / "home"
        pack_key, key = build(home, 1000, args.pack, photo)
        port = free_port()
        server = start_server(home, args.pack, port)
        base = f"http://127.0.0.1:{port}"
        try:
            measure(base, key, "search", 2.0, photo)  # warm up: the valid key is verified once, caches filled
            for what in ("me", "search"):
                quiet = phase(base, key, what, None, args, photo)
                rows.append(quiet)
                for kind in ("cheap", "upload"):
                    row = phase(base, key, what, kind, args, photo)
                    row["p50_ratio"] = round(row["p50_ms"] / quiet["p50_ms"], 2)
                    rows.append(row)
        finally:
            server.terminate()
            server.wait(timeout=60)
    worst = max(row.get("p50_ratio", 1.0) for row in rows)
    report = {"pack": pack_key, "flooders": args.flooders, "seconds": args.seconds, "phases": rows}
    report |= {"worst_p50_ratio": worst, "machine": machine()}
    if args.json:
        print(json.dumps(report))
    else:
        for row in rows:
            ratio = f", {row['p50_ratio']}x quiet" if "p50_ratio" in row else ""
            flood_rate = f" (flood {row['flood_requests_per_s']} req/s)" if row["flood"] != "none" else ""
            print(
                f"valid {row['valid']:6s} under flood {row['flood']:6s}{flood_rate}: p50 {row['p50_ms']} ms, "
                f"p95 {row['p95_ms']} ms{ratio}"
            )
        print(f"worst p50 ratio: {worst}x (target: at most 2x)")


if __name__ == "__main__":
    main()
