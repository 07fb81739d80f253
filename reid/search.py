"""Find a person in a folder of images with a trained run: index, query, results a person or a script can read.

    python -m reid search --run smoke --gallery photos/ --query me.jpg --out hits.html --out hits.json

1. `find_images` lists every file under the gallery folder (any names, any depth, symbolic
   links to files and folders followed) and opens each lazily. Every file that is not
   indexed is *named with its reason*: not an image, corrupt, too small, hidden (a name
   starting with "."), a broken link, a folder already looked into; never a crash half-way
   through an index.
2. `Embedder` (`reid.evaluation`) wraps the model the way the run is tested (flipped features added, L2
   normalised when the run's `feat_norm` is set); the same module is exported to ONNX
   (`reid.export`), so the index and the exported model agree.
3. `build_index` extracts every gallery feature in batches on the best device, with a
   progress bar, and saves them next to the gallery (`<gallery>.reid-index.pt`) with the
   file list (size and modification time of each), the model's digest and the settings.
   The next call reuses every feature whose file, model and settings are unchanged. The
   file keeps the features of the last INDEX_VARIANTS models or settings used on the
   gallery, so switching back (`--flip`, `--no-flip`, `--flip`) computes nothing again.
4. `search` ranks the gallery for each query: exact top-k in gallery chunks with torch, or
   with faiss (an optional extra) for large galleries; optionally k-reciprocal re-ranking,
   which makes each query's list depend on the other queries of the same call.
5. `write_results` writes the lists as JSON or CSV (`results_document`: the schema is
   documented there), a contact sheet (PNG or JPEG, with a legend) or an HTML page; each
   carries a header saying which run, weights, gallery and settings made it, and when.
   Where the file names follow the Market-1501 grammar the person and camera are known, so
   true matches are framed green, false ones red and the query's own camera grey.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import html
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo
from tqdm.auto import tqdm

from .config import Config
from .data.market1501 import NAME_RE
from .data.transforms import test_transforms
from .evaluation import Embedder, autocast_dtype, pairwise_distance
from .utils import atomic_write, memory_format

INDEX_VERSION = 2  # 2: one file holds several variants (model, settings); 1: a single variant, still read
INDEX_VARIANTS = 3  # variants (model digest, settings) an index file keeps, the most recently used first
MIN_SIDE = 8  # pixels: a smaller "image" cannot show a person
INDEX_SUFFIX = ".reid-index.pt"
# When backend="auto" uses faiss (if installed), from benchmarks/search_latency.py on the 2-core CPU
# (benchmarks/records/search_latency_2core_cpu.txt, 2048-d): in batches faiss's flat index saved 18-31 % of
# torch's time per query (0.33 -> 0.27 ms at 10k, 3.7 -> 2.6 ms at 100k, 38 -> 26 ms at 1M), one query alone
# took the same, and building the index (a copy of the features) took 0.8 s at 100k and 22 s at 1M. It pays
# from about 800 queries at 100k (1,800 at 1M) on one build, or at once when the index is already built.
FAISS_FROM = 100_000  # gallery images
FAISS_MIN_QUERIES = 2_000  # queries in one call, when the faiss index is not built yet
# How `load_rgb` turns any image into 8-bit RGB (`preprocessing` writes the same down for other runtimes)
SCALE_TO_8_BITS_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # 16-bit or float greyscale: divided by its maximum
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "La", "RGBa")  # and "P" with a transparency entry: composited over...
TRANSPARENCY_FILL = (124, 116, 104)  # ...ImageNet's mean colour, which a normalised network sees as "nothing"
RESULT_SUFFIXES = {".json": "JSON", ".csv": "CSV", ".html": "HTML page", ".htm": "HTML page",
                   ".png": "contact sheet", ".jpg": "contact sheet", ".jpeg": "contact sheet"}
SCHEMA = "reid-search/2"  # 2: a hit's place in its list is "position" (1 called it "rank")


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
    if im.mode in SCALE_TO_8_BITS_MODES:  # 16-bit or float greyscale: scale to 8 bits
        a = np.asarray(im, dtype=np.float64)
        a = a / max(float(a.max()), 1e-12) * 255.0
        im = Image.fromarray(a.round().astype(np.uint8))
    if im.mode == "P" and "transparency" in im.info or im.mode in TRANSPARENT_MODES:
        rgba = im.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (*TRANSPARENCY_FILL, 255))
        return Image.alpha_composite(back, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGB


def preprocessing(cfg: Config) -> dict:
    """Every step from an image file to the network's input, as data: what `load_rgb` and `test_transforms` do,
    written into the ONNX export's JSON file so that another runtime reproduces the package's features."""
    h, w = cfg.input_size
    return {
        "steps": [
            "open the file with PIL (Pillow) and decode it",
            "exif_orientation: turn the image upright by its EXIF orientation tag (PIL.ImageOps.exif_transpose)",
            "scale_to_8_bits_modes: 16-bit or float greyscale -> divide by the image's maximum, times 255, "
            "round to 8-bit greyscale",
            "transparent_modes (and mode P with a 'transparency' entry): convert to RGBA and alpha-composite over "
            "an opaque image of transparency_fill (RGB)",
            "any other mode (L, 1, P, CMYK, YCbCr, ...): PIL's convert('RGB')",
            f"refuse images smaller than {MIN_SIDE} pixels a side",
            "resize: to size (height, width) with PIL's Image.resize((width, height), BILINEAR), which antialiases "
            "when it shrinks (torchvision's Resize on a PIL image calls it)",
            "to float32: pixel values times scale (1/255), then (x - mean) / std per RGB channel",
            "layout: NCHW (batch, 3, height, width), channels in RGB order",
        ],
        "exif_orientation": True,
        "scale_to_8_bits_modes": list(SCALE_TO_8_BITS_MODES),
        "transparent_modes": list(TRANSPARENT_MODES),
        "transparency_fill": list(TRANSPARENCY_FILL),
        "min_side": MIN_SIDE,
        "resize": {"size": [h, w], "interpolation": "bilinear", "antialias": True,
                   "implementation": "PIL.Image.resize((width, height), PIL.Image.Resampling.BILINEAR)"},
        "scale": 1 / 255,
        "mean": list(cfg.pixel_mean),
        "std": list(cfg.pixel_std),
        "layout": "NCHW",
        "channels": "RGB",
        "dtype": "float32",
    }


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _files_under(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _walk(root: Path) -> tuple[list[Path], list[Skipped]]:
    """Every regular file under `root`, following symbolic links to files and folders (each real folder once),
    and every entry left out with the reason."""
    files, skipped, seen = [], [], {os.path.realpath(root)}

    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            skipped.append(Skipped(rel(folder) + "/", f"folder cannot be read ({err.strerror or err})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir, is_file, is_link = entry.is_dir(), entry.is_file(), entry.is_symlink()
            except OSError as err:
                skipped.append(Skipped(rel(path), f"cannot be read ({err.strerror or err})"))
                continue
            if _hidden(path):
                if is_dir:
                    n = _files_under(path)
                    skipped.append(Skipped(rel(path), f"hidden folder (its name starts with '.'): not looked into "
                                                      f"({n} file{'s' if n != 1 else ''} in it)"))
                else:
                    skipped.append(Skipped(rel(path), "hidden file (its name starts with '.'): left out"))
            elif is_link and not path.exists():
                skipped.append(Skipped(rel(path), f"broken symbolic link (to {os.readlink(path)}, which does not "
                                                  "exist)"))
            elif is_dir:
                real = os.path.realpath(path)
                if real in seen:
                    skipped.append(Skipped(rel(path), f"symbolic link to a folder already looked into ({real}; a "
                                                      "loop or a second link): not followed again"))
                else:
                    seen.add(real)
                    stack.append(path)
            elif is_file:
                files.append(path)
            else:
                skipped.append(Skipped(rel(path), "not a regular file (a device, socket or pipe)"))
    return sorted(files), skipped


def find_images(folder: str | os.PathLike, what: str = "the gallery",
                progress: bool = False) -> tuple[list[Path], list[Skipped]]:
    """Every image file under `folder` (sorted, any depth), or `folder` itself when it is a file, and every file
    left out with the reason (see `_walk`: hidden files and folders, broken links, loops). Only headers are read
    here; `load_rgb` decodes."""
    folder = Path(folder)
    if not folder.exists():
        broken = f" (a broken symbolic link to {os.readlink(folder)})" if folder.is_symlink() else ""
        raise FileNotFoundError(f"{folder} does not exist{broken}: {what} must be a folder of person images or "
                                "an image")
    if folder.is_file():
        files, skipped, base = [folder], [], folder.parent
    else:
        (files, skipped), base = _walk(folder), folder
    images = []
    for path in tqdm(files, desc="scanning", leave=False, disable=not progress or len(files) < 2000):
        name = path.relative_to(base).as_posix()
        if path.name.endswith(INDEX_SUFFIX):
            skipped.append(Skipped(name, "a reid search index (features), not an image"))
            continue
        try:
            with Image.open(path) as im:  # reads the header only; decoding errors surface in load_rgb
                im.size
        except PermissionError as err:
            skipped.append(Skipped(name, f"cannot be read ({err.strerror})"))
            continue
        except Exception as err:  # noqa: BLE001 - any failure to read a header means "not an image"
            kind = "not an image" if isinstance(err, UnidentifiedImageError) else f"corrupt or truncated image ({err})"
            skipped.append(Skipped(name, kind))
            continue
        images.append(path)
    skipped.sort(key=lambda s: s.path)
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
    """The features of a gallery folder and what they were computed from (one variant of an index file)."""

    root: Path
    paths: list[str]  # relative to root, POSIX separators
    feats: torch.Tensor  # (N, d) float32, as `Embedder` gives them
    stamps: list[tuple[int, int]]  # (size in bytes, modification time in ns) of each file
    model_digest: str
    settings: dict
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0  # features taken from the previous index file on this build
    path: Path | None = None  # the index file it was read from or written to
    variants: int = 1  # variants (models, settings) the index file holds, this one included
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

    def state(self) -> dict:
        return {"paths": self.paths, "feats": self.feats, "stamps": torch.tensor(self.stamps, dtype=torch.int64),
                "model_digest": self.model_digest, "settings": self.settings,
                "skipped": [[s.path, s.reason] for s in self.skipped]}

    def save(self, path: str | os.PathLike, others: list[dict] | None = None) -> None:
        """Write this variant first in the index file at `path`, atomically, followed by the file's other variants
        (another model digest or other settings; `others`, or those already in the file), INDEX_VARIANTS in all."""
        path = Path(path)
        if others is None:
            others = read_index_file(path, warn=False)
        mine = (self.model_digest, self.settings)
        kept = [v for v in others if (v["model_digest"], v["settings"]) != mine][:INDEX_VARIANTS - 1]
        if os.name == "nt":  # Windows cannot replace a file that is memory-mapped: read the variants first
            kept = [{**v, "feats": v["feats"].clone()} for v in kept]
        state = {"version": INDEX_VERSION, "variants": [self.state(), *kept]}
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        self.path, self.variants = path, 1 + len(kept)

    @classmethod
    def load(cls, path: str | os.PathLike, root: str | os.PathLike, model_digest: str | None = None,
             settings: dict | None = None) -> "GalleryIndex":
        """The variant of the index file at `path` made with `model_digest` and `settings`, by default the most
        recently written one. Raises KeyError when the file holds no such variant."""
        variants = read_index_file(path)
        for v in variants:
            if model_digest in (None, v["model_digest"]) and settings in (None, v["settings"]):
                return cls(Path(root), list(v["paths"]), v["feats"], [tuple(s) for s in v["stamps"].tolist()],
                           v["model_digest"], v["settings"], [Skipped(*s) for s in v["skipped"]], path=Path(path),
                           variants=len(variants))
        raise KeyError(f"{path} holds no features of this model with these settings")

    def summary(self) -> str:
        text = (f"{len(self)} images indexed in {self.root} ({self.reused} features reused, "
                f"{len(self) - self.reused} computed)")
        if self.skipped:
            text += f"; {len(self.skipped)} skipped: " + "; ".join(f"{s.path} ({s.reason})" for s in self.skipped[:10])
            text += f" ... ({len(self.skipped) - 10} more)" if len(self.skipped) > 10 else ""
        if self.path is not None:
            text += (f"\nindex: {self.path} (features of {self.variants} model/settings variant"
                     f"{'s' if self.variants != 1 else ''}; it keeps the last {INDEX_VARIANTS})")
        return text


def read_index_file(path: str | os.PathLike, warn: bool = True) -> list[dict]:
    """The variants an index file holds, most recently used first; [] when there is no file or it cannot be read
    (with a warning when `warn`: a damaged index is rebuilt, not fatal). Features are memory-mapped, not read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # an old-style (non-zip) file cannot be mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        variants = state["variants"] if "variants" in state else [state]  # version 1: one variant
        for v in variants:
            v["paths"], v["feats"], v["stamps"], v["model_digest"], v["settings"], v["skipped"]  # noqa: B018
    except Exception as err:  # noqa: BLE001 - whatever is wrong with it, it is rebuilt
        if warn:
            warnings.warn(f"{path} cannot be read ({type(err).__name__}); rebuilding it", stacklevel=3)
        return []
    return variants


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def build_index(embedder: Embedder, cfg: Config, gallery: str | os.PathLike, model_digest: str,
                index_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                batch_size: int = 128, num_workers: int = 0, progress: bool = True) -> GalleryIndex:
    """Index every image under `gallery` (see the module's text), reusing the saved index where it still holds.

    A saved feature is reused when the file's size and modification time, the model's digest
    and the settings are all unchanged; new and changed files are computed; removed files
    drop out. The index is written atomically to `index_path` (default `index_path_for`),
    with the features of the last INDEX_VARIANTS models or settings used on this gallery.
    """
    root = Path(gallery)
    index_path = Path(index_path) if index_path else index_path_for(root)
    images, skipped = find_images(root, progress=progress)
    rel = [p.relative_to(root).as_posix() for p in images]
    stamps = [_stamp(p) for p in images]
    settings = index_settings(cfg, embedder.flip)
    variants = read_index_file(index_path)
    old, old_feats = {}, None  # (path, stamp) -> row of the saved features, when model and settings are the same
    for v in variants:
        if v["model_digest"] == model_digest and v["settings"] == settings:
            old = {(p, tuple(s)): i for i, (p, s) in enumerate(zip(v["paths"], v["stamps"].tolist()))}
            old_feats = v["feats"]
            break
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
    index.save(index_path, variants)
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
    best_d = torch.empty(len(q), 0, device=q.device)  # on the features' device: a GPU's search stays there
    best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
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
    position: int  # 1-based place in the query's list, counting every hit (not a rank of the Market-1501 protocol)
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

    def match_rank(self) -> int | None:
        """The rank of the first true match as the Market-1501 protocol counts it (chapter 6): the hits of the
        query's person in its own camera and those of unknown identity take no rank. None: no match in the list.
        `Hit.position` is the place in the list, which counts every hit."""
        judged = [self.status(h) for h in self.hits if self.status(h) in ("match", "wrong")]
        return judged.index("match") + 1 if "match" in judged else None


def choose_backend(index: GalleryIndex, num_queries: int, metric: str = "cosine", backend: str = "auto") -> str:
    """"torch" or "faiss": `backend` itself, or for "auto" faiss when it is installed and pays for its build
    (from FAISS_FROM gallery images, for FAISS_MIN_QUERIES queries or an index already built)."""
    if backend == "auto":
        built = metric in index.faiss_indexes
        worth = len(index) >= FAISS_FROM and (built or num_queries >= FAISS_MIN_QUERIES)
        return "faiss" if worth and faiss_available() else "torch"
    if backend not in ("torch", "faiss"):
        raise ValueError(f"backend={backend!r} is unknown; choose 'torch', 'faiss' or 'auto'")
    return backend


RERANK_NOTE = ("k-reciprocal re-ranking (chapter 7) compares neighbourhoods over these queries and the whole "
               "gallery: each query's list depends on the other queries of the same call, and its distances are on "
               "another scale (a mix of Jaccard distance and the original distance, not comparable with a search "
               "without re-ranking). It helps a model whose neighbourhoods are reliable on galleries with several "
               "images per person; with a weak model, or a model trained on other data, it can make lists worse.")


def search(index: GalleryIndex, query_feats: torch.Tensor, query_paths: list[Path], metric: str = "cosine",
           top_k: int = 10, rerank: tuple[int, int, float] | None = None, backend: str = "auto") -> list[QueryResult]:
    """Each query's top-k in the index. `rerank=(k1, k2, lambda)` re-ranks with k-reciprocal neighbours over the
    queries and the whole gallery (k1 is lowered to fit a small gallery): a query's list then depends on the other
    queries of the call, and its distances are a mix of Jaccard and original distances (`RERANK_NOTE`).
    `backend` is "torch", "faiss" or "auto" (`choose_backend`)."""
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
        backend = choose_backend(index, len(query_feats), metric, backend)
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
# Results a person or a script can read
# --------------------------------------------------------------------------------------
QUERY_COLOUR = (0, 90, 200)  # blue
COLOURS = {"match": (40, 160, 60), "wrong": (210, 50, 40), "same camera": (150, 150, 150), "": (255, 255, 255)}
UNKNOWN_OUTLINE = (70, 70, 70)  # a thin dark line around a result whose identity is unknown (on white, no frame)
# A sign before each result's label says what its frame colour says, for readers who cannot tell red from green
MARKS = {"match": "\u2713", "wrong": "\u2717", "same camera": "(\u2713)", "": ""}  # ✓, ✗, (✓); none: unknown
MEANINGS = [  # (colour, what it says), in the legend of the contact sheet and of the HTML page
    (QUERY_COLOUR, "query"),
    (COLOURS["match"], f"{MARKS['match']} same person, another camera (a true match)"),
    (COLOURS["wrong"], f"{MARKS['wrong']} another person"),
    (COLOURS["same camera"], f"{MARKS['same camera']} same person, same camera as the query (the Market-1501 "
                             "protocol does not count it)"),
    (None, "thin outline: identity unknown (a junk image, named -1_..., or a name not in the Market-1501 form)"),
]
DISTANCE_NOTE = ("Under each result: its sign, \"#position\" in this list (#1 is the nearest; every result counts, "
                 "where a rank of the Market-1501 protocol skips the grey ones), and its distance to the query, "
                 "lower is closer (the cosine distance is 0 for the same direction, 1 for unrelated features; "
                 "re-ranked distances are on another scale); then its file name. Person "
                 "and camera are read from Market-1501 file names (0002_c1s1_...: person 2, camera 1).")
MAX_SHEET_QUERIES = 40  # rows of a contact sheet; more go to an HTML page
MAX_SHEET_TOP_K = 30  # results per row of a contact sheet


@functools.lru_cache(maxsize=None)
def _font_path(family: str = "DejaVu Sans") -> str | None:
    """A TrueType font with wide glyph coverage: DejaVu Sans ships with matplotlib."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont(family, fallback_to_default=True)
    except Exception:  # noqa: BLE001 - no matplotlib font: Pillow's own
        return None


@functools.lru_cache(maxsize=None)
def _codepoints(path: str) -> frozenset[int]:
    try:
        from fontTools.ttLib import TTFont

        with TTFont(path, lazy=True, fontNumber=0) as font:
            return frozenset(font.getBestCmap() or {})
    except Exception:  # noqa: BLE001 - a font fontTools cannot read covers nothing we can tell
        return frozenset()


@functools.lru_cache(maxsize=4096)
def _font_path_for(text: str) -> str | None:
    """DejaVu Sans when it has every character of `text`, else an installed font that has them all, else DejaVu
    (the characters it lacks are drawn as '?', `_drawable`)."""
    main = _font_path()
    needed = {ord(c) for c in text}
    if main is None or needed <= _codepoints(main):
        return main
    try:
        from matplotlib import font_manager

        for entry in font_manager.fontManager.ttflist:
            last_resort = "lastresort" in Path(entry.fname).name.lower()  # a box for every character: no help
            if entry.fname.lower().endswith((".ttf", ".otf")) and not last_resort \
                    and needed <= _codepoints(entry.fname):
                return entry.fname
    except Exception:  # noqa: BLE001
        pass
    return main


def sheet_font(size: int, text: str = "") -> ImageFont.ImageFont:
    """The contact sheet's font at `size` pixels: one that can draw `text` (see `_font_path_for`)."""
    path = _font_path_for(text)
    try:
        return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
    except OSError:
        return ImageFont.load_default(size=size)


def _drawable(text: str, font) -> str:
    """`text` with the characters `font` has no glyph for replaced by '?' (never an empty box)."""
    path = getattr(font, "path", None)
    have = _codepoints(path) if path else frozenset()
    return "".join(c if not have or ord(c) in have else "?" for c in text)


def label_lines(text: str, font, width: float, max_lines: int = 2) -> list[str]:
    """`text` wrapped into at most `max_lines` lines of at most `width` pixels, breaking after '_', '-', '.', '/'
    or a space where one is near the end of a line; a text too long for that loses its middle, shown as '…', so
    that its start and its end (the file's extension) stay readable."""
    lines, rest = [], text
    while rest:
        if font.getlength(rest) <= width:
            lines.append(rest)
            break
        if len(lines) == max_lines - 1:  # the last line: keep the end, and as much of the start as fits
            tail = ""
            for i in range(len(rest) - 1, 0, -1):
                if font.getlength("…" + rest[i:]) > width:
                    break
                tail = rest[i:]
            head = ""
            for i in range(1, len(rest) - len(tail)):
                if font.getlength(rest[:i] + "…" + tail) > width:
                    break
                head = rest[:i]
            lines.append(head + "…" + tail)
            break
        fit = 1
        while fit < len(rest) and font.getlength(rest[:fit + 1]) <= width:
            fit += 1
        breaks = [i + 1 for i in range(fit) if rest[i] in "_-./ "]
        cut = breaks[-1] if breaks and breaks[-1] >= fit * 2 // 3 else fit
        lines.append(rest[:cut])
        rest = rest[cut:]
    return lines


def _header_lines(header: dict | None) -> list[str]:
    """The header (what made the results) as a few lines of text; fields that are missing are left out."""
    if not header:
        return []
    h = header
    rerank = h.get("rerank")
    rerank = ("re-ranking on (k1={k1}, k2={k2}, lambda={lambda}): lists depend on the other queries, distances on "
              "another scale".format(**rerank) if rerank else "no re-ranking")
    first = "reid search" + (f" of {h['gallery']}" if h.get("gallery") else "")
    first += f" ({h['gallery_images']} images)" if h.get("gallery_images") else ""
    first += f", {h['date']}" if h.get("date") else ""
    model = [f"model: {h.get('run', '?')}"]
    if h.get("weights"):
        model.append(f"weights {h['weights']}")
    if h.get("weights_sha256"):
        model.append(f"sha256 {str(h['weights_sha256'])[:12]}...")
    if h.get("trained_on"):
        model.append(f"trained on {h['trained_on']}")
    top = f"top {h['top_k']} per query" if h.get("top_k") else ""
    if top and h.get("shown") and h["shown"] < h["top_k"]:
        top += f" (the first {h['shown']} shown)"
    settings = [top, f"{h.get('distance', 'cosine')} distance",
                f"flip {'on' if h.get('flip') else 'off'}", rerank]
    return [first, ", ".join(model), ", ".join(x for x in settings if x)]


def _fonts(height: int):
    size = max(11, height // 9)
    return size, sheet_font(size), max(14, size + 4)  # font size, font, line height


def sheet_legend(width: int, header: dict | None = None, height: int = 128) -> Image.Image:
    """The band above a contact sheet's rows: what made it (`header`), what each frame colour means, and how to
    read the numbers. `height` is the thumbnails' height, which sets the font size."""
    size, font, line_h = _fonts(height)
    pad, swatch = 8, size + 2
    rows: list[tuple[str, object]] = []  # ("text", str) or ("items", [(colour, text), ...])
    for line in _header_lines(header):
        rows += [("text", part) for part in label_lines(line, sheet_font(size, line), width - 2 * pad, max_lines=3)]
    items, line_items, x = [], [], pad
    for colour, text in MEANINGS:
        w = swatch + 6 + font.getlength(text) + 18
        if line_items and x + w > width - pad:
            items.append(line_items)
            line_items, x = [], pad
        line_items.append((colour, text))
        x += w
    items.append(line_items)
    rows += [("items", it) for it in items]
    rows += [("text", part) for part in label_lines(DISTANCE_NOTE, font, width - 2 * pad, max_lines=4)]
    band = Image.new("RGB", (width, pad + len(rows) * line_h + pad), "white")
    draw = ImageDraw.Draw(band)
    y = pad
    for kind, content in rows:
        if kind == "text":
            f = sheet_font(size, content)
            draw.text((pad, y), _drawable(content, f), fill="black", font=f)
        else:
            x = pad
            for colour, text in content:
                box = [x, y + 1, x + swatch - 1, y + swatch]
                if colour is None:
                    draw.rectangle(box, fill="white", outline=UNKNOWN_OUTLINE, width=1)
                else:
                    draw.rectangle(box, fill=colour)
                draw.text((x + swatch + 6, y), text, fill="black", font=font)
                x += swatch + 6 + font.getlength(text) + 18
        y += line_h
    draw.line([(0, band.height - 2), (width, band.height - 2)], fill=(200, 200, 200))
    return band


def _thumb(path: Path, height: int) -> Image.Image:
    try:
        im = load_rgb(path)
    except BadImageError:
        im = Image.new("RGB", (height // 2, height), (200, 200, 200))
    w = max(1, round(im.width * height / im.height))
    return im.resize((min(w, height), height), Image.Resampling.BILINEAR)


def check_sheet_size(queries: int, top_k: int) -> None:
    """Raise ValueError, pointing to the HTML page, when a contact sheet of this size would be too large to view."""
    if queries > MAX_SHEET_QUERIES or top_k > MAX_SHEET_TOP_K:
        raise ValueError(f"a contact sheet shows at most {MAX_SHEET_QUERIES} queries of {MAX_SHEET_TOP_K} results "
                         f"(asked: {queries} queries, top {top_k}), or it gets too large to open: write an .html "
                         "page instead (any number of queries, thumbnails inside it), or .json / .csv for a script, "
                         "or search fewer queries")


def hit_label(result: QueryResult, hit: Hit) -> str:
    """What a contact sheet or an HTML page writes under a result: its sign (MARKS), position and distance."""
    return " ".join(x for x in (MARKS[result.status(hit)], f"#{hit.position}", f"{hit.distance:.3f}") if x)


def contact_sheet(results: list[QueryResult], root: str | os.PathLike, height: int = 128, border: int = 4,
                  header: dict | None = None, max_hits: int | None = None) -> Image.Image:
    """A legend (`sheet_legend`), then one row per query: the query (blue), then its hits with sign, position,
    distance (`hit_label`) and file name (wrapped, never cut to a prefix); frames coloured by `QueryResult.status`.
    `max_hits` draws only the first hits of each list, a narrower sheet that stays readable when a page shrinks
    it (the header then says how many are shown). At most MAX_SHEET_QUERIES rows of MAX_SHEET_TOP_K hits
    (`check_sheet_size`)."""
    root = Path(root)
    if max_hits is not None:
        if max_hits < 1:
            raise ValueError(f"max_hits={max_hits}: show at least one result per query")
        results = [QueryResult(r.path, r.pid, r.camid, r.hits[:max_hits]) for r in results]
        header = {**(header or {}), "shown": max_hits}
    check_sheet_size(len(results), max((len(r.hits) for r in results), default=0))
    size, font, line_h = _fonts(height)
    cell_w = max(height + 2 * border, int(size * 9))  # room for a thumbnail and two lines of a Market-1501 name
    gap = 8
    cols = 1 + max((len(r.hits) for r in results), default=0)
    width = 2 * gap + cols * (cell_w + gap) + 12
    legend = sheet_legend(width, header, height)
    row_h = height + 2 * border + 3 * line_h + 10
    sheet = Image.new("RGB", (width, legend.height + len(results) * row_h + gap), "white")
    sheet.paste(legend, (0, 0))
    draw = ImageDraw.Draw(sheet)
    y = legend.height + gap
    for r in results:
        cells = [(r.path, "query", QUERY_COLOUR, r.path.name)]
        cells += [(root / h.path, hit_label(r, h), COLOURS[r.status(h)], h.path) for h in r.hits]
        for c, (path, label, colour, name) in enumerate(cells):
            x = gap + c * (cell_w + gap) + (12 if c else 0)
            thumb = _thumb(path, height)
            box = [x, y, x + thumb.width + 2 * border - 1, y + height + 2 * border - 1]
            if c and colour == COLOURS[""]:
                draw.rectangle(box, outline=UNKNOWN_OUTLINE, width=1)
            else:
                draw.rectangle(box, fill=colour)
            sheet.paste(thumb, (x + border, y + border))
            ty = y + height + 2 * border + 1
            draw.text((x, ty), _drawable(label, font), fill="black", font=font)
            name_font = sheet_font(size, name)
            for i, line in enumerate(label_lines(name, name_font, cell_w, max_lines=2)):
                draw.text((x, ty + (i + 1) * line_h), _drawable(line, name_font), fill=(80, 80, 80), font=name_font)
        y += row_h
    return sheet


def _data_uri(path: Path, height: int) -> str:
    buf = io.BytesIO()
    _thumb(path, height).save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plain(value) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def html_page(results: list[QueryResult], root: str | os.PathLike, height: int = 128, title: str = "reid search",
              header: dict | None = None) -> str:
    """A self-contained HTML page (thumbnails embedded) of the same rows as `contact_sheet`, with its legend and
    the `header` (what made it) as a table; any number of queries."""
    root = Path(root)
    rows = []
    for r in results:
        cells = ['<figure style="border-color:rgb({},{},{})"><img src="{}" alt="query"><figcaption>query<br>{}'
                 "</figcaption></figure>".format(*QUERY_COLOUR, _data_uri(r.path, height), html.escape(r.path.name))]
        for h in r.hits:
            status = r.status(h)
            style = ("border:1px solid rgb({},{},{});padding:3px".format(*UNKNOWN_OUTLINE) if not status else
                     "border-color:rgb({},{},{})".format(*COLOURS[status]))
            cells.append(f'<figure style="{style}" title="{html.escape(status or "identity unknown")}">'
                         f'<img src="{_data_uri(root / h.path, height)}" alt="position {h.position}">'
                         f"<figcaption>{html.escape(hit_label(r, h))}<br>{html.escape(h.path)}</figcaption></figure>")
        rows.append('<div class="row">' + "".join(cells) + "</div>")
    legend = "".join(
        (f'<span class="key"><span class="swatch" style="background:rgb({c[0]},{c[1]},{c[2]})"></span>'
         if c else '<span class="key"><span class="swatch" style="border:1px solid #464646"></span>')
        + html.escape(text) + "</span>" for c, text in MEANINGS)
    colours = (f"Frames: blue the query; green ({MARKS['match']}) the same person in another camera; red "
               f"({MARKS['wrong']}) another person; grey ({MARKS['same camera']}) the query's person in its own "
               "camera; a thin outline: identity unknown.")
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_plain(v))}</td></tr>"
                    for k, v in (header or {}).items())
    style = ("body{font-family:'DejaVu Sans',sans-serif} .row{display:flex;gap:6px;margin:8px 0} "
             "figure{margin:0;border:4px solid;text-align:center;font-size:11px;max-width:130px;"
             "overflow-wrap:anywhere} figure:first-child{margin-right:14px}"
             " .key{margin-right:18px;display:inline-block}"
             " .swatch{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:middle}"
             " table{font-size:12px;border-collapse:collapse} th{text-align:left;padding-right:12px}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + (f"<table>{table}</table>" if table else "")
            + f"<p>{legend}</p><p>{html.escape(colours)} {html.escape(DISTANCE_NOTE)}</p>"
            + "".join(rows) + "</body></html>")


def _person(pid: int) -> int | None:
    return int(pid) if pid >= 0 else None


def _camera(camid: int) -> int | None:
    return int(camid) + 1 if camid >= 0 else None  # 1-based, as in the file name (c1): the package's camid is 0-based


def results_summary(results: list[QueryResult]) -> dict:
    """Counts over the queries whose names give person and camera (Market-1501 names), for a one-line report.
    "unjudged_hits" counts the hits in their lists whose names do not (a renamed copy of the right person among
    them would be a true match nobody can count)."""
    judged = [r for r in results if r.pid >= 0]
    ranks = [r.match_rank() for r in judged]
    return {"queries": len(results), "queries_with_known_identity": len(judged),
            "match_in_list": sum(k is not None for k in ranks), "match_at_rank_1": sum(k == 1 for k in ranks),
            "unjudged_hits": sum(r.status(h) == "" for r in judged for h in r.hits)}


def results_document(results: list[QueryResult], header: dict | None = None,
                     skipped: dict[str, list[Skipped]] | None = None) -> dict:
    """Every query's ranked list as plain data (the .json output; the .csv has one row per hit). Schema SCHEMA:

    * "schema": "reid-search/2"; "header": what made the lists (run, weights and their sha256, what the run was
      trained on, gallery, index file, settings: top_k, distance, flip, rerank {k1, k2, lambda} or null, backend;
      date, reid version, and a note when re-ranking was on); "summary": `results_summary`;
    * "queries": one per query image, in order: "query" (its path), "person" and "camera" (from a Market-1501
      name, camera 1-based as in "c1"; null when the name is not one), "match_rank" (the first true match's rank
      as the Market-1501 protocol counts it, null if none), "hits": nearest first, each with "position" (1-based
      place in the list, counting every hit, same-camera ones included: not a rank of the protocol, so compute
      CMC from "match_rank", never from it), "path" (relative to the gallery), "distance" (lower is closer),
      "person", "camera" and "mark": "match" (same person, another camera), "wrong" (another person),
      "same camera" (same person, same camera) or null (identity unknown);
    * "skipped": {"gallery": [...], "queries": [...]}, each {"path", "reason"}: every file not used.

    Version 1 ("reid-search/1") named a hit's "position" "rank" and had no "unjudged_hits" in its summary.
    """
    queries = []
    for r in results:
        queries.append({
            "query": str(r.path), "person": _person(r.pid), "camera": _camera(r.camid), "match_rank": r.match_rank(),
            "hits": [{"position": h.position, "path": h.path, "distance": round(h.distance, 6), "person": _person(h.pid),
                      "camera": _camera(h.camid), "mark": r.status(h) or None} for h in r.hits]})
    return {"schema": SCHEMA, "header": header or {}, "summary": results_summary(results), "queries": queries,
            "skipped": {k: [{"path": s.path, "reason": s.reason} for s in v] for k, v in (skipped or {}).items()}}


CSV_COLUMNS = ["query", "query_person", "query_camera", "position", "path", "distance", "person", "camera", "mark"]


def results_csv(results: list[QueryResult], header: dict | None = None) -> str:
    """One row per hit (CSV_COLUMNS, as in `results_document`; empty where unknown), after one first line
    '# reid search {header as JSON}': read it with csv.DictReader(lines[1:]) or pandas.read_csv(path, skiprows=1)."""
    buf = io.StringIO()
    buf.write("# reid search " + json.dumps(header or {}, ensure_ascii=False) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    blank = lambda v: "" if v is None else v  # noqa: E731
    for r in results:
        for h in r.hits:
            writer.writerow([str(r.path), blank(_person(r.pid)), blank(_camera(r.camid)), h.position, h.path,
                             f"{h.distance:.6f}", blank(_person(h.pid)), blank(_camera(h.camid)), r.status(h)])
    return buf.getvalue()


def check_result_path(out: str | os.PathLike) -> str:
    """The kind of output `out` asks for (RESULT_SUFFIXES), or ValueError naming the ones there are."""
    kind = RESULT_SUFFIXES.get(Path(out).suffix.lower())
    if kind is None:
        raise ValueError(f"--out {out}: unknown extension {Path(out).suffix or '(none)'!r}; write .json or .csv "
                         "(every list, for a script), .html (a page of thumbnails) or .png / .jpg (a contact sheet)")
    return kind


def write_results(results: list[QueryResult], root: str | os.PathLike, out: str | os.PathLike,
                  height: int = 128, header: dict | None = None,
                  skipped: dict[str, list[Skipped]] | None = None) -> Path:
    """Write `results` atomically by the extension of `out`: .json or .csv (`results_document`, `results_csv`),
    .html (`html_page`), .png or .jpg (`contact_sheet`, the header also in the file's text); returns the path."""
    out = Path(out)
    kind = check_result_path(out)
    suffix = out.suffix.lower()
    if kind == "contact sheet":
        sheet = contact_sheet(results, root, height, header=header)
        text = json.dumps(header or {}, ensure_ascii=False)
        if suffix == ".png":
            info = PngInfo()
            info.add_itxt("reid-search", text)
            atomic_write(out, lambda tmp: sheet.save(tmp, "PNG", pnginfo=info))
        else:
            atomic_write(out, lambda tmp: sheet.save(tmp, "JPEG", quality=90, comment=text.encode("utf-8")))
    elif kind == "HTML page":
        page = html_page(results, root, height, header=header)
        atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    elif kind == "JSON":
        doc = json.dumps(results_document(results, header, skipped), indent=1, ensure_ascii=False)
        atomic_write(out, lambda tmp: Path(tmp).write_text(doc + "\n", encoding="utf-8"))
    else:
        text = results_csv(results, header)
        atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))
    return out
