"""The packaged ``demo`` model: registered, verified, loads offline and separates better than doing nothing."""

from __future__ import annotations

import dataclasses

import pytest
import soundfile as sf
import torch

import unmix
from unmix.cli.main import main
from unmix.data import make_musdb_like
from unmix.errors import ChecksumError
from unmix.evaluate.metrics import sdr
from unmix.pretrained import registry

TARGETS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Any download attempt goes to a closed port and fails."""
    monkeypatch.setenv("UNMIX_MIRROR", "http://127.0.0.1:9")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    root = make_musdb_like(tmp_path_factory.mktemp("demo-song"), n_train=0, n_test=1, duration=4.0, seed=5)
    (folder,) = (root / "test").iterdir()
    return folder


def test_registered_and_packaged():
    info = registry.get_model_info("demo")
    assert info.family == "embedded" and list(info.targets) == TARGETS and "MIT" in info.licence
    assert "demo" in registry.list_models() and "demo" in registry.list_models("embedded")
    folder = registry.embedded_dir("demo")  # verifies the registered SHA-256 of every weight file
    assert (folder / "README.md").is_file()
    weights = sorted(folder.glob("*.pth"))
    assert [p.stem for p in weights] == sorted(TARGETS)
    assert sum(p.stat().st_size for p in weights) < 5 * 2**20
    state = torch.load(folder / "vocals.pth", weights_only=True)
    assert state["fc1.weight"].shape == (info.hidden_size, 2 * info.max_bin)
    broken = dataclasses.replace(info, files=tuple(dataclasses.replace(f, sha256="0" * 64) for f in info.files))
    with pytest.raises(ChecksumError, match="reinstall"):
        registry.embedded_dir(broken)


def test_separates_offline_better_than_the_mixture(song):
    separator = unmix.load_separator("demo")
    assert separator.targets == TARGETS and separator.sample_rate == 44100.0
    mixture = torch.as_tensor(sf.read(str(song / "mixture.wav"), dtype="float32")[0].T)
    references = torch.stack([torch.as_tensor(sf.read(str(song / f"{t}.wav"), dtype="float32")[0].T)
                              for t in TARGETS])
    with torch.no_grad():
        estimates = separator(mixture[None])[0]
    assert estimates.shape == references.shape and torch.isfinite(estimates).all()
    gain = sdr(estimates, references) - sdr(mixture.expand_as(references), references)
    assert gain.mean() > 3.0 and (gain > 0).all(), gain  # a trained model, not random weights


def test_command_line_uses_the_demo_model(song, tmp_path):
    assert main(["separate", str(song / "mixture.wav"), "--model", "demo", "-o", str(tmp_path), "-d", "2"]) == 0
    for target in TARGETS:
        audio, rate = sf.read(str(tmp_path / "mixture" / f"{target}.wav"))
        assert rate == 44100 and audio.shape == (88200, 2)
    models = unmix.load_target_models("demo", targets="bass")
    assert list(models) == ["bass"] and models["bass"].hidden_size == 32
