"""What a picture says about itself: its EXIF capture date, camera and position, and its content credentials
(a C2PA manifest: who signed it, the device it claims, the edits it lists, and whether it validates).

All of it is a claim made by the file. EXIF can be edited by anyone; a C2PA manifest is signed, but a
signature only proves who signed, and a manifest that fails validation proves nothing: it is kept and shown
with its validation state, never as proof. Nothing here raises on a bad file: a field that cannot be read is
left out.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_TIME_ORIGINAL = 0x9003, 0x9004, 0x9011
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4

C2PA_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "tiff": "image/tiff", "heif": "image/heif"}
"""Formats whose C2PA manifests are read (by :func:`facesearch.vision.image.sniff_format`'s name)."""

MAX_CREDENTIALS_CHARS = 20_000
"""A summary of content credentials longer than this is cut (a manifest may list thousands of ingredients)."""


@dataclass
class PictureFacts:
    """A picture's own claims: when it was taken (EXIF, as UTC when the file gives its offset, else as the
    camera's clock read as UTC), by which camera, where, and its content credentials (a summary, as JSON)."""

    captured_at: datetime | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content_credentials: str | None = None


def read_facts(data: bytes, kind: str | None) -> PictureFacts:
    """The EXIF and C2PA claims of a picture's bytes (``kind`` as :func:`sniff_format` names it)."""
    facts = PictureFacts()
    try:
        _read_exif(data, facts)
    except Exception:  # EXIF is optional and often broken; the picture is still indexed
        log.debug("unreadable EXIF", exc_info=True)
    if kind in C2PA_MIME and b"c2pa" in data:  # a manifest store is labelled "c2pa": no label, no manifest
        summary = content_credentials(data, C2PA_MIME[kind])
        if summary is not None:
            facts.content_credentials = json.dumps(summary, sort_keys=True)[:MAX_CREDENTIALS_CHARS]
    return facts


def _read_exif(data: bytes, facts: PictureFacts) -> None:
    with Image.open(io.BytesIO(data)) as picture:
        exif = picture.getexif()
    if not exif:
        return
    details = exif.get_ifd(EXIF_IFD)
    when = details.get(DATETIME_ORIGINAL) or details.get(DATETIME_DIGITIZED) or exif.get(DATETIME)
    facts.captured_at = _exif_time(when, details.get(OFFSET_TIME_ORIGINAL))
    make, model = _text(exif.get(MAKE)), _text(exif.get(MODEL))
    if model and make and model.lower().startswith(make.lower()):
        make = None  # "Canon" + "Canon EOS 5D" says Canon once
    facts.camera = " ".join(part for part in (make, model) if part) or None
    gps = exif.get_ifd(GPS_IFD)
    latitude = _degrees(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), "S")
    longitude = _degrees(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), "W")
    if latitude is not None and longitude is not None and abs(latitude) <= 90 and abs(longitude) <= 180:
        facts.latitude, facts.longitude = round(latitude, 6), round(longitude, 6)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:200] or None


def _exif_time(value: Any, offset: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if moment.year < 1826:  # before the first photograph: a camera clock never set
        return None
    zone = UTC
    offset_text = _text(offset)
    if offset_text and len(offset_text) >= 6 and offset_text[0] in "+-":
        try:
            hours, minutes = int(offset_text[1:3]), int(offset_text[4:6])
            sign = 1 if offset_text[0] == "+" else -1
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        except ValueError:
            zone = UTC
    return moment.replace(tzinfo=zone).astimezone(UTC)


def _degrees(value: Any, reference: Any, negative: str) -> float | None:
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    total = degrees + minutes / 60 + seconds / 3600
    return -total if _text(reference) == negative else total


def content_credentials(data: bytes, mime: str) -> dict[str, Any] | None:
    """A summary of the picture's C2PA manifest: its signer, the claimed generator and capture device, the
    actions (edits) it lists, and its validation state (``valid`` only when the manifest validates without
    errors); ``None`` when it carries none, or when ``c2pa-python`` is not installed."""
    try:
        import c2pa
    except ImportError:
        return None
    try:
        with c2pa.Reader(mime, io.BytesIO(data)) as reader:
            store = json.loads(reader.json())
    except Exception as error:  # no manifest, or one that cannot even be parsed
        if "ManifestNotFound" in type(error).__name__ or "not found" in str(error).lower():
            return None
        return {"validation": "unreadable", "errors": [str(error)[:300]]}
    return summarise_manifest_store(store)


def summarise_manifest_store(store: dict[str, Any]) -> dict[str, Any] | None:
    """The parts of a C2PA manifest store (as ``c2pa.Reader.json()`` gives it) that a reviewer reads."""
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest") or "")
    if not isinstance(active, dict):
        return None
    signature = active.get("signature_info") or {}
    actions: list[str] = []
    device: str | None = None
    for assertion in active.get("assertions") or []:
        label = str(assertion.get("label", ""))
        body = assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in body.get("actions") or []:
                name = str(action.get("action", ""))
                source = action.get("digitalSourceType")
                actions.append(f"{name} ({str(source).rsplit('/', 1)[-1]})" if source else name)
        elif label in ("stds.exif", "c2pa.exif") and isinstance(body, dict):
            device = " ".join(str(body[k]) for k in ("exif:Make", "exif:Model", "tiff:Make", "tiff:Model") if k in body)
    statuses = store.get("validation_status") or []
    errors = [str(s.get("code", "")) + (f": {s['explanation']}" if s.get("explanation") else "") for s in statuses]
    codes = {str(s.get("code", "")) for s in statuses}
    return {
        "validation": validation_state(codes, str(store.get("validation_state") or "")),
        "errors": errors[:20],
        "signer": signature.get("issuer") or signature.get("common_name"),
        "signed_at": signature.get("time"),
        "claim_generator": active.get("claim_generator") or _generator(active),
        "title": active.get("title"),
        "device": device or None,
        "actions": actions[:50],
        "ingredients": len(active.get("ingredients") or []),
    }


UNTRUSTED = "signingCredential.untrusted"


def validation_state(failures: set[str], reported: str) -> str:
    """One word for a manifest's state: ``invalid`` (it fails a check: the picture or the manifest was
    changed, a signature does not verify...), ``untrusted`` (it verifies, but its signer is on no trust list
    configured here), ``trusted`` (it verifies and its signer is trusted) or ``valid``."""
    if failures - {UNTRUSTED} or reported.lower() == "invalid":
        return "invalid"
    if UNTRUSTED in failures:
        return "untrusted"
    return "trusted" if reported.lower() == "trusted" else "valid"


def _generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict):
        return " ".join(str(info[0].get(k, "")) for k in ("name", "version")).strip() or None
    return None
