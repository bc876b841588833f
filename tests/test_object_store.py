"""s3:// sources against a real S3-compatible server (moto's server mode, over HTTP): pictures listed and streamed
into the data folder once, provenance kept as the object's address, bad objects recorded with reasons."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facesearch.cli import app
from facesearch.ingest.sources.object_store import StoredObject, is_object_url, split_url

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "archive"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray) -> Iterator[object]:
    """A running S3 server with a bucket of the astronaut's photos under ``people/Eileen_Collins/``, a face-less
    photo, a PDF named .jpg, an empty object, a text file and an object outside the prefix."""
    from skimage import data

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)

    def jpeg(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    objects = {
        "people/Eileen_Collins/portrait.jpg": jpeg(astronaut),
        "people/Eileen_Collins/mirror.jpg": jpeg(np.ascontiguousarray(astronaut[:, ::-1])),
        "people/other/coffee.jpg": jpeg(np.asarray(data.coffee())),
        "people/other/report.jpg": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
        "people/other/empty.jpg": b"",
        "people/other/notes.txt": b"not a photo",
        "elsewhere/portrait.jpg": jpeg(astronaut),
    }
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    try:
        yield client
    finally:
        server.stop()


def test_addresses_are_parsed_and_refused_clearly() -> None:
    """``s3://bucket/prefix`` is an object source; one without a bucket is refused with a code."""
    from facesearch.errors import SourceRefused

    assert is_object_url("s3://archive/people") and is_object_url("S3://a") and not is_object_url("/data/s3")
    assert split_url("s3://archive/people/Ada") == ("archive", "people/Ada")
    assert split_url("s3://archive") == ("archive", "")
    with pytest.raises(SourceRefused, match="not an s3"):
        split_url("s3:///people")
    assert StoredObject("b", "people/Ada/1.jpg", 1, "x").folder_name == "Ada"
    assert StoredObject("b", "1.jpg", 1, "x").folder_name == "b"


def test_index_from_a_bucket_keeps_object_addresses_and_resumes(s3: object, tmp_path: Path) -> None:
    """``facesearch index s3://bucket/prefix``: the prefix's pictures are indexed (nothing outside it), each face
    names its object's address as its source, bad objects are skipped with their reasons, and a second run
    downloads and adds nothing."""
    home = tmp_path / "home"
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(app, ["--home", str(home), "--pack", "dlib", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = run("index", f"s3://{BUCKET}/people", "-c", "archive", "--subject-from-folder", "--json")
    assert first["images_indexed"] == 3, first  # two portraits and the face-less photo
    assert first["faces"] >= 2
    reasons = {Path(item["path"]).name: item["reason"] for item in first["skipped_files"]}
    assert reasons == {"report.jpg": "unsupported_media_type", "empty.jpg": "unsupported_media_type"}
    assert all(item["path"].startswith(f"s3://{BUCKET}/people/") for item in first["skipped_files"])
    fetched = sorted((home / "uploads").rglob("*.jpg"))
    assert len(fetched) == 3

    found = run("search", str(_portrait(tmp_path, s3)), "--json")
    sources = {c["source_url"] for c in found["faces"][0]["candidates"]}
    assert sources == {
        f"s3://{BUCKET}/people/Eileen_Collins/portrait.jpg",
        f"s3://{BUCKET}/people/Eileen_Collins/mirror.jpg",
    }
    assert found["faces"][0]["candidates"][0]["subject"] == "Eileen_Collins"

    again = run("index", f"s3://{BUCKET}/people", "-c", "archive", "--subject-from-folder", "--json")
    assert again["images_indexed"] == 0 and again["faces"] == 0
    assert sorted((home / "uploads").rglob("*.jpg")) == fetched


def test_an_unknown_bucket_is_recorded_not_fatal(s3: object, tmp_path: Path, photo_folder: Path) -> None:
    """A bucket that does not exist is one skipped source with its reason; the local folder beside it is
    indexed."""
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path / "home"),
            "--pack",
            "dlib",
            "index",
            "s3://no-such-bucket/x",
            str(photo_folder / "Eileen_Collins"),
            "-c",
            "mixed",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["images_indexed"] == 3
    assert [(item["path"], item["reason"]) for item in summary["skipped_files"]] == [
        ("s3://no-such-bucket/x", "fetch_failed")
    ]


def _portrait(tmp_path: Path, client: object) -> Path:
    """The portrait object, downloaded as a probe."""
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(client.get_object(Bucket=BUCKET, Key="people/Eileen_Collins/portrait.jpg")["Body"].read())  # type: ignore[attr-defined]
    return probe
