/*
 * tests/tcp/test_wire.c - sequence arithmetic and the TCP header and
 * option formats: parsing of every option and every malformation, and
 * emission that parses back and matches Linux's option layout.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ip/ip_wire.h"
#include "tcp/seq.h"
#include "tcp/tcp_wire.h"

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

/* Parses a header with these options; asserts it parses. */
static struct bh_tcp_repr parse_opts(const uint8_t *o, unsigned olen)
{
	uint8_t p[80];
	struct bh_tcp_repr t;
	size_t n = hdr(p, BH_TCP_SYN, o, olen);
	cr_assert_eq(bh_tcp_parse(p, n, (uint32_t)n, &t), BH_TCP_WIRE_OK);
	return t;
}

/* RFC 7323 2.3: a shift above 14 MUST be used as 14 (and SHOULD be
 * logged: the flag, which the library counts). Every value 15..255. */
Test(tcp_wire, window_scale_above_14_is_clamped)
{
	for (unsigned v = 0; v < 256; v++) {
		const uint8_t o[4] = {1, 3, 3, (uint8_t)v};
		struct bh_tcp_repr t = parse_opts(o, 4);
		cr_expect(t.opt.has_wscale, "shift %u", v);
		cr_expect_eq(t.opt.wscale, v > 14 ? 14 : v, "shift %u", v);
		cr_expect_eq(t.opt.wscale_clamped, v > 14, "shift %u", v);
		cr_expect(!t.opt.cut_short && t.opt.ignored == 0);
	}
}

Test(tcp_wire, wrong_lengths_of_known_options_are_skipped)
{
	static const uint8_t o[12] = {2, 3, 5, /* MSS of length 3 */ 8, 4, 0, 0, /* TS of 4 */
				      4, 3, 0, /* SACK-permitted of 3 */ 1, 1};
	struct bh_tcp_repr t = parse_opts(o, sizeof o);
	cr_expect(!t.opt.has_mss && !t.opt.has_ts && !t.opt.sack_ok);
	cr_expect_eq(t.opt.ignored, 3);
	cr_expect(!t.opt.cut_short, "skipped by their length: the list goes on");
}

/* MSS (RFC 9293 3.2): length 4 only; as Linux, another length is ignored
 * and skipped by its length, and what follows still counts. MSS 0 is
 * read as sent (the connection takes it as no MSS, as Linux). */
Test(tcp_wire, mss_of_the_wrong_length_is_ignored)
{
	static const uint8_t len3[8] = {2, 3, 9, 3, 3, 5, 1, 1};
	struct bh_tcp_repr t = parse_opts(len3, 8);
	cr_expect(!t.opt.has_mss);
	cr_expect(t.opt.has_wscale && t.opt.wscale == 5, "the option after it is read");
	cr_expect_eq(t.opt.ignored, 1);
	static const uint8_t len5[8] = {2, 5, 5, 0xb4, 0, 1, 1, 1};
	t = parse_opts(len5, 8);
	cr_expect(!t.opt.has_mss && t.opt.ignored == 1);
	static const uint8_t zero[4] = {2, 4, 0, 0};
	t = parse_opts(zero, 4);
	cr_expect(t.opt.has_mss && t.opt.mss == 0);
	static const uint8_t tiny[4] = {2, 4, 0, 1};
	t = parse_opts(tiny, 4);
	cr_expect(t.opt.has_mss && t.opt.mss == 1, "a tiny MSS is raised by the connection");
}

/* Window scale (RFC 7323 2.2): length 3 only. The bytes of the reported
 * denial-of-service SYN (03 02 01 00): length 2, ignored, and the NOP
 * and EOL after it read as such. */
Test(tcp_wire, window_scale_of_the_wrong_length_is_ignored)
{
	static const uint8_t len2[4] = {3, 2, 1, 0};
	struct bh_tcp_repr t = parse_opts(len2, 4);
	cr_expect(!t.opt.has_wscale);
	cr_expect_eq(t.opt.ignored, 1);
	cr_expect(!t.opt.cut_short);
	static const uint8_t len4[8] = {3, 4, 7, 0, 4, 2, 0, 0};
	t = parse_opts(len4, 8);
	cr_expect(!t.opt.has_wscale && t.opt.sack_ok && t.opt.ignored == 1);
}

/* Timestamps (RFC 7323 3.2): length 10 only. */
Test(tcp_wire, timestamps_of_the_wrong_length_are_ignored)
{
	static const uint8_t len9[12] = {8, 9, 1, 2, 3, 4, 5, 6, 7, 1, 1, 1};
	struct bh_tcp_repr t = parse_opts(len9, 12);
	cr_expect(!t.opt.has_ts && t.opt.ignored == 1 && !t.opt.cut_short);
	static const uint8_t len11[12] = {8, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1};
	t = parse_opts(len11, 12);
	cr_expect(!t.opt.has_ts && t.opt.ignored == 1 && !t.opt.cut_short);
}

/* SACK-permitted (RFC 2018 2): length 2 only. */
Test(tcp_wire, sack_permitted_of_the_wrong_length_is_ignored)
{
	static const uint8_t len3[4] = {4, 3, 0, 1};
	struct bh_tcp_repr t = parse_opts(len3, 4);
	cr_expect(!t.opt.sack_ok && t.opt.ignored == 1);
}

/* SACK (RFC 2018 3): 2 + 8n bytes, n >= 1; a block cut short is no
 * block at all. */
Test(tcp_wire, sack_of_the_wrong_length_is_ignored)
{
	uint8_t o[20] = {5, 9};
	struct bh_tcp_repr t = parse_opts(o, 9);
	cr_expect(t.opt.nsack == 0 && t.opt.ignored == 1);
	o[1] = 2;
	t = parse_opts(o, 2);
	cr_expect(t.opt.nsack == 0 && t.opt.ignored == 1, "no block");
	o[1] = 17;
	t = parse_opts(o, 17);
	cr_expect(t.opt.nsack == 0 && t.opt.ignored == 1);
	o[1] = 18;
	t = parse_opts(o, 18);
	cr_expect(t.opt.nsack == 2 && t.opt.ignored == 0);
}

/* RFC 1122 4.2.2.5, RFC 9293 MUST-7, as Linux: a length of 0 or 1, one
 * past the header, or a kind in the last byte with no room for its
 * length ends the list there; the segment stands, with the options read
 * before it. Never followed, never a reason to drop the segment. */
Test(tcp_wire, an_illegal_length_ends_the_list_and_keeps_the_segment)
{
	static const uint8_t zero[8] = {2, 4, 5, 0xb4, 30, 0, 4, 2};
	static const uint8_t one[8] = {2, 4, 5, 0xb4, 3, 1, 4, 2};
	static const uint8_t past[8] = {2, 4, 5, 0xb4, 4, 5, 4, 2};
	static const uint8_t no_len[8] = {2, 4, 5, 0xb4, 1, 1, 1, 30};
	const uint8_t *bad[] = {zero, one, past, no_len};
	for (unsigned i = 0; i < 4; i++) {
		struct bh_tcp_repr t = parse_opts(bad[i], 8);
		cr_expect(t.opt.cut_short, "case %u", i);
		cr_expect(t.opt.has_mss && t.opt.mss == 1460, "case %u: what came before counts", i);
		cr_expect(!t.opt.sack_ok && !t.opt.has_wscale, "case %u: nothing after", i);
	}
	/* An MSS that runs past the header (its 4 bytes, 2 left). */
	static const uint8_t mss_past[4] = {1, 1, 2, 4};
	struct bh_tcp_repr t = parse_opts(mss_past, 4);
	cr_expect(t.opt.cut_short && !t.opt.has_mss);
}

/* EOL ends the list (RFC 9293 3.2): what follows is padding, even if it
 * looks like options or like nonsense. */
Test(tcp_wire, eol_ends_the_list)
{
	static const uint8_t eol[8] = {0, 2, 4, 5, 0xb4, 30, 0, 0};
	struct bh_tcp_repr t = parse_opts(eol, 8);
	cr_expect(!t.opt.has_mss && !t.opt.cut_short && t.opt.ignored == 0);
	static const uint8_t late[8] = {2, 4, 5, 0xb4, 0, 3, 3, 9};
	t = parse_opts(late, 8);
	cr_expect(t.opt.has_mss && !t.opt.has_wscale);
}

/* NOPs only, up to the whole 40 bytes: no option, nothing wrong. */
Test(tcp_wire, nops_only)
{
	uint8_t o[40];
	memset(o, 1, sizeof o);
	struct bh_tcp_repr t = parse_opts(o, 40);
	cr_expect_eq(t.hlen, 60);
	cr_expect(!t.opt.has_mss && !t.opt.has_ts && !t.opt.sack_ok && !t.opt.has_wscale);
	cr_expect(!t.opt.cut_short && t.opt.ignored == 0);
}

/* Unknown kinds (RFC 9293 MUST-6) are skipped by their length, whatever
 * they are: experimental (253, 254), MD5 (19, RFC 2385), TCP-AO (29),
 * MPTCP (30), Fast Open (34); the known ones after them still count. */
Test(tcp_wire, unknown_kinds_are_skipped_by_their_length)
{
	static const uint8_t o[40] = {254, 4, 0xf9, 0x89, 19, 18, 1, 2, 3, 4, 5, 6, 7, 8,
				      9, 10, 11, 12, 13, 14, 15, 16, 30, 4, 0, 0, 34, 2,
				      253, 2, 29, 4, 0, 0, 2, 4, 5, 0xb4, 1, 0};
	struct bh_tcp_repr t = parse_opts(o, 40);
	cr_expect(t.opt.has_mss && t.opt.mss == 1460);
	cr_expect(!t.opt.cut_short && t.opt.ignored == 0);
}

/* Options filling all 40 bytes: MSS, SACK-permitted, timestamps, window
 * scale, a second MSS, a SACK block and an experiment; every one read. A
 * kind that comes twice: the last counts (as Linux). */
Test(tcp_wire, options_filling_all_40_bytes)
{
	static const uint8_t o[40] = {2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0,
				      0, 9, 3, 3, 7, 2, 4, 5, 0x78, 1, 5, 10, 0, 0,
				      0, 1, 0, 0, 0, 2, 254, 6, 1, 2, 3, 4};
	struct bh_tcp_repr t = parse_opts(o, 40);
	cr_expect_eq(t.hlen, 60);
	cr_expect(t.opt.sack_ok && t.opt.has_ts && t.opt.ts_val == 7 && t.opt.ts_ecr == 9);
	cr_expect(t.opt.has_wscale && t.opt.wscale == 7);
	cr_expect(t.opt.has_mss && t.opt.mss == 1400, "the last MSS counts");
	cr_expect_eq(t.opt.nsack, 1);
	cr_expect(t.opt.sack[0].left == 1 && t.opt.sack[0].right == 2);
	cr_expect(!t.opt.cut_short && t.opt.ignored == 0);
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
