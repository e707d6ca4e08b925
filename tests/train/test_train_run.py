"""A whole training run on a tiny synthetic MUSDB folder: the loss drops and the run folder is complete."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import unmix
from unmix.cli.main import main
from unmix.train import Trainer, TrainingError, read_evaluation, train
from unmix.train.run_folder import BASE_COLUMNS

UPSTREAM_JSON_KEYS = {"epochs_trained", "args", "best_loss", "best_epoch", "train_loss_history",
                      "valid_loss_history", "train_time_history", "num_bad_epochs", "commit"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """Six epochs of one vocals model, with images, audio and TensorBoard enabled; returns (folder, result, log)."""
    folder = tmp_path_factory.mktemp("run") / "vocals-run"
    config = tiny(epochs=6, media_every=3, tensorboard=True, media_seconds=1.0)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root_logger = logging.getLogger("unmix")
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    try:
        result = train(config, folder, resume=False)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    return folder, result, [r.getMessage() for r in records]


def test_validation_loss_drops(trained):
    folder, result, _ = trained
    rows = read_evaluation(folder / "evaluation.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert list(rows[0])[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    valid = [r["valid_loss"] for r in rows]
    assert all(math.isfinite(v) for v in valid)
    assert min(valid[1:]) < 0.9 * valid[0], valid
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert all(math.isfinite(r["valid_sdr"]) and r["samples_per_s"] > 0 for r in rows)
    assert result.best_epoch == int(np.argmin(valid)) + 1
    assert result.best_loss == pytest.approx(min(valid), rel=1e-5)
    assert [bool(r["best"]) for r in rows].count(True) >= 2


def test_model_files_use_upstream_layout(trained):
    folder, result, _ = trained
    separator_json = json.loads((folder / "separator.json").read_text())
    assert separator_json == {"nb_channels": 2, "nfft": 512, "nhop": 128, "sample_rate": 8000.0,
                              "targets": ["vocals"]}
    info = json.loads((folder / "vocals.json").read_text())
    assert UPSTREAM_JSON_KEYS <= set(info)
    assert info["architecture"] == "openunmix" and info["epochs_trained"] == 6
    assert info["best_epoch"] == result.best_epoch and len(info["valid_loss_history"]) == 6
    assert info["args"]["max_bin"] == 257 and info["args"]["target"] == "vocals"
    weights = torch.load(folder / "vocals.pth", weights_only=True)
    best = torch.load(folder / "checkpoint" / "best.pt", weights_only=True)
    assert best["state"]["epoch"] == result.best_epoch
    assert weights.keys() == best["models"]["vocals"].keys()
    assert all(torch.equal(weights[k], best["models"]["vocals"][k]) for k in weights)
    # the input statistics were computed: the scaler is not the identity
    assert not torch.allclose(weights["input_scale"], torch.ones_like(weights["input_scale"]))
    assert not list(folder.rglob(".*.part*")), "temporary files left behind"


def test_folder_loads_and_separates(trained, musdb_root, tmp_path):
    folder, _, _ = trained
    separator = unmix.load_separator(folder, niter=0)
    assert separator.targets == ["vocals"] and separator.sample_rate == 8000.0
    (path,) = musdb_root.glob("valid/*/mixture.wav")
    mixture, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = torch.as_tensor(mixture.T)[None]
    with torch.no_grad():
        estimate = separator(audio)
    assert estimate.shape == (1, 1, 2, audio.shape[-1]) and torch.isfinite(estimate).all()
    # the command line uses the folder as a model too
    wav = tmp_path / "song.wav"
    sf.write(str(wav), mixture, rate)
    assert main(["separate", str(wav), "--model", str(folder), "--niter", "0", "-o", str(tmp_path / "out")]) == 0
    written, out_rate = sf.read(str(tmp_path / "out" / "song" / "vocals.wav"), dtype="float32", always_2d=True)
    assert out_rate == 8000 and written.shape == mixture.shape


def test_images_audio_and_tensorboard(trained):
    folder, _, messages = trained
    audio = sorted(p.relative_to(folder / "audio").as_posix() for p in (folder / "audio").rglob("*.wav"))
    assert audio == ["epoch_0001/vocals.wav", "epoch_0003/vocals.wav", "epoch_0006/vocals.wav", "mixture.wav",
                     "vocals_reference.wav"]
    data, rate = sf.read(str(folder / "audio" / "epoch_0006" / "vocals.wav"), always_2d=True)
    assert rate == 8000 and data.shape == (8000, 2) and np.isfinite(data).all()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("images/ skipped" in m for m in messages)
    else:
        images = sorted(p.name for p in (folder / "images").glob("*.png"))
        assert images == ["epoch_0001_vocals.png", "epoch_0003_vocals.png", "epoch_0006_vocals.png"]
        assert (folder / "images" / images[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert any("TensorBoard logging skipped" in m for m in messages)
    else:
        assert list((folder / "runs").glob("events.out.tfevents.*"))


def test_unet_trains_end_to_end_and_loads(tiny, tmp_path):
    filters = [4, 4, 8, 8, 16, 16]
    config = tiny(architecture="unet", loss="sisdr", epochs=1, targets=["vocals", "drums"], niter=1,
                  model_args={"nb_bins": 128, "segment_frames": 64, "conv_n_filters": filters})
    result = train(config, tmp_path / "unet")
    assert len(result.history) == 1 and math.isfinite(result.history[0]["valid_loss"])
    info = json.loads((tmp_path / "unet" / "drums.json").read_text())
    assert info["architecture"] == "unet" and info["model_args"]["conv_n_filters"] == filters
    separator = unmix.load_separator(tmp_path / "unet", niter=1)
    assert type(separator.target_models["vocals"]).__name__ == "UNet"
    with torch.no_grad():
        assert separator(torch.randn(1, 2, 4000) * 0.1).shape == (1, 2, 2, 4000)


def test_bf16_autocast_and_fine_tuning(tiny, tmp_path):
    first = train(tiny(epochs=1, amp="bf16"), tmp_path / "bf16")
    assert math.isfinite(first.history[0]["train_loss"])
    start = torch.load(tmp_path / "bf16" / "vocals.pth", weights_only=True)
    trainer = Trainer(tiny(epochs=1, model=str(tmp_path / "bf16")), tmp_path / "tuned")
    trainer.setup()
    loaded = trainer.models["vocals"].state_dict()
    assert all(torch.equal(loaded[k], start[k]) for k in start)  # fine-tuning starts from the given weights
    trainer.fit()
    tuned = torch.load(tmp_path / "tuned" / "vocals.pth", weights_only=True)
    assert not torch.equal(tuned["fc1.weight"], start["fc1.weight"])
    with pytest.raises(TrainingError, match="set --nb-channels and --nfft"):
        Trainer(tiny(epochs=1, model=str(tmp_path / "bf16"), nfft=1024), tmp_path / "mismatch").setup()
