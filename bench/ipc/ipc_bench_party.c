/*
 * bench/ipc/ipc_bench_party.c - the two parties of a test of `bulkhead
 * bench ipc`: side 1, the peer (a thread, or a forked process that maps
 * the rings anew), which echoes the round trips and then sends the stream;
 * and side 0's timed phases, which measure them. The method is at the top
 * of ipc_bench.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/ipc/ipc_bench_impl.h"
#include "ipc/clock.h"

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

int bh_bench_peer_start(struct bh_bench_link *l, const struct bh_bench_plan *p,
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
int bh_bench_await(const uint32_t *flag, const char *what, char *err)
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
int bh_bench_peer_end(struct bh_bench_link *l, struct bh_bench_peer *pr, bool failed,
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
int bh_bench_rt_phase(struct bh_bench_link *l, const struct bh_bench_plan *p, double *out,
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
int bh_bench_stream_phase(struct bh_bench_link *l, const struct bh_bench_plan *p,
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
