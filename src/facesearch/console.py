"""The ``facesearch`` command's entry point, kept apart from the CLI so that starting a process is cheap.

Ingest workers are started with "spawn", which re-runs the launching script in every worker. The installed
``facesearch`` script imports this module at its top: were it the CLI itself, each worker would import the
whole engine (about a second of CPU per worker) before doing any work.
"""

from __future__ import annotations


def main() -> None:
    """Run the ``facesearch`` command line."""
    from facesearch.cli import main as cli_main

    cli_main()
