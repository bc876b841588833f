"""Signed audit checkpoints written outside the data folder, where whoever controls it cannot rewrite them.

The checkpoint in ``<home>/audit/checkpoint.json`` catches changes by someone who can write the database but
not the data folder. Someone who controls both (the server's administrator, an intruder with root) could
rewrite the chain, re-seal it with the folder's key and sign a new checkpoint. A *witness* is a second place
the operator chooses, out of that person's reach: an append-only file on other storage (a WORM volume, a
mounted log share) or a command that ships each line elsewhere (``logger``, ``ssh logger@host``, a
transparency log's client). Every ``interval_s`` seconds of audited activity (and when a process closes),
the newest committed record's sequence number and hash are written there as one signed JSON line:

    {"type": "audit_checkpoint", "seq": 1234, "hash": "...", "at": "2026-12-01T...", "key": "<fingerprint>",
     "signature": "<Ed25519 over seq, hash and at>"}

``facesearch audit verify --witness FILE`` then checks that the chain still holds each of those records with
that hash: a rewritten history no longer matches lines written before the rewrite, and those cannot be
taken back. A witness that cannot be written makes the action that triggered it fail (fail-closed), since the
operator asked for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from facesearch.governance.anchor import AuditAnchor, key_fingerprint, verify_signature

DEFAULT_INTERVAL_S = 60.0
COMMAND_TIMEOUT_S = 15.0


class WitnessError(RuntimeError):
    """A checkpoint could not be written to the witness."""


@dataclass(frozen=True)
class WitnessCheckpoint:
    """One line of a witness: that record ``seq`` had hash ``hash`` at time ``at``."""

    seq: int
    hash: str
    at: str
    line: int


def _message(seq: int, record_hash: str, at: str) -> bytes:
    return f"facesearch-audit-witness:{seq}:{record_hash}:{at}".encode()


class AuditWitness:
    """Writes signed checkpoints to a file (appended) or to a command's standard input.

    One per process; thread-safe. ``due`` is cheap, so it is asked after every committed append.
    """

    def __init__(
        self,
        anchor: AuditAnchor,
        *,
        path: Path | None = None,
        command: str | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if (path is None) == (command is None):
            raise ValueError("a witness is a file path or a command, exactly one of them")
        self.anchor = anchor
        self.path = path
        self.command = command
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last_write = float("-inf")
        self._witnessed_seq = 0
        self._pending: tuple[int, str] | None = None

    @property
    def target(self) -> str:
        """Where checkpoints go, in words."""
        return str(self.path) if self.path is not None else f"command: {self.command}"

    def committed(self, seq: int, record_hash: str) -> None:
        """Note a committed record; write a checkpoint now if the last one is ``interval_s`` old."""
        with self._lock:
            if self._pending is None or seq > self._pending[0]:
                self._pending = (seq, record_hash)
            if time.monotonic() - self._last_write < self.interval_s:
                return
            self._write_pending()

    def flush(self) -> None:
        """Write the newest committed record not yet witnessed (when a process closes its data folder)."""
        with self._lock:
            self._write_pending()

    def write(self, seq: int, record_hash: str) -> str:
        """Write a checkpoint of record ``seq`` now, whatever the interval; returns the line written."""
        with self._lock:
            self._pending = (seq, record_hash)
            return self._write_pending() or ""

    def _write_pending(self) -> str | None:
        if self._pending is None or self._pending[0] <= self._witnessed_seq:
            return None
        seq, record_hash = self._pending
        at = datetime.now(UTC).isoformat(timespec="seconds")
        document = {
            "type": "audit_checkpoint",
            "seq": seq,
            "hash": record_hash,
            "at": at,
            "key": key_fingerprint(self.anchor.public_key_pem()),
            "signature": self.anchor.sign(_message(seq, record_hash, at)),
        }
        line = json.dumps(document, sort_keys=True) + "\n"
        try:
            if self.path is not None:
                self._append(self.path, line)
            else:
                self._run(line)
        except (OSError, subprocess.SubprocessError) as error:
            raise WitnessError(f"the audit witness ({self.target}) could not be written: {error}") from error
        self._witnessed_seq = seq
        self._last_write = time.monotonic()
        return line

    @staticmethod
    def _append(path: Path, line: str) -> None:
        # O_APPEND: several processes (a server, the CLI) may write the same witness; each line lands whole.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _run(self, line: str) -> None:
        assert self.command is not None
        completed = subprocess.run(
            self.command,
            shell=True,  # the operator's own command line from the data folder's config (like a cron entry)
            input=line,
            text=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if completed.returncode != 0:
            raise WitnessError(
                f"the audit witness command exited {completed.returncode}: {completed.stderr.strip()[:200]}"
            )


def read_witness(text: str, public_key_pem: str) -> list[WitnessCheckpoint]:
    """The checkpoints of a witness file, each signature checked against ``public_key_pem``.

    Lines that are not checkpoints (a shared log's other lines) are ignored; a checkpoint with a bad signature
    raises ``ValueError`` naming its line, since it means the witness itself was tampered with or mixed up.
    """
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        start = raw.find("{")
        if start < 0:
            continue
        try:
            document = json.loads(raw[start:])  # a log line may carry a prefix (syslog's timestamp and tag)
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict) or document.get("type") != "audit_checkpoint":
            continue
        try:
            seq, record_hash, at = int(document["seq"]), str(document["hash"]), str(document["at"])
            signature = str(document["signature"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"witness line {number} is a malformed checkpoint") from error
        if not verify_signature(public_key_pem, _message(seq, record_hash, at), signature):
            raise ValueError(f"witness line {number} is not signed by this data folder's key")
        found.append(WitnessCheckpoint(seq, record_hash, at, number))
    return found
