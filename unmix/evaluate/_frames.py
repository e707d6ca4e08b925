"""Windows of BSSEval's signals and their spectra: cutting, FFTs, silence, energies, cross spectra and lag
correlations (the frequency-domain building blocks of :mod:`unmix.evaluate.bsseval`).

Signals are laid out as references then estimates, source-major then channel: ``2 * m`` signals, ``m = nsrc * nchan``.
Every array is float64 (complex128 spectra).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

#: Size (bytes) of the transient buffers of one FFT batch (small, so the allocator reuses them).
BATCH_BYTES = 12 * 2**20


def fast_len(n: int) -> int:
    """Smallest even integer >= ``n`` whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    best = 2 ** math.ceil(math.log2(max(n, 2)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = 2 * p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Uninitialised tensor; on the CPU allocated by numpy, whose large buffers get transparent huge pages.

    Touching a fresh 100 MB torch buffer costs about as much as the FFTs that fill it (one page fault per 4 kB); numpy
    asks the kernel for huge pages, which removes almost all of that cost.
    """
    if torch.device(device).type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    np_dtype = {torch.float64: np.float64, torch.complex128: np.complex128}[dtype]
    return torch.from_numpy(np.empty(shape, dtype=np_dtype))


def rfft_into(x: Tensor, out: Tensor) -> None:
    """``out[...] = rfft(x)`` along the last axis (``n_fft = x.shape[-1]``); numpy's pocketfft on the CPU (faster
    than torch's there at these sizes), torch elsewhere."""
    if x.device.type == "cpu" and out.is_contiguous() and x.is_contiguous():
        np.fft.rfft(x.numpy(), axis=-1, out=out.numpy())
    else:
        torch.fft.rfft(x, out=out)


def fill(ref: Tensor, est: Tensor, starts: list[int], lengths: list[int], n_fft: int, device: torch.device) -> Tensor:
    """Windows of the references then the estimates, zero-padded: float64 (nb_windows, 2 * m, n_fft)."""
    nsrc, nsampl, nchan = ref.shape
    nwin, size = len(starts), max(lengths)
    buf = torch.empty(nwin, 2, nsrc, nchan, n_fft, dtype=torch.float64, device=device)
    step = starts[1] - starts[0] if nwin > 1 else 1
    regular = step > 0 and all(n == size for n in lengths) and starts == list(range(starts[0], starts[-1] + 1, step))
    if regular and starts[-1] + size <= nsampl:  # strided views of the inputs, one copy each
        buf[..., size:].zero_()
        for k, x in enumerate((ref, est)):
            frames = x[:, starts[0] : starts[-1] + size].unfold(1, size, step)  # (nsrc, nwin, nchan, size)
            buf[:, k, ..., :size].copy_(frames.transpose(0, 1))
    else:
        buf.zero_()
        for w, (start, length) in enumerate(zip(starts, lengths)):
            for k, x in enumerate((ref, est)):
                buf[w, k, ..., :length].copy_(x[:, start : start + length].transpose(1, 2))
    return buf.reshape(nwin, 2 * nsrc * nchan, n_fft)


def parseval_weights(n_fft: int, device: torch.device) -> Tensor:
    """(nb_bins,) weights ``w`` such that ``sum_t x(t)^2 = sum_f w[f] |rfft(x, n_fft)[f]|^2`` (``n_fft`` even)."""
    weights = torch.full((n_fft // 2 + 1,), 2.0 / n_fft, dtype=torch.float64, device=device)
    weights[0] = weights[-1] = 1.0 / n_fft
    return weights


def bin_blocks(nbins: int, rows: int) -> list[slice]:
    """Blocks of frequency bins small enough for the cache: ``rows`` complex values per bin."""
    step = max(1, 2**16 // max(rows, 1))
    return [slice(f0, min(f0 + step, nbins)) for f0 in range(0, nbins, step)]


Frames = tuple[Tensor, Tensor, Tensor]


def spectra(
    ref: Tensor,
    est: Tensor,
    starts: list[int],
    lengths: list[int],
    n_fft: int,
    device: torch.device,
    pairs: Tensor | None = None,
) -> Frames:
    """Spectra of the windows, which windows are silent, and the time-domain energies of the windows.

    Returns:
        ``spec`` (nb_windows, 2 * m, nb_bins): ``rfft(window, n_fft)`` of the references then the estimates
        (source-major, then channel), ``m = nsrc * nchan``; ``silent`` (nb_windows,): True where a reference or an
        estimate has a zero channel sum on the whole window (museval's test); ``energy`` (2, nb_windows, nb_pairs):
        ``|s|^2`` of reference ``pairs[0]`` and ``|e - s|^2`` with estimate ``pairs[1]`` (empty without ``pairs``).
    """
    nsrc, _, nchan = ref.shape
    m, nwin = nsrc * nchan, len(starts)
    spec = empty((nwin, 2 * m, n_fft // 2 + 1), torch.complex128, device)
    silent = torch.empty(nwin, dtype=torch.bool, device=device)
    pair_list = [] if pairs is None else pairs.T.tolist()
    energy = torch.empty(2, nwin, len(pair_list), dtype=torch.float64, device=device)
    per_batch = max(1, BATCH_BYTES // (2 * m * n_fft * 8))
    for w0 in range(0, nwin, per_batch):
        w1 = min(w0 + per_batch, nwin)
        buf = fill(ref, est, starts[w0:w1], lengths[w0:w1], n_fft, device)
        frames = buf.reshape(w1 - w0, 2 * nsrc, nchan, n_fft)
        total = frames[:, :, 0]
        for c in range(1, nchan):
            total = total + frames[:, :, c]
        silent[w0:w1] = ~total.ne(0).any(-1).all(-1)
        for i, (j, k) in enumerate(pair_list):
            energy[0, w0:w1, i] = frames[:, j].square().sum((-1, -2))
            energy[1, w0:w1, i] = (frames[:, nsrc + k] - frames[:, j]).square().sum((-1, -2))
        rfft_into(buf, spec[w0:w1])
    return spec, silent, energy


def block(spec: Tensor, bins: slice) -> Tensor:
    """(nb_windows, P, nb_bins) -> contiguous (bins, nb_windows, P) for one block of bins."""
    return spec[:, :, bins].permute(2, 0, 1).contiguous()


def cross_spectra(spec: Tensor, m: int) -> Tensor:
    """``sum_w conj(X[w, p, f]) X[w, q, f]``: (nb_windows, P, nb_bins) -> (m, P, nb_bins), ``p < m``."""
    nwin, nsig, nbins = spec.shape
    out = spec.new_empty(m, nsig, nbins)
    for b in bin_blocks(nbins, nwin * nsig):
        x = block(spec, b)
        out[:, :, b] = (torch.conj_physical(x[:, :, :m]).transpose(1, 2) @ x).permute(1, 2, 0)
    return out


def lags(cross: Tensor, n_fft: int, filters_len: int) -> Tensor:
    """(..., nb_bins) cross spectra ``conj(X_p) X_q`` -> (..., filters_len) correlations at lags ``0 .. L-1``.

    Inverse transforms run a few rows at a time, so the full-length outputs stay small.
    """
    rows = cross.reshape(-1, cross.shape[-1])
    out = torch.empty(len(rows), filters_len, dtype=torch.float64, device=cross.device)
    step = max(1, 2**19 // n_fft)
    for r0 in range(0, len(rows), step):
        out[r0 : r0 + step] = torch.fft.irfft(rows[r0 : r0 + step], n=n_fft)[:, :filters_len]
    return out.reshape(*cross.shape[:-1], filters_len)


def boundary_correlations(
    ref: Tensor, est: Tensor, bounds: list[int], filters_len: int, device: torch.device
) -> Tensor:
    """Lag correlations (m, 2m, L) of the sample pairs straddling tile boundaries ``bounds`` (missing from tiles).

    For a boundary ``b``: samples ``[b - L + 1, b)`` of reference signal ``p`` against ``[b, b + L - 1)`` of ``q``.
    """
    nsrc, nsampl, nchan = ref.shape
    edge, m = filters_len - 1, nsrc * nchan
    index = torch.tensor(bounds, device=ref.device)[:, None] + torch.arange(-edge, edge, device=ref.device)
    valid = (index < nsampl).to(device=device, dtype=torch.float64)[:, None, :]
    near = torch.stack([x[:, index.clamp(max=nsampl - 1)] for x in (ref, est)])  # (2, nsrc, nb, 2 edge, nchan)
    near = near.to(device=device, dtype=torch.float64).permute(2, 0, 1, 4, 3).reshape(len(bounds), 2 * m, 2 * edge)
    near = near * valid
    n_small = fast_len(3 * edge + 1)
    left = torch.fft.rfft(near[:, :m, :edge], n=n_small)
    right = torch.fft.rfft(torch.nn.functional.pad(near[:, :, edge:], (edge, 0)), n=n_small)
    cross = torch.einsum("wpf,wqf->pqf", left.conj(), right)
    return torch.fft.irfft(cross, n=n_small)[..., :filters_len]
