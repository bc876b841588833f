"""The opt-out list: people who asked never to be indexed or found, kept as face embeddings only (no image).

Policy (docs/server.md, "Opt-out"): an opt-out *erases* the person's faces already stored, in the same
transaction that records it, so nothing of them stays readable anywhere (search, face metadata, crops,
subject lists, crossmatch, exports): every face of any pack at or above the pack's strict threshold to the
person's embedding, and, in packs whose models are not present here to embed the photo, the faces at the same
place in the same images. From then on ingest drops every face that matches (in
:meth:`facesearch.catalog.store.Catalog.record_files`, in the same transaction as the insert), and search
still drops any candidate that matches, for faces another process stored while the opt-out was being made.

An opt-out concerns every collection, so only an unlimited administrator (or the local operator) may add,
list or withdraw one. Withdrawing one lets the person be indexed again; it does not bring back what was erased.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.catalog.schema import Face, OptOut, OptOutEmbedding, iso_utc
from facesearch.catalog.store import Catalog, bump_generation
from facesearch.errors import OptOutError
from facesearch.governance.access import NotVisible, Principal, require, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.governance.erasure import Erasure

SAME_FACE_IOU = 0.5
"""Two detections in one image overlapping this much (intersection over union) are the same face."""

FindFaces = Callable[[str, np.ndarray, float], list[int]]
"""(pack key, embedding, threshold) -> ids of the stored faces of that pack at or above the threshold."""


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


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    overlap = width * height
    union = aw * ah + bw * bh - overlap
    return overlap / union if union > 0 else 0.0


class OptOuts:
    """Opt-outs stored in the catalog; adding one erases the person's stored faces."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, erasure: Erasure, find_faces: FindFaces) -> None:
        self.catalog = catalog
        self.audit = audit
        self.erasure = erasure
        self.find_faces = find_faces

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
        with self.catalog.session() as session, session.begin():
            optout = OptOut(created_by=principal.actor, note=note)
            session.add(optout)
            session.flush()
            for pack, (vector, threshold) in embeddings.items():
                session.add(
                    OptOutEmbedding(
                        optout_id=optout.id,
                        pack=pack,
                        embedding=np.asarray(vector, dtype=np.float32).tobytes(),
                        threshold=float(threshold),
                    )
                )
            bump_generation(session)
            faces = sorted(matched | self._same_faces_in_other_packs(session, matched, set(embeddings)))
            faces = [int(i) for i in session.scalars(select(Face.id).where(Face.id.in_(faces)))] if faces else []
            erased = self.erasure.erase_in(session, "face", faces, None) if faces else None
            details = {
                "optout_id": optout.id,
                "packs": sorted(embeddings),
                "faces_erased": erased.faces if erased else 0,
                "subjects_erased": erased.subjects if erased else 0,
            }
            seq, digest = self.audit.append_in(session, actor=principal.actor, action="optout_add", details=details)
            optout_id = int(optout.id)
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

    @staticmethod
    def _same_faces_in_other_packs(session: Any, matched: set[int], embedded: set[str]) -> set[int]:
        """Faces of packs the person could not be embedded with, at the place of a matched face in its image."""
        if not matched:
            return set()
        boxes: dict[int, list[tuple[float, float, float, float]]] = {}
        for image_id, x, y, w, h in session.execute(
            select(Face.image_id, Face.x, Face.y, Face.w, Face.h).where(Face.id.in_(sorted(matched)))
        ):
            boxes.setdefault(int(image_id), []).append((x, y, w, h))
        found: set[int] = set()
        for face_id, image_id, x, y, w, h in session.execute(
            select(Face.id, Face.image_id, Face.x, Face.y, Face.w, Face.h).where(
                Face.image_id.in_(sorted(boxes)), Face.pack.not_in(sorted(embedded))
            )
        ):
            if any(_iou((x, y, w, h), box) >= SAME_FACE_IOU for box in boxes[int(image_id)]):
                found.add(int(face_id))
        return found

    def remove(self, principal: Principal, optout_id: int) -> None:
        """Withdraw an opt-out (the person may be indexed and found again; what was erased stays erased)."""
        self.check(principal)
        with self.catalog.session() as session, session.begin():
            if session.get(OptOut, optout_id) is None:
                raise NotVisible(f"unknown opt-out {optout_id}", code="unknown_optout")
            session.execute(delete(OptOutEmbedding).where(OptOutEmbedding.optout_id == optout_id))
            session.execute(delete(OptOut).where(OptOut.id == optout_id))
            bump_generation(session)
            audit = self.audit.append_in(
                session, actor=principal.actor, action="optout_remove", details={"optout_id": optout_id}
            )
        self.audit.committed(*audit)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        """Every opt-out: id, when, by whom, note, and the packs it holds an embedding for."""
        self.check(principal)
        with self.catalog.session() as session:
            packs: dict[int, list[str]] = {}
            for optout_id, pack in session.execute(select(OptOutEmbedding.optout_id, OptOutEmbedding.pack)):
                packs.setdefault(optout_id, []).append(pack)
            return [
                {
                    "id": o.id,
                    "created_at": iso_utc(o.created_at),
                    "created_by": o.created_by,
                    "note": o.note,
                    "packs": sorted(packs.get(o.id, [])),
                }
                for o in session.scalars(select(OptOut).order_by(OptOut.id))
            ]

    def count(self) -> int:
        """How many opt-outs there are."""
        with self.catalog.session() as session:
            return int(session.scalar(select(func.count(OptOut.id))) or 0)

    def for_pack(self, pack: str) -> OptOutList:
        """The embeddings of ``pack`` to match faces against."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(OptOutEmbedding.embedding, OptOutEmbedding.threshold).where(OptOutEmbedding.pack == pack)
            ).all()
        if not rows:
            return EMPTY
        return OptOutList(
            np.stack([np.frombuffer(row[0], dtype=np.float32) for row in rows]),
            np.array([row[1] for row in rows], dtype=np.float32),
        )
