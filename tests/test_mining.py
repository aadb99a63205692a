"""Hand-computed small cases for the per-class analysis and the mining plans (no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augmine.core.errors import AugmineError
from augmine.analysis.metrics import (confused_pairs, confusion_matrix, describe_pair,
                                      per_class_report, self_confidence, suspect_samples,
                                      symmetric_pairs, top_k_accuracy)
from augmine.analysis.plans import (below_threshold, below_zscore, bottom_k, make_plan,
                                    OversamplingPlan, select_weak)

NAMES = ["Chihuahua", "teddy bear", "lemon"]
IDS = ["n1", "n2", "n3"]
# class 0: 4 samples, 3 right, 1 -> teddy bear; class 1: 2 samples, both right;
# class 2: 2 samples, 1 right, 1 -> Chihuahua
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 2, 0])


def test_per_class_report_hand_computed():
    rep = per_class_report(Y_TRUE, Y_PRED, NAMES, class_ids=IDS)
    c0, c1, c2 = rep["per_class"]
    # Chihuahua: TP 3, FP 1 (the lemon), FN 1 -> P 3/4, R 3/4, F1 3/4
    assert (c0["precision"], c0["recall"], c0["f1"], c0["support"]) == (0.75, 0.75, 0.75, 4)
    # teddy bear: TP 2, FP 1 -> P 2/3, R 1, F1 0.8
    assert c1["precision"] == pytest.approx(2 / 3) and c1["recall"] == 1.0
    assert c1["f1"] == pytest.approx(0.8)
    # lemon: TP 1, FN 1 -> P 1, R 1/2, F1 2/3
    assert c2["f1"] == pytest.approx(2 / 3)
    assert c0["class_id"] == "n1" and c2["name"] == "lemon"
    assert rep["accuracy"] == pytest.approx(6 / 8)
    assert rep["macro_f1"] == pytest.approx((0.75 + 0.8 + 2 / 3) / 3)
    assert rep["weighted"]["f1"] == pytest.approx((0.75 * 4 + 0.8 * 2 + 2 / 3 * 2) / 8)
    assert rep["top5_accuracy"] is None


def test_top1_and_macro_f1_hand_computed_with_a_class_absent_from_y_true():
    from augmine.analysis.metrics import macro_f1, macro_mean, top1, top1_hits

    # 4 classes; class 3 has no true sample but is predicted once (a miss of class 2)
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 3])
    probs = np.eye(4)[pred] * 0.7 + 0.075
    assert top1(y, pred) == top1(y, probs) == pytest.approx(4 / 6)
    assert top1_hits(y, probs).tolist() == [1, 0, 1, 1, 1, 0]
    # F1: class 0 = 2*1/(2+1) = 2/3, class 1 = 2*2/(2+3) = 0.8, class 2 = 2*1/(2+1) = 2/3;
    # class 3 (absent from y) is left out of the mean, not counted as 0
    assert macro_f1(y, pred, 4) == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    rep = per_class_report(y, pred, list("abcd"), probs=probs)
    assert rep["macro_f1"] == macro_f1(y, pred, 4) and rep["accuracy"] == top1(y, pred)
    assert rep["per_class"][3]["f1"] == 0.0 and rep["per_class"][3]["support"] == 0
    # the same definition per group of classes (round effects: chosen, other)
    assert macro_mean([0.5, 0.9, 0.1, 0.0], [2, 2, 2, 0], among=[1, 3]) == pytest.approx(0.9)
    assert np.isnan(macro_mean([0.5, 0.0], [2, 0], among=[1]))
    assert top1([], np.zeros((0, 4))) == 0.0 and macro_f1([], [], 4) == 0.0
    with pytest.raises(AugmineError, match="3 labels but 2 predictions"):
        top1([0, 1, 2], [0, 1])


def test_round_metrics_use_the_one_top1_and_macro_f1():
    from augmine.analysis.effects import round_metrics
    from augmine.analysis.metrics import macro_f1, top1

    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 3])
    chosen_f1, other_f1, top, macro = round_metrics(y, pred, 4, chosen=[0])
    assert (top, macro) == (top1(y, pred), macro_f1(y, pred, 4))
    assert chosen_f1 == pytest.approx(2 / 3) and other_f1 == pytest.approx((0.8 + 2 / 3) / 2)


def test_absent_class_scores_zero_not_nan():
    rep = per_class_report([0, 0], [0, 0], ["a", "b"])
    assert rep["per_class"][1] == {"index": 1, "class_id": "b", "name": "b", "precision": 0.0,
                                   "recall": 0.0, "f1": 0.0, "support": 0}


def test_top_k_accuracy():
    probs = np.zeros((3, 7))
    probs[0, [0, 1, 2, 3, 4, 5, 6]] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # label 0 ranks last
    probs[1, 1] = 1.0
    probs[2, [2, 6, 5, 4, 3]] = [0.1, 0.5, 0.5, 0.5, 0.5]  # label 2 ranks 5th
    y = np.array([0, 1, 2])
    assert top_k_accuracy(y, probs, k=1) == pytest.approx(1 / 3)
    assert top_k_accuracy(y, probs, k=5) == pytest.approx(2 / 3)
    assert top_k_accuracy([0, 1], np.eye(2)[[1, 0]], k=5) == 1.0     # k >= C
    rep = per_class_report(y, probs.argmax(1), list("abcdefg"), probs=probs)
    assert rep["top5_accuracy"] == pytest.approx(2 / 3)


def test_confusion_matrix_and_directed_pairs():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    pairs = confused_pairs(cm, NAMES)
    # both have count 1; lemon -> Chihuahua is 50% of lemon, Chihuahua -> teddy 25%
    assert [(p["true_name"], p["pred_name"]) for p in pairs] == [
        ("lemon", "Chihuahua"), ("Chihuahua", "teddy bear")]
    assert pairs[0]["rate"] == 0.5 and pairs[1]["rate"] == 0.25
    assert describe_pair(pairs[1]) == "Chihuahua -> teddy bear: 25% of Chihuahua val images (1)"
    assert confused_pairs(cm, NAMES, top=1) == pairs[:1]


def test_symmetric_pairs_add_both_directions():
    cm = np.array([[10, 3, 1], [4, 10, 0], [0, 2, 10]])
    pairs = symmetric_pairs(cm, ["a", "b", "c"])
    assert [(p["a_name"], p["b_name"], p["count"]) for p in pairs] == [
        ("a", "b", 7), ("b", "c", 2), ("a", "c", 1)]
    assert pairs[0]["a_to_b"] == 3 and pairs[0]["b_to_a"] == 4
    assert pairs[0]["rate"] == pytest.approx(7 / (14 + 14))


F1 = np.array([0.9, 0.2, 0.5, 0.2, 0.8, 0.7])   # mean 0.55, std 0.2630...


def test_bottom_k_breaks_ties_by_index():
    assert bottom_k(F1, 3) == [1, 3, 2]
    assert bottom_k(F1, 100) == [1, 3, 2, 5, 4, 0]
    with pytest.raises(AugmineError):
        bottom_k(F1, 0)


def test_threshold_and_zscore_policies():
    assert below_threshold(F1, 0.5) == [1, 3]            # strictly below
    assert below_threshold(F1, 0.51) == [1, 3, 2]
    # mean - 1 * std = 0.55 - 0.263 = 0.287 -> only the two 0.2 classes
    assert below_zscore(F1, 1.0) == [1, 3]
    # mean - 0 * std = 0.55 -> also 0.5
    assert below_zscore(F1, 0.0) == [1, 3, 2]
    assert select_weak(F1, "zscore", z=2.0) == []
    with pytest.raises(AugmineError, match="threshold"):
        select_weak(F1, "threshold")
    with pytest.raises(AugmineError, match="unknown weak-class policy"):
        select_weak(F1, "worst")


CIDS = [f"c{i}" for i in range(6)]
CNAMES = [f"class {i}" for i in range(6)]


def test_fixed_plan():
    plan = make_plan(F1, CIDS, CNAMES, policy="bottom-k", k=2, factor=3)
    assert plan.weak == [1, 3]
    assert plan.factors.tolist() == [1, 3, 1, 3, 1, 1]
    assert plan.weak_names == ["class 1", "class 3"]
    assert plan.policy["scheme"] == "fixed" and plan.policy["f1"] == {"class 1": 0.2, "class 3": 0.2}


def test_proportional_plan_is_capped_and_never_below_one():
    # factor * (1 - F1): class 1 -> 4 * 0.8 = 3.2 capped at 3; class 2 -> 2.0; class 5 -> 1.2
    plan = make_plan(F1, CIDS, CNAMES, policy="threshold", threshold=0.75, factor=4, cap=3)
    assert plan.weak == [1, 3, 2, 5]
    assert plan.factors == pytest.approx([1, 3, 2, 3, 1, 1.2])
    # 1 - F1 small: factor would fall below 1 -> stays 1 (nothing dropped)
    plan = make_plan(np.array([0.9, 0.95]), ["a", "b"], ["a", "b"], k=2, factor=2,
                     scheme="proportional")
    assert plan.factors.tolist() == [1.0, 1.0]


def test_plan_rejects_dropping_and_bad_input():
    with pytest.raises(AugmineError, match="never drops"):
        OversamplingPlan(np.array([1.0, 0.5]), [1], ["a", "b"], ["a", "b"])
    with pytest.raises(AugmineError, match=">= 1"):
        make_plan(F1, CIDS, CNAMES, factor=0.5)
    with pytest.raises(AugmineError, match="scheme"):
        make_plan(F1, CIDS, CNAMES, scheme="square")


def test_plan_round_trips_through_json():
    plan = make_plan(F1, CIDS, CNAMES, k=2, factor=2.5, recipe="tiny-imagenet-14")
    back = OversamplingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back.factors.tolist() == plan.factors.tolist()
    assert (back.weak, back.class_ids, back.class_names, back.recipe, back.policy) == (
        plan.weak, plan.class_ids, plan.class_names, plan.recipe, plan.policy)


def test_hand_written_plan_by_names_and_unknown_class():
    d = {"class_ids": CIDS, "class_names": CNAMES, "factors": {"class 2": 2, "c4": 1.5}}
    plan = OversamplingPlan.from_dict(d)
    assert plan.factors.tolist() == [1, 1, 2, 1, 1.5, 1] and plan.weak == [2, 4]
    d["factors"]["class 22"] = 3
    with pytest.raises(AugmineError, match="unknown class 'class 22'"):
        OversamplingPlan.from_dict(d, where="plans/round-1.json")


def test_aligned_to_reorders_and_rejects_unknown_classes():
    plan = OversamplingPlan(np.array([1, 3, 2.0]), [1, 2], ["a", "b", "c"], ["A", "B", "C"])
    al = plan.aligned_to(["c", "a", "b", "d"], ["C", "A", "B", "D"])
    assert al.factors.tolist() == [2, 1, 3, 1] and al.weak_names == ["B", "C"]
    with pytest.raises(AugmineError, match=r"'B' \(b\) is not in the dataset"):
        plan.aligned_to(["a", "c"])


def test_class_weight_and_expected_share():
    plan = OversamplingPlan(np.array([1.0, 3.0, 1.0]), [1], ["a", "b", "c"], ["a", "b", "c"])
    assert plan.class_weight() == {0: 1.0, 1: 3.0, 2: 1.0}
    counts = np.array([100, 50, 50])
    # normalised: mean weight over the 200 samples is 1 -> 200 / (100 + 150 + 50) = 2/3
    cw = plan.class_weight(counts)
    assert cw[1] == pytest.approx(2.0) and cw[0] == pytest.approx(2 / 3)
    assert sum(cw[c] * n for c, n in enumerate(counts)) == pytest.approx(200)
    old, new = plan.expected_share(counts)
    assert old.tolist() == [0.5, 0.25, 0.25]
    assert new == pytest.approx([100 / 300, 150 / 300, 50 / 300])
    assert plan.expected_epoch_length(counts) == 300
    row, = plan.summary(counts)
    assert row["name"] == "b" and row["old_share"] == 0.25 and row["new_share"] == 0.5


def test_suspect_samples_lowest_self_confidence_first():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    assert self_confidence(labels, probs) == pytest.approx([0.9, 0.2, 0.6, 0.7, 0.5])
    sus = suspect_samples(labels, probs, [0], per_class=2, paths=np.array(list("vwxyz")),
                          class_names=["cat", "dog"])
    assert [s["path"] for s in sus] == ["w", "x"]
    assert sus[0]["predicted_name"] == "dog" and sus[0]["self_confidence"] == 0.2
    assert [s["index"] for s in suspect_samples(labels, probs, [1, 0], per_class=1)] == [4, 1]


# --------------------------------------------------------------------------- round effect

def test_stratified_split_is_seeded_disjoint_and_stratified():
    from augmine.analysis.plans import selection_split, stratified_split

    y = np.repeat(np.arange(4), [10, 6, 3, 1])
    a, b = selection_split(y, seed=3)
    assert not set(a) & set(b) and sorted([*a, *b]) == list(range(len(y)))
    assert np.bincount(y[b], minlength=4).tolist() == [5, 3, 2, 1]   # half of each class, rounded up
    assert selection_split(y, seed=3)[0].tolist() == a.tolist()      # same seed, same halves
    assert selection_split(y, seed=4)[0].tolist() != a.tolist()
    rest, part = stratified_split(y, 0.1, seed=0)
    assert np.bincount(y[part], minlength=4).tolist() == [1, 1, 0, 0]
    with pytest.raises(AugmineError, match="between 0 and 1"):
        stratified_split(y, 1.0)


def test_bootstrap_interval_and_paired_resamples(monkeypatch):
    from augmine.analysis import effects as bootstrap
    from augmine.analysis.effects import paired_bootstrap, percentile_interval

    lo, hi = percentile_interval(np.arange(1001, dtype=float))
    assert (lo, hi) == pytest.approx((25.0, 975.0))
    assert percentile_interval([np.nan, 2.0, 2.0]) == (2.0, 2.0)
    y = np.arange(200) % 2
    arms = np.stack([y, 1 - y])
    acc = lambda idx: (arms[:, idx] == y[idx]).mean(axis=2).T  # noqa: E731  (m, arms)
    boot = paired_bootstrap(acc, len(y), reps=200, seed=0)
    assert boot.shape == (200, 2) and np.all(boot[:, 0] == 1) and np.all(boot[:, 1] == 0)
    means = lambda idx: y[idx].mean(axis=1)  # noqa: E731
    once = paired_bootstrap(means, len(y), reps=50, seed=0)
    monkeypatch.setattr(bootstrap, "CHUNK_INDICES", 3 * len(y))   # 3 resamples per draw
    assert np.array_equal(paired_bootstrap(means, len(y), reps=50, seed=0), once)
    with pytest.raises(AugmineError, match="at least one image"):
        paired_bootstrap(means, 0)


def _seed_scores(shifts, n=200, seed=0):
    """Per seed: (arm, control) per-image 0/1 scores on n images, the arm right with
    probability 0.5 + shift, the control with 0.5."""
    rng = np.random.default_rng(seed)
    return [((rng.random(n) < 0.5 + s).astype(float), (rng.random(n) < 0.5).astype(float))
            for s in shifts]


def test_two_stage_bootstrap_widens_when_seeds_disagree():
    from augmine.analysis.effects import mean_intervals, seed_effect

    def images_only(samples):            # today's paired bootstrap over all images pooled
        arm, control = (np.concatenate([s[k] for s in samples]) for k in (0, 1))
        t = mean_intervals(np.stack([control, arm]), reps=2000)
        return t["diff_low"][1], t["diff_high"][1]

    # seeds that disagree (true effects -0.2 .. +0.2): a much wider interval, the same mean
    disagree = _seed_scores([0.2, -0.2, 0.1, -0.1, 0.0])
    e = seed_effect(disagree, reps=2000)
    lo, hi = images_only(disagree)
    assert e["hi"] - e["lo"] > 2 * (hi - lo)
    assert e["value"] == pytest.approx(np.mean([a.mean() - c.mean() for a, c in disagree]))
    assert e["per_seed"].shape == (5,) and np.ptp(e["per_seed"]) > 0.3
    # seeds that agree (each seed the same images' scores in another order): about equal
    one = _seed_scores([0.1])[0]
    rng = np.random.default_rng(1)
    agree = [tuple(x[p] for x in one) for p in (rng.permutation(200) for _ in range(4))]
    e = seed_effect(agree, reps=2000)
    lo, hi = images_only(agree)
    assert e["hi"] - e["lo"] == pytest.approx(hi - lo, rel=0.15)
    assert e["value"] == pytest.approx(one[0].mean() - one[1].mean())


def test_two_stage_bootstrap_with_one_seed_is_the_image_bootstrap():
    from augmine.analysis.effects import mean_intervals, seed_effect

    arm, control = _seed_scores([0.1])[0]
    e = seed_effect([(arm, control)], reps=500, seed=3)
    t = mean_intervals(np.stack([control, arm]), reps=500, seed=3)
    assert (e["lo"], e["hi"]) == pytest.approx((t["diff_low"][1], t["diff_high"][1]))
    # any statistic of (y_true, arm_pred, control_pred), vector-valued: F1 of class 0, top-1
    from augmine.analysis.metrics import f1_scores

    y = np.repeat([0, 1], 50)
    stat = lambda t, a, c: np.array([f1_scores(t, a, 2)[0] - f1_scores(t, c, 2)[0],  # noqa: E731
                                     (a == t).mean() - (c == t).mean()])
    e = seed_effect([(y, y, 1 - y), (y, y, y)], stat, reps=200)
    assert e["per_seed"].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert e["value"].tolist() == [0.5, 0.5] and e["lo"].shape == (2,)
    with pytest.raises(AugmineError, match="different numbers of images"):
        seed_effect([(y, y[:10])])
    with pytest.raises(AugmineError, match="at least one training seed"):
        seed_effect([])


def test_class_scores_agree_with_sklearn():
    from sklearn.metrics import precision_recall_fscore_support

    from augmine.analysis.metrics import class_scores

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))   # class 5 never predicted
    got = class_scores(y, pred, 7)                                       # class 6 absent
    want = precision_recall_fscore_support(y, pred, labels=np.arange(7), zero_division=0)
    for key, ref in zip(("precision", "recall", "f1", "support"), want):
        assert np.allclose(got[key], ref)


def test_effect_table_nets_out_the_control():
    from augmine.analysis.effects import effect_table, effect_warning, f1_losses
    from augmine.analysis.metrics import f1_scores

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 200)
    before = np.where(rng.random(len(y)) < 0.6, y, (y + 1) % 5)
    control = np.where(rng.random(len(y)) < 0.7, y, (y + 1) % 5)
    t = effect_table(y, before, control, control, num_classes=5, chosen=[0], reps=200)
    for row in t.values():                      # a round identical to its control: exactly 0
        assert row["effect"] == {"value": 0.0, "lo": 0.0, "hi": 0.0}
        assert row["change"]["value"] > 0
    assert effect_warning(t, True) is None
    better = np.where(y == 0, y, control)       # class 0 perfect, others as the control
    t = effect_table(y, before, better, control, num_classes=5, chosen=[0], reps=200)
    chosen = t["chosen F1"]["effect"]
    assert chosen["lo"] > 0 and chosen["lo"] <= chosen["value"] <= chosen["hi"]
    worse = np.where(y == 3, 0, control)        # class 3 lost entirely
    t = effect_table(y, before, worse, control, num_classes=5, chosen=[0], reps=200)
    assert t["top-1"]["effect"]["hi"] < 0
    warn = effect_warning(t, True)
    assert warn.startswith("WARNING: the round lowered top-1 -") and "against the control" in warn
    t = effect_table(y, before, worse, None, num_classes=5, chosen=[0], reps=50)
    assert t["top-1"]["effect"] is None and t["top-1"]["control"] is None
    lost = f1_losses(list("abcde"), np.bincount(y), f1_scores(y, control, 5),
                     f1_scores(y, worse, 5))
    assert lost[0]["name"] == "d" and lost[0]["after"] == 0.0 and lost[0]["support"] == 200
