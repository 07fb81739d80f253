import pytest
import torch

from reid import Config
from reid.losses import make_loss
from reid.model import Baseline
from reid.solver import lr_per_epoch, make_optimizers, make_scheduler, parameter_groups, seed_lr


@pytest.mark.parametrize("changes", [{}, {"warmup_method": "constant"}, {"warmup_epochs": 0}, {"steps": (5, 6, 90)}])
def test_schedule_equals_the_seed_formula_every_epoch(changes):
    cfg = Config.market1501(**changes)
    rates = lr_per_epoch(cfg)
    assert len(rates) == cfg.max_epochs
    for epochs_done, lr in enumerate(rates):
        assert lr == pytest.approx(seed_lr(cfg, epochs_done), rel=1e-12)


def test_schedule_at_chosen_epochs():
    cfg = Config.market1501()
    rates = lr_per_epoch(cfg)  # rates[e - 1] is the lr epoch e (1-based) trains at
    assert rates[0] == pytest.approx(3.5e-6)  # 0.01 x base
    assert rates[5] == pytest.approx(3.5e-4 * (0.01 * 0.5 + 0.5))  # half way through the warmup
    assert rates[10] == rates[39] == pytest.approx(3.5e-4)
    assert rates[40] == rates[69] == pytest.approx(3.5e-5)
    assert rates[70] == rates[119] == pytest.approx(3.5e-6)


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
