"""Object storage as a source: ``s3://bucket/prefix`` on any S3-compatible store (AWS, MinIO, Ceph, cloud).

The objects under the prefix whose names have a picture's suffix are listed page by page and each is streamed
into the data folder (as a manifest's URLs are), under a name made from its address and version (ETag), so a
second run (or a resumed one) finds it there and downloads nothing twice; the face's provenance keeps the
object's ``s3://`` address. Credentials and the endpoint come from the standard AWS configuration (environment,
``~/.aws``, instance roles; ``AWS_ENDPOINT_URL`` for a store other than AWS), through ``boto3`` (the ``s3``
extra). A refusal is a :class:`facesearch.errors.SourceRefused` with a stable code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from facesearch.errors import SourceRefused
from facesearch.ingest.sources.fetching import keep_picture
from facesearch.vision.image import SUPPORTED_EXTENSIONS

SCHEMES = ("s3://",)


def is_object_url(text: str) -> bool:
    """Whether a source names objects in a bucket (``s3://bucket[/prefix]``) rather than a local path."""
    return text.lower().startswith(SCHEMES)


@dataclass(frozen=True)
class StoredObject:
    """One object under a listed prefix: its bucket, key, size and version tag."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def url(self) -> str:
        """The object's address, kept as the face's source."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def folder_name(self) -> str:
        """The last "folder" of its key (``people/Ada/1.jpg`` -> ``Ada``), for ``--subject-from-folder``."""
        parent = PurePosixPath(self.key).parent.name
        return parent or self.bucket


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; refuses an address with no bucket."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise SourceRefused("not_found", f"{url} is not an s3://bucket/prefix address")
    return parts.netloc, parts.path.lstrip("/")


def _client() -> Any:
    try:
        import boto3
    except ImportError as error:
        raise SourceRefused(
            "fetch_failed", "reading s3:// sources needs boto3: pip install 'facesearch[s3]'"
        ) from error
    return boto3.client("s3")


def list_objects(url: str, client: Any | None = None) -> Iterator[StoredObject]:
    """The objects under ``url`` with a picture's suffix, in key order, listed a page (1,000) at a time."""
    bucket, prefix = split_url(url)
    client = client or _client()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if PurePosixPath(key).suffix.lower() in SUPPORTED_EXTENSIONS:
                    yield StoredObject(bucket, key, int(item.get("Size", 0)), str(item.get("ETag", "")).strip('"'))
    except (ClientError, BotoCoreError) as error:
        raise SourceRefused("fetch_failed", f"{url} could not be listed: {error}") from error


def download(item: StoredObject, folder: Path, *, limit: int, client: Any | None = None) -> Path:
    """The object streamed into ``folder`` (or found there from an earlier run: same address, same version)."""
    name = hashlib.sha256(f"{item.url}\n{item.etag}".encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    known = sorted(folder.glob(name + ".*"))
    if known:
        return known[0]
    if item.size > limit:
        raise SourceRefused("payload_too_large", f"{item.url} is over {limit} bytes")
    client = client or _client()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = client.get_object(Bucket=item.bucket, Key=item.key)["Body"]
        try:
            return keep_picture(body.iter_chunks(1 << 20), item.url, folder, limit, name=name)
        finally:
            body.close()
    except (ClientError, BotoCoreError) as error:
        raise SourceRefused("fetch_failed", f"{item.url} could not be read: {error}") from error
