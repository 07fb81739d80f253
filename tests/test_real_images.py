"""The smoke profile learns on real images (CUHK01 in Market layout), when they are present."""

import importlib.util
from pathlib import Path

from reid.data import Market1501, make_dataloaders
from reid.engine import train
from reid.evaluation import evaluate_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_images.py"


def _bench():
    spec = importlib.util.spec_from_file_location("real_images", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_profile_learns_on_cuhk01(cuhk01_root, tmp_path):
    bench = _bench()
    # the smoke profile, shortened to 5 epochs (about two minutes on 2 CPU cores) to fit CI;
    # benchmarks/real_images.py runs the full profile
    cfg = bench.real_config(cuhk01_root, output_dir=str(tmp_path), max_epochs=5, warmup_epochs=1, steps=(4,),
                            eval_period=5, checkpoint_period=5)
    dataset = Market1501(cuhk01_root, verbose=False)
    colour, untrained = bench.baselines(cfg, dataset)
    result = train(cfg, dataset=dataset, progress=False)
    trained = result.final
    assert trained is not None and trained.num_valid == len(dataset.query)
    # both references are near chance on CUHK01's two very different cameras (mAP ~1 %)
    assert trained.mAP > 2 * max(colour.mAP, untrained.mAP), (colour.summary(), untrained.summary(), trained.summary())
    again = evaluate_model(result.model, make_dataloaders(cfg, dataset)[1], len(dataset.query), cfg)
    assert abs(again.mAP - trained.mAP) < 1e-9  # the returned model is the one that was evaluated
