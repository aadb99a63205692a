"""Comparisons that can tell: training seeds (`--seeds`), the honest halves
(`recipe tailor --half selection`, `recipe compare --measure-half`), the cost printed up
front (`--dry-run`) and arms side by side (`--arm`, `--jobs`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from support import ONE_PHASE, write_config

from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.experiments.compare_jobs import child_env, parse_arm, run_seconds
from augmine.experiments.compare_results import arm_intervals
from augmine.experiments.tune import choose_strength


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def table(text: str) -> list[str]:
    """The printed table from its header on, without the images/s column (wall time)."""
    lines = text[text.index("arm  "):text.index("\nwrote ")].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("difference against"))
    return [line.rsplit("  ", 1)[0].rstrip() if i < first and " final " in line else line
            for i, line in enumerate(lines)]


# --------------------------------------------------------------------------- no training

def test_seed_intervals_widen_when_seeds_disagree():
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.6).astype(float)
    agree = np.stack([np.stack([base, base]), np.stack([base, base])])      # (2 arms, 2 seeds)
    one = arm_intervals(agree[:, :1], 500, 0)
    assert one["per_seed"] == [[base.mean()], [base.mean()]]
    apart = agree.copy()
    apart[1, 0] = (rng.random(400) < 0.45).astype(float)      # arm 1: its seeds disagree
    apart[1, 1] = (rng.random(400) < 0.75).astype(float)
    two = arm_intervals(apart, 500, 0)
    width = lambda m, i: m["high"][i] - m["low"][i]  # noqa: E731
    assert width(two, 1) > width(arm_intervals(apart[:, :1], 500, 0), 1)
    assert two["per_seed"][1] == pytest.approx([apart[1, 0].mean(), apart[1, 1].mean()])
    assert two["diff"][0] == two["diff_low"][0] == two["diff_high"][0] == 0


def test_tune_chooses_on_the_mean_over_seeds():
    y = np.repeat(np.arange(4), 50)
    rng = np.random.default_rng(0)
    hits = (rng.random((2, 3, len(y))) < 0.5).astype(float)
    hits[1, :2] = 1.0                       # strength 1 right everywhere in 2 of 3 seeds
    out = choose_strength(y, hits, [0.0, 1.0], samples=300)
    assert out["strength"] == 1.0 and out["measurement"]["seeds"] == 3
    assert len(out["measurement"]["per_seed"][1]) == 3


def test_arm_names_seeds_and_the_cpu_thread_rule(monkeypatch):
    assert parse_arm("light@1", ["none", "light"], 2) == ("light", 1)
    assert parse_arm("none", ["none", "light"], 1) == ("none", 0)
    with pytest.raises(AugmineError, match="no such arm; this comparison has none, light"):
        parse_arm("heavy", ["none", "light"], 2)
    with pytest.raises(AugmineError, match="seed must be 0..1"):
        parse_arm("light@2", ["none", "light"], 2)
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(name, raising=False)
    env = child_env(1, 2, [], cores=8)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "4"
    assert child_env(0, 16, [], cores=8)["OMP_NUM_THREADS"] == "1"
    assert child_env(3, 4, ["0", "1"])["CUDA_VISIBLE_DEVICES"] == "1"
    assert run_seconds([{"size": 16, "epochs": 2}, {"size": 32, "epochs": 1}], 10) == 60


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, synth_root):
    config = write_config(tmp_path, phases=ONE_PHASE)
    out = tmp_path / "cmp"
    res = run_cli("recipe", "compare", "none", "light", "--data", synth_root, "--config",
                  config, "--out", out, "--seeds", 3, "--dry-run")
    assert res.exit_code == 0, res.output
    assert f"6 run(s) of 1 epochs (1 at 16 px) in {out.resolve()}/: 0 trained, 6 to train" \
        in res.output
    assert "no epoch measured on this machine yet" in res.output
    assert not out.exists()
    res = run_cli("recipe", "tune", "light", "--data", synth_root, "--config", config,
                  "--out", out, "--seeds", 2, "--strength", "0,1", "--dry-run")
    assert res.exit_code == 0 and "4 run(s)" in res.output and not out.exists()


# --------------------------------------------------------------------------- trained

@pytest.fixture(scope="module")
def seeded(tmp_path_factory, synth_root):
    """none vs light, 2 seeds, 1 epoch at 16 px: (a) trained one after another in this
    process; (b) each run trained by an `--arm` process, two processes at a time into one
    folder, then the plain command prints the table; (c) `none` alone with `--jobs 2`."""
    folder = tmp_path_factory.mktemp("seeds")
    config = write_config(folder, "tiny.yaml", phases=ONE_PHASE)
    args = ["recipe", "compare", "none", "light", "--data", str(synth_root), "--config",
            str(config), "--seeds", "2", "--no-progress"]
    a = run_cli(*args, "--out", folder / "a")
    assert a.exit_code == 0, a.output
    base = [sys.executable, "-c", "from augmine.cli import cli; cli(prog_name='augmine')",
            *args, "--out", str(folder / "b")]
    outs = []
    for pair in (("none@0", "light@0"), ("none@1", "light@1")):
        procs = [subprocess.Popen([*base, "--arm", arm], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for arm in pair]
        outs += [p.communicate()[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
    b = run_cli(*args, "--out", folder / "b")
    assert b.exit_code == 0, b.output
    c = run_cli(*args[:3], *args[4:], "--out", folder / "c", "--jobs", "2")
    assert c.exit_code == 0, c.output
    return {"a": folder / "a", "b": folder / "b", "c": folder / "c", "out_a": a.output,
            "out_b": b.output, "out_c": c.output, "arms": outs, "args": args}


@pytest.mark.slow
def test_two_seeds_differ_and_the_same_seed_twice_is_identical(seeded):
    a, b = seeded["a"], seeded["b"]
    assert sorted(p.name for p in a.iterdir() if (p / "state.json").is_file()) == [
        "light", "light-seed1", "none", "none-seed1"]
    load = lambda folder, run: np.load(folder / "predictions" / f"{run}.npz")["final"]  # noqa
    assert np.abs(load(a, "none") - load(a, "none-seed1")).max() > 1e-2
    assert (load(a, "light").argmax(1) != load(a, "light-seed1").argmax(1)).any()
    # the same seed in another process: the same prediction for every image (probabilities
    # agree to float rounding: reductions may run in another order)
    for run in ("none", "none-seed1", "light", "light-seed1"):
        np.testing.assert_array_equal(load(a, run).argmax(1), load(b, run).argmax(1))
        np.testing.assert_allclose(load(a, run), load(b, run), atol=1e-5, err_msg=run)
    seeds = [yaml.safe_load((a / r / "config.yaml").read_text())["seed"]
             for r in ("none", "none-seed1")]
    assert seeds == [0, 1]                 # init, sampling and augmentation follow it


@pytest.mark.slow
def test_seeds_table_shows_two_stage_intervals_and_the_spread(seeded):
    text = seeded["out_a"]
    assert "2 arms x 2 training seeds" in text and "two-stage bootstrap" in text
    assert "top-1 over seeds" in text
    results = json.loads((seeded["a"] / "results.json").read_text())
    assert results["seeds"] == 2
    per_seed = results["metrics"]["final_top1"]["per_seed"]
    assert len(per_seed) == 2 and all(len(s) == 2 for s in per_seed)
    assert "estimated time: about" in text and "from this first epoch" in text


@pytest.mark.slow
def test_arms_in_two_processes_then_a_plain_run_print_the_sequential_table(seeded):
    for out in seeded["arms"]:
        assert "1 run(s) of 1 epochs" in out and "difference against" not in out
    assert "4 trained, 0 to train" in seeded["out_b"]
    assert table(seeded["out_b"]) == table(seeded["out_a"])


@pytest.mark.slow
def test_jobs_trains_the_runs_as_child_processes(seeded):
    text, c = seeded["out_c"], seeded["c"]
    assert text.count("started on CPU") == 2 and text.count(": done") == 2
    assert sorted(p.name for p in (c / "logs").iterdir()) == ["none-seed1.log", "none.log"]
    assert "1 arms x 2 training seeds" in text and "top-1 over seeds" in text
    for run in ("none", "none-seed1"):
        assert (c / run / "state.json").is_file() and (c / "predictions" / f"{run}.npz").is_file()


@pytest.mark.slow
def test_dry_run_on_a_trained_folder_estimates_from_its_runs(seeded):
    before = sorted(p.relative_to(seeded["a"]) for p in seeded["a"].rglob("*"))
    res = run_cli(*seeded["args"][:-3], "--seeds", 3, "--out", seeded["a"], "--dry-run")
    assert res.exit_code == 0, res.output
    assert "6 run(s)" in res.output and "4 trained, 2 to train" in res.output
    assert "from the training time of 4 finished run(s) here" in res.output
    assert sorted(p.relative_to(seeded["a"]) for p in seeded["a"].rglob("*")) == before


@pytest.mark.slow
def test_measure_half_never_scores_an_image_the_tailoring_used(seeded, synth_index, tmp_path):
    cmp = tmp_path / "cmp"
    shutil.copytree(seeded["a"], cmp)
    tailored = tmp_path / "light-tailored.yaml"
    res = run_cli("recipe", "tailor", "light", "--run", cmp / "none", "-o", tailored,
                  "--half", "selection", "--no-progress")
    assert res.exit_code == 0, res.output
    from augmine.train.affinity import load_affinity

    used = set(load_affinity(cmp / "none", "light")["val_paths"])
    description = " ".join(yaml.safe_load(tailored.read_text())["description"].split())
    assert "selection half of val, split seed 0" in description
    res = run_cli(*seeded["args"], "--out", cmp, "--measure-half")
    assert res.exit_code == 0, res.output
    assert "the measurement half of val (50 of 100 images, split seed 0)" in res.output
    rows = json.loads((cmp / "results.json").read_text())["images"]
    scored = {str(synth_index.val.paths[i]) for i in rows}
    assert used and scored and not used & scored
    assert used | scored == {str(p) for p in synth_index.val.paths}


@pytest.fixture
def local_ray():
    """A local Ray cluster of 2 CPUs started in this process (and shut down after)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_trains_two_arms_as_tasks_and_prints_the_table(local_ray, tmp_path, synth_root):
    out = tmp_path / "r"
    res = run_cli("recipe", "compare", "none", "light", "--data", synth_root, "--config",
                  write_config(tmp_path, phases=ONE_PHASE), "--out", out, "--no-progress",
                  "--ray", "auto")
    assert res.exit_code == 0, res.output
    assert "2 run(s) sent to Ray at auto" in res.output and res.output.count(": done") == 2
    assert "difference against none in points" in res.output
    assert [row.split()[0] for row in table(res.output) if row.split()[1:2] == ["final"]] == [
        "none", "light", "light"]                  # two arms, then light's difference
    for run in ("none", "light"):
        assert (out / "logs" / f"{run}.log").is_file()
        assert (out / run / "state.json").is_file()
