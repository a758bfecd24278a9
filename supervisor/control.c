/*
 * supervisor/control.c - the answers on ctl.sock: one request line in,
 * the answer out, then the connection closes.
 *
 *   status [json]          each domain: pid, state, restarts, uptime, exit
 *   stats [json]           every domain's counters (its stats region)
 *   conns [json]           the TCP domain's connection table
 *   inject DOM FAULT SEED  asks the domain to fault itself (domains/fault.h)
 *   down                   stops the instance
 *
 * What a domain wrote in its stats region is read through the checked
 * reader (domains/stats.h) and its names are kept to safe bytes: a
 * faulty domain cannot break the answer's format.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domains/fault.h"
#include "domains/logger.h"
#include "domains/stats.h"
#include "ipc/clock.h"
#include "supervisor/cpulist.h"
#include "supervisor/ctlsock.h"
#include "supervisor/supervisor.h"
#include "tcp/tcp.h"

/* Growing text for an answer. */
struct text {
	char *s;
	size_t len, cap;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *ns = realloc(t->s, cap);
		if (ns == NULL)
			return;
		t->s = ns;
		t->cap = cap;
	}
}


const char *bh_sup_dom_state(const struct bh_dom_rec *r)
{
	if (r->alive && !r->rs.serving)
		return "restarting";
	if (r->alive)
		return r->beat.hung ? "unresponsive" : "running";
	if (r->pid == 0)
		return "not started";
	if (r->restart_due)
		return "restarting";
	if (WIFSIGNALED(r->status))
		return "killed";
	return "exited";
}

void bh_sup_exit_text(char *out, size_t n, const struct bh_dom_rec *r)
{
	if (r->pid == 0 || (r->alive && r->restarts == 0))
		out[0] = '\0';
	else if (r->alive)
		snprintf(out, n, "last: %s %d, back in %llu ms",
			 WIFSIGNALED(r->status) ? "signal" : "status",
			 WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status),
			 (unsigned long long)r->last_restart_ms);
	else if (WIFSIGNALED(r->status))
		snprintf(out, n, "signal %d (%s)", WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(out, n, "status %d", WEXITSTATUS(r->status));
}

/* What the link offers, as the driver last published it, received and
 * sent (wire: only, drivers/shmlink.c): checksums left to the link, and
 * large frames. */
struct link_offers {
	bool csum_rx, csum_tx, large_rx, large_tx;
};

static void link_offers(struct bh_sup *s, struct link_offers *o)
{
	struct bh_stats_snap snap;
	*o = (struct link_offers){0};
	if (bh_stats_read(&s->regions.stats[BH_DOM_DRIVER], 0, &snap) != 0)
		return;
	static const char *const name[4] = {"dev.csum_offload_rx", "dev.csum_offload_tx",
					    "dev.large_rx", "dev.large_tx"};
	bool *field[4] = {&o->csum_rx, &o->csum_tx, &o->large_rx, &o->large_tx};
	for (uint32_t i = 0; i < snap.h.ncounters; i++)
		for (int k = 0; k < 4; k++)
			if (strcmp(snap.ctr[i].name, name[k]) == 0)
				*field[k] = snap.ctr[i].value != 0;
	bh_stats_snap_free(&snap);
}

static const char *yes_no(bool b) { return b ? "yes" : "no"; }
static const char *json_bool(bool b) { return b ? "true" : "false"; }

static void answer_status(struct bh_sup *s, struct text *t, bool json)
{
	struct link_offers o;
	link_offers(s, &o);
	uint64_t now = bh_now_ns();
	const char *mode = s->plan.mode == BH_MODE_MONO ? "mono" : "factored";
	char addr[32];
	bh_ip4_text(addr, sizeof(addr), s->plan.addr);
	if (json) {
		tprintf(t, "{\"name\": \"%s\", \"mode\": \"%s\", \"supervisor_pid\": %d, "
			   "\"addr\": \"%s/%u\", \"driver\": \"%s\", \"uptime_s\": %.3f, \"domains\": [",
			s->plan.name, mode, (int)getpid(), addr, s->plan.prefix, s->plan.driver,
			(double)(now - s->started_ns) / 1e9);
	} else {
		tprintf(t, "instance %s (%s), %s/%u on %s, supervisor pid %d, up %.1f s\n",
			s->plan.name, mode, addr, s->plan.prefix, s->plan.driver, (int)getpid(),
			(double)(now - s->started_ns) / 1e9);
		tprintf(t, "%-7s %-8s %-13s %-9s %-10s %s\n", "DOMAIN", "PID", "STATE", "RESTARTS",
			"UPTIME", "EXIT");
	}
	for (int d = 0; d < BH_NDOMS; d++) {
		const struct bh_dom_rec *r = &s->dom[d];
		double up = r->pid ? (double)((r->alive ? now : r->ended_ns) - r->started_ns) / 1e9 : 0;
		char ex[64];
		bh_sup_exit_text(ex, sizeof(ex), r);
		if (json)
			tprintf(t, "%s{\"name\": \"%s\", \"pid\": %d, \"state\": \"%s\", \"restarts\": %u, "
				   "\"uptime_s\": %.3f, \"exit\": \"%s\", \"last_restart_ms\": %llu}",
				d ? ", " : "", bh_dom_name(d), (int)r->pid, bh_sup_dom_state(r), r->restarts,
				r->alive ? up : 0.0, ex, (unsigned long long)r->last_restart_ms);
		else
			tprintf(t, "%-7s %-8d %-13s %-9u %-10.1f %s\n", bh_dom_name(d), (int)r->pid,
				bh_sup_dom_state(r), r->restarts, r->alive ? up : 0.0, ex);
	}
	/* The supervisor's CPUs are its domains' (inherited; up --cpus). */
	cpu_set_t set;
	char cpus[256] = "?";
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		bh_cpulist_text(&set, cpus, sizeof(cpus));
	if (json)
		tprintf(t, "], \"cpus\": \"%s\", \"cpus_chosen\": %s, \"link\": {\"mtu\": %u, "
			   "\"csum_offload_rx\": %s, \"csum_offload_tx\": %s, \"large_rx\": %s, "
			   "\"large_tx\": %s, \"send_chains\": %s}}\n",
			cpus, json_bool(s->cpus_set), s->plan.mtu, json_bool(o.csum_rx),
			json_bool(o.csum_tx), json_bool(o.large_rx), json_bool(o.large_tx),
			json_bool(bh_plan_send_chain(&s->plan)));
	else
		tprintf(t,
			"cpus: %s%s\nlink: MTU %u; checksums left to the link: received %s, sent %s; "
			"large frames: received %s, sent %s; send chains (payload gathered by the "
			"driver): %s\n",
			cpus, s->cpus_set ? " (up --cpus)" : "", s->plan.mtu, yes_no(o.csum_rx),
			yes_no(o.csum_tx), yes_no(o.large_rx), yes_no(o.large_tx),
			yes_no(bh_plan_send_chain(&s->plan)));
}

static void answer_stats(struct bh_sup *s, struct text *t, bool json)
{
	if (json)
		tprintf(t, "{\"name\": \"%s\", \"domains\": {", s->plan.name);
	for (int d = 0; d < BH_NDOMS; d++) {
		struct bh_stats_snap snap;
		int e = bh_stats_read(&s->regions.stats[d], d == BH_DOM_TCP ? s->plan.max_socks : 0,
				      &snap);
		if (json)
			tprintf(t, "%s\"%s\": {", d ? ", " : "", bh_dom_name(d));
		if (e == 0) {
			for (uint32_t i = 0; i < snap.h.ncounters; i++) {
				/* Names are the domain's: keep them to safe bytes. */
				char name[64];
				size_t k = 0;
				for (const char *c = snap.ctr[i].name; *c && k < sizeof(name) - 1; c++)
					name[k++] = (*c == '"' || *c == '\\' || *c < 32) ? '_' : *c;
				name[k] = '\0';
				if (json)
					tprintf(t, "%s\"%s\": %llu", i ? ", " : "", name,
						(unsigned long long)snap.ctr[i].value);
				else
					tprintf(t, "%s.%s %llu\n", bh_dom_name(d), name,
						(unsigned long long)snap.ctr[i].value);
			}
			bh_stats_snap_free(&snap);
		} else if (!json) {
			tprintf(t, "%s: no counters (%s)\n", bh_dom_name(d), strerror(-e));
		}
		if (json)
			tprintf(t, "}");
	}
	if (json)
		tprintf(t, "}}\n");
}

static void answer_conns(struct bh_sup *s, struct text *t, bool json)
{
	struct bh_stats_snap snap;
	int e = bh_stats_read(&s->regions.stats[BH_DOM_TCP], s->plan.max_socks, &snap);
	if (e) {
		if (json)
			tprintf(t, "{\"name\": \"%s\", \"error\": \"%s\", \"conns\": []}\n", s->plan.name,
				strerror(-e));
		else
			tprintf(t, "no connection table: %s\n", strerror(-e));
		return;
	}
	if (json)
		tprintf(t, "{\"name\": \"%s\", \"conns\": [", s->plan.name);
	else
		tprintf(t, "%-21s %-21s %-11s %8s %8s %8s %7s %6s\n", "LOCAL", "REMOTE", "STATE",
			"CWND", "SRTT_US", "RTO_US", "RETRANS", "MSS");
	for (uint32_t i = 0; i < snap.h.nconns; i++) {
		const struct bh_stat_conn *c = &snap.conn[i];
		char la[32], ra[32], l[40], r[40];
		bh_ip4_text(la, sizeof(la), c->laddr);
		bh_ip4_text(ra, sizeof(ra), c->raddr);
		snprintf(l, sizeof(l), "%s:%u", la, c->lport);
		snprintf(r, sizeof(r), "%s:%u", ra, c->rport);
		const char *st = c->state <= BH_TCP_TIME_WAIT ? bh_tcp_state_name(c->state) : "?";
		if (json)
			tprintf(t,
				"%s{\"local\": \"%s\", \"remote\": \"%s\", \"state\": \"%s\", \"cwnd\": %u, "
				"\"ssthresh\": %u, \"srtt_us\": %u, \"rto_us\": %u, \"retransmits\": %u, "
				"\"mss\": %u, \"snd_queued\": %u, \"rcv_queued\": %u, \"snd_wnd\": %u, "
				"\"rcv_wnd\": %u, \"rcv_buf\": %u, \"rcv_rtt_us\": %u, "
				"\"in_flight\": %u, \"ooo_queued\": %u, "
				"\"rtx_timer\": %s, \"with_sock\": %u, \"wait_rx\": %u, "
				"\"wait_tx\": %u}",
				i ? ", " : "", l, r, st, c->cwnd, c->ssthresh, c->srtt_us, c->rto_us,
				c->retransmits, c->mss, c->snd_queued, c->rcv_queued, c->snd_wnd,
				c->rcv_wnd, c->rcv_buf, c->rcv_rtt_us, c->in_flight, c->ooo_queued, c->rtx_armed ? "true" : "false",
				c->with_sock, c->wait_rx, c->wait_tx);
		else
			tprintf(t, "%-21s %-21s %-11s %8u %8u %8u %7u %6u\n", l, r, st, c->cwnd,
				c->srtt_us, c->rto_us, c->retransmits, c->mss);
	}
	if (json)
		tprintf(t, "]}\n");
	bh_stats_snap_free(&snap);
}

/* "inject DOMAIN FAULT SEED": the domain performs the fault itself
 * (domains/fault.h); asked with a queued real-time signal. */
static void answer_inject(struct bh_sup *s, struct text *t, const char *args)
{
	char dname[16], fname[16];
	unsigned seed = 1;
	if (sscanf(args, "%15s %15s %u", dname, fname, &seed) < 2) {
		tprintf(t, "error: inject DOMAIN FAULT [SEED]\n");
		return;
	}
	int dom = -1;
	for (int d = 0; d < BH_NDOMS; d++)
		if (strcmp(dname, bh_dom_name(d)) == 0)
			dom = d;
	enum bh_fault f = bh_fault_parse(fname);
	if (dom < 0 || f == BH_FAULT_NONE) {
		tprintf(t, "error: %s %s: DOMAIN is driver, ip, tcp or sock; FAULT is kill, crash, "
			   "hang, scribble, bad-desc or syscall\n",
			dname, fname);
		return;
	}
	struct bh_dom_rec *r = &s->dom[dom];
	if (!r->alive) {
		tprintf(t, "error: domain %s is not running\n", dname);
		return;
	}
	union sigval v = {.sival_int = bh_fault_value(f, dom, seed)};
	if (sigqueue(r->pid, BH_FAULT_SIGNAL, v) != 0) {
		tprintf(t, "error: cannot signal %s (pid %d): %s\n", dname, (int)r->pid,
			strerror(errno));
		return;
	}
	for (int d = 0; d < BH_NDOMS; d++)
		if (s->dom[d].pid == r->pid)
			s->dom[d].rs.faulted = true;
	bh_logf("fault %s injected into %s (pid %d, seed %u)", fname, dname, (int)r->pid, seed);
	tprintf(t, "ok: %s into %s (pid %d, seed %u)%s\n", fname, dname, (int)r->pid, seed,
		s->plan.mode == BH_MODE_MONO ? "; mono: one process holds all four domains" : "");
}

void bh_sup_control(struct bh_sup *s, int fd)
{
	char line[256];
	if (bh_read_line(fd, line, sizeof(line), 1000) < 0)
		return; /* a client that says nothing gets nothing */
	bool json = strstr(line, " json") != NULL;
	struct text t = {0};
	if (strncmp(line, "status", 6) == 0)
		answer_status(s, &t, json);
	else if (strncmp(line, "stats", 5) == 0)
		answer_stats(s, &t, json);
	else if (strncmp(line, "conns", 5) == 0)
		answer_conns(s, &t, json);
	else if (strncmp(line, "inject ", 7) == 0)
		answer_inject(s, &t, line + 7);
	else if (strcmp(line, "down") == 0) {
		tprintf(&t, "ok\n");
		snprintf(s->why, sizeof(s->why), "stopped by bulkhead down");
		s->stopping = true;
	} else
		tprintf(&t, "error: unknown request '%s'\n", line);
	size_t off = 0;
	while (t.s && off < t.len) {
		ssize_t w = write(fd, t.s + off, t.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(t.s);
}

