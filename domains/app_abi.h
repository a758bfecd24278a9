/*
 * domains/app_abi.h - the boundary between an application (client/) and
 * the socket server domain (domains/sock_*.c; sock_priv.h lists them).
 *
 * Control: a SOCK_SEQPACKET UNIX socket, RUNDIR/NAME/app.sock. The server
 * learns the application's pid and uid from SO_PEERCRED. One request at a
 * time: struct bh_rpc_req in, struct bh_rpc_rep out (the reply to HELLO
 * carries two descriptors: the application's region, read-write, and the
 * server's notification word, read-write).
 *
 * Data: the application's own region (a memfd the server made for it
 * alone; no other application can see it):
 *
 *   page 0        region header, then struct bh_app_meta (server-written,
 *                 read once by the application)
 *   meta.ntfn_off BH_APP_WAITERS notification words, one per waiting
 *                 thread of the application (the server signals them)
 *   meta.dirty_off one bit per socket slot, set by the application when
 *                 it moved an index, cleared by the server; then a
 *                 summary word (any bit set)
 *   meta.slots_off struct bh_app_slot[nslots]
 *   meta.data_off for slot i: the receive ring (ring bytes), then the
 *                 send ring (ring bytes)
 *
 * A thread that waits on sockets owns one of the notification words
 * while it lives; it sets bit i (its word's index) in the `want_rx` or
 * `want_tx` mask of each socket it waits on (by what it waits for),
 * re-checks, and sleeps on word i; the server, after changing a slot,
 * signals every word whose bit is set in the mask of the side that
 * changed (both on a state change), so a send-side change never wakes a
 * reader. Threads of one application so never take each other's
 * wake-ups, also when several wait on one socket (beyond BH_APP_WAITERS
 * waiting threads at once, words are shared and a thread may wait out
 * its slice instead).
 *
 * A thread that must also wait on kernel descriptors (the preload
 * library's poll, select and epoll, preload/) sleeps in the kernel
 * instead of on its word's futex: the application asks for a wake-up
 * socket for that word (BH_RPC_WAKEFD: the server makes a datagram
 * socket pair, keeps one end and hands over the other), marks the word
 * SLEEPING as ipc/ntfn.h says, and polls its end with its other
 * descriptors; a signal that finds SLEEPING sends one byte on the
 * server's end (MSG_DONTWAIT: it never blocks, whatever the application
 * does with its end) rather than waking the futex. A word claimed anew
 * asks anew.
 *
 * Processes (fork): a process that forks asks for a token (BH_RPC_FORK)
 * before it forks; the server makes a member that holds every socket
 * the caller holds; the child connects anew and presents the token
 * (BH_RPC_JOIN) in place of HELLO, keeping the region it inherited
 * mapped. Each member sends its own requests on its own connection; a
 * socket closes when the last member holding it closes it or goes (its
 * connection closes: exit, crash or exec), and the region goes with the
 * last member. Members share the rings, so the library keeps its ring
 * indices in the slot (rx_tail, tx_head) under the slot's locks
 * (rx_lock, tx_lock: 0, or the pid of the process copying), and the
 * waiter words are claimed in the application's page (meta.shared_off,
 * struct bh_app_shared), which the server never reads.
 *
 * A member that execs may keep its connection (not close-on-exec): the
 * new program asks for the region again (BH_RPC_REGION, answered as
 * HELLO is) and closes the sockets it no longer holds.
 *
 * Each slot is two cache lines: the first written by the server only,
 * the second by the application only. Rings are byte streams with
 * free-running 32-bit indices: receive (server produces rx_head, the
 * application consumes rx_tail), send (application produces tx_head,
 * server consumes tx_tail). A datagram socket frames each datagram with
 * struct bh_dgram_hdr, padded to 16 bytes.
 *
 * Windows: a stream socket uses only the first `win` bytes of each ring
 * (rx_win, tx_win: a power of two from the smaller of BH_RING_WIN_MIN
 * and the ring up to the ring; 0: the whole ring). Positions are index
 * mod win, and at most win bytes are unread. The producer alone changes
 * its ring's window, and only when the ring is empty, before it writes
 * the data it then publishes with its index (release); the consumer
 * reads the window after it loads that index (acquire). The producer
 * grows the window when it had more to write than it held (and waits
 * for the ring to empty to do so), and shrinks it when it stayed under
 * a quarter full (bh_win_next). Request/response traffic so reuses a
 * few warm pages instead of walking the whole ring (every new page a
 * page fault in both processes and a cache miss), and a bulk transfer
 * still gets the whole ring. A datagram socket's ring is used whole.
 *
 * Everything the application writes is untrusted by the server: indices
 * are checked against the server's own (they move forward, never past
 * what is there, 0 <= head - tail <= ring); a violation resets that
 * socket and is logged. The server keeps its own indices privately and
 * never re-reads them.
 */
#ifndef BH_DOMAINS_APP_ABI_H
#define BH_DOMAINS_APP_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ipc/ntfn.h"

#define BH_APP_MAGIC 0x53505041u /* "APPS" */
#define BH_APP_VERSION 5u
/* The badge an application ORs into the socket server's notification
 * word after it set dirty bits (domains/proto.h lists the others). */
#define BH_BADGE_APP (1u << 9)
#define BH_APP_WAITERS 64u /* the bits of a slot's want mask */

enum bh_rpc_op {
	BH_RPC_HELLO = 1,    /* a = BH_APP_VERSION */
	BH_RPC_SOCKET = 2,   /* a = BH_SOCK_STREAM | BH_SOCK_DGRAM -> slot */
	BH_RPC_BIND = 3,     /* slot, addr, port */
	BH_RPC_LISTEN = 4,   /* slot, a = backlog */
	BH_RPC_CONNECT = 5,  /* slot, addr, port, flags & BH_RPC_NONBLOCK */
	BH_RPC_ACCEPT = 6,   /* slot -> slot of the new socket, peer */
	BH_RPC_SHUTDOWN = 7, /* slot, a = SHUT_RD | SHUT_WR | SHUT_RDWR */
	BH_RPC_CLOSE = 8,    /* slot */
	BH_RPC_SETOPT = 9,   /* slot, a = BH_OPT_*, b = value */
	BH_RPC_GETNAME = 10, /* slot -> local and peer addresses */
	BH_RPC_WAKEFD = 11,  /* a = waiter word index -> one descriptor: a wake-up socket */
	BH_RPC_FORK = 12,    /* -> token: a member to be, holding what the caller holds */
	BH_RPC_JOIN = 13,    /* token (instead of HELLO, on a new connection): be that member */
	BH_RPC_CANCEL = 14,  /* token: the fork failed; drop that member */
	BH_RPC_REGION = 15,  /* a member after exec: the region and the server's word again */
};

#define BH_SOCK_STREAM 1u
#define BH_SOCK_DGRAM 2u
#define BH_RPC_NONBLOCK 1u

/* Options the server forwards to TCP (values of enum bh_tcp_opt). */
enum bh_app_opt {
	BH_OPT_NODELAY = 0,
	BH_OPT_KEEPALIVE = 1,
	BH_OPT_KEEPIDLE = 2,
	BH_OPT_KEEPINTVL = 3,
	BH_OPT_KEEPCNT = 4,
};

struct bh_rpc_req {
	uint32_t op;
	uint32_t slot;
	uint32_t a, b;
	uint32_t addr; /* IPv4, host order */
	uint16_t port;
	uint16_t flags;
	uint64_t token; /* JOIN, CANCEL */
};

struct bh_rpc_rep {
	int32_t ret; /* >= 0, or a negative errno */
	uint32_t slot;
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t nslots, ring; /* HELLO, JOIN: the region's geometry */
	uint32_t pad;
	uint64_t token; /* FORK */
};

struct bh_app_meta {
	uint32_t magic, version;
	uint32_t nslots, ring;
	uint64_t ntfn_off, dirty_off, slots_off, data_off;
	uint64_t shared_off; /* struct bh_app_shared: the application's own page */
	uint32_t dgram_max; /* the largest datagram the server sends (EMSGSIZE above) */
	/* The instance's address, prefix length and gateway (IPv4, host
	 * order; gw 0: none): where the preload library sends a socket */
	uint32_t addr, gw;
	uint32_t prefix;
	uint32_t pad;
};

/* Slot state bits (server-written). */
#define BH_SS_OPEN 0x001u       /* the slot is a socket */
#define BH_SS_CONNECTING 0x002u
#define BH_SS_CONNECTED 0x004u
#define BH_SS_LISTENING 0x008u
#define BH_SS_RX_EOF 0x010u     /* no more data: the peer's FIN is behind rx_head */
#define BH_SS_ERROR 0x020u      /* err holds why the connection failed */
#define BH_SS_HUP 0x040u        /* the connection is gone */
#define BH_SS_TX_SHUT 0x080u    /* our FIN is queued */
#define BH_SS_BOUND 0x100u
#define BH_SS_RX_WANTS 0x200u   /* the server waits for room in the rx ring */

struct bh_app_slot {
	/* server-written */
	uint32_t state;
	int32_t err; /* positive errno */
	uint32_t rx_head;
	uint32_t tx_tail;
	uint32_t accq; /* connections waiting for accept */
	uint32_t seq;  /* bumped on every change */
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t rx_win; /* the receive ring's window (0: all of it) */
	uint32_t pad0[6];
	/* application-written */
	uint32_t rx_tail;
	uint32_t tx_head;
	/* bit i: the thread on waiter word i waits on this slot, to read or
	 * accept (want_rx), to send or for a connection to complete
	 * (want_tx); a state change signals both */
	uint64_t want_rx;
	uint64_t want_tx;
	uint32_t rx_lock, tx_lock; /* 0, or the pid of the process copying */
	uint32_t tx_win; /* the send ring's window (0: all of it) */
	uint32_t pad1[7];
};

_Static_assert(sizeof(struct bh_app_slot) == 128, "two cache lines");

/* The application's own page (written by its processes, never read by
 * the server): which waiter words are taken, and by which process. */
struct bh_app_shared {
	uint64_t waiters_used;            /* bit i: word i is a thread's */
	int32_t waiter_pid[BH_APP_WAITERS]; /* the process of that thread */
};

struct bh_dgram_hdr {
	uint32_t len;  /* payload bytes */
	uint32_t addr; /* source (rx) or destination (tx), host order */
	uint16_t port;
	uint16_t pad;
	uint32_t pad2;
};

#define BH_DGRAM_ALIGN 16u
static inline uint32_t bh_dgram_space(uint32_t len)
{
	return (uint32_t)sizeof(struct bh_dgram_hdr) + ((len + BH_DGRAM_ALIGN - 1) & ~(BH_DGRAM_ALIGN - 1));
}

/* Ring windows (see the top). */
#define BH_RING_WIN_MIN (16u * 1024)
#define BH_WIN_QUIET 64u

/* The window a slot's field names, or 0 when the field is not one a
 * producer may write (the consumer then resets the socket). */
static inline uint32_t bh_win_of(uint32_t field, uint32_t ring)
{
	uint32_t min = ring < BH_RING_WIN_MIN ? ring : BH_RING_WIN_MIN;
	if (field == 0)
		return ring;
	if (field < min || field > ring || (field & (field - 1)))
		return 0;
	return field;
}

/* The window a new stream socket starts with. */
static inline uint32_t bh_win_first(uint32_t ring)
{
	return ring < BH_RING_WIN_MIN ? ring : BH_RING_WIN_MIN;
}

/* The producer's private record of how it used its window since the
 * ring was last empty. */
struct bh_win_use {
	uint32_t peak;  /* the most it held unread */
	uint32_t quiet; /* empty rings in a row that stayed under a quarter */
	bool full;      /* it had more to write than the window held */
};

/* The producer found its ring empty (window win, ring bytes in all):
 * the window for what it writes next. Doubles after a full window;
 * halves after BH_WIN_QUIET empty rings in a row that stayed under a
 * quarter full (many: a bulk receiver whose reads keep up empties its
 * ring often with little in it, and every growth costs a wait for an
 * empty ring). */
static inline uint32_t bh_win_next(struct bh_win_use *u, uint32_t win, uint32_t ring)
{
	if (u->full && win < ring) {
		win *= 2;
		u->quiet = 0;
	} else if (u->peak <= win / 4 && win > bh_win_first(ring)) {
		if (++u->quiet >= BH_WIN_QUIET) {
			win /= 2;
			u->quiet = 0;
		}
	} else {
		u->quiet = 0;
	}
	u->full = false;
	u->peak = 0;
	return win;
}

/* Room for the producer with `used` bytes unread in a window of win: a
 * producer that found its window full waits for the ring to empty, so
 * that it can grow it. */
static inline uint32_t bh_win_room(const struct bh_win_use *u, uint32_t win, uint32_t ring,
				   uint32_t used)
{
	if (used >= win || (used && u->full && win < ring))
		return 0;
	return win - used;
}

/* The producer wrote k bytes of the `wanted` it had, with `used` unread
 * before them. */
static inline void bh_win_wrote(struct bh_win_use *u, uint32_t used, uint32_t k, size_t wanted)
{
	if (used + k > u->peak)
		u->peak = used + k;
	if (wanted > k)
		u->full = true;
}

/* Ring byte copies that wrap (size a power of two). */
static inline void bh_ring_put(uint8_t *ring, uint32_t size, uint32_t at, const void *src,
			       uint32_t n)
{
	uint32_t o = at & (size - 1), first = size - o < n ? size - o : n;
	if (first)
		memcpy(ring + o, src, first);
	if (n > first)
		memcpy(ring, (const uint8_t *)src + first, n - first);
}

static inline void bh_ring_get(void *dst, const uint8_t *ring, uint32_t size, uint32_t at,
			       uint32_t n)
{
	uint32_t o = at & (size - 1), first = size - o < n ? size - o : n;
	if (first)
		memcpy(dst, ring + o, first);
	if (n > first)
		memcpy((uint8_t *)dst + first, ring, n - first);
}

#endif /* BH_DOMAINS_APP_ABI_H */
