"""Differentiable signal-to-distortion ratios, as metrics and as training losses.

- :func:`sdr`: the plain ("global", MDX/SDX challenge "nSDR") SDR ``10 log10(|s|^2 / |s - s_hat|^2)`` with no
  distortion filter, energies summed over channels and time by default. Trivially cheap; not comparable with
  museval's BSSEval v4 numbers (use :func:`unmix.evaluate.bss_eval` for those).
- :func:`si_sdr`: scale-invariant SDR (Le Roux et al. 2019): the reference is rescaled by the least-squares gain
  ``<s_hat, s> / |s|^2`` before comparing.
- :func:`sdr_loss`, :func:`si_sdr_loss`: their negatives, reduced, to minimise.

Inputs are tensors of the same shape ``(..., nb_channels, nb_timesteps)`` (or any shape, with ``dim`` naming the
axes the energies are summed over); gradients flow to both. Sums are computed in float64 when the input is float64,
else in float32 (half-precision inputs are promoted).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from unmix.evaluate.bsseval import EvaluationError

__all__ = ["sdr", "sdr_loss", "si_sdr", "si_sdr_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _pair(estimates: Tensor, references: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(estimates, Tensor) or not isinstance(references, Tensor):
        estimates, references = torch.as_tensor(estimates), torch.as_tensor(references)
    if estimates.shape != references.shape:
        raise EvaluationError(
            f"estimates and references must have the same shape, got {tuple(estimates.shape)} and "
            f"{tuple(references.shape)}; trim or pad the estimates to the references' length"
        )
    if estimates.is_complex() or references.is_complex():
        raise EvaluationError("expected real-valued waveforms, got a complex tensor; pass time-domain signals")
    dtype = torch.promote_types(torch.promote_types(estimates.dtype, references.dtype), torch.float32)
    return estimates.to(dtype), references.to(dtype)


def _dims(dim: int | Sequence[int]) -> tuple[int, ...]:
    return (dim,) if isinstance(dim, int) else tuple(dim)


def sdr(estimates: Tensor, references: Tensor, dim: int | Sequence[int] = (-2, -1), eps: float = 1e-7) -> Tensor:
    """Global SDR in dB: ``10 log10((|s|^2 + eps) / (|s - s_hat|^2 + eps))`` (the MDX challenge's definition).

    Args:
        estimates: estimated signals, e.g. ``(nb_samples, nb_targets, nb_channels, nb_timesteps)``.
        references: true signals, same shape.
        dim: axes summed over (default: channels and time, one value per source and item).
        eps: added to both energies (the MDX challenge uses 1e-7): silent references and exact estimates stay finite.

    Returns:
        The SDR with the ``dim`` axes removed.
    """
    estimates, references = _pair(estimates, references)
    axes = _dims(dim)
    signal = references.square().sum(axes)
    error = (references - estimates).square().sum(axes)
    return 10 * torch.log10((signal + eps) / (error + eps))


def si_sdr(
    estimates: Tensor, references: Tensor, dim: int | Sequence[int] = -1, zero_mean: bool = False, eps: float = 1e-8
) -> Tensor:
    """Scale-invariant SDR in dB.

    ``alpha = <s_hat, s> / |s|^2``, ``target = alpha s``, ``SI-SDR = 10 log10(|target|^2 / |s_hat - target|^2)``.

    Args:
        estimates: estimated signals, e.g. ``(..., nb_channels, nb_timesteps)``.
        references: true signals, same shape.
        dim: axes of one signal (default: time, one value per channel; ``(-2, -1)`` shares the gain across channels).
        zero_mean: remove the mean over ``dim`` of both signals first (as in the SI-SDR paper and asteroid).
        eps: regulariser of the gain and of both energies (keeps silent signals finite and gradients defined).

    Returns:
        The SI-SDR with the ``dim`` axes removed.
    """
    estimates, references = _pair(estimates, references)
    axes = _dims(dim)
    if zero_mean:
        estimates = estimates - estimates.mean(axes, keepdim=True)
        references = references - references.mean(axes, keepdim=True)
    gain = (estimates * references).sum(axes, keepdim=True) / (references.square().sum(axes, keepdim=True) + eps)
    target = gain * references
    noise = estimates - target
    return 10 * torch.log10((target.square().sum(axes) + eps) / (noise.square().sum(axes) + eps))


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise EvaluationError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def sdr_loss(
    estimates: Tensor,
    references: Tensor,
    dim: int | Sequence[int] = (-2, -1),
    eps: float = 1e-7,
    reduction: str = "mean",
) -> Tensor:
    """``-sdr(estimates, references)``, reduced by ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``)."""
    return _reduce(-sdr(estimates, references, dim=dim, eps=eps), reduction)


def si_sdr_loss(
    estimates: Tensor,
    references: Tensor,
    dim: int | Sequence[int] = -1,
    zero_mean: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Tensor:
    """``-si_sdr(estimates, references)``, reduced by ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``)."""
    return _reduce(-si_sdr(estimates, references, dim=dim, zero_mean=zero_mean, eps=eps), reduction)
