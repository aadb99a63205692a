"""Every command and file the documentation and the program's own hints name exists.

Read from README.md, ARCHITECTURE.md, docs/*.md, examples/README.md, the string literals
(messages, docstrings) of augmine/, apps/, examples/ and benchmarks/, and the comments of
the built-in recipes and configs (recipes/*.yaml, examples/*.yaml):

- each ``augmine <command> [<subcommand>] [--option ...]`` is a command path of the click
  CLI, each ``--option`` is one of that command's options, and a value given to a choice
  option is one of its choices;
- each repo-relative path in backticks (``recipes/...``, ``apps/...``, ``augmine/...``,
  ``docs/...``, ``examples/...``, ``benchmarks/...``, ``tests/...``, ``.ci/...``) exists,
  each markdown link to a local file resolves, and each ``test_x.py::test_name`` a page
  cites is a test in tests/.

Placeholders (``RUN``, ``DATA``, ``{run}``, ``<arm>``, ``...``) are skipped, not checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from augmine.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "examples" / "README.md",
                *(ROOT / "docs").glob("*.md")])
SOURCES = sorted(p for folder in ("augmine", "apps", "examples", "benchmarks")
                 for p in (ROOT / folder).rglob("*.py"))
CONFIGS = sorted([*(ROOT / "recipes").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])

WORD = re.compile(r"[a-z][a-z0-9-]*\Z")
# `augmine` at a command's start (not `import augmine`, `augmine.x`, `augmine/`, `augmine's`)
COMMAND = re.compile(r"(?<![\w.\-/'])(?<!install )augmine(?= |\Z)((?: +[^\s`#|;&()\"']+)*)")
PREFIXES = ("recipes", "apps", "augmine", "docs", "examples", "benchmarks", "tests", ".ci")
PATH = re.compile(r"(?<![\w./\-~])((?:%s)/[\w./\-]*)" % "|".join(re.escape(p) for p in PREFIXES))
TEST_REF = re.compile(r"(?<![\w/])(test_\w+\.py)(?:::(\w+))?")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PLACEHOLDER = re.compile(r"[<{*]|\.\.\.|[A-Z]{2,}")


# --------------------------------------------------------------------------- reading the texts

def code_spans(text: str) -> list[str]:
    """The code of a markdown page: each fenced block's lines and each inline code span."""
    out, rest, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        (out if fenced else rest).append(line)
    prose = "\n".join(rest)
    # inline spans: `x` or ``x`` (a double-backtick span may hold single backticks)
    spans = re.findall(r"``(.+?)``|`([^`\n]+)`", prose, flags=re.S)
    return out + [a or b for a, b in spans]


def render(node: ast.AST) -> str:
    """A string literal's text; an f-string's replacement fields become ``{}``."""
    if isinstance(node, ast.Constant):
        return node.value
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def strings(path: Path) -> list[str]:
    """Every string literal of a Python file (docstrings and messages), f-strings whole."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    inner = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
             for v in node.values}
    return [render(node) for node in ast.walk(tree)
            if (isinstance(node, ast.JoinedStr)
                or (isinstance(node, ast.Constant) and isinstance(node.value, str)))
            and id(node) not in inner]


def comments(path: Path) -> list[str]:
    """The comment lines of a YAML file (built-in recipes and configs quote commands there)."""
    lines = [line.split("#", 1)[1].strip()
             for line in path.read_text(encoding="utf-8").splitlines() if "#" in line]
    joined: list[str] = []
    for line in lines:                      # a command continued with a trailing backslash
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line
        else:
            joined.append(line)
    return joined


def backticked(text: str) -> list[str]:
    """The parts of a Python string between backticks (`x` or ``x``)."""
    return [a or b for a, b in re.findall(r"``(.+?)``|`([^`]+)`", text, flags=re.S)]


# --------------------------------------------------------------------------- checking commands

def options(command: click.Command) -> dict[str, click.Parameter]:
    found = {"--help": None, "-h": None}
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                found[opt] = param
    return found


def check_command(words: str, strict: bool) -> str | None:
    """Why ``augmine WORDS`` does not resolve, or None. Not ``strict`` (prose): text whose
    first word names no command is not a command and passes."""
    tokens = words.split()
    command, path, i, given, args = cli, ["augmine"], 0, set(), 0
    while i < len(tokens):
        token = tokens[i].rstrip(".,:")
        if token.startswith("-") and len(token) > 1:
            name, _, value = token.partition("=")
            if name == "--":
                break
            param = options(command).get(name)
            if name not in options(command):
                return f"`{' '.join(path)}` has no option {name}"
            given.add(param)
            if isinstance(param, click.Option) and not param.is_flag:
                value = value or (tokens[i + 1] if i + 1 < len(tokens) else "")
                choices = getattr(param.type, "choices", None)
                if choices and WORD.match(value) and value not in choices:
                    return f"`{' '.join(path)} {name}` takes {'/'.join(choices)}, not {value!r}"
                i += 0 if "=" in token else 1
        elif isinstance(command, click.Group):
            if token in command.commands:
                command = command.commands[token]
                path.append(token)
            elif not WORD.match(token):
                break               # a placeholder (RUN, ...) after a group
            elif strict or path != ["augmine"]:
                return f"`{' '.join(path)}` has no command {token!r}"
            else:
                return None         # prose: "augmine turns the loop ..."
        else:
            args += 1
        i += 1
    missing = [p.opts[-1] for p in command.params if p.required and isinstance(p, click.Option)
               and p not in given]
    if args and missing and not given & {None}:     # (--help names no parameter)           # a whole command (with its arguments) lacks a required option
        return f"`{' '.join(path)}` needs {', '.join(missing)}"
    return None


def command_mentions() -> list[tuple[str, str, bool]]:
    """(where, the words after `augmine`, strict) for every mention of the command."""
    found = []
    for page in PAGES:
        for code in code_spans(page.read_text(encoding="utf-8")):
            for words in COMMAND.findall(code):
                found.append((page.relative_to(ROOT).as_posix(), words, True))
    for source in SOURCES:
        where = source.relative_to(ROOT).as_posix()
        for text in strings(source):
            quoted = backticked(text)
            for code in quoted:
                found += [(where, words, True) for words in COMMAND.findall(code)]
            for part in re.split(r"`+[^`]*`+", text):   # outside backticks: prose too
                found += [(where, words, False)
                          for words in COMMAND.findall(part.replace(", ", " ; "))]
    for config in CONFIGS:
        for line in comments(config):
            found += [(config.relative_to(ROOT).as_posix(), words, line.startswith("augmine "))
                      for words in COMMAND.findall(line)]
    return found


# --------------------------------------------------------------------------- checking paths

def path_mentions() -> list[tuple[str, str]]:
    """(where, repo-relative path) for every path in backticks of the pages and sources."""
    found = []
    texts = [(p, code) for p in PAGES for code in code_spans(p.read_text(encoding="utf-8"))]
    texts += [(s, code) for s in SOURCES for text in strings(s) for code in backticked(text)]
    texts += [(c, line) for c in CONFIGS for line in comments(c)]
    for where, code in texts:
        for path in PATH.findall(code):
            path = path.rstrip(".,:")
            if not PLACEHOLDER.search(path) and "NAME" not in path:
                found.append((where.relative_to(ROOT).as_posix(), path))
    return found


def cited_test_problem(where: str, name: str, test: str | None) -> str | None:
    file = ROOT / "tests" / name
    if not file.is_file():
        return f"{where}: tests/{name} does not exist"
    if test and not re.search(rf"^def {test}\b", file.read_text(encoding="utf-8"), re.M):
        return f"{where}: tests/{name} has no test {test}"
    return None


# --------------------------------------------------------------------------- the tests

def test_the_checker_catches_what_does_not_resolve():
    assert check_command("mine rounds RUN", strict=True)
    assert check_command("mine round RUN --mod pairs", strict=True)
    assert check_command("mine round RUN --mode pair", strict=True)
    assert check_command("trian cpu-small", strict=True)
    assert check_command("trian cpu-small", strict=False) is None   # prose, not a command
    assert check_command("train cpu-small", strict=True)       # --run-dir is required
    assert check_command("train cpu-small --run-dir runs/x", strict=True) is None
    assert check_command("mine round RUN --mode pairs --partners 1", strict=True) is None
    assert check_command("recipe compare none light --strength=0,1 -h", strict=True) is None
    assert COMMAND.findall("from augmine.x import y; augmine's; augmine/cli") == []
    assert COMMAND.findall("augmine mine plan RUN --force") == [" mine plan RUN --force"]
    assert code_spans("a `augmine app` b\n```bash\naugmine demo\n```\n") == \
        ["augmine demo", "augmine app"]


def test_every_augmine_command_in_the_docs_and_hints_exists():
    mentions = command_mentions()
    assert len({w for _, w, _ in mentions}) > 100, "the extraction found too few commands"
    broken = sorted({f"{where}: augmine{words}: {why}" for where, words, strict in mentions
                     if (why := check_command(words, strict))})
    assert not broken, "commands that do not resolve:\n  " + "\n  ".join(broken)


def test_every_file_the_docs_and_hints_name_exists():
    mentions = path_mentions()
    assert any(p.startswith("recipes/") for _, p in mentions)
    broken = sorted({f"{where}: {path}" for where, path in mentions if not (ROOT / path).exists()})
    assert not broken, "paths that do not exist:\n  " + "\n  ".join(broken)


def test_every_local_link_and_cited_test_exists():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(ROOT).as_posix()
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{where}: link {target}")
        for code in code_spans(text):
            for name, test in TEST_REF.findall(code):
                if why := cited_test_problem(where, name, test or None):
                    broken.append(why)
    assert not broken, "links and tests that do not resolve:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("page", ["docs/guide.md", "docs/configs.md", "docs/run-folder.md",
                                  "docs/backends.md", "docs/reliability.md",
                                  "docs/benchmarks.md"])
def test_the_readme_links_every_docs_page(page):
    assert (ROOT / page).is_file()
    assert f"({page})" in (ROOT / "README.md").read_text(encoding="utf-8")
