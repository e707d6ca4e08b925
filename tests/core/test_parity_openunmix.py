"""Parity with upstream openunmix 1.3.0 on vectors it produced (../shared/reference/openunmix)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import unmix
from unmix.dsp.stft import TorchSTFT
from unmix.dsp.wiener import wiener
from unmix.pretrained.local import load_target_models


@pytest.fixture(scope="module")
def ref(reference_dir):
    root = reference_dir / "openunmix"
    return {
        "root": root,
        "vectors": dict(np.load(root / "vectors.npz")),
        "cases": json.loads((root / "cases.json").read_text())["separator_cases"],
    }


def _cases():
    from tests.conftest import REFERENCE

    return [c["key"] for c in json.loads((REFERENCE / "openunmix" / "cases.json").read_text())["separator_cases"]]


@pytest.mark.parametrize("key", _cases())
def test_separator_cases(ref, key):
    case = next(c for c in ref["cases"] if c["key"] == key)
    targets = [t for t in case["targets"] if t != "residual"]
    separator = unmix.load_separator(
        ref["root"] / "model",
        targets=targets,
        niter=case["niter"],
        residual=case["residual"],
        softmask=case["softmask"],
        wiener_win_len=case["wiener_win_len"],
    )
    audio = torch.as_tensor(ref["vectors"]["audio"])
    with torch.no_grad():
        out = separator(audio).numpy()
    expected = ref["vectors"][key]
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-4


def test_stft_and_target_spectrograms(ref):
    vectors = ref["vectors"]
    audio = torch.as_tensor(vectors["audio"])
    stft = TorchSTFT(512, 128)(audio)
    assert np.abs(torch.view_as_real(stft).numpy() - vectors["stft"]).max() <= 1e-5
    mag = torch.as_tensor(vectors["mag"])
    assert np.abs(stft.abs().numpy() - vectors["mag"]).max() <= 1e-5
    models = load_target_models(ref["root"] / "model")
    assert list(models) == ["vocals", "drums", "bass"]
    for name, model in models.items():
        with torch.no_grad():
            spec = model(mag).numpy()
        assert np.abs(spec - vectors[f"spec_{name}"]).max() <= 1e-5, name


@pytest.mark.parametrize("iterations", [0, 1, 3])
@pytest.mark.parametrize("softmask", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_wiener_vectors(ref, iterations, softmask, residual):
    vectors = ref["vectors"]
    v = torch.as_tensor(vectors["wiener_v"])
    x = torch.as_tensor(vectors["wiener_x"])
    y = wiener(v, x, iterations=iterations, softmask=softmask, residual=residual).numpy()
    expected = vectors[f"wiener_it{iterations}_soft{int(softmask)}_res{int(residual)}"]
    assert y.shape == expected.shape
    assert np.abs(y - expected).max() <= 1e-4 * np.abs(expected).max()
