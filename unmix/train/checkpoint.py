"""Checkpoints that let a killed run resume where it stopped: ``checkpoint/latest.pt`` and ``checkpoint/best.pt``.

A checkpoint holds the weights of every target model, the optimizer, the LR scheduler, the AMP grad scaler, the
early-stopping state, the epoch history and the random states (Python, numpy, torch, CUDA). It is written with
:func:`unmix.utils.atomic.atomic_torch_save` (temporary file + rename) and read with ``weights_only=True``: only
tensors and plain Python values are stored, so loading a checkpoint never runs code.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unmix.train.config import TrainingError
from unmix.utils.atomic import atomic_torch_save

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class EarlyStopping:
    """Stop when the monitored loss has not improved for ``patience`` epochs (Open-Unmix's ``EarlyStopping``).

    The first value is stored as the best; a NaN value stops at once; an epoch is "bad" unless the loss is lower
    than the best by more than ``min_delta``.

    Args:
        patience: bad epochs tolerated (0: never stop).
        min_delta: improvement needed to reset the count.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.num_bad_epochs = 0

    def step(self, loss: float) -> bool:
        """Record one epoch's loss; return True when training should stop."""
        if math.isnan(loss):
            return True
        if self.best is None or loss < self.best - self.min_delta:
            self.best = float(loss)
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        return self.patience > 0 and self.num_bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """``{"best", "num_bad_epochs", "patience", "min_delta"}``."""
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "patience": self.patience,
                "min_delta": self.min_delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the patience of the current config is kept)."""
        self.best = None if state.get("best") is None else float(state["best"])
        self.num_bad_epochs = int(state.get("num_bad_epochs", 0))


@dataclass
class TrainState:
    """Progress of a run.

    Attributes:
        epoch: last completed epoch (0 before the first).
        best_epoch: epoch of the best validation loss (0: none yet).
        history: one row per completed epoch (the columns of ``evaluation.csv``).
        stopped: early stopping ended the run.
    """

    epoch: int = 0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "best_epoch": self.best_epoch, "history": [dict(r) for r in self.history],
                "stopped": self.stopped}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrainState:
        return cls(int(state["epoch"]), int(state["best_epoch"]), [dict(r) for r in state["history"]],
                   bool(state.get("stopped", False)))


def capture_rng_state() -> dict[str, Any]:
    """The global random states (Python, numpy, torch, CUDA) as tensors and plain values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`capture_rng_state` output."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], **parts: Any) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: destination (``checkpoint/latest.pt`` or ``checkpoint/best.pt``); the folder is created.
        **parts: ``models`` (``{target: state_dict}``), ``optimizer``, ``scheduler``, ``scaler``,
            ``early_stopping``, ``state`` (:class:`TrainState` dict), ``rng`` ... (tensors and plain values).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(path, {"format_version": FORMAT_VERSION, **parts})
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        TrainingError: the file is missing, unreadable or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; start a new run or point to the run folder that has one")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise TrainingError(f"cannot read checkpoint {path}: {err}; delete it to restart the run") from err
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise TrainingError(f"{path} is not an unmix training checkpoint (format {FORMAT_VERSION})")
    return data


__all__ = ["EarlyStopping", "TrainState", "capture_rng_state", "load_checkpoint", "restore_rng_state",
           "save_checkpoint"]
