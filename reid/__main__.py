"""Command line for long runs outside a notebook.

    python -m reid train --preset smoke                         # minutes on a CPU
    python -m reid train --preset market1501 --data-root ~/data # the paper's recipe, on a GPU
    python -m reid train --preset smoke --resume                # continue after an interruption
    python -m reid test --run runs/smoke                        # CMC / mAP / mINP, with and without flip
    torchrun --nproc_per_node=4 -m reid train --preset market1501   # 4 GPUs, DistributedDataParallel

Every field of `reid.Config` is an option (`--max-epochs 60`, `--input-size 256 128`,
`--no-amp`); `python -m reid train --help` lists them with their meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import shlex
import sys
import typing
from pathlib import Path

from .config import Config

PRESETS = {"default": Config, "smoke": Config.smoke, "market1501": Config.market1501,
           "tiny_baseline": Config.tiny_baseline}


def _field_help() -> dict[str, str]:
    """The one-line comment after each field in config.py, used as its --help text."""
    helps = {}
    for line in inspect.getsource(Config).splitlines():
        line = line.strip()
        if ":" in line and "#" in line and not line.startswith(("#", "def", '"')):
            name = line.split(":", 1)[0].strip()
            helps[name] = line.split("#", 1)[1].strip().replace("%", "%%")
    return helps


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per Config field; only the options given on the command line change the preset."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smoke",
                        help="named settings to start from (default: smoke)")
    helps = _field_help()
    hints = typing.get_type_hints(Config)
    group = parser.add_argument_group("settings (reid.Config fields)")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS, "help": helps.get(f.name, "")}
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            group.add_argument(flag, nargs="+", type=element, metavar=element.__name__.upper(), **kwargs)
        else:
            group.add_argument(flag, type=kind, **kwargs)


def config_from_args(args: argparse.Namespace) -> Config:
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return PRESETS[args.preset](**changes).validate()


def train_command(cfg: Config) -> str:
    """The shell command that trains (or resumes) the run of `cfg`: the nearest preset and the fields that differ.

    `output_dir` and `data_root` are left to the environment (REID_RUNS, REID_DATA), as a
    chapter leaves them."""
    env = {"output_dir", "data_root"}
    mine = cfg.to_dict()

    def differing(preset: str) -> list[str]:
        base = PRESETS[preset]().to_dict()
        return [k for k in mine if k not in env and json.dumps(mine[k]) != json.dumps(base[k])]

    preset = min(PRESETS, key=lambda name: len(differing(name)))
    options = []
    for key in differing(preset):
        flag, value = "--" + key.replace("_", "-"), mine[key]
        if isinstance(value, bool):
            options.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            options.append(" ".join([flag, *map(str, value)]))
        else:
            options.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(["python -m reid train --preset", preset, *options, "--resume"])


def cmd_train(args: argparse.Namespace) -> int:
    from .engine import train
    from .utils import describe_device, get_device

    cfg = config_from_args(args)
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    if main_process:
        print(f"training {cfg.name!r} ({cfg.backbone}, {cfg.dataset}, {cfg.max_epochs} epochs) on "
          f"{describe_device(get_device(cfg.device))}; files in {cfg.run_dir}", flush=True)
    result = train(cfg, resume=args.resume, progress=not args.quiet)
    if main_process:
        if result.final is not None:
            print(f"final: {result.final.summary()}")
        print(f"weights: {result.run_dir / 'model.pth'}")
    return 0


def test_rows(cfg: Config, model, test_loader, num_query: int, device) -> list[tuple[str, object]]:
    """(setting, RankResult) for the test-time variants: plain and flipped features, each with and
    without k-reciprocal re-ranking (cfg.rerank_k1, rerank_k2, rerank_lambda)."""
    from .evaluation import evaluate_features, extract_features
    from .reranking import evaluate_reranked

    rows = []
    for flip in (False, True):
        feats, pids, camids = extract_features(model, test_loader, device, flip, cfg.eval_amp, cfg.channels_last,
                                               progress=True)
        name = f"{cfg.distance}{' + flip' if flip else ''}"
        rows.append((name, evaluate_features(feats, pids, camids, num_query, cfg.distance, cfg.feat_norm,
                                            cfg.max_rank)))
        rows.append((f"{name} + re-ranking", evaluate_reranked(feats, pids, camids, num_query, cfg.rerank_k1,
                                                                cfg.rerank_k2, cfg.rerank_lambda, cfg.feat_norm,
                                                                cfg.max_rank)))
    return rows


def cmd_test(args: argparse.Namespace) -> int:
    from .data import make_dataloaders
    from .engine import load_model
    from .utils import describe_device, get_device

    device = get_device(args.device)
    model, cfg = load_model(args.run, device, args.weights)
    if args.data_root:
        cfg.data_root = args.data_root
    cfg.num_workers = args.num_workers
    _, test_loader, num_query, _ = make_dataloaders(cfg)
    print(f"{args.run}: {cfg.backbone} on {cfg.dataset}, evaluated on {describe_device(device)}")
    print(f"{'setting':<29} {'mAP':>6} {'R1':>6} {'R5':>6} {'R10':>6} {'mINP':>6}")
    for name, res in test_rows(cfg, model, test_loader, num_query, device):
        cmc = res.cmc
        print(f"{name:<29} {100 * res.mAP:6.1f} {100 * cmc[0]:6.1f} {100 * cmc[min(4, len(cmc) - 1)]:6.1f} "
              f"{100 * cmc[min(9, len(cmc) - 1)]:6.1f} {100 * res.mINP:6.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reid", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a model (writes runs/<name>/)",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_options(p_train)
    p_train.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p_train.add_argument("--quiet", action="store_true", help="no progress bars")
    p_train.set_defaults(func=cmd_train)
    p_test = sub.add_parser("test", help="evaluate a trained run: CMC, mAP, mINP with and without flip and re-ranking")
    p_test.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/smoke")
    p_test.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_test.add_argument("--data-root", default=None, help="where the dataset is, if it moved since training")
    p_test.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p_test.add_argument("--num-workers", type=int, default=2, help="data-loader worker processes")
    p_test.set_defaults(func=cmd_test)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)  # a setting or a file to fix: say which, without a traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
