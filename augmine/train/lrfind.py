"""``augmine lr-find``: the LR range test for a config's model at one phase's size and recipe."""

from __future__ import annotations

from pathlib import Path

from augmine.core.atomic import write_json
from augmine.runs.config import create_model, load_config
from augmine.core.errors import AugmineError


def lr_find(config, data_root, out_dir, phase: int = 1, steps: int = 200,
            start_lr: float = 1e-5, end_lr: float = 1.0, progress: bool = False) -> dict:
    """LR range test for a config's model at phase ``phase``'s size and recipe.

    ``config``: a YAML path, dict or TrainConfig; ``data_root``: the dataset folder.
    ``progress``: report every step on stderr (a line rewritten in place on a terminal,
    else one line per tenth of the steps). Writes ``out_dir/lr_find.png`` (loss vs LR) and
    ``out_dir/lr_find.json``; returns the result of
    :func:`augmine.model.schedules.lr_range_test` (``warning`` set when the loss never fell)
    plus ``png``/``json`` paths.
    """
    cfg = load_config(config)
    if not 1 <= phase <= len(cfg.phases):
        raise AugmineError(f"--phase {phase} is out of range; the config has "
                           f"{len(cfg.phases)} phases")
    if not (0 < start_lr < end_lr):
        raise AugmineError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 5:
        raise AugmineError(f"--steps {steps} is not a valid step count; use a whole number >= 5")
    from augmine.data.dataset import load_index
    from augmine.feed.feeds import pipeline_errors, train_dataset
    from augmine.core.runtime import import_keras
    from augmine.model.schedules import lr_range_test

    index = load_index(data_root)
    ph = cfg.phases[phase - 1]
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    model = create_model(cfg.model, index.num_classes, where=cfg.path or "config")
    feed = train_dataset(index, ph.recipe, ph.size, cfg.batch_size, seed=cfg.seed,
                         workers=cfg.workers, **ph.feed_options())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = {k: v for k, v in cfg.optimizer.kwargs().items() if k in ("momentum", "nesterov")}
    with pipeline_errors():
        result = lr_range_test(model, feed, out_png=out_dir / "lr_find.png",
                               start_lr=start_lr, end_lr=end_lr, steps=int(steps),
                               progress=progress, **opt)
    result["png"] = str(out_dir / "lr_find.png")
    result["json"] = str(out_dir / "lr_find.json")
    write_json(out_dir / "lr_find.json", {k: v for k, v in result.items() if k != "smoothed"})
    return result
