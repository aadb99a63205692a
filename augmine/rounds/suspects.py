"""``mine suspects``: images of the weak classes the run's model believes least (possible
label errors), scored out of sample, written as the latest stage's ``suspects.csv``."""

from __future__ import annotations

from augmine.analysis.metrics import top1
from augmine.core.errors import AugmineError
from augmine.rounds.plans import RoundState
from augmine.runs.factories import evaluation_settings
from augmine.train.evaluation import predict_checkpoint
from augmine.train.phases import checked_run_index

# below this multiple of chance (1 / classes) top-1 on the scored images, the model is too
# weak for its self-confidence to single out label errors: find_suspects says so
WEAK_MODEL_CHANCE_MULTIPLE = 2.0


def weak_model_note(top1: float, num_classes: int, split: str) -> str | None:
    """One line when ``top1`` on the scored images is below
    ``WEAK_MODEL_CHANCE_MULTIPLE`` x chance; None otherwise."""
    chance = 1.0 / max(1, num_classes)
    if top1 >= WEAK_MODEL_CHANCE_MULTIPLE * chance:
        return None
    return (f"note: the model's top-1 on these {split} images is {top1:.1%} (chance "
            f"{chance:.1%}): too weak for its confidence to single out label errors; read "
            "this list as the images it gets wrong, not as mislabelled ones")


def find_suspects(run_dir, per_class: int = 10, classes=None, in_sample: bool = False,
                  skip_bad: bool = False) -> tuple[str, list[dict], str | None]:
    """Images of weak classes with the lowest self-confidence under the run's last
    checkpoint, scored out of sample: the held-out slice of train when the run has one,
    else val (``in_sample=True``: the training images, which the model has fit; labelled
    so). ``run_dir``: a path, RunDir or :class:`~augmine.rounds.plans.RoundState`.
    ``classes``: names/ids (default: the latest report's plan, else its weakest).
    Images are checked first (bad ones left out with ``skip_bad``, or when the run left
    them out). Writes the latest stage's ``suspects.csv``
    (:meth:`~augmine.runs.rundir.RunDir.write_suspects`); returns ``(csv path, rows, note)``;
    each row's ``split`` and ``scored`` say where and how it was scored; ``note``: one line
    when the model is too weak there for the ranking to mean much (:func:`weak_model_note`),
    else None."""
    from augmine.analysis.metrics import suspect_samples

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
    _, probs = predict_checkpoint(run.checkpoint("last"), index, size, batch_size, split=split)
    sp = index.split(split)
    rows = suspect_samples(sp.labels, probs, chosen, per_class=per_class,
                           paths=sp.paths, class_names=list(index.class_names))
    scored = "in sample (trained on)" if in_sample else "out of sample"
    for r in rows:
        r.update({"split": split, "scored": scored})
    out = run.write_suspects(rep["stage"], [
        {**r, "self_confidence": f"{r['self_confidence']:.4f}",
         "predicted_prob": f"{r['predicted_prob']:.4f}"} for r in rows])
    return str(out), rows, weak_model_note(top1(sp.labels, probs), index.num_classes, split)
