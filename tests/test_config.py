import pytest

from reid import Config


def test_presets_validate():
    m = Config.market1501().validate()
    assert (m.input_size, m.batch_size, m.num_instances, m.num_identities) == ((256, 128), 64, 4, 16)
    assert (m.optimizer, m.base_lr, m.warmup_epochs, m.steps, m.max_epochs) == ("Adam", 3.5e-4, 10, (40, 70), 120)
    assert (m.margin, m.label_smoothing, m.center_loss_weight, m.center_lr) == (0.3, 0.1, 5e-4, 0.5)
    assert (m.backbone, m.last_stride, m.dataset) == ("resnet50", 1, "market1501")
    s = Config.smoke().validate()
    assert s.dataset == "synthetic" and s.max_epochs < m.max_epochs
    assert Config.smoke(max_epochs=3).max_epochs == 3


def test_every_field_has_a_comment():
    import dataclasses
    import inspect

    import reid.config

    source = inspect.getsource(reid.config.Config)
    for f in dataclasses.fields(Config):
        line = next(line for line in source.splitlines() if line.strip().startswith(f"{f.name}:"))
        assert "#" in line, f"field {f.name} has no comment"


@pytest.mark.parametrize("changes, match", [
    ({"batch_size": 30, "num_instances": 4}, "batch_size=30 is not divisible by num_instances=4"),
    ({"batch_size": 4, "num_instances": 4}, "P < 2"),
    ({"num_instances": 1, "batch_size": 8}, "K >= 2"),
    ({"loss_type": "triplet+arcface"}, "loss_type='triplet\\+arcface' is unknown"),
    ({"distance": "manhattan"}, "distance='manhattan' is unknown"),
    ({"erasing_prob": 1.5}, "erasing_prob"),
    ({"hard_factor": 1.0}, "hard_factor"),
    ({"steps": (70, 40)}, "steps"),
    ({"warmup_epochs": 200}, "warmup_epochs"),
    ({"input_size": (16, 8)}, "input_size"),
    ({"pretrained": "weights.bin"}, "pretrained"),
    ({"last_stride": 3}, "last_stride"),
])
def test_validate_rejects_impossible_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        Config.smoke(**changes).validate()


def test_validate_lists_every_problem():
    with pytest.raises(ValueError) as err:
        Config(loss_type="x", distance="y").validate()
    assert "loss_type" in str(err.value) and "distance" in str(err.value)


def test_book_profiles_are_the_smoke_preset_and_the_paper_recipe_with_a_validation_split():
    assert Config.book("smoke") == Config.smoke()
    market = Config.book("market1501")
    assert market == Config.market1501(name="market1501-book", val_identities=100)
    assert Config.book("market1501", max_epochs=3).max_epochs == 3
    with pytest.raises(ValueError, match="unknown profile 'market'"):
        Config.book("market")
