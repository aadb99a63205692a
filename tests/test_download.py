"""`augmine data download` against a small zip served on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from augmine.cli import cli
from augmine.data.dataset import load_index
from augmine.data.download import TINY_IMAGENET, download_archive
from augmine.core.errors import AugmineError
from augmine.data.synth import write_synthetic_dataset


class _Server:
    """Serves one payload with HTTP Range support; can cut the first response short."""

    def __init__(self, payload: bytes, cut_first_at: int | None = None):
        self.payload, self.cut_first_at, self.requests = payload, cut_first_at, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_first_at is not None and len(server.requests) == 1:
                    self.wfile.write(body[: server.cut_first_at])
                    self.wfile.flush()
                    self.connection.close()      # the connection drops mid-download
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/tiny-imagenet-200.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zipped(tmp_path) -> bytes:
    """A small Tiny-ImageNet-layout dataset zipped the way the real archive is."""
    src = tmp_path / "src" / "tiny-imagenet-200"
    write_synthetic_dataset(src, num_classes=3, train_per_class=4, val_per_class=2)
    zip_path = tmp_path / "src.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f.relative_to(src.parent))
    return zip_path.read_bytes()


def _archive(server: _Server, payload: bytes, **kw):
    return replace(TINY_IMAGENET, url=server.url, size=len(payload),
                   md5=hashlib.md5(payload).hexdigest(), **kw)


def test_download_verifies_and_extracts(tmp_path, zipped):
    with _Server(zipped) as server:
        folder = download_archive(tmp_path / "data", _archive(server, zipped), progress=False)
    assert folder == tmp_path / "data" / "tiny-imagenet-200"
    assert load_index(folder, verify=True).num_classes == 3
    assert (tmp_path / "data" / "tiny-imagenet-200.zip").stat().st_size == len(zipped)


def test_interrupted_download_resumes_with_a_range_request(tmp_path, zipped):
    with _Server(zipped, cut_first_at=len(zipped) // 3) as server:
        archive = _archive(server, zipped)
        with pytest.raises(AugmineError, match="run the command again to resume"):
            download_archive(tmp_path, archive, progress=False)
        part = tmp_path / "tiny-imagenet-200.zip.part"
        assert part.stat().st_size == len(zipped) // 3
        folder = download_archive(tmp_path, archive, progress=False)
        assert server.requests[-1] == f"bytes={len(zipped) // 3}-"
    assert not part.exists()
    assert load_index(folder).num_classes == 3


def test_checksum_mismatch_deletes_the_file_and_says_so(tmp_path, zipped):
    with _Server(zipped) as server:
        archive = replace(_archive(server, zipped), md5="0" * 32)
        with pytest.raises(AugmineError, match="MD5 checksum does not match"):
            download_archive(tmp_path, archive, progress=False)
    assert not (tmp_path / "tiny-imagenet-200.zip.part").exists()
    assert not (tmp_path / "tiny-imagenet-200").exists()


def test_download_cli_with_url(tmp_path, zipped):
    with _Server(zipped) as server:
        result = CliRunner().invoke(cli, ["data", "download", str(tmp_path), "--url", server.url,
                                          "--md5", hashlib.md5(zipped).hexdigest()])
    assert result.exit_code == 0, result.output
    assert "ready:" in result.output and "augmine data check" in result.output


def test_unreachable_server_is_one_line(tmp_path):
    archive = replace(TINY_IMAGENET, url="http://127.0.0.1:9/tiny-imagenet-200.zip")
    result = CliRunner().invoke(cli, ["data", "download", str(tmp_path), "--url", archive.url])
    assert result.exit_code != 0
    assert "cannot connect" in result.output and "Traceback" not in result.output
