/*
 * tests/ip/env.h - an environment for the IP library in tests and fuzzers
 * (the receive benchmark has its own, being no test): a buffer pool with ownership tracking (leaks and
 * double releases are recorded, not crashed on), a log of transmitted
 * frames, deliveries and events, and builders for crafted frames.
 *
 * Transmitted frames and delivered datagrams are copied into the log and
 * their buffers released at once, so a test sees exactly what came out and
 * a leak check at the end means the library gave every buffer back.
 */
#ifndef BH_TESTS_IP_ENV_H
#define BH_TESTS_IP_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ip/ip.h"

#define ENV_BUF_SIZE 2048
#define ENV_HEADROOM 128
#define ENV_MAX_LOG 256
#define ENV_MAX_DATA 70000

struct env_frame {
	uint32_t len;
	uint8_t data[ENV_BUF_SIZE];
};

struct env_delivery {
	uint8_t proto;
	enum bh_ip_cast cast;
	bh_ip4 src, dst;
	uint16_t sport, dport;
	uint64_t cookie;
	uint16_t npieces;
	uint32_t len;
	uint8_t *data; /* len bytes, the pieces joined */
};

struct env {
	struct bh_ip *ip;
	uint64_t now;
	/* pool */
	uint32_t nbufs;
	uint8_t *mem;
	bool *used;
	uint32_t in_use;
	uint32_t double_release; /* releases of a buffer not in use */
	uint32_t bad_handle;     /* handles that name no buffer */
	bool fail_alloc;         /* make ops.alloc fail */
	uint32_t alloc_budget;   /* if nonzero, allocations left before failing */
	/* what came out (kept up to ENV_MAX_LOG of each; counts go on) */
	bool keep_log;
	uint32_t ntx, ndeliv, nev;
	struct env_frame *tx;
	struct env_delivery *deliv;
	struct bh_ip_event *ev;
	/* Called after an event is logged (tests of re-entry). */
	void (*on_event)(struct env *e, const struct bh_ip_event *ev);
};

/* Default test identity: 10.0.0.2/24, gateway 10.0.0.1. */
extern const struct bh_mac ENV_MAC, PEER_MAC, PEER2_MAC;
#define ENV_ADDR BH_IP4(10, 0, 0, 2)
#define PEER_ADDR BH_IP4(10, 0, 0, 9)
#define PEER2_ADDR BH_IP4(10, 0, 0, 10)
#define GW_ADDR BH_IP4(10, 0, 0, 1)
#define FAR_ADDR BH_IP4(192, 0, 2, 7)

void env_default_config(struct bh_ip_config *cfg);
/* The ops an env gives the library (ctx must be a struct env). */
const struct bh_ip_ops *env_ops(void);
/* NULL cfg: the default. Aborts if creation fails (a test bug). */
void env_init(struct env *e, const struct bh_ip_config *cfg, uint32_t nbufs);
/* Destroys the stack; returns the number of buffers still in use (the
 * library leaked them) - 0 when all is well. */
uint32_t env_fini(struct env *e);
void env_clear_log(struct env *e);

/* Feeds a frame (copied into a pool buffer) at e->now. */
void env_input(struct env *e, const uint8_t *frame, size_t len);
uint64_t env_tick(struct env *e, uint64_t now);
/* A writable pool buffer holding `len` bytes of data after headroom. */
struct bh_pkt env_buffer(struct env *e, const void *data, uint32_t len);

uint64_t env_ctr(const struct env *e, const char *name);

/* Makes PEER's ARP entry REACHABLE with ARP alone: its request for us
 * creates a STALE entry (RFC 826 merge), its reply to us confirms it. Our
 * sends to PEER then go straight out. Clears the log; false if PEER's
 * entry is not the only one or not REACHABLE afterwards. */
bool env_resolve_peer(struct env *e);

/* Parses the i-th transmitted frame; false if it is not that kind or is
 * malformed (the library must only send well-formed frames). */
bool env_tx_arp(const struct env *e, unsigned i, struct bh_eth_repr *eth, struct bh_arp_repr *a);
bool env_tx_ipv4(const struct env *e, unsigned i, struct bh_eth_repr *eth, struct bh_ipv4_repr *h);

/* ---- builders: each writes into out and returns the length ---- */

size_t build_eth(uint8_t *out, const struct bh_mac *dst, const struct bh_mac *src, uint16_t type);
size_t build_arp(uint8_t *out, const struct bh_mac *eth_dst, const struct bh_mac *eth_src,
		 uint16_t op, const struct bh_mac *sha, bh_ip4 spa, const struct bh_mac *tha,
		 bh_ip4 tpa);

struct ipspec {
	bh_ip4 src, dst;
	uint8_t proto, ttl, tos;
	uint16_t id;
	uint16_t frag_off; /* bytes */
	bool mf, df;
	const uint8_t *options; /* with its length, a multiple of 4 */
	uint8_t options_len;
};
/* Ethernet (to ENV_MAC from PEER_MAC unless eth_dst given) + IPv4 header
 * with a correct checksum + payload. */
size_t build_ip(uint8_t *out, const struct bh_mac *eth_dst, const struct ipspec *s,
		const void *payload, size_t len);
/* A UDP datagram (header + payload) with a correct checksum. */
size_t build_udp(uint8_t *out, bh_ip4 src, bh_ip4 dst, uint16_t sport, uint16_t dport,
		 const void *payload, size_t len);
/* An ICMP message with a correct checksum. */
size_t build_icmp(uint8_t *out, uint8_t type, uint8_t code, uint32_t rest, const void *data,
		  size_t len);

/* Sends `len` bytes of transport payload from PEER to us as fragments of
 * at most `frag` payload bytes each, in the order `order` gives (NULL: in
 * order). Returns the number of fragments. */
unsigned env_send_fragments(struct env *e, const struct ipspec *s, const uint8_t *payload,
			    size_t len, size_t frag, const unsigned *order);

#endif /* BH_TESTS_IP_ENV_H */
