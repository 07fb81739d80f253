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
from PIL import Image

from reid import Config
from reid.data.transforms import test_transforms
from reid.engine import CONFIG, FINAL_WEIGHTS, CheckpointError, load_model, train
from reid.evaluation import pairwise_distance
from reid.model import Baseline
from reid.search import (BadImageError, Embedder, build_index, embed_files, find_images, html_page, index_path_for,
                         load_rgb, market_labels, search, topk_faiss, topk_torch, weights_digest, write_results)

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
    (folder / ".hidden.jpg").write_bytes(person.read_bytes())  # hidden: not looked at
    return {"grey.png": "ok", "transparent.png": "ok", "cmyk.jpg": "ok", "sixteen_bit.png": "ok",
            "palette.gif": "ok", "phone.jpg": "ok", "sub/nested.jpg": "ok", "notes.txt": "not an image",
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
    with pytest.raises(FileNotFoundError, match="no weights at .*model.pth: the run .* has not finished"):
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
    emb, cfg, digest = embedder_of(run)
    index = build_index(emb, cfg, gallery, digest, progress=False)
    queries = sorted((tiny_root / "query").iterdir())[:3]
    feats, _, _ = embed_files(emb, queries, cfg, progress=False)
    results = search(index, feats, queries, cfg.distance, top_k=4)
    png = write_results(results, gallery, tmp_path / "sheet.png", height=64)
    sheet = Image.open(png)
    assert sheet.width > 5 * 32 and sheet.height > 3 * 64
    page = write_results(results, gallery, tmp_path / "hits.html").read_text()
    assert page.count("<img") == 3 * 5 and all(h.path in page for r in results for h in r.hits)
    assert "<script" not in html_page(results, gallery) and "&lt;" not in page
    with pytest.raises(ValueError, match="write a .png .* or an .html"):
        write_results(results, gallery, tmp_path / "hits.pdf")


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reid", *map(str, args)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


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
