"""Fetching a manifest's URLs: only from hosts the operator allows, with limits, into the data folder.

facesearch never crawls: it fetches the addresses an operator listed, from hosts the operator named
(``fetch_hosts`` in config.toml, ``FACESEARCH_FETCH_HOSTS`` or ``index --allow-host``). A redirect is followed
only to an allowed host; a body larger than the limit is refused; what is not a picture is not kept. A fetched
file is stored under a name made from its address, so that running the same manifest again finds it there
and fetches nothing twice. A refusal is a :class:`facesearch.errors.SourceRefused` with a stable code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from facesearch.errors import SourceRefused
from facesearch.ingest.sources.uploads import DECODABLE
from facesearch.vision.image import sniff_format

MAX_REDIRECTS = 5
TIMEOUT_S = 30.0
USER_AGENT = "facesearch (fetching an operator's manifest)"


def host_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether ``url``'s host is one of ``hosts`` (``example.org`` also allows ``www.example.org``; a
    ``host:port`` entry allows that port only)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or parts.scheme not in ("http", "https"):
        return False
    with_port = f"{host}:{parts.port}" if parts.port else host
    for allowed in (h.strip().lower().rstrip(".") for h in hosts if h.strip()):
        if ":" in allowed:
            if with_port == allowed:
                return True
        elif host == allowed or host.endswith("." + allowed):
            return True
    return False


def stored_name(url: str) -> str:
    """The file name a fetched address is kept under (the same address, the same name)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def fetch(url: str, folder: Path, hosts: Sequence[str], *, limit: int, timeout: float = TIMEOUT_S) -> Path:
    """The picture at ``url``, fetched into ``folder`` (or found there from an earlier run)."""
    import httpx

    if not host_allowed(url, hosts):
        raise SourceRefused("host_not_allowed", f"{urlsplit(url).hostname or url} is not an allowed host")
    folder.mkdir(parents=True, exist_ok=True)
    known = sorted(folder.glob(stored_name(url) + ".*"))
    if known:
        return known[0]
    address = url
    with httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", address) as answer:
                    if answer.is_redirect:
                        address = urljoin(address, answer.headers.get("location", ""))
                        if not host_allowed(address, hosts):
                            raise SourceRefused("host_not_allowed", f"{url} redirects to a host not allowed")
                        continue
                    if answer.status_code != 200:
                        raise SourceRefused("fetch_failed", f"{url} answered HTTP {answer.status_code}")
                    return keep_picture(answer.iter_bytes(), url, folder, limit)
            except httpx.HTTPError as error:
                raise SourceRefused("fetch_failed", f"{url} could not be fetched: {error}") from error
    raise SourceRefused("fetch_failed", f"{url} redirects more than {MAX_REDIRECTS} times")


def keep_picture(chunks: Iterable[bytes], url: str, folder: Path, limit: int, *, name: str | None = None) -> Path:
    """Stream ``chunks`` (what ``url`` answered) into ``folder`` as ``name`` (default: from the address) with
    the picture's own extension; refuses more than ``limit`` bytes or anything that is not a picture, and
    leaves no partial file behind."""
    name = name or stored_name(url)
    partial = folder / (name + f".{os.getpid()}.part")
    written = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise SourceRefused("payload_too_large", f"{url} is over {limit} bytes")
                out.write(chunk)
        with partial.open("rb") as kept:
            kind = sniff_format(kept.read(4096))
        if kind not in DECODABLE:
            raise SourceRefused("unsupported_media_type", f"{url} is not a picture (it looks like {kind or 'unknown'})")
        target = folder / (name + "." + ("jpg" if kind == "jpeg" else kind))
        partial.replace(target)
        return target
    finally:
        partial.unlink(missing_ok=True)
