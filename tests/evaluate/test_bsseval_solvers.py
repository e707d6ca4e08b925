"""Block-Toeplitz solvers of ``unmix.evaluate._toeplitz``: batched Levinson, solver selection, per-source systems."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unmix.evaluate._toeplitz as toeplitz
from unmix.evaluate import bss_eval


def _system(m: int, L: int, n: int, seed: int, band_limited: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n))
    if band_limited:  # the top quarter of the band removed: a nearly singular Gram matrix, like AAC-coded music
        spec = np.fft.rfft(x)
        spec[:, 3 * spec.shape[1] // 4 :] *= 1e-7
        x = np.fft.irfft(spec, n=n)
    spec = np.fft.rfft(x, n=2 * n)
    corr = np.fft.irfft(spec.conj()[:, None] * spec[None], n=2 * n)[..., :L]
    R = np.ascontiguousarray(corr.transpose(2, 0, 1))
    R[0] += toeplitz.EPS * np.eye(m)
    return R, rng.standard_normal((L, m, 2))


def test_batched_levinson_equals_one_system_at_a_time() -> None:
    systems = [_system(2, 20, 400, seed, band_limited=seed % 2 == 1) for seed in range(3)]
    R = np.stack([r for r, _ in systems])
    Y = np.stack([y for _, y in systems])
    batched = toeplitz.block_levinson(R, Y)
    assert batched.shape == Y.shape
    for i, (r, y) in enumerate(systems):
        expected = np.linalg.solve(toeplitz.dense_toeplitz(r), y.reshape(-1, 2)).reshape(y.shape)
        np.testing.assert_allclose(batched[i], toeplitz.block_levinson(r, y), rtol=1e-12, atol=0)
        assert np.abs(batched[i] - expected).max() < 1e-6 * np.abs(expected).max()


@pytest.mark.parametrize("band_limited", [False, True])
def test_conjugate_gradients_only_for_well_conditioned_systems(
    monkeypatch: pytest.MonkeyPatch, band_limited: bool
) -> None:
    R, Y = _system(3, 32, 800, seed=7, band_limited=band_limited)
    calls = {"cg": 0, "levinson": 0}
    cg, levinson = toeplitz.conjugate_gradient, toeplitz.block_levinson

    def counted_cg(*args, **kwargs):
        calls["cg"] += 1
        return cg(*args, **kwargs)

    def counted_levinson(*args, **kwargs):
        calls["levinson"] += 1
        return levinson(*args, **kwargs)

    monkeypatch.setattr(toeplitz, "conjugate_gradient", counted_cg)
    monkeypatch.setattr(toeplitz, "block_levinson", counted_levinson)
    solved = toeplitz.solve_block_toeplitz(torch.from_numpy(R)[None], torch.from_numpy(Y)[None])[0].numpy()
    expected = np.linalg.solve(toeplitz.dense_toeplitz(R), Y.reshape(-1, 2)).reshape(Y.shape)
    dense = toeplitz.dense_toeplitz(R)
    residual = np.linalg.norm(dense @ solved.reshape(-1, 2) - Y.reshape(-1, 2))
    assert residual <= 1e-10 * np.linalg.norm(dense) * np.linalg.norm(solved)  # backward-stable accuracy
    if not band_limited:
        assert np.abs(solved - expected).max() < 1e-8 * np.abs(expected).max()
    assert calls == ({"cg": 0, "levinson": 1} if band_limited else {"cg": 1, "levinson": 0})


def test_per_source_filters_solve_each_source_block() -> None:
    nsrc, nchan, L = 3, 2, 16
    m = nsrc * nchan
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2 * m, 500))
    spec = np.fft.rfft(x, n=1000)
    corr = np.fft.irfft(spec.conj()[:m, None] * spec[None], n=1000)[..., :L]  # (m, 2m, L)
    filters, own = toeplitz.solve_filters(torch.from_numpy(corr)[None], nsrc, nchan)
    R = np.ascontiguousarray(corr[:, :m].transpose(2, 0, 1))
    R[0] += toeplitz.EPS * np.eye(m)
    Y = corr[:, m:].transpose(2, 0, 1)
    full = np.linalg.solve(toeplitz.dense_toeplitz(R), Y.reshape(-1, m)).reshape(L, m, m)
    np.testing.assert_allclose(filters[0].numpy(), full, atol=1e-9 * np.abs(full).max())
    for j in range(nsrc):
        rows = slice(j * nchan, (j + 1) * nchan)
        block = np.ascontiguousarray(R[:, rows, rows])
        expected = np.linalg.solve(toeplitz.dense_toeplitz(block), Y[:, rows].reshape(-1, m)).reshape(L, nchan, m)
        np.testing.assert_allclose(own[0, :, rows].numpy(), expected, atol=1e-9 * np.abs(expected).max())


def test_identical_channels_singular_system_matches_museval():
    # a source identical on both channels makes the filter system exactly singular: museval falls back to
    # least squares; unmix must not raise and must agree
    museval = pytest.importorskip("museval")
    rng = np.random.default_rng(3)
    n = 22050 * 3
    refs = rng.standard_normal((2, n, 2)).astype(np.float32)
    refs[0, :, 1] = refs[0, :, 0]
    est = refs + 0.05 * rng.standard_normal(refs.shape).astype(np.float32)
    ours = bss_eval(refs, est, window=22050, hop=22050)
    theirs = museval.metrics.bss_eval(refs, est, window=22050, hop=22050)
    for a, b in zip(ours[:4], theirs[:4]):
        assert np.allclose(a, b, atol=0.01, equal_nan=True)
