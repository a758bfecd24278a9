/*
 * tests/tcp/test_wire.c - sequence arithmetic and the TCP header and
 * option formats: parsing of every option and every malformation, and
 * emission that parses back and matches Linux's option layout.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ip/wire.h"
#include "tcp/seq.h"
#include "tcp/wire.h"

Test(seq, comparisons_wrap_around)
{
	cr_expect(bh_seq_lt(0xfffffff0u, 0x10));
	cr_expect(bh_seq_gt(0x10, 0xfffffff0u));
	cr_expect(bh_seq_leq(5, 5) && bh_seq_geq(5, 5));
	cr_expect(!bh_seq_lt(5, 5));
	cr_expect_eq(bh_seq_diff(0x10, 0xfffffff0u), 0x20);
	cr_expect_eq(bh_seq_add(0xffffffffu, 2), 1);
	cr_expect_eq(bh_seq_max(0xfffffff0u, 0x10), 0x10);
	cr_expect_eq(bh_seq_min(0xfffffff0u, 0x10), 0xfffffff0u);
	cr_expect_eq(bh_seq_span(0xfffffff0u, 0x10), 0x20);
	/* 2^31 - 1 ahead is ahead; the window rules keep us below that. */
	cr_expect(bh_seq_lt(0, 0x7fffffff));
	cr_expect(bh_seq_gt(0, 0x80000001u));
}

Test(seq, half_open_window)
{
	cr_expect(bh_seq_in(0xfffffffeu, 0xfffffffeu, 2));
	cr_expect(bh_seq_in(1, 0xfffffffeu, 2));
	cr_expect(!bh_seq_in(2, 0xfffffffeu, 2));
	cr_expect(!bh_seq_in(0xfffffffdu, 0xfffffffeu, 2));
	cr_expect(!bh_seq_in(7, 7, 7), "an empty window holds nothing");
}

/* A header with the given options (padded to 4 with EOL). */
static size_t hdr(uint8_t *p, uint8_t flags, const uint8_t *opts, unsigned olen)
{
	unsigned padded = (olen + 3) & ~3u;
	memset(p, 0, 20 + padded);
	bh_st16(p, 1234);
	bh_st16(p + 2, 80);
	bh_st32(p + 4, 0x01020304);
	bh_st32(p + 8, 0xa0b0c0d0);
	p[12] = (uint8_t)((20 + padded) / 4 << 4);
	p[13] = flags;
	bh_st16(p + 14, 29200);
	bh_st16(p + 18, 0);
	if (olen)
		memcpy(p + 20, opts, olen);
	return 20 + padded;
}

Test(tcp_wire, plain_header)
{
	uint8_t p[80];
	size_t n = hdr(p, BH_TCP_SYN | BH_TCP_ACK, NULL, 0);
	struct bh_tcp_repr t;
	cr_assert_eq(bh_tcp_parse(p, n, (uint32_t)n + 100, &t), BH_TCP_WIRE_OK);
	cr_expect_eq(t.sport, 1234);
	cr_expect_eq(t.dport, 80);
	cr_expect_eq(t.seq, 0x01020304);
	cr_expect_eq(t.ack, 0xa0b0c0d0);
	cr_expect_eq(t.hlen, 20);
	cr_expect_eq(t.flags, BH_TCP_SYN | BH_TCP_ACK);
	cr_expect_eq(t.window, 29200);
	cr_expect_eq(t.payload_len, 100);
	cr_expect(!t.opt.has_mss && !t.opt.has_ts && !t.opt.sack_ok && !t.opt.has_wscale);
}

Test(tcp_wire, malformed_headers)
{
	uint8_t p[80];
	struct bh_tcp_repr t;
	size_t n = hdr(p, 0, NULL, 0);
	cr_expect_eq(bh_tcp_parse(p, 19, 19, &t), BH_TCP_WIRE_TRUNCATED);
	cr_expect_eq(bh_tcp_parse(p, n, 19, &t), BH_TCP_WIRE_TRUNCATED,
		     "the segment is shorter than the bytes at hand");
	p[12] = 4 << 4;
	cr_expect_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OFFSET);
	p[12] = 6 << 4; /* 24 bytes of header in a 20-byte segment */
	cr_expect_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_TRUNCATED);
	p[12] = 15 << 4;
	cr_expect_eq(bh_tcp_parse(p, 40, 40, &t), BH_TCP_WIRE_TRUNCATED);
}

/* The options of a SYN from Linux 6.x (captured): MSS 1460, SACK
 * permitted, timestamps, window scale 7. */
static const uint8_t LINUX_SYN_OPTS[20] = {0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08,
					   0x0a, 0x8f, 0x1c, 0x2b, 0x3a, 0x00, 0x00,
					   0x00, 0x00, 0x01, 0x03, 0x03, 0x07};

Test(tcp_wire, linux_syn_options)
{
	uint8_t p[80];
	size_t n = hdr(p, BH_TCP_SYN, LINUX_SYN_OPTS, sizeof LINUX_SYN_OPTS);
	struct bh_tcp_repr t;
	cr_assert_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OK);
	cr_expect_eq(t.hlen, 40);
	cr_expect(t.opt.has_mss && t.opt.mss == 1460);
	cr_expect(t.opt.sack_ok);
	cr_expect(t.opt.has_ts && t.opt.ts_val == 0x8f1c2b3a && t.opt.ts_ecr == 0);
	cr_expect(t.opt.has_wscale && t.opt.wscale == 7);
	cr_expect_eq(t.payload_len, 0);
	/* And we emit the same bytes for the same options. */
	uint8_t q[80];
	unsigned hl = bh_tcp_emit(q, &t);
	cr_assert_eq(hl, 40);
	cr_expect_arr_eq(q + 20, LINUX_SYN_OPTS, sizeof LINUX_SYN_OPTS);
	cr_expect_arr_eq(q, p, 16, "ports, numbers, offset, flags, window");
}

Test(tcp_wire, window_scale_above_14_is_clamped)
{
	static const uint8_t o[4] = {1, 3, 3, 15};
	uint8_t p[80];
	struct bh_tcp_repr t;
	size_t n = hdr(p, BH_TCP_SYN, o, 4);
	cr_assert_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OK);
	cr_expect_eq(t.opt.wscale, 14);
	cr_expect(t.opt.wscale_clamped);
}

Test(tcp_wire, wrong_lengths_of_known_options_are_skipped)
{
	static const uint8_t o[12] = {2, 3, 5, /* MSS of length 3 */ 8, 4, 0, 0, /* TS of 4 */
				      4, 3, 0, /* SACK-permitted of 3 */ 1, 1};
	uint8_t p[80];
	struct bh_tcp_repr t;
	size_t n = hdr(p, BH_TCP_SYN, o, sizeof o);
	cr_assert_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OK);
	cr_expect(!t.opt.has_mss && !t.opt.has_ts && !t.opt.sack_ok);
	cr_expect_eq(t.opt.ignored, 3);
}

Test(tcp_wire, illegal_option_lengths_are_refused)
{
	uint8_t p[80];
	struct bh_tcp_repr t;
	static const uint8_t zero[4] = {1, 30, 0, 0};
	static const uint8_t one[4] = {1, 30, 1, 0};
	static const uint8_t past[4] = {1, 30, 4, 0};
	static const uint8_t no_len[4] = {1, 1, 1, 30};
	const uint8_t *bad[] = {zero, one, past, no_len};
	for (unsigned i = 0; i < 4; i++) {
		size_t n = hdr(p, 0, bad[i], 4);
		cr_expect_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OPTION_LEN, "case %u",
			     i);
	}
	/* EOL ends the list: what follows is padding, even if it looks bad. */
	static const uint8_t eol[4] = {0, 30, 0, 0};
	size_t n = hdr(p, 0, eol, 4);
	cr_expect_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OK);
	/* Unknown kinds are skipped by their length. */
	static const uint8_t unknown[8] = {30, 6, 1, 2, 3, 4, 2, 4};
	n = hdr(p, 0, unknown, 8);
	cr_expect_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OPTION_LEN,
		     "MSS after it has no room for its value");
}

Test(tcp_wire, sack_blocks)
{
	struct bh_tcp_repr t = {.sport = 1, .dport = 2, .flags = BH_TCP_ACK};
	t.opt.has_ts = true;
	t.opt.ts_val = 7;
	t.opt.nsack = 4;
	for (unsigned b = 0; b < 4; b++)
		t.opt.sack[b] = (struct bh_sack_block){1000 * b, 1000 * b + 500};
	uint8_t q[80];
	unsigned hl = bh_tcp_emit(q, &t);
	cr_expect_eq(hl, 20 + 12 + 4 + 24, "three blocks fit beside timestamps");
	cr_expect_eq(hl, 20 + bh_tcp_opts_len(&t.opt));
	struct bh_tcp_repr r;
	cr_assert_eq(bh_tcp_parse(q, hl, hl, &r), BH_TCP_WIRE_OK);
	cr_expect_eq(r.opt.nsack, 3);
	cr_expect_eq(r.opt.sack[2].left, 2000);
	cr_expect_eq(r.opt.sack[2].right, 2500);
	cr_expect(r.opt.has_ts && r.opt.ts_val == 7);
	t.opt.has_ts = false;
	hl = bh_tcp_emit(q, &t);
	cr_expect_eq(hl, 20 + 4 + 32, "four without");
	cr_assert_eq(bh_tcp_parse(q, hl, hl, &r), BH_TCP_WIRE_OK);
	cr_expect_eq(r.opt.nsack, 4);
	cr_expect_eq(r.opt.sack[3].right, 3500);
}

Test(tcp_wire, every_option_combination_round_trips)
{
	for (unsigned m = 0; m < 32; m++) {
		struct bh_tcp_repr t = {.sport = 9, .dport = 10, .seq = m, .ack = ~m, .flags = 0x12,
					.window = 1000};
		t.opt.has_mss = m & 1;
		t.opt.mss = 1400;
		t.opt.sack_ok = m & 2;
		t.opt.has_ts = m & 4;
		t.opt.ts_val = 11;
		t.opt.ts_ecr = 12;
		t.opt.has_wscale = m & 8;
		t.opt.wscale = 9;
		t.opt.nsack = (m & 16) ? 2 : 0;
		t.opt.sack[0] = (struct bh_sack_block){5, 6};
		t.opt.sack[1] = (struct bh_sack_block){7, 8};
		uint8_t q[80];
		unsigned hl = bh_tcp_emit(q, &t);
		cr_assert_eq(hl % 4, 0);
		cr_assert_leq(hl, 60);
		cr_expect_eq(hl, 20 + bh_tcp_opts_len(&t.opt));
		struct bh_tcp_repr r;
		cr_assert_eq(bh_tcp_parse(q, hl, hl + 3, &r), BH_TCP_WIRE_OK, "mask %u", m);
		cr_expect_eq(r.seq, m);
		cr_expect_eq(r.ack, ~m);
		cr_expect_eq(r.payload_len, 3);
		cr_expect_eq(r.opt.has_mss, t.opt.has_mss, "mask %u", m);
		cr_expect_eq(r.opt.sack_ok, t.opt.sack_ok, "mask %u", m);
		cr_expect_eq(r.opt.has_ts, t.opt.has_ts, "mask %u", m);
		cr_expect_eq(r.opt.has_wscale, t.opt.has_wscale, "mask %u", m);
		cr_expect_eq(r.opt.nsack, t.opt.nsack, "mask %u", m);
		if (r.opt.has_mss)
			cr_expect_eq(r.opt.mss, 1400);
		if (r.opt.has_wscale)
			cr_expect_eq(r.opt.wscale, 9);
		if (r.opt.has_ts)
			cr_expect(r.opt.ts_val == 11 && r.opt.ts_ecr == 12);
	}
}
