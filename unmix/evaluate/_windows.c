/*
 * Windows of BSSEval's signals in C (see fill, _silent and spectra in _frames.py, which compute the same in numpy):
 * one pass over the input per window cuts the references and estimates into zero-padded float64 rows, tests the
 * window for silence and sums the time-domain energies, instead of a strided copy and three further passes.
 */
#include <stdint.h>
#include <string.h>

#include "_kernels.h"

/* rows (nchan, n_fft) <- samples [start, start + length) of one source of x ((nsampl, nchan) rows, float32 or
 * float64), zero-padded */
INLINE void cut(const void *x, int f32, int64_t nchan, int64_t start, int64_t length, int64_t n_fft, double *rows)
{
    if (nchan == 2) {
        double *r0 = rows, *r1 = rows + n_fft;
        if (f32) {
            const float *src = (const float *)x + start * 2;
            for (int64_t t = 0; t < length; t++) {
                r0[t] = src[2 * t];
                r1[t] = src[2 * t + 1];
            }
        } else {
            const double *src = (const double *)x + start * 2;
            for (int64_t t = 0; t < length; t++) {
                r0[t] = src[2 * t];
                r1[t] = src[2 * t + 1];
            }
        }
    } else {
        for (int64_t c = 0; c < nchan; c++) {
            double *r = rows + c * n_fft;
            if (f32) {
                const float *src = (const float *)x + start * nchan + c;
                for (int64_t t = 0; t < length; t++)
                    r[t] = src[t * nchan];
            } else {
                const double *src = (const double *)x + start * nchan + c;
                for (int64_t t = 0; t < length; t++)
                    r[t] = src[t * nchan];
            }
        }
    }
    for (int64_t c = 0; c < nchan; c++)
        memset(rows + c * n_fft + length, 0, sizeof(double) * (n_fft - length));
}

/* whether the channel sum (added left to right) of rows (nchan, n_fft) is non-zero at some sample of [0, length) */
INLINE int heard(const double *rows, int64_t nchan, int64_t length, int64_t n_fft)
{
    for (int64_t t = 0; t < length; t++) {
        double sum = rows[t];
        for (int64_t c = 1; c < nchan; c++)
            sum += rows[c * n_fft + t];
        if (sum != 0.0)
            return 1;
    }
    return 0;
}

/* ref, est: (nsrc, nsampl, nchan) C-contiguous, float32 if f32 else float64; starts, lengths: (nb,) windows;
 * out: (nb, 2, nsrc, nchan, n_fft) float64 rows, references then estimates, zero-padded; silent: (nb,) 1 where a
 * reference or an estimate has a zero channel sum over the whole window (museval's test); squares, errors: (nb,
 * npairs) |s|^2 of reference pairs[i] and |e - s|^2 with estimate pairs[npairs + i], over channels and samples.
 * Returns 0, or -1 if a window lies outside the signals or is longer than n_fft. */
CLONES int unmix_fill_windows(const void *ref, const void *est, int f32, int64_t nsrc, int64_t nsampl, int64_t nchan,
                              const int64_t *starts, const int64_t *lengths, int64_t nb, int64_t n_fft,
                              const int64_t *pairs, int64_t npairs, double *out, uint8_t *silent, double *squares,
                              double *errors)
{
    const int64_t item = f32 ? sizeof(float) : sizeof(double);
    for (int64_t w = 0; w < nb; w++)
        if (starts[w] < 0 || lengths[w] < 0 || starts[w] + lengths[w] > nsampl || lengths[w] > n_fft)
            return -1;
    for (int64_t i = 0; i < 2 * npairs; i++)
        if (pairs[i] < 0 || pairs[i] >= nsrc)
            return -1;
    const int64_t per_signal = nchan * n_fft, per_window = 2 * nsrc * per_signal;
    for (int64_t w = 0; w < nb; w++) {
        double *rows = out + w * per_window;
        const int64_t length = lengths[w];
        int quiet = 0;
        for (int64_t k = 0; k < 2; k++) {
            const char *x = (const char *)(k ? est : ref);
            for (int64_t j = 0; j < nsrc; j++) {
                double *r = rows + (k * nsrc + j) * per_signal;
                cut(x + j * nsampl * nchan * item, f32, nchan, starts[w], length, n_fft, r);
                if (!quiet && !heard(r, nchan, length, n_fft))
                    quiet = 1;
            }
        }
        silent[w] = (uint8_t)quiet;
        for (int64_t i = 0; i < npairs; i++) {
            const double *s = rows + pairs[i] * per_signal, *e = rows + (nsrc + pairs[npairs + i]) * per_signal;
            v4d ss[2] = {{0}}, dd[2] = {{0}}; /* two accumulators each: independent chains of additions */
            double ss1 = 0.0, dd1 = 0.0;
            for (int64_t c = 0; c < nchan; c++) {
                const double *sc = s + c * n_fft, *ec = e + c * n_fft;
                int64_t t = 0;
                for (; t + 8 <= length; t += 8)
                    for (int64_t h = 0; h < 2; h++) {
                        const v4d a = load4(sc + t + 4 * h), d = load4(ec + t + 4 * h) - a;
                        ss[h] += a * a;
                        dd[h] += d * d;
                    }
                for (; t < length; t++) {
                    const double a = sc[t], d = ec[t] - a;
                    ss1 += a * a;
                    dd1 += d * d;
                }
            }
            const v4d sv = ss[0] + ss[1], dv = dd[0] + dd[1];
            squares[w * npairs + i] = ((sv[0] + sv[1]) + (sv[2] + sv[3])) + ss1;
            errors[w * npairs + i] = ((dv[0] + dv[1]) + (dv[2] + dv[3])) + dd1;
        }
    }
    return 0;
}
