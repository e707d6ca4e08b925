"""Multichannel Wiener filtering with expectation-maximisation (the norbert / Open-Unmix scheme), in torch.

The arithmetic is written once, on real/imaginary pairs (``*_pairs`` functions): contiguous real tensors are faster
on CPU than strided views of complex tensors, and the pair form is what TorchScript and ONNX export
(:mod:`unmix.export`) can run. The complex-tensor functions (:func:`wiener_filter`, :func:`expectation_maximization`,
:func:`wiener`) split their inputs, call the pair form and recombine. Everything is differentiable, EM iterations
included: updates are functional (no in-place writes into tensors that need gradients).

Internal layout: estimates ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``, mixture ``(..., nb_channels,
nb_bins, nb_frames)``; every leading dimension is an independent signal (its own scaling and spatial covariances).

The algorithm (Nugraha, Liutkus & Vincent 2016; as in norbert and Open-Unmix): per iteration, the source power
spectral densities ``v_j = mean_c |y_jc|^2`` and spatial covariances ``R_j = sum_t y_j y_j^H / (eps + sum_t v_j)`` are
re-estimated from the current estimates, then each source is re-estimated as ``y_j = v_j R_j C_x^-1 x`` with the
mixture covariance ``C_x = sqrt(eps) I + sum_j v_j R_j``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from unmix.dsp.masks import phase_estimates_pairs, ratio_masks

#: The EM's conditioning: the mixture is divided by ``max(1, peak / SCALE_FACTOR)`` during EM (upstream's default).
SCALE_FACTOR = 10.0


def expectation_maximization(y: Tensor, x: Tensor, iterations: int = 1, eps: float = 1e-10) -> Tensor:
    """Refine source estimates with multichannel Wiener EM.

    Args:
        y: initial complex estimates ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
        x: complex mixture ``(..., nb_channels, nb_bins, nb_frames)``.
        iterations: number of EM iterations.
        eps: regulariser; the mixture covariance gets ``sqrt(eps)`` on its diagonal.

    Returns:
        Refined estimates, same shape as ``y``.
    """
    real, imag = expectation_maximization_pairs(
        y.real.contiguous(), y.imag.contiguous(), x.real.contiguous(), x.imag.contiguous(), iterations, eps
    )
    return torch.complex(real, imag)


def expectation_maximization_pairs(
    y_real: Tensor,
    y_imag: Tensor,
    x_real: Tensor,
    x_imag: Tensor,
    iterations: int = 1,
    eps: float = 1e-10,
    output_scale: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`expectation_maximization` on real/imaginary pairs.

    Args:
        y_real: real part of the estimates ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
        y_imag: imaginary part, same shape.
        x_real: real part of the mixture ``(..., nb_channels, nb_bins, nb_frames)``.
        x_imag: imaginary part, same shape.
        iterations: number of EM iterations.
        eps: regulariser; the mixture covariance gets ``sqrt(eps)`` on its diagonal.
        output_scale: a factor for the result, broadcastable to the mixture, folded into the last update (undoes
            the conditioning scale of :func:`wiener_filter_pairs` without another pass over the estimates).

    Returns:
        ``(real, imag)`` of the refined estimates, each shaped like ``y_real``. One and two channels run on real
        tensors only (exportable); three or more channels solve complex linear systems (eager and TorchScript only).
    """
    nb_channels = x_real.shape[-3]
    reg = eps**0.5
    for iteration in range(iterations):
        power = (y_real * y_real).addcmul_(y_imag, y_imag)  # (..., J, C, F, T); one buffer, autograd-safe
        v = power.mean(dim=-3)  # (..., J, F, T)
        weight = eps + v.sum(dim=-1)  # (..., J, F)
        gain_scale = output_scale if iteration == iterations - 1 else None
        if nb_channels == 1:
            y_real, y_imag = _em_step_mono(x_real, x_imag, power, v, weight, reg, gain_scale)
        elif nb_channels == 2:
            y_real, y_imag = _em_step_stereo(y_real, y_imag, x_real, x_imag, power, v, weight, reg, gain_scale)
        else:
            y = _em_step_general(torch.complex(y_real, y_imag), torch.complex(x_real, x_imag), v, weight, reg)
            y_real, y_imag = y.real, y.imag
            if gain_scale is not None:
                y_real, y_imag = y_real * gain_scale.unsqueeze(-4), y_imag * gain_scale.unsqueeze(-4)
    return y_real, y_imag


def _mix_covariance(v: Tensor, r: Tensor) -> Tensor:
    """``sum_j v_j r_jk`` for a stack of ``K`` real statistics: ``v`` ``(..., J, F, T)``, ``r`` ``(..., J, F, K)`` ->
    ``(..., F, K, T)`` (one batched matrix product over the bins)."""
    return torch.matmul(r.movedim(-3, -1), v.movedim(-3, -2))


def _em_step_mono(
    x_real: Tensor, x_imag: Tensor, power: Tensor, v: Tensor, weight: Tensor, reg: float,
    out_scale: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """One EM update for one channel: ``y_j = v_j r_j x / (reg + sum_k v_k r_k)`` (times ``out_scale``)."""
    r = power[..., 0, :, :].sum(dim=-1) / weight  # (..., J, F)
    cxx = reg + _mix_covariance(v, r.unsqueeze(-1))[..., 0, :]  # (..., F, T)
    gain = (v * r.unsqueeze(-1)).unsqueeze(-3)  # (..., J, 1, F, T)
    if out_scale is not None:
        gain = gain * out_scale.unsqueeze(-4)
    real = gain * (x_real / cxx.unsqueeze(-3)).unsqueeze(-4)
    imag = gain * (x_imag / cxx.unsqueeze(-3)).unsqueeze(-4)
    return real, imag


def _em_step_stereo(
    y_real: Tensor, y_imag: Tensor, x_real: Tensor, x_imag: Tensor, power: Tensor, v: Tensor, weight: Tensor,
    reg: float, out_scale: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """One EM update for two channels, with the 2x2 Hermitian algebra written out on real/imaginary parts.

    ``R_j = [[r00, r01], [conj(r01), r11]]`` (real diagonal); the mixture covariance is ``[[a, c], [conj(c), d]]``
    plus ``reg`` on the diagonal, inverted in closed form; ``y_j = v_j R_j z`` with ``z = C_x^-1 x`` is one batched
    ``(4 J x 4) @ (4 x T)`` product per bin over ``[re z0, re z1, im z0, im z1]``.
    """
    y0r, y0i = y_real[..., 0, :, :], y_imag[..., 0, :, :]
    y1r, y1i = y_real[..., 1, :, :], y_imag[..., 1, :, :]
    r00 = power[..., 0, :, :].sum(dim=-1) / weight  # (..., J, F)
    r11 = power[..., 1, :, :].sum(dim=-1) / weight
    r01r = (torch.linalg.vecdot(y0r, y1r) + torch.linalg.vecdot(y0i, y1i)) / weight
    r01i = (torch.linalg.vecdot(y0i, y1r) - torch.linalg.vecdot(y0r, y1i)) / weight
    cov = _mix_covariance(v, torch.stack([r00, r11, r01r, r01i], dim=-1))  # (..., F, 4, T)
    a, d, cr, ci = cov[..., 0, :], cov[..., 1, :], cov[..., 2, :], cov[..., 3, :]
    # determinant a*d - |c|^2 is >= 0 in exact arithmetic; clamping the rounding keeps det >= reg^2 > 0
    det = (a * d - (cr.square() + ci.square())).clamp_min(0) + reg * (a + d) + reg * reg
    c00, c11 = a + reg, d + reg
    x0r, x0i = x_real[..., 0, :, :], x_imag[..., 0, :, :]
    x1r, x1i = x_real[..., 1, :, :], x_imag[..., 1, :, :]
    # z = C_x^-1 x: z0 = (c11 x0 - c x1) / det, z1 = (c00 x1 - conj(c) x0) / det
    z0r = (c11 * x0r - cr * x1r + ci * x1i) / det
    z0i = (c11 * x0i - cr * x1i - ci * x1r) / det
    z1r = (c00 * x1r - cr * x0r - ci * x0i) / det
    z1i = (c00 * x1i - cr * x0i + ci * x0r) / det
    z = torch.stack([z0r, z1r, z0i, z1i], dim=-2)  # (..., F, 4, T)
    zero = torch.zeros_like(r00)
    # rows: re y0, re y1, im y0, im y1 (y0 = r00 z0 + r01 z1, y1 = conj(r01) z0 + r11 z1)
    rows = [
        [r00, r01r, zero, -r01i],
        [r01r, r11, r01i, zero],
        [zero, r01i, r00, r01r],
        [-r01i, zero, r01r, r11],
    ]
    gain = torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)  # (..., J, F, 4, 4)
    nb_sources = gain.shape[-4]
    mixed = torch.matmul(gain.movedim(-4, -3).flatten(-3, -2), z)  # (..., F, J * 4, T)
    out = mixed.unflatten(-2, (nb_sources, 4)).movedim(-4, -2)  # (..., J, 4, F, T)
    gain = v.unsqueeze(-3)  # (..., J, 1, F, T)
    if out_scale is not None:
        gain = gain * out_scale.unsqueeze(-4)
    # in place when no gradient is recorded: the largest buffer of the step is not allocated twice
    out = gain * out if torch.is_grad_enabled() else out.mul_(gain)
    return out[..., 0:2, :, :], out[..., 2:4, :, :]


def _em_step_general(y: Tensor, x: Tensor, v: Tensor, weight: Tensor, reg: float) -> Tensor:
    """One EM update for any number of channels (batched complex linear solves)."""
    nb_channels = x.shape[-3]
    r = torch.einsum("...jcft,...jdft->...jfcd", y, y.conj()) / weight[..., None, None]
    eye = torch.eye(nb_channels, dtype=x.dtype, device=x.device)
    cxx = reg * eye + torch.einsum("...jft,...jfcd->...ftcd", v.to(x.dtype), r)
    z = torch.linalg.solve(cxx, x.movedim(-3, -1).unsqueeze(-1)).squeeze(-1)  # (..., F, T, C)
    return v.unsqueeze(-3) * torch.einsum("...jfcd,...ftd->...jcft", r, z)


def wiener_filter(
    spectrograms: Tensor,
    mix_stft: Tensor,
    iterations: int = 1,
    softmask: bool = False,
    residual: bool = False,
    alpha: float = 1.0,
    scale_factor: float = SCALE_FACTOR,
    eps: float = 1e-10,
) -> Tensor:
    """Initial estimates from magnitudes, optional residual, then Wiener EM (unmix's native layout).

    Args:
        spectrograms: target magnitudes ``(..., nb_targets, nb_channels, nb_bins, nb_frames)``; the channel axis may
            be 1 (mono model) and is then broadcast.
        mix_stft: complex mixture ``(..., nb_channels, nb_bins, nb_frames)``.
        iterations: EM iterations (0: initial estimates only).
        softmask: start from ratio masks ``V^alpha / (eps + sum V^alpha)`` instead of magnitude x mixture phase.
        residual: append ``mixture - sum(estimates)`` as a last source before EM.
        alpha: exponent of the ratio masks.
        scale_factor: the mixture is scaled down by ``max(1, max|x| / scale_factor)`` during EM (conditioning).
        eps: regulariser.

    Returns:
        Complex estimates ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``, nb_sources = nb_targets [+1].
    """
    # contiguous parts: elementwise work on strided views of a complex tensor is several times slower
    real, imag = wiener_filter_pairs(
        spectrograms, mix_stft.real.contiguous(), mix_stft.imag.contiguous(), iterations, softmask, residual, alpha,
        scale_factor, eps, magnitude=mix_stft.abs(),
    )
    return torch.complex(real, imag)


def wiener_filter_pairs(
    spectrograms: Tensor,
    mix_real: Tensor,
    mix_imag: Tensor,
    iterations: int = 1,
    softmask: bool = False,
    residual: bool = False,
    alpha: float = 1.0,
    scale_factor: float = SCALE_FACTOR,
    eps: float = 1e-10,
    magnitude: Optional[Tensor] = None,
    scale: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`wiener_filter` on real/imaginary pairs (what the exported separator runs).

    Args:
        spectrograms: target magnitudes ``(..., nb_targets, nb_channels, nb_bins, nb_frames)`` (channels may be 1).
        mix_real: real part of the mixture ``(..., nb_channels, nb_bins, nb_frames)``.
        mix_imag: imaginary part, same shape.
        iterations, softmask, residual, alpha, scale_factor, eps: as in :func:`wiener_filter`.
        magnitude: ``|mixture|`` if already known; None computes it from the parts.
        scale: the EM's conditioning divisor, broadcastable to the mixture (e.g. ``(..., 1, nb_bins, 1)`` when
            several signals are stacked along the bin axis); None: ``max(1, max|x| / scale_factor)`` per signal.

    Returns:
        ``(real, imag)`` of the estimates, each ``(..., nb_sources, nb_channels, nb_bins, nb_frames)``.
    """
    if magnitude is None:
        magnitude = torch.sqrt(mix_real.square() + mix_imag.square())
    em = iterations > 0
    if em and scale is None:
        peak = magnitude.flatten(start_dim=-3).amax(dim=-1)  # (...,)
        scale = torch.clamp(peak / scale_factor, min=1.0)[..., None, None, None]  # (..., 1, 1, 1)
    # The EM runs on the mixture divided by `scale` (conditioning); the division is applied to the mixture and the
    # unit phasors (not to the larger per-source estimates) and undone inside the last EM update.
    x_real, x_imag = mix_real, mix_imag
    if em and scale is not None:
        x_real, x_imag = mix_real / scale, mix_imag / scale
    if softmask:
        masks = ratio_masks(spectrograms, alpha=alpha, eps=eps)
        y_real, y_imag = masks * x_real.unsqueeze(-4), masks * x_imag.unsqueeze(-4)
    else:
        y_real, y_imag = phase_estimates_pairs(spectrograms, mix_real, mix_imag, magnitude, scale if em else None)
    if residual:
        y_real = torch.cat([y_real, (x_real - y_real.sum(dim=-4)).unsqueeze(-4)], dim=-4)
        y_imag = torch.cat([y_imag, (x_imag - y_imag.sum(dim=-4)).unsqueeze(-4)], dim=-4)
    if not em:
        return y_real, y_imag
    return expectation_maximization_pairs(y_real, y_imag, x_real, x_imag, iterations, eps, output_scale=scale)


def wiener(
    targets_spectrograms: Tensor,
    mix_stft: Tensor,
    iterations: int = 1,
    softmask: bool = False,
    residual: bool = False,
    scale_factor: float = SCALE_FACTOR,
    eps: float = 1e-10,
) -> Tensor:
    """Upstream-layout Wiener filter (drop-in for ``openunmix.filtering.wiener`` / ``norbert.wiener``).

    Args:
        targets_spectrograms: magnitudes ``(nb_frames, nb_bins, nb_channels, nb_sources)``.
        mix_stft: mixture ``(nb_frames, nb_bins, nb_channels)`` complex, or ``(..., 2)`` real/imaginary pairs.
        iterations, softmask, residual, scale_factor, eps: as in :func:`wiener_filter`.

    Returns:
        Estimates ``(nb_frames, nb_bins, nb_channels, nb_sources[+1])`` complex, or ``(..., nb_channels, 2,
        nb_sources[+1])`` real when ``mix_stft`` was given as real/imaginary pairs (upstream's layout).
    """
    pairs = not mix_stft.is_complex()
    if pairs:
        if mix_stft.shape[-1] != 2:
            raise ValueError(f"real mix_stft needs a trailing real/imaginary axis of size 2, got {tuple(mix_stft.shape)}")
        mix_stft = torch.view_as_complex(mix_stft.contiguous())
    spectrograms = targets_spectrograms.permute(3, 2, 1, 0)  # (J, C, F, T)
    mix = mix_stft.permute(2, 1, 0)  # (C, F, T)
    y = wiener_filter(spectrograms, mix, iterations, softmask, residual, 1.0, scale_factor, eps)
    y = y.permute(3, 2, 1, 0)  # (T, F, C, J)
    if pairs:
        return torch.view_as_real(y.contiguous()).transpose(-1, -2)
    return y
