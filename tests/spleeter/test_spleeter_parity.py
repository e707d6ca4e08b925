"""Parity with Spleeter 2.4.2 / TensorFlow 2.12.1 (same checkpoint, same audio): mask path and MWF path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unmix.pretrained.spleeter import convert_checkpoint, load_spleeter_separator

TOLERANCE = 2e-4


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "spleeter" / "vectors.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("mwf", [False, True], ids=["mask", "mwf"])
def test_separate_matches_spleeter(reference_dir: Path, reference: dict, tmp_path: Path, mwf: bool) -> None:
    separator = load_spleeter_separator(reference_dir / "spleeter" / "config.json", MWF=mwf, cache_dir=tmp_path)
    waveform = reference["waveform"]
    assert waveform.shape[0] > 512 * 1024  # more than one 512-frame segment
    outputs = separator.separate(waveform)
    assert list(outputs) == ["vocals", "accompaniment"]
    for name, estimate in outputs.items():
        expected = reference[("mwf_" if mwf else "") + name]
        assert estimate.shape == expected.shape and estimate.dtype == np.float32
        error = float(np.abs(estimate - expected).max())
        assert error < TOLERANCE, f"{name}: max abs error {error:.3g} vs Spleeter (scale {np.abs(expected).max():.3g})"


def test_convert_checkpoint_matches_config_order(reference_dir: Path) -> None:
    states = convert_checkpoint(reference_dir / "spleeter" / "model", reference_dir / "spleeter" / "config.json")
    assert list(states) == ["vocals", "accompaniment"]
    # the second U-Net starts at conv2d_7 / conv2d_transpose_6 / batch_normalization_12
    assert states["accompaniment"]["encoder.0.conv.weight"].shape == (16, 2, 5, 5)
    assert states["vocals"]["decoder.5.deconv.weight"].shape == (32, 1, 5, 5)
    assert not np.array_equal(states["vocals"]["mask.weight"].numpy(), states["accompaniment"]["mask.weight"].numpy())
