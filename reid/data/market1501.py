"""Market-1501 records: the folder layout and the file-name grammar (the download: `reid.data.download`).

Market-1501 (Zheng et al., ICCV 2015) ships three folders of 128 x 64 JPEGs::

    bounding_box_train/   12,936 images of 751 identities (training)
    query/                 3,368 images of 750 identities (one per identity and camera)
    bounding_box_test/    19,732 images: the 750 test identities, distractors, junk

and names every image ``PPPP_cCsS_FFFFFF_BB.jpg``: person id, camera (1-6), sequence,
frame number in that sequence, and the index of the detected box in that frame. Person
id ``0000`` marks a *distractor* (a wrong detection or a person outside the test set;
it stays in the gallery as a hard negative) and ``-1`` marks *junk* (a fragment of a
body; the protocol ignores it, so we drop it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")


class MarketName(NamedTuple):
    """The five fields of a Market-1501 file name."""

    pid: int  # person id; 0 = distractor, -1 = junk
    cam: int  # camera, 1-based as in the name
    seq: int  # sequence (video segment) of that camera
    frame: int  # frame number within the sequence
    box: int  # the box's number in that frame: 01 = first box the detector found, 00 = drawn by hand (queries)


class Record(NamedTuple):
    """One image: where it is, who it shows (pid), which camera took it (0-based)."""

    path: str
    pid: int
    camid: int


def parse_market_name(name: str) -> MarketName:
    """Split ``0002_c1s1_000451_03.jpg`` into its fields; raise on anything else."""
    m = NAME_RE.match(name)
    if m is None:
        raise ValueError(
            f"{name!r} does not follow the Market-1501 file-name grammar PPPP_cCsS_FFFFFF_BB.jpg "
            "(e.g. 0002_c1s1_000451_03.jpg); rename it or move it out of the dataset folder"
        )
    pid, cam, seq, frame, box = (int(g) for g in m.groups())
    if cam < 1:
        raise ValueError(f"{name!r}: camera numbers start at c1")
    return MarketName(pid, cam, seq, frame, box)


def read_split(folder: str | os.PathLike, relabel: bool = False) -> list[Record]:
    """All usable images of one split folder, sorted by file name.

    Junk (pid -1) is dropped; distractors (pid 0) stay. Files that are not ``.jpg``
    (``Thumbs.db``, ``.DS_Store``) are ignored; a ``.jpg`` outside the grammar is an
    error. With ``relabel``, person ids become 0..N-1 in increasing pid order (the
    classifier's labels).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"split folder {folder} is missing: a Market-1501 root holds bounding_box_train/, query/ and "
            "bounding_box_test/; check the path (cfg.data_root / cfg.market_dir) or download the dataset"
        )
    records = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".jpg"):
            continue
        try:
            parsed = parse_market_name(name)
        except ValueError as err:
            raise ValueError(f"in {folder}: {err}") from None
        if parsed.pid == -1:
            continue
        records.append(Record(str(folder / name), parsed.pid, parsed.cam - 1))
    if not records:
        raise ValueError(
            f"split folder {folder} holds no Market-1501 images (*.jpg named like 0002_c1s1_000451_03.jpg); "
            "the download or extraction may be incomplete: delete the folder and fetch it again"
        )
    if relabel:
        label = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
        records = [r._replace(pid=label[r.pid]) for r in records]
    return records


def split_stats(records: list[Record]) -> tuple[int, int, int]:
    """(identities, images, cameras) of a list of records."""
    return len({r.pid for r in records}), len(records), len({r.camid for r in records})


class Market1501:
    """The three splits of a Market-1501-style folder (real or synthetic).

    ``.train`` has relabelled pids (0..num_train_pids-1); ``.query`` and ``.gallery``
    keep the original pids, so a query and its gallery matches share one.
    """

    def __init__(self, root: str | os.PathLike, verbose: bool = True):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset root {self.root} does not exist. For the synthetic set call "
                "reid.data.make_synthetic_market(root); for the real Market-1501 set cfg.data_root to the folder "
                "holding Market-1501-v15.09.15/, or fetch it with reid.data.download_market1501(root)"
            )
        missing = [s for s in SPLITS.values() if not (self.root / s).is_dir()]
        if missing:
            inner = [p.name for p in self.root.iterdir() if p.is_dir() and (p / "bounding_box_train").is_dir()]
            hint = f"; did you mean {self.root / inner[0]}?" if inner else ""
            raise FileNotFoundError(
                f"{self.root} is not a Market-1501 root: missing {', '.join(m + '/' for m in missing)}{hint} "
                "The root must hold bounding_box_train/, query/ and bounding_box_test/"
            )
        self.train = read_split(self.root / SPLITS["train"], relabel=True)
        self.query = read_split(self.root / SPLITS["query"])
        self.gallery = read_split(self.root / SPLITS["gallery"])
        self.num_train_pids = split_stats(self.train)[0]
        if verbose:
            print(self.table())

    def table(self) -> str:
        """The statistics table person-reid-tiny-baseline prints: identities, images, cameras per split."""
        rule = "  " + "-" * 40
        rows = ["Dataset statistics:", rule, "  subset   | # ids | # images | # cameras", rule]
        for name, recs in (("train", self.train), ("query", self.query), ("gallery", self.gallery)):
            ids, imgs, cams = split_stats(recs)
            rows.append(f"  {name:<8} | {ids:5d} | {imgs:8d} | {cams:9d}")
        rows.append(rule)
        return "\n".join(rows)

    def stats(self) -> dict[str, tuple[int, int, int]]:
        """(identities, images, cameras) of each split."""
        return {name: split_stats(recs) for name, recs in (("train", self.train), ("query", self.query),
                                                           ("gallery", self.gallery))}

    def check_market1501(self) -> None:
        """Raise unless the splits have the real Market-1501's statistics (`MARKET1501_STATS`)."""
        wrong = [f"{name}: {got} instead of {MARKET1501_STATS[name]}" for name, got in self.stats().items()
                 if got != MARKET1501_STATS[name]]
        if wrong:
            raise ValueError(f"{self.root} is not the complete Market-1501 v15.09.15 ((identities, images, cameras) "
                             f"{'; '.join(wrong)}): delete the folder and download or unzip it again")

    def __repr__(self) -> str:
        return f"Market1501({str(self.root)!r})"


# --------------------------------------------------------------------------------------
# The official release (reid.data.download fetches and checks it)
# --------------------------------------------------------------------------------------
MARKET1501_FOLDER = "Market-1501-v15.09.15"
# Files per folder in the official v15.09.15 release (junk and distractors included); checked after unpacking.
MARKET1501_COUNTS = {"bounding_box_train": 12936, "query": 3368, "bounding_box_test": 19732}
# (identities, images, cameras) per split as `Market1501` reads it (junk dropped): the table every re-id codebase prints.
MARKET1501_STATS = {"train": (751, 12936, 6), "query": (750, 3368, 6), "gallery": (751, 15913, 6)}


def carve_validation(train: list[Record], num_identities: int, seed: int = 0):
    """Hold out `num_identities` training identities as a small query/gallery split.

    Returns (the remaining training records, relabelled 0..C-1; validation query; validation
    gallery). For each held-out identity, one image per camera becomes a query (chosen with
    `seed`) and the other images form the gallery, so every query can have a true match
    from another camera. Tuning anything (like the re-ranking parameters) on this split,
    never on the test set, keeps the test numbers honest.
    """
    ids = sorted({r.pid for r in train})
    if not 0 < num_identities < len(ids):
        raise ValueError(f"num_identities={num_identities}: choose between 1 and {len(ids) - 1} of the "
                         f"{len(ids)} training identities to hold out")
    rng = np.random.default_rng(seed)
    held = set(rng.choice(ids, size=num_identities, replace=False).tolist())
    rest = [r for r in train if r.pid not in held]
    relabel = {pid: i for i, pid in enumerate(sorted({r.pid for r in rest}))}
    rest = [Record(r.path, relabel[r.pid], r.camid) for r in rest]
    query, gallery = [], []
    by_id_cam: dict[tuple[int, int], list[Record]] = {}
    for r in train:
        if r.pid in held:
            by_id_cam.setdefault((r.pid, r.camid), []).append(r)
    for key in sorted(by_id_cam):
        group = by_id_cam[key]
        pick = int(rng.integers(len(group)))
        query.append(group[pick])
        gallery.extend(g for i, g in enumerate(group) if i != pick)
    return rest, query, gallery
