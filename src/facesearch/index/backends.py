"""Which vector index backend a data folder uses, from its settings: the one place that maps URLs to classes.

``index_url`` unset (the default): embedded FAISS files in ``<home>/index``, one per pack. A Milvus Lite file
(``/data/vectors.db``, or ``milvus-lite:///data/vectors.db``) or a Milvus server (``http://host:19530``): Milvus,
one collection per pack. ``faiss:///some/folder`` puts the FAISS files in another folder.
"""

from __future__ import annotations

from pathlib import Path

from facesearch.index.base import VectorIndex
from facesearch.index.faiss_index import FaissIndex, index_file_name

MILVUS_LITE_PREFIX = "milvus-lite://"


def backend_name(index_url: str | None) -> str:
    """``"faiss"`` or ``"milvus"`` for an index URL (None means the embedded FAISS default)."""
    if index_url is None or index_url.startswith("faiss://"):
        return "faiss"
    return "milvus"


def faiss_dir(index_url: str | None, default_dir: Path) -> Path:
    """The folder of the FAISS files for an index URL (the data folder's ``index`` unless ``faiss:///DIR``)."""
    if index_url and index_url.startswith("faiss://"):
        return Path(index_url.removeprefix("faiss://")).expanduser()
    return default_dir


def milvus_uri(index_url: str) -> str:
    """What ``pymilvus`` is given: a server address as is, a Milvus Lite file as an absolute path."""
    if index_url.startswith(MILVUS_LITE_PREFIX):
        index_url = index_url.removeprefix(MILVUS_LITE_PREFIX)
    if "://" in index_url:
        return index_url
    path = Path(index_url).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def open_vector_index(index_url: str | None, default_dir: Path, pack_key: str, dim: int) -> VectorIndex:
    """The vector index of one pack under the configured backend (created empty when new)."""
    if backend_name(index_url) == "faiss":
        return FaissIndex(faiss_dir(index_url, default_dir) / index_file_name(pack_key), dim)
    from facesearch.index.milvus_index import MilvusIndex  # pymilvus is only needed for this backend

    return MilvusIndex(milvus_uri(index_url or ""), pack_key, dim)
