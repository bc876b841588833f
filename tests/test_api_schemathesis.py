"""Schemathesis against the OpenAPI document: no generated request may get a 500 (a small budget, for CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from facesearch.api.app import create_app
from facesearch.engine import FaceSearch
from tests.test_api_support import auth, make_users, write_photos
from tests.test_api_support import settings as home_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Which role's key each operation gets, so that generated requests reach the code behind the role check.
INVESTIGATOR = ("/v1/search", "/v1/verify", "/v1/cases")
AUDITOR = ("/v1/audit",)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("fuzz")
    photos = write_photos(folder / "roots" / "photos")
    home = folder / "home"
    config = home_settings(
        home, f"sqlite:///{home / 'catalog.sqlite3'}", ingest_roots=(folder / "roots",), rate_limit_per_minute=10**6
    )
    with FaceSearch(config) as engine:
        engine.index([photos], collection="demo", subject_from_folder=True, workers=1)
        keys = make_users(engine)
    app = create_app(config, schedule=False)
    yield app, keys
    app.state.jobs.shutdown()
    app.state.engine.close()


def key_for(path: str, keys: dict[str, str]) -> str:
    if path.startswith(INVESTIGATOR):
        return keys["investigator"]
    if path.startswith(AUDITOR):
        return keys["auditor"]
    return keys["admin"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(fuzzed: tuple[Any, dict[str, str]], mode: GenerationMode) -> None:
    """Every operation of the document, with valid (positive) and invalid (negative) generated requests.

    Schemathesis's pytest plugin does not load under this pytest, so its strategies are driven with
    Hypothesis directly: the same generated requests, a few per operation.
    """
    app, keys = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def exercise(case: Any) -> None:
            try:
                response = case.call(headers=auth(key_for(case.path, keys)))
            except Exception as error:  # the test client re-raises what the server did not handle: a 500
                failures.append(f"{case.method} {case.formatted_path}: {type(error).__name__}: {error}"[:300])
                return
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
                return
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body

        try:
            exercise()
        except Unsatisfiable:  # nothing invalid can be generated for this operation (e.g. no parameters)
            continue
    assert operations >= 35
    assert not failures, "\n".join(failures[:20])


def test_openapi_document_is_committed_and_in_sync() -> None:
    """docs/openapi.json must be what the code serves (regenerate: python -m facesearch.api.openapi FILE)."""
    from facesearch.api.openapi import render

    committed = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
    assert committed.read_text(encoding="utf-8") == render(), (
        "docs/openapi.json is out of date: run `python -m facesearch.api.openapi docs/openapi.json`"
    )
