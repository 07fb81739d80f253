import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from reid import Config
from reid.data import augmentation_steps, denormalize, test_transforms, train_transforms
from reid.data.transforms import RandomErasing, erase

import tiny_baseline_reference as tiny
from ks import assert_same_box_law, box_stats, ks_critical, ks_statistic


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8))


def test_test_transform_is_resize_and_normalise(image):
    cfg = Config.smoke(input_size=(64, 32))
    x = test_transforms(cfg)(image)
    assert x.shape == (3, 64, 32) and x.dtype == torch.float32
    resized = torch.from_numpy(np.array(image.resize((32, 64), Image.BILINEAR))).permute(2, 0, 1) / 255.0
    back = denormalize(x, cfg)
    assert torch.allclose(back, resized, atol=0.05)  # torchvision and PIL antialias differ slightly
    assert torch.equal(test_transforms(cfg)(image), x)  # no randomness


def test_train_transform_shape_and_randomness(image):
    cfg = Config.smoke()
    t = train_transforms(cfg)
    torch.manual_seed(0)
    a = t(image)
    torch.manual_seed(0)
    b = t(image)
    c = t(image)
    assert a.shape == (3, *cfg.input_size)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_erase_sets_exactly_the_box():
    img = torch.arange(2 * 5 * 4, dtype=torch.float32).view(2, 5, 4)
    out = erase(img, 1, 2, 3, 1, (-1.0, -2.0))
    expected = img.clone()
    expected[0, 1:4, 2:3], expected[1, 1:4, 2:3] = -1.0, -2.0
    assert torch.equal(out, expected) and not torch.equal(img, out)  # a copy: the input is left as it was


def erasing_boxes(draw, n=20000):
    boxes = [draw() for _ in range(n)]
    return np.array([b for b in boxes if b is not None], dtype=np.float64)  # (n, 4): top, left, h, w


@pytest.mark.parametrize("size", [(256, 128), (64, 32)])
def test_the_erasing_box_follows_the_tiny_baselines_law(size):
    """Area, aspect ratio and position of the boxes, against the law of the project's own code (Python's
    random), by two-sample Kolmogorov-Smirnov tests; torchvision's law fails the same test."""
    height, width = size
    torch.manual_seed(0)
    ours = erasing_boxes(lambda: RandomErasing(p=1.0).get_params(height, width))
    rng = random.Random(0)
    theirs = erasing_boxes(lambda: tiny.erasing_box(rng, height, width))
    torch.manual_seed(0)
    probe = torch.zeros(3, height, width)
    torchvision_erasing = v2.RandomErasing(p=1.0, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3))
    tv = erasing_boxes(lambda: tuple(torchvision_erasing.make_params([probe])[k] for k in "ijhw"))
    assert len(ours) == len(theirs) == 20000  # every draw found a box within 100 attempts

    assert_same_box_law(ours, theirs, height, width)
    h_w = {name: box_stats(boxes, height, width)["h/w"] for name, boxes in (("ours", ours), ("theirs", theirs), ("tv", tv))}
    assert ks_statistic(h_w["tv"], h_w["theirs"]) > 5 * ks_critical(len(tv), len(theirs))  # log-uniform: squarer
    assert np.median(h_w["ours"]) == pytest.approx(1.9, abs=0.1)


def test_train_transforms_erase_as_configured(image):
    """The training pipeline itself: a box of the fill value, of 2-40 % of the image, in about half the images."""
    cfg = Config.smoke(flip_prob=0.0, padding=0, erasing_prob=1.0)
    value = torch.tensor(cfg.erasing_value).view(3, 1, 1)
    height, width = cfg.input_size
    for seed in range(50):
        torch.manual_seed(seed)
        filled = (train_transforms(cfg)(image) == value).all(0)  # (H, W)
        rows, cols = filled.any(1).nonzero().ravel(), filled.any(0).nonzero().ravel()
        h, w = len(rows), len(cols)
        assert filled.sum() == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # one box
        assert h < height and w < width
        assert 0.02 * height * width - height - width <= h * w <= 0.4 * height * width + height + width  # rounding

    erased = []
    for seed in range(400):
        torch.manual_seed(seed)
        erased.append(bool((train_transforms(Config.smoke(flip_prob=0.0, padding=0))(image) == value).all(0).any()))
    assert 0.4 < np.mean(erased) < 0.6  # p = 0.5: 400 draws, 4 standard deviations either side


def test_flip_and_crop_frequencies(image):
    cfg = Config.smoke(erasing_prob=0.0)
    plain = test_transforms(cfg)(image)
    flips = shifts = 0
    for seed in range(400):
        torch.manual_seed(seed)
        x = train_transforms(Config.smoke(erasing_prob=0.0, padding=0))(image)
        flips += bool(torch.equal(x, plain.flip(-1)))
        torch.manual_seed(seed)
        shifts += not torch.equal(train_transforms(Config.smoke(erasing_prob=0.0, flip_prob=0.0))(image), plain)
    assert 0.4 < flips / 400 < 0.6
    positions = (2 * cfg.padding + 1) ** 2
    assert shifts / 400 == pytest.approx(1 - 1 / positions, abs=0.05)  # one position of 49 is no shift at all


def test_flip_and_pad_crop_steps(image):
    cfg = Config.smoke(input_size=(128, 64))
    steps = augmentation_steps(cfg)
    plain = steps["resize"](image)
    assert torch.allclose(steps["flip"](image), plain.flip(-1))
    torch.manual_seed(1)
    shifted = steps["pad + crop"](image)
    assert shifted.shape == plain.shape
    # a pad-and-crop is a translation: some shift of the padded original equals it
    padded = torch.nn.functional.pad(plain, (cfg.padding,) * 4, value=0.0)
    zero = (torch.zeros(3, 1, 1) - torch.tensor(cfg.pixel_mean).view(3, 1, 1)) / torch.tensor(cfg.pixel_std).view(3, 1, 1)
    padded = torch.where(padded == 0, zero.expand_as(padded), padded)
    found = any(
        torch.allclose(padded[:, dy:dy + 128, dx:dx + 64], shifted, atol=1e-5)
        for dy in range(2 * cfg.padding + 1) for dx in range(2 * cfg.padding + 1)
    )
    assert found


def test_every_augmentation_keeps_the_input_size(image):
    cfg = Config.smoke()
    for name, t in augmentation_steps(cfg).items():
        assert t(image).shape == (3, *cfg.input_size), name
