/*
 * domains/rt.h - what every domain shares: its entry points (in the shape
 * of sDDF's init/notified), the main loop that drives one domain in its
 * own process or all four in one (mono), the poller thread that turns
 * outside events (a TAP descriptor, the application socket, the peer of a
 * shared-memory link) into a badge on the domain's notification word,
 * and a queue for control messages that must not be lost.
 *
 * The loop, for one domain or all four:
 *
 *   poll every domain (each drains its channels, does its I/O and timers)
 *   notify every channel that owes a signal (once per batch)
 *   publish counters at most every BH_RT_PUBLISH_NS; beat the heartbeat
 *   if nothing made progress: arm every channel (request, re-check),
 *     arm the pollers (or the wire's own word), and sleep on the
 *     notification word (and that one) until a badge arrives or the
 *     earliest timer (at most BH_RT_MAX_SLEEP_NS)
 */
#ifndef BH_DOMAINS_RT_H
#define BH_DOMAINS_RT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "domains/logger.h"
#include "domains/plan.h"
#include "domains/stats.h"

#define BH_RT_PUBLISH_NS (50ull * 1000 * 1000)
#define BH_RT_MAX_SLEEP_NS (100ull * 1000 * 1000)
/* Polls of the notification word before sleeping. With more processes
 * than cores, a spinning domain takes the core its neighbour needs, so
 * the default is short. */
#define BH_RT_SPIN 100u
/* Descriptors a domain takes from one queue in one pass;
 * $BULKHEAD_BATCH lowers it, 1 to BH_RT_BATCH, to measure what batching
 * is worth. */
#define BH_RT_BATCH 256u
extern uint32_t bh_rt_batch;

struct bh_dom_vt {
	const char *name;
	size_t size;
	/* Attaches to what env holds; a message in err on failure. */
	int (*init)(void *self, struct bh_env *env, char *err, size_t errlen);
	/* Does what is ready; nonzero when it made progress. `badges` are
	 * those that arrived on the notification word since the last pass
	 * (BH_BADGE_*): a hint, never the only way work is found. */
	int (*poll)(void *self, uint64_t now_ns, uint32_t badges);
	/* CLOCK_MONOTONIC ns of its next timer, or UINT64_MAX. */
	uint64_t (*deadline)(void *self);
	/* Optional: before sleeping (arm pollers). True: work is there.
	 * It may set *also to a second notification word to sleep on beside
	 * the domain's own (outside events without a poller thread; a
	 * signal there reads as BH_BADGE_IO); at most one per loop. */
	bool (*arm)(void *self, struct bh_ntfn **also);
	/* Optional: after the sleep (withdraw what arm asked for). */
	void (*disarm)(void *self);
	void (*publish)(void *self, struct bh_stats_w *w);
	void (*fini)(void *self);
	/* Optional: the neighbour on `link` was replaced and the link reset
	 * (buffers are recover.c's business; this is for the rest of the
	 * domain's state about that neighbour: connections, bindings,
	 * queued control messages). Called once the link carries again, so
	 * what it gives back or sends is not lost. */
	void (*peer_reset)(void *self, int link);
	/* Optional: true while the domain need not be woken for buffers
	 * coming back on `link` (they wait for its next pass). Asked before
	 * each sleep; absent means false. For its own buffers: while it has
	 * enough free. For buffers it forwards home to another domain: only
	 * while few of those are out (bh_track_few_out), so that their owner,
	 * which may be waiting, is never short of more than that. */
	bool (*lazy_give_backs)(void *self, int link);
};

extern const struct bh_dom_vt bh_driver_vt, bh_ip_vt, bh_tcp_vt, bh_sock_vt;

/* The usual lazy_give_backs answer for a link that brings home only the
 * domain's own buffers: lazy while at least a quarter of its pool is
 * free. */
static inline bool bh_rt_own_pool_plenty(const struct bh_env *env)
{
	return env->own.nfree >= env->own.geom.nbufs / 4;
}
const struct bh_dom_vt *bh_dom_vt(int dom);

/* --- loops --- */

/* Runs domain `dom` of the plan at BH_FD_PLAN until told to stop (SIGTERM
 * or SIGINT). Returns the process exit status. `restarted`: it replaces
 * a domain that died; it reports ready once every link is up again. */
int bh_rt_run_domain(int dom, bool restarted);
/* Runs all four in this process over in-process links. */
int bh_rt_run_mono(void);

/* --- poller thread --- */

struct bh_poller {
	pthread_t thread;
	bool started;
	/* Blocks until outside work is ready (>0) or timeout_ms passes (0). */
	int (*wait)(void *arg, int timeout_ms);
	void *arg;
	struct bh_ntfn *bell;
	uint32_t armed; /* futex word: 1 while the main loop wants a signal */
	uint32_t stop;
	uint32_t started_up; /* futex word: the thread dropped its privileges */
	struct bh_ntfn_stats nstats;
	uint64_t wakes; /* badges posted */
};

int bh_poller_start(struct bh_poller *p, int (*wait)(void *, int), void *arg,
		    struct bh_ntfn *bell);
/* The main loop is about to sleep: the poller watches from now on, and
 * posts BH_BADGE_IO once when outside work is ready. */
void bh_poller_arm(struct bh_poller *p);
void bh_poller_stop(struct bh_poller *p);

/* --- control messages that must arrive --- */

/* A bounded private queue in front of a link: a control message waits
 * here when no buffer or ring slot is free, and goes out in order. */
struct bh_ctlq {
	struct bh_ctl *q;
	uint32_t cap, head, tail;
	uint64_t overflow; /* messages lost: the queue itself was full */
};
int bh_ctlq_init(struct bh_ctlq *cq, uint32_t cap);
void bh_ctlq_fini(struct bh_ctlq *cq);
/* Queues c for link `link` of env, buffers from env's own pool, and
 * sends what it can; returns false if the message had to be dropped. */
bool bh_ctl_send(struct bh_env *env, struct bh_ctlq *cq, int link, const struct bh_ctl *c);
/* Sends what waits; true if the queue is now empty. */
bool bh_ctlq_flush(struct bh_env *env, struct bh_ctlq *cq, int link);

/* A control message from a descriptor, copied out once; false if the
 * span cannot hold one (the caller counts it). */
bool bh_ctl_read(const struct bh_env *env, const struct bh_desc *d, struct bh_ctl *out);

/* Time helpers. */
static inline uint64_t bh_ns_to_ms(uint64_t ns) { return ns / 1000000u; }
static inline uint64_t bh_ns_to_us(uint64_t ns) { return ns / 1000u; }

#endif /* BH_DOMAINS_RT_H */
