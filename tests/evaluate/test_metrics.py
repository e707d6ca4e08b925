"""SI-SDR and global SDR: known answers, invariances, gradients and loss reductions."""

from __future__ import annotations

import math

import pytest
import torch

from unmix.evaluate import EvaluationError, sdr, sdr_loss, si_sdr, si_sdr_loss


def _pair(shape: tuple[int, ...], scale: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(*shape, generator=g, dtype=torch.float64)
    noise = torch.randn(*shape, generator=g, dtype=torch.float64)
    return ref, ref + scale * noise, noise


def test_global_sdr_of_scaled_noise_is_exact() -> None:
    ref, est, noise = _pair((2, 4, 2, 8000), scale=0.3)
    values = sdr(est, ref)
    assert values.shape == (2, 4)
    exact = 10 * torch.log10(ref.square().sum((-2, -1)) / (0.3 * noise).square().sum((-2, -1)))
    torch.testing.assert_close(values, exact, atol=1e-6, rtol=0)
    assert abs(values.mean().item() + 20 * math.log10(0.3)) < 0.1


def test_si_sdr_of_scaled_noise_and_scale_invariance() -> None:
    ref, est, _ = _pair((3, 16000), scale=0.1)
    values = si_sdr(est, ref)
    assert values.shape == (3,)
    assert (values - 20).abs().max() < 0.2  # independent noise at -20 dB
    torch.testing.assert_close(si_sdr(7.5 * est, ref), values)  # rescaling the estimate changes nothing
    assert (sdr(7.5 * est, ref, dim=-1) < 0).all()  # ... unlike the plain SDR


def test_si_sdr_joint_channels_and_zero_mean() -> None:
    ref, est, _ = _pair((2, 2, 4000), scale=0.2, seed=1)
    assert si_sdr(est, ref, dim=(-2, -1)).shape == (2,)
    shifted = si_sdr(est + 3.0, ref + 3.0, zero_mean=True)
    torch.testing.assert_close(shifted, si_sdr(est, ref, zero_mean=True), atol=1e-9, rtol=0)


def test_exact_and_silent_signals_stay_finite() -> None:
    ref = torch.randn(2, 1000, dtype=torch.float64)
    energy = ref.square().sum(-1)
    # an exact estimate: the error energy is 0, so the ratio is set by eps (MDX: 1e-7)
    torch.testing.assert_close(sdr(ref, ref, dim=-1), 10 * torch.log10((energy + 1e-7) / 1e-7))
    assert (si_sdr(ref, ref) > 100).all()
    silent = torch.zeros(2, 1000)
    assert torch.isfinite(si_sdr(ref.float(), silent)).all() and torch.isfinite(sdr(ref.float(), silent)).all()


def test_losses_are_differentiable_and_improve_under_gradient_descent() -> None:
    ref, est, _ = _pair((2, 2, 2000), scale=0.5, seed=2)
    estimate = est.float().clone().requires_grad_(True)
    target = ref.float()
    for loss_fn in (sdr_loss, si_sdr_loss):
        x = estimate.detach().clone().requires_grad_(True)
        before = loss_fn(x, target)
        before.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        with torch.no_grad():
            x -= 100.0 * x.grad
        assert loss_fn(x, target) < before
    assert sdr_loss(estimate, target, reduction="none").shape == (2,)
    torch.testing.assert_close(sdr_loss(estimate, target, reduction="sum"), -sdr(estimate, target).sum())
    torch.testing.assert_close(si_sdr_loss(estimate, target), -si_sdr(estimate, target).mean())


def test_float32_and_numpy_inputs() -> None:
    ref, est, _ = _pair((2, 4000), scale=0.1, seed=3)
    a = si_sdr(est.float(), ref.float())
    assert a.dtype == torch.float32
    torch.testing.assert_close(a.double(), si_sdr(est, ref), atol=1e-3, rtol=0)
    b = sdr(est.numpy(), ref.numpy(), dim=-1)
    assert isinstance(b, torch.Tensor) and b.shape == (2,)


def test_errors() -> None:
    with pytest.raises(EvaluationError, match="same shape"):
        sdr(torch.zeros(2, 10), torch.zeros(2, 11))
    with pytest.raises(EvaluationError, match="reduction"):
        sdr_loss(torch.ones(2, 10), torch.ones(2, 10), reduction="max")
    with pytest.raises(EvaluationError, match="real-valued"):
        si_sdr(torch.zeros(4, dtype=torch.complex64), torch.zeros(4, dtype=torch.complex64))
