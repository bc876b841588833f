"""Write the API's OpenAPI document: ``python -m facesearch.api.openapi [docs/openapi.json]``.

The committed ``docs/openapi.json`` is kept in sync with the code by a test that compares the two.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PICTURE_TYPES = "image/jpeg, image/png, image/webp, image/bmp, image/tiff, image/gif, image/heic"
"""What an uploaded photo may be (its bytes decide, never its declared type; see facesearch.ingest.sources.uploads)."""

UPLOAD_FIELDS = {"files"}  # ingest uploads also take zip archives


def install_openapi(app: FastAPI, purposes: Sequence[str]) -> None:
    """Make ``app.openapi()`` say what the code checks beyond types: the configured purposes (an enum) and
    the media types of uploaded files (``encoding.contentType`` of each multipart file field), so that
    clients and fuzzers (schemathesis) know what a valid request is."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _describe_uploads(document, purposes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _describe_uploads(document: dict[str, Any], purposes: Sequence[str]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {})
            form = content.get("multipart/form-data")
            if form is None:
                continue
            reference = form.get("schema", {}).get("$ref", "")
            schema = schemas.get(reference.rsplit("/", 1)[-1], {})
            properties = schema.get("properties", {})
            for name, field in list(properties.items()):
                # A form field is left out or sent as text: it has no null. FastAPI's "anyOf [T, null]" for an
                # optional field would tell clients (and fuzzers) to send the text "None".
                branches = [b for b in field.get("anyOf", []) if b.get("type") != "null"]
                if "anyOf" in field and len(branches) == 1:
                    properties[name] = {**{k: v for k, v in field.items() if k != "anyOf"}, **branches[0]}
            if "purpose" in properties:
                properties["purpose"]["enum"] = list(purposes)
            encoding = {}
            for name, field in properties.items():
                binary = field.get("contentMediaType") == "application/octet-stream" or (
                    field.get("type") == "array" and field.get("items", {}).get("contentMediaType")
                )
                if binary:
                    kinds = PICTURE_TYPES + (", application/zip" if name in UPLOAD_FIELDS else "")
                    encoding[name] = {"contentType": kinds}
            if encoding:
                form["encoding"] = encoding


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
