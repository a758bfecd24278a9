/*
 * domains/sock.c - the socket server: the socket table and the
 * application boundary (domains/app_abi.h).
 *
 * Size: over 900 lines, one file still; its seams are the application
 * side (attach, one handler per request kind), the data path (copy in,
 * copy out, service) and the tcp/ip side, to be split as tcp/ is (private
 * structs in a header).
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "domains/app_abi.h"
#include "domains/dq.h"
#include "domains/recover.h"
#include "domains/rt.h"
#include "ipc/order.h"
#include "tcp/tcp.h"

#define BATCH BH_RT_BATCH
#define NO_APP UINT32_MAX

struct app {
	bool used;
	int fd;
	pid_t pid;
	uid_t uid;
	struct bh_region region;
	struct bh_app_slot *slots;
	uint8_t *data;
	uint32_t *dirty; /* nslots bits, then the summary word */
	struct bh_ntfn *ntfn;
	uint32_t nslots, ring, nused;
	uint32_t *slot_sid; /* private: 0 free, else the socket */
	bool *slot_busy;    /* private: closed by the app, still draining */
	uint64_t owe; /* waiter words to signal (bit i: word i) */
	/* the request being answered later */
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
	uint32_t app, slot;
	uint32_t rx_head, tx_tail; /* our indices, never re-read */
	uint32_t shut_at;          /* tx_head when shutdown(SHUT_WR) came */
	uint32_t tx_out;           /* SOCK buffers with tcp */
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t head_off;         /* bytes of the first queued buffer copied */
	struct bh_dq rxq;
	/* accepted connections not yet taken by the application */
	uint32_t acc_next, acc_head, acc_tail, accq;
	uint32_t parent;
	uint32_t backlog; /* a listener's, to listen again after a tcp restart */
};

struct sockd_stats {
	uint64_t apps_attached, apps_detached, apps_refused;
	uint64_t rpcs, rpc_bad;
	uint64_t bad_index;      /* sockets reset for an invalid ring index */
	uint64_t bad_desc, bad_sid;
	uint64_t rx_bytes, tx_bytes;
	uint64_t low_port_denied;
	uint64_t udp_too_big; /* datagrams larger than the ring: dropped */
	uint64_t dq_full;
	uint64_t app_signals;
};

struct sockd {
	struct bh_env *env;
	const struct bh_plan *plan;
	struct bh_ctlq cq_tcp, cq_ip;
	struct ssock *s;
	uint32_t nsocks, next_sid;
	struct app *apps;
	uint32_t napps;
	struct bh_dq_nodes nodes;
	uint32_t *dirty;
	uint32_t ndirty;
	uint32_t *buf_sid; /* SOCK buffer -> socket it carries data for */
	uint32_t tx_budget;
	uint32_t chunk;
	int epfd;
	struct bh_poller poller;
	uint64_t seen_wakes;
	uint64_t last_io_ns;
	uint8_t ports[2][65536 / 8]; /* bound ports: TCP, UDP */
	struct sockd_stats st;
	struct bh_ratelimit rl;
	uint32_t udp_want, udp_sid; /* pieces still to come of a datagram */
};

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static bool port_used(struct sockd *d, bool udp, uint16_t p)
{
	return d->ports[udp][p / 8] & (1u << (p % 8));
}
static void port_set(struct sockd *d, bool udp, uint16_t p, bool on)
{
	if (on)
		d->ports[udp][p / 8] |= (uint8_t)(1u << (p % 8));
	else
		d->ports[udp][p / 8] &= (uint8_t)~(1u << (p % 8));
}

static struct ssock *sock_of(struct sockd *d, uint32_t sid)
{
	if (sid == 0 || sid >= d->nsocks || !d->s[sid].used)
		return NULL;
	return &d->s[sid];
}

static void mark(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sock_of(d, sid);
	if (s && !s->dirty) {
		s->dirty = true;
		d->dirty[d->ndirty++] = sid;
	}
}

static uint32_t sid_alloc(struct sockd *d)
{
	for (uint32_t i = 0; i < d->nsocks - 1; i++) {
		uint32_t sid = 1 + (d->next_sid + i) % (d->nsocks - 1);
		if (!d->s[sid].used) {
			d->next_sid = sid;
			struct ssock *s = &d->s[sid];
			memset(s, 0, sizeof(*s));
			s->used = true;
			s->app = NO_APP;
			bh_dq_init(&s->rxq);
			return sid;
		}
	}
	return 0;
}

static struct bh_app_slot *slot_of(struct sockd *d, struct ssock *s)
{
	if (s->app == NO_APP)
		return NULL;
	return &d->apps[s->app].slots[s->slot];
}

static uint8_t *rx_ring(struct sockd *d, struct ssock *s)
{
	struct app *a = &d->apps[s->app];
	return a->data + (size_t)s->slot * 2 * a->ring;
}

static uint8_t *tx_ring(struct sockd *d, struct ssock *s)
{
	struct app *a = &d->apps[s->app];
	return a->data + (size_t)s->slot * 2 * a->ring + a->ring;
}

/* Publishes a socket's state to its application's slot. */
static void publish(struct sockd *d, struct ssock *s)
{
	struct bh_app_slot *sl = slot_of(d, s);
	if (sl == NULL)
		return;
	uint32_t st = BH_SS_OPEN;
	if (s->connecting)
		st |= BH_SS_CONNECTING;
	if (s->connected)
		st |= BH_SS_CONNECTED;
	if (s->listener)
		st |= BH_SS_LISTENING;
	if (s->eof)
		st |= BH_SS_RX_EOF;
	if (s->err)
		st |= BH_SS_ERROR;
	if (s->reset)
		st |= BH_SS_HUP;
	if (s->shut_wr_pending || s->shut_wr_sent)
		st |= BH_SS_TX_SHUT;
	if (s->lport)
		st |= BH_SS_BOUND;
	if (s->rx_wants)
		st |= BH_SS_RX_WANTS;
	sl->err = s->err;
	sl->laddr = s->laddr;
	sl->raddr = s->raddr;
	sl->lport = s->lport;
	sl->rport = s->rport;
	sl->accq = s->accq;
	bh_store_release32(&sl->rx_head, s->rx_head);
	bh_store_release32(&sl->tx_tail, s->tx_tail);
	bh_store_release32(&sl->state, st);
	bh_store_release32(&sl->seq, sl->seq + 1);
	struct app *a = &d->apps[s->app];
	/* The stores above, then want (the application stores want, then
	 * re-reads them): one of us sees the other. An idle application
	 * costs no signal. */
	bh_full_barrier();
	a->owe |= __atomic_load_n(&sl->want, __ATOMIC_RELAXED);
}

static void reply(struct app *a, const struct bh_rpc_rep *r)
{
	ssize_t w = send(a->fd, r, sizeof(*r), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w; /* a dead application's replies go nowhere */
}

static void reply_err(struct sockd *d, struct app *a, int ret)
{
	struct bh_rpc_rep r = {.ret = ret};
	reply(a, &r);
}

static void reply_sock(struct sockd *d, struct app *a, int ret, struct ssock *s)
{
	struct bh_rpc_rep r = {.ret = ret};
	if (s) {
		r.slot = s->slot;
		r.laddr = s->laddr;
		r.raddr = s->raddr;
		r.lport = s->lport;
		r.rport = s->rport;
	}
	reply(a, &r);
}

/* A request waiting for tcp or ip is answered. */
static void answer(struct sockd *d, uint32_t sid, uint32_t op, int ret)
{
	struct ssock *s = sock_of(d, sid);
	if (s == NULL || s->app == NO_APP)
		return;
	struct app *a = &d->apps[s->app];
	if (!a->used || !a->waiting || a->wait_sid != sid || a->wait_op != op)
		return;
	a->waiting = false;
	reply_sock(d, a, ret, s);
}

static void to_tcp(struct sockd *d, uint16_t op, uint32_t sid, const struct bh_ctl *extra)
{
	struct bh_ctl c = extra ? *extra : (struct bh_ctl){0};
	c.op = op;
	c.sid = sid;
	bh_ctl_send(d->env, &d->cq_tcp, BH_LINK_TS, &c);
}

static void drop_rxq(struct sockd *d, struct ssock *s, int link)
{
	struct bh_desc x = {0};
	while (bh_dq_pop(&d->nodes, &s->rxq, &x)) {
		struct bh_desc b = {.buf = x.buf, .pool = x.pool};
		bh_chan_give_back(d->env->chan[x.aux == UINT32_MAX ? BH_LINK_IS : link], &b, 1);
	}
	s->head_off = 0;
}

/* The socket's id is free for reuse once tcp and the application are
 * both done with it. */
static void maybe_free(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sock_of(d, sid);
	if (s == NULL || s->tcp_has || s->app != NO_APP || s->tx_out)
		return;
	drop_rxq(d, s, s->udp ? BH_LINK_IS : BH_LINK_TS);
	s->used = false;
}

/* ------------------------------------------------------------------ */
/* application attach and detach                                        */
/* ------------------------------------------------------------------ */

/* A slot of the application's region that is neither in use nor still
 * draining, or NO_APP. */
static uint32_t free_slot(const struct app *a)
{
	for (uint32_t i = 0; i < a->nslots; i++)
		if (a->slot_sid[i] == 0 && !a->slot_busy[i])
			return i;
	return NO_APP;
}

static void app_unbind_slot(struct sockd *d, struct app *a, uint32_t slot)
{
	a->slot_sid[slot] = 0;
	a->slot_busy[slot] = false;
	a->nused--;
}

/* The application closed a socket: drain what it sent, then let go. */
static void sock_close(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sock_of(d, sid);
	if (s == NULL)
		return;
	s->app_closed = true;
	/* RFC 1122 4.2.2.13: closing with received data unread resets the
	 * connection (as Linux does), whether the data waits here or in
	 * the application's ring (its index is only read for this). */
	struct app *a = s->app == NO_APP ? NULL : &d->apps[s->app];
	if (!s->udp && !s->listener &&
	    (bh_dq_peek(&d->nodes, &s->rxq) != NULL ||
	     (a && bh_load_acquire32(&a->slots[s->slot].rx_tail) != s->rx_head)))
		s->close_abort = true;
	if (s->listener) {
		/* Accepted connections nobody took are reset, as Linux does. */
		for (uint32_t c = s->acc_head; c; c = d->s[c].acc_next) {
			d->s[c].app_closed = true;
			if (d->s[c].tcp_has)
				to_tcp(d, BH_CTL_ABORT, c, NULL);
		}
		s->acc_head = s->acc_tail = 0;
		s->accq = 0;
	}
	if (s->udp) {
		if (s->lport) {
			struct bh_ctl c = {.op = BH_CTL_UDP_UNBIND, .sid = sid, .lport = s->lport};
			bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
			port_set(d, true, s->lport, false);
		}
	} else if (s->listener && s->lport) {
		port_set(d, false, s->lport, false);
	}
	drop_rxq(d, s, s->udp ? BH_LINK_IS : BH_LINK_TS);
	mark(d, sid);
}

static void app_detach(struct sockd *d, uint32_t ai, const char *why)
{
	struct app *a = &d->apps[ai];
	bh_logf("application pid %d detached (%s); closing its %u sockets", (int)a->pid, why,
		a->nused);
	for (uint32_t i = 0; i < a->nslots; i++) {
		uint32_t sid = a->slot_sid[i];
		if (sid == 0)
			continue;
		struct ssock *s = sock_of(d, sid);
		if (s && !s->app_closed)
			sock_close(d, sid);
		if (s) {
			/* Its ring memory goes with the region: nothing more
			 * is read from it. */
			s->app = NO_APP;
			if (s->tcp_has && !s->reset)
				to_tcp(d, s->close_abort ? BH_CTL_ABORT : BH_CTL_CLOSE, sid, NULL);
			maybe_free(d, sid);
		}
	}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, a->fd, NULL);
	close(a->fd);
	bh_region_close(&a->region);
	free(a->slot_sid);
	free(a->slot_busy);
	memset(a, 0, sizeof(*a));
	d->st.apps_detached++;
}

static int send_fds(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	memset(ctl, 0, sizeof(ctl));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

static void app_hello(struct sockd *d, uint32_t ai, const struct bh_rpc_req *rq)
{
	struct app *a = &d->apps[ai];
	if (rq->a != BH_APP_VERSION || a->region.base != NULL) {
		reply_err(d, a, -EPROTONOSUPPORT);
		return;
	}
	uint32_t nslots = d->plan->app_max_socks, ring = d->plan->app_ring;
	/* Shrink to the memory limit rather than refuse. */
	while (nslots > 1 && (uint64_t)nslots * 2 * ring > d->plan->app_max_mem)
		nslots /= 2;
	size_t ntfn_off = 4096;
	size_t dirty_off = ntfn_off + BH_APP_WAITERS * sizeof(struct bh_ntfn);
	size_t dirty_bytes = ((size_t)nslots / 32 + 2) * 4;
	size_t slots_off = bh_page_round(dirty_off + dirty_bytes);
	size_t data_off = bh_page_round(slots_off + (size_t)nslots * sizeof(struct bh_app_slot));
	size_t total = data_off + (size_t)nslots * 2 * ring;
	char name[BH_REGION_NAME_MAX];
	snprintf(name, sizeof(name), "app-%d", (int)a->pid);
	int e = bh_region_create(&a->region, name, BH_REGION_APP, total);
	if (e) {
		bh_logf("application pid %d: cannot make its region: %s", (int)a->pid,
			bh_ipc_strerror(e));
		reply_err(d, a, e);
		return;
	}
	struct bh_app_meta *m = (struct bh_app_meta *)((char *)a->region.base + 64);
	*m = (struct bh_app_meta){.magic = BH_APP_MAGIC,
				  .version = BH_APP_VERSION,
				  .nslots = nslots,
				  .ring = ring,
				  .ntfn_off = ntfn_off,
				  .dirty_off = dirty_off,
				  .slots_off = slots_off,
				  .data_off = data_off,
				  .dgram_max = d->chunk - (uint32_t)sizeof(struct bh_udp_out)};
	a->nslots = nslots;
	a->ring = ring;
	a->ntfn = (struct bh_ntfn *)((char *)a->region.base + ntfn_off);
	a->dirty = (uint32_t *)((char *)a->region.base + dirty_off);
	a->slots = (struct bh_app_slot *)((char *)a->region.base + slots_off);
	a->data = (uint8_t *)a->region.base + data_off;
	a->slot_sid = calloc(nslots, sizeof(*a->slot_sid));
	a->slot_busy = calloc(nslots, sizeof(*a->slot_busy));
	if (a->slot_sid == NULL || a->slot_busy == NULL) {
		reply_err(d, a, -ENOMEM);
		return;
	}
	struct bh_rpc_rep r = {.ret = 0, .nslots = nslots, .ring = ring};
	int fds[2] = {a->region.fd, BH_FD_BELL0 + BH_DOM_SOCK};
	if (send_fds(a->fd, &r, sizeof(r), fds, 2) != 0)
		bh_logf("application pid %d: cannot hand over its region", (int)a->pid);
	/* The region's pages stay ours; the descriptor need not. */
	close(a->region.fd);
	a->region.fd = -1;
}

static void apps_accept(struct sockd *d)
{
	for (;;) {
		int fd = accept4(d->env->apps_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		uint32_t ai = NO_APP;
		for (uint32_t i = 0; i < d->napps; i++)
			if (!d->apps[i].used) {
				ai = i;
				break;
			}
		if (ai == NO_APP || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
			bh_log_limited(&d->rl, "application refused: %s",
				       ai == NO_APP ? "too many applications" : "no credentials");
			d->st.apps_refused++;
			close(fd);
			continue;
		}
		struct app *a = &d->apps[ai];
		memset(a, 0, sizeof(*a));
		a->used = true;
		a->fd = fd;
		a->pid = cred.pid;
		a->uid = cred.uid;
		a->region.fd = -1;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ai};
		epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
		d->st.apps_attached++;
		bh_logf("application pid %d uid %u attached", (int)a->pid, (unsigned)a->uid);
	}
}

/* ------------------------------------------------------------------ */
/* requests                                                             */
/* ------------------------------------------------------------------ */

static struct ssock *req_sock(struct sockd *d, struct app *a, uint32_t slot, uint32_t *sid)
{
	if (a->region.base == NULL || slot >= a->nslots || a->slot_sid[slot] == 0 ||
	    a->slot_busy[slot])
		return NULL;
	*sid = a->slot_sid[slot];
	return sock_of(d, *sid);
}

static int bind_port(struct sockd *d, struct app *a, struct ssock *s, uint32_t addr,
		     uint16_t port)
{
	if (addr != 0 && addr != d->plan->addr)
		return -EADDRNOTAVAIL;
	if (port && port < 1024 && a->uid != 0 && a->uid != d->plan->low_port_uid) {
		d->st.low_port_denied++;
		return -EACCES;
	}
	if (port == 0) {
		/* An ephemeral port for listening or UDP (connect lets tcp
		 * choose). */
		for (uint32_t i = 0; i < 16384 && port == 0; i++) {
			uint16_t p = (uint16_t)(49152 + ((d->next_sid * 7919u + i) % 16384));
			if (!port_used(d, s->udp, p))
				port = p;
		}
		if (port == 0)
			return -EADDRINUSE;
	} else if (port_used(d, s->udp, port)) {
		return -EADDRINUSE;
	}
	s->laddr = d->plan->addr;
	s->lport = port;
	return 0;
}

static void rpc(struct sockd *d, uint32_t ai, const struct bh_rpc_req *rq)
{
	struct app *a = &d->apps[ai];
	d->st.rpcs++;
	if (rq->op == BH_RPC_HELLO) {
		app_hello(d, ai, rq);
		return;
	}
	if (a->region.base == NULL || a->waiting) {
		d->st.rpc_bad++;
		reply_err(d, a, a->waiting ? -EBUSY : -EPROTO);
		return;
	}
	uint32_t sid = 0;
	struct ssock *s = NULL;
	if (rq->op != BH_RPC_SOCKET) {
		s = req_sock(d, a, rq->slot, &sid);
		if (s == NULL) {
			reply_err(d, a, -EBADF);
			return;
		}
	}
	int e;
	switch (rq->op) {
	case BH_RPC_SOCKET: {
		if (rq->a != BH_SOCK_STREAM && rq->a != BH_SOCK_DGRAM) {
			reply_err(d, a, -EPROTONOSUPPORT);
			return;
		}
		uint32_t slot = free_slot(a);
		if (slot == NO_APP) {
			reply_err(d, a, -EMFILE);
			return;
		}
		sid = sid_alloc(d);
		if (sid == 0) {
			reply_err(d, a, -ENFILE);
			return;
		}
		s = &d->s[sid];
		s->udp = rq->a == BH_SOCK_DGRAM;
		s->app = ai;
		s->slot = slot;
		a->slot_sid[slot] = sid;
		a->nused++;
		struct bh_app_slot *sl = &a->slots[slot];
		memset(sl, 0, sizeof(*sl));
		publish(d, s);
		reply_sock(d, a, 0, s);
		return;
	}
	case BH_RPC_BIND:
		if (s->lport) {
			reply_err(d, a, -EINVAL);
			return;
		}
		e = bind_port(d, a, s, rq->addr, rq->port);
		if (e) {
			reply_err(d, a, e);
			return;
		}
		port_set(d, s->udp, s->lport, true);
		if (s->udp) {
			struct bh_ctl c = {.op = BH_CTL_UDP_BIND, .sid = sid, .lport = s->lport};
			bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
			a->waiting = true;
			a->wait_sid = sid;
			a->wait_op = BH_CTL_UDP_BIND;
			return;
		}
		publish(d, s);
		reply_sock(d, a, 0, s);
		return;
	case BH_RPC_LISTEN: {
		if (s->udp || s->connected || s->connecting || s->tcp_has) {
			reply_err(d, a, s->udp ? -EOPNOTSUPP : -EINVAL);
			return;
		}
		if (s->lport == 0) {
			e = bind_port(d, a, s, 0, 0);
			if (e) {
				reply_err(d, a, e);
				return;
			}
			port_set(d, false, s->lport, true);
		}
		struct bh_ctl c = {.lport = s->lport, .arg = rq->a};
		s->backlog = rq->a;
		to_tcp(d, BH_CTL_LISTEN, sid, &c);
		a->waiting = true;
		a->wait_sid = sid;
		a->wait_op = BH_CTL_LISTEN;
		return;
	}
	case BH_RPC_CONNECT: {
		if (s->udp) {
			s->raddr = rq->addr;
			s->rport = rq->port;
			s->connected = rq->addr != 0;
			publish(d, s);
			reply_sock(d, a, 0, s);
			return;
		}
		if (s->connected || s->tcp_has) {
			reply_err(d, a, s->connecting ? -EALREADY : -EISCONN);
			return;
		}
		if (rq->addr == 0 || rq->port == 0) {
			reply_err(d, a, -EADDRNOTAVAIL);
			return;
		}
		struct bh_ctl c = {.raddr = rq->addr, .rport = rq->port, .lport = s->lport};
		to_tcp(d, BH_CTL_CONNECT, sid, &c);
		s->connecting = true;
		s->tcp_has = true;
		s->raddr = rq->addr;
		s->rport = rq->port;
		publish(d, s);
		if (rq->flags & BH_RPC_NONBLOCK) {
			reply_sock(d, a, -EINPROGRESS, s);
			return;
		}
		a->waiting = true;
		a->wait_sid = sid;
		a->wait_op = BH_CTL_CONNECTED;
		return;
	}
	case BH_RPC_ACCEPT: {
		if (!s->listener) {
			reply_err(d, a, -EINVAL);
			return;
		}
		if (s->acc_head == 0) {
			reply_err(d, a, -EAGAIN);
			return;
		}
		uint32_t slot = free_slot(a);
		if (slot == NO_APP) {
			reply_err(d, a, -EMFILE);
			return;
		}
		uint32_t nsid = s->acc_head;
		struct ssock *n = &d->s[nsid];
		s->acc_head = n->acc_next;
		if (s->acc_head == 0)
			s->acc_tail = 0;
		s->accq--;
		n->acc_next = 0;
		n->app = ai;
		n->slot = slot;
		a->slot_sid[slot] = nsid;
		a->nused++;
		memset(&a->slots[slot], 0, sizeof(a->slots[slot]));
		publish(d, s);
		publish(d, n);
		mark(d, nsid);
		reply_sock(d, a, 0, n);
		return;
	}
	case BH_RPC_SHUTDOWN:
		if ((rq->a == SHUT_WR || rq->a == SHUT_RDWR) && !s->udp && !s->shut_wr_pending &&
		    !s->shut_wr_sent) {
			if (!s->connected) {
				reply_err(d, a, -ENOTCONN);
				return;
			}
			s->shut_wr_pending = true;
			s->shut_at = bh_load_acquire32(&a->slots[s->slot].tx_head);
			mark(d, sid);
		}
		publish(d, s);
		reply_err(d, a, 0);
		return;
	case BH_RPC_CLOSE:
		a->slot_busy[rq->slot] = true;
		sock_close(d, sid);
		reply_err(d, a, 0);
		return;
	case BH_RPC_SETOPT: {
		if (s->udp || !s->tcp_has) {
			/* Options before connect are not kept: say so. */
			reply_err(d, a, s->udp ? -ENOPROTOOPT : -ENOTCONN);
			return;
		}
		struct bh_ctl c = {.arg = rq->a, .arg2 = rq->b};
		to_tcp(d, BH_CTL_SETOPT, sid, &c);
		a->waiting = true;
		a->wait_sid = sid;
		a->wait_op = BH_CTL_SETOPT;
		return;
	}
	case BH_RPC_GETNAME:
		reply_sock(d, a, 0, s);
		return;
	default:
		d->st.rpc_bad++;
		reply_err(d, a, -EOPNOTSUPP);
		return;
	}
}

static void app_io(struct sockd *d, uint32_t ai)
{
	struct app *a = &d->apps[ai];
	for (int i = 0; i < 64 && a->used; i++) {
		struct bh_rpc_req rq;
		ssize_t n = recv(a->fd, &rq, sizeof(rq), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			app_detach(d, ai, n == 0 ? "closed its connection" : strerror(errno));
			return;
		}
		if (n < 0)
			return;
		if ((size_t)n != sizeof(rq)) {
			d->st.rpc_bad++;
			reply_err(d, a, -EPROTO);
			continue;
		}
		rpc(d, ai, &rq);
	}
}

/* ------------------------------------------------------------------ */
/* data                                                                 */
/* ------------------------------------------------------------------ */

/* A socket whose application broke its ring contract is reset. */
static void bad_index(struct sockd *d, uint32_t sid, struct ssock *s, const char *what)
{
	d->st.bad_index++;
	bh_log_limited(&d->rl, "application pid %d, socket slot %u: invalid %s; socket reset",
		       (int)d->apps[s->app].pid, s->slot, what);
	s->err = EPROTO;
	s->reset = true;
	if (s->tcp_has && !s->udp)
		to_tcp(d, BH_CTL_ABORT, sid, NULL);
	drop_rxq(d, s, BH_LINK_TS);
	publish(d, s);
}

/* Room in the application's receive ring, checking what it wrote. */
static bool rx_room(struct sockd *d, uint32_t sid, struct ssock *s, uint32_t *room)
{
	struct app *a = &d->apps[s->app];
	uint32_t tail = bh_load_acquire32(&a->slots[s->slot].rx_tail);
	uint32_t used = s->rx_head - tail;
	if (used > a->ring) {
		bad_index(d, sid, s, "rx_tail");
		return false;
	}
	*room = a->ring - used;
	return true;
}

/* Queued data into the application's ring (the copy in). */
static void copy_in(struct sockd *d, uint32_t sid, struct ssock *s)
{
	if (s->app == NO_APP || s->reset)
		return;
	struct app *a = &d->apps[s->app];
	uint32_t room;
	if (!rx_room(d, sid, s, &room))
		return;
	bool moved = false;
	struct bh_chan *ch = d->env->chan[s->udp ? BH_LINK_IS : BH_LINK_TS];
	uint8_t *ring = rx_ring(d, s);
	struct bh_desc *x;
	while ((x = bh_dq_peek(&d->nodes, &s->rxq)) != NULL) {
		if (s->udp) {
			/* A header (aux == UINT32_MAX, the ctl copied into
			 * meta fields) and its pieces. */
			struct bh_ctl c;
			if (!bh_ctl_read(d->env, x, &c)) {
				struct bh_desc b = {.buf = x->buf, .pool = x->pool};
				bh_dq_pop(&d->nodes, &s->rxq, NULL);
				bh_chan_give_back(ch, &b, 1);
				continue;
			}
			uint32_t need = bh_dgram_space(c.len);
			/* One that can never fit the ring is dropped whole
			 * (header and pieces), not left to block the rest. */
			bool fits = need <= a->ring;
			if (fits && need > room)
				break;
			if (fits) {
				struct bh_dgram_hdr h = {.len = c.len, .addr = c.raddr,
							 .port = c.rport};
				bh_ring_put(ring, a->ring, s->rx_head, &h, sizeof(h));
			}
			uint32_t at = s->rx_head + (uint32_t)sizeof(struct bh_dgram_hdr), got = 0;
			struct bh_desc hd = {0};
			bh_dq_pop(&d->nodes, &s->rxq, &hd);
			struct bh_desc b = {.buf = hd.buf, .pool = hd.pool};
			bh_chan_give_back(ch, &b, 1);
			for (uint32_t i = 0; i < c.arg; i++) {
				struct bh_desc p = {0};
				struct bh_desc *nx = bh_dq_peek(&d->nodes, &s->rxq);
				if (nx == NULL || nx->flags != BH_M_DATA)
					break;
				bh_dq_pop(&d->nodes, &s->rxq, &p);
				const uint8_t *src = bh_env_buf(d->env, p.pool, p.buf);
				uint32_t n = p.len;
				if (got + n > c.len)
					n = c.len - got;
				if (fits && src && n)
					bh_ring_put(ring, a->ring, at + got, src + p.off, n);
				got += n;
				struct bh_desc pb = {.buf = p.buf, .pool = p.pool};
				bh_chan_give_back(ch, &pb, 1);
			}
			if (!fits) {
				d->st.udp_too_big++;
				continue;
			}
			s->rx_head += need;
			room -= need;
			d->st.rx_bytes += c.len;
			moved = true;
			continue;
		}
		const uint8_t *src = bh_env_buf(d->env, x->pool, x->buf);
		uint32_t left = x->len - s->head_off;
		uint32_t n = left < room ? left : room;
		if (n == 0 && left)
			break;
		if (src && n)
			bh_ring_put(ring, a->ring, s->rx_head, src + x->off + s->head_off, n);
		s->rx_head += n;
		room -= n;
		s->head_off += n;
		d->st.rx_bytes += n;
		moved = true;
		if (s->head_off == x->len) {
			struct bh_desc b = {.buf = x->buf, .pool = x->pool};
			bh_dq_pop(&d->nodes, &s->rxq, NULL);
			bh_chan_give_back(ch, &b, 1);
			s->head_off = 0;
		}
	}
	bool waiting = bh_dq_peek(&d->nodes, &s->rxq) != NULL;
	if (!waiting && s->eof_pending && !s->eof) {
		s->eof = true;
		moved = true;
	}
	if (moved || waiting != s->rx_wants) {
		s->rx_wants = waiting;
		publish(d, s);
	}
	if (waiting) {
		/* RX_WANTS, then re-read rx_tail (the application stores
		 * rx_tail, then reads RX_WANTS): room made meanwhile is seen
		 * by one of us. */
		bh_full_barrier();
		uint32_t again;
		if (rx_room(d, sid, s, &again) && again > room)
			mark(d, sid);
	}
}

/* The application's send ring into SOCK buffers for tcp (the copy out). */
static void copy_out(struct sockd *d, uint32_t sid, struct ssock *s)
{
	if (s->app == NO_APP || s->reset || (!s->connected && !s->udp))
		return;
	if (d->cq_tcp.head != d->cq_tcp.tail)
		return; /* control messages first: they go in order */
	struct app *a = &d->apps[s->app];
	uint32_t head = bh_load_acquire32(&a->slots[s->slot].tx_head);
	uint32_t avail = head - s->tx_tail;
	if (avail > a->ring) {
		bad_index(d, sid, s, "tx_head");
		return;
	}
	if (s->shut_wr_sent && avail) {
		bad_index(d, sid, s, "tx_head after shutdown");
		return;
	}
	struct bh_pool *pool = &d->env->own;
	uint8_t *ring = tx_ring(d, s);
	bool moved = false;
	while (avail > 0 && s->tx_out < d->tx_budget) {
		uint32_t buf;
		if (bh_pool_alloc(pool, &buf) != 0)
			break;
		uint8_t *dst = bh_pool_buf(pool, buf) + pool->geom.headroom;
		struct bh_desc x = {.buf = buf, .off = (uint16_t)pool->geom.headroom,
				    .pool = BH_POOL_SOCK, .aux = sid};
		uint32_t take;
		int link;
		if (s->udp) {
			struct bh_dgram_hdr h;
			if (avail < sizeof(h)) {
				bh_pool_free(pool, buf);
				bad_index(d, sid, s, "datagram framing");
				return;
			}
			bh_ring_get(&h, ring, a->ring, s->tx_tail, sizeof(h));
			uint32_t need = bh_dgram_space(h.len);
			uint32_t max = d->chunk - (uint32_t)sizeof(struct bh_udp_out);
			if (need > avail || h.len > max) {
				bh_pool_free(pool, buf);
				bad_index(d, sid, s, "datagram length");
				return;
			}
			struct bh_udp_out u = {.sid = sid,
					       .daddr = h.addr ? h.addr : s->raddr,
					       .dport = h.port ? h.port : s->rport,
					       .sport = s->lport};
			memcpy(dst, &u, sizeof(u));
			bh_ring_get(dst + sizeof(u), ring, a->ring, s->tx_tail + (uint32_t)sizeof(h),
				    h.len);
			x.len = (uint16_t)(sizeof(u) + h.len);
			x.flags = BH_M_DGRAM;
			take = need;
			link = BH_LINK_IS;
			d->st.tx_bytes += h.len;
		} else {
			take = avail < d->chunk ? avail : d->chunk;
			bh_ring_get(dst, ring, a->ring, s->tx_tail, take);
			x.len = (uint16_t)take;
			x.flags = BH_M_DATA;
			link = BH_LINK_TS;
			d->st.tx_bytes += take;
		}
		int peer = link == BH_LINK_IS ? BH_DOM_IP : BH_DOM_TCP;
		bh_pool_lend(pool, buf, BH_HOLDER_DOM(peer));
		if (bh_chan_send(d->env->chan[link], &x, 1) != 1) {
			bh_pool_take_back(pool, buf, BH_HOLDER_DOM(peer));
			bh_pool_free(pool, buf);
			break;
		}
		d->buf_sid[buf] = sid;
		if (!s->udp)
			s->tx_out++;
		s->tx_tail += take;
		avail -= take;
		moved = true;
	}
	if (moved)
		publish(d, s);
}

static void service(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sock_of(d, sid);
	if (s == NULL)
		return;
	if (!s->app_closed)
		copy_in(d, sid, s);
	copy_out(d, sid, s);
	if (s->app == NO_APP && !s->app_closed)
		return;
	struct app *a = s->app == NO_APP ? NULL : &d->apps[s->app];
	/* shutdown(SHUT_WR): once everything before it went to tcp. */
	if (s->shut_wr_pending && a && s->tx_tail == s->shut_at && d->cq_tcp.head == d->cq_tcp.tail) {
		s->shut_wr_pending = false;
		s->shut_wr_sent = true;
		to_tcp(d, BH_CTL_SHUTDOWN, sid, NULL);
		publish(d, s);
	}
	if (s->app_closed && a) {
		uint32_t head = bh_load_acquire32(&a->slots[s->slot].tx_head);
		bool drained = head == s->tx_tail || s->reset || s->udp || !s->connected;
		if (drained || head - s->tx_tail > a->ring) {
			/* The slot is the application's again. */
			app_unbind_slot(d, a, s->slot);
			s->app = NO_APP;
			if (s->tcp_has && !s->udp)
				to_tcp(d, s->close_abort ? BH_CTL_ABORT : BH_CTL_CLOSE, sid, NULL);
			else if (s->udp)
				s->tcp_has = false;
			maybe_free(d, sid);
		}
	}
}

/* ------------------------------------------------------------------ */
/* messages from tcp and ip                                             */
/* ------------------------------------------------------------------ */

static void accept_ready(struct sockd *d, uint32_t lsid)
{
	struct ssock *l = sock_of(d, lsid);
	if (l == NULL || !l->listener || l->app_closed)
		return;
	uint32_t nsid = sid_alloc(d);
	if (nsid == 0) {
		bh_log_limited(&d->rl, "socket table full: connection on port %u not accepted",
			       l->lport);
		return;
	}
	struct ssock *n = &d->s[nsid];
	n->parent = lsid;
	n->tcp_has = true;
	struct bh_ctl c = {.arg = lsid};
	to_tcp(d, BH_CTL_ACCEPT, nsid, &c);
}

static void ctl_from_tcp(struct sockd *d, const struct bh_ctl *c)
{
	struct ssock *s = sock_of(d, c->sid);
	if (s == NULL || s->udp) {
		d->st.bad_sid++;
		return;
	}
	uint32_t sid = c->sid;
	switch (c->op) {
	case BH_CTL_RESULT:
		if (c->arg == BH_CTL_LISTEN) {
			if (c->err == 0) {
				s->listener = true;
				s->tcp_has = true;
			} else {
				port_set(d, false, s->lport, false);
				s->lport = 0;
			}
			publish(d, s);
			answer(d, sid, BH_CTL_LISTEN, -c->err);
		} else if (c->arg == BH_CTL_CONNECT) {
			if (c->err) {
				s->connecting = false;
				s->tcp_has = false;
				s->err = c->err;
				publish(d, s);
				answer(d, sid, BH_CTL_CONNECTED, -c->err);
			} else {
				s->laddr = c->laddr;
				s->lport = c->lport;
				publish(d, s);
			}
		} else if (c->arg == BH_CTL_ACCEPT) {
			/* The connection went before we took it. */
			s->tcp_has = false;
			maybe_free(d, sid);
		} else if (c->arg == BH_CTL_SETOPT) {
			answer(d, sid, BH_CTL_SETOPT, -c->err);
		}
		break;
	case BH_CTL_CONNECTED:
		s->connecting = false;
		s->connected = true;
		s->laddr = c->laddr;
		s->lport = c->lport;
		s->raddr = c->raddr;
		s->rport = c->rport;
		publish(d, s);
		answer(d, sid, BH_CTL_CONNECTED, 0);
		mark(d, sid);
		break;
	case BH_CTL_ACCEPTABLE:
		accept_ready(d, sid);
		break;
	case BH_CTL_ACCEPTED: {
		s->connected = true;
		s->laddr = c->laddr;
		s->lport = c->lport;
		s->raddr = c->raddr;
		s->rport = c->rport;
		struct ssock *l = sock_of(d, s->parent);
		if (l == NULL || !l->listener || l->app_closed) {
			/* Its listener is gone: reset, as for those in the
			 * accept queue when it closed. */
			s->app_closed = true;
			to_tcp(d, BH_CTL_ABORT, sid, NULL);
			break;
		}
		if (l->acc_tail)
			d->s[l->acc_tail].acc_next = sid;
		else
			l->acc_head = sid;
		l->acc_tail = sid;
		l->accq++;
		publish(d, l);
		break;
	}
	case BH_CTL_EOF:
		s->eof_pending = true;
		mark(d, sid);
		break;
	case BH_CTL_ERROR:
		s->err = c->err ? c->err : ECONNRESET;
		s->reset = true;
		s->connecting = false;
		drop_rxq(d, s, BH_LINK_TS);
		publish(d, s);
		answer(d, sid, BH_CTL_CONNECTED, -s->err);
		break;
	case BH_CTL_CLOSED:
		s->tcp_has = false;
		if (!s->app_closed && !s->eof_pending) {
			s->reset = true;
			if (!s->err && s->connecting)
				s->err = ECONNREFUSED;
		}
		s->connecting = false;
		publish(d, s);
		answer(d, sid, BH_CTL_CONNECTED, -(s->err ? s->err : ECONNRESET));
		mark(d, sid);
		maybe_free(d, sid);
		break;
	default:
		d->st.bad_desc++;
		break;
	}
}

static void from_tcp(struct sockd *d, const struct bh_desc *x, unsigned n)
{
	struct bh_chan *ch = d->env->chan[BH_LINK_TS];
	for (unsigned i = 0; i < n; i++) {
		if (x[i].flags == BH_M_DATA && x[i].pool == BH_POOL_RX) {
			struct ssock *s = sock_of(d, x[i].aux);
			if (s == NULL || s->udp || s->reset || s->app_closed ||
			    !bh_dq_push(&d->nodes, &s->rxq, &x[i])) {
				if (s == NULL)
					d->st.bad_sid++;
				struct bh_desc b = {.buf = x[i].buf, .pool = x[i].pool};
				bh_chan_give_back(ch, &b, 1);
				continue;
			}
			mark(d, x[i].aux);
			continue;
		}
		struct bh_ctl c;
		if (x[i].flags == BH_M_CTL && bh_ctl_read(d->env, &x[i], &c))
			ctl_from_tcp(d, &c);
		else
			d->st.bad_desc++;
		bh_chan_give_back(ch, &x[i], 1);
	}
}

static void give_back_is(struct sockd *d, const struct bh_desc *x)
{
	struct bh_desc b = {.buf = x->buf, .pool = x->pool};
	bh_chan_give_back(d->env->chan[BH_LINK_IS], &b, 1);
}

/* UDP from ip: a header message (BH_CTL_DGRAM, arg = pieces), then its
 * pieces, possibly across batches. */
static void from_ip(struct sockd *d, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].flags == BH_M_DATA && d->udp_want) {
			struct ssock *s = sock_of(d, d->udp_sid);
			d->udp_want--;
			if (s && x[i].aux == d->udp_sid && bh_dq_push(&d->nodes, &s->rxq, &x[i]))
				continue;
			give_back_is(d, &x[i]);
			continue;
		}
		if (d->udp_want) {
			/* A datagram cut short: what came of it stays queued
			 * and copy_in stops at the next header. */
			d->udp_want = 0;
			d->st.bad_desc++;
		}
		struct bh_ctl c;
		if (x[i].flags != BH_M_CTL || !bh_ctl_read(d->env, &x[i], &c)) {
			d->st.bad_desc++;
			give_back_is(d, &x[i]);
			continue;
		}
		struct ssock *s = sock_of(d, c.sid);
		if (c.op == BH_CTL_DGRAM) {
			if (c.arg == 0 || c.arg > BH_IP_MAX_PIECES) {
				d->st.bad_desc++;
				give_back_is(d, &x[i]);
				continue;
			}
			d->udp_want = c.arg;
			d->udp_sid = c.sid;
			struct bh_desc h = x[i];
			h.aux = UINT32_MAX;
			if (s && s->udp && !s->app_closed && bh_dq_push(&d->nodes, &s->rxq, &h)) {
				mark(d, c.sid);
				continue;
			}
			d->udp_sid = 0; /* its pieces go home */
			d->st.bad_sid++;
			give_back_is(d, &x[i]);
			continue;
		}
		if (c.op == BH_CTL_RESULT && s && s->udp) {
			if (c.err) {
				port_set(d, true, s->lport, false);
				s->lport = 0;
			}
			publish(d, s);
			answer(d, c.sid, BH_CTL_UDP_BIND, -c.err);
		} else {
			d->st.bad_desc++;
		}
		give_back_is(d, &x[i]);
	}
}

static int reclaim(struct sockd *d, int link, int peer)
{
	struct bh_desc x[BATCH];
	unsigned n = bh_env_reclaim(d->env, link, x, BATCH);
	for (unsigned i = 0; i < n; i++) {
		if (bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(peer)) != 0)
			continue;
		uint32_t sid = d->buf_sid[x[i].buf];
		d->buf_sid[x[i].buf] = 0;
		bh_pool_free(&d->env->own, x[i].buf);
		struct ssock *s = sock_of(d, sid);
		if (s && link == BH_LINK_TS && s->tx_out) {
			s->tx_out--;
			mark(d, sid);
			if (s->tx_out == 0)
				maybe_free(d, sid);
		}
	}
	return n != 0;
}

/* ------------------------------------------------------------------ */
/* the domain                                                           */
/* ------------------------------------------------------------------ */

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
	d->chunk = p->pools.g[BH_POOL_SOCK].buf_size - p->pools.g[BH_POOL_SOCK].headroom;
	if (d->chunk > 4096)
		d->chunk = 4096;
	d->tx_budget = p->tcp_buf / d->chunk + 1;
	d->s = calloc(d->nsocks, sizeof(*d->s));
	d->dirty = calloc(d->nsocks, sizeof(*d->dirty));
	d->apps = calloc(d->napps, sizeof(*d->apps));
	d->buf_sid = calloc(p->pools.g[BH_POOL_SOCK].nbufs, sizeof(*d->buf_sid));
	uint32_t nodes = p->pools.g[BH_POOL_RX].nbufs + p->pools.g[BH_POOL_IP].nbufs;
	if (d->s == NULL || d->dirty == NULL || d->apps == NULL || d->buf_sid == NULL ||
	    bh_dq_nodes_init(&d->nodes, nodes) || bh_ctlq_init(&d->cq_tcp, 4 * d->nsocks) ||
	    bh_ctlq_init(&d->cq_ip, d->nsocks)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (env->apps_fd < 0) {
		snprintf(err, errlen, "no application socket was handed over");
		return -EBADF;
	}
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = NO_APP};
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

static int outside_io(struct sockd *d, uint64_t now, uint32_t badges)
{
	uint64_t wakes = __atomic_load_n(&d->poller.wakes, __ATOMIC_ACQUIRE);
	if (!(badges & BH_BADGE_IO) && wakes == d->seen_wakes && now - d->last_io_ns < 1000000u)
		return 0;
	d->seen_wakes = wakes;
	d->last_io_ns = now;
	struct epoll_event ev[32];
	int n = epoll_wait(d->epfd, ev, 32, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u32 == NO_APP)
			apps_accept(d);
		else if (ev[i].data.u32 < d->napps && d->apps[ev[i].data.u32].used)
			app_io(d, ev[i].data.u32);
	}
	return n > 0;
}

/* Slots the applications touched (their dirty bits). */
static void app_dirty(struct sockd *d)
{
	for (uint32_t ai = 0; ai < d->napps; ai++) {
		struct app *a = &d->apps[ai];
		if (!a->used || a->region.base == NULL)
			continue;
		uint32_t words = a->nslots / 32 + 1;
		if (bh_xchg32(&a->dirty[words], 0) == 0)
			continue;
		for (uint32_t w = 0; w < words; w++) {
			uint32_t bits = bh_load_relaxed32(&a->dirty[w]) ? bh_xchg32(&a->dirty[w], 0) : 0;
			while (bits) {
				uint32_t b = (uint32_t)__builtin_ctz(bits);
				bits &= bits - 1;
				uint32_t slot = w * 32 + b;
				if (slot < a->nslots && a->slot_sid[slot])
					mark(d, a->slot_sid[slot]);
			}
		}
	}
}

static int sockd_poll(void *self, uint64_t now, uint32_t badges)
{
	struct sockd *d = self;
	int progress = outside_io(d, now, badges);
	progress |= reclaim(d, BH_LINK_TS, BH_DOM_TCP);
	progress |= reclaim(d, BH_LINK_IS, BH_DOM_IP);
	struct bh_desc x[BATCH];
	unsigned n = bh_chan_recv(d->env->chan[BH_LINK_TS], x, bh_rt_batch);
	from_tcp(d, x, n);
	progress |= n != 0;
	n = bh_chan_recv(d->env->chan[BH_LINK_IS], x, bh_rt_batch);
	from_ip(d, x, n);
	progress |= n != 0;
	app_dirty(d);
	for (uint32_t i = 0; i < d->ndirty; i++) {
		uint32_t sid = d->dirty[i];
		if (sid < d->nsocks)
			d->s[sid].dirty = false;
		service(d, sid);
	}
	if (d->ndirty)
		progress = 1;
	d->ndirty = 0;
	if (d->cq_tcp.head != d->cq_tcp.tail)
		bh_ctlq_flush(d->env, &d->cq_tcp, BH_LINK_TS);
	if (d->cq_ip.head != d->cq_ip.tail)
		bh_ctlq_flush(d->env, &d->cq_ip, BH_LINK_IS);
	for (uint32_t ai = 0; ai < d->napps; ai++) {
		struct app *a = &d->apps[ai];
		while (a->used && a->owe) {
			int i = __builtin_ctzll(a->owe);
			a->owe &= a->owe - 1;
			d->st.app_signals++;
			bh_ntfn_signal(&a->ntfn[i], 1, &a->nstats);
		}
	}
	return progress;
}

static uint64_t sockd_deadline(void *self)
{
	(void)self;
	return UINT64_MAX;
}

static bool sockd_arm(void *self)
{
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
	bh_stats_add(w, "", "apps_attached", d->st.apps_attached);
	bh_stats_add(w, "", "apps_detached", d->st.apps_detached);
	bh_stats_add(w, "", "apps_refused", d->st.apps_refused);
	bh_stats_add(w, "", "requests", d->st.rpcs);
	bh_stats_add(w, "", "requests_bad", d->st.rpc_bad);
	bh_stats_add(w, "", "app_bad_index", d->st.bad_index);
	bh_stats_add(w, "", "bad_desc", d->st.bad_desc);
	bh_stats_add(w, "", "bad_sid", d->st.bad_sid);
	bh_stats_add(w, "", "rx_bytes", d->st.rx_bytes);
	bh_stats_add(w, "", "tx_bytes", d->st.tx_bytes);
	bh_stats_add(w, "", "low_port_denied", d->st.low_port_denied);
	bh_stats_add(w, "", "udp_too_big", d->st.udp_too_big);
	bh_stats_add(w, "", "app_signals", d->st.app_signals);
	bh_stats_add(w, "", "ctl_lost", d->cq_tcp.overflow + d->cq_ip.overflow);
	bh_stats_add(w, "poller.", "wakes", __atomic_load_n(&d->poller.wakes, __ATOMIC_RELAXED));
}

static void sockd_fini(void *self)
{
	struct sockd *d = self;
	bh_poller_stop(&d->poller);
	for (uint32_t i = 0; d->apps && i < d->napps; i++)
		if (d->apps[i].used)
			app_detach(d, i, "stopping");
	if (d->epfd > 0)
		close(d->epfd);
	bh_ctlq_fini(&d->cq_tcp);
	bh_ctlq_fini(&d->cq_ip);
	bh_dq_nodes_fini(&d->nodes);
	free(d->s);
	free(d->dirty);
	free(d->apps);
	free(d->buf_sid);
}

/* tcp was replaced: every connection it carried is gone (the new tcp
 * knows none of them). Each ends as a reset would end it, ECONNRESET to
 * its application; its unaccepted children go; listeners listen again,
 * so new connections work at once. Its SOCK buffers are recover.c's. */
static void tcp_replaced(struct sockd *d)
{
	unsigned conns = 0, listeners = 0;
	d->cq_tcp.tail = d->cq_tcp.head;
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct ssock *s = &d->s[sid];
		if (!s->used || s->udp)
			continue;
		s->tx_out = 0;
		if (s->listener && !s->app_closed) {
			for (uint32_t c = s->acc_head; c; c = d->s[c].acc_next) {
				d->s[c].app_closed = true;
				d->s[c].tcp_has = false;
			}
			for (uint32_t c = s->acc_head, next; c; c = next) {
				next = d->s[c].acc_next;
				maybe_free(d, c);
			}
			s->acc_head = s->acc_tail = 0;
			s->accq = 0;
			s->tcp_has = false;
			struct bh_ctl c = {.lport = s->lport, .arg = s->backlog};
			to_tcp(d, BH_CTL_LISTEN, sid, &c);
			publish(d, s);
			listeners++;
			continue;
		}
		if (!s->tcp_has && !s->connecting)
			continue;
		if (s->connected && s->rport) {
			/* The new tcp knows nothing of it; its peer may be
			 * waiting in silence: have it reset. */
			struct bh_ctl c = {.laddr = s->laddr, .lport = s->lport, .raddr = s->raddr,
					   .rport = s->rport};
			to_tcp(d, BH_CTL_LOST, 0, &c);
		}
		if (!s->app_closed && !s->eof_pending)
			s->reset = true;
		if (!s->err)
			s->err = ECONNRESET;
		s->connecting = false;
		s->tcp_has = false;
		drop_rxq(d, s, BH_LINK_TS);
		publish(d, s);
		answer(d, sid, BH_CTL_CONNECTED, -s->err);
		mark(d, sid);
		maybe_free(d, sid);
		conns++;
	}
	bh_logf("tcp replaced: %u connections reset (ECONNRESET), %u listeners listening again",
		conns, listeners);
}

/* ip was replaced: it lost the UDP bindings; bind again what is bound.
 * Datagrams already here stay (their buffers go home as usual). */
static void ip_replaced(struct sockd *d)
{
	unsigned n = 0;
	d->cq_ip.tail = d->cq_ip.head;
	d->udp_want = 0;
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct ssock *s = &d->s[sid];
		if (!s->used || !s->udp || !s->lport || s->app_closed)
			continue;
		struct bh_ctl c = {.op = BH_CTL_UDP_BIND, .sid = sid, .lport = s->lport};
		bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
		n++;
	}
	bh_logf("ip replaced: %u UDP ports bound again", n);
}

static void sockd_peer_reset(void *self, int link)
{
	struct sockd *d = self;
	if (link == BH_LINK_TS)
		tcp_replaced(d);
	else if (link == BH_LINK_IS)
		ip_replaced(d);
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
