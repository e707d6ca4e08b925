"""Fixtures for the audio tests: tiny generated signals and files in tmp_path, ffmpeg helpers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from unmix.audio import ffmpeg as unmix_ffmpeg
from unmix.errors import MissingDependencyError


def sine(freq: float, rate: int, nb_timesteps: int, nb_channels: int = 2, amp: float = 0.5) -> np.ndarray:
    """Sine of shape (nb_timesteps, nb_channels); channel c has phase offset c (so channels differ)."""
    t = np.arange(nb_timesteps) / rate
    return np.stack([amp * np.sin(2 * np.pi * freq * t + c) for c in range(nb_channels)], axis=1).astype(np.float32)


def noise(nb_timesteps: int, nb_channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (nb_timesteps, nb_channels)).astype(np.float32)


@pytest.fixture
def signals() -> SimpleNamespace:
    """The signal generators, as a fixture (test modules do not import conftest)."""
    return SimpleNamespace(sine=sine, noise=noise)


@pytest.fixture
def ffmpeg_bin() -> str:
    """Path of ffmpeg; the test is skipped only when ffmpeg is truly absent (CI installs it)."""
    try:
        return unmix_ffmpeg.ffmpeg_executable()
    except MissingDependencyError:
        found = shutil.which("ffmpeg")
        if found is None:
            pytest.skip("ffmpeg is not installed")
        return found


@pytest.fixture
def run_ffmpeg(ffmpeg_bin: str) -> Callable[..., None]:
    """Run ffmpeg with the given arguments (independent of unmix's own encoder code)."""

    def run(*args: str | Path) -> None:
        subprocess.run(
            [ffmpeg_bin, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
            check=True,
            capture_output=True,
        )

    return run


@pytest.fixture
def no_ffmpeg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make ffmpeg unfindable: PATH points to an empty folder and the override variables are unset."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(unmix_ffmpeg.FFMPEG_ENV, raising=False)
    monkeypatch.delenv(unmix_ffmpeg.FFPROBE_ENV, raising=False)


@pytest.fixture
def wav_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a float WAV with soundfile and return its path."""

    def make(data: np.ndarray, rate: int = 44100, name: str = "in.wav", subtype: str = "FLOAT") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, rate, subtype=subtype)
        return path

    return make
