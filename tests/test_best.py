"""One meaning of "best": train's summary, `evaluate RUN` and the checkpoint it names agree."""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from augmine.cli import cli
from augmine.evaluation import best_summary

TWO_SIZES = {"name": "tiny2", "model": {"width": 8, "growth_rate": 4}, "batch_size": 32,
             "schedule": {"min_lr": 0.01, "max_lr": 0.1, "half_cycle": 20}, "seed": 0,
             "workers": 0, "mixed_precision": "false", "strategy": "default",
             "phases": [{"size": 16, "epochs": 2, "recipe": "none"},
                        {"size": 32, "epochs": 1, "recipe": "none"}]}


@pytest.mark.slow
def test_train_summary_evaluate_and_the_named_checkpoint_agree(tmp_path, synth_root):
    config = tmp_path / "tiny2.yaml"
    config.write_text(yaml.safe_dump(TWO_SIZES, sort_keys=False))
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(config), "--data", str(synth_root),
                                   "--run-dir", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("best val"))
    pct, epoch, size, ckpt = re.match(r"best val +([\d.]+)% at epoch (\d+) \((\d+) px\): (\S+),",
                                      line).groups()
    assert (int(epoch), int(size)) == (3, 32) and ckpt.endswith("best-32px.keras")
    assert f"`augmine evaluate {run}` scores" in line
    best = best_summary(run)
    if best["overall"] is not None:            # the best epoch overall was a 16 px one
        assert best["overall"]["size"] == 16 and "at its own size" in res.output
    for target in (str(run), ckpt):
        ev = CliRunner().invoke(cli, ["evaluate", target])
        assert ev.exit_code == 0, ev.output
        assert f"checkpoint  {ckpt}" in ev.output
        top1 = float(re.search(r"top-1 +([\d.]+)%", ev.output).group(1))
        assert top1 == pytest.approx(float(pct), abs=0.01)
