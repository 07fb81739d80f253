import hashlib
import importlib.util
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.data import Market1501, SyntheticSpec, make_synthetic_market, parse_market_name
from reid.data.synthetic import PRESETS, plan_dataset

from limits import limit

SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        for name in sorted(os.listdir(folder / split)):
            h.update(name.encode())
            h.update((folder / split / name).read_bytes())
    return h.hexdigest()


def test_layout_and_grammar(tiny_root: Path):
    for split in SPLITS:
        names = os.listdir(tiny_root / split)
        assert names, split
        for name in names:
            parse_market_name(name)  # raises outside the grammar
        img = Image.open(tiny_root / split / names[0])
        assert img.size == (64, 128) and img.mode == "RGB"
    ds = Market1501(tiny_root, verbose=False)
    spec = PRESETS["tiny"]
    assert ds.num_train_pids == spec.num_train_ids
    assert len({r.pid for r in ds.query}) == spec.num_test_ids


def test_splits_follow_market(tiny_root: Path):
    raw = {s: [parse_market_name(n) for n in os.listdir(tiny_root / s)] for s in SPLITS}
    train_ids = {p.pid for p in raw["bounding_box_train"]}
    test_ids = {p.pid for p in raw["query"]}
    assert 0 not in train_ids and -1 not in train_ids
    assert not train_ids & test_ids  # disjoint identities
    gallery_pids = {p.pid for p in raw["bounding_box_test"]}
    assert {0, -1} <= gallery_pids  # distractors and junk present
    assert sum(p.pid == 0 for p in raw["bounding_box_test"]) == PRESETS["tiny"].num_distractors
    assert sum(p.pid == -1 for p in raw["bounding_box_test"]) == PRESETS["tiny"].num_junk
    # every test identity: >= 2 cameras; one query per camera; a gallery image in every query camera
    cams = defaultdict(set)
    for p in raw["query"] + raw["bounding_box_test"]:
        cams[p.pid].add(p.cam)
    queries = defaultdict(list)
    for p in raw["query"]:
        queries[p.pid].append(p.cam)
    gallery = {(p.pid, p.cam) for p in raw["bounding_box_test"]}
    for pid in test_ids:
        assert len(cams[pid]) >= 2
        assert len(queries[pid]) == len(set(queries[pid])) == len(cams[pid])
        assert all((pid, c) in gallery for c in cams[pid])
    # every training identity is also seen by >= 2 cameras
    train_cams = defaultdict(set)
    for p in raw["bounding_box_train"]:
        train_cams[p.pid].add(p.cam)
    assert min(len(c) for c in train_cams.values()) >= 2


def test_names_are_unique_and_frames_increase_along_a_tracklet():
    jobs = plan_dataset(PRESETS["tiny"], seed=3)
    names = [j["name"] for j in jobs]
    assert len(names) == len(set(names))
    person = [parse_market_name(j["name"]) for j in jobs if j["kind"] == "person"]
    by_track = defaultdict(list)
    for p in person:
        by_track[(p.pid, p.cam)].append(p.frame)
    assert all(frames == sorted(frames) for frames in by_track.values())


def test_deterministic_bytes_and_independent_of_workers(tmp_path: Path):
    a = make_synthetic_market(tmp_path / "a", "tiny", seed=5, workers=1, verbose=False)
    b = make_synthetic_market(tmp_path / "b", "tiny", seed=5, workers=2, force=True, verbose=False)
    assert a.name == b.name
    assert _digest(a) == _digest(b)
    c = make_synthetic_market(tmp_path / "c", "tiny", seed=6, workers=1, verbose=False)
    assert _digest(c) != _digest(a)


def numpy_simd_targets() -> list[str]:
    """The portability script's list of NumPy SIMD targets on this CPU (AVX2, AVX-512, ...)."""
    spec = importlib.util.spec_from_file_location("portability", Path(__file__).parents[1] / "scripts" / "portability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.numpy_simd_targets()


def test_same_bytes_without_numpys_simd_kernels(tiny_root: Path, tmp_path: Path):
    """Another CPU (here: this one with the SIMD kernels of NumPy and libjpeg-turbo switched off) writes the same bytes."""
    targets = numpy_simd_targets()
    if not targets:
        pytest.skip("NumPy dispatches to no SIMD target on this CPU: nothing to switch off")
    script = ("import sys; sys.path.insert(0, sys.argv[2]); from test_synthetic import _digest; "
              "from reid.data import make_synthetic_market; "
              "print(_digest(make_synthetic_market(sys.argv[1], 'tiny', seed=0, workers=1, verbose=False)))")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(targets), "JSIMD_FORCENONE": "1"}
    out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", script, str(tmp_path),
                          str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=limit(300))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _digest(tiny_root), f"with {' '.join(targets)} switched off the bytes differ"


def test_cache_is_reused_and_keyed_by_parameters(tmp_path: Path):
    first = make_synthetic_market(tmp_path, "tiny", seed=0, verbose=False)
    stamp = (first / "params.json").stat().st_mtime_ns
    again = make_synthetic_market(tmp_path, "tiny", seed=0, verbose=False)
    assert again == first and (first / "params.json").stat().st_mtime_ns == stamp
    other = make_synthetic_market(tmp_path, SyntheticSpec(num_train_ids=3, num_test_ids=3, num_distractors=1,
                                                          num_junk=1, cams_per_id=(2, 2)), seed=0, verbose=False)
    assert other != first
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary folders left


def test_identities_look_different_but_consistent(tiny_root: Path):
    """Two images of one person are closer (in pixels, same camera) than images of two people."""
    ds = Market1501(tiny_root, verbose=False)
    by = defaultdict(list)
    for r in ds.train:
        by[(r.pid, r.camid)].append(r.path)
    pairs = [v[:2] for v in by.values() if len(v) >= 2][:20]
    load = lambda p: np.asarray(Image.open(p), dtype=np.float32)  # noqa: E731
    same = np.mean([np.abs(load(a) - load(b)).mean() for a, b in pairs])
    diff = np.mean([np.abs(load(pairs[i][0]) - load(pairs[(i + 1) % len(pairs)][0])).mean()
                    for i in range(len(pairs))])
    assert same < diff


@pytest.mark.parametrize("changes, match", [
    ({"num_cameras": 1, "cams_per_id": (1, 1)}, "num_cameras"),
    ({"cams_per_id": (1, 3)}, "cams_per_id"),
    ({"images_per_camera": (1, 3)}, "images_per_camera"),
    ({"num_train_ids": 9000, "num_test_ids": 1000}, "4-digit"),
])
def test_bad_specs_are_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        SyntheticSpec(**changes).validate()


def test_unknown_preset(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown synthetic preset 'huge'"):
        make_synthetic_market(tmp_path, "huge")
