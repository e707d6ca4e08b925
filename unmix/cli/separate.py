"""``unmix separate``: separate audio files into one file per target (the union of ``umx``'s and ``spleeter``'s flags).

Flow: check the options -> collect the inputs (files, or the audio files inside folders) -> load the model (nothing is
written unless it loads) -> plan the output paths (conflicts and existing files are errors unless ``--force``) -> for
each input :func:`separate_file` (load -> separate -> queue the writes; the writes of one file overlap the separation
of the next) -> wait for the writes. A failing input gets one ``error: <path>: <message>`` line on stderr and the
others are still processed; the exit status is 1 if anything failed.

Outputs are written at the model's sample rate (like upstream), whatever the input's rate.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import math
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from unmix.audio import AudioAdapter, Codec, ffmpeg_available, get_default_audio_adapter
from unmix.audio.adapter import SOUNDFILE_SUFFIXES
from unmix.chunking import chunk_grid
from unmix.cli._types import target_groups
from unmix.errors import AudioIOError, ModelNotFoundError, UnmixError
from unmix.files import (
    aggregate_sources,
    check_aggregate,
    check_filename_format,
    input_channels,
    load_mixture,
    output_paths,
    separate_waveform,
    write_queue,
    write_sources,
)
from unmix.streaming import ChunkReader, stream_separate
from unmix.utils.logging import LOGGER_NAME, enable_logging

logger = logging.getLogger(__name__)

HELP = "separate audio files into sources (the default command: 'unmix song.wav' = 'unmix separate song.wav')"

DEFAULT_MODEL = "umxl"
DEFAULT_FORMAT = "{track}/{target}.{codec}"
#: Suffixes taken from a folder given as input (files given by name are tried whatever their suffix).
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES | {".m4a", ".m4b", ".mp4", ".aac", ".wma", ".webm", ".mka", ".ac3"}
_EXPECTED_ERRORS = (UnmixError, OSError, ValueError)


def _number(kind: type, minimum: float, inclusive: bool = True) -> Any:
    """argparse ``type``: a finite ``kind`` (int or float) >= ``minimum`` (> when not ``inclusive``)."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a number {'>=' if inclusive else '>'} {minimum}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def _duration(text: str) -> float | None:
    value = float(text)
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return None if value < 0 or math.isinf(value) else value  # upstream: negative = the whole track


def _codec(text: str) -> str:
    value = text.lower().lstrip(".")
    if value not in {c.value for c in Codec}:
        raise argparse.ArgumentTypeError(f"unknown codec {text!r}; use one of {', '.join(c.value for c in Codec)}")
    return value


def _filename_format(text: str) -> str:
    try:
        check_filename_format(text)
    except AudioIOError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmix separate`` to ``parser``."""
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="audio files, or folders whose audio files are all separated")
    model = parser.add_argument_group("model")
    model.add_argument("--model", "-p", "--params_filename", default=DEFAULT_MODEL, metavar="MODEL",
                       help=f"registered model name (see --list-models), model folder, or Spleeter configuration "
                       f"JSON (default {DEFAULT_MODEL})")
    model.add_argument("--targets", nargs="+", metavar="TARGET",
                       help="targets to separate (default: all of the model's); also comma-separated")
    model.add_argument("--residual", nargs="?", const="residual", default=None, metavar="NAME",
                       help="also write mixture - sum of the targets, named NAME (default 'residual')")
    model.add_argument("--niter", type=_number(int, 0), default=1,
                       help="Wiener EM iterations (0: no EM; default 1)")
    model.add_argument("--softmask", action="store_true", help="start from ratio masks instead of magnitudes")
    model.add_argument("--alpha", type=_number(float, 0, inclusive=False), default=1.0,
                       help="ratio-mask exponent (default 1.0)")
    model.add_argument("--wiener-win-len", type=_number(int, 0), default=300, metavar="FRAMES",
                       help="frames per Wiener block; 0 filters the whole track at once (default 300)")
    model.add_argument("--aggregate", type=target_groups, metavar="JSON",
                       help='write sums of targets instead, e.g. \'{"vocals": ["vocals"], "accompaniment": '
                       '["drums", "bass", "other"]}\'')
    model.add_argument("--mwf", action="store_true", help="Spleeter models: multichannel Wiener filter")
    model.add_argument("--list-models", action="store_true", help="list the registered models and their licences")
    audio = parser.add_argument_group("input and output")
    audio.add_argument("--start", "--offset", "-s", dest="offset", type=_number(float, 0), default=0.0,
                       metavar="SECONDS", help="start position in seconds (default 0)")
    audio.add_argument("--duration", "-d", type=_duration, default=None, metavar="SECONDS",
                       help="seconds to separate (default, or a negative value: until the end)")
    audio.add_argument("--downmix", action="store_true",
                       help="allow inputs with more channels than the model by averaging them")
    audio.add_argument("--outdir", "-o", "--output_path", default=".", metavar="FOLDER",
                       help="output folder (default: the current folder)")
    audio.add_argument("--filename-format", "-f", "--filename_format", type=_filename_format, default=DEFAULT_FORMAT,
                       metavar="FORMAT", help=f"output names relative to --outdir; keys {{track}} = {{filename}}, "
                       f"{{target}} = {{instrument}}, {{foldername}}, {{codec}} (default {DEFAULT_FORMAT})")
    audio.add_argument("--codec", "-c", "--ext", type=_codec, default="wav",
                       metavar="{" + ",".join(c.value for c in Codec) + "}",
                       help="output format (default wav, 32-bit float); mp3, m4a and wma need ffmpeg")
    audio.add_argument("--bitrate", "-b", default="128k", help="bitrate of mp3/m4a/wma/ogg outputs (default 128k)")
    audio.add_argument("--force", action="store_true", help="overwrite existing output files")
    run_group = parser.add_argument_group("execution")
    run_group.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda "
                           "when available)")
    run_group.add_argument("--no-cuda", action="store_true", help="do not use CUDA even when available")
    run_group.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                           help="precision of the target models (default float32); bfloat16 is ~2x faster on GPUs "
                           "and AVX512-BF16 CPUs at ~50 dB SDR from float32 (BENCHMARKS.md)")
    run_group.add_argument("--chunk-seconds", type=_number(float, 0), default=30.0, metavar="SECONDS",
                           help="separate long files in chunks of about this length, reading and writing them "
                           "piecewise (bounded memory); 0 separates the whole file at once (default 30)")
    run_group.add_argument("--context-seconds", type=_number(float, 0), default=5.0, metavar="SECONDS",
                           help="audio separated around each chunk and dropped (default 5)")
    run_group.add_argument("-v", "--verbose", action="count", default=0,
                           help="more messages (-v: progress details, -vv: debug and tracebacks)")
    run_group.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bar")


@dataclass(frozen=True)
class Job:
    """One input file and the output path of each of its sources."""

    source: Path
    outputs: dict[str, Path]


@dataclass(frozen=True)
class Settings:
    """Per-file options of :func:`separate_file`."""

    offset: float
    duration: float | None
    downmix: bool
    aggregate: dict[str, list[str]] | None
    codec: str
    bitrate: str
    chunk_seconds: float | None = None
    context_seconds: float = 5.0
    progress: bool = False


def separate_file(
    separator: nn.Module, adapter: AudioAdapter, job: Job, settings: Settings
) -> list[concurrent.futures.Future]:
    """Load one input, separate it and queue its writes: the whole per-file step, replaceable as one function
    (e.g. by a chunked, bounded-memory version with the same signature).

    Returns:
        The futures of the queued writes (``result()`` raises a write error).
    """
    default = type(adapter) is type(get_default_audio_adapter())
    reader = streaming_reader(separator, job.source, settings) if default else None
    if reader is None:
        waveform = load_mixture(separator, job.source, adapter, settings.offset, settings.duration, settings.downmix)
    for folder in {path.parent for path in job.outputs.values()}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AudioIOError(
                f"cannot create the output folder '{folder}' ({err.strerror or err}); choose another --outdir"
            ) from err
    if reader is not None:
        stream_separate(separator, reader, job.outputs, settings.codec, settings.bitrate, settings.aggregate,
                        settings.chunk_seconds, settings.context_seconds, settings.progress)
        return []
    sources = aggregate_sources(separate_waveform(separator, waveform), settings.aggregate)
    return write_sources(separator, sources, job.outputs, adapter, settings.codec, settings.bitrate)


def streaming_reader(separator: nn.Module, source: Path, settings: Settings) -> ChunkReader | None:
    """A chunk reader when ``source`` is long enough to be separated in chunks and soundfile can seek in it."""
    if not settings.chunk_seconds:
        return None
    try:
        import soundfile

        channels = soundfile.info(str(source)).channels
        reader = ChunkReader(source, float(separator.sample_rate), input_channels(separator, channels),
                             settings.offset, settings.duration, settings.downmix)
    except Exception:  # noqa: BLE001 - not seekable by soundfile: the whole-file path reports real errors
        return None
    grid = chunk_grid(separator, reader.length, settings.chunk_seconds, settings.context_seconds)
    return reader if len(grid) > 1 else None


class _Reporter:
    """Writes one ``error: <what>: <message>`` line per failure and counts them."""

    def __init__(self, verbose: int) -> None:
        self.verbose = verbose
        self.failures = 0

    def __call__(self, what: object, error: BaseException | str) -> None:
        from tqdm import tqdm

        self.failures += 1
        if isinstance(error, str):
            message = error
        else:
            message = str(error) or type(error).__name__
            if not isinstance(error, _EXPECTED_ERRORS):
                hint = "" if self.verbose else " (-v shows details)"
                message = f"unexpected {type(error).__name__}: {message}{hint}"
            if self.verbose >= 2 or (self.verbose and not isinstance(error, _EXPECTED_ERRORS)):
                traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        line = " ".join(message.split())
        tqdm.write(f"error: {what}: {line}", file=sys.stderr)


def collect_inputs(inputs: list[str], report: _Reporter) -> list[Path]:
    """Expand folders into their audio files (sorted, not recursive); report missing paths and empty folders."""
    files: list[Path] = []
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            try:
                found = sorted(p for p in path.iterdir()
                               if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES)
            except OSError as err:
                report(raw, f"cannot list the folder ({err.strerror or err}); check its permissions")
                continue
            if not found:
                report(raw, f"the folder contains no audio files (looked for {', '.join(sorted(AUDIO_SUFFIXES))}); "
                       "pass audio files or a folder holding them")
        elif not path.exists():
            report(raw, f"no such file or folder (current folder: '{Path.cwd()}'); check the path")
            continue
        else:
            found = [path]
        for file in found:
            key = file.resolve()
            if key in seen:
                logger.info("'%s' is given more than once; separating it once", file)
                continue
            seen.add(key)
            files.append(file)
    return files


def plan_jobs(files: list[Path], names: list[str], args: argparse.Namespace, report: _Reporter) -> list[Job]:
    """Compute the outputs of every file; report path conflicts and existing outputs (unless ``--force``)."""
    jobs: list[Job] = []
    owners: dict[Path, Path] = {}
    for file in files:
        try:
            outputs = output_paths(file, args.outdir, names, args.codec, args.filename_format)
        except AudioIOError as err:
            report(file, err)
            continue
        taken = [(p, owners[p.resolve()]) for p in outputs.values() if p.resolve() in owners]
        existing = [p for p in outputs.values() if p.exists()]
        if taken:
            report(file, f"output '{taken[0][0]}' would also be written for '{taken[0][1]}'; add {{foldername}} to "
                   "--filename-format or separate the files in separate runs")
        elif existing and not args.force:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            report(file, f"output '{existing[0]}'{more} already exists; pass --force to overwrite, or choose "
                   "another --outdir")
        else:
            owners.update({p.resolve(): file for p in outputs.values()})
            jobs.append(Job(file, outputs))
    return jobs


def _device(args: argparse.Namespace) -> str:
    import torch

    if args.device is None:
        return "cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise ValueError(f"--device {args.device!r} is not a torch device ({err}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and args.no_cuda:
        raise ValueError(f"--device {args.device} contradicts --no-cuda; give one of them")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    return str(device)


def load_model(args: argparse.Namespace, device: str) -> nn.Module:
    """Load the separator named by ``--model`` with the separation options."""
    from unmix.pretrained import load_separator

    path = Path(args.model).expanduser()
    if ("/" in args.model or os.sep in args.model or path.suffix.lower() == ".json") and not path.exists():
        raise ModelNotFoundError(
            f"'{args.model}' does not exist; give a model folder, a Spleeter configuration .json or a registered "
            "name (see --list-models)"
        )
    targets = [t for item in args.targets for t in item.split(",") if t.strip()] if args.targets else None
    separator = load_separator(
        args.model, targets=targets, niter=args.niter, residual=args.residual or False, softmask=args.softmask,
        alpha=args.alpha, wiener_win_len=args.wiener_win_len or None, device=device, MWF=True if args.mwf else None,
        precision=args.precision,
    )
    return separator.freeze() if hasattr(separator, "freeze") else separator.eval()


def run(args: argparse.Namespace) -> int:
    """Run ``unmix separate``; returns the exit status (0, 1 if any input failed, 2 for unusable options).

    The ``"unmix"`` logger is set up for the run (level from ``-v``/``-q``) and restored afterwards, so calling this
    in-process leaves the application's logging as it was.
    """
    unmix_logger = logging.getLogger(LOGGER_NAME)
    level, handlers = unmix_logger.level, list(unmix_logger.handlers)
    levels = {0: logging.WARNING, 1: logging.INFO}
    enable_logging(logging.ERROR if args.quiet else levels.get(args.verbose, logging.DEBUG))
    try:
        return _run(args)
    finally:
        unmix_logger.setLevel(level)
        unmix_logger.handlers[:] = handlers


def _run(args: argparse.Namespace) -> int:
    if args.list_models:
        from unmix.pretrained.registry import format_model_list

        sys.stdout.write(f"{format_model_list()}\n\nModel folders and Spleeter .json configurations work too.\n")
        return 0
    report = _Reporter(args.verbose)
    if not args.inputs:
        report("usage", "no input given; pass audio files or folders (or --list-models)")
        return 2
    try:
        device = _device(args)
    except ValueError as err:
        report("--device", err)
        return 2
    if Codec(args.codec).uses_ffmpeg and not ffmpeg_available():
        from unmix.audio.ffmpeg import INSTALL_HINT

        report("--codec", f"writing {args.codec} needs ffmpeg, which was not found. {INSTALL_HINT}")
        return 1
    files = collect_inputs(args.inputs, report)
    if not files:
        return 1
    try:
        separator = load_model(args, device)
        names = list(args.aggregate) if args.aggregate else list(separator.targets)
        if args.aggregate:
            check_aggregate(args.aggregate, list(separator.targets))
        if len(set(names)) != len(names):
            raise ValueError(f"output names {names} repeat a name; choose another --residual NAME")
    except Exception as err:  # noqa: BLE001 - the CLI boundary: one line, never a half-run
        report(f"model '{args.model}'", err)
        return 1
    logger.info("model %s: targets %s at %g Hz on %s", args.model, names, separator.sample_rate, device)
    jobs = plan_jobs(files, names, args, report)
    settings = Settings(args.offset, args.duration, args.downmix, args.aggregate, args.codec, args.bitrate,
                        args.chunk_seconds or None, args.context_seconds, not args.quiet)
    _process(separator, jobs, settings, args, report)
    return 1 if report.failures else 0


def _process(separator: nn.Module, jobs: list[Job], settings: Settings, args: argparse.Namespace,
             report: _Reporter) -> None:
    """Run :func:`separate_file` on every job with a progress bar; report errors, including late write errors."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    adapter = get_default_audio_adapter()
    in_flight: list[tuple[Job, list[concurrent.futures.Future]]] = []

    def settle(wait: bool) -> None:
        for job, futures in list(in_flight):
            if wait:
                concurrent.futures.wait(futures)
            if all(f.done() for f in futures):
                in_flight.remove((job, futures))
                errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
                interrupt = next((e for e in errors if isinstance(e, KeyboardInterrupt)), None)
                if interrupt is not None:
                    raise interrupt
                if errors:
                    report(job.source, errors[0])
                else:
                    logger.info("wrote %s", ", ".join(str(p) for p in job.outputs.values()))

    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger(LOGGER_NAME)]):
            bar = tqdm(jobs, desc="separating", unit="file", disable=True if args.quiet else None, file=sys.stderr)
            for job in bar:
                bar.set_postfix_str(job.source.name, refresh=False)
                try:
                    in_flight.append((job, separate_file(separator, adapter, job, settings)))
                except Exception as err:  # noqa: BLE001 - one line per failing input, the others go on
                    report(job.source, err)
                settle(wait=False)
            settle(wait=True)
    except BaseException:
        for _, futures in in_flight:
            for future in futures:
                future.cancel()
        concurrent.futures.wait([f for _, futures in in_flight for f in futures])
        raise
    finally:
        write_queue(separator).shutdown()


__all__ = ["AUDIO_SUFFIXES", "Job", "Settings", "build_parser", "collect_inputs", "load_model", "plan_jobs", "run",
           "separate_file"]
