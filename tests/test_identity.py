"""A run knows which classes it was trained on: evaluating or resuming it on another
dataset stops with one line naming the first class that differs."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir
from support import copy_run


def test_class_mismatch_names_the_first_differing_class(synth_index, real_index):
    assert synth_index.class_mismatch(synth_index.class_ids) is None
    diff = real_index.class_mismatch(synth_index.class_ids, synth_index.class_names)
    assert diff.startswith(f"class 1 is {real_index.class_label(0)} where the run has "
                           f"{synth_index.class_ids[0]} ({synth_index.class_names[0]})")
    fewer = synth_index.class_mismatch(synth_index.class_ids[:3])
    assert fewer.startswith(f"it has {synth_index.num_classes} classes where the run has 3")
    with pytest.raises(AugmineError, match="does not hold the classes runs/x was trained on"):
        real_index.check_classes(synth_index.class_ids, None, "runs/x", "use its dataset")


@pytest.mark.slow
def test_evaluate_and_resume_on_another_dataset_fail_in_one_line(trained_run, tmp_path,
                                                                 synth_index, real_root):
    run = copy_run(trained_run.run_dir, tmp_path)
    assert RunDir(run).read_state().class_ids == list(synth_index.class_ids)

    res = CliRunner().invoke(cli, ["evaluate", str(run), "--data", str(real_root)])
    assert res.exit_code == 1
    line = res.output.strip()
    assert "\n" not in line and "class 1 is " in line and synth_index.class_ids[0] in line
    assert f"`augmine evaluate {run}` without --data" in line

    # a killed run resumed with another dataset's --data: refused before any training
    state = RunDir(run).read_state()
    state.status = "running"
    RunDir(run).write_state(state)
    before = (run / "history.csv").read_text()
    res = CliRunner().invoke(cli, ["train", "--run-dir", str(run), "--resume", "--data",
                                   str(real_root), "--no-progress"])
    assert res.exit_code == 1 and "without --data" in res.output
    assert (run / "history.csv").read_text() == before

    # the run's recorded dataset now holds other classes: rounds and suspects refuse it
    raw = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**raw, "data": str(real_root)}))
    res = CliRunner().invoke(cli, ["mine", "suspects", str(run)])
    assert res.exit_code == 1 and "class 1 is " in res.output
    assert "restore the run's dataset" in res.output
