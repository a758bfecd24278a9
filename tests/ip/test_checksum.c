/*
 * tests/ip/test_checksum.c - the Internet checksum against RFC 1071's
 * worked example, a real IPv4 header, a byte-at-a-time reference over
 * random data of every length and alignment, chaining, and RFC 1624
 * incremental updates.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"

/* Reference: RFC 1071 (4.1), 16 bits at a time in network order. */
static uint16_t ref_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Our result as the 16-bit number on the wire. */
static uint16_t wire(uint16_t c)
{
	uint8_t b[2];
	memcpy(b, &c, 2);
	return (uint16_t)(b[0] << 8 | b[1]);
}

Test(checksum, rfc1071_worked_example)
{
	/* RFC 1071 (3): bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2. */
	const uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	cr_assert_eq(wire(bh_csum_fold(bh_csum_partial(b, sizeof(b), 0))), (uint16_t)~0xddf2);
}

Test(checksum, real_ipv4_header_verifies)
{
	/* 45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7:
	 * a UDP datagram's IPv4 header with checksum b861. */
	uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	cr_assert_eq(bh_csum_fold(bh_csum_partial(h, 20, 0)), 0, "includes its checksum");
	h[10] = h[11] = 0;
	cr_assert_eq(wire(bh_csum_fold(bh_csum_partial(h, 20, 0))), 0xb861);
	h[8] = 0x3f; /* TTL changed: must no longer verify */
	h[10] = 0xb8;
	h[11] = 0x61;
	cr_assert_neq(bh_csum_fold(bh_csum_partial(h, 20, 0)), 0);
}

Test(checksum, matches_reference_for_every_length_and_alignment)
{
	uint8_t buf[2100];
	srand(1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 2048; len += (len < 80 ? 1 : 37))
			cr_assert_eq(wire(bh_csum_fold(bh_csum_partial(buf + off, len, 0))),
				     ref_csum(buf + off, len), "off %zu len %zu", off, len);
	/* all-ones data exercises every carry */
	memset(buf, 0xff, sizeof(buf));
	cr_assert_eq(wire(bh_csum_fold(bh_csum_partial(buf, 2047, 0))), ref_csum(buf, 2047));
}

Test(checksum, chains_across_even_pieces)
{
	uint8_t buf[1500];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t s = bh_csum_partial(buf, 12, 0);
	s = bh_csum_partial(buf + 12, 20, s);
	s = bh_csum_partial(buf + 32, 1467, s);
	cr_assert_eq(wire(bh_csum_fold(s)), ref_csum(buf, 1499));
}

Test(checksum, incremental_update_matches_recomputation)
{
	uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	uint16_t c = bh_csum_fold(bh_csum_partial(h, 20, 0));
	memcpy(h + 10, &c, 2);
	srand(2);
	for (int i = 0; i < 10000; i++) {
		/* change one 16-bit field (never the checksum itself) */
		size_t at = 2 * (size_t)(rand() % 10);
		if (at == 10)
			continue;
		uint16_t old, new_ = (uint16_t)rand();
		memcpy(&old, h + at, 2);
		memcpy(&c, h + 10, 2);
		c = bh_csum_update16(c, old, new_);
		memcpy(h + at, &new_, 2);
		memcpy(h + 10, &c, 2);
		cr_assert_eq(bh_csum_fold(bh_csum_partial(h, 20, 0)), 0, "step %d", i);
	}
}
