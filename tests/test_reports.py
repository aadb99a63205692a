"""Stage reports: every file written, readable back, ordered, and the history across stages."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from augmine.core.errors import AugmineError
from augmine.analysis.plans import OversamplingPlan
from augmine.analysis.reports import (draw_report_plots, history, list_stage_reports,
                                      load_predictions, load_stage_report, write_stage_report)
from augmine.runs.rundir import REPORT_FILES, REPORT_PLOTS

IDS = ["n1", "n2", "n3", "n4"]
NAMES = ["Chihuahua", "teddy bear", "lemon", "orange"]


def fake_probs(y_true, y_pred, num=4, conf=0.7):
    """(N, C) probabilities whose argmax is ``y_pred``."""
    probs = np.full((len(y_true), num), (1 - conf) / (num - 1), np.float32)
    probs[np.arange(len(y_true)), y_pred] = conf
    return probs


def predictions(chi_to_teddy: int):
    """10 val images per class; ``chi_to_teddy`` Chihuahuas predicted as teddy bear, one lemon as orange."""
    y_true = np.repeat(np.arange(4), 10)
    y_pred = y_true.copy()
    y_pred[:chi_to_teddy] = 1
    y_pred[20] = 3
    return y_true, y_pred


def test_write_stage_report_writes_every_file(tmp_path):
    y_true, y_pred = predictions(4)
    paths = [f"/data/val_{i}.JPEG" for i in range(len(y_true))]
    rep = write_stage_report(tmp_path, "phase-1", y_true, fake_probs(y_true, y_pred), IDS, NAMES,
                             meta={"kind": "phase", "size": 16, "epochs_done": 3},
                             val_paths=paths)
    out = tmp_path / "reports" / "phase-1"
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)   # no temp files left
    assert rep == load_stage_report(tmp_path, "phase-1")
    assert (rep["stage"], rep["kind"], rep["size"]) == ("phase-1", "phase", 16)
    assert rep["accuracy"] == pytest.approx(35 / 40)
    assert rep["weakest"][0] == "Chihuahua"          # recall 0.6
    top = rep["confused_pairs"][0]
    assert (top["true_name"], top["pred_name"], top["count"], top["rate"]) == (
        "Chihuahua", "teddy bear", 4, 0.4)
    assert rep["symmetric_pairs"][0]["count"] == 4 and rep["plan"] is None
    assert np.load(out / "confusion.npy")[0, 1] == 4
    with open(out / "per_class.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "Chihuahua" and float(rows[0]["recall"]) == 0.6
    md = (out / "report.md").read_text()
    assert "Chihuahua -> teddy bear: 40% of Chihuahua val images (4)" in md
    assert "accuracy: 87.5%" in md
    pred = load_predictions(tmp_path, "phase-1")
    assert pred["probs"].shape == (40, 4) and pred["probs"].dtype == np.float32
    assert pred["val_paths"][3] == "/data/val_3.JPEG" and pred["y_true"].tolist() == y_true.tolist()
    # no plots while training; report.md names the command that draws them, links none yet
    assert "![" not in md and f"analyze {tmp_path.resolve()} --stage phase-1` draws them" in md


def test_plots_are_drawn_when_asked_for_and_then_shown_in_report_md(tmp_path):
    y_true, y_pred = predictions(4)
    write_stage_report(tmp_path, "phase-1", y_true, fake_probs(y_true, y_pred), IDS, NAMES,
                       meta={"kind": "phase", "size": 16})
    out = tmp_path / "reports" / "phase-1"
    paths = draw_report_plots(tmp_path, "phase-1")
    assert [p.name for p in paths] == list(REPORT_PLOTS)
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES + REPORT_PLOTS)
    for png in paths:
        assert png.read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "![per-class F1](f1.png)" in md and "](confusion.png)" in md and "draws them" not in md
    drawn = [p.stat().st_mtime_ns for p in paths]
    assert draw_report_plots(tmp_path, "phase-1") == paths           # kept: not drawn again
    assert [p.stat().st_mtime_ns for p in paths] == drawn


def test_round_report_compares_before_and_after(tmp_path):
    y_true, y_pred = predictions(4)
    before = write_stage_report(tmp_path, "phase-1", y_true, fake_probs(y_true, y_pred), IDS,
                                NAMES, meta={"kind": "phase", "size": 16})
    plan = OversamplingPlan(np.array([3.0, 1, 1, 1]), [0], IDS, NAMES, policy={"policy": "bottom-k"})
    y_true, y_pred = predictions(1)
    rep = write_stage_report(tmp_path, "round-1", y_true, fake_probs(y_true, y_pred), IDS, NAMES,
                             meta={"kind": "round", "mode": "oversample"}, plan=plan,
                             before=before)
    ch, = rep["changes"]
    assert ch["name"] == "Chihuahua"
    assert ch["before"] == pytest.approx(0.75) and ch["after"] == pytest.approx(18 / 19)
    assert rep["before"]["accuracy"] == pytest.approx(35 / 40)
    assert rep["after"]["accuracy"] == pytest.approx(38 / 40)
    assert OversamplingPlan.from_dict(rep["plan"]).factors.tolist() == [3, 1, 1, 1]
    md = (tmp_path / "reports" / "round-1" / "report.md").read_text()
    assert "| F1 Chihuahua | 0.750 | 0.947 | +0.197 |" in md
    assert "| accuracy | 87.5% | 95.0% | +7.5 pt |" in md
    assert "Chihuahua: x3.00" in md


def test_list_history_and_missing_stage(tmp_path):
    assert list_stage_reports(tmp_path) == []
    with pytest.raises(AugmineError, match="no stage report"):
        history(tmp_path)
    plan = OversamplingPlan(np.array([2.0, 1, 1, 1]), [0], IDS, NAMES)
    for stage, n in (("round-1", 2), ("phase-10", 3), ("phase-2", 4)):
        y_true, y_pred = predictions(n)
        write_stage_report(tmp_path, stage, y_true, fake_probs(y_true, y_pred), IDS, NAMES,
                           plan=plan if stage.startswith("round") else None)
    (tmp_path / "reports" / "round-2").mkdir()   # interrupted: no report.json -> not listed
    assert [r["stage"] for r in list_stage_reports(tmp_path)] == ["phase-2", "phase-10", "round-1"]
    h = history(tmp_path)
    assert h["classes"] == ["Chihuahua"]          # chosen by the round's plan
    assert [r["f1"]["Chihuahua"] for r in h["rows"]] == pytest.approx([0.75, 0.8235294, 0.8888889])
    assert history(tmp_path, ["n4", "lemon"])["classes"] == ["orange", "lemon"]
    with pytest.raises(AugmineError, match="did you mean 'lemon'"):
        history(tmp_path, ["lemno"])
    with pytest.raises(AugmineError, match="known stages: phase-2, phase-10, round-1"):
        load_stage_report(tmp_path, "phase-1")


def test_bad_probs_shape_is_one_line_error(tmp_path):
    with pytest.raises(AugmineError, match=r"expected \(3, 4\)"):
        write_stage_report(tmp_path, "phase-1", [0, 1, 2], np.zeros((3, 3)), IDS, NAMES)


def test_report_json_is_plain_json(tmp_path):
    y_true, y_pred = predictions(2)
    write_stage_report(tmp_path, "phase-1", y_true, fake_probs(y_true, y_pred), IDS, NAMES,
                       meta={"size": np.int64(32)})
    d = json.loads((tmp_path / "reports" / "phase-1" / "report.json").read_text())
    assert d["size"] == 32 and d["top5_accuracy"] == 1.0
