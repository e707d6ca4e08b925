"""Solving BSSEval's normal equations: symmetric positive definite block-Toeplitz systems.

The Gram matrix of the delayed references, ordered (lag, signal), is block Toeplitz: block ``(a, b)`` is ``R(a - b)``
with ``R(d)[p, q] = sum_t x_p(t) x_q(t + d)`` and ``R(-d) = R(d)^T``. Three solvers are tried in turn until one meets
the accuracy of a backward-stable solver (normalised residual ``|T X - Y|_F / (|T|_F |X|_F) <= 1e-11``):

1. preconditioned conjugate gradients (T. Chan's block-circulant preconditioner, products by FFT), batched over all
   systems (torch FFTs; on the CPU the per-bin matrix products in numpy): a few iterations for well-conditioned
   signals (skipped for systems whose circulant embedding is nearly singular, where they cannot reach the accuracy);
2. for ill-conditioned systems (real music is band-limited and quantised), batched over the systems: the block
   Levinson recursion for the forward and backward predictors, ``O(L^2 m^3)`` for L taps and m signals, then the
   solution from the Gohberg-Semencul formula (FFTs, ``O(m^2 k L log L)`` for k right-hand sides) and iterative
   refinement. The recursion is a long chain of small products, so it runs in numpy on the CPU;
3. a dense LU solve of the ``L m x L m`` system, museval's own method, if both fail.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from unmix.evaluate import _frames as frames

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


def _predictors(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block Levinson recursion for the forward and backward predictors of ``T`` (numpy, CPU), batched.

    Args:
        R: (nb, L, m, m) blocks ``R(d)``; ``T[a, b] = R(a - b)``, ``R(-d) = R(d)^T``.

    Returns:
        ``(a_t, bb_t, inv)``: ``a_t`` (nb, m, L*m), the forward predictor transposed (block ``i`` at columns
        ``i*m .. (i+1)*m`` holds ``A[i]^T``; ``A[0] = I``, ``T A = [Pf, 0, ..., 0]``); ``bb_t`` (nb, m, L*m), the
        negated backward predictor transposed (``-B[i]^T``; ``B[L-1] = I``, ``T B = [0, ..., 0, Pb]``); ``inv``
        (2, nb, m, m), ``[Pf^-1, Pb^-1]``. A system whose recursion broke down has non-finite values.
    """
    nb, L, m, _ = R.shape
    # Stored transposed, so that the updates run along contiguous rows of n*m values:
    # rev_t[:, i*m:(i+1)*m] = R(L-1-i)^T: the row [R(n), ..., R(1)] is the slice starting at block L-1-n;
    # bb_t is right-aligned while the recursion runs (block i of B_n at column (L-n+i)*m). With these signs every
    # update is the addition of a product, into preallocated buffers.
    rev_t = np.ascontiguousarray(R[:, :0:-1].transpose(0, 1, 3, 2)).reshape(nb, (L - 1) * m, m)
    a_t = np.zeros((nb, m, L * m))
    a_t[:, :, :m] = np.eye(m)
    bb_t = np.zeros((nb, m, L * m))
    bb_t[:, :, (L - 1) * m :] = -np.eye(m)
    err = np.stack([R[:, 0], R[:, 0]])  # forward and backward prediction error covariances
    inv = _inverse_or_nan(err)
    # mismatch = [df, df^T]: the forward mismatch sum_a R(n-a) A[a] (a copy of the transpose the product gives)
    # stacked with the backward one, so that both reflection coefficients [kf, kb] and both error corrections take
    # one product each
    mismatch = np.empty((2, nb, m, m))
    df, dft = mismatch[0], mismatch[1]
    refl = np.empty((2, nb, m, m))  # [kf, kb]
    kf_t, kb_t = refl[0].transpose(0, 2, 1), refl[1].transpose(0, 2, 1)
    corr = np.empty((2, nb, m, m))
    upd = np.empty((2, nb, m, (L - 1) * m))
    accumulate = m >= ACCUMULATE_MIN_SIGNALS
    if accumulate:  # torch views (shared memory) for the accumulating product
        ta, tb, tkf = torch.from_numpy(a_t), torch.from_numpy(bb_t), torch.from_numpy(refl)[0].transpose(1, 2)
        if nb == 1:  # a plain matrix product (torch's batched one costs more per call)
            ta, tb, tkf = ta[0], tb[0], tkf[0]
        accumulate_ = torch.Tensor.addmm_ if nb == 1 else torch.Tensor.baddbmm_
    with np.errstate(all="ignore"):
        for n in range(1, L):
            nm = n * m
            np.matmul(a_t[:, :, :nm], rev_t[:, (L - 1 - n) * m :], out=dft)
            np.copyto(df, dft.transpose(0, 2, 1))
            np.matmul(inv[::-1], mismatch, out=refl)  # reflection coefficients kf = Pb^-1 df, kb = Pf^-1 df^T
            np.matmul(mismatch[::-1], refl, out=corr)  # [df^T kf, df kb]
            err -= corr
            inv = _inverse_or_nan(err)
            # A_{n+1} = [A_n; 0] - [0; B_n] kf,  B_{n+1} = [0; B_n] - [A_n; 0] kb
            # (each update reads the other's old values: B's product first, A's added in place, then B's)
            from_b, from_a = upd[0, :, :, :nm], upd[1, :, :, :nm]
            np.matmul(kb_t, a_t[:, :, :nm], out=from_a)
            if accumulate:
                accumulate_(ta[..., m : nm + m], tkf, tb[..., (L - n) * m :])
            else:
                np.matmul(kf_t, bb_t[:, :, (L - n) * m :], out=from_b)
                a_t[:, :, m : nm + m] += from_b
            bb_t[:, :, (L - n - 1) * m : (L - 1) * m] += from_a
    return a_t, bb_t, inv


class _Inverse:
    """``T^-1`` of a batch of symmetric block-Toeplitz matrices, applied by the block Gohberg-Semencul formula.

    With the predictors of :func:`_predictors`, ``T^-1 = L(A) Pf^-1 U(A^T) - L(zB) Pb^-1 U(zB^T)``, where ``L(C)``
    is the lower-triangular block-Toeplitz matrix with first block column ``C``, ``U(C^T)`` its transpose, and
    ``zB = [0, B[0], ..., B[L-2]]``. The four triangular products are convolutions, done by FFTs of length ``2L``:
    ``O(m^2 k L log L)`` for ``k`` right-hand sides instead of the ``O(m^2 k L^2)`` of carrying the solution through
    the recursion. (torch's FFTs: faster than numpy's for these many short transforms; numpy's per-bin products.)
    """

    def __init__(self, R: np.ndarray) -> None:
        nb, L, m, _ = R.shape
        self.L, self.n = L, 2 * L
        a_t, bb_t, inv = _predictors(R)
        lower = np.zeros((2, nb, L, m, m))  # [A, -zB] blocks, transposed
        lower[0] = a_t.reshape(nb, m, L, m).transpose(0, 2, 1, 3)
        lower[1, :, 1:] = bb_t.reshape(nb, m, L, m).transpose(0, 2, 1, 3)[:, :-1]
        spec_t = self._rfft(lower, 2)  # spectra of the transposed blocks
        self.upper = spec_t.conj()  # U(C^T) v is a correlation: conj(spectrum of C^T) times that of v
        # L(C) P^-1 v = L(C P^-1) v: a convolution with the blocks C P^-1, [A Pf^-1, -zB Pb^-1]
        self.lower = spec_t.transpose(0, 1, 2, 4, 3) @ inv[:, :, None]
        # the block-circulant embedding of T, for residuals
        circ = np.concatenate([R, np.zeros_like(R[:, :1]), R[:, :0:-1].transpose(0, 1, 3, 2)], 1)
        self.circulant = self._rfft(circ, 1)

    def _rfft(self, x: np.ndarray, axis: int) -> np.ndarray:
        return torch.fft.rfft(torch.from_numpy(x), n=self.n, dim=axis).numpy()

    def _irfft(self, x: np.ndarray, axis: int) -> np.ndarray:
        return torch.fft.irfft(torch.from_numpy(x), n=self.n, dim=axis).narrow(axis, 0, self.L).numpy()

    def apply(self, Y: np.ndarray) -> np.ndarray:
        """(nb, L, m, k) -> ``T^-1 Y``."""
        u = self._irfft(self.upper @ self._rfft(Y, 1), 2)  # [U(A^T) Y, -U(zB^T) Y]
        v = self._rfft(u, 2)
        out = self.lower[0] @ v[0]
        out -= self.lower[1] @ v[1]  # both terms carry the sign of -B: it cancels
        return self._irfft(out, 1)

    def residual(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``Y - T X`` (nb, L, m, k)."""
        return Y - self._irfft(self.circulant @ self._rfft(X, 1), 1)


#: From this many signals on, the forward-predictor update accumulates in torch's product (``C += A B``, one BLAS
#: call; numpy's product plus in-place addition take about twice as long at m = 8); below, numpy's lower per-call
#: cost wins.
ACCUMULATE_MIN_SIGNALS = 4
#: Iterative-refinement steps after the Gohberg-Semencul solve, at most. The normalised residual after the formula
#: is about 1e-10 to 1e-5 on music (1e-5 where a source's channels are nearly identical, as a centred bass); each
#: step divides it by 30 to 1000.
REFINEMENT_STEPS = 12
#: Refinement stops for a system whose residual shrinks by less than this factor in a step (it is not converging).
REFINEMENT_MIN_GAIN = 2.0


def block_levinson(R: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Solve ``T X = Y`` for symmetric positive definite block-Toeplitz ``T`` given by ``R`` (numpy, CPU), batched.

    The block Levinson recursion gives the predictors of ``T``; the solution follows from the Gohberg-Semencul
    formula (:class:`_Inverse`) and is refined (``X += T^-1 (Y - T X)``, at most :data:`REFINEMENT_STEPS` times,
    while it converges) until its normalised residual ``|T X - Y|_F / (|T|_F |X|_F)`` is at most
    :data:`RESIDUAL_TOLERANCE`.

    Args:
        R: (..., L, m, m) blocks ``R(d)``, ``d = 0 .. L-1``; ``T[a, b] = R(a - b)``, ``R(-d) = R(d)^T``.
        Y: (..., L, m, k) right-hand sides (same leading batch dimensions as ``R``).

    Returns:
        (..., L, m, k) solutions; NaN for a system whose recursion broke down or whose solution stayed inaccurate.
    """
    batch = R.shape[:-3]
    L, m, _ = R.shape[-3:]
    R = R.reshape(-1, L, m, m)
    Y = Y.reshape(len(R), L, m, Y.shape[-1])
    with np.errstate(all="ignore"):
        inverse = _Inverse(R)
        X = inverse.apply(Y)
        norm_t = _frobenius(torch.from_numpy(R)).numpy()
        zero = ~Y.any((1, 2, 3))
        active = np.ones(len(R), dtype=bool)  # still refined
        previous = np.full(len(R), np.inf)
        for step in range(REFINEMENT_STEPS + 1):
            r = inverse.residual(X, Y)
            size = np.sqrt((r * r).sum((1, 2, 3))) / (norm_t * np.sqrt((X * X).sum((1, 2, 3))))
            ok = zero | (size <= RESIDUAL_TOLERANCE)
            active &= ~ok & (size * REFINEMENT_MIN_GAIN <= previous)
            if not active.any() or step == REFINEMENT_STEPS:
                break
            previous = size
            if active.all():
                X += inverse.apply(r)
            else:  # the converged (or stalled) systems keep their solution
                X += np.where(active[:, None, None, None], inverse.apply(r), 0.0)
    X[~(ok & np.isfinite(X).all((1, 2, 3)))] = np.nan
    return X.reshape(*batch, L, m, Y.shape[-1])


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
        ok = torch.isfinite(sol).flatten(1).all(1)  # checked against the residual tolerance there
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
