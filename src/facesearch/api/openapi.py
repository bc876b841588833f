"""Write the API's OpenAPI document: ``python -m facesearch.api.openapi [docs/openapi.json]``.

The committed ``docs/openapi.json`` is kept in sync with the code by a test that compares the two.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the API (built on a throw-away data folder; no model is loaded)."""
    from facesearch.api.app import create_app
    from facesearch.config import Settings

    with tempfile.TemporaryDirectory(prefix="facesearch-openapi-") as home:
        app = create_app(Settings.load(home), schedule=False, warm=False)
        try:
            return app.openapi()
        finally:
            app.state.engine.close()


def render() -> str:
    """The document as the committed file holds it (sorted keys, two-space indent, final newline)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the document to the path given (default: stdout)."""
    text = render()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
