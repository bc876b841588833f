"""Searching a data folder: the right search service for a pack, who searches for what, and the searches that
serve governance ("forget this person", embedding a person who opts out).

A search names who acts (a :class:`Principal`), for which purpose and case: :meth:`Searching.context` checks
the purpose against the configured list and opens the case (or refuses someone else's, or a closed one); the
search service then writes the audit record of every call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import Settings
from facesearch.errors import OptOutError
from facesearch.governance.access import Principal, require
from facesearch.governance.audit import AuditTrail
from facesearch.governance.cases import Cases
from facesearch.governance.context import ActionContext, check_case, check_purpose
from facesearch.governance.optout import EMPTY, OptOutList
from facesearch.ingest.reconcile import Indexes
from facesearch.search.calibration import Calibration, find_calibration
from facesearch.search.service import Candidate, ImageInput, ProbeResult, SearchService, VerifyResult
from facesearch.vision.image import DEFAULT_MAX_PIXELS
from facesearch.vision.packs import Packs


def strict_threshold(threshold: float) -> float:
    """A similarity a quarter of the way from a pack's same-person threshold to 1.

    Used where a false match costs more than a miss in review: listing faces to erase ("forget this
    person") and deciding that a face is an opted-out person's. With dlib v1 on LFW, strangers of one
    demographic group often reached that pack's threshold (then 0.82); a quarter of the way up kept most out.
    """
    return round(threshold + (1.0 - threshold) / 4.0, 4)


class Searching:
    """Search services for every pack of a data folder, and the checks of who searches for what."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        audit: AuditTrail,
        packs: Packs,
        indexes: Indexes,
        cases: Cases,
        operator: Principal,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.audit = audit
        self.packs = packs
        self.indexes = indexes
        self.cases = cases
        self.operator = operator
        self._optout_lists: dict[str, tuple[int, OptOutList]] = {}
        self._lock = threading.Lock()

    def context(
        self,
        *,
        principal: Principal | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        required: bool | None = None,
    ) -> ActionContext:
        """Who acts, for which purpose and case, checked against the configured purposes.

        ``principal`` defaults to the local operator (the configured identity or the OS user). Purpose and
        case may be left out (purpose recorded as ``unspecified``) unless ``required`` (the API) or
        ``require_purpose`` is set in the data folder's config. A named case is opened on first use (owned by
        the principal); someone else's case is refused unless the principal was added to it; a closed case is
        refused.
        """
        principal = principal or self.operator
        must = self.settings.require_purpose if required is None else required
        checked_purpose = check_purpose(purpose, self.settings.purposes, required=must)
        case_ref = check_case(case_id, required=must)
        if case_ref is not None:
            self.cases.open_for_search(principal, case_ref)
        return ActionContext(actor=principal.actor, purpose=checked_purpose, case_ref=case_ref)

    def service(
        self, pack: str | None = None, *, context: ActionContext | None = None, max_pixels: int | None = None
    ) -> SearchService:
        """The search service for a pack (default: the configured or best available one), its index caught up
        with the catalog; its calls are audited as ``context`` (default: the local operator)."""
        model_pack = self.packs.pack(pack)
        return SearchService(
            self.catalog,
            model_pack,
            self.indexes.of(model_pack.key, model_pack.dim),
            audit=self.audit,
            context=context or self.context(),
            optouts=self.optout_list(model_pack.key),
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
            calibration=self.calibration(model_pack.key),
        )

    def search_as(
        self,
        principal: Principal,
        image: ImageInput,
        *,
        purpose: str | None,
        case_id: str | None,
        top_k: int = 10,
        collection: str | None = None,
        max_fmr: float | None = None,
        by_subject: bool = False,
        probe_name: str | None = None,
        crops: bool = False,
    ) -> ProbeResult:
        """A search by a user of the server (the API, the workbench): purpose and case required, only the
        principal's collections searched, probes limited to ``max_probe_pixels``; audited as the principal.
        ``crops``: the crops of the largest face's candidates come with the result, named by its one record."""
        context = self.context(principal=principal, purpose=purpose, case_id=case_id, required=True)
        service = self.service(context=context, max_pixels=self.settings.max_probe_pixels)
        return service.search(
            image,
            top_k=top_k,
            collection=collection,
            probe_name=probe_name,
            context=context,
            collections=None if principal.all_collections else sorted(principal.collections),
            max_fmr=max_fmr,
            by_subject=by_subject,
            crops=crops,
        )

    def verify_as(
        self,
        principal: Principal,
        image_a: ImageInput,
        image_b: ImageInput,
        *,
        purpose: str | None,
        case_id: str | None,
        fmr: float | None = None,
    ) -> VerifyResult:
        """A verification by a user of the server: purpose and case required; audited as the principal."""
        context = self.context(principal=principal, purpose=purpose, case_id=case_id, required=True)
        service = self.service(context=context, max_pixels=self.settings.max_probe_pixels)
        return service.verify(image_a, image_b, context=context, fmr=fmr)

    def calibration(self, pack_key: str) -> Calibration | None:
        """A pack's score calibration: this data folder's own (``facesearch calibrate``), else the shipped one."""
        return find_calibration(pack_key, self.settings.home)

    def optout_list(self, pack_key: str) -> OptOutList:
        """The opt-out embeddings of a pack, reloaded when the catalog's generation moved."""
        generation = self.catalog.generation()
        with self._lock:
            cached = self._optout_lists.get(pack_key)
            if cached is not None and cached[0] == generation:
                return cached[1]
        vectors, thresholds = self.catalog.optouts.embeddings(pack_key)
        optouts = OptOutList(vectors, thresholds) if len(thresholds) else EMPTY
        with self._lock:
            self._optout_lists[pack_key] = (generation, optouts)
        return optouts

    def search(
        self,
        image: ImageInput,
        *,
        top_k: int = 10,
        collection: str | None = None,
        pack: str | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        max_fmr: float | None = None,
        by_subject: bool = False,
        principal: Principal | None = None,
    ) -> ProbeResult:
        """Search a probe photo against the indexed faces (of the principal's collections); each candidate is a
        lead to review. Audited as the principal (default: the local operator), for ``purpose`` and ``case_id``.
        """
        principal = principal or self.operator
        require(principal, "search")
        context = self.context(principal=principal, purpose=purpose, case_id=case_id)
        scope = None if principal.scope is None else sorted(principal.scope)
        return self.service(pack, context=context).search(
            image, top_k=top_k, collection=collection, max_fmr=max_fmr, by_subject=by_subject, collections=scope
        )

    def verify(
        self,
        image_a: ImageInput,
        image_b: ImageInput,
        *,
        pack: str | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        fmr: float | None = None,
        principal: Principal | None = None,
    ) -> VerifyResult:
        """Compare the largest face of two photos (audited like :meth:`search`), deciding at ``fmr`` (default 1e-3)."""
        principal = principal or self.operator
        require(principal, "verify")
        context = self.context(principal=principal, purpose=purpose, case_id=case_id)
        return self.service(pack, context=context).verify(image_a, image_b, fmr=fmr)

    def forget_threshold(self, pack: str | None = None) -> float:
        """The strict similarity of "forget this person" and opt-outs for a pack (see :func:`strict_threshold`)."""
        return strict_threshold(self.packs.spec(pack).threshold)

    def forget_candidates(
        self,
        image: ImageInput,
        *,
        threshold: float | None = None,
        pack: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[list[Candidate], str | None]:
        """Every face above a strict threshold for the person in ``image`` (in the principal's collections), to
        review and then erase. Returns ``(candidates, error)``; audited (``forget_search``)."""
        principal = principal or self.operator
        require(principal, "erase")
        service = self.service(pack, context=ActionContext(actor=principal.actor))
        limit = threshold if threshold is not None else self.forget_threshold(pack)
        scope = None if principal.scope is None else sorted(principal.scope)
        return service.faces_above(image, limit, collections=scope)

    def embed_person(self, image: ImageInput, packs: Sequence[str] = ()) -> dict[str, tuple[np.ndarray, float]]:
        """The main face of ``image`` embedded with the active pack and with each pack of ``packs`` whose models
        are present here, each with the pack's strict threshold (what an opt-out keeps)."""
        active = self.packs.pack()
        embeddings: dict[str, tuple[np.ndarray, float]] = {}
        for key in [active.key, *(key for key in packs if key != active.key)]:
            try:
                model_pack = active if key == active.key else self.packs.pack(key.split("@", 1)[0])
            except Exception:  # a pack whose models are missing here cannot embed; the others still do
                continue
            if model_pack.key != key:
                continue
            service = self.service(model_pack.spec.name, context=ActionContext(actor=self.operator.actor))
            faces = service.analyse(image)  # largest first: the person the photo is about
            if not faces:
                raise OptOutError("no face found in the photo")
            embeddings[key] = (faces[0].embedding, strict_threshold(model_pack.threshold))
        return embeddings
