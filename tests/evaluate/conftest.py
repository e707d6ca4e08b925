"""Fixtures for the evaluation tests: a tiny MUSDB18-layout root (WAV) and a small random Open-Unmix model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.evaluate import _native
from unmix.models.openunmix import OpenUnmix

TRACKS = ("Alpha - First Song", "Beta - Second Song")
SOURCES = ("vocals", "drums", "bass", "other")
RATE = 44100
MODEL_RATE = 22050


@pytest.fixture(scope="session")
def musdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/test/<track>/{mixture,vocals,drums,bass,other}.wav``: 2 tracks of 2.5 s random stereo stems at 44.1 kHz,
    the mixture their sum (``musdb.DB(root, is_wav=True)`` layout)."""
    root = tmp_path_factory.mktemp("musdb")
    rng = np.random.default_rng(7)
    for name in TRACKS:
        folder = root / "test" / name
        folder.mkdir(parents=True)
        stems = {s: (0.1 * rng.standard_normal((int(2.5 * RATE), 2))).astype(np.float32) for s in SOURCES}
        for source, audio in stems.items():
            sf.write(str(folder / f"{source}.wav"), audio, RATE, subtype="FLOAT")
        sf.write(str(folder / "mixture.wav"), sum(stems.values()), RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Open-Unmix folder in upstream's layout (``<target>.pth``, ``<target>.json``, ``separator.json``): 22050 Hz
    stereo, targets vocals/drums/bass/other, hidden size 16, random weights."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(3)
    args = {"nfft": 512, "nhop": 128, "nb_channels": 2, "hidden_size": 16, "sample_rate": MODEL_RATE}
    for target in SOURCES:
        torch.save(OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16).state_dict(), folder / f"{target}.pth")
        (folder / f"{target}.json").write_text(json.dumps({"args": args}))
    (folder / "separator.json").write_text(
        json.dumps({"sample_rate": MODEL_RATE, "nfft": 512, "nhop": 128, "nb_channels": 2})
    )
    return folder


@pytest.fixture(params=["kernels-if-built", "numpy"])
def bsseval_code(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test twice: with BSSEval's compiled kernels where they are built (as users get it), and with its numpy
    code alone (as where no compiler was available at install)."""
    if request.param == "numpy":
        monkeypatch.setattr(_native, "ENABLED", False)
    return request.param
