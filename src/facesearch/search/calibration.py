"""Calibrated scores: what a similarity means, as a per-comparison false-match rate (FMR).

A :class:`Calibration` summarises the sorted similarities of many impostor pairs (two different people) of one
pack as a monotone table: similarity -> the share of impostor pairs at or above it, with a 95% Wilson
confidence interval on that count. ``fmr(similarity)`` interpolates the table in log space; beyond the highest
impostor score seen it answers the floor ``1 / n_pairs`` and flags it as a bound (``<``).
``threshold_for(fmr)`` is the inverse.

Calibrations are stored with the pack they describe, keyed by the pack's ``name@version``: shipped in the
package for the built-in packs (``search/calibrations/<name>@<version>.json``), and built by users with
``facesearch calibrate`` into ``<home>/calibrations/``, which override the shipped ones.

Calibrations are built by :mod:`facesearch.eval.calibrate`, from one photo per person of a labelled
``<Person>/<photo>`` folder (the photo's prominent face, as the evaluation code enrols it), every cross-person
pair an impostor pair; this module only reads them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
CALIBRATIONS_FOLDER = "calibrations"
SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"
DEFAULT_VERIFY_FMR = 1e-3
_Z95 = 1.959963984540054


def wilson_interval(count: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion ``count / n`` (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = count / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if count == 0 else max(0.0, centre - half)
    return low, 1.0 if count == n else min(1.0, centre + half)


@dataclass(frozen=True)
class FmrEstimate:
    """The FMR at one similarity, its 95% interval, and whether it is only a bound (beyond the data)."""

    fmr: float
    low: float
    high: float
    beyond_data: bool

    def __str__(self) -> str:
        return f"<{self.fmr:.2g}" if self.beyond_data else f"{self.fmr:.2g}"


def _count_grid(n_pairs: int, per_decade: int = 24) -> np.ndarray:
    """Impostor counts at which the table has a point: every count to 20, then ``per_decade`` per decade."""
    small = np.arange(1, min(20, n_pairs) + 1)
    if n_pairs <= 20:
        return small
    decades = math.log10(n_pairs / 20)
    large = np.unique(np.round(20 * 10 ** np.linspace(0, decades, max(2, int(decades * per_decade) + 1))))
    return np.unique(np.concatenate([small, large.astype(np.int64), [n_pairs]]))


@dataclass
class Calibration:
    """Similarity -> per-comparison FMR for one pack, from ``n_pairs`` impostor pairs.

    ``similarities`` rise strictly; ``counts[i]`` impostor pairs scored at or above ``similarities[i]``
    (so ``fmr = counts / n_pairs`` falls strictly); ``fmr_low`` / ``fmr_high`` are its 95% Wilson interval.
    """

    pack: str
    similarities: list[float]
    counts: list[int]
    n_pairs: int
    source: str = ""
    version: int = FORMAT_VERSION
    created: str = ""
    people: int | None = None
    fmr_low: list[float] = field(default_factory=list)
    fmr_high: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.similarities) != len(self.counts) or not self.similarities:
            raise ValueError("a calibration needs as many counts as similarities, and at least one")
        if self.n_pairs <= 0:
            raise ValueError("a calibration needs impostor pairs")
        if not self.fmr_low or not self.fmr_high:
            bounds = [wilson_interval(int(c), self.n_pairs) for c in self.counts]
            self.fmr_low = [lo for lo, _ in bounds]
            self.fmr_high = [hi for _, hi in bounds]
        self._s = np.asarray(self.similarities, dtype=np.float64)
        self._log_fmr = np.log(np.asarray(self.counts, dtype=np.float64) / self.n_pairs)

    # Construction ----------------------------------------------------------------------------------------

    @classmethod
    def from_scores(
        cls, pack: str, impostor_scores: np.ndarray, *, source: str = "", people: int | None = None
    ) -> Calibration:
        """Summarise impostor similarities (any order) as a calibration table."""
        scores = np.sort(np.asarray(impostor_scores, dtype=np.float64).ravel())  # ascending
        n = int(scores.size)
        if n == 0:
            raise ValueError("no impostor pairs to calibrate on")
        sims: list[float] = []
        counts: list[int] = []
        for k in _count_grid(n)[::-1]:  # from the most pairs (lowest similarity) to the fewest
            s = math.floor(float(scores[n - int(k)]) * 1e6) / 1e6  # rounded down: at least k pairs at or above
            count = n - int(np.searchsorted(scores, s, side="left"))  # pairs at or above s (ties included)
            if sims and s <= sims[-1]:
                continue
            sims.append(s)
            counts.append(count)
        return cls(
            pack=pack,
            similarities=sims,
            counts=counts,
            n_pairs=n,
            source=source,
            created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            people=people,
        )

    # Queries ---------------------------------------------------------------------------------------------

    @property
    def floor(self) -> float:
        """The smallest FMR this calibration can tell apart from zero: one pair in ``n_pairs``."""
        return 1.0 / self.n_pairs

    def estimate(self, similarity: float) -> FmrEstimate:
        """The FMR at ``similarity`` with its interval; beyond the highest impostor score, a bound."""
        s = float(similarity)
        if s > self._s[-1]:
            _low, high = wilson_interval(0, self.n_pairs)
            return FmrEstimate(self.floor, 0.0, high, True)
        if s <= self._s[0]:
            i = 0
            return FmrEstimate(float(math.exp(self._log_fmr[i])), self.fmr_low[i], self.fmr_high[i], False)
        fmr = float(np.exp(np.interp(s, self._s, self._log_fmr)))
        low = float(np.exp(np.interp(s, self._s, np.log(np.maximum(self.fmr_low, 1e-300)))))
        high = float(np.exp(np.interp(s, self._s, np.log(self.fmr_high))))
        return FmrEstimate(max(fmr, self.floor), low, high, False)

    def fmr(self, similarity: float) -> float:
        """Per-comparison FMR at ``similarity`` (interpolated in log space, floored at ``1 / n_pairs``)."""
        return self.estimate(similarity).fmr

    def threshold_for(self, fmr: float) -> float:
        """The similarity at which the FMR is ``fmr`` (decide "same person" at or above it).

        Below the floor ``1 / n_pairs`` the answer is just above the highest impostor score seen.
        """
        if not 0.0 < fmr <= 1.0:
            raise ValueError("fmr must be in (0, 1]")
        target = math.log(fmr)
        if target >= self._log_fmr[0]:
            return float(self._s[0])
        if target < self._log_fmr[-1]:
            return float(np.nextafter(self._s[-1], np.inf))
        # _log_fmr falls as _s rises: interpolate on the reversed arrays.
        return float(np.interp(target, self._log_fmr[::-1], self._s[::-1]))

    # Storage ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fmr"] = [c / self.n_pairs for c in self.counts]
        return data

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(target.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, target)
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if int(data.get("version", 0)) != FORMAT_VERSION:
            raise ValueError(f"unsupported calibration format version {data.get('version')!r}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def calibration_filename(pack_key: str) -> str:
    """``<pack-name>@<version>.json`` (characters unsafe in a file name replaced)."""
    return "".join(ch if ch.isalnum() or ch in "@._+-" else "_" for ch in pack_key) + ".json"


def user_calibration_path(home: str | os.PathLike[str], pack_key: str) -> Path:
    """Where ``facesearch calibrate`` stores a pack's calibration in a data folder."""
    return Path(home) / CALIBRATIONS_FOLDER / calibration_filename(pack_key)


def find_calibration(pack_key: str, home: str | os.PathLike[str] | None = None) -> Calibration | None:
    """The calibration of a pack: the data folder's own if there is one, else the shipped one, else ``None``."""
    candidates = [user_calibration_path(home, pack_key)] if home is not None else []
    candidates.append(SHIPPED_DIR / calibration_filename(pack_key))
    for path in candidates:
        if path.is_file():
            calibration = Calibration.load(path)
            if calibration.pack == pack_key:
                return calibration
    return None
