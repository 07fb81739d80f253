"""Command line for long runs outside a notebook.

    python -m reid train --preset smoke                         # minutes on a CPU
    python -m reid train --preset market1501 --data-root ~/data # the paper's recipe, on a GPU
    python -m reid train --preset smoke --resume                # continue after an interruption
    python -m reid test --run runs/smoke                        # CMC / mAP / mINP, with and without flip
    python -m reid search --run runs/smoke --gallery DIR --query IMG_OR_DIR --out hits.png   # or hits.html
    python -m reid export --run runs/smoke --onnx smoke.onnx    # ONNX, checked against torch by onnxruntime
    torchrun --nproc_per_node=4 -m reid train --preset market1501   # 4 GPUs, DistributedDataParallel

Every field of `reid.Config` is an option (`--max-epochs 60`, `--input-size 256 128`,
`--no-amp`); `python -m reid train --help` lists them with their meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import typing
from pathlib import Path

from .config import PRESETS, Config

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


def cmd_train(args: argparse.Namespace) -> int:
    from .engine import train
    from .utils import describe_device, get_device

    cfg = config_from_args(args)
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    if main_process:
        print(f"training {cfg.name!r} ({cfg.backbone}, {cfg.dataset}, {cfg.max_epochs} epochs) on "
              f"{describe_device(get_device(cfg.device))}; files in {cfg.run_dir.resolve()}", flush=True)
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


def cmd_search(args: argparse.Namespace) -> int:
    from .engine import load_model, weights_path
    from .search import Embedder, build_index, embed_files, find_images, search, weights_digest, write_results
    from .utils import describe_device, get_device

    device = get_device(args.device)
    model, cfg = load_model(args.run, device, args.weights)
    weights = weights_path(args.run, args.weights)  # the file load_model read
    embedder = Embedder.of_run(model, cfg, None if args.flip is None else args.flip)
    print(f"{args.run}: {cfg.backbone} at {cfg.input_size[0]}x{cfg.input_size[1]}, {cfg.distance} distance, "
          f"on {describe_device(device)}")
    index = build_index(embedder, cfg, args.gallery, weights_digest(weights), args.index, device, args.batch_size,
                        args.num_workers)
    print(index.summary())
    queries, skipped = find_images(args.query, "--query")
    feats, kept, bad = embed_files(embedder, queries, cfg, device, args.batch_size, 0, progress=len(queries) > 256,
                                   desc="queries")
    for s in skipped:
        print(f"query skipped: {s.path} ({s.reason})")
    for _, reason in bad:
        print(f"query skipped: {reason}")
    if not kept:
        raise ValueError(f"no usable query image in {args.query}")
    rerank = (cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda) if args.rerank else None
    results = search(index, feats, [queries[i] for i in kept], cfg.distance, args.top_k, rerank, args.backend)
    for r in results[:args.print]:
        print(f"{r.path.name}:")
        for h in r.hits:
            mark = r.status(h)
            print(f"  {h.rank:3d}  {h.distance:.4f}  {h.path}" + (f"  [{mark}]" if mark else ""))
    if len(results) > args.print:
        print(f"... {len(results) - args.print} more queries in {args.out}")
    print(f"wrote {write_results(results, index.root, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from .data.transforms import test_transforms
    from .engine import load_model
    from .export import export_onnx, onnx_features, onnx_session
    from .search import Embedder, find_images, load_rgb

    model, cfg = load_model(args.run, "cpu", args.weights)
    out = export_onnx(model, cfg, args.onnx, args.flip)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out}.json (its preprocessing)")
    if not args.check:
        return 0
    if args.check_images:
        paths = find_images(args.check_images, "--check-images")[0][:64]
        transform = test_transforms(cfg)
        images = torch.stack([transform(load_rgb(p)) for p in paths])
        what = f"{len(paths)} images of {args.check_images}"
    else:
        images = torch.randn(8, 3, *cfg.input_size, generator=torch.Generator().manual_seed(0))
        what = "8 random inputs (--check-images DIR checks real ones)"
    with torch.no_grad():
        ref = F.normalize(Embedder.of_run(model, cfg, args.flip)(images), dim=1)
    got = F.normalize(onnx_features(onnx_session(out), images), dim=1)
    diff = float((ref - got).abs().max())
    print(f"onnxruntime vs torch on {what}: largest difference of the L2-normalised features {diff:.1e}")
    if diff > 1e-4:
        raise ValueError(f"{out} disagrees with the torch model by {diff:.1e} (more than 1e-4): do not use it")
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
    p_search = sub.add_parser("search", help="find the people of query images in a folder of person crops")
    p_search.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/smoke")
    p_search.add_argument("--gallery", type=Path, required=True, help="a folder of person images (any names, any depth)")
    p_search.add_argument("--query", type=Path, required=True, help="an image, or a folder of them")
    p_search.add_argument("--out", type=Path, required=True, help="FILE.png (contact sheet) or FILE.html")
    p_search.add_argument("--top-k", type=int, default=10, help="results per query")
    p_search.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking with the run's k1, k2, lambda")
    p_search.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                          help="add the mirrored image's feature (default: the run's flip_feats)")
    p_search.add_argument("--index", type=Path, default=None, help="index file (default: <gallery>.reid-index.pt)")
    p_search.add_argument("--backend", choices=("auto", "torch", "faiss"), default="auto",
                          help="nearest-neighbour search: torch (exact, chunked), faiss (exact, optional extra)")
    p_search.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_search.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p_search.add_argument("--batch-size", type=int, default=128, help="images per batch when extracting features")
    p_search.add_argument("--num-workers", type=int, default=2, help="data-loader worker processes for the gallery")
    p_search.add_argument("--print", type=int, default=5, help="queries whose results are printed")
    p_search.set_defaults(func=cmd_search)
    p_export = sub.add_parser("export", help="export a trained run to ONNX (dynamic batch) and check it")
    p_export.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/smoke")
    p_export.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    p_export.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_export.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                          help="include the mirrored image's feature (default: the run's flip_feats)")
    p_export.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                          help="compare onnxruntime's features with torch's (needs onnxruntime)")
    p_export.add_argument("--check-images", type=Path, default=None, help="a folder of images for the check")
    p_export.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    from .engine import CheckpointError
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, ImportError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)  # a setting or a file to fix: say which, without a traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
