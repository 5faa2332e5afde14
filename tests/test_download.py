"""The checksummed downloader against a loopback HTTP server: success, corruption, dropped
connections, time-outs, offline; and `nape data list|fetch`. No external network."""
from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from nape_utils.cli import main
from nape_utils.data import download
from nape_utils.data.benchmarks import load_benchmark

PAYLOAD = bytes(range(256)) * 400  # 100 kB, more than one read chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /ok (the payload), /corrupt (same length, other bytes), /short (half the promised
    body, then the connection drops), /stall (no answer within the client's time-out), /missing (404),
    /file/<name> (bytes put in ``server.files``)."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        if self.path == "/missing":
            return self.send_error(404)
        if self.path == "/stall":
            time.sleep(1.0)
            return self._send(PAYLOAD)
        if self.path == "/short":
            return self._send(PAYLOAD, length=len(PAYLOAD), cut=len(PAYLOAD) // 2)
        if self.path == "/corrupt":
            return self._send(bytes(reversed(PAYLOAD)))
        body = self.server.files.get(self.path.removeprefix("/file/"), PAYLOAD)
        self._send(body)

    def _send(self, body: bytes, length: int | None = None, cut: int | None = None):
        self.send_response(200)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body[:cut] if cut is not None else body)
        self.wfile.flush()
        if cut is not None:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that gave up (time-out test) is expected
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 that shuts itself down after 60 s at the latest."""
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.hits, srv.files = {}, {}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, srv.shutdown)
    watchdog.daemon = True
    watchdog.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    watchdog.cancel()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff sleeps instead of sleeping."""
    calls: list[float] = []
    monkeypatch.setattr(download, "_sleep", calls.append)
    return calls


def pin(monkeypatch, url: str, sha: str = SHA, name: str = "nb201-zen") -> download.RemoteFile:
    entry = replace(download.REGISTRY[name], url=url, sha256=sha)
    monkeypatch.setitem(download.REGISTRY, name, entry)
    return entry


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nb201_zen.zip"


def test_registry_matches_the_data_readme():
    names = [f.name for f in download.list_files()]
    # the first eight pins; benchmarks added later append theirs (each checked in its own test file)
    assert names[:8] == ["nb201-zen", "nb201-robustness", "nb201-proxies", "nb201-params", "nb101-zc", "nb301-zc",
                         "tnb101-micro", "tnb101-macro"]
    assert len(names) == len(set(names)) and "nasbench-macro" in names
    for entry in download.list_files():
        assert entry.url.startswith("https://raw.githubusercontent.com/") and entry.url.endswith("/" + entry.filename)
        kind, digest = entry.checksum  # a SHA-256, or a git blob id (SHA-1) for a file too large to copy
        assert len(digest) == {"SHA-256": 64, "git blob id": 40}[kind] and int(digest, 16) >= 0
        assert "/main/" not in entry.url and "/master/" not in entry.url  # pinned to a commit
    assert download.remote_file("nb201_zen.zip").name == "nb201-zen"
    with pytest.raises(ValueError, match="known: nb201-zen"):
        download.remote_file("nb999")


def test_real_file_matches_its_pin(shared_data):
    entry = download.REGISTRY["nb101-zc"]
    assert download.file_status(entry, shared_data / "nb101") == (shared_data / "nb101" / entry.filename, "ok")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPE_CACHE", str(tmp_path / "c"))
    assert download.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NAPE_CACHE")
    assert download.cache_dir() == Path.home() / ".cache" / "nape"


def test_success_is_verified_and_atomic(server, monkeypatch, tmp_path):
    pin(monkeypatch, server.url + "/ok")
    final = tmp_path / "nb201_zen.zip"
    renames = []
    real_replace = os.replace

    def spy(src, dst):  # the rename is the only way bytes reach the final path
        renames.append((Path(src), Path(dst), Path(src).stat().st_size, Path(dst).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", spy)
    assert download.fetch("nb201-zen", tmp_path) == final
    assert final.read_bytes() == PAYLOAD and os.listdir(tmp_path) == ["nb201_zen.zip"]
    (src, dst, size, existed), = renames
    assert src.parent == tmp_path and src.name.startswith(".nb201_zen.zip.") and src.suffix == ".part"
    assert dst == final and size == len(PAYLOAD) and not existed
    # a verified copy is reused without a request; the env var names the default directory
    monkeypatch.setenv("NAPE_CACHE", str(tmp_path))
    assert download.fetch("nb201_zen.zip") == final and server.hits["/ok"] == 1


def test_checksum_mismatch_removes_the_file(server, monkeypatch, tmp_path, sleeps):
    pin(monkeypatch, server.url + "/corrupt")
    with pytest.raises(download.ChecksumError, match="checksum mismatch.*removed") as err:
        download.fetch("nb201-zen", tmp_path)
    assert SHA in str(err.value) and os.listdir(tmp_path) == []
    assert server.hits["/corrupt"] == 1 and sleeps == []  # a wrong file is not retried


def test_wrong_cached_file_is_replaced(server, monkeypatch, tmp_path):
    pin(monkeypatch, server.url + "/ok")
    (tmp_path / "nb201_zen.zip").write_bytes(b"stale")
    assert download.file_status(download.REGISTRY["nb201-zen"], tmp_path)[1] == "checksum mismatch"
    assert download.fetch("nb201-zen", tmp_path).read_bytes() == PAYLOAD


def test_dropped_connection_is_retried_and_leaves_nothing(server, monkeypatch, tmp_path, sleeps):
    pin(monkeypatch, server.url + "/short")
    with pytest.raises(download.DownloadError, match="incomplete download") as err:
        download.fetch("nb201-zen", tmp_path, retries=3, backoff=0.5)
    assert server.hits["/short"] == 3 and sleeps == [0.5, 1.0]
    assert os.listdir(tmp_path) == []  # neither the final file nor a .part file
    assert server.url + "/short" in str(err.value) and str(tmp_path / "nb201_zen.zip") in str(err.value)


def test_offline_says_where_to_put_the_file(monkeypatch, tmp_path, sleeps):
    url = closed_port_url()
    pin(monkeypatch, url)
    with pytest.raises(download.DownloadError) as err:
        download.fetch("nb201-zen", tmp_path / "cache", retries=2)
    text = str(err.value)
    assert "after 2 attempt(s)" in text and "refused" in text.lower()
    assert url in text and "by hand" in text and str(tmp_path / "cache" / "nb201_zen.zip") in text and SHA in text
    assert sleeps == [1.0] and os.listdir(tmp_path / "cache") == []


def test_timeout_is_retried(server, monkeypatch, tmp_path, sleeps):
    pin(monkeypatch, server.url + "/stall")
    with pytest.raises(download.DownloadError, match="timed out"):
        download.fetch("nb201-zen", tmp_path, retries=2, timeout=0.2)
    assert server.hits["/stall"] == 2 and os.listdir(tmp_path) == []


def test_http_404_is_not_retried(server, monkeypatch, tmp_path, sleeps):
    pin(monkeypatch, server.url + "/missing")
    with pytest.raises(download.DownloadError, match="404"):
        download.fetch("nb201-zen", tmp_path, retries=3)
    assert server.hits["/missing"] == 1 and sleeps == []


def test_load_benchmark_can_download_first(server, monkeypatch, tmp_path, shared_data):
    fixture = (shared_data / "nb201" / "nb201_zen_fixture.zip").read_bytes()
    server.files["nb201_zen.zip"] = fixture
    pin(monkeypatch, server.url + "/file/nb201_zen.zip", sha=hashlib.sha256(fixture).hexdigest())
    with pytest.raises(FileNotFoundError, match="nape data fetch nb201-zen"):
        load_benchmark("nb201-zen", tmp_path)
    table = load_benchmark("nb201-zen", tmp_path, download_missing=True)
    assert len(table) == 60 and (tmp_path / "nb201_zen.zip").is_file()


# -- the CLI ----------------------------------------------------------------------------------------------
def test_cli_data_list_and_fetch(server, monkeypatch, tmp_path, capsys):
    pin(monkeypatch, server.url + "/ok")
    monkeypatch.setenv("NAPE_CACHE", str(tmp_path))
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "file", "size", "status"]
    row = next(line for line in lines if line.startswith("nb201-zen "))
    assert row.split() == ["nb201-zen", "nb201_zen.zip", "-", "missing"]

    assert main(["data", "fetch", "nb201-zen", "--dir", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "d" / "nb201_zen.zip") and "downloading" in err
    assert main(["data", "list", "--dir", str(tmp_path / "d")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("nb201-zen "))
    assert row.split()[-3:] == ["0.1", "MB", "ok"]


def test_cli_data_errors(monkeypatch, tmp_path, capsys, sleeps):
    assert main(["data", "fetch", "nb999"]) == 2
    assert "known: nb201-zen" in capsys.readouterr().err
    assert main(["data", "fetch"]) == 2
    pin(monkeypatch, closed_port_url())
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "fetch", "nb201-zen", "--dir", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nape data: error: could not download nb201_zen.zip" in err and "by hand" in err
