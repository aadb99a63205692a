"""Dataset indexing on the real sample and on generated copies with real-world damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augmine.cli import cli
from augmine.data.dataset import (check_images, display_name, find_bad_images, load_index,
                                  read_image, verify_index)
from augmine.core.errors import AugmineError
from augmine.data.synth import confusable_pairs, write_synthetic_dataset


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A fresh, small generated dataset (4 classes, 6 train + 3 val each) to damage."""
    root = tmp_path / "tiny"
    write_synthetic_dataset(root, num_classes=4, train_per_class=6, val_per_class=3, seed=1)
    return root


# ----------------------------------------------------------------------------- real sample

def test_real_sample_counts_names_boxes(real_index):
    assert real_index.layout == "tiny-imagenet"
    assert real_index.num_classes == 10
    assert len(real_index.train) == 2500 and len(real_index.val) == 500
    assert list(real_index.class_counts("val")) == [50] * 10
    assert "Chihuahua" in real_index.class_names
    assert "teddy bear" in real_index.class_names
    assert "tabby cat" in real_index.class_names
    assert real_index.class_index("teddy bear") == real_index.class_index("n04399382")
    assert not np.isnan(real_index.val.boxes).any()
    assert not np.isnan(real_index.train.boxes).any()
    x0, y0, x1, y1 = real_index.val.boxes.T
    assert (x0 <= x1).all() and (y0 <= y1).all() and (x1 <= 64).all()


def test_real_sample_grayscale_decodes_to_three_channels(real_index):
    report = verify_index(real_index)
    assert report.bad == []
    assert report.grayscale["train"] > 0
    img = read_image(report.grayscale_paths[0])
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 1])


def test_real_sample_data_check_cli(real_root):
    result = CliRunner().invoke(cli, ["data", "check", str(real_root)])
    assert result.exit_code == 0, result.output
    assert "classes   10" in result.output
    assert "2,500 images" in result.output and "500 images" in result.output
    assert "problems  none" in result.output
    assert " grayscale" in result.output


def test_unknown_class_name_suggests_close_names(real_index):
    with pytest.raises(AugmineError, match="did you mean 'Chihuahua'"):
        real_index.class_index("chihuahau")


# ----------------------------------------------------------------------------- generated set

def test_synth_layout_and_determinism(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", num_classes=6, train_per_class=3,
                                val_per_class=2, seed=7)
    write_synthetic_dataset(tmp_path / "b", num_classes=6, train_per_class=3,
                            val_per_class=2, seed=7)
    for rel in ["wnids.txt", "val/val_annotations.txt", "train/s0000000/images/s0000000_2.JPEG",
                "val/images/val_5.JPEG", "train/s0000003/s0000003_boxes.txt"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    index = load_index(a.root, verify=True)
    assert index.num_classes == 6 and len(index.train) == 18 and len(index.val) == 12
    assert confusable_pairs(a.root) == [("striped red circle", "dotted red circle")]
    assert index.class_names[:2] == ("striped red circle", "dotted red circle")
    assert read_image(index.val.paths[0]).shape == (64, 64, 3)


def test_synth_other_seed_differs(tmp_path):
    write_synthetic_dataset(tmp_path / "a", num_classes=2, train_per_class=2, val_per_class=1)
    write_synthetic_dataset(tmp_path / "b", num_classes=2, train_per_class=2, val_per_class=1,
                            seed=1)
    rel = "train/s0000000/images/s0000000_0.JPEG"
    assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "b" / rel).read_bytes()


def test_copes_with_crlf_no_final_newline_stray_files_and_big_words(tiny):
    for rel in ["wnids.txt", "val/val_annotations.txt"]:
        p = tiny / rel
        p.write_bytes(p.read_bytes().rstrip(b"\n").replace(b"\n", b"\r\n"))
    (tiny / ".DS_Store").write_bytes(b"\0\0")
    (tiny / "train" / "s0000000" / "images" / "Thumbs.db").write_bytes(b"\0")
    (tiny / "val" / "images" / ".DS_Store").write_bytes(b"\0")
    words = tiny / "words.txt"
    words.write_text("n00000001\tentity\n" * 3000 + words.read_text())
    index = load_index(tiny, verify=True)
    assert index.num_classes == 4
    assert len(index.train) == 24 and len(index.val) == 12
    assert index.class_names[0] == "striped red circle"


def test_class_folder_layout(tmp_path, tiny):
    index = load_index(tiny)
    root = tmp_path / "folders"
    for split in ("train", "val"):
        s = index.split(split)
        for path, label in zip(s.paths, s.labels):
            dest = root / split / f"class_{label}" / (Path(path).stem + ".jpg")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
    folders = load_index(root, verify=True)
    assert folders.layout == "folders"
    assert folders.class_ids == ("class_0", "class_1", "class_2", "class_3")
    assert len(folders.train) == 24 and len(folders.val) == 12
    assert np.isnan(folders.val.boxes).all()


def test_display_names():
    assert display_name("teddy, teddy bear") == "teddy bear"
    assert display_name("Chihuahua") == "Chihuahua"
    assert display_name("goldfish, Carassius auratus") == "goldfish"
    assert display_name("tabby, tabby cat") == "tabby cat"


# ----------------------------------------------------------------------------- bad input

def _error(root, **kw) -> str:
    with pytest.raises(AugmineError) as info:
        load_index(root, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_wnids(tiny):
    (tiny / "wnids.txt").unlink()
    msg = _error(tiny)
    assert "wnids.txt is missing" in msg and "re-extract" in msg


def test_missing_val_annotations(tiny):
    (tiny / "val" / "val_annotations.txt").unlink()
    msg = _error(tiny)
    assert "val_annotations.txt is missing" in msg


def test_annotation_with_unknown_class(tiny):
    ann = tiny / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split("\t")[1], "n99999999")
    ann.write_text("\n".join(lines) + "\n")
    msg = _error(tiny)
    assert "val_annotations.txt:3" in msg and "n99999999 is not in wnids.txt" in msg


def test_annotation_pointing_at_missing_file(tiny):
    (tiny / "val" / "images" / "val_4.JPEG").unlink()
    msg = _error(tiny)
    assert "val_4.JPEG does not exist" in msg and "val_annotations.txt:5" in msg


def test_empty_class_folder(tiny):
    for f in (tiny / "train" / "s0000002" / "images").iterdir():
        f.unlink()
    msg = _error(tiny)
    assert "s0000002/images is empty" in msg


def test_bad_images_reported_together_then_skipped(tiny, caplog):
    imgs = tiny / "train" / "s0000001" / "images"
    good = (imgs / "s0000001_0.JPEG").read_bytes()
    (imgs / "s0000001_1.JPEG").write_bytes(good[: len(good) // 2])     # truncated
    (imgs / "s0000001_2.JPEG").write_bytes(b"this is not a jpeg")       # corrupt
    (imgs / "notes.pdf").write_bytes(b"%PDF-1.4")                       # not an image
    msg = _error(tiny, verify=True)
    assert msg.startswith("3 bad file(s)")
    assert "truncated JPEG" in msg and "not a decodable image" in msg and "notes.pdf" in msg
    assert "--skip-bad" in msg
    with caplog.at_level("WARNING", logger="augmine"):
        index = load_index(tiny, verify=True, skip_bad=True)
    assert len(index.train) == 22 and len(index.skipped) == 3
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 3


def test_data_check_cli_reports_bad_files_in_one_line(tiny):
    imgs = tiny / "train" / "s0000000" / "images"
    (imgs / "s0000000_0.JPEG").write_bytes(b"garbage")
    result = CliRunner().invoke(cli, ["data", "check", str(tiny)])
    assert result.exit_code != 0
    error_lines = [l for l in result.output.splitlines() if l.startswith("Error:")]
    assert len(error_lines) == 1 and "1 bad file(s)" in error_lines[0]
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["data", "check", str(tiny), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "problems  1 bad file(s) skipped" in result.output
    assert "23 images" in result.output


def test_data_check_reports_every_problem_in_one_run(tiny):
    (tiny / "val" / "images" / "val_4.JPEG").unlink()                  # annotated, missing
    imgs = tiny / "train" / "s0000001" / "images"
    good = (imgs / "s0000001_0.JPEG").read_bytes()
    (imgs / "s0000001_1.JPEG").write_bytes(good[: len(good) // 2])      # truncated (corrupt)
    (imgs / "s0000001_2.JPEG").write_bytes(b"<html>not a jpeg</html>")  # fake JPEG
    result = CliRunner().invoke(cli, ["data", "check", str(tiny)])
    out = result.output
    assert result.exit_code == 1 and "Traceback" not in out
    assert "problems  3 found" in out
    assert "dataset structure: 1" in out and "val_4.JPEG does not exist" in out
    assert "truncated JPEG (no end marker): 1" in out and "s0000001_1.JPEG" in out
    assert "not a decodable image: 1" in out and "s0000001_2.JPEG" in out
    errors = [l for l in out.splitlines() if l.startswith("Error:")]
    assert len(errors) == 1 and "3 problem(s)" in errors[0]
    assert "1 structural, 2 bad file(s)" in errors[0]
    # --skip-bad leaves the images out but the structural problem still fails the check
    result = CliRunner().invoke(cli, ["data", "check", str(tiny), "--skip-bad"])
    assert result.exit_code == 1 and "problems  1 found (2 bad file(s) skipped)" in result.output
    # library users still get the first structural problem as one error
    with pytest.raises(AugmineError, match="val_4.JPEG does not exist"):
        load_index(tiny)


def test_several_structural_problems_listed_together(tiny):
    ann = tiny / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split("\t")[1], "n99999999")
    ann.write_text("\n".join(lines) + "\n")
    for f in (tiny / "train" / "s0000002" / "images").iterdir():
        f.unlink()
    (tiny / "wnids.txt").write_text((tiny / "wnids.txt").read_text() + "s0000000\n")
    result = CliRunner().invoke(cli, ["data", "check", str(tiny)])
    assert result.exit_code == 1, result.output
    assert "dataset structure: 3" in result.output
    for part in ("n99999999 is not in wnids.txt", "s0000002/images is empty",
                 "class s0000000 is listed twice"):
        assert part in result.output


def test_data_check_without_val_annotations_lists_it_without_traceback(tiny):
    (tiny / "val" / "val_annotations.txt").unlink()
    (tiny / "train" / "s0000000" / "images" / "s0000000_0.JPEG").write_bytes(b"GIF89a")
    result = CliRunner().invoke(cli, ["data", "check", str(tiny)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "val_annotations.txt is missing" in result.output
    assert "the val split has no images" in result.output
    assert "not a decodable image: 1" in result.output


def test_one_class_dataset_fails_check_and_trainable(tmp_path):
    root = tmp_path / "one"
    write_synthetic_dataset(root, num_classes=2, train_per_class=3, val_per_class=2, seed=0)
    keep = (root / "wnids.txt").read_text().split()[0]
    (root / "wnids.txt").write_text(keep + "\n")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("".join(l + "\n" for l in ann.read_text().splitlines() if keep in l))
    index = load_index(root)                                # indexing itself is fine
    assert index.num_classes == 1
    with pytest.raises(AugmineError, match="training needs at least 2 classes, this dataset "
                                           "has 1"):
        index.check_trainable()
    result = CliRunner().invoke(cli, ["data", "check", str(root)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "training needs at least 2 classes" in result.output


def test_check_images_before_training(tiny, caplog):
    imgs = tiny / "val" / "images"
    (imgs / "val_2.JPEG").write_bytes(b"garbage")
    index = load_index(tiny).check_trainable()
    assert find_bad_images(index, splits=["train"]) == []
    bad = find_bad_images(index, splits=["val"])
    assert [Path(b.path).name for b in bad] == ["val_2.JPEG"]
    with pytest.raises(AugmineError, match="1 bad file.*val_2.JPEG.*--skip-bad"):
        check_images(index)
    with caplog.at_level("WARNING", logger="augmine"):
        kept = check_images(index, skip_bad=True)
    assert len(kept.val) == len(index.val) - 1 and len(kept.skipped) == 1
    assert any("val_2.JPEG" in r.getMessage() for r in caplog.records)


def test_read_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.JPEG"
    bad.write_bytes(b"nope")
    with pytest.raises(AugmineError, match="broken.JPEG: cannot decode image"):
        read_image(bad)


def test_not_a_dataset_folder(tmp_path):
    msg = _error(tmp_path)
    assert "holds no train/ folder" in msg


def test_data_synth_cli(tmp_path):
    result = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "s"), "--classes", "5",
                                      "--train-per-class", "2", "--val-per-class", "1"])
    assert result.exit_code == 0, result.output
    assert "confusable pair: striped red circle / dotted red circle" in result.output
    assert load_index(tmp_path / "s").num_classes == 5
    again = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "s")])
    assert again.exit_code != 0 and "is not empty" in again.output


def test_bad_command_line_values_are_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "s"), "--classes", "ten"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--classes': 'ten' is not a valid integer" in result.output
    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path), "--skipbad"])
    assert result.exit_code == 2 and "No such option '--skipbad'. Did you mean '--skip-bad'?" in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_data_check_draws_its_bar_only_on_a_terminal(synth_root, terminal):
    """In a pipe (a log file, CI) `data check` prints one line for the stage and no bar's
    carriage returns; on a terminal it draws tqdm's bar."""
    import os
    import subprocess

    from support import augmine_command, subprocess_env

    reader, writer = os.openpty() if terminal else (None, subprocess.PIPE)
    if terminal:                              # a terminal 80 columns wide, as tqdm sizes bars
        import fcntl
        import struct
        import termios

        fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([*augmine_command(), "data", "check", str(synth_root)],
                            stdout=subprocess.PIPE, stderr=writer, env=subprocess_env())
    if terminal:
        os.close(writer)
        err = b""
        while True:
            try:
                chunk = os.read(reader, 65536)
            except OSError:                    # the terminal closed with the process
                break
            if not chunk:
                break
            err += chunk
        os.close(reader)
        out = proc.communicate(timeout=120)[0]
    else:
        out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 0, err
    assert "problems  none" in out.decode()
    if terminal:
        assert "\r" in err and "checking images" in err
    else:
        assert "\r" not in err and "\r" not in out.decode()
        assert err.splitlines() == ["checking images: 500 img"]
