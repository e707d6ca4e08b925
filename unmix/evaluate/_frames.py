"""Windows of BSSEval's signals and their spectra: cutting, FFTs, silence, energies, cross spectra and lag
correlations (the frequency-domain building blocks of :mod:`unmix.evaluate.bsseval`).

Signals are laid out as references then estimates, source-major then channel: ``2 * m`` signals, ``m = nsrc * nchan``.
Every array is float64 (complex128 spectra). Spectra are stored bin-major, (nb_bins, nb_windows, 2, m): a block of
bins is then one contiguous slab holding every window and signal, which is what the per-bin products read; the
signals of a bin, (nb_windows, 2m), are one contiguous matrix (one product per bin for the cross spectra), and the
FFT of a window writes one contiguous run per bin.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from unmix.evaluate import _native

#: Size (bytes) of the time-domain buffer of one FFT batch (reused from batch to batch).
BATCH_BYTES = 6 * 2**20
#: Samples of each window tested first for silence: a signal that is heard there needs no full scan.
SILENCE_PREFIX = 256
#: Run the FFTs and the small batched products of CPU tensors in numpy (faster there than torch); torch is used on
#: other devices, and everywhere when this is False (the tests use that to check the device code path on the CPU).
NUMPY_ON_CPU = True
#: Longest dot product handed to BLAS at once (OpenBLAS runs a dot product of more than 10000 values on several
#: threads; see :func:`_sum_squares`).
DOT_PIECE = 8192
#: numpy >= 2 writes FFT results into a given (strided) output array.
_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def on_numpy(x: Tensor) -> bool:
    """Whether operations on ``x`` take the numpy path (see :data:`NUMPY_ON_CPU`)."""
    return NUMPY_ON_CPU and x.device.type == "cpu"


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


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, zero: bool = False) -> Tensor:
    """Uninitialised (or zeroed) tensor; on the CPU allocated by numpy, whose large buffers get transparent huge pages.

    Touching a fresh 100 MB torch buffer costs about as much as the FFTs that fill it (one page fault per 4 kB); numpy
    asks the kernel for huge pages, which removes almost all of that cost.
    """
    if torch.device(device).type != "cpu":
        return (torch.zeros if zero else torch.empty)(shape, dtype=dtype, device=device)
    np_dtype = {torch.float64: np.float64, torch.complex128: np.complex128}[dtype]
    return torch.from_numpy((np.zeros if zero else np.empty)(shape, dtype=np_dtype))


def rfft_into(x: Tensor, out: Tensor, n: int | None = None) -> None:
    """``out[...] = rfft(x, n)`` along the last dimension (``out`` may be any strided view); numpy's pocketfft on the
    CPU (faster than torch's there at these sizes, and it writes strided outputs without a copy), torch elsewhere."""
    if not on_numpy(x):
        out.copy_(torch.fft.rfft(x, n=n))
        return
    a = x.numpy()
    if n is not None and n != a.shape[-1]:  # zero-pad here: cheaper than numpy's own padding
        padded = np.zeros(a.shape[:-1] + (n,))
        padded[..., : min(n, a.shape[-1])] = a[..., :n]
        a = padded
    if _FFT_OUT:
        np.fft.rfft(a, axis=-1, out=out.numpy())
    else:
        out.numpy()[...] = np.fft.rfft(a, axis=-1)


def irfft_head(x: Tensor, n: int, head: int, buffer: Tensor | None = None) -> Tensor:
    """First ``head`` samples of ``irfft(x, n)`` along the last dimension (numpy on the CPU, torch elsewhere).

    ``buffer``: optional float64 (>= rows, n) array, reused across calls, that numpy writes the full transforms into
    (fresh memory per call costs page faults); the result is then a view of it, valid until the next call.
    """
    if on_numpy(x):
        if buffer is not None and _FFT_OUT and x.ndim == 2:
            full = buffer[: x.shape[0]]
            np.fft.irfft(x.numpy(), n=n, out=full.numpy())
            return full[:, :head]
        return torch.from_numpy(np.fft.irfft(x.numpy(), n=n)[..., :head])
    return torch.fft.irfft(x, n=n)[..., :head]


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched ``a @ b``: numpy on the CPU (its small batched products beat torch's), torch elsewhere."""
    if on_numpy(a):
        return torch.from_numpy(np.matmul(a.resolve_conj().numpy(), b.resolve_conj().numpy()))
    return torch.matmul(a, b)


def fill(
    ref: Tensor, est: Tensor, starts: list[int], lengths: list[int], n_fft: int, device: torch.device, buf: Tensor
) -> Tensor:
    """Windows of the references then the estimates, zero-padded, written into the head of ``buf``.

    Returns:
        float64 (nb_windows, 2 * m, n_fft), a view of ``buf``.
    """
    nsrc, nsampl, nchan = ref.shape
    nwin, size = len(starts), max(lengths)
    out = buf[: nwin * 2 * nsrc * nchan * n_fft].view(nwin, 2, nsrc, nchan, n_fft)
    step = starts[1] - starts[0] if nwin > 1 else 1
    regular = step > 0 and all(n == size for n in lengths) and starts == list(range(starts[0], starts[-1] + 1, step))
    if regular and starts[-1] + size <= nsampl:  # strided views of the inputs, one copy each
        out[..., size:].zero_()
        for k, x in enumerate((ref, est)):
            frames = x[:, starts[0] : starts[-1] + size].unfold(1, size, step)  # (nsrc, nwin, nchan, size)
            out[:, k, ..., :size].copy_(frames.transpose(0, 1))
    else:
        out.zero_()
        for w, (start, length) in enumerate(zip(starts, lengths)):
            for k, x in enumerate((ref, est)):
                out[w, k, ..., :length].copy_(x[:, start : start + length].transpose(1, 2))
    return out.view(nwin, 2 * nsrc * nchan, n_fft)


def parseval_weights(n_fft: int, device: torch.device) -> Tensor:
    """(nb_bins,) weights ``w`` such that ``sum_t x(t)^2 = sum_f w[f] |rfft(x, n_fft)[f]|^2`` (``n_fft`` even)."""
    weights = torch.full((n_fft // 2 + 1,), 2.0 / n_fft, dtype=torch.float64, device=device)
    weights[0] = weights[-1] = 1.0 / n_fft
    return weights


def bin_blocks(nbins: int, rows: int, budget: int = 2**18) -> list[slice]:
    """Blocks of frequency bins: ``rows`` complex values per bin, ``budget`` per block (the default, 4 MB, measured
    fastest for the cross spectra: per-block call overhead outweighs cache misses below it)."""
    step = max(1, budget // max(rows, 1))
    return [slice(f0, min(f0 + step, nbins)) for f0 in range(0, nbins, step)]


Frames = tuple[Tensor, Tensor, Tensor]


def _sum_squares(x: Tensor) -> Tensor:
    """(..., n) -> (...,) ``sum x^2`` over the last dimension: BLAS dot products through numpy on the CPU (2 to 3
    times faster than ``torch.linalg.vecdot`` there; torch's batched ``matmul`` is far slower still).

    The dot products run on pieces of at most :data:`DOT_PIECE` values: OpenBLAS threads longer ones, and its idle
    threads then spin for a long time, which slows every torch operation that follows on a machine with few cores
    (the whole evaluation took 3 times as long on 2 cores).
    """
    if on_numpy(x):
        a = x.numpy()
        total = np.zeros(a.shape[:-1])
        for start in range(0, a.shape[-1], DOT_PIECE):
            piece = a[..., start : start + DOT_PIECE]
            total += np.matmul(piece[..., None, :], piece[..., :, None])[..., 0, 0]
        return torch.from_numpy(total)
    return torch.linalg.vecdot(x, x)


def _channel_sum(x: Tensor) -> Tensor:
    """(..., nchan, n) -> (..., n): the channels added left to right (museval's order)."""
    total = x[..., 0, :]
    for c in range(1, x.shape[-2]):
        total = total + x[..., c, :]
    return total


def _silent(frames: Tensor) -> Tensor:
    """(nb_windows, nb_signals, nchan, n) -> (nb_windows,): some signal's channel sum is 0 on the whole window.

    museval's test. A short prefix decides for almost every signal; only the signals silent there are scanned over
    the whole window (a song's silent vocals would otherwise make every signal of those windows scanned).
    """
    heard = _channel_sum(frames[..., : min(SILENCE_PREFIX, frames.shape[-1])]).ne(0).any(-1)  # (windows, signals)
    silent = torch.zeros(frames.shape[0], dtype=torch.bool, device=frames.device)
    if bool(heard.all()):
        return silent
    window, signal = (~heard).nonzero(as_tuple=True)
    quiet = ~_channel_sum(frames[window, signal]).ne(0).any(-1)  # silent over the whole window
    silent[window[quiet]] = True
    return silent


def _compiled_inputs(ref: Tensor, est: Tensor, pairs: Tensor | None) -> tuple[np.ndarray, ...] | None:
    """``(ref, est, pairs)`` as the arrays of :func:`unmix.evaluate._native.fill_windows` (which checks their dtypes),
    or None where the numpy code is to cut the windows (kernels unavailable, not on the CPU)."""
    if not (_native.available() and on_numpy(ref) and on_numpy(est)):
        return None
    pair = torch.zeros(2, 0, dtype=torch.int64) if pairs is None else pairs.to(torch.int64)
    return ref.contiguous().numpy(), est.contiguous().numpy(), pair.contiguous().numpy()


def spectra(
    ref: Tensor,
    est: Tensor,
    starts: list[int],
    lengths: list[int],
    n_fft: int,
    device: torch.device,
    pairs: Tensor | None = None,
    buffer: Tensor | None = None,
) -> Frames:
    """Spectra of the windows, which windows are silent, and the time-domain energies of the windows.

    ``buffer``: optional flat complex128 tensor, at least as large as the spectra, that holds them (a long signal's
    groups of windows reuse one buffer instead of fresh memory, whose page faults cost about as much as the FFTs).

    Returns:
        ``spec`` (nb_bins, nb_windows, 2, m): ``rfft(window, n_fft)`` of the references then the estimates
        (source-major, then channel), ``m = nsrc * nchan``; ``silent`` (nb_windows,): True where a reference or an
        estimate has a zero channel sum on the whole window (museval's test); ``energy`` (2, nb_windows, nb_pairs):
        ``|s|^2`` of reference ``pairs[0]`` and ``|e - s|^2`` with estimate ``pairs[1]`` (empty without ``pairs``).
    """
    nsrc, _, nchan = ref.shape
    m, nwin = nsrc * nchan, len(starts)
    shape = (n_fft // 2 + 1, nwin, 2, m)
    if buffer is not None and buffer.numel() >= math.prod(shape):
        spec = buffer[: math.prod(shape)].view(shape)
    else:
        spec = empty(shape, torch.complex128, device)
    silent = torch.empty(nwin, dtype=torch.bool, device=device)
    npairs = 0 if pairs is None else pairs.shape[1]
    own = npairs == nsrc and bool((pairs[0] == pairs[1]).all())  # type: ignore[index]
    energy = torch.empty(2, nwin, npairs, dtype=torch.float64, device=device)
    per_batch = min(nwin, max(1, BATCH_BYTES // (2 * m * n_fft * 8)))
    buf = empty((per_batch * 2 * m * n_fft,), torch.float64, device)
    compiled = _compiled_inputs(ref, est, pairs)
    diff_buf = None
    for w0 in range(0, nwin, per_batch):
        w1 = min(w0 + per_batch, nwin)
        batch = buf[: (w1 - w0) * 2 * m * n_fft].view(w1 - w0, 2 * m, n_fft)
        if compiled is None or not _native.fill_windows(
            *compiled,
            starts[w0:w1],
            lengths[w0:w1],
            batch.numpy().reshape(w1 - w0, 2, nsrc, nchan, n_fft),
            silent[w0:w1].numpy(),
            energy[0, w0:w1].numpy(),
            energy[1, w0:w1].numpy(),
        ):
            if diff_buf is None:
                diff_buf = empty((per_batch, npairs, nchan * n_fft), torch.float64, device)
            batch = fill(ref, est, starts[w0:w1], lengths[w0:w1], n_fft, device, buf)
            frames = batch.view(w1 - w0, 2 * nsrc, nchan, n_fft)
            silent[w0:w1] = _silent(frames)
            if npairs:
                signals = batch.view(w1 - w0, 2, nsrc, nchan * n_fft)
                s, e = signals[:, 0], signals[:, 1]
                if not own:
                    s, e = s[:, pairs[0]], e[:, pairs[1]]  # type: ignore[index]
                energy[0, w0:w1] = _sum_squares(s)
                energy[1, w0:w1] = _sum_squares(torch.sub(e, s, out=diff_buf[: w1 - w0]))
        rfft_into(batch.view(w1 - w0, 2, m, n_fft), spec[:, w0:w1].permute(1, 2, 3, 0))
    return spec, silent, energy


def cross_spectra(spec: Tensor) -> Tensor:
    """``sum_w conj(S[f, w, p]) X[f, w, q]`` of the references ``S`` against every signal ``X``.

    On the CPU the products are real: with the spectra seen as interleaved (re, im) pairs, ``x^T x`` of a bin's
    (nb_windows, 4m) matrix holds every ``re*re``, ``re*im``, ``im*re`` and ``im*im`` sum, and the cross spectrum is
    ``(re re + im im) + i (re im - im re)``. Same products as the complex ``S^H X``, without conjugating ``S`` first
    (a pass over half of the spectra, which numpy's complex product would need).

    Args:
        spec: (nb_bins, nb_windows, 2, m) from :func:`spectra`.

    Returns:
        (m, 2m, nb_bins): reference ``p`` against signal ``q`` (references, then estimates).
    """
    nbins, nwin, _, m = spec.shape
    out = empty((m, 2 * m, nbins), torch.complex128, spec.device)
    if on_numpy(spec) and _native.cross_spectra(spec.numpy(), out.numpy()):
        return out
    blocks = bin_blocks(nbins, 3 * nwin * m + 6 * m * m)
    part = torch.empty((blocks[0].stop, m, 2 * m), dtype=torch.complex128, device=spec.device)
    if on_numpy(spec):
        pairs = np.empty((blocks[0].stop, 2 * m, 4 * m))  # (re, im) of the references against those of all signals
        spec_np, part_np, out_np = spec.numpy(), part.numpy(), out.numpy()
        for b in blocks:
            n = b.stop - b.start
            x = spec_np[b].view(np.float64).reshape(n, nwin, 4 * m)
            prod = pairs[:n]
            np.matmul(x[:, :, : 2 * m].transpose(0, 2, 1), x, out=prod)
            target = part_np[:n].view(np.float64).reshape(n, m, 2 * m, 2)
            np.add(prod[:, 0::2, 0::2], prod[:, 1::2, 1::2], out=target[..., 0])
            np.subtract(prod[:, 0::2, 1::2], prod[:, 1::2, 0::2], out=target[..., 1])
            out_np[..., b] = part_np[:n].transpose(1, 2, 0)
        return out
    for b in blocks:
        n = b.stop - b.start
        x = spec[b]
        torch.matmul(x[:, :, 0].mH, x.view(n, nwin, 2 * m), out=part[:n])  # (bins, m, 2m)
        out[..., b] = part[:n].permute(1, 2, 0)
    return out


def window_cross_spectra(spec: Tensor, w: int) -> Tensor:
    """(m, 2m, nb_bins) cross spectra ``conj(S_p) X_q`` of window ``w`` alone (see :func:`cross_spectra`)."""
    x = spec[:, w]  # (bins, 2, m)
    return (x[:, 0, :, None, None].conj() * x[:, None]).permute(1, 2, 3, 0).reshape(x.shape[2], -1, len(x))


def lags(cross: Tensor, n_fft: int, filters_len: int) -> Tensor:
    """Cross spectra ``conj(X_p) X_q`` -> correlations ``r_pq(d) = sum_t x_p(t) x_q(t + d)`` at lags ``0 .. L-1``.

    The reference-reference block is Hermitian, so ``r_qp(d) = r_pq(-d)`` is read from the end of the inverse
    transform of ``(p, q)``: ``m (m + 1) / 2`` transforms for that block instead of ``m^2``. The transforms run one
    reference row at a time (contiguous rows, no copy), so the full-length outputs stay small.

    Args:
        cross: (m, 2m, nb_bins) from :func:`cross_spectra`.
        n_fft: transform size of the spectra.
        filters_len: number of lags ``L``.

    Returns:
        (m, 2m, L) correlations.
    """
    m, width, _ = cross.shape
    out = torch.empty(m, width, filters_len, dtype=torch.float64, device=cross.device)
    back = (n_fft - torch.arange(filters_len, device=cross.device)) % n_fft  # r_qp(d) = r_pq(n_fft - d)
    buffer = empty((m, n_fft), torch.float64, cross.device) if on_numpy(cross) else None  # shared by the rows
    for p in range(m):
        out[p, m:] = irfft_head(cross[p, m:], n_fft, filters_len, buffer)
        full = irfft_head(cross[p, p:m], n_fft, n_fft, buffer)  # (m - p, n_fft): pairs (p, q >= p)
        out[p, p:m] = full[:, :filters_len]
        out[p + 1 :, p] = full[1:, back]
    return out


def boundary_correlations(
    ref: Tensor, est: Tensor, bounds: list[int], filters_len: int, device: torch.device
) -> Tensor:
    """Lag correlations (m, 2m, L) of the sample pairs straddling tile boundaries ``bounds`` (missing from tiles).

    For a boundary ``b``: samples ``[b - L + 1, b)`` of reference signal ``p`` against ``[b, b + L - 1)`` of ``q``.
    """
    nsrc, nsampl, nchan = ref.shape
    edge, m = filters_len - 1, nsrc * nchan
    n_small = fast_len(3 * edge + 1)
    # samples [b - L + 1, b) of the references at the start of a row of n_small zeros, samples [b, b + L - 1) of
    # every signal after edge zeros (zero past the end; slices, no gather)
    left = torch.zeros((len(bounds), nsrc, nchan, n_small), dtype=torch.float64, device=device)
    right = torch.zeros((len(bounds), 2, nsrc, nchan, n_small), dtype=torch.float64, device=device)
    for i, bound in enumerate(bounds):
        stop = min(bound + edge, nsampl)
        left[i, ..., :edge].copy_(ref[:, bound - edge : bound].transpose(1, 2))
        for k, x in enumerate((ref, est)):
            right[i, k, ..., edge : edge + stop - bound].copy_(x[:, bound:stop].transpose(1, 2))
    left, right = left.view(len(bounds), m, n_small), right.view(len(bounds), 2 * m, n_small)
    if on_numpy(left):  # numpy's FFTs are faster than torch's for these short rows
        left, right = (torch.from_numpy(np.fft.rfft(x.numpy(), axis=-1)) for x in (left, right))
    else:
        left, right = torch.fft.rfft(left), torch.fft.rfft(right)
    cross = matmul(left.permute(2, 1, 0).conj(), right.permute(2, 0, 1))  # (bins, m, 2m)
    return irfft_head(cross.permute(1, 2, 0), n_small, filters_len)
