"""The training loop: resume, atomic checkpoints, NaN, the CLI, two processes."""

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reid import Config
from reid.data import load_dataset, make_dataloaders
from reid.engine import (CHECKPOINT, FINAL_WEIGHTS, HISTORY, load_checkpoint, load_history, load_model,
                         save_checkpoint, train, train_one_epoch, train_one_epoch_plain, training_parts)
from reid.losses import BaselineLoss, make_loss
from reid.model import Baseline
from reid.solver import make_optimizers

import tiny_baseline_reference
from limits import limit

REPO = Path(__file__).resolve().parents[1]


def tiny(tmp_path, **changes) -> Config:
    base = dict(data_root=str(tmp_path / "data"), synthetic_preset="tiny", val_identities=0, input_size=(32, 16),
                batch_size=16, max_epochs=3, warmup_epochs=1, steps=(2,), eval_period=3, checkpoint_period=1, num_workers=0,
                output_dir=str(tmp_path / "runs"), name="tiny", log_period=2)
    base.update(changes)
    return Config.smoke(**base)


@pytest.fixture
def tiny_data(tiny_root, tmp_path):
    """The session's tiny synthetic set, visible under tmp_path/data."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / tiny_root.name).symlink_to(tiny_root)
    return tmp_path


def cli(*args, env_extra=None, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "reid", *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def cli_options(cfg: Config) -> list[str]:
    return ["--data-root", cfg.data_root, "--synthetic-preset", "tiny", "--input-size", "32", "16",
            "--batch-size", "16", "--val-identities", "0", "--max-epochs", str(cfg.max_epochs),
            "--warmup-epochs", str(cfg.warmup_epochs), "--steps", "2",
            "--eval-period", "3", "--checkpoint-period", "1", "--num-workers", "0", "--output-dir", cfg.output_dir,
            "--name", cfg.name, "--log-period", "2", "--quiet"]


def test_train_writes_history_checkpoint_and_weights(tiny_data):
    cfg = tiny(tiny_data)
    result = train(cfg, progress=False)
    run = cfg.run_dir
    assert {CHECKPOINT, FINAL_WEIGHTS, HISTORY, "config.json"} <= {p.name for p in run.iterdir()}
    history = load_history(run)
    assert [h["epoch"] for h in history] == [1, 2, 3] == [h["epoch"] for h in result.history]
    assert {"loss_id", "loss_triplet", "loss_center", "accuracy", "lr", "images_per_s"} <= set(history[0])
    assert "mAP" in history[2] and "mAP" not in history[0]  # evaluated every eval_period epochs
    # the rate each epoch trained at: the tiny baseline's schedule, stepped first in each epoch as its loop does
    assert [h["lr"] for h in history] == pytest.approx(tiny_baseline_reference.training_lrs_for(cfg), rel=1e-12)
    model, saved = load_model(run)
    assert saved.name == "tiny" and saved.input_size == (32, 16)
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(FileExistsError, match="pass resume=True"):
        train(cfg, progress=False)  # never overwrite a run by accident
    again = train(cfg, resume=True, progress=False)  # a finished run: returns at once
    assert again.history == result.history
    with pytest.raises(ValueError, match=r"these settings differ from the saved run: base_lr \(saved 0.00035, now "
                                         r"0.001\)\. With them it is another model: give it another name "
                                         r"\(cfg.name = 'tiny-base_lr0.001', --name tiny-base_lr0.001\)"):
        train(tiny(tiny_data, base_lr=1e-3), resume=True, progress=False)


def test_killed_run_resumes_to_bit_identical_weights(tiny_data):
    reference = train(tiny(tiny_data, name="straight"), progress=False).model.state_dict()

    cfg = tiny(tiny_data, name="killed")
    proc = cli("train", *cli_options(cfg))
    ckpt = cfg.run_dir / CHECKPOINT
    deadline = time.time() + limit(120)
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # during epoch 2 (the checkpoint of epoch 1 is on disk)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()
    assert not (cfg.run_dir / FINAL_WEIGHTS).exists()  # really interrupted before the end
    assert load_checkpoint(ckpt)["epoch"] < cfg.max_epochs

    resumed = cli("train", *cli_options(cfg), "--resume")
    out, _ = resumed.communicate(timeout=limit(300))
    assert resumed.returncode == 0, out
    weights = torch.load(cfg.run_dir / FINAL_WEIGHTS, weights_only=True)
    assert weights.keys() == reference.keys()
    for key in reference:
        assert torch.equal(weights[key], reference[key]), key
    assert [h["epoch"] for h in load_history(cfg.run_dir)] == [1, 2, 3]


def test_failed_checkpoint_write_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    class Explodes:
        def __reduce__(self):
            raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed while writing"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(1000), "boom": Explodes()})
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temporary file left behind


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "ckpt.pth"
    script = (f"import torch\nfrom reid.engine import save_checkpoint\ni = 0\nwhile True:\n"
              f"    save_checkpoint({str(path)!r}, {{'epoch': i, 'w': torch.full((4_000_000,), float(i))}})\n"
              f"    i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + limit(60)
    while not path.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # several writes in, and most likely in the middle of one
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(path)
    assert torch.all(state["w"] == state["epoch"])


def test_nan_loss_stops_with_epoch_and_step(tiny_data, monkeypatch):
    calls = {"n": 0}
    forward = BaselineLoss.forward

    def poisoned(self, logits, feat, labels):
        calls["n"] += 1
        total, parts = forward(self, logits, feat, labels)
        return (total * float("nan"), parts) if calls["n"] == 3 else (total, parts)

    monkeypatch.setattr(BaselineLoss, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, step 3/\d+.*no checkpoint"):
        train(tiny(tiny_data, log_period=50), progress=False)


def test_cli_trains_and_tests(tiny_data):
    cfg = tiny(tiny_data, max_epochs=1, warmup_epochs=0, name="cli")
    proc = cli("train", *cli_options(cfg))
    out, _ = proc.communicate(timeout=limit(300))
    assert proc.returncode == 0, out
    assert "final: mAP" in out
    assert f"files in {cfg.run_dir.resolve()}" in out  # where the run is, said as a full path
    proc = cli("test", "--run", str(cfg.run_dir), "--num-workers", "0")
    out, _ = proc.communicate(timeout=limit(300))
    assert proc.returncode == 0, out
    rows = [line for line in out.splitlines() if line.startswith("cosine")]
    assert len(rows) == 4, out
    assert rows[1].startswith("cosine + re-ranking") and rows[3].startswith("cosine + flip + re-ranking")
    assert json.loads((cfg.run_dir / "config.json").read_text())["max_epochs"] == 1


def test_cli_rejects_bad_settings(tiny_data):
    proc = cli("train", "--batch-size", "30", "--num-instances", "4", "--output-dir", str(tiny_data / "runs"))
    out, _ = proc.communicate(timeout=limit(120))
    assert proc.returncode == 2 and "batch_size=30 is not divisible by num_instances=4" in out
    assert "Traceback" not in out


def test_two_processes_with_gloo(tiny_data):
    cfg = tiny(tiny_data, max_epochs=1, warmup_epochs=0, name="ddp")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "reid", "train", *cli_options(cfg)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=limit(180))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("training 'ddp'") == 1  # only rank 0 reports
    history = load_history(cfg.run_dir)
    assert len(history) == 1 and "mAP" in history[0]


def test_one_sampler_epoch_per_training_epoch_with_workers(tiny_data):
    # persistent workers restart their epoch on every iter(); the loop must make only one
    cfg = tiny(tiny_data, num_workers=2, max_epochs=2, warmup_epochs=0, eval_period=5, name="workers",
               train_data="loader")
    train(cfg, progress=True)
    assert load_checkpoint(cfg.run_dir / CHECKPOINT)["sampler"]["epoch"] == 2


def test_a_training_step_moves_the_centers_by_the_unweighted_center_loss_gradient(tiny_data):
    """The centers' SGD step sees the gradient of L_C itself: the weight beta is divided back out
    (the tiny baseline's `param.grad *= 1 / CENTER_LOSS_WEIGHT`), so they move by -center_lr x dL_C/dc."""
    cfg = tiny(tiny_data, channels_last=False)
    dataset = load_dataset(cfg, verbose=False)
    loader, _, _, num_classes = make_dataloaders(cfg, dataset)
    images, pids, camids, paths = next(iter(loader))
    model = Baseline.from_config(cfg, num_classes)
    loss_fn = make_loss(cfg, num_classes, model.in_planes)
    optimizer, center_optimizer = make_optimizers(cfg, model, loss_fn)

    centers = loss_fn.center.centers.detach().clone().requires_grad_()
    _, feat = copy.deepcopy(model).train()(images, pids)  # the features the step will see
    by_hand = (feat.detach() - centers[pids]).pow(2).sum(1).mean()  # L_C, unweighted
    expected = centers.detach() - cfg.center_lr * torch.autograd.grad(by_hand, centers)[0]

    train_one_epoch(cfg, 1, model, loss_fn, [(images, pids, camids, paths)], optimizer, center_optimizer,
                    torch.amp.GradScaler("cpu", enabled=False), torch.device("cpu"), None, progress=False)
    moved = (expected - centers.detach()).abs().max()
    assert moved > 1e-3  # a visible step, that beta = 5e-4 would have shrunk 2000-fold
    assert torch.allclose(loss_fn.center.centers.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hard_factor", [0.0, 0.2])
def test_the_plain_loop_of_chapter_5_takes_the_steps_of_train_one_epoch(tiny_data, hard_factor):
    """Chapter 5 shows `train_one_epoch_plain` first: on the CPU it must take the package loop's very steps
    (the same loss at every step and the same weights and centers after them, to the last bit)."""
    from reid.utils import seed_everything

    cfg = tiny(tiny_data, hard_factor=hard_factor)
    dataset = load_dataset(cfg, verbose=False)
    loader, _, _, num_classes = make_dataloaders(cfg, dataset)
    batches = [batch for _, batch in zip(range(4), loader)]
    cpu = torch.device("cpu")

    def fresh():
        seed_everything(cfg.seed)
        return training_parts(cfg, num_classes, cpu)

    model, loss_fn, optimizer, center_optimizer, _, _ = fresh()
    plain = train_one_epoch_plain(cfg, model, loss_fn, batches, optimizer, center_optimizer)
    model2, loss_fn2, optimizer2, center_optimizer2, amp_dtype, scaler = fresh()
    package = [train_one_epoch(cfg, 1, model2, loss_fn2, [batch], optimizer2, center_optimizer2, scaler, cpu,
                               amp_dtype, progress=False)["loss_total"] for batch in batches]
    assert len(plain) == 4 and plain == package and len(set(plain)) == 4  # four steps, each loss to the last bit
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loss_fn.center.centers, loss_fn2.center.centers)
    with pytest.raises(ValueError, match="three losses"):
        softmax_only = tiny(tiny_data, loss_type="softmax")
        train_one_epoch_plain(softmax_only, model, make_loss(softmax_only, num_classes, model.in_planes), batches,
                              optimizer, None)


@pytest.mark.parametrize("train_data", ["device", "loader"])
def test_a_resumed_run_ends_as_a_straight_one_on_either_data_path(tiny_data, train_data):
    straight = train(tiny(tiny_data, name=f"straight-{train_data}", train_data=train_data), progress=False)
    assert {h["train_data"] for h in straight.history} == {train_data}
    cfg = tiny(tiny_data, name=f"stopped-{train_data}", train_data=train_data, max_epochs=2)
    train(cfg, progress=False)
    resumed = train(dataclasses.replace(cfg, max_epochs=3), resume=True, progress=False)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_the_compile_switch_compiles_the_training_model_only(tiny_data, monkeypatch):
    compiled = []

    def fake_compile(module, *args, **kwargs):  # the wiring, without minutes of compilation on a CPU
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    train(tiny(tiny_data, name="plain", max_epochs=1, warmup_epochs=0), progress=False)
    assert compiled == []
    result = train(tiny(tiny_data, name="compiled", max_epochs=1, warmup_epochs=0, compile=True), progress=False)
    assert compiled == [result.model]


def test_a_run_written_before_the_stem_setting_loads_with_the_stem_it_was_trained_with(tiny_data):
    cfg = tiny(tiny_data, name="older", max_epochs=1, warmup_epochs=0, stem="torchvision", train_data="loader")
    train(cfg, progress=False)
    saved = json.loads((cfg.run_dir / "config.json").read_text())
    for key in ("stem", "train_data", "compile", "device_data_max_gb", "eval_amp"):
        del saved[key]  # as config.json was written before these settings existed
    (cfg.run_dir / "config.json").write_text(json.dumps(saved))
    model, loaded = load_model(cfg.run_dir)
    assert loaded.stem == "torchvision" and isinstance(model.base[2], torch.nn.ReLU)
    checkpoint = cfg.run_dir / CHECKPOINT
    state = load_checkpoint(checkpoint)
    state["config"] = saved
    save_checkpoint(checkpoint, state)
    assert train(cfg, resume=True, progress=False).history  # same recipe: resumes (here: finished)
    with pytest.raises(ValueError, match="differ from the saved run: stem .saved 'torchvision'.*train_data"):
        train(tiny(tiny_data, name="older", max_epochs=1, warmup_epochs=0), resume=True, progress=False)


def test_a_long_run_that_is_not_trained_stops_at_once_and_says_what_trains_it(tmp_path, monkeypatch):
    from reid.engine import RunNotTrainedError, trained_model
    from reid.results import reproduce_table, tuning_config

    monkeypatch.setenv("REID_RUNS", str(tmp_path / "drive-runs"))
    cfg = Config.book("market1501", data_root=str(tmp_path / "no-data"))  # no dataset either: nothing may load it
    started = time.process_time()  # CPU time: no work done, however busy the machine
    with pytest.raises(RunNotTrainedError) as err:
        trained_model(tuning_config(cfg))
    message = str(err.value)
    assert time.process_time() - started < 1
    assert "'market1501-book-hem-val' is not trained: there is no such run" in message
    assert f"REID_RUNS={str(tmp_path / 'drive-runs')!r}" in message and "market1501_on_colab.ipynb" in message
    assert ("python -m reid train --preset tiny_baseline --name market1501-book-hem-val --val-identities 100 "
            "--hard-factor 0.2 --resume") in message
    with pytest.raises(RunNotTrainedError, match="'market1501-book' is not trained"):
        reproduce_table(cfg)  # before it loads the (absent) dataset
    assert not (tmp_path / "drive-runs").exists()
    monkeypatch.delenv("REID_RUNS")  # the default: runs/ at the root of the checkout, wherever a chapter runs
    from reid.config import book_checkout

    default = "at the root of the book's checkout" if book_checkout() else "under the working directory"
    with pytest.raises(RunNotTrainedError, match=f"REID_RUNS is not set, so runs/ {default}"):
        trained_model(Config.book("market1501", name="never-trained", data_root=str(tmp_path / "no-data")))


def test_a_quick_run_trains_on_demand_and_a_finished_one_loads_without_training(tiny_data):
    from reid.engine import RunNotTrainedError, epochs_trained, trained_model

    cfg = tiny(tiny_data, max_epochs=1, warmup_epochs=0, steps=(1,), eval_period=1)
    with pytest.raises(RunNotTrainedError, match="there is no such run"):
        trained_model(cfg, progress=False, train_if_missing=False)
    model, history = trained_model(cfg, progress=False)  # the synthetic set: minutes at most, so it trains
    assert len(history) == 1 == epochs_trained(cfg)
    _, again = trained_model(cfg, progress=False, train_if_missing=False)
    assert again == history
    with pytest.raises(RunNotTrainedError, match="it has 1 of 2 epochs"):
        trained_model(dataclasses.replace(cfg, max_epochs=2), progress=False, train_if_missing=False)


@pytest.mark.parametrize("make", [lambda: Config.book("smoke", max_epochs=3, name="x"),
                                  lambda: Config.tiny_baseline(hard_factor=0.2, val_identities=100, amp=False),
                                  lambda: Config.market1501(steps=(30, 60), erasing_ratio=(0.3, 1 / 0.3), name="a b")])
def test_the_train_command_in_the_message_rebuilds_the_config(make):
    import argparse
    import shlex

    from reid.__main__ import add_config_options, config_from_args
    from reid.config import train_command

    cfg = make()
    words = shlex.split(train_command(cfg))
    assert words[:4] == ["python", "-m", "reid", "train"] and words[-1] == "--resume"
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    assert config_from_args(parser.parse_args(words[4:-1])) == cfg


@pytest.mark.parametrize("device", ["tpu", "cuda:99"])
def test_train_checks_its_device_before_any_work(device, tmp_path, capsys):
    """As test, search and export do: a device this machine does not have is a setting to fix (exit 2), not a
    traceback from inside the training loop."""
    from reid.__main__ import main

    code = main(["train", "--device", device, "--output-dir", str(tmp_path / "runs"), "--name", "t"])
    err = capsys.readouterr().err
    assert code == 2 and "--device" in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()  # nothing written
