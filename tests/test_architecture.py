"""The package's shape, read from the source with ``ast`` (nothing is imported):
no import cycles, no module reaching into another module's private names, and one owner
of the run-folder layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "augmine"
# The layers, top (imported by everything below) to bottom: a module may import from its own
# layer and the layers above it, never below (ARCHITECTURE.md). Each layer is a subpackage.
LAYERS = (("core",), ("data",), ("augment",), ("feed",), ("model",), ("runs",), ("analysis",),
          ("train",), ("rounds",), ("experiments",), ("cli", "app"))
# File names of the run folder; each must be spelt out in exactly one module (its owner).
RUN_FOLDER_FILES = ("state.json", "history.csv", "config.yaml")


# --------------------------------------------------------------------------- reading the package

def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} for every ``.py`` file of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def resolve_from(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    """The absolute module a ``from X import ...`` in ``module`` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package(module, modules):
        base = base[:-1]                      # a plain module's "." is its package
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True when ``node`` sits under ``if TYPE_CHECKING:`` (never runs)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                return True
    return False


class Imports:
    """Every import of one module: edges to package modules and names taken from them."""

    def __init__(self, module: str, modules: dict[str, Path]):
        self.module = module
        tree = ast.parse(modules[module].read_text(encoding="utf-8"), str(modules[module]))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        self.edges: dict[str, int] = {}             # imported package module -> first line
        self.names: list[tuple[str, str, int]] = []  # (source module, name, line)
        self.aliases: dict[str, str] = {}           # local name -> package module it binds
        self.tree = tree
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or \
                    type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        self.edges.setdefault(alias.name, node.lineno)
                        if alias.asname:
                            self.aliases[alias.asname] = alias.name
                continue
            source = resolve_from(module, node, modules)
            if source not in modules:
                continue                                    # a third-party module
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:                          # `from . import atomic`
                    self.edges.setdefault(sub, node.lineno)
                    self.aliases[alias.asname or alias.name] = sub
                    self.names.append((source, alias.name, node.lineno))
                else:
                    self.edges.setdefault(source, node.lineno)
                    self.names.append((source, alias.name, node.lineno))


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, Imports]:
    modules = modules or module_files()
    return {m: Imports(m, modules) for m in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete loop through the component, for the failure message: a -> b -> a."""
    members = set(comp)
    start = comp[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return comp


def allowed_private(importer: str, source: str, name: str) -> bool:
    """A private name may come from the importer itself or from ``_internal`` of one of its
    enclosing packages (the shared-helpers module); a private ``_internal`` module is fine too."""
    if source == importer:
        return True
    packages = [".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)]
    internal = {f"{p}._internal" for p in packages}
    return source in internal or f"{source}.{name}" in internal


def private_uses(imports: Imports) -> list[str]:
    """``from x import _y`` and ``x._y`` (x an alias of another package module) in one module."""
    bad = []
    for source, name, line in imports.names:
        if name.startswith("_") and not name.startswith("__") and \
                not allowed_private(imports.module, source, name):
            bad.append(f"{imports.module}:{line} imports {source}.{name}")
    for node in ast.walk(imports.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.attr.startswith("_") and not node.attr.startswith("__"):
            target = imports.aliases.get(node.value.id)
            if target and target != imports.module and \
                    not allowed_private(imports.module, target, node.attr):
                bad.append(f"{imports.module}:{node.lineno} uses {target}.{node.attr}")
    return bad


def layout_strings(path: Path) -> dict[str, list[int]]:
    """{run-folder file name: lines} where ``path`` spells it as a path string (the name
    alone or ending a path, outside docstrings and messages)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docstrings:
            for name in RUN_FOLDER_FILES:
                if node.value == name or node.value.endswith("/" + name):
                    found.setdefault(name, []).append(node.lineno)
    return found


# --------------------------------------------------------------------------- the checker itself

def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_lazy_relative_cycles_and_private_imports(tmp_path):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import run\n",
        "pkg/b.py": "def run():\n    from . import c\n    return c._helper()\n",
        "pkg/c.py": "def _helper():\n    from .a import run\n",
        "pkg/_internal.py": "def _shared(): pass\n",
        "pkg/sub/__init__.py": "from .. import _internal\nfrom .._internal import _shared\n"
                               "from ..a import _x\n",
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import _T\n",
    })
    modules = module_files(pkg)
    graph = import_graph(modules)
    edges = {m: set(i.edges) for m, i in graph.items()}
    assert edges["pkg.b"] == {"pkg.c"} and edges["pkg.sub"] == {"pkg._internal", "pkg.a"}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycle_path(edges, ["pkg.a", "pkg.b", "pkg.c"]) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    bad = [b for i in graph.values() for b in private_uses(i)]
    assert sorted(bad) == ["pkg.b:3 uses pkg.c._helper", "pkg.sub:3 imports pkg.a._x"]


def test_checker_finds_layout_strings_outside_docstrings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""writes state.json"""\nSTATE = "state.json"\n'
                    'p = run / "reports/history.csv"\nmsg = "no state.json here"\n')
    assert layout_strings(path) == {"state.json": [2], "history.csv": [3]}


# --------------------------------------------------------------------------- the package

def test_no_import_cycles():
    graph = import_graph()
    edges = {m: set(i.edges) - {m} for m, i in graph.items()}
    found = cycles(edges)
    loops = []
    for comp in found:
        path = cycle_path(edges, comp)
        loops.append(" -> ".join(f"{a} (line {graph[a].edges[b]})" if b else a
                                 for a, b in zip(path, path[1:] + [None]))
                     + f"  [modules in the cycle: {', '.join(comp)}]")
    assert not loops, "import cycles (lazy imports included):\n  " + "\n  ".join(loops)


def test_no_private_names_across_modules():
    bad = [b for imports in import_graph().values() for b in private_uses(imports)]
    assert not bad, ("private names used across modules; make them public or move them to "
                     "augmine/_internal.py:\n  " + "\n  ".join(sorted(bad)))


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``augmine.<layer>...``; None for the package root."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), -1)


def test_every_module_lives_in_a_layer_package():
    stray = [m for m in module_files() if layer_of(m) == -1]
    assert not stray, (f"modules outside the layer packages {[n for l in LAYERS for n in l]}: "
                       f"{stray}; move them into the package of their layer (ARCHITECTURE.md)")


def test_layers_import_only_their_own_layer_and_the_layers_above():
    upward = []
    for module, imports in import_graph().items():
        here = layer_of(module)
        if here is None:
            continue
        for target, line in imports.edges.items():
            there = layer_of(target)
            if there is not None and there > here:
                upward.append(f"{module}:{line} imports {target} "
                              f"(layer {'/'.join(LAYERS[there])} is below {'/'.join(LAYERS[here])})")
    assert not upward, "imports against the layer order (ARCHITECTURE.md):\n  " + "\n  ".join(upward)


@pytest.mark.parametrize("name", RUN_FOLDER_FILES)
def test_run_folder_layout_has_one_owner(name):
    owners = {mod: found[name] for mod, path in module_files().items()
              if name in (found := layout_strings(path))}
    assert len(owners) == 1, (f"{name!r} is spelt out in {len(owners)} modules, want exactly one "
                              f"(the run-folder owner): {owners}")


# --------------------------------------------------------------------------- dependencies

# import name -> distribution, where they differ; absl comes with TensorFlow (used only to
# quiet it), jax and torch are optional backends (imported only when Keras runs on them)
DISTRIBUTION = {"cv2": "opencv-python-headless", "sklearn": "scikit-learn", "yaml": "pyyaml",
                "absl": "tensorflow"}
OPTIONAL = {"jax", "torch", "tensorflow"}


def test_every_package_imported_directly_is_declared_in_setup_cfg():
    import configparser
    import re
    import sys

    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE.parent / "setup.cfg")
    declared = set()
    for block in [cfg["options"]["install_requires"], *cfg["options.extras_require"].values()]:
        declared |= {re.split(r"[<>=\[; ]", line.strip())[0].lower()
                     for line in block.splitlines() if line.strip()}
    missing = {}
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in ("augmine", "__future__"):
                    continue
                dist = DISTRIBUTION.get(top, top).lower()
                if dist not in declared and top not in OPTIONAL:
                    missing.setdefault(dist, name)
    assert not missing, f"imported but not in setup.cfg: {missing}"


# --------------------------------------------------------------------------- one owner per concept

def _imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports (``import a.b``, ``from a.b import c``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
    return out


def _defined_functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _string_constants(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _attribute_calls(path: Path) -> set[str]:
    return {n.func.attr for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}


def _patches_other_packages(path: Path) -> bool:
    """Whether a module imports Keras' private ``keras.src`` or assigns an attribute of a
    name it imported from another package (``spawn.get_preparation_data = ...``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names
                         if a.name.split(".")[0] != "augmine"}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module and \
                node.module.split(".")[0] not in ("augmine", "__future__"):
            if node.module.startswith("keras.src"):
                return True
            imported |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(target, ast.Attribute) and isinstance(root, ast.Name) and \
                    root.id in imported:
                return True
    return False


def _calls_named(node, names) -> bool:
    """Whether ``node`` (an expression) calls a function or method named one of ``names``."""
    return any(isinstance(n, ast.Call) and
               (n.func.attr if isinstance(n.func, ast.Attribute) else
                getattr(n.func, "id", None)) in names for n in ast.walk(node))


def _means(tree):
    """The expressions averaged in ``tree``: ``x.mean()`` gives x, ``np.mean(x)`` gives x."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                n.func.attr in ("mean", "nanmean", "average"):
            yield from n.args if isinstance(n.func.value, ast.Name) and \
                n.func.value.id in ("np", "numpy") else [n.func.value]


def _is_equality(node) -> bool:
    return isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq) for op in node.ops)


def _computes_top1(path: Path) -> bool:
    """Whether a module scores top-1: compares an argmax with labels (``probs.argmax(1) ==
    y``) or averages an equality (``np.mean(pred == y)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(_is_equality(n) and any(_calls_named(side, {"argmax"})
                                       for side in (n.left, *n.comparators))
               for n in ast.walk(tree)) or \
        any(_is_equality(x) for m in _means(tree) for x in ast.walk(m))


def _computes_macro_f1(path: Path) -> bool:
    """Whether a module averages per-class F1 computed from labels (``f1_scores(...).mean()``,
    ``f1 = class_scores(...)["f1"]; f1[mask].mean()``) or defines the macro average."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scorers = {"f1_scores", "class_scores"}
    scored = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and _calls_named(n.value, scorers) for t in n.targets if isinstance(t, ast.Name)}
    return any(_calls_named(m, scorers) or
               any(isinstance(x, ast.Name) and x.id in scored for x in ast.walk(m))
               for m in _means(tree)) or \
        bool({"macro_f1", "macro_mean"} & _defined_functions(path))


# concept -> (how a module shows it does that job, the modules allowed to)
OWNERS = {
    "did-you-mean hints (difflib)": (lambda p: any(m.startswith("difflib") for m in _imports_of(p)),
                                     {"augmine.core.naming"}),
    "per-class metrics (sklearn.metrics)": (
        lambda p: any(m.startswith("sklearn.metrics") for m in _imports_of(p)),
        {"augmine.analysis.metrics"}),
    "bootstrap resampling": (lambda p: any("bootstrap" in f for f in _defined_functions(p)),
                             {"augmine.analysis.effects"}),
    "where the shipped recipes and app are": (
        lambda p: bool({"augmine.builtin", "augmine.apps"} & _string_constants(p)),
        {"augmine.core.runtime"}),
    # a run's checkpoints (runs.checkpoints) and a user's own `.keras` model file (model.sources)
    "loading Keras model files": (lambda p: "load_model" in _attribute_calls(p),
                                  {"augmine.runs.factories", "augmine.model.sources"}),
    # bars drawn only on a terminal (core.runtime.progress_bar) and the run's epoch counter
    # that is drawn nowhere (train.fit.run_progress)
    "progress bars (tqdm)": (lambda p: any(m.startswith("tqdm") for m in _imports_of(p)),
                             {"augmine.core.runtime", "augmine.train.fit"}),
    # every patch of another package, with the versions it was written for and its guard
    "patching another package": (_patches_other_packages, {"augmine.core.compat"}),
    # top-1 and macro F1 (over the classes present in the labels): analysis.metrics' top1,
    # top1_hits, macro_f1 and macro_mean, called everywhere else
    "top-1 accuracy": (_computes_top1, {"augmine.analysis.metrics"}),
    "macro F1": (_computes_macro_f1, {"augmine.analysis.metrics"}),
}


@pytest.mark.parametrize("code, top1, macro", [
    ("acc = float(np.mean(probs.argmax(1) == y))\n", True, False),
    ("hits = (pred == y).mean()\n", True, False),
    ("right = y == probs.argmax(axis=1)\n", True, False),
    ("f1 = f1_scores(y, pred, 5)\nm = lambda k: f1[k].mean()\n", False, True),
    ("m = np.mean(class_scores(y, pred, 5)['f1'])\n", False, True),
    ("from augmine.analysis.metrics import macro_f1, top1\nm, a = macro_f1(y, p, 5), "
     "top1(y, probs)\nshare = np.mean(x >= 0.5)\nt = f1.mean() - f1.std()\n", False, False),
])
def test_checker_finds_top1_and_macro_f1_outside_their_owner(tmp_path, code, top1, macro):
    path = tmp_path / "m.py"
    path.write_text("import numpy as np\n" + code)
    assert (_computes_top1(path), _computes_macro_f1(path)) == (top1, macro)


@pytest.mark.parametrize("concept", OWNERS)
def test_each_concept_has_one_owner(concept):
    shows, owners = OWNERS[concept]
    doers = {m for m, path in module_files().items() if shows(path)}
    assert doers <= owners, (f"{concept}: done in {sorted(doers - owners)} too; use the owner "
                             f"{sorted(owners)} instead")
    assert doers, f"{concept}: the owner {sorted(owners)} no longer does it; update OWNERS"


def test_architecture_md_names_every_module():
    """The layer table of ARCHITECTURE.md lists each module of the package (by its name in
    backticks), so the map a new contributor reads is the tree that exists."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [m for m, path in module_files().items()
               if path.name not in ("__init__.py", "_internal.py")
               and f"`{m.rsplit('.', 1)[-1]}`" not in text]
    assert not missing, f"modules ARCHITECTURE.md does not name: {missing}"
