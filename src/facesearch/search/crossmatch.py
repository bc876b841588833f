"""Crossmatch: every face of one collection searched against the faces of another, in batches, as ranked pairs.

This is how a list of missing people is matched against a list of registered survivors. Each batch goes
through the search service (audited as one ``search_vectors`` record); pairs below the pack's same-person
threshold (or ``min_similarity``) are left out, and a face never matches itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.catalog.review import NewReviewItem, StandingRow
from facesearch.catalog.store import Catalog
from facesearch.governance.context import ActionContext
from facesearch.search.searching import Searching


@dataclass
class CrossmatchPair:
    """A face of the probe collection and a candidate for it in the other collection: a lead to review."""

    probe_face_id: int
    probe_image: str | None
    probe_subject: str | None
    rank: int
    face_id: int
    image: str
    subject: str | None
    similarity: float
    # The per-comparison false-match rate at this similarity (the pack's calibration), and how many pairs of
    # strangers a cross-match this size (probe faces x target faces comparisons) would bring this high.
    fmr: float | None = None
    expected_false_pairs: float | None = None
    # With ``by_subject``: how many faces of the probe's subject were combined into the template searched
    # (``probe_face_id`` is then the subject's first face).
    probe_template_faces: int | None = None


@dataclass
class CrossmatchResult:
    """Every candidate pair of a crossmatch, best first, with what it took."""

    collection: str
    against: str
    pack: str
    threshold: float
    probe_faces: int
    target_faces: int
    pairs: list[CrossmatchPair]
    elapsed_s: float
    queued: int | None = None

    def summary(self) -> dict[str, Any]:
        """Counts and throughput (probe faces searched per second)."""
        return {
            "collection": self.collection,
            "against": self.against,
            "pack": self.pack,
            "threshold": self.threshold,
            "probe_faces": self.probe_faces,
            "target_faces": self.target_faces,
            "pairs": len(self.pairs),
            "elapsed_s": round(self.elapsed_s, 3),
            "probes_per_s": round(self.probe_faces / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
            **({"queued_for_review": self.queued} if self.queued is not None else {}),
        }


def _pair(
    probe: tuple[int, str | None, str | None], rank: int, candidate: Any, calibration: Any, comparisons: int
) -> CrossmatchPair:
    """A probe (face id, image, subject) and a candidate for it, with what the score means for a cross-match
    of ``comparisons`` face pairs (nothing said without a calibration)."""
    fmr = calibration.fmr(candidate.similarity) if calibration is not None else None
    return CrossmatchPair(
        probe_face_id=probe[0],
        probe_image=probe[1],
        probe_subject=probe[2],
        rank=rank,
        face_id=candidate.face_id,
        image=candidate.image,
        subject=candidate.subject,
        similarity=candidate.similarity,
        fmr=None if fmr is None else float(f"{fmr:.3g}"),
        expected_false_pairs=None if fmr is None else float(f"{fmr * comparisons:.3g}"),
    )


class Crossmatch:
    """Crossmatches of one data folder."""

    def __init__(self, catalog: Catalog, searching: Searching) -> None:
        self.catalog = catalog
        self.searching = searching

    def _queue(self, pack_key: str, pairs: list[CrossmatchPair], context: ActionContext | None) -> int:
        """Put the pairs not queued before into the review queue (audited); how many went in."""
        if not pairs:
            return 0
        items = [
            NewReviewItem(
                key=f"crossmatch_pair:{pair.probe_face_id}:{pair.face_id}",
                kind="crossmatch_pair",
                pack=pack_key,
                face_a=pair.probe_face_id,
                face_b=pair.face_id,
                similarity=round(pair.similarity, 4),
                reason=f"cross-match candidate (rank {pair.rank})",
            )
            for pair in pairs
        ]
        actor = context.actor if context is not None else self.searching.context().actor
        with self.catalog.transaction() as tx:
            added = self.catalog.review.add(tx, items)
            details = {"kind": "crossmatch_pair", "pairs": len(items), "queued": added}
            record = self.searching.audit.append_in(tx, actor=actor, action="review_queue_add", details=details)
        self.searching.audit.committed(*record)
        return added

    def _match(
        self,
        service: Any,
        probes: np.ndarray,
        targets: np.ndarray,
        top_k: int,
        threshold: float,
        batch: int,
        context: ActionContext | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[CrossmatchPair]:
        """Each probe face searched among the target faces, in batches (each audited by the search service);
        the pairs at or above ``threshold``, best first, with what their score means for this many comparisons."""
        pairs: list[CrossmatchPair] = []
        done = 0
        comparisons = int(probes.size) * int(targets.size)
        calibration = service.calibration
        for start in range(0, len(probes), batch):
            chunks = list(self.catalog.iter_embeddings(service.pack.key, probes[start : start + batch].tolist()))
            if not chunks or not targets.size:
                continue
            probe_ids = np.concatenate([c[0] for c in chunks]).tolist()
            vectors = np.concatenate([c[1] for c in chunks])
            probe_info = self.catalog.face_details(probe_ids)
            # One more candidate than asked: a face in both collections finds itself first, and is skipped.
            found = service.search_vectors(vectors, top_k=top_k + 1, allowed_ids=targets, context=context)
            for probe_id, candidates in zip(probe_ids, found, strict=True):
                info = probe_info.get(probe_id)
                kept = [c for c in candidates if c.face_id != probe_id][:top_k]
                for rank, candidate in enumerate(kept, start=1):
                    if candidate.similarity >= threshold:
                        probe = (probe_id, info.image_path if info else None, info.subject if info else None)
                        pairs.append(_pair(probe, rank, candidate, calibration, comparisons))
            done += len(probe_ids)
            if on_progress is not None:
                on_progress(done, len(probes))
        pairs.sort(key=lambda p: (-p.similarity, p.probe_face_id, p.rank))
        return pairs

    def _templates(self, probes: np.ndarray) -> tuple[np.ndarray, dict[str, list[int]]]:
        """The probe faces of no subject (or the only face of theirs), and each subject's faces (two or more)."""
        by_subject: dict[str, list[int]] = {}
        for face_id, details in self.catalog.face_details(probes.tolist()).items():
            if details.subject:
                by_subject.setdefault(details.subject, []).append(int(face_id))
        templates = {label: sorted(faces) for label, faces in by_subject.items() if len(faces) > 1}
        grouped = {f for faces in templates.values() for f in faces}
        return np.array([f for f in probes.tolist() if f not in grouped], dtype=np.int64), templates

    def _match_templates(
        self,
        service: Any,
        templates: dict[str, list[int]],
        targets: np.ndarray,
        top_k: int,
        threshold: float,
        context: ActionContext | None,
        probe_count: int,
    ) -> list[CrossmatchPair]:
        """Each subject's template (the normalised mean of its faces' embeddings) searched among the targets
        (one audited search for them all). The false-match rate is the single-face calibration read at the
        template's similarity: an upper bound, as for a search by subject."""
        if not templates or not targets.size:
            return []
        labels = sorted(templates)
        members = [f for label in labels for f in templates[label]]
        vectors: dict[int, np.ndarray] = {}
        for ids, chunk in self.catalog.iter_embeddings(service.pack.key, members):
            vectors.update(zip(ids.tolist(), chunk, strict=True))
        means = []
        for label in labels:
            mean = np.mean([vectors[f] for f in templates[label] if f in vectors], axis=0)
            means.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        found = service.search_vectors(
            np.asarray(means, dtype=np.float32),
            top_k=top_k + max(len(f) for f in templates.values()),
            allowed_ids=targets,
            context=context,
        )
        first = self.catalog.face_details([templates[label][0] for label in labels])
        comparisons = probe_count * int(targets.size)
        pairs = []
        for label, candidates in zip(labels, found, strict=True):
            own = set(templates[label])
            kept = [c for c in candidates if c.face_id not in own][:top_k]
            info = first.get(templates[label][0])
            for rank, candidate in enumerate(kept, start=1):
                if candidate.similarity >= threshold:
                    probe = (templates[label][0], info.image_path if info else None, label)
                    pair = _pair(probe, rank, candidate, service.calibration, comparisons)
                    pair.probe_template_faces = len(templates[label])
                    pairs.append(pair)
        return pairs

    def stand(
        self,
        collection: str,
        against: str,
        *,
        top_k: int = 5,
        min_similarity: float | None = None,
        pack: str | None = None,
        context: ActionContext | None = None,
        already_matched: bool = False,
    ) -> tuple[int, int]:
        """Make a cross-match standing: every face that arrives from now on in either collection is matched
        against the other and the new pairs queued for review (after each ingest, and by :meth:`run_standing`).
        The faces already there are matched now, unless the caller has just matched and queued them
        (``already_matched``: a cross-match run with ``queue``). Returns (its id, pairs queued now)."""
        service = self.searching.service(pack, context=context)
        for name in (collection, against):
            if self.catalog.collection_id(name) is None:
                raise LookupError(f"unknown collection {name!r}")
        actor = context.actor if context is not None else self.searching.context().actor
        seen = 0
        if already_matched:
            ids = [
                self.catalog.collection_face_ids(self.catalog.collection_id(n) or 0, service.pack.key)
                for n in (collection, against)
            ]
            seen = int(max((int(i.max()) for i in ids if i.size), default=0))
        row = StandingRow(0, collection, against, service.pack.key, top_k, min_similarity, seen, actor)
        with self.catalog.transaction() as tx:
            standing_id = self.catalog.standing.add(tx, row)
            details = {"standing_id": standing_id, "collection": collection, "against": against, "top_k": top_k}
            record = self.searching.audit.append_in(tx, actor=actor, action="crossmatch_standing", details=details)
        self.searching.audit.committed(*record)
        return standing_id, self.run_standing(context=context)

    def run_standing(self, collection: str | None = None, *, context: ActionContext | None = None) -> int:
        """Match the faces that arrived since each standing cross-match last ran (those touching
        ``collection``, or all) against the other collection, and queue the new pairs; how many were queued."""
        queued = 0
        for standing in self.catalog.standing.all():
            if collection is not None and collection not in (standing.collection, standing.against):
                continue
            ids = {}
            for name in (standing.collection, standing.against):
                collection_id = self.catalog.collection_id(name)
                ids[name] = (
                    np.sort(self.catalog.collection_face_ids(collection_id, standing.pack))
                    if collection_id is not None
                    else np.empty(0, dtype=np.int64)
                )
            left, right = ids[standing.collection], ids[standing.against]
            newest = int(max(left.max(initial=0), right.max(initial=0)))
            if newest <= standing.seen_face_id:
                continue
            service = self.searching.service(standing.pack.rsplit("@", 1)[0], context=context)
            if service.pack.key != standing.pack:  # the pack moved on to another version: its faces are elsewhere
                continue
            threshold = service.pack.threshold if standing.min_similarity is None else standing.min_similarity
            pairs = self._match(
                service, left[left > standing.seen_face_id], right, standing.top_k, threshold, 1000, context
            )
            # New faces of the other side, against the whole first: pairs keep the first side first.
            for pair in self._match(
                service, right[right > standing.seen_face_id], left, standing.top_k, threshold, 1000, context
            ):
                pairs.append(
                    dataclasses.replace(
                        pair,
                        probe_face_id=pair.face_id,
                        probe_image=pair.image,
                        probe_subject=pair.subject,
                        face_id=pair.probe_face_id,
                        image=pair.probe_image or "",
                        subject=pair.probe_subject,
                    )
                )
            queued += self._queue(standing.pack, pairs, context)
            with self.catalog.transaction() as tx:
                self.catalog.standing.seen(tx, standing.id, newest)
        return queued

    def run(
        self,
        collection: str,
        against: str,
        *,
        top_k: int = 5,
        min_similarity: float | None = None,
        pack: str | None = None,
        batch: int = 1000,
        context: ActionContext | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        queue: bool = False,
        by_subject: bool = False,
    ) -> CrossmatchResult:
        """Search every face of ``collection`` against the faces of ``against``, in batches; ranked pairs.

        This is how a list of missing people is matched against a list of registered survivors. Each batch
        goes through the search service (audited as one ``search_vectors`` record). Pairs below
        ``min_similarity`` (default: the pack's same-person threshold) are left out; a face never matches
        itself. Pairs come best first; ``rank`` is the candidate's rank for its probe face.

        With ``by_subject`` the probe faces enrolled under one subject (a family's several photos of the person
        they look for) are searched as one template, the mean of their embeddings, which is more accurate than
        any one photo; faces of no subject are searched one by one.

        With ``queue`` the pairs not queued before go into the review queue (``crossmatch_pair``): a pair
        already decided is never asked again (``CrossmatchResult.queued`` says how many went in).
        """
        service = self.searching.service(pack, context=context)
        pack_key = service.pack.key
        threshold = service.pack.threshold if min_similarity is None else min_similarity
        ids = {}
        for name in (collection, against):
            collection_id = self.catalog.collection_id(name)
            if collection_id is None:
                raise LookupError(f"unknown collection {name!r}")
            ids[name] = self.catalog.collection_face_ids(collection_id, pack_key)
        probes, targets = np.sort(ids[collection]), np.sort(ids[against])
        started = time.perf_counter()
        if by_subject:
            singles, templates = self._templates(probes)
            pairs = self._match(service, singles, targets, top_k, threshold, batch, context, on_progress)
            pairs += self._match_templates(service, templates, targets, top_k, threshold, context, len(probes))
            pairs.sort(key=lambda p: (-p.similarity, p.probe_face_id, p.rank))
        else:
            pairs = self._match(service, probes, targets, top_k, threshold, batch, context, on_progress)
        queued = self._queue(pack_key, pairs, context) if queue else None
        elapsed = time.perf_counter() - started
        return CrossmatchResult(
            queued=queued,
            collection=collection,
            against=against,
            pack=pack_key,
            threshold=threshold,
            probe_faces=len(probes),
            target_faces=len(targets),
            pairs=pairs,
            elapsed_s=elapsed,
        )
