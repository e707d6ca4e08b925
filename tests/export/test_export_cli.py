"""``unmix export`` on a small model folder: files, summary lines, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from export_helpers import noise

from unmix.cli.main import main
from unmix.export import load_exported
from unmix.models.openunmix import OpenUnmix
from unmix.pretrained import load_separator

TARGETS = ("vocals", "drums")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Open-Unmix model folder, 8 kHz stereo, 512-point STFT, hidden size 16, random weights."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(2)
    args = {"nfft": 512, "nhop": 128, "nb_channels": 2, "hidden_size": 16, "sample_rate": 8000}
    for target in TARGETS:
        torch.save(OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16).state_dict(), folder / f"{target}.pth")
        (folder / f"{target}.json").write_text(json.dumps({"args": args}))
    (folder / "separator.json").write_text(json.dumps(
        {"sample_rate": 8000, "nfft": 512, "nhop": 128, "nb_channels": 2, "targets": list(TARGETS)}))
    return folder


def test_export_separator(model_dir, tmp_path, capsys):
    out = tmp_path / "sep.pt"
    code = main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(out),
                 "--niter", "2", "--wiener-win-len", "30", "--residual"])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out} (torchscript, separator, outputs vocals, drums, residual;")
    assert "max abs difference from eager PyTorch" in line
    exported = load_exported(out)
    assert exported.metadata["niter"] == 2 and exported.metadata["wiener_win_len"] == 30
    eager = load_separator(model_dir, niter=2, wiener_win_len=30, residual=True)
    audio = noise(1, 2, 6000, seed=3)
    with torch.no_grad():
        expected = eager(audio)
    torch.testing.assert_close(exported(audio), expected, rtol=0, atol=1e-4)


def test_export_models_to_folder(model_dir, tmp_path, capsys):
    code = main(["export", "--model", str(model_dir), "--targets", "drums", "--what", "models",
                 "--format", "torchscript", "--out", str(tmp_path / "models"), "--no-check"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["drums.pt"]
    assert "OpenUnmix model of 'drums'" in capsys.readouterr().out
    assert load_exported(tmp_path / "models" / "drums.pt").metadata["nb_bins"] == 257


def test_existing_output_needs_force(model_dir, tmp_path, capsys):
    out = tmp_path / "sep.pt"
    out.write_bytes(b"keep")
    assert main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(out)]) == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep"


@pytest.mark.parametrize("extra,message", [
    (["--model", "no/such/folder"], "does not exist"),
    (["--opset", "16"], "no DFT operator"),
    (["--what", "models"], "one file per target"),
    (["--out", "missing-folder/x.onnx"], "does not exist; create it first"),
])
def test_errors(model_dir, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    args = ["export", "--model", str(model_dir), "--out", "x.onnx"] + extra
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not any(tmp_path.iterdir())


def test_usage_error(capsys):
    assert main(["export", "--format", "tflite", "--out", "x"]) == 2
    assert "invalid choice" in capsys.readouterr().err
