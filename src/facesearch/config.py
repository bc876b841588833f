"""One settings object: where the data folder, models, catalog and index live, and which pack to use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


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

    @classmethod
    def load(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        pack: str | None = None,
        catalog_url: str | None = None,
        workers: int | None = None,
    ) -> Settings:
        """Settings for a data folder (``home``; default :func:`default_home`), with environment overrides.

        ``FACESEARCH_MODELS`` moves the models folder, ``FACESEARCH_CATALOG_URL`` the catalog (an SQLAlchemy
        URL), ``FACESEARCH_PACK`` picks the pack and ``FACESEARCH_WORKERS`` the number of ingest processes.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        home_path = home_path.absolute()
        models_env = os.environ.get("FACESEARCH_MODELS")
        workers_env = os.environ.get("FACESEARCH_WORKERS")
        return cls(
            home=home_path,
            models_dir=Path(models_env).expanduser() if models_env else home_path / "models",
            catalog_url=catalog_url
            or os.environ.get("FACESEARCH_CATALOG_URL")
            or f"sqlite:///{home_path / 'catalog.sqlite3'}",
            index_dir=home_path / "index",
            pack=pack or os.environ.get("FACESEARCH_PACK") or None,
            workers=workers or (int(workers_env) if workers_env else (os.cpu_count() or 1)),
        )
