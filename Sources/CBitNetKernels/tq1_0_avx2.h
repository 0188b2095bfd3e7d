// TQ1_0's base-3 digits with AVX2, for the stored rows' unpacking (ternary_x86.c) and the lookup panels' packing
// (ternary_lookup.c). Include after <immintrin.h>, on x86 only.
#ifndef BITNET_TQ1_0_AVX2_H
#define BITNET_TQ1_0_AVX2_H

#include "kernels_internal.h"

/// Code j (w + 1, in 0 … 2) of 32 TQ1_0 bytes from t = 3^j·v mod 256 (``tq1_0_digit_vnni``): [t ≥ 86] + [t ≥ 171],
/// each comparison unsigned through a maximum (AVX2 compares signed bytes only), each true one −1. The next digit's t
/// is t + t + t, which wraps as the product does.
TARGET_AVX2 static ALWAYS_INLINE __m256i tq1_0_digit_avx2(__m256i t) {
    const __m256i ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(t, _mm256_set1_epi8(86)), t);
    const __m256i ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(t, _mm256_set1_epi8((char)171)), t);
    return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge86), ge171);
}

#endif
