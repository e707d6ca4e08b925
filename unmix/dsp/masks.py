"""Initial source estimates: magnitude x mixture phase, ratio masks, Spleeter's mask extension.

Layout used throughout: spectrograms ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``, mixture STFT
``(..., nb_channels, nb_bins, nb_frames)`` complex. The arithmetic on complex values is written on real/imaginary
pairs (:func:`phase_estimates_pairs`); :func:`phase_estimates` is its complex-tensor front. The pair form is what the
TorchScript/ONNX export (:mod:`unmix.export`) runs, so eager and exported graphs share one implementation.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

MASK_EXTENSIONS = ("zeros", "average")


def phase_estimates(spectrograms: Tensor, mix_stft: Tensor) -> Tensor:
    """Target magnitudes with the mixture phase.

    Args:
        spectrograms: magnitudes ``(..., nb_sources, nb_channels, nb_bins, nb_frames)`` (channels may be 1).
        mix_stft: complex mixture ``(..., nb_channels, nb_bins, nb_frames)``.

    Returns:
        Complex estimates ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
    """
    real, imag = phase_estimates_pairs(spectrograms, mix_stft.real, mix_stft.imag, mix_stft.abs())
    return torch.complex(real, imag)


def unit_phasors(mix_real: Tensor, mix_imag: Tensor, magnitude: Tensor) -> Tuple[Tensor, Tensor]:
    """Real and imaginary parts of the mixture's unit phasor ``x / |x|``.

    ``angle(0) = 0``, so silent bins get the phasor 1, as with ``atan2``. The inner ``where`` keeps the division (and
    its gradient) finite in silent bins.

    Args:
        mix_real: real part of the mixture, any shape.
        mix_imag: imaginary part, same shape.
        magnitude: ``|mixture|``, same shape.

    Returns:
        ``(real, imag)``, each shaped like the mixture.
    """
    positive = magnitude > 0
    safe = torch.where(positive, magnitude, torch.ones_like(magnitude))
    unit_real = torch.where(positive, mix_real / safe, torch.ones_like(mix_real))
    return unit_real, mix_imag / safe  # imaginary part 0 where the mixture is silent


def phase_estimates_pairs(
    spectrograms: Tensor,
    mix_real: Tensor,
    mix_imag: Tensor,
    magnitude: Optional[Tensor] = None,
    scale: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Target magnitudes with the mixture phase, on real/imaginary pairs.

    Args:
        spectrograms: magnitudes ``(..., nb_sources, nb_channels, nb_bins, nb_frames)`` (channels may be 1).
        mix_real: real part of the mixture ``(..., nb_channels, nb_bins, nb_frames)``.
        mix_imag: imaginary part, same shape.
        magnitude: ``|mixture|`` if already known (the complex front passes ``abs()``, whose gradient is defined at
            0); None computes ``sqrt(real^2 + imag^2)``.
        scale: divide the estimates by this (broadcastable to the mixture), applied to the unit phasors.

    Returns:
        ``(real, imag)`` of the estimates, each ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
    """
    if magnitude is None:
        magnitude = torch.sqrt(mix_real.square() + mix_imag.square())
    unit_real, unit_imag = unit_phasors(mix_real, mix_imag, magnitude)
    if scale is not None:
        unit_real, unit_imag = unit_real / scale, unit_imag / scale
    return spectrograms * unit_real.unsqueeze(-4), spectrograms * unit_imag.unsqueeze(-4)


def ratio_masks(spectrograms: Tensor, alpha: float = 1.0, eps: float = 1e-10, spread_eps: bool = False) -> Tensor:
    """Ratio masks ``V_j^alpha / (eps + sum_k V_k^alpha)`` across sources.

    Args:
        spectrograms: magnitudes ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
        alpha: exponent applied to the magnitudes (1: magnitude ratio, 2: power ratio / Spleeter's default).
        eps: regulariser of the denominator.
        spread_eps: use Spleeter's form ``(V_j^alpha + eps / nb_sources) / (sum_k V_k^alpha + eps)``, whose masks sum
            to exactly one even where every source is silent.

    Returns:
        Masks with the shape of ``spectrograms``.
    """
    powered = spectrograms if alpha == 1.0 else spectrograms.pow(alpha)
    total = powered.sum(dim=-4, keepdim=True) + eps
    if spread_eps:
        return (powered + eps / spectrograms.shape[-4]) / total
    return powered / total


def extend_masks(masks: Tensor, nb_bins: int, mode: str) -> Tensor:
    """Extend masks computed on the first model bins to ``nb_bins`` (Spleeter's ``mask_extension``).

    Args:
        masks: ``(..., nb_model_bins, nb_frames)``.
        nb_bins: full number of STFT bins.
        mode: ``"zeros"`` (nothing above the model band) or ``"average"`` (the mean of each frame's mask).

    Returns:
        Masks ``(..., nb_bins, nb_frames)``.
    """
    extra = nb_bins - masks.shape[-2]
    if extra < 0:
        raise ValueError(f"masks have {masks.shape[-2]} bins, more than the STFT's {nb_bins}")
    if extra == 0:
        return masks
    shape = list(masks.shape[:-2]) + [extra, masks.shape[-1]]  # (list arithmetic: TorchScript-compatible)
    if mode == "zeros":
        fill = masks.new_zeros(shape)
    elif mode == "average":
        fill = masks.mean(dim=-2, keepdim=True).expand(shape)
    else:
        raise ValueError(f"mask_extension must be one of ('zeros', 'average'), got '{mode}'")
    return torch.cat([masks, fill], dim=-2)


def zero_extend(spectrograms: Tensor, nb_bins: int) -> Tensor:
    """Zero-pad the bin axis (``-2``) of ``spectrograms`` up to ``nb_bins``."""
    extra = nb_bins - spectrograms.shape[-2]
    if extra < 0:
        raise ValueError(f"model output has {spectrograms.shape[-2]} bins, more than the STFT's {nb_bins}")
    if extra == 0:
        return spectrograms
    return torch.nn.functional.pad(spectrograms, [0, 0, 0, extra])
