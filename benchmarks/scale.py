"""Realistic scale benchmark: real LFW probes against N face-like distractors plus the real LFW gallery.

    python benchmarks/scale.py --faces N [--json]          # one size end to end
    python benchmarks/scale.py --check-distractors [--png]   # real vs generated score histograms
    python benchmarks/scale.py --plot results.jsonl          # latency and memory growth (PNG)

Random vectors are not face embeddings: their scores all sit near 0, so they neither crowd a probe's mate nor
load an index's lists the way faces do. The distractors here come from a model fitted to real embeddings of
``../shared/data/lfw-dev`` (the ``yunet-mobilefacenet`` pack, embedded once through the engine and cached
outside the repository): identity centres drawn from a Gaussian fitted to real per-person mean embeddings
(between-person covariance), and each identity's faces spread around its centre as real photos of one person
are (within-person covariance), then normalised like real embeddings. ``--check-distractors`` compares the
generated and real impostor and genuine score distributions.

A run of ``--faces N``: the gallery is the first photo of each of the 2,878 lfw-dev people; the probes are
their other 3,530 photos (mated probes). N distractors are generated, the exact rank-1 result of every probe
is computed by brute force, and the index is built the way the engine builds it (``FaissIndex`` with its
automatic policy: exact while small, compressed and retrained in the background as it grows). Measured:

- ``mate_recall``: of the mated probes whose exact rank-1 result is their mate, the share for which the index
  also returns the mate at rank 1;
- ``p50_ms`` / ``p99_ms``: one probe, top 10 (index search with re-ranking; detection and catalog excluded);
- ``batch100_qps``: probes per second when searched 100 at a time;
- ``ram_bytes_per_face``: anonymous memory the loaded index takes (the full vectors stay in a memory-mapped
  file and are not counted), per face;
- ``build_s``: wall time from empty to all faces added and the index trained; ``add_per_s``: vectors per
  second added to the trained index (the last tenth of the distractors, at most 100,000).

With ``--json`` stdout is exactly one line with those fields; details (disk per face, factory, exact rank-1
rate, machine) go to stderr as a second JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, REPO, machine, use_shared_models

CACHE = Path(os.environ.get("FACESEARCH_BENCH_CACHE", Path.home() / ".cache" / "facesearch-bench"))
PACK = "yunet-mobilefacenet"
CHUNK = 100_000
TOP_K = 10
MAX_FACES_PER_IDENTITY = 20
ANCHOR_WEIGHT = 0.45  # how much of an identity centre comes from a real (never probed) person; see FaceModel
IMG = REPO / "docs" / "img"


# Real embeddings --------------------------------------------------------------------------------------------


def lfw_embeddings(pack: str = PACK, cache: Path = CACHE) -> dict[str, np.ndarray]:
    """Real embeddings of lfw-dev (one enrolled face per photo): ``vectors``, ``subjects``, ``paths``.

    The photos are indexed once through the engine (as a user would) and the result is cached in ``cache``,
    outside the repository, since embedding 6,408 photos takes minutes on two cores.
    """
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch
    from facesearch.eval.lfw import labelled_faces

    use_shared_models()
    path = cache / f"lfw-dev-{pack}.npz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix="facesearch-scale-lfw-") as home,
            FaceSearch(Settings.load(home, pack=pack)) as engine,
        ):
            engine.index([LFW], collection="lfw", subject_from_folder=True)
            faces = labelled_faces(engine.catalog, "lfw", engine.packs.pack().key)
        items = sorted(faces.items())
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez(
            temporary,
            vectors=np.stack([face.embedding for _, face in items]).astype(np.float32),
            subjects=np.array([face.subject for _, face in items]),
            paths=np.array([Path(p).name for p, _ in items]),
        )
        os.replace(temporary, path)
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def photos_by_person(data: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Rows of :func:`lfw_embeddings` per person, in photo order (file names end in ``_NNNN``)."""
    by_person: dict[str, list[int]] = {}
    for row in np.argsort(data["paths"], kind="stable"):
        by_person.setdefault(str(data["subjects"][row]), []).append(int(row))
    return by_person


# The distractor model -------------------------------------------------------------------------------------


@dataclass
class FaceModel:
    """A two-level model of face embeddings: identity centres, and faces around each centre.

    A centre is ``mean + a * (anchor - mean) + sqrt(1 - a^2) * between @ z``: partly a real person (an
    ``anchor``, drawn from the lfw-dev people with a single photo, who are never probes), partly Gaussian with
    the real between-person covariance. A purely Gaussian model matches the bulk of real impostor scores but
    not their tail (real faces have look-alikes: p99.99 0.43 real, 0.38 Gaussian); ``a = 0.45`` brings the tail
    of real probes against generated faces to the real one while keeping the covariance the fitted one.
    """

    mean: np.ndarray  # mean identity centre (dim,)
    between: np.ndarray  # Cholesky-like factor of the between-person covariance (dim, dim)
    within: np.ndarray  # factor of the within-person covariance (dim, dim)
    faces_per_identity: np.ndarray  # empirical distribution to draw from (counts of real people)
    anchors: np.ndarray  # real embeddings of people never used as probes (n, dim)
    anchor_weight: float = ANCHOR_WEIGHT


def _factor(covariance: np.ndarray) -> np.ndarray:
    """A matrix ``F`` with ``F @ F.T == covariance``, negative eigenvalues (estimation noise) clipped to 0."""
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    return vectors * np.sqrt(np.clip(values, 0, None))


def fit_face_model(vectors: np.ndarray, subjects: np.ndarray) -> FaceModel:
    """Fit :class:`FaceModel` to real embeddings labelled by person.

    Within-person covariance: the scatter of faces around their person's mean, over people with two or more
    photos (unbiased). Between-person covariance: the covariance of the per-person means, less the part of it
    that is only the within-person noise of averaging ``n`` photos (``E[1/n] * within``).
    """
    vectors = vectors.astype(np.float64)
    people, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    means = np.zeros((len(people), vectors.shape[1]))
    np.add.at(means, inverse, vectors)
    means /= counts[:, None]
    several = counts[inverse] >= 2
    residuals = vectors[several] - means[inverse[several]]
    within = residuals.T @ residuals / (several.sum() - np.count_nonzero(counts >= 2))
    between = np.cov(means, rowvar=False) - np.mean(1.0 / counts) * within
    return FaceModel(
        mean=means.mean(axis=0),
        between=_factor(between),
        within=_factor(within),
        faces_per_identity=np.minimum(counts, MAX_FACES_PER_IDENTITY),
        anchors=vectors[counts[inverse] == 1],
    )


def generate(model: FaceModel, count: int, seed: int, chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` generated faces in chunks: (unit vectors float32, identity number), identities in order."""
    rng = np.random.default_rng(seed)
    dim = len(model.mean)
    produced = 0
    identity = 0
    while produced < count:
        size = min(chunk, count - produced)
        sizes = rng.choice(model.faces_per_identity, size=size)  # at least as many identities as needed
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), size)) + 1]
        who = np.repeat(np.arange(len(sizes)), sizes)[:size]
        anchors = model.anchors[rng.integers(0, len(model.anchors), len(sizes))]
        a = model.anchor_weight
        centres = (
            model.mean
            + a * (anchors - model.mean)
            + np.sqrt(1 - a**2) * (rng.standard_normal((len(sizes), dim)) @ model.between.T)
        )
        faces = centres[who] + rng.standard_normal((size, dim)) @ model.within.T
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        yield faces.astype(np.float32), who + identity
        identity += len(sizes)
        produced += size


# Gallery and probes ---------------------------------------------------------------------------------------


@dataclass
class LfwSplit:
    """Gallery: the first photo of every person. Probes: every other photo (all mated)."""

    gallery: np.ndarray
    gallery_subjects: np.ndarray
    probes: np.ndarray
    probe_subjects: np.ndarray


def lfw_split(data: dict[str, np.ndarray]) -> LfwSplit:
    """Split the real embeddings into a one-photo-per-person gallery and mated probes."""
    order = np.lexsort((data["paths"], data["subjects"]))
    subjects = data["subjects"][order]
    vectors = data["vectors"][order]
    first = np.ones(len(subjects), dtype=bool)
    first[1:] = subjects[1:] != subjects[:-1]
    return LfwSplit(vectors[first], subjects[first], vectors[~first], subjects[~first])


# Score distributions --------------------------------------------------------------------------------------


def score_samples(data: dict[str, np.ndarray], model: FaceModel, pairs: int = 200_000) -> dict[str, np.ndarray]:
    """Impostor and genuine scores, real and generated, plus real probes against generated distractors."""
    rng = np.random.default_rng(7)
    vectors, subjects = data["vectors"], data["subjects"]
    a, b = rng.integers(0, len(vectors), (2, pairs * 2))
    keep = subjects[a] != subjects[b]
    a, b = a[keep][:pairs], b[keep][:pairs]
    real_impostor = np.einsum("nd,nd->n", vectors[a], vectors[b])
    genuine = []
    for person in np.unique(subjects):
        rows = np.flatnonzero(subjects == person)
        if len(rows) >= 2:
            block = vectors[rows] @ vectors[rows].T
            genuine.append(block[np.triu_indices(len(rows), 1)])
    real_genuine = np.concatenate(genuine)
    fake, who = next(generate(model, 200_000, seed=11, chunk=200_000))
    a, b = rng.integers(0, len(fake), (2, pairs * 2))
    keep = who[a] != who[b]
    a, b = a[keep][:pairs], b[keep][:pairs]
    fake_impostor = np.einsum("nd,nd->n", fake[a], fake[b])
    same = np.flatnonzero(who[:-1] == who[1:])
    fake_genuine = np.einsum("nd,nd->n", fake[same], fake[same + 1])
    probe_rows = rng.integers(0, len(vectors), pairs)
    cross = np.einsum("nd,nd->n", vectors[probe_rows], fake[rng.integers(0, len(fake), pairs)])
    return {
        "real impostor": real_impostor,
        "generated impostor": fake_impostor,
        "real probe vs generated": cross,
        "real genuine": real_genuine,
        "generated genuine": fake_genuine,
    }


def _summary(scores: np.ndarray) -> dict[str, Any]:
    return {
        "n": len(scores),
        "mean": round(float(scores.mean()), 4),
        "std": round(float(scores.std()), 4),
        "p99": round(float(np.quantile(scores, 0.99)), 4),
        "p99.9": round(float(np.quantile(scores, 0.999)), 4),
        "p99.99": round(float(np.quantile(scores, 0.9999)), 4) if len(scores) >= 10_000 else None,
    }


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance: the largest gap between the two empirical distribution functions."""
    grid = np.sort(np.concatenate([a, b]))
    return float(
        np.max(np.abs(np.searchsorted(np.sort(a), grid) / len(a) - np.searchsorted(np.sort(b), grid) / len(b)))
    )


def check_distractors(png: Path | None) -> dict[str, Any]:
    """Compare real and generated score distributions; optionally draw both histograms into ``png``."""
    data = lfw_embeddings()
    model = fit_face_model(data["vectors"], data["subjects"])
    samples = score_samples(data, model)
    report: dict[str, Any] = {name: _summary(values) for name, values in samples.items()}
    report["ks_impostor"] = round(_ks(samples["real impostor"], samples["generated impostor"]), 4)
    report["ks_probe_vs_generated"] = round(_ks(samples["real impostor"], samples["real probe vs generated"]), 4)
    report["ks_genuine"] = round(_ks(samples["real genuine"], samples["generated genuine"]), 4)
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        bins = np.linspace(-0.6, 1.0, 161)
        for name in ("real impostor", "generated impostor", "real probe vs generated"):
            axes[0].hist(samples[name], bins=bins, density=True, histtype="step", label=name)
        for name in ("real genuine", "generated genuine"):
            axes[0].hist(samples[name], bins=bins, density=True, histtype="step", label=name)
        axes[0].set_xlabel("cosine similarity")
        axes[0].set_ylabel("density")
        axes[0].set_title("score distributions (yunet-mobilefacenet, lfw-dev)")
        axes[0].legend(fontsize=8)
        tail = np.linspace(0.2, 0.8, 121)
        for name in ("real impostor", "generated impostor", "real probe vs generated"):
            values = np.sort(samples[name])
            survival = 1.0 - np.searchsorted(values, tail) / len(values)
            axes[1].semilogy(tail, np.maximum(survival, 1e-6), label=name)
        axes[1].set_xlabel("threshold")
        axes[1].set_ylabel("share of impostor pairs at or above (log)")
        axes[1].set_title("impostor tail: what crowds a probe's mate")
        axes[1].legend(fontsize=8)
        figure.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(png, dpi=110)
        report["png"] = str(png)
    return report


# The benchmark --------------------------------------------------------------------------------------------


def _rss_anon() -> int:
    """Anonymous resident memory of this process in bytes (file-backed mappings such as the vectors excluded)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def _exact_top1(probes: np.ndarray, block: np.ndarray, ids: np.ndarray, best: tuple[np.ndarray, np.ndarray]) -> None:
    """Fold a block of gallery vectors into the running exact rank-1 (score, id) of every probe."""
    scores = probes @ block.T
    top = scores.argmax(axis=1)
    top_scores = scores[np.arange(len(probes)), top]
    better = top_scores > best[0]
    best[0][better] = top_scores[better]
    best[1][better] = ids[top[better]]


def _loaded_index_memory(path: Path, dim: int) -> int:
    """Anonymous memory a fresh Python process gains by opening the index at ``path`` (bytes)."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[3]); from scale import _rss_anon; "
        "from pathlib import Path; import faiss, numpy; from facesearch.index.faiss_index import FaissIndex; "
        "before = _rss_anon(); index = FaissIndex(Path(sys.argv[1]), int(sys.argv[2])); "
        "print(_rss_anon() - before)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(path), str(dim), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"loading the index in a fresh process failed:\n{output.stderr}")
    return int(output.stdout.strip().splitlines()[-1])


def _recall_and_p50(index: Any, probes: np.ndarray, mates: np.ndarray, exact_hit: np.ndarray) -> tuple[float, float]:
    """Mate recall over every probe (one batch) and the single-probe p50 over the first 300, as set now."""
    _, found = index.search(probes, TOP_K)
    timings = []
    for probe in probes[:300]:
        t0 = time.perf_counter()
        index.search(probe[None], TOP_K)
        timings.append((time.perf_counter() - t0) * 1000)
    recall = (exact_hit & (found[:, 0] == mates)).sum() / max(exact_hit.sum(), 1)
    return round(float(recall), 5), round(float(np.percentile(timings, 50)), 2)


def _nprobe_sweep(
    index: Any, probes: np.ndarray, mates: np.ndarray, exact_hit: np.ndarray, fractions: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Mate recall and single-probe latency for several shares of the lists visited (the recall/speed trade)."""
    from facesearch.index.policy import SearchKnobs

    default = index.knobs
    rows = []
    for fraction in fractions:
        index.knobs = dataclasses.replace(default, nprobe=None, nprobe_fraction=fraction, min_scanned=0)
        recall, p50 = _recall_and_p50(index, probes, mates, exact_hit)
        rows.append({"nprobe": index.nprobe(), "fraction": fraction, "mate_recall": recall, "p50_ms": p50})
    index.knobs = SearchKnobs(**dataclasses.asdict(default))
    return rows


def _rerank_sweep(
    index: Any, probes: np.ndarray, mates: np.ndarray, exact_hit: np.ndarray, knob: str, values: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Mate recall and single-probe latency for several numbers of candidates re-ranked exactly (``rerank``) or
    ranked by the refine codes (``refine_candidates``)."""
    default = index.knobs
    rows = []
    for value in values:
        index.knobs = dataclasses.replace(default, **{knob: value})
        recall, p50 = _recall_and_p50(index, probes, mates, exact_hit)
        rows.append({knob: value, "mate_recall": recall, "p50_ms": p50})
    index.knobs = default
    return rows


def run(
    faces: int, workdir: Path, log: Any, *, reuse_index: bool = False, sweeps: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One size end to end; returns (the contract's fields, details). ``reuse_index`` measures the index an
    earlier run with the same ``workdir`` built (its build figures are then ``None``); ``sweeps`` adds the
    recall/latency trade-offs (a minute or more a step at 100M faces)."""
    from facesearch.index.faiss_index import FaissIndex

    data = lfw_embeddings()
    model = fit_face_model(data["vectors"], data["subjects"])
    split = lfw_split(data)
    probes = split.probes
    gallery_ids = np.arange(1, len(split.gallery) + 1, dtype=np.int64)
    first_distractor = int(gallery_ids[-1]) + 1

    def distractor_chunks() -> Iterator[np.ndarray]:
        """The distractors in chunks, the same every time (seeded), rounded to half precision as they are
        generated (what is stored is what is searched, exactly and compressed). Generated twice, once for the
        ground truth and once for the index, rather than kept: at 100M faces a copy would not fit beside it."""
        for vectors, _ in generate(model, faces, seed=1):
            yield vectors.astype(np.float16).astype(np.float32)

    # 1. Generate the distractors and fold them into the exact rank-1 of every probe (kept in the workdir: at
    # 100M faces this takes 23 minutes, and a rerun with --workdir reuses it).
    started = time.perf_counter()
    truth = workdir / f"ground-truth-{faces}.npz"
    if truth.exists():
        with np.load(truth) as saved:
            best = (saved["scores"], saved["ids"])
        log(f"exact ground truth read from {truth}")
    else:
        best = (np.full(len(probes), -np.inf, dtype=np.float32), np.full(len(probes), -1, dtype=np.int64))
        _exact_top1(probes, split.gallery, gallery_ids, best)
        offset = first_distractor
        for vectors in distractor_chunks():
            _exact_top1(probes, vectors, np.arange(offset, offset + len(vectors), dtype=np.int64), best)
            offset += len(vectors)
        np.savez(truth, scores=best[0], ids=best[1])
        log(f"generated {faces} distractors and the exact ground truth in {time.perf_counter() - started:.0f} s")

    mate_of_probe = {subject: int(i) for subject, i in zip(split.gallery_subjects, gallery_ids, strict=True)}
    mates = np.array([mate_of_probe[s] for s in split.probe_subjects], dtype=np.int64)
    exact_hit = best[1] == mates

    # 2. Build as the engine does: add in chunks; the automatic policy trains and retrains in the background.
    # The build's time leaves out generating the distractors (timed apart and subtracted).
    path = workdir / "index" / "bench.faiss"
    holdback = min(100_000, faces // 10)
    build_s: float | None = None
    add_s: float | None = None
    if reuse_index and path.exists():
        log(f"measuring the index already in {path.parent}")
    else:
        build_s, add_s = _build(faces, path, split.gallery, gallery_ids, distractor_chunks, holdback, log)

    # 3. Its memory, loaded by a fresh process (this one's allocator still holds what the build used).
    ram = _loaded_index_memory(path, probes.shape[1])
    index = FaissIndex(path, probes.shape[1])
    total = len(index)
    stats = index.stats()

    # 4. Search: mate recall, single-probe latency, batches of 100.
    _, found = index.search(probes, TOP_K)
    kept = exact_hit & (found[:, 0] == mates)
    timings = []
    for probe in probes:
        t0 = time.perf_counter()
        index.search(probe[None], TOP_K)
        timings.append((time.perf_counter() - t0) * 1000)
    batches = [probes[i : i + 100] for i in range(0, len(probes) - 99, 100)]
    t0 = time.perf_counter()
    for batch in batches:
        index.search(batch, TOP_K)
    batch_qps = len(batches) * 100 / (time.perf_counter() - t0)
    result = {
        "faces": faces,
        "mate_recall": round(float(kept.sum() / max(exact_hit.sum(), 1)), 5),
        "p50_ms": round(float(np.percentile(timings, 50)), 3),
        "p99_ms": round(float(np.percentile(timings, 99)), 3),
        "batch100_qps": round(batch_qps, 1),
        "ram_bytes_per_face": round(ram / total, 1),
        "build_s": None if build_s is None else round(build_s, 1),
        "add_per_s": round(holdback / add_s, 0) if holdback and add_s else None,
    }
    log(f"measured: {json.dumps(result)}")
    sweep, rerank_sweep, refine_sweep = [], [], []
    if sweeps and index.nprobe() is not None:
        large = faces > 20_000_000  # each step costs a minute or more: fewer of them
        fractions = (0.3, 0.4, 0.5, 0.7) if large else (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
        sweep = _nprobe_sweep(index, probes, mates, exact_hit, fractions)
        if stats.get("refine_candidates"):
            values = (5_000, 10_000, 20_000, 40_000)
            refine_sweep = _rerank_sweep(index, probes, mates, exact_hit, "refine_candidates", values)
        if not large:
            rerank_sweep = _rerank_sweep(index, probes, mates, exact_hit, "rerank", (50, 100, 200, 400))
    index.close()

    disk = sum(p.stat().st_blocks * 512 for p in path.parent.iterdir())
    details = {
        "faces_total": total,
        "real_gallery": len(split.gallery),
        "mated_probes": len(probes),
        "exact_rank1_rate": round(float(exact_hit.mean()), 4),
        "index_rank1_rate": round(float((found[:, 0] == mates).mean()), 4),
        "factory": stats["factory"],
        "kind": stats["kind"],
        "nprobe": stats["nprobe"],
        "rerank": stats["rerank"],
        "refine_candidates": stats.get("refine_candidates"),
        "vector_dtype": stats["vector_dtype"],
        "index_memory_estimate_bytes_per_face": round(stats["memory_bytes"] / total, 1),
        "disk_bytes_per_face": round(disk / total, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "nprobe_sweep": sweep,
        "rerank_sweep": rerank_sweep,
        "refine_sweep": refine_sweep,
        "machine": machine(),
    }
    return result, details


def _build(
    faces: int,
    path: Path,
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    distractor_chunks: Any,
    holdback: int,
    log: Any,
) -> tuple[float, float]:
    """Build the index at ``path`` as the engine does; returns (build seconds without generating, seconds to
    add the last ``holdback`` distractors to the trained index)."""
    from facesearch.index.faiss_index import FaissIndex

    shutil.rmtree(path.parent, ignore_errors=True)  # an index an earlier, interrupted run left
    first_distractor = int(gallery_ids[-1]) + 1
    started = time.perf_counter()
    generating = 0.0
    index = FaissIndex(path, gallery.shape[1])
    index.add(gallery_ids, gallery)
    chunks = distractor_chunks()
    held: list[np.ndarray] = []
    start = 0
    while True:
        t0 = time.perf_counter()
        try:
            vectors = next(chunks)
        except StopIteration:
            break
        finally:
            generating += time.perf_counter() - t0
        stop = start + len(vectors)
        keep = max(0, min(stop, faces - holdback) - start)  # the last ``holdback`` are added to the trained index
        if keep:
            index.add(np.arange(first_distractor + start, first_distractor + start + keep), vectors[:keep])
        if keep < len(vectors):
            held.append(vectors[keep:])
        if (start // CHUNK) % 50 == 0:
            log(f"  added {start + keep} ({index.factory}{', rebuilding' if index.rebuilding else ''})")
        start = stop
    index.wait_for_rebuild()
    add_started = time.perf_counter()
    if holdback:
        last = np.vstack(held)
        add_started = time.perf_counter()
        index.add(np.arange(first_distractor + faces - holdback, first_distractor + faces), last)
    add_s = time.perf_counter() - add_started
    index.wait_for_rebuild()
    build_s = time.perf_counter() - started - generating
    log(f"built {index.factory} over {len(index)} faces in {build_s:.0f} s")
    index.close()
    del index
    gc.collect()
    return build_s, add_s


def plot_growth(results: Path, png: Path) -> None:
    """Latency and memory per face against the number of faces, from ``--json`` lines saved in ``results``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(
        (json.loads(line) for line in results.read_text().splitlines() if line.startswith("{")),
        key=lambda r: r["faces"],
    )
    faces = [r["faces"] for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(faces, [r["p50_ms"] for r in rows], "o-", label="p50")
    axes[0].plot(faces, [r["p99_ms"] for r in rows], "s-", label="p99")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("distractor faces")
    axes[0].set_ylabel("ms per probe (top 10)")
    axes[0].set_title("single-probe latency")
    axes[0].legend()
    axes[1].plot(faces, [r["ram_bytes_per_face"] for r in rows], "o-", label="in-memory index")
    axes[1].axhline(100, color="grey", linestyle="--", label="target: 100 B/face")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("distractor faces")
    axes[1].set_ylabel("bytes per face")
    axes[1].set_title("RAM per face")
    axes[1].legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)


def main() -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, help="distractor faces to generate (the real gallery comes on top)")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout (details on stderr)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary folder, removed)")
    parser.add_argument("--reuse-index", action="store_true", help="measure the index --workdir already holds")
    parser.add_argument("--no-sweeps", action="store_true", help="leave out the recall/latency sweeps")
    parser.add_argument("--check-distractors", action="store_true", help="compare real and generated scores")
    parser.add_argument("--png", type=Path, help="with --check-distractors or --plot: where to draw")
    parser.add_argument("--plot", type=Path, help="a file of --json lines to plot latency and memory growth from")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.check_distractors:
        report = check_distractors(args.png or IMG / "scale-distractor-scores.png")
        print(json.dumps(report))
        return 0
    if args.plot:
        plot_growth(args.plot, args.png or IMG / "scale-growth.png")
        return 0
    if not args.faces:
        parser.error("give --faces N (or --check-distractors, or --plot)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facesearch-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result, details = run(args.faces, workdir, log, reuse_index=args.reuse_index, sweeps=not args.no_sweeps)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result), flush=True)
        print(json.dumps(details), file=sys.stderr, flush=True)
    else:
        print(json.dumps({**result, **details}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
