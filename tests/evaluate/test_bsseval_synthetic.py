"""``bss_eval`` on synthetic signals with known answers, its error handling, and the Toeplitz solvers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.errors import UnmixError
from unmix.evaluate import EvaluationError, bss_eval, bsseval
from unmix.evaluate import _toeplitz as toeplitz

RATE = 8000


def _references(nsrc: int = 3, seconds: float = 4.0, nchan: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((nsrc, int(seconds * RATE), nchan))


def test_sdr_of_reference_plus_scaled_noise_is_known_exactly() -> None:
    ref = _references()
    noise = np.random.default_rng(1).standard_normal(ref.shape)
    for scale in (0.1, 0.5):
        est = ref + scale * noise
        sdr, isr, sir, sar = bss_eval(ref, est, window=RATE, hop=RATE, filters_len=64)
        windows = ref.reshape(3, 4, RATE, 2)
        errors = (scale * noise).reshape(3, 4, RATE, 2)
        exact = 10 * np.log10((windows**2).sum((2, 3)) / (errors**2).sum((2, 3)))
        np.testing.assert_allclose(sdr, exact, atol=1e-9)
        # unit-variance signal and noise: SDR is -20 log10(scale) up to the sampling noise of the energies
        assert abs(sdr.mean() + 20 * np.log10(scale)) < 0.1
        # the noise is independent of every reference: it is all artefact, no interference or spatial distortion
        assert np.abs(sar - sdr).max() < 0.2
        assert (sir > sdr + 20).all() and (isr > sdr + 20).all()


def test_interference_shows_in_sir_not_sar() -> None:
    ref = _references(seed=2)
    leak = 0.1  # -20 dB of the next source
    est = ref + leak * np.roll(ref, 1, axis=0)
    _, isr, sir, sar = bss_eval(ref, est, window=RATE, hop=RATE, filters_len=32)
    assert np.abs(sir - 20).max() < 0.3
    assert (sar > 40).all() and (isr > 40).all()


def test_exact_estimate_gives_a_very_high_sdr() -> None:
    ref = _references(seed=3)
    sdr, isr, sir, sar = bss_eval(ref, ref.copy(), window=RATE, hop=RATE, filters_len=32)
    assert (sdr > 100).all()  # the error is exactly zero: +inf, as museval
    assert (isr > 100).all() and (sir > 100).all() and (sar > 100).all()


def test_silent_reference_window_gives_nan_for_every_source() -> None:
    ref = _references(seed=4)
    ref[1, RATE : 2 * RATE] = 0.0
    est = ref + 0.1 * np.random.default_rng(5).standard_normal(ref.shape)
    est[1, RATE : 2 * RATE] = 0.01  # the estimate is not silent there
    for framewise in (False, True):
        out = bss_eval(ref, est, window=RATE, hop=RATE, filters_len=32, framewise_filters=framewise)
        for values in out:
            assert np.isnan(values[:, 1]).all()
            assert np.isfinite(values[:, [0, 2, 3]]).all()


def test_permutation_recovers_the_order_of_shuffled_estimates() -> None:
    ref = _references(seed=6)
    est = ref + 0.2 * np.random.default_rng(7).standard_normal(ref.shape)
    order = [2, 0, 1]
    straight = bss_eval(ref, est, window=RATE, hop=RATE, filters_len=32)
    sdr, isr, sir, sar, perm = bss_eval(
        ref, est[order], window=RATE, hop=RATE, filters_len=32, compute_permutation=True
    )
    assert perm.shape == (3, 1)
    assert [order[k] for k in perm[:, 0]] == [0, 1, 2]
    for a, b in zip((sdr, isr, sir, sar), straight):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_inputs_are_checked() -> None:
    ref = _references(nsrc=2, seconds=1.0)
    with pytest.raises(EvaluationError, match="same shape"):
        bss_eval(ref, ref[:, :-1])
    silent = ref.copy()
    silent[1] = 0.0
    with pytest.raises(EvaluationError, match=r"source\(s\) \[1\] are silent"):
        bss_eval(silent, ref)
    with pytest.raises(EvaluationError, match="estimated source"):
        bss_eval(ref, silent)
    bad = ref.copy()
    bad[0, 10, 0] = np.nan
    with pytest.raises(EvaluationError, match="finite"):
        bss_eval(ref, bad)
    with pytest.raises(EvaluationError, match="filters_len"):
        bss_eval(ref, ref, filters_len=0)
    with pytest.raises(EvaluationError, match="hop"):
        bss_eval(ref, ref, hop=0)
    assert issubclass(EvaluationError, UnmixError) and issubclass(EvaluationError, ValueError)


def test_empty_inputs_give_empty_outputs() -> None:
    out = bss_eval(np.zeros((0, 0, 2)), np.zeros((0, 0, 2)))
    assert len(out) == 4 and all(x.size == 0 for x in out)


def test_device_argument_and_mixed_inputs() -> None:
    ref = _references(nsrc=2, seconds=2.0)
    est = ref + 0.1
    as_numpy = bss_eval(ref, est, window=RATE, hop=RATE, filters_len=16)
    as_torch = bss_eval(torch.from_numpy(ref), est, window=RATE, hop=RATE, filters_len=16, device="cpu")
    assert isinstance(as_torch[0], torch.Tensor)
    np.testing.assert_allclose(as_torch[0].numpy(), as_numpy[0], atol=1e-9)


def _block_toeplitz(m: int, L: int, n: int, seed: int, colour: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlation blocks (L, m, m) of m random signals (coloured by a first-order recursion) and a right-hand side."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n))
    for t in range(1, n):
        x[:, t] += colour * x[:, t - 1]
    spec = np.fft.rfft(x, n=2 * n)
    corr = np.fft.irfft(spec.conj()[:, None] * spec[None], n=2 * n)[..., :L]  # corr[p, q, d] = sum x_p(t) x_q(t+d)
    R = torch.from_numpy(np.ascontiguousarray(corr.transpose(2, 0, 1)))
    Y = torch.from_numpy(rng.standard_normal((L, m, 3)))
    return R, Y


@pytest.mark.parametrize("colour", [0.0, 0.999])
def test_toeplitz_solvers_agree_with_a_dense_solve(colour: float) -> None:
    R, Y = _block_toeplitz(m=3, L=24, n=600, seed=int(colour * 10), colour=colour)
    dense = toeplitz.dense_toeplitz(R.numpy())
    expected = np.linalg.solve(dense, Y.numpy().reshape(-1, 3)).reshape(Y.shape)
    levinson = toeplitz.block_levinson(R.numpy(), Y.numpy())
    scale = np.abs(expected).max()
    assert np.abs(levinson - expected).max() < 1e-8 * scale * np.linalg.cond(dense) ** 0.5
    solved = toeplitz.solve_block_toeplitz(R[None], Y[None])[0].numpy()
    assert np.abs(solved - expected).max() < 1e-6 * scale
    product = toeplitz.toeplitz_matmul(toeplitz._circulant_spectra(R), torch.from_numpy(expected)).numpy()
    np.testing.assert_allclose(product, Y.numpy(), atol=1e-8 * np.abs(Y.numpy()).max())
    if colour == 0.0:  # well conditioned: conjugate gradients alone converge
        cg = toeplitz.conjugate_gradient(R[None], Y[None])[0].numpy()
        assert np.abs(cg - expected).max() < 1e-8 * scale


@pytest.mark.parametrize("options", [{}, {"framewise_filters": True}, {"hop": 800}, {"compute_permutation": True}])
def test_groups_of_windows_give_the_scores_of_one_group(
    monkeypatch: pytest.MonkeyPatch, bsseval_code: str, options: dict
) -> None:
    """Long signals are processed a group of windows at a time (their spectra share one buffer): same numbers."""
    rng = np.random.default_rng(9)
    ref = rng.standard_normal((3, 9500, 2)).cumsum(1) * 0.02 + 0.1 * rng.standard_normal((3, 9500, 2))
    est = ref + 0.3 * np.roll(ref, 1, axis=0) + 0.1 * rng.standard_normal(ref.shape)
    ref[2, 4000:5000] = 0  # a silent window inside a later group
    kwargs = {"window": 1000, "hop": 1000, "filters_len": 64, **options}
    whole = bss_eval(ref, est, **kwargs)
    n_fft = 1080  # fast_len(1000 + 64 - 1): two windows' spectra per group
    monkeypatch.setattr(bsseval, "GROUP_BYTES", 2 * 2 * 6 * (n_fft // 2 + 1) * 16)
    assert len(bsseval._groups(9, 2 * 6 * (n_fft // 2 + 1) * 16)) == 5
    grouped = bss_eval(ref, est, **kwargs)
    for a, b in zip(grouped, whole):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        finite = np.isfinite(b)
        assert finite.any() and np.allclose(a[finite], b[finite], rtol=0, atol=1e-9)
