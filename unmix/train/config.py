"""Every training setting in one dataclass, with a JSON round trip, templates and ``--key value`` edits.

A run folder holds ``config.json`` (:meth:`TrainConfig.save`); ``unmix train DIR`` reads it back
(:meth:`TrainConfig.load`). Defaults are those of Open-Unmix's ``scripts/train.py``; :data:`TEMPLATES` holds the
starting points of ``unmix config <template>`` (``openunmix``: upstream's BiLSTM recipe, ``unet``: Spleeter's U-Net
recipe: 4 stems jointly, batch 4, lr 1e-4, L1 on magnitudes).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unmix.utils.atomic import atomic_write_json

from unmix.errors import TrainingError


ARCHITECTURES = ("openunmix", "unet")
LOSSES = ("mse", "mae", "sisdr", "sdr", "l1")
SPECTROGRAM_LOSSES = ("mse", "mae")
AMP_MODES = (None, "bf16", "fp16")
CONFIG_FILE = "config.json"


@dataclass
class TrainConfig:
    """All settings of a training run (saved as ``config.json`` in the run folder).

    Data:
        dataset: ``musdb``, ``aligned``, ``sourcefolder``, ``trackfolder_fix``, ``trackfolder_var`` or ``csv``.
        root: dataset root folder.
        targets: target names; several train jointly (one model each; end-to-end losses couple them).
        is_wav: MUSDB as WAV folders (MUSDB18-HQ layout) instead of ``.stem.mp4``.
        valid_tracks: MUSDB train-subset tracks held out for validation (None: ``root/valid`` or musdb's list).
        seq_dur: training excerpt length in seconds; None for full tracks.
        samples_per_track: MUSDB excerpts per track per epoch.
        source_augmentations: augmentation names (``gain``, ``channelswap``, ``force_stereo``).
        random_track_mix: MUSDB: draw every stem from a random track.
        sample_rate: sample rate of the folder datasets (MUSDB reads it from the files).
        dataset_args: extra keyword arguments of the dataset builder (``unmix.data.DATASET_BUILDERS``).
        nb_workers: DataLoader worker processes (used on CPU too).

    Model:
        architecture: ``openunmix`` (BiLSTM) or ``unet`` (Spleeter U-Net).
        nfft, nhop: STFT size and hop.
        nb_channels: audio channels the model takes (1: channel mean of the magnitude).
        bandwidth: highest frequency (Hz) an Open-Unmix model looks at (sets ``max_bin``).
        hidden_size, nb_layers, unidirectional: Open-Unmix sizes.
        model_args: extra constructor arguments of the model (U-Net: ``nb_bins``, ``segment_frames`` ...).
        model: registered name or folder of a model to fine-tune (None: train from scratch).

    Optimisation:
        epochs, batch_size, lr, weight_decay, seed: as upstream (``batch_size`` is global under DDP).
        patience: early stopping after this many epochs without a better validation loss.
        lr_decay_patience, lr_decay_gamma, lr_decay_cooldown: ``ReduceLROnPlateau`` on the validation loss.
        grad_clip: clip the gradient norm to this value (0: off).
        loss: ``mse``/``mae`` on magnitudes per target, or ``sisdr``/``sdr``/``l1`` on waveforms through the
            Separator (all targets jointly).
        niter: Wiener EM iterations inside the Separator (end-to-end losses and the validation SDR).
        wiener_win_len: frames per Wiener block.
        amp: mixed precision ``bf16`` / ``fp16`` (None: float32).
        compile: ``torch.compile`` the target models.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        statistics: compute the input mean/scale over the training mixtures (Open-Unmix; off when fine-tuning).
        statistics_max_items: use at most this many items for the statistics (None: all).

    Outputs:
        name: run name.
        valid_sdr: compute the validation SDR every epoch.
        media_every: write images/ and audio/ every this many epochs and after the first (0: never).
        media_seconds: length of the validation excerpt of images/ and audio/.
        tensorboard: write TensorBoard logs to runs/ when tensorboard is installed.
        quiet: no progress bars.
    """

    name: str = "open-unmix"
    # data
    dataset: str = "musdb"
    root: str | None = None
    targets: list[str] = field(default_factory=lambda: ["vocals"])
    is_wav: bool = False
    valid_tracks: list[str] | None = None
    seq_dur: float | None = 6.0
    samples_per_track: int = 64
    source_augmentations: list[str] = field(default_factory=lambda: ["gain", "channelswap"])
    random_track_mix: bool = True
    sample_rate: float = 44100.0
    dataset_args: dict[str, Any] = field(default_factory=dict)
    nb_workers: int = 0
    # model
    architecture: str = "openunmix"
    nfft: int = 4096
    nhop: int = 1024
    nb_channels: int = 2
    bandwidth: float = 16000.0
    hidden_size: int = 512
    nb_layers: int = 3
    unidirectional: bool = False
    model_args: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    # optimisation
    epochs: int = 1000
    batch_size: int = 16
    lr: float = 0.001
    weight_decay: float = 0.00001
    patience: int = 140
    lr_decay_patience: int = 80
    lr_decay_gamma: float = 0.3
    lr_decay_cooldown: int = 10
    grad_clip: float = 0.0
    seed: int = 42
    loss: str = "mse"
    niter: int = 0
    wiener_win_len: int | None = 300
    amp: str | None = None
    compile: bool = False
    device: str = "auto"
    statistics: bool = True
    statistics_max_items: int | None = None
    # outputs
    valid_sdr: bool = True
    media_every: int = 10
    media_seconds: float = 5.0
    tensorboard: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Check the values; raise :class:`TrainingError` naming the bad setting and the fix."""
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        self.targets = [str(t) for t in self.targets]
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise TrainingError(f"targets must be distinct names, got {self.targets}; e.g. --targets vocals drums")
        _choice("architecture", self.architecture, ARCHITECTURES)
        _choice("loss", self.loss, LOSSES)
        _choice("amp", self.amp, AMP_MODES)
        for name in ("epochs", "batch_size", "samples_per_track", "nfft", "nhop", "hidden_size", "nb_layers"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("patience", "lr_decay_patience", "lr_decay_cooldown", "niter", "nb_workers", "media_every"):
            if int(getattr(self, name)) < 0:
                raise TrainingError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.nb_channels not in (1, 2):
            raise TrainingError(f"nb_channels must be 1 or 2, got {self.nb_channels}")
        if self.seq_dur is not None and self.seq_dur <= 0:
            self.seq_dur = None  # upstream: <= 0 means full / variable length
        if not self.lr > 0 or self.weight_decay < 0 or not 0 < self.lr_decay_gamma <= 1:
            raise TrainingError(
                f"need lr > 0, weight_decay >= 0 and 0 < lr_decay_gamma <= 1; got lr={self.lr}, "
                f"weight_decay={self.weight_decay}, lr_decay_gamma={self.lr_decay_gamma}"
            )
        if self.nhop > self.nfft:
            raise TrainingError(f"nhop ({self.nhop}) must not exceed nfft ({self.nfft})")

    @property
    def end_to_end(self) -> bool:
        """Whether the loss is computed on waveforms through the Separator."""
        return self.loss not in SPECTROGRAM_LOSSES

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error (with a suggestion)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [key for key in data if key not in known]
        if unknown:
            hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, known, 1)) else k
                     for k in unknown]
            raise TrainingError(f"unknown config keys: {', '.join(hints)}; known keys: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        values = {key: coerce(key, hints[key], value) for key, value in data.items()}
        return cls(**values)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/config.json`` atomically (the folder is created); return its path."""
        path = Path(folder) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a config from ``path`` (a ``config.json`` or the run folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise TrainingError(
                f"no training config at {path}; create one with 'unmix config openunmix --name NAME --save DIR'"
            ) from err
        except (OSError, json.JSONDecodeError) as err:
            raise TrainingError(f"cannot read the training config {path}: {err}") from err
        if not isinstance(data, dict):
            raise TrainingError(f"{path} must hold a JSON object, found {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (checked like the constructor)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


#: Starting points of ``unmix config <template>``: changes to the defaults.
TEMPLATES: dict[str, dict[str, Any]] = {
    "openunmix": {},
    "unet": {
        "architecture": "unet",
        "targets": ["vocals", "drums", "bass", "other"],
        "batch_size": 4,
        "lr": 0.0001,
        "loss": "mae",
        "seq_dur": 11.95,  # 511 frames of hop 1024 (centre=False): one 512-frame U-Net segment
        "model_args": {"nb_bins": 1024, "segment_frames": 512, "conv_activation": "ELU", "deconv_activation": "ELU"},
    },
}


def template(template_name: str, **changes: Any) -> TrainConfig:
    """The config of template ``template_name`` (:data:`TEMPLATES`) with ``changes`` applied."""
    if template_name not in TEMPLATES:
        raise TrainingError(f"unknown template {template_name!r}; choose from {sorted(TEMPLATES)}")
    return TrainConfig.from_dict({**TEMPLATES[template_name], **changes})


def _choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise TrainingError(f"{name} must be one of {list(choices)}, got {value!r}")


def _base_types(hint: Any) -> tuple[Any, bool]:
    """``(the non-None type of an annotation, whether None is allowed)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else hint), len(inner) < len(args)
    return hint, False


def coerce(key: str, hint: Any, value: Any) -> Any:
    """Convert a JSON or command-line value to the type of setting ``key`` (strings are parsed)."""
    base, optional = _base_types(hint)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise TrainingError(f"{key} cannot be None")
    origin = typing.get_origin(base) or base
    try:
        if origin is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"expected true/false, got {value!r}")
                return lowered in ("true", "1", "yes")
            return bool(value)
        if origin is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value}")
            return int(value)
        if origin is float:
            return float(value)
        if origin is str:
            return str(value)
        if origin is list:
            items = [value] if isinstance(value, str) else list(value)
            return [str(item) for item in items]
        if origin is dict:
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, dict):
                raise ValueError(f"expected a JSON object, got {value!r}")
            return dict(parsed)
    except (TypeError, ValueError) as err:
        raise TrainingError(f"invalid value for {key}: {err}") from err
    raise TrainingError(f"{key}: unsupported setting type {hint}")  # pragma: no cover - all fields covered above


def apply_overrides(config: TrainConfig, tokens: Sequence[str]) -> TrainConfig:
    """Apply command-line edits ``["--key", "value", ...]`` (``unmix config DIR --epochs 10``).

    Keys use dashes or underscores; a list setting takes every value up to the next ``--key``; a boolean key without
    a value means true; ``none`` clears an optional setting; dict settings take JSON.
    """
    hints = typing.get_type_hints(TrainConfig)
    changes: dict[str, Any] = {}
    index = 0
    tokens = list(tokens)
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or len(token) < 3:
            raise TrainingError(f"expected --key value pairs, got {token!r}")
        key, _, inline = token[2:].partition("=")
        key = key.replace("-", "_")
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), 1)
            raise TrainingError(f"unknown setting --{key}" + (f" (did you mean --{close[0]}?)" if close else ""))
        values = [inline] if inline else []
        index += 1
        while not inline and index < len(tokens) and not tokens[index].startswith("--"):
            values.append(tokens[index])
            index += 1
        base, _ = _base_types(hints[key])
        if (typing.get_origin(base) or base) is list:
            changes[key] = coerce(key, hints[key], values[0] if len(values) == 1 and values[0].lower() in
                                  ("none", "null") else values)
        elif not values:
            if base is not bool:
                raise TrainingError(f"--{key} needs a value")
            changes[key] = True
        elif len(values) > 1:
            raise TrainingError(f"--{key} takes one value, got {values}")
        else:
            changes[key] = coerce(key, hints[key], values[0])
    return config.replace(**changes)


__all__ = ["TEMPLATES", "TrainConfig", "TrainingError", "apply_overrides", "template"]
