"""Command line for long runs outside a notebook.

    python -m reid train --preset smoke                         # minutes on a CPU
    python -m reid train --preset market1501 --data-root ~/data # the paper's recipe, on a GPU
    python -m reid train --preset smoke --resume                # continue after an interruption
    python -m reid test --run smoke                        # CMC / mAP / mINP, with and without flip
    python -m reid search --run smoke --gallery DIR --query IMG_OR_DIR --out hits.html   # .json .csv .png
    python -m reid export --run smoke --onnx smoke.onnx    # ONNX, checked against torch by onnxruntime
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
    check_device(cfg.device)  # before the data or the model: a device this machine lacks is a setting to fix
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
    from .utils import describe_device

    device = check_device(args.device)
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


# --------------------------------------------------------------------------------------
# Checking arguments before any long work: each message names the option and the fix
# --------------------------------------------------------------------------------------
def _whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: give {minimum} or more")
        return value
    parse.__name__ = "number"
    return parse


def _count_or_all(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    return _whole_number(1)(text)


def check_device(name: str):
    """The torch device `--device` names, or ValueError saying which devices this machine has."""
    import torch

    from .utils import get_device

    try:
        device = torch.device(name) if name != "auto" else get_device("auto")
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device: give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: torch sees no CUDA GPU on this machine; use --device cpu (or auto, "
                             "which takes a GPU when there is one)")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} GPU{'s' if count > 1 else ''} "
                             f"(cuda:0 to cuda:{count - 1})")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: this command runs on cpu or cuda; give auto, cpu, cuda or cuda:N")
    return device


def _writable_folder(folder: Path) -> str:
    """"" when files can be created in `folder`, else why not. A folder whose permissions allow nobody to write is
    treated as read-only even for root (who could write), and a test file is created and removed, which catches
    read-only file systems."""
    import stat
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    if stat.S_IMODE(folder.stat().st_mode) & 0o222 == 0:
        return "is not writable (its permissions allow nobody to write)"
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".reid-write-test-"):
            pass
    except OSError as err:
        return f"cannot be written to ({err.strerror or err})"
    return ""


EXAMPLE_NAMES = {"--out": "results.json", "--onnx": "model.onnx", "--index": "gallery.reid-index.pt"}


def check_output_file(path: Path, option: str, what: str = "") -> Path:
    """`path` can be written: not a folder, in an existing folder we may write to. Else ValueError naming `option`."""
    what = what or f"{option} {path}"
    if path.is_dir():
        raise ValueError(f"{what} is a folder: give a file name in it, e.g. "
                         f"{path / EXAMPLE_NAMES.get(option, 'name')}")
    parent = path.parent
    if not parent.exists():
        for above in parent.parents:
            if above.exists():
                if not above.is_dir():
                    raise ValueError(f"{what}: {above} is a file, not a folder; give {option} in a folder")
                break
        raise ValueError(f"{what}: folder {parent} does not exist; create it first, or give {option} in a folder "
                         "that exists")
    if not parent.is_dir():
        raise ValueError(f"{what}: {parent} is a file, not a folder; give {option} in a folder")
    why = _writable_folder(parent)
    if why:
        raise ValueError(f"{what}: folder {parent} {why}; give {option} in a folder you can write to")
    return path


def check_gallery(gallery: Path) -> Path:
    if not gallery.exists():
        raise FileNotFoundError(f"--gallery {gallery} does not exist: give a folder of person images")
    if not gallery.is_dir():
        raise ValueError(f"--gallery {gallery} is a file: give the folder that holds the images (any names, any "
                         "depth; its index is kept beside it), and the image you look for as --query")
    return gallery


def _note(text: str) -> None:
    print(f"note: {text}")


SYNTHETIC_NOTE = ("{run} was trained on the synthetic set (drawn figures): it does not recognise real people. On "
                  "real photos (CUHK01) such a run finds the person at rank 1 for about 1 % of queries with flipped "
                  "features (0.6 % without), and within the top 10 for under 5 % "
                  "(benchmarks/records/model_on_real_photos_2core_cpu.txt). For photos of real people, "
                  "use a model trained on Market-1501: notebooks/market1501_on_colab.ipynb trains it on a GPU "
                  "(the run market1501-book, which the chapters load with PROFILE = \"market1501\").")


def cmd_search(args: argparse.Namespace) -> int:
    import datetime

    from . import __version__
    from . import search as rs
    from .engine import describe_weights, find_run, load_model, weights_path
    from .utils import describe_device

    # 1. every argument, before the model is loaded or an image indexed
    device = check_device(args.device)
    outs = []
    for out in args.out:
        rs.check_result_path(out)
        outs.append(check_output_file(out, "--out"))
    gallery = check_gallery(args.gallery)
    if args.index is not None:
        index_path = check_output_file(args.index, "--index")
    else:
        index_path = rs.index_path_for(gallery)
        check_output_file(index_path, "--index", what=f"the gallery's index (kept beside it, at {index_path})")
    queries, query_skipped = rs.find_images(args.query, "--query")
    inputs = {Path(q).resolve() for q in queries}
    for option, path in [("--out", o) for o in outs] + ([("--index", index_path)] if args.index is not None else []):
        if path.resolve() in inputs:
            raise ValueError(f"{option} {path} is one of the query images: writing there would replace it; name "
                             "another file")
        if option == "--out" and path.resolve().is_relative_to(gallery.resolve()) and \
                rs.RESULT_SUFFIXES[path.suffix.lower()] == "contact sheet":
            raise ValueError(f"--out {path} is inside the gallery {gallery}: the next search would index the sheet "
                             "as a photo; write it elsewhere")
    if args.index is not None and index_path.is_file() and not rs.read_index_file(index_path, warn=False):
        raise ValueError(f"--index {index_path} exists and is not a reid index: writing there would replace it; "
                         "name another file (or delete it, if it is a damaged index)")
    if any(rs.RESULT_SUFFIXES[o.suffix.lower()] == "contact sheet" for o in outs):
        try:
            rs.check_sheet_size(len(queries), args.top_k)
        except ValueError as err:
            raise ValueError(f"--out {next(o for o in outs if o.suffix.lower() in ('.png', '.jpg', '.jpeg'))}: "
                             f"{err}") from None
    run = find_run(args.run)
    model, cfg = load_model(run, device, args.weights)
    weights = weights_path(run, args.weights)  # the file load_model read
    digest = rs.weights_digest(weights)
    embedder = rs.Embedder.of_run(model, cfg, None if args.flip is None else args.flip)
    rerank = (cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda) if args.rerank else None

    # 2. what is used, and what it can do
    print(f"{run}: {cfg.backbone} at {cfg.input_size[0]}x{cfg.input_size[1]}, {cfg.distance} distance, flip "
          f"{'on' if embedder.flip else 'off'}, on {describe_device(device)}")
    print(f"weights: {weights} (sha256 {digest[:12]}...)")
    if describe_weights(run, weights):
        _note(describe_weights(run, weights))
    if cfg.dataset == "synthetic":
        _note(SYNTHETIC_NOTE.format(run=run))
    if rerank:
        _note(rs.RERANK_NOTE)

    # 3. the work
    progress = sys.stderr.isatty()  # progress bars in a terminal; none in a log file or a notebook
    index = rs.build_index(embedder, cfg, gallery, digest, index_path, device, args.batch_size, args.num_workers,
                           progress=progress)
    print(index.summary())
    feats, kept, bad = rs.embed_files(embedder, queries, cfg, device, args.batch_size, 0,
                                      progress=progress and len(queries) > 256, desc="queries")
    base = args.query if args.query.is_dir() else args.query.parent
    query_skipped += [rs.Skipped(queries[i].relative_to(base).as_posix(), reason.split(": ", 1)[-1])
                      for i, reason in bad]
    for s in query_skipped:
        print(f"query skipped: {s.path} ({s.reason})")
    if not kept:
        raise ValueError(f"no usable query image in {args.query}: every one was skipped (listed above)")
    if args.top_k > len(index):
        _note(f"--top-k {args.top_k} is more than the {len(index)} images the gallery has: each list holds them all")
    backend = rs.choose_backend(index, len(kept), cfg.distance, args.backend)
    results = rs.search(index, feats, [queries[i] for i in kept], cfg.distance, args.top_k, rerank, backend)
    header = {
        "reid": __version__, "date": datetime.datetime.now().isoformat(timespec="seconds"), "run": str(run),
        "weights": str(weights), "weights_sha256": digest, "trained_on": cfg.dataset, "backbone": cfg.backbone,
        "input_size": list(cfg.input_size), "distance": cfg.distance, "flip": embedder.flip,
        "normalized": embedder.normalize, "gallery": str(gallery.resolve()), "gallery_images": len(index),
        "gallery_skipped": len(index.skipped), "index": str(index_path), "queries": len(results),
        "top_k": args.top_k, "rerank": {"k1": rerank[0], "k2": rerank[1], "lambda": rerank[2]} if rerank else None,
        "backend": "k-reciprocal re-ranking" if rerank else backend, "note": rs.RERANK_NOTE if rerank else ""}
    for r in results[:args.print]:
        print(f"{r.path.name}:")
        for h in r.hits:
            mark = r.status(h)
            print(f"  {h.position:3d}  {h.distance:.4f}  {h.path}" + (f"  [{mark}]" if mark else ""))
    if 0 < args.print < len(results):
        print(f"... {len(results) - args.print} more queries in {', '.join(map(str, outs))}")
    skipped = {"gallery": index.skipped, "queries": query_skipped}
    written = [rs.write_results(results, index.root, out, header=header, skipped=skipped) for out in outs]
    summary = rs.results_summary(results)
    line = (f"searched {len(results)} quer{'ies' if len(results) != 1 else 'y'} in {len(index)} gallery images "
            f"(top {args.top_k}, {header['backend']}): ")
    if summary["queries_with_known_identity"]:
        line += (f"{summary['match_at_rank_1']} of {summary['queries_with_known_identity']} with Market-1501 names "
                 f"find their person in another camera at rank 1, {summary['match_in_list']} in the list; ")
        if summary["unjudged_hits"]:
            line += (f"{summary['unjudged_hits']} results in their lists not judged (names not in the Market-1501 "
                     "form: a renamed photo of the right person is not counted); ")
    else:
        line += "identities unknown (names not in the Market-1501 form); "
    print(line + "wrote " + ", ".join(map(str, written)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .engine import describe_weights, find_run, load_model, weights_path
    from .export import TOLERANCE, compare_with_torch, export_onnx, need
    from .search import Embedder, find_images

    # 1. every argument, before the model is exported
    onnx = args.onnx
    if onnx.suffix.lower() != ".onnx" and not onnx.is_dir():
        raise ValueError(f"--onnx {onnx}: the file name must end in .onnx (e.g. {onnx.with_suffix('.onnx')})")
    check_output_file(onnx, "--onnx")
    need("onnx", "exporting to ONNX")
    need("onnxscript", "exporting to ONNX")
    paths, skipped = None, []
    if args.check:
        need("onnxruntime", "checking the export (--check; --no-check skips it)")
        if args.check_images is not None:
            paths, skipped = find_images(args.check_images, "--check-images")
    elif args.check_images is not None:
        raise ValueError("--check-images with --no-check: drop one of them")
    run = find_run(args.run)
    model, cfg = load_model(run, "cpu", args.weights)
    weights = weights_path(run, args.weights)
    if describe_weights(run, weights):
        _note(describe_weights(run, weights))
    embedder = Embedder.of_run(model, cfg, args.flip)

    # 2. export under a temporary name, check, and only then put the files in place
    def check(tmp: Path) -> None:
        count = args.check_count if paths is not None else None
        n, diff, bad = compare_with_torch(tmp, embedder, cfg, paths, count)
        if paths is None:
            what = "8 random inputs (--check-images DIR compares real photos)"
        elif count is None or n + len(bad) >= len(paths):
            what = f"{n} images of {args.check_images} (every one)"
        else:
            what = (f"{n} images of {args.check_images} (the first {n} it could use of {len(paths)} image files; "
                    "--check-count all compares every one)")
        bad = skipped + bad
        print(f"onnxruntime vs torch: compared {what}: largest difference of the L2-normalised features {diff:.1e}")
        if bad:
            print("skipped as search skips them: " + "; ".join(f"{s.path} ({s.reason})" for s in bad[:10])
                  + (f" ... ({len(bad) - 10} more)" if len(bad) > 10 else ""))
        if paths is not None and n == 0:
            raise ValueError(f"--check-images {args.check_images}: no image could be decoded; nothing written")
        if diff > TOLERANCE:
            raise ValueError(f"{onnx} disagrees with the torch model by {diff:.1e} (more than {TOLERANCE:.0e}); "
                             "nothing written")

    out = export_onnx(model, cfg, onnx, args.flip, run=run, weights=weights, check=check if args.check else None)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out}.json (its preprocessing, run and weights)")
    if cfg.dataset == "synthetic":
        _note(SYNTHETIC_NOTE.format(run=run))
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
    p_test.add_argument("--run", type=Path, required=True, help="the run folder (e.g. runs/smoke), or a run's name")
    p_test.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_test.add_argument("--data-root", default=None, help="where the dataset is, if it moved since training")
    p_test.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p_test.add_argument("--num-workers", type=int, default=2, help="data-loader worker processes")
    p_test.set_defaults(func=cmd_test)
    p_search = sub.add_parser(
        "search", help="find the people of query images in a folder of person crops",
        description="Index a folder of person images with a trained run (reused while nothing changes) and rank it "
                    "for each query image. Every argument is checked before any indexing.",
        epilog="--out by extension: .json or .csv (every ranked list with distances, marks where Market-1501 names "
               "allow, and a header: run, weights digest, gallery, settings, date), .html (a page of thumbnails, "
               "any number of queries), .png or .jpg (a contact sheet with a legend, up to 40 queries). The JSON "
               "schema is documented in reid.search.results_document.")
    p_search.add_argument("--run", type=Path, required=True, help="the run folder (e.g. runs/smoke), or a run's name")
    p_search.add_argument("--gallery", type=Path, required=True, help="a folder of person images (any names, any "
                          "depth, symbolic links followed; hidden files left out and listed)")
    p_search.add_argument("--query", type=Path, required=True, help="an image, or a folder of them")
    p_search.add_argument("--out", type=Path, required=True, action="append",
                          help="FILE.json, FILE.csv, FILE.html or FILE.png/.jpg; give --out again for several")
    p_search.add_argument("--top-k", type=_whole_number(1), default=10, help="results per query (default 10)")
    p_search.add_argument("--rerank", action="store_true",
                          help="k-reciprocal re-ranking with the run's k1, k2, lambda: each query's list then "
                               "depends on the other queries of the call, and distances are on another scale")
    p_search.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                          help="add the mirrored image's feature (default: the run's flip_feats)")
    p_search.add_argument("--index", type=Path, default=None,
                          help="index file (default: <gallery>.reid-index.pt beside the gallery; it keeps the "
                               "features of the last 3 models or settings used)")
    p_search.add_argument("--backend", choices=("auto", "torch", "faiss"), default="auto",
                          help="nearest-neighbour search: torch (exact, chunked), faiss (exact, optional extra)")
    p_search.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_search.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p_search.add_argument("--batch-size", type=_whole_number(1), default=128,
                          help="images per batch when extracting features")
    p_search.add_argument("--num-workers", type=_whole_number(0), default=2,
                          help="data-loader worker processes for the gallery")
    p_search.add_argument("--print", type=_whole_number(0), default=5, help="queries whose results are printed")
    p_search.set_defaults(func=cmd_search)
    p_export = sub.add_parser(
        "export", help="export a trained run to ONNX (dynamic batch) and check it",
        description="Write the run's model as it is tested (flip, L2 normalisation) to ONNX, with a JSON file of "
                    "every preprocessing step, the run and the weights' digest. Arguments are checked first; the "
                    "files appear only once the export has passed the check.")
    p_export.add_argument("--run", type=Path, required=True, help="the run folder (e.g. runs/smoke), or a run's name")
    p_export.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    p_export.add_argument("--weights", default=None, help="a weights file other than <run>/model.pth")
    p_export.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                          help="include the mirrored image's feature (default: the run's flip_feats)")
    p_export.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                          help="compare onnxruntime's features with torch's before writing (needs onnxruntime)")
    p_export.add_argument("--check-images", type=Path, default=None,
                          help="a folder of images (or one image) for the check; files search skips are skipped")
    p_export.add_argument("--check-count", type=_count_or_all, default=64,
                          help="how many of those images to compare (default 64), or 'all'")
    p_export.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    from .data.download import DownloadError
    from .engine import CheckpointError
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, ImportError, CheckpointError,
            DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)  # a setting or a file to fix: say which, without a traceback
        return 2
    except OSError as err:  # the file system said no (permissions, a full disk): which file, and why
        import re

        name = str(err.filename or "")
        tmp = re.fullmatch(r"(.*/)?\.(.+)\.\d+\.tmp", name)  # reid.utils.atomic_write's temporary file
        where = f" {(tmp.group(1) or '') + tmp.group(2) if tmp else name}" if name else ""
        print(f"error:{where}: {err.strerror or err}. Check that the path exists and can be written, and that the "
              "disk has room; files this command writes appear only once complete", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files this command writes appear only once complete, so nothing was left half-written",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
