"""Fixtures of the training tests: a tiny synthetic MUSDB-layout folder (8 kHz, 2-s tracks) and tiny configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unmix.data import make_musdb_like
from unmix.train import TrainConfig

RATE = 8000


@pytest.fixture(scope="session")
def musdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train`` (4 tracks), ``valid`` (1 track); read-only for the tests."""
    root = tmp_path_factory.mktemp("train-synth") / "musdb"
    return make_musdb_like(root, n_train=4, n_valid=1, n_test=0, duration=2.0, sample_rate=RATE, seed=1)


def tiny_settings(dataset_root: Path, **changes: Any) -> TrainConfig:
    """A config that trains in about a second per epoch: 512-point STFT, 16 hidden units, 1-s excerpts."""
    settings: dict[str, Any] = {
        "root": str(dataset_root), "is_wav": True, "targets": ["vocals"], "seq_dur": 1.0, "samples_per_track": 4,
        "nfft": 512, "nhop": 128, "hidden_size": 16, "nb_layers": 1, "bandwidth": 4000.0, "epochs": 3,
        "batch_size": 4, "lr": 0.01, "media_every": 0, "quiet": True, "tensorboard": False, "device": "cpu",
    }
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="session")
def tiny(musdb_root: Path) -> Callable[..., TrainConfig]:
    """``tiny(**changes)``: a tiny config on :func:`musdb_root`."""
    return lambda **changes: tiny_settings(musdb_root, **changes)
