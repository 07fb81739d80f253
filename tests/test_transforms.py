import numpy as np
import pytest
import torch
from PIL import Image

from reid import Config
from reid.data import augmentation_steps, denormalize, test_transforms, train_transforms


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


def test_random_erasing_fills_with_the_seed_value(image):
    cfg = Config.smoke(erasing_prob=1.0, flip_prob=0.0, padding=0)
    x = augmentation_steps(cfg)["erasing"](image)
    value = torch.tensor(cfg.erasing_value).view(3, 1, 1)
    filled = (x == value).all(dim=0)
    frac = filled.float().mean().item()
    assert cfg.erasing_scale[0] * 0.8 <= frac <= cfg.erasing_scale[1] * 1.2


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
