"""Where runs and data live, said once: the set-up call at the top of every chapter.

    import reid
    reid.setup()   # prints one line: where runs and datasets are

Everywhere, runs go to `REID_RUNS` if it is set, else to `runs/` at the root of the book's
checkout (the same folder whether a chapter runs from notebooks/ or a command from the
repository root), and datasets to `REID_DATA`, else `~/.cache/reid-book` (`reid.config`).

On Colab each notebook is a runtime of its own with an empty disk, and a runtime is
reclaimed when it disconnects. There `setup()` mounts Google Drive and sets:

* `REID_RUNS` = /content/drive/MyDrive/reid-book/runs: checkpoints and weights survive the
  runtime, and every chapter finds the runs of the others;
* `REID_DATA` = /content/reid-data, the runtime's local disk: reading 30,000 small JPEGs
  from Drive is slow, from local disk fast;
* `REID_ARCHIVES` = /content/drive/MyDrive/reid-book: Market-1501's zip is kept there once
  (downloaded by the first chapter that needs it, or uploaded by you), and unpacked to the
  local disk in each new runtime (`reid.data.dataset_root`);
* `REID_ALLOW_DOWNLOAD` = 1: that first chapter may download the zip (the guarded, resumable
  `reid.data.download_market1501`; off Colab nothing is downloaded unless you ask).

`setup(drive=False)` is for a reader who would rather not give Colab access to their Drive,
or whose account cannot mount it: nothing is mounted, `REID_RUNS` = /content/reid-runs, on
the runtime's disk like the datasets, so the runs are lost when the runtime ends, and no zip is
kept between runtimes (the smoke profile needs neither).

A variable already set is left as it is. Elsewhere `setup()` sets nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import default_data_root, default_output_dir

COLAB_CONTENT = "/content"  # Colab's working folder (REID_COLAB_CONTENT moves it, for tests)
DRIVE_FOLDER = "MyDrive/reid-book"  # the book's folder on Google Drive, under the mount point


def on_colab() -> bool:
    """Whether this is a Colab runtime (its `google.colab` module is loaded)."""
    return "google.colab" in sys.modules


def colab_paths() -> dict[str, Path]:
    """Where `setup()` puts things on Colab: the Drive mount point, runs, archives, the local data folder, and the
    local runs folder that `setup(drive=False)` uses instead of Drive."""
    content = Path(os.environ.get("REID_COLAB_CONTENT", COLAB_CONTENT))
    drive = content / "drive"
    book = drive / DRIVE_FOLDER
    return {"drive": drive, "runs": book / "runs", "archives": book, "data": content / "reid-data",
            "local_runs": content / "reid-runs"}


def where() -> dict[str, str]:
    """{"runs", "data", "archives"}: where runs, datasets and (on Colab) Market-1501's zip are, as full paths."""
    return {"runs": str(Path(default_output_dir()).resolve()), "data": str(Path(default_data_root()).resolve()),
            "archives": os.environ.get("REID_ARCHIVES", "")}


def setup(verbose: bool = True, drive: bool = True) -> None:
    """Place runs and data (see the module's text) and print one line saying where they are (`where`).

    On Colab: mounts Google Drive (Colab asks for access once per runtime), then sets
    REID_RUNS, REID_DATA and REID_ARCHIVES unless they are set. With ``drive=False`` it mounts
    nothing and keeps the runs on the runtime's disk too, and its line says they end with the
    runtime. Elsewhere it changes nothing.
    """
    local = on_colab() and not drive  # runs on the runtime's disk
    if on_colab():
        paths = colab_paths()
        if drive:
            from google.colab import drive as google_drive

            if not (paths["drive"] / "MyDrive").is_dir():
                google_drive.mount(str(paths["drive"]))
            settings = {"REID_RUNS": paths["runs"], "REID_DATA": paths["data"], "REID_ARCHIVES": paths["archives"]}
        else:
            settings = {"REID_RUNS": paths["local_runs"], "REID_DATA": paths["data"]}
        for name, path in settings.items():
            os.environ.setdefault(name, str(path))
        os.environ.setdefault("REID_ALLOW_DOWNLOAD", "1")
        Path(os.environ["REID_RUNS"]).mkdir(parents=True, exist_ok=True)
    if verbose:
        places = where()
        line = f"runs in {places['runs']}; datasets in {places['data']}"
        if places["archives"]:
            line += f"; Market-1501's zip kept in {places['archives']}"
        if local and not Path(places["runs"]).is_relative_to(colab_paths()["drive"].resolve()):
            line += " (the runtime's disk, without Drive: the runs are lost when the runtime ends)"
        print(("Colab: " if on_colab() else "") + line)
