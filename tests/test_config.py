import pytest

from reid import Config

import tiny_baseline_reference as tiny


def test_the_tiny_baseline_preset_is_its_configuration():
    c, ref = Config.tiny_baseline().validate(), tiny.SETTINGS
    assert (c.max_epochs, c.batch_size, c.num_instances, list(c.input_size)) == (
        ref["MAX_EPOCHS"], ref["BATCH_SIZE"], ref["NUM_IMG_PER_ID"], ref["INPUT_SIZE"])
    assert (c.backbone, c.last_stride, c.loss_type, c.optimizer, c.base_lr) == (
        ref["MODEL_NAME"], ref["LAST_STRIDE"], ref["LOSS_TYPE"], ref["OPTIMIZER"], ref["BASE_LR"])
    assert (c.id_loss_weight, c.triplet_loss_weight, c.center_loss_weight, c.center_lr, c.margin) == (
        ref["CE_LOSS_WEIGHT"], ref["TRIPLET_LOSS_WEIGHT"], ref["CENTER_LOSS_WEIGHT"], ref["CENTER_LR"], ref["MARGIN"])
    assert (c.weight_decay, c.bias_lr_factor, c.weight_decay_bias, c.momentum) == (
        ref["WEIGHT_DECAY"], ref["BIAS_LR_FACTOR"], ref["WEIGHT_DECAY_BIAS"], ref["MOMENTUM"])
    assert (list(c.steps), c.gamma, c.warmup_factor, c.warmup_epochs, c.warmup_method) == (
        ref["STEPS"], ref["GAMMA"], ref["WARMUP_FACTOR"], ref["WARMUP_EPOCHS"], ref["WARMUP_METHOD"])
    assert (c.test_batch_size, c.feat_norm, c.distance, c.checkpoint_period, c.eval_period) == (
        ref["TEST_IMS_PER_BATCH"], ref["FEAT_NORM"] == "yes", ref["TEST_METHOD"], ref["CHECKPOINT_PERIOD"],
        ref["EVAL_PERIOD"])
    assert (c.rerank_k1, c.rerank_k2, c.rerank_lambda) == (
        ref["RERANKING_K1"], ref["RERANKING_K2"], ref["RERANKING_LAMBDA"])
    assert (c.flip_prob, c.padding, c.erasing_prob, tuple(c.erasing_scale), c.erasing_value) == (
        ref["FLIP_PROB"], ref["PADDING"], ref["ERASING_PROB"], (ref["ERASING_SL"], ref["ERASING_SH"]),
        ref["ERASING_MEAN"])
    assert (list(c.pixel_mean), list(c.pixel_std)) == (ref["PIXEL_MEAN"], ref["PIXEL_STD"])
    assert (c.stem, c.label_smoothing, c.hard_factor, c.val_identities, c.eval_amp) == ("tiny_baseline", 0.1, 0.0, 0,
                                                                                         False)


def test_the_papers_preset_differs_from_it_where_the_paper_does():
    paper, tb = Config.market1501().validate(), Config.tiny_baseline()
    assert (paper.max_epochs, paper.steps, paper.stem) == (120, (40, 70), "bot")
    assert (paper.rerank_k1, paper.rerank_k2, paper.rerank_lambda) == (20, 6, 0.3)
    # reid-strong-baseline fills the erased box with its INPUT.PIXEL_MEAN (ImageNet's mean, 0..1), after normalising
    assert paper.erasing_value == paper.pixel_mean == (0.485, 0.456, 0.406)
    changed = {k for k, v in paper.to_dict().items() if tb.to_dict()[k] != v}
    assert changed == {"name", "max_epochs", "steps", "stem", "eval_period", "checkpoint_period", "rerank_k1",
                       "rerank_k2", "rerank_lambda", "erasing_value"}
    s = Config.smoke().validate()
    assert s.dataset == "synthetic" and s.max_epochs < paper.max_epochs and s.stem == "tiny_baseline"
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
    ({"stem": "resnet"}, "stem='resnet' is unknown"),
])
def test_validate_rejects_impossible_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        Config.smoke(**changes).validate()


def test_validate_lists_every_problem():
    with pytest.raises(ValueError) as err:
        Config(loss_type="x", distance="y").validate()
    assert "loss_type" in str(err.value) and "distance" in str(err.value)


def test_book_profiles_are_the_smoke_preset_and_the_tiny_baseline_on_every_identity():
    assert Config.book("smoke") == Config.smoke() and Config.smoke().val_identities == 0
    market = Config.book("market1501")
    assert market == Config.tiny_baseline(name="market1501-book") and market.val_identities == 0
    assert Config.book("market1501", max_epochs=3).max_epochs == 3
    with pytest.raises(ValueError, match="unknown profile 'market'"):
        Config.book("market")
