"""The seed's results table, reproduced: two trained models, six rows.

person-reid-tiny-baseline reports six rows on Market-1501 (ResNet50, 256x128): the
baseline B1 (triplet + label-smoothed softmax + center loss), then flipped features,
harder example mining (HEM), both, and HEM with k-reciprocal re-ranking, default and
searched. Two models make all six: B1 (`hard_factor=0`) and the same recipe with HEM.
`reproduce_table` trains (or loads) both, evaluates every row on the test set and searches
the re-ranking parameters on the held-out validation identities, never on the test set.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources

import torch.nn.functional as F

from .config import Config
from .data import load_dataset, make_dataloaders, make_validation_loader
from .data.market1501 import Market1501
from .engine import trained_model
from .evaluation import RankResult, evaluate_features, extract_features
from .reranking import evaluate_reranked, search_reranking
from .utils import describe_device, get_device

# The seed's README (person-reid-tiny-baseline v0.1.2), Market-1501, ResNet50 at 256x128:
# (row, mAP %, Rank-1 %).
SEED_ROWS = (
    ("B1: triplet + softmax + center", 85.8, 94.1),
    ("B1 + flipped features", 86.3, 93.9),
    ("B1 + HEM", 86.2, 94.4),
    ("B1 + flipped features + HEM", 86.6, 94.6),
    ("B1 + HEM + re-ranking", 94.1, 95.6),
    ("B1 + HEM + searched re-ranking", 94.2, 95.8),
)
SEED_HARD_FACTOR = 0.2  # the seed's HEM factor alpha


@dataclass
class ResultRow:
    """One row: our scores (fractions, as RankResult holds them) beside the seed's (percent)."""

    label: str
    result: RankResult
    seed_mAP: float
    seed_rank1: float
    note: str = ""

    @property
    def mAP(self) -> float:
        return 100 * self.result.mAP

    @property
    def rank1(self) -> float:
        return 100 * float(self.result.cmc[0])

    @property
    def mINP(self) -> float:
        return 100 * self.result.mINP


@dataclass
class ResultsTable:
    rows: list[ResultRow]
    runs: dict[str, str]  # "B1" / "HEM" -> run folder
    device: str
    searched: dict = field(default_factory=dict)  # the validation search's best point and its size

    def markdown(self) -> str:
        """The table as GitHub/MyST markdown: our mAP, Rank-1, mINP beside the seed's mAP, Rank-1."""
        lines = ["| row | mAP | Rank-1 | mINP | seed mAP | seed Rank-1 |", "|---|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            label = f"{r.label} ({r.note})" if r.note else r.label
            lines.append(f"| {label} | {r.mAP:.1f} | {r.rank1:.1f} | {r.mINP:.1f} | {r.seed_mAP:.1f} | "
                         f"{r.seed_rank1:.1f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"rows": [{"row": r.label, "note": r.note, "mAP": round(r.mAP, 2), "rank1": round(r.rank1, 2),
                          "mINP": round(r.mINP, 2), "seed_mAP": r.seed_mAP, "seed_rank1": r.seed_rank1}
                         for r in self.rows],
                "runs": self.runs, "device": self.device, "searched": self.searched}


def hem_config(cfg: Config, hard_factor: float = SEED_HARD_FACTOR) -> Config:
    """The B1 recipe of `cfg` with harder example mining, in its own run folder (`<name>-hem`)."""
    return dataclasses.replace(cfg, name=f"{cfg.name}-hem", hard_factor=hard_factor)


def reproduce_table(cfg: Config, hard_factor: float = SEED_HARD_FACTOR, dataset: Market1501 | None = None,
                    grid=None, progress: bool = True) -> ResultsTable:
    """Train (or load, if already trained) B1 = `cfg` and its HEM twin, and score the seed's six rows.

    `cfg` is the B1 recipe: `hard_factor` must be 0, and `val_identities` > 0 (the searched
    re-ranking row searches on those held-out identities). Plain rows use `cfg.distance` and
    `cfg.feat_norm`; re-ranking rows use the HEM model's features without flipping, L2-normalised
    when `cfg.feat_norm`, with `cfg.rerank_k1/k2/lambda` (the defaults 20, 6, 0.3) and with the
    best point of `grid` (default: the seed's 452 points) on validation.
    """
    if cfg.hard_factor != 0:
        raise ValueError(f"reproduce_table: cfg.hard_factor={cfg.hard_factor}, but cfg must be the B1 recipe "
                         "(hard_factor=0); the HEM model is derived from it with hard_factor="
                         f"{hard_factor}. Pass dataclasses.replace(cfg, hard_factor=0.0)")
    if cfg.val_identities <= 0:
        raise ValueError("reproduce_table: cfg.val_identities=0, but the searched re-ranking row needs held-out "
                         "validation identities (the search never sees the test set); set e.g. "
                         "cfg.val_identities=100 for Market-1501 (Config.smoke() holds out 30)")
    cfg_hem = hem_config(cfg, hard_factor)
    dataset = dataset if dataset is not None else load_dataset(cfg, verbose=False)
    device = get_device(cfg.device)
    b1, _ = trained_model(cfg, dataset=dataset, progress=progress)
    hem, _ = trained_model(cfg_hem, dataset=dataset, progress=progress)
    _, test_loader, nq, _ = make_dataloaders(cfg, dataset)

    def features(model, loader, flip):
        return extract_features(model.to(device), loader, device, flip, cfg.amp, cfg.channels_last,
                                progress=progress)

    def score(feats, pids, camids):
        return evaluate_features(feats, pids, camids, nq, cfg.distance, cfg.feat_norm, cfg.max_rank)

    results, hem_test = {}, None
    for name, model in (("B1", b1), ("HEM", hem)):
        for flip in (False, True):
            feats, pids, camids = features(model, test_loader, flip)
            results[name, flip] = score(feats, pids, camids)
            if name == "HEM" and not flip:
                hem_test = (feats, pids, camids)  # the re-ranking rows re-rank these

    def reranked(k1: int, k2: int, lambda_value: float) -> RankResult:
        return evaluate_reranked(*hem_test, nq, k1, k2, lambda_value, cfg.feat_norm, cfg.max_rank)

    default = (cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda)
    val_loader, vq = make_validation_loader(cfg_hem, dataset)
    v_feats, v_pids, v_camids = features(hem, val_loader, False)
    if cfg.feat_norm:
        v_feats = F.normalize(v_feats, dim=1)
    search = search_reranking(v_feats[:vq], v_feats[vq:], v_pids[:vq], v_pids[vq:], v_camids[:vq], v_camids[vq:],
                              grid=grid, progress=progress)
    best = (search.best["k1"], search.best["k2"], search.best["lambda"])

    ours = [results["B1", False], results["B1", True], results["HEM", False], results["HEM", True],
            reranked(*default), reranked(*best)]
    notes = ["", "", "", "", "k1={}, k2={}, λ={}".format(*default), "k1={}, k2={}, λ={}".format(*best)]
    rows = [ResultRow(label, res, s_map, s_r1, note)
            for (label, s_map, s_r1), res, note in zip(SEED_ROWS, ours, notes)]
    info = {"k1": best[0], "k2": best[1], "lambda": best[2], "grid_points": len(search.rows),
            "validation_queries": vq, "validation_gallery": len(v_feats) - vq}
    return ResultsTable(rows, {"B1": str(cfg.run_dir), "HEM": str(cfg_hem.run_dir)}, describe_device(device), info)


REFERENCE_RUNS = ("paper_synthetic_h100",)


def reference_run(name: str = "paper_synthetic_h100") -> dict:
    """A run measured on a GPU and shipped with the package (`reid/reference/<name>.json`).

    Holds what was run (`what`, `command`, `config`), where (`device`, `software`, `date`),
    its per-epoch `history` (as `history.json` of a run), its `test` rows and timings.
    """
    if name not in REFERENCE_RUNS:
        raise ValueError(f"unknown reference run {name!r}; choose one of {', '.join(REFERENCE_RUNS)}")
    return json.loads(resources.files("reid").joinpath("reference", f"{name}.json").read_text())
