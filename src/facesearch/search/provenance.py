"""Where has this picture appeared, and since when: the fact-checker's timeline.

For a probe picture, :class:`Provenance` answers with

- ``duplicates``: every stored picture that is the same picture (re-encoded, resized, cropped, framed,
  mirrored, written over), nearest first, each with its first-known date and source;
- ``same_faces``: other stored pictures of the same face(s), which are leads, not the same picture.

Near-duplicates are found two ways. The PDQ hashes of the probe (as it is, mirrored, and without plain
borders) are looked up in the hash index (:mod:`facesearch.index.picture_hashes`): a stored picture within
:data:`MATCH_DISTANCE` bits is the same picture. Crops and frames move a hash too far, so candidates within
:data:`CANDIDATE_RADIUS` bits, and the pictures holding the faces a face search finds, are aligned with the
probe (:mod:`facesearch.vision.near_duplicates`) and kept when the aligned pictures agree. A crop of a picture
without faces is therefore only found when its hash stays near (see docs/provenance.md).

A lookup is a search: it needs a purpose and a case from a user of the server, and it is audited as one
``provenance`` record: the face search's details (whose faces become the case's candidates) and the pictures
shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from facesearch.catalog.provenance import PictureRecord
from facesearch.catalog.store import Catalog, bump_generation
from facesearch.governance.access import Principal, require, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import ActionContext
from facesearch.index.picture_hashes import HashMatch, PictureHashIndex
from facesearch.ingest.metadata import read_facts
from facesearch.search.results import Candidate
from facesearch.search.searching import Searching
from facesearch.vision.fingerprints import MATCH_DISTANCE, fingerprint, probe_fingerprints
from facesearch.vision.image import ImageRejected, decode_upright, load_image, read_image_bytes, sniff_format
from facesearch.vision.near_duplicates import FEATURE_SIDE, ProbePicture

CANDIDATE_RADIUS = 70
"""Pictures this near (bits) are aligned with the probe to decide; beyond, a different picture's hash is as
likely (the nearest other LFW photo of 1,500 is 62-92 bits away)."""

MAX_ALIGNED = 40
"""At most this many candidates are aligned per lookup (about 10 ms each), nearest first."""

FACE_CANDIDATES = 20
"""Candidates per probe face taken from the face search (those at or above the pack's threshold)."""

STORED_SIDE = 2 * FEATURE_SIDE
"""Stored pictures are decoded at least this large (longer side) for aligning: a reduced JPEG decode."""


class PictureFacts(BaseModel):
    """What a picture claims about itself (EXIF and content credentials) and its PDQ hash."""

    pdq: str | None = None
    pdq_quality: int | None = None
    captured_at: str | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content_credentials: dict[str, Any] | None = None


class DuplicatePicture(BaseModel):
    """A stored picture that is the probe's picture (a copy, crop, frame, mirror or re-encode of it).

    ``distance`` is the PDQ Hamming distance (0-256) between the probe and the stored picture, after aligning
    them when that brought them nearer (``match``: ``hash`` when the hashes alone were within 31 bits,
    ``aligned`` when the aligned pictures agree). The fields up to ``source_url`` are the ``provenance --json``
    contract, relied on by scripts."""

    image: str
    distance: int
    first_known: str | None
    source_url: str | None
    image_id: int
    collection: str
    first_known_from: str
    match: str
    mirrored: bool = False
    agreement: float | None = None
    source_page: str | None = None
    captured_at: str | None = None
    source_date: str | None = None
    ingested_at: str | None = None
    legal_basis: str | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content_credentials: dict[str, Any] | None = None


class SameFacePicture(BaseModel):
    """Another stored picture of a face of the probe: a lead for a person to review, never an identification."""

    image: str
    image_id: int
    face_id: int
    probe_face: int
    collection: str
    similarity: float
    fmr: float | None
    expected_false_matches: float | None
    first_known: str | None
    first_known_from: str
    source_url: str | None
    source_page: str | None = None


class ProvenanceResult(BaseModel):
    """The answer for one probe picture (see the module's note); ``timeline``: the duplicates' image ids by
    first-known date, earliest first."""

    probe: str
    error: str | None = None
    duplicates: list[DuplicatePicture] = Field(default_factory=list)
    same_faces: list[SameFacePicture] = Field(default_factory=list)
    timeline: list[int] = Field(default_factory=list)
    probe_facts: PictureFacts = Field(default_factory=PictureFacts)
    pictures_searched: int = 0
    pack: str | None = None
    warnings: list[str] = Field(default_factory=list)


def _facts(data: bytes, rgb: np.ndarray) -> PictureFacts:
    found = fingerprint(rgb)
    claims = read_facts(data, sniff_format(data))
    return PictureFacts(
        pdq=found.pdq.hex(),
        pdq_quality=found.quality,
        captured_at=claims.captured_at.isoformat() if claims.captured_at else None,
        camera=claims.camera,
        latitude=claims.latitude,
        longitude=claims.longitude,
        content_credentials=None if claims.content_credentials is None else _json(claims.content_credentials),
    )


def _json(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _duplicate(record: PictureRecord, distance: int, match: str, **extra: Any) -> DuplicatePicture:
    return DuplicatePicture(
        image=record.path,
        distance=distance,
        first_known=record.first_known,
        source_url=record.source_url,
        image_id=record.id,
        collection=record.collection,
        first_known_from=record.first_known_from,
        match=match,
        source_page=record.source_page,
        captured_at=record.captured_at,
        source_date=record.source_date,
        ingested_at=record.ingested_at,
        legal_basis=record.legal_basis,
        camera=record.camera,
        latitude=record.latitude,
        longitude=record.longitude,
        content_credentials=record.content_credentials,
        **extra,
    )


def _description(image_id: int, data: bytes, rgb: np.ndarray) -> dict[str, Any]:
    """The columns a stored picture's fingerprint and claims fill in (the capture date only when it has one)."""
    found = fingerprint(rgb)
    claims = read_facts(data, sniff_format(data))
    row: dict[str, Any] = {
        "id": image_id,
        "pdq": found.pdq,
        "pdq_quality": found.quality,
        "camera": claims.camera,
        "latitude": claims.latitude,
        "longitude": claims.longitude,
        "content_credentials": claims.content_credentials,
    }
    if claims.captured_at is not None:
        row["captured_at"] = claims.captured_at
    return row


def _stored_pixels(path: str, max_pixels: int) -> np.ndarray | None:
    """A stored picture, upright, decoded no larger than aligning needs (a JPEG's reduced decode);
    ``None`` when it cannot be read."""
    from facesearch.vision.image import to_rgb_image

    try:
        return decode_upright(
            path,
            max_pixels=max_pixels,
            convert=lambda picture, _scale: np.asarray(to_rgb_image(picture)),
            side_at_least=STORED_SIDE,
        )
    except ImageRejected:
        return None


class Provenance:
    """Near-duplicate and same-face lookups of one data folder, as a principal may make them."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, searching: Searching, *, max_pixels: int) -> None:
        self.catalog = catalog
        self.audit = audit
        self.searching = searching
        self.max_pixels = max_pixels
        self.hashes = PictureHashIndex(catalog.provenance)

    def lookup_as(
        self,
        principal: Principal,
        image: bytes | str | os.PathLike[str],
        *,
        purpose: str | None,
        case_id: str | None,
        probe_name: str | None = None,
        required: bool = True,
    ) -> ProvenanceResult:
        """Where the probe picture has appeared, as ``principal`` may see (their collections only), under a
        purpose and case (required from users of the server); audited."""
        require(principal, "search")
        context = self.searching.context(principal=principal, purpose=purpose, case_id=case_id, required=required)
        collections = None if principal.all_collections else sorted(principal.collections)
        return self.lookup(image, context=context, collections=collections, probe_name=probe_name)

    def lookup(
        self,
        image: bytes | str | os.PathLike[str],
        *,
        context: ActionContext,
        collections: Sequence[str] | None = None,
        probe_name: str | None = None,
    ) -> ProvenanceResult:
        """The lookup itself (see the module's note), limited to ``collections`` when given."""
        name = probe_name or (os.fspath(image) if not isinstance(image, bytes) else "<image>")
        result = ProvenanceResult(probe=name)
        try:
            data = image if isinstance(image, bytes) else read_image_bytes(image)
            rgb = load_image(data, max_pixels=self.max_pixels)
        except ImageRejected as rejected:
            result.error = f"{rejected.reason}: {rejected.detail}"
            self._record(context, {"error": rejected.reason})
            return result
        result.probe_facts = _facts(data, rgb)
        allowed = self._collection_ids(collections)
        self.hashes.catch_up(self.catalog.generation())
        result.pictures_searched = len(self.hashes)
        codes = {variant: found.pdq for variant, found in probe_fingerprints(rgb).items()}
        near = self.hashes.near(codes, CANDIDATE_RADIUS, allowed)
        service = self.searching.service(context=context, max_pixels=self.max_pixels)
        threshold = service.pack.threshold

        def trace(candidates_of_faces: list[list[Candidate]]) -> dict[str, Any]:
            """Called by the face search before its record is written: the whole lookup is that one record."""
            face_hits = [
                (number, candidate)
                for number, candidates in enumerate(candidates_of_faces, start=1)
                for candidate in candidates
                if candidate.similarity >= threshold
            ]
            self._trace(rgb, near, face_hits, result)
            return {
                "duplicates": [d.image_id for d in result.duplicates],
                "same_faces": [s.face_id for s in result.same_faces],
                "pictures_searched": result.pictures_searched,
            }

        faces = service.search(
            data,
            top_k=FACE_CANDIDATES,
            probe_name=name,
            context=context,
            collections=collections,
            action="provenance",
            also_record=trace,
        )
        result.pack = faces.pack
        if faces.error:
            result.error = faces.error
        result.warnings.extend(faces.warnings)
        return result

    def _trace(
        self,
        rgb: np.ndarray,
        near: Sequence[HashMatch],
        face_hits: Sequence[tuple[int, Candidate]],
        result: ProvenanceResult,
    ) -> None:
        """Fill ``result`` with the copies among the hash candidates and the pictures of the faces found, and
        with the other pictures of those faces."""
        image_of_face = self.catalog.provenance.images_of_faces([c.face_id for _, c in face_hits])
        candidates = [m.image_id for m in near]
        candidates += [image_of_face[c.face_id] for _, c in face_hits if c.face_id in image_of_face]
        records = self.catalog.provenance.pictures(candidates)
        duplicates = self._duplicates(rgb, candidates, {m.image_id: m for m in near}, records, result)
        result.duplicates = sorted(duplicates.values(), key=lambda d: (d.distance, d.first_known or "", d.image_id))
        by_date = sorted(duplicates.values(), key=lambda d: (d.first_known or "~", d.image_id))
        result.timeline = [d.image_id for d in by_date]
        seen: set[int] = set(duplicates)
        for number, candidate in face_hits:
            image_id = image_of_face.get(candidate.face_id)
            record = records.get(image_id) if image_id is not None else None
            if record is None or record.id in seen:
                continue
            seen.add(record.id)
            result.same_faces.append(
                SameFacePicture(
                    image=record.path,
                    image_id=record.id,
                    face_id=candidate.face_id,
                    probe_face=number,
                    collection=record.collection,
                    similarity=candidate.similarity,
                    fmr=candidate.fmr,
                    expected_false_matches=candidate.expected_false_matches,
                    first_known=record.first_known,
                    first_known_from=record.first_known_from,
                    source_url=record.source_url,
                    source_page=record.source_page,
                )
            )

    def _duplicates(
        self,
        rgb: np.ndarray,
        candidates: Sequence[int],
        distances: dict[int, HashMatch],
        records: dict[int, PictureRecord],
        result: ProvenanceResult,
    ) -> dict[int, DuplicatePicture]:
        found: dict[int, DuplicatePicture] = {}
        probe: ProbePicture | None = None
        aligned = 0
        for image_id in dict.fromkeys(candidates):  # in order, once each
            record = records.get(image_id)
            if record is None or image_id in found:
                continue
            hashed = distances.get(image_id)
            if hashed is not None and hashed.distance <= MATCH_DISTANCE:
                mirrored = "mirrored" in hashed.variant
                found[image_id] = _duplicate(record, hashed.distance, "hash", mirrored=mirrored)
                continue
            if aligned >= MAX_ALIGNED:
                continue
            stored = _stored_pixels(record.path, self.max_pixels)
            if stored is None:
                continue
            probe = probe or ProbePicture(rgb)
            aligned += 1
            alignment = probe.align(stored)
            if alignment is not None and alignment.same_picture:
                distance = min(alignment.distance, hashed.distance if hashed is not None else 256)
                found[image_id] = _duplicate(
                    record, distance, "aligned", mirrored=alignment.mirrored, agreement=alignment.agreement
                )
        if aligned >= MAX_ALIGNED:
            result.warnings.append(
                f"only the {MAX_ALIGNED} nearest candidates were compared in full; narrow the search to a collection"
            )
        return found

    def backfill(self, principal: Principal, *, limit: int | None = None) -> dict[str, int]:
        """Fingerprint the pictures stored before fingerprints existed (their PDQ hash and their EXIF and C2PA
        claims, read from their files), at most ``limit``; audited (``fingerprint_backfill``) with the counts.
        Pictures whose file can no longer be read are counted and left as they are."""
        require(principal, "collections.manage")
        require_unlimited(principal, "fingerprinting stored pictures")
        done, unreadable, after = 0, 0, 0
        while limit is None or done + unreadable < limit:
            room = 200 if limit is None else min(200, limit - done - unreadable)
            batch = self.catalog.provenance.unhashed(limit=room, after_id=after)
            if not batch:
                break
            rows = []
            for image_id, path in batch:
                try:
                    data = read_image_bytes(path)
                    rgb = load_image(data, max_pixels=self.max_pixels * 4)
                except ImageRejected:
                    unreadable += 1
                    continue
                rows.append(_description(image_id, data, rgb))
            after = batch[-1][0]
            with self.catalog.transaction() as tx:
                self.catalog.provenance.set_descriptions(tx, rows)
                bump_generation(tx)
            done += len(rows)
        counts = {"fingerprinted": done, "unreadable": unreadable}
        self.audit.append(actor=principal.actor, action="fingerprint_backfill", details=counts)
        return counts

    def _collection_ids(self, collections: Sequence[str] | None) -> set[int] | None:
        if collections is None:
            return None
        return {i for i in (self.catalog.collection_id(name) for name in collections) if i is not None}

    def _record(self, context: ActionContext, details: dict[str, Any]) -> int:
        """The record of a lookup that stopped before its face search (an unreadable probe)."""
        return self.audit.append(
            actor=context.actor,
            action="provenance",
            purpose=context.purpose,
            case_ref=context.case_ref,
            probe_sha256=None,
            details=details,
        )
