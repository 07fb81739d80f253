"""The training loop: one plain loop, fast on a GPU, exact on a CPU, and safe to interrupt.

`train(cfg)` builds the loaders, the model, the loss, the optimizers and the schedule from
`cfg`, then for each epoch: steps the schedule, trains over the PK batches, evaluates
every `eval_period` epochs, and saves a checkpoint every `checkpoint_period` epochs.
Everything lands in `cfg.run_dir` (`runs/<name>/`):

    checkpoint.pth   the latest state: model, optimizers, schedule, grad scaler, epoch,
                     random states, sampler state, history; written atomically
    model.pth        the final weights only (what `test` and the later chapters load)
    history.json     one record per epoch: loss parts, accuracy, lr, images/s, mAP/R1
    config.json      the settings of the run

The training split is decoded once and held on the training device, where each PK batch
is augmented as one tensor (`reid.data.decoded`, `cfg.train_data`), so no loader worker
stands between batches; a split too large for the device goes through a DataLoader with
workers instead. On CUDA the loop uses mixed precision (bfloat16 where the GPU supports
it, else float16 with a gradient scaler), channels-last tensors, cuDNN autotuning and
optionally `torch.compile` (`cfg.compile`). On the CPU it is deterministic: a run
interrupted and resumed with `resume=True` ends with the same weights, bit for bit, as one
that never stopped.
Under `torchrun --nproc_per_node=N` it trains with DistributedDataParallel.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .config import Config, book_checkout, train_command
from .data import load_dataset, make_dataloaders, shutdown_workers
from .data.decoded import DeviceBatches, training_batches
from .data.market1501 import Market1501
from .evaluation import RankResult, autocast_dtype, evaluate_model
from .losses import BaselineLoss, make_loss, rescale_center_grads, triplet_loss
from .model import Baseline
from .solver import make_optimizers, make_scheduler, step_schedule
from .utils import atomic_write, get_device, memory_format, seed_everything

CHECKPOINT, FINAL_WEIGHTS, HISTORY, CONFIG = "checkpoint.pth", "model.pth", "history.json", "config.json"

# Settings that may change when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = {"max_epochs", "eval_period", "checkpoint_period", "log_period", "num_workers", "device",
                     "data_root", "output_dir", "test_batch_size", "flip_feats", "distance", "feat_norm", "max_rank",
                     "reranking", "rerank_k1", "rerank_k2", "rerank_lambda", "eval_amp", "compile", "device_data_max_gb"}
# Settings that runs written before them lack, and what those runs were trained with.
EARLIER_RUNS = {"stem": "torchvision", "train_data": "loader"}


# --------------------------------------------------------------------------------------
# Files: checkpoints and JSON, written atomically (reid.utils.atomic_write)
# --------------------------------------------------------------------------------------
def save_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1)))


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """torch.save `state` to `path` atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that exists but cannot be read."""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by `save_checkpoint` with `weights_only=True` (no code is run)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}: train first, or check cfg.output_dir and cfg.name") from None
    except Exception as err:
        detail = str(err).strip().split("\n")[0].split(". ")[0][:200]  # torch's first sentence, not its advice
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {detail}); it is damaged or "
                              "was not written by reid: delete it to start over") from None


def rng_states() -> dict:
    """Python, NumPy and torch (CPU and CUDA) random states, as tensors and plain values."""
    np_state = np.random.get_state()
    states = {
        "python": list(random.getstate()[1]), "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate((3, tuple(states["python"]), states["python_gauss"]))
    has_gauss, gauss = states["numpy_gauss"]
    np.random.set_state(("MT19937", states["numpy"].numpy().astype(np.uint32), states["numpy_pos"], has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


# --------------------------------------------------------------------------------------
# Distributed training (torchrun)
# --------------------------------------------------------------------------------------
@dataclass
class Distributed:
    """Where this process stands: rank 0 of 1 unless started by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What `train` returns: the model (in eval mode), its history, and where the files are."""

    model: Baseline
    history: list[dict]
    run_dir: Path
    final: RankResult | None = None  # the evaluation after the last epoch
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def _differences(saved: dict, cfg: Config) -> list[str]:
    now, saved = cfg.to_dict(), {**EARLIER_RUNS, **saved}
    return sorted(k for k in now if k not in RESUMABLE_CHANGES and json.loads(json.dumps(saved.get(k)))
                  != json.loads(json.dumps(now[k])))


def _check_finite(window: list[torch.Tensor], first_step: int, epoch: int, steps: int, ckpt: Path) -> None:
    """Raise if a loss of the window is NaN or infinite, naming the first bad step."""
    values = torch.stack(window).float().cpu()  # (len(window),): one sync per window, not per step
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        i = int(bad[0])
        last = f"the last good checkpoint is {ckpt}" if ckpt.exists() else "no checkpoint was written yet"
        raise FloatingPointError(
            f"the loss became {values[i].item()} at epoch {epoch}, step {first_step + i + 1}/{steps}; training stopped "
            f"({last}). Lower cfg.base_lr, set cfg.amp=False, or check the input images for broken files."
        )


def training_parts(cfg: Config, num_classes: int, device: torch.device):
    """(model, loss, optimizer, center optimizer, autocast type, gradient scaler) of a run, on `device`.

    The model, then the loss's class centers, are initialised from torch's global random
    state, in that order; `train` and `measure_throughput` both start from here."""
    model = Baseline.from_config(cfg, num_classes).to(device, memory_format=memory_format(cfg.channels_last, device))
    loss_fn = make_loss(cfg, num_classes, model.in_planes).to(device)
    # torch's fused Adam: one pass over all the weights; on the CPU 9 ms a step against 38 ms for its loop over
    # ResNet18's tensors, a sixth of the smoke profile's step (the last bit of a weight may differ)
    optimizer, center_optimizer = make_optimizers(cfg, model, loss_fn, fused=device.type in ("cuda", "cpu"))
    amp_dtype = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return model, loss_fn, optimizer, center_optimizer, amp_dtype, scaler


def train(cfg: Config, resume: bool = False, dataset: Market1501 | None = None, progress: bool = True) -> TrainResult:
    """Train the baseline of `cfg` and return the model and its history.

    `resume=True` continues the run in `cfg.run_dir` from its latest checkpoint (returning at
    once if it is finished), or starts it if there is none. Without it, an existing
    checkpoint stops the call rather than being overwritten.
    """
    cfg.validate()
    ddp = Distributed.from_env()
    device = get_device(cfg.device)
    if ddp.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    run_dir = cfg.run_dir
    ckpt_path = run_dir / CHECKPOINT
    state = None
    if ckpt_path.exists():
        if not resume:
            raise FileExistsError(f"{run_dir} already holds a run ({ckpt_path}); pass resume=True (--resume) to "
                                  "continue it, or choose another cfg.name, or delete the folder to start over")
        state = load_checkpoint(ckpt_path)
        changed = _differences(state["config"], cfg)
        if changed:
            saved = {**EARLIER_RUNS, **state["config"]}
            now = cfg.to_dict()
            values = ", ".join(f"{k} (saved {saved.get(k)!r}, now {now[k]!r})" for k in changed)
            other = cfg.name + "-" + "-".join(f"{k}{now[k]}" for k in changed[:2]).replace(" ", "")
            raise ValueError(f"cannot resume {ckpt_path}: these settings differ from the saved run: {values}. With "
                             f"them it is another model: give it another name (cfg.name = {other!r}, --name {other}), "
                             "or resume with the saved settings (config.json there)")

    seed_everything(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dataset = dataset if dataset is not None else load_dataset(cfg, verbose=False)
    train_loader, test_loader, num_query, num_classes = make_dataloaders(cfg, dataset, ddp.rank, ddp.world_size)
    sampler = train_loader.batch_sampler
    model, loss_fn, optimizer, center_optimizer, amp_dtype, scaler = training_parts(cfg, num_classes, device)
    scheduler = make_scheduler(cfg, optimizer)

    history: list[dict] = []
    start_epoch = 1
    if state is not None:
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        if center_optimizer is not None:
            center_optimizer.load_state_dict(state["center_optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_states(state["rng"])
        history = list(state["history"])
        start_epoch = state["epoch"] + 1
    batches = train_loader  # a finished run only loads its weights: no need to decode anything
    if start_epoch <= cfg.max_epochs:
        batches = training_batches(cfg, train_loader, device, progress and ddp.is_main)  # on the device, or the loader
    train_model = model
    if ddp.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)  # evaluation and checkpoints use `model`, the same weights

    if ddp.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(run_dir / CONFIG, cfg.to_dict())
    final = None
    try:
        for epoch in range(start_epoch, cfg.max_epochs + 1):
            sampler.set_epoch(epoch - 1)  # the batches of epoch e depend on (seed, e) only
            step_schedule(scheduler)  # first thing in the epoch, as the tiny baseline does: epoch e trains at lr(e)
            lr = optimizer.param_groups[0]["lr"]
            record = train_one_epoch(cfg, epoch, train_model, loss_fn, batches, optimizer, center_optimizer,
                                     scaler, device, amp_dtype, ddp, ckpt_path, progress)
            record["lr"] = lr  # the rate this epoch trained at
            record["train_data"] = "device" if isinstance(batches, DeviceBatches) else "loader"
            if ddp.is_main and (epoch % cfg.eval_period == 0 or epoch == cfg.max_epochs):
                final = evaluate_model(model, test_loader, num_query, cfg, device)
                record.update(mAP=final.mAP, rank1=float(final.cmc[0]), mINP=final.mINP)
                if progress:
                    tqdm.write(f"epoch {epoch}: {final.summary()}")
            history.append(record)
            if ddp.is_main:
                save_json(run_dir / HISTORY, history)
                if epoch % cfg.checkpoint_period == 0 or epoch == cfg.max_epochs:
                    save_checkpoint(ckpt_path, {
                        "epoch": epoch, "config": cfg.to_dict(), "model": model.state_dict(),
                        "loss": loss_fn.state_dict(), "optimizer": optimizer.state_dict(),
                        "center_optimizer": center_optimizer.state_dict() if center_optimizer is not None else None,
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                        "sampler": sampler.state_dict(), "rng": rng_states(), "history": history,
                    })
            ddp.barrier()
    finally:
        shutdown_workers(train_loader)  # its workers persist between epochs: stop them now, not at garbage collection
    if ddp.is_main and (start_epoch <= cfg.max_epochs or not (run_dir / FINAL_WEIGHTS).exists()):
        save_checkpoint(run_dir / FINAL_WEIGHTS, model.state_dict())
    model.eval()
    return TrainResult(model, history, run_dir, final, device)


def train_one_epoch(cfg: Config, epoch: int, model: nn.Module, loss_fn: BaselineLoss, loader, optimizer,
                    center_optimizer, scaler, device: torch.device, amp_dtype: torch.dtype | None,
                    ddp: Distributed | None = None, ckpt_path: Path = Path(CHECKPOINT),
                    progress: bool = True) -> dict:
    """One pass over the PK batches; returns the epoch's record (mean loss parts, accuracy, images/s)."""
    ddp = ddp or Distributed()
    model.train()
    fmt = memory_format(cfg.channels_last, device)
    sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), device=device)
    seen, window, window_start = 0, [], 0
    steps = len(loader)
    # One iterator per epoch, made here: tqdm.auto calls iter() on what it wraps more than
    # once, and each iter() of a DataLoader with persistent workers restarts its epoch.
    bar = tqdm(iter(loader), total=steps, desc=f"epoch {epoch}/{cfg.max_epochs}", leave=False,
               disable=not (progress and ddp.is_main), mininterval=1.0)
    start = time.perf_counter()
    for step, (images, pids, _, _) in enumerate(bar):
        images = images.to(device, non_blocking=True, memory_format=fmt)
        labels = pids.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits, feat = model(images, labels)
        loss, parts = loss_fn(logits.float(), feat.float(), labels)  # the losses in float32

        optimizer.zero_grad(set_to_none=True)
        if center_optimizer is not None:
            center_optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        if center_optimizer is not None:
            scaler.unscale_(center_optimizer)
            if ddp.world_size > 1:  # the centers live outside DDP: average their gradients by hand
                grad = loss_fn.center.centers.grad
                dist.all_reduce(grad)
                grad /= ddp.world_size
            rescale_center_grads(loss_fn.center, cfg.center_loss_weight)
            scaler.step(center_optimizer)
        scaler.update()

        detached = loss.detach()
        window.append(detached)
        for name, value in {"total": detached, **{k: v.detach() for k, v in parts.items()}}.items():
            sums[name] = sums.get(name, 0.0) + value
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
        if (step + 1) % cfg.log_period == 0 or step + 1 == steps:
            _check_finite(window, window_start, epoch, steps, ckpt_path)
            window, window_start = [], step + 1
            if bar.disable is False:
                n = step + 1
                bar.set_postfix({**{k: f"{float(v) / n:.3f}" for k, v in sums.items()},
                                 "acc": f"{float(correct) / seen:.3f}", "lr": f"{optimizer.param_groups[0]['lr']:.2e}",
                                 "img/s": f"{seen / (time.perf_counter() - start):.0f}"}, refresh=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    bar.close()
    record = {"epoch": epoch, **{f"loss_{k}": float(v) / max(steps, 1) for k, v in sums.items()},
              "accuracy": float(correct) / max(seen, 1), "images_per_s": seen * ddp.world_size / elapsed,
              "epoch_time_s": elapsed}
    return record


def train_one_epoch_plain(cfg: Config, model: nn.Module, loss_fn: BaselineLoss, batches, optimizer,
                          center_optimizer) -> list[float]:
    """`train_one_epoch` without its machinery, as the tiny baseline's loop reads: float32, one process, no
    progress bar, the loss read every step. Returns each step's total loss. For reading and checking: on the
    CPU it takes the very steps `train_one_epoch` takes, to the last bit (tests/test_engine.py)."""
    if not (loss_fn.use_triplet and loss_fn.center is not None):
        raise ValueError(f"the plain loop writes out the three losses; cfg.loss_type={cfg.loss_type!r} lacks one")
    device = next(model.parameters()).device
    model.train()
    losses = []
    for images, pids, _, _ in batches:  # PK batches: P identities x K images each
        images, pids = images.to(device), pids.to(device)
        logits, feat = model(images, pids)  # class scores (after the BNNeck), the feature before it
        id_part = cfg.id_loss_weight * loss_fn.id_loss(logits, pids)  # cross-entropy, label smoothing
        triplet_part = cfg.triplet_loss_weight * triplet_loss(feat, pids, cfg.margin, cfg.hard_factor)[0]
        center_part = cfg.center_loss_weight * loss_fn.center(feat, pids)  # beta x L_C
        loss = id_part + triplet_part + center_part
        optimizer.zero_grad()
        center_optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # Adam on the network's weights
        loss_fn.center.centers.grad *= 1.0 / cfg.center_loss_weight  # undo beta: the centers learn at their own rate
        center_optimizer.step()  # SGD on the class centers
        losses.append(loss.item())  # a host sync every step
    return losses


# --------------------------------------------------------------------------------------
# After training
# --------------------------------------------------------------------------------------
def load_history(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / HISTORY
    if not path.exists():
        raise FileNotFoundError(f"no training history at {path}: train the run first")
    return json.loads(path.read_text())


class RunNotTrainedError(FileNotFoundError):
    """A chapter asked for a model whose run is long to train and not finished; the message says what trains it."""


def trains_in_minutes(cfg: Config) -> bool:
    """Whether `cfg` trains in minutes on a laptop's CPU: the synthetic set below Market-1501's size."""
    return cfg.dataset == "synthetic" and cfg.synthetic_preset != "market"


def epochs_trained(cfg: Config) -> int:
    """Epochs the run of `cfg` has finished (its history), 0 if none; `cfg.max_epochs` or more once its weights exist."""
    path = cfg.run_dir / HISTORY
    done = len(json.loads(path.read_text())) if path.exists() else 0
    return done if (cfg.run_dir / FINAL_WEIGHTS).exists() else min(done, cfg.max_epochs - 1)


def _not_trained(cfg: Config, done: int) -> RunNotTrainedError:
    where = os.environ.get("REID_RUNS")
    if where:
        where = f"REID_RUNS={where!r}"
    elif book_checkout() is not None:
        where = "REID_RUNS is not set, so runs/ at the root of the book's checkout"
    else:
        where = "REID_RUNS is not set, so runs/ under the working directory"
    state = f"it has {done} of {cfg.max_epochs} epochs" if done else "there is no such run"
    data = "Market-1501" if cfg.dataset == "market1501" else f"the synthetic {cfg.synthetic_preset!r} set"
    return RunNotTrainedError(
        f"run {cfg.name!r} is not trained: {state} in {cfg.run_dir} (cfg.output_dir; {where}). It is "
        f"{cfg.max_epochs} epochs of a {cfg.backbone} on {data}, hours on a GPU, so a chapter does not start it on "
        "its own. Train it with notebooks/market1501_on_colab.ipynb (every run of the book's market1501 profile, "
        "resumable, on Colab), or chapter 5 for the B1 run, or in a shell: "
        f"`{train_command(cfg)}`. Trained it on Colab already? Set REID_RUNS to the Drive folder that holds "
        f"{cfg.name}/ (e.g. /content/drive/MyDrive/reid-book/runs) before the chapter's imports. To train here and "
        "now, call trained_model(cfg, train_if_missing=True)."
    )


def check_trained(cfg: Config, train_if_missing: bool | None = False) -> None:
    """Raise `RunNotTrainedError` unless the run of `cfg` has finished its `max_epochs` or may be trained now:
    `train_if_missing` True, or None and `trains_in_minutes(cfg)`."""
    if trains_in_minutes(cfg) if train_if_missing is None else train_if_missing:
        return
    done = epochs_trained(cfg)
    if done < cfg.max_epochs:
        raise _not_trained(cfg, done)


def trained_model(cfg: Config, dataset: Market1501 | None = None, progress: bool = True,
                  train_if_missing: bool | None = None) -> tuple[Baseline, list[dict]]:
    """The model of the run `cfg` names, and its history: loaded if it was trained, else trained now.

    Later chapters call this so that they need not train again, yet still run on a fresh
    machine. `train_if_missing`: None (default) trains or finishes the run only when that
    takes minutes (`trains_in_minutes`: the synthetic set); a Market-1501-sized run that is
    not finished raises `RunNotTrainedError` at once, naming where runs are looked for and
    what trains it. True trains (or resumes) in any case; False never trains.
    """
    check_trained(cfg, train_if_missing)
    result = train(cfg, resume=True, dataset=dataset, progress=progress)
    return result.model, result.history


def config_of_run(run_dir: str | os.PathLike) -> Config:
    """The Config a run was trained with (from its config.json; a run older than a setting gets the value it
    was trained with, `EARLIER_RUNS`, e.g. torchvision's stem, and today's default for the others)."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG} in {run_dir}: is this a run folder written by reid?")
    fix = "it is not the config.json a training wrote: restore it, or train the run again"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds a JSON {type(saved).__name__}, not the settings of a run; {fix}")
    saved = {**EARLIER_RUNS, **saved}
    known = {f.name: f for f in dataclasses.fields(Config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}
    try:
        return Config(**values).validate()
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} holds settings that cannot work ({err}); {fix}") from None


def find_run(run: str | os.PathLike) -> Path:
    """The run folder `run` names: a path to it, or a run's name under the runs folder (`default_output_dir`:
    REID_RUNS, else runs/ at the root of the book's checkout)."""
    from .config import default_output_dir

    path = Path(run).expanduser()
    if path.is_dir():
        return path
    named = Path(default_output_dir()) / path
    also = f" (nor {named})" if len(path.parts) == 1 else ""
    if also and named.is_dir():
        return named
    what = "is a file, not a folder" if path.is_file() else "does not exist"
    raise FileNotFoundError(f"run folder {run} {what}{also}: give the folder a training wrote (<output_dir>/<name>, "
                            f"e.g. runs/smoke), which holds {CONFIG} and {FINAL_WEIGHTS}, or a run's name under "
                            f"{default_output_dir()}")


def weights_path(run_dir: str | os.PathLike, weights: str | os.PathLike | None = None) -> Path:
    """The file `load_model` loads: `weights` if given, else the run's final weights, else (a run that has not
    finished) its last checkpoint."""
    run_dir = Path(run_dir)
    if weights:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"weights file {path} {what} (--weights): give a .pth file a training wrote, e.g. "
                                f"{run_dir / FINAL_WEIGHTS}, or leave --weights out to use the run's own")
    for path in (run_dir / FINAL_WEIGHTS, run_dir / CHECKPOINT):
        if path.is_file():
            return path
    try:
        from .config import default_output_dir

        # the run as it is now: its folder's name and place, wherever it was trained
        cfg = dataclasses.replace(config_of_run(run_dir), name=run_dir.name)
        command = train_command(cfg)
        if run_dir.resolve().parent != Path(default_output_dir()).resolve():
            command = command.replace(" --resume", f" --output-dir {run_dir.parent} --resume")
    except (ValueError, FileNotFoundError):
        command = "the train command that started it, with --resume"
    raise FileNotFoundError(f"no weights in {run_dir}: neither {FINAL_WEIGHTS} nor {CHECKPOINT}, so the run stopped "
                            f"before its first checkpoint (or its weights were moved). Resume it with: {command}")


def describe_weights(run_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """A note when `path` is the last checkpoint of a run that has not finished ("" otherwise)."""
    path = Path(path)
    if path != Path(run_dir) / CHECKPOINT:
        return ""
    try:
        epoch = load_checkpoint(path).get("epoch", "?")
        total = config_of_run(run_dir).max_epochs
    except (ValueError, FileNotFoundError, CheckpointError):
        epoch, total = "?", "?"
    return (f"{run_dir} has not finished training (no {FINAL_WEIGHTS}): using its last checkpoint, {path}, "
            f"epoch {epoch} of {total}")


def load_model(run_dir: str | os.PathLike, device: torch.device | str = "cpu", weights: str | None = None) -> tuple[Baseline, Config]:
    """Rebuild a run's model from its config.json and load its final weights (weights_only). `run_dir`: a run
    folder, or a run's name under the runs folder (`find_run`)."""
    run_dir = find_run(run_dir)
    cfg = config_of_run(run_dir)
    path = weights_path(run_dir, weights)
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        if not weights:
            raise
        reason = str(err).split(" cannot be read (", 1)[-1].split("); it is damaged", 1)[0]
        raise CheckpointError(f"--weights {path} is not a weights file reid can read ({reason}): give a "
                              f"{FINAL_WEIGHTS} or {CHECKPOINT} a training wrote") from None
    state = state["model"] if "model" in state and isinstance(state["model"], dict) else state
    if not isinstance(state, dict) or "classifier.weight" not in state:
        raise ValueError(f"{path} holds no reid model weights (no 'classifier.weight'): was it written by another "
                         "code base? Give the model.pth of a run trained by reid")
    num_classes = state["classifier.weight"].shape[0]
    model = Baseline.from_config(dataclasses.replace(cfg, pretrained="none"), num_classes)
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    shapes = [k for k in mine if k in state and state[k].shape != mine[k].shape]
    if missing or unexpected or shapes:
        first = (missing + unexpected + shapes)[0]
        raise ValueError(f"{path} does not fit the {cfg.backbone} model of {Path(run_dir) / CONFIG}: "
                         f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(shapes)} of another "
                         f"shape (e.g. {first!r}). The weights belong to another architecture: use them with the "
                         "config.json they were trained with")
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


# --------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------
class _Take:
    """The next `n` batches of a running stream, with a length (train_one_epoch asks for one)."""

    def __init__(self, stream, n: int):
        self.stream, self.n = stream, n

    def __iter__(self):
        return itertools.islice(self.stream, self.n)

    def __len__(self) -> int:
        return self.n


def measure_throughput(cfg: Config, steps: int = 20, warmup: int = 3, dataset: Market1501 | None = None) -> float:
    """Training images per second of `train_one_epoch` with the settings of `cfg` (its `train_data` path
    among them): `steps` PK batches timed after `warmup` untimed ones, a fresh model, nothing written."""
    cfg.validate()
    device = get_device(cfg.device)
    seed_everything(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dataset = dataset if dataset is not None else load_dataset(cfg, verbose=False)
    train_loader, _, _, num_classes = make_dataloaders(cfg, dataset)
    batches = training_batches(cfg, train_loader, device)
    sampler = train_loader.batch_sampler

    def epochs():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from batches  # one pass of the sampler per epoch, as in training

    model, loss_fn, optimizer, center_optimizer, amp_dtype, scaler = training_parts(cfg, num_classes, device)
    train_model = torch.compile(model) if cfg.compile else model
    stream = epochs()
    try:
        for n in (warmup, steps):  # the first pass warms up (workers, cuDNN autotuning, compilation)
            record = train_one_epoch(cfg, 0, train_model, loss_fn, _Take(stream, n), optimizer, center_optimizer,
                                     scaler, device, amp_dtype, progress=False)
    finally:
        stream.close()
        shutdown_workers(train_loader)
    return record["images_per_s"]
