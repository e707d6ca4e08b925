"""Block-Toeplitz solvers of ``unmix.evaluate._toeplitz``: batched Levinson, solver selection, per-source systems."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unmix.evaluate._toeplitz as toeplitz
from unmix.evaluate import _native, bss_eval


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


def test_batched_levinson_equals_one_system_at_a_time(bsseval_code: str) -> None:
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


def test_own_only_filters_are_the_diagonal_blocks_of_the_full_per_source_solve() -> None:
    nsrc, nchan, L = 3, 2, 12
    m = nsrc * nchan
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2 * m, 400))
    spec = np.fft.rfft(x, n=800)
    corr = torch.from_numpy(np.fft.irfft(spec.conj()[:m, None] * spec[None], n=800)[..., :L])
    filters_all, own_all = toeplitz.solve_filters(corr[None], nsrc, nchan)
    filters_own, own = toeplitz.solve_filters(corr[None], nsrc, nchan, own_only=True)
    np.testing.assert_allclose(filters_own.numpy(), filters_all.numpy(), rtol=0, atol=0)
    blocks = own[0].reshape(L, nsrc, nchan, nsrc, nchan)
    expected = own_all[0].reshape(L, nsrc, nchan, nsrc, nchan)
    for j in range(nsrc):
        for k in range(nsrc):
            got = blocks[:, j, :, k].numpy()
            if j == k:
                np.testing.assert_allclose(got, expected[:, j, :, k].numpy(), atol=1e-10 * np.abs(got).max())
            else:
                assert not got.any()


def _random_signals(seed: int, nsrc: int, nchan: int, nsampl: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Random float64 references and estimates (nsrc, nsampl, nchan), and every signal as a row, (2 * m, nsampl):
    references then estimates, source-major then channel (the order of ``unmix.evaluate._frames``)."""
    rng = np.random.default_rng(seed)
    ref = torch.from_numpy(rng.standard_normal((nsrc, nsampl, nchan)))
    est = torch.from_numpy(rng.standard_normal((nsrc, nsampl, nchan)))
    return ref, est, torch.cat([ref, est]).permute(0, 2, 1).reshape(2 * nsrc * nchan, -1).numpy()


@pytest.mark.parametrize("numpy_on_cpu", [True, False])
def test_cross_spectra_lags_and_energies_match_direct_sums(monkeypatch: pytest.MonkeyPatch, numpy_on_cpu: bool) -> None:
    # every lag of every pair (the lower reference-reference triangle is read from the mirrored transforms), and the
    # time-domain energies of the own pairs, on the numpy and on the torch code path
    import unmix.evaluate._frames as frames

    monkeypatch.setattr(frames, "NUMPY_ON_CPU", numpy_on_cpu)
    nsrc, nchan, size, L = 2, 2, 300, 16
    m = nsrc * nchan
    ref, est, signals = _random_signals(11, nsrc, nchan, 3 * size)
    n_fft = frames.fast_len(size + L - 1)
    pairs = torch.arange(nsrc).expand(2, -1)
    spec, silent, energy = frames.spectra(ref, est, [0, size, 2 * size], [size] * 3, n_fft, torch.device("cpu"), pairs)
    assert spec.shape == (n_fft // 2 + 1, 3, 2, m)
    assert not silent.any()
    corr = frames.lags(frames.cross_spectra(spec), n_fft, L).numpy()  # (m, 2m, L)
    windows = signals.reshape(2 * m, 3, size)
    expected = np.zeros((m, 2 * m, L))
    for d in range(L):
        expected[..., d] = np.einsum("pwt,qwt->pq", windows[:m, :, : size - d], windows[:, :, d:])
    np.testing.assert_allclose(corr, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    s = windows[:m].reshape(nsrc, nchan, 3, size)
    e = windows[m:].reshape(nsrc, nchan, 3, size)
    np.testing.assert_allclose(energy[0].numpy(), (s**2).sum((1, 3)).T, rtol=1e-12)
    np.testing.assert_allclose(energy[1].numpy(), ((e - s) ** 2).sum((1, 3)).T, rtol=1e-12)


@pytest.mark.parametrize("numpy_on_cpu", [True, False])
def test_boundary_correlations_match_direct_sums(monkeypatch: pytest.MonkeyPatch, numpy_on_cpu: bool) -> None:
    # the lagged products straddling each boundary, with a boundary closer to the end than the filter length
    import unmix.evaluate._frames as frames

    monkeypatch.setattr(frames, "NUMPY_ON_CPU", numpy_on_cpu)
    nsrc, nchan, nsampl, L = 2, 2, 1000, 16
    m = nsrc * nchan
    ref, est, signals = _random_signals(12, nsrc, nchan, nsampl)
    bounds = [300, 600, nsampl - 5]
    got = frames.boundary_correlations(ref, est, bounds, L, torch.device("cpu")).numpy()
    expected = np.zeros((m, 2 * m, L))
    for b in bounds:
        for d in range(1, L):
            t = np.arange(max(b - d, 0), min(b, nsampl - d))  # t < b <= t + d < nsampl
            expected[..., d] += signals[:m, t] @ signals[:, t + d].T
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize(
    "options", [{}, {"compute_permutation": True}, {"framewise_filters": True}, {"bsseval_sources_version": True}]
)
def test_torch_code_path_matches_the_numpy_path(monkeypatch: pytest.MonkeyPatch, options: dict) -> None:
    # the device (torch) code path, forced on the CPU, gives the numbers of the numpy CPU path
    import unmix.evaluate._frames as frames

    rng = np.random.default_rng(2)
    refs = rng.standard_normal((3, 3 * 4000, 2)).astype(np.float32)
    est = (0.8 * refs + 0.2 * np.roll(refs, 1, axis=0) + 0.1 * rng.standard_normal(refs.shape)).astype(np.float32)
    kwargs = {"window": 4000, "hop": 4000, "filters_len": 24, **options}
    fast = bss_eval(refs, est, **kwargs)
    monkeypatch.setattr(frames, "NUMPY_ON_CPU", False)
    slow = bss_eval(refs, est, **kwargs)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8, equal_nan=True)


def test_permutation_pairs_agree_with_the_own_pairs() -> None:
    # the (j, j) pairs of the all-pairs energies are the own-source energies
    import unmix.evaluate._projection as projection

    rng = np.random.default_rng(4)
    nsrc, nchan, L, nwin, nbins = 3, 2, 8, 4, 33
    m = nsrc * nchan
    filters = torch.from_numpy(rng.standard_normal((1, L, m, m)))
    own = torch.from_numpy(rng.standard_normal((1, L, m, m)))
    spec = torch.from_numpy(rng.standard_normal((nbins, nwin, 2, m)) + 1j * rng.standard_normal((nbins, nwin, 2, m)))
    for sources in (False, True):
        every = projection.window_energies(
            spec, projection.projection_spectra(filters, own, 2 * (nbins - 1), nchan, True), nchan, True, sources
        )
        single = projection.window_energies(
            spec, projection.projection_spectra(filters, own, 2 * (nbins - 1), nchan, False), nchan, False, sources
        )
        diagonal = every.reshape(5, nwin, nsrc, nsrc).diagonal(dim1=2, dim2=3)
        np.testing.assert_allclose(diagonal.numpy(), single.numpy(), rtol=1e-12)


def _music_like_system(m: int, L: int, n: int, mono: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations of BSSEval on coloured, band-limited (16 kHz), 16-bit, channel-correlated references and
    estimates close to them (the Gohberg-Semencul formula is not accurate enough on these)."""
    rng = np.random.default_rng(1)
    freqs = np.fft.rfftfreq(n, 1 / 44100)
    shape = 1 / np.maximum(freqs, 30.0) ** 0.8
    shape[freqs > 16000] *= 1e-6
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal((m, n))) * shape, n=n)
    x = np.round(x / (2 * np.abs(x).max()) * 32767) / 32767
    x[1:] = 0.7 * x[:1] + 0.3 * x[1:]
    x[1] = x[0] + mono * (x[1] - x[0])
    e = 0.9 * x + 0.08 * np.roll(x, 1, axis=1) + 0.1 * np.roll(x, 1, axis=0) + 0.01 * rng.standard_normal(x.shape)
    sx, se = np.fft.rfft(x, n=2 * n), np.fft.rfft(e, n=2 * n)
    R = np.fft.irfft(sx.conj()[:, None] * sx[None], n=2 * n)[..., :L].transpose(2, 0, 1).copy()
    R[0] += toeplitz.EPS * np.eye(m)
    Y = np.fft.irfft(sx.conj()[:, None] * se[None], n=2 * n)[..., :L].transpose(2, 0, 1).copy()
    return R, Y


@pytest.mark.parametrize(("m", "mono"), [(4, 1.0), (2, 0.03), (4, 0.01)])
def test_levinson_meets_the_residual_tolerance_on_music_like_systems(m: int, mono: float, bsseval_code: str) -> None:
    """Band-limited, quantised, channel-correlated references (``mono``: how much of the second channel is its own;
    0.01 to 0.03 is a centred bass), estimates close to them: cond(T) up to 1e14, and no dense fallback needed."""
    R, Y = _music_like_system(m, 256, 44100, mono)
    dense = toeplitz.dense_toeplitz(R)
    solved = toeplitz.block_levinson(R, Y)
    residual = np.linalg.norm(dense @ solved.reshape(-1, m) - Y.reshape(-1, m))
    assert residual <= toeplitz.RESIDUAL_TOLERANCE * np.linalg.norm(dense) * np.linalg.norm(solved)


def test_accumulating_predictor_updates_equal_numpy_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """m >= 4: the forward-predictor update goes through torch's accumulating product (batched and single)."""
    monkeypatch.setattr(_native, "ENABLED", False)  # the numpy recursion
    systems = [_system(4, 40, 700, seed, band_limited=seed == 21) for seed in (20, 21, 22)]
    R = np.stack([r for r, _ in systems])
    Y = np.stack([y for _, y in systems])
    batched, single = toeplitz.block_levinson(R, Y), toeplitz.block_levinson(R[0], Y[0])
    monkeypatch.setattr(toeplitz, "ACCUMULATE_MIN_SIGNALS", 10**9)
    plain = toeplitz.block_levinson(R, Y)
    for i in (0, 2):  # well-conditioned: the same solution up to rounding
        np.testing.assert_allclose(batched[i], plain[i], rtol=1e-9, atol=1e-12 * np.abs(plain[i]).max())
    np.testing.assert_allclose(single, plain[0], rtol=1e-9, atol=1e-12 * np.abs(plain[0]).max())
    for i, (r, y) in enumerate(systems):  # the band-limited system's solution is ill-determined: its residual
        dense = toeplitz.dense_toeplitz(r)
        residual = np.linalg.norm(dense @ batched[i].reshape(-1, 2) - y.reshape(-1, 2))
        assert residual <= toeplitz.RESIDUAL_TOLERANCE * np.linalg.norm(dense) * np.linalg.norm(batched[i])


@pytest.mark.parametrize("numpy_on_cpu", [True, False])
@pytest.mark.parametrize("per_window", [False, True])
def test_window_energies_of_selected_windows(monkeypatch: pytest.MonkeyPatch, numpy_on_cpu: bool, per_window: bool):
    """Skipping (silent) windows: the energies of the selected windows are those of the full computation."""
    from unmix.evaluate import _frames as frames
    from unmix.evaluate import _projection as projection

    monkeypatch.setattr(frames, "NUMPY_ON_CPU", numpy_on_cpu)
    gen = torch.Generator().manual_seed(4)
    nbins, nwin, nsrc, nchan, L = 65, 6, 2, 2, 8
    m = nsrc * nchan
    spec = torch.randn(nbins, nwin, 2, m, dtype=torch.complex128, generator=gen)
    filters = torch.randn(nwin if per_window else 1, L, m, m, dtype=torch.float64, generator=gen)
    proj = projection.projection_spectra(filters, filters.clone(), 2 * (nbins - 1), nchan, False)
    every = projection.window_energies(spec, proj, nchan, False, False)
    keep = torch.tensor([0, 2, 5])
    some = projection.window_energies(spec, proj, nchan, False, False, keep)
    assert some.shape == (5, 3, nsrc)
    torch.testing.assert_close(some, every[:, keep], rtol=1e-12, atol=0)
