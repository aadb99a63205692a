"""``augmine recipe compare``: arms, paired bootstrap, the table, resume and reprint."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from support import ONE_PHASE, write_config

from augmine.cli import cli
from augmine.experiments.compare import parse_strengths, plan_arms, run_comparison
from augmine.experiments.compare_results import format_comparison, score_comparison
from augmine.core.errors import AugmineError
from augmine.analysis.effects import mean_intervals
from augmine.runs.rundir import RunDir

# --------------------------------------------------------------------------- bootstrap

def test_paired_bootstrap_intervals_and_differences():
    rng = np.random.default_rng(0)
    a = (rng.random(400) < 0.5).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:40]] = 1            # b is right on 40 more images (+10 points)
    out = mean_intervals(np.stack([a, a, b]), reps=500, seed=1)
    assert out["mean"][0] == pytest.approx(a.mean())
    assert out["low"][0] < a.mean() < out["high"][0]
    assert 0.05 < out["high"][0] - out["low"][0] < 0.15     # ~ +-1.96 * sqrt(.25 / 400)
    assert out["diff_low"][1] == out["diff_high"][1] == 0   # same arm: no difference at all
    assert out["diff"][2] == pytest.approx(0.1)
    # paired: b >= a on every image, so no resample can show b behind a
    assert 0 < out["diff_low"][2] <= 0.1 <= out["diff_high"][2]
    again = mean_intervals(np.stack([a, a, b]), reps=500, seed=1)
    np.testing.assert_array_equal(out["low"], again["low"])
    with pytest.raises(AugmineError, match="bootstrap"):
        mean_intervals(np.zeros((2, 0)))


def test_arms_per_recipe_and_strength():
    arms = plan_arms(["none", "light"], parse_strengths("0,0.5,1"))
    assert [a.name for a in arms] == ["none", "light-s0", "light-s0.5", "light-s1"]
    assert [a.strength for a in arms] == [None, 0.0, 0.5, 1.0]
    assert [a.name for a in plan_arms(["none", "light"])] == ["none", "light"]
    with pytest.raises(AugmineError, match="named twice"):
        plan_arms(["light", "light.yaml"])
    # RECIPE@S: each recipe at its own strength, beside a sweep of the others
    arms = plan_arms(["none", "tiny-imagenet-14@0.5", "light"], parse_strengths("1"))
    assert [(a.name, a.strength) for a in arms] == [
        ("none", None), ("tiny-imagenet-14-s0.5", 0.5), ("light-s1", 1.0)]
    with pytest.raises(AugmineError, match="not a number"):
        plan_arms(["light@strong"])
    with pytest.raises(AugmineError, match="not a number"):
        parse_strengths("0,strong")
    with pytest.raises(AugmineError, match=">= 0"):
        parse_strengths("-1")


# --------------------------------------------------------------------------- a comparison

@pytest.fixture(scope="module")
def compared(tmp_path_factory, synth_root):
    """none vs light, 1 epoch at 16 px: killed after the first arm's run, then run again."""
    import augmine.train.phases as train

    folder = tmp_path_factory.mktemp("compare")
    config = write_config(folder, "tiny.yaml", phases=ONE_PHASE)
    out = folder / "out"
    real, calls = train.train_run, []

    def killed_on_second(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt               # Ctrl-C as the second arm starts
        return real(*args, **kwargs)

    train.train_run = killed_on_second
    try:
        with pytest.raises(KeyboardInterrupt):
            run_comparison(["none", "light"], synth_root, config, out, progress=False,
                           samples=300)
    finally:
        train.train_run = real
    first = RunDir(out / "none")
    before = {"history": first.read_history(),
              "checkpoint": first.checkpoint("last").stat().st_mtime_ns}
    args = ["recipe", "compare", "none", "light", "--data", str(synth_root), "--config",
            str(config), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return {"out": out, "config": config, "before": before, "output": result.output,
            "args": args}


@pytest.mark.slow
def test_killed_comparison_resumes_without_retraining_the_first_arm(compared):
    out, before = compared["out"], compared["before"]
    first = RunDir(out / "none")
    assert "arm 1/2 none: already trained" in compared["output"]
    assert "arm 2/2 light: training" in compared["output"]
    assert first.checkpoint("last").stat().st_mtime_ns == before["checkpoint"]
    assert first.read_history() == before["history"]
    for arm in ("none", "light"):
        state = RunDir(out / arm).read_state()
        assert state.status == "done" and state.epochs_done == 1
    # same model, same seed: both arms start from the same weights and data order, and the
    # recipes are the only difference in their configs
    cfgs = [yaml.safe_load((out / a / "config.yaml").read_text()) for a in ("none", "light")]
    for cfg in cfgs:
        cfg.pop("name"), cfg.pop("phases")
    assert cfgs[0] == cfgs[1]


@pytest.mark.slow
def test_comparison_prints_one_table_with_intervals_and_differences(compared):
    text = compared["output"]
    assert "top-1 % [95% CI]" in text and "macro F1 %" in text and "images/s" in text
    assert "difference against none in points (paired bootstrap, 95% CI)" in text
    rows = [line for line in text.splitlines() if line.startswith(("none ", "light "))]
    assert len(rows) == 3                          # 2 in the table, 1 in the differences
    results = json.loads((compared["out"] / "results.json").read_text())
    assert [a["name"] for a in results["arms"]] == ["none", "light"]
    for key in ("final_top1", "final_top5", "best_top1", "best_top5"):
        m = results["metrics"][key]
        for i in range(2):
            assert m["low"][i] <= m["mean"][i] <= m["high"][i]
        assert m["diff"][0] == 0 and m["diff_low"][1] <= m["diff"][1] <= m["diff_high"][1]
    for arm in results["arms"]:
        assert arm["images_per_s"] > 0 and arm["gap"] is not None
        assert len(arm["curve"]) == 1 and arm["curve"][0]["val_accuracy"] is not None
        # the final top-1 is the run's own last val accuracy (same images, same model)
        assert arm["curve"][-1]["val_accuracy"] == pytest.approx(
            results["metrics"]["final_top1"]["mean"][results["arms"].index(arm)], abs=1e-4)
    assert format_comparison(score_comparison(compared["out"], samples=results["samples"])).splitlines()[3:] \
        == format_comparison(results).splitlines()[3:]


@pytest.mark.slow
def test_running_it_again_reprints_and_other_settings_are_refused(compared):
    again = CliRunner().invoke(cli, compared["args"])
    assert again.exit_code == 0, again.output
    assert again.output.count("already trained") == 2
    table = lambda text: text[text.index("arm  "):]  # noqa: E731
    assert table(again.output) == table(compared["output"])
    other = CliRunner().invoke(cli, compared["args"] + ["--epochs", "2"])
    assert other.exit_code == 1
    assert other.output.startswith("Error: ") and other.output.count("\n") == 1
    assert "other settings" in other.output


@pytest.mark.slow
def test_a_comparison_recorded_before_its_defaults_were_written_out_still_reprints(compared,
                                                                                  tmp_path):
    """comparison.json of an older augmine: each arm's config without the values that are
    its defaults (today's records write them out); the same command reprints it, and a
    changed setting is still refused, named by arm and key."""
    out = tmp_path / "old"
    shutil.copytree(compared["out"], out)
    spec = json.loads((out / "comparison.json").read_text())
    kept = {"width", "growth_rate", "blocks", "layers_per_block"}          # tiny.yaml's own
    for raw in spec["configs"].values():
        raw["model"] = {k: v for k, v in raw["model"].items() if k in kept}
        raw["mining"] = {k: raw["mining"][k] for k in ("policy", "k", "factor", "epochs")}
        raw["schedule"].pop("gamma")
    (out / "comparison.json").write_text(json.dumps(spec))
    args = [a if a != str(compared["out"]) else str(out) for a in compared["args"]]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("already trained") == 2
    spec["configs"]["light"]["model"]["width"] += 4
    (out / "comparison.json").write_text(json.dumps(spec))
    other = CliRunner().invoke(cli, args)
    assert other.exit_code == 1 and other.output.count("\n") == 1
    assert "configs.light: model.width" in other.output


@pytest.mark.slow
def test_app_shows_the_comparison_curves_side_by_side(compared):
    import sys
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[1] / "apps" / "streamlit_app.py"
    saved = sys.argv[:]
    sys.argv[:] = [str(app), str(compared["out"])]
    try:
        at = AppTest.from_file(str(app), default_timeout=60)
        at.session_state["page"] = "Recipe comparison"
        at.run()
    finally:
        sys.argv[:] = saved
    assert not at.exception, [e.value for e in at.exception]
    assert list(at.dataframe[0].value["arm"]) == ["none", "none", "light", "light"]
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2                      # one curve chart per arm


def test_inspect_suggest_writes_a_comparison_plan_with_the_exact_command(synth_root,
                                                                          tmp_path,
                                                                          augmine_on_path):
    import shlex

    from augmine.cli.recipe import command as recipe_group

    sug = tmp_path / "mine.yaml"
    res = CliRunner().invoke(cli, ["inspect", str(synth_root), "--no-compare", "--out",
                                   str(tmp_path / "report"), "--suggest", str(sug)])
    assert res.exit_code == 0, res.output
    plan = yaml.safe_load((tmp_path / "mine-compare.yaml").read_text())
    assert plan["command"] in res.output
    assert plan["arms"] == ["none", "mine-s0.5", "mine-s1"]
    argv = shlex.split(plan["command"])
    assert argv[:3] == ["augmine", "recipe", "compare"]
    ctx = recipe_group.commands["compare"].make_context("compare", argv[3:])
    assert ctx.params["recipes"] == ("none", str(sug))
    assert ctx.params["data"] == synth_root and ctx.params["config"] == "cpu-small"
    arms = plan_arms(ctx.params["recipes"], parse_strengths(ctx.params["strengths"]))
    assert [a.name for a in arms] == plan["arms"]
