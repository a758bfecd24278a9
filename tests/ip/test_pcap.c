/*
 * tests/ip/test_pcap.c - the library against real captures.
 *
 * tests/data/make_captures.sh recorded Linux talking to Linux over a veth
 * pair (A = 10.9.0.1, B = 10.9.0.2; ping, ping -s 4000, a fragmented UDP
 * datagram, a datagram to a closed port). Here the library plays B: every
 * frame A sent is read back with libpcap and fed in at its capture time,
 * and what the library sends must be what Linux's B sent, frame by frame:
 * ARP replies byte for byte; IPv4 frames with the same Ethernet addresses,
 * the same header fields but the IP ID and header checksum (IDs are each
 * stack's own), and the same IP payload byte for byte (so the same ICMP
 * checksums, fragment boundaries and quoted headers).
 */
#include <criterion/criterion.h>
#include <pcap/pcap.h>
#include <string.h>

#include "tests/ip/env.h"

static const struct bh_mac MAC_B = {{2, 0, 0, 0, 0, 2}};
#define ADDR_B BH_IP4(10, 9, 0, 2)

#define MAX_FRAMES 64

struct capture {
	unsigned n;
	uint32_t len[MAX_FRAMES];
	uint64_t ms[MAX_FRAMES];
	uint8_t data[MAX_FRAMES][ENV_BUF_SIZE];
};

static struct capture CAP;
static struct env E;

static void load(const char *name)
{
	char path[256], err[PCAP_ERRBUF_SIZE];
	snprintf(path, sizeof path, "tests/data/%s", name);
	pcap_t *p = pcap_open_offline(path, err);
	cr_assert_not_null(p, "%s: %s", path, err);
	cr_assert_eq(pcap_datalink(p), DLT_EN10MB);
	struct pcap_pkthdr *h;
	const u_char *bytes;
	CAP.n = 0;
	uint64_t t0 = 0;
	while (pcap_next_ex(p, &h, &bytes) == 1) {
		cr_assert_lt(CAP.n, MAX_FRAMES);
		cr_assert_eq(h->caplen, h->len, "a whole frame");
		cr_assert_leq(h->caplen, ENV_BUF_SIZE - ENV_HEADROOM);
		uint64_t ms = (uint64_t)h->ts.tv_sec * 1000 + (uint64_t)h->ts.tv_usec / 1000;
		if (CAP.n == 0)
			t0 = ms;
		CAP.ms[CAP.n] = 1000 + ms - t0;
		CAP.len[CAP.n] = h->caplen;
		memcpy(CAP.data[CAP.n], bytes, h->caplen);
		CAP.n++;
	}
	pcap_close(p);
	cr_assert_gt(CAP.n, 0);
}

static bool from_b(unsigned i) { return memcmp(CAP.data[i] + 6, MAC_B.b, 6) == 0; }

/* Plays B: feeds A's frames in at their times. */
static void replay(void)
{
	struct bh_ip_config c;
	env_default_config(&c);
	c.mac = MAC_B;
	c.addr = ADDR_B;
	c.prefix_len = 24;
	c.gateway = 0;
	env_init(&E, &c, 0);
	for (unsigned i = 0; i < CAP.n; i++) {
		if (from_b(i))
			continue;
		env_tick(&E, CAP.ms[i]);
		env_input(&E, CAP.data[i], CAP.len[i]);
	}
}

/* Linux's B frames and ours, one for one. */
static void expect_same_output(void)
{
	unsigned k = 0;
	for (unsigned i = 0; i < CAP.n; i++) {
		if (!from_b(i))
			continue;
		cr_assert_lt(k, E.ntx, "Linux sent frame %u, we sent only %u frames", i, E.ntx);
		const uint8_t *lx = CAP.data[i];
		const struct env_frame *us = &E.tx[k];
		cr_assert_eq(us->len, CAP.len[i], "frame %u: length %u, Linux %u", i, us->len,
			     CAP.len[i]);
		uint16_t type = bh_ld16(lx + 12);
		if (type == BH_ETHERTYPE_ARP) {
			cr_expect_arr_eq(us->data, lx, CAP.len[i], "frame %u: ARP differs", i);
		} else {
			cr_assert_eq(type, BH_ETHERTYPE_IPV4);
			cr_expect_arr_eq(us->data, lx, BH_ETH_HLEN, "frame %u: Ethernet", i);
			const uint8_t *a = us->data + BH_ETH_HLEN, *b = lx + BH_ETH_HLEN;
			cr_expect_arr_eq(a, b, 4, "frame %u: version, TOS, length", i);
			cr_expect_arr_eq(a + 6, b + 6, 4, "frame %u: flags, offset, TTL, protocol", i);
			cr_expect_arr_eq(a + 12, b + 12, 8, "frame %u: addresses", i);
			unsigned hl = (b[0] & 0xf) * 4u;
			cr_expect_arr_eq(a + hl, b + hl, CAP.len[i] - BH_ETH_HLEN - hl,
					 "frame %u: IP payload differs", i);
		}
		k++;
	}
	cr_expect_eq(k, E.ntx, "we sent %u frames, Linux %u", E.ntx, k);
}

static void teardown(void) { cr_expect_eq(env_fini(&E), 0, "buffers leaked"); }

TestSuite(pcap, .fini = teardown);

Test(pcap, arp_and_ping_match_linux)
{
	load("arp_ping.pcap");
	replay();
	expect_same_output();
	cr_expect_eq(env_ctr(&E, "icmp_echo_tx"), 3);
	cr_expect_eq(env_ctr(&E, "arp_replies_tx"), 1);
}

Test(pcap, fragmented_ping_matches_linux)
{
	load("ping_frag.pcap");
	replay();
	expect_same_output();
	cr_expect_eq(env_ctr(&E, "reasm_ok"), 2);
	cr_expect_eq(env_ctr(&E, "frag_tx"), 6);
	cr_expect_eq(bh_ip_held(E.ip), 0);
}

Test(pcap, fragmented_udp_and_closed_port_match_linux)
{
	load("udp_frag.pcap");
	/* Linux had a listener on 9000 and none on 9001. */
	struct bh_ip_config c;
	env_default_config(&c);
	c.mac = MAC_B;
	c.addr = ADDR_B;
	c.gateway = 0;
	env_init(&E, &c, 0);
	cr_assert_eq(bh_udp_bind(E.ip, 9000, 9000), 0);
	for (unsigned i = 0; i < CAP.n; i++) {
		if (from_b(i))
			continue;
		env_tick(&E, CAP.ms[i]);
		env_input(&E, CAP.data[i], CAP.len[i]);
	}
	expect_same_output();
	cr_assert_eq(E.ndeliv, 1);
	cr_expect_eq(E.deliv[0].len, 3000);
	cr_expect_eq(E.deliv[0].npieces, 3);
	cr_expect_eq(E.deliv[0].sport, 40000);
	cr_expect_eq(E.deliv[0].dport, 9000);
	/* The delivered bytes are the capture's UDP payload. */
	uint8_t want[3000];
	unsigned at = 0;
	for (unsigned i = 0; i < CAP.n && at < 3000; i++) {
		const uint8_t *ip = CAP.data[i] + BH_ETH_HLEN;
		if (from_b(i) || bh_ld16(CAP.data[i] + 12) != BH_ETHERTYPE_IPV4 || ip[9] != 17 ||
		    bh_ld16(ip + 4) != bh_ld16(CAP.data[2] + BH_ETH_HLEN + 4))
			continue;
		unsigned hl = (ip[0] & 0xf) * 4u, plen = bh_ld16(ip + 2) - hl;
		unsigned off = (bh_ld16(ip + 6) & 0x1fff) * 8u;
		const uint8_t *p = ip + hl;
		if (off == 0) { /* skip the UDP header */
			p += 8;
			plen -= 8;
		} else {
			off -= 8;
		}
		cr_assert_leq(off + plen, sizeof want);
		memcpy(want + off, p, plen);
		at += plen;
	}
	cr_assert_eq(at, 3000);
	cr_expect_arr_eq(E.deliv[0].data, want, 3000);
}
