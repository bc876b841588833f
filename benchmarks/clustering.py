"""Clustering accuracy and speed (issue 13).

Accuracy, on lfw-dev with every label hidden (one face per photo, the one the folder names): pairwise
precision and recall and BCubed F of facesearch's clustering at several false-match rates, against the rules
people use today in the same run: single linkage at the same threshold (connected components, what a plain
"link every pair above the threshold" does) and Immich's published rule (DBSCAN-like: a face with at least
``minFaces`` faces within ``maxDistance`` starts or joins a person; others join the nearest person within
``maxDistance``; its defaults 0.5 and 3). Then the same with ``--distractors`` generated faces mixed in (the
scale benchmark's model of face embeddings, fitted on lfw-dev), where precision must hold.

Speed (``--speed N``): N generated faces clustered from scratch, then ``--add`` more added incrementally, with
the peak memory.

    python benchmarks/clustering.py [--pack fused] [--distractors 100000] [--speed 1000000 --add 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import machine
from facesearch.eval.clustering_metrics import bcubed_scores, pairwise_scores
from facesearch.search import clustering
from facesearch.search.calibration import find_calibration
from scale import fit_face_model, generate, lfw_embeddings

FMRS = (1e-3, 1e-4, 1e-5)


def immich_rule(vectors: np.ndarray, max_distance: float = 0.5, min_faces: int = 3) -> np.ndarray:
    """Immich's face clustering as its documentation and code describe it, on the same embeddings: faces are
    taken in order; a face with at least ``min_faces`` faces (itself included) within cosine distance
    ``max_distance`` is a core face and starts a person unless one of those already has one; any face joins the
    nearest face that has a person within ``max_distance``; the rest stay unassigned (own cluster here)."""
    n = len(vectors)
    unit = clustering.normalised(vectors)
    similarity = unit @ unit.T
    near = similarity >= 1 - max_distance
    core = near.sum(axis=1) >= min_faces
    person = np.full(n, -1, dtype=np.int64)
    people = 0
    # Core faces first, then the ones Immich defers (not core) in a second pass, as its job queue does.
    for face in [*np.flatnonzero(core), *np.flatnonzero(~core)]:
        row = similarity[face]
        nearest = np.argsort(-row)[:min_faces]
        owner = next((person[i] for i in nearest if near[face, i] and person[i] >= 0), -1)
        if owner < 0:
            with_person = np.flatnonzero(person >= 0)
            if with_person.size:
                best = with_person[np.argmax(row[with_person])]
                if near[face, best]:
                    owner = person[best]
        if owner < 0 and core[face]:
            owner, people = people, people + 1
        person[face] = owner
    alone = person < 0
    person[alone] = people + np.arange(int(alone.sum()))
    return person


def scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Pairwise and BCubed scores, and the cluster counts."""
    pairwise = pairwise_scores(labels, truth)
    return {
        "pairwise_precision": pairwise["precision"],
        "pairwise_recall": pairwise["recall"],
        "bcubed_f": bcubed_scores(labels, truth)["f"],
        "pairs_wrong": pairwise["pairs_wrong"],
        "clusters": int(np.unique(labels).size),
    }


def accuracy(pack: str, distractors: int) -> dict[str, Any]:
    """Every method on lfw-dev, then ours with distractors mixed in."""
    data = lfw_embeddings(pack)
    vectors, truth = clustering.normalised(data["vectors"]), data["subjects"]
    key = f"{pack}@{'2' if pack in ('fused', 'dlib') else '1'}"
    calibration = find_calibration(key)
    if calibration is None:
        raise SystemExit(f"no calibration for {key}")
    report: dict[str, Any] = {
        "pack": key,
        "faces": len(vectors),
        "people": int(np.unique(truth).size),
        "true_pairs": pairwise_scores(truth, truth)["pairs_true"],
        "methods": {},
    }
    for fmr in FMRS:
        threshold = calibration.threshold_for(fmr)
        graph = clustering.similarity_graph(vectors, threshold)
        started = time.perf_counter()
        ours = clustering.cluster_faces(vectors, threshold, graph=graph)
        elapsed = time.perf_counter() - started
        single = clustering.cluster_faces(vectors, threshold, graph=graph, refine=False)
        report["methods"][f"facesearch fmr={fmr:g} (t={threshold:.3f})"] = {
            **scores(ours, truth),
            "s": round(elapsed, 2),
        }
        report["methods"][f"single linkage fmr={fmr:g}"] = scores(single, truth)
    started = time.perf_counter()
    report["methods"]["Immich rule, defaults (0.5, 3)"] = {
        **scores(immich_rule(vectors), truth),
        "s": round(time.perf_counter() - started, 2),
    }
    threshold = calibration.threshold_for(1e-4)
    report["methods"]["Immich rule at fmr=1e-4"] = scores(immich_rule(vectors, 1 - threshold), truth)
    if distractors:
        model = fit_face_model(data["vectors"], truth)
        fake, who = next(generate(model, distractors, seed=7, chunk=distractors))
        mixed = np.concatenate([vectors, fake])
        mixed_truth = np.concatenate([truth.astype(object), np.array([f"synthetic-{i}" for i in who], dtype=object)])
        for fmr in FMRS:
            threshold = calibration.threshold_for(fmr)
            started = time.perf_counter()
            labels = clustering.cluster_faces(mixed, threshold)
            elapsed = time.perf_counter() - started
            lfw = len(vectors)
            report["methods"][f"facesearch fmr={fmr:g} + {distractors:,} distractors"] = {
                **scores(labels, mixed_truth),
                "lfw_only": scores(labels[:lfw], truth),
                "lfw_faces_with_a_distractor": int(np.isin(labels[:lfw], labels[lfw:]).sum()),
                "s": round(elapsed, 1),
            }
    return report


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="fused")
    parser.add_argument("--distractors", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    report = {"machine": machine(), "accuracy": accuracy(options.pack, options.distractors)}
    report["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    if options.json:
        print(json.dumps(report))
        return
    print(report["machine"])
    acc = report["accuracy"]
    print(f"{acc['pack']}: {acc['faces']} faces, {acc['people']} people, {acc['true_pairs']} same-person pairs")
    for name, row in acc["methods"].items():
        print(f"{name:55s} " + " ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
