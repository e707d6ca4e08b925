"""TrainConfig (defaults, JSON, templates, edits) and the ``unmix config`` / ``unmix train`` command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.cli.main import get_parser, main
from unmix.cli.train import resolve
from unmix.train import TEMPLATES, TrainConfig, TrainingError, apply_overrides, template

REPO = Path(__file__).resolve().parents[2]

#: Upstream scripts/train.py defaults (../shared/docs/openunmix.md section 7).
UPSTREAM_DEFAULTS = {
    "targets": ["vocals"], "dataset": "musdb", "root": None, "model": None, "epochs": 1000, "batch_size": 16,
    "lr": 0.001, "patience": 140, "lr_decay_patience": 80, "lr_decay_gamma": 0.3, "weight_decay": 0.00001,
    "seed": 42, "seq_dur": 6.0, "unidirectional": False, "nfft": 4096, "nhop": 1024, "hidden_size": 512,
    "bandwidth": 16000.0, "nb_channels": 2, "nb_workers": 0, "is_wav": False, "samples_per_track": 64,
    "source_augmentations": ["gain", "channelswap"], "nb_layers": 3, "loss": "mse", "lr_decay_cooldown": 10,
}


def test_defaults_are_upstreams():
    config = TrainConfig().to_dict()
    assert {key: config[key] for key in UPSTREAM_DEFAULTS} == UPSTREAM_DEFAULTS


def test_json_round_trip(tmp_path):
    config = template("unet", root="/data", valid_tracks=["a", "b"], amp="bf16", wiener_win_len=None)
    path = config.save(tmp_path / "run")
    assert path == tmp_path / "run" / "config.json"
    assert json.loads(path.read_text()) == config.to_dict()
    assert TrainConfig.load(tmp_path / "run") == config
    assert TrainConfig.load(path) == config


def test_templates():
    assert set(TEMPLATES) >= {"openunmix", "unet"}
    unet = template("unet")
    assert unet.architecture == "unet" and unet.targets == ["vocals", "drums", "bass", "other"]
    assert (unet.batch_size, unet.lr, unet.loss) == (4, 0.0001, "mae")
    assert template("openunmix") == TrainConfig()
    with pytest.raises(TrainingError, match="unknown template"):
        template("demucs")


def test_bad_settings_are_reported(tmp_path):
    with pytest.raises(TrainingError, match="did you mean epochs"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(TrainingError, match="loss must be one of"):
        TrainConfig(loss="mse2")
    with pytest.raises(TrainingError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(TrainingError, match="distinct"):
        TrainConfig(targets=["vocals", "vocals"])
    with pytest.raises(TrainingError, match="no training config"):
        TrainConfig.load(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(TrainingError, match="JSON object"):
        TrainConfig.load(tmp_path)
    assert TrainConfig(seq_dur=0).seq_dur is None  # upstream: <= 0 means full tracks


def test_overrides_parse_every_type():
    config = apply_overrides(TrainConfig(), [
        "--epochs", "7", "--lr=0.01", "--targets", "vocals", "drums", "--unidirectional", "--is-wav", "false",
        "--seq-dur", "none", "--dataset_args", '{"ext": ".flac"}', "--valid-tracks", "A", "B",
    ])
    assert (config.epochs, config.lr, config.targets) == (7, 0.01, ["vocals", "drums"])
    assert config.unidirectional is True and config.is_wav is False and config.seq_dur is None
    assert config.dataset_args == {"ext": ".flac"} and config.valid_tracks == ["A", "B"]
    assert apply_overrides(config, ["--valid-tracks", "none"]).valid_tracks is None
    with pytest.raises(TrainingError, match="did you mean --epochs"):
        apply_overrides(config, ["--epoks", "3"])
    with pytest.raises(TrainingError, match="invalid value for epochs"):
        apply_overrides(config, ["--epochs", "1.5"])
    with pytest.raises(TrainingError, match="takes one value"):
        apply_overrides(config, ["--lr", "1", "2"])


def test_config_command_creates_edits_and_displays(tmp_path, capsys):
    folder = tmp_path / "my_model"
    assert main(["config", "unet", "--name", "my_model", "--save", str(folder)]) == 0
    assert TrainConfig.load(folder) == template("unet", name="my_model")
    capsys.readouterr()
    assert main(["config", str(folder), "--epochs", "12", "--targets", "vocals", "bass", "--display"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["epochs"] == 12 and shown["targets"] == ["vocals", "bass"] and shown["name"] == "my_model"
    assert TrainConfig.load(folder).epochs == 12
    assert main(["config", "unet", "--name", "x", "--save", str(folder)]) == 1  # exists: needs --force
    assert main(["config", "unet", "--save", str(folder), "--force"]) == 0
    assert main(["config", str(folder), "--no-such-key", "1"]) == 1
    assert "unknown setting --no_such_key" in capsys.readouterr().err
    assert main(["config", str(tmp_path / "nowhere")]) == 2


def test_train_flags_map_to_the_config(tmp_path):
    args = get_parser().parse_args([
        "train", "--root", "/data/musdb", "--is-wav", "--target", "drums", "--epochs", "3", "--nb-channels", "1",
        "--hidden-size", "64", "--seq-dur", "-1", "--output", str(tmp_path / "out"), "--loss", "sisdr", "--niter",
        "1", "--no-cuda", "--debug", "--unidirectional", "--bandwidth", "8000",
    ])
    config, folder = resolve(args)
    assert folder == tmp_path / "out"
    assert (config.root, config.is_wav, config.targets, config.epochs) == ("/data/musdb", True, ["drums"], 3)
    assert (config.nb_channels, config.hidden_size, config.seq_dur, config.loss) == (1, 64, None, "sisdr")
    assert (config.niter, config.device, config.statistics, config.unidirectional) == (1, "cpu", False, True)
    assert config.lr == 0.001 and config.batch_size == 16  # untouched flags keep upstream's defaults
    args = get_parser().parse_args(["train", "--dataset", "aligned", "--root", "/d", "--input-file", "mix.wav",
                                    "--output-file", "voice.wav"])
    config, _ = resolve(args)
    assert config.dataset_args == {"input_file": "mix.wav", "output_file": "voice.wav"}
    # a run folder's config.json is the base; flags change it
    template("openunmix", root="/d", epochs=9).save(tmp_path / "run")
    config, folder = resolve(get_parser().parse_args(["train", str(tmp_path / "run"), "--lr", "0.5"]))
    assert (config.epochs, config.lr, config.root, folder) == (9, 0.5, "/d", tmp_path / "run")
    with pytest.raises(TrainingError, match="no config.json"):
        resolve(get_parser().parse_args(["train", str(tmp_path / "empty")]))


def test_cli_train_and_scripts_train(musdb_root, tmp_path):
    flags = ["--root", str(musdb_root), "--is-wav", "--target", "bass", "--epochs", "1", "--seq-dur", "1",
             "--samples-per-track", "2", "--batch-size", "4", "--nfft", "512", "--nhop", "128", "--hidden-size",
             "8", "--nb-layers", "1", "--quiet", "--no-cuda"]
    assert main(["train", *flags, "--output", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "bass.pth").is_file() and TrainConfig.load(tmp_path / "a").targets == ["bass"]
    assert main(["train", "--root", str(tmp_path / "missing"), "--is-wav", "--output", str(tmp_path / "b")]) == 1
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--help"], capture_output=True,
                          text=True, cwd=REPO, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    for flag in ("--lr-decay-gamma", "--samples-per-track", "--nb-workers", "--unidirectional", "--model"):
        assert flag in done.stdout
