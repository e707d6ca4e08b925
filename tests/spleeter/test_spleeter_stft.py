"""SpleeterSTFT against a numpy transcription of tf.signal.stft / inverse_stft as Spleeter calls them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.errors import ModelLoadingError


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def numpy_stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Spleeter: prepend n_fft zeros, tf.signal.stft(pad_end=True): (bins, frames)."""
    x = np.concatenate([np.zeros(n_fft), x])
    nb_frames = -(-len(x) // hop)
    x = np.concatenate([x, np.zeros((nb_frames - 1) * hop + n_fft - len(x))])
    frames = np.stack([x[k * hop:k * hop + n_fft] for k in range(nb_frames)])
    return np.fft.rfft(frames * periodic_hann(n_fft), axis=-1).T


def numpy_istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """tf.signal.inverse_stft (no window-sum normalisation) x 2/3, cropped [n_fft : n_fft + length]."""
    frames = np.fft.irfft(spec.T, n=n_fft, axis=-1) * periodic_hann(n_fft)
    out = np.zeros((len(frames) - 1) * hop + n_fft)
    for k, frame in enumerate(frames):
        out[k * hop:k * hop + n_fft] += frame
    return out[n_fft:n_fft + length] * 2.0 / 3.0


@pytest.mark.parametrize(("n_fft", "hop", "length"), [(256, 64, 1000), (256, 64, 1024), (512, 128, 3001)])
def test_forward_and_inverse_match_numpy(n_fft: int, hop: int, length: int) -> None:
    rng = np.random.default_rng(length)
    x = rng.standard_normal((2, 3, length))
    stft = SpleeterSTFT(n_fft, hop)
    spec = stft(torch.from_numpy(x))
    assert spec.shape == (2, 3, n_fft // 2 + 1, stft.nb_frames(length))
    assert stft.nb_frames(length) == -(-(length + n_fft) // hop)
    expected = numpy_stft(x[1, 2], n_fft, hop)
    np.testing.assert_allclose(spec[1, 2].numpy(), expected, atol=1e-9)
    # random complex spectrum (not a valid STFT): inverse must still follow TF's definition exactly
    other = rng.standard_normal(expected.shape) + 1j * rng.standard_normal(expected.shape)
    back = stft.inverse(torch.from_numpy(other)[None], length)
    np.testing.assert_allclose(back[0].numpy(), numpy_istft(other, n_fft, hop, length), atol=1e-9)


def test_perfect_reconstruction_at_75_percent_overlap() -> None:
    x = torch.randn(2, 44_100)
    stft = SpleeterSTFT()
    np.testing.assert_allclose(stft.inverse(stft(x), x.shape[-1]).numpy(), x.numpy(), atol=1e-5)


def test_invalid_settings() -> None:
    with pytest.raises(ModelLoadingError, match="power-of-two"):
        SpleeterSTFT(4000, 1024)
    stft = SpleeterSTFT(256, 64)
    with pytest.raises(ModelLoadingError, match="bins"):
        stft.inverse(torch.zeros(1, 100, 10, dtype=torch.complex64), 100)
    with pytest.raises(ModelLoadingError, match="fewer than"):
        stft.inverse(torch.zeros(1, 129, 10, dtype=torch.complex64), 10_000)


def test_fold_fallback_when_hop_does_not_divide_n_fft() -> None:
    rng = np.random.default_rng(7)
    stft = SpleeterSTFT(256, 96)
    spec = rng.standard_normal((129, 20)) + 1j * rng.standard_normal((129, 20))
    back = stft.inverse(torch.from_numpy(spec), 1000)
    np.testing.assert_allclose(back.numpy(), numpy_istft(spec, 256, 96, 1000), atol=1e-9)


def test_differentiable() -> None:
    stft = SpleeterSTFT(64, 16)
    x = torch.randn(2, 200, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: stft.inverse(stft(a) * 0.5, 200), (x,))
