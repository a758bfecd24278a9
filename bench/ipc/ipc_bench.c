/*
 * bench/ipc/ipc_bench.c - `bulkhead bench ipc`: the IPC layer next to the
 * mechanisms it stands in for, in one run, so that the brief's targets are
 * checked as ratios of numbers measured side by side:
 *
 *   ring round trip with a futex wake-up   <= 1.2 x raw futex ping-pong
 *   ring round trip, both sides polling    <= 1.5 x raw cache-line ping-pong
 *   batched ring transfer                  >= 20 million descriptors/s
 *
 * Tests. Each joins two parties: side 0 (this process's main thread, which
 * measures) and side 1, the peer (a thread, or a forked process):
 *
 *   function call      a noinline function through a volatile pointer
 *   ring, polling      ring.h in a memfd region, one ring each way; threads,
 *                      then processes; both sides busy-wait on the ring
 *   ring+ntfn          the same between processes, the consumer sleeping on
 *                      a notification (ntfn.h): request, re-check, wait,
 *                      cancel; the producer signals only when asked. Round
 *                      trips with spin 0 (every wait sleeps in the kernel:
 *                      the case the futex target is about) and with the
 *                      default spin; transfers batched 1, 8 and 64
 *                      descriptors per notification, with both spins
 *   baselines          one int in MAP_SHARED memory both sides spin on; two
 *                      futex words (FUTEX_WAIT/FUTEX_WAKE, no spinning); a
 *                      pipe pair; an eventfd pair; a UNIX socketpair
 *
 * Round trip: side 0 sends one descriptor and the peer sends it back. A
 * sample is the mean of BH_BENCH_RT_SAMPLE consecutive round trips timed with
 * the vDSO clock, so the ~20 ns it costs to read the clock is spread over the
 * sample rather than added to each round trip; the result is the median of
 * the samples, taken after untimed warm-up round trips. The median drops the
 * samples a preemption or a migration lands in.
 *
 * Rounds: every test runs in several rounds, interleaved with the others (the
 * list, then the list backwards, ...), and its samples are pooled. On a
 * virtual machine the host moves the two vCPUs between cores that share a
 * cache or do not, and every cross-core time changes by up to 4x within
 * seconds; rounds spread each test over the whole run, and a target's two
 * tests run back to back in every round, so a target ratio is the median of
 * the per-round ratios of measurements made moments apart.
 *
 * One-way throughput: the peer sends, side 0 receives. The clock starts when
 * the first tenth of the stream (the warm-up) has arrived and stops at the
 * last descriptor. Kernel channels carry one 1-byte message per write(); the
 * receiver takes whatever has arrived, up to BH_BENCH_BURST, per read().
 *
 * Integrity: every descriptor carries its sequence number in desc.aux (the
 * kernel channels carry its low byte, eventfd only a count); whoever receives
 * checks every one, in order, and a gap or a reordering fails the test and
 * the run's exit status.
 *
 * No run hangs: each test runs under alarm(). When it fires, every wait loop
 * gives up (they all poll bh_bench_stop, and blocking calls return EINTR or
 * wait in bounded slices) and the peer process is killed; if the test still
 * has not returned two seconds later, the process exits. A peer process dies
 * with its parent (PR_SET_PDEATHSIG) and has an alarm of its own; a peer that
 * dies early raises SIGCHLD, which stops side 0 at once. Peer processes are
 * always killed and reaped before the next test starts.
 */
#include "bench/ipc/ipc_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/clock.h"
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

/* Targets, from the brief. */
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

/* ------------------------------------------------------------------ */
/* watchdog                                                            */
/* ------------------------------------------------------------------ */

/* Set from signal handlers; every wait loop in this file polls bh_bench_stop
 * (one load of a line nobody writes while things go well). */
static volatile sig_atomic_t bh_bench_stop;
static volatile sig_atomic_t bh_bench_expired;  /* the test's alarm fired */
static volatile sig_atomic_t bh_bench_peer_gone; /* SIGCHLD: the peer died */
static volatile sig_atomic_t bh_bench_victim;    /* the peer process, or 0 */

static void bh_bench_on_alarm(int sig)
{
	(void)sig;
	if (bh_bench_victim > 0)
		kill((pid_t)bh_bench_victim, SIGKILL);
	if (bh_bench_expired) {
		/* The test did not return within the grace period after being
		 * told to stop: give up on the whole run. */
		static const char msg[] = "bulkhead bench ipc: a test is stuck; giving up\n";
		ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)w;
		_exit(3);
	}
	bh_bench_expired = 1;
	bh_bench_stop = 1;
	alarm(BH_BENCH_GRACE_S);
}

static void bh_bench_on_child(int sig)
{
	(void)sig;
	bh_bench_peer_gone = 1;
	bh_bench_stop = 1;
}

static void bh_bench_watchdog_arm(unsigned seconds)
{
	alarm(0);
	bh_bench_victim = 0;
	bh_bench_expired = 0;
	bh_bench_peer_gone = 0;
	bh_bench_stop = 0;
	alarm(seconds);
}

static void bh_bench_watchdog_disarm(void)
{
	alarm(0);
	bh_bench_victim = 0;
}

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static void bh_bench_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bh_bench_fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, BH_BENCH_ERR, fmt, ap);
	va_end(ap);
}

/* Why a wait gave up (its operation returned -EINTR). */
static void bh_bench_stopped(char *err, const char *what)
{
	if (bh_bench_expired)
		bh_bench_fail(err, "%s: timed out (watchdog)", what);
	else if (bh_bench_peer_gone)
		bh_bench_fail(err, "%s: the peer process died", what);
	else
		bh_bench_fail(err, "%s: stopped (the peer failed)", what);
}

static int bh_bench_io_error(char *err, const char *what, int rc)
{
	if (rc == -EINTR)
		bh_bench_stopped(err, what);
	else
		bh_bench_fail(err, "%s: %s", what, bh_ipc_strerror(rc));
	return -1;
}

static int bh_bench_order_error(char *err, const char *who, uint64_t want, uint32_t got)
{
	bh_bench_fail(err, "%s: descriptor out of order: expected #%" PRIu64 ", got %" PRIu32, who,
		      want, got);
	return -1;
}

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

static void bh_bench_desc_make(struct bh_desc *d, uint32_t seq)
{
	*d = (struct bh_desc){.buf = seq & 4095u, .len = 64, .aux = seq};
}

static long bh_bench_futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static int bh_bench_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* pid 0: the calling thread only, for the peer thread as well. */
	return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}

static int bh_bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double bh_bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bh_bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------ */
/* links: the two parties' ends of one mechanism                       */
/* ------------------------------------------------------------------ */

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

/* --- rings ------------------------------------------------------- */

static size_t bh_bench_ring_off(int ring)
{
	return bh_page_size() + (size_t)ring * bh_ring_bytes(BH_BENCH_RING_CAP);
}

/* Round trips move one descriptor. Domain code sending one passes the count
 * as a constant, and the inlined copy in ring.h becomes a 16-byte move; with
 * a count known only at run time it is a call to memcpy, four per round trip,
 * which measured about 10 ns (5%) more per polling round trip here. These
 * wrappers give round trips the constant (in functions of their own: the
 * compiler folds `n == 1 ? f(1) : f(n)` back into f(n)). */
static unsigned bh_bench_produce1(struct bh_ring_producer *p, const struct bh_desc *d)
{
	return bh_ring_produce(p, d, 1);
}

static unsigned bh_bench_consume1(struct bh_ring_consumer *c, struct bh_desc *out)
{
	return bh_ring_consume(c, out, 1);
}

static int bh_bench_ring_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	uint32_t turns = 0;
	unsigned sent = 0;
	for (;;) {
		sent += n == 1 ? bh_bench_produce1(&e->tx, d)
			       : bh_ring_produce(&e->tx, d + sent, n - sent);
		if (sent == n)
			break;
		/* Full. The consumer cannot be asleep on a non-empty ring
		 * (it re-checks after asking for a signal), so waiting for room
		 * without signalling cannot deadlock. */
		if (bh_bench_stop)
			return -EINTR;
		bh_bench_idle(&turns);
	}
	/* One notification per send, and only when the consumer asked. */
	if (e->notify && bh_ring_producer_need_signal(&e->tx))
		bh_ntfn_signal(e->peer_ntfn, BH_BENCH_BADGE, &e->nst);
	return 0;
}

static int bh_bench_ring_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint32_t turns = 0;
	for (;;) {
		unsigned n = max == 1 ? bh_bench_consume1(&e->rx, out)
				      : bh_ring_consume(&e->rx, out, max);
		if (n)
			return (int)n;
		if (bh_bench_stop)
			return -EINTR;
		if (!e->notify) {
			bh_bench_idle(&turns);
			continue;
		}
		/* sDDF's request, re-check, cancel: sleep only if the ring is
		 * still empty once the producer can see our request. A stale
		 * badge left by a signal we did not need only costs one more
		 * turn of this loop. */
		if (!bh_ring_consumer_request_signal(&e->rx))
			bh_ntfn_wait(e->self_ntfn, e->spin, BH_BENCH_SLICE_NS, &e->nst);
		bh_ring_consumer_cancel_signal(&e->rx);
	}
}

static const struct bh_bench_ops bh_bench_ring_ops = {
    .seq_mask = UINT32_MAX,
    .send = bh_bench_ring_send,
    .recv = bh_bench_ring_recv,
};

/* Side `side` produces into ring `side` and consumes from the other. */
static int bh_bench_ring_attach(struct bh_bench_link *l, int side, struct bh_region *r)
{
	struct bh_bench_end *e = &l->end[side];
	int err = bh_ring_producer_attach(&e->tx, r, bh_bench_ring_off(side), BH_BENCH_RING_CAP);
	if (!err)
		err = bh_ring_consumer_attach(&e->rx, r, bh_bench_ring_off(1 - side),
					      BH_BENCH_RING_CAP);
	e->self_ntfn = bh_region_at(&l->bells, bh_page_size() + side * sizeof(struct bh_ntfn),
				    sizeof(struct bh_ntfn));
	e->peer_ntfn = bh_region_at(&l->bells, bh_page_size() + (1 - side) * sizeof(struct bh_ntfn),
				    sizeof(struct bh_ntfn));
	if (!err && (e->self_ntfn == NULL || e->peer_ntfn == NULL))
		err = -EINVAL;
	return err;
}

/* --- raw shared cache line --------------------------------------- */

/* One word, written by both: side 0 writes odd values, side 1 even ones,
 * each (seq + 1) << 1 | parity, so a side waits for a non-zero value of the
 * other's parity and never mistakes its own last write for an answer. */
static int bh_bench_line_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	if (n != 1)
		return -EINVAL;
	/* RELEASE: pairs with the ACQUIRE in bh_bench_line_recv. */
	bh_store_release32(e->line, ((d->aux + 1) << 1) | (e->side == 0));
	return 0;
}

static int bh_bench_line_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint32_t peer_parity = e->side == 0 ? 0 : 1, turns = 0;
	for (;;) {
		uint32_t v = bh_load_acquire32(e->line);
		if (v != 0 && (v & 1) == peer_parity) {
			bh_bench_desc_make(out, (v >> 1) - 1);
			return 1;
		}
		if (bh_bench_stop)
			return -EINTR;
		bh_bench_idle(&turns);
	}
}

static const struct bh_bench_ops bh_bench_line_ops = {
    .seq_mask = 0x3fffffffu,
    .send = bh_bench_line_send,
    .recv = bh_bench_line_recv,
};

/* --- raw futex ----------------------------------------------------- */

/* Two words, one inbox per side. The sender stores seq + 1 into the peer's
 * inbox and always makes the FUTEX_WAKE call; the receiver checks its inbox
 * once and otherwise sleeps in FUTEX_WAIT (shared futex, no spinning), then
 * clears it. Round trips alternate strictly, so an inbox is never written
 * while its owner clears it. */
static int bh_bench_futex_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	if (n != 1)
		return -EINVAL;
	/* RELEASE: pairs with the ACQUIRE in bh_bench_futex_recv. */
	bh_store_release32(e->outbox, d->aux + 1);
	bh_bench_futex(e->outbox, FUTEX_WAKE, 1, NULL);
	return 0;
}

static int bh_bench_futex_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	static const struct timespec slice = {0, BH_BENCH_SLICE_NS};
	for (;;) {
		uint32_t v = bh_load_acquire32(e->inbox);
		if (v != 0) {
			bh_store_relaxed32(e->inbox, 0);
			bh_bench_desc_make(out, v - 1);
			return 1;
		}
		if (bh_bench_stop)
			return -EINTR;
		/* Sleeps only while the inbox still reads 0. */
		bh_bench_futex(e->inbox, FUTEX_WAIT, 0, &slice);
	}
}

static const struct bh_bench_ops bh_bench_futex_ops = {
    .seq_mask = UINT32_MAX,
    .send = bh_bench_futex_send,
    .recv = bh_bench_futex_recv,
};

/* --- pipes, sockets and eventfds ---------------------------------- */

/* Writes one message of len bytes, retrying on EINTR until stopped. */
static int bh_bench_write_msg(struct bh_bench_end *e, const void *msg, size_t len)
{
	for (;;) {
		ssize_t w = write(e->wfd, msg, len);
		if (w == (ssize_t)len)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
}

/* Pipes and sockets: one byte per message. */
static int bh_bench_fd_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t b = (uint8_t)d[i].aux;
		int err = bh_bench_write_msg(e, &b, 1);
		if (err)
			return err;
	}
	return 0;
}

static int bh_bench_fd_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	uint8_t bytes[BH_BENCH_BURST];
	if (max > BH_BENCH_BURST)
		max = BH_BENCH_BURST;
	for (;;) {
		ssize_t r = read(e->rfd, bytes, max);
		if (r > 0) {
			for (ssize_t i = 0; i < r; i++)
				bh_bench_desc_make(&out[i], bytes[i]);
			return (int)r;
		}
		if (r == 0)
			return -EPIPE; /* the peer closed its end: it is gone */
		if (errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
}

static const struct bh_bench_ops bh_bench_fd_ops = {
    .seq_mask = 0xffu,
    .send = bh_bench_fd_send,
    .recv = bh_bench_fd_recv,
};

/* Eventfd: a counter, so only the number of messages is checked. */
static int bh_bench_efd_send(struct bh_bench_end *e, const struct bh_desc *d, unsigned n)
{
	const uint64_t one = 1;
	for (unsigned i = 0; i < n; i++) {
		int err = bh_bench_write_msg(e, &one, sizeof(one));
		if (err)
			return err;
	}
	return 0;
}

static int bh_bench_efd_recv(struct bh_bench_end *e, struct bh_desc *out, unsigned max)
{
	while (e->pending == 0) {
		uint64_t v;
		ssize_t r = read(e->rfd, &v, sizeof(v));
		if (r == (ssize_t)sizeof(v)) {
			e->pending = v;
			break;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bh_bench_stop)
			return -EINTR;
	}
	unsigned k = e->pending < max ? (unsigned)e->pending : max;
	for (unsigned i = 0; i < k; i++)
		bh_bench_desc_make(&out[i], 0);
	e->pending -= k;
	return (int)k;
}

static const struct bh_bench_ops bh_bench_efd_ops = {
    .seq_mask = 0,
    .send = bh_bench_efd_send,
    .recv = bh_bench_efd_recv,
};

/* --- setup and teardown ------------------------------------------ */

/* Closes the descriptors of side `side`'s end that the other end does not
 * also use (an eventfd pair is shared by both ends; a pipe's or a socket's
 * ends are not). Each party drops the other's ends after fork: that is what
 * lets a reader see EOF when its peer dies. */
static void bh_bench_link_drop_end(struct bh_bench_link *l, int side)
{
	struct bh_bench_end *e = &l->end[side], *keep = &l->end[1 - side];
	for (int i = 0; i < 4; i++) {
		int fd = l->fds[i];
		if (fd < 0 || (fd != e->rfd && fd != e->wfd) || fd == keep->rfd || fd == keep->wfd)
			continue;
		close(fd);
		l->fds[i] = -1;
	}
	e->rfd = e->wfd = -1;
}

static void bh_bench_link_close(struct bh_bench_link *l)
{
	for (int i = 0; i < 4; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	bh_region_close(&l->rings);
	bh_region_close(&l->bells);
	if (l->sh != NULL)
		munmap(l->sh, sizeof(*l->sh));
	l->sh = NULL;
}

/* Creates what both sides share and attaches side 0. The peer's end is
 * attached by the peer itself (bh_bench_peer_attach), after fork. */
static int bh_bench_link_open(struct bh_bench_link *l, enum bh_bench_kind kind, bool notify,
			      uint32_t spin, char *err)
{
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->rings.fd = l->bells.fd = -1;
	for (int i = 0; i < 4; i++)
		l->fds[i] = -1;
	for (int s = 0; s < 2; s++) {
		l->end[s].side = s;
		l->end[s].rfd = l->end[s].wfd = -1;
		l->end[s].view.fd = -1;
		l->end[s].notify = notify;
		l->end[s].spin = spin;
	}
	l->sh = mmap(NULL, sizeof(*l->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	if (l->sh == MAP_FAILED) {
		l->sh = NULL;
		bh_bench_fail(err, "mmap: %s", strerror(errno));
		return -1;
	}

	int rc = 0;
	struct bh_bench_end *e0 = &l->end[0], *e1 = &l->end[1];
	switch (kind) {
	case BH_BENCH_RING: {
		l->ops = &bh_bench_ring_ops;
		size_t page = bh_page_size();
		rc = bh_region_create(&l->rings, "bench-rings", BH_REGION_RINGS,
				      page + 2 * bh_ring_bytes(BH_BENCH_RING_CAP));
		for (int i = 0; i < 2 && !rc; i++)
			rc = bh_ring_format(&l->rings, bh_bench_ring_off(i), BH_BENCH_RING_CAP);
		if (!rc)
			rc = bh_region_create(&l->bells, "bench-bells", BH_REGION_DOORBELL,
					      2 * page);
		if (!rc)
			rc = bh_bench_ring_attach(l, 0, &l->rings);
		if (rc) {
			bh_bench_fail(err, "ring setup: %s", bh_ipc_strerror(rc));
			return -1;
		}
		return 0;
	}
	case BH_BENCH_LINE:
		l->ops = &bh_bench_line_ops;
		e0->line = e1->line = &l->sh->line.v;
		return 0;
	case BH_BENCH_FUTEX:
		l->ops = &bh_bench_futex_ops;
		for (int s = 0; s < 2; s++) {
			l->end[s].inbox = &l->sh->inbox[s].v;
			l->end[s].outbox = &l->sh->inbox[1 - s].v;
		}
		return 0;
	case BH_BENCH_PIPE:
		l->ops = &bh_bench_fd_ops;
		if (pipe2(&l->fds[0], O_CLOEXEC) || pipe2(&l->fds[2], O_CLOEXEC))
			rc = -errno;
		/* fds[0..1]: side 0 -> 1; fds[2..3]: side 1 -> 0. */
		e0->wfd = l->fds[1];
		e1->rfd = l->fds[0];
		e1->wfd = l->fds[3];
		e0->rfd = l->fds[2];
		break;
	case BH_BENCH_EVENTFD:
		l->ops = &bh_bench_efd_ops;
		l->fds[0] = eventfd(0, EFD_CLOEXEC);
		l->fds[1] = eventfd(0, EFD_CLOEXEC);
		if (l->fds[0] < 0 || l->fds[1] < 0)
			rc = -errno;
		e0->wfd = e1->rfd = l->fds[0];
		e1->wfd = e0->rfd = l->fds[1];
		break;
	case BH_BENCH_SOCKET:
		l->ops = &bh_bench_fd_ops;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &l->fds[0]))
			rc = -errno;
		e0->rfd = e0->wfd = l->fds[0];
		e1->rfd = e1->wfd = l->fds[1];
		break;
	case BH_BENCH_CALL:
		rc = -EINVAL;
		break;
	}
	if (rc) {
		bh_bench_fail(err, "channel setup: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* The peer's half of setup. A peer process maps the rings anew through the
 * region's descriptor, read-only, and grants itself write access to exactly
 * the pages it writes (ring.h), then drops the read-write mapping it
 * inherited: what a domain started by the supervisor would do. */
static int bh_bench_peer_attach(struct bh_bench_link *l, bool process, char *err)
{
	if (l->kind != BH_BENCH_RING)
		return 0;
	struct bh_region *r = &l->rings;
	if (process) {
		struct bh_bench_end *e = &l->end[1];
		int rc = bh_region_attach(&e->view, l->rings.fd, BH_REGION_RINGS, BH_ACCESS_RO);
		if (rc) {
			bh_bench_fail(err, "peer: attaching the rings: %s", bh_ipc_strerror(rc));
			return -1;
		}
		bh_region_unmap(&l->rings);
		l->rings.fd = -1; /* now owned by the view */
		r = &e->view;
	}
	int rc = bh_bench_ring_attach(l, 1, r);
	if (rc) {
		bh_bench_fail(err, "peer: attaching its ring ends: %s", bh_ipc_strerror(rc));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* the two parties                                                     */
/* ------------------------------------------------------------------ */

struct bh_bench_plan {
	uint64_t rt_warm, rt_samples, rt_total; /* round trips; total = warm + samples x sample */
	uint64_t stream_warm, stream_total;     /* one-way descriptors, warm-up included */
	unsigned batch;                         /* descriptors per send in the stream */
};

/* Side 1: echoes rt_total round trips, then sends the stream. */
static int bh_bench_peer_body(struct bh_bench_link *l, const struct bh_bench_plan *p, char *err)
{
	const struct bh_bench_ops *ops = l->ops;
	struct bh_bench_end *e = &l->end[1];
	struct bh_desc d;
	for (uint64_t i = 0; i < p->rt_total; i++) {
		int n = ops->recv(e, &d, 1);
		if (n < 0)
			return bh_bench_io_error(err, "peer: receive", n);
		if ((d.aux ^ (uint32_t)i) & ops->seq_mask)
			return bh_bench_order_error(err, "peer", i, d.aux);
		int rc = ops->send(e, &d, 1);
		if (rc < 0)
			return bh_bench_io_error(err, "peer: send", rc);
	}
	struct bh_desc batch[BH_BENCH_MAX_BATCH];
	for (uint64_t seq = 0; seq < p->stream_total;) {
		uint64_t left = p->stream_total - seq;
		unsigned k = left < p->batch ? (unsigned)left : p->batch;
		for (unsigned j = 0; j < k; j++)
			bh_bench_desc_make(&batch[j], (uint32_t)(seq + j));
		int rc = ops->send(e, batch, k);
		if (rc < 0)
			return bh_bench_io_error(err, "peer: stream send", rc);
		seq += k;
	}
	return 0;
}

/* Runs side 1 and leaves its report in the shared block. */
static int bh_bench_peer_main(struct bh_bench_link *l, const struct bh_bench_plan *p, bool pin,
			      bool process)
{
	struct bh_bench_shared *sh = l->sh;
	char err[BH_BENCH_ERR] = "";
	int rc = pin ? bh_bench_pin(1) : 0;
	if (rc)
		bh_bench_fail(err, "peer: pinning to CPU 1: %s", strerror(-rc));
	if (!rc)
		rc = bh_bench_peer_attach(l, process, err);
	if (!rc) {
		bh_store_release32(&sh->ready.v, 1);
		rc = bh_bench_peer_body(l, p, err);
	}
	sh->peer_nst = l->end[1].nst;
	sh->peer_failed = rc != 0;
	memcpy(sh->peer_msg, err, sizeof(sh->peer_msg));
	/* RELEASE: the report above is complete for whoever sees done. */
	bh_store_release32(&sh->done.v, 1);
	return rc;
}

struct bh_bench_thread_arg {
	struct bh_bench_link *l;
	const struct bh_bench_plan *p;
	bool pin;
};

static void *bh_bench_peer_thread(void *arg)
{
	struct bh_bench_thread_arg *a = arg;
	if (bh_bench_peer_main(a->l, a->p, a->pin, false))
		bh_bench_stop = 1; /* side 0 would otherwise wait for the watchdog */
	return NULL;
}

/* A forked peer. It never returns: on success it reports and waits to be
 * killed (so that its exit, and the SIGCHLD that stops side 0, always means
 * failure); on failure it reports and exits at once. */
static void bh_bench_peer_process(struct bh_bench_link *l, const struct bh_bench_plan *p,
				  const struct bh_bench_opts *o, pid_t parent)
{
	signal(SIGALRM, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(1);
	alarm(o->timeout_s + BH_BENCH_GRACE_S);
	bh_bench_link_drop_end(l, 0);
	if (bh_bench_peer_main(l, p, o->pin, true))
		_exit(1);
	for (;;)
		pause();
}

struct bh_bench_peer {
	bool started, thread;
	pid_t pid;
	pthread_t tid;
	struct bh_bench_thread_arg arg;
};

static int bh_bench_peer_start(struct bh_bench_link *l, const struct bh_bench_plan *p,
			       const struct bh_bench_opts *o, bool thread,
			       struct bh_bench_peer *pr, char *err)
{
	memset(pr, 0, sizeof(*pr));
	pr->thread = thread;
	if (thread) {
		pr->arg = (struct bh_bench_thread_arg){.l = l, .p = p, .pin = o->pin};
		int rc = pthread_create(&pr->tid, NULL, bh_bench_peer_thread, &pr->arg);
		if (rc) {
			bh_bench_fail(err, "pthread_create: %s", strerror(rc));
			return -1;
		}
		pr->started = true;
		return 0;
	}
	pid_t parent = getpid();
	fflush(NULL); /* nothing buffered may be written twice */
	pid_t pid = fork();
	if (pid < 0) {
		bh_bench_fail(err, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		bh_bench_peer_process(l, p, o, parent);
	pr->pid = pid;
	pr->started = true;
	bh_bench_victim = pid;
	bh_bench_link_drop_end(l, 1);
	return 0;
}

/* Waits, sleeping in short steps, until the peer sets *flag. */
static int bh_bench_await(const uint32_t *flag, const char *what, char *err)
{
	while (!bh_load_acquire32(flag)) {
		if (bh_bench_stop) {
			bh_bench_stopped(err, what);
			return -1;
		}
		struct timespec ts = {0, 20 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Ends the peer: waits for its report unless side 0 already failed, then
 * joins the thread, or kills and reaps the process. The peer's own message,
 * when it failed, replaces side 0's (it is the cause; side 0 saw the effect). */
static int bh_bench_peer_end(struct bh_bench_link *l, struct bh_bench_peer *pr, bool failed,
			     char *err)
{
	struct bh_bench_shared *sh = l->sh;
	int rc = failed ? -1 : bh_bench_await(&sh->done.v, "waiting for the peer's report", err);
	int status = 0;
	bool died = false;
	if (pr->thread) {
		if (rc)
			bh_bench_stop = 1;
		pthread_join(pr->tid, NULL);
	} else {
		died = waitpid(pr->pid, &status, WNOHANG) == pr->pid;
		if (!died) {
			kill(pr->pid, SIGKILL);
			while (waitpid(pr->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		bh_bench_victim = 0;
	}
	pr->started = false;
	bool reported = bh_load_acquire32(&sh->done.v) != 0;
	if (reported && sh->peer_failed) {
		bh_bench_fail(err, "%s", sh->peer_msg);
		return -1;
	}
	if (died && !reported) {
		if (WIFSIGNALED(status))
			bh_bench_fail(err, "the peer process died: %s",
				      strsignal(WTERMSIG(status)));
		else
			bh_bench_fail(err, "the peer process exited (%d)", WEXITSTATUS(status));
		return -1;
	}
	return rc;
}

/* One round trip from side 0, checked. */
static int bh_bench_rt_once(struct bh_bench_link *l, uint32_t seq, char *err)
{
	struct bh_desc d;
	bh_bench_desc_make(&d, seq);
	int rc = l->ops->send(&l->end[0], &d, 1);
	if (rc < 0)
		return bh_bench_io_error(err, "send", rc);
	rc = l->ops->recv(&l->end[0], &d, 1);
	if (rc < 0)
		return bh_bench_io_error(err, "receive", rc);
	if ((d.aux ^ seq) & l->ops->seq_mask)
		return bh_bench_order_error(err, "reply", seq, d.aux);
	return 0;
}

/* Times p->rt_samples samples of BH_BENCH_RT_SAMPLE round trips, after
 * p->rt_warm untimed ones; out[] gets each sample's ns per round trip. */
static int bh_bench_rt_phase(struct bh_bench_link *l, const struct bh_bench_plan *p, double *out,
			     char *err)
{
	uint32_t seq = 0;
	for (uint64_t i = 0; i < p->rt_warm; i++)
		if (bh_bench_rt_once(l, seq++, err))
			return -1;
	for (uint64_t s = 0; s < p->rt_samples; s++) {
		uint64_t t0 = bh_now_ns();
		for (int j = 0; j < BH_BENCH_RT_SAMPLE; j++)
			if (bh_bench_rt_once(l, seq++, err))
				return -1;
		out[s] = (double)(bh_now_ns() - t0) / BH_BENCH_RT_SAMPLE;
	}
	return 0;
}

/* Side 0 receives the peer's stream, checking every descriptor in order;
 * *descs and *ns are the timed part (after the warm-up). */
static int bh_bench_stream_phase(struct bh_bench_link *l, const struct bh_bench_plan *p,
				 uint64_t *descs, uint64_t *ns, char *err)
{
	const struct bh_bench_ops *ops = l->ops;
	struct bh_desc buf[BH_BENCH_BURST];
	uint64_t got = 0, t0 = 0, at_t0 = 0;
	while (got < p->stream_total) {
		uint64_t left = p->stream_total - got;
		int n = ops->recv(&l->end[0], buf, left < BH_BENCH_BURST ? (unsigned)left
									 : BH_BENCH_BURST);
		if (n < 0)
			return bh_bench_io_error(err, "stream receive", n);
		for (int i = 0; i < n; i++)
			if ((buf[i].aux ^ (uint32_t)(got + i)) & ops->seq_mask)
				return bh_bench_order_error(err, "stream", got + i, buf[i].aux);
		got += (uint64_t)n;
		if (t0 == 0 && got >= p->stream_warm) {
			t0 = bh_now_ns();
			at_t0 = got;
		}
	}
	uint64_t t1 = bh_now_ns();
	if (l->end[0].pending != 0) {
		bh_bench_fail(err, "stream: %" PRIu64 " messages more than were sent",
			      l->end[0].pending);
		return -1;
	}
	if (got == at_t0 || t1 == t0) {
		bh_bench_fail(err, "stream: too short to time");
		return -1;
	}
	*descs = got - at_t0;
	*ns = t1 - t0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* tests and results                                                   */
/* ------------------------------------------------------------------ */

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

/* In the order they run (odd rounds run it backwards); each target's two
 * tests are neighbours (see "Rounds" at the top). */
static const struct bh_bench_case bh_bench_cases[] = {
    {"call", "function call (in process)", BH_BENCH_CALL, false, false, false, true, true, 1},
    {"ring_threads_poll", "ring, 2 threads, polling", BH_BENCH_RING, true, false, false, true,
     true, 1},
    {"cacheline", "raw cache line, 2 processes", BH_BENCH_LINE, false, false, false, true, false,
     1},
    {"ring_procs_poll", "ring, 2 processes, polling", BH_BENCH_RING, false, false, false, true,
     true, 1},
    {"futex", "raw futex, 2 processes", BH_BENCH_FUTEX, false, false, false, true, false, 1},
    {"ring_ntfn_rt_sleep", "ring+ntfn, 2 processes", BH_BENCH_RING, false, true, true, true,
     false, 1},
    {"ring_ntfn_rt_spin", "ring+ntfn, 2 processes", BH_BENCH_RING, false, true, false, true, false,
     1},
    {"ring_ntfn_batch1", "ring+ntfn batched", BH_BENCH_RING, false, true, false, false, true, 1},
    {"ring_ntfn_batch8", "ring+ntfn batched", BH_BENCH_RING, false, true, false, false, true, 8},
    {"ring_ntfn_batch64", "ring+ntfn batched", BH_BENCH_RING, false, true, false, false, true, 64},
    {"ring_ntfn_batch1_sleep", "ring+ntfn batched", BH_BENCH_RING, false, true, true, false, true,
     1},
    {"ring_ntfn_batch8_sleep", "ring+ntfn batched", BH_BENCH_RING, false, true, true, false, true,
     8},
    {"ring_ntfn_batch64_sleep", "ring+ntfn batched", BH_BENCH_RING, false, true, true, false,
     true, 64},
    {"pipe", "pipe pair, 2 processes", BH_BENCH_PIPE, false, false, false, true, true, 1},
    {"eventfd", "eventfd pair, 2 processes", BH_BENCH_EVENTFD, false, false, false, true, true, 1},
    {"socketpair", "UNIX socketpair, 2 processes", BH_BENCH_SOCKET, false, false, false, true,
     true, 1},
};

#define BH_BENCH_NCASES (sizeof(bh_bench_cases) / sizeof(bh_bench_cases[0]))

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

/* What one round of a test does. */
static void bh_bench_plan_for(struct bh_bench_plan *p, const struct bh_bench_case *c,
			      const struct bh_bench_opts *o)
{
	memset(p, 0, sizeof(*p));
	p->batch = c->batch;
	if (c->rt) {
		uint64_t per = (o->iters + o->rounds - 1) / o->rounds;
		p->rt_samples = (per + BH_BENCH_RT_SAMPLE - 1) / BH_BENCH_RT_SAMPLE;
		p->rt_warm = per / 10 > 64 ? per / 10 : 64;
		p->rt_total = p->rt_warm + p->rt_samples * BH_BENCH_RT_SAMPLE;
	}
	if (c->stream) {
		uint64_t n = c->kind == BH_BENCH_RING || c->kind == BH_BENCH_CALL ? o->ring_descs
										    : o->sys_msgs;
		n = (n + o->rounds - 1) / o->rounds;
		p->stream_warm = n / 10;
		p->stream_total = n + p->stream_warm;
	}
}

/* Function call: side 0 alone, through a pointer the compiler cannot see
 * through, to a function it may not inline. */
__attribute__((noinline)) static uint32_t bh_bench_callee(const struct bh_desc *d)
{
	return d->aux;
}

static uint32_t (*volatile bh_bench_callee_ptr)(const struct bh_desc *) = bh_bench_callee;

static int bh_bench_calls(uint64_t n, uint32_t *seq, char *err)
{
	struct bh_desc d;
	for (uint64_t i = 0; i < n; i++, ++*seq) {
		bh_bench_desc_make(&d, *seq);
		uint32_t got = bh_bench_callee_ptr(&d);
		if (got != *seq)
			return bh_bench_order_error(err, "call", *seq, got);
	}
	return 0;
}

/* The same plan as the IPC tests, with BH_BENCH_CALL_SAMPLE calls per
 * sample: a call is too short to time in a sample of 32. */
static int bh_bench_run_call(const struct bh_bench_plan *p, struct bh_bench_row *row, char *err)
{
	double *out = row->rt + row->rt_n;
	uint32_t seq = 0;
	if (bh_bench_calls(p->rt_warm * BH_BENCH_RT_SAMPLE, &seq, err))
		return -1;
	for (uint64_t s = 0; s < p->rt_samples; s++) {
		uint64_t t0 = bh_now_ns();
		if (bh_bench_calls(BH_BENCH_CALL_SAMPLE, &seq, err))
			return -1;
		out[s] = (double)(bh_now_ns() - t0) / BH_BENCH_CALL_SAMPLE;
	}
	if (bh_bench_calls(p->stream_warm, &seq, err))
		return -1;
	uint64_t t0 = bh_now_ns();
	if (bh_bench_calls(p->stream_total - p->stream_warm, &seq, err))
		return -1;
	row->stream_ns += bh_now_ns() - t0;
	row->stream_descs += p->stream_total - p->stream_warm;
	return 0;
}

static int bh_bench_row_init(struct bh_bench_row *row, const struct bh_bench_case *c,
			     const struct bh_bench_opts *o)
{
	struct bh_bench_plan p;
	memset(row, 0, sizeof(*row));
	row->c = c;
	row->spin = c->spin_zero ? 0 : o->spin;
	row->rtt_ns = row->tput = -1;
	row->wakes = row->signals = row->sleeps = -1;
	row->unit = c->kind == BH_BENCH_CALL   ? "calls/s"
		    : c->kind == BH_BENCH_RING ? "descs/s"
					       : "msgs/s";
	if (c->notify && c->stream)
		snprintf(row->name, sizeof(row->name), "%s x%u, spin %" PRIu32, c->name, c->batch,
			 row->spin);
	else if (c->notify)
		snprintf(row->name, sizeof(row->name), "%s, spin %" PRIu32, c->name, row->spin);
	else
		snprintf(row->name, sizeof(row->name), "%s", c->name);
	bh_bench_plan_for(&p, c, o);
	if (p.rt_samples) {
		row->rt = calloc(p.rt_samples * o->rounds, sizeof(*row->rt));
		if (row->rt == NULL)
			return -1;
	}
	return 0;
}

/* One round of one test; adds its measurements to the row. */
static void bh_bench_run_case(const struct bh_bench_opts *o, struct bh_bench_row *row)
{
	const struct bh_bench_case *c = row->c;
	char err[BH_BENCH_ERR] = "";
	struct bh_bench_link l;
	struct bh_bench_peer pr = {0};
	struct bh_bench_plan plan;
	uint64_t descs = 0, ns = 0;
	int rc;

	bh_bench_plan_for(&plan, c, o);
	bh_bench_watchdog_arm(o->timeout_s);
	if (c->kind == BH_BENCH_CALL) {
		rc = bh_bench_run_call(&plan, row, err);
		goto out;
	}
	rc = bh_bench_link_open(&l, c->kind, c->notify, row->spin, err);
	if (!rc)
		rc = bh_bench_peer_start(&l, &plan, o, c->thread, &pr, err);
	if (!rc)
		rc = bh_bench_await(&l.sh->ready.v, "waiting for the peer to start", err);
	if (!rc && plan.rt_total)
		rc = bh_bench_rt_phase(&l, &plan, row->rt + row->rt_n, err);
	if (!rc && plan.stream_total)
		rc = bh_bench_stream_phase(&l, &plan, &descs, &ns, err);
	if (pr.started && bh_bench_peer_end(&l, &pr, rc != 0, err))
		rc = -1;
	if (!rc) {
		row->stream_descs += descs;
		row->stream_ns += ns;
		/* Both sides' counters, per descriptor moved: a round trip
		 * moves two, one each way. */
		const struct bh_ntfn_stats *a = &l.end[0].nst, *b = &l.sh->peer_nst;
		row->moved += plan.rt_total * 2 + plan.stream_total;
		row->signals_n += a->signals + b->signals;
		row->wakes_n += a->wakes + b->wakes;
		row->sleeps_n += a->sleeps + b->sleeps;
	}
	bh_bench_link_close(&l);
out:
	bh_bench_watchdog_disarm();
	if (rc) {
		row->failed = true;
		snprintf(row->err, sizeof(row->err), "round %u: %s", row->rounds + 1, err);
		return;
	}
	if (plan.rt_samples) {
		/* Sorting this round's slice in place is harmless: the pooled
		 * median sorts everything again. */
		row->round_rt[row->rounds] = bh_bench_median(row->rt + row->rt_n, plan.rt_samples);
		row->rt_n += plan.rt_samples;
	}
	row->rounds++;
}

static void bh_bench_row_finish(struct bh_bench_row *row)
{
	if (row->failed || row->skipped || row->rounds == 0)
		return;
	if (row->rt_n)
		row->rtt_ns = bh_bench_median(row->rt, row->rt_n);
	if (row->stream_ns)
		row->tput = (double)row->stream_descs * 1e9 / (double)row->stream_ns;
	if (row->c->notify && row->moved) {
		row->signals = (double)row->signals_n / (double)row->moved;
		row->wakes = (double)row->wakes_n / (double)row->moved;
		row->sleeps = (double)row->sleeps_n / (double)row->moved;
	}
}

static const struct bh_bench_row *bh_bench_find(const struct bh_bench_row *rows, const char *id)
{
	for (size_t i = 0; i < BH_BENCH_NCASES; i++)
		if (strcmp(rows[i].c->id, id) == 0)
			return &rows[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* target checks                                                       */
/* ------------------------------------------------------------------ */

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

/* A ratio check's value is the median of the per-round ratios: each round
 * measured the two tests back to back (see bh_bench_cases). */
static void bh_bench_ratio_check(struct bh_bench_check *k, const struct bh_bench_row *rows)
{
	const struct bh_bench_row *n = bh_bench_find(rows, k->num_id);
	const struct bh_bench_row *d = bh_bench_find(rows, k->den_id);
	if (!n || !d || n->rtt_ns <= 0 || d->rtt_ns <= 0)
		return;
	unsigned rounds = n->rounds < d->rounds ? n->rounds : d->rounds;
	double sorted[BH_BENCH_ROUNDS_MAX];
	for (unsigned r = 0; r < rounds; r++)
		k->ratio[r] = sorted[r] = n->round_rt[r] / d->round_rt[r];
	k->nratio = rounds;
	k->have = rounds > 0;
	if (!k->have)
		return;
	k->num = n->rtt_ns;
	k->den = d->rtt_ns;
	k->value = bh_bench_median(sorted, rounds);
	k->pass = k->value <= k->target;
}

#define BH_BENCH_NCHECKS 3

static void bh_bench_checks(const struct bh_bench_row *rows, struct bh_bench_check k[])
{
	k[0] = (struct bh_bench_check){
	    .id = "ntfn_vs_futex",
	    .what = "ring+ntfn round trip (futex wake-up) / raw futex round trip",
	    .num_id = "ring_ntfn_rt_sleep",
	    .den_id = "futex",
	    .target = BH_BENCH_TARGET_FUTEX,
	    .at_most = true};
	bh_bench_ratio_check(&k[0], rows);
	k[1] = (struct bh_bench_check){
	    .id = "poll_vs_cacheline",
	    .what = "polling ring round trip / raw cache-line round trip",
	    .num_id = "ring_procs_poll",
	    .den_id = "cacheline",
	    .target = BH_BENCH_TARGET_LINE,
	    .at_most = true};
	bh_bench_ratio_check(&k[1], rows);
	k[2] = (struct bh_bench_check){
	    .id = "batched_transfer",
	    .what = "batched cross-process transfer, 64 per notification",
	    .target = BH_BENCH_TARGET_BATCH,
	    .at_most = false};
	const struct bh_bench_row *b = bh_bench_find(rows, "ring_ntfn_batch64");
	k[2].have = b && b->tput > 0;
	if (k[2].have) {
		k[2].value = b->tput;
		k[2].pass = k[2].value >= k[2].target;
	}
}

/* ------------------------------------------------------------------ */
/* output                                                              */
/* ------------------------------------------------------------------ */

static const char *bh_bench_rate(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "—");
	else if (v >= 1e9)
		snprintf(buf, len, "%.2f G", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2f M", v / 1e6);
	else
		snprintf(buf, len, "%.1f k", v / 1e3);
	return buf;
}

static const char *bh_bench_num(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "—");
	else
		snprintf(buf, len, "%.*f", v < 100 ? 1 : 0, v);
	return buf;
}

static const char *bh_bench_ratio(char *buf, size_t len, double a, double b)
{
	if (a < 0 || b <= 0)
		snprintf(buf, len, "—");
	else
		snprintf(buf, len, "%.2f", a / b);
	return buf;
}

static void bh_bench_print_md(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
			      const struct bh_bench_check k[], double load)
{
	const struct bh_bench_row *line = bh_bench_find(rows, "cacheline");
	const struct bh_bench_row *futex = bh_bench_find(rows, "futex");
	double line_rt = line ? line->rtt_ns : -1, futex_rt = futex ? futex->rtt_ns : -1;
	struct bh_bench_plan rt_plan, ring_plan, sys_plan;
	char a[32], b[32], c[32], d[32], e[32];

	bh_bench_plan_for(&rt_plan, bh_bench_find(rows, "futex")->c, o);
	bh_bench_plan_for(&ring_plan, bh_bench_find(rows, "ring_procs_poll")->c, o);
	bh_bench_plan_for(&sys_plan, bh_bench_find(rows, "pipe")->c, o);
	printf("# Bulkhead IPC benchmark\n\n");
	printf("%ld CPUs online, %s, load average %.2f at start. Every test ran in %u rounds "
	       "(the list below, then backwards; each target's two tests back to back). "
	       "Per round: %" PRIu64 " samples, each the mean of %d round trips, after %" PRIu64
	       " untimed; one-way, %" PRIu64 " descriptors over rings and %" PRIu64
	       " messages (1-byte writes) over kernel channels, after a tenth as much untimed. "
	       "Round trip: median of all samples. Notification spin budget %" PRIu32
	       " polls.\n\n",
	       sysconf(_SC_NPROCESSORS_ONLN),
	       o->pin ? "side 0 pinned to CPU 0, the peer to CPU 1" : "unpinned", load, o->rounds,
	       rt_plan.rt_samples, BH_BENCH_RT_SAMPLE, rt_plan.rt_warm,
	       ring_plan.stream_total - ring_plan.stream_warm,
	       sys_plan.stream_total - sys_plan.stream_warm, o->spin);

	printf("| test | round trip (ns) | / cache line | / futex | one-way throughput | "
	       "futex wakes/desc |\n");
	printf("|---|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (r->skipped)
			continue;
		if (r->failed) {
			printf("| %s | ERROR | | | | |\n", r->name);
			continue;
		}
		char wakes[32] = "—";
		if (r->wakes >= 0)
			snprintf(wakes, sizeof(wakes), "%.4f", r->wakes);
		printf("| %s | %s | %s | %s | %s%s%s | %s |\n", r->name,
		       bh_bench_num(a, sizeof(a), r->rtt_ns),
		       bh_bench_ratio(b, sizeof(b), r->rtt_ns, line_rt),
		       bh_bench_ratio(c, sizeof(c), r->rtt_ns, futex_rt),
		       bh_bench_rate(d, sizeof(d), r->tput), r->tput >= 0 ? " " : "",
		       r->tput >= 0 ? r->unit : "", wakes);
	}

	printf("\n## Notifications, per descriptor moved (both sides)\n\n");
	printf("| test | signals | futex wakes | futex waits |\n|---|---:|---:|---:|\n");
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (!r->c->notify || r->failed || r->skipped)
			continue;
		printf("| %s | %.4f | %.4f | %.4f |\n", r->name, r->signals, r->wakes, r->sleeps);
	}

	printf("\n## Targets\n\n");
	printf("| target | measured | goal | result |\n|---|---|---:|---|\n");
	for (int i = 0; i < BH_BENCH_NCHECKS; i++) {
		const struct bh_bench_check *x = &k[i];
		if (!x->have && x->at_most) {
			printf("| %s | — | ≤ %.1f | NOT MEASURED |\n", x->what, x->target);
		} else if (!x->have) {
			printf("| %s | — | ≥ %s descs/s | NOT MEASURED |\n", x->what,
			       bh_bench_rate(e, sizeof(e), x->target));
		} else if (x->at_most) {
			printf("| %s | %.2f (median of the rounds:", x->what, x->value);
			for (unsigned r = 0; r < x->nratio; r++)
				printf(" %.2f", x->ratio[r]);
			printf("; all samples: %s ns / %s ns) | ≤ %.1f | %s |\n",
			       bh_bench_num(d, sizeof(d), x->num),
			       bh_bench_num(e, sizeof(e), x->den), x->target,
			       x->pass ? "PASS" : "SHORT");
		} else {
			printf("| %s | %s descs/s | ≥ %s descs/s | %s |\n", x->what,
			       bh_bench_rate(d, sizeof(d), x->value),
			       bh_bench_rate(e, sizeof(e), x->target), x->pass ? "PASS" : "SHORT");
		}
	}

	bool any = false;
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		if (!rows[i].failed)
			continue;
		if (!any)
			printf("\n## Errors\n\n");
		any = true;
		printf("- %s: %s\n", rows[i].name, rows[i].err);
	}
}

static void bh_bench_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void bh_bench_json_num(const char *key, double v)
{
	if (v < 0)
		printf("\"%s\": null, ", key);
	else
		printf("\"%s\": %.6g, ", key, v);
}

static void bh_bench_print_json(const struct bh_bench_opts *o, const struct bh_bench_row *rows,
				const struct bh_bench_check k[], double load, bool ok)
{
	printf("{\"bench\": \"ipc\", \"quick\": %s, \"pinned\": %s, \"cpus\": %ld, "
	       "\"load_avg\": %.2f, \"iters\": %" PRIu64 ", \"rounds\": %u, \"rt_sample\": %d, "
	       "\"ring_descs\": %" PRIu64 ", \"sys_msgs\": %" PRIu64 ", \"spin\": %" PRIu32
	       ",\n \"rows\": [\n",
	       o->quick ? "true" : "false", o->pin ? "true" : "false",
	       sysconf(_SC_NPROCESSORS_ONLN), load, o->iters, o->rounds, BH_BENCH_RT_SAMPLE,
	       o->ring_descs, o->sys_msgs, o->spin);
	bool first = true;
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		const struct bh_bench_row *r = &rows[i];
		if (r->skipped)
			continue;
		printf("%s  {\"id\": ", first ? "" : ",\n");
		first = false;
		bh_bench_json_str(r->c->id);
		printf(", \"name\": ");
		bh_bench_json_str(r->name);
		printf(", ");
		bh_bench_json_num("rtt_ns", r->rtt_ns);
		printf("\"round_rtt_ns\": [");
		for (unsigned j = 0; r->rtt_ns >= 0 && j < r->rounds; j++)
			printf("%s%.6g", j ? ", " : "", r->round_rt[j]);
		printf("], ");
		bh_bench_json_num("throughput_per_s", r->tput);
		printf("\"unit\": \"%s\", \"batch\": %u, ", r->unit, r->c->batch);
		if (r->c->notify)
			printf("\"spin\": %" PRIu32 ", ", r->spin);
		bh_bench_json_num("signals_per_desc", r->signals);
		bh_bench_json_num("wakes_per_desc", r->wakes);
		bh_bench_json_num("waits_per_desc", r->sleeps);
		printf("\"error\": ");
		if (r->failed)
			bh_bench_json_str(r->err);
		else
			printf("null");
		printf("}");
	}
	printf("\n ],\n \"checks\": [\n");
	for (int i = 0; i < BH_BENCH_NCHECKS; i++) {
		const struct bh_bench_check *x = &k[i];
		printf("  {\"id\": \"%s\", \"what\": ", x->id);
		bh_bench_json_str(x->what);
		printf(", ");
		bh_bench_json_num("value", x->have ? x->value : -1);
		if (x->at_most) {
			printf("\"round_ratios\": [");
			for (unsigned r = 0; r < x->nratio; r++)
				printf("%s%.4g", r ? ", " : "", x->ratio[r]);
			printf("], ");
		}
		printf("\"op\": \"%s\", \"target\": %g, \"result\": \"%s\"}%s\n",
		       x->at_most ? "<=" : ">=", x->target,
		       !x->have ? "NOT MEASURED" : x->pass ? "PASS" : "SHORT",
		       i + 1 < BH_BENCH_NCHECKS ? "," : "");
	}
	printf(" ],\n \"ok\": %s}\n", ok ? "true" : "false");
}

/* ------------------------------------------------------------------ */
/* entry point                                                         */
/* ------------------------------------------------------------------ */

static void bh_bench_usage(FILE *f)
{
	fprintf(f,
		"usage: bulkhead bench ipc [--quick] [--iters N] [--rounds N] [--pin] [--json]\n"
		"                         [--spin N] [--only ID,...]\n"
		"\n"
		"Measures the IPC layer (rings, notifications) against a function call,\n"
		"a shared cache line, a futex, a pipe, an eventfd and a socketpair, and\n"
		"checks the brief's three IPC targets.\n"
		"\n"
		"  --quick       %u round trips per test instead of %u (a few seconds)\n"
		"  --iters N     round trips per test; one-way transfers move %u x N\n"
		"                descriptors over rings and %u x N messages over the kernel\n"
		"  --rounds N    split every test into N rounds, interleaved (default %u)\n"
		"  --pin         pin the measuring side to CPU 0 and its peer to CPU 1\n"
		"                (default: unpinned)\n"
		"  --spin N      notification spin budget, in polls (default %u)\n"
		"  --only IDS    run only these tests (comma-separated ids, as in --json)\n"
		"  --json        one JSON object instead of Markdown tables\n"
		"\n"
		"Exit status: 0 if every test ran and every descriptor arrived in order,\n"
		"1 if a test failed, 2 on a usage error. Targets not met are SHORT.\n",
		BH_BENCH_ITERS_QUICK, BH_BENCH_ITERS_FULL, BH_BENCH_RING_PER_ITER,
		BH_BENCH_SYS_PER_ITER, BH_BENCH_ROUNDS_DEFAULT, BH_NTFN_SPIN_DEFAULT);
}

/* Whether --only (a comma-separated list of ids) selects the test. */
static bool bh_bench_selected(const struct bh_bench_opts *o, const char *id)
{
	if (o->only == NULL)
		return true;
	size_t len = strlen(id);
	for (const char *p = o->only; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == len && strncmp(p, id, len) == 0)
			return true;
		p += n + (comma != NULL);
	}
	return false;
}

/* The value of --name N or --name=N: 1 if argv[*i] is that option (and
 * *out is set), 0 if it is another, -1 if its value is missing or bad. */
static int bh_bench_opt_value(int argc, char **argv, int *i, const char *name, uint64_t min,
			      uint64_t max, uint64_t *out)
{
	size_t len = strlen(name);
	const char *a = argv[*i], *v;
	if (strncmp(a, name, len) != 0)
		return 0;
	if (a[len] == '=')
		v = a + len + 1;
	else if (a[len] == '\0' && *i + 1 < argc)
		v = argv[++*i];
	else if (a[len] == '\0')
		return -1;
	else
		return 0;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end != '\0' || v[0] == '-' || n < min || n > max)
		return -1;
	*out = n;
	return 1;
}

/* 0: run; 1: help was asked for; -1: usage error (reported). */
static int bh_bench_parse(int argc, char **argv, struct bh_bench_opts *o)
{
	uint64_t iters = 0, spin = BH_NTFN_SPIN_DEFAULT, rounds = BH_BENCH_ROUNDS_DEFAULT;
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (strcmp(a, "--quick") == 0)
			o->quick = true;
		else if (strcmp(a, "--pin") == 0)
			o->pin = true;
		else if (strcmp(a, "--json") == 0)
			o->json = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return 1;
		else if (strcmp(a, "--only") == 0 && i + 1 < argc)
			o->only = argv[++i];
		else if (strncmp(a, "--only=", 7) == 0)
			o->only = a + 7;
		else if ((r = bh_bench_opt_value(argc, argv, &i, "--iters", 1, BH_BENCH_ITERS_MAX,
						 &iters)) == 0 &&
			 (r = bh_bench_opt_value(argc, argv, &i, "--spin", 0, 100000000u, &spin)) ==
			     0 &&
			 (r = bh_bench_opt_value(argc, argv, &i, "--rounds", 1, BH_BENCH_ROUNDS_MAX,
						 &rounds)) == 0) {
			fprintf(stderr, "bulkhead bench ipc: unknown option '%s'\n", a);
			return -1;
		}
		if (r < 0) {
			fprintf(stderr, "bulkhead bench ipc: bad or missing value for %s\n", a);
			return -1;
		}
	}
	if (o->only != NULL) {
		for (const char *p = o->only; *p;) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			bool known = false;
			for (size_t j = 0; j < BH_BENCH_NCASES && !known; j++)
				known = strlen(bh_bench_cases[j].id) == n &&
					strncmp(p, bh_bench_cases[j].id, n) == 0;
			if (!known) {
				fprintf(stderr, "bulkhead bench ipc: --only: no test '%.*s'\n",
					(int)n, p);
				return -1;
			}
			p += n + (comma != NULL);
		}
	}
	o->iters = iters ? iters : o->quick ? BH_BENCH_ITERS_QUICK : BH_BENCH_ITERS_FULL;
	o->spin = (uint32_t)spin;
	o->rounds = (unsigned)rounds;
	o->ring_descs = o->iters * BH_BENCH_RING_PER_ITER;
	o->sys_msgs = o->iters * BH_BENCH_SYS_PER_ITER;
	/* A bound for a test that hangs, not for one that is slow: a round
	 * at 100 us per round trip and 1 us per streamed descriptor fits. */
	o->timeout_s = (unsigned)(20 + o->iters / 2000);
	return 0;
}

int bh_bench_ipc_main(int argc, char **argv)
{
	struct bh_bench_opts o;
	int r = bh_bench_parse(argc, argv, &o);
	if (r != 0) {
		bh_bench_usage(r > 0 ? stdout : stderr);
		return r > 0 ? 0 : 2;
	}

	cpu_set_t saved;
	bool restore = false;
	if (o.pin) {
		if (sched_getaffinity(0, sizeof(saved), &saved) != 0 || !CPU_ISSET(0, &saved) ||
		    !CPU_ISSET(1, &saved)) {
			fprintf(stderr, "bulkhead bench ipc: --pin needs CPUs 0 and 1\n");
			return 1;
		}
		int rc = bh_bench_pin(0);
		if (rc) {
			fprintf(stderr, "bulkhead bench ipc: pinning to CPU 0: %s\n",
				strerror(-rc));
			return 1;
		}
		restore = true;
	}

	struct bh_bench_row rows[BH_BENCH_NCASES];
	bool ok = true;
	for (size_t i = 0; i < BH_BENCH_NCASES; i++) {
		if (bh_bench_row_init(&rows[i], &bh_bench_cases[i], &o)) {
			fprintf(stderr, "bulkhead bench ipc: out of memory\n");
			for (size_t j = 0; j <= i; j++)
				free(rows[j].rt);
			return 1;
		}
		rows[i].skipped = !bh_bench_selected(&o, bh_bench_cases[i].id);
	}

	/* The watchdog's signals interrupt blocking calls (no SA_RESTART);
	 * a pipe whose reader died must fail a write, not kill us. */
	struct sigaction sa_alarm, sa_child, ign, old_alarm, old_child, old_pipe;
	memset(&sa_alarm, 0, sizeof(sa_alarm));
	sa_alarm.sa_handler = bh_bench_on_alarm;
	sigemptyset(&sa_alarm.sa_mask);
	sigaddset(&sa_alarm.sa_mask, SIGCHLD);
	memset(&sa_child, 0, sizeof(sa_child));
	sa_child.sa_handler = bh_bench_on_child;
	sa_child.sa_flags = SA_NOCLDSTOP;
	sigemptyset(&sa_child.sa_mask);
	sigaddset(&sa_child.sa_mask, SIGALRM);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGALRM, &sa_alarm, &old_alarm);
	sigaction(SIGCHLD, &sa_child, &old_child);
	sigaction(SIGPIPE, &ign, &old_pipe);

	double load = 0;
	getloadavg(&load, 1);
	bool progress = !o.json && isatty(STDERR_FILENO);
	for (unsigned round = 0; round < o.rounds; round++) {
		for (size_t j = 0; j < BH_BENCH_NCASES; j++) {
			/* Odd rounds run the list backwards: neither test of a
			 * pair always goes first. */
			struct bh_bench_row *row = &rows[round % 2 ? BH_BENCH_NCASES - 1 - j : j];
			if (row->skipped || row->failed)
				continue;
			if (progress)
				fprintf(stderr, "bench ipc: round %u/%u: %s\n", round + 1, o.rounds,
					row->c->id);
			bh_bench_run_case(&o, row);
			if (row->failed) {
				ok = false;
				fprintf(stderr, "bulkhead bench ipc: %s: %s\n", row->name,
					row->err);
			}
		}
	}

	sigaction(SIGALRM, &old_alarm, NULL);
	sigaction(SIGCHLD, &old_child, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (restore)
		sched_setaffinity(0, sizeof(saved), &saved);

	for (size_t i = 0; i < BH_BENCH_NCASES; i++)
		bh_bench_row_finish(&rows[i]);
	struct bh_bench_check k[BH_BENCH_NCHECKS];
	bh_bench_checks(rows, k);
	if (o.json)
		bh_bench_print_json(&o, rows, k, load, ok);
	else
		bh_bench_print_md(&o, rows, k, load);
	fflush(stdout);
	for (size_t i = 0; i < BH_BENCH_NCASES; i++)
		free(rows[i].rt);
	return ok ? 0 : 1;
}
