"""A round's effect against its start and its control, on the measurement images only
(the other half of val for ``val-half``, all of val for ``holdout``), with bootstrap
intervals; the statistics themselves are pure numpy in :mod:`augmine.analysis.effects`."""

from __future__ import annotations

import numpy as np

from augmine.analysis.effects import effect_note, effect_table, effect_warning, f1_losses
from augmine.analysis.metrics import f1_scores
from augmine.analysis.splits import selection_split

BOOTSTRAP_REPS = 1000


def measure_round(index, selection: str, seed: int, chosen, before_probs, after_probs,
                  control_probs=None, reps: int = BOOTSTRAP_REPS, partners=()) -> dict:
    """The round's effect on the measurement images (never the selection ones).

    ``*_probs`` (N_val, C) on the whole val split; measured on its other half
    (``val-half``) or all of it (``holdout``). ``partners``: class indices measured apart
    (the "partner F1" row; pairs rounds). Returns ``{selection, measurement,
    measurement_images, control, chosen, partners, table (see effect_table), per_class:
    [{index, name, support, before, after, control, change, effect}], losers, warning,
    note}`` (``warning``: a fall whose 95% interval excludes zero; ``note``: a fall within
    the noise, "no measurable change")."""
    y = np.asarray(index.val.labels, np.int64)
    meas = selection_split(y, seed)[1] if selection == "val-half" else np.arange(len(y))
    yt = y[meas]
    pred = {k: None if p is None else np.asarray(p)[meas].argmax(axis=1)
            for k, p in (("before", before_probs), ("after", after_probs),
                         ("control", control_probs))}
    num = index.num_classes
    table = effect_table(yt, pred["before"], pred["after"], pred["control"], num_classes=num,
                         chosen=list(chosen), reps=reps, seed=seed, partners=list(partners))
    f1 = {k: None if v is None else f1_scores(yt, v, num) for k, v in pred.items()}
    support = np.bincount(yt, minlength=num)
    names = list(index.class_names)
    per_class = [{"index": i, "name": names[i], "support": int(support[i]),
                  "before": float(f1["before"][i]), "after": float(f1["after"][i]),
                  "control": None if f1["control"] is None else float(f1["control"][i]),
                  "change": float(f1["after"][i] - f1["before"][i]),
                  "effect": None if f1["control"] is None else
                  float(f1["after"][i] - f1["control"][i])} for i in range(num)]
    has_control = control_probs is not None
    ref = f1["control"] if has_control else f1["before"]
    return {"selection": selection,
            "measurement": "the other half of val" if selection == "val-half" else "all of val",
            "measurement_images": int(len(yt)), "control": has_control,
            "reference": "control" if has_control else "before", "reps": int(reps),
            "chosen": [names[i] for i in chosen], "partners": [names[i] for i in partners],
            "table": table, "per_class": per_class,
            "losers": f1_losses(names, support, ref, f1["after"]),
            "warning": effect_warning(table, has_control), "note": effect_note(table, has_control)}
