/*
 * domains/sock_priv.h - the socket server's private state and the calls
 * between its files (lwIP's tcp_priv.h, for the socket server). Nothing
 * outside domains/sock_*.c includes it; the domain's one public name is
 * bh_sock_vt (rt.h).
 *
 *   sock_domain.c  the entry points (init, poll, publish, fini,
 *                  peer_reset) and the order of one pass:
 *                  sk_outside_io -> sk_reclaim -> sk_from_tcp ->
 *                  sk_from_ip -> sk_app_dirty -> sk_service (each marked
 *                  socket) -> flush control queues -> sk_signal_apps
 *   sock_table.c   the socket table: ids, ports, state published to the
 *                  application's slot, replies, closing and freeing
 *   sock_app.c     the application side: attach (hello), one handler per
 *                  request kind, detach, the dirty bits applications set
 *   sock_data.c    the data path: copy in (received data into the
 *                  application's receive ring), copy out (its send ring
 *                  into SOCK buffers for tcp or ip), and sk_service
 *   sock_stack.c   the tcp and ip side: their messages, given-back
 *                  buffers, and what a replaced tcp or ip means
 *
 * Axioms the files keep:
 *   - A socket id (sid) is 1..nsocks-1; 0 names none. An id is reused
 *     only when tcp, the application and the buffers in flight are all
 *     done with it (sk_maybe_free).
 *   - rx_head and tx_tail are the server's own indices into the
 *     application's rings, never re-read from shared memory; what the
 *     application writes (rx_tail, tx_head, dirty bits, want_rx, want_tx) is read
 *     once and checked, and a bad value resets that socket only.
 *   - The server never writes another application's region.
 *   - Control messages to tcp leave in order (cq_tcp); data waits while
 *     one is queued, so that a CLOSE never overtakes the data before it.
 */
#ifndef BH_DOMAINS_SOCK_PRIV_H
#define BH_DOMAINS_SOCK_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "domains/app_abi.h"
#include "domains/dq.h"
#include "domains/rt.h"
#include "domains/waitlist.h"
#include "ipc/log.h"

#define BATCH BH_RT_BATCH
#define NO_APP UINT32_MAX  /* ssock.app: no application holds the socket */
#define NO_SLOT UINT32_MAX /* free_slot (sock_app.c): the application's region is full */
#define EV_APPS UINT32_MAX /* epoll tag of app.sock itself; others: an application's index */

/* An attached application process: its control socket and its
 * credentials (a member); the one that said hello also owns the region
 * (app_abi.h) and is the root its forked children join (BH_RPC_FORK,
 * BH_RPC_JOIN). A socket's `app` is always a root; a socket closes when
 * no member holds it any more (slot_refs), and the region goes when the
 * root has no member left (the root's own connection may be gone: fd -1). */
struct app {
	bool used;
	bool pending;             /* made by a fork, waiting for the child's JOIN */
	bool left;                /* a root whose own process went (its region stays) */
	int fd;                   /* its control socket (SOCK_SEQPACKET), or -1 */
	pid_t pid;                /* from SO_PEERCRED */
	uid_t uid;
	uint32_t root;            /* the root whose region it uses; NO_APP before hello */
	uint8_t *holds;           /* a bit per slot of the root's region: held by this member */
	uint64_t token;           /* pending: what the child presents */
	uint64_t pending_until;   /* pending: ns; then the holds are dropped */
	uint32_t members;         /* root: members using its region, pending ones included */
	uint16_t *slot_refs;      /* root: members holding each slot */
	struct bh_region region;  /* NULL base until hello */
	struct bh_app_slot *slots;
	uint8_t *data;            /* nslots x (receive ring, send ring) */
	uint32_t *dirty; /* nslots bits, then the summary word */
	struct bh_ntfn *ntfn;     /* BH_APP_WAITERS words, one per waiting thread */
	uint32_t nslots, ring, nused;
	uint32_t *slot_sid; /* private: 0 free, else the socket */
	bool *slot_busy;    /* private: closed by the app, still draining */
	uint64_t owe; /* waiter words to signal (bit i: word i) */
	int wake_fd[BH_APP_WAITERS]; /* the server's ends of words' wake-up pairs (BH_RPC_WAKEFD), or -1 */
	/* the request being answered later (this member's) */
	bool waiting;
	uint32_t wait_sid;
	uint32_t wait_op;
	struct bh_ntfn_stats nstats;
};

struct ssock {
	bool used;
	bool udp;
	bool tcp_has;  /* tcp holds an entry for this sid */
	bool listener;
	bool connected, connecting;
	bool eof_pending, eof;
	bool app_closed;   /* the application is done; drain, then CLOSE */
	bool close_abort;  /* closed with data unread: ABORT (RST), not CLOSE */
	bool shut_wr_pending, shut_wr_sent;
	bool reset;        /* error or gone: no more data either way */
	bool dirty;
	bool rx_wants;     /* waiting for room in the app's rx ring */
	int err;
	uint32_t app, slot;        /* NO_APP: no application holds it */
	uint32_t rx_head, tx_tail; /* our indices, never re-read */
	uint32_t rx_win;           /* the receive ring's window (app_abi.h) */
	struct bh_win_use rx_use;
	/* What the slot last showed the application (sk_publish signals a
	 * direction's waiters only when something of theirs changed). */
	bool published;
	uint32_t pub_state, pub_rx_head, pub_tx_tail, pub_accq;
	uint32_t shut_at;          /* tx_head when shutdown(SHUT_WR) came */
	uint32_t tx_out;           /* SOCK buffers with tcp */
	uint32_t tx_out_bytes;     /* stream bytes in them */
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t head_off;         /* bytes of the first queued buffer copied */
	struct bh_dq rxq;
	/* accepted connections not yet taken by the application */
	uint32_t acc_next, acc_head, acc_tail, accq;
	uint32_t parent;
	uint32_t backlog; /* a listener's, to listen again after a tcp restart */
	/* Options set before tcp held the socket: sent after CONNECT or
	 * LISTEN; a listener's go to each connection it accepts (Linux's
	 * accepted sockets inherit them). Bit i of opt_set: enum bh_app_opt i. */
	uint8_t opt_set;
	uint32_t opt_val[5];
	uint32_t kept_answers; /* tcp's answers still to come for kept options sent */
};

/* The socket server's counters, in the order `bulkhead stats` lists them
 * (after sockets and apps, which are counted when published). */
#define SOCKD_COUNTERS(X)                                                                  \
	X(apps_attached)                                                                   \
	X(apps_detached)                                                                   \
	X(apps_refused)   /* too many applications, or no credentials */                   \
	X(requests)                                                                        \
	X(requests_bad)   /* malformed, or out of turn */                                  \
	X(app_bad_index)  /* sockets reset for an invalid ring index */                    \
	X(app_win_changes) /* receive ring windows grown or shrunk (app_abi.h) */          \
	X(bad_desc)       /* descriptors from tcp or ip that were not what they said */    \
	X(bad_sid)        /* ... or named no socket of ours */                             \
	X(rx_bytes)                                                                        \
	X(tx_bytes)                                                                        \
	X(low_port_denied)                                                                 \
	X(udp_too_big)    /* datagrams larger than the ring: dropped */                    \
	X(tx_starved)     /* sends that found no SOCK buffer or link room (retried on a return) */ \
	X(app_signals)                                                                     \
	X(app_wake_writes) /* eventfd writes to applications' waiters */

struct sockd_stats {
#define SOCKD_COUNTER_FIELD(name) uint64_t name;
	SOCKD_COUNTERS(SOCKD_COUNTER_FIELD)
#undef SOCKD_COUNTER_FIELD
};

struct sockd {
	struct bh_env *env;
	const struct bh_plan *plan;
	struct bh_ctlq cq_tcp, cq_ip;
	struct ssock *s;
	uint32_t nsocks, next_sid;
	struct app *apps;
	uint32_t napps;
	uint32_t wake_fds; /* wake-up pair ends kept, all applications */
	struct bh_dq_nodes nodes;
	uint32_t *dirty;
	uint32_t ndirty;
	uint32_t *buf_sid; /* SOCK buffer -> socket it carries data for */
	uint16_t *buf_len; /* SOCK buffer -> stream bytes it carries */
	/* Sockets whose data found the SOCK pool empty or the link to tcp
	 * full: the buffers that come home may be other sockets', so all
	 * of these are serviced again when any does (sk_unstarve). Listed
	 * by id, not in ssock, which a new socket clears. */
	struct bh_wl starved;
	uint32_t tx_budget;       /* most SOCK buffers a socket lends tcp */
	uint32_t tx_budget_bytes; /* most stream bytes in them (its window) */
	uint32_t chunk;       /* most stream bytes in one SOCK buffer */
	uint32_t dgram_chunk; /* most bytes of a datagram's SOCK buffer */
	int epfd;
	struct bh_poller poller;
	uint64_t seen_wakes;
	uint64_t last_io_ns;
	uint8_t ports[2][65536 / 8]; /* bound ports: TCP, UDP */
	struct sockd_stats st;
	struct bh_ratelimit rl;
	uint32_t udp_want, udp_sid; /* pieces still to come of a datagram */
};

/* sock_table.c; the two lookups every descriptor makes are inline. */
static inline struct ssock *sk_sock_of(struct sockd *d, uint32_t sid)
{
	if (sid == 0 || sid >= d->nsocks || !d->s[sid].used)
		return NULL;
	return &d->s[sid];
}

/* Queues the socket for sk_service in this pass, once. */
static inline void sk_mark(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sk_sock_of(d, sid);
	if (s && !s->dirty) {
		s->dirty = true;
		d->dirty[d->ndirty++] = sid;
	}
}
uint32_t sk_sid_alloc(struct sockd *d);
bool sk_port_used(struct sockd *d, bool udp, uint16_t p);
void sk_port_set(struct sockd *d, bool udp, uint16_t p, bool on);
void sk_publish(struct sockd *d, struct ssock *s);
void sk_reply(struct sockd *d, struct app *a, const struct bh_rpc_rep *r);
void sk_reply_err(struct sockd *d, struct app *a, int ret);
void sk_reply_sock(struct sockd *d, struct app *a, int ret, struct ssock *s);
void sk_answer(struct sockd *d, uint32_t sid, uint32_t op, int ret);
void sk_to_tcp(struct sockd *d, uint16_t op, uint32_t sid, const struct bh_ctl *extra);
void sk_drop_rxq(struct sockd *d, struct ssock *s, int link);
void sk_maybe_free(struct sockd *d, uint32_t sid);
void sk_sock_close(struct sockd *d, uint32_t sid);

/* sock_app.c */
int sk_outside_io(struct sockd *d, uint64_t now, uint32_t badges);
/* sock_data.c: the SOCK pool was empty for sid; buffers came home. */
void sk_starved(struct sockd *d, uint32_t sid);
void sk_unstarve(struct sockd *d);
void sk_app_dirty(struct sockd *d);
void sk_app_detach(struct sockd *d, uint32_t ai, const char *why);
void sk_app_unbind_slot(struct sockd *d, struct app *a, uint32_t slot);
void sk_signal_apps(struct sockd *d);

/* sock_data.c */
void sk_service(struct sockd *d, uint32_t sid);

/* sock_stack.c */
void sk_from_tcp(struct sockd *d, const struct bh_desc *x, unsigned n);
void sk_from_ip(struct sockd *d, const struct bh_desc *x, unsigned n);
int sk_reclaim(struct sockd *d, int link, int peer);
void sk_tcp_replaced(struct sockd *d);
void sk_ip_replaced(struct sockd *d);

#endif /* BH_DOMAINS_SOCK_PRIV_H */
