"""fetch_dataset against a local HTTP server on 127.0.0.1."""

import functools
import hashlib
import http.server
import threading

import pytest

from stvfm.data import fetch as fetch_module
from stvfm.data.fetch import fetch_dataset
from stvfm.data.registry import DataFile, DatasetSpec
from stvfm.errors import FetchError

PAYLOAD = b"grid bytes " * 1000


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "grid.bin").write_bytes(PAYLOAD)
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_spec(monkeypatch):
    def use(sha256):
        spec = DatasetSpec(
            name="tinygrid", title="Tiny", domain="test", city="-", span="-", grid=(2, 2), interval_minutes=60,
            channel_names=("v",), source_format="generic", files=(DataFile("grid.bin", sha256),),
            download_page="https://example.org/tiny", citation="-",
        )
        monkeypatch.setattr(fetch_module, "get_dataset", lambda name: spec)
        return spec
    return use


def test_fetch_downloads_and_verifies(server, tmp_path, tiny_spec):
    tiny_spec(hashlib.sha256(PAYLOAD).hexdigest())
    root = tmp_path / "root"
    [path] = fetch_dataset("tinygrid", root, urls=server)
    assert path == root / "tinygrid" / "grid.bin" and path.read_bytes() == PAYLOAD
    assert fetch_dataset("tinygrid", root, urls={"grid.bin": server + "/missing"}) == [path]  # kept, not refetched


def test_checksum_mismatch_leaves_no_file(server, tmp_path, tiny_spec):
    tiny_spec("0" * 64)
    root = tmp_path / "root"
    with pytest.raises(FetchError, match="grid.bin: .* expected 0000"):
        fetch_dataset("tinygrid", root, urls=server)
    assert not any((root / "tinygrid").iterdir())


def test_http_error_and_no_link(server, tmp_path, tiny_spec):
    tiny_spec(None)
    with pytest.raises(FetchError, match="grid.bin: HTTP 404"):
        fetch_dataset("tinygrid", tmp_path, urls={"grid.bin": server + "/absent.bin"})
    with pytest.raises(FetchError, match="no direct download link .* https://example.org/tiny"):
        fetch_dataset("tinygrid", tmp_path)


def test_unreachable_host_times_out_as_fetch_error(tmp_path, tiny_spec):
    tiny_spec(None)
    with pytest.raises(FetchError, match="grid.bin: download from"):
        fetch_dataset("tinygrid", tmp_path, urls="http://127.0.0.1:9", timeout=2)
