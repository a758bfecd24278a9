/*
 * tests/ip/test_ipv4.c - IPv4 input checks (RFC 791, RFC 1122 3.2.1),
 * options, martian sources, routing (longest prefix), IP IDs (RFC 7739),
 * and configuration errors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ip/checksum.h"
#include "tests/ip/env.h"

static struct env E;
static uint8_t F[ENV_BUF_SIZE];

static void setup(void)
{
	env_init(&E, NULL, 0);
	cr_assert_eq(bh_udp_bind(E.ip, 53, 1), 0);
}
static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked or released twice"); }

TestSuite(ipv4, .init = setup, .fini = teardown);
TestSuite(route, .init = setup, .fini = teardown);
TestSuite(config, .init = setup, .fini = teardown);

/* A valid UDP datagram from PEER to us in F; returns the frame length. */
static size_t good(struct ipspec *s)
{
	uint8_t u[64];
	size_t ul = build_udp(u, s->src, s->dst, 9, 53, "data", 4);
	return build_ip(F, NULL, s, u, ul);
}

static struct ipspec spec(void)
{
	return (struct ipspec){.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_UDP, .id = 7};
}

/* Rewrites the IP header checksum after a deliberate change. */
static void fix_csum(void)
{
	uint8_t *h = F + BH_ETH_HLEN;
	unsigned hl = (h[0] & 0xf) * 4u;
	h[10] = h[11] = 0;
	uint16_t c = bh_csum_fold(bh_csum_partial(h, hl, 0));
	memcpy(h + 10, &c, 2);
}

Test(ipv4, valid_datagram_is_delivered)
{
	struct ipspec s = spec();
	env_input(&E, F, good(&s));
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].src, PEER_ADDR);
	cr_expect_eq(E.deliv[0].dst, ENV_ADDR);
	cr_expect_eq(E.deliv[0].sport, 9);
	cr_expect_eq(E.deliv[0].dport, 53);
	cr_expect_eq(E.deliv[0].len, 4);
	cr_expect_eq(env_ctr(&E, "ip_rx"), 1);
	cr_expect_eq(env_ctr(&E, "ip_delivered"), 1);
}

Test(ipv4, link_padding_is_ignored)
{
	struct ipspec s = spec();
	size_t n = good(&s);
	memset(F + n, 0xee, 30);
	env_input(&E, F, n + 30);
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].len, 4);
}

Test(ipv4, every_malformed_header_is_refused)
{
	struct ipspec s = spec();
	size_t n;
	uint8_t *h = F + BH_ETH_HLEN;

	n = good(&s);
	env_input(&E, F, BH_ETH_HLEN + 19); /* shorter than a header */
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 1);

	n = good(&s);
	h[0] = 0x65; /* version 6 */
	fix_csum();
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 2);

	n = good(&s);
	h[0] = 0x44; /* IHL 4 */
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 3);

	n = good(&s);
	h[0] = 0x4f; /* IHL 15: 60 bytes, beyond this 32-byte datagram */
	env_input(&E, F, BH_ETH_HLEN + 32);
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 4);

	n = good(&s);
	bh_st16(h + 2, 19); /* total length below the header */
	fix_csum();
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 5);

	n = good(&s);
	bh_st16(h + 2, (uint16_t)(n - BH_ETH_HLEN + 1)); /* longer than the frame */
	fix_csum();
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 6);

	n = good(&s);
	h[10] ^= 1; /* checksum */
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_bad_checksum"), 1);

	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(E.ntx, 0, "no ICMP about malformed datagrams");
}

Test(ipv4, unknown_options_are_skipped)
{
	struct ipspec s = spec();
	/* NOP, an unknown option of 6 bytes (type 0x88 is Stream ID with
	 * length 4; use a made-up type 30), EOL padding. */
	static const uint8_t opts[8] = {1, 30, 6, 0xaa, 0xbb, 0xcc, 0, 0};
	s.options = opts;
	s.options_len = 8;
	env_input(&E, F, good(&s));
	cr_expect_eq(E.ndeliv, 1);
}

Test(ipv4, malformed_options_are_refused)
{
	struct ipspec s = spec();
	static const uint8_t zero_len[4] = {30, 0, 0, 0};
	static const uint8_t past_end[4] = {1, 30, 8, 0};
	static const uint8_t no_len[4] = {1, 1, 1, 30};
	s.options_len = 4;
	s.options = zero_len;
	env_input(&E, F, good(&s));
	s.options = past_end;
	env_input(&E, F, good(&s));
	s.options = no_len;
	env_input(&E, F, good(&s));
	cr_expect_eq(env_ctr(&E, "ip_bad_header"), 3);
	cr_expect_eq(E.ndeliv, 0);
}

Test(ipv4, source_routed_datagrams_are_dropped)
{
	struct ipspec s = spec();
	static const uint8_t lsrr[8] = {131, 7, 4, 10, 0, 0, 1, 0};
	s.options = lsrr;
	s.options_len = 8;
	env_input(&E, F, good(&s));
	cr_expect_eq(env_ctr(&E, "ip_source_routed"), 1);
	cr_expect_eq(E.ndeliv, 0);
}

Test(ipv4, martian_sources_are_dropped)
{
	const bh_ip4 bad[] = {
		0,
		BH_IP4(0, 1, 2, 3),
		BH_IP4(127, 0, 0, 1),
		BH_IP4(224, 0, 0, 1),
		BH_IP4(255, 255, 255, 255),
		BH_IP4(10, 0, 0, 255), /* our subnet's broadcast */
		BH_IP4(240, 0, 0, 1),
		ENV_ADDR, /* ourselves, from the wire */
	};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ipspec s = spec();
		s.src = bad[i];
		env_input(&E, F, good(&s));
	}
	cr_expect_eq(env_ctr(&E, "ip_bad_src"), sizeof bad / sizeof bad[0]);
	cr_expect_eq(E.ndeliv, 0);
}

Test(ipv4, other_destinations_are_not_forwarded)
{
	struct ipspec s = spec();
	s.dst = PEER2_ADDR;
	env_input(&E, F, good(&s));
	s.dst = FAR_ADDR;
	env_input(&E, F, good(&s));
	cr_expect_eq(env_ctr(&E, "ip_not_ours"), 2);
	cr_expect_eq(E.ndeliv + E.ntx, 0);
}

/* RFC 1122 3.2.1.7: a host MUST NOT discard a datagram for a TTL below 2. */
Test(ipv4, low_ttl_is_accepted_and_zero_counted)
{
	struct ipspec s = spec();
	s.ttl = 1;
	env_input(&E, F, good(&s));
	cr_expect_eq(E.ndeliv, 1);
	size_t n = good(&s);
	F[BH_ETH_HLEN + 8] = 0;
	fix_csum();
	env_input(&E, F, n);
	cr_expect_eq(E.ndeliv, 2);
	cr_expect_eq(env_ctr(&E, "ip_ttl_zero"), 1);
}

Test(ipv4, short_transport_header_is_refused)
{
	struct ipspec s = spec();
	size_t n = build_ip(F, NULL, &s, "abc", 3); /* 3 bytes of "UDP" */
	env_input(&E, F, n);
	s.proto = BH_IPPROTO_TCP;
	n = build_ip(F, NULL, &s, "0123456789", 10);
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "ip_short_transport"), 2);
	cr_expect_eq(E.ndeliv, 0);
}

Test(ipv4, tcp_is_delivered_unicast_only)
{
	struct ipspec s = spec();
	s.proto = BH_IPPROTO_TCP;
	uint8_t seg[20] = {0};
	env_input(&E, F, build_ip(F, NULL, &s, seg, sizeof seg));
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].proto, BH_IPPROTO_TCP);
	cr_expect_eq(E.deliv[0].len, 20);
	/* RFC 1122 4.2.3.10: never to a broadcast address. */
	s.dst = BH_IP4(10, 0, 0, 255);
	static const struct bh_mac bc = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	env_input(&E, F, build_ip(F, &bc, &s, seg, sizeof seg));
	cr_expect_eq(E.ndeliv, 1);
}

/* ---- IDs ---- */

Test(ipv4, ids_are_per_destination_and_keyed)
{
	uint16_t a0 = bh_ip_next_id(E.ip, ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP);
	uint16_t a1 = bh_ip_next_id(E.ip, ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP);
	cr_expect_eq((uint16_t)(a1 - a0), 1, "a counter per destination");
	/* Traffic to others does not move PEER's counter (unless they share a
	 * bucket: these do not with this key). */
	for (int i = 0; i < 100; i++)
		bh_ip_next_id(E.ip, ENV_ADDR, BH_IP4(10, 0, 0, (uint8_t)(100 + i)), BH_IPPROTO_UDP);
	uint16_t a2 = bh_ip_next_id(E.ip, ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP);
	cr_expect_eq((uint16_t)(a2 - a1), 1, "other destinations do not leak into this one");
	/* Another key gives another sequence. */
	struct env E2;
	struct bh_ip_config c;
	env_default_config(&c);
	c.secret[0] ^= 1;
	env_init(&E2, &c, 4);
	uint16_t b0 = bh_ip_next_id(E2.ip, ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP);
	cr_expect_neq(b0, a0);
	cr_expect_eq(env_fini(&E2), 0);
}

/* ---- routing ---- */

Test(route, longest_prefix_wins)
{
	bh_ip4 hop;
	cr_assert_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 0, 0), 12, BH_IP4(10, 0, 0, 3)), 0);
	cr_assert_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 5, 0), 24, BH_IP4(10, 0, 0, 4)), 0);
	cr_assert_eq(bh_ip_route_lookup(E.ip, BH_IP4(172, 16, 5, 9), &hop), 0);
	cr_expect_eq(hop, BH_IP4(10, 0, 0, 4));
	cr_assert_eq(bh_ip_route_lookup(E.ip, BH_IP4(172, 17, 0, 1), &hop), 0);
	cr_expect_eq(hop, BH_IP4(10, 0, 0, 3));
	cr_assert_eq(bh_ip_route_lookup(E.ip, BH_IP4(8, 8, 8, 8), &hop), 0);
	cr_expect_eq(hop, GW_ADDR, "the default route");
	cr_assert_eq(bh_ip_route_lookup(E.ip, PEER_ADDR, &hop), 0);
	cr_expect_eq(hop, PEER_ADDR, "on-link: direct");
}

Test(route, bad_routes_are_refused)
{
	cr_expect_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 0, 1), 12, GW_ADDR), -EINVAL,
		     "host bits set");
	cr_expect_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 0, 0), 33, GW_ADDR), -EINVAL);
	cr_expect_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 0, 0), 12, BH_IP4(192, 168, 0, 1)),
		     -ENETUNREACH, "RFC 1122 3.3.1.1: gateways are on-link");
	cr_expect_eq(bh_ip_route_add(E.ip, BH_IP4(172, 16, 0, 0), 12, ENV_ADDR), -ENETUNREACH);
	int rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = bh_ip_route_add(E.ip, BH_IP4(172, 16, (uint8_t)i, 0), 24, GW_ADDR);
	cr_expect_eq(rc, -ENOSPC, "the table is bounded");
}

Test(route, no_gateway_means_no_route_off_link)
{
	env_fini(&E);
	struct bh_ip_config c;
	env_default_config(&c);
	c.gateway = 0;
	env_init(&E, &c, 0);
	bh_ip4 hop;
	cr_expect_eq(bh_ip_route_lookup(E.ip, FAR_ADDR, &hop), -ENETUNREACH);
	struct bh_pkt p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, FAR_ADDR, 7), -ENETUNREACH);
	cr_expect_eq(env_ctr(&E, "ip_no_route"), 1);
	cr_expect_eq(E.ntx, 0);
}

Test(route, bad_destinations_are_refused)
{
	struct bh_pkt p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, BH_IP4(127, 0, 0, 1), 7), -EINVAL);
	p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, 0, 7), -EINVAL);
	p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 0, PEER_ADDR, 7), -EINVAL, "source port 0");
	cr_expect_eq(E.ntx, 0);
}

Test(route, broadcast_and_multicast_need_no_arp)
{
	struct bh_pkt p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, BH_IP4(10, 0, 0, 255), 7), 0);
	p = env_buffer(&E, "x", 1);
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, BH_IP4(239, 1, 2, 3), 7), 0);
	cr_assert_eq(E.ntx, 2);
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, 0, &eth, &h));
	cr_expect(bh_mac_is_broadcast(&eth.dst));
	cr_assert(env_tx_ipv4(&E, 1, &eth, &h));
	cr_expect_arr_eq(eth.dst.b, ((uint8_t[]){0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}), 6);
	cr_expect_eq(h.ttl, 64);
	cr_expect_eq(h.src, ENV_ADDR);
}

Test(route, no_buffer_is_reported)
{
	E.fail_alloc = true;
	struct bh_pkt p = env_buffer(&E, "x", 1);
	p.writable = false; /* forces the copy path, which needs a buffer */
	cr_expect_eq(bh_udp_output(E.ip, 0, &p, 1000, BH_IP4(10, 0, 0, 255), 7), -ENOBUFS);
	cr_expect_eq(env_ctr(&E, "ip_no_buffers"), 1);
}

/* ---- configuration ---- */

static const char *try_config(struct bh_ip_config *c)
{
	const char *err = NULL;
	struct bh_ip *ip = bh_ip_create(c, env_ops(), &E, &err);
	cr_expect_null(ip);
	bh_ip_destroy(ip);
	return err ? err : "";
}

Test(config, bad_configurations_are_explained)
{
	struct bh_ip_config c;
#define CASE(stmt, needle)                                                        \
	do {                                                                      \
		env_default_config(&c);                                           \
		stmt;                                                             \
		const char *m = try_config(&c);                                   \
		cr_expect(strstr(m, needle) != NULL, "%s: got \"%s\"", #stmt, m); \
	} while (0)
	CASE(c.mac.b[0] = 1, "MAC");
	CASE(memset(&c.mac, 0, sizeof c.mac), "MAC");
	CASE(c.prefix_len = 33, "prefix");
	CASE(c.addr = BH_IP4(127, 0, 0, 1), "unicast");
	CASE(c.addr = BH_IP4(224, 0, 0, 1), "unicast");
	CASE(c.addr = BH_IP4(10, 0, 0, 0), "network or broadcast");
	CASE(c.addr = BH_IP4(10, 0, 0, 255), "network or broadcast");
	CASE(c.gateway = BH_IP4(192, 168, 1, 1), "gateway");
	CASE(c.gateway = ENV_ADDR, "gateway");
	CASE(c.mtu = 67, "MTU");
	CASE(c.max_pieces = 65, "max_pieces");
	CASE(c.arp_queue_per_host = 100, "arp_queue_per_host");
#undef CASE
	const char *err = NULL;
	env_default_config(&c);
	cr_expect_null(bh_ip_create(&c, NULL, NULL, &err));
	cr_expect(err && strstr(err, "required"));
}
