/*
 * ip/siphash.c - SipHash-2-4, 64-bit output, little-endian message words
 * as in the reference implementation.
 */
#include "ip/siphash.h"

#include <string.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t ld64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define SIPROUND(v0, v1, v2, v3)            \
	do {                                \
		v0 += v1;                   \
		v1 = rotl(v1, 13);          \
		v1 ^= v0;                   \
		v0 = rotl(v0, 32);          \
		v2 += v3;                   \
		v3 = rotl(v3, 16);          \
		v3 ^= v2;                   \
		v0 += v3;                   \
		v3 = rotl(v3, 21);          \
		v3 ^= v0;                   \
		v2 += v1;                   \
		v1 = rotl(v1, 17);          \
		v1 ^= v2;                   \
		v2 = rotl(v2, 32);          \
	} while (0)

uint64_t bh_siphash(const uint64_t key[2], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v0 = 0x736f6d6570736575ull ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ key[0];
	uint64_t v3 = 0x7465646279746573ull ^ key[1];
	size_t left = len;
	while (left >= 8) {
		uint64_t m = ld64le(p);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
		p += 8;
		left -= 8;
	}
	uint8_t tail[8] = {0};
	memcpy(tail, p, left);
	uint64_t b = ((uint64_t)len << 56) | ld64le(tail);
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
