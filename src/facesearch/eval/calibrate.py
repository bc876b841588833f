"""Building a score calibration from labelled photos (one photo per person, every cross-person pair an
impostor pair), and checking one on people it never saw. ``facesearch.search.calibration`` only reads
calibrations; this is where they are made (``facesearch calibrate``, ``benchmarks/calibration.py``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.search.calibration import DEFAULT_VERIFY_FMR, Calibration, wilson_interval
from facesearch.vision.packs import Packs


def impostor_scores(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarities of every pair of rows (each row one person): the impostor pairs, unsorted."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    rows, cols = np.triu_indices(len(v), 1)
    out = np.empty(rows.size, dtype=np.float32)
    step = 1 << 20
    for start in range(0, rows.size, step):
        r, c = rows[start : start + step], cols[start : start + step]
        out[start : start + step] = np.einsum("ij,ij->i", v[r], v[c])
    return out


def split_people(names: Sequence[str], holdout_share: float, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """A reproducible split of people: ``(calibration, held_out)`` with ``holdout_share`` held out."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    held = round(len(shuffled) * holdout_share)
    return sorted(shuffled[held:]), sorted(shuffled[:held])


def embed_people(
    packs: Packs,
    images_dir: str | os.PathLike[str],
    pack: str | None = None,
    people: Sequence[str] | None = None,
    *,
    batch: int = 16,
) -> tuple[list[str], np.ndarray]:
    """One embedding per person: the prominent face of each person's first photo (people without one left out).

    Returns the names (sorted) and their embeddings, one row each.
    """
    from facesearch.eval.lfw import list_people
    from facesearch.search.service import analysis_lock
    from facesearch.vision.image import ImageRejected, load_image
    from facesearch.vision.packs import prominent_face

    model_pack = packs.pack(pack)
    folders = list_people(images_dir)
    wanted = sorted(folders if people is None else set(people) & set(folders))
    names: list[str] = []
    vectors: list[np.ndarray] = []
    for start in range(0, len(wanted), batch):
        chunk = []
        for name in wanted[start : start + batch]:
            try:
                chunk.append((name, load_image(folders[name][0])))
            except ImageRejected:
                continue
        with analysis_lock(model_pack):
            analysed = model_pack.analyse([rgb for _name, rgb in chunk])
        for (name, rgb), faces in zip(chunk, analysed, strict=True):
            main = prominent_face([f.detection for f in faces], rgb.shape)
            if main is not None:
                names.append(name)
                vectors.append(faces[main].embedding)
    dim = model_pack.dim
    return names, (np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32))


def build_calibration(
    packs: Packs,
    images_dir: str | os.PathLike[str],
    pack: str | None = None,
    people_split: Sequence[str] | None = None,
) -> Calibration:
    """A calibration of ``pack`` from a ``<Person>/<photo>`` folder: one photo per person, all cross-person pairs.

    ``people_split`` restricts it to those people (e.g. the calibration half of :func:`split_people`).
    """
    key = packs.pack(pack).key
    names, vectors = embed_people(packs, images_dir, pack, people_split)
    if len(names) < 2:
        raise ValueError("need faces of at least two people to calibrate")
    return calibration_from_embeddings(
        key, vectors, source=f"{Path(images_dir).name}: first photo of {len(names)} people"
    )


def calibration_from_embeddings(pack_key: str, vectors: np.ndarray, *, source: str = "") -> Calibration:
    """A calibration from one embedding per person (every pair of rows is an impostor pair)."""
    return Calibration.from_scores(pack_key, impostor_scores(vectors), source=source, people=len(vectors))


def holdout_check(
    calibration: Calibration, held_out: np.ndarray, target_fmr: float = DEFAULT_VERIFY_FMR
) -> dict[str, Any]:
    """The observed impostor pass rate among people the calibration never saw, at its threshold for ``target_fmr``."""
    threshold = calibration.threshold_for(target_fmr)
    scores = impostor_scores(held_out)
    passed = int((scores >= threshold).sum())
    low, high = wilson_interval(passed, int(scores.size))
    observed = passed / scores.size if scores.size else float("nan")
    return {
        "target_fmr": target_fmr,
        "threshold": round(threshold, 4),
        "held_out_people": len(held_out),
        "held_out_pairs": int(scores.size),
        "passed": passed,
        "observed_fmr": observed,
        "observed_fmr_ci95": [low, high],
        "ratio": observed / target_fmr if scores.size else None,
        "within_factor_2": bool(target_fmr / 2 <= observed <= target_fmr * 2) if scores.size else False,
    }
