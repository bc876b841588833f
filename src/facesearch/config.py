"""One settings object: where the data folder, models, catalog and index live, which pack to use, and the
governance and server settings of the data folder.

Settings come, highest first, from what the caller passes (``--home``, ``--pack``, ``--catalog-url``...), the
environment (``FACESEARCH_*``), the data folder's ``config.toml``, and the defaults below (pydantic-settings
does the merging and the checking).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

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


UPLOADS_FOLDER = "uploads"
"""The data folder's folder of files facesearch manages (uploads, fetched URLs), deleted on erasure."""


class DataFolderConfig(PydanticBaseSettingsSource):
    """The data folder's ``config.toml`` (the folder is the ``home`` the caller passed)."""

    def __init__(self, settings_cls: type[BaseSettings], home: Path | None) -> None:
        super().__init__(settings_cls)
        self.values = read_config_file(home) if home is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value of one field in the file (pydantic-settings asks field by field)."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {name: value for name, value in self.values.items() if name in fields and name != "home"}


def _split(separator: str) -> Any:
    """A validator for list settings given as one string (``a,b`` in the environment)."""

    def split(value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(separator) if item.strip())
        return value

    return split


class Settings(BaseSettings):
    """Everything a facesearch engine needs to find its data. Build with :meth:`Settings.load`."""

    model_config = SettingsConfigDict(env_prefix="FACESEARCH_", extra="ignore", validate_default=True)

    home: Path
    # Read-only folders where model files are looked for after models_dir (``FACESEARCH_MODEL_DIRS``, os.pathsep
    # list, or ``model_dirs`` in config.toml; a data folder records there where its models were found).
    model_dirs: Annotated[tuple[Path, ...], NoDecode] = ()
    # Where model files go (``models pull``) and are looked for first (default: ``<home>/models``).
    models_dir: Path = Field(default=Path("models"), validation_alias=AliasChoices("models_dir", "FACESEARCH_MODELS"))
    # The catalog database (default: ``catalog.sqlite3`` in the data folder); the vector files' folder.
    catalog_url: str = ""
    index_dir: Path = Path("index")
    pack: str | None = None
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # Where the models run: "cpu", or "cuda" (an NVIDIA GPU through onnxruntime-gpu; see vision/accelerator.py).
    accelerator: Literal["cpu", "cuda"] = "cpu"
    # Where vectors live: None = embedded FAISS files in index_dir; a Milvus Lite file (*.db) or a Milvus
    # server address (http://host:19530) = Milvus (see facesearch.index.backends.open_vector_index).
    index_url: str | None = None
    # Governance and server settings (see docs/server.md).
    purposes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PURPOSES
    require_purpose: bool = False  # True: the CLI and Python API refuse a search without purpose and case
    identity: str | None = None  # who CLI and Python searches are recorded as; default: the OS user
    ingest_roots: Annotated[tuple[Path, ...], NoDecode] = ()  # the only folders the server may ingest from by path
    # The only hosts a manifest's URLs are fetched from (``FACESEARCH_FETCH_HOSTS``, comma list); none by default.
    fetch_hosts: Annotated[tuple[str, ...], NoDecode] = ()
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
    # The workbench (facesearch.web): a signed-in session ends after this long unused, and at the latest after
    # so many hours; with four_eyes, who ran a search may not mark one of its candidates "match".
    session_idle_minutes: int = Field(default=30, ge=1)
    session_max_hours: int = Field(default=12, ge=1)
    four_eyes: bool = True
    # Keep each face's grid crop (192 px JPEG, about 6 KB) in the catalog, cut at ingest: the workbench then
    # shows a search's candidates without decoding their photos. Erased with the face.
    thumbnails: bool = True
    # The workbench is served in this language unless the browser asks for another it has ("en" or "uk").
    language: str = "en"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """What the caller passes, then the environment, then the data folder's config.toml."""
        home = getattr(init_settings, "init_kwargs", {}).get("home")
        return init_settings, env_settings, DataFolderConfig(settings_cls, Path(home) if home else None)

    _split_purposes = field_validator("purposes", "fetch_hosts", mode="before")(_split(","))
    _split_roots = field_validator("ingest_roots", "model_dirs", mode="before")(_split(os.pathsep))

    @field_validator("ingest_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(root.expanduser().absolute() for root in roots)

    @model_validator(mode="before")
    @classmethod
    def _from_the_data_folder(cls, data: Any) -> Any:
        """Fill what follows from the data folder when nothing more specific was given."""
        if isinstance(data, dict) and data.get("home") is not None:
            home = Path(data["home"]).expanduser().absolute()
            data = {**data, "home": home, "index_dir": home / "index"}
            data.setdefault("catalog_url", f"sqlite:///{home / 'catalog.sqlite3'}")
            if not any(key in data for key in ("models_dir", "FACESEARCH_MODELS")):
                data["models_dir"] = home / "models"
        return data

    @model_validator(mode="after")
    def _checked(self) -> Settings:
        """Check what cannot go together."""
        self.models_dir = self.models_dir.expanduser()
        if self.audit_witness is not None:
            self.audit_witness = self.audit_witness.expanduser().absolute()
        if self.audit_witness is not None and self.audit_witness_command:
            raise ValueError("audit_witness (a file) and audit_witness_command are exclusive: configure one of them")
        return self

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
        """Settings for a data folder (``home``; default :func:`default_home`).

        The environment overrides the data folder's ``config.toml``: ``FACESEARCH_MODELS`` moves the models
        folder, ``FACESEARCH_CATALOG_URL`` the catalog (an SQLAlchemy URL), ``FACESEARCH_PACK`` picks the pack,
        ``FACESEARCH_WORKERS`` the number of ingest processes, ``FACESEARCH_INDEX_URL`` moves the vectors to
        Milvus; ``FACESEARCH_PURPOSES`` (comma list), ``FACESEARCH_IDENTITY``, ``FACESEARCH_INGEST_ROOTS``
        (os.pathsep list) and ``FACESEARCH_AUDIT_WITNESS[_COMMAND]`` override their config keys; every other
        key of the file can be given as ``FACESEARCH_<KEY>`` too.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        given: dict[str, Any] = {"home": home_path.absolute()}
        passed = {"pack": pack, "catalog_url": catalog_url, "workers": workers, "index_url": index_url}
        given.update({name: value for name, value in passed.items() if value})
        return cls(**given)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields changed (checked like the original)."""
        return type(self).model_validate({**self.model_dump(), **changes})


def use_model_dirs(settings: Settings) -> None:
    """Make the model folders the settings name (``model_dirs``) visible to every model lookup of this process
    and of the ingest's worker processes, which find models through ``FACESEARCH_MODEL_DIRS``."""
    current = [p for p in os.environ.get("FACESEARCH_MODEL_DIRS", "").split(os.pathsep) if p]
    wanted = [str(d) for d in settings.model_dirs if str(d) not in current]
    if wanted:
        os.environ["FACESEARCH_MODEL_DIRS"] = os.pathsep.join([*current, *wanted])


def remember_model_dirs(home: Path, folders: list[Path]) -> list[Path]:
    """Add to the data folder's config.toml (``model_dirs``) the folders its models were found in that it does
    not name yet, so that a later command (a new shell, the installed ``facesearch``) finds them without any
    environment variable; returns the folders added. The file's other lines are left as they are."""
    path = home / CONFIG_FILE
    config = read_config_file(home)
    known = [Path(p) for p in config.get("model_dirs", [])]
    new = [folder for folder in dict.fromkeys(folders) if folder not in known]
    if not new:
        return []
    every = [str(p) for p in [*known, *new]]
    line = "model_dirs = [" + ", ".join(tomllib_quote(p) for p in every) + "]\n"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    kept = [row for row in text.splitlines(keepends=True) if not row.lstrip().startswith("model_dirs")]
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    path.write_text(body + line, encoding="utf-8")
    return new


def tomllib_quote(text: str) -> str:
    """A TOML basic string of ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
