"""The training folder: every file a run writes, each through :mod:`unmix.utils.atomic`.

::

    DIR/config.json            every setting (TrainConfig)
    DIR/separator.json         {"nb_channels", "nfft", "nhop", "sample_rate", "targets"}   (upstream layout)
    DIR/<target>.pth           best weights, a plain state dict (torch.load(..., weights_only=True))
    DIR/<target>.json          {"architecture", "model_args", "args", "epochs_trained", "best_loss", ...}
    DIR/checkpoint/latest.pt   everything needed to resume (see unmix.train.checkpoint)
    DIR/checkpoint/best.pt     the same at the best epoch
    DIR/evaluation.csv         one row per epoch: train/valid loss, valid SDR, learning rate, time
    DIR/images/                spectrograms and masks of a validation excerpt (PNG)
    DIR/audio/                 the excerpt's mixture, references and estimates (WAV)
    DIR/runs/                  TensorBoard event files (when tensorboard is installed)

``unmix.load_separator(DIR)`` and ``unmix separate --model DIR`` use the folder directly.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from unmix.utils.atomic import atomic_torch_save, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

BASE_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_sdr", "lr", "epoch_time", "best")


def _version() -> str:
    try:
        from unmix import __version__
    except ImportError:  # pragma: no cover
        return "unknown"
    return str(__version__)


class RunFolder:
    """Paths and writers of one training folder.

    Args:
        root: the folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoint"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.csv"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def audio(self) -> Path:
        return self.root / "audio"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def make(self) -> None:
        """Create the folder and its sub-folders."""
        for folder in (self.root, self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)

    def write_separator_json(self, sample_rate: float, config: Any, targets: Sequence[str]) -> Path:
        """``separator.json`` as upstream writes it, plus the target order."""
        path = self.root / "separator.json"
        atomic_write_json(path, {
            "nb_channels": config.nb_channels, "nfft": config.nfft, "nhop": config.nhop,
            "sample_rate": float(sample_rate), "targets": list(targets),
        })
        return path

    def write_target_files(
        self,
        states: Mapping[str, Mapping[str, torch.Tensor]],
        descriptions: Mapping[str, dict[str, Any]],
        args: dict[str, Any],
        history: Sequence[Mapping[str, Any]],
        best_epoch: int,
        best_loss: float | None,
        num_bad_epochs: int,
        targets: Sequence[str],
    ) -> None:
        """Write ``<target>.json`` for every target and ``<target>.pth`` (plain state dict) for those in ``states``.

        Args:
            states: ``{target: state_dict}`` of the weights to publish (the best epoch's); may be empty.
            descriptions: ``{target: {"architecture", "model_args"}}``.
            args: the run's settings (``config.to_dict()`` plus derived values such as ``max_bin``).
            history: the epoch rows so far.
            best_epoch: epoch of ``states``.
            best_loss: validation loss at ``best_epoch``.
            num_bad_epochs: early-stopping count.
            targets: every target of the run.
        """
        for target in targets:
            if target in states:
                weights = {k: v.detach().cpu().clone() for k, v in states[target].items()}
                atomic_torch_save(self.root / f"{target}.pth", weights)
            per_target_train = [row.get(f"train_loss_{target}", row.get("train_loss")) for row in history]
            per_target_valid = [row.get(f"valid_loss_{target}", row.get("valid_loss")) for row in history]
            atomic_write_json(self.root / f"{target}.json", {
                **descriptions[target],
                "args": {**args, "target": target},
                "epochs_trained": len(history),
                "best_epoch": best_epoch,
                "best_loss": best_loss,
                "train_loss_history": per_target_train,
                "valid_loss_history": per_target_valid,
                "train_time_history": [row.get("epoch_time") for row in history],
                "num_bad_epochs": num_bad_epochs,
                "commit": f"unmix {_version()}",
            })

    def write_evaluation(self, history: Sequence[Mapping[str, Any]]) -> Path:
        """Rewrite ``evaluation.csv`` from the whole history (one row per epoch)."""
        columns = list(BASE_COLUMNS)
        for row in history:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({key: _cell(row.get(key)) for key in columns})
        atomic_write_text(self.evaluation, buffer.getvalue())
        return self.evaluation


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return int(value)
    return "" if value is None else value


def read_evaluation(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read ``evaluation.csv`` back as a list of ``{column: float}`` rows (empty cells are NaN)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append({key: float(value) if value != "" else float("nan") for key, value in row.items()})
    return rows


__all__ = ["RunFolder", "read_evaluation"]
