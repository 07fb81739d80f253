"""The baseline network: a torchvision ResNet with last stride 1, global pooling, a BNNeck, and
a classifier or an ArcFace head.

In training, `Baseline(x, labels)` returns ``(logits, feat)``: the triplet and center losses
act on ``feat``, the pooled feature *before* the BNNeck, and the ID loss on the logits
computed *after* it (Luo et al. 2019, Sec. 3.5). In evaluation it returns the feature
after the BNNeck (or before, with ``neck_feat="before"``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .config import STEMS, Config

FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


def set_last_stride(resnet: torchvision.models.ResNet, stride: int) -> None:
    """Set the stride of layer4's first residual block (torchvision's is 2) on its conv and its shortcut."""
    block = resnet.layer4[0]
    conv = block.conv2 if isinstance(block, torchvision.models.resnet.Bottleneck) else block.conv1
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def stem_layers(resnet: torchvision.models.ResNet, stem: str) -> list[nn.Module]:
    """The stem of `resnet`, the layers before layer1: conv1, bn1, then a ReLU or nothing, then a max-pool.

    "torchvision" is torchvision's (and ImageNet training's) stem: ReLU, 3x3 max-pool of
    stride 2. "bot" drops the ReLU, as the paper's official code does (a line commented "add
    missed relu" there); "tiny_baseline" also drops it and pools 2x2 with stride 2, as
    person-reid-tiny-baseline does. Without the ReLU the max-pool sees negative values: an
    ImageNet network was trained on non-negative ones there. All three halve the map.
    """
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r} is unknown; choose one of {', '.join(map(repr, STEMS))}")
    relu = resnet.relu if stem == "torchvision" else nn.Identity()  # no parameters: the keys stay base.0 ... base.7
    pool = nn.MaxPool2d(kernel_size=2, stride=2) if stem == "tiny_baseline" else resnet.maxpool
    return [resnet.conv1, resnet.bn1, relu, pool]


def load_pretrained(resnet: nn.Module, name: str, pretrained: str) -> None:
    """Initialise `resnet` from ImageNet weights or a local state dict; never silently from scratch.

    ``"imagenet"`` takes torchvision's IMAGENET1K_V1 weights (from the local torch hub cache,
    or downloaded); a path loads that file with ``weights_only=True``. The classifier of the
    ImageNet model (``fc``) is not used.
    """
    if pretrained == "none":
        return
    if pretrained == "imagenet":
        weights = getattr(torchvision.models, WEIGHTS[name]).IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as err:  # URLError offline, HTTP errors, a corrupt cache file
            file = Path(weights.url).name
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise RuntimeError(
                f"ImageNet weights for {name} could not be loaded ({type(err).__name__}: {err}). Offline, download "
                f"{weights.url} elsewhere and either put it at {hub / file} or pass pretrained='/path/to/{file}'. "
                "To train from scratch on purpose, set pretrained='none'."
            ) from None
    else:
        path = Path(os.path.expanduser(pretrained))
        if not path.is_file():
            raise FileNotFoundError(f"pretrained={pretrained!r}: no such file; give the path of a ResNet state dict "
                                    "(.pth), 'imagenet' or 'none'")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = resnet.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"pretrained={pretrained!r} does not fit a {name}: {str(err).splitlines()[1].strip()} ...; "
                         f"give the weights of a torchvision {name}") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"pretrained={pretrained!r} does not fit a {name}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}; give the weights of a torchvision {name}")


class ArcFace(nn.Module):
    """Additive angular margin head (Deng et al., CVPR 2019).

    logit_j = s * cos(theta_j) for j != y and s * cos(theta_y + m) for the true class, where
    cos(theta_j) is the cosine between the feature and the class weight. Where theta_y + m
    would pass pi (beyond it cos(theta_y + m) rises again as theta_y grows), that is where
    cos(theta_y) <= threshold = cos(pi - m), the target logit becomes s * (cos(theta_y) - fallback)
    with fallback = m * sin(m): a fixed margin on the cosine instead (the first-order value of
    cos(theta + m) at theta = pi - m), as person-reid-tiny-baseline's loss/arcface.py does.
    """

    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.5):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.threshold = math.cos(math.pi - m)
        self.fallback = math.sin(math.pi - m) * m

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(x.float()), F.normalize(self.weight.float()))  # (N, C)
        sine = torch.sqrt((1.0 - cosine.pow(2)).clamp(min=1e-7))
        target = cosine * math.cos(self.m) - sine * math.sin(self.m)  # cos(theta + m)
        target = torch.where(cosine > self.threshold, target, cosine - self.fallback)
        one_hot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.s * (one_hot * target + (1.0 - one_hot) * cosine)


class Baseline(nn.Module):
    """ResNet backbone -> global average pooling -> BNNeck -> classifier or ArcFace."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", last_stride: int = 1, pretrained: str = "imagenet",
                 neck: str = "bnneck", neck_feat: str = "after", cos_layer: bool = False,
                 arcface_scale: float = 30.0, arcface_margin: float = 0.5, stem: str = "bot"):
        super().__init__()
        if backbone not in FEATURE_DIMS:
            raise ValueError(f"backbone={backbone!r} is unknown; choose one of {', '.join(FEATURE_DIMS)}")
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}: an ID loss needs at least 2 training identities")
        resnet = getattr(torchvision.models, backbone)(weights=None)
        set_last_stride(resnet, last_stride)
        load_pretrained(resnet, backbone, pretrained)
        self.base = nn.Sequential(*stem_layers(resnet, stem), resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.in_planes = FEATURE_DIMS[backbone]
        self.num_classes = num_classes
        self.neck, self.neck_feat = neck, neck_feat
        self.bottleneck = nn.BatchNorm1d(self.in_planes)
        self.bottleneck.bias.requires_grad_(False)  # BNNeck: no shift, so the feature stays centred
        nn.init.constant_(self.bottleneck.weight, 1.0)
        nn.init.constant_(self.bottleneck.bias, 0.0)
        if cos_layer:
            self.classifier = ArcFace(self.in_planes, num_classes, arcface_scale, arcface_margin)
        else:
            self.classifier = nn.Linear(self.in_planes, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.cos_layer = cos_layer

    @classmethod
    def from_config(cls, cfg: Config, num_classes: int) -> "Baseline":
        return cls(num_classes, cfg.backbone, cfg.last_stride, cfg.pretrained, cfg.neck, cfg.neck_feat,
                   cfg.cos_layer, cfg.arcface_scale, cfg.arcface_margin, cfg.stem)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        feat = self.gap(self.base(x)).flatten(1)  # (N, in_planes): for triplet and center losses
        bn_feat = self.bottleneck(feat) if self.neck == "bnneck" else feat  # (N, in_planes): for the ID loss
        if not self.training:
            return bn_feat if self.neck_feat == "after" else feat
        if self.cos_layer:
            if labels is None:
                raise ValueError("the ArcFace head needs the labels in training: call model(images, labels)")
            logits = self.classifier(bn_feat, labels)
        else:
            logits = self.classifier(bn_feat)
        return logits, feat


def load_weights(model: Baseline, path: str | os.PathLike) -> None:
    """Load a state dict saved from a `Baseline` (weights only), checking that it fits."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint
    key = "classifier.weight"
    if key in state and state[key].shape != model.state_dict()[key].shape:
        raise ValueError(
            f"{path}: its classifier has {state[key].shape[0]} classes but the model has {model.num_classes}. "
            "It was trained on another dataset; to extract features only, build the model with "
            f"num_classes={state[key].shape[0]}, or drop the 'classifier.*' keys and load with strict=False"
        )
    model.load_state_dict(state)


STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


@torch.no_grad()
def feature_map_sizes(model: Baseline, input_size: tuple[int, int] = (256, 128)) -> list[tuple[str, tuple[int, ...]]]:
    """(stage name, (C, H, W)) after each stage of the backbone for one image of `input_size`."""
    x = torch.zeros(1, 3, *input_size, device=next(model.parameters()).device)  # a "meta" model: no arithmetic
    sizes = []
    was_training = model.training
    model.eval()
    for name, stage in zip(STAGES, model.base):
        x = stage(x)
        if name in ("conv1", "maxpool") or name.startswith("layer"):
            sizes.append((name, tuple(x.shape[1:])))
    model.train(was_training)
    return sizes


@torch.no_grad()
def multiply_adds(model: Baseline, input_size: tuple[int, int] = (256, 128)) -> list[tuple[str, int]]:
    """(stage name, multiply-adds of its convolutions) for one image of `input_size`, the stages of
    `feature_map_sizes` (the stem's conv1 and max-pool, then layer1-4); BatchNorm, ReLU and pooling are
    not counted. A convolution does (C_in / groups) x k_h x k_w multiply-adds per output value. Like
    `feature_map_sizes` it works on a model built on the "meta" device (shapes without values), at no cost."""
    counts: dict[nn.Module, int] = {}

    def count(conv, inputs, output):
        counts[conv] = output[0].numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]

    convs = [m for m in model.base.modules() if isinstance(m, nn.Conv2d)]
    hooks = [conv.register_forward_hook(count) for conv in convs]
    was_training = model.training
    try:
        model.eval()
        model.base(torch.zeros(1, 3, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    stages = [(name, stage) for name, stage in zip(STAGES, model.base)
              if name in ("conv1", "maxpool") or name.startswith("layer")]
    return [(name, sum(counts.get(m, 0) for m in stage.modules())) for name, stage in stages]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
