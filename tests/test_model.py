import pytest
import torch

from reid import Config
from reid.model import ArcFace, Baseline, load_weights


@pytest.mark.parametrize("backbone, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_output_shapes_train_and_eval(backbone, dim):
    torch.manual_seed(0)
    model = Baseline(10, backbone=backbone, pretrained="none")
    x = torch.randn(4, 3, 64, 32)
    model.train()
    logits, feat = model(x)
    assert logits.shape == (4, 10) and feat.shape == (4, dim)
    model.eval()
    with torch.no_grad():
        after = model(x)
        model.neck_feat = "before"
        before = model(x)
    assert after.shape == before.shape == (4, dim)
    assert not torch.allclose(after, before)


def test_last_stride_one_keeps_a_16_by_8_map_at_256_by_128():
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        s1 = Baseline(5, "resnet50", last_stride=1, pretrained="none").eval().base(x)
        s2 = Baseline(5, "resnet50", last_stride=2, pretrained="none").eval().base(x)
    assert s1.shape == (1, 2048, 16, 8)
    assert s2.shape == (1, 2048, 8, 4)


@pytest.mark.parametrize("stem, relu, kernel", [("tiny_baseline", False, 2), ("bot", False, 3), ("torchvision", True, 3)])
def test_the_stems_by_what_they_do(stem, relu, kernel):
    """Without the ReLU the max-pool sees negative values; the tiny baseline's pools 2x2 windows, stride 2."""
    torch.manual_seed(0)
    model = Baseline(5, "resnet18", pretrained="none", stem=stem).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        into_pool = model.base[:3](x)  # conv1, bn1, then the ReLU or nothing
        pooled = model.base[3](into_pool)
    assert bool((into_pool < 0).any()) is not relu
    assert pooled.shape[-2:] == (16, 8)  # every stem halves the 32x16 map
    # max over windows of `kernel` rows and columns, stride 2; the 3x3 windows are centred on the even
    # positions (padding 1, which a max-pool pads with -inf), the 2x2 ones start there (no padding)
    padded = into_pool if kernel == 2 else torch.nn.functional.pad(into_pool, (1, 1, 1, 1), value=float("-inf"))
    assert torch.equal(pooled, padded.unfold(2, kernel, 2).unfold(3, kernel, 2).amax((-1, -2)))
    assert [k for k in model.state_dict() if k.startswith("base.")][:3] == ["base.0.weight", "base.1.weight",
                                                                          "base.1.bias"]
    assert Config.smoke().stem == "tiny_baseline" and Baseline.from_config(Config.smoke(), 5).base[2].__class__ is \
        torch.nn.Identity


def test_bnneck_bias_is_frozen_and_classifier_has_no_bias():
    model = Baseline(7, "resnet18", pretrained="none")
    assert not model.bottleneck.bias.requires_grad
    assert model.classifier.bias is None
    assert model.classifier.weight.std().item() == pytest.approx(0.001, rel=0.2)


def test_arcface_target_logit_is_s_cos_theta_plus_m():
    torch.manual_seed(0)
    head = ArcFace(8, 5, s=30.0, m=0.5)
    x = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    out = head(x, labels)
    cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(head.weight).T
    theta = torch.acos(cos.clamp(-1, 1))
    for i, y in enumerate(labels):
        if theta[i, y] + 0.5 < torch.pi:
            assert out[i, y].item() == pytest.approx(30 * torch.cos(theta[i, y] + 0.5).item(), abs=1e-3)
        others = [j for j in range(5) if j != y]
        assert torch.allclose(out[i, others], 30 * cos[i, others], atol=1e-4)


def test_arcface_model_needs_labels_in_training():
    model = Baseline(5, "resnet18", pretrained="none", cos_layer=True).train()
    with pytest.raises(ValueError, match="needs the labels"):
        model(torch.randn(2, 3, 64, 32))
    logits, _ = model(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    assert logits.shape == (2, 5)


def test_pretrained_from_local_file_and_clear_errors(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    model = Baseline(5, "resnet18", last_stride=1, pretrained=str(path))
    assert torch.equal(model.base[0].weight, ref.conv1.weight)
    with pytest.raises(FileNotFoundError, match="no such file"):
        Baseline(5, "resnet18", pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="does not fit a resnet50"):
        Baseline(5, "resnet50", pretrained=str(path))


def test_imagenet_offline_says_how_to_provide_the_file(monkeypatch, tmp_path):
    import torchvision

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="pretrained='/path/to/resnet18-.*pth'.*pretrained='none'"):
        Baseline(5, "resnet18", pretrained="imagenet")


def test_checkpoint_for_another_number_of_classes(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(Baseline(10, "resnet18", pretrained="none").state_dict(), path)
    model = Baseline(5, "resnet18", pretrained="none")
    with pytest.raises(ValueError, match="10 classes but the model has 5"):
        load_weights(model, path)
    same = Baseline(10, "resnet18", pretrained="none")
    load_weights(same, path)


def test_from_config():
    cfg = Config.smoke()
    model = Baseline.from_config(cfg, 12)
    assert model.in_planes == 512 and model.num_classes == 12


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_multiply_adds_agree_with_torchvision(backbone):
    """At 224x224 with torchvision's stem and last stride 2 the backbone is torchvision's ResNet: its convolutions
    plus the 1000-way fc give the operation count torchvision publishes with the weights (GFLOPs, as multiply-adds)."""
    import torchvision

    from reid.model import FEATURE_DIMS, WEIGHTS, multiply_adds

    model = Baseline(1000, backbone, last_stride=2, pretrained="none", stem="torchvision").train()
    stages = multiply_adds(model, (224, 224))
    assert [name for name, _ in stages] == ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    assert stages[1][1] == 0 and model.training  # a max-pool multiplies nothing; the mode is put back
    published = getattr(torchvision.models, WEIGHTS[backbone]).IMAGENET1K_V1.meta["_ops"]  # GFLOPs, 3 decimals
    total = sum(n for _, n in stages) + FEATURE_DIMS[backbone] * 1000
    assert total / 1e9 == pytest.approx(published, abs=5e-4)
    assert stages[0][1] == 64 * 112 * 112 * 3 * 7 * 7  # conv1: 64 x 112 x 112 outputs, 3 x 7 x 7 each


def test_last_stride_one_costs_layer4_alone():
    """Last stride 1 leaves every stage before layer4 as it was; layer4 does 3.6 times its arithmetic at 256x128
    (not 4: the 1x1 conv that opens layer4 runs at the smaller size either way)."""
    from reid.model import multiply_adds

    two = dict(multiply_adds(Baseline(5, "resnet50", last_stride=2, pretrained="none"), (256, 128)))
    one = dict(multiply_adds(Baseline(5, "resnet50", last_stride=1, pretrained="none"), (256, 128)))
    assert {k: v for k, v in two.items() if k != "layer4"} == {k: v for k, v in one.items() if k != "layer4"}
    assert one["layer4"] / two["layer4"] == pytest.approx(3.62, abs=0.01)


def test_sizes_and_multiply_adds_of_a_meta_model_are_those_of_a_real_one():
    """Built on the meta device (shapes, no values) the model gives the same sizes and counts, without arithmetic."""
    from reid.model import feature_map_sizes, multiply_adds

    real = Baseline(5, "resnet18", pretrained="none")
    with torch.device("meta"):
        meta = Baseline(5, "resnet18", pretrained="none")
    assert next(meta.parameters()).is_meta
    assert feature_map_sizes(meta, (64, 32)) == feature_map_sizes(real, (64, 32))
    assert multiply_adds(meta, (64, 32)) == multiply_adds(real, (64, 32))
