"""Test features in float32 or in mixed precision: how far do the features and the scores move?

The published recipes extract test features in float32, and so does the package by default
(`cfg.eval_amp=False`); mixed precision is faster on a GPU. This extracts the test features of
a trained run both ways and prints the largest and median relative differences of the
features and the scores each way, with and without flipped features. On a GPU the low
precision is the GPU's autocast type (bfloat16 where native, else float16, as `cfg.eval_amp`
would use); on a CPU it is the CPU's bfloat16 autocast, the same number format.

    python benchmarks/eval_precision.py --run runs/smoke      # the chapter 5 model
"""

from __future__ import annotations

import argparse
import platform

import torch
from torch import nn

from reid.data import make_dataloaders
from reid.engine import load_model
from reid.evaluation import autocast_dtype, evaluate_features, extract_plain_and_flipped
from reid.utils import describe_device, get_device


class CPUAutocast(nn.Module):
    """The model run under the CPU's bfloat16 autocast, its output in float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run folder, e.g. runs/smoke")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    device = get_device(args.device)
    model, cfg = load_model(args.run, device)
    cfg.num_workers = args.num_workers
    _, loader, num_query, _ = make_dataloaders(cfg)
    low = autocast_dtype(device, True) if device.type == "cuda" else torch.bfloat16
    print(f"{args.run} on {describe_device(device)} ({platform.processor() or platform.machine()}), torch "
          f"{torch.__version__}: float32 against {str(low).removeprefix('torch.')}")
    # one pass per precision gives the plain and the flipped features (as extract_features gives them)
    plain32, flip32, pids, camids = extract_plain_and_flipped(model, loader, device, amp=False)
    if device.type == "cuda":
        plain_low, flip_low, _, _ = extract_plain_and_flipped(model, loader, device, amp=True)
    else:
        plain_low, flip_low, _, _ = extract_plain_and_flipped(CPUAutocast(model), loader, device)
    for flip, exact, approx in ((False, plain32, plain_low), (True, flip32, flip_low)):
        rel = (approx - exact).norm(dim=1) / exact.norm(dim=1)
        scores = [evaluate_features(f, pids, camids, num_query, cfg.distance, cfg.feat_norm) for f in (exact, approx)]
        print(f"flip={flip!s:<5} feature relative difference: median {rel.median():.1e}, largest {rel.max():.1e}")
        for name, s in zip(("float32", str(low).removeprefix("torch.")), scores):
            print(f"   {name:<9} mAP {100 * s.mAP:.2f}  Rank-1 {100 * s.cmc[0]:.2f}  mINP {100 * s.mINP:.2f}")


if __name__ == "__main__":
    main()
