"""Download, verify and extract Tiny-ImageNet, resuming a partial download.

The archive is fetched with HTTP range requests into ``<dest>/tiny-imagenet-200.zip.part``;
an interrupted download continues where it stopped. The finished file is checked against
the known size and MD5 before it is renamed into place and extracted, so a corrupt or
truncated archive is never extracted. Uses only the standard library (``urllib``,
``hashlib``, ``zipfile``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from augmine.core.errors import AugmineError


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    size: int | None
    md5: str | None
    folder: str          # the folder the zip extracts to


TINY_IMAGENET = Archive(
    url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    filename="tiny-imagenet-200.zip",
    size=248100043,
    md5="90528d7ca1a48142e341f4ef8d21d0de",
    folder="tiny-imagenet-200",
)

CHUNK = 1 << 20


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(archive: Archive, part: Path, progress: bool, timeout: float) -> None:
    """Append the missing bytes of ``archive`` to ``part`` (a range request when it has some)."""
    from augmine.core.runtime import progress_bar

    have = part.stat().st_size if part.exists() else 0
    if archive.size is not None and have >= archive.size:
        return
    req = urllib.request.Request(archive.url, headers={"User-Agent": "augmine"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:     # nothing left to fetch
            return
        raise AugmineError(f"{archive.url}: HTTP {exc.code} {exc.reason}; check the address "
                           "or try again later (a partial download is kept and resumed)")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AugmineError(f"{archive.url}: cannot connect ({reason}); check your network "
                           "and run the command again to resume")
    with resp:
        if have and resp.status != 206:          # server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else archive.size
        with open(part, "ab" if have else "wb") as fh, progress_bar(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=archive.filename, progress=progress) as bar:
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    fh.write(block)
                    bar.update(len(block))
            except (OSError, urllib.error.URLError) as exc:
                raise AugmineError(f"{archive.url}: download interrupted ({exc}); run the "
                                   "command again to resume")


def download_archive(dest: str | os.PathLike, archive: Archive = TINY_IMAGENET,
                     progress: bool = True, extract: bool = True,
                     timeout: float = 60.0) -> Path:
    """Download ``archive`` into ``dest``, verify size and MD5, extract it; return the data folder.

    Re-running after an interruption resumes the partial file; re-running after success
    finds the verified archive (or the extracted folder) and does nothing more.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    folder = dest / archive.folder
    if extract and (folder / ".augmine-complete").exists():
        return folder
    zip_path = dest / archive.filename
    part = dest / (archive.filename + ".part")
    if not zip_path.exists():
        _fetch(archive, part, progress, timeout)
        size = part.stat().st_size
        if archive.size is not None and size != archive.size:
            if size > archive.size:
                part.unlink()
            raise AugmineError(f"{part}: got {size} bytes, expected {archive.size}; run the "
                               "command again to resume (an oversized file was deleted)")
        if archive.md5 is not None and _md5(part) != archive.md5:
            part.unlink()
            raise AugmineError(f"{part}: MD5 checksum does not match {archive.md5}; the corrupt "
                               "file was deleted, run the command again to download it afresh")
        os.replace(part, zip_path)
    if not extract:
        return zip_path
    tmp = dest / f".{archive.folder}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
    except zipfile.BadZipFile:
        raise AugmineError(f"{zip_path} is not a valid zip archive; delete it and run the "
                           "command again")
    inner = tmp / archive.folder
    src = inner if inner.is_dir() else tmp
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(src, folder)
    shutil.rmtree(tmp, ignore_errors=True)
    (folder / ".augmine-complete").write_text("extracted from " + archive.filename + "\n")
    return folder
