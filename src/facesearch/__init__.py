"""facesearch: self-hosted, accountable face search.

A search result is a lead for a person to review, never an identification.

>>> import facesearch
>>> fs = facesearch.open("~/faces")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenCV 5 warns on stderr each time YuNet is created ("Targets are not supported by the new graph
# engine"), which would clutter every command's output; real errors still show. Users can override it.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from facesearch.engine import FaceSearch, open

__all__ = ["FaceSearch", "__version__", "open"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that worker processes importing one submodule do not load the whole engine.
    if name in ("open", "FaceSearch"):
        from facesearch import engine

        return getattr(engine, name)
    raise AttributeError(name)
