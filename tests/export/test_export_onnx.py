"""ONNX export: the models and the whole separator run in onnxruntime and reproduce eager PyTorch within 1e-4.

Needs the ``export`` extra (onnx, onnxruntime, onnxscript); a missing package fails these tests with an install hint.
"""

from __future__ import annotations

import json

import pytest
import torch
from export_helpers import TOLERANCE, assert_parity, full_umx_separator, full_unet_separator, noise

from unmix.errors import ModelLoadingError
from unmix.export import export_model, export_separator, load_exported, sdr_per_target
from unmix.export.onnx import METADATA_KEY, op_types, quantize_onnx, read_metadata

@pytest.fixture(scope="module")
def umx_onnx(umx_small, export_dir):
    return export_separator(umx_small, export_dir / "umx_small.onnx", "onnx")


def test_small_openunmix_separator(umx_small, umx_onnx):
    assert umx_onnx.max_abs_error is not None and umx_onnx.max_abs_error <= TOLERANCE
    # shorter than one Wiener block, several blocks with a partial last one, a batch of 3
    exported = assert_parity(umx_onnx.path, umx_small, [(1, 300), (1, 4321), (3, 9000)])
    assert exported.format == "onnx" and exported.targets == ["vocals", "drums"]
    ops = op_types(umx_onnx.path)
    # FFTs are DFT nodes, the BiLSTM stays an LSTM node; no complex type and no STFT/filterbank
    assert "DFT" in ops and "LSTM" in ops and "STFT" not in ops and "ConvTranspose" not in ops
    session = exported._session
    assert session.get_inputs()[0].shape == ["nb_samples", 2, "nb_timesteps"]
    assert session.get_outputs()[0].shape == ["nb_samples", 2, 2, "nb_timesteps"]
    meta = json.loads(read_metadata(umx_onnx.path)[METADATA_KEY])
    assert meta["opset"] == 18 and meta["wiener_win_len"] == 20 and meta["min_timesteps"] == 257


def test_small_unet_separator(unet_small, export_dir):
    info = export_separator(unet_small, export_dir / "unet_small.onnx", "onnx")
    # one U-Net segment (64 frames), several segments, a batch of 2
    assert_parity(info.path, unet_small, [(1, 500), (1, 20000), (2, 9999)])


def test_full_size_openunmix(export_dir):
    """umxhq-size model: the spectrogram model file, and the separator (STFT, EM on 300-frame blocks, iSTFT)."""
    separator = full_umx_separator()
    model = separator.target_models["vocals"]
    info = export_model(model, export_dir / "umxhq-vocals.onnx", "onnx", nb_bins=2049, target="vocals", check=False)
    exported = load_exported(info.path)
    for frames in (1, 200):
        magnitude = torch.rand(1, 2, 2049, frames) * 3
        with torch.no_grad():
            expected = model(magnitude)
        assert (exported(magnitude) - expected).abs().max().item() <= TOLERANCE
    info = export_separator(separator, export_dir / "umxhq-sep.onnx", "onnx", check=False)
    assert_parity(info.path, separator, [(1, 8 * 44100 + 123)])  # 345 frames: two Wiener blocks


def test_full_size_unet_separator(export_dir):
    separator = full_unet_separator()
    info = export_separator(separator, export_dir / "2stems.onnx", "onnx", check=False)
    assert_parity(info.path, separator, [(1, 2 * 44100 + 7)])


def test_int8_quantisation(umx_small, umx_onnx, export_dir):
    destination = export_dir / "umx_small-int8.onnx"
    quantize_onnx(umx_onnx.path, destination)
    assert destination.stat().st_size < umx_onnx.path.stat().st_size
    assert "DynamicQuantizeLSTM" in op_types(destination) or "MatMulInteger" in op_types(destination)
    audio = noise(1, 2, 8000, seed=1)
    with torch.no_grad():
        reference = umx_small(audio)
    scores = sdr_per_target(load_exported(destination)(audio), reference, umx_small.targets)
    assert min(scores.values()) > 30.0, scores


def test_rejects_old_opset(umx_small, export_dir):
    with pytest.raises(ModelLoadingError, match="opset >= 17"):
        export_separator(umx_small, export_dir / "old.onnx", "onnx", opset=16)
    assert not (export_dir / "old.onnx").exists()
