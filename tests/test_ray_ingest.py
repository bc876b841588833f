"""``facesearch index --ray``: the analysis on a real Ray cluster (a head and a worker node started as separate
processes), the results recorded in PostgreSQL and the vectors in a real Milvus server as local ingest records
them; a worker node killed mid-run loses nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LFW, SHARED_MODELS
from .milvus_server import MilvusServer

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")
PHOTOS = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(RAY), *args], check=True, capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, dict[str, str]]]:
    """A Ray head and a worker node, one CPU each, as separate processes: (address, worker's node manager port,
    the environment to reach it with). Ray keeps an authentication token in ``~/.ray`` once a local cluster
    made one, which nodes started without it then refuse: the cluster and its clients get a home of their own."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path_factory.mktemp("ray-home"))}
    port, worker_port = _free_port(), _free_port()
    _ray(env, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false")
    try:
        _ray(env, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", f"--node-manager-port={worker_port}")
        yield f"127.0.0.1:{port}", worker_port, env
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120, env=env)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """The first PHOTOS lfw-dev photos, linked into one folder per person."""
    if not LFW.is_dir() or not (SHARED_MODELS / "yunet_2023mar.onnx").is_file():
        pytest.skip("needs ../shared's lfw-dev photos and YuNet")
    root = tmp_path / "photos"
    for photo in sorted(LFW.glob("*/*.jpg"))[:PHOTOS]:
        (root / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (root / photo.parent.name / photo.name).symlink_to(photo)
    return root


def _cli(home: Path, url: str, *args: str, index_url: str | None = None) -> list[str]:
    where = ["--index-url", index_url] if index_url else []
    return [sys.executable, "-m", "facesearch.cli", "--home", str(home), "--catalog-url", url, *where, *args]


def _images(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM image_files")).scalar() or 0)
    except Exception:  # the schema is not created yet
        return 0
    finally:
        engine.dispose()


def _kill_node(node_manager_port: int) -> int:
    """SIGKILL the raylet of the node listening on ``node_manager_port`` and every worker it started."""
    found = subprocess.run(["pgrep", "-f", f"node_manager_port={node_manager_port}"], capture_output=True, text=True)
    raylets = [int(pid) for pid in found.stdout.split()]
    killed = 0
    for raylet in raylets:
        children = subprocess.run(["pgrep", "-P", str(raylet)], capture_output=True, text=True).stdout.split()
        for pid in [raylet, *map(int, children)]:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_a_ray_cluster_ingests_like_local_ingest_and_survives_a_killed_worker_node(
    cluster: tuple[str, int, dict[str, str]], photos: Path, catalog_url: str, milvus: MilvusServer, tmp_path: Path
) -> None:
    """Indexed on a two-node cluster into PostgreSQL and a Milvus server, with the worker node killed after the
    first chunks are recorded: every photo is recorded once, the faces are those local ingest finds in the same
    photos, the server holds one vector per face, ``doctor`` finds catalog and index consistent, and running
    the command again finds everything done."""
    address, worker_port, env = cluster
    home = tmp_path / "home"
    command = _cli(
        home, catalog_url, "index", str(photos), "-c", "lfw", "--ray", address, "--json", index_url=milvus.address
    )
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while _images(catalog_url) < 24 and run.poll() is None:
        assert time.monotonic() < deadline, "nothing was recorded"
        time.sleep(0.5)
    recorded_before_kill = _images(catalog_url)
    assert _kill_node(worker_port) >= 1
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert recorded_before_kill < PHOTOS, "the run ended before the worker node was killed"
    assert summary["ray_analysers"] == 2
    assert summary["images_indexed"] + summary["duplicates"] == PHOTOS and summary["skipped"] == 0
    assert _images(catalog_url) == PHOTOS

    local = subprocess.run(
        _cli(
            tmp_path / "local", f"sqlite:///{tmp_path / 'local.sqlite3'}", "index", str(photos), "-c", "lfw", "--json"
        ),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    assert json.loads(local.stdout.strip().splitlines()[-1])["faces"] == summary["faces"]

    stats = subprocess.run(
        _cli(home, catalog_url, "index-stats", "--json", index_url=milvus.address),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    (pack,) = json.loads(stats.stdout.strip().splitlines()[-1])["packs"]
    assert pack["backend"] == "milvus" and pack["vectors"] == pack["catalog_faces"] == summary["faces"], pack
    doctor = subprocess.run(
        _cli(home, catalog_url, "doctor", "--check-only", "--json", index_url=milvus.address),
        capture_output=True,
        text=True,
        env=env,
    )
    assert json.loads(doctor.stdout.strip().splitlines()[-1])["ok"] is True, doctor.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=True)
    assert json.loads(again.stdout.strip().splitlines()[-1])["already_done"] == PHOTOS


def test_an_unreachable_cluster_is_one_clear_error(tmp_path: Path, photo_folder: Path) -> None:
    """``--ray`` at an address where no cluster answers: one line saying so and a failing exit status, at once."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path)}
    result = subprocess.run(
        _cli(
            tmp_path / "home",
            f"sqlite:///{tmp_path / 'c.sqlite3'}",
            "--pack",
            "dlib",
            "index",
            str(photo_folder),
            "-c",
            "x",
            "--ray",
            f"127.0.0.1:{_free_port()}",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode != 0
    assert "Ray cluster" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
