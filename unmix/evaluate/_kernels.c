/*
 * Optional compiled kernels of unmix.evaluate's BSSEval: the two per-bin passes over the window spectra (the block
 * Levinson recursion is in _levinson.c, the shared definitions in _kernels.h).
 *
 * Both are loops of small complex products that numpy runs as one BLAS call per frequency bin followed by several
 * full passes over the (large) spectra for the subtractions and squares; here each bin is read once and everything
 * is done on it while it is in cache. Called through ctypes by unmix/evaluate/_native.py, which checks shapes,
 * dtypes and contiguity first; the numpy code in _frames.py and _projection.py computes the same quantities (the
 * tests compare them) and is used wherever this library is not built.
 *
 * Complex values are interleaved (re, im) doubles. Vectors of 4 doubles (GCC/Clang vector extensions) hold two
 * complex values: a stereo source in the energy pass, two signals in the cross spectra. On x86-64 Linux with GCC,
 * an AVX2/FMA clone of each entry point is chosen at load time (target_clones); elsewhere the portable build runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>

#include "_kernels.h"

/* bins per tile: the strided (signal, signal, bin) layouts are read or written a tile of bins at a time */
#define TILE 16

/* the version of the entry points' signatures (checked by _native.py before any call) */
int unmix_kernels_abi(void) { return UNMIX_KERNELS_ABI; }

/* ------------------------------------------------------------------------------------------------ cross spectra */

/* One bin: x holds nwin rows of 2m complex signals (references then estimates); out (m, 2m) complex receives
 * sum_w conj(x[w, p]) x[w, q]. conj(a + ib) z = a z + b (-i z): two FMAs per pair of values, with -i z precomputed
 * in xs (nwin * 2m complex). */
INLINE void cross_bin(const double *x, int64_t nwin, int64_t m, double *xs, double *out)
{
    const int64_t row = 4 * m; /* doubles per window row; m vectors */
    for (int64_t k = 0; k < nwin * m; k++)
        store4(xs + 4 * k, times_minus_i(load4(x + 4 * k)));
    for (int64_t p = 0; p < m; p++) {
        v4d acc[MAX_SIGNALS];
        for (int64_t k = 0; k < m; k++)
            acc[k] = (v4d){0, 0, 0, 0};
        for (int64_t w = 0; w < nwin; w++) {
            const double a = x[w * row + 2 * p], b = x[w * row + 2 * p + 1];
            for (int64_t k = 0; k < m; k++) {
                acc[k] += a * load4(x + w * row + 4 * k);
                acc[k] += b * load4(xs + w * row + 4 * k);
            }
        }
        for (int64_t k = 0; k < m; k++)
            store4(out + p * row + 4 * k, acc[k]);
    }
}

INLINE void cross_all(const double *spec, int64_t nbins, int64_t nwin, int64_t m, double *out, double *xs,
                      double *tile)
{
    const int64_t pairs = 2 * m * m;
    for (int64_t f0 = 0; f0 < nbins; f0 += TILE) {
        const int64_t nf = nbins - f0 < TILE ? nbins - f0 : TILE;
        for (int64_t i = 0; i < nf; i++)
            cross_bin(spec + (f0 + i) * nwin * 4 * m, nwin, m, xs, tile + i * pairs * 2);
        for (int64_t k = 0; k < pairs; k++) { /* (bin, pair) -> (pair, bin) */
            double *o = out + (k * nbins + f0) * 2;
            for (int64_t i = 0; i < nf; i++) {
                o[2 * i] = tile[(i * pairs + k) * 2];
                o[2 * i + 1] = tile[(i * pairs + k) * 2 + 1];
            }
        }
    }
}

/* spec: (nbins, nwin, 2m) complex, C-contiguous; out: (m, 2m, nbins) complex.
 * Returns 0, -1 if m is odd or out of [2, MAX_SIGNALS], -2 if memory is short. */
CLONES int unmix_cross_spectra(const double *spec, int64_t nbins, int64_t nwin, int64_t m, double *out)
{
    if (m < 2 || m > MAX_SIGNALS || m % 2)
        return -1;
    double *xs = malloc(sizeof(double) * (nwin * 4 * m + TILE * 4 * m * m));
    if (xs == NULL)
        return -2;
    double *tile = xs + nwin * 4 * m;
    if (m == 8) /* constant sizes: the accumulators stay in registers */
        cross_all(spec, nbins, nwin, 8, out, xs, tile);
    else if (m == 4)
        cross_all(spec, nbins, nwin, 4, out, xs, tile);
    else if (m == 2)
        cross_all(spec, nbins, nwin, 2, out, xs, tile);
    else
        cross_all(spec, nbins, nwin, m, out, xs, tile);
    free(xs);
    return 0;
}

/* --------------------------------------------------------------------------------- window energies (stereo) */

/* Per bin: the projection matrices (times the square root of the bin's weight, so that squares come out weighted) are gathered from their
 * (row, column, bin) layout; then for every selected window, P = s G (all references) and Pj = s Gj (own source, a
 * 2 x 2 block per source), and the five energies per source accumulate in acc (nsel, 5, nsrc) vectors. */
INLINE void energies_all(const double *spec, const double *gp, const double *gj, const double *scales,
                         const int64_t *windows, int64_t nsel, int64_t nbins, int64_t nwin, int64_t nsrc, int sources,
                         v4du *acc, double *tp, double *tj)
{
    const int64_t m = 2 * nsrc, mm = m * m;
    v4d H[MAX_SIGNALS][MAX_SOURCES], Hi[MAX_SIGNALS][MAX_SOURCES], J[MAX_SIGNALS], Ji[MAX_SIGNALS];
    for (int64_t f0 = 0; f0 < nbins; f0 += TILE) {
        const int64_t nf = nbins - f0 < TILE ? nbins - f0 : TILE;
        for (int64_t k = 0; k < mm; k++) { /* gp[p, r, f] -> tp[f, p, r] */
            const double *g = gp + (k * nbins + f0) * 2;
            for (int64_t i = 0; i < nf; i++) {
                tp[(i * mm + k) * 2] = g[2 * i];
                tp[(i * mm + k) * 2 + 1] = g[2 * i + 1];
            }
        }
        for (int64_t p = 0; p < m; p++) /* gj[p, r, f], r in the source of p -> tj[f, p, c] */
            for (int64_t c = 0; c < 2; c++) {
                const double *g = gj + ((p * m + (p / 2) * 2 + c) * nbins + f0) * 2;
                for (int64_t i = 0; i < nf; i++) {
                    tj[((i * m + p) * 2 + c) * 2] = g[2 * i];
                    tj[((i * m + p) * 2 + c) * 2 + 1] = g[2 * i + 1];
                }
            }
        for (int64_t i = 0; i < nf; i++) {
            const double sw = scales[f0 + i];
            for (int64_t p = 0; p < m; p++) {
                for (int64_t k = 0; k < nsrc; k++) {
                    H[p][k] = sw * load4(tp + (i * mm + p * m + 2 * k) * 2);
                    Hi[p][k] = times_i(H[p][k]);
                }
                J[p] = sw * load4(tj + (i * m + p) * 4);
                Ji[p] = times_i(J[p]);
            }
            const double *xf = spec + (f0 + i) * nwin * m * 4;
            for (int64_t t = 0; t < nsel; t++) {
                const double *x = xf + windows[t] * m * 4; /* m reference then m estimate values */
                v4d P[MAX_SOURCES], Q[MAX_SOURCES];
                for (int64_t k = 0; k < nsrc; k++)
                    P[k] = (v4d){0, 0, 0, 0};
                for (int64_t p = 0; p < m; p++) { /* (a + ib) g = a g + b (i g) */
                    const double a = x[2 * p], b = x[2 * p + 1];
                    for (int64_t k = 0; k < nsrc; k++) {
                        P[k] += a * H[p][k];
                        P[k] += b * Hi[p][k];
                    }
                }
                for (int64_t j = 0; j < nsrc; j++) {
                    const double *y = x + 4 * j;
                    Q[j] = y[0] * J[2 * j] + y[1] * Ji[2 * j] + y[2] * J[2 * j + 1] + y[3] * Ji[2 * j + 1];
                }
                v4du *o = acc + t * 5 * nsrc;
                for (int64_t j = 0; j < nsrc; j++) {
                    const v4d s = sw * load4(x + 4 * j), e = sw * load4(x + 4 * (nsrc + j));
                    const v4d sir = P[j] - Q[j], sar = e - P[j], last = sources ? e - Q[j] : Q[j] - s;
                    o[j] += Q[j] * Q[j];
                    o[nsrc + j] += P[j] * P[j];
                    o[2 * nsrc + j] += sir * sir;
                    o[3 * nsrc + j] += sar * sar;
                    o[4 * nsrc + j] += last * last;
                }
            }
        }
    }
}

/* spec: (nbins, nwin, 2, m) complex, m = 2 nsrc (stereo), C-contiguous; gp, gj: (m, m, nbins) complex projection
 * matrices onto all references and onto the own source; scales: (nbins,) square roots of the Parseval weights;
 * windows: (nsel,) indices of the windows to score; sources: bsseval_sources_version; out: (5, nsel, nsrc)
 * energies |Pj|^2, |P|^2, |P - Pj|^2, |e - P|^2, |Pj - s|^2 (|e - Pj|^2 if sources).
 * Returns 0, -1 if nsrc is out of [1, MAX_SOURCES], -2 if memory is short. */
CLONES int unmix_window_energies(const double *spec, const double *gp, const double *gj, const double *scales,
                                 const int64_t *windows, int64_t nsel, int64_t nbins, int64_t nwin, int64_t nsrc,
                                 int sources, double *out)
{
    if (nsrc < 1 || nsrc > MAX_SOURCES)
        return -1;
    const int64_t m = 2 * nsrc;
    double *work = malloc(sizeof(double) * (nsel * 5 * nsrc * 4 + TILE * m * m * 2 + TILE * m * 4));
    if (work == NULL)
        return -2;
    v4du *acc = (v4du *)work;
    double *tp = work + nsel * 5 * nsrc * 4, *tj = tp + TILE * m * m * 2;
    for (int64_t k = 0; k < nsel * 5 * nsrc; k++)
        acc[k] = (v4d){0, 0, 0, 0};
    if (nsrc == 4) /* constant sizes: the products stay in registers */
        energies_all(spec, gp, gj, scales, windows, nsel, nbins, nwin, 4, sources, acc, tp, tj);
    else
        energies_all(spec, gp, gj, scales, windows, nsel, nbins, nwin, nsrc, sources, acc, tp, tj);
    for (int64_t t = 0; t < nsel; t++)
        for (int64_t k = 0; k < 5; k++)
            for (int64_t j = 0; j < nsrc; j++) {
                const v4d v = acc[(t * 5 + k) * nsrc + j];
                out[(k * nsel + t) * nsrc + j] = (v[0] + v[1]) + (v[2] + v[3]);
            }
    free(work);
    return 0;
}

/* ------------------------------------------------------------------------------ Python module (no functions) */

/* The functions above are reached through ctypes; the module exists so that the build and the import machinery
 * treat this file as an ordinary extension (ABI-tagged name, found next to the package). */
static struct PyModuleDef kernels_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "Compiled BSSEval kernels of unmix.evaluate (reached through ctypes).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
