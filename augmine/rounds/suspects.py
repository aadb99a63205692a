"""``mine suspects``: images of the weak classes the run's model believes least (possible
label errors), scored out of sample, written as the latest stage's ``suspects.csv``."""

from __future__ import annotations

from augmine.core.errors import AugmineError
from augmine.rounds.state import RoundState
from augmine.runs.checkpoints import evaluation_settings
from augmine.train.evaluation import evaluate_model
from augmine.train.phases import checked_run_index


def find_suspects(run_dir, per_class: int = 10, classes=None, in_sample: bool = False,
                  skip_bad: bool = False) -> tuple[str, list[dict]]:
    """Images of weak classes with the lowest self-confidence under the run's last
    checkpoint, scored out of sample: the held-out slice of train when the run has one,
    else val (``in_sample=True``: the training images, which the model has fit; labelled
    so). ``run_dir``: a path, RunDir or :class:`~augmine.rounds.state.RoundState`.
    ``classes``: names/ids (default: the latest report's plan, else its weakest).
    Images are checked first (bad ones left out with ``skip_bad``, or when the run left
    them out). Writes the latest stage's ``suspects.csv``
    (:meth:`~augmine.runs.rundir.RunDir.write_suspects`); returns ``(csv path, rows)``; each
    row's ``split`` and ``scored`` say where and how it was scored."""
    from augmine.analysis.suspects import suspect_samples
    from augmine.runs.checkpoints import load_checkpoint

    state = RoundState.of(run_dir)
    run = state.run
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing: {run} has no checkpoint; "
                           "train it first")
    rep = state.latest_report
    index = checked_run_index(run, skip_bad)
    if classes:
        chosen = [index.class_index(c) for c in classes]
    else:
        names = (rep.get("plan") or {}).get("weak_names") or rep["weakest"]
        chosen = [index.class_index(n) for n in names]
    split = "train" if in_sample else ("holdout" if "holdout" in index.splits else "val")
    size, batch_size = evaluation_settings(run.config)
    model = load_checkpoint(run.checkpoint("last"), compile=False)
    _, probs = evaluate_model(model, index, size, batch_size, split=split)
    sp = index.split(split)
    rows = suspect_samples(sp.labels, probs, chosen, per_class=per_class,
                           paths=sp.paths, class_names=list(index.class_names))
    scored = "in sample (trained on)" if in_sample else "out of sample"
    for r in rows:
        r.update({"split": split, "scored": scored})
    out = run.write_suspects(rep["stage"], [
        {**r, "self_confidence": f"{r['self_confidence']:.4f}",
         "predicted_prob": f"{r['predicted_prob']:.4f}"} for r in rows])
    return str(out), rows
