"""Export a trained run to ONNX, and check the export against the torch model.

    python -m reid export --run runs/smoke --onnx smoke.onnx

The graph is `reid.evaluation.Embedder`: the run's model as it is tested (flipped features
added when the run's `flip_feats` is set, L2-normalised when `feat_norm` is), so that
`1 - a.b` of two outputs is the book's cosine distance. Input "images": float32
(batch, 3, H, W), RGB, resized to the run's input size and normalised with its mean and
standard deviation (`reid.data.transforms.test_transforms`); the batch size is dynamic.
A JSON file beside the model records that preprocessing for other runtimes.

Exporting needs the optional packages onnx and onnxscript (torch's exporter); checking
needs onnxruntime: pip install "reid[export]".
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .evaluation import Embedder
from .utils import atomic_write

OPSET = 18


def _need(module: str, purpose: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{purpose} needs the optional package {module}: pip install \"reid[export]\" "
                          "(onnx, onnxscript, onnxruntime)") from None


def export_onnx(model: torch.nn.Module, cfg: Config, out: str | os.PathLike, flip: bool | None = None,
                opset: int = OPSET) -> Path:
    """Write the run's `Embedder` to `out` (ONNX, one file, dynamic batch) and its preprocessing to `out`.json."""
    _need("onnx", "exporting to ONNX")
    _need("onnxscript", "exporting to ONNX")
    out = Path(out)
    embedder = Embedder.of_run(copy.deepcopy(model).cpu().float(), cfg, flip).eval()  # the caller's stays put
    example = torch.zeros(2, 3, *cfg.input_size)
    batch = torch.export.Dim("batch", min=1)

    def write(tmp: Path) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports its steps on stdout
            torch.onnx.export(embedder, (example,), str(tmp), input_names=["images"], output_names=["features"],
                              dynamic_shapes={"images": {0: batch}}, opset_version=opset, dynamo=True,
                              external_data=False)

    atomic_write(out, write)
    meta = {"input": "images", "output": "features", "layout": "NCHW float32 RGB",
            "input_size": list(cfg.input_size), "pixel_mean": list(cfg.pixel_mean), "pixel_std": list(cfg.pixel_std),
            "resize": "bilinear, antialiased, to input_size (height, width); then /255, minus mean, over std",
            "flip": embedder.flip, "normalized": embedder.normalize,
            "distance": cfg.distance,
            "backbone": cfg.backbone, "feature_dim": int(model.in_planes), "opset": opset}
    atomic_write(out.with_suffix(out.suffix + ".json"),
                 lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return out


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session of an exported model (`threads`: intra-op threads; None = onnxruntime's choice)."""
    ort = _need("onnxruntime", "running an ONNX model")
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
