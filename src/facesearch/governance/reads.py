"""Reading stored faces: metadata, crops and whole source photos, each authorized and audited.

A face is read only by a user whose grants reach its collection; anything else is answered as absent. A
reviewer reads only the faces that a search under one of the cases they were assigned returned, and names
that case; an investigator who names a case must be its owner or a member. Every read writes an audit record
(``face_read``, ``face_crop``, ``image_read``) naming who read which face under which case, before anything
is handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from facesearch.catalog.store import Catalog, FaceDetails
from facesearch.governance.access import AccessDenied, NotVisible, Principal, Role, require
from facesearch.governance.audit import AuditTrail
from facesearch.governance.cases import Cases
from facesearch.vision.crops import GRID_CROP_SIZE, face_crop_jpeg, image_jpeg
from facesearch.vision.image import ImageRejected


class FaceReads:
    """Authorized, audited reads of stored faces."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, cases: Cases, *, max_pixels: int) -> None:
        self.catalog = catalog
        self.audit = audit
        self.cases = cases
        self.max_pixels = max_pixels

    def _authorized(self, principal: Principal, face_id: int, case_ref: str | None) -> FaceDetails:
        require(principal, "faces.read")
        face = self.catalog.face_details([face_id]).get(face_id)
        if face is None or not principal.may_see(face.collection):
            raise NotVisible(f"unknown face {face_id}", code="unknown_face")
        if not principal.operator and principal.role is Role.REVIEWER:
            if case_ref is None:
                raise AccessDenied("a reviewer reads faces under a case they were assigned: name it (case_id)")
            if not self.cases.is_candidate(principal, case_ref, face_id):
                raise NotVisible(f"unknown face {face_id}", code="unknown_face")
        elif case_ref is not None and not principal.can("cases.manage") and not self.cases.may_use(principal, case_ref):
            raise NotVisible(f"unknown case {case_ref!r}", code="unknown_case")
        return face

    def _read(
        self,
        principal: Principal,
        face_id: int,
        case_ref: str | None,
        action: str,
        make: Callable[[FaceDetails], bytes],
    ) -> bytes:
        face = self._authorized(principal, face_id, case_ref)
        data = make(face)
        self.audit.append(actor=principal.actor, action=action, details={"face_id": face_id}, case_ref=case_ref)
        return data

    def face(self, principal: Principal, face_id: int, *, case_ref: str | None = None) -> FaceDetails:
        """A stored face's metadata (image, collection, subject, source, box, quality, pack)."""
        face = self._authorized(principal, face_id, case_ref)
        self.audit.append(actor=principal.actor, action="face_read", details={"face_id": face_id}, case_ref=case_ref)
        return face

    def crop(self, principal: Principal, face_id: int, *, case_ref: str | None = None) -> bytes:
        """The face cut from its image with a margin, as JPEG (cut on request, never stored)."""
        return self._read(
            principal,
            face_id,
            case_ref,
            "face_crop",
            lambda face: face_crop_jpeg(
                face.image_path, face.bbox, max_pixels=self.max_pixels, frame_time=face.frame_time
            ),
        )

    def image(self, principal: Principal, face_id: int, *, case_ref: str | None = None) -> bytes:
        """The whole photo the face was found in, re-encoded as JPEG (at most 2048 pixels a side)."""
        return self._read(
            principal,
            face_id,
            case_ref,
            "image_read",
            lambda face: image_jpeg(face.image_path, max_pixels=self.max_pixels, frame_time=face.frame_time),
        )

    def video(self, principal: Principal, face_id: int, *, case_ref: str | None = None) -> FaceDetails:
        """The face of a video, for playing the video from its time span (``image_path`` is the video file):
        refused as unknown unless the face is a track of a video; audited as ``video_read``."""
        face = self._authorized(principal, face_id, case_ref)
        if face.media != "video":
            raise NotVisible(f"face {face_id} is not from a video", code="unknown_face")
        self.audit.append(actor=principal.actor, action="video_read", details={"face_id": face_id}, case_ref=case_ref)
        return face

    def crops(self, principal: Principal, face_ids: Sequence[int], *, case_ref: str | None = None) -> dict[int, bytes]:
        """Several faces' crops at once (a grid of candidates), under one audit record naming every face
        (``face_crops``). Faces the principal may not read are left out of the answer, not refused: a grid
        shows what it may; none is read without being named in the record."""
        return {face.face_id: crop for face, crop in self.grid(principal, face_ids, case_ref=case_ref) if crop}

    def grid(
        self, principal: Principal, face_ids: Sequence[int], *, case_ref: str | None = None
    ) -> list[tuple[FaceDetails, bytes | None]]:
        """The faces ``principal`` may read among ``face_ids``, in order, each with its crop (``None`` when its
        photo can no longer be read), under one audit record naming every face read (``face_crops``)."""
        allowed = self._authorized_many(principal, list(dict.fromkeys(face_ids)), case_ref)
        if not allowed:
            return []

        def crop_of(face: FaceDetails) -> bytes | None:
            try:
                return face_crop_jpeg(
                    face.image_path,
                    face.bbox,
                    max_pixels=self.max_pixels,
                    size=GRID_CROP_SIZE,
                    frame_time=face.frame_time,
                )
            except ImageRejected:
                return None  # the photo can no longer be read: the grid shows the face without it

        # One after the other (a crop costs about half a millisecond, less than handing it to a thread); nothing
        # is handed out before the record naming every face is committed (an append that fails raises here).
        kept = self.catalog.thumbnails([face.face_id for face in allowed])  # cut at ingest
        crops = [kept.get(face.face_id) or crop_of(face) for face in allowed]
        self.audit.append(
            actor=principal.actor,
            action="face_crops",
            details={"face_ids": sorted(face.face_id for face in allowed)},
            case_ref=case_ref,
        )
        return list(zip(allowed, crops, strict=True))

    def _authorized_many(self, principal: Principal, face_ids: list[int], case_ref: str | None) -> list[FaceDetails]:
        """The faces among ``face_ids`` that :meth:`_authorized` would let ``principal`` read (in order), with
        one query for the faces and one for the case: a grid of them is read in a single request."""
        require(principal, "faces.read")
        details = self.catalog.face_details(face_ids)
        faces = [details[i] for i in face_ids if i in details and principal.may_see(details[i].collection)]
        if not principal.operator and principal.role is Role.REVIEWER:
            if case_ref is None:
                return []
            candidates = self.cases.candidate_ids(principal, case_ref)
            return [face for face in faces if face.face_id in candidates]
        if case_ref is not None and not principal.can("cases.manage") and not self.cases.may_use(principal, case_ref):
            return []
        return faces
