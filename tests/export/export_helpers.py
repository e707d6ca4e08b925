"""Separators with random weights for the export tests: small ones and full-size architectures."""

from __future__ import annotations

import torch

from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.models.openunmix import OpenUnmix
from unmix.models.unet import UNet
from unmix.separator import Separator

RATE = 8000.0


def _randomise_statistics(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm running statistics, so the exported graphs see realistic values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def small_umx_separator(**kwargs) -> Separator:
    """Two tiny Open-Unmix targets (512-point STFT, hidden size 16), Wiener EM on 20-frame blocks by default.

    Very short blocks (a few frames) make the 2x2 spatial covariances of look-alike random targets nearly singular,
    and the EM then amplifies float32 rounding: eager float32 itself drifts from float64 by 5e-2 with 5-frame
    blocks on these models. 20 frames keep the problem well conditioned, so parity measures the export.
    """
    torch.manual_seed(3)
    models = {t: _randomise_statistics(OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16, max_bin=200), k)
              for k, t in enumerate(("vocals", "drums"))}
    options = {"niter": 1, "n_fft": 512, "n_hop": 128, "wiener_win_len": 20, "sample_rate": RATE}
    options.update(kwargs)
    return Separator(models, **options).eval()


def small_unet_separator(**kwargs) -> Separator:
    """Two tiny U-Nets (128 bins, 64-frame segments) on Spleeter's STFT, ratio masks with mask extension."""
    torch.manual_seed(4)
    models = {t: _randomise_statistics(UNet(nb_bins=128, segment_frames=64, conv_n_filters=(4, 4, 4, 4, 4, 4)), k)
              for k, t in enumerate(("vocals", "accompaniment"))}
    options = {"niter": 0, "alpha": 2.0, "softmask": True, "wiener_win_len": None, "mask_extension": "average",
               "sample_rate": RATE, "stft": SpleeterSTFT(512, 128)}
    options.update(kwargs)
    return Separator(models, **options).eval()


def full_umx_separator() -> Separator:
    """umxhq-size Open-Unmix (2049 bins, hidden 512, max_bin 1487), one target + residual, EM on 300-frame blocks."""
    torch.manual_seed(5)
    model = _randomise_statistics(OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487), 5)
    return Separator({"vocals": model}, niter=1, residual=True, wiener_win_len=300).eval()


def full_unet_separator() -> Separator:
    """Spleeter 2stems-size U-Nets (1024 bins, 512-frame segments, 16..512 filters) with ratio masks."""
    torch.manual_seed(6)
    models = {t: _randomise_statistics(UNet(nb_bins=1024), k) for k, t in enumerate(("vocals", "accompaniment"))}
    return Separator(models, niter=0, alpha=2.0, softmask=True, wiener_win_len=None, mask_extension="zeros",
                     stft=SpleeterSTFT(4096, 1024)).eval()


def noise(nb_samples: int, nb_channels: int, length: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Uniform noise in [-0.5, 0.5)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(nb_samples, nb_channels, length, generator=generator) - 0.5).to(dtype)


TOLERANCE = 1e-4


def assert_parity(path, separator: Separator, shapes):
    """Run the exported file and the eager separator on noise of each ``(nb_samples, length)``; within TOLERANCE."""
    from unmix.export import load_exported

    exported = load_exported(path)
    for nb_samples, length in shapes:
        audio = noise(nb_samples, separator.nb_channels, length, seed=length)
        with torch.no_grad():
            expected = separator(audio)
        actual = exported(audio)
        assert actual.shape == expected.shape
        error = (actual - expected).abs().max().item()
        assert error <= TOLERANCE, f"{nb_samples} x {length} samples: max abs error {error:.3g}"
    return exported
