"""One process of a multi-worker run, started by tests/test_multiworker.py (test-only).

``python multiworker_process.py CONFIG DATA RUN_DIR RECORD STOP_AFTER RESUME``: trains with
:func:`augmine.train.phases.train_run`, writing to RECORD (JSON) every epoch's sample order
and the batches this process read from it; STOP_AFTER > 0 exits (code 3) after that many
epochs of this launch, as a killed run would; RESUME=1 resumes.
"""

import json
import sys

from augmine.feed import sampling as shards

config, data, run_dir, record, stop_after, resume = sys.argv[1:7]
epochs = []
whole_epoch = shards.shard_batches


def recording(order, batch_size, shard=None):
    batches = whole_epoch(order, batch_size, shard)
    epochs.append({"order": [int(i) for i in order], "read": [b.tolist() for b in batches]})
    with open(record, "w") as f:
        json.dump(epochs, f)
    return batches


shards.shard_batches = recording
extra = []
if int(stop_after):
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= int(stop_after):
                raise SystemExit(3)

    extra.append(Stop())

from augmine.train.phases import train_run  # noqa: E402

train_run(config, data, run_dir, resume=resume == "1", progress=False, extra_callbacks=extra)
