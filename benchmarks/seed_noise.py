"""How much of the results table is noise: every row of chapter 8, for several training seeds.

For each seed, the three models of the table are trained on the book's smoke profile
(`Config.book("smoke")`: the synthetic set, ResNet18 at 64x32, 8 epochs): B1, its HEM twin
and the tuning model that re-ranking is searched on (`reid.results.hem_config`,
`tuning_config`); then `reid.results.reproduce_table` scores every row (plain and flipped
features, the paper's re-ranking, the tiny baseline's, and the setting searched on that
seed's own tuning model). The seed changes the initialisation, the PK sampler and the
augmentation; the data set stays the same. Seed 0 is exactly the chapters' runs (same
settings, another folder).

    python benchmarks/seed_noise.py                      # 5 seeds, about 25 minutes on 2 cores
    python benchmarks/seed_noise.py --seeds 0 1 2 3 4 5 6 7

Resumable: runs go on from their checkpoints, and each finished seed is written into the
record at once (`benchmarks/records/seed_noise_2core_cpu.json`, and a `.txt` for people),
so a killed benchmark continues where it stopped. The chapter reads the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from reid import Config
from reid.config import default_output_dir
from reid.data import load_dataset
from reid.results import (NOISE_RECORD, hem_config, mean_interval, noise_table, paired_differences,
                          reproduce_table, tuning_config)
from reid.utils import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's commit, for a record (REID_COMMIT where the tree travels without its .git, as to a lent GPU
    machine); the benchmarks that write records share it."""
    if os.environ.get("REID_COMMIT"):
        return os.environ["REID_COMMIT"]
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def text_record(record: dict) -> str:
    lines = [f"# python benchmarks/seed_noise.py --seeds {' '.join(map(str, record['seeds']))}",
             f"# {record['date']}, {record['machine']}, commit {record['commit']}, {record['minutes']:.0f} minutes",
             f"# {record['what']}"] + ([f"# note: {record['note']}"] if record.get("note") else []) + [""]
    for metric in ("mAP", "rank1", "mINP"):
        lines += [noise_table(record, metric), ""]
    lines.append("Paired per-seed differences in mAP (points), 95 % Student-t interval of the mean over "
                 f"{len(record['seeds'])} seeds, beside the published gain:")
    for d in paired_differences(record):
        pub = "–" if d["published"] is None else f"{d['published']:+.1f}"
        lines.append(f"  {d['pair']:<32} mean {d['mean']:+.2f} (sd {d['sd']:.2f}), 95 % [{d['low']:+.2f}, "
                     f"{d['high']:+.2f}]; published {pub}; per seed {d['differences']}")
    lines.append("")
    lines.append("Per seed (mAP / Rank-1 / mINP):")
    for i, seed in enumerate(record["seeds"]):
        cells = "; ".join(f"{row}: {v['mAP'][i]:.1f}/{v['rank1'][i]:.1f}/{v['mINP'][i]:.1f}"
                          for row, v in record["rows"].items())
        lines.append(f"  seed {seed}: {cells}; searched {record['searched'][i]}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="training seeds, three models each (about 4 minutes a seed on 2 quiet cores; default: "
                             "%(default)s)")
    parser.add_argument("--runs", type=Path, default=Path(default_output_dir()) / "seed-noise",
                        help="where the runs are written (default: <runs>/seed-noise)")
    parser.add_argument("--record", type=Path, default=ROOT / "benchmarks" / "records" / NOISE_RECORD,
                        help="the JSON record to write (and a .txt beside it); the default is the checked-in record "
                             "that chapter 8 and the README read: give another path to keep it")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--note", help="a remark stored with the record (e.g. that the machine was shared)")
    parser.add_argument("--text-only", action="store_true", help="only write the .txt again from the JSON record")
    args = parser.parse_args()
    if args.text_only:
        record = json.loads(args.record.read_text())
        if args.note:
            record["note"] = args.note
            atomic_write(args.record, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
        atomic_write(args.record.with_suffix(".txt"), lambda tmp: Path(tmp).write_text(text_record(record)))
        print(text_record(record))
        return
    torch.set_num_threads(args.threads)
    record = json.loads(args.record.read_text()) if args.record.exists() else None
    base = Config.book("smoke", output_dir=str(args.runs))
    dataset = load_dataset(base, verbose=False)
    if record is None or record.get("profile") != "smoke":
        record = {"what": f"chapter 8's rows on the smoke profile (synthetic set, {base.backbone} at "
                          f"{base.input_size[0]}x{base.input_size[1]}, {base.max_epochs} epochs), one training seed "
                          "per column; the tuning model of the searched row is trained per seed",
                  "profile": "smoke", "seeds": [], "rows": {}, "searched": [], "minutes": 0.0}
    for seed in args.seeds:
        if seed in record["seeds"]:
            print(f"seed {seed}: in the record already")
            continue
        start = time.perf_counter()
        cfg = Config.book("smoke", output_dir=str(args.runs / f"seed{seed}"), seed=seed)
        print(f"seed {seed}: training B1, HEM and the tuning model in {cfg.output_dir} (resumed if there)", flush=True)
        table = reproduce_table(cfg, dataset=dataset, tuning=tuning_config(cfg), train_if_missing=True,
                                progress=True)
        assert table.runs["HEM"] == str(hem_config(cfg).run_dir)
        record["seeds"].append(seed)
        for row in table.rows:
            label = row.label
            scores = record["rows"].setdefault(label, {"mAP": [], "rank1": [], "mINP": []})
            for key in ("mAP", "rank1", "mINP"):
                scores[key].append(round(getattr(row, key), 2))
        record["searched"].append([table.searched["k1"], table.searched["k2"], table.searched["lambda"]])
        record["minutes"] += (time.perf_counter() - start) / 60
        record.update(machine=f"{platform.processor() or platform.machine()}, {args.threads} threads, "
                              f"torch {torch.__version__} on the CPU", commit=commit(),
                      date=time.strftime("%Y-%m-%d"))
        atomic_write(args.record, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
        if len(record["seeds"]) >= 2:
            atomic_write(args.record.with_suffix(".txt"), lambda tmp: Path(tmp).write_text(text_record(record)))
        print(f"seed {seed}: done in {(time.perf_counter() - start) / 60:.1f} min; "
              + "; ".join(f"{r.label.split(':')[0]} {r.mAP:.1f}" for r in table.rows), flush=True)
    if len(record["seeds"]) >= 2:
        print(text_record(record))
        mean, sd, low, high = mean_interval(record["rows"]["B1: triplet + softmax + center"]["mAP"])
        print(f"B1 mAP: {mean:.1f} ± {sd:.1f}")


if __name__ == "__main__":
    main()
