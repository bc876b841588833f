"""`facesearch eval identify|verify` on a small real slice of lfw-dev: reports, plots, groups, quality."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import LFW, require_shared
from tests.test_cli import cli

PEOPLE = 30


def test_eval_identify_reports_every_figure_by_group_with_distractors_and_plots(tmp_path: Path) -> None:
    images = require_shared(LFW)
    people = sorted(p.name for p in images.iterdir() if p.is_dir())
    groups = tmp_path / "groups.csv"
    groups.write_text("person,group\n" + "".join(f"{p},{'AB'[i % 2]}\n" for i, p in enumerate(people[:PEOPLE])))
    distractors = tmp_path / "strangers"
    for person in people[PEOPLE : PEOPLE + 8]:
        photo = sorted((images / person).glob("*.jpg"))[0]
        (distractors / person).mkdir(parents=True)
        os.symlink(photo, distractors / person / photo.name)
    out = tmp_path / "report"
    code, output = cli(
        tmp_path / "home",
        "eval",
        "identify",
        "--images",
        str(images),
        "--limit-people",
        str(PEOPLE),
        "--distractors",
        str(distractors),
        "--attributes",
        str(groups),
        "--out",
        str(out),
        "--workers",
        "1",
        "--json",
    )
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    metrics = report["metrics"]
    assert 0.9 <= metrics["rank1"] <= 1.0  # dlib finds all 36 mates of the first 30 people
    assert len(metrics["cmc"]) == 20 and metrics["cmc"] == sorted(metrics["cmc"])
    assert [p["fpir"] for p in metrics["fnir_at_fpir"]] == [0.1, 0.01, 0.001]
    assert report["counts"]["distractor_faces"] >= 7
    assert set(report["by_group"]) == {"A", "B"}
    assert sum(g["mated"] for g in report["by_group"].values()) == metrics["mated"]
    fairness = report["fairness"]
    assert fairness["threshold"] == 0.93  # dlib@2's FMR 1e-3 point
    within = fairness["false_match"]["within"]
    # One face per person: 15 people a group, so 105 impostor pairs within each.
    assert {g: w["n"] for g, w in within.items()} == {"A": 105, "B": 105}
    assert fairness["false_match"]["between"]["A|B"]["n"] == 225
    identification = fairness["identification"]
    assert sum(i["fnir"]["n"] for i in identification.values()) == metrics["mated"]
    assert sum(i["fpir"]["n"] for i in identification.values()) == metrics["nonmated"]
    aside = report["quality_set_aside"]
    assert aside["set_aside"]["mated"] + aside["kept"]["mated"] == metrics["mated"]
    assert json.loads((out / "identify-dlib-2.json").read_text()) == report
    assert (out / "identify-dlib-2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The user's data folder was not touched: evaluation works in a scratch folder of its own.
    assert not (tmp_path / "home" / "catalog.sqlite3").exists()


def test_eval_verify_reports_tenfold_accuracy_tar_at_far_and_plots(tmp_path: Path) -> None:
    images = require_shared(LFW)
    out = tmp_path / "report"
    code, output = cli(
        tmp_path / "home",
        "eval",
        "verify",
        "--pairs",
        str(images.parent / "pairs.tsv"),
        "--images",
        str(images),
        "--limit-people",
        "60",
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert code == 0, output
    report = json.loads((out / "verify-dlib-2.json").read_text())
    assert 0.8 < report["verification"]["accuracy_mean"] <= 1.0
    assert [p["far"] for p in report["tar_at_far"]] == [0.01, 0.001, 0.0001]
    assert len(report["roc"]["far"]) == len(report["roc"]["tar"]) > 2
    assert "10-fold accuracy" in output and (out / "verify-dlib-2.png").stat().st_size > 10_000
