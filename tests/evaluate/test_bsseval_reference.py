"""Parity of ``unmix.evaluate.bss_eval`` with the museval 0.4.1 reference vectors (/work/shared/reference/museval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import unmix.evaluate._toeplitz as toeplitz
from unmix.evaluate import bss_eval

METRICS = ("SDR", "ISR", "SIR", "SAR")
TOLERANCE_DB = 0.01


@pytest.fixture(scope="module")
def vectors(reference_dir: Path) -> dict:
    folder = reference_dir / "museval"
    data = dict(np.load(folder / "bsseval_v4.npz"))
    data["call"] = json.loads((folder / "bsseval_v4.json").read_text())
    return data


def _run(vectors: dict, **kwargs) -> tuple:
    call = vectors["call"]
    return bss_eval(
        vectors["references"],
        vectors["estimates"],
        window=call["window"],
        hop=call["hop"],
        compute_permutation=False,
        filters_len=512,
        framewise_filters=False,
        bsseval_sources_version=False,
        **kwargs,
    )


def _assert_matches(out: tuple, vectors: dict, tolerance: float = TOLERANCE_DB) -> None:
    for name, values in zip(METRICS, out):
        values, expected = np.asarray(values), vectors[name]
        assert values.shape == expected.shape, name
        assert np.array_equal(np.isnan(values), np.isnan(expected)), f"{name}: NaN pattern differs"
        finite = np.isfinite(expected)
        assert np.isfinite(values[finite]).all(), name
        assert np.abs(values[finite] - expected[finite]).max() < tolerance, name


def test_reference_has_a_silent_window(vectors: dict) -> None:
    # the comparison below covers the NaN path only if museval produced NaNs
    assert np.isnan(vectors["SDR"]).any() and np.isfinite(vectors["SDR"]).any()


def test_matches_museval_within_tolerance(vectors: dict, bsseval_code: str) -> None:
    out = _run(vectors)
    assert len(out) == 4 and all(isinstance(x, np.ndarray) and x.dtype == np.float64 for x in out)
    _assert_matches(out, vectors)
    _assert_matches(out, vectors, tolerance=1e-6)  # in practice the agreement is at rounding level


def test_torch_inputs_give_tensors_with_the_same_values(vectors: dict) -> None:
    ref = torch.from_numpy(vectors["references"])  # float32, as stored
    est = torch.from_numpy(vectors["estimates"])
    call = vectors["call"]
    out = bss_eval(ref, est, window=call["window"], hop=call["hop"], device="cpu")
    assert all(isinstance(x, torch.Tensor) and x.dtype == torch.float64 for x in out)
    _assert_matches(tuple(x.numpy() for x in out), vectors)


@pytest.mark.parametrize("path", ["levinson", "dense"])
def test_every_solver_path_matches(vectors: dict, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    calls = {"levinson": 0, "dense": 0}
    levinson, dense = toeplitz.block_levinson, toeplitz._dense_solve

    def counted_levinson(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
        calls["levinson"] += 1
        return levinson(R, Y) if path == "levinson" else np.full(Y.shape, np.nan)

    def counted_dense(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
        calls["dense"] += 1
        return dense(R, Y)

    monkeypatch.setattr(toeplitz, "CG_ITERATIONS", 0)  # conjugate gradients cannot converge: fall back
    monkeypatch.setattr(toeplitz, "block_levinson", counted_levinson)
    monkeypatch.setattr(toeplitz, "_dense_solve", counted_dense)
    _assert_matches(_run(vectors), vectors)
    assert calls["levinson"] == 2  # the all-sources system and the per-source (block diagonal) system
    assert calls["dense"] == (2 if path == "dense" else 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_reference(vectors: dict) -> None:
    out = _run(vectors, device="cuda")
    _assert_matches(out, vectors)
    tensors = bss_eval(
        torch.from_numpy(vectors["references"]).cuda(),
        torch.from_numpy(vectors["estimates"]).cuda(),
        window=vectors["call"]["window"],
        hop=vectors["call"]["hop"],
    )
    assert tensors[0].device.type == "cuda"
    _assert_matches(tuple(x.cpu().numpy() for x in tensors), vectors)
