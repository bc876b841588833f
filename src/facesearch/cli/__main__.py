"""``python -m facesearch.cli``: the same command line as the installed ``facesearch``."""

from facesearch.cli import main

main()
