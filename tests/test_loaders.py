from collections import Counter

import pytest
import torch

from reid import Config, seed_everything
from reid.data import load_dataset, make_dataloaders
from reid.data.loaders import dataset_root


def test_make_dataloaders_on_tiny(tiny_root):
    cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", batch_size=16, num_instances=4,
                       num_workers=0, input_size=(64, 32), test_batch_size=50, val_identities=0)
    train, test, num_query, num_classes = make_dataloaders(cfg)
    ds = load_dataset(cfg, verbose=False)
    assert num_classes == ds.num_train_pids == 24
    assert num_query == len(ds.query)
    imgs, pids, camids, paths = next(iter(train))
    assert imgs.shape == (16, 3, 64, 32)
    assert set(Counter(pids.tolist()).values()) == {4}
    seen = sum(len(b[0]) for b in test)
    assert seen == len(ds.query) + len(ds.gallery)


def test_validation_identities_are_held_out_of_training(tiny_root):
    from reid.data import make_validation_loader

    cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", batch_size=16, num_workers=0,
                       val_identities=5)
    train, _, _, num_classes = make_dataloaders(cfg)
    val, num_val_query = make_validation_loader(cfg)
    assert num_classes == 24 - 5
    train_paths = {r.path for r in train.dataset.records}
    val_paths = [r.path for r in val.dataset.records]
    assert num_val_query > 0 and not train_paths & set(val_paths)
    assert max(r.pid for r in train.dataset.records) == num_classes - 1  # relabelled for the classifier
    with pytest.raises(ValueError, match="val_identities=0: there is no validation split"):
        make_validation_loader(Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny",
                                            val_identities=0))


def test_loaders_are_reproducible_with_workers(tiny_root):
    cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", batch_size=8, num_instances=4,
                       val_identities=0,
                       num_workers=2, input_size=(64, 32))

    def first_two():
        seed_everything(0)
        train = make_dataloaders(cfg)[0]
        it = iter(train)
        return [next(it) for _ in range(2)]

    a, b = first_two(), first_two()
    for x, y in zip(a, b):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])


def test_augmentation_does_not_depend_on_the_number_of_workers(tiny_root):
    def first_batch(workers):
        cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", batch_size=8, val_identities=0,
                           num_instances=4, num_workers=workers, input_size=(64, 32))
        torch.manual_seed(workers)  # the caller's random state must not matter either
        return next(iter(make_dataloaders(cfg)[0]))[0]

    assert torch.equal(first_batch(0), first_batch(2))


def test_missing_market_is_explained(tmp_path):
    cfg = Config.market1501(data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="Market-1501 is not at .*download_market1501"):
        dataset_root(cfg)


def test_no_loader_workers_outlive_their_use(tiny_root):
    """Workers left alive (or left to the garbage collector) are inherited by the next loader's
    forked workers, which then fail tearing them down; so the test loader's stop after each
    pass, and the training loader's persistent ones stop when asked (as `train` does)."""
    import multiprocessing as mp

    from reid.data import make_validation_loader, shutdown_workers

    cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", batch_size=16, num_workers=2,
                       input_size=(64, 32), test_batch_size=50, val_identities=6)
    train, test, _, _ = make_dataloaders(cfg)
    val, _ = make_validation_loader(cfg)
    assert train.persistent_workers and not test.persistent_workers and not val.persistent_workers
    for loader in (test, val):
        assert sum(len(b[0]) for b in loader) > 0
    assert mp.active_children() == []
    next(iter(train))
    assert len(mp.active_children()) == 2
    shutdown_workers(train)
    assert mp.active_children() == [] and train._iterator is None
    assert len(next(iter(train))[0]) == 16  # and it starts again when asked
    shutdown_workers(train)
    shutdown_workers(test)  # a loader without running workers: nothing to do
