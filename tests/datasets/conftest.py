"""Fixtures of the dataset tests: one small synthetic MUSDB-layout folder per session (8 kHz, 2 s tracks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmix.data import make_musdb_like

RATE = 8000
DURATION = 2.0


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train`` (4 tracks), ``valid`` (1 track), ``test`` (2 tracks); read-only for the tests."""
    root = tmp_path_factory.mktemp("synth") / "musdb"
    return make_musdb_like(root, n_train=4, n_valid=1, n_test=2, duration=DURATION, sample_rate=RATE, seed=0)


def _find_start(excerpt, full) -> int:
    """Frame at which ``excerpt`` (nb_channels, L) occurs exactly in ``full`` (nb_channels, N); -1 if nowhere."""
    import numpy as np

    excerpt, full = np.asarray(excerpt), np.asarray(full)
    length = excerpt.shape[-1]
    probe = min(64, length)
    windows = np.lib.stride_tricks.sliding_window_view(full, probe, axis=-1)  # (C, N - probe + 1, probe)
    candidates = np.flatnonzero((windows == excerpt[:, None, :probe]).all(axis=(0, 2)))
    for start in candidates:
        if start + length <= full.shape[-1] and np.array_equal(full[:, start : start + length], excerpt):
            return int(start)
    return -1


@pytest.fixture(scope="session")
def find_start():
    """``find_start(excerpt, full) -> int``: exact location of an excerpt in a longer signal (-1 if absent)."""
    return _find_start


def read_wav(path: Path):
    """Read a WAV as float32 ``(nb_channels, nb_timesteps)`` numpy array."""
    import soundfile as sf

    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


@pytest.fixture(scope="session")
def wav():
    """``wav(path)``: float32 ``(nb_channels, nb_timesteps)`` array of a WAV file."""
    return read_wav
