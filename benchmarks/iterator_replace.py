"""How long Keras waits at an epoch's end for tf.data to drop the finished epoch's iterator.

Keras' ``fit`` on a ``tf.data.Dataset`` makes a new iterator at the end of every epoch and
drops the finished one in the main thread, with nothing else running. This reads whole
epochs of augmine's training feed (``train_dataset``, TensorFlow backend, 1 worker), each
spread over ``--epoch-seconds`` as a train step would spread it, then replaces the iterator
the same way and times the replacement: the feed as augmine builds it (tf.data's autotuning
off) and the same feed with autotuning on (``prefetch(AUTOTUNE)`` as before), one after
the other in one process, printed side by side.

    python benchmarks/iterator_replace.py                      # the embedded generated dataset
    python benchmarks/iterator_replace.py --data ../shared/data/tiny-imagenet-sample
"""

from __future__ import annotations

import argparse
import statistics
import time

from augmine.core.runtime import import_tensorflow
from augmine.data.dataset import load_index
from augmine.data.synth import ensure_default_dataset
from augmine.feed.feeds import close_feed, train_dataset


def replace_times(index, autotune: bool, epoch_seconds: list[float], size: int,
                  batch_size: int) -> list[float]:
    """Seconds each iterator replacement took, one per entry of ``epoch_seconds``."""
    tf = import_tensorflow()
    feed = train_dataset(index, "light", size, batch_size, seed=1, workers=1)
    dataset = feed
    if autotune:
        options = tf.data.Options()
        options.autotune.enabled = True
        dataset = feed.prefetch(tf.data.AUTOTUNE).with_options(options)
    batches = int(dataset.cardinality())
    iterator, took = iter(dataset), []
    try:
        for seconds in epoch_seconds:
            for _ in range(batches):
                next(iterator)
                time.sleep(seconds / batches)         # the train step
            new = iter(dataset)                       # what Keras does at the epoch's end
            start = time.perf_counter()
            iterator = new                            # the finished iterator is dropped here
            took.append(time.perf_counter() - start)
    finally:
        del iterator
        close_feed(feed)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset folder (default: the embedded generated dataset)")
    ap.add_argument("--epoch-seconds", default="5,12,25",
                    help="how long each epoch takes, comma-separated (default 5,12,25)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    root = args.data or ensure_default_dataset()
    index = load_index(root)
    seconds = [float(s) for s in args.epoch_seconds.split(",")]
    tf = import_tensorflow()
    print(f"data: {root} ({len(index.split('train'))} train images), {args.size} px, batch "
          f"{args.batch_size}, TensorFlow {tf.__version__}; epochs of {seconds} s")
    rows = {name: replace_times(index, autotune, seconds, args.size, args.batch_size)
            for name, autotune in (("autotune on (before)", True),
                                   ("autotune off (augmine)", False))}
    print(f"{'feed':<24} " + " ".join(f"{s:>6.0f}s" for s in seconds) + "   median   total")
    for name, took in rows.items():
        print(f"{name:<24} " + " ".join(f"{t:>6.2f}s" for t in took)
              + f"  {statistics.median(took):6.2f}s {sum(took):6.2f}s")


if __name__ == "__main__":
    main()
