"""Atomic writes: files others can read, as a plain write would make them."""

from __future__ import annotations

import os
import stat

import pytest

from augmine.core.atomic import atomic_path, write_json, write_text

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")                       # what any other program would make
    assert mode(plain) == expected
    assert mode(write_text(tmp_path / "a.txt", "hello")) == expected
    assert mode(write_json(tmp_path / "sub" / "b.json", {"a": 1})) == expected
    with atomic_path(tmp_path / "c.npy") as tmp:
        tmp.write_bytes(b"data")
    assert mode(tmp_path / "c.npy") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.npy", "plain.txt", "sub"]


def test_replacing_keeps_the_existing_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "report.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    write_json(target, {"v": 2})
    assert mode(target) == 0o640 and '"v": 2' in target.read_text()
    os.chmod(target, 0o755)
    write_text(target, "again")
    assert mode(target) == 0o755


def test_failed_write_leaves_target_and_no_temp_file(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "keep.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_refused_write_names_the_target_not_the_temporary_file(tmp_path, synth_root):
    from click.testing import CliRunner
    from support import read_only

    from augmine.cli import cli

    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "g.png"
    with read_only(folder):
        with pytest.raises(OSError) as caught:
            write_text(target, "x")
        assert caught.value.filename == str(target) and ".g.png." not in str(caught.value)
        with pytest.raises(OSError) as caught:
            with atomic_path(folder / "sub" / "a.npy") as tmp:
                tmp.write_bytes(b"never")
        assert caught.value.filename == str(folder / "sub" / "a.npy")
        res = CliRunner().invoke(cli, ["recipe", "preview", "light", "--data", str(synth_root),
                                       "-n", "2", "-o", str(target)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.startswith(f"Error: cannot write {target}: ") and ".g.png." not in res.output
    assert "make its folder writable" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []
