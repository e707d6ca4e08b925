/*
 * Block Levinson recursion of unmix.evaluate's BSSEval in C (see block_levinson in _toeplitz.py, which computes the
 * same in numpy and documents the algebra): solves T X = Y for symmetric positive definite block-Toeplitz T, batched.
 *
 * numpy spends most of its time there in ~14 calls per step (511 steps for 512 taps); here one step is a handful of
 * loops over contiguous rows. Storage is transposed as in the numpy code, so that every long update runs along rows:
 *   at (m, L*m): A^T, the forward predictor (blocks 0..n-1, A[0] = I);
 *   bt (m, L*m): B^T, the backward predictor, right-aligned (block i at column (L-n+i)*m, B[n-1] = I);
 *   xt (k, L*m): X^T, the solution so far;
 *   rev (L-1)*m rows of m: block row i = R(L-1-i)^T, so that [R(n)^T; ...; R(1)^T] starts at block row L-1-n.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"

/* out (r, cols) = a (r, len) @ b (len, cols): a rows of stride lda, b rows contiguous; 4 output rows at a time,
 * held in vectors when cols is a multiple of 4 (up to 8) */
INLINE void gemm_tn(const double *a, int64_t lda, const double *b, int64_t r, int64_t len, int64_t cols, double *out)
{
    for (int64_t i0 = 0; i0 < r; i0 += 4) {
        const int64_t ni = r - i0 < 4 ? r - i0 : 4;
        if (ni == 4 && (cols == 4 || cols == 8)) {
            const int64_t nv = cols / 4;
            const double *a0 = a + i0 * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            v4d acc[4][2] = {{{0}}};
            for (int64_t j = 0; j < len; j++) {
                const double *row = b + j * cols;
                for (int64_t v = 0; v < nv; v++) {
                    const v4d y = load4(row + 4 * v);
                    acc[0][v] += a0[j] * y;
                    acc[1][v] += a1[j] * y;
                    acc[2][v] += a2[j] * y;
                    acc[3][v] += a3[j] * y;
                }
            }
            for (int64_t i = 0; i < 4; i++)
                for (int64_t v = 0; v < nv; v++)
                    store4(out + (i0 + i) * cols + 4 * v, acc[i][v]);
            continue;
        }
        double acc[4][MAX_SIGNALS] = {{0}};
        for (int64_t j = 0; j < len; j++)
            for (int64_t i = 0; i < ni; i++) {
                const double s = a[(i0 + i) * lda + j];
                for (int64_t c = 0; c < cols; c++)
                    acc[i][c] += s * b[j * cols + c];
            }
        for (int64_t i = 0; i < ni; i++)
            for (int64_t c = 0; c < cols; c++)
                out[(i0 + i) * cols + c] = acc[i][c];
    }
}

/* rows (r, len), stride ld: rows += coef (r, q) @ src (q, len), src stride lds */
INLINE void update_rows(double *rows, int64_t ld, const double *coef, const double *src, int64_t lds, int64_t r,
                        int64_t q, int64_t len)
{
    int64_t c = 0;
    for (; c + 4 <= len; c += 4) {
        v4d s[MAX_SIGNALS];
        for (int64_t l = 0; l < q; l++)
            s[l] = load4(src + l * lds + c);
        for (int64_t i = 0; i < r; i++) {
            v4d acc = load4(rows + i * ld + c);
            for (int64_t l = 0; l < q; l++)
                acc += coef[i * q + l] * s[l];
            store4(rows + i * ld + c, acc);
        }
    }
    for (; c < len; c++)
        for (int64_t i = 0; i < r; i++) {
            double acc = rows[i * ld + c];
            for (int64_t l = 0; l < q; l++)
                acc += coef[i * q + l] * src[l * lds + c];
            rows[i * ld + c] = acc;
        }
}

/* out (n, n) = inverse of a (n, n) by Gauss-Jordan elimination with partial pivoting; 0, or -1 if singular */
static int invert(const double *a, int64_t n, double *out)
{
    double w[MAX_SIGNALS * 2 * MAX_SIGNALS];
    const int64_t n2 = 2 * n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            w[i * n2 + j] = a[i * n + j];
            w[i * n2 + n + j] = i == j ? 1.0 : 0.0;
        }
    for (int64_t col = 0; col < n; col++) {
        int64_t piv = col;
        for (int64_t i = col + 1; i < n; i++)
            if (__builtin_fabs(w[i * n2 + col]) > __builtin_fabs(w[piv * n2 + col]))
                piv = i;
        const double p = w[piv * n2 + col];
        if (!(p != 0.0) || p != p) /* zero or NaN pivot */
            return -1;
        if (piv != col)
            for (int64_t j = 0; j < n2; j++) {
                const double t = w[col * n2 + j];
                w[col * n2 + j] = w[piv * n2 + j];
                w[piv * n2 + j] = t;
            }
        const double inv = 1.0 / p;
        for (int64_t j = 0; j < n2; j++)
            w[col * n2 + j] *= inv;
        for (int64_t i = 0; i < n; i++) {
            const double f = w[i * n2 + col];
            if (i == col || f == 0.0)
                continue;
            for (int64_t j = 0; j < n2; j++)
                w[i * n2 + j] -= f * w[col * n2 + j];
        }
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * n, w + i * n2 + n, sizeof(double) * n);
    return 0;
}

/* c (r, q) = a (r, s) @ b (s, q), small dense matrices */
static void matmul(const double *a, const double *b, int64_t r, int64_t s, int64_t q, double *c)
{
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < q; j++) {
            double acc = 0.0;
            for (int64_t l = 0; l < s; l++)
                acc += a[i * s + l] * b[l * q + j];
            c[i * q + j] = acc;
        }
}

static void transpose(const double *a, int64_t r, int64_t q, double *out)
{
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < q; j++)
            out[j * r + i] = a[i * q + j];
}

/* One system. R (L, m, m), Y (L*m, k), X (L*m, k) written. work: see levinson_work. Returns 0 or -1 (breakdown). */
INLINE int levinson_one(const double *R, const double *Y, int64_t L, int64_t m, int64_t k, double *X, double *work)
{
    const int64_t Lm = L * m, mm = m * m;
    double *at = work, *bt = at + m * Lm, *xt = bt + m * Lm, *rev = xt + k * Lm, *from_a = rev + (L - 1) * mm;
    double small[12 * MAX_SIGNALS * MAX_SIGNALS];
    double *pf = small, *pb = pf + mm, *ipf = pb + mm, *ipb = ipf + mm, *dt = ipb + mm, *d = dt + mm, *kf = d + mm,
           *kb = kf + mm, *kft = kb + mm /* -kf^T */, *kbt = kft + mm, *tmp = kbt + mm, *tht = tmp + mm; /* tht: (k, m) */
    double resid[MAX_SIGNALS * MAX_SIGNALS], g[MAX_SIGNALS * MAX_SIGNALS], gt[MAX_SIGNALS * MAX_SIGNALS];
    memset(at, 0, sizeof(double) * (2 * m + k) * Lm);
    for (int64_t i = 0; i < L - 1; i++) /* rev block i = R(L-1-i)^T */
        transpose(R + (L - 1 - i) * mm, m, m, rev + i * mm);
    for (int64_t i = 0; i < m; i++) {
        at[i * Lm + i] = 1.0;
        bt[i * Lm + (L - 1) * m + i] = 1.0;
    }
    memcpy(pf, R, sizeof(double) * mm);
    memcpy(pb, R, sizeof(double) * mm);
    if (invert(pf, m, ipf) || invert(pb, m, ipb))
        return -1;
    matmul(ipb, Y, m, m, k, g); /* x_1 = R(0)^-1 Y[0] */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++)
            xt[j * Lm + i] = g[i * k + j];
    for (int64_t n = 1; n < L; n++) {
        const int64_t nm = n * m;
        const double *rows = rev + (L - 1 - n) * mm; /* [R(n)^T; ...; R(1)^T]: (nm, m) */
        gemm_tn(at, Lm, rows, m, nm, m, dt);    /* D^T = sum_a A[a]^T R(n-a)^T */
        gemm_tn(xt, Lm, rows, k, nm, m, tht);   /* Theta^T = (sum_a R(n-a) x[a])^T */
        transpose(dt, m, m, d);
        matmul(ipb, d, m, m, m, kf);            /* kf = Pb^-1 D */
        matmul(ipf, dt, m, m, m, kb);           /* kb = Pf^-1 D^T */
        matmul(dt, kf, m, m, m, tmp);           /* Pf -= D^T kf */
        for (int64_t i = 0; i < mm; i++)
            pf[i] -= tmp[i];
        matmul(d, kb, m, m, m, tmp);            /* Pb -= D kb */
        for (int64_t i = 0; i < mm; i++)
            pb[i] -= tmp[i];
        if (invert(pf, m, ipf) || invert(pb, m, ipb))
            return -1;
        for (int64_t i = 0; i < m; i++)         /* resid = Y[n] - Theta */
            for (int64_t j = 0; j < k; j++)
                resid[i * k + j] = Y[(nm + i) * k + j] - tht[j * m + i];
        matmul(ipb, resid, m, m, k, g);         /* g = Pb^-1 resid */
        for (int64_t i = 0; i < m; i++) /* -kf^T, kb^T */
            for (int64_t j = 0; j < m; j++) {
                kft[j * m + i] = -kf[i * m + j];
                kbt[j * m + i] = kb[i * m + j];
            }
        transpose(g, m, k, gt);
        /* A_{n+1} = [A; 0] - [0; B] kf, B_{n+1} = [0; B] - [A; 0] kb (both from the old values), x += B_{n+1} g */
        memset(from_a, 0, sizeof(double) * m * nm);
        update_rows(from_a, nm, kbt, at, Lm, m, m, nm);
        update_rows(at + m, Lm, kft, bt + (L - n) * m, Lm, m, m, nm);
        for (int64_t i = 0; i < m; i++) {
            double *dst = bt + i * Lm + (L - n - 1) * m;
            for (int64_t c = 0; c < nm; c++)
                dst[c] -= from_a[i * nm + c];
        }
        update_rows(xt, Lm, gt, bt + (L - n - 1) * m, Lm, k, m, nm + m);
    }
    for (int64_t i = 0; i < Lm; i++)
        for (int64_t j = 0; j < k; j++)
            X[i * k + j] = xt[j * Lm + i];
    return 0;
}

/* R: (nb, L, m, m) blocks R(d); Y, X: (nb, L*m, k). X of a system whose recursion broke down (singular prediction
 * error) is NaN. Returns 0, -1 if m or k is out of [1, MAX_SIGNALS], -2 if memory is short. */
CLONES int unmix_block_levinson(const double *R, const double *Y, int64_t nb, int64_t L, int64_t m, int64_t k,
                                double *X)
{
    if (m < 1 || m > MAX_SIGNALS || k < 1 || k > MAX_SIGNALS || L < 1)
        return -1;
    double *work = malloc(sizeof(double) * ((2 * m + k) * L * m + (L - 1) * m * m + m * L * m));
    if (work == NULL)
        return -2;
    for (int64_t b = 0; b < nb; b++) {
        const double *Rb = R + b * L * m * m, *Yb = Y + b * L * m * k;
        double *Xb = X + b * L * m * k;
        int status;
        if (m == 8 && k == 8) /* constant sizes for the common shapes */
            status = levinson_one(Rb, Yb, L, 8, 8, Xb, work);
        else if (m == 2 && k == 2)
            status = levinson_one(Rb, Yb, L, 2, 2, Xb, work);
        else
            status = levinson_one(Rb, Yb, L, m, k, Xb, work);
        if (status)
            for (int64_t i = 0; i < L * m * k; i++)
                Xb[i] = __builtin_nan("");
    }
    free(work);
    return 0;
}
