"""Request and response bodies of the API, as Pydantic models (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from facesearch.ingest.intake import LABEL_PATTERN
from facesearch.search.results import Candidate

MAX_ID = 2**53 - 1
"""The largest id the API takes: the largest integer that every JSON reader, and the OpenAPI document's numbers,
hold exactly (ids are 63-bit in the databases, far from either limit); anything larger is invalid (422)."""

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Open(BaseModel):
    """A response model that lets fields added later through (clients must ignore unknown fields)."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error: a stable code and a message for people."""

    code: str
    message: str
    details: Any = None


class Health(BaseModel):
    """``GET /health``."""

    status: str


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"


class CollectionIn(BaseModel):
    """A new collection: its name, the legal basis for holding and searching it, and its retention."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME, max_length=200)
    legal_basis: str = Field(min_length=1, max_length=2000)
    description: str | None = Field(default=None, max_length=2000)
    source: str | None = Field(default=None, max_length=2000)
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    min_quality: float | None = Field(
        default=None, ge=0, le=1, description="Quality policy: faces scoring below this are not indexed."
    )


class CollectionOut(Open):
    """A collection with its counts."""

    name: str
    legal_basis: str | None
    retention_days: int | None = None
    min_quality: float | None = None
    images: int
    faces: int


class QualityPolicyIn(BaseModel):
    """A collection's quality policy (``null`` or 0: index every face, each marked with its quality)."""

    model_config = ConfigDict(extra="forbid")
    min_quality: float | None = Field(
        default=None, ge=0, le=1, description="Faces scoring below this are not indexed from now on."
    )


class RetentionIn(BaseModel):
    """A collection's maximum age (``null``: keep until erased)."""

    model_config = ConfigDict(extra="forbid")
    days: int | None = Field(default=None, ge=1, le=36500)


class IngestPathIn(BaseModel):
    """Ingest a folder or file on the server, inside the configured ingest roots."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)
    subject_from_folder: bool = False
    source_url: str | None = Field(default=None, max_length=2000)


class SubjectRenameIn(BaseModel):
    """A subject's new label."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=300)


class SubjectMergeIn(BaseModel):
    """Merge this subject into another (its faces move there; it goes)."""

    model_config = ConfigDict(extra="forbid")
    into: Id


class CaseIn(BaseModel):
    """A new case."""

    model_config = ConfigDict(extra="forbid")
    case_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,199}$")
    title: str | None = Field(default=None, max_length=2000)


class CaseOut(Open):
    """A case."""

    case_id: str
    title: str | None
    opened_by: str
    open: bool


class DecisionIn(BaseModel):
    """A reviewer's decision on a candidate of a case."""

    model_config = ConfigDict(extra="forbid")
    face_id: Id
    decision: str = Field(pattern=r"^(match|no_match|unsure)$")
    note: str | None = Field(default=None, max_length=4000)
    audit_seq: Id | None = None


class ErasureIn(BaseModel):
    """What to erase: every value of one kind."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=r"^(image|face|subject|source_url|collection)$")
    values: list[Annotated[str, Field(max_length=4096)] | Id] = Field(min_length=1, max_length=10000)


class ErasureOut(Open):
    """What an erasure removed (counts only)."""

    target: str
    images: int
    faces: int
    subjects: int
    collections: int
    files: int
    audit_seq: int | None


class ForgetEraseIn(BaseModel):
    """The faces confirmed for erasure after reviewing ``/v1/forget/candidates``."""

    model_config = ConfigDict(extra="forbid")
    face_ids: list[Id] = Field(min_length=1, max_length=10000)


class ForgetOut(Open):
    """Faces at or above the strict threshold for the person in the photo."""

    threshold: float
    candidates: list[Candidate]


class OptOutOut(Open):
    """An opt-out (never a face or image)."""

    id: int


class UserIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
    role: str = Field(pattern=r"^(admin|investigator|reviewer|auditor)$")
    collections: list[str] | None = Field(default=None, max_length=1000)


class UserOut(Open):
    """A user, their role, collections (``null``: all) and keys (ids only)."""

    name: str
    role: str
    active: bool
    collections: list[str] | None


class GrantIn(BaseModel):
    """A collection to grant a user."""

    model_config = ConfigDict(extra="forbid")
    collection: str = Field(min_length=1, max_length=200)


class MemberIn(BaseModel):
    """A user to add to a case (an investigator or a reviewer)."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class KeyOut(BaseModel):
    """A new API key: shown once, never stored."""

    key_id: str
    key: str


class VerificationOut(Open):
    """The audit chain's verification."""

    ok: bool
    records: int
    first_bad_seq: int | None
    problem: str | None


class ClusterRunIn(BaseModel):
    """Cluster the faces of some collections (all when none is named)."""

    model_config = ConfigDict(extra="forbid")
    collections: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)
    full: bool = Field(False, description="Cluster every face again from scratch (reviewers' corrections kept).")
    fmr: float | None = Field(None, gt=0, lt=1, description="Link two faces at this false-match rate (default 1.8e-6).")


class ClusterRunOut(BaseModel):
    """What a clustering run did."""

    pack: str
    collections: list[str]
    threshold: float
    fmr: float | None
    full: bool
    faces: int
    new_faces: int
    clusters: int
    elapsed_s: float


class ClusterOut(BaseModel):
    """A cluster: how many faces, how sure (weakest link, mean similarity, the mixed flag and why), whether a
    reviewer made or corrected it, and the subject it was named as."""

    id: int
    size: int
    weakest_link: float | None
    mean_similarity: float | None
    mixed: bool
    mixed_reason: str | None
    reviewed: bool
    subject: str | None
    face_ids: list[int] | None = None


class ClusterSplitIn(BaseModel):
    """Move these faces out into a cluster of their own (marked a different person)."""

    model_config = ConfigDict(extra="forbid")
    face_ids: list[Id] = Field(min_length=1, max_length=10_000)


class ClusterMergeIn(BaseModel):
    """Merge this cluster into another."""

    model_config = ConfigDict(extra="forbid")
    into: Id
    despite_apart: bool = False


class ClusterApartIn(BaseModel):
    """This cluster and ``other`` are not the same person."""

    model_config = ConfigDict(extra="forbid")
    other: Id


class ClusterNameIn(BaseModel):
    """Name the cluster: its faces are enrolled under this label."""

    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, Field(min_length=1, max_length=200, pattern=LABEL_PATTERN)]


class ReviewItemOut(BaseModel):
    """An item of the review queue: what it is about, why, and its decision once made."""

    id: int
    kind: str
    pack: str
    cluster_id: int | None
    face_a: int | None
    face_b: int | None
    similarity: float | None
    reason: str | None
    created_at: str
    decision: str | None
    note: str | None
    decided_by: str | None
    decided_at: str | None


class ReviewDecisionIn(BaseModel):
    """A decision on a review item."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["same", "different", "unsure"]
    note: Annotated[str, Field(max_length=2000)] | None = None
