/*
 * fuzz/ip_input_fuzz.c - the IP library's frame input path, driven by
 * fuzzer input, with its output paths and timers in the mix.
 *
 * The input is a script of records, each [op][len hi][len lo][bytes]:
 *   op & 7 == 0  a frame from the wire (bit 0x40: fix the IPv4, UDP and
 *                ICMP checksums first, so the fuzzer gets past them)
 *   op & 7 == 1  advance time by the first two bytes, in milliseconds x 16
 *   op & 7 == 2  send a UDP datagram of `len` bytes to the address in the
 *                first byte (10.0.0.x), from port 4000
 *   op & 7 == 3  bind (or unbind, if bound) the UDP port in the first two bytes
 *   op & 7 == 4  run out of buffers (bit 0x40) or have them back
 *   op & 7 == 5  a large frame in a chain of buffers (bh_ip_input_chain):
 *                the first byte sets the piece size (134 + byte), the
 *                rest is the frame, at most ENV_BUF_SIZE bytes (bit 0x40:
 *                checksums fixed first, as for op 0)
 * After every record, and at the end, the invariants must hold: no buffer
 * released twice or unknown to the pool, and, once the stack is destroyed,
 * every buffer back (the environment counts all three); and every byte
 * delivered upward is a byte the wire sent, at its place: each delivered
 * datagram (a UDP payload, or a whole transport payload) is covered, byte
 * for byte at its offset in the datagram, by the frames that arrived with
 * its source, destination, protocol and identification (one frame, or the
 * fragments it was reassembled from). ASan and UBSan watch for the rest.
 * Liveness, at the end: once the hostile input stops and time passes, the
 * stack still serves an honest peer that announces itself with ARP: its
 * ping is answered, its UDP datagram delivered, and one sent to it goes
 * out (check_alive).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"
#include "tests/ip/env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fix_checksums(uint8_t *f, size_t len)
{
	if (len < BH_ETH_HLEN + BH_IPV4_HLEN || bh_ld16(f + 12) != BH_ETHERTYPE_IPV4)
		return;
	uint8_t *h = f + BH_ETH_HLEN;
	size_t avail = len - BH_ETH_HLEN;
	size_t hl = (size_t)(h[0] & 0xf) * 4;
	if (hl < BH_IPV4_HLEN || hl > avail)
		return;
	h[10] = h[11] = 0;
	uint16_t c = bh_csum_fold(bh_csum_partial(h, hl, 0));
	memcpy(h + 10, &c, 2);
	size_t total = bh_ld16(h + 2);
	if (total > avail || total < hl || (bh_ld16(h + 6) & 0x3fff))
		return; /* bad length or a fragment: leave the transport alone */
	uint8_t *t = h + hl;
	size_t tl = total - hl;
	if (h[9] == BH_IPPROTO_ICMP && tl >= 8) {
		t[2] = t[3] = 0;
		c = bh_csum_fold(bh_csum_partial(t, tl, 0));
		memcpy(t + 2, &c, 2);
	} else if (h[9] == BH_IPPROTO_UDP && tl >= 8) {
		size_t ul = bh_ld16(t + 4);
		if (ul < 8 || ul > tl)
			return;
		t[6] = t[7] = 0;
		uint32_t s = bh_ipv4_pseudo_sum(bh_ld32(h + 12), bh_ld32(h + 16), BH_IPPROTO_UDP,
						(uint16_t)ul);
		c = bh_csum_fold(bh_csum_partial(t, ul, s));
		memcpy(t + 6, &c, 2);
	}
}

/* What the wire sent: the IPv4 datagrams (or fragments) of the frames fed
 * in this run, each with its payload at its offset in the datagram. */
#define SENT_MAX 256
static struct sent {
	bh_ip4 src, dst;
	uint16_t id;
	uint8_t proto;
	uint32_t off, len; /* payload bytes [off, off + len) of the datagram */
	uint8_t data[ENV_BUF_SIZE];
} sent[SENT_MAX];
static unsigned nsent;
static bool sent_overflow; /* deliveries can no longer be checked */

static void note_sent(const uint8_t *f, size_t len)
{
	if (len < BH_ETH_HLEN + BH_IPV4_HLEN || bh_ld16(f + 12) != BH_ETHERTYPE_IPV4)
		return;
	const uint8_t *h = f + BH_ETH_HLEN;
	size_t avail = len - BH_ETH_HLEN, hl = (size_t)(h[0] & 0xf) * 4, total = bh_ld16(h + 2);
	if (hl < BH_IPV4_HLEN || hl > avail || total < hl)
		return;
	if (total > avail)
		total = avail; /* a short frame: what it has, at most */
	if (nsent == SENT_MAX) {
		sent_overflow = true;
		return;
	}
	struct sent *r = &sent[nsent++];
	r->src = bh_ld32(h + 12);
	r->dst = bh_ld32(h + 16);
	r->id = bh_ld16(h + 4);
	r->proto = h[9];
	r->off = (uint32_t)(bh_ld16(h + 6) & 0x1fff) * 8;
	r->len = (uint32_t)(total - hl);
	memcpy(r->data, h + hl, r->len);
}

/* Some frame with this key holds byte b at datagram offset o. */
static bool covered(const struct env_delivery *d, uint16_t id, uint32_t o, uint8_t b)
{
	for (unsigned k = 0; k < nsent; k++) {
		const struct sent *r = &sent[k];
		if (r->src == d->src && r->dst == d->dst && r->proto == d->proto && r->id == id &&
		    o >= r->off && o - r->off < r->len && r->data[o - r->off] == b)
			return true;
	}
	return false;
}

/* Every byte of every delivery logged since the last check came from the
 * wire at its place, under one identification. */
static void check_deliveries(const struct env *e)
{
	if (sent_overflow)
		return;
	for (unsigned i = 0; i < e->ndeliv && i < ENV_MAX_LOG; i++) {
		const struct env_delivery *d = &e->deliv[i];
		if (d->len == UINT32_MAX) {
			fprintf(stderr, "ip_input_fuzz: a delivery's pieces disagree with its length\n");
			abort();
		}
		uint32_t base = d->proto == BH_IPPROTO_UDP ? 8 : 0; /* UDP delivers its payload */
		bool whole = false;
		for (unsigned k = 0; k < nsent && !whole; k++) {
			if (sent[k].src != d->src || sent[k].dst != d->dst || sent[k].proto != d->proto)
				continue;
			whole = true;
			for (uint32_t j = 0; j < d->len && whole; j++)
				whole = covered(d, sent[k].id, base + j, d->data[j]);
		}
		if (!whole) {
			fprintf(stderr,
				"ip_input_fuzz: delivered %u bytes (proto %u) that no frame sent "
				"at their place\n",
				d->len, d->proto);
			abort();
		}
	}
}

static void dead(const char *what)
{
	fprintf(stderr, "ip_input_fuzz: liveness: %s once the input stopped\n", what);
	abort();
}

/* The first transmitted frame from `from` on that is IPv4 with protocol
 * proto to PEER's MAC, as a pointer to its IP header; NULL if none. An
 * ARP request for PEER met on the way is answered (as the peer would). */
static const uint8_t *find_tx(struct env *e, unsigned from, uint8_t proto)
{
	for (unsigned i = from; i < e->ntx && i < ENV_MAX_LOG; i++) {
		const uint8_t *f = e->tx[i].data;
		if (e->tx[i].len < BH_ETH_HLEN + BH_IPV4_HLEN)
			continue;
		if (bh_ld16(f + 12) == BH_ETHERTYPE_ARP) {
			if (bh_ld16(f + BH_ETH_HLEN + 6) == BH_ARP_REQUEST &&
			    bh_ld32(f + BH_ETH_HLEN + 24) == PEER_ADDR) {
				uint8_t r[64];
				env_input(e, r,
					  build_arp(r, &ENV_MAC, &PEER_MAC, BH_ARP_REPLY, &PEER_MAC,
						    PEER_ADDR, &ENV_MAC, ENV_ADDR));
			}
			continue;
		}
		if (bh_ld16(f + 12) == BH_ETHERTYPE_IPV4 && memcmp(f, PEER_MAC.b, 6) == 0 &&
		    f[BH_ETH_HLEN + 9] == proto)
			return f + BH_ETH_HLEN;
	}
	return NULL;
}

/* Time passes until the frame shows (ARP may have to resolve first). */
static const uint8_t *await_tx(struct env *e, uint8_t proto)
{
	for (int round = 0; round < 8; round++) {
		const uint8_t *h = find_tx(e, 0, proto);
		if (h)
			return h;
		env_tick(e, e->now + 1000);
	}
	return NULL;
}

static void check_alive(struct env *e)
{
	static const struct bh_mac bcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
	static const struct bh_mac zero = {{0}};
	uint8_t f[256], m[128], data[64];
	for (unsigned i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	e->fail_alloc = false;
	env_clear_log(e);
	/* The honest peer announces itself, as a host does before it talks. */
	env_input(e, f,
		  build_arp(f, &bcast, &PEER_MAC, BH_ARP_REQUEST, &PEER_MAC, PEER_ADDR, &zero,
			    ENV_ADDR));
	/* Its ping is answered, with its identifier, sequence and data. */
	env_clear_log(e);
	struct ipspec ip = {.src = PEER_ADDR, .dst = ENV_ADDR, .proto = BH_IPPROTO_ICMP, .id = 0x7e57};
	size_t n = build_icmp(m, BH_ICMP_ECHO_REQUEST, 0, 0x42420001u, data, sizeof data);
	env_input(e, f, build_ip(f, NULL, &ip, m, n));
	const uint8_t *h = await_tx(e, BH_IPPROTO_ICMP);
	if (h == NULL)
		dead("a ping was not answered");
	const uint8_t *icmp = h + (h[0] & 0xf) * 4;
	if (icmp[0] != BH_ICMP_ECHO_REPLY || bh_ld32(icmp + 4) != 0x42420001u ||
	    bh_ld16(h + 2) != (h[0] & 0xf) * 4 + 8 + sizeof data ||
	    memcmp(icmp + 8, data, sizeof data) != 0)
		dead("a ping got a wrong answer");
	/* Its datagram to a bound port is delivered whole. */
	int b = bh_udp_bind(e->ip, 7777, 77);
	if (b != 0 && b != -EADDRINUSE)
		dead("a free port could not be bound");
	env_clear_log(e);
	ip.proto = BH_IPPROTO_UDP;
	ip.id++;
	n = build_udp(m, PEER_ADDR, ENV_ADDR, 5555, 7777, data, sizeof data);
	env_input(e, f, build_ip(f, NULL, &ip, m, n));
	bool got = false;
	for (unsigned i = 0; i < e->ndeliv && i < ENV_MAX_LOG; i++)
		got |= e->deliv[i].dport == 7777 && e->deliv[i].len == sizeof data &&
		       memcmp(e->deliv[i].data, data, sizeof data) == 0;
	if (!got)
		dead("a UDP datagram was not delivered");
	/* One we send to it goes out. */
	env_clear_log(e);
	struct bh_pkt p = env_buffer(e, data, sizeof data);
	if (bh_udp_output(e->ip, e->now, &p, 7777, PEER_ADDR, 5555) != 0)
		dead("a UDP datagram could not be sent");
	if (await_tx(e, BH_IPPROTO_UDP) == NULL)
		dead("a UDP datagram sent did not go out");
}

static void check(const struct env *e, const char *where)
{
	if (e->double_release || e->bad_handle) {
		fprintf(stderr, "ip_input_fuzz: %s: %u double releases, %u bad handles\n", where,
			e->double_release, e->bad_handle);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct env e;
	static uint8_t frame[ENV_BUF_SIZE - ENV_HEADROOM];
	struct bh_ip_config c;
	env_default_config(&c);
	/* Small tables, so bounds and eviction are reached quickly. */
	c.arp_entries = 8;
	c.arp_queue = 8;
	c.arp_queue_per_host = 3;
	c.reasm_datagrams = 4;
	c.reasm_bytes = 16 * ENV_BUF_SIZE;
	c.max_pieces = 16;
	c.udp_bindings = 8;
	c.large_max = 65535 - BH_ETH_HLEN;
	env_init(&e, &c, 128);
	e.keep_log = true; /* deliveries are checked against what was sent */
	nsent = 0;
	sent_overflow = false;
	bh_udp_bind(e.ip, 53, 1);
	bh_ip_start(e.ip, 0);

	size_t i = 0;
	while (i + 3 <= size) {
		uint8_t op = data[i];
		size_t len = (size_t)data[i + 1] << 8 | data[i + 2];
		i += 3;
		if (len > size - i)
			len = size - i;
		const uint8_t *arg = data + i;
		i += len;
		switch (op & 7) {
		case 0:
			if (len > sizeof frame)
				len = sizeof frame;
			memcpy(frame, arg, len);
			if (op & 0x40)
				fix_checksums(frame, len);
			note_sent(frame, len);
			env_input(&e, frame, len);
			break;
		case 1:
			if (len >= 2)
				env_tick(&e, e.now + 16u * (uint32_t)(arg[0] << 8 | arg[1]));
			break;
		case 2: {
			bool saved = e.fail_alloc;
			e.fail_alloc = false;
			struct bh_pkt p;
			uint32_t n = (uint32_t)(len > 4000 ? 4000 : len);
			if (n <= ENV_BUF_SIZE - ENV_HEADROOM) {
				p = env_buffer(&e, arg, n);
				e.fail_alloc = saved;
				bh_udp_output(e.ip, e.now, &p, 4000,
					      BH_IP4(10, 0, 0, len ? arg[0] : 9), 53);
			}
			e.fail_alloc = saved;
			break;
		}
		case 3:
			if (len >= 2) {
				uint16_t port = (uint16_t)(arg[0] << 8 | arg[1]);
				if (bh_udp_bind(e.ip, port, port) == -EADDRINUSE)
					bh_udp_unbind(e.ip, port);
			}
			break;
		case 4:
			e.fail_alloc = op & 0x40;
			break;
		case 5: {
			static uint8_t big[ENV_BUF_SIZE];
			struct bh_pkt pieces[BH_IP_MAX_PIECES];
			if (len < 2)
				break;
			uint32_t piece = 134u + arg[0], n = 0;
			size_t flen = len - 1 > sizeof big ? sizeof big : len - 1;
			memcpy(big, arg + 1, flen);
			if (op & 0x40)
				fix_checksums(big, flen);
			note_sent(big, flen);
			for (size_t at = 0; at < flen && n < BH_IP_MAX_PIECES; at += piece) {
				uint32_t m = flen - at < piece ? (uint32_t)(flen - at) : piece;
				pieces[n++] = env_buffer(&e, big + at, m);
			}
			bh_ip_input_chain(e.ip, e.now, pieces, n);
			break;
		}
		default:
			break;
		}
		check(&e, "after a record");
		check_deliveries(&e);
		env_clear_log(&e);
	}
	/* Every timer runs out (ARP retries take one tick each). */
	for (int k = 0; k < 8; k++)
		env_tick(&e, e.now + 60000);
	check(&e, "after the timers");
	check_deliveries(&e);
	check_alive(&e);
	check(&e, "after the liveness check");
	uint32_t leaked = env_fini(&e);
	if (leaked) {
		fprintf(stderr, "ip_input_fuzz: %u buffers not returned\n", leaked);
		abort();
	}
	return 0;
}
