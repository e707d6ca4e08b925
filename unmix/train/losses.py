"""Training losses, one value per target.

- Spectrogram losses (Open-Unmix and Spleeter): ``mse`` (Open-Unmix's ``F.mse_loss`` on magnitudes) and ``mae``
  (Spleeter's L1 on magnitudes), computed per target model independently.
- Waveform losses, computed on the Separator's output so the gradient flows through the masks, the optional Wiener
  EM and the inverse STFT, all targets jointly: ``sisdr`` (negative scale-invariant SDR), ``sdr`` (negative
  signal-to-distortion ratio ``10 log10(|s|^2 / |s - s_hat|^2)``) and ``l1`` (mean absolute error).

SDR and SI-SDR come from :mod:`unmix.evaluate.metrics`; a multichannel excerpt is one signal (energies summed over
channels and time, one SI-SDR gain shared by the channels) and ``eps`` keeps silent excerpts finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unmix.evaluate.metrics import sdr, si_sdr
from unmix.train.config import TrainingError

SPECTROGRAM_LOSSES = ("mse", "mae")
WAVEFORM_LOSSES = ("sisdr", "sdr", "l1")


def waveform_loss(name: str, estimates: Tensor, references: Tensor) -> Tensor:
    """Per-target waveform loss, averaged over the batch.

    Args:
        name: ``sisdr``, ``sdr`` or ``l1``.
        estimates: ``(nb_samples, nb_targets, nb_channels, nb_timesteps)``.
        references: same shape.

    Returns:
        ``(nb_targets,)``; lower is better.
    """
    if estimates.shape != references.shape:
        raise TrainingError(
            f"estimates {tuple(estimates.shape)} and references {tuple(references.shape)} differ in shape"
        )
    if name == "sisdr":
        return -si_sdr(estimates, references, dim=(-2, -1)).mean(0)
    if name == "sdr":
        return -sdr(estimates, references, dim=(-2, -1)).mean(0)
    if name == "l1":
        return (estimates.float() - references.float()).abs().mean(dim=(0, 2, 3))
    raise TrainingError(f"unknown waveform loss {name!r}; choose from {WAVEFORM_LOSSES}")


def spectrogram_loss(name: str, estimate: Tensor, target: Tensor) -> Tensor:
    """Loss of one target model on magnitudes (``mse``: Open-Unmix, ``mae``: Spleeter's L1).

    Args:
        name: ``mse`` or ``mae``.
        estimate: ``(nb_samples, nb_channels, nb_model_bins, nb_frames)``.
        target: ``(nb_samples, nb_channels, nb_bins, nb_frames)``; only the first ``nb_model_bins`` are compared.

    Returns:
        A scalar tensor.
    """
    nb_bins = estimate.shape[-2]
    if target.shape[-2] < nb_bins or target.shape[:2] != estimate.shape[:2]:
        raise TrainingError(f"target {tuple(target.shape)} does not cover the estimate {tuple(estimate.shape)}")
    reference = target[..., :nb_bins, :].float()
    if name == "mse":
        return torch.nn.functional.mse_loss(estimate.float(), reference)
    if name == "mae":
        return torch.nn.functional.l1_loss(estimate.float(), reference)
    raise TrainingError(f"unknown spectrogram loss {name!r}; choose from {SPECTROGRAM_LOSSES}")


__all__ = ["SPECTROGRAM_LOSSES", "WAVEFORM_LOSSES", "spectrogram_loss", "waveform_loss"]
