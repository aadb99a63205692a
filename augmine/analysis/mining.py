"""Per-class analysis and hard-class mining: pure functions over numpy arrays.

Nothing here imports TensorFlow. Inputs are label vectors ``y_true``/``y_pred`` (N,) int,
class-probability matrices ``probs`` (N, C) and per-class F1 vectors (C,); outputs are
plain dicts and lists that serialise to JSON as they are.

- :func:`per_class_report`: precision, recall, F1, support per class (scikit-learn),
  macro and weighted averages, top-1/top-5 accuracy.
- :func:`confusion_matrix`, :func:`confused_pairs` (directed), :func:`symmetric_pairs`,
  :func:`confusion_partners` (each chosen class's most confused classes, for pairs rounds).
- Weak-class policies: :func:`bottom_k`, :func:`below_threshold`, :func:`below_zscore`,
  dispatched by :func:`select_weak`.
- :class:`OversamplingPlan` (per-class repeat factors, never below 1) built by
  :func:`make_plan`; :meth:`OversamplingPlan.class_weight` turns it into Keras loss weights.
- :func:`suspect_samples`: training images with the lowest self-confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Sequence

import numpy as np

from augmine.data.dataset import lookup_class
from augmine.core.errors import AugmineError

POLICIES = ("bottom-k", "threshold", "zscore")
SCHEMES = ("fixed", "proportional")


# --------------------------------------------------------------------------- metrics

def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise AugmineError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    return y.astype(np.int64)


def per_class_report(y_true, y_pred, class_names: Sequence[str], probs=None,
                     class_ids: Sequence[str] | None = None) -> dict:
    """Per-class precision, recall, F1 and support plus the overall numbers.

    ``y_true``, ``y_pred``: (N,) int class indices; ``class_names``: C names in label order;
    ``probs``: optional (N, C) class probabilities (for top-5). Classes absent from both
    vectors get 0 for every score (``zero_division=0``).

    Returns ``{"num_samples", "accuracy", "top5_accuracy" (None without probs),
    "macro": {precision, recall, f1}, "weighted": {...}, "macro_f1",
    "per_class": [{index, class_id, name, precision, recall, f1, support}, ...]}``.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise AugmineError(f"y_true has {len(y_true)} labels but y_pred {len(y_pred)}")
    num = len(class_names)
    ids = list(class_ids) if class_ids is not None else list(class_names)
    labels = np.arange(num)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    avgs = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0)
        avgs[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    top5 = None
    if probs is not None:
        probs = np.asarray(probs)
        if probs.shape != (len(y_true), num):
            raise AugmineError(f"probs has shape {probs.shape}; expected ({len(y_true)}, {num})")
        top5 = top_k_accuracy(y_true, probs, k=5)
    per_class = [{"index": i, "class_id": ids[i], "name": class_names[i],
                  "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])} for i in range(num)]
    return {"num_samples": int(len(y_true)),
            "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
            "top5_accuracy": top5, "macro": avgs["macro"], "weighted": avgs["weighted"],
            "macro_f1": avgs["macro"]["f1"], "per_class": per_class}


def top_k_accuracy(y_true, probs, k: int = 5) -> float:
    """Share of samples whose true class is among the ``k`` most probable ((N,), (N, C) -> float)."""
    from sklearn.metrics import top_k_accuracy_score

    probs = np.asarray(probs, dtype=np.float64)
    num = probs.shape[1]
    if k >= num:  # every class is in the top k (also keeps sklearn's binary case out)
        return 1.0
    return float(top_k_accuracy_score(_labels(y_true, "y_true"), probs, k=k,
                                      labels=np.arange(num)))


def f1_vector(report: dict) -> np.ndarray:
    """(C,) F1 per class from a :func:`per_class_report` (or a stage report) dict."""
    return np.array([c["f1"] for c in report["per_class"]], dtype=np.float64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(_labels(y_true, "y_true"), _labels(y_pred, "y_pred"),
                               labels=np.arange(num_classes)).astype(np.int64)


def confused_pairs(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The ``top`` directed confusions (true -> predicted, off-diagonal, count > 0).

    ``rate`` is the share of the true class's samples predicted as the other class.
    Sorted by count, then rate, then class index. Each item:
    ``{true, pred, true_name, pred_name, count, rate}``.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    items = [{"true": int(a), "pred": int(b), "true_name": class_names[a],
              "pred_name": class_names[b], "count": int(off[a, b]),
              "rate": float(off[a, b] / support[a])} for a, b in zip(rows, cols)]
    items.sort(key=lambda d: (-d["count"], -d["rate"], d["true"], d["pred"]))
    return items[:top]


def symmetric_pairs(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The ``top`` unordered pairs by confusions in both directions ``cm[a,b] + cm[b,a]``.

    ``cm``: (C, C) int counts, row = true class (:func:`confusion_matrix`); ``class_names``:
    C names in label order.
    ``rate`` = count / (support of a + support of b). Each item:
    ``{a, b, a_name, b_name, count, a_to_b, b_to_a, rate}`` with ``a < b``.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    both = np.triu(cm + cm.T, k=1)
    rows, cols = np.nonzero(both)
    items = [{"a": int(a), "b": int(b), "a_name": class_names[a], "b_name": class_names[b],
              "count": int(both[a, b]), "a_to_b": int(cm[a, b]), "b_to_a": int(cm[b, a]),
              "rate": float(both[a, b] / max(1, support[a] + support[b]))}
             for a, b in zip(rows, cols)]
    items.sort(key=lambda d: (-d["count"], -d["rate"], d["a"], d["b"]))
    return items[:top]


def describe_pair(pair: dict, split: str = "val") -> str:
    """One line for a directed pair: ``"Chihuahua -> teddy bear: 14% of Chihuahua val images (7)"``."""
    return (f"{pair['true_name']} -> {pair['pred_name']}: {pair['rate']:.0%} of "
            f"{pair['true_name']} {split} images ({pair['count']})")


def describe_symmetric(pair: dict) -> str:
    """One line for an unordered pair: ``"a <-> b: 12 confusions (7 one way, 5 the other)"``."""
    return (f"{pair['a_name']} <-> {pair['b_name']}: {pair['count']} confusions "
            f"({pair['a_to_b']} one way, {pair['b_to_a']} the other)")


def confusion_partners(cm: np.ndarray, chosen: Sequence[int],
                       partners: int = 1) -> list[list[tuple[int, int]]]:
    """Each chosen class's ``partners`` most confused classes, by confusions in both
    directions ``cm[a, b] + cm[b, a]`` (ties as in :func:`symmetric_pairs`: higher rate,
    then lower index).

    ``cm`` (C, C) counts (row = true class); ``chosen`` class indices. Returns one list
    per chosen class of ``(partner index, confusion count)``, most confused first; classes
    never confused with it are skipped, so a list may be shorter than ``partners`` or
    empty. A partner may itself be chosen.
    """
    if isinstance(partners, bool) or int(partners) != partners or partners < 1:
        raise AugmineError(f"--partners {partners!r}: choose a whole number of at least 1 "
                           "confusion partner per class")
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise AugmineError(f"confusion matrix must be square (C, C), got shape {cm.shape}")
    pairs = symmetric_pairs(cm, [str(i) for i in range(len(cm))], top=len(cm) ** 2)
    return [[(p["b"] if p["a"] == c else p["a"], p["count"]) for p in pairs
             if c in (p["a"], p["b"])][:int(partners)] for c in (int(c) for c in chosen)]


# --------------------------------------------------------------------------- weak classes

def _f1(f1) -> np.ndarray:
    f1 = np.asarray(f1, dtype=np.float64)
    if f1.ndim != 1:
        raise AugmineError(f"F1 scores must be a 1-D array (one per class), got shape {f1.shape}")
    return f1


def bottom_k(f1, k: int) -> list[int]:
    """Indices of the ``k`` classes with the lowest F1, weakest first (ties: lower index first)."""
    if k < 1:
        raise AugmineError(f"--k {k}: choose at least 1 class")
    f1 = _f1(f1)
    return [int(i) for i in np.lexsort((np.arange(len(f1)), f1))[:k]]


def below_threshold(f1, threshold: float) -> list[int]:
    """Indices of classes with F1 strictly below ``threshold``, weakest first."""
    f1 = _f1(f1)
    return [i for i in bottom_k(f1, len(f1)) if f1[i] < threshold]


def below_zscore(f1, z: float) -> list[int]:
    """Indices of classes with F1 below ``mean - z * std`` (population std), weakest first."""
    f1 = _f1(f1)
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


# --------------------------------------------------------------------------- plans

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
                close = get_close_matches(cid, class_ids, n=2, cutoff=0.6)
                hint = f"did you mean {', '.join(map(repr, close))}?" if close else \
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
    f1 = _f1(f1)
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


# --------------------------------------------------------------------------- suspects

def self_confidence(labels, probs) -> np.ndarray:
    """(N,) predicted probability of each sample's own label (confident learning's self-confidence)."""
    labels = _labels(labels, "labels")
    probs = np.asarray(probs)
    return probs[np.arange(len(labels)), labels].astype(np.float64)


def suspect_samples(labels, probs, classes: Sequence[int], per_class: int = 10,
                    paths=None, class_names: Sequence[str] | None = None) -> list[dict]:
    """Training samples of ``classes`` the model believes least: lowest self-confidence first.

    ``labels`` (N,) int, ``probs`` (N, C); ``per_class`` samples per class, grouped by
    class in the order of ``classes``. Each item: ``{index, path, label, name,
    self_confidence, predicted, predicted_name, predicted_prob}``. Likely label errors or
    odd images, for a person to review.
    """
    labels = _labels(labels, "labels")
    probs = np.asarray(probs)
    conf = self_confidence(labels, probs)
    pred = probs.argmax(axis=1)
    out = []
    for c in classes:
        idx = np.flatnonzero(labels == int(c))
        idx = idx[np.lexsort((idx, conf[idx]))][:per_class]
        for i in idx:
            p = int(pred[i])
            out.append({"index": int(i), "path": None if paths is None else str(paths[i]),
                        "label": int(c), "name": None if class_names is None else class_names[c],
                        "self_confidence": float(conf[i]), "predicted": p,
                        "predicted_name": None if class_names is None else class_names[p],
                        "predicted_prob": float(probs[i, p])})
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into plain Python (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, OversamplingPlan):
        return obj.to_dict()
    return obj


# --------------------------------------------------------------------------- selection vs measurement

def stratified_split(labels, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of sample indices: ``(rest, part)`` sorted int64 arrays.

    ``labels`` (N,) int; ``part`` takes ``round(fraction * n_c)`` samples of every class c
    (chosen at random with ``seed``), ``rest`` the others. The two never overlap and cover
    every index. Unlike scikit-learn's ``StratifiedShuffleSplit`` it accepts classes with a
    single sample (the round goes to ``part`` only when ``fraction * n_c >= 0.5``).
    """
    labels = _labels(labels, "labels")
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


# --------------------------------------------------------------------------- round effect

ROUND_METRICS = ("chosen F1", "other F1", "top-1", "macro F1")
PARTNER_METRIC = "partner F1"     # after "chosen F1" when a round measures partner classes


def round_metric_names(partners: Sequence[int] = ()) -> tuple[str, ...]:
    """The metrics of :func:`round_metrics`: ``ROUND_METRICS``, with ``"partner F1"``
    second when ``partners`` is not empty."""
    if not len(partners):
        return ROUND_METRICS
    return ROUND_METRICS[:1] + (PARTNER_METRIC,) + ROUND_METRICS[1:]


def f1_scores(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C,) F1 per class (0 where a class has no true and no predicted sample)."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    hit = y_true == y_pred
    tp = np.bincount(y_true[hit], minlength=num_classes).astype(np.float64)
    true = np.bincount(y_true, minlength=num_classes)
    pred = np.bincount(y_pred, minlength=num_classes)
    denom = true + pred
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def round_metrics(y_true, y_pred, num_classes: int, chosen: Sequence[int],
                  partners: Sequence[int] = ()) -> np.ndarray:
    """(4,) or (5,) values of :func:`round_metric_names`: mean F1 of the ``chosen``
    classes, of the ``partners`` (only when given; partners that are chosen count as
    chosen), of the other classes (neither), top-1 accuracy and macro F1 (means over the
    classes present in ``y_true``)."""
    y_true = _labels(y_true, "y_true")
    f1 = f1_scores(y_true, y_pred, num_classes)
    present = np.bincount(y_true, minlength=num_classes) > 0
    mask = np.zeros(num_classes, bool)
    mask[list(chosen)] = True
    partner = np.zeros(num_classes, bool)
    partner[list(partners)] = True
    partner &= ~mask
    mean = lambda m: float(f1[m].mean()) if m.any() else float("nan")  # noqa: E731
    values = [mean(mask & present)]
    if len(partners):
        values.append(mean(partner & present))
    return np.array(values + [mean(~mask & ~partner & present),
                              float(np.mean(y_true == np.asarray(y_pred))) if len(y_true) else 0.0,
                              mean(present)])


def bootstrap_interval(samples, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval ``(lo, hi)`` covering ``1 - alpha`` of bootstrap ``samples`` (R,)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_mean_bootstrap(scores: np.ndarray, samples: int = 2000, seed: int = 0,
                          level: float = 0.95) -> dict[str, np.ndarray]:
    """Percentile bootstrap intervals of per-image scores, paired across arms.

    ``scores``: (A, N) per-image scores of A arms on the same N images (e.g. 1 where the
    prediction is right). Every resample draws N image indices with replacement and uses
    them for every arm, so the differences ``arm - arm 0`` keep the pairing.
    Returns ``{"mean" (A,), "low" (A,), "high" (A,), "diff" (A,), "diff_low" (A,),
    "diff_high" (A,)}`` (arm 0's differences are 0). Vectorised for per-image means (accuracy);
    :func:`paired_bootstrap` takes any statistic (F1). Hand-written: sklearn and scipy's
    ``bootstrap`` do not pair arms this way without copying every resample.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise AugmineError(f"bootstrap: need (arms, images) scores with at least one image, "
                           f"got shape {scores.shape}")
    arms, n = scores.shape
    rng = np.random.default_rng(seed)
    means = np.empty((arms, samples))
    chunk = max(1, min(samples, 2_000_000 // n))
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n))
        means[:, start:start + len(idx)] = scores[:, idx].mean(axis=2)
    diffs = means - means[:1]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail], axis=1)
    dlo, dhi = np.percentile(diffs, [tail, 100 - tail], axis=1)
    mean = scores.mean(axis=1)
    return {"mean": mean, "low": lo, "high": hi, "diff": mean - mean[0], "diff_low": dlo,
            "diff_high": dhi}


def paired_bootstrap(y_true, preds: dict, stat, reps: int = 1000, seed: int = 0) -> dict:
    """Bootstrap over samples, the same resampled indices for every prediction vector.

    ``y_true`` (N,); ``preds`` ``{name: (N,) predicted labels}``; ``stat(y_true, y_pred)``
    -> (K,) statistics. Returns ``{name: (reps, K) array}`` (row r: the statistics on
    resample r), so differences between names are paired.
    """
    y_true = _labels(y_true, "y_true")
    rng = np.random.default_rng(int(seed))
    n = len(y_true)
    out = {k: [] for k in preds}
    for _ in range(int(reps)):
        idx = rng.integers(0, n, n)
        for k, p in preds.items():
            out[k].append(stat(y_true[idx], np.asarray(p)[idx]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def effect_table(y_true, before, after, control=None, *, num_classes: int,
                 chosen: Sequence[int], reps: int = 1000, seed: int = 0,
                 alpha: float = 0.05, partners: Sequence[int] = ()) -> dict:
    """Before/after/control and their differences, each with a bootstrap interval.

    ``y_true`` (N,) labels of the measurement images; ``before``/``after``/``control`` (N,)
    predicted labels of the start model, the round's model and the control's (None: no
    control). Returns ``{metric: {"before", "after", "control", "change", "effect"}}`` for
    each of :func:`round_metric_names` (``partners``: classes measured apart as "partner
    F1", for pairs rounds), each entry ``{"value", "lo", "hi"}`` (``1 - alpha``
    interval over ``reps`` seeded, paired resamples); ``change`` = after - before,
    ``effect`` = after - control (the round's effect net of control; None without one).
    """
    preds = {"before": before, "after": after}
    if control is not None:
        preds["control"] = control
    chosen = [int(c) for c in chosen]
    partners = [int(p) for p in partners if int(p) not in chosen]
    stat = lambda t, p: round_metrics(t, p, num_classes, chosen, partners)  # noqa: E731
    point = {k: stat(_labels(y_true, "y_true"), np.asarray(v)) for k, v in preds.items()}
    boot = paired_bootstrap(y_true, preds, stat, reps=reps, seed=seed)
    point["change"], boot["change"] = point["after"] - point["before"], boot["after"] - boot["before"]
    if control is not None:
        point["effect"] = point["after"] - point["control"]
        boot["effect"] = boot["after"] - boot["control"]
    table = {}
    for j, metric in enumerate(round_metric_names(partners)):
        row = {}
        for k in ("before", "after", "control", "change", "effect"):
            if k not in point:
                row[k] = None
                continue
            lo, hi = bootstrap_interval(boot[k][:, j], alpha)
            row[k] = {"value": float(point[k][j]), "lo": lo, "hi": hi}
        table[metric] = row
    return table


def f1_losses(names: Sequence[str], support, f1_ref, f1_after, top: int = 5) -> list[dict]:
    """The classes whose F1 fell most from ``f1_ref`` (C,) to ``f1_after`` (C,), worst
    first, only those that fell: ``[{index, name, support, ref, after, delta}]``."""
    f1_ref, f1_after = np.asarray(f1_ref, np.float64), np.asarray(f1_after, np.float64)
    delta = f1_after - f1_ref
    order = [int(i) for i in np.lexsort((np.arange(len(delta)), delta)) if delta[i] < 0][:top]
    return [{"index": i, "name": names[i], "support": int(np.asarray(support)[i]),
             "ref": float(f1_ref[i]), "after": float(f1_after[i]), "delta": float(delta[i])}
            for i in order]


def _fell(table: dict, has_control: bool, harmful: bool) -> tuple[list[str], str]:
    """Top-1 / macro F1 cells below zero against the control (or the start without one):
    those whose 95% interval lies below zero (``harmful``) or only the point estimate."""
    key, what = ("effect", "the control") if has_control else ("change", "the start")
    out = []
    for m in ("top-1", "macro F1"):
        cell = table[m][key]
        if not cell or not cell["value"] < 0 or (cell["hi"] < 0) != harmful:
            continue
        k, d, unit = (100, 1, " pt") if m == "top-1" else (1, 3, "")
        out.append(f"{m} {cell['value'] * k:+.{d}f}{unit} [{cell['lo'] * k:+.{d}f}, "
                   f"{cell['hi'] * k:+.{d}f}]")
    return out, what


def effect_warning(table: dict, has_control: bool) -> str | None:
    """One line when overall top-1 or macro F1 fell against the control (or against the
    start without a control) with the whole 95% interval below zero; None otherwise (a fall
    whose interval includes zero is :func:`effect_note`'s)."""
    fell, what = _fell(table, has_control, harmful=True)
    if not fell:
        return None
    return f"WARNING: the round lowered {' and '.join(fell)} against {what}"


def effect_note(table: dict, has_control: bool) -> str | None:
    """One neutral line when top-1 or macro F1 is below zero against the control (or the
    start) but its 95% interval includes zero: no measurable change; None otherwise."""
    fell, what = _fell(table, has_control, harmful=False)
    if not fell:
        return None
    return (f"no measurable change: {' and '.join(fell)} against {what} (the 95% interval "
            "includes zero)")
