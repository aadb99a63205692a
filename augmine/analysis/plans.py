"""What a mining round works on, pure numpy: which images choose and which measure (seeded,
stratified splits), the weak classes a policy picks from per-class F1 (C,), and the
oversampling plan made from them (per-class repeat factors and their JSON form).

- :class:`OversamplingPlan` (per-class repeat factors, never below 1; ``to_dict`` /
  ``from_dict`` for ``RUN/plans/round-N.json`` and hand-written plans; ``aligned_to`` a
  dataset's class order); :meth:`OversamplingPlan.class_weight` turns it into Keras loss
  weights.
- :func:`make_plan`: weak classes by a policy (:func:`select_weak`) and their
  factors by a scheme (``SCHEMES``).
- Confusion partners of the weak classes (:func:`with_partners`, :func:`plan_partners`,
  :func:`partner_classes`) and the ``pairs`` round's plan (:func:`pairs_plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from augmine.analysis.metrics import confusion_partners, f1_1d, labels_1d
from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean
from augmine.data.dataset import lookup_class


# =========================================================================== policies
# Weak-class policies: which classes a mining round works on, from per-class F1 (C,).
#
# :func:`bottom_k`, :func:`below_threshold` and :func:`below_zscore` return class indices,
# weakest first; :func:`select_weak` picks one by name (``POLICIES``). A new policy is a pure
# function here, named in :func:`select_weak` and ``POLICIES``.

POLICIES = ("bottom-k", "threshold", "zscore")


def bottom_k(f1, k: int) -> list[int]:
    """Indices of the ``k`` classes with the lowest F1, weakest first (ties: lower index first)."""
    if k < 1:
        raise AugmineError(f"--k {k}: choose at least 1 class")
    f1 = f1_1d(f1)
    return [int(i) for i in np.lexsort((np.arange(len(f1)), f1))[:k]]


def below_threshold(f1, threshold: float) -> list[int]:
    """Indices of classes with F1 strictly below ``threshold``, weakest first."""
    f1 = f1_1d(f1)
    return [i for i in bottom_k(f1, len(f1)) if f1[i] < threshold]


def below_zscore(f1, z: float) -> list[int]:
    """Indices of classes with F1 below ``mean - z * std`` (population std), weakest first."""
    f1 = f1_1d(f1)
    return below_threshold(f1, float(f1.mean() - z * f1.std()))


def select_weak(f1, policy: str = "bottom-k", k: int | None = None,
                threshold: float | None = None, z: float | None = None) -> list[int]:
    """Weak classes by ``policy``: ``bottom-k`` (needs k), ``threshold`` or ``zscore`` (needs z)."""
    if policy == "bottom-k":
        return bottom_k(f1, 20 if k is None else int(k))
    if policy == "threshold":
        if threshold is None:
            raise AugmineError("policy 'threshold' needs --threshold (an F1 value, e.g. 0.5)")
        return below_threshold(f1, float(threshold))
    if policy == "zscore":
        return below_zscore(f1, 1.0 if z is None else float(z))
    raise AugmineError(f"unknown weak-class policy {policy!r}; choose one of {', '.join(POLICIES)}")


# =========================================================================== splits
# Which images choose and which measure: seeded, stratified splits of sample indices.
#
# :func:`selection_split` halves a split (val) into the images weak classes are chosen on and
# the images a round is measured on; :func:`apply_holdout` keeps a slice of train out of
# training (``mining.holdout``).

def stratified_split(labels, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of sample indices: ``(rest, part)`` sorted int64 arrays.

    ``labels`` (N,) int; ``part`` takes ``round(fraction * n_c)`` samples of every class c
    (chosen at random with ``seed``), ``rest`` the others. The two never overlap and cover
    every index. Unlike scikit-learn's ``StratifiedShuffleSplit`` it accepts classes with a
    single sample (the round goes to ``part`` only when ``fraction * n_c >= 0.5``).
    """
    labels = labels_1d(labels, "labels")
    if not 0.0 < float(fraction) < 1.0:
        raise AugmineError(f"split fraction {fraction}: use a number between 0 and 1")
    rng = np.random.default_rng(int(seed))
    part = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        part.append(idx[:int(math.floor(fraction * len(idx) + 0.5))])
    part = np.sort(np.concatenate(part)) if part else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), part)
    return rest.astype(np.int64), part.astype(np.int64)


def selection_split(labels, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(selection, measurement)`` indices: a seeded, stratified half each of a split
    (val). Weak classes are chosen on the first; before/after are measured on the second
    (which gets the odd image of a class with an odd count)."""
    selection, measurement = stratified_split(labels, 0.5, seed)
    return selection, measurement


HALVES = ("all", "selection", "measurement")


def val_half(index, half: str = "all", seed: int = 0):
    """``index`` with its val split cut to one half of :func:`selection_split` (``half``
    ``"selection"`` or ``"measurement"``; ``"all"``: unchanged). The tailoring of ``recipe
    tailor --half selection`` reads the first, ``recipe compare --measure-half`` scores on
    the second: with the same ``seed`` the two never share an image and together cover val."""
    if half == "all":
        return index
    if half not in HALVES:
        raise AugmineError(f"half {half!r}: use one of {', '.join(HALVES)}")
    from dataclasses import replace

    rows = selection_split(index.val.labels, seed)[HALVES.index(half) - 1]
    return replace(index, splits={**index.splits, "val": index.val.subset(rows)})


def apply_holdout(index, fraction: float | None, seed: int = 0):
    """``index`` with a stratified ``fraction`` of its train split moved to a ``holdout``
    split (kept out of training; used to choose weak classes and score suspects out of
    sample). ``fraction`` None or 0: ``index`` unchanged. Same seed, same slice."""
    if not fraction:
        return index
    if "holdout" in index.splits:
        return index
    from dataclasses import replace

    keep, held = stratified_split(index.train.labels, float(fraction), seed)
    if len(held) == 0 or len(keep) == 0:
        raise AugmineError(f"holdout {fraction}: leaves {len(keep)} training and {len(held)} "
                           "held-out images; choose a fraction that keeps both non-empty")
    return replace(index, splits={**index.splits, "train": index.train.subset(keep),
                                  "holdout": index.train.subset(held)})


# =========================================================================== plans

SCHEMES = ("fixed", "proportional")
# defaults that fit the class count (mining.k / mining.factor unset): a tenth of the
# classes, each repeated by the largest factor (at most DEFAULT_MAX_FACTOR) that adds at most
# DEFAULT_EXTRA_SHARE to their share of an epoch
DEFAULT_WEAK_SHARE = 0.1
DEFAULT_EXTRA_SHARE = 0.1
DEFAULT_MAX_FACTOR = 3.0


def default_k(num_classes: int) -> int:
    """The default count of weak classes: ``DEFAULT_WEAK_SHARE`` of them, at least 1."""
    return max(1, int(math.floor(DEFAULT_WEAK_SHARE * int(num_classes) + 0.5)))


def bounded_factor(counts, weak: Sequence[int], extra: float = DEFAULT_EXTRA_SHARE,
                   most: float = DEFAULT_MAX_FACTOR) -> float:
    """The repeat factor (1 to ``most``) that raises the ``weak`` classes' share of an epoch
    by at most ``extra`` (their share s of ``counts`` (C,) images -> at most s + extra).

    One factor f on weak images n_w of n: share f n_w / (f n_w + n - n_w); solving for
    s + extra gives f = t (n - n_w) / (n_w (1 - t)) with t = s + extra. E.g. 20 of 200
    equal classes: x2.25 (10% -> 20%); 2 of 20: the same; 4 of 20: x1.71 (20% -> 30%)."""
    counts = np.asarray(counts, np.float64)
    n, n_w = float(counts.sum()), float(counts[list(weak)].sum())
    if n_w <= 0 or n_w >= n:
        return 1.0
    t = n_w / n + float(extra)
    if t >= 1:
        return float(most)
    return float(np.clip(t * (n - n_w) / (n_w * (1 - t)), 1.0, most))
_REMAKE = "remake the plan with `augmine mine plan RUN`"


@dataclass
class OversamplingPlan:
    """How a mining round reweights the training set.

    ``factors``: (C,) float >= 1, per-class repeat factor (1 = unchanged). The pipeline
    yields each training sample of class c ``floor(f_c)`` times per epoch plus once more
    with probability ``frac(f_c)``: no sample is ever dropped. ``weak``: chosen class
    indices (weakest first); ``recipe``: a stronger recipe for the weak classes or None;
    ``policy``: how the classes and factors were chosen (for the record).
    """

    factors: np.ndarray
    weak: list[int]
    class_ids: list[str]
    class_names: list[str]
    recipe: str | None = None
    policy: dict = field(default_factory=dict)

    def __post_init__(self):
        self.factors = np.asarray(self.factors, dtype=np.float64).reshape(-1)
        self.weak = [int(w) for w in self.weak]
        self.class_ids, self.class_names = list(self.class_ids), list(self.class_names)
        num = len(self.class_ids)
        if len(self.class_names) != num or len(self.factors) != num:
            raise AugmineError(f"plan: {num} class ids, {len(self.class_names)} names and "
                               f"{len(self.factors)} factors; they must have one entry per class")
        if not np.all(np.isfinite(self.factors)) or np.any(self.factors < 1.0):
            bad = int(np.argmin(np.where(np.isfinite(self.factors), self.factors, -np.inf)))
            raise AugmineError(f"plan: factor {self.factors[bad]} for {self.class_names[bad]!r} "
                               "is below 1; a plan never drops samples (use factors >= 1)")
        for w in self.weak:
            if not 0 <= w < num:
                raise AugmineError(f"plan: weak class index {w} is out of range (0..{num - 1})")

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def weak_names(self) -> list[str]:
        return [self.class_names[i] for i in self.weak]

    def to_dict(self) -> dict:
        """JSON-safe dict; :meth:`from_dict` reads it back."""
        return {"class_ids": list(self.class_ids), "class_names": list(self.class_names),
                "factors": [float(f) for f in self.factors], "weak": list(self.weak),
                "weak_names": self.weak_names, "recipe": self.recipe, "policy": dict(self.policy)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "plan") -> "OversamplingPlan":
        """A plan from :meth:`to_dict` output. Also accepts hand-written plans whose
        ``factors`` is ``{class id or name: factor}`` (others 1) and whose ``weak`` lists
        names or ids; unknown classes raise a one-line :class:`AugmineError`."""
        if not isinstance(d, dict):
            raise AugmineError(f"{where}: expected a JSON object, got {type(d).__name__}")
        for key in ("class_ids", "factors"):
            if key not in d:
                raise AugmineError(f"{where}: missing key {key!r}; remake the plan with "
                                   "`augmine mine plan RUN`")
        ids = [str(c) for c in d["class_ids"]]
        names = [str(c) for c in d.get("class_names") or ids]
        raw = d["factors"]
        if isinstance(raw, dict):
            factors = np.ones(len(ids))
            for key, val in raw.items():
                factors[lookup_class(key, ids, names, f"{where}: factors", _REMAKE)] = float(val)
        else:
            factors = np.asarray(raw, dtype=np.float64)
        if "weak" in d:
            weak = [lookup_class(w, ids, names, f"{where}: weak", _REMAKE) for w in d["weak"]]
        else:
            weak = [int(i) for i in np.flatnonzero(factors > 1)]
        return cls(factors=factors, weak=weak, class_ids=ids, class_names=names,
                   recipe=d.get("recipe"), policy=dict(d.get("policy") or {}))

    def aligned_to(self, class_ids: Sequence[str], class_names: Sequence[str] | None = None,
                   where: str = "plan") -> "OversamplingPlan":
        """This plan reordered to a dataset's ``class_ids``; raises when it names classes the
        dataset lacks. Classes of the dataset the plan does not mention get factor 1."""
        class_ids = list(class_ids)
        names = list(class_names) if class_names is not None else class_ids
        pos = {cid: i for i, cid in enumerate(class_ids)}
        factors = np.ones(len(class_ids))
        for cid, name, f in zip(self.class_ids, self.class_names, self.factors):
            if cid not in pos:
                hint = did_you_mean(cid, class_ids, n=2) or \
                    "remake the plan for this run with `augmine mine plan RUN`"
                raise AugmineError(f"{where}: class {name!r} ({cid}) is not in the dataset; {hint}")
            factors[pos[cid]] = f
        weak = [pos[self.class_ids[w]] for w in self.weak]
        return OversamplingPlan(factors, weak, class_ids, names, self.recipe, dict(self.policy))

    def class_weight(self, counts=None) -> dict[int, float]:
        """Keras ``class_weight``: the same emphasis as loss weights instead of repeats.

        Weight c = factor c, so one epoch sums the same per-class loss in expectation as
        the oversampled epoch. With ``counts`` (C,) training images per class the weights
        are rescaled so the mean weight over training samples is 1 (keeps the loss scale).
        """
        w = self.factors.copy()
        if counts is not None:
            counts = np.asarray(counts, dtype=np.float64)
            w = w * counts.sum() / float((w * counts).sum())
        return {i: float(v) for i, v in enumerate(w)}

    def expected_share(self, counts) -> tuple[np.ndarray, np.ndarray]:
        """(old, new): (C,) shares of one training epoch per class without and with the plan."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != self.factors.shape:
            raise AugmineError(f"plan has {len(self.factors)} classes but the counts {len(counts)}")
        new = counts * self.factors
        return counts / counts.sum(), new / new.sum()

    def expected_epoch_length(self, counts) -> float:
        """Expected number of samples in one planned epoch."""
        return float((np.asarray(counts, dtype=np.float64) * self.factors).sum())

    def summary(self, counts) -> list[dict]:
        """One row per weak class: ``{index, name, factor, count, old_share, new_share}``."""
        old, new = self.expected_share(counts)
        return [{"index": i, "name": self.class_names[i], "factor": float(self.factors[i]),
                 "count": int(np.asarray(counts)[i]), "old_share": float(old[i]),
                 "new_share": float(new[i])} for i in self.weak]


def make_plan(f1, class_ids: Sequence[str], class_names: Sequence[str], *,
              policy: str = "bottom-k", k: int | None = 20, threshold: float | None = None,
              z: float | None = None, factor: float = 3.0, cap: float | None = None,
              scheme: str | None = None, recipe: str | None = None,
              source: str | None = None) -> OversamplingPlan:
    """An :class:`OversamplingPlan` from per-class F1 (C,).

    Weak classes are chosen by :func:`select_weak`. Their factors:

    - ``scheme="fixed"`` (default without ``cap``): every weak class gets ``factor``
      (capped at ``cap`` when given);
    - ``scheme="proportional"`` (default with ``cap``): ``clip(factor * (1 - F1), 1, cap)``,
      so the worse the class, the more it is repeated.

    Other classes keep factor 1. ``f1``: (C,) float in [0, 1]; ``class_ids`` and
    ``class_names``: C strings in label order; ``recipe``: a stronger recipe for the weak
    classes (path) or None; ``source`` (e.g. the stage the F1 came from) is recorded.
    Returns the plan (``factors`` (C,) float64 >= 1, ``weak`` indices, weakest first).
    """
    f1 = f1_1d(f1)
    if len(f1) != len(class_ids):
        raise AugmineError(f"{len(f1)} F1 scores for {len(class_ids)} classes")
    if factor < 1:
        raise AugmineError(f"--factor {factor}: a repeat factor must be >= 1 (plans never drop samples)")
    if cap is not None and cap < 1:
        raise AugmineError(f"--cap {cap}: the cap must be >= 1")
    scheme = scheme or ("proportional" if cap is not None else "fixed")
    if scheme not in SCHEMES:
        raise AugmineError(f"unknown factor scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    weak = select_weak(f1, policy, k=k, threshold=threshold, z=z)
    factors = np.ones(len(f1))
    hi = math.inf if cap is None else cap
    for i in weak:
        raw = factor if scheme == "fixed" else factor * (1.0 - f1[i])
        factors[i] = float(np.clip(raw, 1.0, hi))
    record = {"policy": policy, "k": k, "threshold": threshold, "z": z, "factor": factor,
              "cap": cap, "scheme": scheme, "source": source,
              "f1": {class_names[i]: float(f1[i]) for i in weak}}
    return OversamplingPlan(factors, weak, list(class_ids), list(class_names), recipe, record)


def with_partners(plan: OversamplingPlan, cm: np.ndarray, partners: int = 1) -> OversamplingPlan:
    """``plan`` with each weak class's confusion partners (:func:`confusion_partners` over
    ``cm`` (C, C), in the plan's class order) recorded in its policy:
    ``partners: [{class, partners: [names], confusions: [counts]}]`` and
    ``partners_per_class``. Factors are unchanged (see :func:`pairs_plan`)."""
    found = confusion_partners(cm, plan.weak, partners)
    names = plan.class_names
    record = [{"class": names[c], "partners": [names[p] for p, _ in ps],
               "confusions": [n for _, n in ps]} for c, ps in zip(plan.weak, found)]
    return OversamplingPlan(plan.factors, plan.weak, plan.class_ids, plan.class_names,
                            plan.recipe, {**plan.policy, "partners": record,
                                          "partners_per_class": int(partners)})


def plan_partners(plan: OversamplingPlan, where: str = "plan") -> dict[int, list[int]]:
    """``{weak class index: [partner indices]}`` from the plan's recorded ``partners``
    (names or ids; unknown ones raise a one-line error); {} when none are recorded."""
    out: dict[int, list[int]] = {}
    for row in (plan.policy or {}).get("partners") or []:
        c = lookup_class(row["class"], plan.class_ids, plan.class_names,
                         f"{where}: partners", _REMAKE)
        out[c] = [lookup_class(p, plan.class_ids, plan.class_names, f"{where}: partners",
                               _REMAKE) for p in row.get("partners") or []]
    return out


def partner_classes(plan: OversamplingPlan) -> list[int]:
    """The partners that are not weak classes themselves, in the order first named."""
    seen = []
    for ps in plan_partners(plan).values():
        seen += [p for p in ps if p not in plan.weak and p not in seen]
    return seen


def pairs_plan(plan: OversamplingPlan) -> OversamplingPlan:
    """The plan of a ``pairs`` round: every weak class's partners (see :func:`with_partners`)
    get that class's factor too (the largest when several share a partner), so both sides
    of each confused pair are repeated alike. The weak classes stay the chosen ones."""
    factors = plan.factors.copy()
    for c, ps in plan_partners(plan).items():
        for p in ps:
            factors[p] = max(factors[p], plan.factors[c])
    return OversamplingPlan(factors, plan.weak, plan.class_ids, plan.class_names, plan.recipe,
                            {**plan.policy, "pairs_mode": True})
