"""`augmine demo` end to end on a small generated dataset with a tiny budget (the session's
conftest.demo_run: `--config` support.DEMO; it also holds two bad files:
test_faults.py::test_demo_skip_bad), and the demo's default config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from augmine.cli import cli
from augmine.runs.rundir import REPORT_FILES
from augmine.core.runtime import keras_backend
from augmine.data.synth import confusable_pairs


@pytest.mark.slow
def test_demo_writes_every_report_and_finds_the_planted_pair(demo_run):
    result, out = demo_run.result, demo_run.out
    assert result.exit_code == 0, result.output
    for stage in ("phase-1", "phase-2", "phase-3", "round-1"):
        for name in REPORT_FILES:
            assert (out / "reports" / stage / name).is_file(), f"{stage}/{name} missing"
    assert (out / "inspection" / "inspection.json").is_file()
    assert (out / "checkpoints" / "last.keras").is_file()
    assert (out / "plans" / "round-1.json").is_file()

    # the summary a person reads, after training with the config given
    assert f"3/5 training demo-tiny at 16, 32 and 64 px ({demo_run.config})" in result.output
    for text in ("phase-1", "phase-3", "round-1", "against its control", "net of control",
                 "F1 before -> after (control)", "top confused pairs", f"augmine app {out}"):
        assert text in result.output, text

    # the generated set's planted confusable pair is among the top three confused pairs
    # (checked with the TensorFlow backend's seeded weights; JAX draws other ones, and one
    # demo-sized run there ranked the pair lower)
    planted = {frozenset(p) for p in confusable_pairs(demo_run.data)}
    report = json.loads((out / "reports" / "round-1" / "report.json").read_text())
    top3 = [frozenset((p["a_name"], p["b_name"])) for p in report["symmetric_pairs"][:3]]
    if keras_backend() == "tensorflow":
        assert planted & set(top3), (top3, planted)

    # running it again resumes nothing and reprints the summary
    again = CliRunner().invoke(cli, demo_run.args)
    assert again.exit_code == 0, again.output
    assert "mining round 1 already done" in again.output


def test_demo_config_is_cpu_small_unless_another_is_given(tmp_path):
    """Without --config the demo trains the built-in cpu-small config (--epochs and
    --round-epochs override its budget); --config takes a file or a built-in name."""
    import yaml

    from augmine.core.runtime import recipes_dir
    from augmine.experiments.demo import demo_config
    from augmine.runs.config import load_config
    from support import DEMO

    small = load_config(recipes_dir() / "cpu-small.yaml")
    default = demo_config()
    assert default.to_dict() == small.to_dict() and default.name == "cpu-small"
    assert [p.size for p in default.phases] == [16, 32, 64]
    cut = demo_config(epochs=1, round_epochs=1)
    assert [p.epochs for p in cut.phases] == [1, 1, 1] and cut.mining.epochs == 1
    assert cut.model == small.model and [p.recipe for p in cut.phases] == \
        [p.recipe for p in small.phases]
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(DEMO))
    own = demo_config(round_epochs=3, config=path)
    assert own.name == "demo-tiny" and own.mining.epochs == 3
    assert [p.recipe for p in own.phases] == [str(recipes_dir() / n) for n in
                                              ("light.yaml", "light.yaml", "tiny-imagenet-14.yaml")]
    assert demo_config(config="cpu-small").to_dict() == small.to_dict()


def test_the_demos_closing_commands_run_as_printed_outside_an_activated_environment(
        tmp_path, monkeypatch):
    """`open the app: ...` and Ctrl-C's `continue with: ...` with this installation's
    augmine off PATH (a venv that is not activated) start with its script's path, which
    runs; with it on PATH they start with plain `augmine`."""
    import os
    import shlex
    import subprocess

    from augmine.cli import continue_command
    from augmine.experiments.demo import DemoSummary, format_summary
    from support import augmine_command, subprocess_env

    script = augmine_command()[0]
    if Path(script).name != "augmine":
        pytest.skip("no augmine console script beside this interpreter")
    bare = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p, "augmine") != Path(script))
    monkeypatch.setenv("PATH", bare)
    run, data = tmp_path / "runs dir" / "demo", tmp_path / "data"
    hint = format_summary(DemoSummary(data=data, run_dir=run, inspection_dir=tmp_path))[-1]
    assert hint.startswith("open the app: ")
    argv = shlex.split(hint.removeprefix("open the app: "))
    assert argv == [script, "app", str(run), "--data", str(data)]
    assert continue_command(["demo", "--out", str(run)]) == shlex.join([script, "demo", "--out",
                                                                      str(run)])
    help_text = subprocess.run([argv[0], "app", "--help"], capture_output=True, text=True,
                               env={**subprocess_env(), "PATH": bare}, timeout=120)
    assert help_text.returncode == 0 and "Usage: augmine app" in help_text.stdout

    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(script).parent), bare]))
    hint = format_summary(DemoSummary(data=data, run_dir=run, inspection_dir=tmp_path))[-1]
    assert shlex.split(hint.removeprefix("open the app: "))[0] == "augmine"


def _shape(line: str) -> str:
    """A printed line with its numbers, paths and runs of spaces masked: what stays is the
    wording and the order of its parts."""
    import re

    line = re.sub(r"\S*/\S*", "PATH", line)
    line = re.sub(r"[+-]?\d+(\.\d+)?%?", "#", line)
    return " ".join(line.split())


@pytest.mark.slow
def test_the_readmes_demo_printout_is_what_the_demo_prints(demo_run):
    """The README quotes the end of the demo's printout. Its effect table (header and the
    four rows), its title, where the classes were chosen and measured, and where the run
    folder is are lines the demo prints today, with numbers and paths masked (the README's
    numbers are one machine's; the test's demo is a smaller one)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"The end of its printout[^\n]*\n[^\n]*\n\n```\n(.*?)```", readme, re.S)
    assert block, "the README quotes the demo's printout after 'The end of its printout'"
    quoted = [ln for ln in block.group(1).splitlines() if ln.strip() and ln.strip() != "..."]
    printed = [_shape(ln) for ln in demo_run.result.output.splitlines()]
    fixed = ("mining round", "chosen on", "before", "chosen F1", "other F1", "top-1",
             "macro F1", "run folder:")
    checked = [ln for ln in quoted if ln.strip().startswith(fixed)]
    assert len(checked) >= 8, checked
    at = 0
    for line in checked:
        assert _shape(line) in printed[at:], (line, demo_run.result.output)
        at = printed.index(_shape(line), at) + 1
