"""The recipes of the augmentation browser: which files it offers, a typed path checked,
edited entries back to recipe YAML, the arguments a transform takes, and the recipe one
class trains under."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir


def recipe_yaml(name: str, description: str, transforms: Sequence[dict],
                classes: dict | None = None) -> str:
    """Recipe YAML text (the format ``augmine recipe validate`` reads) from edited entries.

    ``transforms``: dicts ``{transform, p, why, <args>}``; tuples become YAML lists.
    ``classes``: the recipe's per-class overrides, kept; a ``without:`` name whose
    transform was switched off is dropped (there is nothing left to leave out).
    """
    from augmine.augment.recipes import transform_names
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


@dataclass(frozen=True)
class PreviewSetting:
    """How the browser previews a recipe: as one use of a run trains it (``role``: ``run
    phase 2``, ``run round-1 gentle``, ``run mining``) or at a chosen size (``role`` None).

    ``size`` (px) and ``strength`` are what the feed gets; ``presize``: the image is shrunk
    to ``size`` before the recipe (a phase's ``presize: true``); ``overrides``: whether the
    recipe's ``classes:`` apply (a round plan's recipe for its weak classes ignores them)."""

    size: int
    strength: float = 1.0
    role: str | None = None
    presize: bool = False
    overrides: bool = True
    phase: int | None = None

    @property
    def label(self) -> str:
        """``run phase 2 (32 px, strength 0.5)``, ``64 px, as written``: the choice's text."""
        if self.role is None:
            return f"{self.size} px, as written"
        return f"{self.role} ({self.size} px{self.strength_text})"

    @property
    def strength_text(self) -> str:
        return "" if self.strength == 1 else f", strength {self.strength:g}"

    def caption(self) -> str:
        """One sentence naming the size and strength the grid is made at."""
        how = (f"as {self.role} trains it: " if self.role else "at ") + \
            f"{self.size} px, strength {self.strength:g}"
        how += " (the recipe as written)" if self.strength == 1 else \
            f" (the probabilities and ranges listed, scaled to {self.strength:g})"
        if self.presize:
            how += f"; each image shrunk to {self.size} px before the recipe (presize)"
        if not self.overrides:
            how += "; the recipe's class overrides do not apply (a plan's recipe has none)"
        return f"Previewed {how}."


FREE_SIZES = (16, 32, 64)


def phase_setting(phase_no: int, phase) -> PreviewSetting:
    """How phase ``phase_no`` (a config's :class:`~augmine.runs.config.Phase`) augments:
    its size, its strength (None = 1) and its presize."""
    strength = 1.0 if phase.strength is None else float(phase.strength)
    return PreviewSetting(int(phase.size), strength, f"run phase {phase_no}",
                          presize=bool(phase.presize), phase=int(phase_no))


def run_recipe_uses(run_dir) -> dict[str, list[PreviewSetting]]:
    """``{recipe path: [PreviewSetting]}``: every use of a recipe in the run, in run order.

    Each phase at its size and strength; the config's mining recipe (the rounds' weak
    classes, at the last phase's size, as written) and each gentle round's recipe (at the
    last phase's size and strength), as the rounds train them. {} without a readable
    config."""
    from augmine.core.runtime import resolve_recipe

    if not run_dir:
        return {}
    run = RunDir.of(run_dir)
    try:
        cfg = run.config
    except AugmineError:
        return {}
    uses: dict[str, list[PreviewSetting]] = {}

    def add(path, setting: PreviewSetting) -> None:
        try:
            key = str(Path(resolve_recipe(path)).resolve())
        except AugmineError:
            return
        uses.setdefault(key, []).append(setting)

    for i, phase in enumerate(cfg.phases, 1):
        add(phase.recipe, phase_setting(i, phase))
    if cfg.phases:
        last = phase_setting(len(cfg.phases), cfg.phases[-1])
        if cfg.mining is not None and cfg.mining.recipe:
            add(cfg.mining.recipe, PreviewSetting(last.size, 1.0, "run mining",
                                                  overrides=False))
        for stage, path in run.gentle_recipes().items():
            add(path, PreviewSetting(last.size, last.strength, f"run {stage} gentle"))
    return uses


def preview_settings(uses: Sequence[PreviewSetting]) -> tuple[list[PreviewSetting], int]:
    """The browser's "Preview as" choices for one recipe: its uses in the run, then each
    of :data:`FREE_SIZES` as written; and the default's position (the last phase that uses
    it, else its first use, else 64 px)."""
    options = list(uses) + [PreviewSetting(s) for s in FREE_SIZES]
    phases = [i for i, u in enumerate(uses) if u.phase is not None]
    default = phases[-1] if phases else 0 if uses else len(options) - 1
    return options, default


def recipe_choices(run_dir=None, folder: str | os.PathLike | None = None
                   ) -> tuple[dict[str, str], str | None]:
    """The recipes the browser offers: ``({path: label}, default path)``.

    In order: the run's own (:func:`run_recipe_uses`: its phases, mining recipe and gentle
    rounds' recipes), the recipe files (``*.yaml``/``*.yml`` with ``transforms:``) in
    ``folder`` (the working folder), then the built-ins. A file listed twice keeps one
    entry whose label names every role (``run phase 1 (16 px), run phase 2 (32 px, strength
    0.5): light.yaml``). The default is the run's last phase's recipe, else the built-in
    ``tiny-imagenet-14.yaml``, else the first.
    """
    from augmine.core.runtime import available_recipes, is_recipe_file, recipes_dir, resolve_recipe

    roles: dict[str, list[str]] = {}
    default = None

    def add(path, role: str) -> str | None:
        try:
            key = str(Path(resolve_recipe(path)).resolve())
        except AugmineError:
            return None
        roles.setdefault(key, []).append(role)
        return key

    last_phase = 0
    for path, uses in run_recipe_uses(run_dir).items():
        roles[path] = [u.label for u in uses]
        for use in uses:
            if use.phase is not None and use.phase > last_phase:
                last_phase, default = use.phase, path
    if folder and Path(folder).is_dir():
        for path in sorted(Path(folder).glob("*.y*ml")):
            if is_recipe_file(path):
                add(path, "here")
    for name in available_recipes():
        key = add(recipes_dir() / f"{name}.yaml", "built-in")
        if name == "tiny-imagenet-14":
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
                  label: int, setting: PreviewSetting | None = None
                  ) -> tuple[Any, str | None, str | None]:
    """``(the recipe class `label` trains under, note, warning)``, as the feed builds it.

    ``setting``: the size and strength of the preview (None: as written); the recipe is
    scaled to its strength (:func:`augmine.augment.compose.scale_recipe`), then a recipe
    with ``classes:`` overrides gives the class's own recipe
    (:func:`augmine.augment.compose.recipe_for_class`: the override's strength times the
    setting's) and a note naming the override; overrides that do not match this dataset's
    classes give the recipe unchanged and the one-line problem as the warning; a setting
    without ``overrides`` (a plan's recipe) leaves them out. ``class_ids``/``class_names``:
    the dataset's, in label order.
    """
    from augmine.augment.compose import class_overrides, recipe_for_class
    from augmine.augment.compose import scale_recipe

    setting = setting or PreviewSetting(64)
    recipe = scale_recipe(recipe, setting.strength)
    if not recipe.classes or not setting.overrides:
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
    said = []
    if "strength" in override:
        own = float(override["strength"])
        said.append(f"strength {own:g}" if setting.strength == 1 else
                    f"strength {own:g} x the {setting.strength:g} of "
                    f"{setting.role or 'the preview'} = {own * setting.strength:g}")
    said += [f"without {', '.join(override['without'])}"] if override.get("without") else []
    return recipe_for_class(recipe, override), (
        f"{name} trains under its own override ({'; '.join(said) or 'as the recipe'}): "
        "previewed as it trains"), None
