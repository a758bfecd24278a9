/*
 * tests/ip/test_reasm.c - IPv4 reassembly (RFC 791 3.2, RFC 1122 3.3.2):
 * any order, duplicates, overlaps (RFC 5722), malformed and tiny fragments
 * (RFC 1858), timeouts and time exceeded, and the limits on pieces, memory
 * and datagrams in progress. Every test ends with every buffer back in the
 * pool.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ip/checksum.h"
#include "tests/ip/env.h"

static struct env E;
static uint8_t F[ENV_BUF_SIZE];

static void setup(void) { env_init(&E, NULL, 0); }
static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked or released twice"); }

TestSuite(reasm, .init = setup, .fini = teardown);

/* Starts over with another configuration. */
static void reinit(const struct bh_ip_config *c)
{
	cr_assert_eq(env_fini(&E), 0);
	env_init(&E, c, 0);
}

static void resolve_peer(void) { cr_assert(env_resolve_peer(&E)); }

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

#define SPORT 5000
#define DPORT 53
#define COOKIE 99

/* The UDP datagram (header + payload) most tests fragment. */
static uint8_t PAY[65536];
static uint8_t DGRAM[65536];

static size_t make_udp(size_t payload_len, unsigned seed)
{
	fill(PAY, payload_len, seed);
	return build_udp(DGRAM, PEER_ADDR, ENV_ADDR, SPORT, DPORT, PAY, payload_len);
}

static struct ipspec udp_spec(uint16_t id)
{
	return (struct ipspec){.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_UDP, .id = id};
}

/* One fragment: bytes [off, off + len) of `data`, with MF as given. */
static void frag_in(const struct ipspec *s, uint16_t off, const uint8_t *data, size_t len, bool mf)
{
	struct ipspec f = *s;
	f.frag_off = off;
	f.mf = mf;
	env_input(&E, F, build_ip(F, NULL, &f, data + off, len));
}

/* Delivery i is the UDP payload PAY[0, len) in npieces pieces. */
static void expect_udp_delivery(unsigned i, size_t len, unsigned npieces)
{
	cr_assert_gt(E.ndeliv, i);
	const struct env_delivery *d = &E.deliv[i];
	cr_expect_eq(d->proto, BH_IPPROTO_UDP);
	cr_expect_eq(d->src, PEER_ADDR);
	cr_expect_eq(d->dst, ENV_ADDR);
	cr_expect_eq(d->sport, SPORT);
	cr_expect_eq(d->dport, DPORT);
	cr_expect_eq(d->cookie, COOKIE);
	cr_expect_eq(d->npieces, npieces);
	cr_assert_eq(d->len, len);
	cr_expect_arr_eq(d->data, PAY, len, "the delivered bytes are the bytes sent");
}

/* ---- order ---- */

/* 1001 bytes of payload, 1009 with the header: fragments of 256, 256,
 * 256 and an odd 241. */
#define P1 1001
#define FRAG 256
#define NFRAG 4

Test(reasm, in_order_fragments_deliver_once)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 1);
	struct ipspec s = udp_spec(0x1001);
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, FRAG, NULL), NFRAG);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, NFRAG);
	cr_expect_eq(env_ctr(&E, "frag_rx"), NFRAG);
	cr_expect_eq(env_ctr(&E, "reasm_ok"), 1);
	cr_expect_eq(env_ctr(&E, "ip_delivered"), 1);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

Test(reasm, reverse_order_delivers_once)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 2);
	struct ipspec s = udp_spec(0x1002);
	static const unsigned order[NFRAG] = {3, 2, 1, 0};
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, FRAG, order), NFRAG);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, NFRAG);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

Test(reasm, shuffled_order_delivers_once)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 3);
	struct ipspec s = udp_spec(0x1003);
	static const unsigned order[NFRAG] = {2, 0, 3, 1};
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, FRAG, order), NFRAG);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, NFRAG);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* ---- duplicates and overlaps ---- */

Test(reasm, exact_duplicate_is_dropped_alone)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 4);
	struct ipspec s = udp_spec(0x2001);
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, FRAG, DGRAM, FRAG, true);
	frag_in(&s, FRAG, DGRAM, FRAG, true); /* again */
	cr_expect_eq(env_ctr(&E, "frag_dup"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 2, "the duplicate was not kept");
	frag_in(&s, 2 * FRAG, DGRAM, FRAG, true);
	frag_in(&s, 3 * FRAG, DGRAM, n - 3 * FRAG, false);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, NFRAG);
	cr_expect_eq(env_ctr(&E, "frag_overlap"), 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(E.in_use, 0);
}

/* RFC 5722 4: a fragment overlapping another (with a different start, or
 * the same start and a different length) abandons the whole datagram. */
Test(reasm, overlap_abandons_the_datagram)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 5);
	static const struct {
		uint16_t start1, len1, start2, len2;
	} cases[] = {
		{0, 256, 0, 512},     /* same start, longer */
		{256, 256, 256, 128}, /* same start, shorter */
		{0, 256, 128, 256},   /* starts inside the first */
		{256, 256, 128, 256}, /* ends inside the first */
		{256, 256, 264, 8},   /* wholly inside */
	};
	unsigned ncases = sizeof cases / sizeof cases[0];
	for (unsigned i = 0; i < ncases; i++) {
		struct ipspec s = udp_spec((uint16_t)(0x3000 + i));
		frag_in(&s, cases[i].start1, DGRAM, cases[i].len1, true);
		cr_expect_eq(bh_ip_held(E.ip), 1, "case %u", i);
		frag_in(&s, cases[i].start2, DGRAM, cases[i].len2, true);
		cr_expect_eq(env_ctr(&E, "frag_overlap"), i + 1, "case %u", i);
		cr_expect_eq(bh_ip_held(E.ip), 0, "case %u: every buffer released at once", i);
		cr_expect_eq(E.in_use, 0, "case %u", i);
		/* The rest of the datagram, whole and in order, no longer
		 * makes anything: each fragment is dropped as dead. */
		uint64_t dead = env_ctr(&E, "frag_dead");
		env_send_fragments(&E, &s, DGRAM, n, FRAG, NULL);
		cr_expect_eq(env_ctr(&E, "frag_dead"), dead + NFRAG, "case %u", i);
		cr_expect_eq(bh_ip_held(E.ip), 0, "case %u", i);
	}
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "frag_dup"), 0);
	cr_expect_eq(env_ctr(&E, "reasm_ok"), 0);
}

/* The abandoned datagram's key lives until the reassembly timeout, then a
 * new datagram with the same ID reassembles normally. */
Test(reasm, abandoned_datagram_is_dead_until_the_timeout)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 6);
	struct ipspec s = udp_spec(0x4001);
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, 128, DGRAM, FRAG, true);
	cr_expect_eq(env_ctr(&E, "frag_overlap"), 1);
	cr_expect_eq(env_tick(&E, 1), 30000, "the key expires reasm_timeout_ms after it began");
	env_tick(&E, 29999);
	frag_in(&s, 2 * FRAG, DGRAM, FRAG, true);
	cr_expect_eq(env_ctr(&E, "frag_dead"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	env_tick(&E, 30000);
	/* An abandoned datagram holds nothing to quote: no time exceeded,
	 * and it is not counted again as a timeout. */
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(env_ctr(&E, "frag_timeouts"), 0);
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, FRAG, NULL), NFRAG);
	cr_expect_eq(env_ctr(&E, "frag_dead"), 1);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, NFRAG);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* ---- malformed fragments ---- */

/* "Ping of death": the parser refuses a fragment that would end past
 * 65535 bytes of datagram (IP_FRAG_BEYOND); nothing is held. */
Test(reasm, fragment_beyond_65535_is_bad)
{
	uint8_t data[16] = {0};
	struct ipspec s = udp_spec(0x5001);
	/* Offset 65528 (the largest field value) plus 16: 65544 + 20. */
	s.frag_off = 65528;
	env_input(&E, F, build_ip(F, NULL, &s, data, 16));
	cr_expect_eq(env_ctr(&E, "frag_bad"), 1);
	/* Ending at 65516 of payload: 65536 with the header, one too many. */
	s.frag_off = 65512;
	env_input(&E, F, build_ip(F, NULL, &s, data, 4));
	cr_expect_eq(env_ctr(&E, "frag_bad"), 2);
	cr_expect_eq(env_ctr(&E, "frag_rx"), 0, "refused before reassembly");
	cr_expect_eq(bh_ip_held(E.ip), 0);
	/* Ending exactly at 65535 with the header is a legal last fragment. */
	s.frag_off = 65512;
	env_input(&E, F, build_ip(F, NULL, &s, data, 3));
	cr_expect_eq(env_ctr(&E, "frag_bad"), 2);
	cr_expect_eq(env_ctr(&E, "frag_rx"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 1);
}

/* RFC 791 3.2: every fragment but the last carries a multiple of 8. */
Test(reasm, middle_fragment_not_a_multiple_of_8_is_bad)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 7);
	struct ipspec s = udp_spec(0x5002);
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, FRAG, DGRAM, FRAG - 4, true);
	cr_expect_eq(env_ctr(&E, "frag_bad"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	/* The datagram is abandoned: the correct fragments no longer help. */
	frag_in(&s, FRAG, DGRAM, FRAG, true);
	frag_in(&s, 2 * FRAG, DGRAM, FRAG, true);
	frag_in(&s, 3 * FRAG, DGRAM, n - 3 * FRAG, false);
	cr_expect_eq(env_ctr(&E, "frag_dead"), 3);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

Test(reasm, empty_fragment_is_bad)
{
	make_udp(P1, 8);
	struct ipspec s = udp_spec(0x5003);
	frag_in(&s, 0, DGRAM, 0, true); /* first, MF, nothing in it */
	cr_expect_eq(env_ctr(&E, "frag_bad"), 1);
	cr_expect_eq(env_ctr(&E, "frag_tiny"), 0, "empty is malformed, not tiny");
	s.id = 0x5004;
	frag_in(&s, FRAG, DGRAM, 0, false); /* a "last" fragment of nothing */
	cr_expect_eq(env_ctr(&E, "frag_bad"), 2);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(E.ndeliv, 0);
}

Test(reasm, last_fragments_that_disagree_are_bad)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 9);
	/* Two last fragments, ending at 1009 and at 520. */
	struct ipspec s = udp_spec(0x5005);
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, 3 * FRAG, DGRAM, n - 3 * FRAG, false);
	frag_in(&s, 2 * FRAG, DGRAM, 8, false);
	cr_expect_eq(env_ctr(&E, "frag_bad"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	frag_in(&s, FRAG, DGRAM, FRAG, true);
	cr_expect_eq(env_ctr(&E, "frag_dead"), 1);
	/* A middle fragment reaching past the end a last fragment gave. */
	s.id = 0x5006;
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, 2 * FRAG, DGRAM, 40, false); /* ends at 552, a hole before */
	frag_in(&s, 3 * FRAG, DGRAM, FRAG, true);
	cr_expect_eq(env_ctr(&E, "frag_bad"), 2);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(E.ndeliv, 0);
}

/* RFC 1858 3.2: a first fragment too short for the TCP header (which
 * would let a later fragment supply the flags) abandons the datagram. */
Test(reasm, tiny_first_fragment_is_never_delivered)
{
	uint8_t tcp[40];
	fill(tcp, sizeof tcp, 10);
	struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_TCP, .id = 0x6001};
	frag_in(&s, 0, tcp, 8, true);
	cr_expect_eq(env_ctr(&E, "frag_tiny"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	frag_in(&s, 8, tcp, 32, false);
	cr_expect_eq(env_ctr(&E, "frag_dead"), 1);
	/* The other way round: the tail first, then the tiny head. */
	s.id = 0x6002;
	frag_in(&s, 8, tcp, 32, false);
	cr_expect_eq(bh_ip_held(E.ip), 1);
	frag_in(&s, 0, tcp, 8, true);
	cr_expect_eq(env_ctr(&E, "frag_tiny"), 2);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "reasm_ok"), 0);
	/* Control: with the whole header in the first fragment it is
	 * delivered. */
	s.id = 0x6003;
	frag_in(&s, 0, tcp, 24, true);
	frag_in(&s, 24, tcp, 16, false);
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].proto, BH_IPPROTO_TCP);
	cr_expect_eq(E.deliv[0].npieces, 2);
	cr_assert_eq(E.deliv[0].len, 40);
	cr_expect_arr_eq(E.deliv[0].data, tcp, 40);
}

/* ---- timeouts ---- */

/* RFC 1122 3.3.2, RFC 792: fragment zero came and the rest did not; after
 * the reassembly timeout the sender gets one time exceeded (code 1)
 * quoting the first fragment's header and data. */
Test(reasm, timeout_sends_time_exceeded_quoting_the_first_fragment)
{
	make_udp(P1, 11);
	struct ipspec s = udp_spec(0x7001);
	frag_in(&s, 0, DGRAM, FRAG, true);
	frag_in(&s, FRAG, DGRAM, FRAG, true);
	/* The first fragment as it was on the wire, for the quote. */
	uint8_t first[ENV_BUF_SIZE];
	struct ipspec f0 = s;
	f0.mf = true;
	build_ip(first, NULL, &f0, DGRAM, FRAG);
	E.now = 29000;
	resolve_peer(); /* so the error goes out, not into the ARP queue */
	cr_expect_eq(env_tick(&E, 29999), 30000);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(bh_ip_held(E.ip), 2);
	env_tick(&E, 30000);
	cr_assert_eq(E.ntx, 1, "exactly one time exceeded");
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, 0, &eth, &h));
	cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
	cr_expect_eq(h.src, ENV_ADDR);
	cr_expect_eq(h.dst, PEER_ADDR);
	cr_expect_eq(h.proto, BH_IPPROTO_ICMP);
	cr_expect(!h.mf && h.frag_off == 0);
	cr_assert_eq(h.payload_len, BH_ICMP_HLEN + BH_IPV4_HLEN + FRAG);
	const uint8_t *ic = h.payload;
	cr_expect_eq(ic[0], BH_ICMP_TIME_EXCEEDED);
	cr_expect_eq(ic[1], BH_ICMP_EXC_FRAGTIME);
	cr_expect_eq(bh_ld32(ic + 4), 0, "unused word is zero");
	cr_expect_eq(bh_csum_fold(bh_csum_partial(ic, h.payload_len, 0)), 0, "ICMP checksum");
	const uint8_t *q = ic + BH_ICMP_HLEN;
	cr_expect_eq(bh_ld16(q + 4), 0x7001, "the quoted header's id");
	cr_expect_eq(bh_ld32(q + 12), PEER_ADDR, "the quoted header's source");
	cr_expect_arr_eq(q, first + BH_ETH_HLEN, BH_IPV4_HLEN, "the original header");
	cr_expect_arr_eq(q + BH_IPV4_HLEN, DGRAM, FRAG, "the original data");
	cr_expect_eq(env_ctr(&E, "frag_timeouts"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_err_tx"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	/* Once only. */
	env_tick(&E, 90000);
	cr_expect_eq(E.ntx, 1);
}

/* RFC 1122 3.3.2: without fragment zero there is nothing to quote and no
 * time exceeded is sent. */
Test(reasm, timeout_without_the_first_fragment_is_silent)
{
	make_udp(P1, 12);
	struct ipspec s = udp_spec(0x7002);
	frag_in(&s, FRAG, DGRAM, FRAG, true);
	frag_in(&s, 3 * FRAG, DGRAM, P1 + 8 - 3 * FRAG, false);
	E.now = 29000;
	resolve_peer();
	env_tick(&E, 30000);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(env_ctr(&E, "frag_timeouts"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_err_tx"), 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(E.in_use, 0);
}

/* ---- limits ---- */

Test(reasm, too_many_pieces)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.max_pieces = 4;
	reinit(&c);
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 13);
	/* Five fragments of at most 208 bytes. */
	struct ipspec s = udp_spec(0x8001);
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, 208, NULL), 5);
	cr_expect_eq(env_ctr(&E, "frag_too_many"), 1);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	/* Control: four pieces are allowed. */
	s.id = 0x8002;
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, FRAG, NULL), 4);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, P1, 4);
	cr_expect_eq(env_ctr(&E, "frag_too_many"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

#define BUDGET (4 * ENV_BUF_SIZE)

/* Incomplete datagrams give way, oldest first, so the buffer memory held
 * never exceeds reasm_bytes and the newest datagram still completes. */
Test(reasm, memory_budget_is_kept)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.reasm_bytes = BUDGET;
	reinit(&c);
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	/* 500 bytes of payload: two fragments, 256 and 252. */
	size_t n = make_udp(500, 14);
	for (unsigned i = 0; i < 6; i++) {
		E.now = i;
		struct ipspec s = udp_spec((uint16_t)(0x9000 + i));
		frag_in(&s, 0, DGRAM, FRAG, true);
		cr_expect_leq(bh_ip_held(E.ip) * ENV_BUF_SIZE, BUDGET, "after datagram %u", i);
	}
	cr_expect_eq(bh_ip_held(E.ip), 4);
	cr_expect_eq(env_ctr(&E, "frag_budget"), 2);
	struct ipspec s = udp_spec(0x9005);
	frag_in(&s, FRAG, DGRAM, n - FRAG, false);
	cr_expect_leq(bh_ip_held(E.ip) * ENV_BUF_SIZE, BUDGET);
	cr_assert_eq(E.ndeliv, 1, "the newest datagram completes");
	expect_udp_delivery(0, 500, 2);
	cr_expect_eq(env_ctr(&E, "frag_budget"), 3);
	cr_expect_eq(bh_ip_held(E.ip), 2);
	/* The oldest (0x9000) was given up: its second fragment completes
	 * nothing. */
	s.id = 0x9000;
	frag_in(&s, FRAG, DGRAM, n - FRAG, false);
	cr_expect_eq(E.ndeliv, 1);
	cr_expect_leq(bh_ip_held(E.ip) * ENV_BUF_SIZE, BUDGET);
}

/* A datagram that alone needs more than the budget is dropped. */
Test(reasm, datagram_larger_than_the_budget_is_dropped)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.reasm_bytes = BUDGET;
	reinit(&c);
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(P1, 15);
	struct ipspec s = udp_spec(0x9101);
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, 208, NULL), 5);
	cr_expect_eq(env_ctr(&E, "frag_budget"), 1);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* reasm_datagrams in progress at once: a new one pushes out the oldest. */
Test(reasm, slot_limit_evicts_the_oldest)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.reasm_datagrams = 2;
	reinit(&c);
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(500, 16);
	for (unsigned i = 0; i < 3; i++) {
		E.now = 10 * i;
		struct ipspec s = udp_spec((uint16_t)(0xa000 + i));
		frag_in(&s, 0, DGRAM, FRAG, true);
	}
	cr_expect_eq(env_ctr(&E, "frag_budget"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 2);
	/* The two newest complete. */
	for (unsigned i = 1; i < 3; i++) {
		struct ipspec s = udp_spec((uint16_t)(0xa000 + i));
		frag_in(&s, FRAG, DGRAM, n - FRAG, false);
		cr_assert_eq(E.ndeliv, i);
		expect_udp_delivery(i - 1, 500, 2);
	}
	/* The oldest lost its first fragment. */
	struct ipspec s = udp_spec(0xa000);
	frag_in(&s, FRAG, DGRAM, n - FRAG, false);
	cr_expect_eq(E.ndeliv, 2);
	cr_expect_eq(bh_ip_held(E.ip), 1);
}

/* The largest UDP datagram: 65507 bytes of payload, 65535 with the IP
 * header, in 45 fragments of 1480. */
Test(reasm, largest_udp_datagram)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(65507, 17);
	cr_assert_eq(n, 65515);
	struct ipspec s = udp_spec(0xb001);
	cr_assert_eq(env_send_fragments(&E, &s, DGRAM, n, 1480, NULL), 45);
	cr_expect_eq(env_ctr(&E, "frag_bad"), 0);
	cr_assert_eq(E.ndeliv, 1);
	expect_udp_delivery(0, 65507, 45);
	cr_expect_eq(env_ctr(&E, "reasm_ok"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* ping -s 4000: the request comes in three fragments, and the reply (the
 * whole data returned, RFC 1122 3.2.2.6) goes out in three. */
Test(reasm, fragmented_echo_gets_a_fragmented_reply)
{
	resolve_peer();
	static uint8_t data[4000], req[4008], rep[4008];
	fill(data, sizeof data, 18);
	size_t n = build_icmp(req, BH_ICMP_ECHO_REQUEST, 0, 0x4242002a, data, sizeof data);
	struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_ICMP, .id = 0xc001};
	cr_assert_eq(env_send_fragments(&E, &s, req, n, 1480, NULL), 3);
	cr_expect_eq(env_ctr(&E, "icmp_echo_rx"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_echo_tx"), 1);
	cr_assert_eq(E.ntx, 3);
	static const uint16_t off[3] = {0, 1480, 2960}, len[3] = {1480, 1480, 1048};
	uint16_t id = 0;
	for (unsigned i = 0; i < 3; i++) {
		struct bh_eth_repr eth;
		struct bh_ipv4_repr h;
		cr_assert(env_tx_ipv4(&E, i, &eth, &h), "fragment %u", i);
		cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
		cr_expect_eq(h.src, ENV_ADDR);
		cr_expect_eq(h.dst, PEER_ADDR);
		cr_expect_eq(h.proto, BH_IPPROTO_ICMP);
		cr_expect(!h.df);
		if (i == 0)
			id = h.id;
		cr_expect_eq(h.id, id, "one IP id for all fragments");
		cr_expect_eq(h.frag_off, off[i], "fragment %u", i);
		cr_expect_eq(h.mf, i < 2, "fragment %u", i);
		cr_assert_eq(h.payload_len, len[i], "fragment %u", i);
		memcpy(rep + off[i], h.payload, len[i]);
	}
	cr_expect_eq(env_ctr(&E, "frag_tx"), 3);
	cr_expect_eq(rep[0], BH_ICMP_ECHO_REPLY);
	cr_expect_eq(rep[1], 0);
	cr_expect_eq(bh_ld32(rep + 4), 0x4242002a, "same id and sequence");
	cr_expect_arr_eq(rep + 8, data, sizeof data, "the data returned entirely");
	cr_expect_eq(bh_csum_fold(bh_csum_partial(rep, sizeof rep, 0)), 0, "ICMP checksum");
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* Each fragment ends within 65535 bytes by its own header, but a long
 * first header (IHL 15) pushes the datagram past it: refused whole. */
Test(reasm, datagram_longer_than_65535_with_the_first_header_is_bad)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	static uint8_t data[1900]; /* the last fragment carries 1803 bytes */
	memset(data, 0x11, sizeof data);
	struct ipspec s = udp_spec(0x6001);
	static const uint8_t nops[40] = {[0 ... 39] = 1};
	s.options = nops;
	s.options_len = 40;
	s.frag_off = 0;
	s.mf = true;
	size_t first = make_udp(64, 1);
	env_input(&E, F, build_ip(F, NULL, &s, DGRAM, first & ~7u));
	s.options = NULL;
	s.options_len = 0;
	/* Fill the middle with 1480-byte fragments, then a last one that ends
	 * at 65515 bytes of payload (65535 with a 20-byte header). */
	for (uint32_t off = first & ~7u; off + 1480 <= 64000; off += 1480) {
		s.frag_off = (uint16_t)off;
		env_input(&E, F, build_ip(F, NULL, &s, data, 1480));
	}
	uint32_t at = (first & ~7u);
	while (at + 1480 <= 64000)
		at += 1480;
	s.frag_off = (uint16_t)at;
	s.mf = false;
	cr_assert_leq(65515 - at, sizeof data);
	env_input(&E, F, build_ip(F, NULL, &s, data, 65515 - at));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "frag_bad"), 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* The real last fragment may repeat bytes that came before under MF: it
 * still fixes the end, and the datagram completes. */
Test(reasm, last_fragment_after_the_same_span_under_mf_completes)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, COOKIE), 0);
	size_t n = make_udp(40, 3); /* 48 bytes: [0,24) and [24,48) */
	struct ipspec s = udp_spec(0x6002);
	frag_in(&s, 24, DGRAM, 24, true);
	frag_in(&s, 0, DGRAM, 24, true);
	cr_expect_eq(E.ndeliv, 0);
	frag_in(&s, 24, DGRAM, 24, false);
	cr_expect_eq(env_ctr(&E, "frag_dup"), 1);
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].len, n - 8);
	cr_expect_arr_eq(E.deliv[0].data, PAY, n - 8);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}
