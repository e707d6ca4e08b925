"""Access to the optional compiled kernels of BSSEval (``unmix/evaluate/_kernels.c``, ``_levinson.c``,
``_windows.c``), through ctypes.

The extension is built by ``pip install`` where a C compiler is available (it is declared optional: without a compiler
the install goes on without it). Where it is missing or out of date, or when :data:`ENABLED` is False, the wrappers
below decline (return False or None) and the callers use their numpy code, which computes the same quantities (the
tests compare the two). ``UNMIX_NATIVE=0`` in the environment disables the kernels at import.

The wrappers check what the C code relies on (dtype, C-contiguity, sizes) and decline anything else.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

#: Use the compiled kernels when they are built (tests switch this off to check the numpy code).
ENABLED = os.environ.get("UNMIX_NATIVE", "1") != "0"
#: Most signals (``nb_sources * nb_channels``) the kernels handle (``MAX_SIGNALS`` in the C file).
MAX_SIGNALS = 16
#: Version of the C entry points' signatures (``UNMIX_KERNELS_ABI`` in ``_kernels.h``); a library of another version,
#: built from older or newer sources, is not used.
ABI_VERSION = 1

_P, _I, _C = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
#: Argument types of the C entry points (all return an int status).
_SIGNATURES = {
    "unmix_cross_spectra": [_P, _I, _I, _I, _P],
    "unmix_window_energies": [_P, _P, _P, _P, _P, _I, _I, _I, _I, _C, _P],
    "unmix_block_levinson": [_P, _P, _I, _I, _I, _I, _P],
    "unmix_fill_windows": [_P, _P, _C, _I, _I, _I, _P, _P, _I, _I, _P, _I, _P, _P, _P, _P],
}


@functools.cache
def _load() -> ctypes.CDLL | None:
    """The compiled library, or None where it was not built (looked up once)."""
    spec = importlib.util.find_spec("unmix.evaluate._kernels")
    if spec is None or spec.origin is None:
        logger.debug("unmix.evaluate._kernels is not built: BSSEval uses its numpy code")
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError as exc:
        logger.warning("could not load %s (%s): BSSEval uses its numpy code", spec.origin, exc)
        return None
    try:
        lib.unmix_kernels_abi.restype = ctypes.c_int
        if lib.unmix_kernels_abi() != ABI_VERSION:
            raise AttributeError(f"its kernels are version {lib.unmix_kernels_abi()}, this code needs {ABI_VERSION}")
        for name, argtypes in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, ctypes.c_int
    except AttributeError as exc:  # a library built from older sources (an editable install not rebuilt)
        logger.warning(
            "%s is out of date (%s): BSSEval uses its numpy code; rebuild with pip install", spec.origin, exc
        )
        return None
    return lib


def _library() -> ctypes.CDLL | None:
    """The compiled library if it is built, loadable and enabled."""
    return _load() if ENABLED else None


def available() -> bool:
    """Whether the compiled kernels are built, loadable and enabled."""
    return _library() is not None


def _c_array(a: np.ndarray, dtype: type) -> bool:
    return a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned


def _check(code: int, name: str) -> None:
    if code == -2:
        raise MemoryError(f"{name}: out of memory for its work buffers")
    if code != 0:  # the wrappers rule these cases out
        raise RuntimeError(f"{name} rejected its arguments (code {code})")


def cross_spectra(spec: np.ndarray, out: np.ndarray) -> bool:
    """The cross spectra of :func:`unmix.evaluate._frames.cross_spectra`, ``sum_w conj(S[f, w, p]) X[f, w, q]``.

    Args:
        spec: complex128 (nb_bins, nb_windows, 2, m) window spectra, C-contiguous.
        out: complex128 (m, 2m, nb_bins), C-contiguous, written.

    Returns:
        True if the kernel ran; False (``out`` untouched) if it is unavailable or does not handle these arrays.
    """
    lib, (nbins, nwin, two, m) = _library(), spec.shape
    if lib is None or not (two == 2 and 2 <= m <= MAX_SIGNALS and m % 2 == 0 and nbins and nwin):
        return False
    if not (_c_array(spec, np.complex128) and _c_array(out, np.complex128) and out.shape == (m, 2 * m, nbins)):
        return False
    _check(lib.unmix_cross_spectra(spec.ctypes.data, nbins, nwin, m, out.ctypes.data), "cross spectra")
    return True


def window_energies(
    spec: np.ndarray,
    proj_all: np.ndarray,
    proj_own: np.ndarray,
    weights: np.ndarray,
    windows: np.ndarray,
    sources: bool,
) -> np.ndarray | None:
    """The five energies of :func:`unmix.evaluate._projection.window_energies`, stereo signals, global filters,
    every estimate against its own reference.

    Args:
        spec: complex128 (nb_bins, nb_windows, 2, m) window spectra, ``m = 2 nsrc``.
        proj_all, proj_own: complex128 (m, m, nb_bins) projection matrices on all references and on the own source
            (only the 2 x 2 diagonal blocks of ``proj_own`` are read).
        weights: float64 (nb_bins,) Parseval weights.
        windows: int64 (nb_selected,) windows to score.
        sources: ``bsseval_sources_version``.

    Returns:
        (5, nb_selected, nsrc) float64, or None if the kernel is unavailable or does not handle these arrays.
    """
    lib, (nbins, nwin, two, m) = _library(), spec.shape
    if lib is None or not (two == 2 and 2 <= m <= MAX_SIGNALS and m % 2 == 0 and nbins and len(windows)):
        return None
    arrays = ((spec, np.complex128), (proj_all, np.complex128), (proj_own, np.complex128), (weights, np.float64))
    if not all(_c_array(a, dtype) for a, dtype in arrays) or not _c_array(windows, np.int64):
        return None
    if proj_all.shape != (m, m, nbins) or proj_own.shape != (m, m, nbins) or weights.shape != (nbins,):
        return None
    if windows.min() < 0 or windows.max() >= nwin:
        return None
    nsrc, scales = m // 2, np.sqrt(weights)  # the kernel scales the spectra so that squares come out weighted
    out = np.empty((5, len(windows), nsrc))
    code = lib.unmix_window_energies(
        spec.ctypes.data,
        proj_all.ctypes.data,
        proj_own.ctypes.data,
        scales.ctypes.data,
        windows.ctypes.data,
        len(windows),
        nbins,
        nwin,
        nsrc,
        int(bool(sources)),
        out.ctypes.data,
    )
    _check(code, "window energies")
    return out


def block_levinson(R: np.ndarray, Y: np.ndarray) -> np.ndarray | None:
    """:func:`unmix.evaluate._toeplitz.block_levinson` in C: solve ``T X = Y`` for symmetric positive definite
    block-Toeplitz ``T``, batched.

    Args:
        R: float64 (nb, L, m, m) blocks ``R(d)``, ``T[a, b] = R(a - b)``, ``R(-d) = R(d)^T``.
        Y: float64 (nb, L, m, k) right-hand sides.

    Returns:
        (nb, L, m, k) solutions (NaN for a system whose recursion broke down), or None if the kernel is unavailable
        or does not handle these arrays.
    """
    lib = _library()
    if lib is None or R.ndim != 4 or Y.ndim != 4 or R.shape[:2] != Y.shape[:2] or R.shape[2:] != (R.shape[2],) * 2:
        return None
    nb, L, m, k = Y.shape
    if not (1 <= m <= MAX_SIGNALS and 1 <= k <= MAX_SIGNALS and L >= 1 and R.shape[2] == m):
        return None
    R, Y = np.ascontiguousarray(R, dtype=np.float64), np.ascontiguousarray(Y, dtype=np.float64)
    X = np.empty_like(Y)
    _check(lib.unmix_block_levinson(R.ctypes.data, Y.ctypes.data, nb, L, m, k, X.ctypes.data), "block Levinson")
    return X


def fill_windows(
    ref: np.ndarray,
    est: np.ndarray,
    pairs: np.ndarray,
    starts: list[int],
    lengths: list[int],
    out: np.ndarray,
    silent: np.ndarray,
    squares: np.ndarray,
    errors: np.ndarray,
) -> bool:
    """:func:`unmix.evaluate._frames.fill`, the silence test and the time-domain energies of
    :func:`unmix.evaluate._frames.spectra`, for one batch of windows, in one pass.

    Args:
        ref, est: (nsrc, nsampl, nchan) float32 or float64 signals, the same dtype, C-contiguous.
        pairs: int64 (2, nb_pairs): reference and estimate source of each energy pair.
        starts, lengths: the windows (sample ranges inside the signals).
        out: float64 (nb_windows, 2, nsrc, nchan, n_fft), C-contiguous: the zero-padded windows, written.
        silent: bool (nb_windows,), written.
        squares, errors: float64 (nb_windows, nb_pairs), C-contiguous: ``|s|^2`` and ``|e - s|^2``, written.

    Returns:
        True if the kernel ran; False (nothing written) if it is unavailable or does not handle these arrays.
    """
    lib = _library()
    if lib is None or ref.dtype not in (np.float32, np.float64) or est.dtype != ref.dtype or ref.shape != est.shape:
        return False
    if ref.ndim != 3 or not (ref.flags.c_contiguous and est.flags.c_contiguous):
        return False
    nsrc, nsampl, nchan = ref.shape
    nb, npairs = len(starts), pairs.shape[1]
    if not (_c_array(out, np.float64) and out.ndim == 5 and out.shape[:4] == (nb, 2, nsrc, nchan)):
        return False
    if not (_c_array(silent, np.bool_) and silent.shape == (nb,) and _c_array(pairs, np.int64) and pairs.shape[0] == 2):
        return False
    if not all(_c_array(a, np.float64) and a.shape == (nb, npairs) for a in (squares, errors)):
        return False
    windows = np.array([starts, lengths], dtype=np.int64).reshape(2, nb)
    code = lib.unmix_fill_windows(
        ref.ctypes.data,
        est.ctypes.data,
        int(ref.dtype == np.float32),
        nsrc,
        nsampl,
        nchan,
        windows[0].ctypes.data,
        windows[1].ctypes.data,
        nb,
        out.shape[4],
        pairs.ctypes.data,
        npairs,
        out.ctypes.data,
        silent.ctypes.data,
        squares.ctypes.data,
        errors.ctypes.data,
    )
    _check(code, "window filling")
    return True
