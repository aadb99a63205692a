"""One meaning of "best": train's summary, `evaluate RUN` and the checkpoint it names agree."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from augmine.cli import cli
from augmine.runs.factories import best_summary
from support import copy_run


@pytest.mark.slow
@pytest.mark.backend
def test_train_summary_evaluate_and_the_named_checkpoint_agree(trained_run, tmp_path):
    run = copy_run(trained_run.run_dir, tmp_path)         # 16, 32 and 64 px, one epoch each
    res = CliRunner().invoke(cli, ["train", "--run-dir", str(run), "--resume",
                                   "--no-progress"])      # a done run: reprints the summary
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("best val"))
    pct, epoch, size, ckpt = re.match(r"best val +([\d.]+)% at epoch (\d+) \((\d+) px\): (\S+),",
                                      line).groups()
    assert (int(epoch), int(size)) == (3, 64) and ckpt.endswith("best-64px.keras")
    assert f"`augmine evaluate {run}` scores" in line
    best = best_summary(run)
    if best["overall"] is not None:            # the best epoch overall was a smaller one
        assert best["overall"]["size"] in (16, 32) and "at its own size" in res.output
    for target in (str(run), ckpt):
        ev = CliRunner().invoke(cli, ["evaluate", target])
        assert ev.exit_code == 0, ev.output
        assert f"checkpoint  {ckpt}" in ev.output
        top1 = float(re.search(r"top-1 +([\d.]+)%", ev.output).group(1))
        assert top1 == pytest.approx(float(pct), abs=0.01)


@pytest.mark.slow
def test_the_app_names_the_same_best_checkpoint(trained_run, synth_root):
    from test_app_pages import app_test, no_exception, texts

    best = best_summary(trained_run.run_dir)
    at = app_test(data=synth_root, run=trained_run.run_dir, page="Confusion explorer")
    no_exception(at)
    caption = next(c for c in texts(at).splitlines() if c.startswith("Best checkpoint: "))
    assert f"best-{best['size']}px.keras, epoch {best['epoch']} at {best['size']} px, " \
           f"val top-1 {best['val_accuracy']:.2%}" in caption
