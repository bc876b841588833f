"""A case as its page and its report show it: the searches made under it, each with the candidates it
returned (crops, scores and what they mean), the reviewers' decisions, the members and the history.

Built from the services' own reads (the case, its history, one audited read of the candidates' crops), so
the page, the HTML report and the PDF report show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from facesearch.engine import FaceSearch
from facesearch.governance.access import Principal
from facesearch.web import meaning
from facesearch.web.i18n import Language

if TYPE_CHECKING:
    from facesearch.catalog.store import FaceDetails


@dataclass
class CandidateView:
    """One face a search returned: its score, what it means, its crop and the decisions on it."""

    face_id: int
    probe_face: int  # which face of the probe photo (1: the largest) it was a candidate for
    rank: int
    similarity: float
    fmr: float | None
    beyond_data: bool
    expected: float | None
    meaning: str
    crop: bytes | None
    details: FaceDetails | None
    decisions: list[dict[str, Any]]


@dataclass
class SearchView:
    """One search under the case, from its audit record."""

    seq: int
    at: str
    actor: str
    purpose: str | None
    faces_searched: int | None
    probe_faces: int
    candidates: list[CandidateView] = field(default_factory=list)


@dataclass
class CaseView:
    """Everything the case page and its reports show."""

    case: dict[str, Any]
    searches: list[SearchView]
    history: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    members: list[dict[str, Any]]
    unreadable: list[int]


def build(engine: FaceSearch, principal: Principal, reference: str, language: Language) -> CaseView:
    """The case ``reference`` as ``principal`` may see it (crops of the faces their grants reach only)."""
    case = engine.cases.get(principal, reference)
    history = engine.cases.history(principal, reference)
    searches_records = [r for r in reversed(history) if r["action"] == "search" and r["details"].get("results")]
    face_ids = [face_id for r in searches_records for face in r["details"]["results"] for face_id, _ in face]
    grid = engine.reads.grid(principal, face_ids, case_ref=reference) if face_ids else []
    shown = {details.face_id: (details, crop) for details, crop in grid}
    decisions_of: dict[int, list[dict[str, Any]]] = {}
    for decision in case["decisions"]:
        decisions_of.setdefault(decision["face_id"], []).append(decision)
    calibrations: dict[str, Any] = {}
    searches = []
    for record in searches_records:
        details = record["details"]
        searched = details.get("faces_searched")
        view = SearchView(
            seq=record["seq"],
            at=record["at"],
            actor=record["actor"],
            purpose=record["purpose"],
            faces_searched=searched,
            probe_faces=len(details["results"]),
        )
        for probe_face, face in enumerate(details["results"], start=1):
            for rank, (face_id, similarity) in enumerate(face, start=1):
                if face_id not in shown:
                    continue  # erased since, or outside the principal's grants: never shown
                face_details, crop = shown[face_id]
                if face_details.pack not in calibrations:
                    calibrations[face_details.pack] = engine.searching.calibration(face_details.pack)
                calibration = calibrations[face_details.pack]
                estimate = calibration.estimate(similarity) if calibration is not None else None
                fmr = estimate.fmr if estimate else None
                expected = fmr * searched if fmr is not None and searched else None
                beyond = bool(estimate and estimate.beyond_data)
                view.candidates.append(
                    CandidateView(
                        face_id=face_id,
                        probe_face=probe_face,
                        rank=rank,
                        similarity=float(similarity),
                        fmr=fmr,
                        beyond_data=beyond,
                        expected=expected,
                        meaning=meaning.strangers(language, expected, beyond),
                        crop=crop,
                        details=face_details,
                        decisions=decisions_of.get(face_id, []),
                    )
                )
        searches.append(view)
    unreadable = sorted({c["face_id"] for c in case["candidates"]} - set(shown))
    return CaseView(case, searches, history, case["decisions"], case["members"], unreadable)
