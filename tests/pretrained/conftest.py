"""A loopback HTTP server for download tests: serves files from a folder, with failure modes chosen by URL.

URL layout (``server.url(mode, name)``):
    ``/files/<name>``      the file, or 404
    ``/flaky/<name>``      HTTP 503 on the first request for that path, the file afterwards
    ``/truncated/<name>``  on the first request: the full Content-Length but only half the body, then the
                           connection is closed; the file afterwards
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _Handler(BaseHTTPRequestHandler):
    server: _LoopbackHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with self.server.lock:
            self.server.requests.append(path)
            count = self.server.requests.count(path)
        mode, _, name = path.lstrip("/").partition("/")
        if mode == "flaky" and count == 1:
            self.send_error(503, "Service Unavailable")
            return
        file = self.server.root / name
        if mode not in ("files", "flaky", "truncated") or not name or "/" in name or not file.is_file():
            self.send_error(404, "Not Found")
            return
        data = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "truncated" and count == 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        pass


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, mode: str, name: str) -> str:
        return f"{self.base}/{mode}/{urllib.parse.quote(name)}"

    def count(self, mode: str, name: str) -> int:
        with self.lock:
            return self.requests.count(f"/{mode}/{name}")


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[_LoopbackHTTPServer]:
    """A running loopback server serving the files of ``server.root`` (a fresh folder under tmp_path)."""
    root = tmp_path / "served"
    root.mkdir()
    server = _LoopbackHTTPServer(root)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def refused_base() -> str:
    """Base URL of a loopback port nothing listens on (connection refused, like an offline machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _isolated_download_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test in this folder may touch the user's cache or a mirror from the environment."""
    monkeypatch.setenv("UNMIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNMIX_MIRROR", raising=False)
    monkeypatch.delenv("UNMIX_CHECKSUMS", raising=False)


@pytest.fixture
def umxse_mirror(loopback, monkeypatch, tmp_path) -> dict:
    """Random umxse weights served by the loopback server under their real upstream names.

    ``UNMIX_MIRROR`` points at the server and ``UNMIX_CHECKSUMS`` holds the hashes of these stand-in files (they
    cannot match upstream's prefixes). Returns ``{target: state dict}`` of what is served.
    """
    import hashlib
    import json

    import torch

    from unmix.models.openunmix import OpenUnmix
    from unmix.pretrained.registry import get_model_info

    info = get_model_info("umxse")
    states, checksums = {}, {}
    for index, target in enumerate(info.targets):
        torch.manual_seed(100 + index)
        model = OpenUnmix(nb_bins=513, nb_channels=1, hidden_size=256, max_bin=513)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if tensor.is_floating_point():
                    tensor.copy_(torch.rand_like(tensor) * 0.1 + (1.0 if "scale" in name or "var" in name else 0.0))
        state = model.state_dict()
        file_name = info.file_for(target).file_name
        torch.save(state, loopback.root / file_name)
        checksums[file_name] = hashlib.sha256((loopback.root / file_name).read_bytes()).hexdigest()
        states[target] = state
    checksum_file = tmp_path / "checksums.json"
    checksum_file.write_text(json.dumps(checksums))
    monkeypatch.setenv("UNMIX_MIRROR", loopback.base + "/files")
    monkeypatch.setenv("UNMIX_CHECKSUMS", str(checksum_file))
    return states
