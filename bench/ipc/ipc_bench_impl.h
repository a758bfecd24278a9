/*
 * bench/ipc/ipc_bench_impl.h - what the IPC benchmark's files share: the
 * constants and options, the watchdog's flags and the small helpers
 * (ipc_bench.c), the links (ipc_bench_link.c), the two parties
 * (ipc_bench_party.c), the tests, results and checks (ipc_bench.c) and
 * the report (ipc_bench_report.c). The method is at the top of
 * ipc_bench.c. Not for users of ipc_bench.h.
 */
#ifndef BH_BENCH_IPC_BENCH_IMPL_H
#define BH_BENCH_IPC_BENCH_IMPL_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/desc.h"
#include "ipc/ntfn.h"
#include "ipc/order.h"
#include "ipc/region.h"
#include "ipc/ring.h"

#define BH_BENCH_RT_SAMPLE 32      /* round trips per timed sample */
#define BH_BENCH_CALL_SAMPLE 1024  /* function calls per timed sample */
#define BH_BENCH_RING_CAP 1024u    /* slots per ring */
#define BH_BENCH_BURST 256u        /* most descriptors taken per receive */
#define BH_BENCH_MAX_BATCH 64u     /* most descriptors per send */
#define BH_BENCH_YIELD_EVERY 1024u /* polling turns between sched_yield() */
#define BH_BENCH_BADGE 1u
#define BH_BENCH_ERR 192

/* Longest single sleep in a wait: how quickly a sleeping party notices the
 * watchdog. Raw futex waits and notification waits use the same slice, so
 * both pay the same for a timed FUTEX_WAIT. */
#define BH_BENCH_SLICE_NS (50 * 1000 * 1000)
#define BH_BENCH_GRACE_S 2

#define BH_BENCH_ITERS_FULL 100000u
#define BH_BENCH_ITERS_QUICK 10000u
#define BH_BENCH_ITERS_MAX 5000000u
#define BH_BENCH_ROUNDS_DEFAULT 5u
#define BH_BENCH_ROUNDS_MAX 20u
#define BH_BENCH_RING_PER_ITER 100u /* ring descriptors per round trip asked */
#define BH_BENCH_SYS_PER_ITER 2u    /* kernel-channel messages per round trip */

/* The IPC layer's targets (listed at the top of ipc_bench.c). */
#define BH_BENCH_TARGET_FUTEX 1.2
#define BH_BENCH_TARGET_LINE 1.5
#define BH_BENCH_TARGET_BATCH 20e6

struct bh_bench_opts {
	bool quick, pin, json;
	uint64_t iters;      /* round trips per test, over all rounds */
	unsigned rounds;     /* each test runs in this many interleaved rounds */
	uint64_t ring_descs; /* one-way descriptors over rings (and function calls) */
	uint64_t sys_msgs;   /* one-way messages over kernel channels */
	uint32_t spin;       /* notification spin budget of the "spin" rows */
	unsigned timeout_s;  /* watchdog per test */
	const char *only;    /* comma-separated test ids to run, or NULL: all */
};

/* ---- the watchdog and small helpers (ipc_bench.c) ---- */

/* Set from signal handlers; every wait loop of the benchmark polls
 * bh_bench_stop (one load of a line nobody writes while things go well). */
extern volatile sig_atomic_t bh_bench_stop;
extern volatile sig_atomic_t bh_bench_expired;   /* the test's alarm fired */
extern volatile sig_atomic_t bh_bench_peer_gone; /* SIGCHLD: the peer died */
extern volatile sig_atomic_t bh_bench_victim;    /* the peer process, or 0 */

/* The message into err (BH_BENCH_ERR bytes). */
void bh_bench_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Why a wait gave up (its operation returned -EINTR). */
void bh_bench_stopped(char *err, const char *what);
/* A failed send or receive (rc), into err; returns -1. */
int bh_bench_io_error(char *err, const char *what, int rc);
/* A descriptor out of order, into err; returns -1. */
int bh_bench_order_error(char *err, const char *who, uint64_t want, uint32_t got);
/* Pins the calling thread to cpu; 0 or -errno. */
int bh_bench_pin(int cpu);

/* One turn of a polling wait. Every BH_BENCH_YIELD_EVERY turns it yields the
 * CPU: unpinned, the scheduler may put both parties on one core for a while,
 * and a party that only spun would hold the core its peer needs for a whole
 * time slice. Every polling test, baselines included, waits this way. */
static inline void bh_bench_idle(uint32_t *turns)
{
	if (++*turns % BH_BENCH_YIELD_EVERY == 0)
		sched_yield();
	else
		bh_cpu_relax();
}

static inline void bh_bench_desc_make(struct bh_desc *d, uint32_t seq)
{
	*d = (struct bh_desc){.buf = seq & 4095u, .len = 64, .aux = seq};
}

/* ---- links: the two parties' ends of one mechanism (ipc_bench_link.c) ---- */

enum bh_bench_kind {
	BH_BENCH_CALL,
	BH_BENCH_RING,
	BH_BENCH_LINE,
	BH_BENCH_FUTEX,
	BH_BENCH_PIPE,
	BH_BENCH_EVENTFD,
	BH_BENCH_SOCKET,
};

struct bh_bench_word {
	uint32_t v;
} __attribute__((aligned(BH_CACHE_LINE)));

/* MAP_SHARED anonymous memory, one per test: the raw baselines' words and
 * the peer's report. Every word has a cache line of its own. */
struct bh_bench_shared {
	struct bh_bench_word line;     /* raw cache line: the one word both spin on */
	struct bh_bench_word inbox[2]; /* raw futex: side i sleeps on inbox[i] */
	struct bh_bench_word ready;    /* peer: attached, starting */
	struct bh_bench_word done;     /* peer: finished; the report below is final */
	int32_t peer_failed;
	char peer_msg[BH_BENCH_ERR];
	struct bh_ntfn_stats peer_nst;
};

struct bh_bench_end {
	int side;
	/* rings */
	struct bh_ring_producer tx;
	struct bh_ring_consumer rx;
	struct bh_region view; /* a peer process's own, least-privilege mapping */
	struct bh_ntfn *self_ntfn, *peer_ntfn;
	struct bh_ntfn_stats nst;
	uint32_t spin;
	bool notify;
	/* raw baselines */
	uint32_t *line;
	uint32_t *inbox, *outbox;
	/* kernel channels */
	int rfd, wfd;
	uint64_t pending; /* eventfd: counted but not yet handed out */
};

/* One mechanism, as both sides use it. */
struct bh_bench_ops {
	uint32_t seq_mask; /* bits of the sequence number a message carries */
	/* Sends n descriptors; 0, or -EINTR when stopped, or another -errno. */
	int (*send)(struct bh_bench_end *e, const struct bh_desc *d, unsigned n);
	/* Waits for at least one, takes up to max; returns how many, or as send. */
	int (*recv)(struct bh_bench_end *e, struct bh_desc *out, unsigned max);
};

struct bh_bench_link {
	enum bh_bench_kind kind;
	const struct bh_bench_ops *ops;
	struct bh_region rings; /* two rings: side 0 -> 1 first, then 1 -> 0 */
	struct bh_region bells; /* two notification words: side i waits on i */
	struct bh_bench_shared *sh;
	int fds[4]; /* kernel channel descriptors, -1 if unused */
	struct bh_bench_end end[2];
};

/* Creates what both sides share and attaches side 0. The peer's end is
 * attached by the peer itself (bh_bench_peer_attach), after fork. */
int bh_bench_link_open(struct bh_bench_link *l, enum bh_bench_kind kind, bool notify,
		       uint32_t spin, char *err);
void bh_bench_link_close(struct bh_bench_link *l);
/* Closes the descriptors of side `side`'s end that the other end does not
 * also use. */
void bh_bench_link_drop_end(struct bh_bench_link *l, int side);
/* The peer's half of setup (process: the peer is a forked process). */
int bh_bench_peer_attach(struct bh_bench_link *l, bool process, char *err);

/* ---- the two parties (ipc_bench_party.c) ---- */

struct bh_bench_plan {
	uint64_t rt_warm, rt_samples, rt_total; /* round trips; total = warm + samples x sample */
	uint64_t stream_warm, stream_total;     /* one-way descriptors, warm-up included */
	unsigned batch;                         /* descriptors per send in the stream */
};

struct bh_bench_thread_arg {
	struct bh_bench_link *l;
	const struct bh_bench_plan *p;
	bool pin;
};

struct bh_bench_peer {
	bool started, thread;
	pid_t pid;
	pthread_t tid;
	struct bh_bench_thread_arg arg;
};

/* Starts side 1 as a thread or a forked process. */
int bh_bench_peer_start(struct bh_bench_link *l, const struct bh_bench_plan *p,
			const struct bh_bench_opts *o, bool thread, struct bh_bench_peer *pr,
			char *err);
/* Waits, sleeping in short steps, until the peer sets *flag. */
int bh_bench_await(const uint32_t *flag, const char *what, char *err);
/* Ends the peer and takes its report (failed: side 0 already failed). */
int bh_bench_peer_end(struct bh_bench_link *l, struct bh_bench_peer *pr, bool failed, char *err);
/* Side 0's timed round trips: out[] gets each sample's ns per round trip. */
int bh_bench_rt_phase(struct bh_bench_link *l, const struct bh_bench_plan *p, double *out,
		      char *err);
/* Side 0 receives the peer's stream; *descs and *ns are the timed part. */
int bh_bench_stream_phase(struct bh_bench_link *l, const struct bh_bench_plan *p, uint64_t *descs,
			  uint64_t *ns, char *err);

/* ---- tests, results and checks (ipc_bench.c) ---- */

struct bh_bench_case {
	const char *id;   /* stable key for --only, --json and the target checks */
	const char *name; /* what the table shows (spin and batch appended) */
	enum bh_bench_kind kind;
	bool thread;    /* the peer is a thread of this process */
	bool notify;    /* consumers sleep on a notification */
	bool spin_zero; /* notification spin 0 rather than the configured budget */
	bool rt;        /* measure round trips */
	bool stream;    /* measure one-way throughput */
	unsigned batch; /* descriptors per send in the stream */
};

/* The tests, in the order they run (bh_bench_cases in ipc_bench.c). */
#define BH_BENCH_NCASES ((size_t)16)
extern const struct bh_bench_case bh_bench_cases[];

struct bh_bench_row {
	const struct bh_bench_case *c;
	char name[64];
	const char *unit; /* what the throughput counts */
	uint32_t spin;
	bool skipped; /* not selected by --only */
	bool failed;  /* in any round: later rounds skip it */
	char err[BH_BENCH_ERR + 16]; /* "round N: " and the round's error */
	/* Accumulated over the rounds. */
	double *rt;   /* every round trip sample, ns */
	size_t rt_n;
	double round_rt[BH_BENCH_ROUNDS_MAX]; /* each round's median */
	unsigned rounds;                      /* rounds measured */
	uint64_t stream_descs, stream_ns;     /* timed part of the one-way transfers */
	uint64_t moved;                       /* descriptors moved, for the counters */
	uint64_t signals_n, wakes_n, sleeps_n;
	/* Results; < 0: not measured. */
	double rtt_ns;  /* median of every sample */
	double tput;    /* one-way per second */
	double wakes;   /* FUTEX_WAKE calls per descriptor moved (ntfn rows) */
	double signals; /* bh_ntfn_signal calls per descriptor */
	double sleeps;  /* FUTEX_WAIT calls per descriptor */
};

struct bh_bench_check {
	const char *id;
	const char *what;
	const char *num_id, *den_id; /* ratio checks: round trip of num / of den */
	double target;
	bool at_most; /* value <= target passes (else value >= target) */
	bool have;
	bool pass;
	double value;
	double num, den;                    /* the pooled round trips, for reference */
	double ratio[BH_BENCH_ROUNDS_MAX];  /* ratio checks: one per round */
	unsigned nratio;
};

#define BH_BENCH_NCHECKS 3

/* What one round of a test does. */
void bh_bench_plan_for(struct bh_bench_plan *p, const struct bh_bench_case *c,
		       const struct bh_bench_opts *o);
/* The row of the test with this id, or NULL. */
const struct bh_bench_row *bh_bench_find(const struct bh_bench_row *rows, const char *id);

/* ---- the report (ipc_bench_report.c) ---- */

void bh_bench_print_md(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
		       const struct bh_bench_check k[], double load);
void bh_bench_print_json(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
			 const struct bh_bench_check k[], double load, bool ok);

#endif /* BH_BENCH_IPC_BENCH_IMPL_H */
