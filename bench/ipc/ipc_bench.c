/*
 * bench/ipc/ipc_bench.c - `bulkhead bench ipc`: the IPC layer next to the
 * mechanisms it stands in for, in one run, so that the layer's targets are
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
 *
 * Files: this one has the watchdog, the tests, the target checks, the
 * options and the run; ipc_bench_link.c the mechanisms (struct
 * bh_bench_ops), ipc_bench_party.c the peer and side 0's timed phases,
 * ipc_bench_report.c the Markdown and JSON output; ipc_bench_impl.h is
 * what they share.
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

#include "bench/ipc/ipc_bench_impl.h"
#include "ipc/clock.h"
#include "ipc/desc.h"
#include "ipc/ntfn.h"
#include "ipc/order.h"
#include "ipc/region.h"
#include "ipc/ring.h"

/* ------------------------------------------------------------------ */
/* watchdog                                                            */
/* ------------------------------------------------------------------ */

/* The flags are declared, and what they mean said, in ipc_bench_impl.h. */
volatile sig_atomic_t bh_bench_stop;
volatile sig_atomic_t bh_bench_expired;
volatile sig_atomic_t bh_bench_peer_gone;
volatile sig_atomic_t bh_bench_victim;

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

void bh_bench_fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, BH_BENCH_ERR, fmt, ap);
	va_end(ap);
}

/* Why a wait gave up (its operation returned -EINTR). */
void bh_bench_stopped(char *err, const char *what)
{
	if (bh_bench_expired)
		bh_bench_fail(err, "%s: timed out (watchdog)", what);
	else if (bh_bench_peer_gone)
		bh_bench_fail(err, "%s: the peer process died", what);
	else
		bh_bench_fail(err, "%s: stopped (the peer failed)", what);
}

int bh_bench_io_error(char *err, const char *what, int rc)
{
	if (rc == -EINTR)
		bh_bench_stopped(err, what);
	else
		bh_bench_fail(err, "%s: %s", what, bh_ipc_strerror(rc));
	return -1;
}

int bh_bench_order_error(char *err, const char *who, uint64_t want, uint32_t got)
{
	bh_bench_fail(err, "%s: descriptor out of order: expected #%" PRIu64 ", got %" PRIu32, who,
		      want, got);
	return -1;
}

int bh_bench_pin(int cpu)
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
/* tests and results                                                   */
/* ------------------------------------------------------------------ */

/* In the order they run (odd rounds run it backwards); each target's two
 * tests are neighbours (see "Rounds" at the top). */
const struct bh_bench_case bh_bench_cases[] = {
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
_Static_assert(sizeof(bh_bench_cases) / sizeof(bh_bench_cases[0]) == BH_BENCH_NCASES,
	       "BH_BENCH_NCASES counts bh_bench_cases");

void bh_bench_plan_for(struct bh_bench_plan *p, const struct bh_bench_case *c,
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

const struct bh_bench_row *bh_bench_find(const struct bh_bench_row *rows, const char *id)
{
	for (size_t i = 0; i < BH_BENCH_NCASES; i++)
		if (strcmp(rows[i].c->id, id) == 0)
			return &rows[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* target checks                                                       */
/* ------------------------------------------------------------------ */

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
		"checks the IPC layer's three targets.\n"
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
