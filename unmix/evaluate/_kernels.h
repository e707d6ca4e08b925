/* Shared definitions of the compiled BSSEval kernels (_kernels.c, _levinson.c). */
#ifndef UNMIX_EVALUATE_KERNELS_H
#define UNMIX_EVALUATE_KERNELS_H

#include <stdint.h>

/* version of the entry points' signatures: _native.py loads only a library of its own version (ABI_VERSION) */
#define UNMIX_KERNELS_ABI 1

/* most signals (nb_sources * nb_channels) handled */
#define MAX_SIGNALS 16
#define MAX_SOURCES (MAX_SIGNALS / 2)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#define INLINE static inline __attribute__((always_inline))

typedef double v4d __attribute__((vector_size(32)));
typedef double v4du __attribute__((vector_size(32), aligned(8))); /* unaligned access */

#if defined(__clang__)
#define SWAP_PAIRS(v) __builtin_shufflevector((v), (v), 1, 0, 3, 2)
#else
typedef int64_t v4i __attribute__((vector_size(32)));
#define SWAP_PAIRS(v) __builtin_shuffle((v), (v4i){1, 0, 3, 2})
#endif

INLINE v4d load4(const double *p) { return *(const v4du *)p; }
INLINE void store4(double *p, v4d v) { *(v4du *)p = v; }
/* two complex values times i: (re0, im0, re1, im1) -> (-im0, re0, -im1, re1) */
INLINE v4d times_i(v4d v) { return SWAP_PAIRS(v) * (v4d){-1, 1, -1, 1}; }
/* two complex values times -i: (re0, im0, re1, im1) -> (im0, -re0, im1, -re1) */
INLINE v4d times_minus_i(v4d v) { return SWAP_PAIRS(v) * (v4d){1, -1, 1, -1}; }

#endif
