"""Evaluation and re-ranking speed: reid's vectorised code against person-reid-tiny-baseline's own code.

The tiny baseline's code is loaded from a checkout you point the benchmark at (its
utils/reranking.py and utils/metrics.py, imported from there, never copied into this
project). Everything is measured in one process, on the threads torch is given (2 by
default, like CI):

1. metrics (CMC, mAP, mINP) at Market-1501 scale, 3,368 queries x 15,913 gallery images
   with identity structure: `reid.evaluation.evaluate_rank` against its `eval_func`; the
   numbers must be identical;
2. re-ranking on learned features: the smoke model's (`Config.smoke()`, trained first if its
   run is not there) features of its test split, 528 x 1,647, 512-d, L2-normalised, at the
   paper's setting (20, 6, 0.3) and the one the tiny baseline's code runs (30, 10, 0.2):
   `reid.reranking.re_ranking` against its `re_ranking` (dense N x N matrices, a Python loop
   per image, float16 V);
3. the same at 500 x 2,000 with clustered 64-d features, with numba's loops and with the
   torch code alone (`compiled=False`, what runs without numba);
4. the tiny baseline's whole search grid (452 points) on a validation-sized split (300 x
   1,200, 512-d), against the cost of one re-ranking at the same size;
5. re-ranking at full Market size (19,281 images, 2048-d): ours, time and peak memory, then
   its code (about 80 s and 8.7 GB; `--skip-full-seed` leaves it out).

    git clone https://github.com/lulujianjie/person-reid-tiny-baseline ../person-reid-tiny-baseline
    python benchmarks/eval_rerank.py --tiny-baseline ../person-reid-tiny-baseline [--threads 2]
    python benchmarks/eval_rerank.py --device cuda --skip-full-seed   # step 5 on a GPU

One NVIDIA H200's figures (full size, the search, the metrics) are in benchmarks/records/gpu_nvidia_h200.txt,
measured by benchmarks/gpu_figures.py.

The smoke run is looked for where the chapters write it (REID_RUNS, else runs/ of the checkout).
`benchmarks/rerank_memory.py` measures re-ranking at MSMT17's size within a memory bound.

Without `--tiny-baseline` only reid's own timings are printed.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from reid.evaluation import evaluate_rank
from reid.kernels import available as numba_available
from reid.reranking import re_ranking, reranking_grid, search_reranking


def load_tiny_baseline(checkout: Path):
    """person-reid-tiny-baseline's `re_ranking` and `eval_func`, imported from a checkout of it."""
    if not (checkout / "utils" / "reranking.py").is_file():
        raise SystemExit(f"{checkout} is not a checkout of person-reid-tiny-baseline (no utils/reranking.py): "
                         "git clone https://github.com/lulujianjie/person-reid-tiny-baseline")
    sys.path.insert(0, str(checkout))
    try:
        warnings.filterwarnings("ignore", message=".*addmm_.*")  # its deprecated addmm_(beta, alpha, ...) call
        reranking = importlib.import_module("utils.reranking")
        metrics = importlib.import_module("utils.metrics")
    finally:
        sys.path.remove(str(checkout))
    return reranking.re_ranking, metrics.eval_func


def clustered_features(n_ids, nq, ng, dim, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(n_ids, dim, generator=g), dim=1)
    q_pids, g_pids = torch.randint(0, n_ids, (nq,), generator=g), torch.randint(0, n_ids, (ng,), generator=g)
    q = centers[q_pids] + noise * torch.randn(nq, dim, generator=g) / dim**0.5
    gal = centers[g_pids] + noise * torch.randn(ng, dim, generator=g) / dim**0.5
    return q, gal, q_pids.numpy(), g_pids.numpy()


def learned_features():
    """The smoke model's features of its test split (plain, L2-normalised): (queries, gallery), trained if need be."""
    from reid import Config
    from reid.data import load_dataset, make_dataloaders
    from reid.engine import trained_model
    from reid.evaluation import extract_features

    cfg = Config.smoke()
    model, _ = trained_model(cfg, progress=True)
    _, test_loader, num_query, _ = make_dataloaders(cfg, load_dataset(cfg, verbose=False))
    feats = torch.nn.functional.normalize(extract_features(model, test_loader)[0], dim=1)
    return feats[:num_query], feats[num_query:], str(cfg.run_dir)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def best_of(runs, fn, *args, **kwargs):
    """The fastest of `runs` calls (the first warms caches and allocators), and its result."""
    times, out = [], None
    for _ in range(runs):
        out, t = timed(fn, *args, **kwargs)
        times.append(t)
    return out, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny-baseline", type=Path, help="a checkout of person-reid-tiny-baseline to compare with")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--skip-full-seed", action="store_true", help="do not run its re-ranking at full size")
    parser.add_argument("--device", default="cpu", help="where reid re-ranks at full size: cpu, or cuda (its time and "
                                                        "peak GPU memory are printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads; torch {torch.__version__}")
    seed = load_tiny_baseline(args.tiny_baseline) if args.tiny_baseline else None
    if seed is None:
        print("(pass --tiny-baseline PATH, a checkout of person-reid-tiny-baseline, to compare with its code)")

    # 1. metrics at Market scale
    rng = np.random.default_rng(0)
    nq, ng, n_ids = 3368, 15913, 751
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q_cams, g_cams = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = (rng.random((nq, ng), dtype=np.float32) + 0.6 * (q_pids[:, None] != g_pids[None, :])).astype(np.float32)
    ours, t_ours = best_of(2, evaluate_rank, dist, q_pids, g_pids, q_cams, g_cams)
    line = f"metrics {nq} x {ng}: reid {t_ours:.2f} s"
    if seed:
        (cmc_ref, map_ref), t_ref = timed(seed[1], dist, q_pids, g_pids, q_cams, g_cams)
        same = np.abs(ours.cmc - cmc_ref).max() < 1e-6 and abs(ours.mAP - map_ref) < 1e-6
        line += (f", its eval_func {t_ref:.1f} s -> {t_ref / t_ours:.1f}x; identical: {same} "
                 f"(mAP {100 * ours.mAP:.2f} vs {100 * map_ref:.2f})")
    print(line)

    # 2. re-ranking on learned features
    q, g, run = learned_features()
    print(f"learned features: {run}, test split {len(q)} x {len(g)}, {q.shape[1]}-d, L2-normalised; "
          f"numba {'on' if numba_available() else 'not installed: torch code only'}")
    for k1, k2, lam in ((20, 6, 0.3), (30, 10, 0.2)):
        ours, t_ours = best_of(3, re_ranking, q, g, k1, k2, lam)
        line = f"  re-ranking ({k1}, {k2}, {lam}): reid {t_ours:.3f} s (best of 3)"
        if seed:
            ref, t_ref = best_of(2, seed[0], q, g, k1, k2, lam)
            diff = float(np.abs(ours.numpy() - ref.astype(np.float32)).max())
            line += f", its re_ranking {t_ref:.3f} s -> {t_ref / t_ours:.1f}x; largest difference {diff:.1e}"
        print(line)

    # 3. re-ranking, small, low-dimensional
    q, g, _, _ = clustered_features(100, 500, 2000, 64, 0.8)
    ours, t_ours = best_of(3, re_ranking, q, g)
    _, t_torch = best_of(3, re_ranking, q, g, compiled=False)
    line = f"re-ranking 500 x 2,000, 64-d: reid {t_ours:.3f} s (best of 3; torch code alone {t_torch:.3f} s)"
    if seed:
        ref, t_ref = best_of(2, seed[0], q, g, 20, 6, 0.3)
        diff = float(np.abs(ours.numpy() - ref.astype(np.float32)).max())
        line += f", its re_ranking {t_ref:.2f} s -> {t_ref / t_ours:.1f}x; largest difference {diff:.1e} (its V is float16)"
    print(line)

    # 4. the search grid (first: it needs little memory)
    q, g, q_pids, g_pids = clustered_features(100, 300, 1200, 512, 3.0)
    q_cams, g_cams = np.zeros(300), np.ones(1200)
    _, t_one = best_of(3, re_ranking, q, g)
    search_reranking(q[:30], g[:120], q_pids[:30], g_pids[:120], q_cams[:30], g_cams[:120])  # compile outside
    result, t_grid = timed(search_reranking, q, g, q_pids, g_pids, q_cams, g_cams)
    _, t_grid_torch = timed(search_reranking, q, g, q_pids, g_pids, q_cams, g_cams, compiled=False)
    print(f"search, {len(reranking_grid())} grid points at 300 x 1,200: {t_grid:.2f} s = "
          f"{t_grid / t_one:.0f} single re-rankings ({t_one:.3f} s each, evaluation included in the search); "
          f"torch code alone {t_grid_torch:.1f} s; best k1={result.best['k1']} k2={result.best['k2']} "
          f"lambda={result.best['lambda']}")

    # 5. re-ranking, full Market size
    q, g, _, _ = clustered_features(1501, 3368, 15913, 2048, 1.0)
    device = torch.device(args.device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if device.type == "cuda":
        qd, gd = q.to(device), g.to(device)
        re_ranking(qd[:100], gd[:400])  # start CUDA and its kernels outside the timing
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        ours = re_ranking(qd, gd)
        torch.cuda.synchronize()
        t_ours = time.perf_counter() - start
        print(f"re-ranking 3,368 x 15,913, 2048-d on {torch.cuda.get_device_name(device)}: reid {t_ours:.2f} s; "
              f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")
        del ours, qd, gd
    else:
        ours, t_ours = timed(re_ranking, q, g)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"re-ranking 3,368 x 15,913, 2048-d: reid {t_ours:.1f} s; peak resident memory of the process "
              f"{peak:.1f} GB, the process had peaked at {before:.1f} GB before it (features, earlier steps)")
        del ours
    if seed and not args.skip_full_seed:
        _, t_ref = timed(seed[0], q, g, 20, 6, 0.3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"  its re_ranking at full size: {t_ref:.1f} s (peak resident memory of the process after it: {peak:.1f} GB) -> "
              f"{t_ref / t_ours:.1f}x")


if __name__ == "__main__":
    main()
