"""Fixtures for the command-line tests: a tiny random-weight model folder, audio writers, in-process and subprocess
runners of the ``unmix`` command."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli.main import main
from unmix.models.openunmix import OpenUnmix

REPO = Path(__file__).resolve().parents[2]
MODEL_RATE = 22050
MODEL_TARGETS = ("vocals", "drums")


@pytest.fixture(autouse=True)
def _restore_unmix_logger() -> Iterator[None]:
    """Tests here configure the "unmix" logger; give the next test (of any folder) the state it had."""
    logger = logging.getLogger("unmix")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Open-Unmix model folder, 22050 Hz stereo, targets vocals and drums, hidden size 16, random weights."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(1)
    args = {"nfft": 512, "nhop": 128, "nb_channels": 2, "hidden_size": 16, "sample_rate": MODEL_RATE}
    for target in MODEL_TARGETS:
        model = OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16)
        torch.save(model.state_dict(), folder / f"{target}.pth")
        (folder / f"{target}.json").write_text(json.dumps({"args": args}))
    separator = {"sample_rate": MODEL_RATE, "nfft": 512, "nhop": 128, "nb_channels": 2, "targets": list(MODEL_TARGETS)}
    (folder / "separator.json").write_text(json.dumps(separator))
    return folder


def noise(nb_timesteps: int, nb_channels: int = 2, seed: int = 0) -> np.ndarray:
    """Uniform noise in [-0.5, 0.5) of shape (nb_timesteps, nb_channels), float32."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (nb_timesteps, nb_channels)).astype(np.float32)


def write_wav(path: Path, data: np.ndarray, rate: int = MODEL_RATE, subtype: str = "FLOAT") -> Path:
    """Write a WAV file (32-bit float by default), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format="WAV")
    return path


@pytest.fixture
def audio() -> SimpleNamespace:
    """Signal and file helpers, as a fixture (test modules do not import conftest)."""
    return SimpleNamespace(noise=noise, write_wav=write_wav, rate=MODEL_RATE, targets=MODEL_TARGETS)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., SimpleNamespace]:
    """Run ``main(argv)`` in-process; returns ``rc``, ``out``, ``err`` and ``errors`` (the ``error:`` lines)."""

    def run(*argv: object) -> SimpleNamespace:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        captured = capsys.readouterr()
        errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
        return SimpleNamespace(rc=rc, out=captured.out, err=captured.err, errors=errors)

    return run


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python <args>`` in a subprocess with the repository importable; text output captured."""

    def run(
        *args: object, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        environment = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **(env or {}))
        return subprocess.run(
            [sys.executable, *[str(a) for a in args]], cwd=cwd, env=environment, capture_output=True, text=True,
            timeout=timeout, check=False,
        )

    return run


def assert_clean_failure(result: SimpleNamespace | subprocess.CompletedProcess, nb_errors: int = 1) -> None:
    """Non-zero exit, exactly ``nb_errors`` ``error:`` lines, and no traceback."""
    err = result.err if hasattr(result, "err") else result.stderr
    rc = result.rc if hasattr(result, "rc") else result.returncode
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc != 0, err
    assert "Traceback" not in err, err
    assert len(lines) == nb_errors, err


@pytest.fixture
def clean_failure() -> Callable[..., None]:
    """:func:`assert_clean_failure` as a fixture."""
    return assert_clean_failure
