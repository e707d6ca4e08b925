"""The export building blocks in eager mode: real/imaginary-pair filters, real-valued STFT, ExportableSeparator."""

from __future__ import annotations

import pytest
import torch
from export_helpers import noise, small_umx_separator, small_unet_separator

from unmix.dsp.masks import phase_estimates, phase_estimates_pairs
from unmix.dsp.stft import TorchSTFT
from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.dsp.wiener import (
    expectation_maximization,
    expectation_maximization_pairs,
    wiener_filter,
    wiener_filter_pairs,
)
from unmix.errors import ModelLoadingError
from unmix.export import ExportableSeparator, RealSTFT
from unmix.models.openunmix import OpenUnmix
from unmix.models.unet import UNet
from unmix.separator import Separator


@pytest.mark.parametrize("nb_channels", [1, 2, 3])
@pytest.mark.parametrize("softmask,residual", [(False, False), (True, True)])
def test_pair_filter_equals_complex_filter(nb_channels, softmask, residual):
    spectrograms = torch.rand(2, 3, nb_channels, 17, 11, dtype=torch.float64) * 4
    mix = torch.randn(2, nb_channels, 17, 11, dtype=torch.complex128) * 30
    mix[..., 3, 4] = 0  # a silent bin: phase 1, no division by zero
    expected = wiener_filter(spectrograms, mix, iterations=2, softmask=softmask, residual=residual)
    real, imag = wiener_filter_pairs(spectrograms, mix.real, mix.imag, 2, softmask, residual)
    torch.testing.assert_close(torch.complex(real, imag), expected, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(real).all() and torch.isfinite(imag).all()


def test_pair_em_and_phase_estimates_match_complex_fronts():
    y = torch.randn(4, 2, 9, 13, dtype=torch.complex128)
    x = torch.randn(2, 9, 13, dtype=torch.complex128)
    real, imag = expectation_maximization_pairs(y.real, y.imag, x.real, x.imag, 3)
    torch.testing.assert_close(torch.complex(real, imag), expectation_maximization(y, x, 3), rtol=0, atol=1e-12)
    magnitudes = torch.rand(4, 1, 9, 13, dtype=torch.float64)
    real, imag = phase_estimates_pairs(magnitudes, x.real, x.imag)
    torch.testing.assert_close(torch.complex(real, imag), phase_estimates(magnitudes, x), rtol=0, atol=1e-15)


@pytest.mark.parametrize("front_end", [TorchSTFT(512, 128), SpleeterSTFT(512, 128), TorchSTFT(500, 120)],
                         ids=["openunmix", "spleeter", "n_fft-not-multiple-of-hop"])
@pytest.mark.parametrize("length", [300, 3001, 4096])
def test_real_stft_equals_complex_front_end(front_end, length):
    stft = RealSTFT.from_front_end(front_end)
    audio = noise(2, 2, length, seed=length)
    spec = front_end(audio)
    real, imag = stft(audio)
    torch.testing.assert_close(real, spec.real, rtol=0, atol=1e-5)
    torch.testing.assert_close(imag, spec.imag, rtol=0, atol=1e-5)
    torch.testing.assert_close(stft.inverse(real, imag, length), front_end.inverse(spec, length), rtol=0, atol=1e-6)


def test_real_stft_rejects_unsupported_front_ends():
    with pytest.raises(ModelLoadingError, match="center=False"):
        RealSTFT.from_front_end(TorchSTFT(512, 128, center=False))
    with pytest.raises(ModelLoadingError, match="n_hop <= n_fft // 2 \\+ 1"):
        RealSTFT(512, 400)


CASES = {
    "blocks, last one partial": lambda: small_umx_separator(wiener_win_len=7),
    "whole signal, softmask, residual, 2 iterations": lambda: small_umx_separator(
        wiener_win_len=None, softmask=True, residual=True, niter=2),
    "mono models": lambda: Separator(
        {t: OpenUnmix(nb_bins=257, nb_channels=1, hidden_size=16).eval() for t in ("a", "b")}, n_fft=512, n_hop=128,
        nb_channels=1, wiener_win_len=4).eval(),
    "spleeter masks, average extension, residual": lambda: small_unet_separator(residual=True),
    "spleeter multichannel Wiener": lambda: small_unet_separator(niter=1, alpha=1.0, mask_extension=None),
    "softmax U-Net": lambda: Separator(
        {t: UNet(nb_bins=128, segment_frames=64, conv_n_filters=(4,) * 6, output_logits=True).eval()
         for t in ("a", "b", "c")}, niter=0, alpha=2.0, softmask=True, mask_extension="zeros",
        wiener_win_len=None, stft=SpleeterSTFT(512, 128)).eval(),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exportable_separator_equals_separator(case):
    """In float64 the pair-based graph and the eager complex Separator agree to rounding (blocks are exact)."""
    separator = CASES[case]().double()
    exportable = ExportableSeparator.from_separator(separator).double().eval()
    assert exportable.targets == separator.targets
    channels = separator.nb_channels
    for length in (900, 5555):
        audio = noise(2, channels, length, seed=length, dtype=torch.float64)
        with torch.no_grad():
            expected, actual = separator(audio), exportable(audio)
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


def test_exportable_separator_overrides_niter_and_blocks():
    separator = small_umx_separator(wiener_win_len=7).double()
    audio = noise(1, 2, 4000, dtype=torch.float64)
    whole = ExportableSeparator.from_separator(separator, niter=2, wiener_win_len=None).double().eval()
    reference = small_umx_separator(wiener_win_len=None, niter=2).double()
    with torch.no_grad():
        torch.testing.assert_close(whole(audio), reference(audio), rtol=0, atol=1e-10)
    with pytest.raises(ModelLoadingError, match="two sources"):
        ExportableSeparator.from_separator(Separator({"a": separator.target_models["vocals"]}, niter=0), niter=1)


def test_packed_inverse_fft_equals_irfft():
    """The half-length complex inverse FFT used in ONNX graphs gives irfft's result (imaginary DC/Nyquist ignored)."""
    for n_fft, n_hop in ((512, 128), (1024, 512)):
        plain, packed = RealSTFT(n_fft, n_hop), RealSTFT(n_fft, n_hop, packed_irfft=True)
        real, imag = plain(noise(2, 2, 5000))
        imag = imag + 0.1 * torch.randn(imag.shape, generator=torch.Generator().manual_seed(n_fft))
        torch.testing.assert_close(packed.inverse(real, imag, 5000), plain.inverse(real, imag, 5000),
                                   rtol=0, atol=1e-6)
