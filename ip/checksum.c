/*
 * ip/checksum.c - RFC 1071 checksum.
 *
 * The one's-complement sum is independent of word size once folded
 * (RFC 1071 (2)(B)), so 32-bit native-endian words are added into 64-bit
 * accumulators, which cannot carry out (2^32 words would be needed), and
 * the total is folded with end-around carry at the end. Byte order
 * (2)(A): summing in host order and folding yields the byte-swapped
 * checksum, which is exactly what storing it back in host order puts on
 * the wire. Without carries the additions are independent, so the loop
 * runs four accumulators in parallel, or eight lanes of AVX2 where the
 * processor has it (chosen at run time; about 2.8 times faster than the
 * add-with-carry chain this replaced, docs/PERFORMANCE.md). Every
 * implementation folds to the same 16-bit value for the same bytes.
 * Loads use memcpy or unaligned loads, so any alignment works.
 */
#include "ip/checksum.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BH_CSUM_AVX2 1
#endif

/* A length that keeps every 64-bit accumulator below 2^63: longer
 * inputs are summed in pieces of this many bytes (a multiple of 64). */
#define CSUM_PIECE ((size_t)1 << 30)

/* The last len (< 16 for the callers below) bytes into acc: 32-bit words,
 * then the tail zero-padded on the right (RFC 1071 (4): an odd last byte
 * is padded with zero). */
static uint64_t sum_tail(const uint8_t *p, size_t len, uint64_t acc)
{
	while (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len) {
		uint32_t w = 0;
		memcpy(&w, p, len);
		acc += w;
	}
	return acc;
}

static uint64_t sum_scalar(const uint8_t *p, size_t len, uint64_t acc)
{
	uint64_t a1 = 0, a2 = 0, a3 = 0;
	while (len >= 16) {
		uint32_t w[4];
		memcpy(w, p, 16);
		acc += w[0];
		a1 += w[1];
		a2 += w[2];
		a3 += w[3];
		p += 16;
		len -= 16;
	}
	return sum_tail(p, len, acc + a1 + a2 + a3);
}

#ifdef BH_CSUM_AVX2
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint8_t *p, size_t len,
							  uint64_t acc)
{
	const __m256i zero = _mm256_setzero_si256();
	__m256i a = zero, b = zero;
	while (len >= 64) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
		/* Each 32-bit word widened to 64 bits (interleaved with zero). */
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(v, zero));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(v, zero));
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(w, zero));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(w, zero));
		p += 64;
		len -= 64;
	}
	uint64_t lane[4];
	_mm256_storeu_si256((__m256i *)(void *)lane, _mm256_add_epi64(a, b));
	return sum_scalar(p, len, acc + lane[0] + lane[1] + lane[2] + lane[3]);
}
#endif

static uint64_t sum_any(const uint8_t *p, size_t len, uint64_t acc, bool vector)
{
#ifdef BH_CSUM_AVX2
	if (vector)
		return sum_avx2(p, len, acc);
#endif
	(void)vector;
	return sum_scalar(p, len, acc);
}

static uint32_t fold32(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

bool bh_csum_vector_supported(void)
{
#ifdef BH_CSUM_AVX2
	return __builtin_cpu_supports("avx2");
#else
	return false;
#endif
}

uint32_t bh_csum_partial_with(const void *data, size_t len, uint32_t sum, bool vector)
{
	const uint8_t *p = data;
	uint64_t acc = sum;
	vector = vector && bh_csum_vector_supported();
	while (len > CSUM_PIECE) {
		acc = fold32(sum_any(p, CSUM_PIECE, acc, vector));
		p += CSUM_PIECE;
		len -= CSUM_PIECE;
	}
	return fold32(sum_any(p, len, acc, vector));
}

#ifdef BH_CSUM_AVX2
/* sum_avx2's loop with the loads stored to dst on the way. */
__attribute__((target("avx2"))) static uint64_t copy_sum_avx2(uint8_t *d, const uint8_t *s,
							       size_t len, uint64_t acc)
{
	const __m256i zero = _mm256_setzero_si256();
	__m256i a = zero, b = zero;
	while (len >= 64) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)s);
		__m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(s + 32));
		_mm256_storeu_si256((__m256i *)(void *)d, v);
		_mm256_storeu_si256((__m256i *)(void *)(d + 32), w);
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(v, zero));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(v, zero));
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(w, zero));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(w, zero));
		s += 64;
		d += 64;
		len -= 64;
	}
	uint64_t lane[4];
	_mm256_storeu_si256((__m256i *)(void *)lane, _mm256_add_epi64(a, b));
	memcpy(d, s, len);
	return sum_scalar(d, len, acc + lane[0] + lane[1] + lane[2] + lane[3]);
}
#endif

uint32_t bh_csum_copy(void *dst, const void *src, size_t len, uint32_t sum)
{
#ifdef BH_CSUM_AVX2
	if (len >= 128 && bh_csum_vector_supported()) {
		uint8_t *d = dst;
		const uint8_t *s = src;
		uint64_t acc = sum;
		while (len > CSUM_PIECE) {
			acc = fold32(copy_sum_avx2(d, s, CSUM_PIECE, acc));
			d += CSUM_PIECE;
			s += CSUM_PIECE;
			len -= CSUM_PIECE;
		}
		return fold32(copy_sum_avx2(d, s, len, acc));
	}
#endif
	memcpy(dst, src, len);
	return bh_csum_partial(dst, len, sum);
}

uint32_t bh_csum_partial(const void *data, size_t len, uint32_t sum)
{
	/* Short inputs (headers, pseudo-headers) stay scalar. */
	if (len < 128)
		return fold32(sum_scalar(data, len, sum));
	return bh_csum_partial_with(data, len, sum, true);
}
