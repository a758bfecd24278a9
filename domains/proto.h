/*
 * domains/proto.h - what the four domains say to each other: the pools,
 * the links, and the meaning of a descriptor on each link.
 *
 *   [sock] ── link TS (tcp side 0, sock side 1) ── [tcp]
 *     │                                              │
 *     └── link IS (ip side 0, sock side 1) ── [ip] ── link IT (ip 0, tcp 1)
 *                                              │
 *                                   link DI (driver 0, ip 1) ── [driver]
 *
 * Pools (one owner each; ids are the same on every link):
 *
 *   BH_POOL_RX    driver  received frames; travel driver→ip→tcp→sock by
 *                         descriptor (zero copy) and come back the same way
 *   BH_POOL_IP    ip      ARP, ICMP, fragments, UDP datagrams; control
 *                         messages from ip
 *   BH_POOL_SEG   tcp     TCP segments (ip writes the IP and Ethernet
 *                         headers into their headroom); control messages
 *                         from tcp
 *   BH_POOL_SOCK  sock    data applications send (the copy at the
 *                         application boundary); control messages from sock
 *
 * A descriptor's `flags` is its message type; `aux` and `meta` are per
 * type, below. Every descriptor names a buffer of a pool the receiver
 * accepts on that link (ipc/channel.h checks it); control messages are a
 * struct bh_ctl at the descriptor's span. Buffers come home on the free
 * queue of the link they went out on; each domain that forwards a buffer
 * it does not own records who holds it (domains/track.h).
 *
 * Nothing here is trusted by its receiver: every field is checked where
 * it is used (a socket id against the receiver's table, a length against
 * the span, a piece count against what follows).
 */
#ifndef BH_DOMAINS_PROTO_H
#define BH_DOMAINS_PROTO_H

#include <stdint.h>

#include "domains/app_abi.h"
#include "ipc/desc.h"

enum bh_pool_id {
	BH_POOL_RX = 0,
	BH_POOL_IP = 1,
	BH_POOL_SEG = 2,
	BH_POOL_SOCK = 3,
	BH_NPOOLS = 4,
};

enum bh_dom_id {
	BH_DOM_DRIVER = 0,
	BH_DOM_IP = 1,
	BH_DOM_TCP = 2,
	BH_DOM_SOCK = 3,
	BH_NDOMS = 4,
};

/* Party ids in pool ownership tables (ipc/pool.h: peers from 2). */
#define BH_HOLDER_DOM(d) ((uint8_t)(BH_HOLDER_PEER_MIN + (d)))

enum bh_link_id {
	BH_LINK_DI = 0, /* driver 0, ip 1 */
	BH_LINK_IT = 1, /* ip 0, tcp 1 */
	BH_LINK_TS = 2, /* tcp 0, sock 1 */
	BH_LINK_IS = 3, /* ip 0, sock 1 */
	BH_NLINKS = 4,
};

/* Badges: which link (or outside source) a wake-up is about. */
#define BH_BADGE_LINK(l) (1u << (l))
#define BH_BADGE_IO (1u << 8)   /* the domain's poller saw outside work */
/* BH_BADGE_APP (1u << 9): an application wrote to its region; defined in
 * app_abi.h, the contract applications build against. */
#define BH_BADGE_STOP (1u << 10) /* the supervisor asks the domain to stop */

/* Message types (bh_desc.flags). */
enum bh_msg_type {
	/* link DI, both ways: one Ethernet frame at the span (driver→ip: its
	 * first piece; a large frame's further pieces follow as BH_M_MORE). */
	BH_M_FRAME = 1,
	/* link IT: a TCP segment. ip→tcp: the first piece, meta = number of
	 * pieces (each further piece follows as BH_M_MORE) and
	 * BH_DESC_SEG_CSUM_VALID, aux = source address; tcp→ip: the whole
	 * segment (one piece), meta = BH_DESC_CSUM_PARTIAL and the gso size
	 * (below), aux = destination address. Addresses in host byte order.
	 * BH_M_MORE also follows a large frame's first piece on DI. */
	BH_M_SEG = 2,
	BH_M_MORE = 3,
	/* Stream bytes for or from socket aux (tcp↔sock), or a UDP payload
	 * piece (ip→sock, after its BH_CTL_DGRAM header). */
	BH_M_DATA = 4,
	/* A struct bh_ctl at the span. */
	BH_M_CTL = 5,
	/* sock→ip: a UDP datagram to send: struct bh_udp_out, then payload. */
	BH_M_DGRAM = 6,
	/* ip→tcp: a struct bh_ip_event (ICMP error, host unreachable). */
	BH_M_IPEVENT = 7,
	/* A send chain (ip/ip.h, struct bh_chain): as BH_M_SEG from tcp to
	 * ip and BH_M_FRAME from ip to the driver, meta and aux alike, but
	 * the buffer (SEG) holds the headers and, in its last bytes, the
	 * chain naming SOCK buffers that hold the payload; len counts the
	 * payload. tcp keeps those SOCK buffers (pinned, not given back)
	 * until the SEG buffer comes home; the driver, which maps SOCK
	 * read-only where chains are sent (bh_plan_send_chain), checks each
	 * piece and gathers the frame in its copy to the device. */
	BH_M_SEG_CHAIN = 8,
	BH_M_FRAME_CHAIN = 9,
};

/* bh_desc.meta of a BH_M_SEG from tcp to ip and of a BH_M_FRAME from ip
 * to the driver: the transport checksum is left to the device
 * (BH_CSUM_PARTIAL, ip/ip.h), and, for a TCP segment longer than the
 * MTU allows (large frames, bh_plan_large_frames), the payload bytes
 * of each wire segment it is cut into where the link does not take it
 * whole (bh_pkt.gso; BH_DESC_GSO_OF reads it). Of a BH_M_FRAME from the
 * driver to ip: the link vouches for it (BH_CSUM_VALID), and the number
 * of buffers the frame takes (a large frame: the first, then each
 * further one as BH_M_MORE; 0 or 1: one). */
#define BH_DESC_CSUM_PARTIAL 0x1u
#define BH_DESC_CSUM_VALID 0x2u
#define BH_DESC_GSO_SHIFT 1
#define BH_DESC_GSO_MAX 0x7fffu
#define BH_DESC_GSO_OF(meta) ((uint16_t)((meta) >> BH_DESC_GSO_SHIFT))
#define BH_DESC_FRAME_PIECES_SHIFT 8
#define BH_DESC_FRAME_PIECES_MAX 0x7fu
#define BH_DESC_FRAME_PIECES(meta) \
	((unsigned)((meta) >> BH_DESC_FRAME_PIECES_SHIFT) & BH_DESC_FRAME_PIECES_MAX)
/* bh_desc.meta of the first BH_M_SEG piece from ip to tcp: the number of
 * pieces, and this bit when the link vouched for the checksum
 * (bh_ip_rx.csum_valid). */
#define BH_DESC_SEG_CSUM_VALID 0x8000u
#define BH_DESC_SEG_PIECES 0x7fffu

/* Control operations (struct bh_ctl.op). */
enum bh_ctl_op {
	/* sock → tcp */
	BH_CTL_LISTEN = 1,   /* sid, lport, arg = backlog */
	BH_CTL_CONNECT = 2,  /* sid, raddr, rport, lport (0: ephemeral) */
	BH_CTL_ACCEPT = 3,   /* sid = the new socket, arg = listener's sid */
	BH_CTL_SHUTDOWN = 4, /* sid: FIN after what was sent */
	BH_CTL_CLOSE = 5,    /* sid: the application is done with it */
	BH_CTL_ABORT = 6,    /* sid: RST now */
	BH_CTL_SETOPT = 7,   /* sid, arg = option, arg2 = value */
	BH_CTL_LOST = 8,     /* laddr, lport, raddr, rport: a connection a
			      * replaced tcp carried; have its peer reset it */
	/* tcp → sock */
	BH_CTL_RESULT = 16,     /* sid, arg = the op it answers, err */
	BH_CTL_CONNECTED = 17,  /* sid, addresses */
	BH_CTL_ACCEPTABLE = 18, /* sid = listener: a connection waits */
	BH_CTL_ACCEPTED = 19,   /* sid = new socket, addresses */
	BH_CTL_EOF = 20,        /* sid: the peer's FIN, after all data */
	BH_CTL_ERROR = 21,      /* sid, err: the connection failed */
	BH_CTL_CLOSED = 22,     /* sid: tcp forgot it; the id may be reused */
	/* sock → ip */
	BH_CTL_UDP_BIND = 32,   /* sid, lport */
	BH_CTL_UDP_UNBIND = 33, /* sid, lport */
	/* ip → sock */
	BH_CTL_DGRAM = 40, /* sid, raddr, rport, len; arg = pieces that follow */
};

struct bh_ctl {
	uint16_t op;
	uint16_t reserved;
	uint32_t sid;
	int32_t err; /* positive errno, 0 for success */
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t arg, arg2;
	uint32_t len;
};

/* Header of a BH_M_DGRAM buffer. */
struct bh_udp_out {
	uint32_t sid;
	uint32_t daddr;
	uint16_t dport, sport;
};

/* A pool's geometry, as every domain is configured with it. */
struct bh_pools_geom {
	struct bh_pool_geom g[BH_NPOOLS];
};

static inline uint64_t bh_handle(uint8_t pool, uint32_t buf)
{
	return ((uint64_t)pool << 32) | buf;
}
static inline uint8_t bh_handle_pool(uint64_t h) { return (uint8_t)(h >> 32); }
static inline uint32_t bh_handle_buf(uint64_t h) { return (uint32_t)h; }

const char *bh_dom_name(int dom);
const char *bh_pool_name(int pool);

#endif /* BH_DOMAINS_PROTO_H */
