"""The Colab path, offline: a fake `google.colab` in front of every notebook's set-up cell, and the Colab notebook
executed under it; one run folder from a notebook and from the command line.

The fake's `drive.mount(path)` makes `path/MyDrive`, as Colab's does after asking for access; REID_COLAB_CONTENT
moves Colab's /content into a temporary folder. The pip install of the set-up cell is skipped there (the package
is installed), which is also what it does in a Colab runtime that installed it once already; its command is
checked as text in tests/test_project.py against the repository scripts/set_repository.py names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from limits import limit

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

FAKE_COLAB = '''
import sys, types
from pathlib import Path
try:
    import google  # the namespace package protobuf installs, if there
except ImportError:
    google = sys.modules["google"] = types.ModuleType("google")
colab, drive = types.ModuleType("google.colab"), types.ModuleType("google.colab.drive")
def _mount(path, **kwargs):
    (Path(path) / "MyDrive").mkdir(parents=True, exist_ok=True)
    print(f"Mounted at {path}")
drive.mount, colab.drive, google.colab = _mount, drive, colab
sys.modules["google.colab"], sys.modules["google.colab.drive"] = colab, drive
'''
PROBE = '''
import json, os
print("PROBE " + json.dumps({k: os.environ.get(k) for k in ("REID_RUNS", "REID_DATA", "REID_ARCHIVES",
                                                             "REID_ALLOW_DOWNLOAD")}))
for k in ("REID_RUNS", "REID_DATA", "REID_ARCHIVES", "REID_ALLOW_DOWNLOAD"):
    os.environ.pop(k, None)  # the next notebook's set-up cell must set them again itself
'''


def first_code_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def colab_env(content: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REID_")}
    env.update(REID_COLAB_CONTENT=str(content), PYTHONPATH=str(ROOT))
    return env


def pass_on_niceness(pid: int) -> None:
    """Give the kernel `pid` this process's autogroup niceness (Linux; see scripts/idle.sh).

    `make test` runs these tests at the lowest priority beside the chapters, in a niced session;
    Jupyter starts each kernel in a session of its own, which would compete with the chapters'
    training as an equal."""
    try:
        nice = int(Path("/proc/self/autogroup").read_text().split()[-1])
        if nice > 0:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except (OSError, ValueError):
        pass  # no autogroup here (the kernel inherits the plain nice value, which then counts), or not allowed


def run(nb: nbformat.NotebookNode, cwd: Path, env: dict, timeout: float = limit(600)) -> nbformat.NotebookNode:
    """Execute `nb` in a fresh kernel with `env` (nbclient starts the kernel from os.environ)."""
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
        client.on_notebook_start = lambda notebook: pass_on_niceness(client.km.provisioner.pid)
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_every_set_up_cell_on_a_fake_colab_puts_runs_on_drive_and_data_on_the_local_disk(tmp_path):
    content = tmp_path / "content"
    cells = [nbformat.v4.new_code_cell(FAKE_COLAB)]
    for path in NOTEBOOKS:  # each notebook's first code cell, then a probe that clears what it set
        cells += [nbformat.v4.new_code_cell(first_code_cell(path)), nbformat.v4.new_code_cell(PROBE)]
    nb = run(nbformat.v4.new_notebook(cells=cells), ROOT / "notebooks", colab_env(content))
    drive = content / "drive" / "MyDrive" / "reid-book"
    expected = {"REID_RUNS": str(drive / "runs"), "REID_DATA": str(content / "reid-data"),
                "REID_ARCHIVES": str(drive), "REID_ALLOW_DOWNLOAD": "1"}
    for i, path in enumerate(NOTEBOOKS):
        said, probe = stream(nb.cells[1 + 2 * i]), stream(nb.cells[2 + 2 * i])
        found = json.loads(probe.split("PROBE ", 1)[1])
        assert found == expected, f"{path.name}: its first code cell did not place runs and data as on Colab"
        line = [t for t in said.splitlines() if t.startswith("Colab: ")]
        assert line and line[0].startswith(f"Colab: runs in {drive / 'runs'}; datasets in {content / 'reid-data'}"), said
    assert (drive / "runs").is_dir()
    assert len({first_code_cell(p) for p in NOTEBOOKS}) == 1, "the set-up cell is the same in every notebook"


def test_the_colab_notebook_on_a_fake_colab_writes_its_runs_to_drive(tmp_path):
    content = tmp_path / "content"
    nb = nbformat.read(ROOT / "notebooks" / "market1501_on_colab.ipynb", as_version=4)
    # Up to the first training (B1): where a run and the dataset land is decided by then. nbval executes the whole
    # notebook off Colab anyway, so the other two trainings and the table are not run a second time here.
    first_training = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "b1 = train(" in c.source)
    nb.cells = [nbformat.v4.new_code_cell(FAKE_COLAB)] + nb.cells[:first_training + 1]
    env = colab_env(content)
    env["REID_PROFILE"] = "smoke"  # a fake Colab has no GPU and no Market-1501: the pipeline on a tiny synthetic set
    run(nb, ROOT / "notebooks", env)
    runs = content / "drive" / "MyDrive" / "reid-book" / "runs"
    assert (runs / "colab-smoke" / "model.pth").is_file() and (runs / "colab-smoke" / "history.json").is_file()
    assert list((content / "reid-data").glob("synthetic-market-tiny-*"))  # the dataset on the runtime's disk


def test_one_run_folder_for_a_chapter_in_notebooks_and_a_command_at_the_repository_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REID_RUNS"}
    # One process (importing torch costs seconds) that starts in notebooks/, as a chapter's kernel does, and then
    # moves to the repository's root and elsewhere: a config made in each has a checkout's runs/ at its root.
    code = ("import os, sys; from reid import Config\n"
            "for cwd in sys.argv[1:]:\n    os.chdir(cwd); print(Config().run_dir.parent.resolve())")
    found = subprocess.run([sys.executable, "-c", code, str(ROOT / "notebooks"), str(ROOT), str(tmp_path)],
                           cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, check=True).stdout.split()
    assert found == [str(ROOT / "runs")] * 3  # wherever the process is, a checkout's runs/ at its root
    env["REID_RUNS"] = str(tmp_path / "elsewhere")
    found = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    assert found == [str(tmp_path / "elsewhere")]


@pytest.mark.parametrize("allow", [True, False])
def test_market1501_on_colab_is_unpacked_from_the_zip_on_drive(tmp_path, monkeypatch, allow):
    """A new runtime: the dataset is not on its disk, the zip is on Drive (REID_ARCHIVES): unpacked, kept there."""
    import zipfile

    import reid.data.download as download
    from reid import Config
    from reid.data import dataset_root

    counts = {"bounding_box_train": 2, "bounding_box_test": 2, "query": 1}
    monkeypatch.setattr(download, "MARKET1501_COUNTS", counts)
    archives = tmp_path / "drive" / "MyDrive" / "reid-book"
    archives.mkdir(parents=True)
    with zipfile.ZipFile(archives / download.ARCHIVE, "w") as zf:
        for split, n in counts.items():
            for i in range(n):
                zf.writestr(f"{download.MARKET1501_FOLDER}/{split}/{i + 1:04d}_c1s1_000001_01.jpg", b"jpeg")
    monkeypatch.setenv("REID_ARCHIVES", str(archives))
    monkeypatch.setenv("REID_ALLOW_DOWNLOAD", "1" if allow else "0")
    cfg = Config.book("market1501", data_root=str(tmp_path / "local"))
    folder = dataset_root(cfg)
    assert folder == tmp_path / "local" / download.MARKET1501_FOLDER and (folder / "query").is_dir()
    assert (archives / download.ARCHIVE).is_file()  # kept on Drive for the next runtime
    monkeypatch.delenv("REID_ARCHIVES")
    monkeypatch.delenv("REID_ALLOW_DOWNLOAD")
    with pytest.raises(FileNotFoundError, match="reid.setup"):
        dataset_root(Config.book("market1501", data_root=str(tmp_path / "empty")))


def test_setup_without_drive_mounts_nothing_and_says_the_runs_stay_on_the_runtimes_disk(tmp_path, monkeypatch, capsys):
    """`reid.setup(drive=False)`: for a reader who declines Colab's Drive prompt, or cannot mount Drive."""
    import types

    import reid

    def refuse(path, **kwargs):
        raise AssertionError("drive=False must not mount Google Drive")

    colab, drive = types.ModuleType("google.colab"), types.ModuleType("google.colab.drive")
    drive.mount, colab.drive = refuse, drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    monkeypatch.setenv("REID_COLAB_CONTENT", str(tmp_path / "content"))
    for name in ("REID_RUNS", "REID_DATA", "REID_ARCHIVES", "REID_ALLOW_DOWNLOAD"):
        monkeypatch.setenv(name, "")  # recorded, so that what setup() sets is undone after the test
        monkeypatch.delenv(name)
    reid.setup(drive=False)
    content = (tmp_path / "content").resolve()
    assert os.environ["REID_RUNS"] == str(content / "reid-runs") and (content / "reid-runs").is_dir()
    assert os.environ["REID_DATA"] == str(content / "reid-data") and "REID_ARCHIVES" not in os.environ
    assert os.environ["REID_ALLOW_DOWNLOAD"] == "1"  # Market-1501 may still be downloaded, to the runtime's disk
    assert not (content / "drive").exists()
    said = capsys.readouterr().out.strip().splitlines()
    assert said == [f"Colab: runs in {content / 'reid-runs'}; datasets in {content / 'reid-data'} "
                    "(the runtime's disk, without Drive: the runs are lost when the runtime ends)"]
