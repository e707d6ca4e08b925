"""BSSEval v4 in PyTorch, numerically equivalent to ``museval.metrics.bss_eval`` (museval 0.4.1).

The definition (Vincent et al. 2006; SiSEC18 "v4"): every estimate is projected, with multichannel FIR distortion
filters of ``filters_len`` taps, on the subspace spanned by its own reference image (giving ``Pj``) and on the one
spanned by all references (giving ``P``). With ``s`` the reference image and ``e`` the estimate, on every window
(signals cut to the window, zero-padded by ``filters_len - 1`` samples, energies summed over samples and channels)::

    SDR = 10 log10(|s|^2 / |e - s|^2)      ISR = 10 log10(|s|^2 / |Pj - s|^2)
    SIR = 10 log10(|Pj|^2 / |P - Pj|^2)    SAR = 10 log10(|P|^2 / |e - P|^2)

With ``framewise_filters=False`` (v4) the filters are fitted once on the whole signals, with ``True`` (v3) on each
window. A window in which any reference or any estimate is silent gives NaN for every source, as in museval.

How (float64 throughout, CPU or GPU): the normal equations of the projections are block Toeplitz, built from lag
correlations that come from the FFTs of the windows themselves (first pass), and solved by
:mod:`unmix.evaluate._toeplitz`. The windowed projections are then evaluated in the frequency domain and their
energies read off with Parseval's identity by :mod:`unmix.evaluate._projection` (second pass, reusing the spectra
when they fit in :data:`GROUP_BYTES`).

Differences from museval: the default ``window``/``hop`` are ``museval.evaluate``'s (1 s at 44.1 kHz), not
``museval.metrics.bss_eval``'s (2 s / 1.5 s); the permutation is returned only when asked for; an exact estimate gives
``+inf`` SDR (museval: ``+inf`` too) but ISR/SIR/SAR of about 230 dB instead of museval's 280 dB: both are rounding
noise. With more than two channels, per-window silence is tested on float64 channel sums (museval: input dtype).
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unmix.errors import EvaluationError
from unmix.evaluate import _frames as frames
from unmix.evaluate._frames import Frames
from unmix.evaluate._projection import projection_spectra, window_energies
from unmix.evaluate._toeplitz import solve_filters

logger = logging.getLogger(__name__)

__all__ = ["EvaluationError", "bss_eval", "framing"]

#: Largest size (bytes) of the spectra of one group of windows, kept between the two passes over the signals.
GROUP_BYTES = 384 * 2**20


def framing(window: float, hop: float, nb_samples: int) -> tuple[list[int], list[int]]:
    """Window boundaries exactly as museval's ``Framing``.

    Args:
        window: window length in samples (``math.inf`` or any value >= ``nb_samples``: one window, the whole signal).
        hop: hop length in samples.
        nb_samples: signal length.

    Returns:
        ``(starts, stops)``: the ``nb_windows`` half-open sample ranges.
    """
    nwin = math.floor((nb_samples - window + hop) / hop) if window < nb_samples else 1
    starts, stops = [], []
    for t in range(nwin):
        start, stop = t * hop, min(t * hop + window, nb_samples)
        starts.append(0 if math.isnan(start) or math.isinf(start) else math.floor(start))
        stops.append(nb_samples if math.isnan(stop) or math.isinf(stop) else math.floor(stop))
    return starts, stops


def _as_3d(x: Any, name: str) -> tuple[Tensor, bool]:
    """Tensor view of ``x`` as (nb_sources, nb_samples, nb_channels) (``numpy.atleast_3d`` as museval), no copy."""
    is_numpy = not isinstance(x, Tensor)
    t = torch.as_tensor(np.ascontiguousarray(x)) if is_numpy else x.detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise EvaluationError(f"{name} must hold real numbers, got dtype {t.dtype}; pass a float array")
    if t.ndim == 1:
        t = t[None, :, None]
    elif t.ndim == 2:
        t = t[:, :, None]
    return t, is_numpy


def _silent_sources(x: Tensor) -> Tensor:
    """(nb_sources, nb_samples, nb_channels) -> (nb_sources,): the channel sum is 0 at every sample.

    museval's test (channels summed in the input's dtype, so a source whose channels cancel is silent). The signal
    is scanned in chunks (a short one first) until every source has been heard, usually within the first chunk.
    """
    heard = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    bounds = [0, *range(2**12, x.shape[1], 2**16), x.shape[1]]
    for start, stop in itertools.pairwise(bounds):
        heard |= x[:, start:stop].sum(-1).ne(0).any(-1)
        if bool(heard.all()):
            break
    return ~heard


def _all_finite(x: Tensor) -> bool:
    """No NaN or inf in ``x``: a plain sum (fast) is finite, or else an element-wise test (the sum overflowed)."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def _prepare(references: Any, estimates: Any) -> tuple[Tensor, Tensor, bool]:
    ref, ref_np = _as_3d(references, "references")
    est, est_np = _as_3d(estimates, "estimates")
    if ref.shape != est.shape:
        raise EvaluationError(
            f"references and estimates must have the same shape (nb_sources, nb_samples, nb_channels), got "
            f"{tuple(ref.shape)} and {tuple(est.shape)}; pad or trim the estimates to the references' length"
        )
    if ref.ndim > 3:
        raise EvaluationError(f"expected at most 3 dimensions (nb_sources, nb_samples, nb_channels), got {ref.ndim}")
    if ref.device != est.device:
        est = est.to(ref.device)
    if ref.numel() == 0:
        return ref, est, ref_np and est_np
    if not (_all_finite(ref) and _all_finite(est)):
        raise EvaluationError("references and estimates must be finite; found NaN or inf values, remove them first")
    for name, x in (("reference", ref), ("estimated", est)):
        silent = _silent_sources(x)
        if bool(silent.any()):
            raise EvaluationError(
                f"{name} source(s) {silent.nonzero().flatten().tolist()} are silent over the whole signal (all "
                "zeros), which makes the evaluation ambiguous (museval raises here too); drop those sources"
            )
    return ref, est, ref_np and est_np


def _safe_db(num: Tensor, den: Tensor) -> Tensor:
    """``10 log10(num / den)``, ``+inf`` where ``den == 0`` (museval's ``_safe_db``)."""
    return torch.where(den == 0, torch.full_like(num, math.inf), 10 * torch.log10(num / den))


def _scores(energies: Tensor, time_energies: Tensor, sources: bool) -> Tensor:
    """(4, nb_windows, nb_pairs) SDR, ISR, SIR, SAR from the energies of
    :func:`unmix.evaluate._projection.window_energies` and :func:`unmix.evaluate._frames.spectra`."""
    e_pj, e_p, e_sir, e_sar, e_last = energies
    e_s, e_diff = time_energies
    if sources:
        sdr, isr = _safe_db(e_pj, e_last), torch.full_like(e_pj, math.nan)
    else:
        sdr, isr = _safe_db(e_s, e_diff), _safe_db(e_s, e_last)
    return torch.stack([sdr, isr, _safe_db(e_pj, e_sir), _safe_db(e_p, e_sar)])


def _select(scores: np.ndarray, nsrc: int, all_pairs: bool, framewise: bool) -> tuple[np.ndarray, np.ndarray]:
    """museval's choice of the estimate order: the largest mean SIR (``numpy.argmax`` semantics, NaN included).

    Args:
        scores: (4, nsrc, nsrc or 1, nb_windows) scores of the pairs (reference j, estimate j').
    """
    if not all_pairs:
        return scores[:, :, 0, :], np.arange(nsrc)[:, None]
    candidates = np.array(list(itertools.permutations(range(nsrc))))
    rows = np.arange(nsrc)
    sir = scores[2]
    if framewise:
        mean_sir = np.stack([sir[rows, c, :].mean(0) for c in candidates])  # (nb_perms, nb_windows)
    else:
        mean_sir = np.stack([[sir[rows, c, :].mean()] for c in candidates])  # (nb_perms, 1)
    perm = candidates[np.argmax(mean_sir, axis=0)].T  # (nsrc, nb_windows or 1)
    if framewise:
        out = np.stack([scores[:, rows, perm[:, t], t] for t in range(scores.shape[-1])], -1)
    else:
        out = scores[:, rows, perm[:, 0], :]
    return out, perm


def _groups(nwin: int, per_window: int) -> list[slice]:
    size = max(1, GROUP_BYTES // max(per_window, 1))
    return [slice(i, min(i + size, nwin)) for i in range(0, nwin, size)]


def bss_eval(
    references: Any,
    estimates: Any,
    window: float = 44100,
    hop: float = 44100,
    compute_permutation: bool = False,
    filters_len: int = 512,
    framewise_filters: bool = False,
    bsseval_sources_version: bool = False,
    *,
    device: torch.device | str | None = None,
) -> tuple[Any, ...]:
    """BSSEval v4 image metrics, a drop-in for ``museval.metrics.bss_eval`` (same arguments, same numbers).

    Args:
        references: (nb_sources, nb_samples, nb_channels) true source images, numpy array or tensor (a 2-D input is
            (nb_sources, nb_samples), mono, as museval).
        estimates: (nb_sources, nb_samples, nb_channels) estimated source images.
        window: window length in samples (``math.inf``: the whole signal).
        hop: hop length in samples.
        compute_permutation: also try every order of the estimates and keep the best mean SIR.
        filters_len: number of taps of the distortion filters.
        framewise_filters: fit the filters on every window (BSSEval v3) instead of once (v4).
        bsseval_sources_version: the ``bss_eval_sources`` definitions (ISR is NaN), as museval.
        device: where to compute; default: the references' device (numpy inputs: CPU).

    Returns:
        ``(SDR, ISR, SIR, SAR)``, each (nb_sources, nb_windows), then ``perm`` ((nb_sources, 1), or
        (nb_sources, nb_windows) with framewise filters) if ``compute_permutation``: numpy float64 arrays when both
        inputs are numpy arrays, else float64 tensors on the compute device. NaN on windows where any reference or
        estimate is silent; ``inf`` where an error energy is exactly 0.

    Raises:
        EvaluationError: mismatched shapes, non-finite values, or a source silent over the whole signal.
    """
    with torch.inference_mode():
        ref, est, as_numpy = _prepare(references, estimates)
        dev = ref.device if device is None else torch.device(device)
        nsrc, nsampl, nchan = ref.shape
        if ref.numel() == 0:
            logger.warning("empty references/estimates: returning empty scores")
            empty = np.array([]) if as_numpy else torch.empty(0, dtype=torch.float64)
            return (empty,) * (5 if compute_permutation else 4)
        L = int(filters_len)
        if L < 1:
            raise EvaluationError(f"filters_len must be >= 1, got {filters_len}")
        if not (window > 0 and hop > 0):
            raise EvaluationError(f"window and hop must be > 0 samples (or math.inf), got {window} and {hop}")
        m = nsrc * nchan
        ar = torch.arange(nsrc, device=dev)
        pairs = torch.stack([ar.repeat_interleave(nsrc), ar.repeat(nsrc)]) if compute_permutation else ar.expand(2, -1)
        starts, stops = framing(window, hop, nsampl)
        lengths = [b - a for a, b in zip(starts, stops)]
        size = max(lengths)
        n_fft = frames.fast_len(size + L - 1)
        groups = _groups(len(starts), 2 * m * (n_fft // 2 + 1) * 16)
        buffer = None  # several groups: one buffer holds the spectra of each in turn (fresh memory costs page faults)
        if len(groups) > 1:
            buffer = frames.empty((groups[0].stop * 2 * m * (n_fft // 2 + 1),), torch.complex128, dev)

        def window_frames(sel: slice) -> Frames:
            return frames.spectra(ref, est, starts[sel], lengths[sel], n_fft, dev, pairs, buffer)

        def finish(data: Frames, proj: Tensor) -> Tensor:
            spec, silent, time_energies = data
            if bool(silent.any()):  # their scores are NaN: leave them out of the projection pass
                energies = torch.full((5, *time_energies.shape[1:]), math.nan, dtype=torch.float64, device=dev)
                keep = (~silent).nonzero().flatten()
                if len(keep):
                    energies[:, keep] = window_energies(spec, proj, nchan, compute_permutation, sources, keep)
            else:
                energies = window_energies(spec, proj, nchan, compute_permutation, sources)
            scores = _scores(energies, time_energies, sources)
            scores[:, silent] = math.nan
            return scores

        def projections(corr: Tensor) -> Tensor:
            filters, own = solve_filters(corr, nsrc, nchan, own_only=not compute_permutation)
            return projection_spectra(filters, own, n_fft, nchan, compute_permutation)

        sources = bsseval_sources_version
        parts: list[Tensor] = []
        if framewise_filters:  # one pass: per-window correlations, filters and scores
            for sel in groups:
                data = window_frames(sel)
                nwin = data[0].shape[1]  # per window: cross spectra, lags, filters
                corr = torch.stack(
                    [frames.lags(frames.window_cross_spectra(data[0], w), n_fft, L) for w in range(nwin)]
                )
                parts.append(finish(data, projections(corr)))
        else:
            tiled = size >= L and all(n == size for n in lengths) and starts == list(range(0, len(starts) * size, size))
            last: Frames | None = None  # the last group's frames, still in memory for the second pass
            if tiled:  # the windows tile the signal: their spectra give the global correlations
                tile, tile_n_fft, cross = size, n_fft, None
                for sel in groups:
                    last = window_frames(sel)
                    if cross is None:
                        cross = frames.cross_spectra(last[0])
                    else:
                        cross += frames.cross_spectra(last[0])
                covered = len(starts) * size
                if covered < nsampl:
                    rest = frames.spectra(ref, est, [covered], [nsampl - covered], n_fft, dev)[0]
                    cross += frames.cross_spectra(rest)
            else:  # tiles of their own
                tile = max(2 * L, 2**15 - L + 1)
                tile_n_fft, cross = frames.fast_len(tile + L - 1), None
                tile_starts = list(range(0, nsampl, tile))
                tile_lengths = [min(tile, nsampl - s) for s in tile_starts]
                for sel in _groups(len(tile_starts), 2 * m * (tile_n_fft // 2 + 1) * 16):
                    spec = frames.spectra(ref, est, tile_starts[sel], tile_lengths[sel], tile_n_fft, dev)[0]
                    if cross is None:
                        cross = frames.cross_spectra(spec)
                    else:
                        cross += frames.cross_spectra(spec)
            corr = frames.lags(cross, tile_n_fft, L)
            bounds = list(range(tile, nsampl, tile))
            if bounds and L > 1:
                corr = corr + frames.boundary_correlations(ref, est, bounds, L, dev)
            proj = projections(corr[None])
            for sel in reversed(groups):  # the last group first: its spectra may still be there
                parts.insert(0, finish(last if sel is groups[-1] and last is not None else window_frames(sel), proj))
        result = torch.cat(parts, 1)  # (4, nb_windows, nb_pairs)
        result = result.reshape(4, len(starts), nsrc, -1).permute(0, 2, 3, 1)  # (4, j_ref, j_est or 1, windows)
    out, perm = _select(result.cpu().numpy(), nsrc, compute_permutation, framewise_filters)
    metrics: list[Any] = [np.ascontiguousarray(out[k]) for k in range(4)]
    if not as_numpy:
        metrics = [torch.from_numpy(x).to(dev) for x in metrics]
        perm = torch.from_numpy(perm).to(dev)
    return (*metrics, perm) if compute_permutation else tuple(metrics)
