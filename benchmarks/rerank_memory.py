"""Re-ranking in bounded memory: MSMT17's size (11,659 queries x 82,161 gallery images) and Market-1501's.

Each case runs in a fresh process, so that its peak resident memory (ru_maxrss) is its own:
the features are made first (clustered synthetic features, L2-normalised, as a trained
model's: identity centres with noise a few times their norm, so that plain mAP is 55-60 %,
near what a baseline scores on MSMT17), the numba loops are loaded by a small re-ranking,
the peak resident memory is reset (Linux's /proc/self/clear_refs), and then re-ranking (k1, k2, lambda) = (20, 6, 0.3) runs
one way:

* score: `reid.reranking.evaluate_reranked`, mAP / CMC / mINP block by block, the
  (queries x gallery) matrix never held;
* top100: `reid.reranking.re_ranking_topk`, each query's 100 nearest with their distances;
* full: `reid.reranking.re_ranking`, the whole float32 matrix (what the classic code returns).

    python benchmarks/rerank_memory.py                     # the record's cases, about 15 minutes on 2 cores
    python benchmarks/rerank_memory.py --cases msmt17-256:score --max-memory-gb 4
    python benchmarks/rerank_memory.py --device cuda        # on a GPU: time and peak GPU memory (not measured yet)

Prints one line per case and, with --record, writes the lines with the machine and commit.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

# queries, gallery, feature size, test identities, noise (times a centre's norm; plain mAP about 55-60 %)
SIZES = {"market-2048": (3368, 15913, 2048, 750, 3.5), "msmt17-256": (11659, 82161, 256, 3060, 2.0),
         "msmt17-2048": (11659, 82161, 2048, 3060, 3.5)}
DEFAULT_CASES = ("market-2048:score", "market-2048:full", "msmt17-256:score", "msmt17-256:score@2",
                 "msmt17-256:top100", "msmt17-2048:score")  # SIZE:WAY, @GB: another memory bound


def features(nq: int, ng: int, dim: int, n_ids: int, noise: float, seed: int = 0):
    """(N, dim) L2-normalised features, queries first, made in chunks (no copy of the whole), with pids and cameras."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(n_ids, dim, generator=g), dim=1)
    pids = torch.cat([torch.randint(0, n_ids, (nq,), generator=g), torch.randint(0, n_ids, (ng,), generator=g)])
    cams = torch.randint(0, 15, (nq + ng,), generator=g)
    feats = torch.empty(nq + ng, dim)
    for s in range(0, nq + ng, 8192):
        chunk = centers[pids[s:s + 8192]] + noise * torch.randn(len(pids[s:s + 8192]), dim, generator=g) / dim**0.5
        feats[s:s + 8192] = torch.nn.functional.normalize(chunk, dim=1)
    return feats, pids.numpy(), cams.numpy()


def status_gb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in GB (Linux)."""
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return int(text.split()[1]) / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # elsewhere: the peak since the start


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    except OSError:
        pass


def run_case(case: str, max_memory_gb: float, device: str, threads: int) -> dict:
    """One case, in this process: {case, seconds, peak_gb, before_gb, ...}."""
    import torch

    from reid.reranking import evaluate_reranked, re_ranking, re_ranking_topk

    torch.set_num_threads(threads)
    case, _, bound = case.partition("@")
    max_memory_gb = float(bound) if bound else max_memory_gb
    size, way = case.split(":")
    nq, ng, dim, n_ids, noise = SIZES[size]
    feats, pids, camids = features(nq, ng, dim, n_ids, noise)
    feats = feats.to(device)
    warm, warm_pids, warm_cams = features(60, 240, dim, 10, noise)  # numba's loops, CUDA: loaded before the timing
    evaluate_reranked(warm.to(device), warm_pids, warm_cams, 60, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset_peak()
    before = status_gb("VmRSS")
    start = time.perf_counter()
    out: dict = {}
    if way == "score":
        res = evaluate_reranked(feats, pids, camids, nq, max_memory_gb=max_memory_gb, device=device, progress=True)
        out.update(mAP=round(100 * res.mAP, 2), rank1=round(100 * float(res.cmc[0]), 2),
                   mINP=round(100 * res.mINP, 2))
    elif way == "top100":
        d, i = re_ranking_topk(feats[:nq], feats[nq:], 100, max_memory_gb=max_memory_gb, device=device,
                               progress=True)
        out.update(lists=list(i.shape))
    elif way == "full":
        d = re_ranking(feats[:nq], feats[nq:], max_memory_gb=max_memory_gb, device=device)
        out.update(matrix_gb=round(d.numel() * d.element_size() / 1e9, 2))
    else:
        raise SystemExit(f"unknown way {way!r}: score, top100 or full")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    out.update(case=case, queries=nq, gallery=ng, dim=dim, seconds=round(time.perf_counter() - start, 1),
               before_gb=round(before, 2), peak_gb=round(status_gb("VmHWM"), 2), max_memory_gb=max_memory_gb)
    return out


def line(r: dict) -> str:
    what = {"score": "scoring (mAP/CMC/mINP)", "top100": "top-100 lists", "full": "whole float32 matrix"}[
        r["case"].split(":")[1]]
    text = (f"{r['queries']:,} x {r['gallery']:,}, {r['dim']}-d, {what}, max_memory_gb={r['max_memory_gb']}: "
            f"{r['seconds']:.1f} s, peak resident memory {r['peak_gb']:.2f} GB, of which re-ranking "
            f"{r['peak_gb'] - r['before_gb']:.2f} GB (the process held {r['before_gb']:.2f} GB with the features)")
    if "mAP" in r:
        text += f"; mAP {r['mAP']:.2f}, R1 {r['rank1']:.2f}, mINP {r['mINP']:.2f}"
    if "matrix_gb" in r:
        text += f"; the matrix itself {r['matrix_gb']:.2f} GB"
    if "peak_gpu_gb" in r:
        text += f"; peak GPU memory {r['peak_gpu_gb']:.2f} GB"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES),
                        help="SIZE:WAY[@GB], e.g. msmt17-256:score or msmt17-256:score@2 (a bound of 2 GB)")
    parser.add_argument("--max-memory-gb", type=float, default=4.0, help="re-ranking's working-memory bound")
    parser.add_argument("--device", default="cpu", help="where re-ranking runs: cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--record", type=Path, help="write the lines here (with machine and commit)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.max_memory_gb, args.device, args.threads)))
        return
    import torch
    from seed_noise import commit as checkout_commit  # here, not at the top: the --one children measure memory

    commit = checkout_commit()
    header = [f"# python benchmarks/rerank_memory.py --max-memory-gb {args.max_memory_gb} --threads {args.threads}",
              f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {args.threads} threads, "
              f"device {args.device}, torch {torch.__version__}, commit {commit}"]
    print("\n".join(header), flush=True)
    lines = []
    for case in args.cases:
        proc = subprocess.run([sys.executable, __file__, "--one", case, "--max-memory-gb", str(args.max_memory_gb),
                               "--device", args.device, "--threads", str(args.threads)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            text = f"{case}: failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
        else:
            text = line(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(text, flush=True)
        lines.append(text)
    if args.record:
        args.record.write_text("\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
