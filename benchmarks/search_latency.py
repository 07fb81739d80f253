"""Latency of using a trained model: nearest-neighbour search per query, and features per image (torch vs ONNX).

1. Search: generated, L2-normalised 2048-d features (ResNet50's) as the gallery, at
   10,000, 100,000 and 1,000,000 images; the exact top-10 of one query and of a batch of
   100 queries, per query, with `reid.search.topk_torch` (chunked matrix products) and
   with faiss's exact flat index (`reid.search.faiss_index`, built once; its build time
   is printed). Both must return the same lists.
2. Features: `reid.evaluation.Embedder` in torch and the same graph exported to ONNX and run by
   onnxruntime, per image on the CPU, for ResNet50 at 256x128 (the paper's model) and
   ResNet18 at 64x32 (the book's smoke model), batches of 1 and 32. Random weights: the
   time does not depend on them.

    python benchmarks/search_latency.py [--threads 2] [--sizes 10000 100000 1000000] [--skip-onnx]

Memory: the 1M gallery is 8.2 GB of float32, and faiss keeps a copy (about 17 GB in all).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from reid import Config
from reid.model import Baseline
from reid.search import Embedder, faiss_available, faiss_index, topk_faiss, topk_torch


def best_time(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gallery_features(n: int, dim: int, seed: int = 0, chunk: int = 100_000) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim)
    for s in range(0, n, chunk):
        block = out[s:s + chunk]
        block.normal_(generator=g)
        block.div_(block.norm(dim=1, keepdim=True))
    return out


def search_latency(sizes: list[int], dim: int) -> None:
    print(f"search: exact top-10, {dim}-d normalised features; milliseconds per query")
    print(f"{'gallery':>10} {'torch 1q':>9} {'torch 100q':>11} {'faiss 1q':>9} {'faiss 100q':>11} {'faiss build':>12}"
          "  same lists")
    q = F.normalize(torch.randn(100, dim, generator=torch.Generator().manual_seed(1)), dim=1)
    for n in sizes:
        g = gallery_features(n, dim)
        t1 = best_time(lambda: topk_torch(q[:1], g, 10, normalized=True)) * 1e3
        t100 = best_time(lambda: topk_torch(q, g, 10, normalized=True)) * 1e3 / len(q)
        line = f"{n:>10,} {t1:>9.1f} {t100:>11.2f}"
        if faiss_available():
            start = time.perf_counter()
            index = faiss_index(g, "cosine", normalized=True)
            build = time.perf_counter() - start
            f1 = best_time(lambda: topk_faiss(q[:1], index, 10, normalized=True)) * 1e3
            f100 = best_time(lambda: topk_faiss(q, index, 10, normalized=True)) * 1e3 / len(q)
            same = torch.equal(topk_torch(q, g, 10, normalized=True)[1], topk_faiss(q, index, 10, normalized=True)[1])
            line += f" {f1:>9.1f} {f100:>11.2f} {build:>11.2f}s  {same}"
            del index
        else:
            line += "   (faiss not installed: pip install faiss-cpu)"
        print(line, flush=True)
        del g


def onnx_latency(threads: int) -> None:
    from reid.export import export_onnx, latency_per_image, onnx_features, onnx_session

    print("features: milliseconds per image on the CPU, torch vs onnxruntime (same graph, random weights)")
    print(f"{'model':>22} {'batch':>5} {'torch':>8} {'onnxruntime':>12}  largest difference (normalised)")
    for backbone, size in (("resnet50", (256, 128)), ("resnet18", (64, 32))):
        cfg = Config(backbone=backbone, pretrained="none", input_size=size, flip_feats=False)
        torch.manual_seed(0)
        model = Baseline.from_config(cfg, 751).eval()
        embedder = Embedder.of_run(model, cfg)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, cfg, Path(tmp) / "m.onnx")
            session = onnx_session(path, threads)
            images = torch.randn(64, 3, *size, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                diff = float((embedder(images) - onnx_features(session, images)).abs().max())
            for batch in (1, 32):
                n = 8 if batch == 1 else 64
                with torch.inference_mode():
                    t_torch = latency_per_image(embedder, images[:n], batch) * 1e3
                t_ort = latency_per_image(lambda x: onnx_features(session, x, batch), images[:n], batch) * 1e3
                print(f"{backbone + ' ' + 'x'.join(map(str, size)):>22} {batch:>5} {t_torch:>8.2f} {t_ort:>12.2f}"
                      f"  {diff:.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if faiss_available():
        import faiss
        faiss.omp_set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads; torch {torch.__version__}")
    if not args.skip_search:
        search_latency(args.sizes, args.dim)
    if not args.skip_onnx:
        onnx_latency(args.threads)


if __name__ == "__main__":
    main()
