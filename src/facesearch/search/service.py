"""The one entry point for 1:N search and 1:1 verification.

Every candidate is a lead for a person to review, never an identification: outputs say so and carry the
numbers a reviewer needs (similarity, the pack's threshold, the probe's quality).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.index.base import VectorIndex
from facesearch.vision.image import ImageRejected, load_image
from facesearch.vision.packs import AnalysedFace, ModelPack

ImageInput = str | os.PathLike[str] | bytes | np.ndarray


@dataclass
class Candidate:
    """A stored face similar to a probe face. Field names are part of the ``search --json`` contract."""

    rank: int
    face_id: int
    image: str
    subject: str | None
    collection: str
    similarity: float
    source_url: str | None
    bbox: list[float]


@dataclass
class ProbeFace:
    """One face of a probe photo and its candidates, best first."""

    bbox: list[float]
    detector_score: float
    quality: float
    quality_reasons: list[str]
    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class ProbeResult:
    """The answer for one probe photo: its faces (largest first), or the error that stopped it."""

    probe: str
    error: str | None
    faces: list[ProbeFace] = field(default_factory=list)
    pack: str | None = None
    threshold: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``search --json`` line)."""
        return asdict(self)


@dataclass
class VerifyResult:
    """A 1:1 comparison of the largest face of two photos."""

    similarity: float | None
    same_person: bool | None
    threshold: float
    pack: str
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``verify --json`` object)."""
        return asdict(self)


def _bbox(values: Any) -> list[float]:
    return [round(float(v), 1) for v in values]


def _decode(image: ImageInput) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    return load_image(image if isinstance(image, bytes) else os.fspath(image))


def _probe_warnings(face: AnalysedFace) -> list[str]:
    return [f"poor quality probe face: {reason.replace('_', ' ')}" for reason in face.quality.reasons]


class SearchService:
    """Searches one pack's index and describes candidates from the catalog."""

    def __init__(self, catalog: Catalog, pack: ModelPack, index: VectorIndex) -> None:
        self.catalog = catalog
        self.pack = pack
        self.index = index

    def analyse(self, image: ImageInput) -> list[AnalysedFace]:
        """Faces of a probe photo, largest first (raises :class:`ImageRejected` for unusable input)."""
        return self.pack.analyse([_decode(image)])[0]

    def search(
        self,
        image: ImageInput,
        *,
        top_k: int = 10,
        collection: str | None = None,
        probe_name: str | None = None,
    ) -> ProbeResult:
        """Search every face of a probe photo; an unreadable probe gives a result with ``error`` set."""
        name = probe_name or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<image>")
        result = ProbeResult(probe=name, error=None, pack=self.pack.key, threshold=self.pack.threshold)
        try:
            faces = self.analyse(image)
        except ImageRejected as rejected:
            result.error = f"{rejected.reason}: {rejected.detail}"
            return result
        if not faces:
            result.warnings.append("no face found in the probe")
            return result
        allowed = None
        if collection is not None:
            collection_id = self.catalog.collection_id(collection)
            if collection_id is None:
                result.error = f"unknown collection {collection!r}"
                return result
            allowed = self.catalog.collection_face_ids(collection_id, self.pack.key)
        vectors = np.stack([face.embedding for face in faces])
        all_candidates = self.search_vectors(vectors, top_k=top_k, allowed_ids=allowed)
        for face, candidates in zip(faces, all_candidates, strict=True):
            result.faces.append(
                ProbeFace(
                    bbox=_bbox(face.detection.bbox),
                    detector_score=round(float(face.detection.score), 4),
                    quality=float(face.quality.score),
                    quality_reasons=list(face.quality.reasons),
                    candidates=candidates,
                )
            )
            result.warnings.extend(_probe_warnings(face))
        return result

    def search_vectors(
        self, vectors: np.ndarray, *, top_k: int = 10, allowed_ids: np.ndarray | None = None
    ) -> list[list[Candidate]]:
        """Candidates for probe embeddings (one list per row), with their metadata fetched in one query."""
        if allowed_ids is not None and allowed_ids.size == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = self.index.search(vectors, top_k, allowed_ids)
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        details = self.catalog.face_details(wanted)
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            candidates: list[Candidate] = []
            for score, face_id in zip(row_scores, row_ids, strict=True):
                info = details.get(int(face_id))
                if face_id < 0 or info is None:  # erased from the catalog but not yet from the index
                    continue
                candidates.append(
                    Candidate(
                        rank=len(candidates) + 1,
                        face_id=int(face_id),
                        image=info.image_path,
                        subject=info.subject,
                        collection=info.collection,
                        similarity=round(float(score), 4),
                        source_url=info.source_url,
                        bbox=_bbox(info.bbox),
                    )
                )
            results.append(candidates)
        return results

    def verify(self, image_a: ImageInput, image_b: ImageInput) -> VerifyResult:
        """Compare the largest face of each photo; ``same_person`` is similarity >= the pack's threshold."""
        result = VerifyResult(similarity=None, same_person=None, threshold=self.pack.threshold, pack=self.pack.key)
        embeddings = []
        for label, image in (("A", image_a), ("B", image_b)):
            try:
                faces = self.analyse(image)
            except ImageRejected as rejected:
                result.error = f"image {label}: {rejected.reason}: {rejected.detail}"
                return result
            if not faces:
                result.error = f"image {label}: no face found"
                return result
            result.warnings.extend(f"image {label}: {w}" for w in _probe_warnings(faces[0]))
            embeddings.append(faces[0].embedding)
        similarity = float(np.dot(embeddings[0], embeddings[1]))
        result.similarity = round(similarity, 4)
        result.same_person = similarity >= self.pack.threshold
        return result
