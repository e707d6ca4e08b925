"""Wiener EM against norbert (numpy) and through autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.dsp.wiener import _em_step_general, expectation_maximization, wiener, wiener_filter


@pytest.mark.parametrize("nb_channels", [1, 2, 3])
@pytest.mark.parametrize("softmask", [False, True])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_against_norbert(nb_channels, softmask, iterations):
    norbert = pytest.importorskip("norbert")
    rng = np.random.default_rng(nb_channels * 10 + iterations)
    frames, bins, sources = 40, 33, 3
    v = rng.random((frames, bins, nb_channels, sources)) * 4
    x = rng.standard_normal((frames, bins, nb_channels)) + 1j * rng.standard_normal((frames, bins, nb_channels))
    expected = norbert.wiener(v, x * 3, iterations=iterations, use_softmask=softmask, eps=1e-10)
    ours = wiener(torch.as_tensor(v), torch.as_tensor(x * 3), iterations=iterations, softmask=softmask, eps=1e-10)
    assert ours.dtype == torch.complex128
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_dtype_follows_input():
    v = torch.rand(10, 9, 2, 2)
    x = torch.randn(10, 9, 2, dtype=torch.complex64)
    assert wiener(v, x).dtype == torch.complex64
    assert wiener(v.double(), x.to(torch.complex128)).dtype == torch.complex128


def test_upstream_pair_layout_round_trip():
    v = torch.rand(6, 5, 2, 2, dtype=torch.float64)
    x = torch.randn(6, 5, 2, dtype=torch.complex128)
    complex_out = wiener(v, x, iterations=1)
    pair_out = wiener(v, torch.view_as_real(x), iterations=1)
    assert pair_out.shape == (6, 5, 2, 2, 2)
    torch.testing.assert_close(torch.view_as_complex(pair_out.transpose(-1, -2).contiguous()), complex_out)


def test_gradcheck_through_em():
    torch.manual_seed(1)
    spectrograms = torch.rand(1, 2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    mix = torch.randn(1, 2, 3, 4, dtype=torch.complex128, requires_grad=True)

    def fn(s, m):
        return torch.view_as_real(wiener_filter(s, m, iterations=2, residual=True))

    assert torch.autograd.gradcheck(fn, (spectrograms, mix), eps=1e-6, atol=1e-5)


def test_em_single_channel_matches_general_solver():
    y = torch.randn(3, 1, 5, 7, dtype=torch.complex128)
    x = torch.randn(1, 5, 7, dtype=torch.complex128)
    power = y.real.square() + y.imag.square()
    v = power.mean(dim=-3)
    weight = 1e-10 + v.sum(dim=-1)
    general = _em_step_general(y, x, v, weight, 1e-5)
    assert torch.allclose(expectation_maximization(y, x, 1), general, atol=1e-10)


def test_em_stereo_matches_general_solver():
    y = torch.randn(2, 3, 2, 5, 7, dtype=torch.complex128)
    x = torch.randn(2, 2, 5, 7, dtype=torch.complex128)
    power = y.real.square() + y.imag.square()
    v = power.mean(dim=-3)
    weight = 1e-10 + v.sum(dim=-1)
    general = _em_step_general(y, x, v, weight, 1e-5)
    assert torch.allclose(expectation_maximization(y, x, 1), general, atol=1e-10)
