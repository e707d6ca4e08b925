"""Stereo Wiener EM for inference, on frame-major spectrograms, in short runs of frames.

The arithmetic is that of :mod:`unmix.dsp.wiener` (the norbert / Open-Unmix scheme); what differs is the order of the
work, chosen for speed without autograd:

- Frame-major layout ``(..., nb_frames, nb_bins)``: what ``torch.stft`` returns, and what ``irfft`` wants contiguous.
- The statistics of the first iteration come straight from the real amplitudes of the initial estimates: those are
  ``a_jc * u_c`` with a real amplitude ``a_jc`` and the unit phasor ``u_c`` of the mixture channel (magnitude x
  mixture phase, ratio mask x mixture, or the residual), so ``|y_jc|^2 = a_jc^2`` and
  ``y_j0 conj(y_j1) = a_j0 a_j1 u_0 conj(u_1)``. The complex initial estimates are never formed.
- The filter ``y_j = v_j R_j C_x^-1 x`` is applied to a few frames at a time (the caller inverts them at once, while
  they are in cache), and only for the sources the caller keeps.

Shapes: one signal at a time (no batch axis). Amplitudes ``(nb_sources, 2, nb_frames, nb_bins)``, mixture and
phasors ``(2, nb_frames, nb_bins)``; statistics :class:`BlockStats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


class BlockStats(NamedTuple):
    """Wiener statistics of one block of frames (in the EM's scaled units).

    Attributes:
        psd: source power spectral densities ``v_j`` ``(nb_sources, nb_frames, nb_bins)``.
        spatial: ``(4, nb_sources, nb_bins)``: ``R_j``'s entries ``r00``, ``r11``, ``Re r01``, ``Im r01``.
    """

    psd: Tensor
    spatial: Tensor


def amplitude_stats(amplitudes: Tensor, unit_real: Tensor, unit_imag: Tensor, inv_scale2: float, eps: float) -> BlockStats:
    """Statistics of initial estimates ``y_jc = a_jc u_c / scale`` (first EM iteration).

    Args:
        amplitudes: real amplitudes ``a`` ``(nb_sources, 2, nb_frames, nb_bins)`` (may be negative: residual).
        unit_real: real part of the mixture phasors ``(2, nb_frames, nb_bins)``.
        unit_imag: imaginary part, same shape.
        inv_scale2: ``1 / scale^2`` of the EM's conditioning.
        eps: the EM's regulariser.

    Returns:
        The block's :class:`BlockStats`.
    """
    power = amplitudes.square()  # (J, 2, T, F)
    psd = power.sum(dim=1).mul_(0.5 * inv_scale2)  # v_j = mean_c |y_jc|^2
    weight = psd.sum(dim=1).add_(eps)  # (J, F)
    diagonal = power.sum(dim=2).mul_(inv_scale2)  # (J, 2, F): sum_t |y_jc|^2
    del power
    product = amplitudes[:, 0] * amplitudes[:, 1]  # (J, T, F)
    cross_real = unit_real[0] * unit_real[1] + unit_imag[0] * unit_imag[1]  # u_0 conj(u_1)
    cross_imag = unit_imag[0] * unit_real[1] - unit_real[0] * unit_imag[1]
    r01_real = (product * cross_real).sum(dim=1).mul_(inv_scale2)  # sum_t y_j0 conj(y_j1)
    r01_imag = product.mul_(cross_imag).sum(dim=1).mul_(inv_scale2)
    spatial = torch.stack([diagonal[:, 0], diagonal[:, 1], r01_real, r01_imag]) / weight
    return BlockStats(psd, spatial)


def estimate_stats(estimates: Tensor, eps: float) -> BlockStats:
    """Statistics of complex estimates (the EM iterations after the first).

    Args:
        estimates: ``(nb_sources, 2, nb_frames, nb_bins)`` complex, in the EM's scaled units.
        eps: the EM's regulariser.

    Returns:
        The block's :class:`BlockStats`.
    """
    real, imag = estimates.real, estimates.imag
    power = real.square() + imag.square()
    psd = power.mean(dim=1)
    weight = psd.sum(dim=1).add_(eps)
    diagonal = power.sum(dim=2)
    y0r, y0i, y1r, y1i = real[:, 0], imag[:, 0], real[:, 1], imag[:, 1]
    r01_real = (y0r * y1r + y0i * y1i).sum(dim=1)
    r01_imag = (y0i * y1r - y0r * y1i).sum(dim=1)
    spatial = torch.stack([diagonal[:, 0], diagonal[:, 1], r01_real, r01_imag]) / weight
    return BlockStats(psd, spatial)


class SourceGains(NamedTuple):
    """The per-source part of the filter for the sources asked for, prepared once per block.

    Attributes:
        index: indices of those sources ``(nb_kept,)``.
        spatial: complex ``(3, nb_kept, 1, nb_bins)``: ``r00``, ``r11``, ``r01`` of their ``R_j``.
    """

    index: Tensor
    spatial: Tensor


def source_gains(stats: BlockStats, sources: Sequence[int], dtype: torch.dtype) -> SourceGains:
    """Select and convert the spatial statistics of ``sources`` (complex ``dtype``) for :func:`apply_filter`."""
    index = torch.as_tensor(list(sources), device=stats.spatial.device)
    spatial = stats.spatial.index_select(1, index).unsqueeze(-2)  # (4, J', 1, F)
    r00, r11 = spatial[0].to(dtype), spatial[1].to(dtype)
    return SourceGains(index, torch.stack([r00, r11, torch.complex(spatial[2], spatial[3])]))


def apply_filter(stats: BlockStats, gains: SourceGains, start: int, stop: int, mix: Tensor, eps: float) -> Tensor:
    """``y_j = v_j R_j C_x^-1 x`` on frames ``[start, stop)`` of a block, for the sources of ``gains``.

    ``C_x = sqrt(eps) I + sum_j v_j R_j`` over every source; the result scales with ``mix`` (pass the scaled mixture
    to continue the EM, the original one for the final estimates).

    Args:
        stats: the block's statistics.
        gains: :func:`source_gains` of the sources to return.
        start: first frame (within the block).
        stop: frame after the last.
        mix: complex mixture frames ``(2, stop - start, nb_bins)``.
        eps: the EM's regulariser.

    Returns:
        Complex estimates ``(len(gains.index), 2, stop - start, nb_bins)``.
    """
    reg = eps**0.5
    psd = stats.psd[:, start:stop]  # (J, T, F)
    cov = (psd.unsqueeze(0) * stats.spatial.unsqueeze(2)).sum(dim=1)  # (4, T, F): sum_j v_j R_j
    a, d, c_real, c_imag = cov.unbind(0)
    # a*d - |c|^2 >= 0 in exact arithmetic; clamping the rounding keeps the determinant >= reg^2 > 0
    det = (a * d - (c_real.square() + c_imag.square())).clamp_min_(0) + reg * (a + d) + reg * reg
    c = torch.complex(c_real, c_imag)
    x0, x1 = mix[0], mix[1]
    z0 = ((d + reg) * x0 - c * x1) / det  # z = C_x^-1 x in closed form
    z1 = ((a + reg) * x1 - c.conj() * x0) / det
    r00, r11, r01 = gains.spatial.unbind(0)
    psd = psd.index_select(0, gains.index)
    y0 = (r00 * z0 + r01 * z1).mul_(psd)
    y1 = (r01.conj() * z0 + r11 * z1).mul_(psd)
    return torch.stack([y0, y1], dim=1)
