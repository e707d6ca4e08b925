"""``unmix.evaluate.bss_eval`` against ``museval.metrics.bss_eval`` (the oracle) for every option, on small inputs.

Short filters keep museval fast; the framing, permutation, v3 (framewise filters), bss_eval_sources and silence logic
are the same at any filter length.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from unmix.evaluate import bss_eval

museval_metrics = pytest.importorskip("museval.metrics")  # test extra; installed in CI


def _signals(nsrc: int, nsampl: int, nchan: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((nsrc, nsampl, nchan)).cumsum(1) * 0.02 + 0.1 * rng.standard_normal((nsrc, nsampl, nchan))
    est = ref + 0.3 * np.roll(ref, 1, axis=0) + 0.1 * rng.standard_normal(ref.shape)
    est[:, 3:] += 0.2 * ref[:, :-3]  # some filtering distortion
    return ref, est


def _compare(ours: tuple, theirs: tuple, tolerance: float = 1e-6) -> None:
    for a, b in zip(ours[:4], theirs[:4]):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.array_equal(np.isinf(a), np.isinf(b))
        finite = np.isfinite(b)
        if finite.any():
            assert np.abs(a[finite] - b[finite]).max() < tolerance
    if len(ours) == 5:
        assert np.array_equal(np.asarray(ours[4]), np.asarray(theirs[4]))


CASES = {
    "v4": ((3, 5500, 2), {"window": 1000, "hop": 1000, "filters_len": 64}),
    "overlapping windows": ((3, 5500, 2), {"window": 1000, "hop": 700, "filters_len": 64}),
    "gaps between windows": ((3, 5500, 2), {"window": 1000, "hop": 1300, "filters_len": 64}),
    "fractional window and hop": ((2, 5500, 2), {"window": 1000.7, "hop": 666.5, "filters_len": 32}),
    "whole signal (inf)": ((2, 3000, 2), {"window": math.inf, "hop": math.inf, "filters_len": 64}),
    "window longer than signal": ((2, 3000, 2), {"window": 5000, "hop": 5000, "filters_len": 64}),
    "window shorter than filters": ((2, 3000, 2), {"window": 200, "hop": 200, "filters_len": 256}),
    "mono": ((3, 4000, 1), {"window": 1000, "hop": 1000, "filters_len": 64}),
    "three channels": ((2, 4000, 3), {"window": 1000, "hop": 1000, "filters_len": 32}),
    "one-tap filters": ((2, 3000, 2), {"window": 1000, "hop": 1000, "filters_len": 1}),
    "one sample past the last window": ((2, 3001, 2), {"window": 1000, "hop": 1000, "filters_len": 32}),
    "permutation": ((3, 4000, 2), {"window": 1000, "hop": 1000, "filters_len": 32, "compute_permutation": True}),
    "v3 framewise filters": ((3, 4000, 2), {"window": 1000, "hop": 1000, "filters_len": 32, "framewise_filters": True}),
    "v3 permutation": (
        (3, 4000, 2),
        {"window": 1000, "hop": 800, "filters_len": 32, "framewise_filters": True, "compute_permutation": True},
    ),
    "bss_eval_sources": (
        (3, 4000, 2),
        {"window": 1000, "hop": 1000, "filters_len": 32, "bsseval_sources_version": True},
    ),
    "bss_eval_sources v3 global": (
        (2, 3000, 1),
        {
            "window": math.inf,
            "hop": math.inf,
            "filters_len": 32,
            "bsseval_sources_version": True,
            "framewise_filters": True,
            "compute_permutation": True,
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_museval(name: str, bsseval_code: str) -> None:
    shape, kwargs = CASES[name]
    ref, est = _signals(*shape, seed=len(name))
    if kwargs.get("compute_permutation"):
        est = est[::-1].copy()  # the best order is not the given one
    ours = bss_eval(ref, est, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = museval_metrics.bss_eval(ref, est, **kwargs)
    assert len(ours) == (5 if kwargs.get("compute_permutation") else 4)
    _compare(ours, theirs)
    if kwargs.get("compute_permutation") and not kwargs.get("framewise_filters"):
        assert ours[4][:, 0].tolist() == list(range(len(ref)))[::-1]


@pytest.mark.parametrize("framewise", [False, True])
def test_silent_windows_match_museval(framewise: bool) -> None:
    ref, est = _signals(3, 4000, 2, seed=3)
    ref[1, 1000:2000] = 0.0  # a silent reference window
    est[2, 3000:4000] = 0.0  # a silent estimate window
    ours = bss_eval(ref, est, window=1000, hop=1000, filters_len=32, framewise_filters=framewise)
    theirs = museval_metrics.bss_eval(ref, est, window=1000, hop=1000, filters_len=32, framewise_filters=framewise)
    _compare(ours, theirs)
    assert np.isnan(ours[0][:, [1, 3]]).all() and np.isfinite(ours[0][:, [0, 2]]).all()


def test_two_dimensional_and_float32_inputs() -> None:
    ref, est = _signals(2, 3000, 1, seed=5)
    _compare(
        bss_eval(ref[..., 0], est[..., 0], window=1000, hop=1000, filters_len=32),
        museval_metrics.bss_eval(ref[..., 0], est[..., 0], window=1000, hop=1000, filters_len=32),
    )
    ref32, est32 = ref.astype(np.float32), est.astype(np.float32)
    _compare(
        bss_eval(ref32, est32, window=1000, hop=1000, filters_len=32),
        museval_metrics.bss_eval(ref32, est32, window=1000, hop=1000, filters_len=32),
    )


def test_channels_cancelling_count_as_silent_like_museval() -> None:
    ref, est = _signals(2, 3000, 2, seed=9)
    ref[0, 1000:2000, 1] = -ref[0, 1000:2000, 0]  # channel sum is zero: museval's test calls this silent
    ours = bss_eval(ref, est, window=1000, hop=1000, filters_len=32)
    _compare(ours, museval_metrics.bss_eval(ref, est, window=1000, hop=1000, filters_len=32))
    assert np.isnan(ours[0][:, 1]).all()
