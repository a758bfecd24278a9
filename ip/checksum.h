/*
 * ip/checksum.h - the Internet checksum (RFC 1071) and its incremental
 * update (RFC 1624), shared by IPv4, ICMP, UDP and TCP.
 *
 * bh_csum_partial() sums bytes in network order into a 32-bit accumulator
 * that callers chain across pieces (pseudo-header, header, payload);
 * bh_csum_fold() folds it to 16 bits and complements it. A buffer whose
 * checksum field is included verifies when bh_csum_fold() returns 0.
 *
 * Pieces chained with bh_csum_partial() must each start at an even offset
 * of the checksummed stream, except the last (RFC 1071 (2)(A) byte-order
 * independence needs even boundaries; all header and payload boundaries
 * in IPv4, UDP and TCP are even).
 */
#ifndef BH_IP_CHECKSUM_H
#define BH_IP_CHECKSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One's-complement sum of len bytes, added to `sum` (network byte order
 * semantics, any alignment). Returns the unfolded 32-bit accumulator. */
uint32_t bh_csum_partial(const void *data, size_t len, uint32_t sum);

/* The same sum by a chosen implementation: vector (AVX2, where the
 * processor has it; else the portable loop) or the portable loop. For
 * tests and the checksum benchmark; all fold to the same value. */
uint32_t bh_csum_partial_with(const void *data, size_t len, uint32_t sum, bool vector);

/* Whether this processor runs the vector implementation. */
bool bh_csum_vector_supported(void);

/* Copies len bytes from src to dst (which must not overlap) and returns
 * bh_csum_partial(dst, len, sum): the copy and the sum in one pass over
 * the bytes, where the processor has the vector implementation. */
uint32_t bh_csum_copy(void *dst, const void *src, size_t len, uint32_t sum);

/* Adds to `total` the sum of a piece summed on its own
 * (bh_csum_partial(piece, n, 0)) that starts at an odd offset of the
 * checksummed stream when `odd`: its bytes sit in the other half of each
 * 16-bit word there, which rotating the 32-bit sum by 8 bits accounts
 * for (RFC 1071 (2)(B): byte swapping commutes with the sum; a rotation
 * by 8 is a multiplication by 2^8 modulo 2^16 - 1, which divides
 * 2^32 - 1). End-around carry. */
static inline uint32_t bh_csum_add_at(uint32_t total, uint32_t piece, bool odd)
{
	if (odd)
		piece = (piece >> 8) | (piece << 24);
	uint32_t s = total + piece;
	return s + (s < piece);
}

/* Folds to 16 bits and complements: the value that goes on the wire
 * (network byte order, as a host integer to store with memcpy). */
static inline uint16_t bh_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* RFC 1624 (3): HC' = ~(~HC + ~m + m'), for a 16-bit field changing from
 * old to new (all three values as read from the wire, in the same byte
 * order). Avoids the -0 result of the RFC 1141 form. */
static inline uint16_t bh_csum_update16(uint16_t hc, uint16_t old, uint16_t new_)
{
	uint32_t s = (uint16_t)~hc + (uint32_t)(uint16_t)~old + new_;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

#endif /* BH_IP_CHECKSUM_H */
