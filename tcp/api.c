/*
 * tcp/api.c - the application calls: listen, accept, connect, send, recv,
 * shutdown, close, abort and probe_lost, the options (setopt, getopt) and
 * introspection (info, list). The calls find their connection with
 * bh_tcp__from_handle (tcp.c), except bh_tcp_info, which also answers for
 * a handle given back; what a call sends goes from bh_tcp__output
 * (tcp_out.c).
 *
 * Call chains: bh_tcp_connect -> ephemeral_port, bh_tcp__new_conn
 *                              -> bh_tcp__output
 *              bh_tcp_send, bh_tcp_recv (a window update), bh_tcp_setopt
 *                              -> bh_tcp__output
 *              bh_tcp_shutdown -> do_shutdown -> bh_tcp__output
 *              bh_tcp_close -> close_conn -> listener_end | do_shutdown,
 *                              or bh_tcp__send_rst (data left unread)
 *              bh_tcp_abort -> listener_end | bh_tcp__send_rst
 *                              -> bh_tcp__finish
 *              bh_tcp_accept -> bh_tcp__child_remove (tcp.c)
 *              bh_tcp_probe_lost -> bh_tcp__emit (a scratch connection)
 *              bh_tcp_listen, bh_tcp_getopt, bh_tcp_info and bh_tcp_list
 *              send nothing
 */
#include "tcp/tcp_impl.h"

/* ---- applications ---- */

int bh_tcp_listen(struct bh_tcp *tcp, uint16_t port, uint32_t backlog, uint64_t cookie,
		  bh_tcp_conn *out)
{
	if (port == 0)
		return -EINVAL;
	if (bh_tcp__listener(tcp, port))
		return -EADDRINUSE;
	struct tconn *c = bh_tcp__new_conn(tcp, 0, 0, port);
	if (!c)
		return -ENOBUFS;
	c->listener = true;
	c->state = BH_TCP_LISTEN;
	c->backlog = backlog ? backlog : 128;
	c->cookie = cookie;
	c->app_owned = true;
	*out = bh_tcp__handle(tcp, c);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_accept(struct bh_tcp *tcp, bh_tcp_conn listener, uint64_t cookie, bh_tcp_conn *out)
{
	struct tconn *l = bh_tcp__from_handle(tcp, listener);
	if (!l || !l->listener)
		return -EINVAL;
	uint32_t me = (uint32_t)(l - tcp->conn);
	struct tconn *best = NULL;
	for (uint32_t i = 0; i < tcp->nlive; i++) {
		struct tconn *c = &tcp->conn[tcp->live[i]];
		if (c->used && c->parent == me && c->in_acceptq && (!best || c->born < best->born))
			best = c;
	}
	if (!best)
		return -EAGAIN;
	bh_tcp__child_remove(tcp, best);
	best->app_owned = true;
	best->cookie = cookie;
	*out = bh_tcp__handle(tcp, best);
	/* Data or a FIN may have come before the accept. */
	if (best->rcvq.count || best->fin_rcvd)
		bh_tcp__event(tcp, best, BH_TCP_EV_READABLE, 0);
	if (best->err)
		bh_tcp__event(tcp, best, BH_TCP_EV_ERROR, best->err);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

static uint16_t ephemeral_port(struct bh_tcp *tcp, bh_ip4 dst, uint16_t dport)
{
	for (unsigned tries = 0; tries < 16384; tries++) {
		uint16_t p = tcp->next_port;
		tcp->next_port = (uint16_t)(p >= 65535 ? 49152 : p + 1);
		if (!bh_tcp__lookup(tcp, dst, dport, p) && !bh_tcp__listener(tcp, p))
			return p;
	}
	return 0;
}

int bh_tcp_connect(struct bh_tcp *tcp, uint64_t now, bh_ip4 dst, uint16_t dport, uint16_t sport,
		   uint64_t cookie, bh_tcp_conn *out)
{
	if (dst == 0 || dport == 0 || dst == tcp->cfg.addr || bh_ip4_is_multicast(dst) ||
	    dst == BH_IP4_BROADCAST)
		return -EINVAL;
	if (sport == 0)
		sport = ephemeral_port(tcp, dst, dport);
	if (sport == 0)
		return -EADDRNOTAVAIL;
	if (bh_tcp__lookup(tcp, dst, dport, sport))
		return -EADDRINUSE;
	struct tconn *c = bh_tcp__new_conn(tcp, dst, dport, sport);
	if (!c)
		return -ENOBUFS;
	c->cookie = cookie;
	c->app_owned = true;
	c->state = BH_TCP_SYN_SENT;
	c->iss = bh_tcp_isn(tcp->cfg.secret, tcp->cfg.addr, sport, dst, dport, now);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss;
	c->snd_max = c->iss;
	c->rcv_wscale = 0;
	if (!tcp->cfg.no_wscale)
		while (c->rcv_wscale < BH_TCP_MAX_WSCALE && (tcp->cfg.rcv_buf_max >> c->rcv_wscale) > 65535)
			c->rcv_wscale++;
	tcp->ctr.active_opens++;
	*out = bh_tcp__handle(tcp, c);
	bh_tcp__output(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_send(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, const struct bh_pkt *data)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	if (c->err)
		return -c->err;
	switch (c->state) {
	case BH_TCP_SYN_SENT:
	case BH_TCP_SYN_RECEIVED:
	case BH_TCP_ESTABLISHED:
	case BH_TCP_CLOSE_WAIT:
		break;
	case BH_TCP_CLOSED:
		return -ENOTCONN;
	default:
		return -EPIPE;
	}
	if (c->fin_queued)
		return -EPIPE;
	if (data->off > data->size || data->len > data->size - data->off)
		return -EINVAL;
	if (data->len == 0) {
		tcp->ops.release(tcp->ctx, data);
		return 0;
	}
	/* The buffer bound counts bytes and, for tiny writes in large
	 * buffers, the memory they pin; one buffer larger than the bound
	 * goes into an empty queue rather than wait forever. */
	if (c->sndq.count && (c->sndq.bytes + data->len > tcp->cfg.snd_buf ||
			      c->sndq.mem + data->size > 2 * tcp->cfg.snd_buf + 65536))
		return -EAGAIN;
	/* The total bound: the application learns it is the stack's memory,
	 * not this connection's buffer, that is full. */
	if (!bh_tcp__mem_ok(tcp, data->size))
		return -ENOBUFS;
	bh_seq at = bh_tcp__data_end(c);
	if (!bh_tcp__q_push(tcp, &c->sndq, at, data))
		return -EAGAIN;
	if (!bh_tcp__owe_output(tcp, c))
		bh_tcp__output(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

bool bh_tcp__owe_output(struct bh_tcp *tcp, struct tconn *c)
{
	if (!tcp->batching || (!c->out_owed && tcp->nowed >= tcp->cfg.conns))
		return false;
	if (!c->out_owed) {
		c->out_owed = true;
		tcp->owed[tcp->nowed++] = (uint32_t)(c - tcp->conn);
	}
	return true;
}

void bh_tcp_batch_begin(struct bh_tcp *tcp)
{
	tcp->batching = true;
}

unsigned bh_tcp_batch_end(struct bh_tcp *tcp, uint64_t now)
{
	unsigned n = 0;
	tcp->batching = false;
	/* A connection freed meanwhile, and one new in its slot, have
	 * out_owed clear: skipped. */
	for (uint32_t i = 0; i < tcp->nowed; i++) {
		struct tconn *c = &tcp->conn[tcp->owed[i]];
		if (!c->used || !c->out_owed)
			continue;
		c->out_owed = false;
		bh_tcp__output(tcp, c, now);
		n++;
	}
	tcp->nowed = 0;
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return n;
}

bool bh_tcp_wants_buffers(const struct bh_tcp *tcp)
{
	return tcp->nobuf_any;
}

unsigned bh_tcp_buffers_back(struct bh_tcp *tcp, uint64_t now)
{
	if (!tcp->nobuf_any)
		return 0;
	tcp->nobuf_any = false;
	unsigned n = 0;
	/* Output frees no connection: the live list stays as it is. */
	for (uint32_t i = 0; i < tcp->nlive; i++) {
		struct tconn *c = &tcp->conn[tcp->live[i]];
		if (!c->used || !c->nobuf)
			continue;
		c->nobuf = false;
		bh_tcp__output(tcp, c, now);
		n++;
	}
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return n;
}

int bh_tcp_recv(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, struct bh_pkt *out, unsigned max)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	unsigned n = 0;
	uint32_t before = bh_tcp__rcv_window(tcp, c);
	uint32_t taken = 0;
	while (n < max && c->rcvq.head != NONE) {
		out[n] = bh_tcp__q_unlink(tcp, &c->rcvq, NONE, c->rcvq.head);
		taken += out[n++].len;
	}
	if (n) {
		bh_tcp__rcv_tune(tcp, c, now, taken);
		/* RFC 9293 3.8.6.2.2: a window update once the window has
		 * opened by a segment or half the buffer, and (as Linux's
		 * __tcp_cleanup_rbuf) only while what the peer may still send
		 * is at most half the buffer and the update at least doubles
		 * it: a reader keeping up sends no extra ACKs. */
		uint32_t after = bh_tcp__rcv_window(tcp, c);
		uint32_t step = bh_tcp__rcv_step(tcp, c);
		uint32_t offered = bh_seq_gt(c->rcv_adv, c->rcv_nxt) ? bh_seq_span(c->rcv_nxt, c->rcv_adv)
								      : 0;
		bool worth = 2ull * offered <= c->rcv_space && after >= 2ull * offered;
		if (after - before >= step && after >= offered + step && worth &&
		    c->state != BH_TCP_CLOSED) {
			c->ack_now = true;
			bh_tcp__output(tcp, c, now);
		}
		BH_TCP_ASSERT_INVARIANTS(tcp);
		return (int)n;
	}
	if (c->err)
		return -c->err;
	if (c->fin_rcvd || c->state == BH_TCP_CLOSED)
		return 0;
	return -EAGAIN;
}

static void do_shutdown(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	switch (c->state) {
	case BH_TCP_SYN_SENT:
		/* Nothing was sent yet: with nothing written either, the
		 * connection just closes (RFC 9293 3.10.4); data written
		 * before the handshake ended goes after it, then the FIN. */
		if (!c->sndq.bytes) {
			bh_tcp__finish(tcp, c, 0);
			return;
		}
		/* fall through */
	case BH_TCP_SYN_RECEIVED:
	case BH_TCP_ESTABLISHED:
	case BH_TCP_CLOSE_WAIT:
		if (!c->fin_queued) {
			c->fin_queued = true;
			c->fin_seq = bh_tcp__data_end(c);
		}
		bh_tcp__output(tcp, c, now);
		return;
	default:
		return;
	}
}

int bh_tcp_shutdown(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	do_shutdown(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

/* A listener's unaccepted connections go with it, each reset (as Linux's
 * inet_csk_listen_stop), whether the listener is closed or aborted: a
 * child left behind would keep the freed slot as its parent, and count
 * itself out of whatever listener took the slot next. */
static void listener_end(struct bh_tcp *tcp, struct tconn *l)
{
	uint32_t me = (uint32_t)(l - tcp->conn);
	/* Backwards: a child freed here is replaced by one already seen. */
	for (uint32_t i = tcp->nlive; i-- > 0;) {
		if (i >= tcp->nlive)
			continue;
		struct tconn *k = &tcp->conn[tcp->live[i]];
		if (k->used && k->parent == me) {
			if (k->state != BH_TCP_CLOSED)
				bh_tcp__send_rst(tcp, k);
			bh_tcp__finish(tcp, k, 0);
		}
	}
	l->app_closed = true;
	bh_tcp__finish(tcp, l, 0);
}

static int close_conn(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	if (c->listener) {
		listener_end(tcp, c);
		return 0;
	}
	/* RFC 1122 4.2.2.13 / RFC 9293 3.6: unread data means RST. */
	if (c->rcvq.bytes && c->state != BH_TCP_CLOSED) {
		c->app_closed = true;
		bh_tcp__send_rst(tcp, c);
		tcp->ctr.conn_resets++;
		bh_tcp__finish(tcp, c, 0);
		return 0;
	}
	c->app_closed = true;
	if (c->state == BH_TCP_CLOSED || c->state == BH_TCP_SYN_SENT) {
		bh_tcp__finish(tcp, c, 0);
		return 0;
	}
	do_shutdown(tcp, c, now);
	bh_tcp__fin_wait2(tcp, c, now);
	return 0;
}

int bh_tcp_close(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c)
		return -EINVAL;
	int rc = close_conn(tcp, now, c);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return rc;
}

int bh_tcp_abort(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c)
		return -EINVAL;
	(void)now;
	if (c->listener) {
		listener_end(tcp, c);
	} else {
		if (c->state != BH_TCP_CLOSED && c->state != BH_TCP_SYN_SENT &&
		    c->state != BH_TCP_TIME_WAIT)
			bh_tcp__send_rst(tcp, c);
		c->app_closed = true;
		bh_tcp__finish(tcp, c, 0);
	}
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_probe_lost(struct bh_tcp *tcp, uint64_t now, bh_ip4 raddr, uint16_t lport,
		      uint16_t rport)
{
	if (lport == 0 || rport == 0 || raddr == 0)
		return -EINVAL;
	/* A scratch connection, never in the table, as for SYN cookies. */
	struct tconn t = {.state = BH_TCP_ESTABLISHED, .raddr = raddr, .lport = lport,
			  .rport = rport, .parent = NONE, .smss = tcp->cfg.mss,
			  .rcv_space = tcp->cfg.rcv_buf};
	t.sndq = t.rcvq = t.oooq = (struct tqueue){NONE, NONE, 0, 0, 0};
	bh_seq far = bh_tcp_isn(tcp->cfg.secret, tcp->cfg.addr, lport, raddr, rport, now) +
		     0x80000000u;
	t.rcv_nxt = t.rcv_adv = far;
	tcp->ctr.lost_probes++;
	return bh_tcp__emit(tcp, &t, now, far, BH_TCP_ACK, 0) ? 0 : -ENOBUFS;
}

/* ---- options ---- */

int bh_tcp_setopt(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, enum bh_tcp_opt opt,
		  uint32_t v)
{
	struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	switch (opt) {
	case BH_TCP_OPT_NODELAY:
		c->nodelay = v != 0;
		if (c->nodelay && c->state != BH_TCP_CLOSED)
			bh_tcp__output(tcp, c, now); /* what Nagle held goes now */
		BH_TCP_ASSERT_INVARIANTS(tcp);
		return 0;
	case BH_TCP_OPT_KEEPALIVE:
		c->keepalive = v != 0;
		c->ka_probes = 0;
		c->ka_at = 0;
		bh_tcp__tick_soon(tcp, now); /* the next tick sets ka_at */
		if (c->last_heard == 0)
			c->last_heard = now;
		return 0;
	case BH_TCP_OPT_KEEPIDLE:
	case BH_TCP_OPT_KEEPINTVL:
		/* Linux's bounds: 1 s to 32767 s. */
		if (v < 1 || v > 32767)
			return -EINVAL;
		if (opt == BH_TCP_OPT_KEEPIDLE)
			c->ka_idle_s = v;
		else
			c->ka_intvl_s = v;
		c->ka_at = 0;
		bh_tcp__tick_soon(tcp, now);
		return 0;
	case BH_TCP_OPT_KEEPCNT:
		if (v < 1 || v > 127)
			return -EINVAL;
		c->ka_cnt = v;
		return 0;
	}
	return -ENOPROTOOPT;
}

int bh_tcp_getopt(const struct bh_tcp *tcp, bh_tcp_conn h, enum bh_tcp_opt opt, uint32_t *v)
{
	const struct tconn *c = bh_tcp__from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	switch (opt) {
	case BH_TCP_OPT_NODELAY:
		*v = c->nodelay;
		return 0;
	case BH_TCP_OPT_KEEPALIVE:
		*v = c->keepalive;
		return 0;
	case BH_TCP_OPT_KEEPIDLE:
		*v = c->ka_idle_s;
		return 0;
	case BH_TCP_OPT_KEEPINTVL:
		*v = c->ka_intvl_s;
		return 0;
	case BH_TCP_OPT_KEEPCNT:
		*v = c->ka_cnt;
		return 0;
	}
	return -ENOPROTOOPT;
}

/* ---- introspection ---- */

int bh_tcp_info(const struct bh_tcp *tcp, bh_tcp_conn h, struct bh_tcp_info *o)
{
	uint32_t slot = (h & 0xfffff) - 1;
	if (h == 0 || slot >= tcp->cfg.conns)
		return -EINVAL;
	const struct tconn *c = &tcp->conn[slot];
	if (!c->used || c->gen != (h >> 20))
		return -EINVAL;
	*o = (struct bh_tcp_info){
		.state = c->state,
		.local = tcp->cfg.addr,
		.remote = c->raddr,
		.lport = c->lport,
		.rport = c->rport,
		.iss = c->iss,
		.irs = c->irs,
		.snd_una = c->snd_una,
		.snd_nxt = c->snd_nxt,
		.rcv_nxt = c->rcv_nxt,
		.snd_wnd = c->snd_wnd,
		.rcv_wnd = bh_tcp__rcv_window(tcp, c),
		.rcv_buf = c->rcv_space,
		.rcv_rtt_us = c->rcv_rtt,
		.cwnd = c->cwnd,
		.ssthresh = c->ssthresh,
		.srtt_us = c->srtt,
		.rttvar_us = c->rttvar,
		.rto_us = c->rto,
		.retransmits = c->retransmits,
		.mss = c->smss,
		.snd_queued = c->sndq.bytes,
		.rcv_queued = c->rcvq.bytes,
		.snd_wscale = c->snd_wscale,
		.rcv_wscale = c->rcv_wscale,
		.ts = c->ts_ok,
		.sack = c->sack_ok,
		.in_recovery = c->in_recovery,
		.sack_holes = bh_tcp__sb_holes(c),
		.sacked = bh_tcp__sb_sacked(c),
		.pipe = c->sack_ok ? bh_tcp__pipe(tcp, c) : bh_seq_span(c->snd_una, c->snd_max),
		.ooo_queued = c->oooq.bytes,
		.rtx_armed = c->rtx_at != 0,
		.cc = c->cc ? c->cc->name : "",
	};
	return 0;
}

unsigned bh_tcp_list(const struct bh_tcp *tcp, bh_tcp_conn *out, unsigned n)
{
	unsigned k = 0;
	for (uint32_t i = 0; i < tcp->cfg.conns; i++) {
		if (!tcp->conn[i].used)
			continue;
		if (k < n)
			out[k] = bh_tcp__handle(tcp, &tcp->conn[i]);
		k++;
	}
	return k;
}
