"""A normal (non-editable) install carries the built-in recipes, configs and the app.

Builds the wheel offline from a copy of the checkout, checks its file list, installs it into
a fresh venv (dependencies borrowed from the running interpreter's site-packages), and runs
``augmine demo`` and ``augmine app`` from a folder outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import pytest
from servers import stop, wait_until_healthy

REPO = Path(__file__).resolve().parents[1]
BUILTIN = ("cpu-small", "light", "none", "tiny-imagenet-14", "tiny-imagenet-densenet")


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 600):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-3000:]}\n" \
                                f"{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the checkout gets no build/ or egg-info)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for folder in ("augmine", "recipes", "apps"):
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    (whl,) = (tmp / "dist").glob("augmine-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_holds_recipes_configs_app_and_subpackages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in BUILTIN:
        assert f"augmine/builtin/{name}.yaml" in names, name
    # every module of the checkout's augmine/, plus recipes/ and apps/ as augmine.builtin and
    # augmine.apps (setup.cfg's package_dir)
    modules = [p.relative_to(REPO).as_posix() for p in (REPO / "augmine").rglob("*.py")]
    assert modules and all(m in names for m in modules), sorted(set(modules) - names)
    for module in ("apps/__init__.py", "apps/streamlit_app.py", "builtin/__init__.py"):
        assert f"augmine/{module}" in names, module
    assert not any(n.startswith(("recipes/", "apps/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "augmine = augmine.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv with the wheel installed (not editable) and the test interpreter's
    site-packages appended for the dependencies; returns (its bin folder, environment)."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "-q", str(wheel)], cwd=venv.parent)
    # after the install (so pip does not see the checkout's augmine as installed): the
    # dependencies come from the running interpreter's site-packages, as a plain path entry
    # (its .pth files, including an editable augmine, are not processed)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], cwd=venv.parent).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2",
               STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    return venv / "bin", env


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working folder outside the checkout, so nothing resolves relative to it."""
    assert REPO not in tmp_path.parents
    return tmp_path


@pytest.mark.slow
def test_installed_package_is_the_wheel_and_finds_builtins(installed, outside):
    bin_dir, env = installed
    code = textwrap.dedent("""
        import augmine
        from augmine.app import APP_FILE
        from augmine.core.runtime import resolve_config
        print(augmine.__file__)
        print(resolve_config("cpu-small"))
        print(augmine.load_recipe("tiny-imagenet-14").path, APP_FILE.is_file())
    """)
    out = _run([str(bin_dir / "python"), "-c", code], cwd=outside, env=env).stdout.split("\n")
    prefix = str(bin_dir.parent)
    assert out[0].startswith(prefix) and "site-packages" in out[0], out
    assert Path(out[1]) == Path(out[0]).resolve().parent / "builtin" / "cpu-small.yaml"
    assert out[2].startswith(prefix) and out[2].endswith("True")


@pytest.mark.slow
def test_installed_demo_runs_from_outside_the_checkout(installed, outside):
    """The whole demo from the installed console script on the least budget it runs on:
    a tiny config beside the data naming built-in recipes by name (found in the wheel), one
    worker process, 1 epoch at 16 px under each recipe, a 1-epoch round, 4 classes x 16
    images. (The built-in cpu-small config found in the wheel:
    test_installed_package_is_the_wheel_and_finds_builtins; the demo's default config:
    test_demo.py::test_demo_config_is_cpu_small_unless_another_is_given.)"""
    import yaml
    from support import tiny_config

    from augmine.data.synth import write_synthetic_dataset

    bin_dir, env = installed
    data = outside / "data"
    write_synthetic_dataset(data, num_classes=4, train_per_class=16, val_per_class=4, seed=1)
    config = tiny_config(name="packaged", workers=1, batch_size=64,
                         phases=[{"size": 16, "epochs": 1, "recipe": "light"},
                                 {"size": 16, "epochs": 1, "recipe": "tiny-imagenet-14.yaml"}],
                         mining={"k": 2, "epochs": 1})
    (outside / "small.yaml").write_text(yaml.safe_dump(config))
    res = _run([str(bin_dir / "augmine"), "demo", "--out", "demo", "--data", str(data),
                "--config", "small.yaml"], cwd=outside, env=env, timeout=600)
    assert "3/5 training packaged at 16 and 16 px (small.yaml)" in res.stdout, res.stdout
    assert "net of control" in res.stdout and "augmine app" in res.stdout, res.stdout
    assert (outside / "demo" / "checkpoints" / "last.keras").is_file()
    assert (outside / "demo" / "inspection" / "inspection.json").is_file()
    recorded = yaml.safe_load((outside / "demo" / "config.yaml").read_text())
    assert [Path(p["recipe"]).parent.name for p in recorded["phases"]] == ["builtin"] * 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_installed_app_serves_and_renders_builtin_recipes(installed, outside):
    bin_dir, env = installed
    port = _free_port()
    log = open(outside / "app.log", "wb")
    proc = subprocess.Popen([str(bin_dir / "augmine"), "app", "--no-browser", "--port", str(port),
                             "--address", "127.0.0.1"], cwd=outside, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(proc, f"http://127.0.0.1:{port}/_stcore/health", outside / "app.log", 90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        stop(proc)
        log.close()
    # the served script itself, run once headless from the installed package: the browser
    # page lists the built-in recipes shipped in the wheel
    data = outside / "data"
    from augmine.data.synth import write_synthetic_dataset

    write_synthetic_dataset(data, num_classes=3, train_per_class=4, val_per_class=2, seed=2)
    code = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        from augmine.app import APP_FILE
        sys.argv[:] = [str(APP_FILE), "--data", {str(data)!r}]   # as `augmine app --data` does
        at = AppTest.from_file(str(APP_FILE), default_timeout=120)
        at.run()
        assert at.selectbox(key="data_path").value == {str(data.resolve())!r}
        assert not at.exception, [e.value for e in at.exception]
        print(sorted(o for s in at.selectbox for o in s.options if str(o).endswith(".yaml")))
    """)
    out = _run([str(bin_dir / "python"), "-c", code], cwd=outside, env=env).stdout
    for name in ("light", "none", "tiny-imagenet-14", "trivial-augment"):
        assert f"'built-in: {name}.yaml'" in out, out
    assert "cpu-small.yaml" not in out    # training configs are not offered as recipes
