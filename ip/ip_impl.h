/*
 * ip/ip_impl.h - the stack's private state, shared by stack.c, arp.c,
 * reasm.c, icmp.c and udp.c. Not for users of the library.
 *
 * Times here are milliseconds, as at the API (bh_ms, ip/units.h): `now`,
 * and the absolute times kept in the tables (ARP entries, reassembly
 * deadlines, token buckets).
 */
#ifndef BH_IP_IMPL_H
#define BH_IP_IMPL_H

#include <errno.h>

#include "ip/ip.h"

#define BH_IP_MAX_GROUPS 16
#define BH_IP_ID_BUCKETS 2048

/* Token bucket in thousandths of a token, refilled from `now`. */
struct bh_bucket {
	uint64_t last;
	uint64_t milli; /* tokens * 1000 */
	uint32_t rate;  /* tokens per second */
	uint32_t burst;
};

bool bh_bucket_take(struct bh_bucket *b, uint64_t now);

struct arp_entry {
	enum bh_arp_state state;
	bh_ip4 addr;
	struct bh_mac mac;
	uint64_t updated;   /* last confirmation */
	uint64_t last_used; /* last datagram sent through it */
	uint64_t next_try;  /* INCOMPLETE: next request; STALE: next refresh */
	uint32_t tries;     /* requests sent in this resolution or refresh */
	bool probing;       /* STALE and used: the delay, then refreshes, run */
	uint32_t queued;    /* datagrams waiting in the ARP queue */
};

/* A datagram waiting for its next hop's MAC: a whole frame whose Ethernet
 * destination is filled in on resolution. */
struct arp_wait {
	bool used;
	uint32_t entry;
	uint64_t seq; /* FIFO order */
	struct bh_pkt frame;
	uint8_t proto;
	bh_ip4 src, dst;
	uint16_t sport, dport;
	uint64_t cookie;
};

struct reasm_frag {
	uint16_t start, end; /* payload bytes [start, end) of the datagram */
	struct bh_pkt pkt;   /* the frame buffer; off/len span the payload */
};

struct reasm {
	bool used;
	bool dead; /* abandoned: its later fragments are dropped until expiry */
	bh_ip4 src, dst;
	uint8_t proto;
	uint16_t id;
	uint64_t deadline;  /* arrival of its first fragment + the timeout */
	uint32_t bytes;     /* buffer bytes held */
	uint32_t total;     /* payload length once the last fragment came; 0 before */
	uint16_t nfrags;
	/* The header of the fragment at offset 0 (frag[0] once it came),
	 * parsed when it arrived; its buffer is held and read-only. */
	struct bh_ipv4_repr first_hdr;
	enum bh_ip_cast cast;
	struct reasm_frag *frag; /* max_pieces slots */
};

/* A received datagram on its way up: the IPv4 header fields the
 * transports need, and the pieces, kept in ip->rx. */
struct ip_dgram {
	struct bh_ipv4_repr hdr; /* of the first fragment */
	const uint8_t *iph;      /* that header's bytes (read-only) */
	enum bh_ip_cast cast;
};

struct bh_ip {
	struct bh_ip_config cfg;
	struct bh_ip_ops ops;
	void *ctx;
	struct bh_ip_counters ctr;

	bh_ip4 mask, bcast; /* subnet mask and directed broadcast */

	struct route {
		bh_ip4 prefix;
		uint8_t plen;
		bh_ip4 gw;
	} *routes;
	uint32_t nroutes, max_routes;

	bh_ip4 groups[BH_IP_MAX_GROUPS];
	struct bh_mac group_macs[BH_IP_MAX_GROUPS];
	uint32_t ngroups;

	struct arp_entry *arp;
	uint32_t last_arp; /* index of the last entry used to send */
	struct arp_wait *waitq;
	uint64_t wait_seq;
	uint32_t nwaiting;
	uint32_t announce_left;
	uint64_t announce_at;
	uint64_t last_defend;
	bool defended;

	struct reasm *reasm;
	struct reasm_frag *frag_store;
	uint32_t reasm_bytes;

	uint16_t ids[BH_IP_ID_BUCKETS];

	/* UDP port table: open addressing with linear probing, at most half
	 * full; port 0 marks an empty slot. */
	struct udp_binding {
		uint16_t port;
		uint64_t cookie;
	} *udp;
	uint32_t udp_mask; /* slots - 1, a power of two minus one */
	uint32_t nbindings;

	struct bh_bucket icmp_err, echo, arp_reply;

	struct bh_ip_rx rx; /* scratch for the datagram being delivered */
};

/* The transport header a first piece must hold whole. */
static inline uint32_t bh_ip__transport_min(uint8_t proto)
{
	switch (proto) {
	case BH_IPPROTO_TCP:
		return 20;
	case BH_IPPROTO_UDP:
		return BH_UDP_HLEN;
	case BH_IPPROTO_ICMP:
		return BH_ICMP_HLEN;
	default:
		return 0;
	}
}

/* stack.c */
bool bh_ip__is_broadcast(const struct bh_ip *ip, bh_ip4 a);
bool bh_ip__alloc(struct bh_ip *ip, struct bh_pkt *out);
void bh_ip__release(struct bh_ip *ip, const struct bh_pkt *p);
void bh_ip__transmit(struct bh_ip *ip, const struct bh_pkt *frame);
void bh_ip__event(struct bh_ip *ip, const struct bh_ip_event *ev);
/* Sends the bytes of `nseg` segments as one datagram from our address,
 * fragmenting as needed, each fragment copied into a fresh buffer. */
struct seg {
	const uint8_t *p;
	uint32_t len;
};
int bh_ip__send_segs(struct bh_ip *ip, uint64_t now, const struct bh_ip_tx *tx,
		     const struct seg *segs, unsigned nseg);
/* Hands a datagram (ip->rx filled with pieces) to its transport, which
 * keeps the pieces or has them released. */
void bh_ip__transport_input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d);

/* arp.c */
void bh_arp__input(struct bh_ip *ip, uint64_t now, const uint8_t *p, size_t len);
/* Sends an IPv4 frame (data at frame->off: Ethernet header space, then
 * the IP header) to next_hop, or queues it. The frame is the callee's. */
int bh_arp__output(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame, bh_ip4 next_hop,
		   const struct bh_ip_tx *tx);
void bh_arp__tick(struct bh_ip *ip, uint64_t now, uint64_t *next);
void bh_arp__announce(struct bh_ip *ip);
void bh_arp__flush(struct bh_ip *ip);

/* reasm.c: takes a fragment; returns true if the frame is held or was
 * delivered. */
bool bh_reasm__input(struct bh_ip *ip, uint64_t now, const struct bh_pkt *frame,
		     const struct bh_ipv4_repr *hdr, enum bh_ip_cast cast);
void bh_reasm__tick(struct bh_ip *ip, uint64_t now, uint64_t *next);
void bh_reasm__flush(struct bh_ip *ip);

/* icmp.c */
bool bh_icmp__input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d);
/* An ICMP error about a received datagram (header iph, first piece of its
 * payload): RFC 1122 3.2.2 decides whether one may be sent at all. */
void bh_icmp__error(struct bh_ip *ip, uint64_t now, uint8_t type, uint8_t code,
		    const struct ip_dgram *d, const uint8_t *payload, uint32_t payload_len);

/* udp.c */
bool bh_udp__input(struct bh_ip *ip, uint64_t now, const struct ip_dgram *d);
bool bh_udp__lookup(const struct bh_ip *ip, uint16_t port, uint64_t *cookie);


#endif /* BH_IP_IMPL_H */
