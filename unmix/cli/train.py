"""``unmix train``: train target models into a run folder (Open-Unmix's ``scripts/train.py`` flags and defaults).

Two ways in:

- ``unmix train DIR``: train from ``DIR/config.json`` (made by ``unmix config``), resuming ``DIR/checkpoint`` when
  present; flags given on the command line change the config first;
- ``unmix train --root MUSDB --target vocals ...``: upstream's command line; the run folder is ``--output``
  (default ``open-unmix``), where ``config.json`` is written.

Under ``torchrun --nproc-per-node N -m unmix train DIR`` every process trains its share (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from unmix.errors import UnmixError

HELP = "train Open-Unmix or U-Net target models into a run folder (upstream scripts/train.py flags)"

logger = logging.getLogger(__name__)

#: ``--flag`` -> config field for the flags that map one to one (argparse dest = field name).
_DATASETS = ("musdb", "aligned", "sourcefolder", "trackfolder_fix", "trackfolder_var", "csv")
#: Dataset-specific flags that go to ``config.dataset_args``.
_DATASET_ARGS = ("input_file", "output_file", "target_dir", "interferer_dirs", "ext", "nb_train_samples",
                 "nb_valid_samples", "target_file", "interferer_files", "random_interferer_mix",
                 "silence_missing_targets", "train_csv", "valid_csv", "audio_root")


def _defaults() -> dict[str, Any]:
    from unmix.train.config import TrainConfig

    return TrainConfig().to_dict()


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``unmix train``'s arguments (every default is that of the config, i.e. upstream's)."""
    d = _defaults()
    s = argparse.SUPPRESS
    parser.add_argument("folder", nargs="?", default=None,
                        help="run folder: trains from its config.json and resumes its checkpoint (else --output)")
    parser.add_argument("--template", choices=("openunmix", "unet"), default=s,
                        help="defaults for a new run folder (default: openunmix)")
    data = parser.add_argument_group("data")
    data.add_argument("--root", default=s, help="dataset root folder")
    data.add_argument("--dataset", choices=_DATASETS, default=s, help=f"dataset type (default: {d['dataset']})")
    data.add_argument("--is-wav", action="store_true", default=s, help="MUSDB as WAV folders (MUSDB18-HQ layout)")
    data.add_argument("--target", dest="targets", type=lambda t: [t], default=s,
                      help=f"target to train (default: {d['targets'][0]})")
    data.add_argument("--targets", nargs="+", default=s, help="several targets, trained jointly")
    data.add_argument("--valid-tracks", nargs="+", default=s,
                      help="MUSDB train tracks held out for validation (default: root/valid or musdb's list)")
    data.add_argument("--seq-dur", type=float, default=s,
                      help=f"excerpt length in seconds, <= 0 for full tracks (default: {d['seq_dur']})")
    data.add_argument("--samples-per-track", type=int, default=s,
                      help=f"MUSDB excerpts per track per epoch (default: {d['samples_per_track']})")
    data.add_argument("--source-augmentations", nargs="*", default=s,
                      help="augmentations: gain channelswap force_stereo (default: gain channelswap)")
    data.add_argument("--nb-workers", type=int, default=s, help="DataLoader worker processes (default: 0)")
    data.add_argument("--sample-rate", type=float, default=s, help="sample rate of folder datasets (default 44100)")
    extra = parser.add_argument_group("dataset-specific (as upstream)")
    extra.add_argument("--input-file", default=s, help="aligned: mixture file name")
    extra.add_argument("--output-file", default=s, help="aligned: target file name")
    extra.add_argument("--target-dir", default=s, help="sourcefolder: target folder")
    extra.add_argument("--interferer-dirs", nargs="+", default=s, help="sourcefolder: interferer folders")
    extra.add_argument("--ext", default=s, help="sourcefolder/trackfolder_var: file extension (.wav)")
    extra.add_argument("--nb-train-samples", type=int, default=s, help="sourcefolder: training items per epoch")
    extra.add_argument("--nb-valid-samples", type=int, default=s, help="sourcefolder: validation items")
    extra.add_argument("--target-file", default=s, help="trackfolder_*: target file name")
    extra.add_argument("--interferer-files", nargs="+", default=s, help="trackfolder_fix: interferer file names")
    extra.add_argument("--random-track-mix", action="store_true", default=s,
                       help="trackfolder_fix: interferers from random tracks")
    extra.add_argument("--random-interferer-mix", action="store_true", default=s, help="trackfolder_var")
    extra.add_argument("--silence-missing", dest="silence_missing_targets", action="store_true", default=s,
                       help="trackfolder_var: silent target when missing")
    extra.add_argument("--train-csv", default=s, help="csv: Spleeter training CSV")
    extra.add_argument("--valid-csv", default=s, help="csv: Spleeter validation CSV")
    extra.add_argument("--audio-root", default=s, help="csv: folder the CSV paths are relative to")
    model = parser.add_argument_group("model")
    model.add_argument("--architecture", choices=("openunmix", "unet"), default=s, help="(default: openunmix)")
    model.add_argument("--hidden-size", type=int, default=s, help=f"(default: {d['hidden_size']})")
    model.add_argument("--nb-layers", type=int, default=s, help=f"LSTM layers (default: {d['nb_layers']})")
    model.add_argument("--nfft", type=int, default=s, help=f"STFT size (default: {d['nfft']})")
    model.add_argument("--nhop", type=int, default=s, help=f"STFT hop (default: {d['nhop']})")
    model.add_argument("--bandwidth", type=float, default=s, help=f"model bandwidth in Hz (default: {d['bandwidth']:g})")
    model.add_argument("--nb-channels", type=int, default=s, help=f"(default: {d['nb_channels']})")
    model.add_argument("--unidirectional", action="store_true", default=s, help="causal (forward-only) LSTM")
    model.add_argument("--model", default=s, help="registered name or folder of a model to fine-tune")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=s, help=f"(default: {d['epochs']})")
    optim.add_argument("--batch-size", type=int, default=s, help=f"global batch size (default: {d['batch_size']})")
    optim.add_argument("--lr", type=float, default=s, help=f"learning rate (default: {d['lr']})")
    optim.add_argument("--patience", type=int, default=s, help=f"early stopping patience (default: {d['patience']})")
    optim.add_argument("--lr-decay-patience", type=int, default=s, help=f"(default: {d['lr_decay_patience']})")
    optim.add_argument("--lr-decay-gamma", type=float, default=s, help=f"(default: {d['lr_decay_gamma']})")
    optim.add_argument("--weight-decay", type=float, default=s, help=f"(default: {d['weight_decay']})")
    optim.add_argument("--seed", type=int, default=s, help=f"(default: {d['seed']})")
    optim.add_argument("--loss", choices=("mse", "mae", "sisdr", "sdr", "l1"), default=s,
                       help="mse/mae on magnitudes per target, or sisdr/sdr/l1 on waveforms through the Separator")
    optim.add_argument("--niter", type=int, default=s, help="Wiener EM iterations trained through (default: 0)")
    optim.add_argument("--amp", choices=("bf16", "fp16"), default=s, help="mixed precision")
    optim.add_argument("--compile", action="store_true", default=s, help="torch.compile the target models")
    optim.add_argument("--device", default=s, help="auto, cpu, cuda, cuda:1 ... (default: auto)")
    optim.add_argument("--no-cuda", dest="device", action="store_const", const="cpu", default=s,
                       help="train on the CPU")
    misc = parser.add_argument_group("run")
    misc.add_argument("--output", default=s, help="run folder when no FOLDER is given (default: open-unmix)")
    misc.add_argument("--checkpoint", default=s, help="upstream's resume flag: the run folder to resume")
    misc.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    misc.add_argument("--debug", dest="statistics", action="store_false", default=s,
                      help="skip the input statistics (faster start)")
    misc.add_argument("--quiet", action="store_true", default=s, help="no progress bars")
    misc.add_argument("--audio-backend", default=s, help="accepted for compatibility; unmix reads with soundfile")


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line (dataset-specific flags go into ``dataset_args``)."""
    given = {k: v for k, v in vars(args).items()
             if k not in ("folder", "template", "output", "checkpoint", "restart", "audio_backend", "_run",
                          "command")}
    dataset_args = {key: given.pop(key) for key in _DATASET_ARGS if key in given}
    if "random_track_mix" in given and given.get("dataset") == "trackfolder_fix":
        dataset_args["random_track_mix"] = given.pop("random_track_mix")
    if dataset_args:
        given["dataset_args"] = dataset_args
    return given


def resolve(args: argparse.Namespace) -> tuple[Any, Path]:
    """``(config, run folder)`` from the command line and an existing ``config.json``."""
    from unmix.train.config import TrainConfig, TrainingError, template

    folder = Path(args.folder or getattr(args, "checkpoint", None) or getattr(args, "output", "open-unmix"))
    changes = config_changes(args)
    if (folder / "config.json").is_file():
        if hasattr(args, "template"):
            raise TrainingError(f"{folder} already has a config.json; drop --template or edit it with 'unmix config'")
        base = TrainConfig.load(folder)
        if "dataset_args" in changes:
            changes["dataset_args"] = {**base.dataset_args, **changes["dataset_args"]}
        return base.replace(**changes), folder
    if args.folder and not changes and not hasattr(args, "template"):
        raise TrainingError(f"{folder} has no config.json; create it with 'unmix config openunmix --save {folder}' "
                            "or give the settings (--root ...)")
    return template(getattr(args, "template", "openunmix"), **changes), folder


def run(args: argparse.Namespace) -> int:
    """Train; return 0 on success, 1 on an error (reported on stderr)."""
    from unmix.utils.logging import enable_logging

    if getattr(args, "audio_backend", None):
        logger.info("--audio-backend is ignored: unmix reads audio with soundfile")
    rank = int(os.environ.get("RANK", "0"))
    enable_logging(logging.INFO if rank == 0 else logging.WARNING)
    try:
        from unmix.train import train

        config, folder = resolve(args)
        result = train(config, folder, resume=not args.restart)
    except (UnmixError, OSError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    if rank == 0:
        best = "none" if result.best_loss is None else f"{result.best_loss:.6g}"
        logger.info("done: %d epochs in %s, best epoch %d (valid loss %s)%s", len(result.history), result.folder,
                    result.best_epoch, best, ", stopped early" if result.stopped_early else "")
    return 0


__all__ = ["HELP", "build_parser", "config_changes", "resolve", "run"]
