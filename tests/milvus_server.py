"""A real Milvus standalone server for the tests: PyPI's ``milvus`` 2.3.5 package ("embedded Milvus") ships
the server binary. It needs ``setuptools<70`` and ``marshmallow<3.20`` beside it, so it lives in a virtual
environment of its own (``.venv-milvus``, made by ``make test``); this file is both the pytest fixture's
helper and, run by that environment's Python, the launcher (prints ``listening PORT``, stops when its
standard input closes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MILVUS_PYTHON = Path(os.environ.get("FACESEARCH_MILVUS_PYTHON", REPO / ".venv-milvus" / "bin" / "python"))


@contextmanager
def milvus_server(data_dir: Path) -> Iterator[str]:
    """Start the server with its data in ``data_dir``; yields its address (``http://127.0.0.1:PORT``).

    Raises ``FileNotFoundError`` when the server's environment is not there, ``RuntimeError`` when the
    server does not start."""
    if not MILVUS_PYTHON.is_file():
        raise FileNotFoundError(f"{MILVUS_PYTHON} is missing (make test creates it)")
    process = subprocess.Popen(
        [str(MILVUS_PYTHON), __file__, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("listening "):
                yield f"http://127.0.0.1:{int(line.split()[1])}"
                break
        else:
            raise RuntimeError("the Milvus server did not start: " + "".join(lines[-20:]))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _serve(data_dir: str) -> None:
    """Run the server until standard input closes (the test process ended, however it ended)."""
    from milvus import default_server

    default_server.set_base_dir(data_dir)
    default_server.start()
    print(f"listening {default_server.listen_port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        default_server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1])
