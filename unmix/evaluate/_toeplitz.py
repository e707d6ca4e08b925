"""Solving BSSEval's normal equations: symmetric positive definite block-Toeplitz systems.

The Gram matrix of the delayed references, ordered (lag, signal), is block Toeplitz: block ``(a, b)`` is ``R(a - b)``
with ``R(d)[p, q] = sum_t x_p(t) x_q(t + d)`` and ``R(-d) = R(d)^T``. Three solvers are tried in turn until one meets
the accuracy of a backward-stable solver (normalised residual ``|T X - Y|_F / (|T|_F |X|_F) <= 1e-11``):

1. preconditioned conjugate gradients (T. Chan's block-circulant preconditioner, products by FFT), batched over all
   systems (torch FFTs; on the CPU the per-bin matrix products in numpy): a few iterations for well-conditioned
   signals (skipped for systems whose circulant embedding is nearly singular, where they cannot reach the accuracy);
2. a block Levinson recursion, ``O(L^2 m^3)`` for L taps and m signals, weakly stable, for ill-conditioned systems
   (real music is band-limited and quantised), batched over the systems. It is a long chain of small products, so it
   runs in C where the optional kernels are built (``unmix/evaluate/_levinson.c``, about twice as fast at m = 8 and
   seven times at m = 2), else in numpy on the CPU (the long updates of m >= 4 signals in torch's accumulating
   products);
3. a dense LU solve of the ``L m x L m`` system, museval's own method, if both fail.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from unmix.evaluate import _frames as frames
from unmix.evaluate import _native

logger = logging.getLogger(__name__)

#: museval adds ``eps * I`` to every Gram matrix before solving.
EPS = float(np.finfo(float).eps)
#: Largest accepted ``|T X - Y|_F / (|T|_F |X|_F)``.
RESIDUAL_TOLERANCE = 1e-11
#: Conjugate-gradient iterations tried before the Levinson recursion (well-conditioned systems converge in 5 to 15).
CG_ITERATIONS = 20
#: Conjugate gradients are skipped (straight to Levinson) for a system whose block-circulant embedding has an
#: eigenvalue below this fraction of its largest: band-limited or quantised signals, where they cannot converge.
CG_MIN_EIGEN_RATIO = 1e-4


def _frobenius(R: Tensor) -> Tensor:
    """(..., L, m, m) blocks -> (...,) Frobenius norm of the block-Toeplitz matrix."""
    L = R.shape[-3]
    counts = torch.cat([R.new_full((1,), float(L)), 2.0 * torch.arange(L - 1, 0, -1, dtype=R.dtype, device=R.device)])
    return (R.square().sum((-1, -2)) * counts).sum(-1).sqrt()


def _circulant_spectra(R: Tensor) -> Tensor:
    """(..., L, m, m) -> (..., L + 1, m, m): spectra of the 2L-periodic block-circulant embedding of ``T``."""
    circ = torch.cat([R, torch.zeros_like(R[..., :1, :, :]), R[..., 1:, :, :].flip(-3).transpose(-1, -2)], -3)
    return torch.fft.rfft(circ, dim=-3)


def _bin_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Per-bin ``a @ b`` of (..., nb_bins, m, m) and (..., nb_bins, m, k) spectra: numpy's per-matrix BLAS calls on
    the CPU for m >= 4 (half the time of torch's complex batched product there), torch otherwise."""
    if a.shape[-1] >= 4 and frames.on_numpy(a):
        return frames.matmul(a, b)
    return a @ b


def toeplitz_matmul(spectra: Tensor, X: Tensor) -> Tensor:
    """``T X`` for (..., L, m, k) ``X``, from :func:`_circulant_spectra` of ``T``."""
    L = X.shape[-3]
    return torch.fft.irfft(_bin_matmul(spectra, torch.fft.rfft(X, n=2 * L, dim=-3)), n=2 * L, dim=-3)[..., :L, :, :]


def _residual_ok(spectra: Tensor, norm_t: Tensor, X: Tensor, Y: Tensor) -> Tensor:
    """(...,) True where ``X`` solves ``T X = Y`` to the accuracy of a backward-stable solver."""
    residual = torch.linalg.vector_norm(toeplitz_matmul(spectra, X) - Y, dim=(-1, -2, -3))
    bound = RESIDUAL_TOLERANCE * norm_t * torch.linalg.vector_norm(X, dim=(-1, -2, -3))
    return torch.isfinite(residual) & ((residual <= bound) | (Y == 0).flatten(-3).all(-1))


def conjugate_gradient(R: Tensor, Y: Tensor, iterations: int | None = None) -> Tensor:
    """Preconditioned conjugate gradients for ``T X = Y``, batched, every column independently.

    Args:
        R: (..., L, m, m) blocks of symmetric positive definite block-Toeplitz matrices.
        Y: (..., L, m, k) right-hand sides.
        iterations: maximum number of iterations (default :data:`CG_ITERATIONS`).

    Returns:
        (..., L, m, k) approximate solutions (check them with the residual).
    """
    L = R.shape[-3]
    iterations = CG_ITERATIONS if iterations is None else iterations
    spectra = _circulant_spectra(R)
    lag = torch.arange(L, dtype=R.dtype, device=R.device)[:, None, None]
    wrapped = torch.cat([torch.zeros_like(R[..., :1, :, :]), R[..., 1:, :, :].flip(-3).transpose(-1, -2)], -3)
    chan = ((L - lag) * R + lag * wrapped) / L  # T. Chan's optimal block circulant: first block column
    inverse = torch.linalg.inv(torch.fft.rfft(chan, dim=-3))  # Hermitian positive definite per bin

    def precondition(v: Tensor) -> Tensor:
        return torch.fft.irfft(_bin_matmul(inverse, torch.fft.rfft(v, dim=-3)), n=L, dim=-3)

    def dot(a: Tensor, b: Tensor) -> Tensor:
        return (a * b).sum((-2, -3), keepdim=True)  # (..., 1, 1, k)

    X = precondition(Y)
    r = Y - toeplitz_matmul(spectra, X)
    z = precondition(r)
    p = z.clone()
    rz = dot(r, z)
    target = (RESIDUAL_TOLERANCE / 10) ** 2 * dot(Y, Y)
    for _ in range(iterations):
        q = toeplitz_matmul(spectra, p)
        pq = dot(p, q)
        alpha = torch.where(pq > 0, rz / pq, torch.zeros_like(pq))
        X = X + alpha * p
        r = r - alpha * q
        if bool((dot(r, r) <= target).all()):
            break
        z = precondition(r)
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz, torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    return X


def _inverse_or_nan(a: np.ndarray) -> np.ndarray:
    """Batched matrix inverse; an exactly singular matrix gives NaN (its system then goes to the dense solver)."""
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        flat = a.reshape((-1,) + a.shape[-2:])
        out = np.full_like(flat, np.nan)
        for i, matrix in enumerate(flat):
            try:
                out[i] = np.linalg.inv(matrix)
            except np.linalg.LinAlgError:
                pass
        return out.reshape(a.shape)


#: From this many signals on, the forward-predictor and solution updates accumulate in torch's products
#: (``C += A B``, one BLAS call; numpy's product plus in-place addition take about twice as long at m = 8); below,
#: numpy's lower per-call cost wins.
ACCUMULATE_MIN_SIGNALS = 4


def block_levinson(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Solve ``T X = Y`` for symmetric positive definite block-Toeplitz ``T`` given by ``R`` (numpy, CPU), batched.

    Args:
        R: (..., L, m, m) blocks ``R(d)``, ``d = 0 .. L-1``; ``T[a, b] = R(a - b)``, ``R(-d) = R(d)^T``.
        Y: (..., L, m, k) right-hand sides (same leading batch dimensions as ``R``).

    Returns:
        (..., L, m, k) solutions (a system whose recursion broke down is non-finite).
    """
    batch = R.shape[:-3]
    L, m, _ = R.shape[-3:]
    k = Y.shape[-1]
    R = R.reshape(-1, L, m, m)
    nb = len(R)
    compiled = _native.block_levinson(R, Y.reshape(nb, L, m, k))
    if compiled is not None:
        return compiled.reshape(*batch, L, m, k)
    rhs = Y.reshape(nb, L * m, k)
    # Everything long is stored transposed, so that the updates run along contiguous rows of n*m values:
    # rev_t[:, i*m:(i+1)*m] = R(L-1-i)^T: the row [R(n), ..., R(1)] is the slice starting at block L-1-n;
    # ax_t = [A | -x]^T: forward predictor A_n (blocks 0..n-1, A_n[0] = I) and the negated solution;
    # bb_t = (-B)^T: negated backward predictor B_n (blocks 0..n-1, B_n[n-1] = I), right-aligned (block i at
    # column (L-n+i)*m). With these signs every update is the addition of a product, into preallocated buffers.
    rev_t = np.ascontiguousarray(R[:, :0:-1].transpose(0, 1, 3, 2)).reshape(nb, (L - 1) * m, m)
    ax_t = np.zeros((nb, m + k, L * m))
    ax_t[:, :m, :m] = np.eye(m)
    a_t, negx_t = ax_t[:, :m], ax_t[:, m:]
    bb_t = np.zeros((nb, m, L * m))
    bb_t[:, :, (L - 1) * m :] = -np.eye(m)
    err = np.stack([R[:, 0], R[:, 0]])  # forward and backward prediction error covariances
    inv = _inverse_or_nan(err)
    negx_t[:, :, :m] = -(inv[1] @ rhs[:, :m]).transpose(0, 2, 1)
    # prod[1] = [sum_a R(n-a) A[a] | -sum_a R(n-a) x[a]]^T; mismatch = [df, df^T]: the forward mismatch (a copy of
    # the transpose) stacked with the backward one, so that both reflection coefficients [kf, kb] and both error
    # corrections take one product each
    prod = np.empty((2, nb, m + k, m))
    prod_t, mismatch = prod[1], prod[:, :, :m]
    df, dft, neg_theta = mismatch[0], mismatch[1], prod_t[:, m:].transpose(0, 2, 1)
    refl = np.empty((2, nb, m, m))  # [kf, kb]
    kf_t, kb_t = refl[0].transpose(0, 2, 1), refl[1].transpose(0, 2, 1)
    g_t = np.empty((nb, k, m))
    g = g_t.transpose(0, 2, 1)
    corr = np.empty((2, nb, m, m))
    resid = np.empty((nb, m, k))
    upd = np.empty((2, nb, m, (L - 1) * m))
    upd_x = np.empty((nb, k, L * m))
    accumulate = m >= ACCUMULATE_MIN_SIGNALS
    if accumulate:  # torch views (shared memory) for the accumulating products
        ta, tx, tb = torch.from_numpy(a_t), torch.from_numpy(negx_t), torch.from_numpy(bb_t)
        tkf, tg = torch.from_numpy(refl)[0].transpose(1, 2), torch.from_numpy(g_t)
        if nb == 1:  # plain matrix products (torch's batched ones cost more per call)
            ta, tx, tb, tkf, tg = ta[0], tx[0], tb[0], tkf[0], tg[0]
        accumulate_ = torch.Tensor.addmm_ if nb == 1 else torch.Tensor.baddbmm_
    ok = np.ones(nb, dtype=bool)
    with np.errstate(all="ignore"):
        for n in range(1, L):
            nm = n * m
            np.matmul(ax_t[:, :, :nm], rev_t[:, (L - 1 - n) * m :], out=prod_t)
            np.copyto(df, dft.transpose(0, 2, 1))
            np.matmul(inv[::-1], mismatch, out=refl)  # reflection coefficients kf = Pb^-1 df, kb = Pf^-1 df^T
            np.matmul(mismatch[::-1], refl, out=corr)  # [df^T kf, df kb]
            err -= corr
            inv = _inverse_or_nan(err)
            np.add(rhs[:, nm : nm + m], neg_theta, out=resid)
            np.matmul(inv[1], resid, out=g)
            # A_{n+1} = [A_n; 0] - [0; B_n] kf,  B_{n+1} = [0; B_n] - [A_n; 0] kb,  x_{n+1} = [x_n; 0] + B_{n+1} g
            # (A and B read each other's old values: B's product first, A's added in place, then B's)
            from_b, from_a = upd[0, :, :, :nm], upd[1, :, :, :nm]
            np.matmul(kb_t, a_t[:, :, :nm], out=from_a)
            if accumulate:
                accumulate_(ta[..., m : nm + m], tkf, tb[..., (L - n) * m :])
                bb_t[:, :, (L - n - 1) * m : (L - 1) * m] += from_a
                accumulate_(tx[..., : nm + m], tg, tb[..., (L - n - 1) * m :])
            else:
                np.matmul(kf_t, bb_t[:, :, (L - n) * m :], out=from_b)
                a_t[:, :, m : nm + m] += from_b
                bb_t[:, :, (L - n - 1) * m : (L - 1) * m] += from_a
                from_x = upd_x[:, :, : nm + m]
                np.matmul(g_t, bb_t[:, :, (L - n - 1) * m :], out=from_x)
                negx_t[:, :, : nm + m] += from_x
            if n % 64 == 0:
                ok &= np.isfinite(inv[1]).all((-1, -2))
                if not ok.any():
                    break
    out = -ax_t[:, m:].transpose(0, 2, 1).reshape(nb, L, m, k)
    out[~(ok & np.isfinite(out).all((-1, -2, -3)))] = np.nan
    return out.reshape(*batch, L, m, k)


def dense_toeplitz(R: np.ndarray) -> np.ndarray:
    """The dense (L*m, L*m) matrix ``T`` of :func:`block_levinson` (one system, no batch)."""
    L, m, _ = R.shape
    lag = np.arange(L)[:, None] - np.arange(L)[None, :]
    blocks = np.where((lag >= 0)[..., None, None], R[np.abs(lag)], R[np.abs(lag)].transpose(0, 1, 3, 2))
    return blocks.transpose(0, 2, 1, 3).reshape(L * m, L * m)


def _dense_solve(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Dense LU solves of a batch (..., L, m, m) of systems (museval's method), least squares if singular."""
    L, m, _ = R.shape[-3:]
    Rs, Ys = R.reshape(-1, L, m, m), Y.reshape(-1, L * m, Y.shape[-1])
    out = np.empty_like(Ys)
    for i, (r, rhs) in enumerate(zip(Rs, Ys)):
        T = dense_toeplitz(r)
        try:
            out[i] = np.linalg.solve(T, rhs)
        except np.linalg.LinAlgError:  # museval's fallback too
            out[i] = np.linalg.lstsq(T, rhs, rcond=None)[0]
    return out.reshape(Y.shape)


def solve_block_toeplitz(R: Tensor, Y: Tensor) -> Tensor:
    """Solve the batch of systems ``T X = Y``: conjugate gradients, then Levinson, then dense LU where needed.

    The systems that conjugate gradients leave inaccurate go to one batched Levinson call, those that it leaves
    inaccurate to one dense call.

    Args:
        R: (S, L, m, m) blocks of S symmetric positive definite block-Toeplitz matrices (float64).
        Y: (S, L, m, k) right-hand sides.

    Returns:
        (S, L, m, k) solutions, on the device of ``R``.
    """
    spectra = _circulant_spectra(R)
    norm_t = _frobenius(R)
    eig = torch.linalg.eigvalsh(spectra)  # (S, L + 1, m): the circulant embedding's spectrum, a proxy for T's
    conditioned = eig.amin((-1, -2)) > CG_MIN_EIGEN_RATIO * eig.amax((-1, -2))
    X = torch.zeros_like(Y)
    ok = torch.zeros(len(Y), dtype=torch.bool, device=Y.device)
    if bool(conditioned.any()):
        tried = conditioned.nonzero().flatten()
        X[tried] = conjugate_gradient(R[tried], Y[tried])
        ok[tried] = _residual_ok(spectra[tried], norm_t[tried], X[tried], Y[tried])
    bad = (~ok).nonzero().flatten()
    if len(bad):
        R_np, Y_np = R[bad].cpu().numpy(), Y[bad].cpu().numpy()
        sol = torch.from_numpy(block_levinson(R_np, Y_np)).to(R.device)
        ok = _residual_ok(spectra[bad], norm_t[bad], sol, Y[bad])
        X[bad] = sol
        redo = (~ok).nonzero().flatten()
        if len(redo):
            size = Y_np[0].size // Y_np.shape[-1]
            logger.info("Levinson recursion not accurate enough; solving %d x %d system(s) densely", size, size)
            idx = redo.cpu().numpy()
            X[bad[redo]] = torch.from_numpy(_dense_solve(R_np[idx], Y_np[idx])).to(R.device)
    return X


def solve_filters(corr: Tensor, nsrc: int, nchan: int, own_only: bool = False) -> tuple[Tensor, Tensor]:
    """Distortion filters from lag correlations.

    Args:
        corr: (B, m, 2m, L) with ``corr[b, p, q, d] = sum_t x_p(t) x_q(t + d)``, ``m = nsrc * nchan``; signals
            ``0 .. m-1`` are the references (source-major), ``m .. 2m-1`` the estimates.
        nsrc, nchan: numbers of sources and channels.
        own_only: solve the per-source systems only for the channels of the same estimate source (the rest of
            ``own`` is then zero): all that is needed without the permutation search.

    Returns:
        ``(filters, own)``, each (B, L, m, m): ``filters[b, d, p, r]`` is the tap ``d`` from reference signal ``p``
        to estimate signal ``r`` of the projection of each estimate on all references; ``own`` the same for the
        projection on a single reference source (non-zero only where ``p`` belongs to that source).
    """
    B, m = corr.shape[:2]
    L = corr.shape[-1]
    R = corr[:, :, :m].permute(0, 3, 1, 2).contiguous()  # (B, L, m, m)
    R[:, 0] += EPS * torch.eye(m, dtype=R.dtype, device=R.device)
    Y = corr[:, :, m:].permute(0, 3, 1, 2).contiguous()  # (B, L, m, m): lags of reference p against estimate r
    filters = solve_block_toeplitz(R, Y)
    # the per-source system is block diagonal: one (nchan x nchan)-block system per reference source
    per = R.view(B, L, nsrc, nchan, nsrc, nchan).diagonal(dim1=2, dim2=4)  # (B, L, nchan, nchan, nsrc)
    per = per.permute(0, 4, 1, 2, 3).reshape(B * nsrc, L, nchan, nchan)
    blocks = Y.view(B, L, nsrc, nchan, nsrc, nchan)
    if own_only:  # rows and columns of source j
        rhs = blocks.diagonal(dim1=2, dim2=4).permute(0, 4, 1, 2, 3).reshape(B * nsrc, L, nchan, nchan)
    else:  # rows of source j, every estimate's columns
        rhs = blocks.permute(0, 2, 1, 3, 4, 5).reshape(B * nsrc, L, nchan, m)
    sol = solve_block_toeplitz(per.contiguous(), rhs.contiguous())
    if own_only:
        own = torch.zeros_like(Y)
        target = own.view(B, L, nsrc, nchan, nsrc, nchan).diagonal(dim1=2, dim2=4)  # (B, L, nchan, nchan, nsrc)
        target.copy_(sol.view(B, nsrc, L, nchan, nchan).permute(0, 2, 3, 4, 1))
    else:  # rows of reference source j: its own system's solution
        own = sol.view(B, nsrc, L, nchan, m).permute(0, 2, 1, 3, 4).reshape(B, L, m, m)
    return filters, own
