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
#include "ip/ip_wire.h"

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

/* Each implementation (the portable loop, and the vector one where this
 * processor has it) against the reference: every length up to 300 and
 * then a spread to 4 KiB, at 32 alignments, started from a sum carried
 * in from an earlier piece, over random and all-ones bytes. */
Test(checksum, every_implementation_matches_the_reference)
{
	static uint8_t buf[4200];
	srand(7);
	for (int fill = 0; fill < 2; fill++) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = fill ? 0xff : (uint8_t)rand();
		for (int vec = 0; vec < 2; vec++)
			for (size_t off = 0; off < 32; off++)
				for (size_t len = 0; len <= 4096; len += (len < 300 ? 1 : 61)) {
					/* Twelve bytes of pseudo-header first. */
					uint32_t pre = bh_csum_partial_with(buf + 4100, 12, 0, vec);
					uint8_t cat[4200];
					memcpy(cat, buf + 4100, 12);
					memcpy(cat + 12, buf + off, len);
					uint32_t s = bh_csum_partial_with(buf + off, len, pre, vec);
					cr_assert_eq(wire(bh_csum_fold(s)), ref_csum(cat, 12 + len),
						     "vector %d fill %d off %zu len %zu", vec, fill,
						     off, len);
				}
	}
}

/* Pieces that start two bytes past a 32-bit boundary chain correctly. */
Test(checksum, chains_pieces_at_every_even_boundary)
{
	uint8_t buf[3000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13 + 5);
	for (size_t cut = 0; cut <= 400; cut += 2) {
		uint32_t s = bh_csum_partial(buf, cut, 0);
		s = bh_csum_partial(buf + cut, 2999 - cut, s);
		cr_assert_eq(wire(bh_csum_fold(s)), ref_csum(buf, 2999), "cut %zu", cut);
	}
}

/* The copy that sums (tcp builds a segment with it): the bytes arrive
 * whole and the sum is the reference's, for every length around the
 * vector loop's edges, both alignments apart, all-ones data included. */
Test(checksum, a_copy_that_sums_copies_and_sums)
{
	static uint8_t src[9000], dst[9100];
	srand(11);
	for (int fill = 0; fill < 2; fill++) {
		for (size_t i = 0; i < sizeof(src); i++)
			src[i] = fill ? 0xff : (uint8_t)rand();
		for (size_t so = 0; so < 8; so += 3)
			for (size_t d0 = 0; d0 < 8; d0 += 5)
				for (size_t len = 0; len <= 8800; len += (len < 300 ? 1 : 97)) {
					memset(dst, 0xa5, sizeof(dst));
					uint32_t pre = bh_csum_partial(src + 8990, 8, 0);
					uint32_t s = bh_csum_copy(dst + d0, src + so, len, pre);
					cr_assert_arr_eq(dst + d0, src + so, len, "len %zu", len);
					cr_assert_eq(dst[d0 + len], 0xa5, "wrote past the end, len %zu", len);
					cr_assert_eq(bh_csum_fold(s),
						     bh_csum_fold(bh_csum_partial(src + so, len, pre)),
						     "fill %d src %zu dst %zu len %zu", fill, so, d0, len);
				}
	}
}

/* Pieces cut at any byte, each summed alone, add up to the whole's sum
 * when those starting at odd offsets are rotated (bh_csum_add_at). */
Test(checksum, pieces_at_odd_offsets_add_up)
{
	uint8_t buf[3001];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 29 + 7);
	for (size_t a = 1; a < 300; a += 7)
		for (size_t b = a + 1; b < 3001; b += 331) {
			uint32_t s = bh_csum_add_at(0, bh_csum_partial(buf, a, 0), false);
			s = bh_csum_add_at(s, bh_csum_partial(buf + a, b - a, 0), a & 1);
			s = bh_csum_add_at(s, bh_csum_partial(buf + b, 3001 - b, 0), b & 1);
			cr_assert_eq(wire(bh_csum_fold(s)), ref_csum(buf, 3001), "cuts %zu %zu", a, b);
		}
	uint8_t ones[5];
	memset(ones, 0xff, sizeof(ones));
	uint32_t s = bh_csum_add_at(bh_csum_partial(ones, 1, 0), bh_csum_partial(ones + 1, 4, 0), true);
	cr_assert_eq(wire(bh_csum_fold(s)), ref_csum(ones, 5), "all ones, an odd cut");
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

/* --- checksums left to the device (ip/ip_wire.h) --- */

/* An Ethernet frame: IPv4 (no options) from 10.0.0.1 to 10.0.0.2
 * carrying proto with l4len bytes of transport, pattern-filled. */
static uint32_t make_frame(uint8_t *f, uint8_t proto, uint32_t l4len)
{
	memset(f, 0, 14 + 20);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4len) >> 8);
	ip[3] = (uint8_t)(20 + l4len);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	for (uint32_t i = 0; i < l4len; i++)
		ip[20 + i] = (uint8_t)(i * 7 + 3);
	return 14 + 20 + l4len;
}

static uint16_t whole_checksum(uint8_t *l4, uint32_t len, uint8_t proto, unsigned at)
{
	memset(l4 + at, 0, 2);
	uint32_t sum = bh_ipv4_pseudo_sum(0x0a000001, 0x0a000002, proto, (uint16_t)len);
	return bh_csum_fold(bh_csum_partial(l4, len, sum));
}

Test(checksum, partial_then_completed_equals_whole_for_tcp_and_udp)
{
	static uint8_t f[2000];
	const uint8_t protos[2] = {BH_IPPROTO_TCP, BH_IPPROTO_UDP};
	const unsigned at[2] = {16, 6};
	for (int k = 0; k < 2; k++)
		for (uint32_t len = 20; len <= 1480; len += 97) {
			make_frame(f, protos[k], len);
			uint8_t *l4 = f + 34;
			uint16_t want = whole_checksum(l4, len, protos[k], at[k]);
			if (want == 0 && protos[k] == BH_IPPROTO_UDP)
				want = 0xffff;
			bh_l4_partial(l4, len, protos[k], 0x0a000001, 0x0a000002);
			bh_l4_csum_complete(l4, len, protos[k]);
			uint16_t got;
			memcpy(&got, l4 + at[k], 2);
			cr_assert_eq(got, want, "proto %u, %u bytes: %04x, whole %04x", protos[k], len,
				     got, want);
		}
}

Test(checksum, a_whole_frame_is_completed_in_place)
{
	static uint8_t f[2000];
	uint32_t n = make_frame(f, BH_IPPROTO_TCP, 1000);
	uint16_t want = whole_checksum(f + 34, 1000, BH_IPPROTO_TCP, 16);
	bh_l4_partial(f + 34, 1000, BH_IPPROTO_TCP, 0x0a000001, 0x0a000002);
	cr_assert(bh_frame_csum_complete(f, n));
	uint16_t got;
	memcpy(&got, f + 34 + 16, 2);
	cr_assert_eq(got, want);
	/* and the completed segment verifies */
	uint32_t sum = bh_ipv4_pseudo_sum(0x0a000001, 0x0a000002, BH_IPPROTO_TCP, 1000);
	cr_assert_eq(bh_csum_fold(bh_csum_partial(f + 34, 1000, sum)), 0);
}

Test(checksum, frames_it_cannot_complete_are_left_alone)
{
	static uint8_t f[2000], keep[2000];
	uint32_t n = make_frame(f, BH_IPPROTO_TCP, 100);
	memcpy(keep, f, n);
	cr_assert_not(bh_frame_csum_complete(f, n - 1), "IPv4 length beyond the frame");
	f[14 + 6] = 0x20; /* more fragments */
	cr_assert_not(bh_frame_csum_complete(f, n), "a fragment");
	f[14 + 6] = 0;
	f[14 + 9] = 1; /* ICMP */
	cr_assert_not(bh_frame_csum_complete(f, n), "not TCP or UDP");
	f[14 + 9] = BH_IPPROTO_TCP;
	f[12] = 0x86;
	cr_assert_not(bh_frame_csum_complete(f, n), "not IPv4");
	f[12] = 0x08;
	cr_assert_not(bh_frame_csum_complete(f, 20), "shorter than the headers");
	cr_assert_arr_eq(f, keep, n, "untouched");
}
