"""The training/evaluation pipelines: shapes, order, oversampling, determinism, errors, shutdown."""

from __future__ import annotations

import gc
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import subprocess_env

from augmine.core.errors import AugmineError


def _compose(size: int, strong: bool = False):
    """A small random recipe (stands in for recipes/*.yaml; output exactly size x size)."""
    import albumentations as A

    extra = [A.ToGray(p=1.0)] if strong else []
    return A.Compose([A.HorizontalFlip(p=0.5),
                      A.RandomBrightnessContrast(p=0.5),
                      A.RandomResizedCrop((size, size), scale=(0.4, 1.0), p=1.0), *extra])


def _spawned_children() -> list[int]:
    """PIDs of live pipeline workers (/proc scan): children of the multiprocessing fork server,
    or spawn workers of this process. The fork server itself is a helper that lives as long as
    Python, like multiprocessing's resource tracker, and is not counted."""
    from multiprocessing import forkserver

    me = os.getpid()
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if state != "Z" and (ppid == server or (ppid == me and b"spawn_main" in cmd)):
            found.append(int(entry))
    return found


def _assert_no_workers(wait: float = 5.0):
    """No pipeline worker alive (waits up to ``wait`` s for terminated ones to exit)."""
    import multiprocessing as mp
    import time

    gc.collect()
    deadline = time.monotonic() + wait
    while (mp.active_children() or _spawned_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mp.active_children() == []
    assert _spawned_children() == []


def _batches(ds):
    return [(np.asarray(x), np.asarray(y)) for x, y in ds]


@pytest.mark.backend
@pytest.mark.parametrize("size", [16, 32, 64])
def test_train_and_eval_shapes_dtypes_ranges(synth_index, size):
    from augmine.feed.feeds import eval_dataset, train_dataset
    from augmine.feed.sampling import epoch_length

    ds = train_dataset(synth_index, _compose(size), size, 96, seed=0, workers=1)
    batches = _batches(ds)
    assert len(ds) == len(batches) == 5          # 400 images: 4 x 96 + 16
    assert [len(y) for _, y in batches] == [96, 96, 96, 96, 16]  # last partial batch kept
    x, y = batches[0]
    assert x.shape == (96, size, size, 3) and x.dtype == np.uint8   # raw pixels: the model scales
    assert y.dtype == np.int32 and 0 <= y.min() and y.max() < synth_index.num_classes
    assert x.max() > 128                                        # real pixels, not all dark
    assert sum(len(y) for _, y in batches) == epoch_length(synth_index) == 400
    ex, ey = next(iter(eval_dataset(synth_index, size, 32)))
    assert ex.shape == (32, size, size, 3) and ex.dtype.name == "uint8"
    assert ey.dtype.name == "int32" and int(np.asarray(ex).max()) > 128
    del ds
    _assert_no_workers()                  # dropping the dataset stops its workers


@pytest.mark.backend
def test_eval_keeps_file_order_and_pixels(synth_index):
    import cv2

    from augmine.data.dataset import read_image
    from augmine.feed.feeds import eval_dataset

    batches = _batches(eval_dataset(synth_index, 32, 33))
    labels = np.concatenate([y for _, y in batches])
    images = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(labels, synth_index.val.labels)
    for i in (0, 57, len(labels) - 1):   # the image of each position is that file's image
        want = cv2.resize(read_image(synth_index.val.paths[i]), (32, 32),
                          interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(images[i].astype(int), want.astype(int), atol=1)


@pytest.mark.backend
@pytest.mark.parametrize("keep", [True, False])
def test_a_kept_eval_feed_decodes_each_image_once(synth_index, monkeypatch, keep):
    from augmine.data import dataset as images
    from augmine.feed.feeds import eval_dataset

    decoded = []
    real = images.read_image
    monkeypatch.setattr(images, "read_image", lambda path: decoded.append(path) or real(path))
    feed = eval_dataset(synth_index, 16, 33, keep=keep)
    first, second = _batches(feed), _batches(feed)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    n = len(synth_index.val)
    assert len(decoded) == (n if keep else 2 * n)


def test_tf_feeds_do_not_autotune_and_give_the_same_batches(synth_index):
    """tf.data's autotuning is off on the TensorFlow feeds: with it on, Keras' drop of each
    finished epoch's iterator waited seconds for the autotune thread (up to 16 s an epoch,
    ``benchmarks/iterator_replace.py``). The batches are what a feed with autotuning gives."""
    from augmine.core.runtime import import_tensorflow, keras_backend
    from augmine.feed.feeds import close_feed, eval_dataset, train_dataset

    if keras_backend() != "tensorflow":
        pytest.skip("tf.data feeds are the TensorFlow backend's")
    tf = import_tensorflow()
    on = tf.data.Options()
    on.autotune.enabled = True
    for make in (lambda: train_dataset(synth_index, _compose(16), 16, 50, seed=3, workers=1),
                 lambda: eval_dataset(synth_index, 16, 50)):
        plain, tuned = make(), make()
        assert plain.options().autotune.enabled is False
        tuned_batches = _batches(tuned.prefetch(tf.data.AUTOTUNE).with_options(on))
        for (x1, y1), (x2, y2) in zip(_batches(plain), tuned_batches, strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
        close_feed(plain)
        close_feed(tuned)


@pytest.fixture()
def gray_root(tmp_path):
    """A class-folder dataset whose JPEGs are all single-channel (grayscale) files."""
    import cv2

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(d / f"{cls}{i}.jpg"), rng.integers(0, 255, (40, 48), np.uint8))
    return tmp_path


@pytest.mark.backend
def test_grayscale_inputs_come_out_with_three_channels(gray_root):
    from augmine.data.dataset import load_index
    from augmine.feed.feeds import eval_dataset, train_dataset

    index = load_index(gray_root)
    x, _ = next(iter(eval_dataset(index, 16, 8)))
    assert x.shape == (6, 16, 16, 3)
    x = np.asarray(x)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    tx, _ = next(iter(train_dataset(index, _compose(16), 16, 12, seed=1, workers=0)))
    assert tx.shape == (12, 16, 16, 3)


@pytest.mark.backend
def test_plan_triples_two_classes_and_uses_the_weak_recipe(synth_index):
    """Factor 3 for classes 0 and 1: exactly 3x their images (tolerance 0: the count per class
    is fixed by construction); a plan recipe applies to the weak classes only."""
    from augmine.feed.feeds import train_dataset
    from augmine.feed.sampling import epoch_length

    factors = np.ones(synth_index.num_classes)
    factors[[0, 1]] = 3.0
    plan = SimpleNamespace(factors=factors, weak=[0, 1], recipe=_compose(16, strong=True))
    assert epoch_length(synth_index, plan) == 400 + 2 * 2 * 40
    batches = _batches(train_dataset(synth_index, _compose(16), 16, 64, plan=plan, seed=3,
                                     workers=2))
    labels = np.concatenate([y for _, y in batches])
    images = np.concatenate([x for x, _ in batches])
    counts = np.bincount(labels, minlength=10)
    assert counts[0] == counts[1] == 120 and set(counts[2:]) == {40}
    share = counts[:2].sum() / counts.sum()
    base = 80 / 400
    assert share == pytest.approx(3 * base / (1 + 2 * base))   # 3x the images of those classes
    gray = (np.ptp(images, axis=-1) == 0).all(axis=(1, 2))
    assert gray[labels < 2].all()                # weak classes: the plan's ToGray recipe
    assert gray[labels >= 2].mean() < 0.1        # others: normal colour images
    _assert_no_workers()


def test_fractional_factor_adds_extra_copies_without_dropping(synth_index):
    from augmine.feed.sampling import epoch_order

    labels = synth_index.train.labels
    factors = np.ones(10)
    factors[4] = 1.5
    order = epoch_order(labels, factors, rng=0)
    seen = np.bincount(order, minlength=len(labels))
    assert seen.min() >= 1                                  # nothing dropped
    assert np.bincount(labels[order])[4] == 60              # 40 + round(0.5 * 40)
    assert set(seen[labels == 4]) == {1, 2} and set(seen[labels != 4]) == {1}


@pytest.mark.backend
def test_same_seed_same_batches_any_worker_count(synth_index):
    from augmine.feed.feeds import train_dataset

    one = _batches(train_dataset(synth_index, _compose(32), 32, 128, seed=7, workers=1))
    two = _batches(train_dataset(synth_index, _compose(32), 32, 128, seed=7, workers=2))
    inproc = _batches(train_dataset(synth_index, _compose(32), 32, 128, seed=7, workers=0))
    for (xa, ya), (xb, yb), (xc, yc) in zip(one, two, inproc):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(xa, xc)
    other = _batches(train_dataset(synth_index, _compose(32), 32, 128, seed=8, workers=0))
    assert not np.array_equal(other[0][1], one[0][1])


@pytest.mark.backend
def test_epochs_differ_and_cache_gives_the_same_batches(synth_index, tmp_path):
    from augmine.feed.feeds import train_dataset

    ds = train_dataset(synth_index, _compose(16), 16, 400, seed=5, workers=1)
    first, second = _batches(ds), _batches(ds)
    assert not np.array_equal(first[0][1], second[0][1])   # a new order each epoch
    cache = tmp_path / "train.npy"
    cached = train_dataset(synth_index, _compose(16), 16, 400, seed=5, workers=1, cache=cache)
    assert cache.exists() and np.load(cache, mmap_mode="r").shape == (400, 64, 64, 3)
    np.testing.assert_array_equal(_batches(cached)[0][0], first[0][0])
    stamp = cache.stat().st_mtime_ns
    train_dataset(synth_index, _compose(16), 16, 400, seed=5, workers=1, cache=cache)
    assert cache.stat().st_mtime_ns == stamp                # reused, not rebuilt


@pytest.fixture()
def corrupt_copy(synth_root, tmp_path):
    """A copy of the synthetic dataset with one train and one val JPEG corrupted."""
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    bad_train = sorted((root / "train").glob("*/images/*.JPEG"))[17]
    bad_train.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg \xff\xd9")
    bad_val = root / "val" / "images" / "val_3.JPEG"
    bad_val.write_bytes(b"garbage")
    return root, bad_train, bad_val


@pytest.mark.backend
def test_failing_image_raises_augmine_error_naming_the_file(corrupt_copy):
    from augmine.data.dataset import load_index
    from augmine.feed.feeds import eval_dataset, pipeline_errors, train_dataset

    root, bad_train, bad_val = corrupt_copy
    index = load_index(root)
    with pytest.raises(AugmineError, match=bad_train.name):
        with pipeline_errors():
            for _ in train_dataset(index, _compose(16), 16, 50, seed=0, workers=2):
                pass
    _assert_no_workers()
    with pytest.raises(AugmineError, match=bad_val.name):
        with pipeline_errors():
            for _ in eval_dataset(index, 16, 50):
                pass


@pytest.mark.backend
def test_workers_persist_across_epochs_and_stop_on_close(synth_index):
    from augmine.feed.feeds import close_feed, train_dataset

    ds = train_dataset(synth_index, _compose(16), 16, 50, seed=0, workers=2)
    _batches(ds)
    first = sorted(_spawned_children())
    assert len(first) == 2
    _batches(ds)
    assert sorted(_spawned_children()) == first        # the same processes serve epoch 2
    close_feed(ds)
    _assert_no_workers()
    close_feed(ds)                                      # idempotent
    assert len(_batches(ds)) == 8                       # a later epoch starts new workers
    close_feed(ds)
    _assert_no_workers()
    with pytest.raises(AugmineError, match="not a feed"):
        close_feed([1, 2])


@pytest.mark.backend
def test_workers_make_the_next_epochs_first_batches_while_the_loop_is_away(synth_root,
                                                                          tmp_path):
    """Between epochs (validation, callbacks) the workers already make the next epoch's first
    batches: here the images are destroyed after epoch 1, and epoch 2 still starts with the
    window of batches made before, identical to an uninterrupted run's, then fails naming
    a file."""
    import time

    from augmine.data.dataset import load_index
    from augmine.feed.feeds import close_feed, pipeline_errors, train_dataset
    from augmine.feed.workers import WINDOW_PER_WORKER

    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    index = load_index(root)
    reference = train_dataset(index, _compose(16), 16, 50, seed=3, workers=1)
    expected = [_batches(reference) for _ in range(2)][1]
    close_feed(reference)
    ds = train_dataset(index, _compose(16), 16, 50, seed=3, workers=1)
    _batches(ds)
    results = ds._augmine_feed.group.results       # the loop is away: wait until the worker
    deadline = time.monotonic() + 120              # has made the next epoch's window
    while results.qsize() < WINDOW_PER_WORKER:
        assert time.monotonic() < deadline, "the next epoch's first batches were not made"
        time.sleep(0.01)
    for jpeg in (root / "train").glob("*/images/*.JPEG"):
        jpeg.write_bytes(b"not a jpeg")
    got = []
    with pytest.raises(AugmineError, match=r"\.JPEG"):
        with pipeline_errors():
            for x, y in ds:
                got.append((np.asarray(x), np.asarray(y)))
    assert len(got) == WINDOW_PER_WORKER   # x 1 worker: made in advance
    for (xa, ya), (xb, yb) in zip(got, expected):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    close_feed(ds)
    _assert_no_workers()


@pytest.mark.backend
def test_break_mid_epoch_leaves_no_stale_batches_and_resume_is_exact(synth_index):
    """An epoch dropped half-way is replayed whole by the next iteration (nothing of the old
    one leaks into it), and first_epoch=k reproduces epoch k of an uninterrupted run."""
    from augmine.feed.feeds import close_feed, train_dataset

    plain = train_dataset(synth_index, _compose(16), 16, 16, seed=4, workers=2)
    reference = [_batches(plain) for _ in range(2)]      # epochs 0 and 1
    close_feed(plain)
    ds = train_dataset(synth_index, _compose(16), 16, 16, seed=4, workers=2)
    for k, _ in enumerate(ds):
        if k == 3:
            break                                        # 4 of 25 batches read, 8 more in flight
    again = _batches(ds)
    assert len(again) == 25
    for (xa, ya), (xb, yb) in zip(again, reference[0]):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    resumed = train_dataset(synth_index, _compose(16), 16, 16, seed=4, workers=1, first_epoch=1)
    for (xa, ya), (xb, yb) in zip(_batches(resumed), reference[1]):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    close_feed(ds)
    close_feed(resumed)
    _assert_no_workers()


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C handled as a plain Python process does (KeyboardInterrupt), whatever an earlier
    test in this process left; the handler before is put back afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.backend
def test_no_workers_left_after_ctrl_c(synth_index, python_ctrl_c):
    from augmine.feed.feeds import train_dataset

    ds = train_dataset(synth_index, _compose(16), 16, 8, seed=0, workers=2)
    with pytest.raises(KeyboardInterrupt):
        for n, _ in enumerate(ds):
            if n == 1:
                assert len(_spawned_children()) == 2
                for pid in _spawned_children():     # Ctrl-C reaches the whole process group:
                    os.kill(pid, signal.SIGINT)     # workers ignore it,
                os.kill(os.getpid(), signal.SIGINT)  # the main process stops them and itself
    _assert_no_workers()
    assert len(_batches(ds)) == 50                  # the feed still works: new workers
    del ds
    _assert_no_workers()


@pytest.mark.backend
def test_ctrl_c_between_epochs_then_the_next_epoch_is_whole_and_exact(synth_index,
                                                                      python_ctrl_c):
    """Ctrl-C after an epoch, while the workers make the next epoch's first batches: the next
    loop starts new workers and yields that epoch whole, as an uninterrupted run does."""
    from augmine.feed.feeds import close_feed, train_dataset

    reference = train_dataset(synth_index, _compose(16), 16, 50, seed=6, workers=2)
    expected = [_batches(reference) for _ in range(2)][1]
    close_feed(reference)
    ds = train_dataset(synth_index, _compose(16), 16, 50, seed=6, workers=2)
    _batches(ds)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)        # its handler runs before this returns
    got = _batches(ds)
    assert len(got) == len(expected) == 8
    for (xa, ya), (xb, yb) in zip(got, expected):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    close_feed(ds)
    _assert_no_workers()


@pytest.mark.backend
def test_bad_arguments_are_one_line_errors(synth_index):
    from augmine.feed.feeds import train_dataset
    from augmine.feed.sampling import epoch_length

    with pytest.raises(AugmineError, match="3 factors"):
        epoch_length(synth_index, SimpleNamespace(factors=[1, 2, 3], weak=[], recipe=None))
    with pytest.raises(AugmineError, match=">= 1"):
        epoch_length(synth_index, SimpleNamespace(factors=np.full(10, 0.5), weak=[], recipe=None))
    with pytest.raises(AugmineError, match="batch size"):
        train_dataset(synth_index, _compose(16), 16, 0)


@pytest.mark.backend
def test_recipe_by_name_goes_through_build_compose(synth_index):
    from augmine.feed.feeds import train_dataset

    x, _ = next(iter(train_dataset(synth_index, "light", 16, 32, seed=0, workers=1)))
    assert x.shape == (32, 16, 16, 3)


@pytest.mark.backend
def test_memory_cache_matches_no_cache(synth_index):
    from augmine.feed.feeds import train_dataset

    plain = _batches(train_dataset(synth_index, _compose(16), 16, 400, seed=2, workers=0))
    cached = _batches(train_dataset(synth_index, _compose(16), 16, 400, seed=2, workers=1,
                                    cache="memory"))
    np.testing.assert_array_equal(plain[0][0], cached[0][0])


@pytest.mark.slow
@pytest.mark.backend
def test_workers_exit_when_the_main_process_dies(synth_root, tmp_path):
    """A training process killed hard (os._exit, OOM kill) leaves no worker behind."""
    import subprocess
    import sys
    import time

    script = tmp_path / "die.py"
    script.write_text(f"""
import os, multiprocessing as mp
import albumentations as A
from multiprocessing import forkserver
from augmine.data.dataset import load_index
from augmine.feed.feeds import train_dataset
if __name__ == "__main__":
    ds = train_dataset(load_index({str(synth_root)!r}), A.Compose([A.HorizontalFlip()]), 16, 4,
                       seed=0, workers=2)
    it = iter(ds); next(it)
    pids = [p.pid for p in mp.active_children()] + [forkserver._forkserver._forkserver_pid]
    print(*pids, flush=True)
    os._exit(0)
""")
    out = tmp_path / "pids.txt"
    with open(out, "w") as fh:
        subprocess.run([sys.executable, str(script)], stdout=fh, stderr=subprocess.DEVNULL,
                       timeout=120, check=True)
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 3
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    alive = [p for p in pids if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert alive == []


# --------------------------------------------------------------------------- user scripts

_SCRIPT = '''
import json, multiprocessing as mp, os
with open({marker!r}, "a") as fh:
    fh.write(f"script {{os.getpid()}}\\n")      # a worker re-running this script would add a line
{heavy}
import albumentations as A
from augmine.data.dataset import load_index
from augmine.feed.feeds import close_feed, train_dataset

{guard}
    ds = train_dataset(load_index({root!r}), A.Compose([A.HorizontalFlip(),
                       A.RandomResizedCrop((32, 32), scale=(0.4, 1.0))]), 32, 50, seed=0, workers=2)
    pids, libs = [], {{}}
    for epoch in range(3):
        assert sum(len(y) for _, y in ds) == 400
        pids.append(sorted(p.pid for p in mp.active_children()))
    for pid in pids[0]:           # native libraries a worker has loaded (an import shows there)
        maps = open(f"/proc/{{pid}}/maps").read()
        libs[pid] = [lib for lib in ("tensorflow", "jaxlib", "torch") if lib in maps]
    close_feed(ds)
    print("WORKERS", json.dumps({{"pids": pids, "libs": libs}}, separators=(",", ":")), os.getpid())
'''


@pytest.fixture()
def fake_torch(tmp_path):
    """A ``torch`` package that records which process imported it (then fails, as if broken,
    so albumentations goes on without it): stands in for an installed PyTorch."""
    from augmine.core.runtime import keras_backend

    if keras_backend() == "torch":
        pytest.skip("a fake torch cannot stand in for the one the torch backend runs on")
    pkg = tmp_path / "fake" / "torch"
    pkg.mkdir(parents=True)
    record = tmp_path / "torch-imports.txt"
    (pkg / "__init__.py").write_text(
        f"import os\nwith open({str(record)!r}, 'a') as fh:\n    fh.write(f'{{os.getpid()}}\\n')\n"
        "raise ImportError('fake torch for augmine tests')\n")
    return pkg.parent, record


def _run_script(code: str, as_file: Path, fake_dir: Path) -> tuple[dict, int]:
    import json
    import subprocess
    import sys

    as_file.write_text(code)
    env = subprocess_env(PYTHONPATH=os.pathsep.join(
        [str(fake_dir), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(as_file)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("WORKERS")][-1]
    _, workers, pid = line.rsplit(" ", 2)
    return json.loads(workers), int(pid)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no_main_guard",      # imports no Keras: one backend will do
                                  pytest.param("keras_at_top", marks=pytest.mark.backend)])
def test_workers_never_run_the_users_script_nor_import_torch(case, synth_root, tmp_path,
                                                             fake_torch):
    """A top-level script without ``if __name__ == "__main__":`` works, and a script that
    imports Keras (and its backend) at its top does not make workers import it: the script
    runs in one process only, the same two workers serve every epoch, no worker has loaded
    TensorFlow, JAX or PyTorch, and none imports PyTorch (albumentations would, in its
    __init__)."""
    fake_dir, torch_record = fake_torch
    marker = tmp_path / "ran.txt"
    heavy = "import keras\nimport numpy\nkeras.ops.ones((2,))" if case == "keras_at_top" else ""
    guard = "if True:" if case == "no_main_guard" else 'if __name__ == "__main__":'
    code = _SCRIPT.format(marker=str(marker), heavy=heavy, guard=guard, root=str(synth_root))
    workers, pid = _run_script(code, tmp_path / "user_script.py", fake_dir)
    assert marker.read_text().split() == ["script", str(pid)]       # never re-run by a worker
    assert set(torch_record.read_text().split()) == {str(pid)}     # only the main process
    first = workers["pids"][0]
    assert len(first) == 2 and workers["pids"] == [first] * 3     # persistent across epochs
    assert workers["libs"] == {str(p): [] for p in first}         # no heavy import in workers


@pytest.mark.backend
def test_batches_through_a_pipe_equal_shared_memory_slots(synth_index, monkeypatch):
    """Where there is no memfd (not Linux), batches travel through the result pipe: same data."""
    from augmine.feed import workers
    from augmine.feed.feeds import train_dataset

    slots = _batches(train_dataset(synth_index, _compose(16), 16, 48, seed=9, workers=2))
    monkeypatch.setattr(workers, "make_slots", lambda *args: None)
    piped = _batches(train_dataset(synth_index, _compose(16), 16, 48, seed=9, workers=2))
    assert len(piped) == len(slots) == 9
    for (xa, ya), (xb, yb) in zip(slots, piped):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    _assert_no_workers()


@pytest.mark.backend
def test_presize_runs_the_recipe_on_small_images_and_caches_them(synth_index, tmp_path):
    """presize=True shrinks each 64 px source to the phase size before the recipe: the same
    batches with or without the cache (which then holds 16 px images), and not the batches of
    the full-size path (the recipe saw other pixels)."""
    from augmine.data.dataset import read_image
    from augmine.feed.batches import presized
    from augmine.feed.feeds import train_dataset

    img = read_image(synth_index.train.paths[0])
    assert img.shape == (64, 64, 3) and presized(img, 16).shape == (16, 16, 3)
    assert presized(img, 64) is img and presized(img[:, :40], 16).shape == (26, 16, 3)
    small = _batches(train_dataset(synth_index, _compose(16), 16, 100, seed=3, workers=1,
                                   presize=True))
    cache = tmp_path / "small.npy"
    cached = _batches(train_dataset(synth_index, _compose(16), 16, 100, seed=3, workers=1,
                                    presize=True, cache=cache))
    assert np.load(cache, mmap_mode="r").shape == (400, 16, 16, 3)
    full = _batches(train_dataset(synth_index, _compose(16), 16, 100, seed=3, workers=1))
    for (xa, ya), (xb, yb), (xc, yc) in zip(small, cached, full):
        assert xa.shape == (len(ya), 16, 16, 3)
        np.testing.assert_array_equal(ya, yc)              # same order and labels
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(small[0][0], full[0][0])
    stamp = cache.stat().st_mtime_ns                       # a full-size cache is another file
    train_dataset(synth_index, _compose(16), 16, 100, seed=3, workers=0, cache=cache)
    assert np.load(cache, mmap_mode="r").shape == (400, 64, 64, 3)
    assert cache.stat().st_mtime_ns != stamp


@pytest.mark.backend
def test_spawn_workers_where_there_is_no_fork_server(synth_index, monkeypatch):
    """Under ``spawn`` (Windows; also what runs if the fork server is unavailable) the workers
    give the same batches as in-process and stop on close_feed."""
    import multiprocessing as mp

    from augmine.feed import workers
    from augmine.feed.feeds import close_feed, train_dataset

    monkeypatch.setattr(workers, "_mp_context", lambda: mp.get_context("spawn"))
    ds = train_dataset(synth_index, _compose(16), 16, 100, seed=6, workers=1)
    spawned = _batches(ds)
    inproc = _batches(train_dataset(synth_index, _compose(16), 16, 100, seed=6, workers=0))
    for (xa, ya), (xb, yb) in zip(spawned, inproc):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    close_feed(ds)
    _assert_no_workers()
