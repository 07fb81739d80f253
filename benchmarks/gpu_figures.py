"""GPU figures: every GPU claim of the book, measured in one command on one GPU (its steps took 6.5 minutes on an H200).

Seven steps, in this order; each one's lines go into the record the moment it ends, so a run
stopped early (a time limit, an error, Ctrl-C) keeps what it measured, and a step that fails is
recorded with its error, the next one runs, and the command exits with status 1 at the end:

1. training throughput, ResNet50 (last stride 1) at 256x128, batch 64: the plain fp32 loop as
   person-reid-tiny-baseline trains (`benchmarks/train_throughput.py`'s `plain_loop`), the
   package's loop fed by a DataLoader with AMP, fed on the device (the split decoded once,
   augmented on the GPU) with AMP, and the same with `torch.compile` (its compile time apart);
   then where the device path's step goes (`breakdown`): its batches alone, and the model's step
   alone on ready tensors at batch 64, at 256, and compiled with CUDA graphs;
2. `Config.tiny_baseline()` from scratch on the Market-sized synthetic set, through
   `python -m reid train` as a reader runs it, stopped after `--recipe-seconds` (its epochs,
   evaluations every 5 epochs and checkpoints as they come): seconds per epoch, and the
   projected wall time of the 200-epoch recipe and of the paper's 120 epochs;
3. k-reciprocal re-ranking at full Market size (3,368 x 15,913, 2048-d) on the GPU: time and
   peak GPU memory; GPU against CPU results at 500 x 2,000; the 452-point search at 300 x 1,200
   on the GPU and on the machine's CPU (numba);
4. `evaluate_rank` at Market size (3,368 x 15,913) on the GPU and on the CPU;
5. exact top-10 search in a 1,000,000-image gallery (2048-d) with `reid.search.topk_torch` on the
   GPU, checked against one unchunked matrix product;
6. export parity: the ONNX graph (`reid.export.export_onnx`) run by onnxruntime against the same
   model run by torch on the GPU.

    python benchmarks/gpu_figures.py --tiny   # every step at toy sizes on the CPU, in about 2 minutes: a dry run
    python benchmarks/gpu_figures.py          # on a GPU: the record gpu_<device>.{txt,json} in runs/gpu-figures
    python benchmarks/gpu_figures.py --out benchmarks/records   # add the invocation to the book's record

A record holds every invocation written into it, oldest first: a rerun (of one step, with
--only) is appended, never replaces what is there. The book's pages quote the newest figures
of each step in benchmarks/records/gpu_nvidia_h200.json, and a test checks them: after adding
to that record, update the pages. Each invocation compiles with empty compile caches of its own,
so the compile time is what a first run pays.

At the end it compares with the goals the book sets: the device path at least 3x the plain fp32
loop, the 200-epoch recipe under 10 minutes, re-ranking at full size in about a second (not
with --tiny, whose toy sizes say nothing about them).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the sibling benchmarks whose pieces this one reuses

from eval_rerank import best_of, clustered_features  # noqa: E402
from seed_noise import commit  # noqa: E402
from train_throughput import plain_loop  # noqa: E402

from reid import Config, describe_device, get_device, seed_everything  # noqa: E402
from reid.data import ImageDataset, RandomIdentitySampler, load_dataset, train_transforms  # noqa: E402
from reid.engine import measure_throughput  # noqa: E402
from reid.evaluation import Embedder, evaluate_rank  # noqa: E402
from reid.losses import make_loss  # noqa: E402
from reid.model import Baseline  # noqa: E402
from reid.reranking import re_ranking, reranking_grid, search_reranking  # noqa: E402
from reid.results import latest_figures  # noqa: E402
from reid.search import topk_torch  # noqa: E402
from reid.utils import atomic_write  # noqa: E402

GOALS = {"device_over_plain": 3.0, "recipe_minutes": 10.0, "full_rerank_s": 1.0}


class Record:
    """The device's record: every invocation of this script on that kind of device, oldest first, each with its
    figures and the lines it printed. An invocation is appended to what is there (a rerun of one step with
    `--only` adds to the record, it does not replace it) and written after every step, JSON for programs and
    text for people; `reid.results.latest_figures` reads a step's newest figures."""

    def __init__(self, out: Path, device: torch.device, tiny: bool, argv: list[str]):
        from reid.kernels import available as numba_available

        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        self.stem = out / (f"gpu_{slug}" + ("_tiny" if tiny else ""))
        path = self.stem.with_suffix(".json")
        self.record = {"device": describe_device(device), "invocations": []}
        if path.exists():
            try:
                self.record = json.loads(path.read_text())
                assert isinstance(self.record, dict) and isinstance(self.record.get("invocations"), list)
            except (OSError, ValueError, AssertionError):
                raise ValueError(f"{path} is not a record of gpu_figures.py (unreadable, or no list of "
                                 "invocations): move it away, or choose another --out folder") from None
        command = " ".join(["python benchmarks/gpu_figures.py", *argv])
        self.data = {"command": command, "device": describe_device(device), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "numba": numba_available(), "commit": commit(), "tiny": tiny,
                     "date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "steps": {}}
        self.data["lines"] = [f"# {command}",
                              f"# {self.data['date']}, {self.data['device']}, {self.data['machine']}, torch "
                              f"{torch.__version__} (CUDA {torch.version.cuda}), numba "
                              f"{'on' if self.data['numba'] else 'absent'}, commit {self.data['commit']}", ""]
        self.record["invocations"].append(self.data)
        self.start = time.perf_counter()

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.data["lines"].append(line)

    def step(self, name: str, values: dict) -> None:
        self.data["steps"][name] = values
        self.write()

    def write(self) -> None:
        self.data["minutes"] = round((time.perf_counter() - self.start) / 60, 2)
        text = [f"# {line}" for line in self.record.get("note", "").splitlines()] + [""] * bool(self.record.get("note"))
        for i, inv in enumerate(self.record["invocations"], 1):
            text += [f"======== invocation {i}", *inv["lines"], ""]
        atomic_write(self.stem.with_suffix(".json"),
                     lambda tmp: Path(tmp).write_text(json.dumps(self.record, indent=1) + "\n"))
        atomic_write(self.stem.with_suffix(".txt"), lambda tmp: Path(tmp).write_text("\n".join(text)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_on(device: torch.device, fn, *args, **kwargs):
    """(result, seconds) of fn(*args, **kwargs), the GPU's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    sync(device)
    return out, time.perf_counter() - start


# --------------------------------------------------------------------------------------
# 1. training throughput
# --------------------------------------------------------------------------------------
def throughput(rec: Record, cfg: Config, dataset, steps: int, warmup: int, rounds: int, compile_: bool) -> None:
    device = get_device(cfg.device)
    num_classes = dataset.num_train_pids
    seed_everything(0)
    plain_loader = DataLoader(ImageDataset(dataset.train, train_transforms(cfg)), num_workers=cfg.num_workers,
                              batch_sampler=RandomIdentitySampler([r.pid for r in dataset.train], cfg.batch_size,
                                                                  cfg.num_instances, seed=0))
    torch.backends.cudnn.benchmark = True  # every loop (the tiny baseline sets it too)
    rates: dict[str, list[float]] = {"plain fp32": [], "loader + AMP": [], "device + AMP": []}
    walls: dict[str, float] = {}
    rec.say(f"{cfg.backbone}, last stride 1, {cfg.input_size[0]}x{cfg.input_size[1]}, batch {cfg.batch_size}, "
            f"{steps} timed steps after {warmup}, {cfg.num_workers} loader workers, {rounds} rounds")
    for round_ in range(1, rounds + 1):  # alternate, so that drift in the machine's speed hits every loop
        model = Baseline.from_config(cfg, num_classes).to(device)
        loss_fn = make_loss(cfg, num_classes, model.in_planes).to(device)
        rates["plain fp32"].append(plain_loop(cfg, model, loss_fn, plain_loader, device, steps, warmup))
        del model, loss_fn
        for name, changes in (("loader + AMP", {"train_data": "loader"}), ("device + AMP", {"train_data": "device"})):
            rate, wall = timed_on(device, measure_throughput, dataclasses.replace(cfg, **changes), steps, warmup,
                                  dataset)
            rates[name].append(rate)
            walls[name] = wall
        rec.say(f"  round {round_}: " + " | ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()) + " images/s")
    compile_s = None
    if compile_:  # once: a second call would find inductor's caches warm and hide the cost a reader pays
        print("  compiling the device path (the first steps wait for it: about 45 s on an H200) ...", flush=True)
        rate, wall = timed_on(device, measure_throughput,
                              dataclasses.replace(cfg, train_data="device", compile=True), steps, warmup, dataset)
        rates["device + AMP + compile"] = [rate]
        compile_s = wall - walls["device + AMP"]  # same set-up and steps; the difference is the compilation
        rec.say(f"  device + AMP + compile: {rate:.0f} images/s; the call took {wall:.1f} s against "
                f"{walls['device + AMP']:.1f} s uncompiled: compilation about {compile_s:.0f} s")
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratios = {k: v / med["plain fp32"] for k, v in med.items()}
    rec.say("median images/s: " + ", ".join(f"{k} {v:.0f} ({ratios[k]:.2f}x plain)" for k, v in med.items()))
    rec.step("throughput", {"backbone": cfg.backbone, "input_size": list(cfg.input_size), "batch_size": cfg.batch_size,
                            "steps": steps, "warmup": warmup, "num_workers": cfg.num_workers, "rates": rates,
                            "median": med, "over_plain": ratios, "compile_s": compile_s})


def breakdown(rec: Record, cfg: Config, dataset, steps: int, warmup: int) -> None:
    """Where the device path's step goes: its batches alone (decoded split, augmentation on the device), and the
    model's training step alone (forward, losses, backward, both optimizers) on ready tensors, at the batch size
    and at 4x it."""
    from reid.data import make_dataloaders
    from reid.data.decoded import training_batches
    from reid.engine import training_parts

    device = get_device(cfg.device)
    cfg = dataclasses.replace(cfg, train_data="device")
    train_loader, _, _, num_classes = make_dataloaders(cfg, dataset)
    batches = training_batches(cfg, train_loader, device)
    seen, start = 0, None
    for i, (images, pids, _, _) in enumerate(batches):
        if i == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        seen += len(pids)
        if i == warmup + steps - 1:
            break
    sync(device)
    loading = seen / (time.perf_counter() - start)
    values = {"batches_alone": loading, "model_step_alone": {}}
    parts = [f"the device path's batches alone {loading:.0f} images/s"]
    # Eager at the batch size and at 4x it (a fixed cost per step shows as a rate that grows with the batch), then
    # compiled with CUDA graphs (mode="reduce-overhead"), which replays a step's kernels without launching each.
    for batch, mode in ((cfg.batch_size, None), (4 * cfg.batch_size, None), (cfg.batch_size, "reduce-overhead")):
        seed_everything(0)
        model, loss_fn, optimizer, center_optimizer, amp_dtype, scaler = training_parts(cfg, num_classes, device)
        step_model = torch.compile(model, mode=mode) if mode else model
        fmt = torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
        x = torch.randn(batch, 3, *cfg.input_size, device=device).contiguous(memory_format=fmt)
        y = torch.arange(batch, device=device) // cfg.num_instances % num_classes
        model.train()
        for i in range(warmup + steps):
            if i == warmup:
                sync(device)
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits, feat = step_model(x, y)
            loss, _ = loss_fn(logits.float(), feat.float(), y)
            optimizer.zero_grad(set_to_none=True)
            center_optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.step(center_optimizer)
            scaler.update()
        sync(device)
        rate = steps * batch / (time.perf_counter() - start)
        key = f"{batch}" + (f", compile {mode}" if mode else "")
        values["model_step_alone"][key] = rate
        parts.append(f"the model's step alone at batch {key} {rate:.0f} images/s")
        del model, step_model, loss_fn, optimizer, center_optimizer, x
    rec.say("; ".join(parts))
    rec.step("breakdown", values)


# --------------------------------------------------------------------------------------
# 2. the tiny baseline's recipe, from scratch, for as long as the budget allows
# --------------------------------------------------------------------------------------
def recipe(rec: Record, args, data_root: Path, runs: Path, workers: int) -> None:
    name = "gpu-figures-recipe"
    history_path = runs / name / "history.json"
    cmd = [sys.executable, "-m", "reid", "train", "--preset", "tiny_baseline", "--dataset", "synthetic",
           "--synthetic-preset", args.preset, "--pretrained", "none", "--num-workers", str(workers),
           "--name", name, "--output-dir", str(runs), "--data-root", str(data_root), "--quiet"]
    if args.tiny:
        cmd += ["--backbone", "resnet18", "--input-size", "64", "32", "--padding", "3", "--batch-size", "16"]
    shown = " ".join(cmd[1:]).replace(str(runs), "<runs>").replace(str(data_root), "<data>")
    rec.say(f"python {shown}  (stopped after {args.recipe_seconds:.0f} s)")
    log = open(runs / "train.log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    arrivals: list[float] = []  # seconds from the start at which epoch e's record appeared (e = 1, 2, ...)
    history: list[dict] = []
    while proc.poll() is None and time.perf_counter() - start < args.recipe_seconds:
        time.sleep(0.1)
        try:
            history = json.loads(history_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        while len(arrivals) < len(history):
            arrivals.append(time.perf_counter() - start)
            record = history[len(arrivals) - 1]
            print(f"  epoch {record['epoch']} at {arrivals[-1]:.0f} s" + (f": mAP {100 * record['mAP']:.1f}"
                                                                         if "mAP" in record else ""), flush=True)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    if not arrivals:
        tail = (runs / "train.log").read_text()[-2000:]
        raise RuntimeError(f"no epoch finished in {args.recipe_seconds:.0f} s; the log ends:\n{tail}")
    history = history[:len(arrivals)]
    cfg = Config.tiny_baseline()
    epoch_s = [r["epoch_time_s"] for r in history]
    intervals = np.diff([arrivals[0] - epoch_s[0]] + arrivals)  # each epoch's wall time, evaluation and checkpoint in
    setup_s = arrivals[0] - epoch_s[0]
    evals = [i for i, r in enumerate(history) if "mAP" in r]
    plain = [intervals[i] for i in range(len(history)) if i not in evals] or list(intervals)
    train_only = float(np.median(epoch_s[1:] or epoch_s))  # the first epoch warms cuDNN's autotuner
    per_epoch = float(np.median(plain[1:] or plain))

    # An evaluation epoch costs what a plain one does plus the evaluation and its checkpoint.
    extra = float(np.median([intervals[i] for i in evals])) - per_epoch if evals else None

    def projected(epochs: int, eval_period: int) -> float | None:
        if extra is None:
            return None
        return setup_s + epochs * per_epoch + (epochs // eval_period) * extra

    paper = Config.market1501()
    p200, p120 = projected(cfg.max_epochs, cfg.eval_period), projected(paper.max_epochs, paper.eval_period)
    maps = ", ".join(f"{100 * history[i]['mAP']:.1f} at epoch {history[i]['epoch']}" for i in evals) or "none yet"
    images = round(np.median([r["images_per_s"] for r in history[1:] or history]))
    rec.say(f"  {len(history)} epochs in {arrivals[-1]:.0f} s: set-up (start-up, data, model) {setup_s:.1f} s; "
            f"an epoch {per_epoch:.2f} s ({train_only:.2f} s training, {images} images/s); an evaluation and "
            f"checkpoint {extra if extra is not None else float('nan'):.2f} s more "
            f"(mAP {maps})")
    if p200 is not None:
        rec.say(f"  projected: {cfg.max_epochs} epochs with an evaluation every {cfg.eval_period}: {p200 / 60:.1f} "
                f"min; the paper's {paper.max_epochs} epochs (evaluation every {paper.eval_period}): {p120 / 60:.1f} min")
    rec.step("recipe", {"command": shown, "epochs": len(history), "seconds": arrivals[-1], "setup_s": setup_s,
                        "epoch_s": per_epoch, "train_epoch_s": train_only, "images_per_s": images,
                        "eval_and_checkpoint_s": extra, "history": history, "arrivals_s": arrivals,
                        "projected_200_min": None if p200 is None else p200 / 60,
                        "projected_paper_120_min": None if p120 is None else p120 / 60})


# --------------------------------------------------------------------------------------
# 3. re-ranking; 4. metrics; 5. search; 6. export
# --------------------------------------------------------------------------------------
def reranking(rec: Record, device: torch.device, full: tuple[int, int, int, int], grid_size: tuple[int, int]) -> None:
    n_ids, nq, ng, dim = full
    q, g, _, _ = clustered_features(n_ids, nq, ng, dim, 1.0)
    qd, gd = q.to(device), g.to(device)
    re_ranking(qd[:100], gd[:400])  # CUDA's start and first kernels outside the timing
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ours, t_full = timed_on(device, re_ranking, qd, gd)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    rec.say(f"re-ranking {nq:,} x {ng:,}, {dim}-d at (20, 6, 0.3): {t_full:.2f} s"
            + (f"; peak GPU memory {peak:.2f} GB" if peak is not None else ""))
    del ours, qd, gd
    diff = None
    if device.type == "cuda":
        q, g, _, _ = clustered_features(200, 500, 2000, 64, 3.0)
        on_cpu = re_ranking(q, g)
        on_device = re_ranking(q.to(device), g.to(device)).cpu()
        diff = float((on_cpu - on_device).abs().max())
        rec.say(f"  at 500 x 2,000 the GPU's distances differ from the CPU's by at most {diff:.1e}")

    gq, gg = grid_size
    q, g, q_pids, g_pids = clustered_features(100, gq, gg, 512, 3.0)
    q_cams, g_cams = np.zeros(gq), np.ones(gg)
    searches = {}
    for where, (qx, gx) in {"GPU": (q.to(device), g.to(device)), "CPU": (q, g)}.items():
        if where == "GPU" and device.type != "cuda":
            continue
        dev = qx.device
        search_reranking(qx[:30], gx[:120], q_pids[:30], g_pids[:120], q_cams[:30], g_cams[:120])  # warm / compile
        t_one = min(timed_on(dev, re_ranking, qx, gx)[1] for _ in range(3))
        result, t_grid = timed_on(dev, search_reranking, qx, gx, q_pids, g_pids, q_cams, g_cams)
        searches[where] = {"one_s": t_one, "grid_s": t_grid, "single_rerankings": t_grid / t_one,
                           "best": result.best}
        threads = f" ({torch.get_num_threads()} threads)" if where == "CPU" else ""
        rec.say(f"  search, {len(reranking_grid())} points at {gq} x {gg} on the {where}{threads}: {t_grid:.2f} s = "
                f"{t_grid / t_one:.0f} single re-rankings ({t_one:.3f} s each)")
    rec.step("reranking", {"size": [nq, ng, dim], "seconds": t_full, "peak_gpu_gb": peak,
                           "gpu_vs_cpu_max_difference": diff, "search": searches})


def metrics(rec: Record, device: torch.device, nq: int, ng: int) -> None:
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, 751, nq), rng.integers(0, 751, ng)
    q_cams, g_cams = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = (rng.random((nq, ng), dtype=np.float32) + 0.6 * (q_pids[:, None] != g_pids[None, :])).astype(np.float32)
    cpu, t_cpu = best_of(2, evaluate_rank, dist, q_pids, g_pids, q_cams, g_cams)
    line = f"evaluate_rank {nq:,} x {ng:,}: CPU ({torch.get_num_threads()} threads) {t_cpu:.3f} s"
    values = {"size": [nq, ng], "cpu_s": t_cpu, "mAP": cpu.mAP}
    if device.type == "cuda":
        dd = torch.from_numpy(dist).to(device)
        evaluate_rank(dd, q_pids, g_pids, q_cams, g_cams)
        gpu, t_gpu = min((timed_on(device, evaluate_rank, dd, q_pids, g_pids, q_cams, g_cams) for _ in range(2)),
                         key=lambda x: x[1])
        same = bool(np.abs(gpu.cmc - cpu.cmc).max() < 1e-6 and abs(gpu.mAP - cpu.mAP) < 1e-6)
        line += f"; GPU (distances on the GPU) {t_gpu:.3f} s; same numbers: {same}"
        values.update(gpu_s=t_gpu, same=same)
    rec.say(line + f" (mAP {100 * cpu.mAP:.2f})")
    rec.step("metrics", values)


def search(rec: Record, device: torch.device, n: int, dim: int, queries: int) -> None:
    gen = torch.Generator(device=device).manual_seed(0)
    gallery = torch.empty(n, dim, device=device)
    for start in range(0, n, 100_000):  # normalised features, made in chunks
        chunk = torch.randn(min(100_000, n - start), dim, device=device, generator=gen)
        gallery[start:start + len(chunk)] = F.normalize(chunk, dim=1)
    q = F.normalize(torch.randn(queries, dim, device=device, generator=gen), dim=1)
    topk_torch(q, gallery, 10, normalized=True)  # warm-up
    t1 = min(timed_on(device, topk_torch, q[:1], gallery, 10, normalized=True)[1] for _ in range(3))
    (d, idx), tq = min((timed_on(device, topk_torch, q, gallery, 10, normalized=True) for _ in range(3)),
                       key=lambda x: x[1])
    ref = torch.topk(1.0 - q @ gallery.T, 10, dim=1, largest=False, sorted=True).indices
    same = bool(torch.equal(idx, ref))
    rec.say(f"exact top-10 in a {n:,}-image gallery, {dim}-d ({gallery.numel() * 4 / 1e9:.1f} GB): one query "
            f"{t1 * 1e3:.1f} ms; {queries} queries {tq * 1e3:.1f} ms ({tq / queries * 1e3:.2f} ms a query); "
            f"same lists as one unchunked product: {same}")
    rec.step("search", {"gallery": n, "dim": dim, "one_query_ms": t1 * 1e3, "queries": queries,
                        "batch_ms": tq * 1e3, "per_query_ms": tq / queries * 1e3, "same_as_unchunked": same})


def export_parity(rec: Record, device: torch.device, cfg: Config, count: int) -> None:
    import onnxruntime as ort

    from reid.export import export_onnx, onnx_features, onnx_session

    seed_everything(0)
    model = Baseline.from_config(cfg, 751).eval()
    images = torch.randn(count, 3, *cfg.input_size, generator=torch.Generator().manual_seed(0))
    values = {"backbone": cfg.backbone, "input_size": list(cfg.input_size), "images": count,
              "providers": ort.get_available_providers()}
    with tempfile.TemporaryDirectory() as tmp:
        path, t_export = timed_on(device, export_onnx, model, cfg, Path(tmp) / "model.onnx", flip=True)
        session = onnx_session(path)
        got = F.normalize(onnx_features(session, images), dim=1)
    embedder = Embedder.of_run(model, cfg, flip=True).to(device).eval()
    parts = []
    for amp in (None, torch.bfloat16):
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp is not None):
            ref = F.normalize(embedder(images.to(device)).float(), dim=1).cpu()
        worst = float((ref - got).abs().max())
        label = "fp32" if amp is None else "bf16 autocast"
        values[f"max_difference_{'fp32' if amp is None else 'bf16'}"] = worst
        parts.append(f"torch on {device.type} {label}: {worst:.1e}")
    rec.say(f"export {cfg.backbone} {cfg.input_size[0]}x{cfg.input_size[1]} with flip ({t_export:.0f} s); largest "
            f"difference of the normalised features, onnxruntime ({session.get_providers()[0]}) against "
            + "; ".join(parts))
    values["export_s"] = t_export
    rec.step("export", values)


def goals(rec: Record) -> None:
    steps = {name: latest_figures(rec.record, name) for name in ("throughput", "recipe", "reranking")}
    steps = {k: v for k, v in steps.items() if v is not None}
    verdicts = {}
    if "throughput" in steps:
        r = steps["throughput"]["over_plain"]["device + AMP"]
        verdicts["device path >= 3x plain fp32"] = (r >= GOALS["device_over_plain"], f"{r:.2f}x")
    if "recipe" in steps and steps["recipe"].get("projected_200_min") is not None:
        m = steps["recipe"]["projected_200_min"]
        verdicts["200-epoch recipe < 10 min"] = (m < GOALS["recipe_minutes"], f"{m:.1f} min projected")
    if "reranking" in steps:
        s = steps["reranking"]["seconds"]
        verdicts["full-size re-ranking in about a second"] = (s <= 1.5 * GOALS["full_rerank_s"], f"{s:.2f} s")
    rec.say("")
    rec.say("goals: " + "; ".join(f"{k}: {'met' if ok else 'NOT met'} ({v})" for k, (ok, v) in verdicts.items()))
    rec.step("goals", {k: {"met": ok, "value": v} for k, (ok, v) in verdicts.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: a dry run of every step")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the record (default: runs/gpu-figures; with --tiny a temporary folder; "
                             "benchmarks/records adds to the book's)")
    parser.add_argument("--recipe-seconds", type=float, default=None,
                        help="how long step 2 trains (default: 180; 25 with --tiny)")
    parser.add_argument("--workers", type=int, default=min(12, max(1, (os.cpu_count() or 2) - 2)),
                        help="loader workers of the GPU steps (default: %(default)s here; --tiny uses 0)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="leave torch.compile out of step 1")
    parser.add_argument("--only", nargs="+", choices=("throughput", "breakdown", "recipe", "reranking", "metrics", "search",
                                                      "export"), help="run these steps only")
    args = parser.parse_args()
    if args.recipe_seconds is not None and args.recipe_seconds <= 0:
        parser.error(f"--recipe-seconds {args.recipe_seconds:g}: give a positive number of seconds (default 180)")
    if args.workers < 0:
        parser.error(f"--workers {args.workers}: give 0 (load in the main process) or more")
    device = get_device("cpu" if args.tiny else "auto")
    if device.type != "cuda" and not args.tiny:
        parser.error("it measures a GPU and none is visible here; --tiny runs its steps at toy sizes on the CPU")
    args.preset = "tiny" if args.tiny else "market"
    args.recipe_seconds = args.recipe_seconds or (25.0 if args.tiny else 180.0)
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu-figures-")) if args.tiny else ROOT / "runs" / "gpu-figures")
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file: name a folder (the record's two files go in it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".gpu-figures-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        parser.error(f"--out {out}: cannot write a record there ({err.strerror or err}); name a writable folder")
    work = Path(tempfile.mkdtemp(prefix="gpu-figures-work-"))
    for cache in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # empty caches: the compile time a first run pays
        os.environ[cache] = str(work / cache.lower())
    try:
        rec = Record(out, device, args.tiny, sys.argv[1:])
    except ValueError as err:
        shutil.rmtree(work, ignore_errors=True)
        parser.error(str(err))
    rec.say(f"device: {rec.data['device']}; {rec.data['machine']}; record: {rec.stem}.txt and .json")
    rec.write()
    data_root, runs = work / "data", work / "runs"
    runs.mkdir(parents=True)
    workers = 0 if args.tiny else args.workers
    if args.tiny:
        cfg = Config.smoke(synthetic_preset="tiny", batch_size=16, num_workers=workers, device=str(device),
                           data_root=str(data_root))
        steps, warmup, rounds = 3, 1, 1
        sizes = dict(full=(60, 120, 480, 64), grid=(60, 240), metrics=(300, 1200), search=(20_000, 64, 10))
        export_cfg = Config.tiny_baseline(pretrained="none", backbone="resnet18", input_size=(64, 32), padding=3)
    else:
        cfg = Config.smoke(backbone="resnet50", input_size=(256, 128), padding=10, batch_size=64,
                           synthetic_preset="market", num_workers=workers, device=str(device), data_root=str(data_root))
        steps, warmup, rounds = 60, 15, 2
        sizes = dict(full=(1501, 3368, 15913, 2048), grid=(300, 1200), metrics=(3368, 15913),
                     search=(1_000_000, 2048, 100))
        export_cfg = Config.tiny_baseline(pretrained="none")  # random weights: the parity does not depend on them
    chosen = args.only or ["throughput", "breakdown", "recipe", "reranking", "metrics", "search", "export"]

    failed = []

    def run(name: str, fn, *a) -> None:
        if name not in chosen:
            return
        rec.say("")
        rec.say(f"## {name}")
        start = time.perf_counter()
        try:
            fn(*a)
        except KeyboardInterrupt:
            rec.say(f"  interrupted after {time.perf_counter() - start:.0f} s; the steps before it are in the record")
            rec.step(name, {"error": "interrupted"})
            shutil.rmtree(work, ignore_errors=True)
            raise SystemExit(130) from None
        except Exception as err:  # record it and go on: the other steps' figures are worth keeping
            traceback.print_exc()
            rec.say(f"  FAILED: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            rec.step(name, {"error": f"{type(err).__name__}: {err}"})
            failed.append(name)
        rec.say(f"  ({time.perf_counter() - start:.0f} s)")
        rec.write()

    @functools.cache
    def dataset():  # made (or read) once, for the steps that need it; step 2 finds it under the same root
        start = time.perf_counter()
        made = load_dataset(cfg, verbose=False)
        rec.say(f"synthetic {args.preset} set: {len(made.train):,} training images, ready in "
                f"{time.perf_counter() - start:.0f} s")
        return made

    run("throughput", lambda: throughput(rec, cfg, dataset(), steps, warmup, rounds, args.compile))
    run("breakdown", lambda: breakdown(rec, cfg, dataset(), steps, warmup))
    run("recipe", recipe, rec, args, data_root, runs, workers)
    run("reranking", reranking, rec, device, sizes["full"], sizes["grid"])
    run("metrics", metrics, rec, device, *sizes["metrics"])
    run("search", search, rec, device, *sizes["search"])
    run("export", export_parity, rec, device, export_cfg, 32 if not args.tiny else 4)
    if args.tiny:
        rec.say("")
        rec.say("goals: not judged at --tiny's toy sizes")
    else:
        goals(rec)
    rec.say(f"total {(time.perf_counter() - rec.start) / 60:.1f} min; record: {rec.stem}.txt and .json")
    rec.write()
    shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"failed: {', '.join(failed)} (their errors are in the record)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
