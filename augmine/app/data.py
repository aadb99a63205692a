"""Pure helpers behind the Streamlit app (``apps/streamlit_app.py``); no Streamlit in here.

The app is a thin layer: it draws widgets and calls these functions, which take and
return plain values (numpy arrays, dicts, strings) so they are tested without a browser.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir

DISPLAY_PX = 128          # augmented samples are shown at least this many pixels wide
RED = (220, 30, 30)
GREEN = (30, 160, 60)


# --------------------------------------------------------------------------- images

def upscale_nearest(img: np.ndarray, min_side: int = DISPLAY_PX) -> np.ndarray:
    """Enlarge an (H, W, 3) uint8 image by an integer factor with nearest neighbour.

    The factor is the smallest integer that makes the longer side at least ``min_side``
    (1 when it already is), so pixels stay square and sharp instead of the browser's
    blurry smoothing of a 16 px image.
    """
    import cv2

    h, w = img.shape[:2]
    factor = max(1, math.ceil(min_side / max(h, w, 1)))
    if factor == 1:
        return img
    return cv2.resize(img, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)


def with_border(img: np.ndarray, colour: Sequence[int] = RED, width: int = 4) -> np.ndarray:
    """A copy of ``img`` (H, W, 3) framed by a ``width`` px line in ``colour`` drawn inside
    its edge (the size stays the same, so the browser does not rescale it)."""
    import cv2

    h, w = img.shape[:2]
    out = np.ascontiguousarray(img).copy()
    # cv2 centres the line on the rectangle: twice the width puts ``width`` px inside
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), tuple(int(c) for c in colour), 2 * width)
    return out


def pad(img: np.ndarray, px: int = 3, colour: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """``img`` (H, W, 3) with a ``px`` wide margin of ``colour`` on every side (grid spacing)."""
    import cv2

    return cv2.copyMakeBorder(img, px, px, px, px, cv2.BORDER_CONSTANT,
                              value=tuple(int(c) for c in colour))


def png_bytes(img: np.ndarray) -> bytes:
    """Encode an RGB uint8 image as PNG (fast, lossless: sharp pixels for the browser)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - only for unsupported arrays
        raise AugmineError(f"cannot encode an image of shape {img.shape} as PNG")
    return buf.tobytes()


# --------------------------------------------------------------------------- recipes

def recipe_yaml(name: str, description: str, transforms: Sequence[dict],
                classes: dict | None = None) -> str:
    """Recipe YAML text (the format ``augmine recipe validate`` reads) from edited entries.

    ``transforms``: dicts ``{transform, p, why, <args>}``; tuples become YAML lists.
    ``classes``: the recipe's per-class overrides, kept; a ``without:`` name whose
    transform was switched off is dropped (there is nothing left to leave out).
    """
    from augmine.augment.checks import transform_names
    from augmine.augment.recipes import dump_recipe

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    entries = [plain(dict(t)) for t in transforms]
    present = set(transform_names(entries))
    kept = {}
    for key, override in (classes or {}).items():
        override = plain(dict(override))
        if "without" in override:
            override["without"] = [w for w in override["without"] if w in present]
            if not override["without"]:
                del override["without"]
        kept[str(key)] = override
    return dump_recipe({"name": name, "description": description, "transforms": entries,
                        "classes": kept})


def load_recipe_text(text: str, name: str = "edited"):
    """Validate recipe YAML ``text`` like a recipe file named ``<name>.yaml``; returns the Recipe.

    Raises a one-line AugmineError (as :func:`augmine.augment.recipes.load_recipe` does).
    """
    import yaml

    from augmine.augment.recipes import parse_recipe

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AugmineError(f"{name}.yaml: YAML error: {' '.join(str(exc).split())}") from None
    return parse_recipe(data, f"{name}.yaml")


def is_augmentation_recipe(path: str | os.PathLike) -> bool:
    """True for a recipe file (has ``transforms:``), False for training configs and other YAML."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("transforms"), list)


def transform_defaults(name: str) -> dict[str, Any]:
    """The constructor arguments of albumentations transform ``name`` with their defaults.

    Shown in the app as a reminder of what can be added; {} when the name is unknown.
    """
    import albumentations as A

    cls = getattr(A, name, None)
    if cls is None:
        return {}
    out = {}
    for pname, par in inspect.signature(cls.__init__).parameters.items():
        if pname in ("self", "args", "kwargs", "p", "always_apply", "strict") or \
                par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
            continue
        out[pname] = None if par.default is inspect.Parameter.empty else par.default
    return out


def param_kind(value: Any) -> str:
    """How the app edits one recipe argument: bool, int, float, pair, text or yaml."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, (list, tuple)) and len(value) == 2 and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return "pair"
    if isinstance(value, str):
        return "text"
    return "yaml"


def augment_samples(image: np.ndarray, recipe, size: int, n: int, seed: int) -> list[np.ndarray]:
    """``n`` augmented versions (each (size, size, 3) uint8) of ``image`` under ``recipe``.

    ``recipe``: a Recipe, recipe path or name (see :func:`augmine.augment.recipes.build_compose`).
    The same ``seed`` gives the same samples.
    """
    from augmine.augment.recipes import build_compose

    compose = build_compose(recipe, size, seed=int(seed))
    return [compose(image=image)["image"] for _ in range(int(n))]


def recipe_choices(run_dir=None, folder: str | os.PathLike | None = None
                   ) -> tuple[dict[str, str], str | None]:
    """The recipes the browser offers: ``({path: label}, default path)``.

    In order: the run's own (its config's phases and mining recipe, its gentle rounds'
    tailored recipes), the recipe files (``*.yaml``/``*.yml`` with ``transforms:``) in
    ``folder`` (the working folder), then the built-ins. A file listed twice keeps one
    entry whose label names every role (``run phase 1 (16 px), run phase 2 (32 px):
    light.yaml``). The default is the run's last phase's recipe, else the built-in
    ``tiny-imagenet-14.yaml``, else the first.
    """
    from augmine.augment.recipes import recipes_dir, resolve_recipe

    roles: dict[str, list[str]] = {}
    default = None

    def add(path, role: str) -> str | None:
        try:
            key = str(Path(resolve_recipe(path)).resolve())
        except AugmineError:
            return None
        roles.setdefault(key, []).append(role)
        return key

    if run_dir:
        run = RunDir.of(run_dir)
        try:
            cfg = run.config
        except AugmineError:
            cfg = None
        if cfg is not None:
            for i, phase in enumerate(cfg.phases, 1):
                default = add(phase.recipe, f"run phase {i} ({phase.size} px)") or default
            if cfg.mining is not None and cfg.mining.recipe:
                add(cfg.mining.recipe, "run mining")
        for stage, path in run.gentle_recipes().items():
            add(path, f"run {stage} gentle")
    for where, role in ((folder, "here"), (recipes_dir(), "built-in")):
        if where and Path(where).is_dir():
            for path in sorted(Path(where).glob("*.y*ml")):
                if is_augmentation_recipe(path):
                    key = add(path, role)
                    if role == "built-in" and path.name == "tiny-imagenet-14.yaml":
                        default = default or key
    labels = {path: f"{', '.join(dict.fromkeys(rs))}: {Path(path).name}"
              for path, rs in roles.items()}
    return labels, default or next(iter(labels), None)


def check_recipe_path(text: str) -> str:
    """The absolute path of the recipe file typed as ``text`` (``~`` expanded), checked
    by loading it; a one-line AugmineError when it is missing or not a valid recipe."""
    from augmine.augment.recipes import load_recipe

    path = Path(text.strip().strip("'\"")).expanduser()
    if not path.is_file():
        raise AugmineError(f"{path}: no such recipe file; type the path of a .yaml recipe "
                           "(`augmine recipe validate FILE` checks one)")
    load_recipe(path)
    return str(path.resolve())


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only (unset
    counts as loopback: ``augmine app`` binds 127.0.0.1 unless told otherwise)."""
    import ipaddress

    if not address or address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def class_preview(recipe, class_ids: Sequence[str], class_names: Sequence[str],
                  label: int) -> tuple[Any, str | None, str | None]:
    """``(the recipe class `label` trains under, note, warning)``.

    A recipe with ``classes:`` overrides gives the class's own recipe
    (:func:`augmine.augment.recipes.recipe_for_class`) and a note naming the override; overrides
    that do not match this dataset's classes give the recipe unchanged and the one-line
    problem as the warning. ``class_ids``/``class_names``: the dataset's, in label order.
    """
    from augmine.augment.recipes import class_overrides, recipe_for_class

    if not recipe.classes:
        return recipe, None, None
    try:
        overrides = class_overrides(recipe, class_ids, class_names)
    except AugmineError as exc:
        return recipe, None, f"{exc}; previewed without the class overrides"
    override = overrides.get(int(label))
    name = class_names[int(label)]
    if override is None:
        return recipe, (f"{name} has no override of its own ({len(overrides)} other "
                        "classes have one): previewed as the recipe"), None
    said = [f"strength {override['strength']:g}"] if "strength" in override else []
    said += [f"without {', '.join(override['without'])}"] if override.get("without") else []
    return recipe_for_class(recipe, override), (
        f"{name} trains under its own override ({'; '.join(said) or 'as the recipe'}): "
        "previewed as it trains"), None


# --------------------------------------------------------------------------- run folders

def weakest_submatrix(confusion: np.ndarray, f1: np.ndarray, k: int):
    """The ``k`` classes with the lowest F1 and their rows/columns of ``confusion``.

    ``confusion``: (C, C) counts, rows = true class, columns = predicted; ``f1``: (C,).
    Returns ``(idx (k,), sub (k, k))`` with ``idx`` ordered from weakest up.
    """
    confusion = np.asarray(confusion)
    k = max(1, min(int(k), confusion.shape[0]))
    idx = np.argsort(np.asarray(f1, dtype=float), kind="stable")[:k]
    return idx, confusion[np.ix_(idx, idx)]


def pair_samples(y_true: np.ndarray, probs: np.ndarray, a: int, b: int) -> dict[str, np.ndarray]:
    """Validation samples of classes ``a`` and ``b`` with what the model said about them.

    ``y_true``: (N,) labels; ``probs``: (N, C). Returns arrays over the selected samples:
    ``index`` (into the N val samples), ``true``, ``pred``, ``confidence`` (probability of
    ``pred``), ``correct`` and ``group``: 0 for the pair's cross-confusions (``a``
    predicted as ``b`` and ``b`` as ``a``), 1 for other misclassified samples, 2 for
    correct ones; ordered by group, then most confident first.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    sel = np.flatnonzero((y_true == a) | (y_true == b))
    pred = probs[sel].argmax(1)
    conf = probs[sel, pred].astype(float)
    correct = pred == y_true[sel]
    other = np.where(y_true[sel] == a, b, a)
    group = np.where(pred == other, 0, np.where(correct, 2, 1))
    order = np.lexsort((-conf, group))
    sel, pred, conf, correct, group = (x[order] for x in (sel, pred, conf, correct, group))
    return {"index": sel, "true": y_true[sel], "pred": pred, "confidence": conf,
            "correct": correct, "group": group}


def resolve_image_path(path: str, data_root: str | os.PathLike | None) -> str | None:
    """``path`` when it exists; else the same file under ``data_root`` (a moved dataset); else None.

    Tries the path's last 2 and 3 components (``val/images/x.JPEG``,
    ``val/<class>/x.jpg``, ``train/<wnid>/images/x.JPEG``) below ``data_root``.
    """
    if os.path.exists(path):
        return path
    if data_root:
        parts = Path(path).parts
        for k in (3, 4, 2):
            cand = Path(data_root, *parts[-k:])
            if len(parts) >= k and cand.exists():
                return str(cand)
    return None


def run_data_root(run_dir) -> str | None:
    """The dataset folder a run recorded (``data:`` in its config), or None.

    ``run_dir``: a path or :class:`~augmine.runs.rundir.RunDir`."""
    return RunDir.of(run_dir).data


def read_suspects(run_dir, stage: str) -> list[dict]:
    """Rows of a stage's ``suspects.csv`` (written by ``augmine mine suspects``); [] if none.

    ``run_dir``: a path or RunDir. Each row: ``name, path, split, scored,
    self_confidence (float), predicted_name, predicted_prob (float)`` (``split`` and
    ``scored`` are empty in files written before they were recorded).
    """
    import csv

    path = RunDir.of(run_dir).suspects_path(stage)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise AugmineError(f"{path}: unreadable ({exc}); rerun `augmine mine suspects`") from None
    for r in rows:
        for k in ("self_confidence", "predicted_prob"):
            try:
                r[k] = float(r.get(k) or "nan")
            except ValueError:
                r[k] = float("nan")
    return rows


def suspects_caption(rows: Sequence[dict]) -> str:
    """What the suspects grid shows, naming the split the rows were scored on (their
    ``split`` and ``scored`` columns)."""
    splits = [s for s in dict.fromkeys(r.get("split") or "" for r in rows) if s]
    scored = [s for s in dict.fromkeys(r.get("scored") or "" for r in rows) if s]
    what = ("Images of the weak classes the model believes least (lowest probability of "
            "their own label): possible label errors or odd images")
    if not splits:
        return (f"{what}. The split they were scored on is not recorded; rerun `augmine "
                "mine suspects` to record it.")
    how = f", {' and '.join(scored)}" if scored else ""
    return (f"{what}. Scored on {' and '.join(splits)} images{how} "
            "(`augmine mine suspects`).")


# --------------------------------------------------------------------------- pages

PAGE_SLUGS = {"Augmentation browser": "browser", "Confusion explorer": "confusion",
              "Recipe comparison": "comparison", "Affinity": "affinity"}


def page_slug(page: str) -> str:
    """The ``?page=`` value of a page title (:data:`PAGE_SLUGS`, else its lower case)."""
    return PAGE_SLUGS.get(page, page.lower().replace(" ", "-"))


def page_from_query(value: str | None, pages: Sequence[str]) -> str | None:
    """The page a ``?page=`` value names (its slug or title, any case, ``-``/``_`` for
    spaces), or None."""
    if not value:
        return None
    want = " ".join(str(value).replace("-", " ").replace("_", " ").lower().split())
    for page in pages:
        if want in (page.lower(), page_slug(page).replace("-", " ")):
            return page
    return None


def run_class_mismatch(run_dir, index) -> str | None:
    """One sentence when ``index`` (a DatasetIndex) does not hold the classes (ids, in
    order) the run recorded when it trained, naming the first differing class; None when
    they match or the run recorded none."""
    run = RunDir.of(run_dir)
    try:
        state = run.read_state() if run.has_state() else {}
    except AugmineError:
        return None
    if not state.get("class_ids"):
        return None
    diff = index.class_mismatch(state["class_ids"], state.get("class_names"))
    if diff is None:
        return None
    return (f"{index.root} does not hold the classes {run.path.name} was trained on: {diff}; "
            "its reports and these images do not belong together: choose the run's own "
            "dataset")


def comparison_rows(results: dict) -> list[dict]:
    """The table of a recipe comparison (:func:`augmine.experiments.compare.load_results`), two rows per
    arm (``final`` and ``best`` model): accuracies in %, 95% intervals as text, the paired
    difference in top-1 against the first arm in points, macro F1 %, epoch, size, the
    train-val gap (points) and training images/s; None where a value does not apply."""
    m = results["metrics"]

    def pct(v):
        return None if v is None else round(100 * float(v), 2)

    def span(lo, hi, sign=""):
        return f"{100 * lo:{sign}.1f} to {100 * hi:{sign}.1f}"

    rows = []
    for i, a in enumerate(results["arms"]):
        for which in ("final", "best"):
            t1, t5 = m[f"{which}_top1"], m[f"{which}_top5"]
            final = which == "final"
            rows.append({
                "arm": a["name"], "model": which,
                "top-1 %": pct(t1["mean"][i]), "top-1 95% CI": span(t1["low"][i], t1["high"][i]),
                "top-5 %": pct(t5["mean"][i]), "top-5 95% CI": span(t5["low"][i], t5["high"][i]),
                "top-1 vs first (pts)": pct(t1["diff"][i]) if i else None,
                "difference 95% CI": span(t1["diff_low"][i], t1["diff_high"][i], "+") if i
                else "",
                "macro F1 %": pct(a.get(f"{which}_macro_f1")),
                "epoch": a["epochs"] if final else a["best_epoch"],
                "size (px)": a["final_size"] if final else a["best_size"],
                "train-val gap (pts)": pct(a.get("gap")) if final else None,
                "images/s": round(a["images_per_s"]) if final and a.get("images_per_s")
                else None})
    return rows


# --------------------------------------------------------------------------- affinity

def affinity_command(run_dir) -> str:
    """The command that measures affinity on ``run_dir``, naming the recipe of the run's
    last phase when its config can be read (else ``RECIPE``)."""
    run = RunDir.of(run_dir)
    recipe = "RECIPE"
    try:
        last = run.config.phases[-1].recipe
        recipe = Path(last).stem if last else recipe
    except (AugmineError, AttributeError, IndexError):
        pass
    return f"augmine recipe affinity {recipe} --run {run.path}"


def affinity_cell(result: dict, c: int, k: int) -> dict:
    """Cell (class ``c``, column ``k``) of a saved affinity result: ``drop``, ``low``,
    ``high``, ``clean`` (class accuracy on clean images), ``support`` and ``order``: the
    class's val image indices (into ``result["val_paths"]``), the ones the column hurts
    most first (per-image clean minus augmented score, averaged over draws)."""
    from augmine.train.affinity import as_array

    labels = np.asarray(result["labels"])
    correct = np.asarray(result["correct"], dtype=np.float64)
    idx = np.flatnonzero(labels == c)
    hurt = correct[0, idx] - correct[k + 1, idx]
    order = idx[np.argsort(-hurt, kind="stable")]
    cell = {key: float(as_array(result[key])[c, k]) for key in ("drop", "low", "high")}
    return {**cell, "clean": float(as_array(result["clean"])[c]), "support": int(len(idx)),
            "order": order}


def clean_and_augmented(image: np.ndarray, recipe, size: int, seed: int) -> np.ndarray:
    """One (size, 2*size + 3, 3) uint8 strip: ``image`` at ``size`` px as the model saw it
    clean (left) and augmented by ``recipe`` (right, seeded), a white gap between."""
    from augmine.augment.recipes import Recipe, build_compose

    clean = build_compose(Recipe("clean", "", None, []), size)(image=image)["image"]
    aug = build_compose(recipe, size, seed=int(seed))(image=image)["image"]
    gap = np.full((size, 3, 3), 255, np.uint8)
    return np.concatenate([clean, gap, aug], axis=1)


def best_line(run_dir) -> str | None:
    """The run's best checkpoint as ``augmine train`` and ``augmine evaluate RUN`` name it
    (:func:`augmine.runs.checkpoints.best_summary`), in one caption; None when the run has none
    yet (or no readable state)."""
    from augmine.runs.checkpoints import best_summary

    try:
        best = best_summary(run_dir)
    except (AugmineError, OSError, KeyError, ValueError):
        return None
    if best is None:
        return None
    line = (f"Best checkpoint: {Path(best['checkpoint']).name}, epoch {best['epoch']} at "
            f"{best['size']} px, val top-1 {best['val_accuracy']:.2%} (what `augmine train` "
            "reports and `augmine evaluate RUN` scores).")
    o = best["overall"]
    if o is not None:
        line += (f" The best epoch at any size was {o['epoch']} at {o['size']} px "
                 f"({o['val_accuracy']:.2%} at its own size).")
    return line
