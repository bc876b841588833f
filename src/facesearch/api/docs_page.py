"""The interactive API documentation (``/docs``), served whole by the server itself.

Swagger UI's scripts and styles (Swagger UI 5, which reads OpenAPI 3.1 as FastAPI writes it) come from the
``fastapi-offline`` package's static files, not from a CDN, so the page works on a machine without internet
access and a strict Content-Security-Policy holds: the page's one inline script is allowed by its SHA-256
hash, every other script and style must come from this server. (Swagger UI 4, from ``swagger-ui-bundle``,
refused FastAPI's OpenAPI 3.1 document: "Unable to render this definition".)
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def _script_hashes(html: str) -> list[str]:
    """CSP hash sources of the page's inline scripts."""
    bodies = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies]


def docs_page(title: str, openapi_url: str) -> tuple[bytes, str]:
    """The page's HTML and the Content-Security-Policy it is served with."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title}: API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    ).body
    text = bytes(html).decode()
    # Swagger UI sets style attributes on the elements it draws, hence 'unsafe-inline' for styles only.
    policy = (
        f"default-src 'none'; script-src 'self' {' '.join(_script_hashes(text))}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )
    return bytes(html), policy


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (the app must be made with ``docs_url=None``)."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    html, policy = docs_page(app.title, app.openapi_url or "/openapi.json")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})
