/*
 * ip/checksum.c - RFC 1071 checksum, eight bytes at a time.
 *
 * The sum is taken over native-endian 64-bit words with end-around carry
 * (RFC 1071 (2)(B): the one's-complement sum is independent of word size
 * once folded) and byte order (2)(A): summing in host order and folding
 * yields the byte-swapped checksum, which is exactly what storing it back
 * in host order puts on the wire. Loads use memcpy, so any alignment works.
 */
#include "ip/checksum.h"

#include <string.h>

static inline uint64_t add_carry(uint64_t a, uint64_t b)
{
	uint64_t s = a + b;
	return s + (s < a);
}

uint32_t bh_csum_partial(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t acc = sum;
	/* Two accumulators, so the carry chains of alternate words run in
	 * parallel; they are joined (with end-around carry) afterwards. */
	uint64_t acc2 = 0;
	while (len >= 32) {
		uint64_t w[4];
		memcpy(w, p, 32);
		acc = add_carry(acc, w[0]);
		acc2 = add_carry(acc2, w[1]);
		acc = add_carry(acc, w[2]);
		acc2 = add_carry(acc2, w[3]);
		p += 32;
		len -= 32;
	}
	acc = add_carry(acc, acc2);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		acc = add_carry(acc, w);
		p += 8;
		len -= 8;
	}
	if (len) {
		/* The tail, zero-padded on the right (RFC 1071 (4): an odd
		 * last byte is padded with zero). */
		uint64_t w = 0;
		memcpy(&w, p, len);
		acc = add_carry(acc, w);
	}
	/* Fold 64 -> 32 with end-around carry. */
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}
