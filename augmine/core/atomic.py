"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Each helper writes to a temporary file in the destination folder, flushes it to disk
(``sync=True``, the default) and renames it over the target with :func:`os.replace`, which
is atomic on POSIX and Windows. A run killed mid-write leaves the previous version intact.

``sync=False`` skips the flush: the file is still whole or absent for every reader and
after a killed process (the OS keeps what was written), but after a power loss or OS crash
it may be older than the files written after it. Training uses it for every write a
later flushed commit point covers (``state.json``, see docs/reliability.md, "durability").

Files get the mode an ordinary ``open(path, "w")`` would give them (``0o666`` less the
umask: ``0o644`` with the usual umask 0022), or keep the mode of the file they replace;
the temporary file's private ``0o600`` never reaches the target. A refused write (read-only
folder, full disk) is an :class:`OSError` naming the target, never the temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask (e.g. ``0o022``), read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS, Windows): the set-and-restore idiom
    os.umask(mask)
    return mask


def new_file_mode(target: str | os.PathLike) -> int:
    """Permission bits for writing ``target``: the existing file's, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None,
                sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    Use it for writers that want a file name (``np.save``, ``fig.savefig``,
    ``model.save``). ``suffix`` defaults to the target's own suffix, because some writers
    choose the format from it. ``sync``: flush the file to disk before the rename
    (``os.fsync``); False where a later flushed commit point covers it.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=target.suffix if suffix is None else suffix,
            dir=target.parent)
    except OSError as exc:
        raise _naming_target(exc, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if sync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give it the mode a plain write would have
        os.chmod(tmp_path, new_file_mode(target))
        os.replace(tmp_path, target)
    except OSError as exc:
        if str(exc.filename) != str(tmp_path):
            raise
        raise _naming_target(exc, target) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _naming_target(exc: OSError, target: Path) -> OSError:
    """``exc`` (same errno, same type) naming ``target`` instead of the temporary file or
    folder it met: a person knows the file they asked for, not ``.name.x8k2_q1a``."""
    return OSError(exc.errno, exc.strerror, str(target))


# the temporary files atomic_path makes: ".<target name>.<8 random chars><suffix>"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (SIGKILL, power loss) left
    anywhere under ``folder``; the targets themselves are whole. Returns the deleted paths.
    Call it only when no writer is at work in ``folder``."""
    gone = []
    for path in Path(folder).rglob(".*"):
        if path.is_file() and _TEMP_NAME.match(path.name):
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def write_bytes(target: str | os.PathLike, data: bytes, sync: bool = True) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path (``sync``: as
    :func:`atomic_path`'s)."""
    with atomic_path(target, sync=sync) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str, sync: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically and return the target path."""
    return write_bytes(target, text.encode("utf-8"), sync)


def write_json(target: str | os.PathLike, obj: Any, sync: bool = True) -> Path:
    """Write ``obj`` as indented JSON to ``target`` atomically and return the target path."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n", sync)


def read_json(path: str | os.PathLike, fix: str) -> Any:
    """``path``'s JSON (the counterpart of :func:`write_json`), or None when the file does
    not exist; a file that is not valid JSON is a one-line :class:`AugmineError` naming it,
    the place and ``fix``."""
    from augmine.core.errors import AugmineError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AugmineError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); "
                           f"{fix}") from None


def copy_file(src, dst, sync: bool = True) -> Path:
    """Copy file ``src`` to ``dst`` atomically (a temporary file beside ``dst``, renamed)."""
    with atomic_path(Path(dst), sync=sync) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def link_file(src, dst, sync: bool = True) -> Path:
    """Make ``dst`` a hard link to ``src``'s file, atomically (a link made beside ``dst``, then
    renamed over it): no bytes are copied and nothing needs a flush. Where the file system
    refuses hard links, a copy (:func:`copy_file`, flushed with ``sync``). The link shares
    ``src``'s file only until ``src`` is replaced (every writer here replaces by rename, so
    ``dst`` keeps the old bytes); never write into either file in place."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{secrets.token_hex(4)}{dst.suffix}"   # as atomic_path's
    try:
        os.link(src, tmp)
    except OSError:
        return copy_file(src, dst, sync)
    try:
        os.replace(tmp, dst)      # a no-op when dst is already a link to the same file
    finally:
        tmp.unlink(missing_ok=True)
    return dst
