"""Schemathesis against the OpenAPI document, with all its default checks, on every operation (a small budget)."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation

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
        home,
        f"sqlite:///{home / 'catalog.sqlite3'}",
        ingest_roots=(folder / "roots",),
        rate_limit_per_minute=10**6,
        # Schemathesis probes every operation with invalid keys and expects 401: the failed-key limit (tested
        # on its own) would otherwise answer 429 after the first thirty.
        failed_auth_per_minute=10**6,
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


def face_picture(fmt: str) -> st.SearchStrategy[bytes]:
    """Real photos with a face (the astronaut, cropped, scaled and lit differently each time): valid data for
    every operation that takes a photo, so that positive requests reach the code behind the checks."""
    from PIL import Image, ImageEnhance
    from skimage import data

    rgb = Image.fromarray(np.asarray(data.astronaut()))

    def make(left: int, top: int, size: int, light: float) -> bytes:
        picture = rgb.crop((left, top, left + size, top + size)).resize((224, 224))
        picture = ImageEnhance.Brightness(picture).enhance(light)
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        return buffer.getvalue()

    return st.builds(make, st.integers(40, 100), st.integers(0, 40), st.integers(340, 400), st.floats(0.7, 1.3))


def zipped(pictures: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    def pack(picture: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("Some_One/photo.png", picture)
        return buffer.getvalue()

    return pictures.map(pack)


schemathesis.openapi.media_type("image/png", face_picture("PNG"))
schemathesis.openapi.media_type("image/jpeg", face_picture("JPEG"))
schemathesis.openapi.media_type("application/zip", zipped(face_picture("PNG")))


# Schemathesis sends an item of an array of files (the ingest upload's ``files``) drawn from a media-type strategy
# without a file name, so the server reads it as a text field and rightly answers 422: a limit of the tool
# (schemathesis/specs/openapi/adapter/formdata.py), not of the document. Every other operation is held to the
# default expectations.
CONFIG = SchemathesisConfig.from_str(
    """
[[operations]]
include-path = "/v1/collections/{name}/uploads"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""
)


def text_in_a_form(case: Any, failure: BaseException) -> bool:
    """True for the one false alarm of negative testing on multipart forms: a value of another type (an object,
    an array, null) put in a text field travels as its JSON text ("null", '{"a":1}'), which is text, so the
    server rightly takes it (see schemathesis/transport/requests.py, ``_prepare_form_value``)."""
    multipart = case.media_type is not None and case.media_type.startswith("multipart/")
    return (
        multipart
        and type(failure).__name__ == "AcceptedNegativeData"
        and re.search(r"was string, became \w+\)\s*$", str(failure)) is not None
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_passes_schemathesis_default_checks(
    fuzzed: tuple[Any, dict[str, str]], mode: GenerationMode
) -> None:
    """Every operation of the document, with valid (positive) and invalid (negative) generated requests, under
    every check Schemathesis runs by default (no server error, status codes, content types, headers and bodies
    as documented, valid data accepted, invalid data rejected, authentication enforced).

    Schemathesis's pytest plugin does not load under this pytest, so its strategies are driven with Hypothesis
    directly: the same generated requests, a few per operation.
    """
    app, keys = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=int(os.environ.get("FACESEARCH_FUZZ_EXAMPLES", "6")),
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            # A negative case may leave the Authorization header out on purpose: it then goes without a key.
            drops_key = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
            headers = (
                {} if drops_key and "Authorization" not in (case.headers or {}) else auth(key_for(case.path, keys))
            )
            try:
                response = case.call_and_validate(headers=headers)
            except BaseException as error:  # a failed check (a group of them) or what the server did not handle
                for failure in getattr(error, "exceptions", [error]):
                    if not text_in_a_form(case, failure):
                        failures.append(
                            f"{case.method} {case.formatted_path}: {type(failure).__name__}: {failure}"[:400]
                        )
                return
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body

        try:
            exercise()
        except Unsatisfiable:  # nothing invalid can be generated for this operation (e.g. no parameters)
            continue
    assert operations >= 45
    assert not failures, "\n".join(sorted(set(failures))[:20])


def test_openapi_document_is_committed_and_in_sync() -> None:
    """docs/openapi.json must be what the code serves (regenerate: python -m facesearch.api.openapi FILE)."""
    from facesearch.api.openapi import render

    committed = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
    assert committed.read_text(encoding="utf-8") == render(), (
        "docs/openapi.json is out of date: run `python -m facesearch.api.openapi docs/openapi.json`"
    )
