"""The results table: two models, six rows, each row what the evaluation functions give on its own."""

import dataclasses

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid import Config
from reid.data import load_dataset, make_dataloaders
from reid.engine import load_model
from reid.evaluation import evaluate_features, evaluate_rank, extract_features
from reid.reranking import re_ranking
from reid.results import PUBLISHED_ROWS, SHIPPED_ROW, hem_config, reproduce_table, tuning_config
from reid.visualize import show_results

matplotlib.use("Agg")
GRID = [(2, 1, 0.3), (3, 2, 0.1), (4, 2, 0.5)]
# person-reid-tiny-baseline's README (v0.1.2), its "Results" section as published
README_RESULTS = """
|model|method|mAP|Rank1|
|---- |----  |----|----|
|resnet50|triplet loss + softmax + center loss (B1)| 85.8| 94.1 |
|resnet50|B1 + flipped feature| 86.3| 93.9 |
|resnet50|B1 + **Harder Example Mining**| 86.2| 94.4 |
|resnet50|B1 + flipped feature + **Harder Example Mining**| 86.6| 94.6 |
|resnet50|B1 + **Harder Example Mining** + reranking| 94.1| 95.6 |
|resnet50|B1 + **Harder Example Mining** + searched reranking| 94.2| 95.8 |
"""


def tiny(tmp_path, **changes) -> Config:
    base = dict(data_root=str(tmp_path / "data"), synthetic_preset="tiny", input_size=(32, 16),
                batch_size=16, max_epochs=2, warmup_epochs=1, steps=(1,), eval_period=2, checkpoint_period=2,
                num_workers=0, output_dir=str(tmp_path / "runs"), name="b1", log_period=2)
    base.update(changes)
    return Config.smoke(**base)


@pytest.fixture(scope="module")
def table_and_cfg(tiny_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    (tmp / "data").mkdir()
    (tmp / "data" / tiny_root.name).symlink_to(tiny_root)
    cfg = tiny(tmp)
    return reproduce_table(cfg, grid=GRID, progress=False, tuning=tuning_config(cfg, identities=6)), cfg


def test_the_published_numbers_are_the_readmes():
    published = [tuple(float(x) for x in line.split("|")[3:5]) for line in README_RESULTS.strip().splitlines()[2:]]
    assert [(m, r) for _, m, r in PUBLISHED_ROWS] == published


def test_seven_rows_in_the_published_order_beside_its_numbers(table_and_cfg):
    table, cfg = table_and_cfg
    expected = [label for label, _, _ in PUBLISHED_ROWS]
    expected.insert(5, SHIPPED_ROW)
    assert [r.label for r in table.rows] == expected
    assert [(r.published_mAP, r.published_rank1) for r in table.rows] == [
        (85.8, 94.1), (86.3, 93.9), (86.2, 94.4), (86.6, 94.6), (94.1, 95.6), (None, None), (94.2, 95.8)]
    assert table.runs == {"B1": str(cfg.run_dir), "HEM": str(hem_config(cfg).run_dir),
                          "tuning": str(tuning_config(cfg, identities=6).run_dir)}
    assert hem_config(cfg).hard_factor == 0.2 and hem_config(cfg).name == "b1-hem"
    assert tuning_config(cfg).name == "b1-hem-val" and tuning_config(cfg).val_identities == 30
    # another alpha, another held-out split: another model, in a run whose name says so (never the alpha-0.2 run)
    assert hem_config(cfg, 0.4).name == "b1-hem0.4" and tuning_config(cfg, 0.4, 50).name == "b1-hem0.4-val50"
    assert tuning_config(cfg, identities=6).name == "b1-hem-val6"
    for r in table.rows:
        assert 0 <= r.mINP <= 100 and 0 <= r.mAP <= 100 and 0 <= r.rank1 <= 100
    lines = table.markdown().splitlines()
    assert len(lines) == 2 + 7 and lines[2].startswith("| B1: triplet + softmax + center | ")
    assert f"| {table.rows[3].mAP:.1f} | {table.rows[3].rank1:.1f} | {table.rows[3].mINP:.1f} | 86.6 | 94.6 |" in lines[5]
    assert lines[7].endswith("| – | – |") and "k1=30, k2=10, λ=0.2" in lines[7]
    assert table.to_dict()["rows"][6]["published_mAP"] == 94.2


def test_the_table_and_the_tuning_model_train_as_the_recipe_says(table_and_cfg):
    table, cfg = table_and_cfg
    for run, hard_factor, held_out in (("B1", 0.0, 0), ("HEM", 0.2, 0), ("tuning", 0.2, 6)):
        saved = load_model(table.runs[run])[1]
        assert (saved.hard_factor, saved.val_identities) == (hard_factor, held_out), run


def test_rows_equal_the_evaluation_functions_run_on_the_saved_models(table_and_cfg):
    table, cfg = table_and_cfg
    dataset = load_dataset(cfg, verbose=False)
    _, loader, nq, _ = make_dataloaders(cfg, dataset)
    for run, plain_row, flip_row in ((table.runs["B1"], 0, 1), (table.runs["HEM"], 2, 3)):
        model, saved = load_model(run)
        for flip, row in ((False, plain_row), (True, flip_row)):
            feats, pids, camids = extract_features(model, loader, "cpu", flip=flip)
            expected = evaluate_features(feats, pids, camids, nq, cfg.distance, cfg.feat_norm)
            assert table.rows[row].result.mAP == pytest.approx(expected.mAP, abs=1e-6)
            assert torch.allclose(torch.as_tensor(table.rows[row].result.cmc), torch.as_tensor(expected.cmc))
    feats, pids, camids = extract_features(load_model(table.runs["HEM"])[0], loader, "cpu")
    feats = F.normalize(feats, dim=1)
    labels = (pids[:nq], pids[nq:], camids[:nq], camids[nq:])
    searched = tuple(table.searched[k] for k in ("k1", "k2", "lambda"))
    for row, params in ((4, (20, 6, 0.3)), (5, (30, 10, 0.2)), (6, searched)):
        expected = evaluate_rank(re_ranking(feats[:nq], feats[nq:], *params), *labels)
        assert table.rows[row].result.mAP == pytest.approx(expected.mAP, abs=1e-6)
        assert table.rows[row].note == "k1={}, k2={}, λ={}".format(*params)
    assert (table.searched["k1"], table.searched["k2"], table.searched["lambda"]) in GRID
    assert table.searched["grid_points"] == len(GRID) and table.searched["validation_queries"] > 0


def test_a_second_call_loads_the_models_instead_of_training(table_and_cfg):
    table, cfg = table_and_cfg
    again = reproduce_table(cfg, grid=GRID, progress=False, tuning=tuning_config(cfg, identities=6))
    assert [r.mAP for r in again.rows] == [r.mAP for r in table.rows]


def test_the_figure_shows_each_gain_over_its_base_and_its_published_twin(table_and_cfg):
    from reid.visualize import GAIN_BASES

    table = table_and_cfg[0]
    fig = show_results(table)
    # mAP and Rank-1: 6 gains and 5 published ones (the added row has none); mINP: ours alone
    assert [len(ax.patches) for ax in fig.axes] == [6 + 5, 6 + 5, 6]
    by_label = {r.label: r for r in table.rows}
    widths = [p.get_width() for p in fig.axes[0].patches[:6]]
    expected = [r.mAP - by_label[GAIN_BASES[r.label]].mAP for r in table.rows[1:]]
    assert np.allclose(widths, expected)  # e.g. re-ranking over HEM, not over B1
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[3] == "HEM + re-ranking  (over B1 + HEM)" and labels[0] == "flipped features  (over B1)"


def test_the_recipe_must_be_b1_on_every_identity(tmp_path):
    with pytest.raises(ValueError, match="hard_factor=0"):
        reproduce_table(tiny(tmp_path, hard_factor=0.2))
    with pytest.raises(ValueError, match="every training identity"):
        reproduce_table(dataclasses.replace(tiny(tmp_path), val_identities=6))


def test_chapter_8_and_the_readme_read_the_seed_noise_record():
    """Chapter 8's noise tables and intervals are the record's (benchmarks/records/seed_noise_2core_cpu.json), its
    statement about where its single run lies is true of its own stored table, and the README's ± column is the
    record's: none can drift from the record unnoticed."""
    import json
    import re
    from pathlib import Path

    from reid.results import load_noise_record, noise_table, paired_differences

    root = Path(__file__).resolve().parents[1]
    record = load_noise_record()
    assert len(record["seeds"]) >= 5 and all(len(v["mAP"]) == len(record["seeds"]) for v in record["rows"].values())
    nb = json.loads((root / "notebooks" / "08_results.ipynb").read_text())
    shown = [("".join(o.get("data", {}).get("text/markdown", "")), "".join(o.get("text", "")))
             for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    markdown, streams = "\n".join(m for m, _ in shown), "\n".join(t for _, t in shown)
    for metric in ("mAP", "rank1"):
        assert noise_table(record, metric) in markdown, f"chapter 8's {metric} noise table is not the record's"
    for d in paired_differences(record):
        assert f"| {d['pair']} |" in markdown and f"{d['mean']:+.1f} ± {d['sd']:.1f}" in markdown, d["pair"]
        assert f"[{d['low']:+.1f}, {d['high']:+.1f}]" in markdown, d["pair"]
    single = {}
    for line in markdown.splitlines():  # the single-run table: | label (note) | mAP | Rank-1 | mINP | ...
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = re.sub(r" \(k1=.*\)$", "", cells[0])
        if len(cells) == 6 and label in record["rows"]:
            single[label] = float(cells[1])
    assert set(single) == set(record["rows"]), "chapter 8's single-run table has every row of the record"
    inside = all(min(record["rows"][k]["mAP"]) - 0.05 <= v <= max(record["rows"][k]["mAP"]) + 0.05
                 for k, v in single.items())
    assert f"within the seeds' range, every row: {inside}" in streams
    readme = (root / "README.md").read_text()
    for label, values in record["rows"].items():
        x = np.asarray(values["mAP"])
        assert f"{x.mean():.1f} ± {x.std(ddof=1):.1f}" in readme, f"README: the ± of {label!r} is not the record's"


def test_the_pages_quote_the_gpu_record():
    """Every page that quotes the GPU figures quotes the record (benchmarks/records/gpu_nvidia_h200.json): a figure
    changed in the record, or mistyped on a page, fails here."""
    import json
    from pathlib import Path

    from reid.results import latest_figures

    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "benchmarks" / "records" / "gpu_nvidia_h200.json").read_text())
    throughput, export = latest_figures(record, "throughput"), latest_figures(record, "export")
    recipe, rerank = latest_figures(record, "recipe"), latest_figures(record, "reranking")
    assert latest_figures({"invocations": [{"steps": {"export": {"x": 1}}}, {"steps": {"export": {"error": "e"}}}]},
                          "export") == {"x": 1}, "a failed rerun of a step hides the figures before it"
    rate = throughput["median"]
    figures = {
        "plain": f"{rate['plain fp32']:,.0f}", "device": f"{rate['device + AMP']:,.0f}",
        "ratio": f"{throughput['over_plain']['device + AMP']:.2f}x",
        "epoch": f"{recipe['epoch_s']:.1f} s", "evaluation": f"{recipe['eval_and_checkpoint_s']:.1f} s",
        "200 epochs": f"{recipe['projected_200_min']:.0f} minutes", "re-ranking": f"{rerank['seconds']:.2f} s",
    }
    pages = {"README.md": [n for n in figures if n != "200 epochs"],
             "book/colab.md": ["ratio", "epoch", "evaluation", "200 epochs", "re-ranking"],
             "notebooks/05_training.ipynb": ["plain", "device", "ratio"],
             "notebooks/07_reranking.ipynb": ["re-ranking"],
             "notebooks/08_results.ipynb": ["plain", "device", "ratio", "epoch", "evaluation"],
             "notebooks/market1501_on_colab.ipynb": ["epoch", "evaluation", "200 epochs"]}
    readme_only = {"README.md": [f"{recipe['projected_200_min']:.1f} min", f"{rerank['peak_gpu_gb']:.2f} GB",
                                 f"{export['max_difference_fp32']:.1e}".replace("e-0", "e-")]}
    for page, names in pages.items():
        text = (root / page).read_text()
        if page.endswith(".ipynb"):
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "markdown")
        text = " ".join(text.split())  # a figure may wrap across lines
        assert "gpu_nvidia_h200" in text, f"{page} does not name the record it quotes"
        for name in names:
            assert figures[name] in text, f"{page}: the {name} figure {figures[name]!r} is not the record's"
        for figure in readme_only.get(page, []):
            assert figure in text, f"{page}: {figure!r} is not the record's"


def test_t_975_goes_on_past_the_table():
    from reid.results import T_975, t_975

    assert [t_975(df) for df in range(1, 31)] == list(T_975)
    for df, exact in ((31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (1000, 1.9623)):  # exact quantiles
        assert abs(t_975(df) - exact) < 2e-4, df
    assert t_975(30) > t_975(31) > t_975(100) > 1.96
    with pytest.raises(ValueError, match="df=0"):
        t_975(0)
