"""Fetch Market-1501 (Colab): a guarded, resumable download that checks what it got.

Nothing here runs unless a notebook cell asks with ``allow_download=True``; the library, the
tests and the book's default profile never reach for the network. What can go wrong, and
what the reader sees:

* the host answers with a web page instead of the archive (Google Drive does when the file's
  daily quota is used up or it wants a click to confirm): a `DownloadError` that says so,
  quotes the page's title and lists what to do instead;
* the connection breaks: the bytes that arrived stay in ``<root>/Market-1501-v15.09.15.zip.part``
  and the download goes on from there with an HTTP Range request, a few times within one call
  and again on the next call;
* the archive is damaged, another release, or incomplete: the image counts of every folder are
  checked against the official release before anything is moved into place.

The dataset folder appears in the data root only complete: it is unpacked into a temporary
folder beside it and renamed. Besides it, a failed call leaves at most the ``.part`` file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .market1501 import MARKET1501_COUNTS, MARKET1501_FOLDER

# The archive as most re-id projects link it (Google Drive; `confirm=t` skips the large-file page).
MARKET1501_URL = "https://drive.usercontent.google.com/download?id=0B8-rUzbwVRk0c054eEozWG9COHM&export=download&confirm=t"
ARCHIVE = f"{MARKET1501_FOLDER}.zip"
BLOCK = 1 << 20  # bytes per read

MANUAL_STEPS = (
    "What to do instead: download {archive} yourself (a browser on the same address usually works, or "
    "another source: the dataset authors' Market-1501 project page (Liang Zheng et al., ICCV 2015), a "
    "Kaggle mirror of 'Market-1501', or where Torchreid's dataset documentation points), put the zip into "
    "{root} (on Colab: upload it to Drive and copy it there, or use the Files pane) and run the same call "
    "again: it unpacks an archive it finds there. Or pass url= a direct link to the zip."
)


class DownloadError(RuntimeError):
    """The download could not deliver the archive; the message says why and what to do."""


def sha256sum(path: str | os.PathLike, chunk: int = BLOCK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> None:
    """Unzip `archive` into `target`, refusing any member that would land outside it.

    A zip can name members ``../../etc/passwd`` or ``/abs/path`` ("zip slip"), or carry
    symbolic links; each is rejected before anything is written.
    """
    target = Path(target).resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            dest = (target / info.filename).resolve()
            if dest != target and target not in dest.parents:
                raise ValueError(f"{archive}: member {info.filename!r} would be written outside {target}; refusing")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"{archive}: member {info.filename!r} is a symbolic link; refusing")
        zf.extractall(target)


def _looks_like_html(content_type: str, head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return content_type.split(";")[0].strip().lower() == "text/html" or start.startswith((b"<!doctype html", b"<html"))


def _html_error(url: str, page: bytes, root: Path) -> DownloadError:
    title = re.search(rb"<title[^>]*>(.*?)</title>", page, re.I | re.S)
    title = " ".join(title.group(1).decode("utf-8", "replace").split()) if title else "no title"
    return DownloadError(
        f"{url} answered with a web page ({title!r}), not the zip archive. Google Drive answers so when the "
        "file's download quota is used up for the day, or when it asks you to confirm the download. "
        "Nothing was written. " + MANUAL_STEPS.format(archive=ARCHIVE, root=root)
    )


RETRY_WAIT = 2.0  # seconds between tries of a download that broke off


def fetch(url: str, part: str | os.PathLike, retries: int = 3, timeout: float = 60.0, progress: bool = True,
          wait: float | None = None) -> Path:
    """Download `url` into the file `part`, resuming what `part` already holds; return `part` once complete.

    Each try asks for the bytes after those already there (HTTP Range); a server that
    ignores the range sends the whole file, which is then written from the start. A try
    that ends early is followed by another, up to `retries` more, `wait` seconds apart (RETRY_WAIT unless given).
    Raises `DownloadError` for a web page instead of the file (nothing written), for an
    HTTP error, and when every try broke off (what arrived is kept for the next call).
    """
    from tqdm.auto import tqdm

    part = Path(part)
    root = part.parent
    problem = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(RETRY_WAIT if wait is None else wait)
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "reid-book (Python urllib)"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
                head = response.read(BLOCK)
                if _looks_like_html(response.headers.get("Content-Type", ""), head):
                    raise _html_error(url, head + response.read(1 << 16), root)
                if response.status == 206:  # the bytes after those we have, and the file's full size
                    got = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
                    if got is None or int(got.group(1)) != have:
                        part.unlink(missing_ok=True)
                        problem = "the server sent another range than the one asked for; starting over"
                        continue
                    total, mode = (None if got.group(2) == "*" else int(got.group(2))), "ab"
                else:  # the whole file (a server may ignore Range): write it from the start
                    length = response.headers.get("Content-Length")
                    total, mode, have = (int(length) if length else None), "wb", 0
                with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=ARCHIVE,
                                                   disable=not progress) as bar:
                    block = head
                    while block:
                        out.write(block)
                        bar.update(len(block))
                        block = response.read(BLOCK)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # nothing after the bytes we have: the file was complete already
                return part
            raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}). "
                                + MANUAL_STEPS.format(archive=ARCHIVE, root=root)) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:  # refused, reset, timed out
            problem = f"{type(err).__name__}: {err}"
            continue
        size = part.stat().st_size if part.exists() else 0
        if size and (total is None or size >= total):
            return part
        problem = f"the connection closed after {size:,} of {total:,} bytes"
    size = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"the download of {url} broke off {retries + 1} times (last: {problem}). The {size / 1e6:.1f} MB that "
        f"arrived are kept in {part}: run the same call again to go on from there, or delete that file to start over."
    )


def unpack_market1501(archive: str | os.PathLike, root: str | os.PathLike, sha256: str | None = None,
                      counts: dict[str, int] | None = None) -> Path:
    """Unpack a Market-1501 zip (downloaded, or uploaded by hand) into ``root/Market-1501-v15.09.15``.

    Prints the archive's SHA-256 (pass it as `sha256` next time to check it); checks the
    image count of each folder against `counts` (the official release's by default) before
    the folder is renamed into place. Returns that folder.
    """
    archive, root = Path(archive), Path(root).expanduser()
    counts = MARKET1501_COUNTS if counts is None else counts
    folder = root / MARKET1501_FOLDER
    digest = sha256sum(archive)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(f"{archive}: sha256 {digest} is not the expected {sha256}: the file is damaged or another "
                            "one. Delete it and download again, or check the `sha256` you passed")
    print(f"{archive.name}: sha256 {digest}")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".market-unpack-") as tmp:
        try:
            safe_extract(archive, tmp)
        except zipfile.BadZipFile:
            raise DownloadError(f"{archive} is not a readable zip (an incomplete or damaged download?): delete it "
                                "and download again") from None
        found = next((p.parent for p in Path(tmp).rglob("bounding_box_train") if p.is_dir()), None)
        if found is None:
            raise DownloadError(f"{archive} holds no bounding_box_train/ folder: is it Market-1501?")
        for split, expected in counts.items():
            got = sum(1 for n in os.listdir(found / split) if n.endswith(".jpg")) if (found / split).is_dir() else 0
            if got != expected:
                raise DownloadError(f"{archive}: {split}/ holds {got} images; Market-1501 v15.09.15 has {expected}. The "
                                    "archive is incomplete or another release: delete it and download again")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(found, folder)
    print(f"Market-1501 is at {folder}: " + ", ".join(f"{s}/ {n:,} images" for s, n in counts.items()))
    return folder


def download_market1501(root: str | os.PathLike, url: str = MARKET1501_URL, sha256: str | None = None,
                        allow_download: bool = False, retries: int = 3, timeout: float = 60.0, progress: bool = True,
                        keep_archive: bool = False, counts: dict[str, int] | None = None,
                        archive_dir: str | os.PathLike | None = None) -> Path:
    """Market-1501 in ``root/Market-1501-v15.09.15``: found there, unpacked from ``Market-1501-v15.09.15.zip`` in
    `root` or in `archive_dir`, or downloaded (only with ``allow_download=True``). Returns the folder.

    The download streams into ``Market-1501-v15.09.15.zip.part`` (in `archive_dir` if given, else
    `root`) with a progress bar, goes on from a partial file left by an earlier call, recognises
    a web page sent instead of the zip, and is renamed to the ``.zip`` once complete;
    `unpack_market1501` then checks the counts and moves the folder into place. A zip in
    `archive_dir` is kept (on Colab that folder is on Google Drive: the next runtime unpacks it
    instead of downloading it again); one downloaded into `root` is deleted afterwards unless
    `keep_archive`; an archive you put there yourself is kept.
    """
    root = Path(root).expanduser()
    folder = root / MARKET1501_FOLDER
    if all((folder / s).is_dir() for s in MARKET1501_COUNTS):
        return folder
    store = Path(archive_dir).expanduser() if archive_dir else root
    for archive in dict.fromkeys((root / ARCHIVE, store / ARCHIVE)):
        if archive.exists():
            return unpack_market1501(archive, root, sha256, counts)
    if not allow_download:
        where = f"{root}" + (f" or {store}" if store != root else "")
        raise FileNotFoundError(
            f"Market-1501 is not at {folder}, and no {ARCHIVE} is in {where}. Download it with "
            f"reid.data.download_market1501({str(root)!r}, allow_download=True) (on Colab, reid.setup() allows it), "
            f"or put {ARCHIVE} into {where} and call it again, or unzip it into {root} yourself"
        )
    store.mkdir(parents=True, exist_ok=True)
    part = fetch(url, store / (ARCHIVE + ".part"), retries, timeout, progress)
    archive = store / ARCHIVE
    os.replace(part, archive)
    try:
        folder = unpack_market1501(archive, root, sha256, counts)
    except DownloadError:
        archive.unlink()  # damaged or wrong: the next call downloads afresh
        raise
    if store == root and not keep_archive:
        archive.unlink()
    return folder
