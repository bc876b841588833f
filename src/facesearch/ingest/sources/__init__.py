"""Where files to ingest come from: folders and single files (:mod:`.folders`), uploads of pictures and zip
archives (:mod:`.uploads`, :mod:`.archives`) and server-side folders confined to the ingest roots
(:mod:`.confined`)."""

from facesearch.ingest.sources.folders import SourceFile, iter_source_files

__all__ = ["SourceFile", "iter_source_files"]
