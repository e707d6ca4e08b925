"""``unmix export``: write a TorchScript or ONNX file of a whole separator (audio in, stems out) or of its per-target
spectrogram models, and check it against eager PyTorch.

Examples::

    unmix export --model umxhq --format onnx --out umxhq.onnx
    unmix export --model spleeter:2stems --format torchscript --out 2stems.pt
    unmix export --model umxhq --what models --format onnx --out "umxhq-{target}.onnx"
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from unmix.cli._types import non_negative_int, positive_float
from unmix.errors import ModelNotFoundError, UnmixError
from unmix.utils.logging import LOGGER_NAME, enable_logging

logger = logging.getLogger(__name__)

HELP = "export a separator (or its spectrogram models) to TorchScript or ONNX for deployment"

DEFAULT_MODEL = "umxl"
_EXPECTED_ERRORS = (UnmixError, OSError, ValueError)


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmix export`` to ``parser``."""
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="MODEL",
                        help=f"registered model name, model folder, or Spleeter configuration JSON (default "
                        f"{DEFAULT_MODEL})")
    parser.add_argument("--targets", nargs="+", metavar="TARGET",
                        help="targets to export (default: all of the model's); also comma-separated")
    parser.add_argument("--format", "-f", choices=("onnx", "torchscript"), default="onnx",
                        help="onnx (opset --opset, run with onnxruntime) or torchscript (torch.jit, libtorch); "
                        "default onnx")
    parser.add_argument("--out", "-o", required=True, metavar="FILE",
                        help="file to write; with --what models a name containing {target} or a folder")
    parser.add_argument("--what", choices=("separator", "models"), default="separator",
                        help="separator: audio in, stems out (STFT, masks, Wiener EM, inverse STFT); models: one "
                        "spectrogram model per target (default separator)")
    filt = parser.add_argument_group("filter settings fixed in the exported separator")
    filt.add_argument("--niter", type=non_negative_int, default=1, help="Wiener EM iterations (default 1)")
    filt.add_argument("--wiener-win-len", type=non_negative_int, default=300, metavar="FRAMES",
                      help="frames per Wiener block; 0 filters the whole input at once (default 300)")
    filt.add_argument("--residual", nargs="?", const="residual", default=None, metavar="NAME",
                      help="add the residual (mixture - sum of the targets) as an output named NAME")
    filt.add_argument("--softmask", action="store_true", help="start the EM from ratio masks")
    filt.add_argument("--alpha", type=positive_float, default=1.0, help="ratio-mask exponent (default 1.0)")
    filt.add_argument("--mwf", action="store_true", help="Spleeter models: multichannel Wiener filter")
    out = parser.add_argument_group("export")
    out.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    out.add_argument("--quantize", choices=("int8",), default=None,
                     help="int8 dynamic quantisation of the model weights (reports the SDR against float output)")
    out.add_argument("--random-weights", action="store_true",
                     help="same architecture with random weights, no download (to try the export)")
    out.add_argument("--no-check", action="store_true",
                     help="do not compare the written file with eager PyTorch on random input")
    out.add_argument("--force", action="store_true", help="overwrite existing files")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv: tracebacks)")


def _targets(args: argparse.Namespace) -> list[str] | None:
    if not args.targets:
        return None
    return [t.strip() for item in args.targets for t in item.split(",") if t.strip()]


def _load(args: argparse.Namespace) -> Any:
    from unmix.pretrained import load_separator

    path = Path(args.model).expanduser()
    if ("/" in args.model or os.sep in args.model or path.suffix.lower() == ".json") and not path.exists():
        raise ModelNotFoundError(f"'{args.model}' does not exist; give a model folder, a Spleeter configuration "
                                 ".json or a registered name (unmix separate --list-models)")
    # model files carry no filter: niter 0 also lets a single target be exported alone
    niter = args.niter if args.what == "separator" else 0
    separator = load_separator(
        args.model, targets=_targets(args), niter=niter, residual=args.residual or False,
        softmask=args.softmask, alpha=args.alpha, wiener_win_len=args.wiener_win_len or None,
        pretrained=not args.random_weights, MWF=True if args.mwf else None,
    )
    return separator.freeze() if hasattr(separator, "freeze") else separator.eval()


def _describe(info: Any) -> str:
    meta = info.metadata
    what = (f"separator, outputs {', '.join(meta['targets'])}" if info.kind == "separator"
            else f"{meta['architecture']} model of '{meta['target']}'")
    line = (f"wrote {info.path} ({info.format}{', int8' if meta.get('quantize') else ''}, {what}; "
            f"{info.size_bytes / 1e6:.1f} MB, {info.nb_parameters / 1e6:.2f} M parameters)")
    if info.max_abs_error is not None:
        line += f"; max abs difference from eager PyTorch: {info.max_abs_error:.3g}"
    if info.sdr_db:
        line += "; SDR vs float: " + ", ".join(f"{k} {v:.1f} dB" for k, v in info.sdr_db.items())
    return line


def _planned_paths(args: argparse.Namespace, targets: list[str]) -> list[Path]:
    from unmix.export.api import SUFFIXES

    if args.what == "separator":
        return [Path(args.out)]
    pattern = args.out if "{target}" in args.out else str(Path(args.out) / ("{target}" + SUFFIXES[args.format]))
    return [Path(pattern.format(target=t)) for t in targets]


def run(args: argparse.Namespace) -> int:
    """Run ``unmix export``; returns 0 on success, 1 on failure (one ``error:`` line on stderr)."""
    unmix_logger = logging.getLogger(LOGGER_NAME)
    level, handlers = unmix_logger.level, list(unmix_logger.handlers)
    enable_logging({0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
    try:
        return _run(args)
    except Exception as err:  # noqa: BLE001 - the CLI boundary: one line, never a traceback by default
        if args.verbose >= 2 or not isinstance(err, _EXPECTED_ERRORS):
            logger.debug("export failed", exc_info=err)
        message = " ".join((str(err) or type(err).__name__).split())
        if not isinstance(err, _EXPECTED_ERRORS):
            message = f"unexpected {type(err).__name__}: {message}"
        sys.stderr.write(f"error: {message}\n")
        return 1
    finally:
        unmix_logger.setLevel(level)
        unmix_logger.handlers[:] = handlers


def _run(args: argparse.Namespace) -> int:
    from unmix.export import export_models, export_separator

    if args.format == "onnx" and args.opset < 17:
        raise ValueError(f"--opset {args.opset} has no DFT operator for the STFT; use --opset 17 or later")
    if args.what == "models" and "{target}" not in args.out and Path(args.out).suffix in {".onnx", ".pt"}:
        raise ValueError(f"--what models writes one file per target: give --out with {{target}} (e.g. "
                         f"'{Path(args.out).stem}-{{target}}{Path(args.out).suffix}') or a folder")
    separator = _load(args)
    paths = _planned_paths(args, list(separator.target_models))
    existing = [p for p in paths if p.exists()]
    if existing and not args.force:
        raise FileExistsError(f"'{existing[0]}' already exists; pass --force to overwrite it")
    folder_mode = args.what == "models" and "{target}" not in args.out  # export_models creates that folder
    missing = [] if folder_mode else [p.parent for p in paths if not p.parent.is_dir()]
    if missing:
        raise FileNotFoundError(f"the output folder '{missing[0]}' does not exist; create it first")
    options = {"opset": args.opset, "quantize": args.quantize, "check": not args.no_check}
    if args.what == "separator":
        infos = [export_separator(separator, args.out, args.format, **options)]
    else:
        infos = list(export_models(separator, args.out, args.format, **options).values())
    for info in infos:
        sys.stdout.write(_describe(info) + "\n")
    return 0
