"""Augmentation on the device, a batch at a time: each image as the per-image pipeline would do it,
with the published laws; the decoded split and its cache; the batches the engine trains on."""

import random

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from reid import Config
from reid.data import load_dataset, make_dataloaders
from reid.data.batch_augment import ATTEMPTS, AugmentParams, apply_params, augment_batch, draw_params
from reid.data.decoded import DeviceBatches, decode_split, decoded_cache, storage_size, training_batches
from reid.data.transforms import erase

import tiny_baseline_reference as tiny
from ks import assert_same_box_law


def one_image(img: torch.Tensor, p: AugmentParams, i: int, cfg: Config) -> torch.Tensor:
    """The per-image pipeline with image i's parameters: resize, flip, pad + crop, normalise, erase."""
    height, width = cfg.input_size
    x = img.float() / 255
    if tuple(x.shape[-2:]) != (height, width):
        x = TF.resize(x, [height, width], antialias=True)
    if p.flip[i]:
        x = TF.horizontal_flip(x)
    x = TF.pad(x, [cfg.padding] * 4, fill=0.0)
    x = TF.crop(x, int(p.top[i]), int(p.left[i]), height, width)
    x = TF.normalize(x, list(cfg.pixel_mean), list(cfg.pixel_std))
    if p.erase[i]:
        x = erase(x, int(p.box_top[i]), int(p.box_left[i]), int(p.box_h[i]), int(p.box_w[i]), cfg.erasing_value)
    return x


@pytest.mark.parametrize("stored, size, padding", [((128, 64), (64, 32), 3), ((128, 64), (256, 128), 10),
                                                    ((64, 32), (64, 32), 0)])
def test_a_batch_is_each_image_through_the_per_image_pipeline(stored, size, padding):
    cfg = Config.smoke(input_size=size, padding=padding, erasing_prob=0.7)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (12, 3, *stored), dtype=torch.uint8, generator=g)
    params = draw_params(len(images), cfg, g)
    assert params.flip.any() and (~params.flip).any() and params.erase.any() and (~params.erase).any()
    batch = apply_params(images, params, cfg)
    assert batch.shape == (12, 3, *size) and batch.dtype == torch.float32
    for i in range(len(images)):
        assert torch.allclose(batch[i], one_image(images[i], params, i, cfg), atol=1e-6, rtol=0), i


def test_given_parameters_exact_pixels():
    """A 4x2 image, mirrored, shifted by the crop and erased in one pixel: every output value by hand."""
    cfg = Config.smoke(input_size=(4, 2), padding=1, pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0),
                       erasing_value=(-1.0, -2.0, -3.0))
    img = torch.arange(8, dtype=torch.uint8).view(1, 1, 4, 2).repeat(1, 3, 1, 1) * 10  # rows [0 10] [20 30] ...
    one = torch.ones(1, dtype=torch.long)
    params = AugmentParams(flip=torch.tensor([True]), top=0 * one, left=2 * one, erase=torch.tensor([True]),
                           box_top=3 * one, box_left=0 * one, box_h=one, box_w=one)
    out = apply_params(img, params, cfg)[0, 0] * 255  # channel 0, back to grey levels
    # flipped rows: [10 0] [30 20] [50 40] [70 60]; padded by 1 and cropped from row 0, column 2 of the
    # padded map, i.e. image rows -1..2 and image columns 1..2 (row -1 and column 2 are padding): column 1
    # of the flipped rows -1..2 is 0 (padding), 0, 20, 40; the box erases row 3, column 0 (value -1)
    assert torch.allclose(out, torch.tensor([[0.0, 0], [0, 0], [20, 0], [-255, 0]]))
    params.erase[0] = False
    assert apply_params(img, params, cfg)[0, 0, 3, 0] * 255 == pytest.approx(40)


def draws(cfg: Config, n: int = 20000, seed: int = 0) -> AugmentParams:
    return draw_params(n, cfg, torch.Generator().manual_seed(seed))


def test_flip_crop_and_erase_frequencies():
    cfg = Config.smoke(padding=3)
    p = draws(cfg)
    n = len(p.flip)
    assert abs(p.flip.float().mean() - cfg.flip_prob) < 4 * np.sqrt(0.25 / n)
    assert abs(p.erase.float().mean() - cfg.erasing_prob) < 4 * np.sqrt(0.25 / n)  # a box fits in almost every try
    for offsets in (p.top, p.left):  # uniform over 0 .. 2 x padding
        counts = torch.bincount(offsets, minlength=7).numpy()
        assert len(counts) == 7
        expected = n / 7
        assert ((counts - expected) ** 2 / expected).sum() < 22.5  # chi-square, 6 degrees of freedom, p = 0.001


@pytest.mark.parametrize("size", [(256, 128), (64, 32)])
def test_the_erasing_boxes_follow_the_tiny_baselines_law(size):
    cfg = Config.smoke(input_size=size, erasing_prob=1.0)
    p = draws(cfg)
    height, width = size
    ours = torch.stack([p.box_top, p.box_left, p.box_h, p.box_w], 1)[p.erase].double().numpy()
    rng = random.Random(0)
    theirs = np.array([tiny.erasing_box(rng, height, width) for _ in range(len(ours))], dtype=np.float64)

    assert_same_box_law(ours, theirs, height, width)
    assert (ours[:, 2] < height).all() and (ours[:, 3] < width).all()  # strictly inside
    assert ours[:, 0].min() == 0 and (ours[:, 0] + ours[:, 2]).max() == height  # every position reachable


def test_erasing_gives_up_after_its_attempts():
    """With areas that never fit, no box is erased (as the published loop returns the image untouched)."""
    cfg = Config.smoke(erasing_prob=1.0, erasing_scale=(0.96, 0.99), erasing_ratio=(3.0, 3.3), input_size=(64, 32))
    assert not draws(cfg, 2000).erase.any()
    assert ATTEMPTS == 100


def test_same_seed_same_batch():
    cfg = Config.smoke()
    images = torch.randint(0, 256, (8, 3, 128, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = augment_batch(images, cfg, torch.Generator().manual_seed(5))
    b = augment_batch(images, cfg, torch.Generator().manual_seed(5))
    c = augment_batch(images, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------
# The decoded split
# --------------------------------------------------------------------------------------
def test_decoded_split_is_the_images_and_its_cache_is_reused(tiny_root, tmp_path, monkeypatch):
    from reid.data import Market1501, read_image

    train = Market1501(tiny_root, verbose=False).train
    paths = [r.path for r in train]
    images = decoded_cache(paths, tmp_path)
    assert images.shape == (len(paths), 3, 128, 64) and images.dtype == torch.uint8
    assert torch.equal(images[3], torch.from_numpy(np.array(read_image(paths[3]))).permute(2, 0, 1))
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".pt"

    import reid.data.decoded as decoded

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds the split")

    monkeypatch.setattr(decoded, "decode_split", no_decoding)
    assert torch.equal(decoded_cache(paths, tmp_path), images)
    monkeypatch.undo()
    cached[0].write_bytes(b"damaged")  # a broken file is decoded again and replaced
    assert torch.equal(decoded_cache(paths, tmp_path), images)
    assert torch.equal(decoded_cache(paths[:-1], tmp_path), images[:-1])  # other files, another key
    assert len(list(tmp_path.iterdir())) == 2


def test_images_of_other_sizes_are_stored_at_the_most_common_one(tmp_path):
    from PIL import Image

    paths = []
    for i, (h, w) in enumerate([(160, 60), (160, 60), (100, 40)]):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((h, w, 3), 40 * i, dtype=np.uint8)).save(path)
        paths.append(str(path))
    assert storage_size(paths) == (160, 60)
    images = decode_split(paths)
    assert images.shape == (3, 3, 160, 60) and abs(int(images[2].float().mean()) - 80) <= 2


def test_device_batches_are_the_samplers_pk_batches_and_repeat_by_epoch(tiny_root, tmp_path):
    cfg = Config.smoke(data_root=str(tmp_path), synthetic_preset="tiny", batch_size=16, num_workers=0)
    dataset = load_dataset(Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny"), verbose=False)
    loader = make_dataloaders(cfg, dataset)[0]
    batches = training_batches(cfg, loader, "cpu")
    assert isinstance(batches, DeviceBatches) and len(batches) == len(loader.batch_sampler)
    batches.batch_sampler.set_epoch(3)
    first = list(batches)
    batches.batch_sampler.set_epoch(3)
    again = list(batches)
    assert len(first) == len(batches) and all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    images, pids, camids, paths = first[0]
    assert images.shape == (16, 3, *cfg.input_size) and paths is None
    assert sorted(torch.bincount(pids).tolist())[-4:] == [4, 4, 4, 4]  # P identities x K = 4 images
    assert pids.tolist() == [loader.dataset.records[i].pid for i in loader.batch_sampler.batches(3)[0]]


def test_the_engine_falls_back_to_the_loader_or_says_why(tiny_root, tmp_path):
    dataset = load_dataset(Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny"), verbose=False)
    for train_data, max_gb in (("loader", 4.0), ("auto", 1e-6)):
        cfg = Config.smoke(data_root=str(tmp_path), batch_size=16, num_workers=0, train_data=train_data,
                           device_data_max_gb=max_gb)
        loader = make_dataloaders(cfg, dataset)[0]
        assert training_batches(cfg, loader, "cpu") is loader
    cfg = Config.smoke(data_root=str(tmp_path), batch_size=16, num_workers=0, train_data="device",
                       device_data_max_gb=1e-6)
    with pytest.raises(ValueError, match="exceeds device_data_max_gb=1e-06; raise device_data_max_gb"):
        training_batches(cfg, make_dataloaders(cfg, dataset)[0], "cpu")


def test_decoding_leaves_the_global_random_state_alone(tiny_root, tmp_path):
    """A run that decodes the split and one that finds it cached must start from the same weights."""
    from reid.data import Market1501

    paths = [r.path for r in Market1501(tiny_root, verbose=False).train]
    torch.manual_seed(0)
    decoded_cache(paths, tmp_path)  # decodes
    after_decoding = torch.rand(3)
    torch.manual_seed(0)
    decoded_cache(paths, tmp_path)  # loads
    assert torch.equal(torch.rand(3), after_decoding)
