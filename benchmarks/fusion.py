"""Score-level fusion of two packs (dlib and yunet-mobilefacenet by default): does it beat both?

    python benchmarks/fusion.py [--packs A B] [--json]

Both packs' lfw-dev embeddings are read from the cache ``scale.py`` keeps (computed through the engine on
first use: dlib takes about 15 minutes on two cores). Photos where either pack found no face are left out
of every row, so all rows are measured on the same photos.

Fusion: each pack's cosine similarity is standardised by the mean and standard deviation of its impostor
scores, and the two are combined with weights ``w`` and ``1 - w``. Since each score is an inner product of
unit vectors, the fused score is the inner product of the concatenated vectors ``[sqrt(a) x, sqrt(b) y]``
(``a + b = 1``), so a fused pack fits the same index. ``w`` is fitted on half of the people (best open-set
FNIR at FPIR 0.01 on their own split) and applied to the protocol on the other half, and vice versa; the
full protocol with the weight fitted on all people is shown too, marked as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine
from facesearch.eval.metrics import open_set_metrics, verification_10fold

WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)


def load(packs: tuple[str, str]) -> tuple[dict[str, int], list[np.ndarray], np.ndarray]:
    """Photos both packs embedded: photo name -> row, the two embedding matrices (same rows), subjects."""
    from scale import lfw_embeddings

    data = [lfw_embeddings(pack) for pack in packs]
    rows = [{str(p): i for i, p in enumerate(d["paths"])} for d in data]
    common = sorted(set(rows[0]) & set(rows[1]))
    vectors = [d["vectors"][[r[p] for p in common]] for d, r in zip(data, rows, strict=True)]
    subjects = data[0]["subjects"][[rows[0][p] for p in common]]
    return {p: i for i, p in enumerate(common)}, vectors, subjects


def protocol(names: dict[str, int], subjects: np.ndarray, people: set[str]) -> dict[str, Any]:
    """The open-set split of ``accuracy.py`` over ``people``: gallery rows, mated rows and owners, non-mated."""
    by_person: dict[str, list[int]] = {}
    for name in sorted(names):
        person = str(subjects[names[name]])
        if person in people:
            by_person.setdefault(person, []).append(names[name])
    enrolled = sorted(p for p, r in by_person.items() if len(r) >= 2)
    mated = [(i, row) for i, p in enumerate(enrolled) for row in by_person[p][1:]]
    return {
        "gallery": [by_person[p][0] for p in enrolled],
        "mated": [row for _, row in mated],
        "owners": np.array([i for i, _ in mated]),
        "nonmated": [r[0] for p, r in sorted(by_person.items()) if len(r) == 1],
    }


def impostor_stats(vectors: np.ndarray, rows: list[int]) -> tuple[float, float]:
    """Mean and standard deviation of the scores between different people's first photos."""
    v = vectors[rows]
    scores = v @ v.T
    upper = scores[np.triu_indices(len(v), 1)]
    return float(upper.mean()), float(upper.std())


def figures(split: dict[str, Any], scores: list[np.ndarray], stats: list[tuple[float, float]], w: float) -> dict:
    """Open-set figures of the fused score ``w * z(first) + (1 - w) * z(second)`` on one split."""

    def fused(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return w * (a - stats[0][0]) / stats[0][1] + (1 - w) * (b - stats[1][0]) / stats[1][1]

    mated = fused(*(s[np.ix_(split["mated"], split["gallery"])] for s in scores))
    nonmated = fused(*(s[np.ix_(split["nonmated"], split["gallery"])] for s in scores))
    order = np.argsort(-mated, axis=1)
    top = mated[np.arange(len(mated)), order[:, 0]]
    ranks = np.argmax(order == split["owners"][:, None], axis=1) + 1
    metrics = open_set_metrics(top, ranks == 1, np.where(ranks <= 20, ranks, 0), nonmated.max(axis=1))
    return {"rank1": metrics["rank1"], **{f"fnir@{p['fpir']:g}": p["fnir"] for p in metrics["fnir_at_fpir"]}}


def run(packs: tuple[str, str]) -> dict[str, Any]:
    """Both packs alone and fused, cross-fitted by halves of the people, and on the whole protocol."""
    names, vectors, subjects = load(packs)
    scores = [v @ v.T for v in vectors]
    people = sorted(set(map(str, subjects)))
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(people))
    halves = [set(shuffled[: len(people) // 2]), set(shuffled[len(people) // 2 :])]
    splits = [protocol(names, subjects, half) for half in halves]
    whole = protocol(names, subjects, set(people))
    result: dict[str, Any] = {"packs": list(packs), "photos": len(names), "people": len(people)}
    cross: list[dict[str, Any]] = []
    for fit, test in ((0, 1), (1, 0)):
        first_photos = splits[fit]["gallery"] + splits[fit]["nonmated"]
        stats = [impostor_stats(v, first_photos) for v in vectors]
        best = min(WEIGHTS, key=lambda w: figures(splits[fit], scores, stats, float(w))["fnir@0.01"])
        cross.append(
            {
                "weight_first": float(best),
                "first": figures(splits[test], scores, stats, 1.0),
                "second": figures(splits[test], scores, stats, 0.0),
                "fused": figures(splits[test], scores, stats, float(best)),
            }
        )
    result["cross_fitted"] = cross
    stats = [impostor_stats(v, whole["gallery"] + whole["nonmated"]) for v in vectors]
    best = min(WEIGHTS, key=lambda w: figures(whole, scores, stats, float(w))["fnir@0.01"])
    result["whole"] = {
        "weight_first": float(best),
        "first": figures(whole, scores, stats, 1.0),
        "second": figures(whole, scores, stats, 0.0),
        "fused": figures(whole, scores, stats, float(best)),
        "fused_equal_weights": figures(whole, scores, stats, 0.5),
    }
    result["verification"] = verification(names, vectors, stats, float(best))
    result["machine"] = machine()
    return result


def verification(names: dict[str, int], vectors: list[np.ndarray], stats: list, w: float) -> dict[str, Any]:
    """LFW 10-fold accuracy on the pairs of pairs.tsv whose photos both packs embedded."""
    from common import LFW
    from facesearch.eval.lfw import read_pairs

    pairs = [p for p in read_pairs(LFW.parent / "pairs.tsv") if p.image_a in names and p.image_b in names]
    a = [names[p.image_a] for p in pairs]
    b = [names[p.image_b] for p in pairs]
    raw = [np.einsum("ij,ij->i", v[a], v[b]) for v in vectors]
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out = {"pairs": len(pairs)}
    for name, weight in (("first", 1.0), ("second", 0.0), ("fused", w)):
        fused = weight * (raw[0] - stats[0][0]) / stats[0][1] + (1 - weight) * (raw[1] - stats[1][0]) / stats[1][1]
        out[name] = verification_10fold(fused, labels, folds)["accuracy_mean"]
    return out


def main() -> int:
    """Print the JSON result (one line with ``--json``, indented otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packs", nargs=2, default=["yunet-mobilefacenet", "dlib"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run((args.packs[0], args.packs[1]))
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
