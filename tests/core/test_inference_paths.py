"""The inference paths of the Separator (unmix.inference) equal its differentiable path on every setting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unmix import OpenUnmix, Separator, inference
from unmix.dsp.stft_spleeter import SpleeterSTFT


class LowBand(nn.Module):
    """A toy spectrogram model with fewer output bins than the STFT (like Spleeter's U-Nets): the Separator
    zero-extends its output."""

    def __init__(self, nb_bins: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.gain = nn.Parameter(torch.rand(nb_bins, 1, generator=generator) * 2)
        self.nb_bins = nb_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.nb_bins] * self.gain


def make_separator(nb_channels=2, low_band=False, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    if low_band:
        models = {name: LowBand(40, seed) for seed, name in enumerate(("vocals", "drums", "bass"))}
    else:
        models = {
            name: OpenUnmix(nb_bins=65, nb_channels=nb_channels, hidden_size=8, nb_layers=1, max_bin=40)
            for name in ("vocals", "drums", "bass")
        }
    sep = Separator(models, n_fft=128, n_hop=32, nb_channels=nb_channels, sample_rate=8000, **kwargs)
    return sep.to(dtype).freeze()


def make_signal(nb_samples=2, dtype=torch.float32):
    torch.manual_seed(1)
    audio = (torch.rand(nb_samples, 2, 3000, dtype=dtype) * 2 - 1) * 8  # large enough for the EM's rescaling
    audio[0, :, 1000:1600] = 0  # silent bins: mixture phase 0
    audio[-1, 1] *= 0.1  # unbalanced channels
    return audio


def both_paths(sep, audio, frame_offset=0):
    with torch.no_grad():
        fast = sep(audio, frame_offset)
    differentiable = sep(audio, frame_offset)  # grad mode: filter() on complex estimates, then stft.inverse
    assert differentiable.requires_grad is False
    return fast, differentiable


CASES = [
    {"niter": 1},
    {"niter": 1, "residual": True},
    {"niter": 1, "softmask": True, "alpha": 2.0},
    {"niter": 1, "softmask": True, "residual": True, "wiener_win_len": None},
    {"niter": 2, "residual": True, "wiener_win_len": 17},
    {"niter": 3, "softmask": True, "wiener_win_len": 40},
    {"niter": 1, "outputs": ["bass", "vocals"]},
    {"niter": 1, "residual": "accompaniment", "outputs": ["accompaniment"]},
    {"niter": 1, "nb_channels": 1},
    {"niter": 1, "low_band": True, "residual": True},
    {"niter": 2, "low_band": True, "softmask": True, "wiener_win_len": None},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_frame_major_path_equals_differentiable_path(case):
    sep = make_separator(**case)
    audio = make_signal()
    with torch.no_grad():
        assert inference.frame_major_supported(sep, sep.stft(audio))
    fast, reference = both_paths(sep, audio)
    assert fast.shape == reference.shape == (2, len(sep.targets), 2, 3000)
    # exact in float64; in float32 as accurate as the differentiable path (the EM amplifies rounding where the
    # mixture is near its regulariser, e.g. at the edge of the silent part)
    fast64, exact = both_paths(make_separator(dtype=torch.float64, **case), audio.double())
    assert (fast64 - exact).abs().max() <= 1e-11 * exact.abs().max()
    own_error = (reference.double() - exact).abs().max()
    assert (fast.double() - exact).abs().max() <= 4 * own_error + 1e-6 * exact.abs().max()


def test_frame_major_path_float64_and_frame_offset():
    sep = make_separator(niter=2, residual=True, wiener_win_len=10, dtype=torch.float64)
    audio = make_signal(dtype=torch.float64)
    fast, reference = both_paths(sep, audio, frame_offset=7)
    assert (fast - reference).abs().max() <= 1e-12 * reference.abs().max()
    shifted, _ = both_paths(sep, audio, frame_offset=0)
    assert (shifted - fast).abs().max() > 1e-6  # the offset moves the block borders


def test_frame_major_path_with_spleeter_front_end():
    torch.manual_seed(0)
    models = {name: LowBand(40, seed) for seed, name in enumerate(("vocals", "accompaniment"))}
    sep = Separator(models, niter=1, softmask=True, wiener_win_len=None, stft=SpleeterSTFT(128, 32),
                    wiener_eps=1.2e-7).freeze()
    audio = make_signal()
    fast, reference = both_paths(sep, audio)
    assert (fast - reference).abs().max() <= 2e-6 * reference.abs().max()


def test_other_settings_take_the_block_path():
    audio = make_signal()
    with torch.no_grad():
        for sep, mix in [
            (make_separator(niter=0), audio),  # no EM
            (make_separator(niter=0, mask_extension="zeros", softmask=True), audio),
            (make_separator(niter=1, residual=True, nb_channels=1), audio[:, :1]),  # mono mixture
        ]:
            assert not inference.frame_major_supported(sep, sep.stft(mix))
            fast, reference = both_paths(sep, mix)
            assert (fast - reference).abs().max() <= 2e-6 * reference.abs().max()


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_models_stay_close_to_float32(precision):
    sep = make_separator(niter=1, residual=True)
    audio = make_signal()
    with torch.no_grad():
        full = sep(audio)
        sep.precision = precision
        half = sep(audio)
        spectrograms = sep.estimate_spectrograms(sep.stft(audio))
    assert half.dtype == full.dtype == spectrograms.dtype == torch.float32
    error = (half - full).square().sum() / full.square().sum()
    assert 0 < error < 1e-3  # it does change the result, by less than -30 dB


def test_precision_is_validated():
    with pytest.raises(ValueError, match="bfloat16"):
        make_separator(precision="half")
    sep = make_separator()
    with pytest.raises(ValueError, match="float16"):
        sep.precision = "int8"
