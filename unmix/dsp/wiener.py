"""Multichannel Wiener filtering with expectation-maximisation (the norbert / Open-Unmix scheme), in torch.

Complex numbers are native complex tensors. Everything is differentiable, EM iterations included: updates are
functional (no in-place writes into tensors that need gradients). Internal layout: estimates
``(..., nb_sources, nb_channels, nb_bins, nb_frames)``, mixture ``(..., nb_channels, nb_bins, nb_frames)``; every
leading dimension is an independent signal (its own scaling and spatial covariances).

The algorithm (Nugraha, Liutkus & Vincent 2016; as in norbert and Open-Unmix): per iteration, the source power
spectral densities ``v_j = mean_c |y_jc|^2`` and spatial covariances ``R_j = sum_t y_j y_j^H / (eps + sum_t v_j)`` are
re-estimated from the current estimates, then each source is re-estimated as ``y_j = v_j R_j C_x^-1 x`` with the
mixture covariance ``C_x = sqrt(eps) I + sum_j v_j R_j``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unmix.dsp.masks import phase_estimates, ratio_masks


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
    nb_channels = x.shape[-3]
    reg = eps**0.5
    for _ in range(iterations):
        power = y.real.square() + y.imag.square()  # (..., J, C, F, T)
        v = power.mean(dim=-3)  # (..., J, F, T)
        weight = eps + v.sum(dim=-1)  # (..., J, F)
        if nb_channels == 1:
            r = power[..., 0, :, :].sum(dim=-1) / weight  # (..., J, F)
            cxx = reg + (v * r.unsqueeze(-1)).sum(dim=-3)  # (..., F, T)
            z = x[..., 0, :, :] / cxx
            y = (v * r.unsqueeze(-1) * z.unsqueeze(-3)).unsqueeze(-3)
        elif nb_channels == 2:
            y = _em_step_stereo(y, x, power, v, weight, reg)
        else:
            y = _em_step_general(y, x, v, weight, reg)
    return y


def _em_step_stereo(y: Tensor, x: Tensor, power: Tensor, v: Tensor, weight: Tensor, reg: float) -> Tensor:
    """One EM update for two channels, with the 2x2 Hermitian algebra written out (fast, little memory)."""
    w = weight.unsqueeze(-1)
    r00 = power[..., 0, :, :].sum(dim=-1, keepdim=True) / w  # (..., J, F, 1) real
    r11 = power[..., 1, :, :].sum(dim=-1, keepdim=True) / w
    r01 = (y[..., 0, :, :] * y[..., 1, :, :].conj()).sum(dim=-1, keepdim=True) / w  # complex
    a = (v * r00).sum(dim=-3)  # (..., F, T): the mixture covariance without regulariser is [[a, c01], [c01*, d]]
    d = (v * r11).sum(dim=-3)
    c01 = (v * r01).sum(dim=-3)
    # its determinant a*d - |c01|^2 is >= 0 in exact arithmetic; clamping the rounding keeps det >= reg^2 > 0
    det = (a * d - (c01.real.square() + c01.imag.square())).clamp_min(0) + reg * (a + d) + reg * reg
    c00, c11 = a + reg, d + reg
    x0, x1 = x[..., 0, :, :], x[..., 1, :, :]
    z0 = (c11 * x0 - c01 * x1) / det
    z1 = (c00 * x1 - c01.conj() * x0) / det
    z0, z1 = z0.unsqueeze(-3), z1.unsqueeze(-3)
    y0 = v * (r00 * z0 + r01 * z1)
    y1 = v * (r01.conj() * z0 + r11 * z1)
    return torch.stack([y0, y1], dim=-3)


def _em_step_general(y: Tensor, x: Tensor, v: Tensor, weight: Tensor, reg: float) -> Tensor:
    """One EM update for any number of channels (batched linear solves)."""
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
    scale_factor: float = 10.0,
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
    if softmask:
        y = ratio_masks(spectrograms, alpha=alpha, eps=eps) * mix_stft.unsqueeze(-4)
    else:
        y = phase_estimates(spectrograms, mix_stft)
    if residual:
        y = torch.cat([y, (mix_stft - y.sum(dim=-4)).unsqueeze(-4)], dim=-4)
    if iterations == 0:
        return y
    magnitude = mix_stft.abs().flatten(start_dim=-3).amax(dim=-1)  # (...,)
    max_abs = torch.clamp(magnitude / scale_factor, min=1.0)[..., None, None, None]
    y = expectation_maximization(y / max_abs.unsqueeze(-1), mix_stft / max_abs, iterations, eps=eps)
    return y * max_abs.unsqueeze(-1)


def wiener(
    targets_spectrograms: Tensor,
    mix_stft: Tensor,
    iterations: int = 1,
    softmask: bool = False,
    residual: bool = False,
    scale_factor: float = 10.0,
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
