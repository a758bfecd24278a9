/*
 * tcp/tcp_in.c - segment arrival, RFC 9293 3.10.7 in its order:
 *   3.10.7.1 CLOSED (no connection): answer with a reset
 *   3.10.7.2 LISTEN: a SYN makes a SYN-RECEIVED child
 *   3.10.7.3 SYN-SENT
 *   3.10.7.4 everything else: sequence check, RST (RFC 5961 3), SYN
 *            (RFC 5961 4), ACK (RFC 5961 5), data, FIN
 *
 * The parsed segment is passed down; there is no file-scope "current
 * segment". The pieces of rx are the library's: each ends queued
 * (receive data) or released, exactly once.
 */
#include <string.h>

#include "tcp/tcp_impl.h"

struct in {
	const struct bh_ip_rx *rx;
	const struct bh_tcp_repr *seg;
	bh_seq seq;    /* of the first payload byte (after a SYN) */
	uint32_t len;  /* payload bytes still wanted */
	uint32_t skip; /* payload bytes trimmed off the front */
	bool fin;
};

static void release_all(struct bh_tcp *tcp, const struct bh_ip_rx *rx)
{
	for (unsigned i = 0; i < rx->npieces; i++)
		tcp->ops.release(tcp->ctx, &rx->piece[i]);
}

/* Options from a SYN (RFC 9293 3.7.1, RFC 7323 1.3, RFC 2018 2); the
 * parser has already ignored those of the wrong length (wire.c). */
static void syn_options(struct bh_tcp *tcp, struct tconn *c, const struct bh_tcp_repr *seg,
			uint64_t now)
{
	const struct bh_tcp_opts *o = &seg->opt;
	/* RFC 9293 3.7.1: no MSS option means 536; an MSS of 0 is taken as
	 * none, as Linux takes it (tcp_parse_options). */
	uint16_t peer_mss = o->has_mss && o->mss ? o->mss : 536;
	c->smss = peer_mss < tcp->cfg.mss ? peer_mss : tcp->cfg.mss;
	/* A peer cannot make us send tiny segments (Linux's floor,
	 * tcp_min_snd_mss, is 48; ours is 64). */
	if (c->smss < 64)
		c->smss = 64;
	c->ws_ok = o->has_wscale && !tcp->cfg.no_wscale;
	c->snd_wscale = c->ws_ok ? o->wscale : 0;
	/* RFC 7323 2.3: a shift above 14 is used as 14 (the parser clamped
	 * it) and SHOULD be logged: counted. */
	if (c->ws_ok && o->wscale_clamped)
		tcp->ctr.wscale_clamped++;
	if (!c->ws_ok)
		c->rcv_wscale = 0;
	c->ts_ok = o->has_ts && !tcp->cfg.no_timestamps;
	if (c->ts_ok) {
		c->ts_recent = o->ts_val;
		c->ts_recent_at = now;
		c->smss = (uint16_t)(c->smss - 12); /* RFC 7323 3.2: room for the option */
	}
	c->sack_ok = o->sack_ok && !tcp->cfg.no_sack;
	/* RFC 5681 3.1 (RFC 3390): initial window 10 segments as Linux
	 * (RFC 6928). */
	c->cwnd = 10u * c->smss;
	c->ssthresh = UINT32_MAX;
	c->recover = c->snd_una;
	c->high_rxt = c->snd_una;
	c->last_heard = now;
}

static void rtt_sample(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	uint64_t r64 = now - c->rtt_start;
	uint32_t r = r64 > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)r64;
	if (r == 0)
		r = 1;
	/* RFC 6298 2.2 and 2.3 (alpha 1/8, beta 1/4, K 4). */
	if (c->srtt == 0) {
		c->srtt = r;
		c->rttvar = r / 2;
	} else {
		uint32_t d = c->srtt > r ? c->srtt - r : r - c->srtt;
		c->rttvar = c->rttvar - c->rttvar / 4 + d / 4;
		c->srtt = c->srtt - c->srtt / 8 + r / 8;
	}
	uint64_t rto = (uint64_t)c->srtt + 4ull * c->rttvar;
	uint64_t lo = (uint64_t)tcp->cfg.rto_min_ms * 1000, hi = (uint64_t)tcp->cfg.rto_max_ms * 1000;
	c->rto = (uint32_t)(rto < lo ? lo : rto > hi ? hi : rto);
	c->rtt_timing = false;
}

/* ---- 3.10.7.2 LISTEN ---- */

static uint8_t our_wscale(const struct bh_tcp *tcp)
{
	uint8_t w = 0;
	while (w < BH_TCP_MAX_WSCALE && (tcp->cfg.rcv_buf >> w) > 65535)
		w++;
	return w;
}

static void synchronized_input(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			       const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg);

/* A SYN-RECEIVED child of listener l for the SYN `syn` (a real one, or
 * one rebuilt from a cookie), our ISS iss; NULL when the table is full. */
static struct tconn *new_child(struct bh_tcp *tcp, uint64_t now, struct tconn *l, bh_ip4 src,
			       const struct bh_tcp_repr *syn, bh_seq iss)
{
	struct tconn *c = bh_tcp__new_conn(tcp, src, syn->sport, syn->dport);
	if (!c)
		return NULL;
	bh_tcp__child_add(tcp, l, c);
	c->state = BH_TCP_SYN_RECEIVED;
	c->irs = syn->seq;
	c->rcv_nxt = c->rcv_adv = bh_seq_add(syn->seq, 1);
	c->iss = iss;
	c->snd_una = c->snd_nxt = c->snd_max = iss;
	c->snd_wnd = syn->window; /* RFC 7323 2.2: unscaled in a SYN */
	c->snd_wl1 = syn->seq;
	c->snd_wl2 = iss;
	c->rcv_wscale = syn->opt.has_wscale && !tcp->cfg.no_wscale ? our_wscale(tcp) : 0;
	syn_options(tcp, c, syn, now);
	tcp->ctr.passive_opens++;
	return c;
}

/* The SYN queue is full: answer with a cookie and keep nothing (RFC 4987
 * 3.6). A scratch connection, never in the table, carries what the
 * segment builder needs. */
static void cookie_syn_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *l, bh_ip4 src,
			   const struct bh_tcp_repr *seg)
{
	struct tconn t = {.state = BH_TCP_SYN_RECEIVED, .raddr = src, .lport = seg->dport,
			  .rport = seg->sport, .parent = NONE};
	t.sndq = t.rcvq = t.oooq = (struct tqueue){NONE, NONE, 0, 0, 0};
	t.iss = bh_tcp__cookie_make(tcp, src, seg, now);
	t.rcv_nxt = t.rcv_adv = bh_seq_add(seg->seq, 1);
	t.rcv_wscale = seg->opt.has_wscale && !tcp->cfg.no_wscale ? our_wscale(tcp) : 0;
	syn_options(tcp, &t, seg, now);
	if (bh_tcp__emit(tcp, &t, now, t.iss, BH_TCP_SYN | BH_TCP_ACK, 0)) {
		tcp->ctr.syncookies_sent++;
		l->cookie_at = now;
	}
}

/* An ACK at a listener that sent cookies lately: if it carries a valid
 * one, the connection is made as if from SYN-RECEIVED and the segment
 * (with any data) goes through the normal path. Returns false when it is
 * not a cookie (the caller resets it). */
static bool cookie_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *l,
		       const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	if (!l->cookie_at || now - l->cookie_at > BH_TCP_COOKIE_LIFE_US ||
	    (seg->flags & (BH_TCP_SYN | BH_TCP_RST)))
		return false;
	struct bh_tcp_cookie ck;
	if (!bh_tcp__cookie_check(tcp, rx->src, seg, now, &ck)) {
		tcp->ctr.syncookies_bad++;
		return false;
	}
	if (l->naccept >= l->backlog) {
		tcp->ctr.backlog_drops++; /* the peer resends; room may come */
		release_all(tcp, rx);
		return true;
	}
	/* The SYN, as the cookie remembers it; our SYN-ACK was sent. */
	struct bh_tcp_repr syn = {.sport = seg->sport, .dport = seg->dport, .seq = seg->seq - 1};
	syn.opt.has_mss = true;
	syn.opt.mss = ck.mss;
	syn.opt.has_wscale = ck.has_wscale;
	syn.opt.wscale = ck.wscale;
	syn.opt.sack_ok = ck.sack_ok;
	syn.opt.has_ts = seg->opt.has_ts;
	syn.opt.ts_val = seg->opt.ts_val;
	struct tconn *c = new_child(tcp, now, l, rx->src, &syn, seg->ack - 1);
	if (!c) {
		release_all(tcp, rx);
		return true;
	}
	tcp->ctr.syncookies_ok++;
	c->snd_nxt = c->snd_max = seg->ack;
	synchronized_input(tcp, now, c, rx, seg);
	return true;
}

static void listen_input(struct bh_tcp *tcp, uint64_t now, struct tconn *l, const struct bh_ip_rx *rx,
			 const struct bh_tcp_repr *seg)
{
	if (seg->flags & BH_TCP_RST)
		goto drop;
	if (seg->flags & BH_TCP_ACK) {
		if (cookie_ack(tcp, now, l, rx, seg))
			return;
		bh_tcp__reset_reply(tcp, rx->src, seg);
		goto drop;
	}
	/* A SYN with a FIN is no opening a stack sends (a scanner's probe):
	 * dropped, as Linux drops it (tcp_rcv_state_process). */
	if (!(seg->flags & BH_TCP_SYN) || (seg->flags & BH_TCP_FIN))
		goto drop;
	/* A full accept queue drops the SYN (the peer retries); a full SYN
	 * queue or table answers with a cookie. */
	if (l->naccept >= l->backlog) {
		tcp->ctr.backlog_drops++;
		goto drop;
	}
	bh_seq iss = bh_tcp_isn(tcp->cfg.secret, tcp->cfg.addr, seg->dport, rx->src, seg->sport, now);
	struct tconn *c = l->nchild < l->backlog ? new_child(tcp, now, l, rx->src, seg, iss) : NULL;
	if (!c) {
		if (tcp->cfg.no_syncookies)
			tcp->ctr.backlog_drops++;
		else
			cookie_syn_ack(tcp, now, l, rx->src, seg);
		goto drop;
	}
	/* RFC 9293 3.10.7.2: data on a SYN is queued for later; we drop it
	 * (the peer retransmits it) as most stacks do without TFO. */
	bh_tcp__output(tcp, c, now);
drop:
	release_all(tcp, rx);
}

/* ---- 3.10.7.3 SYN-SENT ---- */

static void syn_sent_input(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	bool ack = seg->flags & BH_TCP_ACK;
	if (ack && (bh_seq_leq(seg->ack, c->iss) || bh_seq_gt(seg->ack, c->snd_max))) {
		if (!(seg->flags & BH_TCP_RST))
			bh_tcp__reset_reply(tcp, rx->src, seg);
		goto drop;
	}
	if (seg->flags & BH_TCP_RST) {
		/* RFC 5961 3.2 / RFC 9293: only with an acceptable ACK. */
		if (ack) {
			tcp->ctr.rst_in++;
			release_all(tcp, rx);
			bh_tcp__finish(tcp, c, ECONNREFUSED);
			return;
		}
		tcp->ctr.rst_ignored++;
		goto drop;
	}
	if (!(seg->flags & BH_TCP_SYN))
		goto drop;
	c->irs = seg->seq;
	c->rcv_nxt = bh_seq_add(seg->seq, 1);
	c->rcv_adv = c->rcv_nxt;
	syn_options(tcp, c, seg, now);
	if (ack) {
		c->snd_una = seg->ack;
		c->syn_acked = true;
		c->snd_wnd = (uint32_t)seg->window << c->snd_wscale;
		c->max_snd_wnd = c->snd_wnd;
		c->snd_wl1 = seg->seq;
		c->snd_wl2 = seg->ack;
		c->rtx_at = 0;
		if (c->rtt_timing && c->backoff == 0)
			rtt_sample(tcp, c, now);
		c->backoff = 0;
		c->state = BH_TCP_ESTABLISHED;
		c->ack_now = true;
		bh_tcp__event(tcp, c, BH_TCP_EV_CONNECTED, 0);
		bh_tcp__output(tcp, c, now);
	} else {
		/* Simultaneous open (RFC 9293 3.5, figure 8). */
		c->state = BH_TCP_SYN_RECEIVED;
		c->snd_wnd = seg->window;
		c->snd_wl1 = seg->seq;
		c->snd_nxt = c->iss; /* the SYN goes again, now with ACK */
		c->rtx_at = 0;
		bh_tcp__output(tcp, c, now);
	}
drop:
	release_all(tcp, rx);
}

/* ---- 3.10.7.4 ---- */

/* The four cases of the acceptability test; trims what lies outside the
 * window. Returns false if nothing of the segment is acceptable. */
static bool acceptable(struct bh_tcp *tcp, struct tconn *c, const struct bh_tcp_repr *seg,
		       struct in *in)
{
	uint32_t wnd = bh_tcp__rcv_window(tcp, c);
	/* What we promised counts even if the buffer filled since. */
	if (bh_seq_gt(c->rcv_adv, c->rcv_nxt) && bh_seq_span(c->rcv_nxt, c->rcv_adv) > wnd)
		wnd = bh_seq_span(c->rcv_nxt, c->rcv_adv);
	uint32_t len = bh_tcp_seg_len(seg);
	bh_seq s = seg->seq, e = bh_seq_add(seg->seq, len ? len - 1 : 0);
	bh_seq lo = c->rcv_nxt, hi = bh_seq_add(c->rcv_nxt, wnd);
	bool ok;
	if (len == 0)
		ok = wnd == 0 ? s == lo : bh_seq_in(s, lo, hi);
	else
		ok = wnd != 0 && (bh_seq_in(s, lo, hi) || bh_seq_in(e, lo, hi));
	if (!ok)
		return false;
	/* Trim: bytes before rcv_nxt (and a SYN there), bytes past the
	 * window (and a FIN beyond it). */
	bh_seq data = bh_seq_add(seg->seq, (seg->flags & BH_TCP_SYN) ? 1 : 0);
	in->seq = data;
	in->len = seg->payload_len;
	in->skip = 0;
	in->fin = seg->flags & BH_TCP_FIN;
	if (bh_seq_lt(data, lo)) {
		uint32_t cut = bh_seq_span(data, lo);
		if (cut > in->len) {
			cut = in->len;
			/* A FIN before rcv_nxt was seen already. */
			if (in->fin && bh_seq_lt(bh_seq_add(data, in->len), lo))
				in->fin = false;
		}
		in->skip = cut;
		in->len -= cut;
		in->seq = bh_seq_add(data, cut);
	}
	if (in->len && bh_seq_gt(bh_seq_add(in->seq, in->len), hi)) {
		in->len = bh_seq_span(in->seq, hi);
		in->fin = false;
	}
	return true;
}

/* Puts a piece that arrived out of order into the out-of-order queue,
 * which stays sorted and disjoint: data already held wins, a piece that
 * covers held ones replaces them, a partial overlap is trimmed off the
 * new piece. Sorted, the queue gives SACK blocks and reassembly in one
 * pass. Returns false if there was no room (the piece is the caller's). */
static bool ooo_insert(struct bh_tcp *tcp, struct tconn *c, bh_seq s, struct bh_pkt *p)
{
	bh_seq e = bh_seq_add(s, p->len);
	uint32_t prev = NONE, i = c->oooq.head;
	while (i != NONE) {
		struct tseg *q = &tcp->seg[i];
		bh_seq qe = bh_seq_add(q->seq, q->len);
		if (bh_seq_leq(qe, s)) { /* wholly before */
			prev = i;
			i = q->next;
			continue;
		}
		if (bh_seq_geq(q->seq, e)) /* wholly after: goes before it */
			break;
		if (bh_seq_leq(q->seq, s) && bh_seq_geq(qe, e)) { /* nothing new */
			tcp->ops.release(tcp->ctx, p);
			return true;
		}
		if (bh_seq_leq(s, q->seq) && bh_seq_geq(e, qe)) { /* covers it */
			uint32_t n = q->next;
			struct bh_pkt old = bh_tcp__q_unlink(tcp, &c->oooq, prev, i);
			tcp->ops.release(tcp->ctx, &old);
			i = n;
			continue;
		}
		if (bh_seq_lt(q->seq, s)) { /* it holds our front */
			uint32_t cut = bh_seq_span(s, qe);
			p->off += cut;
			p->len -= cut;
			s = qe;
			prev = i;
			i = q->next;
			continue;
		}
		p->len = bh_seq_span(s, q->seq); /* it holds our tail */
		e = q->seq;
		break;
	}
	return bh_tcp__q_insert(tcp, &c->oooq, prev, s, p);
}

/* Gives up the highest out-of-order buffer, so that in-order data can
 * have its memory (as Linux prunes its out-of-order queue). RFC 2018 8
 * allows it: the sender keeps SACKed data until it is acknowledged and
 * resends it after a timeout. */
static bool prune_ooo(struct bh_tcp *tcp, struct tconn *c)
{
	if (!c)
		return false;
	uint32_t prev = NONE, i = c->oooq.head;
	if (i == NONE)
		return false;
	while (tcp->seg[i].next != NONE) {
		prev = i;
		i = tcp->seg[i].next;
	}
	struct bh_pkt p = bh_tcp__q_unlink(tcp, &c->oooq, prev, i);
	tcp->ops.release(tcp->ctx, &p);
	tcp->ctr.ooo_pruned++;
	return true;
}

bool bh_tcp__prune_any(struct bh_tcp *tcp, struct tconn *c)
{
	if (c && c->used && prune_ooo(tcp, c))
		return true;
	for (uint32_t i = 0; i < tcp->nlive; i++)
		if (prune_ooo(tcp, &tcp->conn[tcp->live[i]]))
			return true;
	return false;
}

/* Queues payload bytes [skip, skip + len) of the segment at seq: in order
 * on rcvq, else on oooq. Returns false if memory ran out. */
static bool queue_data(struct bh_tcp *tcp, struct tconn *c, const struct in *in)
{
	const struct bh_ip_rx *rx = in->rx;
	uint32_t at = 0; /* payload offset of the current piece */
	bh_seq seq0 = in->seq;
	uint32_t want_from = in->skip, want_to = in->skip + in->len;
	bool ok = true;
	for (unsigned i = 0; i < rx->npieces; i++) {
		struct bh_pkt p = rx->piece[i];
		uint32_t plen = p.len;
		if (i == 0) { /* piece 0 starts with the TCP header */
			p.off += in->seg->hlen;
			p.len -= in->seg->hlen;
			plen = p.len;
		}
		uint32_t a = at, b = at + plen;
		at = b;
		uint32_t from = a > want_from ? a : want_from, to = b < want_to ? b : want_to;
		if (from >= to || !ok) {
			tcp->ops.release(tcp->ctx, &rx->piece[i]);
			continue;
		}
		p.off += from - a;
		p.len = to - from;
		bh_seq s = bh_seq_add(seq0, from - in->skip);
		bool in_order = s == c->rcv_nxt;
		struct tqueue *q = in_order ? &c->rcvq : &c->oooq;
		/* The window bounds the bytes; this bounds the buffers they
		 * pin (tiny segments in large buffers), per connection and in
		 * all. */
		uint32_t bound = 2 * tcp->cfg.rcv_buf + 65536;
		bool room = c->rcvq.mem + c->oooq.mem + p.size <= bound;
		bool mem = bh_tcp__mem_ok(tcp, p.size);
		while (in_order && (!room || !mem) && prune_ooo(tcp, c)) {
			room = c->rcvq.mem + c->oooq.mem + p.size <= bound;
			mem = bh_tcp__mem_ok(tcp, p.size);
		}
		/* Queue entries are shared by all connections: in-order data
		 * takes one from anybody's out-of-order data, so that peers
		 * holding many small pieces cannot starve the others. */
		if (in_order && room && mem && tcp->seg_free == NONE)
			bh_tcp__prune_any(tcp, c);
		if (!room || !mem ||
		    !(in_order ? bh_tcp__q_push(tcp, q, s, &p) : ooo_insert(tcp, c, s, &p))) {
			if (!mem)
				tcp->ctr.mem_drops++;
			else
				tcp->ctr.rcv_drops++;
			tcp->ops.release(tcp->ctx, &rx->piece[i]);
			ok = false;
			continue;
		}
		if (in_order)
			c->rcv_nxt = bh_seq_add(c->rcv_nxt, p.len);
	}
	return ok;
}

/* Moves the front of the (sorted) out-of-order queue that has become in
 * order. */
static void pull_ooo(struct bh_tcp *tcp, struct tconn *c)
{
	while (c->oooq.head != NONE) {
		struct tseg *s = &tcp->seg[c->oooq.head];
		if (bh_seq_gt(s->seq, c->rcv_nxt))
			break;
		bh_seq sseq = s->seq, end = bh_seq_add(s->seq, s->len);
		struct bh_pkt p = bh_tcp__q_unlink(tcp, &c->oooq, NONE, c->oooq.head);
		if (bh_seq_leq(end, c->rcv_nxt)) {
			tcp->ops.release(tcp->ctx, &p); /* wholly old */
			continue;
		}
		uint32_t cut = bh_seq_span(sseq, c->rcv_nxt);
		p.off += cut;
		p.len -= cut;
		if (bh_tcp__q_push(tcp, &c->rcvq, c->rcv_nxt, &p))
			c->rcv_nxt = bh_seq_add(c->rcv_nxt, p.len);
		else
			tcp->ops.release(tcp->ctx, &p);
	}
}

/* Resends the first unacknowledged segment (up to SMSS, not into a
 * SACKed range); returns the sequence space sent. */
static uint32_t resend_head(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	uint32_t n = bh_tcp__xmit(tcp, c, now, c->snd_una,
				  bh_seq_span(c->snd_una, bh_tcp__sb_next(c, c->snd_una)));
	c->snd_nxt = bh_seq_max(c->snd_nxt, bh_seq_add(c->snd_una, n));
	return n;
}

/* Loss recovery starts (RFC 5681 3.2, RFC 6675 5): the algorithm sets
 * ssthresh; with SACK, cwnd = ssthresh and the scoreboard drives what is
 * resent (RFC 6675 5 steps 4.2-4.4); without, NewReno (RFC 6582 3.2). */
static void enter_recovery(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	c->ssthresh = c->cc->ssthresh(c, now);
	c->in_recovery = true;
	c->recover = c->snd_max;
	c->lt = 0;
	c->rtt_timing = false; /* Karn: the timed segment may be resent */
	tcp->ctr.fast_retransmits++;
	if (c->sack_ok) {
		tcp->ctr.sack_recoveries++;
		c->cwnd = c->ssthresh;
		c->high_rxt = c->snd_una;
		/* 4.3: the first segment presumed lost goes now, whatever the
		 * pipe; NextSeg() sends the rest from bh_tcp__output(). */
		uint32_t n = resend_head(tcp, now, c);
		if (n)
			tcp->ctr.sack_retransmits++;
		/* 4.3: HighRxt and RescueRxt at the end of that segment, so no
		 * rescue goes before it is acknowledged. */
		c->high_rxt = c->rescue_rxt = bh_seq_add(c->snd_una, n);
		return;
	}
	resend_head(tcp, now, c);
	c->cwnd = c->ssthresh + 3u * c->smss;
}

/* Whether the window was in use: the flight when new data last went
 * (c->sent_flight) reaches cwnd, or half of it in slow start (Linux's
 * tcp_is_cwnd_limited). An application that sends little must not grow
 * a window it never fills. */
static bool cwnd_limited(const struct tconn *c)
{
	if (c->cwnd < c->ssthresh)
		return 2ull * c->sent_flight >= c->cwnd;
	return (uint64_t)c->sent_flight + c->smss >= c->cwnd;
}

static void ack_processing(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_tcp_repr *seg, bool *drop)
{
	bh_seq ack = seg->ack;
	/* RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <=
	 * SND.NXT; an ACK of data never sent gets an ACK back. */
	if (bh_seq_gt(ack, c->snd_max)) {
		tcp->ctr.bad_acks++;
		c->ack_now = true;
		*drop = true;
		return;
	}
	if (bh_seq_lt(ack, c->snd_una - (c->max_snd_wnd ? c->max_snd_wnd : 1))) {
		tcp->ctr.bad_acks++;
		c->ack_now = true;
		*drop = true;
		return;
	}
	uint32_t wnd = (uint32_t)seg->window << c->snd_wscale;
	uint32_t newly_sacked = 0;
	if (c->sack_ok && seg->opt.nsack) {
		unsigned bad = 0;
		tcp->ctr.sack_blocks_in += seg->opt.nsack;
		newly_sacked = bh_tcp__sb_update(c, &seg->opt, ack, &bad);
		tcp->ctr.sack_bad_blocks += bad;
	}
	if (bh_seq_gt(ack, c->snd_una)) {
		uint32_t acked = bh_seq_span(c->snd_una, ack);
		bool was_lost = c->rto_recover;
		/* Data bytes acknowledged: the SYN and FIN are not in sndq. */
		bh_seq upto = bh_seq_min(ack, bh_tcp__data_end(c));
		if (c->snd_cur != NONE &&
		    bh_seq_leq(bh_seq_add(tcp->seg[c->snd_cur].seq, tcp->seg[c->snd_cur].len), upto))
			c->snd_cur = NONE; /* its buffer is about to go */
		bh_tcp__q_trim_front(tcp, &c->sndq, upto);
		c->snd_una = ack;
		c->syn_acked = true;
		if (bh_seq_lt(c->snd_nxt, ack))
			c->snd_nxt = ack;
		if (bh_seq_lt(c->high_rxt, ack))
			c->high_rxt = ack;
		bh_tcp__sb_trim(c);
		if (c->rtt_timing && bh_seq_geq(ack, c->rtt_seq))
			rtt_sample(tcp, c, now);
		c->backoff = 0;
		/* RFC 6298 5.2, 5.3 */
		c->rtx_at = bh_seq_lt(c->snd_una, c->snd_max) ? now + c->rto : 0;
		if (c->rto_recover && bh_seq_geq(ack, c->recover))
			c->rto_recover = false;
		if (c->in_recovery) {
			if (bh_seq_geq(ack, c->recover)) {
				/* RFC 6582 3.2 (3), option 1; RFC 6675 leaves cwnd
				 * at ssthresh. */
				c->in_recovery = false;
				uint32_t flight = bh_seq_span(c->snd_una, c->snd_max);
				uint32_t cap = c->sack_ok ? c->ssthresh : flight + c->smss;
				c->cwnd = c->ssthresh < cap ? c->ssthresh : cap;
			} else if (!c->sack_ok) {
				/* RFC 6582 3.2 (5): partial ACK: resend the next
				 * hole, deflate. */
				c->cwnd = c->cwnd > acked ? c->cwnd - acked + c->smss : c->smss;
				resend_head(tcp, now, c);
			}
			/* With SACK, bh_tcp__output() runs NextSeg() after
			 * this ACK (RFC 6675 5 (C)). */
		} else if (cwnd_limited(c)) {
			if (c->app_limited) {
				c->app_limited = false;
				c->cc->restart(c, now); /* RFC 9438 5.8 */
			}
			/* RFC 3465 2.3: one SMSS per ACK while a timeout's
			 * recovery lasts. */
			c->cc->ack(c, was_lost && acked > c->smss ? c->smss : acked, now);
			if (c->cwnd > BH_TCP_CWND_MAX)
				c->cwnd = BH_TCP_CWND_MAX;
		} else {
			c->app_limited = true; /* RFC 7661: no growth unused */
		}
		c->dupacks = 0;
		c->lt = 0;
		/* RFC 6675 2 and 5 (b): an ACK that moves the cumulative point
		 * and SACKs more can show a loss by itself. */
		if (!c->in_recovery && !c->rto_recover && newly_sacked && bh_tcp__is_lost(c, c->snd_una) &&
		    bh_seq_lt(c->snd_una, c->snd_max))
			enter_recovery(tcp, now, c);
		bh_tcp__event(tcp, c, BH_TCP_EV_WRITABLE, 0);
	} else if (ack == c->snd_una && bh_seq_lt(c->snd_una, c->snd_max) &&
		   (c->sack_ok && seg->opt.nsack
			    ? newly_sacked > 0
			    : seg->payload_len == 0 && !(seg->flags & (BH_TCP_SYN | BH_TCP_FIN)) &&
				      wnd == c->snd_wnd)) {
		/* RFC 5681 2 (duplicate ACK); with SACK, an ACK that SACKs
		 * something new (RFC 6675 2, DupAck). */
		tcp->ctr.dup_acks++;
		c->dupacks++;
		/* RFC 5681 3.2, RFC 6675 5 (a, b); not again before the
		 * recovery point of a timeout (RFC 6582 4.1, RFC 6675 5.1). */
		bool lost = c->dupacks >= 3 || (c->sack_ok && bh_tcp__is_lost(c, c->snd_una));
		if (!c->in_recovery && !c->rto_recover && lost) {
			enter_recovery(tcp, now, c);
		} else if (c->in_recovery && !c->sack_ok) {
			c->cwnd += c->smss; /* RFC 6582 3.2 (4): inflate */
		} else if (!c->in_recovery && c->dupacks < 3) {
			c->lt = (uint8_t)c->dupacks; /* RFC 3042 */
		}
	}
	/* RFC 1122 4.2.2.17: while the peer answers zero-window probes the
	 * connection stays up, however long the window stays shut. */
	if (wnd == 0 && ack == c->snd_una)
		c->backoff = 0;
	/* RFC 9293 3.10.7.4: window update from a newer segment. */
	if (bh_seq_lt(c->snd_wl1, seg->seq) ||
	    (c->snd_wl1 == seg->seq && bh_seq_leq(c->snd_wl2, ack))) {
		/* The window opens while a probe byte is out: the peer dropped
		 * it; send from SND.UNA now rather than at the next timeout. */
		if (c->snd_wnd == 0 && wnd > 0 && bh_seq_gt(c->snd_nxt, c->snd_una))
			c->snd_nxt = c->snd_una;
		c->snd_wnd = wnd;
		if (wnd > c->max_snd_wnd)
			c->max_snd_wnd = wnd;
		c->snd_wl1 = seg->seq;
		c->snd_wl2 = ack;
	}
}

static void synchronized_input(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			       const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	struct in in = {.rx = rx, .seg = seg};
	bool fin_was_acked;
	/* RFC 7323 5.3 R1 (PAWS): a timestamp older than TS.Recent marks an
	 * old duplicate; it is answered with an ACK and dropped, unless the
	 * connection has been idle so long (24 days, 5.5) that the peer's
	 * clock may have wrapped. A segment without timestamps is taken, as
	 * Linux takes it. */
	bool ts_stale = now - c->ts_recent_at > 24ull * 86400 * 1000000;
	if (c->ts_ok && seg->opt.has_ts && !(seg->flags & BH_TCP_RST) && !ts_stale &&
	    (int32_t)(seg->opt.ts_val - c->ts_recent) < 0) {
		tcp->ctr.paws_drops++;
		c->ack_now = true;
		goto drop;
	}
	/* first: sequence number */
	if (!acceptable(tcp, c, seg, &in)) {
		tcp->ctr.out_of_window++;
		if (!(seg->flags & BH_TCP_RST))
			c->ack_now = true;
		goto drop;
	}
	/* RFC 7323 4.3 (3) and 5.3 R3: keep the timestamp of a segment
	 * that covers the last ACK we sent. */
	if (c->ts_ok && seg->opt.has_ts && bh_seq_leq(seg->seq, c->last_ack_sent) &&
	    ((int32_t)(seg->opt.ts_val - c->ts_recent) >= 0 || ts_stale)) {
		c->ts_recent = seg->opt.ts_val;
		c->ts_recent_at = now;
	}
	c->last_heard = now;
	c->ka_probes = 0;
	/* second: RST (RFC 5961 3.2) */
	if (seg->flags & BH_TCP_RST) {
		/* RFC 1337 (TIME-WAIT assassination, hazard H1): a reset does
		 * not cut TIME-WAIT short. */
		if (c->state == BH_TCP_TIME_WAIT) {
			tcp->ctr.rst_ignored++;
			goto drop;
		}
		if (seg->seq != c->rcv_nxt) {
			tcp->ctr.challenge_acks++;
			c->ack_now = true;
			goto drop;
		}
		tcp->ctr.rst_in++;
		release_all(tcp, rx);
		if (c->state == BH_TCP_SYN_RECEIVED && c->parent != NONE) {
			bh_tcp__finish(tcp, c, 0); /* back to LISTEN: the child goes */
			return;
		}
		int err = c->state == BH_TCP_SYN_RECEIVED   ? ECONNREFUSED
			  : c->state == BH_TCP_CLOSING || c->state == BH_TCP_LAST_ACK ||
				    c->state == BH_TCP_TIME_WAIT
				? 0
				: ECONNRESET;
		tcp->ctr.conn_resets++;
		bh_tcp__finish(tcp, c, err);
		return;
	}
	/* fourth: SYN (RFC 5961 4.2: a challenge ACK, whatever its number) */
	if (seg->flags & BH_TCP_SYN) {
		tcp->ctr.challenge_acks++;
		c->ack_now = true;
		goto drop;
	}
	/* fifth: ACK */
	if (!(seg->flags & BH_TCP_ACK))
		goto drop;
	if (c->state == BH_TCP_SYN_RECEIVED) {
		if (!bh_seq_lt(c->snd_una, seg->ack) || bh_seq_gt(seg->ack, c->snd_max)) {
			bh_tcp__reset_reply(tcp, rx->src, seg);
			goto drop;
		}
		c->state = BH_TCP_ESTABLISHED;
		c->snd_wnd = (uint32_t)seg->window << c->snd_wscale;
		c->max_snd_wnd = c->snd_wnd;
		c->snd_wl1 = seg->seq;
		c->snd_wl2 = seg->ack;
		if (c->parent != NONE) {
			bh_tcp__child_ready(tcp, c);
			bh_tcp__event(tcp, &tcp->conn[c->parent], BH_TCP_EV_ACCEPTABLE, 0);
		} else {
			bh_tcp__event(tcp, c, BH_TCP_EV_CONNECTED, 0);
		}
	}
	{
		bool drop = false;
		ack_processing(tcp, now, c, seg, &drop);
		if (drop)
			goto drop;
	}
	fin_was_acked = c->fin_queued && bh_seq_gt(c->snd_una, c->fin_seq);
	switch (c->state) {
	case BH_TCP_FIN_WAIT_1:
		if (fin_was_acked)
			c->state = BH_TCP_FIN_WAIT_2;
		break;
	case BH_TCP_CLOSING:
		if (fin_was_acked) {
			bh_tcp__enter_time_wait(tcp, c, now);
		}
		break;
	case BH_TCP_LAST_ACK:
		if (fin_was_acked) {
			release_all(tcp, rx);
			bh_tcp__finish(tcp, c, 0);
			return;
		}
		break;
	case BH_TCP_TIME_WAIT:
		/* A retransmitted FIN: acknowledge, restart 2 MSL. */
		if (seg->flags & BH_TCP_FIN) {
			c->ack_now = true;
			c->tw_at = now + (uint64_t)tcp->cfg.time_wait_ms * 1000;
		}
		goto drop;
	default:
		break;
	}
	/* sixth: URG - urgent data is delivered in line (RFC 6093); the
	 * pointer changes nothing in sequence accounting. */

	/* seventh: text */
	if (in.len) {
		if (c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_FIN_WAIT_1 ||
		    c->state == BH_TCP_FIN_WAIT_2) {
			bool in_order = in.seq == c->rcv_nxt;
			if (!in_order) {
				tcp->ctr.ooo_segs++;
				bh_tcp__sack_note(c, in.seq);
			}
			/* RFC 5681 4.2: a segment that fills a gap is ACKed at once. */
			bool filled_gap = in_order && c->oooq.count;
			queue_data(tcp, c, &in); /* advances rcv_nxt by what fits in order */
			if (in_order) {
				pull_ooo(tcp, c);
				/* RFC 9293 3.8.6.3 / RFC 1122 4.2.3.2: ACK at
				 * least every second full segment, else within
				 * delack_ms. */
				if (in.len >= c->smss)
					c->unacked++;
				if (c->unacked >= 2 || c->oooq.count || filled_gap)
					c->ack_now = true;
				else if (!c->delack_at)
					c->delack_at = now + (uint64_t)tcp->cfg.delack_ms * 1000;
				bh_tcp__event(tcp, c, BH_TCP_EV_READABLE, 0);
			} else {
				c->ack_now = true; /* RFC 5681 4.2: at once */
			}
		} else {
			release_all(tcp, rx);
		}
	} else {
		release_all(tcp, rx);
	}

	/* eighth: FIN, once everything before it has come; one that came
	 * ahead of a hole is remembered and taken when the hole fills. */
	if (in.fin && !c->fin_rcvd && bh_seq_gt(bh_seq_add(in.seq, in.len), c->rcv_nxt)) {
		c->fin_ahead = true;
		c->fin_ahead_seq = bh_seq_add(in.seq, in.len);
	}
	bool fin_now = (in.fin && bh_seq_add(in.seq, in.len) == c->rcv_nxt) ||
		       (c->fin_ahead && c->fin_ahead_seq == c->rcv_nxt);
	if (fin_now && !c->fin_rcvd) {
		c->fin_rcvd = true;
		c->rcv_nxt = bh_seq_add(c->rcv_nxt, 1);
		c->ack_now = true;
		bh_tcp__event(tcp, c, BH_TCP_EV_READABLE, 0);
		switch (c->state) {
		case BH_TCP_SYN_RECEIVED:
		case BH_TCP_ESTABLISHED:
			c->state = BH_TCP_CLOSE_WAIT;
			break;
		case BH_TCP_FIN_WAIT_1:
			if (c->fin_queued && bh_seq_gt(c->snd_una, c->fin_seq))
				bh_tcp__enter_time_wait(tcp, c, now);
			else
				c->state = BH_TCP_CLOSING;
			break;
		case BH_TCP_FIN_WAIT_2:
			bh_tcp__enter_time_wait(tcp, c, now);
			break;
		default:
			break;
		}
	}
	bh_tcp__output(tcp, c, now);
	return;
drop:
	release_all(tcp, rx);
	if (c->used && c->state != BH_TCP_CLOSED)
		bh_tcp__output(tcp, c, now);
}

void bh_tcp__segment(struct bh_tcp *tcp, uint64_t now, const struct bh_ip_rx *rx,
		     const struct bh_tcp_repr *seg)
{
	struct tconn *c = bh_tcp__lookup(tcp, rx->src, seg->sport, seg->dport);
	if (!c) {
		struct tconn *l = bh_tcp__listener(tcp, seg->dport);
		if (l && !l->app_closed) {
			listen_input(tcp, now, l, rx, seg);
			return;
		}
		tcp->ctr.no_conn++;
		bh_tcp__reset_reply(tcp, rx->src, seg);
		release_all(tcp, rx);
		return;
	}
	if (c->state == BH_TCP_SYN_SENT) {
		syn_sent_input(tcp, now, c, rx, seg);
		return;
	}
	synchronized_input(tcp, now, c, rx, seg);
}
