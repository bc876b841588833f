"""The opt-out list: people who asked never to be indexed or found, kept as face embeddings only (no image).

Policy (docs/server.md, "Opt-out"): an opt-out *erases* the person's faces already stored, in the same
transaction that records it, so nothing of them stays readable anywhere (search, face metadata, crops,
subject lists, crossmatch, exports): every face of any pack at or above the pack's strict threshold to the
person's embedding, and, in packs whose models are not present here to embed the photo, the faces at the same
place in the same images. From then on ingest drops every face that matches (:func:`opted_out_filter`, run
by the catalog inside the transaction that would store the faces), and search still drops any candidate
that matches, for faces another process stored while the opt-out was being made.

An opt-out concerns every collection, so only an unlimited administrator (or the local operator) may add,
list or withdraw one. Withdrawing one lets the person be indexed again; it does not bring back what was erased.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.catalog.base import Transaction
from facesearch.catalog.records import FileOutcome
from facesearch.catalog.schema import iso_utc
from facesearch.catalog.store import Catalog, FaceFilter, bump_generation
from facesearch.errors import OptOutError
from facesearch.governance.access import NotVisible, Principal, require, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.governance.erasure import Erasure

__all__ = ["EMPTY", "OptOutError", "OptOutList", "OptOuts", "opted_out_filter"]

SAME_FACE_IOU = 0.5
"""Two detections in one image overlapping this much (intersection over union) are the same face."""

FindFaces = Callable[[str, np.ndarray, float], list[int]]
"""(pack key, embedding, threshold) -> ids of the stored faces of that pack at or above the threshold."""

EmbedPerson = Callable[[Any, Sequence[str]], dict[str, tuple[np.ndarray, float]]]
"""(photo, pack keys with faces stored) -> pack key -> (the photo's main face embedded, strict threshold)."""


@dataclass(frozen=True)
class OptOutList:
    """The opt-out embeddings of one pack, with the similarity from which a face counts as the person's."""

    vectors: np.ndarray  # (N, dim) float32
    thresholds: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def matches(self, vectors: np.ndarray) -> np.ndarray:
        """For each row of ``vectors``, whether it matches any opt-out (a boolean array)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1] if len(self) else 0)
        if not len(self) or not len(vectors):
            return np.zeros(len(vectors), dtype=bool)
        return np.asarray(((vectors @ self.vectors.T) >= self.thresholds[None, :]).any(axis=1))


EMPTY = OptOutList(np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32))


def opted_out_filter(catalog: Catalog) -> FaceFilter:
    """The ingest's face filter: drops every face that matches an opt-out of its pack.

    The catalog runs it in the transaction that stores the batch, so an opt-out committed before the batch
    always applies, and no trace of a dropped face is stored.
    """

    def keep(tx: Transaction, pack: str, outcomes: Sequence[FileOutcome]) -> list[FileOutcome]:
        vectors, thresholds = catalog.optouts.embeddings(pack, tx)
        optouts = OptOutList(vectors, thresholds) if len(thresholds) else EMPTY
        if not len(optouts):
            return list(outcomes)
        kept_outcomes = []
        for outcome in outcomes:
            if outcome.faces:
                matched = optouts.matches(np.stack([np.asarray(f.embedding, dtype=np.float32) for f in outcome.faces]))
                if matched.any():
                    kept = [face for face, hit in zip(outcome.faces, matched, strict=True) if not hit]
                    outcome = dataclasses.replace(outcome, faces=kept)
            kept_outcomes.append(outcome)
        return kept_outcomes

    return keep


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    overlap = width * height
    union = aw * ah + bw * bh - overlap
    return overlap / union if union > 0 else 0.0


class OptOuts:
    """Opt-outs; adding one erases the person's stored faces."""

    def __init__(
        self, catalog: Catalog, audit: AuditTrail, erasure: Erasure, find_faces: FindFaces, embed: EmbedPerson
    ) -> None:
        self.catalog = catalog
        self.store = catalog.optouts
        self.audit = audit
        self.erasure = erasure
        self.find_faces = find_faces
        self.embed = embed

    def add_photo(self, principal: Principal, image: Any, *, note: str | None = None) -> dict[str, Any]:
        """Put the person in ``image`` (its main face) on the opt-out list and erase their stored faces; the
        photo itself is not kept.

        The face is embedded with the active pack and with every other pack that has faces in the catalog
        (when its models are present), so that it is found whichever pack indexed or searches; a face counts as
        the person's from the pack's strict threshold (the same-person threshold would also erase strangers
        who resemble them).
        """
        self.check(principal)
        return self.add(principal, self.embed(image, list(self.catalog.stats()["packs"])), note=note)

    @staticmethod
    def check(principal: Principal) -> None:
        """Raise unless ``principal`` may use the opt-out list (an unlimited administrator)."""
        require(principal, "optout")
        require_unlimited(principal, "the opt-out list")

    def add(
        self, principal: Principal, embeddings: dict[str, tuple[np.ndarray, float]], *, note: str | None = None
    ) -> dict[str, Any]:
        """Store one person's embeddings (pack key -> (vector, threshold)) and erase their stored faces.

        Returns the opt-out's id, its packs, how many faces (and subjects left without faces) were erased, and
        the audit record's sequence number.
        """
        self.check(principal)
        if not embeddings:
            raise OptOutError("no face embedding to store")
        matched: set[int] = set()
        for pack, (vector, threshold) in embeddings.items():
            matched.update(self.find_faces(pack, np.asarray(vector, dtype=np.float32), float(threshold)))
        with self.catalog.transaction() as tx:
            optout_id = self.store.add(tx, principal.actor, note, embeddings)
            bump_generation(tx)
            faces = self._with_same_faces_in_other_packs(tx, matched, set(embeddings))
            erased = self.erasure.erase_in(tx, "face", faces, None) if faces else None
            details = {
                "optout_id": optout_id,
                "packs": sorted(embeddings),
                "faces_erased": erased.faces if erased else 0,
                "subjects_erased": erased.subjects if erased else 0,
            }
            seq, digest = self.audit.append_in(tx, actor=principal.actor, action="optout_add", details=details)
        self.audit.committed(seq, digest)
        if erased is not None:
            self.erasure.finish(erased)
        return {
            "id": optout_id,
            "packs": sorted(embeddings),
            "faces_erased": details["faces_erased"],
            "subjects_erased": details["subjects_erased"],
            "audit_seq": seq,
        }

    def _with_same_faces_in_other_packs(self, tx: Transaction, matched: set[int], embedded: set[str]) -> list[int]:
        """The matched faces that still exist, and the faces of packs the person could not be embedded with at
        the place of one of them in its image."""
        boxes: dict[int, list[tuple[float, float, float, float]]] = {}
        found: set[int] = set()
        for face_id, image_id, box in self.catalog.face_boxes(tx, sorted(matched)):
            found.add(face_id)
            boxes.setdefault(image_id, []).append(box)
        for face_id, image_id, box in self.catalog.faces_in_images(
            tx, sorted(boxes), packs_other_than=sorted(embedded)
        ):
            if any(_iou(box, other) >= SAME_FACE_IOU for other in boxes[image_id]):
                found.add(face_id)
        return sorted(found)

    def remove(self, principal: Principal, optout_id: int) -> None:
        """Withdraw an opt-out (the person may be indexed and found again; what was erased stays erased)."""
        self.check(principal)
        with self.catalog.transaction() as tx:
            if not self.store.exists(optout_id, tx):
                raise NotVisible(f"unknown opt-out {optout_id}", code="unknown_optout")
            self.store.remove(tx, optout_id)
            bump_generation(tx)
            audit = self.audit.append_in(
                tx, actor=principal.actor, action="optout_remove", details={"optout_id": optout_id}
            )
        self.audit.committed(*audit)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        """Every opt-out: id, when, by whom, note, and the packs it holds an embedding for."""
        self.check(principal)
        return [
            {
                "id": o.id,
                "created_at": iso_utc(o.created_at),
                "created_by": o.created_by,
                "note": o.note,
                "packs": list(o.packs),
            }
            for o in self.store.optouts()
        ]

    def count(self) -> int:
        """How many opt-outs there are."""
        return self.store.count()

    def for_pack(self, pack: str) -> OptOutList:
        """The embeddings of ``pack`` to match faces against."""
        vectors, thresholds = self.store.embeddings(pack)
        return OptOutList(vectors, thresholds) if len(thresholds) else EMPTY
