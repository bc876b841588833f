"""What anchors the audit chain outside the database: a signing key and a signed checkpoint file.

The audit records live in the catalog, so whoever can write the database could edit, delete or reorder them.
Two things kept in the data folder (``<home>/audit/``), not in the database, make that detectable:

- ``signing-key.pem``: an Ed25519 key (mode 0600). Each record carries a *seal*, an HMAC of its hash under a
  key derived from this one, so a record edited in the database cannot be given a valid seal again, even if
  the editor recomputes every hash after it. Exports are signed with the key itself.
- ``checkpoint.json``: the newest record's sequence number and hash, signed with the key, rewritten after
  every append. Removing the last records (or all of them) leaves the chain shorter than the checkpoint.

- ``public-key.pem``: the public half, written beside the key, for verifiers (``facesearch audit public-key``).

Threat model: this detects changes by someone who can write the database but not the data folder (a database
administrator, a leaked database password, a restored old backup). Someone who controls both the database
and the data folder can rewrite everything the folder vouches for; against them, the data folder also writes
signed checkpoints to a witness outside it (:mod:`facesearch.governance.witness`) and signed exports can be
kept where they cannot reach.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "public-key.pem"
CHECKPOINT_FILE = "checkpoint.json"
LOCK_FILE = "checkpoint.lock"
_SEAL_CONTEXT = b"facesearch audit seal v1"


@dataclass(frozen=True)
class Checkpoint:
    """The newest audit record known to the data folder: its sequence number and hash."""

    seq: int
    hash: str


def public_key_pem(key: Ed25519PublicKey) -> str:
    """A public key as PEM text (how exports carry it)."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(public_pem: str) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the sha256 of its PEM text."""
    return hashlib.sha256(public_pem.strip().encode()).hexdigest()[:16]


def read_public_key(folder: Path) -> str | None:
    """The public key (PEM) of the audit anchor in ``folder``, or ``None``; creates nothing.

    Read from ``public-key.pem``, or derived from the private key in folders written before that file existed.
    """
    public = Path(folder) / PUBLIC_KEY_FILE
    if public.is_file():
        return public.read_text(encoding="ascii")
    private = Path(folder) / KEY_FILE
    if not private.is_file():
        return None
    loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{private} is not an Ed25519 key")
    return public_key_pem(loaded.public_key())


def verify_signature(public_pem: str, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``message`` by ``public_pem``."""
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class AuditAnchor:
    """The signing key and the checkpoint file of one data folder's audit chain."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._key: Ed25519PrivateKey | None = None
        self._seal_key: bytes | None = None

    # Key ------------------------------------------------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        """Where the private key lives."""
        return self.folder / KEY_FILE

    def has_key(self) -> bool:
        """True once the first audit record was written (the key is created with it)."""
        return self.key_path.is_file()

    def private_key(self) -> Ed25519PrivateKey:
        """The signing key, created on first use (safely when several processes start at once)."""
        if self._key is None:
            if not self.key_path.exists():
                self._create_key()
            loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{self.key_path} is not an Ed25519 key")
            self._key = loaded
        return self._key

    def _create_key(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temporary = self.folder / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() fails if another process won the race: its key is then the one everybody uses.
            os.link(temporary, self.key_path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
        self._write_public_key()

    def _write_public_key(self) -> None:
        """Write ``public-key.pem`` beside the key (atomically), for whoever verifies exports and witnesses."""
        loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{self.key_path} is not an Ed25519 key")
        temporary = self.folder / f".{PUBLIC_KEY_FILE}.{os.getpid()}"
        temporary.write_text(public_key_pem(loaded.public_key()), encoding="ascii")
        os.replace(temporary, self.folder / PUBLIC_KEY_FILE)

    def public_key_pem(self) -> str:
        """The public half, as PEM, for verifying exports elsewhere (creates the key pair on first use)."""
        key = public_key_pem(self.private_key().public_key())
        if not (self.folder / PUBLIC_KEY_FILE).is_file():
            self._write_public_key()  # a folder from before public-key.pem existed
        return key

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self.private_key().sign(message)).decode()

    def seal(self, record_hash: str) -> str:
        """HMAC-SHA256 of a record's hash under a key derived from the signing key (hex)."""
        if self._seal_key is None:
            raw = self.private_key().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            self._seal_key = hashlib.sha256(_SEAL_CONTEXT + raw).digest()
        return hmac.new(self._seal_key, record_hash.encode(), hashlib.sha256).hexdigest()

    # Checkpoint -----------------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        """Where the signed checkpoint lives."""
        return self.folder / CHECKPOINT_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def advance(self, seq: int, record_hash: str, *, force: bool = False) -> None:
        """Move the checkpoint to record ``seq`` unless it already stands at or beyond it.

        Appends from several processes commit in sequence order but may reach this point in any order; the
        file lock and the comparison keep the checkpoint from ever moving back (``force``, for a re-anchoring
        only, replaces it whatever it says). The file is replaced atomically but not flushed to disk (an fsync
        per search would double its cost): after a power loss the checkpoint may lag behind the last records,
        which stay chained and sealed.
        """
        with self._locked():
            if not force and self._stored_seq() >= seq:
                return
            body = {"seq": seq, "hash": record_hash}
            document = {**body, "signature": self.sign(_checkpoint_message(seq, record_hash))}
            temporary = self.checkpoint_path.with_name(CHECKPOINT_FILE + ".tmp")
            temporary.write_text(json.dumps(document), encoding="utf-8")
            os.replace(temporary, self.checkpoint_path)

    def _stored_seq(self) -> int:
        """The checkpoint's sequence number as stored (0 when none or unreadable); its signature is checked
        by :meth:`read_checkpoint`, not here, since only the order matters for moving it on."""
        try:
            return int(json.loads(self.checkpoint_path.read_text(encoding="utf-8"))["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def read_checkpoint(self) -> Checkpoint | None:
        """The checkpoint, or ``None`` when there is none; raises ``ValueError`` if its signature is bad."""
        with self._locked():
            return self._read_unlocked()

    def _read_unlocked(self) -> Checkpoint | None:
        try:
            document = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"the audit checkpoint {self.checkpoint_path} cannot be read: {error}") from error
        try:
            seq, record_hash, signature = int(document["seq"]), str(document["hash"]), str(document["signature"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the audit checkpoint {self.checkpoint_path} is malformed") from error
        message = _checkpoint_message(seq, record_hash)
        if not verify_signature(self.public_key_pem(), message, signature):
            raise ValueError(f"the audit checkpoint {self.checkpoint_path} has an invalid signature")
        return Checkpoint(seq, record_hash)


def _checkpoint_message(seq: int, record_hash: str) -> bytes:
    return f"facesearch-audit-checkpoint:{seq}:{record_hash}".encode()
