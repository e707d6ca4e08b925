"""The compiled BSSEval kernels (``unmix/evaluate/_kernels.c``) against the numpy code they replace.

They are built by ``pip install`` where a C compiler exists; CI sets ``UNMIX_REQUIRE_NATIVE=1``, so that there these
tests fail instead of being skipped if the build did not happen.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from unmix.evaluate import _frames as frames
from unmix.evaluate import _native, bss_eval
from unmix.evaluate import _toeplitz as toeplitz
from unmix.evaluate._projection import window_energies

requires_native = pytest.mark.skipif(
    not _native.available() and os.environ.get("UNMIX_REQUIRE_NATIVE") != "1",
    reason="compiled kernels not built (pip install -e . with a C compiler) or disabled (UNMIX_NATIVE=0)",
)


def _spectra(nbins: int, nwin: int, m: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    spec = rng.standard_normal((nbins, nwin, 2, m)) + 1j * rng.standard_normal((nbins, nwin, 2, m))
    spec[:, :, 1] += 0.5 * spec[:, :, 0]  # estimates correlated with the references, as in real use
    return torch.from_numpy(spec)


def _projections(nbins: int, nsrc: int, seed: int = 1) -> torch.Tensor:
    """(1, 2, m, m, nbins): random projection on all references, block-diagonal one on the own source (stereo)."""
    m, rng = 2 * nsrc, np.random.default_rng(seed)
    proj = rng.standard_normal((1, 2, m, m, nbins)) + 1j * rng.standard_normal((1, 2, m, m, nbins))
    own = np.kron(np.eye(nsrc), np.ones((2, 2)))[..., None]  # ones on the 2 x 2 diagonal blocks
    proj[0, 1] *= own
    return torch.from_numpy(proj)


def test_kernels_are_built_where_required() -> None:
    if os.environ.get("UNMIX_REQUIRE_NATIVE") == "1":
        assert _native.available(), "UNMIX_REQUIRE_NATIVE=1 but unmix.evaluate._kernels is not built or not loadable"
    else:  # the switch works either way
        assert _native.available() == (_native.ENABLED and _native._load() is not None)


@requires_native
@pytest.mark.parametrize("m", [2, 4, 6, 8, 16])
def test_cross_spectra_equal_the_numpy_code(monkeypatch: pytest.MonkeyPatch, m: int) -> None:
    spec = _spectra(37, 5, m, seed=m)  # 37 bins: more than two tiles, the last one partial
    ours = frames.cross_spectra(spec)
    monkeypatch.setattr(_native, "ENABLED", False)
    theirs = frames.cross_spectra(spec)
    assert ours.shape == theirs.shape == (m, 2 * m, 37)
    assert torch.allclose(ours, theirs, rtol=1e-13, atol=1e-13 * theirs.abs().max().item())


@requires_native
def test_cross_spectra_kernel_declines_what_it_does_not_handle() -> None:
    for m in (3, 18):  # odd, more than MAX_SIGNALS
        spec = _spectra(9, 2, m).numpy()
        assert not _native.cross_spectra(spec, np.empty((m, 2 * m, 9), complex))
    spec = _spectra(9, 2, 4).numpy()
    out = np.empty((4, 8, 9), complex)
    assert not _native.cross_spectra(spec[:, :, :, ::-1], out)  # not contiguous
    assert not _native.cross_spectra(spec, np.empty((4, 8, 10), complex))  # wrong output shape
    assert _native.cross_spectra(spec, out)


@requires_native
@pytest.mark.parametrize("nsrc", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("sources", [False, True])
def test_window_energies_equal_the_numpy_code(monkeypatch: pytest.MonkeyPatch, nsrc: int, sources: bool) -> None:
    spec, proj = _spectra(41, 6, 2 * nsrc, seed=nsrc), _projections(41, nsrc)
    for windows in (None, torch.tensor([0, 3, 4])):
        ours = window_energies(spec, proj, 2, False, sources, windows)
        with monkeypatch.context() as patch:
            patch.setattr(_native, "ENABLED", False)
            theirs = window_energies(spec, proj, 2, False, sources, windows)
        assert ours.shape == theirs.shape == (5, 6 if windows is None else 3, nsrc)
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=0)


@requires_native
def test_window_energies_kernel_reads_only_the_diagonal_blocks_of_the_own_projection() -> None:
    spec, proj = _spectra(20, 3, 6), _projections(20, 3)
    before = window_energies(spec, proj, 2, False, False)
    noisy = proj.clone()
    noisy[0, 1] += 1e3 * (1 - torch.from_numpy(np.kron(np.eye(3), np.ones((2, 2))))[..., None])  # off-block garbage
    assert torch.equal(window_energies(spec, noisy, 2, False, False), before)


@requires_native
def test_window_energies_kernel_declines_what_it_does_not_handle() -> None:
    spec, proj = _spectra(9, 2, 4), _projections(9, 2)
    weights = frames.parseval_weights(16, torch.device("cpu")).numpy()
    args = (spec.numpy(), proj[0, 0].numpy(), proj[0, 1].numpy(), weights)
    assert _native.window_energies(*args, np.array([0, 1]), False) is not None
    assert _native.window_energies(*args, np.array([0, 2]), False) is None  # window out of range
    assert _native.window_energies(*args, np.array([0, 1], dtype=np.int32), False) is None
    assert _native.window_energies(args[0], args[1], args[2], weights[:-1], np.array([0]), False) is None
    odd = _spectra(9, 2, 3).numpy()
    assert (
        _native.window_energies(odd, args[1][:3, :3].copy(), args[2][:3, :3].copy(), weights, np.array([0]), False)
        is None
    )


@requires_native
@pytest.mark.parametrize("options", [{}, {"bsseval_sources_version": True}])
def test_bss_eval_is_the_same_with_and_without_the_kernels(monkeypatch: pytest.MonkeyPatch, options: dict) -> None:
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((4, 6000, 2)).cumsum(1) * 0.01 + 0.1 * rng.standard_normal((4, 6000, 2))
    est = ref + 0.2 * np.roll(ref, 1, axis=0) + 0.05 * rng.standard_normal(ref.shape)
    ref[1, 2000:3000] = 0  # a silent window: its scores are NaN, the other windows go through the kernels
    kwargs = dict(window=1000, hop=1000, filters_len=64, **options)
    ours = bss_eval(ref, est, **kwargs)
    monkeypatch.setattr(_native, "ENABLED", False)
    theirs = bss_eval(ref, est, **kwargs)
    assert np.isfinite(theirs[0]).sum() > 10 and np.isnan(theirs[0]).any()
    for a, b in zip(ours, theirs):  # ISR: NaN everywhere with bsseval_sources_version
        assert np.array_equal(np.isnan(a), np.isnan(b))
        finite = np.isfinite(b)
        assert not finite.any() or np.abs(a[finite] - b[finite]).max() < 1e-9


def _gram_system(m: int, k: int, L: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(R, Y) of BSSEval's normal equations for m coloured, correlated signals and k estimates close to them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, 3000)).cumsum(1) * 0.05 + rng.standard_normal((m, 3000))
    x[1:] += 0.8 * x[:1]
    e = np.concatenate([x, x])[:k] + 0.1 * rng.standard_normal((k, 3000))
    sx, se = np.fft.rfft(x, n=8192), np.fft.rfft(e, n=8192)
    R = np.fft.irfft(sx.conj()[:, None] * sx[None], n=8192)[..., :L].transpose(2, 0, 1).copy()
    Y = np.fft.irfft(sx.conj()[:, None] * se[None], n=8192)[..., :L].transpose(2, 0, 1).copy()
    return R, Y


@requires_native
@pytest.mark.parametrize(("m", "k"), [(1, 1), (2, 2), (3, 5), (4, 4), (8, 8), (16, 16)])
def test_levinson_equals_the_numpy_recursion(monkeypatch: pytest.MonkeyPatch, m: int, k: int) -> None:
    systems = [_gram_system(m, k, 40, seed) for seed in range(3)]
    R, Y = np.stack([r for r, _ in systems]), np.stack([y for _, y in systems])
    ours = toeplitz.block_levinson(R, Y)
    monkeypatch.setattr(_native, "ENABLED", False)
    theirs = toeplitz.block_levinson(R, Y)
    assert ours.shape == theirs.shape == Y.shape and np.isfinite(ours).all()
    for r, y, x in zip(R, Y, ours):  # both solve the system to rounding level
        dense = toeplitz.dense_toeplitz(r)
        residual = np.linalg.norm(dense @ x.reshape(-1, k) - y.reshape(-1, k))
        assert residual <= toeplitz.RESIDUAL_TOLERANCE * np.linalg.norm(dense) * np.linalg.norm(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9 * np.abs(theirs).max())


@requires_native
def test_levinson_gives_nan_for_a_singular_system_only() -> None:
    R, Y = _gram_system(2, 2, 16, seed=0)
    singular = R.copy()
    singular[:, 1, :] = singular[:, 0, :]  # second signal a copy of the first: singular prediction errors
    singular[:, :, 1] = singular[:, :, 0]
    out = _native.block_levinson(np.stack([R, singular]), np.stack([Y, Y]))
    assert out is not None and np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@requires_native
def test_levinson_kernel_declines_what_it_does_not_handle() -> None:
    R, Y = _gram_system(2, 2, 8, seed=0)
    assert _native.block_levinson(R[None], Y[None]) is not None
    assert _native.block_levinson(R, Y) is None  # no batch dimension
    assert _native.block_levinson(R[None, :, :1], Y[None]) is None  # blocks not square
    big = np.zeros((1, 8, 17, 17))
    assert _native.block_levinson(big, np.zeros((1, 8, 17, 1))) is None  # more than MAX_SIGNALS


def _signals(nsrc: int, nsampl: int, nchan: int, dtype: type) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(nsrc * 10 + nchan)
    ref = rng.standard_normal((nsrc, nsampl, nchan))
    est = ref + 0.3 * rng.standard_normal(ref.shape)
    ref[0, :2200] = 0  # silent reference windows, whatever the layout
    est[-1, 3000:4100, 0] = -est[-1, 3000:4100, -1] if nchan > 1 else 0  # channels cancelling: silent too
    if nchan == 1:
        est[-1, 3000:4100] = 0
    return torch.from_numpy(ref.astype(dtype)), torch.from_numpy(est.astype(dtype))


@requires_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nchan", [1, 2, 3])
@pytest.mark.parametrize("windows", ["tiles", "overlapping", "irregular"])
def test_window_spectra_silence_and_energies_equal_the_numpy_code(
    monkeypatch: pytest.MonkeyPatch, dtype: type, nchan: int, windows: str
) -> None:
    ref, est = _signals(3, 5300, nchan, dtype)
    starts, lengths = {
        "tiles": (list(range(0, 5000, 1000)), [1000] * 5),
        "overlapping": (list(range(0, 4600, 700)), [1000] * 7),
        "irregular": ([0, 950, 2100, 3000, 5000], [900, 1000, 1000, 1100, 300]),
    }[windows]
    frames.BATCH_BYTES, batch_bytes = 3 * 2 * 3 * nchan * 1200 * 8, frames.BATCH_BYTES  # batches of 3 windows
    try:
        for pairs in (None, torch.arange(3).expand(2, -1), torch.cartesian_prod(torch.arange(3), torch.arange(3)).T):
            ours = frames.spectra(ref, est, starts, lengths, 1200, torch.device("cpu"), pairs)
            with monkeypatch.context() as patch:
                patch.setattr(_native, "ENABLED", False)
                theirs = frames.spectra(ref, est, starts, lengths, 1200, torch.device("cpu"), pairs)
            assert torch.equal(ours[0], theirs[0])  # the same float64 rows go into the same FFTs
            assert torch.equal(ours[1], theirs[1])
            assert ours[2].shape == theirs[2].shape
            assert torch.allclose(ours[2], theirs[2], rtol=1e-12, atol=0)
    finally:
        frames.BATCH_BYTES = batch_bytes
    assert bool(ours[1].any()) and not bool(ours[1].all())  # both kinds of windows were tested


@requires_native
def test_fill_windows_kernel_declines_what_it_does_not_handle() -> None:
    ref, est = _signals(2, 3000, 2, np.float32)
    r, e = ref.numpy(), est.numpy()
    pairs = np.array([[0, 1], [0, 1]], dtype=np.int64)

    def run(r: np.ndarray, e: np.ndarray, starts: list[int], lengths: list[int], n_fft: int = 1100) -> bool:
        out = np.empty((len(starts), 2, 2, 2, n_fft))
        silent, squares, errors = np.empty(len(starts), bool), np.empty((len(starts), 2)), np.empty((len(starts), 2))
        return _native.fill_windows(r, e, pairs, starts, lengths, out, silent, squares, errors)

    assert run(r, e, [0, 1000], [1000, 1000])
    assert not run(r, e.astype(np.float64), [0], [1000])  # mixed dtypes
    assert not run(r.astype(np.float16), e.astype(np.float16), [0], [1000])
    assert not run(r[:, ::2], e[:, ::2], [0], [1000])  # not contiguous
    with pytest.raises(RuntimeError):  # a window past the end: the kernel checks, writes nothing
        run(r, e, [2500], [1000])
    half = bss_eval(ref.half(), est.half(), window=1000, hop=1000, filters_len=16)[0]  # the numpy code cuts these
    single = bss_eval(ref.half().float(), est.half().float(), window=1000, hop=1000, filters_len=16)[0]
    assert half.shape == (2, 3) and torch.isfinite(half).any()
    assert torch.allclose(half, single, equal_nan=True)


def test_non_contiguous_and_float32_inputs_give_the_same_scores() -> None:
    ref, est = _signals(2, 4000, 2, np.float32)
    strided_ref = ref.transpose(1, 2).contiguous().transpose(1, 2)  # same values, channel-major memory
    assert not strided_ref.is_contiguous()
    kwargs = dict(window=1000, hop=1000, filters_len=32)
    for a, b in zip(bss_eval(strided_ref, est, **kwargs), bss_eval(ref, est, **kwargs)):
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        assert torch.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)


@requires_native
def test_a_library_of_another_version_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An editable install whose library was built from other sources falls back to numpy instead of calling it."""
    monkeypatch.setattr(_native, "ABI_VERSION", _native.ABI_VERSION + 1)
    _native._load.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="unmix.evaluate._native"):
            assert _native._load() is None and not _native.available()
        assert "out of date" in caplog.text
        spec = _spectra(9, 2, 4)
        assert frames.cross_spectra(spec).shape == (4, 8, 9)  # the numpy code
    finally:
        monkeypatch.undo()
        _native._load.cache_clear()
    assert _native.available()
