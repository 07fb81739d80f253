"""Export a trained run to ONNX, and check the export against the torch model.

    python -m reid export --run smoke --onnx smoke.onnx --check-images photos/

The graph is `reid.evaluation.Embedder`: the run's model as it is tested (flipped features
added when the run's `flip_feats` is set, L2-normalised when `feat_norm` is), so that
`1 - a.b` of two outputs is the book's cosine distance. Input "images": float32
(batch, 3, H, W), RGB, resized to the run's input size and normalised with its mean and
standard deviation (`reid.data.transforms.test_transforms`); the batch size is dynamic.
A JSON file beside the model (`<model>.onnx.json`) holds every preprocessing step from an
image file to that input (`reid.search.preprocessing`: EXIF orientation, mode conversion,
the transparency fill, the antialiased resize, scale, mean and std), and names the run and
the digest of the weights that made the model.

`export_onnx` writes both files only once the model is written whole and, when asked, has
passed a check (`check=`): nothing half-written or unchecked is left behind.

Exporting needs the optional packages onnx and onnxscript (torch's exporter); checking
needs onnxruntime: pip install "reid[export]".
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .evaluation import Embedder
from .search import BadImageError, Skipped, load_rgb, preprocessing, weights_digest

OPSET = 18
TOLERANCE = 1e-4  # largest difference of L2-normalised features between onnxruntime and torch that passes


def need(module: str, purpose: str):
    """Import an optional package, or raise ImportError saying what needs it and how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{purpose} needs the optional package {module}: pip install \"reid[export]\" "
                          "(onnx, onnxscript, onnxruntime)") from None



def export_onnx(model: torch.nn.Module, cfg: Config, out: str | os.PathLike, flip: bool | None = None,
                opset: int = OPSET, run: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                check: Callable[[Path], None] | None = None) -> Path:
    """Write the run's `Embedder` to `out` (ONNX, one file, dynamic batch) and its preprocessing to `out`.json.

    `run` and `weights` (the weights file) are recorded in the JSON with the weights' SHA-256. Both files are
    written under temporary names first; `check(tmp_onnx_path)`, when given, may raise to refuse the model, and
    only then are both renamed into place: a failed export or check leaves nothing behind.
    """
    need("onnx", "exporting to ONNX")
    need("onnxscript", "exporting to ONNX")
    out = Path(out)
    embedder = Embedder.of_run(copy.deepcopy(model).cpu().float(), cfg, flip).eval()  # the caller's stays put
    example = torch.zeros(2, 3, *cfg.input_size)
    batch = torch.export.Dim("batch", min=1)
    meta_path = out.with_name(out.name + ".json")
    pre = preprocessing(cfg)
    meta = {"input": "images", "output": "features", "layout": "NCHW float32 RGB",
            "input_size": list(cfg.input_size), "pixel_mean": list(cfg.pixel_mean), "pixel_std": list(cfg.pixel_std),
            "resize": "bilinear, antialiased, to input_size (height, width); then /255, minus mean, over std",
            "preprocessing": pre,
            "flip": embedder.flip, "normalized": embedder.normalize, "distance": cfg.distance,
            "backbone": cfg.backbone, "feature_dim": int(model.in_planes), "opset": opset,
            "run": str(run) if run is not None else None, "trained_on": cfg.dataset,
            "weights": str(weights) if weights is not None else None,
            "weights_sha256": weights_digest(weights) if weights is not None else None,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    tag = f".{os.getpid()}.tmp"
    tmp_onnx, tmp_meta = out.with_name(f".{out.name}{tag}"), out.with_name(f".{meta_path.name}{tag}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports its steps on stdout
            torch.onnx.export(embedder, (example,), str(tmp_onnx), input_names=["images"], output_names=["features"],
                              dynamic_shapes={"images": {0: batch}}, opset_version=opset, dynamo=True,
                              external_data=False)
        tmp_meta.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if check is not None:
            check(tmp_onnx)
        os.replace(tmp_onnx, out)
        os.replace(tmp_meta, meta_path)
    finally:
        for tmp in (tmp_onnx, tmp_meta):
            if tmp.exists():
                tmp.unlink()
    return out


def compare_with_torch(onnx_path: str | os.PathLike, embedder: Embedder, cfg: Config, paths: list[Path] | None = None,
                       count: int | None = None, batch_size: int = 64) -> tuple[int, float, list[Skipped]]:
    """(images compared, largest difference of the L2-normalised features, files skipped) between onnxruntime
    running `onnx_path` and torch running `embedder`, on the first `count` images of `paths` that `load_rgb`
    accepts (None: every one; a file search would skip is skipped here too, with its reason), or on 8 random
    inputs when `paths` is None."""
    from .data.transforms import test_transforms

    session = onnx_session(onnx_path)
    embedder = embedder.cpu().eval()
    if paths is None:
        images = torch.randn(8, 3, *cfg.input_size, generator=torch.Generator().manual_seed(0))
        batches = [images]
        skipped: list[Skipped] = []
    else:
        transform, skipped, batches, batch, used = test_transforms(cfg), [], [], [], 0
        for path in paths:
            if count is not None and used >= count:
                break
            try:
                batch.append(transform(load_rgb(path)))
            except BadImageError as err:
                skipped.append(Skipped(str(path), str(err).split(": ", 1)[-1]))
                continue
            used += 1
            if len(batch) == batch_size:
                batches.append(torch.stack(batch))
                batch = []
        if batch:
            batches.append(torch.stack(batch))
    worst, n = 0.0, 0
    for images in batches:
        with torch.no_grad():
            ref = F.normalize(embedder(images), dim=1)
        got = F.normalize(onnx_features(session, images), dim=1)
        worst = max(worst, float((ref - got).abs().max()))
        n += len(images)
    return n, worst, skipped


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session of an exported model (`threads`: intra-op threads; None = onnxruntime's choice)."""
    ort = need("onnxruntime", "running an ONNX model")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_features(session, images: torch.Tensor | np.ndarray, batch_size: int = 128) -> torch.Tensor:
    """The exported model's features of preprocessed images (N, 3, H, W), in batches."""
    images = images.numpy() if isinstance(images, torch.Tensor) else images
    outs = [session.run(None, {"images": np.ascontiguousarray(images[s:s + batch_size], dtype=np.float32)})[0]
            for s in range(0, len(images), batch_size)]
    return torch.from_numpy(np.concatenate(outs))


def latency_per_image(fn, images: torch.Tensor, batch_size: int, repeats: int = 3) -> float:
    """Seconds per image of `fn(batch)` over `images` in batches, the best of `repeats` passes (one warm-up)."""
    fn(images[:batch_size])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for s in range(0, len(images), batch_size):
            fn(images[s:s + batch_size])
        best = min(best, time.perf_counter() - start)
    return best / len(images)
