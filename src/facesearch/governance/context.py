"""Who is searching, for which purpose and which case: the context every audited action carries."""

from __future__ import annotations

import getpass
import re
from collections.abc import Sequence
from dataclasses import dataclass

from facesearch.config import UNSPECIFIED_PURPOSE
from facesearch.errors import ContextError

CASE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,199}$")
"""What a ``case_id`` may look like: a reference, not free text (it is stored in every audit record)."""


@dataclass(frozen=True)
class ActionContext:
    """Who acts (``actor``), for which purpose and case; recorded with every search, verify and erasure."""

    actor: str
    purpose: str | None = None
    case_ref: str | None = None


def local_actor(identity: str | None = None) -> str:
    """Who CLI and Python API calls are recorded as: the configured identity, else ``local:<OS user>``."""
    if identity:
        return identity
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): still attributable to this machine
        user = "unknown"
    return f"local:{user}"


def check_purpose(purpose: str | None, allowed: Sequence[str], *, required: bool) -> str:
    """The purpose to record: one of ``allowed``, or (when not required and none is given) ``unspecified``."""
    if purpose is None or not purpose.strip():
        if required:
            raise ContextError(f"a purpose is required, one of: {', '.join(allowed)}")
        return UNSPECIFIED_PURPOSE
    purpose = purpose.strip()
    if purpose not in allowed:
        raise ContextError(f"purpose {purpose!r} is not allowed; configured purposes: {', '.join(allowed)}")
    return purpose


def check_case(case_ref: str | None, *, required: bool) -> str | None:
    """The case reference to record (``None`` only when not required and none is given)."""
    if case_ref is None or not case_ref.strip():
        if required:
            raise ContextError("a case_id is required")
        return None
    case_ref = case_ref.strip()
    if not CASE_PATTERN.match(case_ref):
        raise ContextError("case_id must be 1-200 letters, digits or . _ : # - (starting with a letter or digit)")
    return case_ref
