"""One settings object: where the data folder, models, catalog and index live, and which pack to use."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_PURPOSES: tuple[str, ...] = ("humanitarian", "investigation", "verification")
"""Purposes a search may name unless the data folder's ``config.toml`` lists others."""

UNSPECIFIED_PURPOSE = "unspecified"
"""Recorded as the purpose of a CLI or Python search that names none (the API always requires one)."""

CONFIG_FILE = "config.toml"


def read_config_file(home: Path) -> dict[str, Any]:
    """The data folder's ``config.toml`` as a dict (empty when there is none)."""
    path = home / CONFIG_FILE
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _env_list(name: str, separator: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(separator) if item.strip()]


PRIVATE_UMASK = 0o077
"""Files and folders created while a data folder is open are private to the account that runs facesearch."""


def make_private(home: Path) -> None:
    """Create ``home`` (mode 0700) and make what is created from now on private to this account.

    The data folder holds faces, embeddings, names and the audit key: nobody else on the machine may read it.
    Setting the process's umask (to 077) is the one way that also covers files that libraries create
    (SQLite's journal, FAISS's files, uploads); it applies to the whole process, which, for the CLI and the
    server, does nothing else. A data folder made by an older version is tightened: the folder itself and the
    files and folders directly in it.
    """
    os.umask(PRIVATE_UMASK)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (home, *home.iterdir()):
        try:
            mode = path.stat().st_mode & 0o777
            if mode & PRIVATE_UMASK:
                os.chmod(path, mode & ~PRIVATE_UMASK)
        except OSError:  # a file of another account, or gone meanwhile: leave it
            continue


def default_home() -> Path:
    """``$FACESEARCH_HOME`` if set, else the platform's user data folder for facesearch."""
    env = os.environ.get("FACESEARCH_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("facesearch", appauthor=False))


@dataclass
class Settings:
    """Everything a facesearch engine needs to find its data. Build with :meth:`Settings.load`."""

    home: Path
    models_dir: Path
    catalog_url: str
    index_dir: Path
    pack: str | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Where vectors live: None = embedded FAISS files in index_dir; a Milvus Lite file (*.db) or a Milvus
    # server address (http://host:19530) = Milvus (see facesearch.index.backends.open_vector_index).
    index_url: str | None = None
    # Governance and server settings (``config.toml`` in the data folder; see docs/server.md).
    purposes: tuple[str, ...] = DEFAULT_PURPOSES
    require_purpose: bool = False  # True: the CLI and Python API refuse a search without purpose and case
    identity: str | None = None  # who CLI and Python searches are recorded as; default: the OS user
    ingest_roots: tuple[Path, ...] = ()  # the only folders the server may ingest from by path
    max_upload_bytes: int = 20 * 2**20  # one request's body (search, verify, enrol, opt-out)
    max_ingest_upload_bytes: int = 2 * 2**30  # an ingest upload (images or a zip)
    max_probe_pixels: int = 40_000_000  # probes decoded by the server; bigger is refused before decoding
    rate_limit_per_minute: int = 600  # requests per API key
    failed_auth_per_minute: int = 30  # invalid keys per client address and per key id, before refusals unhashed
    retention_interval_s: float = 3600.0  # how often the server purges what outlived its retention
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    # Signed audit checkpoints written outside the data folder (see facesearch.governance.witness): a file
    # appended to, or a command given each line on its standard input; at most every interval of activity.
    audit_witness: Path | None = None
    audit_witness_command: str | None = None
    audit_witness_interval_s: float = 60.0
    # PostgreSQL: rewrite the tables an erasure deleted rows from (VACUUM FULL), so that the rows are gone from
    # the database's files when the erasure returns; false only vacuums them (see docs/server.md, Erasure).
    erasure_rewrite_tables: bool = True

    @classmethod
    def load(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        pack: str | None = None,
        catalog_url: str | None = None,
        workers: int | None = None,
        index_url: str | None = None,
    ) -> Settings:
        """Settings for a data folder (``home``; default :func:`default_home`), with environment overrides.

        ``FACESEARCH_MODELS`` moves the models folder, ``FACESEARCH_CATALOG_URL`` the catalog (an SQLAlchemy
        URL), ``FACESEARCH_PACK`` picks the pack and ``FACESEARCH_WORKERS`` the number of ingest processes.
        ``FACESEARCH_INDEX_URL`` (or ``index_url`` in ``config.toml``) moves the vectors to Milvus.
        Governance and server settings come from ``<home>/config.toml`` (see :func:`read_config_file`), with
        ``FACESEARCH_PURPOSES`` (comma list), ``FACESEARCH_IDENTITY`` and ``FACESEARCH_INGEST_ROOTS``
        (os.pathsep list) overriding it.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        home_path = home_path.absolute()
        file = read_config_file(home_path)
        models_env = os.environ.get("FACESEARCH_MODELS")
        workers_env = os.environ.get("FACESEARCH_WORKERS")
        return cls(
            home=home_path,
            models_dir=Path(models_env).expanduser() if models_env else home_path / "models",
            catalog_url=catalog_url
            or os.environ.get("FACESEARCH_CATALOG_URL")
            or file.get("catalog_url")
            or f"sqlite:///{home_path / 'catalog.sqlite3'}",
            index_dir=home_path / "index",
            index_url=index_url or os.environ.get("FACESEARCH_INDEX_URL") or file.get("index_url") or None,
            pack=pack or os.environ.get("FACESEARCH_PACK") or None,
            workers=workers or (int(workers_env) if workers_env else (os.cpu_count() or 1)),
            **_governance_settings(file),
        )


def _governance_settings(file: dict[str, Any]) -> dict[str, Any]:
    """Settings fields given by ``config.toml`` and the environment (absent keys keep their defaults)."""
    values: dict[str, Any] = {}
    purposes = _env_list("FACESEARCH_PURPOSES", ",") or file.get("purposes")
    if purposes:
        values["purposes"] = tuple(str(p) for p in purposes)
    identity = os.environ.get("FACESEARCH_IDENTITY") or file.get("identity")
    if identity:
        values["identity"] = str(identity)
    roots = _env_list("FACESEARCH_INGEST_ROOTS", os.pathsep) or file.get("ingest_roots")
    if roots:
        values["ingest_roots"] = tuple(Path(str(r)).expanduser().absolute() for r in roots)
    if "cors_origins" in file:
        values["cors_origins"] = tuple(str(o) for o in file["cors_origins"])
    witness = os.environ.get("FACESEARCH_AUDIT_WITNESS") or file.get("audit_witness")
    if witness:
        values["audit_witness"] = Path(str(witness)).expanduser().absolute()
    witness_command = os.environ.get("FACESEARCH_AUDIT_WITNESS_COMMAND") or file.get("audit_witness_command")
    if witness_command:
        values["audit_witness_command"] = str(witness_command)
    if witness and witness_command:
        raise ValueError("audit_witness (a file) and audit_witness_command are exclusive: configure one of them")
    for key, kind in (
        ("require_purpose", bool),
        ("max_upload_bytes", int),
        ("max_ingest_upload_bytes", int),
        ("max_probe_pixels", int),
        ("rate_limit_per_minute", int),
        ("failed_auth_per_minute", int),
        ("retention_interval_s", float),
        ("audit_witness_interval_s", float),
        ("erasure_rewrite_tables", bool),
    ):
        if key in file:
            values[key] = kind(file[key])
    return values
