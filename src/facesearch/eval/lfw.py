"""LFW benchmark protocols, run through the same ingest and search code that users run.

The data set layout is ``images/<Person>/<Person>_NNNN.jpg`` plus ``pairs.tsv`` (columns ``fold name_a
image_a name_b image_b same``). Photos are ingested with ``subject_from_folder=True``, so each photo's
prominent face is enrolled under its person's name: that labelled face is the photo's face for the
benchmark, exactly as an enrolled collection would be searched in use.

- :func:`run_identification`: open-set 1:N search (rank-1, CMC, FNIR at fixed FPIR) of every other photo
  against a gallery of one photo per person (:func:`open_set_split`).
- :func:`run_verification`: 1:1 accuracy on the labelled pairs (10-fold accuracy, TAR at fixed FAR).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import Settings
from facesearch.engine import FaceSearch
from facesearch.eval.fairness import fairness_report
from facesearch.eval.metrics import (
    det_curve,
    open_set_at_threshold,
    open_set_metrics,
    rates_at_threshold,
    roc_curve,
    tar_at_far,
    verification_10fold,
)
from facesearch.vision.image import SUPPORTED_EXTENSIONS
from facesearch.vision.quality import POOR_REASONS

Log = Callable[[str], None]
SEARCH_BATCH = 1024


@dataclass(frozen=True)
class OpenSetSplit:
    """An open-set identification split: one gallery photo per enrolled person, and the probes.

    ``gallery`` maps person -> photo; ``mated`` and ``nonmated`` are ``(person, photo)`` probes, sorted.
    """

    gallery: dict[str, Path]
    mated: list[tuple[str, Path]]
    nonmated: list[tuple[str, Path]]


@dataclass(frozen=True)
class Pair:
    """One labelled pair of ``pairs.tsv``."""

    fold: int
    name_a: str
    image_a: str
    name_b: str
    image_b: str
    same: bool


@dataclass(frozen=True)
class LabelledFace:
    """The face enrolled for one ingested photo (its prominent face), with its embedding."""

    face_id: int
    subject: str
    embedding: np.ndarray
    quality: float = 1.0
    quality_reasons: tuple[str, ...] = ()


def list_people(images_dir: str | os.PathLike[str], *, limit_people: int | None = None) -> dict[str, list[Path]]:
    """Person -> sorted photos, for the people (sorted by name, the first ``limit_people`` if given)."""
    root = Path(images_dir)
    people: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_EXTENSIONS)
        if photos:
            people[folder.name] = photos
        if limit_people is not None and len(people) >= limit_people:
            break
    return people


def open_set_split(images_dir: str | os.PathLike[str], *, limit_people: int | None = None) -> OpenSetSplit:
    """The open-set split of a ``<Person>/<photo>`` folder.

    Gallery: the first photo (sorted by name) of each person with two or more photos. Mated probes: the
    other photos of those people. Non-mated probes: the photos of people with exactly one photo.
    ``limit_people`` keeps only the first people by name (for quick runs).
    """
    gallery: dict[str, Path] = {}
    mated: list[tuple[str, Path]] = []
    nonmated: list[tuple[str, Path]] = []
    for person, photos in list_people(images_dir, limit_people=limit_people).items():
        if len(photos) >= 2:
            gallery[person] = photos[0]
            mated.extend((person, photo) for photo in photos[1:])
        else:
            nonmated.append((person, photos[0]))
    return OpenSetSplit(gallery=gallery, mated=mated, nonmated=nonmated)


def read_pairs(pairs_tsv: str | os.PathLike[str]) -> list[Pair]:
    """The pairs of a ``pairs.tsv`` file (tab-separated, with a header row)."""
    with Path(pairs_tsv).open(newline="", encoding="utf-8") as handle:
        return [
            Pair(
                fold=int(row["fold"]),
                name_a=row["name_a"],
                image_a=row["image_a"],
                name_b=row["name_b"],
                image_b=row["image_b"],
                same=row["same"].strip() == "1",
            )
            for row in csv.DictReader(handle, delimiter="\t")
        ]


# Catalog reads (benchmark-only helpers over the catalog's session) ---------------------------------------


def labelled_faces(catalog: Catalog, collection: str, pack_key: str) -> dict[str, LabelledFace]:
    """Ingested path -> the face enrolled under a subject for it, in one collection and pack.

    A photo with no face found (or not decodable) has no entry. Paths are as the ingest recorded them
    (absolute, symbolic links not resolved); duplicate contents share their first path's face.
    """
    faces: dict[str, LabelledFace] = {}
    rows = catalog.enrolled_faces_by_path(_collection_id(catalog, collection), pack_key)
    for path, face_id, label, blob, quality, reasons in rows:
        faces.setdefault(
            path,
            LabelledFace(
                face_id,
                label,
                np.frombuffer(blob, dtype=np.float32),
                quality,
                tuple(json.loads(reasons)) if reasons else (),
            ),
        )
    return faces


def collection_face_ids(catalog: Catalog, collection: str, pack_key: str) -> np.ndarray:
    """Ids of every face of one collection and pack (enrolled or not)."""
    return catalog.collection_face_ids(_collection_id(catalog, collection), pack_key)


def faces_per_path(catalog: Catalog, collection: str, pack_key: str) -> dict[str, int]:
    """Ingested path -> how many faces the pack found in it (photos that were not decoded are absent)."""
    return catalog.scan_counts_by_path(_collection_id(catalog, collection), pack_key)


def _collection_id(catalog: Catalog, collection: str) -> int:
    collection_id = catalog.collection_id(collection)
    if collection_id is None:
        raise LookupError(f"collection {collection!r} was not ingested")
    return collection_id


# Helpers ---------------------------------------------------------------------------------------------------


def _link_tree(root: Path, entries: Iterable[tuple[str, Path]]) -> dict[tuple[str, str], str]:
    """Symbolic links ``root/<Person>/<file>`` to the photos; returns (person, file) -> link path."""
    links: dict[tuple[str, str], str] = {}
    for person, photo in entries:
        link = root / person / photo.name
        if (person, photo.name) not in links:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo.resolve())
            links[(person, photo.name)] = os.path.abspath(link)
    return links


def _say(log: Log | None, message: str) -> None:
    if log is not None:
        log(message)


def _open_engine(home: str | os.PathLike[str], pack: str | None, models_dir: Path | None = None) -> FaceSearch:
    """An engine on a scratch data folder of its own: its catalog and index never the user's (whatever the
    environment says), its models from ``models_dir`` when given (the user's models folder)."""
    settings = Settings.load(home, pack=pack)
    settings = settings.with_changes(
        catalog_url=f"sqlite:///{settings.home / 'catalog.sqlite3'}",
        index_url=None,
        models_dir=models_dir or settings.models_dir,
    )
    return FaceSearch(settings)


# Identification ------------------------------------------------------------------------------------------


def run_identification(
    home: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    pack: str | None = None,
    workers: int | None = None,
    *,
    limit_people: int | None = None,
    top_k: int = 20,
    distractors: str | os.PathLike[str] | None = None,
    groups: dict[str, str] | None = None,
    models_dir: Path | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Open-set identification on ``images_dir`` (see :func:`open_set_split`) in the data folder ``home``.

    ``distractors`` is a folder of photos of people who are never probed: every face in them joins the
    gallery (unlabelled), as the strangers of a real collection do, making both rank-1 and FPIR harder.
    ``groups`` maps a person to an attribute value (from a CSV): every figure is then also given per group
    (``by_group``), each computed on that group's probes only, and ``fairness`` holds the error rates of each
    group at the pack's threshold (:func:`facesearch.eval.fairness.fairness_report`: false-match rates from
    impostor pairs within each group, one face per person, their ratios, FNIR and FPIR, with intervals).

    The gallery photos are ingested into collection ``gallery`` and the probes into ``probes`` (both with
    subject-from-folder, every core unless ``workers`` says otherwise); each probe's enrolled face is then
    searched against the gallery's enrolled faces only with :meth:`SearchService.search_vectors`. A probe
    whose photo gave no face is a miss (see :func:`facesearch.eval.metrics.open_set_metrics`); so is a mated
    probe whose gallery photo gave no face, since that person could not be enrolled.

    Returns ``{"pack", "metrics", "counts", "timings_s", "rank1_misses"}``: ``metrics`` is
    :func:`~facesearch.eval.metrics.open_set_metrics` plus ``at_pack_threshold`` (FPIR and FNIR at the pack's
    shipped threshold); ``rank1_misses`` lists every mated probe not found at rank 1, with what was returned
    instead, for investigation.
    """
    started = time.perf_counter()
    split = open_set_split(images_dir, limit_people=limit_people)
    links_root = Path(tempfile.mkdtemp(prefix="facesearch-lfw-id-"))
    timings: dict[str, float] = {}
    try:
        gallery_links = _link_tree(links_root / "gallery", split.gallery.items())
        probe_links = _link_tree(links_root / "probes", [*split.mated, *split.nonmated])
        with _open_engine(home, pack, models_dir) as engine:
            pack_key, pack_threshold = engine.packs.pack().key, engine.packs.pack().threshold
            _say(log, f"[{pack_key}] ingesting {len(gallery_links)} gallery photos")
            t0 = time.perf_counter()
            engine.index([links_root / "gallery"], collection="gallery", subject_from_folder=True, workers=workers)
            timings["ingest_gallery"] = time.perf_counter() - t0
            _say(log, f"[{pack_key}] ingesting {len(probe_links)} probe photos")
            t0 = time.perf_counter()
            engine.index([links_root / "probes"], collection="probes", subject_from_folder=True, workers=workers)
            timings["ingest_probes"] = time.perf_counter() - t0
            distractor_ids = np.zeros(0, dtype=np.int64)
            if distractors is not None:
                _say(log, f"[{pack_key}] ingesting distractors from {distractors}")
                t0 = time.perf_counter()
                engine.index([distractors], collection="distractors", workers=workers)
                distractor_ids = collection_face_ids(engine.catalog, "distractors", pack_key)
                timings["ingest_distractors"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            gallery_faces = labelled_faces(engine.catalog, "gallery", pack_key)
            probe_faces = labelled_faces(engine.catalog, "probes", pack_key)
            probe_face_counts = faces_per_path(engine.catalog, "probes", pack_key)
            allowed = np.union1d(np.array([f.face_id for f in gallery_faces.values()], dtype=np.int64), distractor_ids)
            service = engine.searching.service()
            probes = [(person, probe_links[(person, photo.name)], True) for person, photo in split.mated]
            probes += [(person, probe_links[(person, photo.name)], False) for person, photo in split.nonmated]
            searched = [(person, path, mated) for person, path, mated in probes if path in probe_faces]
            candidates = []
            for start in range(0, len(searched), SEARCH_BATCH):
                batch = searched[start : start + SEARCH_BATCH]
                vectors = np.stack([probe_faces[path].embedding for _, path, _ in batch])
                candidates.extend(service.search_vectors(vectors, top_k=top_k, allowed_ids=allowed))
            timings["search"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(links_root, ignore_errors=True)

    results = {path: found for (_, path, _), found in zip(searched, candidates, strict=True)}
    mated_top, mated_is_mate, mated_rank, nonmated_top = [], [], [], []
    outcomes: list[ProbeOutcome] = []
    misses: list[dict[str, Any]] = []
    enrolled = {face.subject for face in gallery_faces.values()}
    for person, path, mated in probes:
        found = results.get(path)
        top = found[0].similarity if found else -np.inf
        face = probe_faces.get(path)
        rank = next((c.rank for c in found or [] if c.subject == person), 0) if mated else 0
        outcomes.append(
            ProbeOutcome(
                person,
                mated,
                top,
                rank,
                face.quality if face else 0.0,
                face.quality_reasons if face else ("no_face",),
                (groups or {}).get(person),
            )
        )
        if not mated:
            nonmated_top.append(top)
            continue
        mated_top.append(top)
        mated_is_mate.append(rank == 1)
        mated_rank.append(rank)
        if rank != 1:
            reason = (
                "no face in probe"
                if found is None
                else "person not enrolled (no face in gallery photo)"
                if person not in enrolled
                else "mate not at rank 1"
            )
            misses.append(
                {
                    "probe": f"{person}/{Path(path).name}",
                    "reason": reason,
                    "faces_in_probe": probe_face_counts.get(path, 0),
                    "mate_rank": rank or None,
                    "top_subject": found[0].subject if found else None,
                    "top_similarity": found[0].similarity if found else None,
                    "mate_similarity": next((c.similarity for c in found or [] if c.subject == person), None),
                }
            )
    metrics = open_set_metrics(mated_top, mated_is_mate, mated_rank, nonmated_top, max_rank=top_k)
    metrics["at_pack_threshold"] = open_set_at_threshold(mated_top, mated_is_mate, nonmated_top, pack_threshold)
    metrics["det"] = det_curve(mated_top, mated_is_mate, nonmated_top)
    mated_paths = [probe_links[(p, f.name)] for p, f in split.mated]
    nonmated_paths = [probe_links[(p, f.name)] for p, f in split.nonmated]
    counts = {
        "people": len(split.gallery) + len(split.nonmated),
        "gallery_photos": len(split.gallery),
        "gallery_enrolled": len(gallery_faces),
        "gallery_without_face": len(split.gallery) - len(gallery_faces),
        "mated_probes": len(split.mated),
        "nonmated_probes": len(split.nonmated),
        "mated_without_face": sum(path not in probe_faces for path in mated_paths),
        "nonmated_without_face": sum(path not in probe_faces for path in nonmated_paths),
        "probes_with_several_faces": sum(count > 1 for count in probe_face_counts.values()),
    }
    counts["distractor_faces"] = len(distractor_ids)
    timings["total"] = time.perf_counter() - started
    result: dict[str, Any] = {
        "pack": pack_key,
        "metrics": metrics,
        "quality_set_aside": quality_set_aside(outcomes, top_k),
        "counts": counts,
        "timings_s": {key: round(value, 2) for key, value in timings.items()},
        "rank1_misses": misses,
    }
    if groups is not None:
        result["by_group"] = {
            group: _metrics_of([o for o in outcomes if o.group == group], top_k)
            for group in sorted({o.group or "(none)" for o in outcomes} - {"(none)"})
        }
        # One face per person (the gallery's, and each non-mated probe's), as a calibration takes them.
        people = [(face.subject, face.embedding) for face in gallery_faces.values()]
        people += [
            (person, probe_faces[path].embedding)
            for person, path in ((p, probe_links[(p, f.name)]) for p, f in split.nonmated)
            if path in probe_faces
        ]
        result["fairness"] = fairness_report(
            np.stack([vector for _, vector in people]) if people else np.zeros((0, 1), dtype=np.float32),
            [groups.get(person) for person, _ in people],
            [(o.group, o.mated, o.top, o.rank == 1) for o in outcomes],
            pack_threshold,
        )
    return result


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe search gave: its rank-1 score, its mate's rank (0: not found), its face's quality."""

    person: str
    mated: bool
    top: float
    rank: int
    quality: float
    quality_reasons: tuple[str, ...]
    group: str | None = None


def _metrics_of(outcomes: Sequence[ProbeOutcome], top_k: int) -> dict[str, Any]:
    """Open-set figures over some of the probes (a group, or the probes of good quality)."""
    mated = [o for o in outcomes if o.mated]
    return open_set_metrics(
        [o.top for o in mated],
        [o.rank == 1 for o in mated],
        [o.rank for o in mated],
        [o.top for o in outcomes if not o.mated],
        max_rank=top_k,
    )


def quality_set_aside(outcomes: Sequence[ProbeOutcome], top_k: int) -> dict[str, Any]:
    """The open-set figures again with the probes whose face has a quality warning set aside.

    This is what a reviewer gains by asking for a better photo instead of searching a poor one: how many
    probes that is, and how FNIR changes. A probe with no face is set aside too (there was nothing to
    search). Returns ``{"set_aside": {"mated", "nonmated", "by_reason"}, "kept": <figures>}``.
    """
    flags = (*POOR_REASONS, "no_face")

    def poor_reasons(outcome: ProbeOutcome) -> list[str]:
        return [reason for reason in outcome.quality_reasons if reason in flags]

    poor = [o for o in outcomes if poor_reasons(o)]
    by_reason: dict[str, int] = {}
    for outcome in poor:
        for reason in poor_reasons(outcome):
            by_reason[reason] = by_reason.get(reason, 0) + 1
    kept = [o for o in outcomes if not poor_reasons(o)]
    return {
        "set_aside": {
            "mated": sum(o.mated for o in poor),
            "nonmated": sum(not o.mated for o in poor),
            "by_reason": dict(sorted(by_reason.items())),
        },
        "kept": _metrics_of(kept, top_k),
    }


def _roc_points(scores: np.ndarray, labels: np.ndarray, points: int = 200) -> dict[str, list[float | None]]:
    """The ROC (FAR, TAR by threshold), thinned to about ``points`` points for the report and the plot."""
    far, tar, thresholds = roc_curve(scores, labels)
    keep = np.unique(np.linspace(0, len(far) - 1, num=min(points, len(far))).astype(np.int64))
    return {
        "far": [float(v) for v in far[keep]],
        "tar": [float(v) for v in tar[keep]],
        "threshold": [float(v) if np.isfinite(v) else None for v in thresholds[keep]],
    }


# Verification --------------------------------------------------------------------------------------------


def select_pairs(pairs: Sequence[Pair], limit_people: int | None) -> list[Pair]:
    """All pairs, or for a quick run those whose first person is among the first ``limit_people`` names."""
    if limit_people is None:
        return list(pairs)
    keep = set(sorted({pair.name_a for pair in pairs})[:limit_people])
    return [pair for pair in pairs if pair.name_a in keep]


def run_verification(
    home: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    pairs_tsv: str | os.PathLike[str],
    pack: str | None = None,
    workers: int | None = None,
    *,
    limit_people: int | None = None,
    fars: Sequence[float] = (1e-2, 1e-3, 1e-4),
    models_dir: Path | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """1:1 verification on the pairs of ``pairs_tsv`` in the data folder ``home``.

    Every photo named in the pairs is ingested once into collection ``pairs`` (subject-from-folder); a
    pair's score is the dot product of its two photos' enrolled face embeddings (cosine similarity). A pair
    with a photo that gave no face gets score -1 and counts as wrong in the 10-fold accuracy (a false
    non-match for a genuine pair; never a false accept in TAR@FAR). Accuracy is 10-fold with the file's
    ``fold`` column (:func:`facesearch.eval.metrics.verification_10fold`); TAR at each FAR in ``fars`` is
    measured on all pairs (with few impostor pairs the lowest FARs are not resolvable: see the result).

    Returns ``{"pack", "verification", "tar_at_far", "at_pack_threshold" (TAR and FAR at the pack's shipped
    ``verify`` threshold), "counts", "timings_s"}``.
    """
    started = time.perf_counter()
    pairs = select_pairs(read_pairs(pairs_tsv), limit_people)
    root = Path(images_dir)
    links_root = Path(tempfile.mkdtemp(prefix="facesearch-lfw-pairs-"))
    timings: dict[str, float] = {}
    try:
        photos = [(p.name_a, root / p.name_a / p.image_a) for p in pairs]
        photos += [(p.name_b, root / p.name_b / p.image_b) for p in pairs]
        links = _link_tree(links_root, photos)
        with _open_engine(home, pack, models_dir) as engine:
            pack_key, pack_threshold = engine.packs.pack().key, engine.packs.pack().threshold
            _say(log, f"[{pack_key}] ingesting {len(links)} photos of {len(pairs)} pairs")
            t0 = time.perf_counter()
            engine.index([links_root], collection="pairs", subject_from_folder=True, workers=workers)
            timings["ingest"] = time.perf_counter() - t0
            faces = labelled_faces(engine.catalog, "pairs", pack_key)
    finally:
        shutil.rmtree(links_root, ignore_errors=True)

    scores = np.full(len(pairs), -1.0)
    failed = np.zeros(len(pairs), dtype=bool)
    for i, pair in enumerate(pairs):
        face_a = faces.get(links[(pair.name_a, pair.image_a)])
        face_b = faces.get(links[(pair.name_b, pair.image_b)])
        if face_a is None or face_b is None:
            failed[i] = True
            continue
        scores[i] = float(np.dot(face_a.embedding, face_b.embedding))
    labels = np.array([pair.same for pair in pairs], dtype=bool)
    folds = np.array([pair.fold for pair in pairs], dtype=np.int64)
    # For TAR@FAR a failed pair is never accepted: a false non-match if genuine, no false accept if impostor.
    never = np.where(failed, -np.inf, scores)
    timings["total"] = time.perf_counter() - started
    return {
        "pack": pack_key,
        "verification": verification_10fold(scores, labels, folds, failed=failed),
        "tar_at_far": tar_at_far(never, labels, fars),
        "at_pack_threshold": rates_at_threshold(never, labels, pack_threshold),
        "roc": _roc_points(never, labels),
        "counts": {
            "pairs": len(pairs),
            "genuine_pairs": int(labels.sum()),
            "impostor_pairs": int((~labels).sum()),
            "failed_pairs": int(failed.sum()),
            "photos": len(links),
            "photos_without_face": sum(path not in faces for path in links.values()),
        },
        "timings_s": {key: round(value, 2) for key, value in timings.items()},
    }
