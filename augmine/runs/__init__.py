"""Run layer: the training config, the only YAML reader of configs (`config`), and the run folder, the only owner of its layout (`rundir`)."""
