"""Ctrl-C ends with the exact command that continues the interrupted work."""

from __future__ import annotations

from click.testing import CliRunner

import augmine.train.phases
from augmine.cli import cli, continue_command


def test_continue_command_for_each_resumable_command(augmine_on_path):
    assert continue_command(["train", "cpu-small", "--data", "d", "--run-dir", "runs/a b",
                             "--no-progress"]) == \
        "augmine train --run-dir 'runs/a b' --resume --no-progress"
    assert continue_command(["train", "--run-dir=runs/x", "--resume"]) == \
        "augmine train --run-dir=runs/x --resume"
    assert continue_command(["mine", "round", "runs/x", "--mode", "pairs"]) == \
        "augmine mine round runs/x --mode pairs"
    assert continue_command(["recipe", "compare", "none", "light", "--data", "d",
                             "--config", "c"]).startswith("augmine recipe compare none light")
    assert continue_command(["evaluate", "runs/x"]) is None
    assert continue_command(["recipe", "show", "light"]) is None


def test_ctrl_c_during_train_prints_the_resume_command(monkeypatch, tmp_path, synth_root,
                                                     augmine_on_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(augmine.train.phases, "train_run", interrupted)
    monkeypatch.setattr("sys.argv", ["augmine", "train", "cpu-small", "--data",
                                     str(synth_root), "--run-dir", str(tmp_path / "run")])
    res = CliRunner().invoke(cli, ["train", "cpu-small", "--data", str(synth_root),
                                   "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 130
    assert f"continue with: augmine train --run-dir {tmp_path / 'run'} --resume" in res.output
    assert "Aborted" not in res.output

