"""The one entry point for 1:N search and 1:1 verification.

Every candidate is a lead for a person to review, never an identification: outputs say so and carry the
numbers a reviewer needs (similarity, the pack's threshold, the probe's quality).

Every search and verify writes its audit record here (who, purpose, case, the probe's sha256, the face ids
and scores returned), whoever calls it: the CLI, the API and the Python API all come through this class, and
a result is handed out only once its record is written. Candidates on the opt-out list are never returned,
and neither is a face erased from the catalog that an index not yet caught up still holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import UNSPECIFIED_PURPOSE
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import ActionContext, local_actor
from facesearch.governance.optout import OptOutList
from facesearch.index.base import VectorIndex
from facesearch.search.calibration import DEFAULT_VERIFY_FMR, Calibration, find_calibration
from facesearch.search.results import Candidate, ProbeFace, ProbeResult, SubjectCandidate, VerifyResult
from facesearch.vision.crops import GRID_CROP_SIZE, face_crop_jpeg
from facesearch.vision.image import DEFAULT_MAX_PIXELS, ImageRejected, load_image, read_image_bytes
from facesearch.vision.packs import AnalysedFace, ModelPack
from facesearch.vision.quality import POOR_REASONS
from facesearch.vision.tracking import file_sha256, video_tracks
from facesearch.vision.video import is_video_file

if TYPE_CHECKING:
    from facesearch.catalog.base import Transaction

ImageInput = str | os.PathLike[str] | bytes | np.ndarray


SUBJECT_POOL = 100
"""Faces looked at per probe face to find the subjects to rank (``search(by_subject=True)``)."""


Ranked = TypeVar("Ranked", Candidate, SubjectCandidate)
"""A face candidate or a subject candidate: both carry ``fmr``, ``expected_false_matches``, ``fmr_beyond_data``."""


def _similarity(candidate: Candidate) -> float:
    return candidate.similarity


def _mean_similarity(subject: SubjectCandidate) -> float:
    return subject.mean_similarity


def _bbox(values: Any) -> list[float]:
    return [round(float(v), 1) for v in values]


def _span(spans: Sequence[tuple[float, float] | None], position: int) -> list[float] | None:
    """A video probe face's time span as the answer gives it (``None`` for a photo's)."""
    span = spans[position] if position < len(spans) else None
    return [span[0], span[1]] if span is not None else None


def _read_probe(image: ImageInput, max_pixels: int) -> tuple[np.ndarray, str]:
    """Decode a probe; returns the RGB array and the sha256 of its bytes (of its pixels for an array)."""
    if isinstance(image, np.ndarray):
        return image, hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    data = image if isinstance(image, bytes) else read_image_bytes(image)
    return load_image(data, max_pixels=max_pixels), hashlib.sha256(data).hexdigest()


def _probe_sha256(image: ImageInput) -> str | None:
    """The probe's sha256 when it can be read at all (for the audit record of a rejected probe)."""
    try:
        if isinstance(image, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        return hashlib.sha256(image if isinstance(image, bytes) else read_image_bytes(image)).hexdigest()
    except ImageRejected:
        return None


_ANALYSIS_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def analysis_lock(pack: ModelPack) -> contextlib.AbstractContextManager[Any]:
    """A lock for packs whose models must not run in two threads at once (dlib's keep state per call).

    ONNX Runtime sessions and the YuNet wrapper are safe to share; dlib's detector and network are not, and
    a server answers requests from several threads.
    """
    spec = getattr(pack, "spec", None)
    if spec is None or "dlib" not in f"{spec.detector} {spec.embedder}":
        return contextlib.nullcontext()
    with _LOCKS_LOCK:
        return _ANALYSIS_LOCKS.setdefault(pack.key, threading.Lock())


def _results(candidates: Sequence[Sequence[Candidate]]) -> list[list[list[float]]]:
    """What the audit record keeps of candidates: ``[face_id, similarity]`` pairs per probe face."""
    return [[[c.face_id, c.similarity] for c in row] for row in candidates]


def _where(number: int, face: AnalysedFace) -> str:
    """How a warning names a probe face: its number (largest first) and its box."""
    x, y, w, h = (round(float(v)) for v in face.detection.bbox)
    return f"face {number} (at {x},{y}, {w}x{h} px)"


def _probe_warnings(face: AnalysedFace, where: str) -> list[str]:
    poor = [reason.replace("_", " ") for reason in face.quality.reasons if reason in POOR_REASONS]
    return [f"{where}: poor quality probe face ({', '.join(poor)})"] if poor else []


class SearchService:
    """Searches one pack's index, describes candidates from the catalog and audits every call.

    ``audit`` defaults to the trail beside an SQLite catalog's file (see :meth:`AuditTrail.beside`);
    ``context`` (who, purpose, case) defaults to the local user with purpose ``unspecified``, and each call
    may name its own; ``optouts`` are the opt-out embeddings of this pack, never returned.
    """

    def __init__(
        self,
        catalog: Catalog,
        pack: ModelPack,
        index: VectorIndex,
        *,
        audit: AuditTrail | None = None,
        context: ActionContext | None = None,
        optouts: OptOutList | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        calibration: Calibration | None = None,
    ) -> None:
        self.catalog = catalog
        self.pack = pack
        self.index = index
        self.audit = audit if audit is not None else AuditTrail.beside(catalog)
        self.context = context or ActionContext(actor=local_actor(), purpose=UNSPECIFIED_PURPOSE)
        self.optouts = optouts
        self.max_pixels = max_pixels
        # The pack's score calibration (default: the one shipped for it, if any); see search/calibration.py.
        self.calibration = calibration if calibration is not None else find_calibration(pack.key)

    def analyse(self, image: ImageInput) -> list[AnalysedFace]:
        """Faces of a probe photo, largest first (raises :class:`ImageRejected` for unusable input)."""
        return self._analyse(_read_probe(image, self.max_pixels)[0])

    def _analyse(self, rgb: np.ndarray) -> list[AnalysedFace]:
        with analysis_lock(self.pack):
            return self.pack.analyse([rgb])[0]

    def _video_faces(self, path: str) -> tuple[list[AnalysedFace], list[tuple[float, float] | None], str]:
        """A video probe's tracks as probe faces (each its template, its best frame's box), longest-seen first,
        with their time spans and the video's sha256."""
        with analysis_lock(self.pack):
            tracks = video_tracks(self.pack, path)
        tracks.sort(key=lambda t: (-t.seen, t.number))
        faces = [AnalysedFace(t.best.detection, t.best.quality, t.template) for t in tracks]
        return faces, [t.time_span for t in tracks], file_sha256(path)

    def _record(
        self,
        action: str,
        context: ActionContext | None,
        probe_sha256: str | None,
        details: dict[str, Any],
        returned: Sequence[tuple[int, float]] = (),
    ) -> int:
        """Write the call's audit record; the faces ``returned`` under a case become that case's candidates
        in the same transaction (what its reviewers may then read and decide on)."""
        context = context or self.context
        case_ref = context.case_ref

        def remember(tx: Transaction, seq: int) -> None:
            if case_ref is not None and returned:
                self.catalog.cases.add_candidates(tx, case_ref, seq, list(returned))

        return self.audit.append(
            actor=context.actor,
            action=action,
            purpose=context.purpose,
            case_ref=case_ref,
            probe_sha256=probe_sha256,
            details={"pack": self.pack.key, **details},
            also=remember,
        )

    def _allowed_ids(self, collection: str | None, collections: Sequence[str] | None) -> np.ndarray | str | None:
        """Face ids a search may return (``None``: all), or an error message for an unknown collection."""
        names = [collection] if collection is not None else None
        if collections is not None:
            visible = set(collections)
            names = [n for n in (names if names is not None else sorted(visible)) if n in visible]
            if collection is not None and not names:
                return f"unknown collection {collection!r}"  # the same answer as for a collection that is not there
        if names is None:
            return None
        ids = []
        for name in names:
            collection_id = self.catalog.collection_id(name)
            if collection_id is None:
                return f"unknown collection {name!r}"
            ids.append(self.catalog.collection_face_ids(collection_id, self.pack.key))
        return np.unique(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)

    def search(
        self,
        image: ImageInput,
        *,
        top_k: int = 10,
        collection: str | None = None,
        probe_name: str | None = None,
        context: ActionContext | None = None,
        collections: Sequence[str] | None = None,
        max_fmr: float | None = None,
        by_subject: bool = False,
        crops: bool = False,
        action: str = "search",
        also_record: Callable[[list[list[Candidate]]], dict[str, Any]] | None = None,
    ) -> ProbeResult:
        """Search every face of a probe photo; an unreadable probe gives a result with ``error`` set.

        ``action`` names the audit record, and ``also_record(candidates of each face)`` adds what a caller built
        on the search to it before it is written (a provenance lookup: one record for the whole lookup).

        With ``crops`` the crops of the largest probe face's candidates are cut before the audit record is
        written, which then names them (``crops_shown``): one record for the search and what it showed (the
        workbench, which shows one probe face at a time and reads the others' crops when they are chosen).

        With ``by_subject`` each face also gets ``subjects``: the enrolled people ranked by the similarity to
        their template (all their enrolled faces combined; see :class:`SubjectCandidate`), which is more
        accurate than any single photo of them when they have several.

        ``collections`` limits the search to those collections (a user's grants). Candidates carry their
        calibrated ``fmr`` and ``expected_false_matches``; ``max_fmr`` keeps only those at or below it
        (ignored, with a warning, when the pack has no calibration). The call is audited (action ``search``)
        before its result is returned, whatever the outcome.
        """
        name = probe_name or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<image>")
        result = ProbeResult(probe=name, error=None, pack=self.pack.key, threshold=self.pack.threshold)
        details: dict[str, Any] = {"top_k": top_k, "collection": collection}
        if by_subject:
            details["by_subject"] = True
        if max_fmr is not None:
            details["max_fmr"] = max_fmr
            if self.calibration is None:
                result.warnings.append(f"no score calibration for pack {self.pack.key}: max_fmr not applied")
        spans: list[tuple[float, float] | None] = []
        rgb: np.ndarray | None = None
        try:
            if is_video_file(image):
                faces, spans, probe_sha256 = self._video_faces(os.fspath(image))  # type: ignore[arg-type]
                details["video"] = True
            else:
                rgb, probe_sha256 = _read_probe(image, self.max_pixels)
                faces = self._analyse(rgb)
        except ImageRejected as rejected:
            result.error = f"{rejected.reason}: {rejected.detail}"
            self._record(action, context, _probe_sha256(image), {**details, "error": rejected.reason})
            return result
        allowed = self._allowed_ids(collection, collections)
        if isinstance(allowed, str):
            result.error = allowed
            self._record(action, context, probe_sha256, {**details, "error": "unknown_collection"})
            return result
        if not faces:
            result.warnings.append("no face found in the probe")
            more = also_record([]) if also_record is not None else {}
            self._record(action, context, probe_sha256, {**details, "faces": 0, "results": [], **more})
            return result
        vectors = np.stack([face.embedding for face in faces])
        # Subjects are found among a wider set of faces than is shown: a person whose photos all rank below
        # the first ``top_k`` faces can still have the closest template.
        wide = max(top_k, SUBJECT_POOL) if by_subject else top_k
        all_candidates = self._candidates(vectors, top_k=wide, allowed_ids=allowed)
        all_subjects = self._subjects(vectors, all_candidates, allowed, top_k) if by_subject else [None] * len(faces)
        all_candidates = [row[:top_k] for row in all_candidates]
        searched = len(self.index) if allowed is None else int(allowed.size)
        all_candidates = [self._calibrate(row, searched, max_fmr, _similarity) for row in all_candidates]
        # A subject's fmr is read at its mean similarity: an upper bound (see SubjectCandidate).
        all_subjects = [
            None if row is None else self._calibrate(row, searched, max_fmr, _mean_similarity) for row in all_subjects
        ]
        returned = [(c.face_id, c.similarity) for row in all_candidates for c in row]
        returned += [(s.best_face_id, s.best_similarity) for row in all_subjects if row for s in row]
        if crops and rgb is not None:
            result._pixels = rgb  # shown beside the results: decoded once
        if crops and all_candidates and all_candidates[0]:
            # Cut before the record is written, which then names them: one record for the search and what it
            # showed. Nothing is handed out before it is committed.
            result._crops = self._crops([c.face_id for c in all_candidates[0]])
            details["crops_shown"] = sorted(result._crops)
        more = also_record(all_candidates) if also_record is not None else {}
        self._record(
            action,
            context,
            probe_sha256,
            {**details, "faces": len(faces), "faces_searched": searched, "results": _results(all_candidates), **more},
            returned,
        )
        result.faces_searched = searched
        if searched == 0:
            scope = f"collection {collection!r}" if collection else "the gallery"
            result.warnings.append(
                f"{scope} holds no face indexed with pack {self.pack.key}: nothing to compare with "
                "(index photos with this pack, or search with the pack the faces were indexed with)"
            )
        for number, (face, candidates, subjects) in enumerate(
            zip(faces, all_candidates, all_subjects, strict=True), start=1
        ):
            where = _where(number, face)
            if not candidates and searched and max_fmr is not None:
                result.warnings.append(f"{where}: no candidate at or below the false-match rate {max_fmr:g}")
            if candidates and candidates[0].similarity < self.pack.threshold:
                result.warnings.append(
                    f"{where}: no candidate reaches the same-person threshold {self.pack.threshold} among the "
                    f"{searched} faces searched; those shown are only the closest, most likely other people"
                )
            result.faces.append(
                ProbeFace(
                    bbox=_bbox(face.detection.bbox),
                    detector_score=round(float(face.detection.score), 4),
                    quality=float(face.quality.score),
                    quality_reasons=list(face.quality.reasons),
                    candidates=candidates,
                    subjects=subjects,
                    time_span=_span(spans, number - 1),
                )
            )
            result.warnings.extend(_probe_warnings(face, where))
        return result

    def _crops(self, face_ids: Sequence[int]) -> dict[int, bytes]:
        """The crops of stored faces (those whose photo can no longer be read left out). One after the other:
        a crop costs about half a millisecond, less than handing it to a thread."""
        wanted = list(dict.fromkeys(face_ids))
        crops = self.catalog.thumbnails(wanted)  # cut at ingest; the others are cut now
        missing = [face_id for face_id in wanted if face_id not in crops]
        for face_id, face in self.catalog.face_details(missing).items():
            try:
                crops[face_id] = face_crop_jpeg(
                    face.image_path,
                    face.bbox,
                    max_pixels=self.max_pixels * 4,
                    size=GRID_CROP_SIZE,
                    frame_time=face.frame_time,
                )
            except ImageRejected:
                continue
        return crops

    def _subjects(
        self,
        vectors: np.ndarray,
        candidates: Sequence[Sequence[Candidate]],
        allowed: np.ndarray | None,
        top_k: int,
    ) -> list[list[SubjectCandidate] | None]:
        """Per probe row: the subjects among its candidates, ranked by similarity to their template.

        A template is the normalised mean of the subject's enrolled faces that this search may return (in
        the allowed collections, not opted out). Measured on lfw-dev with yunet-mobilefacenet
        (``benchmarks/templates.py``): with two photos per person FNIR at FPIR 0.01 falls from 4.7% (best
        single photo) to 3.3%, with three from 3.6% to 2.4%.
        """
        labels = sorted({c.subject for row in candidates for c in row if c.subject is not None})
        enrolled = self.catalog.subject_embeddings(labels, self.pack.key) if labels else {}
        usable: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        hidden = self._hidden([int(i) for ids, _ in enrolled.values() for i in ids])
        for label, (ids, faces) in enrolled.items():
            keep = ~np.isin(ids, list(hidden)) if hidden else np.ones(len(ids), dtype=bool)
            if allowed is not None:
                keep &= np.isin(ids, allowed)
            if keep.any():
                usable[label] = (ids[keep], faces[keep])
        results: list[list[SubjectCandidate] | None] = []
        for vector, row in zip(vectors, candidates, strict=True):
            ranked = []
            for label in {c.subject for c in row if c.subject in usable}:
                ids, faces = usable[label]
                mean = faces.mean(axis=0)
                template = mean / max(float(np.linalg.norm(mean)), 1e-12)
                best = next(c for c in row if c.subject == label)  # rows are best first
                ranked.append(
                    SubjectCandidate(
                        rank=0,
                        subject=str(label),
                        similarity=round(float(template @ vector), 4),
                        faces=len(ids),
                        best_face_id=best.face_id,
                        best_similarity=best.similarity,
                        image=best.image,
                        collection=best.collection,
                        mean_similarity=round(float(mean @ vector), 4),
                    )
                )
            ranked.sort(key=lambda s: (-s.similarity, s.subject))
            for rank, subject in enumerate(ranked[:top_k], start=1):
                subject.rank = rank
            results.append(ranked[:top_k])
        return results

    def _calibrate(
        self, items: list[Ranked], searched: int, max_fmr: float | None, score: Callable[[Ranked], float]
    ) -> list[Ranked]:
        """Give candidates (or subjects) the FMR of ``score(item)`` and the expected false matches among
        ``searched`` faces; drop any above ``max_fmr``."""
        if self.calibration is None:
            return items
        kept = []
        for item in items:
            estimate = self.calibration.estimate(score(item))
            item.fmr = float(f"{estimate.fmr:.4g}")
            item.expected_false_matches = float(f"{estimate.fmr * searched:.4g}")
            item.fmr_beyond_data = estimate.beyond_data
            if max_fmr is None or estimate.fmr <= max_fmr:
                kept.append(item)
        return kept

    def search_vectors(
        self,
        vectors: np.ndarray,
        *,
        top_k: int = 10,
        allowed_ids: np.ndarray | None = None,
        context: ActionContext | None = None,
    ) -> list[list[Candidate]]:
        """Candidates for probe embeddings (one list per row), with their metadata fetched in one query.

        Audited as one record (action ``search_vectors``, with the sha256 of the vectors) per call.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        candidates = self._candidates(vectors, top_k=top_k, allowed_ids=allowed_ids)
        probe_sha256 = hashlib.sha256(vectors.tobytes()).hexdigest()
        returned = [(c.face_id, c.similarity) for row in candidates for c in row]
        self._record(
            "search_vectors", context, probe_sha256, {"top_k": top_k, "results": _results(candidates)}, returned
        )
        return candidates

    def faces_above(
        self,
        image: ImageInput,
        threshold: float,
        *,
        context: ActionContext | None = None,
        collections: Sequence[str] | None = None,
    ) -> tuple[list[Candidate], str | None]:
        """Every stored face at or above ``threshold`` for the largest face of a photo, opted-out ones included.

        For "forget this person": the list to review before erasing, limited to ``collections`` (the acting
        user's) when given. Returns ``(candidates, error)``; audited (action ``forget_search``).
        """
        try:
            rgb, probe_sha256 = _read_probe(image, self.max_pixels)
        except ImageRejected as rejected:
            self._record("forget_search", context, _probe_sha256(image), {"error": rejected.reason})
            return [], f"{rejected.reason}: {rejected.detail}"
        faces = self._analyse(rgb)
        if not faces:
            self._record("forget_search", context, probe_sha256, {"faces": 0, "results": []})
            return [], "no face found in the photo"
        vector = faces[0].embedding[None, :]
        allowed = self._allowed_ids(None, collections)
        if isinstance(allowed, str):  # a grant to a collection since erased: nothing to list
            allowed = np.zeros(0, dtype=np.int64)
        k = 100
        while allowed is None or allowed.size:
            scores, _ids = self.index.search(vector, k, allowed)
            if scores[0, -1] < threshold or k >= len(self.index):
                break
            k = min(len(self.index), k * 4)
        found = self._candidates(vector, top_k=k, allowed_ids=allowed, include_opted_out=True)[0]
        kept = [c for c in found if c.similarity >= threshold]
        self._record("forget_search", context, probe_sha256, {"threshold": threshold, "results": _results([kept])})
        return kept, None

    def _hidden(self, face_ids: Sequence[int]) -> set[int]:
        """Which of these faces match the opt-out list."""
        if self.optouts is None or not len(self.optouts) or not face_ids:
            return set()
        hidden: set[int] = set()
        for ids, vectors in self.catalog.iter_embeddings(self.pack.key, list(face_ids)):
            hidden.update(int(i) for i in ids[self.optouts.matches(vectors)])
        return hidden

    def _candidates(
        self,
        vectors: np.ndarray,
        *,
        top_k: int,
        allowed_ids: np.ndarray | None,
        include_opted_out: bool = False,
    ) -> list[list[Candidate]]:
        """The best ``top_k`` returnable candidates per probe row (no audit record: callers write it).

        Faces that cannot be returned (opted out, or erased but still in an index not yet caught up) are
        dropped; the index is then asked for more, so that each row still gets ``top_k`` when there are.
        """
        if allowed_ids is not None and allowed_ids.size == 0:
            return [[] for _ in range(len(vectors))]
        filtering = not include_opted_out and self.optouts is not None and len(self.optouts) > 0
        k = top_k * 2 + 16 if filtering else top_k
        while True:
            scores, ids = self.index.search(vectors, k, allowed_ids)
            wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
            details = self.catalog.face_details(wanted)
            hidden = self._hidden([i for i in wanted if i in details]) if filtering else set()
            results = self._describe(scores, ids, details, hidden, top_k)
            # Ask for more only when a row came up short while the index filled the whole page.
            short = any(
                len(row) < top_k and int((row_ids >= 0).sum()) == k for row, row_ids in zip(results, ids, strict=True)
            )
            if not short or k >= len(self.index):
                return results
            k = min(len(self.index), k * 4)

    @staticmethod
    def _describe(
        scores: np.ndarray, ids: np.ndarray, details: dict[int, Any], hidden: set[int], top_k: int
    ) -> list[list[Candidate]]:
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            candidates: list[Candidate] = []
            for score, face_id in zip(row_scores, row_ids, strict=True):
                info = details.get(int(face_id))
                # Erased from the catalog but not yet from the index, or opted out: never returned.
                if face_id < 0 or info is None or int(face_id) in hidden:
                    continue
                if len(candidates) == top_k:
                    break
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
                        source_page=info.source_page,
                        captured_at=info.captured_at,
                        media=info.media,
                        time_span=list(info.time_span) if info.time_span else None,
                        frame_time=info.frame_time,
                    )
                )
            results.append(candidates)
        return results

    def verify(
        self,
        image_a: ImageInput,
        image_b: ImageInput,
        *,
        context: ActionContext | None = None,
        fmr: float | None = None,
    ) -> VerifyResult:
        """Compare the largest face of each photo; ``same_person`` is similarity >= the threshold.

        The threshold is the calibrated similarity for a false-match rate of ``fmr`` per comparison (default
        1e-3) when the pack has a calibration, else the pack's own threshold (and the fmr fields are null).
        Audited (action ``verify``, with both photos' sha256) before the result is returned.
        """
        threshold = self.pack.threshold
        decision_fmr = None
        if self.calibration is not None:
            decision_fmr = DEFAULT_VERIFY_FMR if fmr is None else fmr
            threshold = round(self.calibration.threshold_for(decision_fmr), 4)
        result = VerifyResult(similarity=None, same_person=None, threshold=threshold, pack=self.pack.key)
        result.decision_fmr = decision_fmr
        embeddings = []
        hashes: list[str] = []
        for label, image in (("A", image_a), ("B", image_b)):
            try:
                rgb, probe_sha256 = _read_probe(image, self.max_pixels)
                hashes.append(probe_sha256)
                faces = self._analyse(rgb)
            except ImageRejected as rejected:
                result.error = f"image {label}: {rejected.reason}: {rejected.detail}"
                break
            if not faces:
                result.error = f"image {label}: no face found"
                break
            result.warnings.extend(_probe_warnings(faces[0], f"image {label}, its largest face"))
            embeddings.append(faces[0].embedding)
        if len(embeddings) == 2:
            similarity = float(np.dot(embeddings[0], embeddings[1]))
            result.similarity = round(similarity, 4)
            result.same_person = similarity >= threshold
            if self.calibration is not None:
                result.fmr = float(f"{self.calibration.fmr(result.similarity):.4g}")  # of the score shown
        self._record(
            "verify",
            context,
            ",".join(hashes) or None,
            {"similarity": result.similarity, "same_person": result.same_person, "error": result.error},
        )
        return result
