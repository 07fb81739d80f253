import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from reid.data import Market1501, parse_market_name, read_split, safe_extract
from reid.data.loaders import read_image


def _jpg(path: Path, colour=(128, 64, 32)) -> None:
    Image.new("RGB", (64, 128), colour).save(path)


@pytest.fixture
def market_tree(tmp_path: Path) -> Path:
    """A hand-made Market layout with junk, distractors and stray files."""
    root = tmp_path / "Market"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
    for name in ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s2_001000_01.jpg",
                 "0010_c6s4_002202_02.jpg", "0010_c5s3_000010_01.jpg"]:
        _jpg(root / "bounding_box_train" / name)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0" * 10)
    for name in ["0003_c1s1_000100_00.jpg", "0004_c2s1_000200_00.jpg"]:
        _jpg(root / "query" / name)
    for name in ["0003_c2s1_000300_01.jpg", "0003_c1s1_000120_01.jpg", "0004_c1s1_000400_02.jpg",
                 "0000_c3s1_000500_01.jpg", "-1_c1s1_000600_01.jpg", "-1_c4s2_000700_01.jpg"]:
        _jpg(root / "bounding_box_test" / name)
    (root / "bounding_box_test" / ".DS_Store").write_bytes(b"x")
    return root


def test_parse_market_name_fields():
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 1, 1, 451, 3)
    assert parse_market_name("-1_c6s4_002202_02.jpg").pid == -1
    assert parse_market_name("0000_c3s2_000001_01.jpg").pid == 0


@pytest.mark.parametrize("bad", ["002_c1s1_000451_03.jpg", "0002_c1_000451_03.jpg", "0002_c1s1_451_03.jpg",
                                 "0002-c1s1-000451-03.jpg", "0002_c1s1_000451_03.png", "0002_c0s1_000451_03.jpg"])
def test_parse_market_name_rejects_names_outside_the_grammar(bad):
    with pytest.raises(ValueError, match="grammar|camera numbers"):
        parse_market_name(bad)


def test_market_tree_parsing(market_tree: Path, capsys):
    ds = Market1501(market_tree, verbose=True)
    out = capsys.readouterr().out
    assert "train    |     3 |        5 |         5" in out
    # train: pids 2, 7, 10 relabelled 0, 1, 2 in pid order; cameras 0-based
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2]
    assert ds.num_train_pids == 3
    by_name = {os.path.basename(r.path): r for r in ds.train}
    assert by_name["0010_c6s4_002202_02.jpg"].pid == 2
    assert by_name["0010_c6s4_002202_02.jpg"].camid == 5
    assert by_name["0002_c1s1_000451_03.jpg"].camid == 0
    # query and gallery keep original pids; junk dropped, distractor kept
    assert [r.pid for r in ds.query] == [3, 4]
    gallery_pids = sorted(r.pid for r in ds.gallery)
    assert gallery_pids == [0, 3, 3, 4]
    assert all(not os.path.basename(r.path).startswith("-1") for r in ds.gallery)
    assert all(r.path.endswith(".jpg") for r in ds.train + ds.query + ds.gallery)


def test_missing_root(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist.*make_synthetic_market"):
        Market1501(tmp_path / "nowhere", verbose=False)


def test_missing_split_names_split_and_suggests_inner_folder(market_tree: Path):
    with pytest.raises(FileNotFoundError, match=r"missing bounding_box_train.*did you mean .*Market"):
        Market1501(market_tree.parent, verbose=False)
    (market_tree / "query").rename(market_tree / "queries")
    with pytest.raises(FileNotFoundError, match="missing query"):
        Market1501(market_tree, verbose=False)


def test_empty_split(market_tree: Path):
    for f in (market_tree / "query").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"query holds no Market-1501 images"):
        Market1501(market_tree, verbose=False)


def test_file_outside_grammar_is_named(market_tree: Path):
    _jpg(market_tree / "bounding_box_test" / "person_12.jpg")
    with pytest.raises(ValueError, match=r"bounding_box_test.*'person_12.jpg' does not follow"):
        Market1501(market_tree, verbose=False)


def test_corrupt_image_is_named_when_loaded(market_tree: Path):
    bad = market_tree / "query" / "0003_c1s1_000100_00.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ds = Market1501(market_tree, verbose=False)  # parsing reads names only
    with pytest.raises(OSError, match=r"cannot read image .*0003_c1s1_000100_00.jpg.*corrupt"):
        read_image(ds.query[0].path)


def test_read_split_relabel_is_dense(market_tree: Path):
    recs = read_split(market_tree / "bounding_box_train", relabel=True)
    assert sorted({r.pid for r in recs}) == list(range(3))


def test_cuhk01_real_images(cuhk01_root: Path):
    ds = Market1501(cuhk01_root, verbose=False)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (1940, 972, 972)
    assert ds.num_train_pids == 485
    assert {r.camid for r in ds.query} == {0, 1}
    # train and test identities are disjoint; every query has a match in the other camera
    train_names = {os.path.basename(r.path)[:4] for r in ds.train}
    assert not train_names & {f"{r.pid:04d}" for r in ds.query}
    gallery = {(r.pid, r.camid) for r in ds.gallery}
    assert all((q.pid, 1 - q.camid) in gallery for q in ds.query)
    img = read_image(ds.query[0].path)
    assert img.mode == "RGB" and min(img.size) > 0


def test_safe_extract_refuses_zip_slip(tmp_path: Path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Market/query/0001_c1s1_000001_01.jpg", b"ok")
        zf.writestr("../escaped.txt", b"bad")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "Market").exists()  # nothing written before the check


def test_safe_extract_refuses_symlinks(tmp_path: Path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("Market/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_extracts_inside(tmp_path: Path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Market/query/0001_c1s1_000001_01.jpg", b"ok")
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "Market" / "query" / "0001_c1s1_000001_01.jpg").read_bytes() == b"ok"


def test_carve_validation_holds_out_whole_identities():
    from reid.data import Record, carve_validation

    train = [Record(f"{pid}_{cam}_{i}.jpg", pid, cam) for pid in range(10) for cam in range(3) for i in range(2)]
    rest, query, gallery = carve_validation(train, 3, seed=1)
    held = {r.pid for r in query}
    assert len(held) == 3 and {r.pid for r in gallery} == held
    assert sorted({r.pid for r in rest}) == list(range(7))  # relabelled 0..6
    assert len(query) == 3 * 3 and len(gallery) == 3 * 3  # one query per (identity, camera), the rest in gallery
    assert len(rest) + len(query) + len(gallery) == len(train)
    assert not {r.path for r in rest} & {r.path for r in query + gallery}
    assert carve_validation(train, 3, seed=1) == (rest, query, gallery)  # reproducible
    with pytest.raises(ValueError, match="num_identities=10"):
        carve_validation(train, 10)


def test_the_market1501_check_names_what_differs(tiny_root: Path):
    from reid.data import MARKET1501_STATS

    ds = Market1501(tiny_root, verbose=False)
    assert ds.stats()["train"] == (24, 163, 4)
    with pytest.raises(ValueError, match=r"not the complete Market-1501 .*train: \(24, 163, 4\) instead of \(751, 12936, 6\)"):
        ds.check_market1501()
    ds.stats = lambda: dict(MARKET1501_STATS)
    ds.check_market1501()
