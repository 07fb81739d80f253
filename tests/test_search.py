"""Using a trained run: the gallery index, search, pictures of the results, ONNX export, and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from reid import Config
from reid.data.transforms import test_transforms
from reid.engine import CONFIG, FINAL_WEIGHTS, CheckpointError, load_model, train
from reid.evaluation import pairwise_distance
from reid.model import Baseline
from reid.search import (BadImageError, Embedder, build_index, embed_files, find_images, html_page, index_path_for,
                         load_rgb, market_labels, search, topk_faiss, topk_torch, weights_digest, write_results)

from limits import limit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tiny_root, tmp_path_factory) -> Path:
    """A run trained for 3 epochs on the tiny synthetic set (a few seconds)."""
    tmp = tmp_path_factory.mktemp("search-run")
    (tmp / "data").mkdir()
    (tmp / "data" / tiny_root.name).symlink_to(tiny_root)
    cfg = Config.smoke(data_root=str(tmp / "data"), synthetic_preset="tiny", val_identities=0, batch_size=16,
                       max_epochs=3, warmup_epochs=1, steps=(2,), eval_period=3, checkpoint_period=3, num_workers=0,
                       output_dir=str(tmp / "runs"), name="tiny")
    train(cfg, progress=False)
    return cfg.run_dir


@pytest.fixture
def gallery(tiny_root, tmp_path) -> Path:
    """A copy of the tiny set's gallery (the index is written beside it)."""
    return Path(shutil.copytree(tiny_root / "bounding_box_test", tmp_path / "gallery"))


def embedder_of(run: Path, flip: bool | None = None):
    model, cfg = load_model(run)
    return Embedder.of_run(model, cfg, flip), cfg, weights_digest(run / FINAL_WEIGHTS)


def search_first_queries(run: Path, gallery: Path, tiny_root: Path, count: int, top_k: int = 4):
    """The results of searching the gallery for the tiny set's first `count` queries, as the contact sheet gets them."""
    emb, cfg, digest = embedder_of(run)
    index = build_index(emb, cfg, gallery, digest, progress=False)
    queries = sorted((tiny_root / "query").iterdir())[:count]
    feats, _, _ = embed_files(emb, queries, cfg, progress=False)
    return search(index, feats, queries, cfg.distance, top_k=top_k)


def test_search_finds_exactly_the_nearest_and_marks_market_names(run, gallery, tiny_root):
    emb, cfg, digest = embedder_of(run)
    index = build_index(emb, cfg, gallery, digest, progress=False)
    assert index_path_for(gallery).exists() and index.reused == 0 and not index.skipped
    assert len(index) == len(list(gallery.iterdir()))
    queries = sorted((tiny_root / "query").iterdir())[:6]
    feats, kept, bad = embed_files(emb, queries, cfg, progress=False)
    assert kept == list(range(6)) and not bad
    results = search(index, feats, queries, cfg.distance, top_k=10, backend="torch")
    order = pairwise_distance(feats, index.feats, cfg.distance).argsort(1)[:, :10]
    for r, expected in zip(results, order):
        assert [h.path for h in r.hits] == [index.paths[j] for j in expected]
        assert [h.distance for h in r.hits] == sorted(h.distance for h in r.hits)
        assert r.pid == market_labels(r.path)[0] >= 0
        assert all(r.status(h) == ("" if h.pid < 0 else "wrong" if h.pid != r.pid else
                                   "same camera" if h.camid == r.camid else "match") for h in r.hits)
    assert any(r.status(h) == "match" for r in results for h in r.hits)  # a trained model finds someone
    reranked = search(index, feats, queries, cfg.distance, top_k=5, rerank=(20, 6, 0.3))
    assert all(len(r.hits) == 5 for r in reranked)


def test_the_index_is_reused_while_files_model_and_settings_are_unchanged(run, gallery):
    emb, cfg, digest = embedder_of(run)
    first = build_index(emb, cfg, gallery, digest, progress=False)
    again = build_index(emb, cfg, gallery, digest, progress=False)
    assert again.reused == len(first) and torch.equal(again.feats, first.feats)
    files = sorted(gallery.iterdir())
    files[0].unlink()  # removed: drops out
    shutil.copy(files[1], gallery / "new_person.jpg")  # added (any name): computed
    os.utime(files[2], ns=(0, 0))  # touched: computed again
    changed = build_index(emb, cfg, gallery, digest, progress=False)
    assert changed.reused == len(first) - 2 and len(changed) == len(first)
    assert "new_person.jpg" in changed.paths and files[0].name not in changed.paths
    assert changed.pids[changed.paths.index("new_person.jpg")] == -1  # not a Market name: identity unknown
    assert torch.allclose(changed.feats[changed.paths.index("new_person.jpg")],
                          changed.feats[changed.paths.index(files[1].name)], atol=1e-6)
    flipped = build_index(Embedder.of_run(emb.model, cfg, flip=not emb.flip), cfg, gallery, digest, progress=False)
    assert flipped.reused == 0  # another setting: every feature again
    other = build_index(emb, cfg, gallery, "another model", progress=False)
    assert other.reused == 0
    index_path_for(gallery).write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert build_index(emb, cfg, gallery, digest, progress=False).reused == 0


def write_odd_images(folder: Path, person: Path) -> dict[str, str]:
    """Every kind of file a folder of photos holds; returns name -> "ok" or the expected reason."""
    folder.mkdir()
    rgb = Image.open(person).convert("RGB")
    rgb.convert("L").save(folder / "grey.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "transparent.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)).save(folder / "sixteen_bit.png")
    rgb.convert("P").save(folder / "palette.gif")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": a phone photo taken upright
    rgb.transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", exif=exif)
    (folder / "sub").mkdir()
    rgb.save(folder / "sub" / "nested.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    data = (folder / "grey.png").read_bytes()
    (folder / "cut.jpg").write_bytes(person.read_bytes()[:200])  # a JPEG cut off after its header
    (folder / "garbage.png").write_bytes(data[:60] + bytes(len(data) - 60))  # a PNG header, then zeros
    rgb.resize((4, 6)).save(folder / "tiny.png")
    (folder / ".hidden.jpg").write_bytes(person.read_bytes())  # hidden: left out, and listed
    return {"grey.png": "ok", "transparent.png": "ok", "cmyk.jpg": "ok", "sixteen_bit.png": "ok",
            "palette.gif": "ok", "phone.jpg": "ok", "sub/nested.jpg": "ok", "notes.txt": "not an image",
            ".hidden.jpg": "hidden",
            "empty.jpg": "not an image", "cut.jpg": "corrupt", "garbage.png": "corrupt", "tiny.png": "too small"}


def test_odd_files_are_converted_or_skipped_and_named_never_a_crash(run, tmp_path, tiny_root):
    person = sorted((tiny_root / "query").iterdir())[0]
    expected = write_odd_images(tmp_path / "photos", person)
    emb, cfg, digest = embedder_of(run)
    index = build_index(emb, cfg, tmp_path / "photos", digest, progress=False)
    assert sorted(index.paths) == sorted(k for k, v in expected.items() if v == "ok")
    skipped = {s.path: s.reason for s in index.skipped}
    assert set(skipped) == {k for k, v in expected.items() if v != "ok"}
    for name, reason in skipped.items():
        assert expected[name] in reason, (name, reason)
        assert name in index.summary()
    assert torch.isfinite(index.feats).all()
    phone = load_rgb(tmp_path / "photos" / "phone.jpg")
    assert phone.size == Image.open(person).size  # upright again (EXIF orientation applied)
    assert load_rgb(tmp_path / "photos" / "cmyk.jpg").mode == "RGB"
    with pytest.raises(BadImageError, match=r"tiny.png: 4x6 pixels, too small"):
        load_rgb(tmp_path / "photos" / "tiny.png")


def test_folders_without_images_say_so(tmp_path, run, tiny_root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty: the gallery must be a folder of person crops"):
        find_images(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images in .*docs \(1 other files: a.txt\)"):
        find_images(tmp_path / "docs")
    with pytest.raises(FileNotFoundError, match="does not exist: --query must be"):
        find_images(tmp_path / "missing", "--query")
    (tmp_path / "broken").mkdir()
    jpeg = sorted((tiny_root / "query").iterdir())[0].read_bytes()
    (tmp_path / "broken" / "a.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])  # its header reads, its pixels do not
    emb, cfg, digest = embedder_of(run)
    with pytest.raises(ValueError, match="no image in .*broken could be decoded: a.jpg"):
        build_index(emb, cfg, tmp_path / "broken", digest, progress=False)


def test_run_folders_without_weights_or_with_other_weights_say_what_is_wrong(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder .*nowhere does not exist"):
        load_model(tmp_path / "nowhere")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(empty)
    shutil.copy(run / CONFIG, empty / CONFIG)
    with pytest.raises(FileNotFoundError, match="no weights in .*: neither model.pth nor checkpoint.pth"):
        load_model(empty)
    other = tmp_path / "other-architecture"
    other.mkdir()
    shutil.copy(run / CONFIG, other / CONFIG)
    torch.save(Baseline(5, "resnet34", pretrained="none").state_dict(), other / FINAL_WEIGHTS)
    with pytest.raises(ValueError, match="does not fit the resnet18 model .* another architecture"):
        load_model(other)
    torch.save({"state": torch.zeros(3)}, other / FINAL_WEIGHTS)
    with pytest.raises(ValueError, match="holds no reid model weights"):
        load_model(other)
    (other / FINAL_WEIGHTS).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model(other)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunked_top_k_and_faiss_agree_with_a_full_sort(metric):
    g = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(7, 32, generator=g), torch.randn(1000, 32, generator=g)
    full = pairwise_distance(query, gallery, metric)
    d, i = topk_torch(query, gallery, 10, metric, chunk_size=64)
    assert torch.equal(i, full.argsort(1)[:, :10])
    assert torch.allclose(d, full.gather(1, i), atol=1e-5)
    assert topk_torch(query, gallery[:4], 10, metric)[1].shape == (7, 4)  # fewer than k in the gallery
    qn, gn = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
    if metric == "cosine":  # an index of normalised features skips normalising the gallery on every call
        assert torch.equal(topk_torch(qn, gn, 10, metric, chunk_size=64, normalized=True)[1], i)
    pytest.importorskip("faiss")
    fd, fi = topk_faiss(query, gallery, 10, metric)
    assert torch.equal(fi, i) and torch.allclose(fd, d, atol=1e-4)
    from reid.search import faiss_index
    built = faiss_index(gn, metric, normalized=True)  # built once, searched again
    assert torch.equal(topk_faiss(qn, built, 10, metric, normalized=True)[1],
                       pairwise_distance(qn, gn, metric).argsort(1)[:, :10])


def test_contact_sheet_and_html_page(run, gallery, tiny_root, tmp_path):
    results = search_first_queries(run, gallery, tiny_root, 3)
    png = write_results(results, gallery, tmp_path / "sheet.png", height=64)
    sheet = Image.open(png)
    assert sheet.width > 5 * 32 and sheet.height > 3 * 64
    page = write_results(results, gallery, tmp_path / "hits.html").read_text()
    assert page.count("<img") == 3 * 5 and all(h.path in page for r in results for h in r.hits)
    assert "<script" not in html_page(results, gallery) and "&lt;" not in page
    with pytest.raises(ValueError, match="unknown extension '.pdf'; write .json or .csv"):
        write_results(results, gallery, tmp_path / "hits.pdf")


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reid", *map(str, args)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=limit(600))


def test_search_and_export_commands_on_a_folder_of_jpegs(run, gallery, tiny_root, tmp_path):
    (gallery / "readme.txt").write_text("photos of the car park")
    queries = tmp_path / "queries"
    queries.mkdir()
    for p in sorted((tiny_root / "query").iterdir())[:2]:
        shutil.copy(p, queries)
    done = cli("search", "--run", run, "--gallery", gallery, "--query", queries, "--out", tmp_path / "hits.html",
               "--top-k", "5", "--device", "cpu", "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    assert "skipped: readme.txt (not an image)" in done.stdout and "wrote" in done.stdout
    assert (tmp_path / "hits.html").exists() and index_path_for(gallery).exists()
    again = cli("search", "--run", run, "--gallery", gallery, "--query", queries, "--out", tmp_path / "hits.png",
                "--top-k", "5", "--device", "cpu", "--rerank")
    assert again.returncode == 0, again.stderr
    assert "features reused" in again.stdout and "0 computed" in again.stdout
    pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    exported = cli("export", "--run", run, "--onnx", out, "--check-images", queries)
    assert exported.returncode == 0, exported.stderr
    assert "largest difference of the L2-normalised features" in exported.stdout
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["input_size"] == [64, 32] and meta["normalized"] is True
    missing = cli("search", "--run", tmp_path / "nowhere", "--gallery", gallery, "--query", queries, "--out",
                  tmp_path / "x.png")
    assert missing.returncode == 2 and "error: run folder" in missing.stderr and "Traceback" not in missing.stderr


def test_onnx_export_matches_torch_on_the_test_split(run, tiny_root, tmp_path):
    pytest.importorskip("onnxruntime")
    from reid.export import export_onnx, onnx_features, onnx_session

    model, cfg = load_model(run)
    out = export_onnx(model, cfg, tmp_path / "model.onnx", flip=True)
    transform = test_transforms(cfg)
    paths = sorted((tiny_root / "query").iterdir()) + sorted((tiny_root / "bounding_box_test").iterdir())
    images = torch.stack([transform(load_rgb(p)) for p in paths])
    with torch.no_grad():
        ref = Embedder.of_run(model, cfg, flip=True)(images)
    got = onnx_features(onnx_session(out), images, batch_size=37)  # a batch size the export never saw
    assert (F.normalize(ref, dim=1) - F.normalize(got, dim=1)).abs().max() < 1e-4
    nq = len(list((tiny_root / "query").iterdir()))
    top_ref = pairwise_distance(ref[:nq], ref[nq:], "cosine").argsort(1)[:, :10]
    top_got = pairwise_distance(got[:nq], got[nq:], "cosine").argsort(1)[:, :10]
    assert torch.equal(top_ref, top_got)


# --------------------------------------------------------------------------------------
# The commands as a new user meets them (issue 23): every input below once gave a late failure, a traceback or a
# misleading message. The commands run in this process (`reid.__main__.main`), so that a traceback fails the test
# and indexing can be watched.
# --------------------------------------------------------------------------------------
def reid_main(capsys, *args) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `python -m reid ARGS` run in this process."""
    from reid.__main__ import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as err:  # argparse's own errors
        code = err.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def queries(tiny_root, tmp_path) -> Path:
    folder = tmp_path / "queries"
    folder.mkdir()
    for p in sorted((tiny_root / "query").iterdir())[:2]:
        shutil.copy(p, folder)
    return folder


@pytest.fixture
def no_indexing(monkeypatch):
    """Fails the test if the command starts indexing or extracting features (arguments are checked before)."""
    import reid.search

    def refuse(*args, **kwargs):
        raise AssertionError("the command started long work before it checked its arguments")

    monkeypatch.setattr(reid.search, "build_index", refuse)
    monkeypatch.setattr(reid.search, "embed_files", refuse)


def read_only(folder: Path, monkeypatch) -> Path:
    """Make `folder` read-only (the commands treat a folder nobody may write to as read-only, root included)."""
    folder.chmod(0o555)
    return folder


def test_search_writes_json_and_csv_that_a_script_can_read(run, gallery, queries, tmp_path, capsys):
    import csv

    code, out, err = reid_main(capsys, "search", "--run", run, "--gallery", gallery, "--query", queries, "--out",
                               tmp_path / "r.json", "--out", tmp_path / "r.csv", "--top-k", 5, "--device", "cpu",
                               "--num-workers", 0)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    head = doc["header"]
    assert doc["schema"] == "reid-search/2"  # 2: a hit's place is "position"; "rank" is the protocol's (match_rank)
    assert head["run"] == str(run) and head["weights_sha256"] == weights_digest(run / FINAL_WEIGHTS)
    assert head["gallery"] == str(gallery.resolve()) and head["top_k"] == 5 and head["rerank"] is None
    assert head["trained_on"] == "synthetic" and "date" in head
    assert head["gallery_images"] == len(list(gallery.iterdir()))
    assert len(doc["queries"]) == 2
    for q in doc["queries"]:
        assert q["person"] == int(Path(q["query"]).name[:4]) and q["camera"] >= 1  # as in the file name: c1 is 1
        assert [h["position"] for h in q["hits"]] == [1, 2, 3, 4, 5] and not any("rank" in h for h in q["hits"])
        assert [h["distance"] for h in q["hits"]] == sorted(h["distance"] for h in q["hits"])
        assert all(h["mark"] in ("match", "wrong", "same camera") and (gallery / h["path"]).exists() for h in q["hits"])
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("# reid search ") and json.loads(lines[0][len("# reid search "):]) == head
    rows = list(csv.DictReader(lines[1:]))
    assert len(rows) == 2 * 5 and {"query", "position", "path", "distance", "mark"} <= set(rows[0])
    assert "rank" not in rows[0] and doc["summary"]["unjudged_hits"] == 0  # every name here is a Market-1501 one
    assert [r["path"] for r in rows[:5]] == [h["path"] for h in doc["queries"][0]["hits"]]
    assert "searched 2 queries" in out and str(tmp_path / "r.json") in out and str(tmp_path / "r.csv") in out


def test_a_renamed_photo_of_the_right_person_is_said_to_be_not_judged(run, gallery, queries, tmp_path, capsys):
    """A gallery file whose name is not in the Market-1501 form cannot be judged, even when it shows the query's
    person: the summary counts such results, so that '0 in the list' is not read as 'the model found no one'."""
    first = sorted(queries.iterdir())[0]
    shutil.copy(first, gallery / "renamed.jpg")  # the query itself under another name: the nearest result
    code, out, err = reid_main(capsys, "search", "--run", run, "--gallery", gallery, "--query", first, "--out",
                               tmp_path / "r.json", "--top-k", 3, "--device", "cpu", "--num-workers", 0)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    hit = doc["queries"][0]["hits"][0]
    assert hit["path"] == "renamed.jpg" and hit["position"] == 1 and hit["mark"] is None and hit["person"] is None
    assert doc["summary"]["unjudged_hits"] >= 1 and doc["summary"]["queries_with_known_identity"] == 1
    assert "not judged" in out and "renamed" in out


@pytest.mark.parametrize("case", ["top-k 0", "top-k -3", "top-k x", "query missing", "out .pdf", "out missing folder",
                                  "out through a file", "out read-only", "gallery read-only", "gallery is a file",
                                  "gallery missing", "index is a folder", "device gpu", "device cuda:99",
                                  "device cuda", "batch-size 0", "num-workers -1", "too many for a sheet"])
def test_bad_arguments_are_refused_before_any_indexing(case, run, gallery, queries, tmp_path, capsys, monkeypatch,
                                                       no_indexing):
    if case == "device cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = {"--run": run, "--gallery": gallery, "--query": queries, "--out": tmp_path / "hits.png"}
    extra, expect = [], ""
    if case.startswith(("top-k", "batch-size", "num-workers")):
        flag, value = case.split()
        extra, expect = [f"--{flag}", value], f"--{flag}"
    elif case == "query missing":
        args["--query"], expect = tmp_path / "me.jgp", "me.jgp"
    elif case == "out .pdf":
        args["--out"], expect = tmp_path / "hits.pdf", ".json"
    elif case == "out missing folder":
        args["--out"], expect = tmp_path / "no-such-folder" / "hits.png", "no-such-folder"
    elif case == "out through a file":
        (tmp_path / "notes.txt").write_text("x")
        args["--out"], expect = tmp_path / "notes.txt" / "hits.png", "notes.txt"
    elif case == "out read-only":
        (tmp_path / "shared").mkdir()
        read_only(tmp_path / "shared", monkeypatch)
        args["--out"], expect = tmp_path / "shared" / "hits.png", "not writable"
    elif case == "gallery read-only":
        parent = tmp_path / "readonly"
        parent.mkdir()
        args["--gallery"] = Path(shutil.move(str(gallery), parent / "gallery"))
        read_only(parent, monkeypatch)
        expect = "--index"
    elif case == "gallery is a file":
        args["--gallery"], expect = sorted(gallery.iterdir())[0], "--gallery"
    elif case == "gallery missing":
        args["--gallery"], expect = tmp_path / "nowhere", "nowhere"
    elif case == "index is a folder":
        extra, expect = ["--index", tmp_path], "--index"
    elif case.startswith("device"):
        extra, expect = ["--device", case.split()[1]], "--device"
    elif case == "too many for a sheet":
        from reid.search import MAX_SHEET_QUERIES

        first = sorted(queries.iterdir())[0]
        for i in range(MAX_SHEET_QUERIES + 1):
            shutil.copy(first, queries / f"copy{i}.jpg")
        expect = ".html"
    argv = [x for k, v in args.items() for x in (k, v)] + extra
    try:
        code, out, err = reid_main(capsys, "search", *argv)
    finally:
        for folder in (tmp_path / "shared", tmp_path / "readonly"):
            if folder.exists():
                folder.chmod(0o755)
    assert code == 2, (case, out, err)
    assert expect in err, (case, err)
    assert "Traceback" not in err + out and "error" in err
    assert not index_path_for(args["--gallery"]).exists() and not (tmp_path / "hits.png").exists()


def test_run_errors_name_the_file_and_the_fix(run, gallery, queries, tmp_path, capsys, monkeypatch):
    common = ["--gallery", gallery, "--query", queries, "--out", tmp_path / "r.json", "--device", "cpu",
              "--num-workers", 0]
    bad = tmp_path / "bad-config"
    shutil.copytree(run, bad)
    (bad / CONFIG).write_text("<html>not json</html>")
    code, _, err = reid_main(capsys, "search", "--run", bad, *common)
    assert code == 2 and str(bad / CONFIG) in err and "JSON" in err and "Traceback" not in err
    code, _, err = reid_main(capsys, "search", "--run", run, "--weights", tmp_path / "none.pth", *common)
    assert code == 2 and "none.pth" in err and "--weights" in err and "..." not in err
    photo = sorted(gallery.iterdir())[0]  # a photo given as weights: said so, and no advice to delete it
    code, _, err = reid_main(capsys, "search", "--run", run, "--weights", photo, *common)
    assert code == 2 and "--weights" in err and "not a weights file" in err and "delete" not in err, err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / CONFIG, unfinished)
    code, _, err = reid_main(capsys, "search", "--run", unfinished, *common)
    assert code == 2 and "--resume" in err and "..." not in err
    assert "--name unfinished" in err and f"--output-dir {tmp_path}" in err  # resumes this folder, not the original
    shutil.copy(run / "checkpoint.pth", unfinished)  # a run stopped after a checkpoint: searched with it, and said so
    code, out, err = reid_main(capsys, "search", "--run", unfinished, *common)
    assert code == 0, err
    assert "checkpoint.pth" in out and "not finished" in out
    assert json.loads((tmp_path / "r.json").read_text())["header"]["weights"] == str(unfinished / "checkpoint.pth")
    monkeypatch.setenv("REID_RUNS", str(run.parent))  # --run also takes a run's name, under the runs folder
    code, out, err = reid_main(capsys, "search", "--run", run.name, *common)
    assert code == 0, err


def test_search_says_what_reranking_does_and_what_a_synthetic_model_can_do(run, gallery, queries, tmp_path, capsys):
    code, out, err = reid_main(capsys, "search", "--run", run, "--gallery", gallery, "--query", queries, "--out",
                               tmp_path / "r.json", "--rerank", "--device", "cpu", "--num-workers", 0)
    assert code == 0, err
    assert "depends on the other queries" in out and "another scale" in out
    assert "synthetic" in out and "Market-1501" in out  # a smoke model does not find real people: said, with the fix
    head = json.loads((tmp_path / "r.json").read_text())["header"]
    assert head["rerank"] == {"k1": 20, "k2": 6, "lambda": 0.3} and "depends on the other queries" in head["note"]


def test_the_index_keeps_features_per_model_and_settings(run, gallery):
    emb, cfg, digest = embedder_of(run, flip=True)
    plain = Embedder.of_run(emb.model, cfg, flip=False)
    first = build_index(emb, cfg, gallery, digest, progress=False)
    assert build_index(plain, cfg, gallery, digest, progress=False).reused == 0
    again = build_index(emb, cfg, gallery, digest, progress=False)  # --flip, --no-flip, --flip: nothing recomputed
    assert again.reused == len(first) and torch.equal(again.feats, first.feats)
    assert build_index(plain, cfg, gallery, digest, progress=False).reused == len(first)
    assert build_index(emb, cfg, gallery, "another model", progress=False).reused == 0
    assert build_index(emb, cfg, gallery, digest, progress=False).reused == len(first)


def test_every_file_not_indexed_is_listed_with_its_reason_symlinks_included(tmp_path, tiny_root):
    person = sorted((tiny_root / "query").iterdir())[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(person, elsewhere / "linked_folder_image.jpg")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(person, photos / "plain.jpg")
    (photos / "folder_link").symlink_to(elsewhere, target_is_directory=True)  # followed
    (photos / "file_link.jpg").symlink_to(person)  # followed
    (photos / "broken_link.jpg").symlink_to(tmp_path / "gone.jpg")
    (photos / "loop").symlink_to(photos, target_is_directory=True)  # a folder already looked into
    shutil.copy(person, photos / ".hidden.jpg")
    (photos / ".cache").mkdir()
    shutil.copy(person, photos / ".cache" / "thumb.jpg")
    images, skipped = find_images(photos)
    assert sorted(p.relative_to(photos).as_posix() for p in images) == [
        "file_link.jpg", "folder_link/linked_folder_image.jpg", "plain.jpg"]
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"broken_link.jpg", "loop", ".hidden.jpg", ".cache"}, reasons
    assert "broken symbolic link" in reasons["broken_link.jpg"] and "gone.jpg" in reasons["broken_link.jpg"]
    assert "hidden" in reasons[".hidden.jpg"] and "hidden" in reasons[".cache"] and "1 file" in reasons[".cache"]
    assert "loop" in reasons["loop"] or "already" in reasons["loop"]


def test_contact_sheet_explains_itself(run, gallery, tiny_root, tmp_path):
    from reid import search as rs

    results = search_first_queries(run, gallery, tiny_root, 2)
    header = {"run": "runs/smoke", "weights_sha256": "ab" * 32, "gallery": str(gallery), "top_k": 4, "rerank": None,
              "date": "2026-11-30T12:00:00"}
    png = write_results(results, gallery, tmp_path / "sheet.png", height=64, header=header)
    sheet = Image.open(png)
    assert json.loads(sheet.text["reid-search"])["top_k"] == 4  # the header travels inside the PNG too
    legend = np.asarray(rs.sheet_legend(sheet.width, header, height=64))
    assert np.array_equal(np.asarray(sheet.convert("RGB"))[:len(legend)], legend)  # drawn above the first row
    for colour in (rs.QUERY_COLOUR, *(rs.COLOURS[k] for k in ("match", "wrong", "same camera"))):
        assert (np.abs(legend.astype(int) - colour).sum(-1) == 0).sum() > 20, colour  # a swatch of each frame
    font = rs.sheet_font(12)
    long_name = "1001_c1s1_001234_01.jpg"
    lines = rs.label_lines(long_name, font, 100)
    assert "".join(lines) == long_name and all(font.getlength(line) <= 100 for line in lines)  # full, wrapped
    cut = rs.label_lines("a" * 60 + "_end.jpg", font, 90, max_lines=2)
    assert len(cut) == 2 and cut[0].startswith("a") and cut[-1].endswith("_end.jpg") and "…" in "".join(cut)
    def glyph(text):
        im = Image.new("L", (40, 40))
        ImageDraw.Draw(im).text((5, 5), text, font=font, fill=255)
        return np.asarray(im)

    missing = glyph("\U000f0000")  # a private-use code point: no font has it, so this is the .notdef box
    for text in ("é", "ж", "ø", "ß"):
        assert not np.array_equal(glyph(text), missing), text
    with pytest.raises(ValueError, match=r"\.html"):
        rs.contact_sheet(results * (rs.MAX_SHEET_QUERIES // 2 + 1), gallery, height=32)
    # each result's label: a sign that says what the frame's colour says (for colour-blind readers), then
    # "#position" (not a rank of the protocol) and the distance; the signs are in the font
    for r in results:
        for h in r.hits:
            label = rs.hit_label(r, h)
            assert label.startswith(rs.MARKS[r.status(h)]) and f"#{h.position} {h.distance:.3f}" in label
    assert rs._drawable("".join(rs.MARKS.values()), font) == "".join(rs.MARKS.values())
    assert all(rs.MARKS[k] in text for k, (_, text) in zip(("match", "wrong", "same camera"), rs.MEANINGS[1:4]))
    # fewer results per row: a narrower sheet, whose header says how many of each list it shows
    full = rs.contact_sheet(results, gallery, height=64, header=header)
    narrow = rs.contact_sheet(results, gallery, height=64, header=header, max_hits=2)
    assert narrow.width < full.width
    assert "top 4 per query (the first 2 shown)" in "\n".join(rs._header_lines({**header, "shown": 2}))
    assert "shown" not in header  # the caller's header is left as it was
    page = write_results(results, gallery, tmp_path / "hits.html", header=header).read_text()
    assert "blue" in page and "query" in page and "lower" in page and "runs/smoke" in page and "top_k" in page
    assert "#1 " in page and "position" in page and "rank:" not in page


def test_export_checks_its_arguments_first_and_writes_only_a_checked_model(run, tmp_path, tiny_root, capsys):
    pytest.importorskip("onnxruntime")
    images = tmp_path / "check"
    images.mkdir()
    for p in sorted((tiny_root / "query").iterdir())[:3]:
        shutil.copy(p, images)
    Image.open(p).resize((5, 5)).save(images / "tiny.png")  # search skips it; so does the check
    (images / "notes.txt").write_text("x")
    (tmp_path / "folder.onnx").mkdir()
    for onnx, expect in [(tmp_path / "folder.onnx", "folder"), (tmp_path / "model.txt", ".onnx"),
                         (tmp_path / "missing" / "m.onnx", "missing")]:
        code, out, err = reid_main(capsys, "export", "--run", run, "--onnx", onnx)
        assert code == 2 and expect in err and "Traceback" not in err, (onnx, err)
    out_path = tmp_path / "m.onnx"
    for bad in (["--check-images", tmp_path / "nowhere"], ["--check-count", "0"]):
        code, out, err = reid_main(capsys, "export", "--run", run, "--onnx", out_path, *bad)
        assert code == 2 and "Traceback" not in err and bad[0] in err, err
        assert not [p for p in tmp_path.iterdir() if p.is_file() and ".onnx" in p.name], "nothing written"
    code, out, err = reid_main(capsys, "export", "--run", run, "--onnx", out_path, "--check-images", images,
                               "--check-count", 2)
    assert code == 0, err
    assert "compared 2 images" in out and "--check-count all" in out
    code, out, err = reid_main(capsys, "export", "--run", run, "--onnx", out_path, "--check-images", images,
                               "--check-count", "all")
    assert code == 0, err
    assert "compared 3 images" in out and "tiny.png" in out and "notes.txt" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["m.onnx", "m.onnx.json"]


def embed_from_json(meta: dict, session, path: Path) -> np.ndarray:
    """The exported model's feature of an image file, by the preprocessing its JSON file describes and nothing else
    (PIL and NumPy; no reid, no torch): what another runtime would write."""
    from PIL import ImageOps

    pre = meta["preprocessing"]
    im = Image.open(path)
    im.load()
    if pre["exif_orientation"]:
        im = ImageOps.exif_transpose(im)
    if im.mode in pre["scale_to_8_bits_modes"]:
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray((a / max(float(a.max()), 1e-12) * 255.0).round().astype(np.uint8))
    if im.mode in pre["transparent_modes"] or im.mode == "P" and "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (*pre["transparency_fill"], 255)), rgba)
    im = im.convert("RGB")
    h, w = pre["resize"]["size"]
    assert pre["resize"]["interpolation"] == "bilinear" and pre["resize"]["antialias"]
    im = im.resize((w, h), Image.Resampling.BILINEAR)
    x = np.asarray(im, dtype=np.float32) * np.float32(pre["scale"])
    x = (x - np.array(pre["mean"], dtype=np.float32)) / np.array(pre["std"], dtype=np.float32)
    return session.run(None, {meta["input"]: x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]


def test_the_onnx_json_alone_reproduces_the_package_features(run, tmp_path, tiny_root):
    pytest.importorskip("onnxruntime")
    from reid.export import export_onnx, onnx_session

    model, cfg = load_model(run)
    out = export_onnx(model, cfg, tmp_path / "model.onnx", flip=True, run=run, weights=run / FINAL_WEIGHTS)
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["run"] == str(run) and meta["weights_sha256"] == weights_digest(run / FINAL_WEIGHTS)
    person = sorted((tiny_root / "query").iterdir())[0]
    write_odd_images(tmp_path / "odd", person)
    session = onnx_session(out)
    emb = Embedder.of_run(model, cfg, flip=True)
    transform = test_transforms(cfg)
    for name in ("transparent.png", "grey.png", "phone.jpg", "sixteen_bit.png", "palette.gif", "cmyk.jpg"):
        with torch.no_grad():
            ref = F.normalize(emb(transform(load_rgb(tmp_path / "odd" / name))[None]), dim=1)[0].numpy()
        got = embed_from_json(meta, session, tmp_path / "odd" / name)
        got = got / np.linalg.norm(got)
        assert np.abs(ref - got).max() < 1e-4, name


@pytest.mark.parametrize("case", ["out is a query", "index is a query", "sheet inside the gallery", "index not an index"])
def test_search_refuses_to_write_over_what_it_reads(case, run, gallery, queries, tmp_path, capsys, no_indexing):
    """A new user's slips (the trial of NEW_USER_TRIAL.md): an --out or --index that names a query photo, a contact
    sheet written into the gallery (the next search would index it as a person), an --index over a file that is not
    an index. Each is refused before any work, and the file is left as it was."""
    query = sorted(queries.iterdir())[0]
    before = {p: p.read_bytes() for p in (*queries.iterdir(), *gallery.iterdir()) if p.is_file()}
    args = ["search", "--run", run, "--gallery", gallery, "--query", queries, "--out", tmp_path / "hits.json"]
    if case == "out is a query":
        args[-1], expect = query, "is one of the query images"
    elif case == "index is a query":
        args += ["--index", query]
        expect = "is one of the query images"
    elif case == "sheet inside the gallery":
        args[-1], expect = gallery / "sheet.png", "inside the gallery"
    else:
        precious = tmp_path / "precious.json"
        precious.write_text('{"mine": 1}')
        before[precious] = precious.read_bytes()
        args += ["--index", precious]
        expect = "is not a reid index"
    code, _, err = reid_main(capsys, *args)
    assert code == 2 and expect in err and "Traceback" not in err, err
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing overwritten


def test_topk_torch_keeps_its_running_lists_on_the_features_device():
    """A GPU's search must not mix in CPU buffers (it did: the running top-k started as CPU tensors). The meta device
    stands in for a GPU here: any tensor made on the CPU meets the features in torch.cat and fails."""
    q, g = torch.randn(3, 8, device="meta"), torch.randn(50, 8, device="meta")
    dists, idx = topk_torch(q, g, 5, chunk_size=16)
    assert dists.device == q.device and idx.device == q.device and tuple(idx.shape) == (3, 5)
