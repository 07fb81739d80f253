"""The Market-1501 downloader against a local HTTP server: a good archive, a web page, a cut connection."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reid.data import DownloadError, Market1501, download_market1501, fetch, unpack_market1501
from reid.data.download import ARCHIVE
from reid.data.market1501 import MARKET1501_FOLDER, SPLITS

@pytest.fixture(autouse=True)
def no_wait_between_tries(monkeypatch):
    """The tries of a broken-off download follow each other at once here (2 s apart for real)."""
    import reid.data.download

    monkeypatch.setattr(reid.data.download, "RETRY_WAIT", 0.0)


HTML = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
        b"<body>Too many users have viewed or downloaded this file recently.</body></html>")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tiny_root) -> tuple[bytes, dict[str, int]]:
    """The tiny synthetic set zipped as the real archive is (one top folder), and its image counts."""
    buf = io.BytesIO()
    counts = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for split in SPLITS.values():
            names = sorted(n for n in os.listdir(tiny_root / split) if n.endswith(".jpg"))
            counts[split] = len(names)
            for name in names:
                zf.write(tiny_root / split / name, f"{MARKET1501_FOLDER}/{split}/{name}")
    return buf.getvalue(), counts


class Server:
    """Serves `payload` at /archive.zip, honouring Range; `cut` answers the next N requests with half of
    what they asked for before closing the connection; /page is an HTML page, /missing a 404."""

    def __init__(self, payload: bytes, cut: int = 0):
        self.payload, self.cut, self.requests = payload, cut, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path == "/page":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(HTML)))
                    self.end_headers()
                    self.wfile.write(HTML)
                    return
                if self.path != "/archive.zip":
                    self.send_error(404)
                    return
                data, start = server.payload, 0
                asked = self.headers.get("Range")
                if asked:
                    start = int(asked.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut > 0:
                    server.cut -= 1
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_is_guarded_offline(tmp_path: Path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("download_market1501 reached for the network without allow_download=True")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(FileNotFoundError, match="allow_download=True"):
        download_market1501(tmp_path)
    assert not list(tmp_path.iterdir())


def test_download_reuses_complete_folder(tmp_path: Path):
    folder = tmp_path / MARKET1501_FOLDER
    for split in SPLITS.values():
        (folder / split).mkdir(parents=True)
    assert download_market1501(tmp_path) == folder


def test_a_good_archive_is_downloaded_checked_and_unpacked(tmp_path: Path, archive, capsys):
    payload, counts = archive
    with Server(payload) as server:
        folder = download_market1501(tmp_path, f"{server.url}/archive.zip", allow_download=True, counts=counts,
                                     progress=False)
    assert folder == tmp_path / MARKET1501_FOLDER
    assert os.listdir(tmp_path) == [MARKET1501_FOLDER]  # no archive, part file or temporary folder left
    data = Market1501(folder, verbose=False)
    assert len(data.train) > 0 and len(data.query) > 0 and len(data.gallery) > 0
    assert "sha256 " in capsys.readouterr().out
    assert server.requests == [("/archive.zip", None)]


def test_the_counts_and_the_digest_are_checked(tmp_path: Path, archive):
    payload, counts = archive
    with Server(payload) as server:
        wrong = {**counts, "query": counts["query"] + 1}
        with pytest.raises(DownloadError, match=r"query/ holds \d+ images"):
            download_market1501(tmp_path, f"{server.url}/archive.zip", allow_download=True, counts=wrong, progress=False)
        assert not os.listdir(tmp_path)  # the wrong archive is deleted, nothing half-unpacked stays
        with pytest.raises(DownloadError, match="sha256"):
            download_market1501(tmp_path, f"{server.url}/archive.zip", sha256="0" * 64, allow_download=True,
                                counts=counts, progress=False)
        assert not os.listdir(tmp_path)


def test_a_web_page_instead_of_the_archive_is_explained(tmp_path: Path, archive):
    with Server(archive[0]) as server:
        with pytest.raises(DownloadError) as err:
            download_market1501(tmp_path, f"{server.url}/page", allow_download=True, progress=False)
    message = str(err.value)
    assert "web page ('Google Drive - Quota exceeded')" in message and "quota" in message
    assert f"put the zip into {tmp_path}" in message and "Kaggle" in message  # the manual steps and other sources
    assert not os.listdir(tmp_path)


def test_an_http_error_names_the_status(tmp_path: Path, archive):
    with Server(archive[0]) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_market1501(tmp_path, f"{server.url}/missing", allow_download=True, progress=False)
    assert not os.listdir(tmp_path)


def test_a_cut_connection_resumes_with_a_range_request(tmp_path: Path, archive):
    payload, counts = archive
    with Server(payload, cut=1) as server:
        folder = download_market1501(tmp_path, f"{server.url}/archive.zip", allow_download=True, counts=counts,
                                     progress=False, retries=2)
    half = len(payload) // 2
    assert server.requests == [("/archive.zip", None), ("/archive.zip", f"bytes={half}-")]
    assert os.listdir(tmp_path) == [MARKET1501_FOLDER]
    assert len(Market1501(folder, verbose=False).train) > 0


def test_what_arrived_is_kept_and_the_next_call_goes_on(tmp_path: Path, archive):
    payload, counts = archive
    url_of = "{}/archive.zip".format
    with Server(payload, cut=2) as server:
        with pytest.raises(DownloadError, match="broke off 2 times.*run the same call again"):
            download_market1501(tmp_path, url_of(server.url), allow_download=True, counts=counts, progress=False,
                                retries=1)
        part = tmp_path / (ARCHIVE + ".part")
        assert os.listdir(tmp_path) == [part.name]  # only the partial file, never a half-unpacked dataset
        kept = part.stat().st_size
        assert kept == len(payload) // 2 + (len(payload) - len(payload) // 2) // 2 and payload.startswith(part.read_bytes())
        folder = download_market1501(tmp_path, url_of(server.url), allow_download=True, counts=counts, progress=False)
    assert server.requests[-1] == ("/archive.zip", f"bytes={kept}-")
    assert os.listdir(tmp_path) == [MARKET1501_FOLDER]
    assert folder.is_dir()


def test_a_complete_part_file_is_not_fetched_again(tmp_path: Path, archive):
    payload, _ = archive
    part = tmp_path / "a.part"
    part.write_bytes(payload)
    with Server(payload) as server:
        assert fetch(f"{server.url}/archive.zip", part, progress=False) == part  # the server answers 416
    assert part.read_bytes() == payload and server.requests == [("/archive.zip", f"bytes={len(payload)}-")]


def test_an_archive_put_in_the_data_root_is_unpacked_and_kept(tmp_path: Path, archive):
    payload, counts = archive
    (tmp_path / ARCHIVE).write_bytes(payload)
    folder = download_market1501(tmp_path, counts=counts)  # no download needed, so none allowed
    assert sorted(os.listdir(tmp_path)) == sorted([ARCHIVE, MARKET1501_FOLDER]) and folder.is_dir()


def test_a_damaged_archive_is_named(tmp_path: Path, archive):
    damaged = tmp_path / "upload.zip"
    damaged.write_bytes(archive[0][: len(archive[0]) // 3])
    with pytest.raises(DownloadError, match="not a readable zip"):
        unpack_market1501(damaged, tmp_path / "data", counts=archive[1])
    assert not os.listdir(tmp_path / "data")
