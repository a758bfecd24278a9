/*
 * domains/rt.c - the domain main loop (one domain, or four in one
 * process), the poller thread and the control-message queue. See rt.h;
 * the log is logger.c.
 */
#include "domains/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <urcu/futex.h>

#include "domains/fault.h"
#include "domains/logger.h"
#include "domains/paths.h"
#include "domains/recover.h"
#include "domains/sandbox.h"
#include "ipc/clock.h"
#include "ipc/log.h"
#include "ipc/order.h"

/* ------------------------------------------------------------------ */
/* control-message queue                                                */
/* ------------------------------------------------------------------ */

int bh_ctlq_init(struct bh_ctlq *cq, uint32_t cap)
{
	memset(cq, 0, sizeof(*cq));
	cq->q = calloc(cap, sizeof(*cq->q));
	cq->cap = cap;
	return cq->q ? 0 : -ENOMEM;
}

void bh_ctlq_fini(struct bh_ctlq *cq)
{
	free(cq->q);
	cq->q = NULL;
}

bool bh_ctlq_flush(struct bh_env *env, struct bh_ctlq *cq, int link)
{
	struct bh_pool *pool = &env->own;
	while (cq->head != cq->tail) {
		uint32_t buf;
		if (bh_pool_alloc(pool, &buf) != 0)
			return false;
		uint32_t off = pool->geom.headroom;
		memcpy(bh_pool_buf(pool, buf) + off, &cq->q[cq->tail % cq->cap],
		       sizeof(struct bh_ctl));
		struct bh_desc d = {.buf = buf,
				    .off = (uint16_t)off,
				    .len = sizeof(struct bh_ctl),
				    .pool = (uint8_t)env->dom,
				    .flags = BH_M_CTL};
		if (bh_chan_send(env->chan[link], &d, 1) != 1) {
			bh_pool_free(pool, buf);
			return false;
		}
		bh_pool_lend(pool, buf, BH_HOLDER_DOM(bh_link_peer(link, env->dom)));
		cq->tail++;
	}
	return true;
}

bool bh_ctl_send(struct bh_env *env, struct bh_ctlq *cq, int link, const struct bh_ctl *c)
{
	if (cq->head - cq->tail >= cq->cap) {
		cq->overflow++;
		bh_logf("control queue to link %d full: message %u for socket %u lost", link, c->op,
			c->sid);
		return false;
	}
	cq->q[cq->head % cq->cap] = *c;
	cq->head++;
	bh_ctlq_flush(env, cq, link);
	return true;
}

bool bh_ctl_read(const struct bh_env *env, const struct bh_desc *d, struct bh_ctl *out)
{
	const uint8_t *b = bh_env_buf(env, d->pool, d->buf);
	if (b == NULL || d->len < sizeof(*out))
		return false;
	memcpy(out, b + d->off, sizeof(*out));
	return true;
}

/* ------------------------------------------------------------------ */
/* poller thread                                                        */
/* ------------------------------------------------------------------ */

static void *poller_main(void *arg)
{
	struct bh_poller *p = arg;
	if (bh_sandbox_thread() != 0)
		bh_logf("poller thread: cannot drop its capabilities or set no_new_privs");
	/* Before the main thread loads the sandbox's filter (which forbids
	 * what dropping capabilities takes). */
	bh_store_release32(&p->started_up, 1);
	futex_async((int32_t *)&p->started_up, FUTEX_WAKE, 1, NULL, NULL, 0);
	while (!bh_load_acquire32(&p->stop)) {
		if (!bh_load_acquire32(&p->armed)) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			futex_async((int32_t *)&p->armed, FUTEX_WAIT, 0, &ts, NULL, 0);
			continue;
		}
		if (p->wait(p->arg, 100) > 0) {
			bh_store_release32(&p->armed, 0);
			/* Read by the main loop (publish, outside_io). */
			__atomic_fetch_add(&p->wakes, 1, __ATOMIC_RELEASE);
			bh_ntfn_signal(p->bell, BH_BADGE_IO, &p->nstats);
		}
	}
	return NULL;
}

int bh_poller_start(struct bh_poller *p, int (*wait)(void *, int), void *arg,
		    struct bh_ntfn *bell)
{
	p->wait = wait;
	p->arg = arg;
	p->bell = bell;
	p->armed = 0;
	p->stop = 0;
	p->started_up = 0;
	int err = pthread_create(&p->thread, NULL, poller_main, p);
	if (err)
		return -err;
	p->started = true;
	while (!bh_load_acquire32(&p->started_up))
		futex_async((int32_t *)&p->started_up, FUTEX_WAIT, 0, NULL, NULL, 0);
	return 0;
}

void bh_poller_arm(struct bh_poller *p)
{
	if (!p->started || bh_load_relaxed32(&p->armed))
		return;
	bh_store_release32(&p->armed, 1);
	futex_async((int32_t *)&p->armed, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void bh_poller_stop(struct bh_poller *p)
{
	if (!p->started)
		return;
	bh_store_release32(&p->stop, 1);
	bh_store_release32(&p->armed, 1);
	futex_async((int32_t *)&p->armed, FUTEX_WAKE, 1, NULL, NULL, 0);
	pthread_join(p->thread, NULL);
	p->started = false;
}

/* ------------------------------------------------------------------ */
/* loops                                                                */
/* ------------------------------------------------------------------ */

const struct bh_dom_vt *bh_dom_vt(int dom)
{
	switch (dom) {
	case BH_DOM_DRIVER:
		return &bh_driver_vt;
	case BH_DOM_IP:
		return &bh_ip_vt;
	case BH_DOM_TCP:
		return &bh_tcp_vt;
	case BH_DOM_SOCK:
		return &bh_sock_vt;
	default:
		return NULL;
	}
}

/* Set by the handler, on whichever thread the signal lands (the poller
 * thread too), read by the loop: an atomic, not only volatile. */
static sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	__atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
}

static void setup_process(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	bh_sandbox_prepare();
	/* The log's clock reads the time zone once, from a file: before
	 * the sandbox forbids opening one. */
	tzset();
	bh_fault_install();
	/* The supervisor gone, the domain goes too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/* In sanitizer builds (the runtimes define this; elsewhere it is NULL):
 * where this process's reports go. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

/* A sanitizer build's reports from this process go to a file of its own,
 * RUNDIR/NAME/sanitizer.DOMAIN.PID, opened now (the sandbox forbids
 * opening it later): the log is shared by every domain and UBSan's
 * reports carry no pid, so only a file per process says whose a report
 * is. The supervisor names the file when the process dies. */
static void sanitizer_report_file(const char *inst, const char *dom)
{
	if (__sanitizer_set_report_fd == NULL)
		return;
	char file[64], path[512];
	snprintf(file, sizeof(file), "sanitizer.%s.%d", dom, (int)getpid());
	if (bh_inst_path(path, sizeof(path), inst, file) != 0)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0)
		__sanitizer_set_report_fd((void *)(intptr_t)fd);
}

static void report_ready(const char *msg)
{
	if (fcntl(BH_FD_READY, F_GETFD) >= 0) {
		ssize_t w = write(BH_FD_READY, msg, strlen(msg));
		(void)w;
		close(BH_FD_READY);
	}
}

/* One or more domains driven by one thread. */
struct loop {
	int n;
	const struct bh_dom_vt *vt[BH_NDOMS];
	void *self[BH_NDOMS];
	struct bh_env *env[BH_NDOMS];
	struct bh_stats_w stats[BH_NDOMS];
	struct bh_ntfn *bell;
	uint32_t spin; /* polls of the word before sleeping */
	struct bh_ntfn_stats nstats;
	/* Passes of the loop; passes that made progress; passes that found
	 * work while arming (no sleep); passes that did not sleep because a
	 * deadline (a timer, or publishing counters that moved) had come. */
	uint64_t passes, busy, arm_races, due;
	/* A restarted domain: when it started, and whether it has said it
	 * serves (every link up again). */
	bool waiting_links;
	uint64_t started_ns;
	/* Links reset whose domain hook (peer_reset) waits for the link to
	 * carry again: what the hook gives back must not be lost. */
	bool hook_due[BH_NDOMS][BH_NLINKS];
};

uint32_t bh_rt_batch = BH_RT_BATCH;

/* The scheduling class of a domain process. On one CPU (its affinity
 * allows no other), SCHED_BATCH: a woken SCHED_BATCH task does not
 * preempt the one running, so a domain that signals its neighbour
 * finishes its pass (and goes to sleep) before the neighbour runs,
 * instead of being switched out and back in between. With more CPUs the
 * woken domain runs elsewhere and the measurements showed no gain, so
 * the class stays SCHED_OTHER. $BULKHEAD_SCHED=batch or normal
 * overrides (docs/PERFORMANCE.md). */
static void set_sched(void)
{
	const char *e = getenv("BULKHEAD_SCHED");
	bool batch;
	if (e && strcmp(e, "batch") == 0) {
		batch = true;
	} else if (e && strcmp(e, "normal") == 0) {
		batch = false;
	} else {
		cpu_set_t set;
		batch = sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) <= 1;
	}
	struct sched_param sp = {.sched_priority = 0};
	if (batch && sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
		bh_logf("cannot run under SCHED_BATCH: %s", strerror(errno));
}

/* The knobs the evaluation turns ($BULKHEAD_SPIN, $BULKHEAD_BATCH). */
static void read_knobs(struct loop *lp)
{
	const char *e = getenv("BULKHEAD_BATCH");
	if (e && *e) {
		unsigned long b = strtoul(e, NULL, 10);
		bh_rt_batch = b < 1 ? 1 : b > BH_RT_BATCH ? BH_RT_BATCH : (uint32_t)b;
	}
	lp->spin = bh_ntfn_spin_budget(BH_RT_SPIN);
	set_sched();
}

static bool loop_arm(struct loop *lp, struct bh_ntfn **also)
{
	bool work = false;
	*also = NULL;
	for (int i = 0; i < lp->n; i++) {
		for (int l = 0; l < BH_NLINKS; l++) {
			struct bh_chan *ch = lp->env[i]->chan[l];
			if (ch == NULL)
				continue;
			ch->lazy_free = lp->vt[i]->lazy_give_backs &&
					lp->vt[i]->lazy_give_backs(lp->self[i], l);
			if (bh_chan_arm(ch))
				work = true;
		}
		struct bh_ntfn *a = NULL;
		if (lp->vt[i]->arm && lp->vt[i]->arm(lp->self[i], &a))
			work = true;
		if (a)
			*also = a;
	}
	return work;
}

static void loop_disarm(struct loop *lp)
{
	for (int i = 0; i < lp->n; i++) {
		for (int l = 0; l < BH_NLINKS; l++)
			if (lp->env[i]->chan[l])
				bh_chan_disarm(lp->env[i]->chan[l]);
		if (lp->vt[i]->disarm)
			lp->vt[i]->disarm(lp->self[i]);
	}
}

static void loop_publish(struct loop *lp, uint64_t now)
{
	for (int i = 0; i < lp->n; i++) {
		struct bh_stats_w *w = &lp->stats[i];
		bh_stats_begin(w);
		lp->vt[i]->publish(lp->self[i], w);
		for (int l = 0; l < BH_NLINKS; l++) {
			struct bh_chan *ch = lp->env[i]->chan[l];
			if (!ch)
				continue;
			struct bh_chan_stats cs = bh_chan_stats(ch);
			char pfx[48];
			snprintf(pfx, sizeof(pfx), "chan.%s.", ch->name);
			bh_stats_add(w, pfx, "sent", cs.sent);
			bh_stats_add(w, pfx, "received", cs.received);
			bh_stats_add(w, pfx, "rx_batches", cs.rx_batches);
			bh_stats_add(w, pfx, "given_back", cs.given_back);
			bh_stats_add(w, pfx, "reclaimed", cs.reclaimed);
			bh_stats_add(w, pfx, "send_full", cs.send_full);
			bh_stats_add(w, pfx, "give_back_full", cs.give_back_full);
			bh_stats_add(w, pfx, "rejected_desc", cs.rejected_desc);
			bh_stats_add(w, pfx, "rejected_index", cs.rejected_index);
			bh_stats_add(w, pfx, "notifies", cs.notifies);
			bh_stats_add(w, pfx, "signals", cs.signals);
			bh_stats_add(w, pfx, "wakes", cs.wakes);
			bh_stats_add(w, pfx, "resets", cs.resets);
			bh_stats_add(w, pfx, "restores", cs.restores);
			bh_stats_add(w, pfx, "held", bh_chan_held(ch));
			bh_stats_add(w, pfx, "owed", ch->nowed);
		}
		bh_recover_publish(lp->env[i], w);
		struct bh_pool *own = &lp->env[i]->own;
		bh_stats_add(w, "pool.", "free", own->nfree);
		bh_stats_add(w, "pool.", "bufs", own->geom.nbufs);
		bh_stats_add(w, "pool.", "alloc_fail", own->stats.alloc_fail);
		bh_stats_add(w, "pool.", "bad_return", own->stats.bad_return);
		bh_stats_add(w, "loop.", "passes", lp->passes);
		bh_stats_add(w, "loop.", "busy", lp->busy);
		bh_stats_add(w, "loop.", "arm_races", lp->arm_races);
		bh_stats_add(w, "loop.", "due", lp->due);
		bh_stats_add(w, "loop.", "sleeps", lp->nstats.sleeps);
		bh_stats_add(w, "loop.", "waits", lp->nstats.waits);
		bh_stats_end(w, now);
	}
}

/* Link resets (ipc/channel.h), before anything touches a channel this
 * pass. Nonzero if something happened. */
static int loop_sync(struct loop *lp)
{
	int progress = 0;
	bool all_up = true;
	for (int i = 0; i < lp->n; i++) {
		struct bh_env *env = lp->env[i];
		for (int l = 0; l < BH_NLINKS; l++) {
			struct bh_chan *ch = env->chan[l];
			if (ch == NULL)
				continue;
			switch (bh_chan_sync(ch)) {
			case BH_CHAN_PEER_RESET:
				bh_log_as(lp->vt[i]->name);
				/* The ledger's snapshot, before anything moves. */
				bh_recover_peer_reset(env, l);
				lp->hook_due[i][l] = lp->vt[i]->peer_reset != NULL;
				progress = 1;
				break;
			case BH_CHAN_UP:
				progress = 1;
				break;
			default:
				break;
			}
			if (lp->hook_due[i][l] && ch->up) {
				lp->hook_due[i][l] = false;
				bh_log_as(lp->vt[i]->name);
				lp->vt[i]->peer_reset(lp->self[i], l);
			}
			all_up &= ch->up;
		}
	}
	if (lp->waiting_links && all_up) {
		lp->waiting_links = false;
		bh_logf("serving again: every link up %.1f ms after start",
			(double)(bh_now_ns() - lp->started_ns) / 1e6);
		report_ready("ok\n");
	}
	return progress;
}

static void loop_run(struct loop *lp)
{
	uint64_t last_pub = 0;
	uint32_t badges = 0;
	bool unpublished = false; /* progress since the last publish */
	while (!__atomic_load_n(&stop_requested, __ATOMIC_RELAXED)) {
		uint64_t now = bh_now_ns();
		int progress = 0;
		/* Badges posted while we were awake (no sleeper: no system call). */
		badges |= bh_ntfn_poll(lp->bell);
		progress |= loop_sync(lp);
		for (int i = 0; i < lp->n; i++) {
			bh_log_as(lp->vt[i]->name);
			progress |= lp->vt[i]->poll(lp->self[i], now, badges);
			progress |= bh_recover_flush(lp->env[i]);
			for (int l = 0; l < BH_NLINKS; l++)
				if (lp->env[i]->chan[l])
					progress |= bh_chan_flush_owed(lp->env[i]->chan[l]);
		}
		badges = 0;
		for (int i = 0; i < lp->n; i++)
			for (int l = 0; l < BH_NLINKS; l++)
				if (lp->env[i]->chan[l])
					bh_chan_notify(lp->env[i]->chan[l]);
		unpublished |= progress != 0;
		if (now - last_pub >= BH_RT_PUBLISH_NS) {
			/* Our own ring indices, scribbled by a fault of ours,
			 * would stall a link we have nothing more to publish on
			 * (ipc/channel.h). */
			for (int i = 0; i < lp->n; i++)
				for (int l = 0; l < BH_NLINKS; l++)
					if (lp->env[i]->chan[l] && lp->env[i]->chan[l]->up)
						bh_chan_restore_indices(lp->env[i]->chan[l]);
			loop_publish(lp, now);
			last_pub = now;
			unpublished = false;
		}
		for (int i = 0; i < lp->n; i++)
			bh_stats_beat(&lp->stats[i]);
		bh_fault_run(lp->env, lp->n);
		lp->passes++;
		if (progress) {
			lp->busy++;
			continue;
		}
		struct bh_ntfn *also;
		if (loop_arm(lp, &also)) {
			lp->arm_races++;
			loop_disarm(lp);
			continue;
		}
		uint64_t dl = UINT64_MAX;
		for (int i = 0; i < lp->n; i++) {
			uint64_t d = lp->vt[i]->deadline(lp->self[i]);
			if (d < dl)
				dl = d;
		}
		now = bh_now_ns();
		/* Counters that moved are published within BH_RT_PUBLISH_NS
		 * even if nothing else happens. */
		if (unpublished && last_pub + BH_RT_PUBLISH_NS < dl)
			dl = last_pub + BH_RT_PUBLISH_NS;
		/* In unsigned arithmetic: "no deadline" is UINT64_MAX. */
		uint64_t left = dl <= now ? 0 : dl - now;
		int64_t timeout = left > BH_RT_MAX_SLEEP_NS ? (int64_t)BH_RT_MAX_SLEEP_NS : (int64_t)left;
		if (timeout > 0 && also)
			badges = bh_ntfn_wait2(lp->bell, also, BH_BADGE_IO, lp->spin, timeout,
					       &lp->nstats);
		else if (timeout > 0)
			badges = bh_ntfn_wait(lp->bell, lp->spin, timeout, &lp->nstats);
		else
			lp->due++;
		loop_disarm(lp);
	}
}

static int loop_init(struct loop *lp, int dom, struct bh_env *env, char *err, size_t errlen)
{
	int i = lp->n;
	lp->vt[i] = bh_dom_vt(dom);
	lp->env[i] = env;
	lp->self[i] = calloc(1, lp->vt[i]->size);
	if (lp->self[i] == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int e = bh_stats_writer(&lp->stats[i], &env->stats);
	if (e) {
		snprintf(err, errlen, "stats region: %s", bh_ipc_strerror(e));
		return e;
	}
	e = lp->vt[i]->init(lp->self[i], env, err, errlen);
	if (e)
		return e;
	lp->n++;
	if (bh_recover_init(env)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (env->restarted)
		bh_recover_restarted(env);
	return 0;
}

static void loop_fini(struct loop *lp)
{
	for (int i = lp->n - 1; i >= 0; i--) {
		lp->vt[i]->fini(lp->self[i]);
		free(lp->self[i]);
		bh_recover_fini(lp->env[i]);
	}
	lp->n = 0;
}

int bh_rt_run_domain(int dom, bool restarted)
{
	const struct bh_dom_vt *vt = bh_dom_vt(dom);
	if (vt == NULL)
		return 2;
	bh_log_init(vt->name);
	setup_process();
	struct bh_region plan_region;
	const struct bh_plan *plan;
	char err[256] = "";
	int e = bh_plan_attach(&plan_region, &plan);
	if (e) {
		snprintf(err, sizeof(err), "error: plan: %s\n", bh_ipc_strerror(e));
		bh_logf("%s", err);
		report_ready(err);
		return 1;
	}
	sanitizer_report_file(plan->name, vt->name);
	static struct bh_env env;
	static struct loop lp;
	char msg[300];
	lp.started_ns = bh_now_ns();
	if ((e = bh_env_attach(&env, plan, dom, err, sizeof(err))) == 0) {
		env.restarted = restarted;
		e = loop_init(&lp, dom, &env, err, sizeof(err));
	}
	if (e) {
		snprintf(msg, sizeof(msg), "error: %s: %s\n", vt->name, err);
		bh_logf("start failed: %s", err);
		report_ready(msg);
		return 1;
	}
	/* Before the sandbox: it reads the affinity mask. */
	read_knobs(&lp);
	if ((e = bh_sandbox_enter(err, sizeof(err)))) {
		snprintf(msg, sizeof(msg), "error: %s: %s\n", vt->name, err);
		bh_logf("start failed: %s", err);
		report_ready(msg);
		return 1;
	}
	lp.bell = env.bell;
	for (int i = 0; i < lp.n; i++)
		bh_stats_ready(&lp.stats[i]);
	loop_publish(&lp, bh_now_ns());
	bh_logf("running (factored, pid %d%s; %s)", (int)getpid(),
		restarted ? ", replacing one that died" : "",
		bh_sandbox_filters() ? "capabilities dropped, seccomp filter on"
				     : "capabilities dropped, no seccomp filter in this sanitizer build");
	/* A replacement serves once its links are up (loop_sync reports). */
	if (restarted)
		lp.waiting_links = true;
	else
		report_ready("ok\n");
	loop_run(&lp);
	bh_logf("stopping");
	loop_fini(&lp);
	bh_env_detach(&env);
	return 0;
}

int bh_rt_run_mono(void)
{
	bh_log_init("mono");
	setup_process();
	struct bh_region plan_region;
	const struct bh_plan *plan;
	char err[256] = "";
	char msg[300];
	int e = bh_plan_attach(&plan_region, &plan);
	if (e) {
		snprintf(msg, sizeof(msg), "error: plan: %s\n", bh_ipc_strerror(e));
		report_ready(msg);
		return 1;
	}
	sanitizer_report_file(plan->name, "mono");
	static struct bh_env env[BH_NDOMS];
	static struct bh_mono_links ml;
	static struct loop lp;
	if ((e = bh_env_attach_mono(env, &ml, plan, err, sizeof(err)))) {
		snprintf(msg, sizeof(msg), "error: %s\n", err);
		bh_logf("start failed: %s", err);
		report_ready(msg);
		return 1;
	}
	for (int d = 0; d < BH_NDOMS; d++) {
		bh_log_as(bh_dom_name(d));
		if ((e = loop_init(&lp, d, &env[d], err, sizeof(err)))) {
			snprintf(msg, sizeof(msg), "error: %s: %s\n", bh_dom_name(d), err);
			bh_logf("start failed: %s: %s", bh_dom_name(d), err);
			report_ready(msg);
			return 1;
		}
	}
	read_knobs(&lp);
	if ((e = bh_sandbox_enter(err, sizeof(err)))) {
		snprintf(msg, sizeof(msg), "error: %s\n", err);
		bh_logf("start failed: %s", err);
		report_ready(msg);
		return 1;
	}
	lp.bell = env[BH_DOM_SOCK].bell;
	for (int i = 0; i < lp.n; i++)
		bh_stats_ready(&lp.stats[i]);
	loop_publish(&lp, bh_now_ns());
	bh_log_as("mono");
	bh_logf("running (mono: driver, ip, tcp and sock in pid %d)", (int)getpid());
	report_ready("ok\n");
	loop_run(&lp);
	bh_logf("stopping");
	loop_fini(&lp);
	for (int d = 0; d < BH_NDOMS; d++)
		bh_env_detach(&env[d]);
	return 0;
}
