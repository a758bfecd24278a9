/*
 * domains/sock_domain.c - the socket server domain: the socket table and
 * the application boundary (domains/app_abi.h). Its files and the calls
 * between them: sock_priv.h. Here: the entry points, at the bottom.
 *
 *   applications   attach over the UNIX socket the supervisor handed us
 *                  (BH_FD_APPS); each gets a region of its own; requests
 *                  (socket, bind, listen, connect, accept, shutdown,
 *                  close, setsockopt) arrive on its control socket and
 *                  are answered at once or when tcp or ip answers
 *   link TS        sockets by id (sid): control messages both ways; data
 *                  to tcp in SOCK buffers (the copy out of the
 *                  application's send ring); data from tcp in the
 *                  received buffers themselves, copied into the
 *                  application's receive ring (the copy in), then given
 *                  back
 *   link IS        UDP: binds, datagrams out (one SOCK buffer each),
 *                  datagrams in (a header message, then the pieces)
 *
 * Isolation: one application's sockets live in its own region and the
 * server never writes another's; ports below 1024 need uid 0 (or the
 * plan's low_port_uid); each application has a socket limit, and its
 * region a size limit. What an application writes in its region is
 * checked (app_abi.h); a bad index resets that socket only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "domains/logger.h"
#include "domains/marks.h"
#include "domains/sock_priv.h"

static int epoll_wait_cb(void *arg, int timeout_ms)
{
	struct sockd *d = arg;
	struct epoll_event ev;
	return epoll_wait(d->epfd, &ev, 1, timeout_ms) > 0 ? 1 : 0;
}

static int sockd_init(void *self, struct bh_env *env, char *err, size_t errlen)
{
	struct sockd *d = self;
	const struct bh_plan *p = env->plan;
	d->env = env;
	d->plan = p;
	d->nsocks = p->max_socks;
	d->napps = p->max_apps;
	/* A stream fills whole SOCK buffers (16 KiB where segments are
	 * large: plan.c); a datagram stays within 4 KiB, as it always has. */
	d->chunk = p->pools.g[BH_POOL_SOCK].buf_size - p->pools.g[BH_POOL_SOCK].headroom;
	if (d->chunk > UINT16_MAX)
		d->chunk = UINT16_MAX;
	d->dgram_chunk = d->chunk > 4096 ? 4096 : d->chunk;
	/* A socket lends tcp at most its window's bytes, in at most as
	 * many buffers as 2 KiB ones would take (small writes each take
	 * one). */
	d->tx_budget_bytes = p->tcp_buf;
	d->tx_budget = p->tcp_buf / 2048 + 1;
	d->s = calloc(d->nsocks, sizeof(*d->s));
	d->dirty = calloc(bh_marks_cap(d->nsocks), sizeof(*d->dirty));
	d->apps = calloc(d->napps, sizeof(*d->apps));
	d->buf_sid = calloc(p->pools.g[BH_POOL_SOCK].nbufs, sizeof(*d->buf_sid));
	d->buf_len = calloc(p->pools.g[BH_POOL_SOCK].nbufs, sizeof(*d->buf_len));
	uint32_t nodes = p->pools.g[BH_POOL_RX].nbufs + p->pools.g[BH_POOL_IP].nbufs;
	if (d->s == NULL || d->dirty == NULL || d->apps == NULL || d->buf_sid == NULL ||
	    d->buf_len == NULL || bh_wl_init(&d->starved, d->nsocks) ||
	    bh_dq_nodes_init(&d->nodes, nodes) ||
	    bh_ctlq_init(&d->cq_tcp, 4 * d->nsocks) || bh_ctlq_init(&d->cq_ip, d->nsocks)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (env->apps_fd < 0) {
		snprintf(err, errlen, "no application socket was handed over");
		return -EBADF;
	}
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_APPS};
	if (d->epfd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, env->apps_fd, &ev) != 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return -errno;
	}
	int e = bh_poller_start(&d->poller, epoll_wait_cb, d, env->bell);
	if (e) {
		snprintf(err, errlen, "poller thread: %s", strerror(-e));
		return e;
	}
	return 0;
}

static void unmark(void *ctx, uint32_t sid)
{
	struct sockd *d = ctx;
	if (sid < d->nsocks)
		d->s[sid].dirty = false;
}

static void service(void *ctx, uint32_t sid)
{
	sk_service(ctx, sid);
}

static int sockd_poll(void *self, uint64_t now, uint32_t badges)
{
	struct sockd *d = self;
	int progress = sk_outside_io(d, now, badges);
	progress |= sk_reclaim(d, BH_LINK_TS, BH_DOM_TCP);
	progress |= sk_reclaim(d, BH_LINK_IS, BH_DOM_IP);
	struct bh_desc x[BATCH];
	unsigned n = bh_chan_recv(d->env->chan[BH_LINK_TS], x, bh_rt_batch);
	sk_from_tcp(d, x, n);
	progress |= n != 0;
	n = bh_chan_recv(d->env->chan[BH_LINK_IS], x, bh_rt_batch);
	sk_from_ip(d, x, n);
	progress |= n != 0;
	sk_app_dirty(d);
	/* Marked sockets (domains/marks.h). */
	if (bh_marks_run(d->dirty, &d->ndirty, d, unmark, service))
		progress = 1;
	/* Sockets whose data waited behind the control messages go on
	 * once those are out. */
	if (d->cq_tcp.head != d->cq_tcp.tail && bh_ctlq_flush(d->env, &d->cq_tcp, BH_LINK_TS) &&
	    d->starved.n) {
		sk_unstarve(d);
		progress = 1;
	}
	if (d->cq_ip.head != d->cq_ip.tail)
		bh_ctlq_flush(d->env, &d->cq_ip, BH_LINK_IS);
	sk_signal_apps(d);
	return progress;
}

static uint64_t sockd_deadline(void *self)
{
	(void)self;
	return UINT64_MAX;
}

static bool sockd_arm(void *self, struct bh_ntfn **also)
{
	(void)also;
	struct sockd *d = self;
	bh_poller_arm(&d->poller);
	return false;
}

static void sockd_publish(void *self, struct bh_stats_w *w)
{
	struct sockd *d = self;
	uint32_t socks = 0, apps = 0;
	for (uint32_t i = 1; i < d->nsocks; i++)
		socks += d->s[i].used;
	for (uint32_t i = 0; i < d->napps; i++)
		apps += d->apps[i].used;
	bh_stats_add(w, "", "sockets", socks);
	bh_stats_add(w, "", "apps", apps);
#define SOCKD_COUNTER_ADD(name) bh_stats_add(w, "", #name, d->st.name);
	SOCKD_COUNTERS(SOCKD_COUNTER_ADD)
#undef SOCKD_COUNTER_ADD
	bh_stats_add(w, "", "ctl_lost", d->cq_tcp.overflow + d->cq_ip.overflow);
	bh_stats_add(w, "poller.", "wakes", __atomic_load_n(&d->poller.wakes, __ATOMIC_RELAXED));
}

static void sockd_fini(void *self)
{
	struct sockd *d = self;
	bh_poller_stop(&d->poller);
	for (uint32_t i = 0; d->apps && i < d->napps; i++)
		if (d->apps[i].used)
			sk_app_detach(d, i, "stopping");
	if (d->epfd > 0)
		close(d->epfd);
	bh_ctlq_fini(&d->cq_tcp);
	bh_ctlq_fini(&d->cq_ip);
	bh_dq_nodes_fini(&d->nodes);
	free(d->s);
	free(d->dirty);
	free(d->apps);
	free(d->buf_sid);
	free(d->buf_len);
	bh_wl_fini(&d->starved);
}

static void sockd_peer_reset(void *self, int link)
{
	struct sockd *d = self;
	if (link == BH_LINK_TS)
		sk_tcp_replaced(d);
	else if (link == BH_LINK_IS)
		sk_ip_replaced(d);
}

const struct bh_dom_vt bh_sock_vt = {
    .name = "sock",
    .size = sizeof(struct sockd),
    .init = sockd_init,
    .poll = sockd_poll,
    .deadline = sockd_deadline,
    .arm = sockd_arm,
    .publish = sockd_publish,
    .fini = sockd_fini,
    .peer_reset = sockd_peer_reset,
};
