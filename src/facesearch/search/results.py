"""What a search and a verification answer: the models the search service returns, the CLI prints as JSON
and the API sends (one set of them; the field names are part of the ``search --json`` and ``verify --json``
contract, relied on by scripts: extend them, never rename them)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr


class Candidate(BaseModel):
    """A stored face similar to a probe face: a lead for a person to review, never an identification."""

    rank: int
    face_id: int
    image: str
    subject: str | None
    collection: str
    similarity: float
    source_url: str | None
    bbox: list[float]
    # Calibrated meaning of ``similarity`` (null when the pack has no calibration): the per-comparison
    # false-match rate, and fmr x the number of faces searched; ``fmr_beyond_data``: fmr is only a bound (<).
    fmr: float | None = None
    expected_false_matches: float | None = None
    fmr_beyond_data: bool | None = None
    # Provenance of the candidate's photo, when its source said (a manifest's page and capture date).
    source_page: str | None = None
    captured_at: str | None = None
    # "video" when the face is a track of a video: ``time_span`` [start, end] in seconds, and ``frame_time`` the
    # second of the frame its box and crop are from; "image" (and nulls) for a picture.
    media: str = "image"
    time_span: list[float] | None = None
    frame_time: float | None = None


class SubjectCandidate(BaseModel):
    """An enrolled person similar to a probe face, scored against the template of all their enrolled faces.

    ``similarity`` is the probe's cosine similarity to the subject's template (the normalised mean of the
    embeddings of the ``faces`` enrolled under it); ``best_face_id`` / ``best_similarity`` / ``image`` name the
    single enrolled face closest to the probe, for a reviewer to look at.

    The template similarity ranks subjects best but has no calibration of its own (a mean vector scores higher
    against everyone, strangers included). ``mean_similarity`` is the mean of the probe's similarities to the
    subject's faces, and ``fmr`` is the pack's single-face calibration read at it: an upper bound for the
    subject, since a mean of several comparisons passes a threshold less often than one comparison does
    (``benchmarks/templates.py --pack fused``, lfw-dev, at the pack's threshold: 5.2e-4, 4.3e-4 and 3.4e-4 for
    2, 3 and 5 faces, against 9.0e-4 for one; by template similarity 3.1e-3, 4.7e-3 and 7.0e-3).
    ``expected_false_matches`` is fmr x the faces searched (at least as many as the subjects).
    """

    rank: int
    subject: str
    similarity: float
    faces: int
    best_face_id: int
    best_similarity: float
    image: str
    collection: str
    mean_similarity: float = 0.0
    fmr: float | None = None
    expected_false_matches: float | None = None
    fmr_beyond_data: bool | None = None


class ProbeFace(BaseModel):
    """One face of a probe photo and its candidates, best first (and its subjects, when asked for)."""

    bbox: list[float]
    detector_score: float
    quality: float
    quality_reasons: list[str]
    candidates: list[Candidate] = Field(default_factory=list)
    subjects: list[SubjectCandidate] | None = None
    # A video probe's face is a track: when it was seen in the clip (seconds); null for a photo.
    time_span: list[float] | None = None


class ProbeResult(BaseModel):
    """The answer for one probe photo: its faces (largest first), or the error that stopped it."""

    probe: str
    error: str | None
    faces: list[ProbeFace] = Field(default_factory=list)
    pack: str | None = None
    threshold: float | None = None
    warnings: list[str] = Field(default_factory=list)
    # How many stored faces were compared with (the whole gallery, or the collections searched): 0 says the
    # search had nothing to compare with, which an empty list of candidates alone would not.
    faces_searched: int | None = None
    # The candidates' face crops (JPEG, by face id) when the search was asked for them (the workbench shows
    # them with the results; its audit record says so): never part of the JSON answer.
    _crops: dict[int, bytes] = PrivateAttr(default_factory=dict)
    # The probe as decoded (upright RGB), kept for an interface that shows it beside its results.
    _pixels: Any = PrivateAttr(default=None)

    def pixels(self) -> np.ndarray | None:
        """The probe's decoded pixels (when the search was asked for crops), else ``None``."""
        pixels: np.ndarray | None = self._pixels
        return pixels

    def crop(self, face_id: int) -> bytes | None:
        """The crop of candidate ``face_id`` made with the search (``None``: not asked for, or unreadable)."""
        return self._crops.get(face_id)


class VerifyResult(BaseModel):
    """A 1:1 comparison of the largest face of two photos."""

    similarity: float | None
    same_person: bool | None
    threshold: float
    pack: str
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # The calibrated FMR of ``similarity`` and the FMR the decision was made at (null without a calibration,
    # when ``threshold`` is the pack's own).
    fmr: float | None = None
    decision_fmr: float | None = None
