"""``unmix evaluate``: separate a MUSDB18 root with a model and score it with BSSEval v4 (museval's numbers).

Writes one museval-format JSON file per track (``EVALDIR/<subset>/<track>.json``), ``EVALDIR/tracks.csv`` (median
over frames per track and target) and ``EVALDIR/scores.csv`` (median over tracks), and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from unmix.cli._types import non_negative_int, positive_float, positive_int, target_groups
from unmix.utils.logging import LOGGER_NAME, enable_logging

logger = logging.getLogger(__name__)

HELP = "separate a MUSDB18 dataset and score it with BSSEval v4 (museval-compatible numbers and files)"


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmix evaluate`` to ``parser``."""
    data = parser.add_argument_group("dataset")
    data.add_argument(
        "--root",
        default=os.environ.get("MUSDB_PATH"),
        metavar="DIR",
        help="MUSDB18 root holding train/ and test/ (default: $MUSDB_PATH)",
    )
    data.add_argument("--subset", default="test", choices=["test", "train"], help="subset to evaluate (default test)")
    data.add_argument(
        "--split",
        choices=["train", "valid"],
        default=None,
        help="with --subset train: musdb's training or validation split",
    )
    data.add_argument("--tracks", nargs="+", metavar="NAME", help="evaluate only these tracks (exact names)")
    data.add_argument("--is-wav", action="store_true", help="the root holds decoded WAV folders, not .stem.mp4")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="umxl",
        metavar="MODEL",
        help="registered model name, model folder or Spleeter configuration JSON (default umxl)",
    )
    model.add_argument("--targets", nargs="+", metavar="TARGET", help="targets to separate (default: all)")
    model.add_argument("--niter", type=non_negative_int, default=1, help="Wiener EM iterations (default 1)")
    model.add_argument(
        "--wiener-win-len",
        type=non_negative_int,
        default=300,
        metavar="FRAMES",
        help="frames per Wiener block, 0: whole track (default 300)",
    )
    model.add_argument(
        "--residual",
        nargs="?",
        const="residual",
        default=None,
        metavar="NAME",
        help="add mixture - sum of targets as a target named NAME (e.g. accompaniment)",
    )
    model.add_argument(
        "--aggregate",
        type=target_groups,
        metavar="JSON",
        help='score sums of targets, e.g. \'{"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}\'',
    )
    model.add_argument(
        "--chunk-seconds",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="separate long tracks in chunks of this length (bounded memory)",
    )
    out = parser.add_argument_group("output and execution")
    out.add_argument(
        "--evaldir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the JSON and CSV scores (default: eval-<model name>)",
    )
    out.add_argument(
        "--outdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the estimates as DIR/<subset>/<track>/<target>.wav",
    )
    out.add_argument("--resume", action="store_true", help="keep the scores of tracks already in --evaldir")
    out.add_argument("--win", type=positive_float, default=1.0, help="BSSEval window in seconds (default 1)")
    out.add_argument("--hop", type=positive_float, default=1.0, help="BSSEval hop in seconds (default 1)")
    out.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    out.add_argument("--cores", type=positive_int, default=1, help="worker processes over tracks (default 1)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more messages")


def run(args: argparse.Namespace) -> int:
    """Run ``unmix evaluate``; returns 0, 1 on failure, 2 for unusable options (messages on stderr)."""
    unmix_logger = logging.getLogger(LOGGER_NAME)
    level, handlers = unmix_logger.level, list(unmix_logger.handlers)
    enable_logging(logging.INFO if args.verbose else logging.WARNING)
    try:
        return _run(args)
    finally:
        unmix_logger.setLevel(level)
        unmix_logger.handlers[:] = handlers


def _run(args: argparse.Namespace) -> int:
    import torch

    from unmix.errors import UnmixError
    from unmix.evaluate.musdb import aggregate, format_table
    from unmix.evaluate.runner import MusdbSettings, evaluate_musdb

    if not args.root:
        sys.stderr.write("error: no MUSDB18 root: pass --root DIR or set MUSDB_PATH\n")
        return 2
    if args.split and args.subset != "train":
        sys.stderr.write("error: --split needs --subset train\n")
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch.device(device)
    except RuntimeError as err:
        sys.stderr.write(f"error: --device {device!r}: {err}\n")
        return 2
    eval_dir = args.evaldir or Path(f"eval-{Path(str(args.model)).stem or 'model'}")
    settings = MusdbSettings(
        model=args.model,
        root=args.root,
        subset=args.subset,
        split=args.split,
        tracks=args.tracks,
        is_wav=args.is_wav,
        targets=args.targets,
        niter=args.niter,
        residual=args.residual or False,
        wiener_win_len=args.wiener_win_len or None,
        aggregate_dict=args.aggregate,
        eval_dir=eval_dir,
        estimates_dir=args.outdir,
        device=device,
        cores=args.cores,
        chunk_seconds=args.chunk_seconds,
        resume=args.resume,
        win=args.win,
        hop=args.hop,
    )
    try:
        scores = evaluate_musdb(settings, progress=not args.no_progress)
    except (UnmixError, OSError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    sys.stdout.write(format_table(aggregate(scores), nb_tracks=len(scores)) + "\n")
    sys.stdout.write(
        f"scores: {eval_dir / 'scores.csv'}, per track: {eval_dir / 'tracks.csv'}, "
        f"{eval_dir / settings.subset}/*.json\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m unmix.cli.evaluate``), without the ``unmix`` command table."""
    parser = argparse.ArgumentParser(prog="unmix evaluate", description=HELP)
    build_parser(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
