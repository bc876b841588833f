"""Ingest: find files in sources, analyse them in worker processes, record everything in the catalog."""
