/*
 * domains/tcp_domain.c - the TCP domain: the TCP library (tcp/tcp.h), its timers
 * and connection table, between ip below and the socket server above.
 *
 *   link IT   segments in: the first piece (BH_M_SEG, meta = pieces and
 *             whether the link vouched for the checksum, aux = source)
 *             and the rest (BH_M_MORE) become one
 *             bh_ip_rx; ICMP reports (BH_M_IPEVENT); segments out, one
 *             SEG buffer each (a send chain names SOCK buffers, pinned
 *             until it comes home: tcp_pins.h)
 *   link TS   sockets by id (sid, chosen by sock, 1..max_socks-1):
 *             control messages both ways (domains/proto.h); data from
 *             applications (SOCK buffers, held by the library until
 *             acknowledged, then given back); data for applications (the
 *             received buffers themselves, as many as the per-socket
 *             budget allows, zero copy)
 *
 * The library's cookie for a connection or listener is its sid (0 for a
 * connection not yet accepted). Library events only mark work; the work
 * is done after the library call returns (no re-entry). The state is in
 * tcp_priv.h; what the domain publishes, in tcp_stats.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domains/marks.h"
#include "domains/recover.h"
#include "domains/tcp_priv.h"

#define BATCH BH_RT_BATCH
#define PUMP 32u
#define SID_BITS 20
#define GEN_MASK 0xfffu

static struct tsock *sock_of(struct tcpd *d, uint32_t sid)
{
	if (sid == 0 || sid >= d->nsocks || !d->s[sid].used)
		return NULL;
	return &d->s[sid];
}

static void mark(struct tcpd *d, uint32_t sid)
{
	struct tsock *t = sock_of(d, sid);
	if (t && !t->dirty) {
		t->dirty = true;
		d->dirty[d->ndirty++] = sid;
	}
}

/* The library refused t's data for memory (-ENOBUFS, not the
 * connection's own buffer): wait with the others until memory frees. */
static void wait_nomem(struct tcpd *d, uint32_t sid)
{
	d->nomem_at = bh_tcp_mem_used(d->tcp);
	d->st.nomem_waits++;
	bh_wl_add(&d->nomem, sid);
}

static void mark_cb(void *ctx, uint32_t sid)
{
	mark(ctx, sid);
}

/* Less memory held than at the last refusal: every waiting socket is
 * pumped again (and waits again if refused again). */
static void wake_nomem(struct tcpd *d)
{
	if (d->nomem.n && bh_tcp_mem_used(d->tcp) < d->nomem_at)
		bh_wl_drain(&d->nomem, mark_cb, d);
}

/* Received data stopped at the link to sock (full, or control messages
 * first). */
static void wait_link(struct tcpd *d, uint32_t sid)
{
	d->st.rx_blocked++;
	bh_wl_add(&d->blocked, sid);
}

/* A control message for sock, with the connection's addresses. */
static void ctl_ex(struct tcpd *d, uint16_t op, uint32_t sid, int err, uint32_t arg)
{
	if (d->sock_gone)
		return;
	struct bh_ctl c = {.op = op, .sid = sid, .err = err, .arg = arg};
	struct tsock *t = sock_of(d, sid);
	struct bh_tcp_info info;
	if (t && !t->gone && bh_tcp_info(d->tcp, t->conn, &info) == 0) {
		c.laddr = info.local;
		c.raddr = info.remote;
		c.lport = info.lport;
		c.rport = info.rport;
	}
	bh_ctl_send(d->env, &d->cq, BH_LINK_TS, &c);
}

static void ctl(struct tcpd *d, uint16_t op, uint32_t sid, int err)
{
	ctl_ex(d, op, sid, err, 0);
}

/* The answer to request `op`. */
static void result(struct tcpd *d, uint32_t sid, uint16_t op, int err)
{
	ctl_ex(d, BH_CTL_RESULT, sid, err, op);
}

static void give_back_sock(struct tcpd *d, const struct bh_desc *x)
{
	struct bh_desc b = {.buf = x->buf, .pool = x->pool};
	bh_chan_give_back(d->env->chan[BH_LINK_TS], &b, 1);
}

static void give_back_ip(struct tcpd *d, uint8_t pool, uint32_t buf)
{
	struct bh_desc b = {.buf = buf, .pool = pool};
	bh_chan_give_back(d->env->chan[BH_LINK_IT], &b, 1);
}

/* Forgets a socket: its waiting data goes home. */
static void sock_free(struct tcpd *d, uint32_t sid)
{
	struct tsock *t = &d->s[sid];
	struct bh_desc x = {0};
	while (bh_dq_pop(&d->nodes, &t->pend_tx, &x))
		give_back_sock(d, &x);
	while (bh_dq_pop(&d->nodes, &t->pend_rx, &x))
		give_back_ip(d, x.pool, x.buf);
	t->used = false;
	t->gen++;
}

/* --- library callbacks --- */

static bool op_alloc(void *ctx, struct bh_pkt *out)
{
	struct tcpd *d = ctx;
	uint32_t buf;
	if (bh_pool_alloc(&d->env->own, &buf) != 0)
		return false;
	const struct bh_pool_geom *g = &d->env->own.geom;
	*out = (struct bh_pkt){.base = bh_pool_buf(&d->env->own, buf),
			       .size = g->buf_size,
			       .off = g->headroom,
			       .handle = bh_handle(BH_POOL_SEG, buf),
			       .writable = true};
	return true;
}

static void op_release(void *ctx, const struct bh_pkt *p)
{
	struct tcpd *d = ctx;
	uint8_t pool = bh_handle_pool(p->handle);
	uint32_t buf = bh_handle_buf(p->handle);
	struct bh_desc x = {.buf = buf, .pool = pool};
	if (pool == BH_POOL_SEG) {
		bh_pool_free(&d->env->own, buf);
	} else if (pool == BH_POOL_SOCK) {
		if (d->chains && bh_pins_park(&d->pins, buf))
			return; /* goes home with its last segment (seg_home) */
		give_back_sock(d, &x);
	} else {
		give_back_ip(d, pool, buf);
	}
}

static void sock_back(void *ctx, uint32_t sock)
{
	struct bh_desc x = {.buf = sock, .pool = BH_POOL_SOCK};
	give_back_sock(ctx, &x);
}

/* A SEG buffer is home (bh_pool_free, whatever brought it back): the
 * SOCK buffers its chain named are free to go once nothing else names
 * them. */
static void seg_home(void *ctx, uint32_t buf)
{
	struct tcpd *d = ctx;
	bh_pins_home(&d->pins, buf, sock_back, d);
}

static void op_output(void *ctx, const struct bh_pkt *seg, bh_ip4 dst)
{
	struct tcpd *d = ctx;
	uint32_t buf = bh_handle_buf(seg->handle);
	const struct bh_pool_geom *g = &d->env->own.geom;
	if (seg->chain &&
	    (!d->chains || !bh_pins_record(&d->pins, buf,
					   bh_pool_buf(&d->env->own, buf) + bh_chain_at(g->buf_size),
					   BH_POOL_SOCK))) {
		d->st.chain_bad++;
		bh_pool_free(&d->env->own, buf);
		return;
	}
	struct bh_desc x = {.buf = buf,
			    .off = (uint16_t)seg->off,
			    .len = (uint16_t)seg->len,
			    .pool = BH_POOL_SEG,
			    .flags = seg->chain ? BH_M_SEG_CHAIN : BH_M_SEG,
			    .meta = (uint16_t)((seg->csum == BH_CSUM_PARTIAL ? BH_DESC_CSUM_PARTIAL : 0) |
					       (seg->gso << BH_DESC_GSO_SHIFT)),
			    .aux = dst};
	bh_pool_lend(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_IP));
	if (bh_chan_send(d->env->chan[BH_LINK_IT], &x, 1) == 1)
		return;
	d->st.out_ring_full++;
	bh_pool_take_back(&d->env->own, buf, BH_HOLDER_DOM(BH_DOM_IP));
	bh_pool_free(&d->env->own, buf);
}

static void op_event(void *ctx, const struct bh_tcp_event *ev)
{
	struct tcpd *d = ctx;
	uint32_t sid = (uint32_t)ev->cookie;
	struct tsock *t = sock_of(d, sid);
	if (t == NULL)
		return; /* a connection not yet accepted */
	switch (ev->type) {
	case BH_TCP_EV_CONNECTED:
		ctl(d, BH_CTL_CONNECTED, sid, 0);
		break;
	case BH_TCP_EV_ACCEPTABLE:
		ctl(d, BH_CTL_ACCEPTABLE, sid, 0);
		break;
	case BH_TCP_EV_READABLE:
	case BH_TCP_EV_WRITABLE:
		mark(d, sid);
		break;
	case BH_TCP_EV_ERROR:
		ctl(d, BH_CTL_ERROR, sid, ev->err);
		mark(d, sid);
		break;
	case BH_TCP_EV_CLOSED:
		t->gone = true;
		ctl(d, BH_CTL_CLOSED, sid, 0);
		sock_free(d, sid);
		break;
	}
}

static const struct bh_tcp_ops tcp_ops = {
    .alloc = op_alloc,
    .release = op_release,
    .output = op_output,
    .event = op_event,
};

/* --- the domain --- */

/* Receive-buffer auto-tuning's bound (tcp/rcvbuf.c): four times the
 * starting buffer, and no more than lets one connection's receive
 * memory bound (BH_TCP_RCV_MEM: twice the buffer, and 64 KiB) pin a
 * quarter of the RX pool's bytes, the buffers this domain holds while
 * the IP domain still needs free ones for everybody else's frames:
 * 1 MiB grows to about 2 MiB with MTU frames (a 16 MiB pool), 4 MiB to
 * 16 MiB with large ones (128 MiB). */
static uint32_t tcp_rcv_buf_max(const struct bh_plan *p)
{
	const struct bh_pool_geom *rx = &p->pools.g[BH_POOL_RX];
	uint64_t quarter = (uint64_t)rx->nbufs * rx->buf_size / 4;
	uint64_t cap = quarter > 65536 ? (quarter - 65536) / 2 : 0;
	uint64_t want = 4ull * p->tcp_buf;
	if (want > cap)
		want = cap;
	if (want > (1u << 30))
		want = 1u << 30;
	return want < p->tcp_buf ? p->tcp_buf : (uint32_t)want;
}

static int tcpd_init(void *self, struct bh_env *env, char *err, size_t errlen)
{
	struct tcpd *d = self;
	const struct bh_plan *p = env->plan;
	d->env = env;
	env->track = &d->tr;
	d->nsocks = p->max_socks;
	d->rx_budget = p->tcp_buf / 1024u;
	if (d->rx_budget < 16)
		d->rx_budget = 16;
	d->s = calloc(d->nsocks, sizeof(*d->s));
	d->dirty = calloc(bh_marks_cap(d->nsocks), sizeof(*d->dirty));
	uint32_t nodes = p->pools.g[BH_POOL_SOCK].nbufs + p->pools.g[BH_POOL_RX].nbufs;
	if (d->s == NULL || d->dirty == NULL || bh_wl_init(&d->nomem, d->nsocks) ||
	    bh_wl_init(&d->blocked, d->nsocks) ||
	    bh_dq_nodes_init(&d->nodes, nodes) ||
	    bh_track_init(&d->tr, &p->pools, 1u << BH_POOL_RX) ||
	    bh_ctlq_init(&d->cq, 4 * d->nsocks)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < d->nsocks; i++) {
		bh_dq_init(&d->s[i].pend_tx);
		bh_dq_init(&d->s[i].pend_rx);
	}
	struct bh_tcp_config cfg = {
	    .addr = p->addr,
	    .mss = (uint16_t)(p->mtu - 40),
	    .conns = p->max_socks,
	    .segs = p->pools.g[BH_POOL_RX].nbufs + p->pools.g[BH_POOL_SOCK].nbufs,
	    .rcv_buf = p->tcp_buf,
	    .rcv_buf_max = tcp_rcv_buf_max(p),
	    .snd_buf = p->tcp_buf,
	    .secret = {p->secret[2], p->secret[3]},
	    /* wire: may carry partial checksums (drivers/shmlink.c), which
	     * completes them where the other end does not take them. */
	    .csum_offload = bh_plan_csum_offload(p),
	    .seg_max = bh_plan_large_frames(p) ? BH_LARGE_SEG(p) - BH_TCP_MAX_HLEN : 0,
	};
	/* $BULKHEAD_TCP_MEM: the library's total memory bound in bytes
	 * (default 64 MiB), for tests that reach it with few sockets. */
	const char *mem = getenv("BULKHEAD_TCP_MEM");
	if (mem && *mem) {
		unsigned long long m = strtoull(mem, NULL, 10);
		cfg.mem = m < 65536 ? 65536 : m;
	}
	/* $BULKHEAD_TCP_RCVBUF_MAX: auto-tuning's bound in bytes, for
	 * measuring with it off (the starting buffer, or anything below it)
	 * or further. */
	const char *rmax = getenv("BULKHEAD_TCP_RCVBUF_MAX");
	if (rmax && *rmax) {
		unsigned long long m = strtoull(rmax, NULL, 10);
		cfg.rcv_buf_max = m < cfg.rcv_buf ? cfg.rcv_buf : m > (1u << 30) ? 1u << 30 : (uint32_t)m;
	}
	d->vouch_ok = bh_plan_csum_offload(p);
	if (bh_plan_send_chain(p)) {
		if (bh_pins_init(&d->pins, p->pools.g[BH_POOL_SEG].nbufs,
				 p->pools.g[BH_POOL_SOCK].nbufs)) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		d->chains = true;
		env->own.on_free = seg_home;
		env->own.on_free_ctx = d;
		cfg.send_chain = true;
		if (env->restarted) {
			env->rec_hold = 1u << BH_POOL_SOCK;
			d->chain_hold = true;
			d->hold_settled = UINT64_MAX; /* look once, whatever happens */
		}
	}
	const char *why = NULL;
	d->tcp = bh_tcp_create(&cfg, &tcp_ops, d, &why);
	if (d->tcp == NULL) {
		snprintf(err, errlen, "tcp: %s", why ? why : "cannot create");
		return -EINVAL;
	}
	return 0;
}

static struct bh_pkt pkt_of(struct tcpd *d, const struct bh_desc *x)
{
	const struct bh_pool_geom *g = &d->env->plan->pools.g[x->pool];
	return (struct bh_pkt){.base = (uint8_t *)d->env->view[x->pool] +
				       (size_t)x->buf * g->buf_size,
			       .size = g->buf_size,
			       .off = x->off,
			       .len = x->len,
			       .handle = bh_handle(x->pool, x->buf)};
}

static void drop_partial(struct tcpd *d)
{
	for (unsigned i = 0; i < d->rx.npieces; i++)
		give_back_ip(d, bh_handle_pool(d->rx.piece[i].handle),
			     bh_handle_buf(d->rx.piece[i].handle));
	d->rx.npieces = 0;
	d->rx_want = 0;
	d->st.bad_segment++;
}

static void from_ip(struct tcpd *d, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].flags == BH_M_IPEVENT && x[i].pool == BH_POOL_IP &&
		    x[i].len >= sizeof(struct bh_ip_event)) {
			struct bh_ip_event ev;
			memcpy(&ev, bh_env_buf(d->env, x[i].pool, x[i].buf) + x[i].off, sizeof(ev));
			give_back_ip(d, x[i].pool, x[i].buf);
			bh_tcp_ip_event(d->tcp, d->now_us, &ev);
			continue;
		}
		if (x[i].pool != BH_POOL_RX || (x[i].flags != BH_M_SEG && x[i].flags != BH_M_MORE)) {
			d->st.bad_desc++;
			give_back_ip(d, x[i].pool, x[i].buf);
			continue;
		}
		if (x[i].flags == BH_M_SEG) {
			if (d->rx_want)
				drop_partial(d);
			uint16_t pieces = x[i].meta & BH_DESC_SEG_PIECES;
			if (pieces == 0 || pieces > BH_IP_MAX_PIECES) {
				d->st.bad_segment++;
				give_back_ip(d, x[i].pool, x[i].buf);
				continue;
			}
			d->rx.proto = BH_IPPROTO_TCP;
			d->rx.cast = BH_IP_UNICAST;
			d->rx.src = x[i].aux;
			d->rx.dst = d->env->plan->addr;
			d->rx.len = 0;
			d->rx.npieces = 0;
			d->rx.csum_valid = d->vouch_ok && (x[i].meta & BH_DESC_SEG_CSUM_VALID);
			d->rx_want = pieces;
		} else if (d->rx_want == 0) {
			d->st.bad_segment++;
			give_back_ip(d, x[i].pool, x[i].buf);
			continue;
		}
		d->rx.piece[d->rx.npieces++] = pkt_of(d, &x[i]);
		d->rx.len += x[i].len;
		if (d->rx.npieces == d->rx_want) {
			d->rx_want = 0;
			bh_tcp_input(d->tcp, d->now_us, &d->rx);
			d->rx.npieces = 0;
		}
	}
}

/* Data from an application: to the library, or to wait for room. */
static void data_from_sock(struct tcpd *d, const struct bh_desc *x)
{
	struct tsock *t = sock_of(d, x->aux);
	if (t == NULL || t->listener || t->gone || t->shut_pending || t->close_pending) {
		if (t == NULL)
			d->st.bad_sid++;
		d->st.data_dropped++;
		give_back_sock(d, x);
		return;
	}
	if (t->pend_tx.n == 0) {
		struct bh_pkt p = pkt_of(d, x);
		int r = bh_tcp_send(d->tcp, d->now_us, t->conn, &p);
		if (r == 0)
			return;
		if (r != -EAGAIN && r != -ENOBUFS) {
			d->st.data_dropped++;
			give_back_sock(d, x);
			return;
		}
		if (r == -ENOBUFS)
			wait_nomem(d, x->aux);
	}
	if (!bh_dq_push(&d->nodes, &t->pend_tx, x)) {
		d->st.dq_full++;
		give_back_sock(d, x);
	}
}

static void ctl_from_sock(struct tcpd *d, const struct bh_ctl *c)
{
	if (c->op == BH_CTL_LOST) {
		/* Untrusted like everything from sock: the library checks
		 * the tuple; at worst a stray ACK goes out. */
		if (c->laddr == d->env->plan->addr && d->nlost < sizeof(d->lost) / sizeof(d->lost[0]))
			d->lost[d->nlost++] = *c;
		return;
	}
	uint32_t sid = c->sid;
	if (sid == 0 || sid >= d->nsocks) {
		d->st.bad_sid++;
		return;
	}
	struct tsock *t = &d->s[sid];
	int r;
	switch (c->op) {
	case BH_CTL_LISTEN:
	case BH_CTL_CONNECT:
	case BH_CTL_ACCEPT: {
		if (t->used) {
			d->st.bad_sid++;
			result(d, sid, c->op, EBUSY);
			return;
		}
		bh_tcp_conn h = 0;
		if (c->op == BH_CTL_LISTEN) {
			r = bh_tcp_listen(d->tcp, c->lport, c->arg ? c->arg : 128, sid, &h);
		} else if (c->op == BH_CTL_CONNECT) {
			r = bh_tcp_connect(d->tcp, d->now_us, c->raddr, c->rport, c->lport, sid, &h);
		} else {
			struct tsock *l = sock_of(d, c->arg);
			r = l && l->listener ? bh_tcp_accept(d->tcp, l->conn, sid, &h) : -EINVAL;
		}
		if (r == 0) {
			t->used = true;
			t->listener = c->op == BH_CTL_LISTEN;
			t->eof_sent = t->shut_pending = t->close_pending = t->gone = false;
			t->dirty = false;
			t->conn = h;
			t->rx_out = 0;
		}
		if (c->op == BH_CTL_ACCEPT && r == 0) {
			ctl(d, BH_CTL_ACCEPTED, sid, 0);
			mark(d, sid); /* data may have come before the accept */
		} else {
			result(d, sid, c->op, -r);
		}
		return;
	}
	default:
		break;
	}
	if (!t->used) {
		d->st.bad_sid++;
		return;
	}
	switch (c->op) {
	case BH_CTL_SHUTDOWN:
		t->shut_pending = true;
		mark(d, sid);
		break;
	case BH_CTL_CLOSE:
		t->close_pending = true;
		mark(d, sid);
		break;
	case BH_CTL_ABORT:
		if (!t->gone && bh_tcp_abort(d->tcp, d->now_us, t->conn) != 0)
			t->gone = true;
		if (t->used && t->gone) {
			ctl(d, BH_CTL_CLOSED, sid, 0);
			sock_free(d, sid);
		}
		break;
	case BH_CTL_SETOPT:
		r = t->gone ? -ENOTCONN
			    : bh_tcp_setopt(d->tcp, d->now_us, t->conn, (enum bh_tcp_opt)c->arg,
					    c->arg2);
		result(d, sid, c->op, -r);
		break;
	default:
		d->st.bad_desc++;
		break;
	}
}

static void from_sock(struct tcpd *d, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].pool == BH_POOL_SOCK && x[i].flags == BH_M_DATA) {
			data_from_sock(d, &x[i]);
			continue;
		}
		struct bh_ctl c;
		if (x[i].flags == BH_M_CTL && bh_ctl_read(d->env, &x[i], &c))
			ctl_from_sock(d, &c);
		else
			d->st.bad_desc++;
		give_back_sock(d, &x[i]);
	}
}

/* Sends waiting data for sock, in order; true if all of it went. */
static bool flush_rx(struct tcpd *d, uint32_t sid, struct tsock *t)
{
	struct bh_desc *px;
	while ((px = bh_dq_peek(&d->nodes, &t->pend_rx)) != NULL) {
		struct bh_desc x = *px;
		uint32_t tag = sid | (t->gen & GEN_MASK) << SID_BITS;
		if (!bh_track_out(&d->tr, x.pool, x.buf, BH_DOM_SOCK, tag)) {
			bh_dq_pop(&d->nodes, &t->pend_rx, NULL);
			continue;
		}
		if (bh_chan_send(d->env->chan[BH_LINK_TS], &x, 1) != 1) {
			bh_track_back(&d->tr, x.pool, x.buf, BH_DOM_SOCK, NULL);
			return false;
		}
		bh_dq_pop(&d->nodes, &t->pend_rx, NULL);
		t->rx_out++;
	}
	return true;
}

static void pump(struct tcpd *d, uint32_t sid)
{
	struct tsock *t = sock_of(d, sid);
	if (t == NULL)
		return;
	/* Data sock gave us while the library had no room (a listener
	 * has none, and only its close is done here). */
	struct bh_desc x = {0};
	while (!t->gone && bh_dq_peek(&d->nodes, &t->pend_tx)) {
		struct bh_pkt p = pkt_of(d, bh_dq_peek(&d->nodes, &t->pend_tx));
		int r = bh_tcp_send(d->tcp, d->now_us, t->conn, &p);
		if (r == -ENOBUFS)
			wait_nomem(d, sid);
		if (r == -EAGAIN || r == -ENOBUFS)
			break;
		bh_dq_pop(&d->nodes, &t->pend_tx, &x);
		if (r != 0) {
			d->st.data_dropped++;
			give_back_sock(d, &x);
		}
	}
	if (t->pend_tx.n == 0 && !t->gone) {
		if (t->close_pending) {
			t->close_pending = false;
			t->shut_pending = false;
			/* Data already with sock is unread data the
			 * application gave up: the library decides FIN or RST
			 * from what it still holds. */
			if (bh_tcp_close(d->tcp, d->now_us, t->conn) != 0)
				t->gone = true;
			t = sock_of(d, sid);
			if (t && t->gone) {
				ctl(d, BH_CTL_CLOSED, sid, 0);
				sock_free(d, sid);
			}
			return;
		}
		if (t->shut_pending) {
			t->shut_pending = false;
			if (!t->listener)
				bh_tcp_shutdown(d->tcp, d->now_us, t->conn);
		}
	}
	if (t->gone || t->close_pending || t->listener)
		return;
	if (d->cq.head != d->cq.tail) {
		/* Messages go first, in order. */
		wait_link(d, sid);
		return;
	}
	/* Received data, up to the budget, zero copy. */
	if (!flush_rx(d, sid, t)) {
		wait_link(d, sid);
		return;
	}
	while (t->rx_out < d->rx_budget && !t->eof_sent) {
		struct bh_pkt p[PUMP];
		unsigned want = d->rx_budget - t->rx_out;
		int n = bh_tcp_recv(d->tcp, d->now_us, t->conn, p, want < PUMP ? want : PUMP);
		if (n == -EAGAIN || n < 0)
			break;
		if (n == 0) {
			t->eof_sent = true;
			ctl(d, BH_CTL_EOF, sid, 0);
			break;
		}
		for (int i = 0; i < n; i++) {
			struct bh_desc y = {.buf = bh_handle_buf(p[i].handle),
					    .off = (uint16_t)p[i].off,
					    .len = (uint16_t)p[i].len,
					    .pool = bh_handle_pool(p[i].handle),
					    .flags = BH_M_DATA,
					    .aux = sid};
			if (!bh_dq_push(&d->nodes, &t->pend_rx, &y)) {
				d->st.dq_full++;
				give_back_ip(d, y.pool, y.buf);
			}
		}
		if (!flush_rx(d, sid, t)) {
			wait_link(d, sid);
			break;
		}
	}
}

static int reclaim(struct tcpd *d)
{
	struct bh_desc x[BATCH];
	int progress = 0;
	unsigned n = bh_env_reclaim(d->env, BH_LINK_IT, x, BATCH);
	for (unsigned i = 0; i < n; i++)
		if (bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(BH_DOM_IP)) == 0)
			bh_pool_free(&d->env->own, x[i].buf);
	progress |= n != 0;
	n = bh_env_reclaim(d->env, BH_LINK_TS, x, BATCH);
	for (unsigned i = 0; i < n; i++) {
		if (x[i].pool == BH_POOL_SEG) {
			if (bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(BH_DOM_SOCK)) == 0)
				bh_pool_free(&d->env->own, x[i].buf);
			continue;
		}
		uint32_t tag;
		if (!bh_track_back(&d->tr, x[i].pool, x[i].buf, BH_DOM_SOCK, &tag))
			continue;
		give_back_ip(d, x[i].pool, x[i].buf);
		uint32_t sid = tag & ((1u << SID_BITS) - 1);
		struct tsock *t = sock_of(d, sid);
		if (t && (t->gen & GEN_MASK) == tag >> SID_BITS && t->rx_out) {
			t->rx_out--;
			mark(d, sid);
		}
	}
	progress |= n != 0;
	/* sock read the link: whoever found it full may go on. */
	if (n)
		bh_wl_drain(&d->blocked, mark_cb, d);
	return progress;
}

static void unmark(void *ctx, uint32_t sid)
{
	struct tcpd *d = ctx;
	if (sid < d->nsocks)
		d->s[sid].dirty = false;
}

static void pump_cb(void *ctx, uint32_t sid)
{
	pump(ctx, sid);
}

static int tcpd_poll(void *self, uint64_t now, uint32_t badges)
{
	struct tcpd *d = self;
	(void)badges;
	d->now_us = bh_ns_to_us(now);
	int progress = reclaim(d);
	/* Every SEG buffer answered for: no chain of the old incarnation
	 * is left to read, and sock may have its buffers. */
	if (d->chain_hold && d->env->own.stats.settled != d->hold_settled &&
	    (d->hold_settled = d->env->own.stats.settled, bh_pool_suspects(&d->env->own) == 0)) {
		d->chain_hold = false;
		bh_recover_hold(d->env, BH_POOL_SOCK, false);
		bh_logf("every segment buffer answered for: SOCK buffers disclaimed");
		progress = 1;
	}
	/* Segments that found no SEG buffer go now if they can (not
	 * progress of its own: a pool still short must not spin us). */
	if (progress)
		bh_tcp_buffers_back(d->tcp, d->now_us);
	/* Data from sock is queued as it comes and each connection sends
	 * once, after the pass has queued all it can (bh_tcp_batch_end):
	 * full segments, not one short segment per SOCK buffer. */
	bh_tcp_batch_begin(d->tcp);
	struct bh_desc x[BATCH];
	unsigned n = bh_chan_recv(d->env->chan[BH_LINK_IT], x, bh_rt_batch);
	from_ip(d, x, n);
	progress |= n != 0;
	n = bh_chan_recv(d->env->chan[BH_LINK_TS], x, bh_rt_batch);
	from_sock(d, x, n);
	progress |= n != 0;
	while (d->nlost && bh_tcp_probe_lost(d->tcp, d->now_us, d->lost[d->nlost - 1].raddr,
					     d->lost[d->nlost - 1].lport,
					     d->lost[d->nlost - 1].rport) != -ENOBUFS)
		d->nlost--;
	if (d->cq.head != d->cq.tail && bh_ctlq_flush(d->env, &d->cq, BH_LINK_TS))
		bh_wl_drain(&d->blocked, mark_cb, d);
	wake_nomem(d);
	/* Marked sockets, including those marked while pumping, in rounds
	 * (domains/marks.h). */
	if (bh_marks_run(d->dirty, &d->ndirty, d, unmark, pump_cb))
		progress = 1;
	if (bh_tcp_batch_end(d->tcp, d->now_us))
		progress = 1;
	/* After the sends: a timer they set may be due before the deadline
	 * the last tick returned. The tick walks every connection, so it
	 * runs only when something is due (at 1000 connections, ticking
	 * after every pass took 31% of an instance's CPU). */
	uint64_t hint = bh_tcp_timer_hint(d->tcp);
	if (hint < d->next_tick_us)
		d->next_tick_us = hint;
	if (d->now_us >= d->next_tick_us)
		d->next_tick_us = bh_tcp_tick(d->tcp, d->now_us);
	/* The batch's end and the timers free memory too (a connection
	 * closed, a queue dropped): waiting sends may go now, not at the
	 * next input, which may never come. */
	wake_nomem(d);
	/* Sockets the timers marked are pumped on the next pass. */
	if (d->ndirty)
		progress = 1;
	return progress;
}

static uint64_t tcpd_deadline(void *self)
{
	struct tcpd *d = self;
	/* A timer armed after this pass's tick (wake_nomem's sends) counts. */
	uint64_t next = d->next_tick_us;
	uint64_t hint = bh_tcp_timer_hint(d->tcp);
	if (hint < next)
		next = hint;
	if (next == UINT64_MAX)
		return UINT64_MAX;
	return next * 1000u;
}

static void tcpd_fini(void *self)
{
	struct tcpd *d = self;
	if (d->tcp)
		bh_tcp_destroy(d->tcp);
	bh_track_fini(&d->tr);
	bh_ctlq_fini(&d->cq);
	bh_dq_nodes_fini(&d->nodes);
	free(d->s);
	free(d->dirty);
	bh_wl_fini(&d->nomem);
	bh_wl_fini(&d->blocked);
	if (d->env)
		d->env->own.on_free = NULL;
	bh_pins_fini(&d->pins);
}

/* A neighbour was replaced. ip: nothing to forget (segments in flight
 * are retransmitted). The socket server: every socket it had is gone, so
 * every connection is reset (RST to the peer, RFC 9293 3.10.7.1 for an
 * aborted connection) and every listener closed; the new server listens
 * again on what its applications still hold, and queued messages for the
 * old one are dropped. */
static void tcpd_peer_reset(void *self, int link)
{
	struct tcpd *d = self;
	if (link != BH_LINK_TS)
		return;
	unsigned reset = 0;
	d->sock_gone = true; /* its sockets are not the new one's business */
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct tsock *t = &d->s[sid];
		if (!t->used)
			continue;
		if (!t->gone && bh_tcp_abort(d->tcp, d->now_us, t->conn) != 0)
			t->gone = true;
		if (d->s[sid].used)
			sock_free(d, sid);
		reset++;
	}
	d->cq.tail = d->cq.head;
	d->sock_gone = false;
	bh_logf("socket server replaced: %u connections and listeners reset", reset);
}

/* IT brings home only tcp's own SEG buffers; TS brings back tcp's own
 * (control messages) and the RX buffers it forwarded to sock, whose
 * owner (the driver) they go on to: lazy while few of those are out. */
static bool tcpd_lazy_give_backs(void *self, int link)
{
	struct tcpd *d = self;
	/* Segments wait for SEG buffers: each one back is worth a wake. */
	if (!bh_rt_own_pool_plenty(d->env) || bh_tcp_wants_buffers(d->tcp))
		return false;
	return link == BH_LINK_IT || (link == BH_LINK_TS && bh_track_few_out(&d->tr, BH_POOL_RX));
}

const struct bh_dom_vt bh_tcp_vt = {
    .name = "tcp",
    .size = sizeof(struct tcpd),
    .init = tcpd_init,
    .poll = tcpd_poll,
    .deadline = tcpd_deadline,
    .publish = bh_tcpd_publish,
    .fini = tcpd_fini,
    .peer_reset = tcpd_peer_reset,
    .lazy_give_backs = tcpd_lazy_give_backs,
};
