"""A real Milvus standalone server for the tests: PyPI's ``milvus`` 2.3.5 package ("embedded Milvus") ships
the server binary. It needs ``setuptools<70`` and ``marshmallow<3.20`` beside it, so it lives in a virtual
environment of its own (``.venv-milvus``, made by ``make test``); this file is both the pytest fixture's
helper and, run by that environment's Python, the launcher (prints ``listening PORT``, stops when its
standard input closes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MILVUS_PYTHON = Path(os.environ.get("FACESEARCH_MILVUS_PYTHON", REPO / ".venv-milvus" / "bin" / "python"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusServer:
    """A standalone server on one data folder that can be stopped and started again on the same addresses.

    Its embedded etcd gets client and peer ports of its own, chosen once: left to the package, every
    standalone server's etcd takes 2379 and 2380, so a second server on the machine (another test worker's)
    would fail to start."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.address = ""
        self._process: subprocess.Popen[str] | None = None
        self._etcd_ports = (_free_port(), _free_port())  # client, peer

    def start(self) -> str:
        """Start the server (on its earlier port when it ran before) and return its address.

        Raises ``FileNotFoundError`` when the server's environment is not there, ``RuntimeError`` when the
        server does not start."""
        if not MILVUS_PYTHON.is_file():
            raise FileNotFoundError(f"{MILVUS_PYTHON} is missing (make test creates it)")
        port = int(self.address.rsplit(":", 1)[1]) if self.address else 0
        self._process = subprocess.Popen(
            [str(MILVUS_PYTHON), __file__, str(self.data_dir), str(port), *map(str, self._etcd_ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        lines = []
        for line in self._process.stdout:
            lines.append(line)
            if line.startswith("listening "):
                self.address = f"http://127.0.0.1:{int(line.split()[1])}"
                return self.address
        self.stop()
        raise RuntimeError("the Milvus server did not start: " + "".join(lines[-20:]))

    def stop(self) -> None:
        """Stop the server (its launcher stops it when its standard input closes) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def milvus_server(data_dir: Path) -> Iterator[MilvusServer]:
    """A started :class:`MilvusServer` with its data in ``data_dir``, stopped at the end."""
    server = MilvusServer(data_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _bind_reusable(port: int) -> socket.socket | None:
    """A listening socket on ``port`` with SO_REUSEADDR, or ``None`` when another process holds the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        return None
    return sock


def _serve(data_dir: str, port: int, etcd_client: int, etcd_peer: int) -> None:
    """Run the server until standard input closes (the test process ended, however it ended)."""
    from milvus import default_server

    # Milvus reads its embedded etcd's own configuration (listen and advertised URLs) from the file that
    # ETCD_CONFIG_PATH names; the server process inherits the variable.
    etcd_config = Path(data_dir) / "embed-etcd.yaml"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    client, peer = f"http://127.0.0.1:{etcd_client}", f"http://127.0.0.1:{etcd_peer}"
    etcd_config.write_text(
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\ninitial-cluster: default={peer}\n"
    )
    os.environ["ETCD_CONFIG_PATH"] = str(etcd_config)
    default_server.set_base_dir(data_dir)
    default_server.config.set("etcd_port", etcd_client)
    if port:
        default_server.config.set("proxy_port", port)
        # The package checks that a port is free by binding it without SO_REUSEADDR, which fails for a minute
        # after a server stopped (connections in TIME_WAIT); the server itself (Go) binds with it.
        default_server.config.try_bind_port = _bind_reusable
    default_server.start()
    print(f"listening {default_server.listen_port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        default_server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], *map(int, sys.argv[2:5]))
