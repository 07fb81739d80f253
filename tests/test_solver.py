import copy

import pytest
import torch

from reid import Config
from reid.losses import make_loss
from reid.model import Baseline
from reid.solver import lr_per_epoch, make_optimizers, make_scheduler, parameter_groups, warmup_multistep_lr

import tiny_baseline_reference as tiny


@pytest.mark.parametrize("changes", [{}, {"warmup_method": "constant"}, {"warmup_epochs": 0}, {"steps": (5, 6, 90)},
                                     {"max_epochs": 10, "warmup_epochs": 2, "steps": (6, 9)}])
@pytest.mark.parametrize("preset", [Config.market1501, Config.tiny_baseline])
def test_schedule_is_the_tiny_baselines_loop_every_epoch(preset, changes):
    """The torch schedulers, stepped as the engine steps them, give every epoch the rate the tiny baseline's
    WarmupMultiStepLR gives it when its loop calls step() first in the epoch."""
    cfg = preset(**changes)
    rates = lr_per_epoch(cfg)
    assert rates == pytest.approx(tiny.training_lrs_for(cfg), rel=1e-12, abs=0)
    assert [warmup_multistep_lr(cfg, e) for e in range(1, cfg.max_epochs + 1)] == pytest.approx(rates, rel=1e-12)


def test_schedule_at_the_epochs_the_recipe_names():
    rates = lr_per_epoch(Config.tiny_baseline())  # rates[e - 1]: the rate epoch e trains at
    assert rates[0] == pytest.approx(3.5e-4 * (0.01 * 0.9 + 0.1))  # epoch 1: one tenth into the warmup
    assert rates[8] < rates[9] == rates[38] == pytest.approx(3.5e-4)  # epoch 10 is the first at the full rate
    assert rates[39] == rates[68] == pytest.approx(3.5e-5)  # the steps land on epochs 40, 70 and 130
    assert rates[69] == rates[128] == pytest.approx(3.5e-6)
    assert rates[129] == rates[199] == pytest.approx(3.5e-7)


@pytest.mark.parametrize("preset", [Config.market1501, Config.tiny_baseline, Config.smoke])
def test_torchs_order_trains_every_epoch_at_the_rate_of_the_one_before(preset):
    """Stepping after each epoch (torch's usual order) shifts the schedule one epoch late: epoch e trains at
    lr(e - 1), epoch 1 at the warmup's start, warmup_factor x base_lr (chapter 5's figure and exercise)."""
    cfg = preset()
    first, after = lr_per_epoch(cfg), lr_per_epoch(cfg, step_first=False)
    assert after[0] == pytest.approx(cfg.warmup_factor * cfg.base_lr, rel=1e-12)
    assert after[1:] == pytest.approx(first[:-1], rel=1e-12)
    differ = [e for e, (a, b) in enumerate(zip(first, after), 1) if a != pytest.approx(b, rel=1e-9)]
    assert differ == list(range(1, cfg.warmup_epochs + 1)) + [s for s in cfg.steps if s <= cfg.max_epochs]


def test_optimizer_groups_and_center_sgd():
    cfg = Config.smoke(bias_lr_factor=2.0, weight_decay_bias=0.0)
    model = Baseline(10, "resnet18", pretrained="none")
    loss = make_loss(cfg, 10, model.in_planes)
    groups = parameter_groups(cfg, model)
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_params
    assert groups[1]["lr"] == 2 * cfg.base_lr and groups[1]["weight_decay"] == 0.0
    assert not any(p is model.bottleneck.bias for g in groups for p in g["params"])  # frozen BNNeck bias
    opt, center_opt = make_optimizers(cfg, model, loss)
    assert isinstance(opt, torch.optim.Adam)
    assert isinstance(center_opt, torch.optim.SGD) and center_opt.param_groups[0]["lr"] == cfg.center_lr
    _, none = make_optimizers(Config.smoke(loss_type="triplet+softmax"), model, make_loss(
        Config.smoke(loss_type="triplet+softmax"), 10, model.in_planes))
    assert none is None


def test_scheduler_state_round_trip():
    cfg = Config.smoke()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.base_lr)
    sched = make_scheduler(cfg, opt)
    for _ in range(3):
        opt.step()
        sched.step()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.base_lr)
    sched2 = make_scheduler(cfg, opt2)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    for _ in range(15):
        opt.step(), opt2.step()
        sched.step(), sched2.step()
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_training_takes_torchs_fused_adam_on_the_cpu_and_it_steps_as_the_loop_does():
    from reid.engine import training_parts

    torch.manual_seed(0)
    model, loss_fn, fused, *_ = training_parts(Config.smoke(), 10, torch.device("cpu"))
    assert fused.defaults["fused"] is True  # one pass over the weights (38 ms a step in the loop here, 9 fused)
    twin = copy.deepcopy(model)
    start = [p.detach().clone() for p in model.parameters()]
    loop, _ = make_optimizers(Config.smoke(), twin, loss_fn)
    assert not loop.defaults["fused"]
    torch.manual_seed(1)
    for net in (model, twin):
        for p in net.parameters():
            p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 1e-2
    for _ in range(3):
        fused.step()
        loop.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name  # the same update, up to float rounding
    trained = [(a, s) for a, s in zip(model.parameters(), start) if a.requires_grad]  # BNNeck's bias is frozen
    assert all((a - s).abs().max() > 1e-4 for a, s in trained)  # and every trained weight moved
