"""BSSEval's windowed projections in the frequency domain: the filters' frequency responses, and the energies of the
projections and errors on every window (Parseval), for :mod:`unmix.evaluate.bsseval`.

Layouts (``m = nsrc * nchan`` signals, source-major then channel): spectra (nb_bins, nb_windows, 2, m) from
:func:`unmix.evaluate._frames.spectra`; projection matrices (B, 1 + J, m, m, nb_bins), where group 0 maps the
reference spectra (a row of ``m``) to the projections of every estimate signal on all references, and group ``1 + j``
to their projections on reference source ``j`` alone (``J = nsrc``), or, without the permutation search (``J = 1``),
every estimate's projection on its own reference source.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from unmix.evaluate import _frames as frames
from unmix.evaluate import _native

#: Complex values per block of bins in the energy pass (4 MB: measured fastest; smaller blocks pay more per-call
#: overhead than they save in cache misses).
BLOCK_VALUES = 2**18


def _matmul_into(a: Tensor, b: Tensor, out: Tensor) -> None:
    """``out[...] = a @ b`` (broadcast); numpy on the CPU (its small batched products beat torch's), torch elsewhere."""
    if frames.on_numpy(out):
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    else:
        torch.matmul(a, b, out=out)


def projection_spectra(filters: Tensor, own: Tensor, n_fft: int, nchan: int, all_pairs: bool) -> Tensor:
    """Frequency responses of the distortion filters.

    Args:
        filters, own: (B, L, m, m) from :func:`unmix.evaluate._toeplitz.solve_filters` (``own`` with only its
            diagonal blocks used unless ``all_pairs``).
        n_fft: transform size of the window spectra.
        nchan: number of channels.
        all_pairs: projections of every estimate on every reference source (the permutation search).

    Returns:
        (B, 1 + J, m, m, nb_bins) projection matrices, ``J = nsrc`` if ``all_pairs`` else 1 (see the module doc).
    """
    nb, L, m, _ = own.shape
    nsrc, nbins = m // nchan, n_fft // 2 + 1
    groups = 1 + (nsrc if all_pairs else 1)
    out = frames.empty((nb, groups, m, m, nbins), torch.complex128, own.device, zero=True)
    frames.rfft_into(filters.permute(0, 2, 3, 1), out[:, 0], n_fft)
    if all_pairs:  # group 1 + j: the rows of reference source j
        for j in range(nsrc):
            rows = slice(j * nchan, (j + 1) * nchan)
            frames.rfft_into(own[:, :, rows].permute(0, 2, 3, 1), out[:, 1 + j, rows], n_fft)
    else:  # group 1: the (j, j) blocks, one transform of their diagonal
        blocks = own.view(nb, L, nsrc, nchan, nsrc, nchan).diagonal(dim1=2, dim2=4).permute(0, 4, 2, 3, 1)
        target = out[:, 1].view(nb, nsrc, nchan, nsrc, nchan, nbins).diagonal(dim1=1, dim2=3)
        frames.rfft_into(blocks, target.permute(0, 4, 1, 2, 3), n_fft)
    return out


def window_energies(
    spec: Tensor, proj: Tensor, nchan: int, all_pairs: bool, sources: bool, windows: Tensor | None = None
) -> Tensor:
    """Energies of the projections and errors on a group of windows, via Parseval.

    Args:
        spec: (nb_bins, nb_windows, 2, m) window spectra, references then estimates.
        proj: (B, 1 + J, m, m, nb_bins) from :func:`projection_spectra`: ``B = 1`` (global filters) or
            ``nb_windows`` (one set per window).
        nchan: number of channels.
        all_pairs: score every (reference j, estimate k) pair, ordered ``j * nsrc + k``; else the pairs (j, j).
        sources: ``bsseval_sources_version``.
        windows: indices of the windows to score (default: all); the others are skipped (silent windows, whose
            scores are NaN anyway). Each block of bins gathers the selected windows into a small buffer.

    The common case (stereo, global filters, no permutation search) runs in the compiled kernel of
    :mod:`unmix.evaluate._native` where it is built: one pass over the spectra instead of a product and four
    element-wise passes per block of bins.

    Returns:
        (5, nb_windows, nb_pairs), or (5, len(windows), nb_pairs): ``|Pj|^2, |P|^2, |P - Pj|^2, |e - P|^2`` and
        ``|Pj - s|^2`` (or ``|e - Pj|^2``).
    """
    nbins, nwin, _, m = spec.shape
    if frames.on_numpy(spec) and proj.shape[0] == 1 and not all_pairs and nchan == 2:
        weights = frames.parseval_weights(2 * (nbins - 1), spec.device).numpy()
        selected = np.arange(nwin, dtype=np.int64) if windows is None else windows.numpy()
        energies = _native.window_energies(
            spec.numpy(), proj[0, 0].numpy(), proj[0, 1].numpy(), weights, selected, sources
        )
        if energies is not None:
            return torch.from_numpy(energies)
    if windows is not None:
        nwin = len(windows)
        if proj.shape[0] > 1:  # one set of filters per window
            proj = proj[windows]
    nb, groups = proj.shape[:2]
    J, nsrc = groups - 1, m // nchan
    weights = frames.parseval_weights(2 * (nbins - 1), spec.device)
    blocks = frames.bin_blocks(nbins, nwin * m * (2 + 2 * groups + J) + nb * groups * m * m, BLOCK_VALUES)
    size = blocks[0].stop
    # per block: projections [P, Pj...] and errors [e - P, P - Pj..., Pj - s... (or e - Pj...)]
    q_buf = torch.empty((size, groups, nwin, m), dtype=spec.dtype, device=spec.device)
    err_buf = torch.empty((size, 1 + 2 * J, nwin, m), dtype=spec.dtype, device=spec.device)
    acc_q = spec.new_zeros(groups * nwin * m * 2, dtype=torch.float64)
    acc_err = spec.new_zeros((1 + 2 * J) * nwin * m * 2, dtype=torch.float64)
    if windows is not None:
        picked = torch.empty((size, nwin, 2, m), dtype=spec.dtype, device=spec.device)
    for b in blocks:
        n = b.stop - b.start
        x = spec[b]
        if windows is not None:
            x = torch.index_select(x, 1, windows, out=picked[:n])
        s, e = x[:, :, 0], x[:, :, 1]  # (n, w, m)
        g = proj[..., b].permute(4, 0, 1, 2, 3).contiguous()  # (n, B, 1 + J, m, m)
        q, err = q_buf[:n], err_buf[:n]
        if nb == 1:
            _matmul_into(s[:, None], g[:, 0], q)
        else:
            q.copy_((s[:, :, None, None, :] @ g).squeeze(-2).transpose(1, 2))
        p, pj = q[:, :1], q[:, 1:]
        torch.sub(e, q[:, 0], out=err[:, 0])
        torch.sub(p, pj, out=err[:, 1 : 1 + J])
        if all_pairs:  # estimate k's channels against reference j's (broadcast over k)
            pj_k = pj.view(n, J, nwin, nsrc, nchan)
            target = err[:, 1 + J :].view(n, J, nwin, nsrc, nchan)
            if sources:
                torch.sub(e.view(n, 1, nwin, nsrc, nchan), pj_k, out=target)
            else:
                torch.sub(pj_k, s.view(n, nwin, nsrc, 1, nchan).transpose(1, 2), out=target)
        elif sources:
            torch.sub(e, q[:, 1], out=err[:, 2])
        else:
            torch.sub(q[:, 1], s, out=err[:, 2])
        for acc, terms in ((acc_q, q), (acc_err, err)):
            power = torch.view_as_real(terms).reshape(n, -1)
            power.square_()
            acc += weights[b] @ power
    e_q = acc_q.view(groups, nwin, nsrc, nchan, 2).sum((-1, -2))  # (1 + J, w, nsrc)
    e_err = acc_err.view(1 + 2 * J, nwin, nsrc, nchan, 2).sum((-1, -2))
    if not all_pairs:
        return torch.stack([e_q[1], e_q[0], e_err[1], e_err[0], e_err[2]])
    terms = [e_q[1:], e_q[0].expand(J, -1, -1), e_err[1 : 1 + J], e_err[0].expand(J, -1, -1), e_err[1 + J :]]
    return torch.stack(terms).permute(0, 2, 1, 3).reshape(5, nwin, J * nsrc)
