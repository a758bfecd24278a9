/*
 * ip/ip.h - the IP domain's protocol logic: Ethernet II, ARP, IPv4 with
 * fragmentation and reassembly, ICMP and UDP, as a library that does no
 * I/O and owns no clock.
 *
 * Read first: RFC 826 (ARP), RFC 791 (IPv4), RFC 792 (ICMP), RFC 768 (UDP),
 * RFC 1122 (host requirements; section numbers cited inline), RFC 5227 (ARP
 * announcements and conflicts), RFC 5722 and RFC 1858 (overlapping and tiny
 * fragments), RFC 7739 (fragment identification).
 *
 * Call chains (functions of stack.c unless another file is named; names
 * with a double underscore are internal, declared in ip_impl.h)
 *   frame in:  bh_ip_input -> bh_arp__input (arp.c) | ipv4_input
 *              ipv4_input -> [bh_reasm__input (reasm.c): fragments, held
 *                 until the datagram is whole] -> bh_ip__transport_input
 *              bh_ip__transport_input -> bh_icmp__input (icmp.c)
 *                 | bh_udp__input (udp.c) -> ops.deliver
 *                 | ops.deliver (TCP)
 *   datagram out: bh_udp_output (udp.c) -> bh_ip_output | bh_ip__send_segs
 *              bh_ip_output -> next_hop -> headers in place, or
 *                 bh_ip__send_segs (a copy, fragments)
 *              -> bh_arp__output (arp.c) -> bh_ip__transmit -> ops.transmit,
 *                 or the ARP queue (sent by bh_arp__input when the reply
 *                 comes; dropped by bh_arp__tick when resolution fails,
 *                 reported with ops.event)
 *   time:      bh_ip_tick -> bh_arp__announce, bh_arp__tick (ARP retries
 *              and aging), bh_reasm__tick (reassembly timeouts)
 *
 * Buffers
 *   The environment (a domain main loop, the monolithic build or a test)
 *   owns buffer memory; the library sees a buffer as a struct bh_pkt and
 *   names it back by its handle. Received frames are treated as read-only:
 *   in the factored build the driver's receive pool is mapped read-only in
 *   the IP domain. Every frame given to bh_ip_input() ends in exactly one
 *   of three ways: ops.release(), part of an ops.deliver() (the receiver
 *   then owns it), or held (reassembly) until one of those happens later.
 *   Frames and datagrams given to the output calls become the library's:
 *   they end in ops.transmit() or ops.release(). Buffers the library needs
 *   for replies, ARP and fragments come from ops.alloc(); it never calls
 *   malloc after bh_ip_create().
 *
 * Time
 *   In milliseconds (bh_ms, ip/units.h; TCP counts in microseconds): every
 *   entry point takes `now` as a count from any fixed origin, which must
 *   not go backwards, and bh_ip_tick() returns the next deadline in the
 *   same unit. The configuration's durations say their unit in their
 *   names (_ms, rates per second).
 *
 * Re-entry: from within ops.event() the environment may send (the output
 * calls); no callback may call bh_ip_input(), bh_ip_tick() or
 * bh_ip_destroy().
 *
 * Concurrency: none. One stack is used by one thread.
 */
#ifndef BH_IP_IP_H
#define BH_IP_IP_H

#include <stdbool.h>
#include <stdint.h>

#include "ip/units.h"
#include "ip/ip_wire.h"

/* A view of one buffer. `base` is writable only for buffers from
 * ops.alloc() and buffers handed to an output call with `writable` set. */
/* What a packet's transport checksum is (bh_pkt.csum), as Linux's
 * ip_summed says: on the way out, PARTIAL means the field holds only the
 * pseudo-header sum and the device (or the driver in software) completes
 * it; on the way in, VALID means the link vouches for it (a virtual link
 * whose other end left it partial), so it is not verified again. */
enum bh_csum_state { BH_CSUM_NONE = 0, BH_CSUM_PARTIAL = 1, BH_CSUM_VALID = 2 };

struct bh_pkt {
	uint8_t *base;   /* first byte of the buffer */
	uint32_t size;   /* bytes in the buffer */
	uint32_t off;    /* first byte of data */
	uint32_t len;    /* bytes of data */
	uint64_t handle; /* the environment's name for the buffer */
	bool writable;
	uint8_t csum;    /* enum bh_csum_state */
	/* Out, a TCP segment longer than the MTU allows (cfg.large_max):
	 * the payload bytes of each wire segment the link or the driver
	 * cuts it into (Linux's gso_size); 0 for any other. */
	uint16_t gso;
	/* Out, a TCP segment whose payload stays where the sender keeps it
	 * (a send chain, below): the buffer holds the headers only, `len`
	 * counts the payload too. */
	bool chain;
};

static inline uint8_t *bh_pkt_data(const struct bh_pkt *p) { return p->base + p->off; }

/* A send chain: a segment's payload named, not copied. TCP writes its
 * header into a buffer of its own and, in that buffer's last bytes, a
 * struct bh_chain naming the pieces of other buffers (its send queue's)
 * that hold the payload, in order; it keeps those unchanged until the
 * segment's buffer comes home. Headers go in front as usual; the frame
 * is gathered whole only in the copy to the device (the driver), or
 * wherever one must read it whole. The header bytes are the packet's
 * len minus `payload`. Whoever receives a chain from another party
 * checks every piece against what it may read (domains/proto.h). */
#define BH_CHAIN_MAX 8u
#define BH_CHAIN_MAGIC 0x4e494843u /* "CHIN" */
struct bh_chain_piece {
	uint64_t handle; /* the environment's name for the buffer */
	uint32_t off;    /* first byte within it */
	uint32_t len;
};
struct bh_chain {
	uint32_t magic;
	uint32_t n;       /* pieces, 1..BH_CHAIN_MAX */
	uint32_t payload; /* their bytes */
	uint32_t reserved;
	struct bh_chain_piece piece[BH_CHAIN_MAX];
};
/* Where a buffer of `size` bytes keeps its chain (8-byte aligned for
 * sizes that are multiples of 8). */
static inline uint32_t bh_chain_at(uint32_t size) { return size - (uint32_t)sizeof(struct bh_chain); }

/* Headroom the library needs in front of a transport header to build the
 * IPv4 and Ethernet headers in place (no options are sent). */
#define BH_IP_HEADROOM (BH_ETH_HLEN + BH_IPV4_HLEN)

/* The most pieces (fragments) one reassembled datagram may have. */
#define BH_IP_MAX_PIECES 64

enum bh_ip_cast { BH_IP_UNICAST, BH_IP_BROADCAST, BH_IP_MULTICAST };

/* A datagram for the transport above, possibly in several pieces (one per
 * fragment, in order). For TCP, piece 0 starts with the TCP header, which
 * the library guarantees is whole in piece 0 (20 bytes at least); for UDP
 * the header is checked and removed, so the pieces and len are the
 * payload alone. */
struct bh_ip_rx {
	uint8_t proto;
	uint8_t ttl, tos;
	enum bh_ip_cast cast;
	bh_ip4 src, dst;
	uint32_t len; /* bytes over all pieces */
	/* UDP only: the header, already checked, and the binding's cookie. */
	uint16_t sport, dport;
	uint64_t cookie;
	uint16_t npieces;
	/* The link vouched for the transport checksum (a frame that came
	 * whole, BH_CSUM_VALID): the transport need not verify it. */
	bool csum_valid;
	struct bh_pkt piece[BH_IP_MAX_PIECES]; /* off/len span the payload of each */
};

/* The one's-complement sum of the first len transport bytes of rx, over
 * its pieces in order, added to sum (chain with bh_ipv4_pseudo_sum()). */
uint32_t bh_ip_rx_sum(const struct bh_ip_rx *rx, uint32_t len, uint32_t sum);

/* Reports to the transports (events carry no buffers). */
enum bh_ip_event_type {
	/* An ICMP error about a datagram we sent: dest unreachable (code in
	 * `code`; `mtu` for fragmentation needed), time exceeded, parameter
	 * problem. RFC 1122 4.1.3.3 / 4.2.3.9: the transport decides. */
	BH_IP_EV_ICMP_ERROR,
	/* ARP gave up on the next hop: a datagram we queued was dropped
	 * (RFC 1122 2.3.2.2: the transport learns "host unreachable"). */
	BH_IP_EV_HOST_UNREACH,
	/* Someone else claims our address (RFC 5227 2.4). */
	BH_IP_EV_ADDR_CONFLICT,
};

struct bh_ip_event {
	enum bh_ip_event_type type;
	uint8_t proto;            /* transport of the affected flow */
	uint8_t icmp_type, icmp_code;
	bh_ip4 src, dst;          /* the flow: our address, the remote */
	uint16_t sport, dport;    /* ports of the flow (TCP and UDP) */
	uint16_t mtu;             /* next-hop MTU (fragmentation needed) */
	uint32_t seq;             /* TCP: the sequence number the error quotes
				   * (RFC 5927 4.1 checks it) */
	uint64_t cookie;          /* UDP: the binding that owns sport */
	struct bh_mac mac;        /* address conflict: the other host */
};

struct bh_ip_ops {
	/* A writable buffer with off set to leave room for headers
	 * (at least BH_IP_HEADROOM); false if none is free. */
	bool (*alloc)(void *ctx, struct bh_pkt *out);
	/* Gives the library's hold on a buffer back. */
	void (*release)(void *ctx, const struct bh_pkt *p);
	/* A finished frame (data at off, len bytes) for the wire; the
	 * environment owns it from here on. */
	void (*transmit)(void *ctx, const struct bh_pkt *frame);
	/* A datagram for TCP or UDP; the receiver owns every piece. */
	void (*deliver)(void *ctx, const struct bh_ip_rx *rx);
	/* Optional. */
	void (*event)(void *ctx, const struct bh_ip_event *ev);
};

struct bh_ip_config {
	struct bh_mac mac;
	bh_ip4 addr;
	uint8_t prefix_len; /* 0..32; 32 means no on-link subnet */
	bh_ip4 gateway;     /* 0: none */
	uint16_t mtu;       /* IP MTU: 68 .. 65535 - 14; 0 means 1500 */
	/* Large frames (a link like veth with GSO and GRO): the longest IP
	 * datagram taken in pieces (bh_ip_input_chain) and the longest TCP
	 * datagram with bh_pkt.gso sent whole; 0 (the default): none, every
	 * datagram fits the MTU. At most 65535 - 14. */
	uint32_t large_max;
	uint8_t ttl;        /* 0 means 64 */

	/* Limits; 0 means the default given. */
	uint32_t arp_entries;      /* 64 */
	uint32_t arp_queue;        /* 64 datagrams waiting for ARP, in all */
	uint32_t arp_queue_per_host; /* 8 */
	uint32_t arp_retry_ms;     /* 1000: between requests */
	uint32_t arp_tries;        /* 3: requests before giving up */
	uint32_t arp_reachable_ms; /* 30000: then the entry is stale */
	uint32_t arp_stale_ms;     /* 60000: stale and unused, it goes */
	uint32_t reasm_datagrams;  /* 64 being reassembled at once */
	uint32_t reasm_bytes;      /* 262144: buffer bytes held, in all */
	uint32_t reasm_timeout_ms; /* 30000 (RFC 1122 3.3.2 suggests 60-120 s;
				    * Linux uses 30 s) */
	uint32_t max_pieces;       /* 64, at most BH_IP_MAX_PIECES */
	uint32_t icmp_err_rate;    /* 1000 errors/s, burst of icmp_err_burst */
	uint32_t icmp_err_burst;   /* 50 */
	uint32_t echo_rate;        /* 10000 echo replies/s */
	uint32_t echo_burst;       /* 100 */
	uint32_t arp_reply_rate;   /* 1000 ARP replies/s */
	uint32_t arp_reply_burst;  /* 100 */
	uint32_t udp_bindings;     /* 256 */
	uint32_t routes;           /* 16, besides the on-link and default */

	uint64_t secret[2]; /* keys the IP ID hash; fill with random bytes */
};

/* Every counter the stack keeps, in one list so stats print them all. */
#define BH_IP_COUNTERS(X)                                                                   \
	X(eth_rx, "frames received")                                                        \
	X(eth_tx, "frames sent")                                                            \
	X(eth_bad, "frames malformed (truncated, 802.3 length, group source)")             \
	X(eth_bad_large, "large frames dropped: not a whole IPv4 datagram to us, headers in the first piece") \
	X(ip_rx_large, "large frames taken (in pieces)")                                   \
	X(eth_vlan, "VLAN-tagged frames dropped")                                           \
	X(eth_not_ours, "frames for another MAC or an unjoined group")                      \
	X(eth_own_src, "frames with our own source MAC")                                   \
	X(eth_unknown_type, "frames of an ethertype we do not speak")                       \
	X(arp_rx, "ARP packets received")                                                   \
	X(arp_bad, "ARP packets malformed")                                                 \
	X(arp_bad_sender, "ARP packets with a bogus sender address")                        \
	X(arp_requests_tx, "ARP requests sent")                                             \
	X(arp_replies_tx, "ARP replies sent")                                               \
	X(arp_replies_limited, "ARP replies not sent (rate limit)")                         \
	X(arp_unsolicited, "ARP replies ignored: not asked for")                            \
	X(arp_learned, "ARP entries resolved or refreshed")                                 \
	X(arp_evicted, "ARP entries evicted to make room")                                  \
	X(arp_table_full, "resolutions refused: table full of pending entries")            \
	X(arp_timeouts, "ARP resolutions that failed")                                      \
	X(arp_queued, "datagrams queued for ARP")                                           \
	X(arp_queue_drops, "datagrams dropped: ARP queue full or resolution failed")       \
	X(arp_conflicts, "ARP packets claiming our address")                                \
	X(ip_rx, "IPv4 datagrams received")                                                 \
	X(ip_bad_header, "IPv4 headers malformed (version, IHL, length, options)")          \
	X(ip_bad_checksum, "IPv4 header checksums wrong")                                   \
	X(ip_bad_src, "datagrams from a martian source")                                    \
	X(ip_not_ours, "datagrams for another address (we do not forward)")                 \
	X(ip_source_routed, "source-routed datagrams dropped")                              \
	X(ip_ttl_zero, "datagrams received with TTL 0 (accepted, RFC 1122 3.2.1.7)")        \
	X(ip_unknown_proto, "datagrams for a protocol nobody serves")                       \
	X(ip_short_transport, "datagrams too short for their transport header")             \
	X(ip_delivered, "datagrams delivered to a transport")                               \
	X(ip_tx, "datagrams sent")                                                          \
	X(ip_no_route, "datagrams not sent: no route")                                      \
	X(ip_tx_too_big, "datagrams not sent: too big or DF")                               \
	X(ip_tx_chain_drop, "send chains that would need a copy (fragments): dropped")       \
	X(ip_no_buffers, "datagrams or replies not sent: no buffer")                        \
	X(frag_rx, "fragments received")                                                    \
	X(frag_tx, "fragments sent")                                                        \
	X(frag_bad, "fragments malformed (not a multiple of 8, empty, beyond the end)")     \
	X(frag_tiny, "first fragments too short for the transport header (RFC 1858)")       \
	X(frag_dup, "exact duplicate fragments dropped")                                    \
	X(frag_overlap, "datagrams dropped for overlapping fragments (RFC 5722)")           \
	X(frag_too_many, "datagrams dropped: too many fragments")                           \
	X(frag_budget, "datagrams dropped to stay within the reassembly budget")            \
	X(frag_timeouts, "datagrams never completed")                                       \
	X(frag_dead, "fragments of an abandoned datagram dropped")                          \
	X(reasm_ok, "datagrams reassembled")                                                \
	X(icmp_rx, "ICMP messages received")                                                \
	X(icmp_bad, "ICMP messages malformed or with a wrong checksum")                     \
	X(icmp_echo_rx, "echo requests received")                                           \
	X(icmp_echo_tx, "echo replies sent")                                                \
	X(icmp_echo_limited, "echo replies not sent (rate limit)")                          \
	X(icmp_err_rx, "ICMP errors received")                                              \
	X(icmp_err_ignored, "ICMP errors ignored (not about our flows, or malformed)")      \
	X(icmp_err_tx, "ICMP errors sent")                                                  \
	X(icmp_err_limited, "ICMP errors not sent (rate limit)")                            \
	X(icmp_other, "ICMP messages ignored (other types, echo to broadcast)")                             \
	X(udp_rx, "UDP datagrams received")                                                 \
	X(udp_bad, "UDP datagrams malformed")                                               \
	X(udp_bad_checksum, "UDP checksums wrong")                                          \
	X(udp_no_port, "UDP datagrams for a port nobody listens on")                        \
	X(udp_tx, "UDP datagrams sent")

struct bh_ip_counters {
#define BH_IP_COUNTER_FIELD(name, text) uint64_t name;
	BH_IP_COUNTERS(BH_IP_COUNTER_FIELD)
#undef BH_IP_COUNTER_FIELD
};

enum {
#define BH_IP_COUNTER_INDEX(name, text) BH_IP_CTR_##name,
	BH_IP_COUNTERS(BH_IP_COUNTER_INDEX)
#undef BH_IP_COUNTER_INDEX
		BH_IP_NCOUNTERS
};

/* Name and description of counter i (0 <= i < BH_IP_NCOUNTERS), and its
 * value in c; NULL name past the end. */
const char *bh_ip_counter_name(unsigned i);
const char *bh_ip_counter_text(unsigned i);
uint64_t bh_ip_counter_value(const struct bh_ip_counters *c, unsigned i);

struct bh_ip;

/* Checks the configuration; returns NULL with *err set to a message if it
 * is unusable. Allocates every table once. */
struct bh_ip *bh_ip_create(const struct bh_ip_config *cfg, const struct bh_ip_ops *ops, void *ctx,
			   const char **err);
/* Releases every buffer still held (queues, reassembly), then frees. */
void bh_ip_destroy(struct bh_ip *ip);

/* Announces our address (RFC 5227 2.3: gratuitous ARP, twice, 2 s apart). */
void bh_ip_start(struct bh_ip *ip, bh_ms now);

/* One received frame. */
void bh_ip_input(struct bh_ip *ip, bh_ms now, const struct bh_pkt *frame);
/* One received large frame in n pieces, in order (a link that takes
 * frames longer than the MTU; cfg.large_max bounds it): an unfragmented
 * IPv4 datagram to our unicast address whose headers are whole in the
 * first piece (at least 134 bytes). Its pieces go up as one datagram;
 * anything else is dropped and counted (eth_bad_large). Every piece ends
 * as bh_ip_input's frame does. n == 1 is bh_ip_input. */
void bh_ip_input_chain(struct bh_ip *ip, bh_ms now, const struct bh_pkt *pieces, unsigned n);

/* Timers; returns the next deadline (UINT64_MAX if none). */
bh_ms bh_ip_tick(struct bh_ip *ip, bh_ms now);

struct bh_ip_tx {
	bh_ip4 dst;
	uint8_t proto;
	uint8_t tos;
	uint8_t ttl; /* 0: the configured default */
	bool df;     /* don't fragment: too big fails with -EMSGSIZE */
	/* For the ARP queue and "host unreachable" reports. */
	uint16_t sport, dport;
	uint64_t cookie;
};

/* Sends a transport datagram: pkt's data is the transport header and
 * payload, checksummed by the caller (use bh_ipv4_pseudo_sum()). Headers go
 * into the headroom when the buffer is writable and has room, else into a
 * fresh buffer (one copy). Datagrams over the MTU are fragmented unless
 * tx->df. The library owns pkt from here, whatever the result.
 * Returns 0 when sent, 1 when queued for ARP, or -ENETUNREACH,
 * -EMSGSIZE, -ENOBUFS, -EINVAL. */
int bh_ip_output(struct bh_ip *ip, bh_ms now, const struct bh_pkt *pkt,
		 const struct bh_ip_tx *tx);

/* Our source address, for pseudo-headers. */
bh_ip4 bh_ip_addr(const struct bh_ip *ip);
uint16_t bh_ip_mtu(const struct bh_ip *ip);

/* UDP: builds the header and checksum in front of pkt's data (which must
 * be writable with 8 + BH_IP_HEADROOM bytes of headroom, else it is
 * copied) and sends. Same ownership and results as bh_ip_output(). */
int bh_udp_output(struct bh_ip *ip, bh_ms now, const struct bh_pkt *pkt, uint16_t sport,
		  bh_ip4 dst, uint16_t dport);

/* UDP port table: datagrams to a bound port are delivered with its cookie;
 * others draw a port unreachable. Returns 0, -EADDRINUSE, -ENOSPC or
 * -EINVAL (port 0). */
int bh_udp_bind(struct bh_ip *ip, uint16_t port, uint64_t cookie);
int bh_udp_unbind(struct bh_ip *ip, uint16_t port);

/* Routes besides the on-link prefix and the default gateway. */
int bh_ip_route_add(struct bh_ip *ip, bh_ip4 prefix, uint8_t prefix_len, bh_ip4 gateway);
/* Longest-prefix match: the next hop for dst, or -ENETUNREACH. */
int bh_ip_route_lookup(const struct bh_ip *ip, bh_ip4 dst, bh_ip4 *next_hop);

/* Multicast groups we receive (at most 16). */
int bh_ip_join(struct bh_ip *ip, bh_ip4 group);
int bh_ip_leave(struct bh_ip *ip, bh_ip4 group);

const struct bh_ip_counters *bh_ip_counters(const struct bh_ip *ip);

/* ARP cache introspection, for `bulkhead stats` and tests. */
enum bh_arp_state { BH_ARP_FREE, BH_ARP_INCOMPLETE, BH_ARP_REACHABLE, BH_ARP_STALE };
struct bh_arp_info {
	bh_ip4 addr;
	struct bh_mac mac;
	enum bh_arp_state state;
	uint32_t queued;
};
/* Fills up to n entries; returns how many are in use. */
unsigned bh_ip_arp_list(const struct bh_ip *ip, struct bh_arp_info *out, unsigned n);
/* Buffers the library holds right now (ARP queue and reassembly). */
unsigned bh_ip_held(const struct bh_ip *ip);

/* The IP ID for a datagram (RFC 7739 4.2: a counter per bucket of a keyed
 * hash of the addresses and protocol, so IDs seen by one destination say
 * nothing about traffic to others). Exposed for tests. */
uint16_t bh_ip_next_id(struct bh_ip *ip, bh_ip4 src, bh_ip4 dst, uint8_t proto);

#endif /* BH_IP_IP_H */
