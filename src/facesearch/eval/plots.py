"""PNG plots of evaluation reports: ROC and DET for verification, DET and CMC for identification."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure(columns: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(5.5 * columns, 4.5))


def plot_verification(report: dict[str, Any], png: Path) -> Path:
    """ROC (TAR against FAR) and DET (FNMR against FMR, log-log) of a :func:`run_verification` report."""
    import matplotlib.pyplot as plt

    roc = report["roc"]
    far = [f for f, t in zip(roc["far"], roc["tar"], strict=True) if f > 0]
    tar = [t for f, t in zip(roc["far"], roc["tar"], strict=True) if f > 0]
    figure, (left, right) = _figure(2)
    left.semilogx(far, tar, color="tab:blue")
    left.set(xlabel="false accept rate (FAR)", ylabel="true accept rate (TAR)", title=f"ROC, {report['pack']}")
    left.grid(True, which="both", alpha=0.3)
    fnmr = [max(1.0 - t, 1e-4) for t in tar]
    right.loglog(far, fnmr, color="tab:red")
    right.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title="DET")
    right.grid(True, which="both", alpha=0.3)
    accuracy = report["verification"]["accuracy_mean"]
    figure.suptitle(f"10-fold accuracy {100 * accuracy:.2f}% on {report['counts']['pairs']} pairs")
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png


def plot_identification(report: dict[str, Any], png: Path) -> Path:
    """DET (FNIR against FPIR, log-log) and CMC of a :func:`run_identification` report."""
    import matplotlib.pyplot as plt

    metrics = report["metrics"]
    det = metrics["det"]
    figure, (left, right) = _figure(2)
    points = [(p, n) for p, n in zip(det["fpir"], det["fnir"], strict=True) if p > 0]
    if points:
        left.loglog([p for p, _ in points], [max(n, 1e-4) for _, n in points], color="tab:red", label="all probes")
    kept = report.get("quality_set_aside", {}).get("kept", {})
    if kept.get("fnir_at_fpir"):
        good = [(p["achieved_fpir"], p["fnir"]) for p in kept["fnir_at_fpir"] if p["achieved_fpir"] > 0]
        left.loglog(
            [p for p, _ in good], [max(n, 1e-4) for _, n in good], "o", color="tab:green", label="good-quality probes"
        )
    left.set(xlabel="false positive identification rate (FPIR)", ylabel="FNIR", title=f"DET, {report['pack']}")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    cmc = metrics["cmc"]
    right.plot(range(1, len(cmc) + 1), [100 * v for v in cmc], marker=".", color="tab:blue")
    right.set(xlabel="rank", ylabel="mated probes found (%)", title="CMC")
    right.grid(True, alpha=0.3)
    figure.suptitle(
        f"rank-1 {100 * metrics['rank1']:.2f}%, {metrics['mated']} mated and {metrics['nonmated']} non-mated probes"
    )
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png
