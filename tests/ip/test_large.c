/*
 * tests/ip/test_large.c - large frames: a TCP frame longer than the MTU
 * cut into MTU-sized frames in software (bh_tcp_gso_segment, the
 * driver's fallback), and a large frame received in a chain of buffers
 * (bh_ip_input_chain).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ip/checksum.h"
#include "tests/ip/env.h"

#define PAYLOAD 10000u
#define MSS 1448u
#define ROOM 1514u

static uint8_t BIG[70000];

/* A TCP segment (32-byte header: timestamps) with PAYLOAD bytes, flags
 * given, correct checksum; returns the TCP length. */
static uint32_t build_tcp(uint8_t *t, uint8_t flags, uint32_t seq, uint32_t plen)
{
	memset(t, 0, 32);
	bh_st16(t, 40000);
	bh_st16(t + 2, 80);
	bh_st32(t + 4, seq);
	bh_st32(t + 8, 77);
	t[12] = 8 << 4;
	t[13] = flags;
	bh_st16(t + 14, 65535);
	t[20] = 1;
	t[21] = 1;
	t[22] = 8; /* timestamps */
	t[23] = 10;
	for (uint32_t i = 0; i < plen; i++)
		t[32 + i] = (uint8_t)(i * 7 + 3);
	uint32_t sum = bh_ipv4_pseudo_sum(PEER_ADDR, ENV_ADDR, BH_IPPROTO_TCP, (uint16_t)(32 + plen));
	uint16_t c = bh_csum_fold(bh_csum_partial(t, 32 + plen, sum));
	memcpy(t + 16, &c, 2);
	return 32 + plen;
}

/* The whole frame in BIG; returns its length. */
static uint32_t build_big(uint8_t flags, uint32_t plen, bool mf)
{
	static uint8_t seg[70000];
	uint32_t tl = build_tcp(seg, flags, 1000, plen);
	struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_TCP, .id = 50,
			   .df = !mf, .mf = mf};
	return (uint32_t)build_ip(BIG, NULL, &s, seg, tl);
}

Test(gso, cuts_a_large_frame_into_whole_mss_sized_frames)
{
	uint32_t len = build_big(0x18 | 0x01 | 0x80, PAYLOAD, false); /* ACK PSH FIN CWR */
	uint32_t n = bh_tcp_gso_count(BIG, len, MSS, ROOM);
	cr_assert_eq(n, (PAYLOAD + MSS - 1) / MSS);
	uint8_t out[ROOM], joined[PAYLOAD];
	uint32_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t fl = bh_tcp_gso_segment(BIG, len, MSS, i, out, ROOM);
		cr_assert(fl > 0 && fl <= ROOM, "segment %u: %u bytes", i, fl);
		struct bh_ipv4_repr h;
		cr_assert_eq(bh_ipv4_parse(out + 14, fl - 14, &h), BH_WIRE_OK, "segment %u", i);
		cr_expect_eq(h.total_len, fl - 14);
		cr_expect_eq(h.id, 50 + i);
		const uint8_t *t = h.payload;
		uint32_t tl = h.payload_len;
		uint32_t sum = bh_ipv4_pseudo_sum(h.src, h.dst, BH_IPPROTO_TCP, (uint16_t)tl);
		cr_expect_eq(bh_csum_fold(bh_csum_partial(t, tl, sum)), 0, "segment %u checksum", i);
		cr_expect_eq(bh_ld32(t + 4), 1000 + i * MSS);
		bool last = i + 1 == n;
		cr_expect_eq((t[13] & 0x09) != 0, last, "PSH and FIN on the last only (%u)", i);
		cr_expect_eq((t[13] & 0x80) != 0, i == 0, "CWR on the first only (%u)", i);
		cr_expect_eq(t[13] & 0x10, 0x10, "ACK on all");
		cr_expect_eq(t[22], 8, "options copied");
		uint32_t pl = tl - 32;
		cr_assert_leq(at + pl, PAYLOAD);
		memcpy(joined + at, t + 32, pl);
		at += pl;
	}
	cr_expect_eq(at, PAYLOAD);
	cr_expect_eq(bh_tcp_gso_segment(BIG, len, MSS, n, out, ROOM), 0, "nothing past the last");
	uint8_t want[PAYLOAD];
	for (uint32_t i = 0; i < PAYLOAD; i++)
		want[i] = (uint8_t)(i * 7 + 3);
	cr_expect_arr_eq(joined, want, PAYLOAD);
}

Test(gso, refuses_what_it_cannot_cut)
{
	uint32_t len = build_big(0x10, PAYLOAD, false);
	cr_expect_eq(bh_tcp_gso_count(BIG, len, 0, ROOM), 0, "no segment size");
	cr_expect_eq(bh_tcp_gso_count(BIG, len, 1500, ROOM), 0, "pieces too big for the room");
	cr_expect_eq(bh_tcp_gso_count(BIG, len - 1, MSS, ROOM), 0, "truncated frame");
	cr_expect_eq(bh_tcp_gso_count(BIG, 40, MSS, ROOM), 0, "headers only in part");
	BIG[14 + 9] = BH_IPPROTO_UDP;
	cr_expect_eq(bh_tcp_gso_count(BIG, len, MSS, ROOM), 0, "not TCP");
	len = build_big(0x10, PAYLOAD, true);
	cr_expect_eq(bh_tcp_gso_count(BIG, len, MSS, ROOM), 0, "a fragment");
	len = build_big(0x10, PAYLOAD, false);
	BIG[14 + 20 + 12] = 15 << 4; /* a longer TCP header (options) */
	cr_expect_eq(bh_tcp_gso_count(BIG, len, MSS, ROOM), 0, "headers + MSS beyond the room");
	cr_expect_neq(bh_tcp_gso_count(BIG, len, 1400, ROOM), 0, "a longer header still cut");
	BIG[14 + 20 + 12] = 2 << 4; /* shorter than a TCP header */
	cr_expect_eq(bh_tcp_gso_count(BIG, len, MSS, ROOM), 0, "data offset below 5");
}

/* ---- receiving a large frame in pieces ---- */

static struct env E;

static void setup(void)
{
	struct bh_ip_config cfg;
	env_default_config(&cfg);
	cfg.large_max = 65535 - 14;
	env_init(&E, &cfg, 0);
}
static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked or released twice"); }

TestSuite(chain, .init = setup, .fini = teardown);

/* Cuts BIG[0, len) into pool buffers: the first of `first` bytes, the
 * rest of at most cap. */
static unsigned pieces_split(uint32_t len, uint32_t first, uint32_t cap, struct bh_pkt *out)
{
	unsigned n = 0;
	for (uint32_t at = 0; at < len;) {
		uint32_t m = n == 0 ? first : cap;
		if (m > len - at)
			m = len - at;
		cr_assert_lt(n, BH_IP_MAX_PIECES);
		out[n++] = env_buffer(&E, BIG + at, m);
		at += m;
	}
	return n;
}
static unsigned pieces_of(uint32_t len, uint32_t cap, struct bh_pkt *out)
{
	return pieces_split(len, cap, cap, out);
}

Test(chain, a_large_frame_goes_up_as_one_datagram_in_pieces)
{
	uint32_t len = build_big(0x10, PAYLOAD, false);
	struct bh_pkt p[BH_IP_MAX_PIECES];
	unsigned n = pieces_of(len, 1900, p);
	cr_assert_gt(n, 1);
	bh_ip_input_chain(E.ip, 0, p, n);
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].proto, BH_IPPROTO_TCP);
	cr_expect_eq(E.deliv[0].npieces, n);
	cr_expect_eq(E.deliv[0].len, 32 + PAYLOAD);
	cr_expect_arr_eq(E.deliv[0].data, BIG + 14 + 20, 32 + PAYLOAD);
	cr_expect_eq(env_ctr(&E, "ip_rx_large"), 1);
}

Test(chain, bad_chains_are_dropped_and_every_piece_released)
{
	struct bh_pkt p[BH_IP_MAX_PIECES];
	/* A fragment. */
	uint32_t len = build_big(0x10, PAYLOAD, true);
	bh_ip_input_chain(E.ip, 0, p, pieces_of(len, 1900, p));
	/* Headers not whole in the first piece. */
	len = build_big(0x10, PAYLOAD, false);
	bh_ip_input_chain(E.ip, 0, p, pieces_split(len, 100, 1900, p));
	/* The pieces hold less than the IP header says. */
	unsigned n = pieces_of(len - 10, 1900, p);
	bh_ip_input_chain(E.ip, 0, p, n);
	/* Not to us. */
	len = build_big(0x10, PAYLOAD, false);
	BIG[0] ^= 1;
	bh_ip_input_chain(E.ip, 0, p, pieces_of(len, 1900, p));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "ip_rx_large"), 0);
	cr_expect_geq(env_ctr(&E, "eth_bad_large") + env_ctr(&E, "ip_bad_header"), 4);
}

/* Found by the fuzzer: a datagram of an unknown protocol with no payload,
 * padded out over further pieces, left no piece for the ICMP error that
 * quotes its header. */
Test(chain, an_empty_datagram_padded_into_a_chain_is_dropped)
{
	static const uint8_t none[1];
	struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = 0x86, .id = 51, .df = true};
	uint32_t len = (uint32_t)build_ip(BIG, NULL, &s, none, 0);
	memset(BIG + len, 0x72, 3000);
	struct bh_pkt p[BH_IP_MAX_PIECES];
	unsigned n = pieces_split(len + 3000, 200, 1900, p);
	cr_assert_gt(n, 1);
	bh_ip_input_chain(E.ip, 0, p, n);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "eth_bad_large"), 1);
	cr_expect_eq(env_ctr(&E, "ip_rx_large"), 0);
}

Test(chain, a_stack_without_large_frames_takes_none)
{
	cr_assert_eq(env_fini(&E), 0);
	env_init(&E, NULL, 0);
	uint32_t len = build_big(0x10, PAYLOAD, false);
	struct bh_pkt p[BH_IP_MAX_PIECES];
	bh_ip_input_chain(E.ip, 0, p, pieces_of(len, 1900, p));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "eth_bad_large"), 1);
}

/* Before it is cut, a frame's checksum is verified: the pieces get fresh
 * ones, which would cover a payload written over after TCP summed it. */
Test(gso, a_frame_written_over_fails_its_check_before_the_cut)
{
	uint32_t len = build_big(0x10, PAYLOAD, false);
	cr_expect(bh_tcp_gso_csum_ok(BIG, len), "the frame as TCP sent it");
	BIG[len - 100] ^= 0x5a;
	cr_expect_not(bh_tcp_gso_csum_ok(BIG, len), "one byte written over");
	cr_expect_not(bh_tcp_gso_csum_ok(BIG, 40), "not a frame it may cut");
}
