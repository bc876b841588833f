"""What a score means, in words a caseworker reads: a candidate is a lead, and its score says how often a
stranger would score as high in a gallery of this size."""

from __future__ import annotations

from datetime import UTC, datetime

from facesearch.web.i18n import Language


def number(value: float) -> str:
    """A count for people: 1,234 (thousands separated, no decimals)."""
    return f"{round(value):,}"


def when(value: str | None) -> str:
    """An ISO 8601 time as people read it: "2026-12-01 20:50:52 UTC" (as given when it is not one)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def rate(fmr: float | None) -> str:
    """A false-match rate as "1 in N" (or "—" without a calibration)."""
    if fmr is None or fmr <= 0:
        return "—"
    return f"1 in {number(1 / fmr)}" if fmr < 0.5 else f"{fmr:.2f}"


def strangers(language: Language, expected: float | None, beyond_data: bool | None = None) -> str:
    """Expected false matches at a candidate's score, for the gallery searched, in plain words."""
    _ = language.gettext
    if expected is None:
        return _("This pack has no calibration: the score has no stated meaning. Treat it as a weak lead.")
    if expected >= 1.5:
        return _(
            "About %(n)s strangers in a gallery this size score this high: as likely chance as the same person.",
            n=number(expected),
        )
    if expected >= 0.5:
        return _("About 1 stranger in a gallery this size scores this high.")
    galleries = number(1 / max(expected, 1e-12))
    if beyond_data:
        return _("Fewer than 1 stranger in %(n)s galleries this size would score this high.", n=galleries)
    return _("About 1 stranger in %(n)s galleries this size would score this high.", n=galleries)


def verdict(language: Language, same: bool | None, decision_fmr: float | None) -> str:
    """What a verification's decision means at the false-match rate it was made at."""
    _ = language.gettext
    if same is None:
        return _("No decision: a face is missing from one of the photos.")
    at = rate(decision_fmr) if decision_fmr else None
    if same:
        if at:
            return _(
                "Likely the same person. At this setting about %(rate)s pairs of different people are called the "
                "same: a person must still check.",
                rate=at,
            )
        return _("Likely the same person (the pack's own threshold): a person must still check.")
    return _("Not the same person at this setting. A different setting, or better photos, may decide otherwise.")
