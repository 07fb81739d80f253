"""Does the book pass on other machines? Re-run the tests and every chapter under perturbed floating point.

The chapters are stored with their outputs, and `pytest --nbval` compares every output
with a fresh run. A trained network's weights differ in their last bits from one CPU to
another (vector width, MKL's and oneDNN's code paths, the number of threads), and training
amplifies the difference: a value printed from a trained model can move on a reader's
laptop or on CI's next machine. This script imitates other machines on this one. Each
profile sets environment variables that change the floating-point path of the libraries
(without changing what is computed) and runs the test suite and strict nbval on a fresh
data folder and a fresh runs folder, so that every model is trained again under it:

    python scripts/portability.py                        # every profile: tests and chapters
    python scripts/portability.py --profile one-thread   # one profile
    python scripts/portability.py --only notebooks       # chapters only (or: tests)

It prints the tests and chapter cells that fail under each profile, and exits non-zero if
any does. `make portable` runs it. About 12 minutes per profile on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def numpy_simd_targets() -> list[str]:
    """The SIMD targets NumPy dispatches to on this CPU beyond its baseline (AVX2, AVX-512, ...)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    return [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]


def profiles() -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (what it imitates, environment). Each variable alone changed a 40-step training
    trajectory on this project's CI machine (AMD EPYC, AVX-512), see the note of issue 11."""
    other = {
        "ATEN_CPU_CAPABILITY": "default",  # torch's own kernels without vector instructions
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # convolutions: oneDNN limited to AVX2 (no AVX-512)
        "MKL_CBWR": "COMPATIBLE",  # matrix products: MKL's portable code path
        "JSIMD_FORCENONE": "1",  # JPEG decoding without SIMD (bit-exact, so it should change nothing)
    }
    targets = numpy_simd_targets()
    if targets:
        other["NPY_DISABLE_CPU_FEATURES"] = " ".join(targets)  # NumPy without its SIMD kernels
    return {
        "one-thread": ("a machine with one core: every parallel kernel sums in another order",
                       {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}),
        "other-cpu": ("another CPU: no AVX-512 in oneDNN, no vector kernels in torch, MKL's portable path", other),
    }


def failures(junit: Path) -> tuple[int, list[str]]:
    """(number of tests run, names of those that failed or errored) from a JUnit XML report."""
    if not junit.exists():
        return 0, ["(no report: pytest did not run)"]
    cases = ET.parse(junit).getroot().iter("testcase")
    run, failed = 0, []
    for case in cases:
        if case.find("skipped") is not None:
            continue
        run += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return run, failed


def run_profile(name: str, env_changes: dict[str, str], only: str | None, log_dir: Path,
                keep: bool = False) -> tuple[int, list[str], float]:
    targets = {"tests": ["tests", "--ignore=tests/test_book.py"], "notebooks": ["notebooks"]}
    chosen = [t for key, paths in targets.items() if only in (None, key) for t in paths]
    with tempfile.TemporaryDirectory(prefix=f"reid-portable-{name}-") as tmp:
        work = log_dir / name if keep else Path(tmp)  # --keep: the data and runs stay for a look afterwards
        shutil.rmtree(work / "runs", ignore_errors=True)  # every model is trained anew, never resumed
        env = {**os.environ, **env_changes, "REID_DATA": f"{work}/data", "REID_RUNS": f"{work}/runs"}
        junit = log_dir / f"{name}.xml"
        junit.unlink(missing_ok=True)
        log = log_dir / f"{name}.log"
        start = time.perf_counter()
        with open(log, "w") as out:
            subprocess.run([sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q",
                            f"--junitxml={junit}", *chosen], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    run, failed = failures(junit)
    return run, failed, seconds


def main(argv: list[str] | None = None) -> int:
    known = profiles()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(known), action="append",
                        help="a profile to run (repeatable; default: all)")
    parser.add_argument("--only", choices=("tests", "notebooks"), help="run only the unit tests or only the chapters")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "_build" / "portability",
                        help="where each profile's pytest log and JUnit report go")
    parser.add_argument("--keep", action="store_true",
                        help="keep each profile's data and runs (trained models, histories) under the log folder")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__} "
          f"(CPU capability {torch.backends.cpu.get_cpu_capability()})")
    bad = 0
    for name in args.profile or list(known):
        what, env = known[name]
        print(f"\n== {name}: {what}\n   {' '.join(f'{k}={v!r}' for k, v in env.items())}", flush=True)
        run, failed, seconds = run_profile(name, env, args.only, args.log_dir, args.keep)
        print(f"   {run} tests and cells run in {seconds / 60:.1f} min: {len(failed)} failed "
              f"(log: {args.log_dir / (name + '.log')})")
        for f in failed:
            print(f"   FAILED {f}")
        bad += len(failed) or (run == 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
