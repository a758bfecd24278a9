/*
 * domains/tcp_priv.h - the TCP domain's state, shared by its files:
 * tcp_domain.c (the loop: links, library callbacks, timers, recovery)
 * and tcp_stats.c (what it publishes). One thread, like the domain.
 */
#ifndef BH_DOMAINS_TCP_PRIV_H
#define BH_DOMAINS_TCP_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "domains/dq.h"
#include "domains/rt.h"
#include "domains/stats.h"
#include "domains/tcp_pins.h"
#include "domains/track.h"
#include "domains/waitlist.h"
#include "tcp/tcp.h"

struct tsock {
	bool used, listener;
	bool eof_sent;
	bool shut_pending, close_pending; /* after the queued data */
	bool dirty;
	bool gone;  /* the library said CLOSED or never had it */
	bh_tcp_conn conn;
	uint32_t gen;
	uint32_t rx_out;      /* buffers forwarded to sock, not yet back */
	struct bh_dq pend_tx; /* data from sock the library had no room for */
	struct bh_dq pend_rx; /* data for sock the ring had no room for */
};

/* The TCP domain's own counters (the library's come first, by its names). */
#define TCPD_COUNTERS(X)                                                                   \
	X(bad_desc)      /* descriptors of a type or shape not expected */                 \
	X(bad_sid)       /* messages for a socket id we do not know */                     \
	X(bad_segment)   /* piece sequences that did not add up */                         \
	X(out_ring_full) /* segments dropped: the link to ip was full */                   \
	X(data_dropped)  /* application data refused (socket closing, error) */            \
	X(dq_full)       /* node pool exhausted (a bug if ever nonzero) */                 \
	X(nomem_waits)   /* sends the memory bound held back until it fell */        \
	X(rx_blocked)    /* received data that waited for room on the link to sock */    \
	X(chain_bad)     /* chains the library built that did not check out (a bug) */

struct tcpd_stats {
#define TCPD_COUNTER_FIELD(name) uint64_t name;
	TCPD_COUNTERS(TCPD_COUNTER_FIELD)
#undef TCPD_COUNTER_FIELD
};

struct tcpd {
	struct bh_env *env;
	struct bh_tcp *tcp;
	struct bh_track tr;
	struct bh_ctlq cq;
	bool sock_gone; /* the socket server was replaced: tell it nothing */
	/* ip's word that the link vouched for a checksum counts only where
	 * the plan leaves checksums to the link (mono): factored, TCP
	 * verifies every segment, whatever ip or the driver say. */
	bool vouch_ok;
	/* Connections lost with a replaced tcp, still to probe (BH_CTL_LOST;
	 * a new incarnation may have no buffers for a moment). */
	struct bh_ctl lost[64];
	unsigned nlost;
	struct tsock *s;
	uint32_t nsocks;
	uint32_t rx_budget; /* buffers per socket with sock at once */
	struct bh_dq_nodes nodes;
	uint32_t *dirty;
	uint32_t ndirty;
	/* Sockets whose data the library refused for its total memory
	 * bound (-ENOBUFS), and the memory held at the last refusal: no
	 * event of their own may ever come, so all are pumped again once
	 * less is held. */
	struct bh_wl nomem;
	uint64_t nomem_at;
	/* Sockets whose received data found the link to sock full, or
	 * queued control messages ahead of it: pumped again when anything
	 * comes back from sock (it has read the link) or the messages are
	 * out. Their own buffers may all be home already. */
	struct bh_wl blocked;
	uint64_t next_tick_us;
	uint64_t now_us;
	/* Send chains (bh_plan_send_chain): what each SEG buffer out names
	 * (domains/tcp_pins.h); `chains` is false where none are sent. */
	bool chains;
	struct bh_pins pins;
	/* A new incarnation holds back its disclaims of SOCK buffers while
	 * any SEG buffer is suspect: the old one's chains may still be read
	 * downstream (domains/recover.h, bh_recover_hold). */
	bool chain_hold;
	uint64_t hold_settled; /* own.stats.settled at the last look: the
				* table is scanned again only once it moves */
	/* A segment whose pieces span two batches. */
	struct bh_ip_rx rx;
	unsigned rx_want;
	struct tcpd_stats st;
};

/* tcp_stats.c: the library's counters and ours, and every connection. */
void bh_tcpd_publish(void *self, struct bh_stats_w *w);

#endif /* BH_DOMAINS_TCP_PRIV_H */
