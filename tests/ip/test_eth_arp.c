/*
 * tests/ip/test_eth_arp.c - Ethernet II filtering and ARP: replies,
 * resolution and its queue, aging, announcements, conflicts, poisoning
 * and floods. Every test ends with every buffer back in the pool.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/ip/env.h"

static struct env E;
static uint8_t F[ENV_BUF_SIZE];
static const struct bh_mac BCAST = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
static const struct bh_mac ZERO = {{0}};

static void setup(void) { env_init(&E, NULL, 0); }
static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked or released twice"); }

TestSuite(eth, .init = setup, .fini = teardown);
TestSuite(arp, .init = setup, .fini = teardown);

/* A UDP datagram to a bound port, in a frame to eth_dst. */
static size_t udp_frame(const struct bh_mac *eth_dst, bh_ip4 dst, const char *msg)
{
	uint8_t u[256];
	size_t ul = build_udp(u, PEER_ADDR, dst, 5000, 53, msg, strlen(msg));
	struct ipspec s = {.src = PEER_ADDR, .dst = dst, .proto = BH_IPPROTO_UDP, .id = 1};
	return build_ip(F, eth_dst, &s, u, ul);
}

Test(eth, unicast_to_us_is_delivered)
{
	cr_assert_eq(bh_udp_bind(E.ip, 53, 77), 0);
	env_input(&E, F, udp_frame(&ENV_MAC, ENV_ADDR, "hello"));
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].len, 5);
	cr_expect_arr_eq(E.deliv[0].data, "hello", 5);
	cr_expect_eq(E.deliv[0].cookie, 77);
	cr_expect_eq(env_ctr(&E, "eth_rx"), 1);
}

Test(eth, other_mac_is_dropped)
{
	cr_assert_eq(bh_udp_bind(E.ip, 53, 1), 0);
	env_input(&E, F, udp_frame(&PEER2_MAC, ENV_ADDR, "x"));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "eth_not_ours"), 1);
}

Test(eth, broadcast_frame_to_broadcast_ip_is_delivered)
{
	cr_assert_eq(bh_udp_bind(E.ip, 53, 1), 0);
	env_input(&E, F, udp_frame(&BCAST, BH_IP4(10, 0, 0, 255), "b"));
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].cast, BH_IP_BROADCAST);
	env_input(&E, F, udp_frame(&BCAST, BH_IP4_BROADCAST, "b"));
	cr_expect_eq(E.ndeliv, 2);
}

/* RFC 1122 3.3.6: a unicast datagram in a link broadcast is discarded. */
Test(eth, unicast_ip_in_broadcast_frame_is_dropped)
{
	cr_assert_eq(bh_udp_bind(E.ip, 53, 1), 0);
	env_input(&E, F, udp_frame(&BCAST, ENV_ADDR, "x"));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "ip_not_ours"), 1);
}

Test(eth, multicast_only_when_joined)
{
	bh_ip4 g = BH_IP4(239, 1, 2, 3);
	struct bh_mac gm = bh_mac_of_group(g);
	cr_expect_arr_eq(gm.b, ((uint8_t[]){0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}), 6);
	cr_assert_eq(bh_udp_bind(E.ip, 53, 1), 0);
	env_input(&E, F, udp_frame(&gm, g, "m"));
	cr_expect_eq(E.ndeliv, 0);
	cr_expect_eq(env_ctr(&E, "eth_not_ours"), 1);
	cr_assert_eq(bh_ip_join(E.ip, g), 0);
	cr_expect_eq(bh_ip_join(E.ip, g), -EEXIST);
	cr_expect_eq(bh_ip_join(E.ip, ENV_ADDR), -EINVAL);
	env_input(&E, F, udp_frame(&gm, g, "m"));
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].cast, BH_IP_MULTICAST);
	/* The MAC of another group that maps elsewhere is not ours. */
	bh_ip4 g2 = BH_IP4(239, 1, 2, 4);
	struct bh_mac gm2 = bh_mac_of_group(g2);
	env_input(&E, F, udp_frame(&gm2, g2, "m"));
	cr_expect_eq(E.ndeliv, 1);
	cr_assert_eq(bh_ip_leave(E.ip, g), 0);
	env_input(&E, F, udp_frame(&gm, g, "m"));
	cr_expect_eq(E.ndeliv, 1);
	cr_expect_eq(env_ctr(&E, "eth_not_ours"), 3);
}

Test(eth, malformed_frames_are_counted)
{
	size_t n = udp_frame(&ENV_MAC, ENV_ADDR, "x");
	env_input(&E, F, 13); /* truncated header */
	env_input(&E, F, 0);
	cr_expect_eq(env_ctr(&E, "eth_bad"), 2);
	bh_st16(F + 12, 1500); /* an 802.3 length field */
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "eth_bad"), 3);
	bh_st16(F + 12, BH_ETHERTYPE_VLAN);
	env_input(&E, F, n);
	bh_st16(F + 12, BH_ETHERTYPE_QINQ);
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "eth_vlan"), 2);
	bh_st16(F + 12, 0x86dd);
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "eth_unknown_type"), 1);
	n = udp_frame(&ENV_MAC, ENV_ADDR, "x");
	F[6] |= 1; /* group source address */
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "eth_bad"), 4);
	n = udp_frame(&ENV_MAC, ENV_ADDR, "x");
	memcpy(F + 6, ENV_MAC.b, 6); /* our own frame looped back */
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "eth_own_src"), 1);
	cr_expect_eq(E.ndeliv + E.ntx, 0);
}

Test(eth, lying_buffer_span_is_refused)
{
	struct bh_pkt p = env_buffer(&E, F, 60);
	p.len = ENV_BUF_SIZE; /* off + len past the end */
	p.writable = false;
	bh_ip_input(E.ip, 0, &p);
	cr_expect_eq(env_ctr(&E, "eth_bad"), 1);
}

/* ---- ARP ---- */

static void arp_in(const struct bh_mac *eth_dst, uint16_t op, const struct bh_mac *sha, bh_ip4 spa,
		   const struct bh_mac *tha, bh_ip4 tpa)
{
	size_t n = build_arp(F, eth_dst, sha, op, sha, spa, tha, tpa);
	env_input(&E, F, n);
}

static unsigned arp_entries(struct bh_arp_info *out, unsigned n)
{
	return bh_ip_arp_list(E.ip, out, n);
}

Test(arp, request_for_us_gets_exact_reply)
{
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR, &ZERO, ENV_ADDR);
	cr_assert_eq(E.ntx, 1);
	cr_expect_eq(E.tx[0].len, 42);
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	cr_assert(env_tx_arp(&E, 0, &eth, &a));
	cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
	cr_expect(bh_mac_eq(&eth.src, &ENV_MAC));
	cr_expect_eq(a.op, BH_ARP_REPLY);
	cr_expect(bh_mac_eq(&a.sha, &ENV_MAC));
	cr_expect_eq(a.spa, ENV_ADDR);
	cr_expect(bh_mac_eq(&a.tha, &PEER_MAC));
	cr_expect_eq(a.tpa, PEER_ADDR);
	/* RFC 826: the requester is learned (as stale: not yet confirmed). */
	struct bh_arp_info info[4];
	cr_assert_eq(arp_entries(info, 4), 1);
	cr_expect_eq(info[0].addr, PEER_ADDR);
	cr_expect_eq(info[0].state, BH_ARP_STALE);
	cr_expect(bh_mac_eq(&info[0].mac, &PEER_MAC));
}

Test(arp, request_for_others_teaches_nothing)
{
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR, &ZERO, PEER2_ADDR);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(arp_entries(NULL, 0), 0);
}

/* Sends a UDP datagram from us to dst; returns bh_udp_output's result. */
static int send_udp(bh_ip4 dst, const char *msg)
{
	struct bh_pkt p = env_buffer(&E, msg, (uint32_t)strlen(msg));
	return bh_udp_output(E.ip, E.now, &p, 4000, dst, 7);
}

Test(arp, unsolicited_reply_does_not_poison)
{
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER2_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	cr_expect_eq(env_ctr(&E, "arp_unsolicited"), 1);
	cr_expect_eq(arp_entries(NULL, 0), 0);
	/* Sending to that address still asks, by broadcast. */
	cr_expect_eq(send_udp(PEER_ADDR, "x"), 1);
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	cr_assert(env_tx_arp(&E, 0, &eth, &a));
	cr_expect(bh_mac_is_broadcast(&eth.dst));
	cr_expect_eq(a.op, BH_ARP_REQUEST);
	cr_expect_eq(a.tpa, PEER_ADDR);
	cr_expect_eq(a.spa, ENV_ADDR);
}

Test(arp, resolution_sends_the_queued_datagrams_in_order)
{
	cr_expect_eq(send_udp(PEER_ADDR, "one"), 1);
	cr_expect_eq(send_udp(PEER_ADDR, "two"), 1);
	cr_expect_eq(send_udp(PEER_ADDR, "three"), 1);
	cr_expect_eq(E.ntx, 1, "one request, not one per datagram");
	cr_expect_eq(bh_ip_held(E.ip), 3);
	E.now = 10;
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	cr_assert_eq(E.ntx, 4);
	const char *want[] = {"one", "two", "three"};
	for (unsigned i = 0; i < 3; i++) {
		struct bh_eth_repr eth;
		struct bh_ipv4_repr h;
		cr_assert(env_tx_ipv4(&E, 1 + i, &eth, &h));
		cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC));
		cr_expect_eq(h.dst, PEER_ADDR);
		cr_expect_eq(h.payload_len, 8 + strlen(want[i]));
		cr_expect_arr_eq(h.payload + 8, want[i], strlen(want[i]));
	}
	cr_expect_eq(bh_ip_held(E.ip), 0);
	/* Now resolved: the next datagram goes at once. */
	cr_expect_eq(send_udp(PEER_ADDR, "four"), 0);
	cr_expect_eq(E.ntx, 5);
}

Test(arp, off_link_destination_resolves_the_gateway)
{
	cr_expect_eq(send_udp(FAR_ADDR, "x"), 1);
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	cr_assert(env_tx_arp(&E, 0, &eth, &a));
	cr_expect_eq(a.tpa, GW_ADDR);
}

Test(arp, failure_reports_host_unreachable_and_frees_the_queue)
{
	E.now = 0;
	cr_expect_eq(send_udp(PEER_ADDR, "a"), 1);
	cr_expect_eq(send_udp(PEER_ADDR, "b"), 1);
	uint64_t next = env_tick(&E, 0);
	cr_expect_eq(next, 1000);
	env_tick(&E, 999);
	cr_expect_eq(E.ntx, 1);
	env_tick(&E, 1000);
	cr_expect_eq(E.ntx, 2);
	env_tick(&E, 2000);
	cr_expect_eq(E.ntx, 3, "three requests (arp_tries)");
	cr_expect_eq(E.nev, 0);
	env_tick(&E, 3000);
	cr_expect_eq(E.ntx, 3);
	cr_assert_eq(E.nev, 2);
	for (unsigned i = 0; i < 2; i++) {
		cr_expect_eq(E.ev[i].type, BH_IP_EV_HOST_UNREACH);
		cr_expect_eq(E.ev[i].proto, BH_IPPROTO_UDP);
		cr_expect_eq(E.ev[i].dst, PEER_ADDR);
		cr_expect_eq(E.ev[i].sport, 4000);
		cr_expect_eq(E.ev[i].dport, 7);
	}
	cr_expect_eq(env_ctr(&E, "arp_timeouts"), 1);
	cr_expect_eq(env_ctr(&E, "arp_queue_drops"), 2);
	cr_expect_eq(bh_ip_held(E.ip), 0);
	cr_expect_eq(arp_entries(NULL, 0), 0);
	cr_expect_eq(E.in_use, 0);
}

Test(arp, queue_per_host_keeps_the_newest)
{
	char msg[16];
	for (int i = 0; i < 10; i++) {
		snprintf(msg, sizeof msg, "m%d", i);
		cr_expect_eq(send_udp(PEER_ADDR, msg), 1);
	}
	cr_expect_eq(bh_ip_held(E.ip), 8);
	cr_expect_eq(env_ctr(&E, "arp_queue_drops"), 2);
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	cr_assert_eq(E.ntx, 9);
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	cr_assert(env_tx_ipv4(&E, 1, &eth, &h));
	cr_expect_arr_eq(h.payload + 8, "m2", 2, "the two oldest gave way");
	cr_assert(env_tx_ipv4(&E, 8, &eth, &h));
	cr_expect_arr_eq(h.payload + 8, "m9", 2);
}

Test(arp, queue_in_all_is_bounded)
{
	env_fini(&E);
	struct bh_ip_config c;
	env_default_config(&c);
	c.arp_queue = 4;
	c.arp_queue_per_host = 2;
	env_init(&E, &c, 0);
	for (int i = 0; i < 6; i++)
		send_udp(BH_IP4(10, 0, 0, (uint8_t)(20 + i)), "x");
	cr_expect_eq(bh_ip_held(E.ip), 4);
	cr_expect_eq(env_ctr(&E, "arp_queue_drops"), 2);
}

Test(arp, table_is_bounded_and_evicts_least_recently_used)
{
	env_fini(&E);
	struct bh_ip_config c;
	env_default_config(&c);
	c.arp_entries = 2;
	env_init(&E, &c, 0);
	struct bh_mac m1 = PEER_MAC, m2 = PEER2_MAC;
	/* Two resolved hosts; the first used more recently. */
	E.now = 1;
	send_udp(PEER2_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &m2, PEER2_ADDR, &ENV_MAC, ENV_ADDR);
	E.now = 2;
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &m1, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	E.now = 3;
	send_udp(PEER_ADDR, "x");
	/* A third pushes out the least recently used one (PEER2). */
	send_udp(BH_IP4(10, 0, 0, 30), "x");
	struct bh_arp_info info[4];
	cr_assert_eq(arp_entries(info, 4), 2);
	bool have_peer = false, have_peer2 = false;
	for (int i = 0; i < 2; i++) {
		have_peer |= info[i].addr == PEER_ADDR;
		have_peer2 |= info[i].addr == PEER2_ADDR;
	}
	cr_expect(have_peer && !have_peer2);
	cr_expect_eq(env_ctr(&E, "arp_evicted"), 1);
	/* Both slots pending: a further resolution is refused, not queued. */
	send_udp(BH_IP4(10, 0, 0, 31), "x");
	cr_expect_eq(send_udp(BH_IP4(10, 0, 0, 32), "x"), -EHOSTUNREACH);
	cr_expect_eq(env_ctr(&E, "arp_table_full"), 1);
}

Test(arp, aging_refreshes_by_unicast_then_forgets)
{
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	env_clear_log(&E);
	env_tick(&E, 30000);
	struct bh_arp_info info[1];
	cr_assert_eq(arp_entries(info, 1), 1);
	cr_expect_eq(info[0].state, BH_ARP_STALE);
	/* Used while stale: the datagram goes; after the 5 s delay a unicast
	 * request checks. */
	cr_expect_eq(send_udp(PEER_ADDR, "y"), 0);
	cr_expect_eq(E.ntx, 1, "no request during the delay");
	E.now = 34999;
	cr_expect_eq(send_udp(PEER_ADDR, "y"), 0);
	cr_expect_eq(E.ntx, 2);
	env_clear_log(&E);
	E.now = 35000;
	cr_expect_eq(send_udp(PEER_ADDR, "y"), 0);
	cr_assert_eq(E.ntx, 2);
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	cr_assert(env_tx_arp(&E, 0, &eth, &a));
	cr_expect(bh_mac_eq(&eth.dst, &PEER_MAC), "refresh is unicast");
	/* The answer makes it reachable again. */
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	arp_entries(info, 1);
	cr_expect_eq(info[0].state, BH_ARP_REACHABLE);
	/* Unused and unconfirmed for arp_stale_ms: gone. */
	env_tick(&E, 35000 + 59999);
	cr_expect_eq(arp_entries(info, 1), 1);
	env_tick(&E, 35000 + 60000);
	cr_expect_eq(arp_entries(info, 1), 0);
}

Test(arp, silent_stale_entry_is_resolved_afresh)
{
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	env_tick(&E, 30000);
	env_clear_log(&E);
	for (uint64_t t = 30000; t <= 38000; t += 1000) {
		E.now = t;
		send_udp(PEER_ADDR, "x");
	}
	/* After the 5 s delay, three unicast refreshes went unanswered; the
	 * next use asks by broadcast and queues. */
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	unsigned unicast = 0, broadcast = 0;
	for (unsigned i = 0; i < E.ntx; i++) {
		if (!env_tx_arp(&E, i, &eth, &a))
			continue;
		if (bh_mac_is_broadcast(&eth.dst))
			broadcast++;
		else
			unicast++;
	}
	cr_expect_eq(unicast, 3);
	cr_expect_eq(broadcast, 1);
	cr_expect_eq(bh_ip_held(E.ip), 1);
}

Test(arp, announces_twice_on_start)
{
	bh_ip_start(E.ip, 0);
	cr_assert_eq(E.ntx, 1);
	uint64_t next = env_tick(&E, 1);
	cr_expect_eq(next, 2000);
	env_tick(&E, 2000);
	cr_assert_eq(E.ntx, 2);
	env_tick(&E, 10000);
	cr_expect_eq(E.ntx, 2);
	for (unsigned i = 0; i < 2; i++) {
		struct bh_eth_repr eth;
		struct bh_arp_repr a;
		cr_assert(env_tx_arp(&E, i, &eth, &a));
		cr_expect(bh_mac_is_broadcast(&eth.dst));
		cr_expect_eq(a.op, BH_ARP_REQUEST);
		cr_expect_eq(a.spa, ENV_ADDR);
		cr_expect_eq(a.tpa, ENV_ADDR, "RFC 5227 announcement: target is ourselves");
		cr_expect(bh_mac_is_zero(&a.tha));
	}
}

Test(arp, conflict_is_reported_and_defended_at_most_every_10s)
{
	E.now = 100;
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, ENV_ADDR, &ZERO, ENV_ADDR);
	cr_expect_eq(env_ctr(&E, "arp_conflicts"), 1);
	cr_assert_eq(E.nev, 1);
	cr_expect_eq(E.ev[0].type, BH_IP_EV_ADDR_CONFLICT);
	cr_expect(bh_mac_eq(&E.ev[0].mac, &PEER_MAC));
	cr_assert_eq(E.ntx, 1, "one defending announcement");
	E.now = 5000;
	arp_in(&BCAST, BH_ARP_REPLY, &PEER_MAC, ENV_ADDR, &ZERO, ENV_ADDR);
	cr_expect_eq(E.ntx, 1, "no second defence within 10 s");
	E.now = 10100;
	arp_in(&BCAST, BH_ARP_REPLY, &PEER_MAC, ENV_ADDR, &ZERO, ENV_ADDR);
	cr_expect_eq(E.ntx, 2);
	cr_expect_eq(arp_entries(NULL, 0), 0, "the claimant is not learned");
}

Test(arp, first_answer_wins_within_locktime)
{
	send_udp(PEER_ADDR, "x");
	E.now = 5;
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	E.now = 500;
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER2_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	struct bh_arp_info info[1];
	cr_assert_eq(arp_entries(info, 1), 1);
	cr_expect(bh_mac_eq(&info[0].mac, &PEER_MAC));
	/* After the lock time a changed address is taken (RFC 826 merge:
	 * hosts do change cards). */
	E.now = 1500;
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER2_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	arp_entries(info, 1);
	cr_expect(bh_mac_eq(&info[0].mac, &PEER2_MAC));
}

Test(arp, probe_is_answered_and_not_learned)
{
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, 0, &ZERO, ENV_ADDR);
	cr_expect_eq(E.ntx, 1);
	cr_expect_eq(arp_entries(NULL, 0), 0);
}

Test(arp, malformed_and_bogus_packets_are_counted)
{
	size_t n = build_arp(F, &BCAST, &PEER_MAC, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR, &ZERO,
			     ENV_ADDR);
	env_input(&E, F, n - 1);
	cr_expect_eq(env_ctr(&E, "arp_bad"), 1);
	F[BH_ETH_HLEN + 1] = 2; /* hardware type 2 */
	env_input(&E, F, n);
	n = build_arp(F, &BCAST, &PEER_MAC, 3, &PEER_MAC, PEER_ADDR, &ZERO, ENV_ADDR);
	env_input(&E, F, n);
	cr_expect_eq(env_ctr(&E, "arp_bad"), 3);
	struct bh_mac grp = {{0x01, 0, 0, 0, 0, 1}};
	n = build_arp(F, &BCAST, &PEER_MAC, BH_ARP_REQUEST, &grp, PEER_ADDR, &ZERO, ENV_ADDR);
	env_input(&E, F, n);
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, BH_IP4(224, 0, 0, 1), &ZERO, ENV_ADDR);
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, BH_IP4(10, 0, 0, 255), &ZERO, ENV_ADDR);
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, BH_IP4(127, 0, 0, 1), &ZERO, ENV_ADDR);
	cr_expect_eq(env_ctr(&E, "arp_bad_sender"), 4);
	cr_expect_eq(E.ntx, 0);
	cr_expect_eq(arp_entries(NULL, 0), 0);
}

/* A flood of requests from forged senders: the table stays bounded, the
 * hosts we talk to stay, and replies are rate-limited. */
Test(arp, flood_cannot_push_out_live_entries)
{
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	env_clear_log(&E);
	for (uint32_t i = 0; i < 5000; i++) {
		struct bh_mac m = {{0x02, 0x10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 1}};
		arp_in(&BCAST, BH_ARP_REQUEST, &m, BH_IP4(10, 0, 0, 0) + 20 + (i % 200), &ZERO,
		       ENV_ADDR);
	}
	struct bh_arp_info info[128];
	unsigned n = arp_entries(info, 128);
	/* The clock never moves: nothing goes stale, so the flood can only
	 * fill the free slots, never evict. */
	cr_expect_eq(n, 64, "the table is full");
	cr_expect_eq(env_ctr(&E, "arp_evicted"), 0);
	bool live = false;
	for (unsigned i = 0; i < n && i < 128; i++)
		if (info[i].addr == PEER_ADDR && info[i].state == BH_ARP_REACHABLE &&
		    bh_mac_eq(&info[i].mac, &PEER_MAC))
			live = true;
	cr_expect(live, "the resolved peer survived the flood");
	cr_expect_eq(E.ntx, 100, "the reply burst, then the limit");
	cr_expect_eq(env_ctr(&E, "arp_replies_limited"), 4900);
	cr_expect_eq(E.in_use, 0);
}

/* A transport that retries from the "host unreachable" handler starts a
 * fresh resolution; nothing of the dropped queue leaks into it. */
static void retry_on_unreach(struct env *e, const struct bh_ip_event *ev)
{
	if (ev->type != BH_IP_EV_HOST_UNREACH || e->nev > 2)
		return;
	struct bh_pkt p = env_buffer(e, "retry", 5);
	bh_udp_output(e->ip, e->now, &p, 4000, ev->dst, 7);
}

Test(arp, retry_from_the_unreachable_handler_starts_afresh)
{
	E.on_event = retry_on_unreach;
	send_udp(PEER_ADDR, "a");
	send_udp(PEER_ADDR, "b");
	env_tick(&E, 1000);
	env_tick(&E, 2000);
	env_tick(&E, 3000);
	cr_assert_eq(E.nev, 2, "both datagrams reported");
	cr_expect_eq(bh_ip_held(E.ip), 2, "the two retries wait on a new resolution");
	struct bh_arp_info info[2];
	cr_assert_eq(arp_entries(info, 2), 1);
	cr_expect_eq(info[0].state, BH_ARP_INCOMPLETE);
	cr_expect_eq(info[0].queued, 2);
	/* Another host takes the free slot; none of PEER's datagrams goes to it. */
	E.on_event = NULL;
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	env_clear_log(&E);
	send_udp(PEER2_ADDR, "c");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER2_MAC, PEER2_ADDR, &ENV_MAC, ENV_ADDR);
	struct bh_eth_repr eth;
	struct bh_ipv4_repr h;
	unsigned to_peer2 = 0;
	for (unsigned i = 0; i < E.ntx; i++)
		if (env_tx_ipv4(&E, i, &eth, &h)) {
			cr_expect_eq(h.dst, PEER2_ADDR);
			cr_expect(bh_mac_eq(&eth.dst, &PEER2_MAC));
			to_peer2++;
		}
	cr_expect_eq(to_peer2, 1);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

Test(arp, never_resolves_our_own_address)
{
	cr_expect_eq(send_udp(ENV_ADDR, "me"), -EINVAL);
	cr_expect_eq(E.ntx, 0);
}

Test(arp, sender_in_this_network_is_bogus)
{
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER_MAC, BH_IP4(0, 1, 2, 3), &ZERO, ENV_ADDR);
	cr_expect_eq(env_ctr(&E, "arp_bad_sender"), 1);
	cr_expect_eq(arp_entries(NULL, 0), 0);
	cr_expect_eq(E.ntx, 0);
}

/* A flood of requests may only take slots of stale entries idle for the
 * reachable time, never one we are using. */
Test(arp, requests_evict_only_idle_stale_entries)
{
	env_fini(&E);
	struct bh_ip_config c;
	env_default_config(&c);
	c.arp_entries = 2;
	env_init(&E, &c, 0);
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	send_udp(PEER2_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER2_MAC, PEER2_ADDR, &ENV_MAC, ENV_ADDR);
	env_tick(&E, 40000); /* both stale now */
	E.now = 40000;
	send_udp(PEER_ADDR, "x"); /* PEER in use (and being checked) */
	struct bh_mac m = {{0x02, 0x33, 0, 0, 0, 1}};
	arp_in(&BCAST, BH_ARP_REQUEST, &m, BH_IP4(10, 0, 0, 77), &ZERO, ENV_ADDR);
	struct bh_arp_info info[2];
	cr_assert_eq(arp_entries(info, 2), 2);
	bool peer = false, idle_gone = true;
	for (int i = 0; i < 2; i++) {
		peer |= info[i].addr == PEER_ADDR;
		idle_gone &= info[i].addr != PEER2_ADDR;
	}
	cr_expect(peer, "the entry in use stays");
	cr_expect(idle_gone, "the idle stale entry gave way");
	/* The next requester finds nothing it may take. */
	struct bh_mac m2 = {{0x02, 0x33, 0, 0, 0, 2}};
	arp_in(&BCAST, BH_ARP_REQUEST, &m2, BH_IP4(10, 0, 0, 78), &ZERO, ENV_ADDR);
	arp_entries(info, 2);
	cr_expect(info[0].addr != BH_IP4(10, 0, 0, 78) && info[1].addr != BH_IP4(10, 0, 0, 78));
}

/* A changed address heard in passing (here a gratuitous request, as a
 * frame corrupted on the way or a stranger's could carry) is taken but
 * not trusted: stale, checked by unicast after the delay even with no
 * datagram going (the tick drives the check), and, unanswered, resolved
 * afresh by broadcast; the true owner's answer restores it. Taken as
 * reachable, a wrong address would swallow every frame for 30 s, and
 * the check would wait on the datagrams a stalled connection sends ever
 * more rarely. */
Test(arp, a_changed_address_heard_in_passing_is_checked)
{
	send_udp(PEER_ADDR, "x");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	E.now = 2000; /* past the lock time */
	arp_in(&BCAST, BH_ARP_REQUEST, &PEER2_MAC, PEER_ADDR, &ZERO, PEER_ADDR);
	struct bh_arp_info info[1];
	cr_assert_eq(arp_entries(info, 1), 1);
	cr_expect(bh_mac_eq(&info[0].mac, &PEER2_MAC), "taken (RFC 826 merge)");
	cr_expect_eq(info[0].state, BH_ARP_STALE, "but not as reachable");
	env_clear_log(&E);
	cr_expect_eq(send_udp(PEER_ADDR, "y"), 0, "in use while checked");
	cr_expect_eq(E.ntx, 1);
	/* No more datagrams: the tick sends the checks. */
	struct bh_eth_repr eth;
	struct bh_arp_repr a;
	unsigned unicast = 0, broadcast = 0;
	for (uint64_t t = 2000; t <= 2000 + 5000 + 4 * 1000; t += 250) {
		env_tick(&E, t);
		for (unsigned i = 0; i < E.ntx; i++) {
			if (!env_tx_arp(&E, i, &eth, &a))
				continue;
			if (bh_mac_is_broadcast(&eth.dst))
				broadcast++;
			else if (bh_mac_eq(&eth.dst, &PEER2_MAC))
				unicast++;
		}
		env_clear_log(&E);
	}
	cr_expect_eq(unicast, 3, "three unicast checks after the delay");
	cr_expect_geq(broadcast, 1, "then resolved afresh by broadcast");
	arp_in(&ENV_MAC, BH_ARP_REPLY, &PEER_MAC, PEER_ADDR, &ENV_MAC, ENV_ADDR);
	cr_assert_eq(arp_entries(info, 1), 1);
	cr_expect(bh_mac_eq(&info[0].mac, &PEER_MAC), "the owner's address again");
	cr_expect_eq(info[0].state, BH_ARP_REACHABLE);
}
