"""The Streamlit app: widget flows with AppTest, and one real headless-Chromium session."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from servers import stop, wait_until_healthy

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "apps" / "streamlit_app.py"
CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 60


# --------------------------------------------------------------------------- fixtures

def fabricate_run(run_dir: Path, index, seed: int = 0) -> Path:
    """A run folder with phase-1, phase-2 and round-1 reports of plausible fake predictions.

    Classes 0/1 (and, on the real sample, Chihuahua/teddy bear) are confused with each
    other; accuracy rises from phase to phase. No training involved.
    """
    from augmine.analysis.reports import write_stage_report

    rng = np.random.default_rng(seed)
    y = index.val.labels
    n, c = len(y), index.num_classes
    names = list(index.class_names)
    pairs = [(0, 1)]
    if "Chihuahua" in names and "teddy bear" in names:
        pairs = [(names.index("Chihuahua"), names.index("teddy bear"))]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(f"name: fake\ndata: {index.root}\n")
    for stage, skill, kind, size in (("phase-1", 1.0, "phase", 16), ("phase-2", 2.0, "phase", 32),
                                     ("round-1", 2.6, "round", 64)):
        logits = rng.normal(0, 1, (n, c))
        logits[np.arange(n), y] += skill
        for a, b in pairs:          # the planted pair looks alike
            for s, t in ((a, b), (b, a)):
                m = y == s
                logits[m, t] += skill * 0.9
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        write_stage_report(run_dir, stage, y, probs.astype(np.float32), list(index.class_ids),
                           names, meta={"kind": kind, "size": size, "epochs_done": 1},
                           val_paths=index.val.paths)
    # suspects.csv as `augmine mine suspects` writes it, from fake train probabilities
    import csv

    from augmine.analysis.metrics import suspect_samples

    yt = index.train.labels
    probs = rng.dirichlet(np.ones(c), len(yt))
    rows = suspect_samples(yt, probs, [a for a, _ in pairs], per_class=6,
                           paths=index.train.paths, class_names=names)
    cols = ["name", "path", "self_confidence", "predicted_name", "predicted_prob"]
    with open(run_dir / "reports" / "round-1" / "suspects.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return run_dir


@pytest.fixture(scope="module")
def real_run(real_index, tmp_path_factory):
    return fabricate_run(tmp_path_factory.mktemp("run") / "run", real_index)


@pytest.fixture(scope="module")
def synth_run(synth_index, tmp_path_factory):
    return fabricate_run(tmp_path_factory.mktemp("srun") / "run", synth_index)


PAGES = ("Augmentation browser", "Confusion explorer")


@pytest.fixture(autouse=True)
def _restore_argv():
    saved = list(sys.argv)
    yield
    sys.argv[:] = saved


def app_test(data: Path | str | None = None, run: Path | str | None = None, page: int = 0):
    """Run the app once as ``augmine app [RUN] [--data DATA]`` starts it, on page ``page``.

    The folders reach the script as its command line (``streamlit run APP -- RUN --data
    DATA`` sets sys.argv so); the fixture above restores pytest's sys.argv afterwards.
    """
    from streamlit.testing.v1 import AppTest

    sys.argv[:] = [str(APP)] + ([str(run)] if run is not None else []) + (
        ["--data", str(data)] if data is not None else [])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["page"] = PAGES[page]
    return at.run()


def texts(at) -> str:
    """Every piece of text the page shows (markdown, captions, alerts), joined."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader",
                 "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------------- pure helpers

def test_upscale_nearest_keeps_pixels_square():
    from augmine.app.data.images import upscale_nearest

    img = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    big = upscale_nearest(img, 128)
    assert big.shape == (128, 128, 3)
    assert np.array_equal(big[::8, ::8], img)            # every source pixel an 8x8 block
    assert np.array_equal(big[7::8, 7::8], img)
    assert upscale_nearest(np.zeros((200, 200, 3), np.uint8), 128).shape == (200, 200, 3)


def test_pair_samples_put_mistakes_first():
    from augmine.app.data.reports import pair_samples, weakest_submatrix

    y = np.array([0, 0, 1, 1, 2])
    probs = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .8, .1], [.6, .4, 0], [0, 0, 1]])
    s = pair_samples(y, probs, 0, 1)
    assert list(s["index"]) == [1, 3, 0, 2]               # wrong (0.7, 0.6), then right
    assert list(s["correct"]) == [False, False, True, True]
    assert np.allclose(s["confidence"][:2], [0.7, 0.6])
    idx, sub = weakest_submatrix(np.array([[5, 1, 0], [2, 3, 0], [0, 0, 9]]),
                                 np.array([0.6, 0.5, 1.0]), 2)
    assert list(idx) == [1, 0] and sub.tolist() == [[3, 2], [1, 5]]


# --------------------------------------------------------------------------- CLI

def test_cli_app_command(tmp_path):
    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.cli.app import streamlit_command

    res = CliRunner().invoke(cli, ["app", "--help"])
    assert res.exit_code == 0 and "--no-browser" in res.output and "--data" in res.output
    res = CliRunner().invoke(cli, ["app", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "Error:" in res.output and "does not exist" in res.output
    assert "Traceback" not in res.output
    cmd = streamlit_command(str(tmp_path), str(tmp_path), 8765, headless=True)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("apps/streamlit_app.py")
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"    # this machine only
    after = cmd[cmd.index("--") + 1:]
    assert after == [str(tmp_path.resolve()), "--data", str(tmp_path.resolve())]


def _exec_calls(monkeypatch):
    """Record the command `augmine app` would become instead of exec-ing it."""
    calls = []

    def fake_execve(path, args, env):
        calls.append((list(args), env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    return calls


def test_cli_app_binds_loopback_and_warns_when_shared(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from augmine.cli import cli

    calls = _exec_calls(monkeypatch)
    res = CliRunner().invoke(cli, ["app", "--port", "8766"])
    assert res.exit_code == 0, res.output
    cmd = calls[-1][0]
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert "warning" not in res.output
    # CliRunner's stdin is not a terminal: headless, so Streamlit never asks for an e-mail
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    res = CliRunner().invoke(cli, ["app", "--address", "0.0.0.0", "--port", "8766"])
    cmd = calls[-1][0]
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    warn = [l for l in res.output.splitlines() if l.startswith("warning:")]
    assert len(warn) == 1 and "0.0.0.0" in warn[0] and "8766" in warn[0]


def test_cli_app_missing_streamlit_names_both_install_commands(monkeypatch):
    from click.testing import CliRunner

    from augmine.cli import cli

    monkeypatch.setitem(sys.modules, "streamlit", None)       # import streamlit -> ImportError
    res = CliRunner().invoke(cli, ["app"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    line = [l for l in res.output.splitlines() if l.startswith("Error:")][0]
    assert "pip install 'augmine[app]'" in line and "pip install -e '.[app]'" in line


def test_headless_without_terminal_or_display(monkeypatch):
    from augmine.cli.app import should_run_headless

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    assert should_run_headless(False) is False            # a desktop terminal: open a browser
    assert should_run_headless(True) is True
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert should_run_headless(False) is True             # ssh session without a display
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    assert should_run_headless(False) is True             # nohup / service / CI


def _listen_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as /proc/net/tcp* shows them) listening on ``port``."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if int(hexport, 16) == port and fields[3] == "0A":       # 0A = LISTEN
                found.add(addr)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_app_starts_unattended_on_loopback(tmp_path):
    """`augmine app` with stdin from /dev/null, a display, no --no-browser and a fresh HOME
    (Streamlit has never asked for its e-mail there) serves, and only on 127.0.0.1."""
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), DISPLAY=":0", PYTHONPATH=str(REPO),
               AUGMINE_HOME=str(tmp_path / "augmine-home"),
               STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    for key in [k for k in env if k.startswith("STREAMLIT_") and "WATCHER" not in k]:
        del env[key]
    log = open(tmp_path / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from augmine.cli import cli; cli()",
                             "app", "--port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        log.flush()
        wait_until_healthy(proc, f"http://127.0.0.1:{port}/_stcore/health", tmp_path / "app.log",
                           TIMEOUT)
        assert _listen_addresses(port) == {"0100007F"}            # 127.0.0.1 only
        assert "Email" not in (tmp_path / "app.log").read_text()
    finally:
        stop(proc)
        log.close()


# --------------------------------------------------------------------------- AppTest flows

def test_browser_shows_augmented_grid_and_rerolls(synth_root):
    at = app_test(data=synth_root)
    no_exception(at)
    assert [s.label for s in at.selectbox][:1] == ["Class"]
    imgs = at.image
    assert len(imgs) >= 2
    grid = imgs[1]
    assert len(grid.value) == 16 and all(c.endswith("(64 px)") for c in grid.captions)
    before = list(grid.value)
    at.button(key="reroll").click().run()
    no_exception(at)
    assert at.number_input(key="seed").value == 1
    assert at.image[1].value != before                     # new samples for the new seed
    preview_as = at.selectbox(key=f"as:{at.selectbox(key='recipe_file').value}")
    assert preview_as.options == ["16 px, as written", "32 px, as written", "64 px, as written"]
    assert "Previewed at 64 px, strength 1 (the recipe as written)." in texts(at)
    preview_as.select_index(0).run()
    no_exception(at)
    assert all(c.endswith("(16 px)") for c in at.image[1].captions)
    assert at.image[1].value[0] != before[0]               # another size, other pictures
    at.slider(key="n_samples").set_value(8).run()
    assert len(at.image[1].value) == 8


def test_browser_class_by_name_and_random_image(synth_root):
    from augmine.data.synth import confusable_pairs

    at = app_test(data=synth_root)
    name = confusable_pairs(synth_root)[0][1]              # e.g. "dotted red circle"
    at.selectbox(key="cls").set_value(name).run()
    no_exception(at)
    assert any(name in s.value for s in at.subheader)
    seen = set()
    for _ in range(4):
        at.button(key="random_img").click().run()
        seen.add(at.number_input(key="img_no").value)
    assert len(seen) > 1                                  # random picks differ


def test_browser_edits_recipe_and_download_validates(synth_root, tmp_path):
    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.augment.recipes import load_recipe
    from augmine.core.runtime import recipes_dir

    at = app_test(data=synth_root)
    no_exception(at)
    rec = load_recipe(recipes_dir() / at.selectbox(key="recipe_file").value)
    whys = [t["why"] for t in rec.transforms if t.get("why")]
    assert whys and all(f"why: {w}" in texts(at) for w in whys)
    first = rec.transforms[0]["transform"]
    prefix = f"t:{at.selectbox(key='recipe_file').value}:"
    at.checkbox(key=f"{prefix}on0").uncheck().run()
    at.slider(key=f"{prefix}p1").set_value(0.25).run()
    no_exception(at)
    text = at.code[0].value
    out = tmp_path / "edited.yaml"
    out.write_text(text)
    edited = load_recipe(out)
    assert [t["transform"] for t in edited.transforms] == \
        [t["transform"] for t in rec.transforms[1:]]
    assert edited.transforms[0]["p"] == 0.25
    assert all(t.get("why") for t in edited.transforms if "why" in t)
    assert at.get("download_button")
    if "augmine.cli.recipe" in sys.modules or (REPO / "augmine" / "cli" / "recipe.py").exists():
        res = CliRunner().invoke(cli, ["recipe", "validate", str(out)])
        assert res.exit_code == 0, res.output
    # the page says the first transform is off, and the YAML the user downloads lacks it
    n = len(rec.transforms)
    assert f"{n - 1} of {n} transforms on" in texts(at)
    assert at.checkbox(key=f"{prefix}on0").label == f"**1. {first}**"
    assert text.count(f"transform: {first}") == \
        [t["transform"] for t in rec.transforms[1:]].count(first)
    # a bad parameter value shows a clear message, not a traceback
    at.text_input(key=f"{prefix}x1").set_value("{not_an_argument: 3}").run()
    no_exception(at)
    assert any("not valid" in e.value and "not_an_argument" in e.value for e in at.error)


def test_confusion_explorer_on_real_run(real_root, real_run):
    at = app_test(data=real_root, run=real_run, page=1)
    no_exception(at)
    assert at.selectbox(key="stage").value == "round-1"
    df = at.dataframe[0].value
    assert list(df["name"])[:1] and df["f1"].is_monotonic_increasing   # sorted weakest first
    assert {"precision", "recall", "f1", "support"} <= set(df.columns)
    pair = at.selectbox(key="pair")
    assert "Chihuahua" in pair.format_func(pair.value) and "teddy bear" in \
        pair.format_func(pair.value)
    caps = [c for im in at.image for c in im.captions]
    wrong = [c for c in caps if c.startswith("✗")]
    assert wrong and any("teddy bear (" in c or "Chihuahua (" in c for c in wrong)
    assert "Chihuahua:" in texts(at) and "misclassified" in texts(at)
    assert len(at.get("vega_lite_chart")) == 2       # heatmap + F1 lines
    assert "Suspect samples of the weak classes" in texts(at)
    assert sum(len(im.value) for im in at.image) >= 36 + 6        # pair grid + suspects
    acc_round = float(at.metric[0].value)
    at.selectbox(key="stage").set_value("phase-1").run()
    no_exception(at)
    assert float(at.metric[0].value) < acc_round                  # phase-1 was weaker
    assert "Suspect samples" not in texts(at)                     # only round-1 has them


def test_confusion_explorer_messages_instead_of_tracebacks(synth_root, tmp_path):
    at = app_test(data=synth_root, page=1)
    no_exception(at)
    assert any("No run folder" in e.value and "augmine app RUN_DIR" in e.value
               for e in at.info)
    at = app_test(data=synth_root, run=tmp_path / "missing", page=1)
    no_exception(at)
    assert any("is not a folder" in e.value for e in at.error)
    (tmp_path / "empty").mkdir()
    at = app_test(data=synth_root, run=tmp_path / "empty", page=1)
    no_exception(at)
    assert any("not a run folder" in e.value for e in at.error)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text(f"data: {synth_root}\n")
    at = app_test(data=synth_root, run=tmp_path / "fresh", page=1)
    no_exception(at)
    assert any("no reports" in e.value for e in at.warning)
    bad = tmp_path / "broken" / "reports" / "phase-1"
    bad.mkdir(parents=True)
    (bad / "report.json").write_text("{not json")
    at = app_test(data=synth_root, run=tmp_path / "broken", page=1)
    no_exception(at)
    assert any("unreadable report" in e.value for e in at.error)


def test_sidebar_opens_only_the_folders_given(synth_root, synth_run, tmp_path):
    at = app_test(run=synth_run)
    no_exception(at)
    assert not at.sidebar.text_input                     # no free-text path to type
    recorded = str(Path((synth_run / "config.yaml").read_text().split("data: ")[1].strip())
                   .resolve())
    data_box, run_box = at.selectbox(key="data_path"), at.selectbox(key="run_path")
    assert data_box.options == [recorded, "generated default dataset"]
    assert run_box.options == [str(synth_run.resolve()), "none"]
    run_box.set_value("").run()                          # "none" is always allowed
    at.session_state["page"] = PAGES[1]
    at.run()
    no_exception(at)
    assert any("No run folder" in e.value for e in at.info)
    # a selectbox travels as an index into its options: no folder outside them can be sent
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    with pytest.raises(ValueError, match="not in list"):
        at.selectbox(key="data_path").set_value(str(elsewhere)).run()


def test_browser_bad_dataset_path_is_a_message(tmp_path):
    at = app_test(data=tmp_path / "nowhere")
    no_exception(at)
    assert at.error and "not a folder" in at.error[0].value


def test_browser_defaults_to_generated_dataset(tmp_path, monkeypatch, synth_run):
    # the run's recorded dataset is used when no --data is given
    at = app_test(run=synth_run)
    no_exception(at)
    from augmine.data.dataset import load_index

    names = load_index(Path((synth_run / "config.yaml").read_text().split("data: ")[1].strip()))
    assert at.selectbox(key="cls").options == list(names.class_names)
    # and with neither, the embedded generated dataset (made once under $AUGMINE_HOME)
    from augmine.data.synth import default_dataset_dir

    monkeypatch.setenv("AUGMINE_HOME", str(tmp_path / "home"))
    at = app_test()
    no_exception(at)
    assert (default_dataset_dir() / "synth.json").exists()
    assert at.selectbox(key="cls").options == list(load_index(default_dataset_dir()).class_names)


def test_interactions_reuse_the_loaded_data(real_root, real_run, monkeypatch):
    """What keeps reruns fast: re-rolling the seed decodes no image again, and switching
    pages or stages neither re-indexes the dataset nor re-reads the run's reports (each
    happens once, then comes from Streamlit's caches)."""
    import augmine.data.dataset
    import augmine.analysis.reports

    calls = {"index": 0, "decode": 0, "reports": 0}

    def counted(key, real):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(augmine.data.dataset, "load_index", counted("index", augmine.data.dataset.load_index))
    monkeypatch.setattr(augmine.data.dataset, "read_image", counted("decode", augmine.data.dataset.read_image))
    monkeypatch.setattr(augmine.analysis.reports, "list_stage_reports",
                        counted("reports", augmine.analysis.reports.list_stage_reports))
    at = app_test(data=real_root, run=real_run)
    no_exception(at)
    at.session_state["page"] = "Confusion explorer"
    at.run()
    no_exception(at)
    at.session_state["page"] = PAGES[0]
    at.run()
    calls.update(index=0, decode=0, reports=0)
    grids = []
    for seed in (1, 2, 3):
        at.number_input(key="seed").set_value(seed).run()
        grids.append(at.image[1].value)
    assert grids[0] != grids[1] != grids[2]                       # new samples each time
    assert calls["decode"] == 0                                   # from the same decoded image
    at.session_state["page"] = "Confusion explorer"
    at.run()
    accuracies = []
    for stage in ("phase-2", "round-1"):
        at.selectbox(key="stage").set_value(stage).run()
        accuracies.append(float(at.metric[0].value))
    no_exception(at)
    assert accuracies[0] < accuracies[1]                          # the stage really changed
    assert calls["index"] == 0 and calls["reports"] == 0, calls


# --------------------------------------------------------------------------- real browser

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def streamlit_server(real_root, real_run, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = _free_port()
    from augmine.cli.app import streamlit_command

    cmd = streamlit_command(str(real_run), str(real_root), port, headless=True,
                            address="127.0.0.1")
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            env=dict(os.environ, STREAMLIT_SERVER_FILE_WATCHER_TYPE="none"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, url + "/_stcore/health", tmp_path / "streamlit.log", 60)
        yield url
    finally:
        stop(proc)
        log.close()


def _full_screenshot(page, path: Path) -> None:
    """Screenshot the whole app: Streamlit scrolls inside stMain, so grow the viewport to fit."""
    h = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll("
                      "'[data-testid=stMain], [data-testid=stMainBlockContainer]'))"
                      ".map(e => e.scrollHeight))")
    height = int(min(max(h + 80, 900), 8000))
    page.set_viewport_size({"width": 1600, "height": height})
    page.wait_for_function("h => window.innerHeight === h", arg=height)   # laid out again
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1600, "height": 1200})


def _wait_images(page, at_least: int, timeout: float = 60.0) -> int:
    """Wait until ``at_least`` images in the main area have loaded (naturalWidth > 0)."""
    js = ("() => Array.from(document.querySelectorAll('[data-testid=stMain] img'))"
          ".filter(i => i.complete && i.naturalWidth > 0).length")
    deadline = time.time() + timeout
    n = 0
    while time.time() < deadline:
        n = page.evaluate(js)
        if n >= at_least:
            return n
        page.wait_for_timeout(250)
    return n


@pytest.mark.slow
@pytest.mark.browser
def test_real_browser_pages(streamlit_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(streamlit_server, wait_until="domcontentloaded")
            main = page.get_by_test_id("stMain")
            expect(main.get_by_text("Augmentation browser")).to_be_visible(timeout=60_000)
            n = _wait_images(page, 17)                   # original + 16 augmented
            assert n >= 17, f"only {n} images rendered"
            expect(main.get_by_text("why:").first).to_be_visible()
            # the images really are pictures, not broken icons: 64 px enlarged >= 128 px
            widths = page.evaluate("() => Array.from(document.querySelectorAll("
                                   "'[data-testid=stMain] img')).map(i => i.naturalWidth)")
            assert min(widths) >= 128
            _full_screenshot(page, shots / "browser.png")
            # re-roll: new samples arrive in the page within a second or two
            srcs = "() => Array.from(document.querySelectorAll('[data-testid=stMain] img'))" \
                   ".map(i => i.src).join()"
            before = page.evaluate(srcs)
            t0 = time.perf_counter()
            main.get_by_role("button", name="Re-roll").click()
            page.wait_for_function(f"() => ({srcs})() !== {before!r} && "
                                   "Array.from(document.querySelectorAll('[data-testid=stMain] "
                                   "img')).every(i => i.complete && i.naturalWidth > 0)",
                                   timeout=30_000)
            reroll_s = time.perf_counter() - t0
            print(f"browser re-roll to new images: {reroll_s:.2f} s")

            t0 = time.perf_counter()
            page.get_by_test_id("stSidebar").get_by_text("Confusion explorer").click()
            expect(main.get_by_text("Confusion among the weakest classes")).to_be_visible(
                timeout=60_000)
            # the planted pair is the first choice: both classes' val images side by side
            for cls in ("Chihuahua", "teddy bear"):
                expect(main.get_by_text(re.compile(rf"^{cls}: \d+ of \d+ misclassified"))
                       ).to_be_visible(timeout=30_000)
            n = _wait_images(page, 12)
            assert n >= 12, f"only {n} val images rendered"
            print(f"browser switch to confusion explorer (cold caches): "
                  f"{time.perf_counter() - t0:.2f} s")
            expect(main.get_by_text("✗").first).to_be_visible()
            charts = main.locator("[data-testid=stVegaLiteChart]")
            expect(charts).to_have_count(2, timeout=30_000)
            page.wait_for_function(                      # both charts drawn
                "() => Array.from(document.querySelectorAll('[data-testid=stVegaLiteChart]'))"
                ".every(c => c.querySelector('canvas, svg'))", timeout=30_000)
            _full_screenshot(page, shots / "confusion.png")
            assert not main.get_by_test_id("stException").count()
        finally:
            browser.close()
    for p in shots.glob("*.png"):
        assert p.stat().st_size > 20_000                 # a real page, not a blank one
