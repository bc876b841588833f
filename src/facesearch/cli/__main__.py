"""``python -m facesearch.cli``: the same command line as the installed ``facesearch``."""

from facesearch.cli import main

if __name__ == "__main__":
    main()
