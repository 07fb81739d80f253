"""Find a person in a folder of images with a trained run: index, query, contact sheet.

    python -m reid search --run runs/smoke --gallery photos/ --query me.jpg --out hits.png

1. `find_images` lists every file under the gallery folder (any names, any depth) and opens
   each lazily; files that are not images, are corrupt or too small are *skipped and
   named*, never a crash half-way through an index.
2. `Embedder` (`reid.evaluation`) wraps the model the way the run is tested (flipped features added, L2
   normalised when the run's `feat_norm` is set); the same module is exported to ONNX
   (`reid.export`), so the index and the exported model agree.
3. `build_index` extracts every gallery feature in batches on the best device, with a
   progress bar, and saves them next to the gallery (`<gallery>.reid-index.pt`) with the
   file list (size and modification time of each), the model's digest and the settings.
   The next call reuses every feature whose file, model and settings are unchanged.
4. `search` ranks the gallery for each query: exact top-k in gallery chunks with torch, or
   with faiss (an optional extra) for large galleries; optionally k-reciprocal re-ranking.
5. `contact_sheet` (PNG) and `html_page` draw each query beside its top-k; where the file
   names follow the Market-1501 grammar the person and camera are known, so true matches
   are framed green, false ones red and the query's own camera grey.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .config import Config
from .data.market1501 import NAME_RE
from .data.transforms import test_transforms
from .evaluation import Embedder, autocast_dtype, pairwise_distance
from .utils import atomic_write, memory_format

INDEX_VERSION = 1
MIN_SIDE = 8  # pixels: a smaller "image" cannot show a person
INDEX_SUFFIX = ".reid-index.pt"
# When backend="auto" uses faiss (if installed), from benchmarks/search_latency.py on the 2-core CPU
# (benchmarks/records/search_latency_2core_cpu.txt, 2048-d): in batches faiss's flat index saved 18-31 % of
# torch's time per query (0.33 -> 0.27 ms at 10k, 3.7 -> 2.6 ms at 100k, 38 -> 26 ms at 1M), one query alone
# took the same, and building the index (a copy of the features) took 0.8 s at 100k and 22 s at 1M. It pays
# from about 800 queries at 100k (1,800 at 1M) on one build, or at once when the index is already built.
FAISS_FROM = 100_000  # gallery images
FAISS_MIN_QUERIES = 2_000  # queries in one call, when the faiss index is not built yet


class BadImageError(ValueError):
    """A file that cannot be used as a person image; the message says why."""


@dataclass(frozen=True)
class Skipped:
    path: str  # relative to the folder that was scanned
    reason: str


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------
def load_rgb(path: str | os.PathLike) -> Image.Image:
    """The image at `path` as an 8-bit RGB PIL image, upright (EXIF orientation applied).

    Greyscale, palette, 16-bit, CMYK and transparent images are converted (transparency
    over mid-grey, the colour a normalised network sees as "nothing"). Raises
    `BadImageError` naming the file and the reason for anything that is not a usable image:
    not an image, truncated or corrupt, or smaller than MIN_SIDE pixels a side.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(f"{path}: not an image PIL can read ({type(err).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise BadImageError(f"{path}: corrupt or truncated image ({err})") from None
    if min(rgb.size) < MIN_SIDE:
        raise BadImageError(f"{path}: {rgb.size[0]}x{rgb.size[1]} pixels, too small for a person "
                            f"(at least {MIN_SIDE} a side)")
    return rgb


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greyscale: scale to 8 bits
        a = np.asarray(im, dtype=np.float64)
        a = a / max(float(a.max()), 1e-12) * 255.0
        return Image.fromarray(a.round().astype(np.uint8)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (124, 116, 104, 255))  # ImageNet's mean colour
        return Image.alpha_composite(back, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGB


def find_images(folder: str | os.PathLike, what: str = "the gallery") -> tuple[list[Path], list[Skipped]]:
    """Every image file under `folder` (sorted, any depth, hidden files and folders left out), or `folder` itself
    when it is a file, and the files skipped with the reason. Only headers are read here; `load_rgb` decodes."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist: {what} must be a folder of person images or an image")
    files = [folder] if folder.is_file() else sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    base = folder.parent if folder.is_file() else folder
    images, skipped = [], []
    for path in files:
        if path.name.endswith(INDEX_SUFFIX):
            continue
        try:
            with Image.open(path) as im:  # reads the header only; decoding errors surface in load_rgb
                im.size
        except Exception as err:  # noqa: BLE001 - any failure to read a header means "not an image"
            kind = "not an image" if isinstance(err, UnidentifiedImageError) else f"corrupt or truncated image ({err})"
            skipped.append(Skipped(path.relative_to(base).as_posix(), kind))
            continue
        images.append(path)
    if not images:
        listed = ", ".join(s.path for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        raise ValueError(f"no images in {folder}" + (f" ({len(skipped)} other files: {listed})" if skipped else "")
                         + f": {what} must be a folder of person crops (JPEG, PNG, ...) or an image")
    return images, skipped


def market_labels(path: str | os.PathLike) -> tuple[int, int]:
    """(person id, 0-based camera) from a Market-1501 file name, (-1, -1) for any other name."""
    m = NAME_RE.match(Path(path).name)
    if m is None or int(m.group(2)) < 1:
        return -1, -1
    return int(m.group(1)), int(m.group(2)) - 1


class _Images(torch.utils.data.Dataset):
    """Decoded, transformed images; a file that fails to decode gives None and its reason (not an exception)."""

    def __init__(self, paths: list[Path], cfg: Config):
        self.paths, self.transform = paths, test_transforms(cfg)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return self.transform(load_rgb(self.paths[i])), i, ""
        except BadImageError as err:
            return None, i, str(err)


def _collate(items):
    good = [(x, i) for x, i, _ in items if x is not None]
    bad = [(i, reason) for x, i, reason in items if x is None]
    images = torch.stack([x for x, _ in good]) if good else None
    return images, [i for _, i in good], bad


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------
def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file (the index is rebuilt when the model changes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.inference_mode()
def embed_files(embedder: Embedder, paths: list[Path], cfg: Config, device: torch.device | str = "cpu",
                batch_size: int = 128, num_workers: int = 0, progress: bool = True, desc: str = "features"):
    """Features (n, d) of the files that decode, their positions in `paths`, and the skipped files with reasons."""
    device = torch.device(device)
    embedder.to(device)
    loader = torch.utils.data.DataLoader(_Images(paths, cfg), batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=_collate, pin_memory=device.type == "cuda")
    fmt = memory_format(cfg.channels_last, device)
    dtype = autocast_dtype(device, cfg.eval_amp)
    feats, kept, bad = [], [], []
    for images, idx, failed in tqdm(iter(loader), total=len(loader), desc=desc, leave=False, disable=not progress):
        bad += failed
        if images is None:
            continue
        images = images.to(device, non_blocking=True, memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            feats.append(embedder(images).float().cpu())
        kept += idx
    dim = feats[0].shape[1] if feats else 0
    return (torch.cat(feats) if feats else torch.empty(0, dim)), kept, bad


# --------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------
def index_path_for(gallery: str | os.PathLike) -> Path:
    """Where the index of a gallery folder is kept: beside it, `<folder>.reid-index.pt`."""
    gallery = Path(gallery).resolve()
    return gallery.with_name(gallery.name + INDEX_SUFFIX)


def index_settings(cfg: Config, flip: bool) -> dict:
    """What the features depend on besides the weights and the files."""
    return {"version": INDEX_VERSION, "backbone": cfg.backbone, "input_size": list(cfg.input_size),
            "pixel_mean": list(cfg.pixel_mean), "pixel_std": list(cfg.pixel_std), "neck_feat": cfg.neck_feat,
            "flip": flip, "normalize": cfg.feat_norm}


@dataclass
class GalleryIndex:
    """The features of a gallery folder and what they were computed from."""

    root: Path
    paths: list[str]  # relative to root, POSIX separators
    feats: torch.Tensor  # (N, d) float32, as `Embedder` gives them
    stamps: list[tuple[int, int]]  # (size in bytes, modification time in ns) of each file
    model_digest: str
    settings: dict
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0  # features taken from the previous index file on this build
    pids: np.ndarray = field(init=False)
    camids: np.ndarray = field(init=False)
    faiss_indexes: dict = field(init=False, default_factory=dict, repr=False)  # metric -> faiss index, built on use

    def __post_init__(self):
        labels = np.array([market_labels(p) for p in self.paths], dtype=np.int64).reshape(-1, 2)
        self.pids, self.camids = labels[:, 0], labels[:, 1]

    def __len__(self) -> int:
        return len(self.paths)

    def faiss(self, metric: str):
        """A faiss index of the features for `metric`, built on first use and kept."""
        if metric not in self.faiss_indexes:
            self.faiss_indexes[metric] = faiss_index(self.feats, metric, bool(self.settings.get("normalize")))
        return self.faiss_indexes[metric]

    def save(self, path: str | os.PathLike) -> None:
        state = {"paths": self.paths, "feats": self.feats, "stamps": torch.tensor(self.stamps, dtype=torch.int64),
                 "model_digest": self.model_digest, "settings": self.settings,
                 "skipped": [[s.path, s.reason] for s in self.skipped]}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike, root: str | os.PathLike) -> "GalleryIndex":
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(Path(root), list(state["paths"]), state["feats"], [tuple(s) for s in state["stamps"].tolist()],
                   state["model_digest"], state["settings"], [Skipped(*s) for s in state["skipped"]])

    def summary(self) -> str:
        text = (f"{len(self)} images indexed in {self.root} ({self.reused} features reused, "
                f"{len(self) - self.reused} computed)")
        if self.skipped:
            text += f"; {len(self.skipped)} skipped: " + "; ".join(f"{s.path} ({s.reason})" for s in self.skipped[:10])
            text += " ..." if len(self.skipped) > 10 else ""
        return text


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def build_index(embedder: Embedder, cfg: Config, gallery: str | os.PathLike, model_digest: str,
                index_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                batch_size: int = 128, num_workers: int = 0, progress: bool = True) -> GalleryIndex:
    """Index every image under `gallery` (see the module's text), reusing the saved index where it still holds.

    A saved feature is reused when the file's size and modification time, the model's digest
    and the settings are all unchanged; new and changed files are computed; removed files
    drop out. The index is written atomically to `index_path` (default `index_path_for`).
    """
    root = Path(gallery)
    index_path = Path(index_path) if index_path else index_path_for(root)
    images, skipped = find_images(root)
    rel = [p.relative_to(root).as_posix() for p in images]
    stamps = [_stamp(p) for p in images]
    settings = index_settings(cfg, embedder.flip)
    old, old_feats = {}, None  # (path, stamp) -> row of the previous index's features, when they still hold
    if index_path.exists():
        try:
            prev = GalleryIndex.load(index_path, root)
        except Exception as err:  # noqa: BLE001 - a damaged index is rebuilt, not fatal
            warnings.warn(f"{index_path} cannot be read ({type(err).__name__}); rebuilding it", stacklevel=2)
        else:
            if prev.model_digest == model_digest and prev.settings == settings:
                old = {(p, s): i for i, (p, s) in enumerate(zip(prev.paths, prev.stamps))}
                old_feats = prev.feats
    reuse = [old.get((p, s)) for p, s in zip(rel, stamps)]
    todo = [i for i, r in enumerate(reuse) if r is None]
    new_feats, kept, bad = embed_files(embedder, [images[i] for i in todo], cfg, device, batch_size, num_workers,
                                       progress, desc="indexing")
    skipped += [Skipped(rel[todo[i]], reason.split(": ", 1)[-1]) for i, reason in bad]
    computed = {todo[k]: new_feats[j] for j, k in enumerate(kept)}
    keep = [i for i in range(len(images)) if reuse[i] is not None or i in computed]
    if not keep:
        raise ValueError(f"no image in {root} could be decoded: " + "; ".join(f"{s.path} ({s.reason})"
                                                                              for s in skipped[:5]))
    feats = torch.stack([old_feats[reuse[i]] if reuse[i] is not None else computed[i] for i in keep])
    index = GalleryIndex(root, [rel[i] for i in keep], feats, [stamps[i] for i in keep], model_digest, settings,
                         sorted(skipped, key=lambda s: s.path), reused=sum(r is not None for r in reuse))
    index.save(index_path)
    return index


# --------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------
@torch.no_grad()
def topk_torch(query: torch.Tensor, gallery: torch.Tensor, k: int, metric: str = "cosine",
               chunk_size: int = 65536, normalized: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact k nearest gallery features of each query: (distances, indices), each (nq, k), nearest first.

    The gallery is scanned in chunks of `chunk_size` rows (memory: nq x chunk_size), and
    each chunk's top-k is merged into the running one. `metric` as in
    `reid.evaluation.pairwise_distance`: "cosine" (1 - cos) or "euclidean" (squared).
    `normalized=True` says both are L2-normalised already (an index of `Embedder`
    features), which saves normalising the gallery on every call.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric={metric!r} is unknown; choose 'cosine' or 'euclidean'")
    k = min(k, len(gallery))
    q = query.float()
    if metric == "cosine" and not normalized:
        q = F.normalize(q, dim=1)
    best_d = torch.empty(len(q), 0)
    best_i = torch.empty(len(q), 0, dtype=torch.long)
    for start in range(0, len(gallery), chunk_size):
        g = gallery[start:start + chunk_size].float()
        if metric == "cosine" and not normalized:
            g = F.normalize(g, dim=1)
        d = 1.0 - q @ g.T if metric == "cosine" else pairwise_distance(q, g, "euclidean")  # q, g normalised for cosine
        top = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
        cand_d = torch.cat([best_d, top.values], 1)
        cand_i = torch.cat([best_i, top.indices + start], 1)
        order = torch.topk(cand_d, min(k, cand_d.shape[1]), dim=1, largest=False, sorted=True).indices
        best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
    return best_d, best_i


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_index(gallery: torch.Tensor, metric: str = "cosine", normalized: bool = False):
    """faiss's exact flat index (CPU) of the gallery: inner product of normalised features for cosine, L2 for
    euclidean. Building it copies the features once; each search then scans them with BLAS."""
    try:
        import faiss
    except ImportError:
        raise ImportError("faiss is not installed: pip install faiss-cpu (or \"reid[search]\"), or use the "
                          "torch backend") from None
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric={metric!r} is unknown; choose 'cosine' or 'euclidean'")
    g = gallery.float()
    if metric == "cosine" and not normalized:
        g = F.normalize(g, dim=1)
    index = faiss.IndexFlatIP(g.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(g.shape[1])
    index.add(g.contiguous().numpy())
    return index


def topk_faiss(query: torch.Tensor, gallery, k: int, metric: str = "cosine", normalized: bool = False):
    """As `topk_torch`, with faiss; `gallery` is the features or an index from `faiss_index` (built once, reused)."""
    index = gallery if not isinstance(gallery, torch.Tensor) else faiss_index(gallery, metric, normalized)
    q = query.float()
    if metric == "cosine" and not normalized:
        q = F.normalize(q, dim=1)
    d, i = index.search(q.contiguous().numpy(), min(k, index.ntotal))
    d = torch.from_numpy(d)
    return (1.0 - d if metric == "cosine" else d.clamp(min=0.0)), torch.from_numpy(i).long()


@dataclass
class Hit:
    rank: int
    path: str
    distance: float
    pid: int
    camid: int


@dataclass
class QueryResult:
    path: Path
    pid: int
    camid: int
    hits: list[Hit]

    def status(self, hit: Hit) -> str:
        """"match", "wrong", "same camera" (the query's person in its own camera) or "" (identities unknown)."""
        if self.pid < 0 or hit.pid < 0:
            return ""
        if hit.pid != self.pid:
            return "wrong"
        return "same camera" if hit.camid == self.camid else "match"


def search(index: GalleryIndex, query_feats: torch.Tensor, query_paths: list[Path], metric: str = "cosine",
           top_k: int = 10, rerank: tuple[int, int, float] | None = None, backend: str = "auto") -> list[QueryResult]:
    """Each query's top-k in the index. `rerank=(k1, k2, lambda)` re-ranks with k-reciprocal neighbours over the
    queries and the whole gallery (k1 is lowered to fit a small gallery); `backend` is "torch", "faiss" or "auto"
    (faiss when it is installed and pays for its build: FAISS_FROM, FAISS_MIN_QUERIES)."""
    if top_k < 1:
        raise ValueError(f"top_k={top_k}: ask for at least one result")
    if rerank is not None:
        from .reranking import re_ranking_topk
        n = len(query_feats) + len(index)
        if len(index) > 100_000:
            raise ValueError(f"re-ranking compares neighbourhoods of all {n} images; above 100,000 gallery images "
                             "search without --rerank")
        k1, k2, lam = rerank
        k1 = min(k1, n - 1)
        q = F.normalize(query_feats, dim=1) if index.settings.get("normalize") else query_feats
        dists, idx = re_ranking_topk(q, index.feats, top_k, k1, min(k2, n), lam)
    else:
        if backend == "auto":
            built = metric in index.faiss_indexes
            worth = len(index) >= FAISS_FROM and (built or len(query_feats) >= FAISS_MIN_QUERIES)
            backend = "faiss" if worth and faiss_available() else "torch"
        if backend not in ("torch", "faiss"):
            raise ValueError(f"backend={backend!r} is unknown; choose 'torch', 'faiss' or 'auto'")
        normalized = bool(index.settings.get("normalize"))
        if backend == "faiss":
            dists, idx = topk_faiss(query_feats, index.faiss(metric), top_k, metric, normalized)
        else:
            dists, idx = topk_torch(query_feats, index.feats, top_k, metric, normalized=normalized)
    results = []
    for qi, path in enumerate(query_paths):
        pid, camid = market_labels(path)
        hits = [Hit(r + 1, index.paths[j], float(d), int(index.pids[j]), int(index.camids[j]))
                for r, (d, j) in enumerate(zip(dists[qi].tolist(), idx[qi].tolist()))]
        results.append(QueryResult(Path(path), pid, camid, hits))
    return results


# --------------------------------------------------------------------------------------
# Pictures of the results
# --------------------------------------------------------------------------------------
COLOURS = {"match": (40, 160, 60), "wrong": (210, 50, 40), "same camera": (150, 150, 150), "": (255, 255, 255)}


def _thumb(path: Path, height: int) -> Image.Image:
    try:
        im = load_rgb(path)
    except BadImageError:
        im = Image.new("RGB", (height // 2, height), (200, 200, 200))
    w = max(1, round(im.width * height / im.height))
    return im.resize((min(w, height), height), Image.Resampling.BILINEAR)


def contact_sheet(results: list[QueryResult], root: str | os.PathLike, height: int = 128,
                  border: int = 4) -> Image.Image:
    """One row per query: the query, then its hits with rank and distance; frames coloured by `QueryResult.status`."""
    root = Path(root)
    font = ImageFont.load_default(size=max(10, height // 10))
    cell_w, label_h = height // 2 + 2 * border + 8, max(14, height // 7)
    cols = 1 + max(len(r.hits) for r in results)
    sheet = Image.new("RGB", (cols * (cell_w + 10) + 20, len(results) * (height + 2 * border + 2 * label_h + 8) + 8),
                      "white")
    draw = ImageDraw.Draw(sheet)
    y = 8
    for r in results:
        cells = [(r.path, "query", (0, 90, 200), r.path.name)]
        cells += [(root / h.path, f"{h.rank}: {h.distance:.3f}", COLOURS[r.status(h)], Path(h.path).name)
                  for h in r.hits]
        for c, (path, label, colour, name) in enumerate(cells):
            x = 8 + c * (cell_w + 10) + (10 if c else 0)
            thumb = _thumb(path, height)
            draw.rectangle([x, y, x + thumb.width + 2 * border - 1, y + height + 2 * border - 1], fill=colour)
            sheet.paste(thumb, (x + border, y + border))
            draw.text((x, y + height + 2 * border + 1), label, fill="black", font=font)
            draw.text((x, y + height + 2 * border + label_h), name[:12], fill=(90, 90, 90), font=font)
        y += height + 2 * border + 2 * label_h + 8
    return sheet


def _data_uri(path: Path, height: int) -> str:
    buf = io.BytesIO()
    _thumb(path, height).save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def html_page(results: list[QueryResult], root: str | os.PathLike, height: int = 128, title: str = "reid search") -> str:
    """A self-contained HTML page (thumbnails embedded) of the same rows as `contact_sheet`."""
    root = Path(root)
    rows = []
    for r in results:
        cells = [f'<figure style="border-color:rgb(0,90,200)"><img src="{_data_uri(r.path, height)}" alt="query">'
                 f"<figcaption>query<br>{html.escape(r.path.name)}</figcaption></figure>"]
        for h in r.hits:
            colour = "rgb({},{},{})".format(*COLOURS[r.status(h)])
            status = r.status(h)
            cells.append(f'<figure style="border-color:{colour}" title="{html.escape(status)}">'
                         f'<img src="{_data_uri(root / h.path, height)}" alt="rank {h.rank}">'
                         f"<figcaption>{h.rank}: {h.distance:.3f}<br>{html.escape(h.path)}</figcaption></figure>")
        rows.append('<div class="row">' + "".join(cells) + "</div>")
    style = ("body{font-family:sans-serif} .row{display:flex;gap:6px;margin:8px 0} figure{margin:0;border:4px solid;"
             "text-align:center;font-size:11px;max-width:120px;overflow-wrap:anywhere} figure:first-child{margin-right:14px}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            "<p>Frames: green the same person in another camera, red another person, grey the query's person in "
            "its own camera, white unknown (Market-1501 junk images, or names not in its grammar).</p>"
            + "".join(rows) + "</body></html>")


def write_results(results: list[QueryResult], root: str | os.PathLike, out: str | os.PathLike,
                  height: int = 128) -> Path:
    """Write `results` as a contact sheet (.png, .jpg) or an HTML page (.html), atomically; returns the path."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        sheet = contact_sheet(results, root, height)
        atomic_write(out, lambda tmp: sheet.save(tmp, "PNG" if suffix == ".png" else "JPEG"))
    elif suffix in (".html", ".htm"):
        page = html_page(results, root, height)
        atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    else:
        raise ValueError(f"--out {out}: write a .png (contact sheet) or an .html page")
    return out
