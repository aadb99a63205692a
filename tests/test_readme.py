"""What the README says an install contains is true."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from augmine.core.runtime import available_configs, available_recipes

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def extras() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return dict(cfg["options.extras_require"])


def test_the_main_set_up_command_installs_what_the_demo_tells_the_user_to_run():
    """The demo ends with `open the app: augmine app ...`; the set-up installs Streamlit."""
    setup = re.search(r"```bash\n(python3 -m venv .venv && .*augmine demo)\n```", README)
    assert setup, "the README's first set-up command runs augmine demo"
    wanted = re.search(r'pip install -e "\.\[([\w,]+)\]"', setup.group(1))
    assert wanted and "app" in wanted.group(1).split(",")
    assert "streamlit" in extras()["app"]
    demo = (ROOT / "augmine" / "experiments" / "demo.py").read_text(encoding="utf-8")
    assert "open the app: {command_line('app'" in demo


def test_the_built_ins_the_readme_lists_are_the_ones_that_ship():
    para = README[README.index("Recipes and configs are given as a file path"):]
    para = para[:para.index("\n\n")]
    recipes, configs = para.split("the configs")
    named = lambda text: set(re.findall(r"`([\w-]+)`", text))  # noqa: E731
    assert named(recipes) - {"augmine"} == set(available_recipes())
    assert named(configs.split("ship inside")[0]) == set(available_configs())


def test_ci_runs_the_readmes_test_commands_verbatim():
    """The README's test command and its JAX and PyTorch jobs are lines of .ci/run as written."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    tests = [b for b in blocks if "pytest" in b]
    assert len(tests) == 3, "the README shows the test command and the JAX and PyTorch jobs"
    assert [b for b in tests if b not in ci] == []
    assert any("KERAS_BACKEND=jax" in b for b in tests)
    assert any("KERAS_BACKEND=torch" in b for b in tests)
