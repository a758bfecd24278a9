/*
 * tests/ip/test_icmp_udp.c - ICMP (RFC 792, RFC 1122 3.2.2): echo, the
 * errors a host sends and when it must not, rate limits, and errors about
 * our own flows handed up as events; UDP (RFC 768, RFC 1122 4.1):
 * checksums, lengths, the port table, port unreachable, and output in
 * place, by copy and in fragments. Every test ends with every buffer back
 * in the pool.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ip/checksum.h"
#include "tests/ip/env.h"

static struct env E;
static uint8_t F[ENV_BUF_SIZE];
static const struct bh_mac BCAST = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
#define SUBNET_BCAST BH_IP4(10, 0, 0, 255)

static void setup(void) { env_init(&E, NULL, 0); }
static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked or released twice"); }

TestSuite(icmp, .init = setup, .fini = teardown);
TestSuite(udp, .init = setup, .fini = teardown);

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
		p[i] = (uint8_t)(i * 13 + seed);
}

/* A datagram from PEER to dst in a frame to eth_dst (NULL: ENV_MAC); the
 * frame stays in F, its IP header at F + BH_ETH_HLEN. */
static void ip_in(const struct bh_mac *eth_dst, bh_ip4 dst, uint8_t proto, uint16_t id,
		  const void *payload, size_t len)
{
	struct ipspec s = {.src = PEER_ADDR, .dst = dst, .proto = proto, .id = id};
	env_input(&E, F, build_ip(F, eth_dst, &s, payload, len));
}

/* Frame i is an ICMP message from us to PEER, a single datagram with a
 * valid IP header and ICMP checksum, of the type and code given. Returns
 * the ICMP message; *len gets its length. */
static const uint8_t *tx_icmp(unsigned i, uint8_t type, uint8_t code, uint16_t *len)
{
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, i, &eth, &h), "frame %u is a valid IPv4 datagram", i);
	cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
	cr_expect(bh_mac_eq(&eth.src, &ENV_MAC));
	cr_expect_eq(h.src, ENV_ADDR);
	cr_expect_eq(h.dst, PEER_ADDR);
	cr_assert_eq(h.proto, BH_IPPROTO_ICMP);
	cr_expect(!h.mf && h.frag_off == 0);
	cr_assert_geq(h.payload_len, BH_ICMP_HLEN);
	cr_expect_eq(h.payload[0], type, "frame %u: ICMP type", i);
	cr_expect_eq(h.payload[1], code, "frame %u: ICMP code", i);
	cr_expect_eq(bh_csum_fold(bh_csum_partial(h.payload, h.payload_len, 0)), 0,
		     "frame %u: ICMP checksum", i);
	*len = h.payload_len;
	return h.payload;
}

/* ---- echo ---- */

static void echo_in(const struct bh_mac *eth_dst, bh_ip4 dst, uint32_t rest, const uint8_t *data,
		    size_t len)
{
	uint8_t m[1024];
	size_t n = build_icmp(m, BH_ICMP_ECHO_REQUEST, 0, rest, data, len);
	ip_in(eth_dst, dst, BH_IPPROTO_ICMP, 0x100, m, n);
}

/* RFC 792 echo, RFC 1122 3.2.2.6: the reply returns id, sequence and all
 * the data. */
Test(icmp, echo_request_gets_one_exact_reply)
{
	resolve_peer();
	uint8_t data[56];
	fill(data, sizeof data, 1);
	echo_in(NULL, ENV_ADDR, 0x1234abcd, data, sizeof data);
	cr_assert_eq(E.ntx, 1);
	cr_expect_eq(E.tx[0].len, BH_ETH_HLEN + BH_IPV4_HLEN + BH_ICMP_HLEN + sizeof data);
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, 0, &eth, &h));
	cr_expect_eq(eth.type, BH_ETHERTYPE_IPV4);
	cr_expect_eq(h.ttl, 64);
	uint16_t len;
	const uint8_t *ic = tx_icmp(0, BH_ICMP_ECHO_REPLY, 0, &len);
	cr_assert_eq(len, BH_ICMP_HLEN + sizeof data);
	cr_expect_eq(bh_ld32(ic + 4), 0x1234abcd, "same id and sequence");
	cr_expect_arr_eq(ic + BH_ICMP_HLEN, data, sizeof data);
	cr_expect_eq(env_ctr(&E, "icmp_echo_rx"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_echo_tx"), 1);
	cr_expect_eq(E.ndeliv, 0);
}

/* RFC 1122 3.2.2.6: echo to a broadcast address may be discarded; we do. */
Test(icmp, echo_to_broadcast_is_not_answered)
{
	resolve_peer();
	uint8_t data[8] = {0};
	echo_in(&BCAST, SUBNET_BCAST, 1, data, sizeof data);
	echo_in(&BCAST, BH_IP4_BROADCAST, 2, data, sizeof data);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(env_ctr(&E, "icmp_echo_rx"), 2);
	cr_expect_eq(env_ctr(&E, "icmp_other"), 2);
	/* Control: the same to our address is answered. */
	echo_in(NULL, ENV_ADDR, 3, data, sizeof data);
	cr_expect_eq(E.ntx, 1);
}

Test(icmp, bad_checksum_is_dropped)
{
	resolve_peer();
	uint8_t data[16] = {0}, m[64];
	size_t n = build_icmp(m, BH_ICMP_ECHO_REQUEST, 0, 7, data, sizeof data);
	m[2] ^= 0x01;
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_ICMP, 1, m, n);
	cr_expect_eq(env_ctr(&E, "icmp_rx"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_bad"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_echo_rx"), 0);
	cr_expect_eq(E.ntx, 0);
}

/* Under the 8-byte ICMP header: the IP layer refuses it. */
Test(icmp, truncated_message_is_short_transport)
{
	resolve_peer();
	uint8_t m[8];
	build_icmp(m, BH_ICMP_ECHO_REQUEST, 0, 7, "", 0);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_ICMP, 1, m, 7);
	cr_expect_eq(env_ctr(&E, "ip_short_transport"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_rx"), 0);
	cr_expect_eq(E.ntx, 0);
}

Test(icmp, echo_replies_are_rate_limited)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.echo_burst = 5;
	c.echo_rate = 1;
	reinit(&c);
	resolve_peer();
	uint8_t data[8] = {0};
	for (uint32_t i = 0; i < 8; i++)
		echo_in(NULL, ENV_ADDR, i, data, sizeof data);
	cr_expect_eq(E.ntx, 5, "the burst");
	cr_expect_eq(env_ctr(&E, "icmp_echo_limited"), 3);
	/* One second at one reply a second: one more. */
	E.now += 1000;
	echo_in(NULL, ENV_ADDR, 8, data, sizeof data);
	echo_in(NULL, ENV_ADDR, 9, data, sizeof data);
	cr_expect_eq(E.ntx, 6);
	cr_expect_eq(env_ctr(&E, "icmp_echo_limited"), 4);
	cr_expect_eq(env_ctr(&E, "icmp_echo_tx"), 6);
	uint16_t len;
	const uint8_t *ic = tx_icmp(5, BH_ICMP_ECHO_REPLY, 0, &len);
	cr_expect_eq(bh_ld32(ic + 4), 8);
}

/* ---- errors we send ---- */

/* RFC 1122 3.2.2.1: protocol unreachable, quoting the IP header and at
 * least 8 bytes of data (RFC 1122 3.2.2). */
Test(icmp, protocol_unreachable_quotes_the_datagram)
{
	resolve_peer();
	uint8_t data[32];
	fill(data, sizeof data, 2);
	ip_in(NULL, ENV_ADDR, 99, 0x4321, data, sizeof data);
	cr_expect_eq(env_ctr(&E, "ip_unknown_proto"), 1);
	cr_assert_eq(E.ntx, 1);
	uint16_t len;
	const uint8_t *ic = tx_icmp(0, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PROTOCOL, &len);
	cr_assert_eq(len, BH_ICMP_HLEN + BH_IPV4_HLEN + sizeof data);
	cr_expect_eq(bh_ld32(ic + 4), 0);
	cr_expect_arr_eq(ic + BH_ICMP_HLEN, F + BH_ETH_HLEN, BH_IPV4_HLEN, "the original header");
	cr_expect_arr_eq(ic + BH_ICMP_HLEN + BH_IPV4_HLEN, data, sizeof data, "the original data");
	cr_expect_eq(env_ctr(&E, "icmp_err_tx"), 1);
}

/* RFC 1122 3.2.2: no error about a datagram to a broadcast address. */
Test(icmp, no_protocol_unreachable_for_broadcast)
{
	resolve_peer();
	uint8_t data[32] = {0};
	ip_in(&BCAST, SUBNET_BCAST, 99, 1, data, sizeof data);
	ip_in(&BCAST, BH_IP4_BROADCAST, 99, 2, data, sizeof data);
	cr_expect_eq(env_ctr(&E, "ip_unknown_proto"), 2);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(env_ctr(&E, "icmp_err_tx"), 0);
}

Test(icmp, no_port_unreachable_for_broadcast)
{
	resolve_peer();
	uint8_t u[64];
	size_t n = build_udp(u, PEER_ADDR, SUBNET_BCAST, 5000, 9999, "x", 1);
	ip_in(&BCAST, SUBNET_BCAST, BH_IPPROTO_UDP, 1, u, n);
	n = build_udp(u, PEER_ADDR, BH_IP4_BROADCAST, 5000, 9999, "x", 1);
	ip_in(&BCAST, BH_IP4_BROADCAST, BH_IPPROTO_UDP, 2, u, n);
	cr_expect_eq(env_ctr(&E, "udp_no_port"), 2);
	cr_expect_eq(E.ntx, 0);
	/* Control: to our own address it draws one. */
	n = build_udp(u, PEER_ADDR, ENV_ADDR, 5000, 9999, "x", 1);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 3, u, n);
	cr_expect_eq(E.ntx, 1);
}

/* RFC 1122 3.2.2: never an ICMP error about an ICMP error. A fragmented
 * ICMP error that never completes draws no time exceeded, while a
 * fragmented echo request in the same state does. */
Test(icmp, no_error_about_an_error)
{
	uint8_t body[56], err[64], req[64];
	fill(body, sizeof body, 3);
	build_icmp(err, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, body, sizeof body);
	build_icmp(req, BH_ICMP_ECHO_REQUEST, 0, 0x00010001, body, sizeof body);
	struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_ICMP, .mf = true};
	s.id = 0xd001;
	env_input(&E, F, build_ip(F, NULL, &s, err, 32));
	s.id = 0xd002;
	env_input(&E, F, build_ip(F, NULL, &s, req, 32));
	cr_expect_eq(bh_ip_held(E.ip), 2);
	E.now = 29000;
	resolve_peer();
	env_tick(&E, 30000);
	cr_expect_eq(env_ctr(&E, "frag_timeouts"), 2);
	cr_assert_eq(E.ntx, 1, "one time exceeded, for the echo request only");
	uint16_t len;
	const uint8_t *ic = tx_icmp(0, BH_ICMP_TIME_EXCEEDED, BH_ICMP_EXC_FRAGTIME, &len);
	cr_assert_geq(len, BH_ICMP_HLEN + BH_IPV4_HLEN + 8);
	cr_expect_eq(bh_ld16(ic + BH_ICMP_HLEN + 4), 0xd002);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

/* RFC 1122 3.2.2: errors SHOULD be rate-limited. */
Test(icmp, errors_are_rate_limited)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.icmp_err_burst = 2;
	c.icmp_err_rate = 1;
	reinit(&c);
	resolve_peer();
	uint8_t u[64];
	size_t n = build_udp(u, PEER_ADDR, ENV_ADDR, 5000, 9999, "x", 1);
	for (uint16_t i = 0; i < 5; i++)
		ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, i, u, n);
	cr_expect_eq(env_ctr(&E, "udp_no_port"), 5);
	cr_assert_eq(E.ntx, 2);
	for (unsigned i = 0; i < 2; i++) {
		uint16_t len;
		tx_icmp(i, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, &len);
	}
	cr_expect_eq(env_ctr(&E, "icmp_err_tx"), 2);
	cr_expect_eq(env_ctr(&E, "icmp_err_limited"), 3);
}

/* ---- errors we receive (RFC 1122 3.2.2.1, 4.1.3.3, 4.2.3.9) ---- */

static uint8_t Q[256];

/* The start of a datagram we sent (IP header + transport bytes), as an
 * error would quote it; returns its length. */
static size_t quote(bh_ip4 src, uint8_t proto, const uint8_t *transport, size_t len)
{
	uint8_t frame[300];
	struct ipspec s = {.src = src, .dst = PEER_ADDR, .proto = proto, .id = 77};
	size_t n = build_ip(frame, &PEER_MAC, &s, transport, len);
	memcpy(Q, frame + BH_ETH_HLEN, n - BH_ETH_HLEN);
	return n - BH_ETH_HLEN;
}

/* A UDP datagram from us (sport) to PEER:dport, quoted whole. */
static size_t quote_udp(bh_ip4 src, uint16_t sport, uint16_t dport)
{
	uint8_t u[64];
	size_t n = build_udp(u, src, PEER_ADDR, sport, dport, "query", 5);
	return quote(src, BH_IPPROTO_UDP, u, n);
}

static void error_in(uint8_t type, uint8_t code, uint32_t rest, size_t qlen)
{
	uint8_t m[300];
	size_t n = build_icmp(m, type, code, rest, Q, qlen);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_ICMP, 0x200, m, n);
}

Test(icmp, port_unreachable_about_our_udp_flow_is_reported)
{
	cr_assert_eq(bh_udp_bind(E.ip, 4000, 42), 0);
	size_t q = quote_udp(ENV_ADDR, 4000, 5353);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, q);
	cr_expect_eq(env_ctr(&E, "icmp_err_rx"), 1);
	cr_expect_eq(env_ctr(&E, "icmp_err_ignored"), 0);
	cr_assert_eq(E.nev, 1);
	const struct bh_ip_event *ev = &E.ev[0];
	cr_expect_eq(ev->type, BH_IP_EV_ICMP_ERROR);
	cr_expect_eq(ev->proto, BH_IPPROTO_UDP);
	cr_expect_eq(ev->icmp_type, BH_ICMP_DEST_UNREACH);
	cr_expect_eq(ev->icmp_code, BH_ICMP_UNREACH_PORT);
	cr_expect_eq(ev->src, ENV_ADDR);
	cr_expect_eq(ev->dst, PEER_ADDR);
	cr_expect_eq(ev->sport, 4000);
	cr_expect_eq(ev->dport, 5353);
	cr_expect_eq(ev->cookie, 42);
	cr_expect_eq(ev->mtu, 0);
	cr_expect_eq(E.ntx, 0, "errors are not answered");
	cr_expect_eq(E.ndeliv, 0);
}

/* RFC 1191: fragmentation needed carries the next-hop MTU in the low 16
 * bits; RFC 5927 4.1: TCP gets the quoted sequence number to check. */
Test(icmp, fragmentation_needed_about_tcp_carries_mtu_and_seq)
{
	uint8_t tcp[20] = {0};
	bh_st16(tcp, 4001);
	bh_st16(tcp + 2, 80);
	bh_st32(tcp + 4, 0x11223344);
	size_t q = quote(ENV_ADDR, BH_IPPROTO_TCP, tcp, sizeof tcp);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_NEEDFRAG, 1400, q - 12); /* header + 8 */
	cr_assert_eq(E.nev, 1);
	const struct bh_ip_event *ev = &E.ev[0];
	cr_expect_eq(ev->type, BH_IP_EV_ICMP_ERROR);
	cr_expect_eq(ev->proto, BH_IPPROTO_TCP);
	cr_expect_eq(ev->icmp_type, BH_ICMP_DEST_UNREACH);
	cr_expect_eq(ev->icmp_code, BH_ICMP_UNREACH_NEEDFRAG);
	cr_expect_eq(ev->mtu, 1400);
	cr_expect_eq(ev->seq, 0x11223344);
	cr_expect_eq(ev->sport, 4001);
	cr_expect_eq(ev->dport, 80);
	cr_expect_eq(ev->dst, PEER_ADDR);
}

Test(icmp, error_about_someone_elses_datagram_is_ignored)
{
	cr_assert_eq(bh_udp_bind(E.ip, 4000, 42), 0);
	size_t q = quote_udp(PEER2_ADDR, 4000, 5353);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, q);
	cr_expect_eq(E.nev, 0);
	cr_expect_eq(env_ctr(&E, "icmp_err_ignored"), 1);
	/* From us, but from a port nobody has bound. */
	q = quote_udp(ENV_ADDR, 4001, 5353);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, q);
	cr_expect_eq(E.nev, 0);
	cr_expect_eq(env_ctr(&E, "icmp_err_ignored"), 2);
	cr_expect_eq(env_ctr(&E, "icmp_err_rx"), 2);
	cr_expect_eq(E.ntx, 0);
}

/* RFC 792: the quote is the header and 64 bits of data; less than that
 * names no flow. */
Test(icmp, error_with_truncated_quote_is_ignored)
{
	cr_assert_eq(bh_udp_bind(E.ip, 4000, 42), 0);
	quote_udp(ENV_ADDR, 4000, 5353);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, BH_IPV4_HLEN + 7);
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, BH_IPV4_HLEN - 1);
	cr_expect_eq(E.nev, 0);
	cr_expect_eq(env_ctr(&E, "icmp_err_ignored"), 2);
	/* Control: header + 8 is enough. */
	error_in(BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, 0, BH_IPV4_HLEN + 8);
	cr_expect_eq(E.nev, 1);
	cr_expect_eq(env_ctr(&E, "icmp_err_ignored"), 2);
}

Test(icmp, time_exceeded_about_our_flow_is_reported)
{
	cr_assert_eq(bh_udp_bind(E.ip, 4000, 42), 0);
	size_t q = quote_udp(ENV_ADDR, 4000, 33434);
	error_in(BH_ICMP_TIME_EXCEEDED, BH_ICMP_EXC_TTL, 0, q);
	cr_assert_eq(E.nev, 1);
	const struct bh_ip_event *ev = &E.ev[0];
	cr_expect_eq(ev->type, BH_IP_EV_ICMP_ERROR);
	cr_expect_eq(ev->icmp_type, BH_ICMP_TIME_EXCEEDED);
	cr_expect_eq(ev->icmp_code, BH_ICMP_EXC_TTL);
	cr_expect_eq(ev->proto, BH_IPPROTO_UDP);
	cr_expect_eq(ev->sport, 4000);
	cr_expect_eq(ev->dport, 33434);
	cr_expect_eq(ev->cookie, 42);
}

/* ---- UDP input ---- */

#define SPORT 5000
#define DPORT 53

/* A UDP datagram from PEER:SPORT to us at dport; the UDP bytes in U. */
static uint8_t U[2048];

static size_t udp_make(uint16_t dport, const void *payload, size_t len)
{
	return build_udp(U, PEER_ADDR, ENV_ADDR, SPORT, dport, payload, len);
}

Test(udp, valid_checksum_is_delivered)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	const char msg[] = "hello, world";
	size_t n = udp_make(DPORT, msg, strlen(msg));
	cr_expect_neq(bh_ld16(U + 6), 0, "a checksum was computed");
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n);
	cr_assert_eq(E.ndeliv, 1);
	const struct env_delivery *d = &E.deliv[0];
	cr_expect_eq(d->proto, BH_IPPROTO_UDP);
	cr_expect_eq(d->cast, BH_IP_UNICAST);
	cr_expect_eq(d->src, PEER_ADDR);
	cr_expect_eq(d->dst, ENV_ADDR);
	cr_expect_eq(d->sport, SPORT);
	cr_expect_eq(d->dport, DPORT);
	cr_expect_eq(d->cookie, 7);
	cr_expect_eq(d->npieces, 1);
	cr_assert_eq(d->len, strlen(msg), "the payload only, no UDP header");
	cr_expect_arr_eq(d->data, msg, strlen(msg));
	cr_expect_eq(env_ctr(&E, "udp_rx"), 1);
	cr_expect_eq(env_ctr(&E, "ip_delivered"), 1);
	cr_expect_eq(E.ntx, 0);
}

/* RFC 768: an all-zero checksum field means the sender computed none. */
Test(udp, zero_checksum_is_accepted)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	size_t n = udp_make(DPORT, "abc", 3);
	U[6] = U[7] = 0;
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n);
	cr_assert_eq(E.ndeliv, 1);
	cr_assert_eq(E.deliv[0].len, 3);
	cr_expect_arr_eq(E.deliv[0].data, "abc", 3);
	cr_expect_eq(env_ctr(&E, "udp_bad_checksum"), 0);
}

Test(udp, wrong_checksum_is_dropped)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	size_t n = udp_make(DPORT, "abc", 3);
	U[8] ^= 0x20; /* the payload changed in flight */
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "udp_bad_checksum"), 1);
	cr_expect_eq(E.ntx, 0);
}

/* RFC 768: the length covers header and data; it may not claim more than
 * IP carries. */
Test(udp, length_beyond_the_ip_payload_is_bad)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	size_t n = udp_make(DPORT, "abcd", 4);
	bh_st16(U + 4, (uint16_t)(n + 1));
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n);
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "udp_bad"), 1);
	/* Below the header's own 8 bytes is as bad. */
	n = udp_make(DPORT, "abcd", 4);
	bh_st16(U + 4, 7);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 2, U, n);
	cr_expect_eq(env_ctr(&E, "udp_bad"), 2);
	cr_expect_eq(E.ndeliv, 0);
}

/* A UDP length shorter than the IP payload: the rest is not UDP data. */
Test(udp, length_short_of_the_ip_payload_is_trimmed)
{
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	size_t n = udp_make(DPORT, "hello", 5);
	memcpy(U + n, "PAD!", 4);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n + 4);
	cr_assert_eq(E.ndeliv, 1);
	cr_assert_eq(E.deliv[0].len, 5);
	cr_expect_arr_eq(E.deliv[0].data, "hello", 5);
	cr_expect_eq(E.deliv[0].npieces, 1);
	cr_expect_eq(env_ctr(&E, "udp_bad_checksum"), 0);
}

/* RFC 1122 4.1.3.1: port unreachable, quoting the datagram. */
Test(udp, unbound_port_draws_port_unreachable)
{
	resolve_peer();
	uint8_t payload[30];
	fill(payload, sizeof payload, 4);
	size_t n = udp_make(9999, payload, sizeof payload);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 0x55, U, n);
	cr_expect_eq(env_ctr(&E, "udp_no_port"), 1);
	cr_expect_eq(E.ndeliv, 0);
	cr_assert_eq(E.ntx, 1);
	uint16_t len;
	const uint8_t *ic = tx_icmp(0, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, &len);
	cr_assert_eq(len, BH_ICMP_HLEN + BH_IPV4_HLEN + n);
	cr_expect_arr_eq(ic + BH_ICMP_HLEN, F + BH_ETH_HLEN, BH_IPV4_HLEN, "the original header");
	cr_expect_arr_eq(ic + BH_ICMP_HLEN + BH_IPV4_HLEN, U, n, "the original datagram");
}

Test(udp, unbind_makes_the_port_unreachable_again)
{
	resolve_peer();
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 7), 0);
	size_t n = udp_make(DPORT, "a", 1);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 1, U, n);
	cr_expect_eq(E.ndeliv, 1);
	cr_expect_eq(E.ntx, 0);
	cr_assert_eq(bh_udp_unbind(E.ip, DPORT), 0);
	cr_expect_eq(bh_udp_unbind(E.ip, DPORT), -ENOENT);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 2, U, n);
	cr_expect_eq(E.ndeliv, 1);
	cr_assert_eq(E.ntx, 1);
	uint16_t len;
	tx_icmp(0, BH_ICMP_DEST_UNREACH, BH_ICMP_UNREACH_PORT, &len);
	/* Bound again, with a new cookie. */
	cr_assert_eq(bh_udp_bind(E.ip, DPORT, 8), 0);
	ip_in(NULL, ENV_ADDR, BH_IPPROTO_UDP, 3, U, n);
	cr_assert_eq(E.ndeliv, 2);
	cr_expect_eq(E.deliv[1].cookie, 8);
}

Test(udp, bind_errors)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.udp_bindings = 2;
	reinit(&c);
	cr_expect_eq(bh_udp_bind(E.ip, 0, 1), -EINVAL);
	cr_expect_eq(bh_udp_bind(E.ip, 1000, 1), 0);
	cr_expect_eq(bh_udp_bind(E.ip, 1000, 2), -EADDRINUSE);
	cr_expect_eq(bh_udp_bind(E.ip, 65535, 3), 0);
	cr_expect_eq(bh_udp_bind(E.ip, 2000, 4), -ENOSPC);
	cr_expect_eq(bh_udp_bind(E.ip, 1000, 2), -EADDRINUSE, "in use, whatever the table");
	cr_assert_eq(bh_udp_unbind(E.ip, 1000), 0);
	cr_expect_eq(bh_udp_bind(E.ip, 2000, 4), 0, "room again after an unbind");
}

/* ---- UDP output ---- */

/* Frame i is a UDP datagram from us (sport) to PEER:dport, unfragmented,
 * with a checksum that verifies over the pseudo-header (RFC 768).
 * Returns the UDP bytes; *len gets the UDP length. */
static const uint8_t *tx_udp(unsigned i, uint16_t sport, uint16_t dport, uint16_t *len)
{
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, i, &eth, &h), "frame %u is a valid IPv4 datagram", i);
	cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
	cr_expect_eq(h.src, ENV_ADDR);
	cr_expect_eq(h.dst, PEER_ADDR);
	cr_assert_eq(h.proto, BH_IPPROTO_UDP);
	cr_expect(!h.mf && h.frag_off == 0);
	const uint8_t *u = h.payload;
	cr_assert_geq(h.payload_len, BH_UDP_HLEN);
	cr_expect_eq(bh_ld16(u), sport);
	cr_expect_eq(bh_ld16(u + 2), dport);
	cr_assert_eq(bh_ld16(u + 4), h.payload_len);
	uint32_t sum = bh_ipv4_pseudo_sum(ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP, h.payload_len);
	cr_expect_eq(bh_csum_fold(bh_csum_partial(u, h.payload_len, sum)), 0,
		     "frame %u: UDP checksum", i);
	*len = h.payload_len;
	return u;
}

/* In place (headroom, writable) and by copy (read-only): the same bytes
 * on the wire but for the IP id (and so the header checksum). RFC 791
 * 3.2: each datagram to the same destination gets its own id. */
Test(udp, output_in_place_and_by_copy_are_identical)
{
	resolve_peer();
	const char msg[] = "bulkhead says hello";
	uint32_t n = (uint32_t)strlen(msg);
	struct bh_pkt p = env_buffer(&E, msg, n);
	cr_assert_eq(bh_udp_output(E.ip, E.now, &p, 4000, PEER_ADDR, 7), 0);
	for (unsigned i = 0; i < 2; i++) {
		p = env_buffer(&E, msg, n);
		p.writable = false;
		cr_assert_eq(bh_udp_output(E.ip, E.now, &p, 4000, PEER_ADDR, 7), 0);
	}
	cr_assert_eq(E.ntx, 3);
	cr_assert_eq(E.tx[0].len, BH_ETH_HLEN + BH_IPV4_HLEN + BH_UDP_HLEN + n);
	uint8_t a[ENV_BUF_SIZE], b[ENV_BUF_SIZE];
	memcpy(a, E.tx[0].data, E.tx[0].len);
	memset(a + BH_ETH_HLEN + 4, 0, 2);  /* IP id */
	memset(a + BH_ETH_HLEN + 10, 0, 2); /* IP header checksum */
	for (unsigned i = 1; i < 3; i++) {
		cr_assert_eq(E.tx[i].len, E.tx[0].len);
		memcpy(b, E.tx[i].data, E.tx[i].len);
		memset(b + BH_ETH_HLEN + 4, 0, 2);
		memset(b + BH_ETH_HLEN + 10, 0, 2);
		cr_expect_arr_eq(a, b, E.tx[0].len, "frame %u differs from the in-place one", i);
	}
	uint16_t ids[3];
	for (unsigned i = 0; i < 3; i++) {
		uint16_t len;
		const uint8_t *u = tx_udp(i, 4000, 7, &len);
		cr_assert_eq(len, BH_UDP_HLEN + n);
		cr_expect_arr_eq(u + BH_UDP_HLEN, msg, n);
		ids[i] = bh_ld16(E.tx[i].data + BH_ETH_HLEN + 4);
	}
	cr_expect(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "ids %u %u %u",
		  ids[0], ids[1], ids[2]);
	cr_expect_eq(env_ctr(&E, "udp_tx"), 3);
	cr_expect_eq(E.in_use, 0);
}

/* RFC 768: a computed checksum of zero is sent as all ones (zero means
 * "none"). Two payload bytes equal to the checksum of the datagram with a
 * zero payload make the one's-complement sum 0xffff. */
Test(udp, computed_zero_checksum_is_sent_as_ffff)
{
	resolve_peer();
	uint8_t hdr[BH_UDP_HLEN], payload[2] = {0, 0};
	struct bh_udp_repr r = {.sport = 4000, .dport = 7, .len = BH_UDP_HLEN + 2, .checksum = 0};
	bh_udp_emit(hdr, &r);
	uint32_t sum = bh_ipv4_pseudo_sum(ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP, r.len);
	sum = bh_csum_partial(hdr, sizeof hdr, sum);
	uint16_t c = bh_csum_fold(bh_csum_partial(payload, 2, sum));
	memcpy(payload, &c, 2);
	cr_assert_eq(bh_csum_fold(bh_csum_partial(payload, 2, sum)), 0, "the test makes a zero");
	struct bh_pkt p = env_buffer(&E, payload, 2);
	cr_assert_eq(bh_udp_output(E.ip, E.now, &p, 4000, PEER_ADDR, 7), 0);
	cr_assert_eq(E.ntx, 1);
	uint16_t len;
	const uint8_t *u = tx_udp(0, 4000, 7, &len);
	cr_expect_eq(u[6], 0xff);
	cr_expect_eq(u[7], 0xff);
	cr_expect_arr_eq(u + BH_UDP_HLEN, payload, 2);
}

/* A buffer of three adjacent pool buffers: the pool is one array, so a
 * view from the first buffer's base spanning three holds a datagram
 * larger than one buffer. The library releases it by the first handle;
 * the test gives the other two back. */
static struct bh_pkt span_buffer(const uint8_t *data, uint32_t len, uint64_t spare[2])
{
	struct bh_pkt p[3];
	for (unsigned i = 0; i < 3; i++)
		p[i] = env_buffer(&E, "", 0);
	cr_assert_eq(p[1].handle, p[0].handle + 1);
	cr_assert_eq(p[2].handle, p[0].handle + 2);
	cr_assert_eq(p[1].base, p[0].base + ENV_BUF_SIZE);
	struct bh_pkt big = p[0];
	big.size = 3 * ENV_BUF_SIZE;
	cr_assert_leq(big.off + len, big.size);
	memcpy(big.base + big.off, data, len);
	big.len = len;
	spare[0] = p[1].handle;
	spare[1] = p[2].handle;
	return big;
}

static void give_back(uint64_t handle)
{
	cr_assert(E.used[handle]);
	E.used[handle] = false;
	E.in_use--;
}

/* RFC 791 3.2: 4000 bytes of payload at MTU 1500 go out as three
 * fragments of 1480, 1480 and 1048 bytes (the UDP header in the first),
 * every one but the last a multiple of 8 with MF set, under one IP id. */
Test(udp, large_datagram_is_fragmented)
{
	resolve_peer();
	static uint8_t data[4000], dgram[4008];
	fill(data, sizeof data, 5);
	uint64_t spare[2];
	struct bh_pkt p = span_buffer(data, sizeof data, spare);
	int rc = bh_udp_output(E.ip, E.now, &p, 4000, PEER_ADDR, 7);
	give_back(spare[0]);
	give_back(spare[1]);
	cr_assert_eq(rc, 0);
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
		cr_expect_eq(h.proto, BH_IPPROTO_UDP);
		if (i == 0)
			id = h.id;
		cr_expect_eq(h.id, id, "one IP id for all fragments");
		cr_expect_eq(h.frag_off, off[i], "fragment %u", i);
		cr_expect_eq(h.mf, i < 2, "fragment %u", i);
		cr_assert_eq(h.payload_len, len[i], "fragment %u", i);
		memcpy(dgram + off[i], h.payload, len[i]);
	}
	cr_expect_eq(bh_ld16(dgram), 4000);
	cr_expect_eq(bh_ld16(dgram + 2), 7);
	cr_expect_eq(bh_ld16(dgram + 4), sizeof dgram);
	uint32_t sum = bh_ipv4_pseudo_sum(ENV_ADDR, PEER_ADDR, BH_IPPROTO_UDP, sizeof dgram);
	cr_expect_eq(bh_csum_fold(bh_csum_partial(dgram, sizeof dgram, sum)), 0, "UDP checksum");
	cr_expect_arr_eq(dgram + BH_UDP_HLEN, data, sizeof data);
	cr_expect_eq(env_ctr(&E, "frag_tx"), 3);
	cr_expect_eq(env_ctr(&E, "udp_tx"), 1);
	cr_expect_eq(E.in_use, 0);
}

/* Don't fragment: over the MTU fails with -EMSGSIZE, sends nothing, and
 * the buffer goes back (the library owns it whatever the result). */
Test(udp, dont_fragment_over_the_mtu_fails)
{
	resolve_peer();
	static uint8_t data[1481];
	fill(data, sizeof data, 6);
	struct bh_ip_tx tx = {.dst = PEER_ADDR, .proto = BH_IPPROTO_UDP, .df = true};
	struct bh_pkt p = env_buffer(&E, data, 1481);
	cr_expect_eq(bh_ip_output(E.ip, E.now, &p, &tx), -EMSGSIZE);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(env_ctr(&E, "ip_tx_too_big"), 1);
	cr_expect_eq(E.in_use, 0, "the buffer was released");
	/* Control: exactly the MTU goes, with DF set. */
	p = env_buffer(&E, data, 1480);
	cr_expect_eq(bh_ip_output(E.ip, E.now, &p, &tx), 0);
	cr_assert_eq(E.ntx, 1);
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, 0, &eth, &h));
	cr_expect(h.df);
	cr_expect(!h.mf);
	cr_expect_eq(h.payload_len, 1480);
	cr_expect_arr_eq(h.payload, data, 1480);
	cr_expect_eq(E.in_use, 0);
}

/* The port table against a plain set: random binds and unbinds, with the
 * table full and ports that collide, must agree on every answer (the
 * open-addressing deletion must never lose a binding). */
Test(udp, port_table_agrees_with_a_reference)
{
	static bool ref[65536];
	memset(ref, 0, sizeof ref);
	unsigned n = 0;
	uint32_t x = 12345;
	for (int op = 0; op < 200000; op++) {
		x = x * 1103515245u + 12345u;
		/* Ports from a small range, so probe runs form and break. */
		uint16_t port = (uint16_t)(1 + (x >> 16) % 600);
		if ((x >> 8) & 1) {
			int rc = bh_udp_bind(E.ip, port, port);
			if (ref[port])
				cr_assert_eq(rc, -EADDRINUSE, "op %d port %u", op, port);
			else if (n == 256)
				cr_assert_eq(rc, -ENOSPC, "op %d port %u", op, port);
			else {
				cr_assert_eq(rc, 0, "op %d port %u", op, port);
				ref[port] = true;
				n++;
			}
		} else {
			int rc = bh_udp_unbind(E.ip, port);
			cr_assert_eq(rc, ref[port] ? 0 : -ENOENT, "op %d port %u", op, port);
			if (ref[port]) {
				ref[port] = false;
				n--;
			}
		}
	}
	/* And datagrams find their bindings. */
	for (uint16_t port = 1; port <= 600; port++) {
		uint8_t u[64];
		size_t ul = build_udp(u, PEER_ADDR, ENV_ADDR, 9, port, "p", 1);
		struct ipspec s = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_UDP,
				   .id = port};
		uint32_t before = E.ndeliv;
		env_input(&E, F, build_ip(F, NULL, &s, u, ul));
		cr_assert_eq(E.ndeliv - before, ref[port] ? 1u : 0u, "port %u", port);
		if (ref[port] && E.ndeliv <= ENV_MAX_LOG)
			cr_expect_eq(E.deliv[E.ndeliv - 1].cookie, port);
		if (E.ndeliv >= ENV_MAX_LOG)
			env_clear_log(&E);
	}
}
