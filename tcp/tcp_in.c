/*
 * tcp/tcp_in.c - segment arrival, RFC 9293 3.10.7 in its order, from
 * bh_tcp__segment:
 *   3.10.7.1 CLOSED (no connection): answer with a reset
 *   3.10.7.2 LISTEN: a SYN makes a SYN-RECEIVED child (listen_input)
 *   3.10.7.3 SYN-SENT (syn_sent_input)
 *   3.10.7.4 everything else (synchronized_input), one function a step:
 *            check_seq (with PAWS), check_rst (RFC 5961 3), check_syn
 *            (RFC 5961 4), check_ack (RFC 5961 5; the ACK field itself
 *            is ack.c's bh_tcp__ack_processing), URG (nothing to do),
 *            process_text, process_fin
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
 * parser has already ignored those of the wrong length (tcp_wire.c). */
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
	c->seg_max = tcp->cfg.seg_max / c->smss * c->smss;
	/* RFC 5681 3.1 (RFC 3390): initial window 10 segments as Linux
	 * (RFC 6928). */
	c->cwnd = 10u * c->smss;
	c->ssthresh = UINT32_MAX;
	c->recover = c->snd_una;
	c->rack_fack = c->rack_end = c->snd_una;
	c->last_heard = now;
}

/* ---- 3.10.7.2 LISTEN ---- */

static uint8_t our_wscale(const struct bh_tcp *tcp)
{
	uint8_t w = 0;
	while (w < BH_TCP_MAX_WSCALE && (tcp->cfg.rcv_buf_max >> w) > 65535)
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
			  .rport = seg->sport, .parent = NONE, .rcv_space = tcp->cfg.rcv_buf};
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
			bh_tcp__rtt_sample(tcp, c, now);
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
		uint64_t bound = BH_TCP_RCV_MEM(c);
		bool room = c->rcvq.mem + c->oooq.mem + p.size <= bound;
		bool mem = bh_tcp__mem_ok(tcp, p.size);
		while (in_order && (!room || !mem) && prune_ooo(tcp, c)) {
			room = c->rcvq.mem + c->oooq.mem + p.size <= bound;
			mem = bh_tcp__mem_ok(tcp, p.size);
		}
		/* The total bound is shared by all connections: in-order data
		 * takes memory from anybody's out-of-order data too, and a
		 * connection with nothing in order queued takes one buffer
		 * past the bound (Linux: sk_forced_mem_schedule), so that
		 * every connection moves while others hold the memory.
		 * Otherwise each connection's next in-order segment is
		 * dropped for memory the others' holes pin, every sender
		 * backs off towards its maximum RTO, and nothing moves for
		 * minutes. */
		while (in_order && room && !mem && bh_tcp__prune_any(tcp, NULL))
			mem = bh_tcp__mem_ok(tcp, p.size);
		if (in_order && room && !mem && c->rcvq.head == NONE) {
			mem = true;
			tcp->ctr.mem_forced++;
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
		if (p.size > 0) {
			uint64_t x = (uint64_t)p.len * BH_TCP_FILL_ONE / p.size;
			if (x > BH_TCP_FILL_ONE)
				x = BH_TCP_FILL_ONE;
			/* the first piece seeds it; then 1/8 of each sample */
			uint64_t f = c->rcv_fill == 0 ? x : (7ull * c->rcv_fill + x) / 8;
			c->rcv_fill = (uint32_t)(f < BH_TCP_FILL_MIN ? BH_TCP_FILL_MIN : f);
		}
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

/* ---- 3.10.7.4: the steps in order ---- */

/* How one step ends. */
enum step {
	STEP_NEXT, /* on to the next step */
	STEP_DROP, /* the segment goes (an ACK asked for with ack_now is sent) */
	STEP_DONE, /* the segment is used up and the connection may be gone */
};

/* RFC 7323 5.3 R1 (PAWS): a timestamp older than TS.Recent marks an old
 * duplicate; it is answered with an ACK and dropped, unless the
 * connection has been idle so long (24 days, 5.5: ts_stale) that the
 * peer's clock may have wrapped. A segment without timestamps is taken,
 * as Linux takes it. */
static bool paws_reject(struct bh_tcp *tcp, struct tconn *c, const struct bh_tcp_repr *seg,
			bool ts_stale)
{
	if (!c->ts_ok || !seg->opt.has_ts || (seg->flags & BH_TCP_RST) || ts_stale ||
	    (int32_t)(seg->opt.ts_val - c->ts_recent) >= 0)
		return false;
	tcp->ctr.paws_drops++;
	c->ack_now = true;
	return true;
}

/* A duplicate of [l, r) came: the next ACK reports it first (RFC 2883 4,
 * a D-SACK), with SACK. */
static void note_dsack(struct tconn *c, bh_seq l, bh_seq r)
{
	if (!c->sack_ok)
		return;
	c->dsack_owed = true;
	c->dsack_l = l;
	c->dsack_r = r;
	c->ack_now = true;
}

/* first: check the sequence number (after PAWS); fills *in with the
 * acceptable part of the segment. */
static enum step check_seq(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_tcp_repr *seg, struct in *in)
{
	bool ts_stale = now - c->ts_recent_at > 24ull * 86400 * 1000000;
	if (paws_reject(tcp, c, seg, ts_stale))
		return STEP_DROP;
	if (!acceptable(tcp, c, seg, in)) {
		tcp->ctr.out_of_window++;
		if (!(seg->flags & BH_TCP_RST))
			c->ack_now = true;
		/* Data we hold already: a D-SACK says so (RFC 2883 4). */
		bh_seq end = bh_seq_add(seg->seq, seg->payload_len);
		if (seg->payload_len && !(seg->flags & (BH_TCP_RST | BH_TCP_SYN)) &&
		    bh_seq_leq(end, c->rcv_nxt) && bh_seq_span(end, c->rcv_nxt) < (1u << 30))
			note_dsack(c, seg->seq, end);
		return STEP_DROP;
	}
	if (in->skip)
		note_dsack(c, in->seq - in->skip, in->seq);
	/* RFC 7323 4.3 (3) and 5.3 R3: keep the timestamp of a segment
	 * that covers the last ACK we sent. */
	if (c->ts_ok && seg->opt.has_ts && bh_seq_leq(seg->seq, c->last_ack_sent) &&
	    ((int32_t)(seg->opt.ts_val - c->ts_recent) >= 0 || ts_stale)) {
		c->ts_recent = seg->opt.ts_val;
		c->ts_recent_at = now;
	}
	c->last_heard = now;
	c->ka_probes = 0;
	return STEP_NEXT;
}

/* second: the RST bit (RFC 5961 3.2): a reset at exactly RCV.NXT ends
 * the connection; one elsewhere in the window draws a challenge ACK. */
static enum step check_rst(struct bh_tcp *tcp, struct tconn *c, const struct bh_ip_rx *rx,
			   const struct bh_tcp_repr *seg)
{
	if (!(seg->flags & BH_TCP_RST))
		return STEP_NEXT;
	/* RFC 1337 (TIME-WAIT assassination, hazard H1): a reset does
	 * not cut TIME-WAIT short. */
	if (c->state == BH_TCP_TIME_WAIT) {
		tcp->ctr.rst_ignored++;
		return STEP_DROP;
	}
	if (seg->seq != c->rcv_nxt) {
		tcp->ctr.challenge_acks++;
		c->ack_now = true;
		return STEP_DROP;
	}
	tcp->ctr.rst_in++;
	release_all(tcp, rx);
	if (c->state == BH_TCP_SYN_RECEIVED && c->parent != NONE) {
		bh_tcp__finish(tcp, c, 0); /* back to LISTEN: the child goes */
		return STEP_DONE;
	}
	int err = c->state == BH_TCP_SYN_RECEIVED   ? ECONNREFUSED
		  : c->state == BH_TCP_CLOSING || c->state == BH_TCP_LAST_ACK ||
				    c->state == BH_TCP_TIME_WAIT
			? 0
			: ECONNRESET;
	tcp->ctr.conn_resets++;
	bh_tcp__finish(tcp, c, err);
	return STEP_DONE;
}

/* fourth: the SYN bit (RFC 5961 4.2: a challenge ACK, whatever its
 * number). */
static enum step check_syn(struct bh_tcp *tcp, struct tconn *c, const struct bh_tcp_repr *seg)
{
	if (!(seg->flags & BH_TCP_SYN))
		return STEP_NEXT;
	tcp->ctr.challenge_acks++;
	c->ack_now = true;
	return STEP_DROP;
}

/* SYN-RECEIVED: an ACK of our SYN (SND.UNA < SEG.ACK =< SND.NXT) makes
 * the connection ESTABLISHED; any other draws a reset. Returns false when
 * the segment is to be dropped. */
static bool syn_received_ack(struct bh_tcp *tcp, struct tconn *c, const struct bh_ip_rx *rx,
			     const struct bh_tcp_repr *seg)
{
	if (!bh_seq_lt(c->snd_una, seg->ack) || bh_seq_gt(seg->ack, c->snd_max)) {
		bh_tcp__reset_reply(tcp, rx->src, seg);
		return false;
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
	return true;
}

/* The ACK field's effect on the closing states: our FIN acknowledged
 * moves FIN-WAIT-1, CLOSING and LAST-ACK on; TIME-WAIT answers a
 * retransmitted FIN. */
static enum step ack_closing_states(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
				    const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	bool fin_was_acked = c->fin_queued && bh_seq_gt(c->snd_una, c->fin_seq);
	switch (c->state) {
	case BH_TCP_FIN_WAIT_1:
		if (fin_was_acked) {
			c->state = BH_TCP_FIN_WAIT_2;
			bh_tcp__fin_wait2(tcp, c, now);
		}
		return STEP_NEXT;
	case BH_TCP_CLOSING:
		if (fin_was_acked)
			bh_tcp__enter_time_wait(tcp, c, now);
		return STEP_NEXT;
	case BH_TCP_LAST_ACK:
		if (fin_was_acked) {
			release_all(tcp, rx);
			bh_tcp__finish(tcp, c, 0);
			return STEP_DONE;
		}
		return STEP_NEXT;
	case BH_TCP_TIME_WAIT:
		/* A retransmitted FIN: acknowledge, restart 2 MSL. */
		if (seg->flags & BH_TCP_FIN) {
			c->ack_now = true;
			c->tw_at = now + (uint64_t)tcp->cfg.time_wait_ms * 1000;
			bh_tcp__armed(tcp, c->tw_at);
		}
		return STEP_DROP;
	default:
		return STEP_NEXT;
	}
}

/* fifth: the ACK field (RFC 5961 5); a segment without ACK is dropped. */
static enum step check_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	if (!(seg->flags & BH_TCP_ACK))
		return STEP_DROP;
	if (c->state == BH_TCP_SYN_RECEIVED && !syn_received_ack(tcp, c, rx, seg))
		return STEP_DROP;
	if (!bh_tcp__ack_processing(tcp, now, c, seg))
		return STEP_DROP;
	return ack_closing_states(tcp, now, c, rx, seg);
}

/* seventh: the segment text, in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2;
 * in the other states, and when there is none, its pieces are released. */
static void process_text(struct bh_tcp *tcp, uint64_t now, struct tconn *c, const struct in *in)
{
	if (!in->len || !(c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_FIN_WAIT_1 ||
			  c->state == BH_TCP_FIN_WAIT_2)) {
		release_all(tcp, in->rx);
		return;
	}
	bool in_order = in->seq == c->rcv_nxt;
	if (!in_order) {
		tcp->ctr.ooo_segs++;
		bh_tcp__sack_note(c, in->seq);
	}
	/* RFC 5681 4.2: a segment that fills a gap is ACKed at once. */
	bool filled_gap = in_order && c->oooq.count;
	queue_data(tcp, c, in); /* advances rcv_nxt by what fits in order */
	if (!in_order) {
		c->ack_now = true; /* RFC 5681 4.2: at once */
		return;
	}
	pull_ooo(tcp, c);
	bh_tcp__rcv_rtt_note(c, now);
	/* RFC 9293 3.8.6.3 / RFC 1122 4.2.3.2: ACK at least every second
	 * full segment, else within delack_ms. */
	if (in->len >= c->smss)
		c->unacked += in->len >= 2u * c->smss ? 2 : 1; /* a large segment: at once */
	if (c->unacked >= 2 || c->oooq.count || filled_gap)
		c->ack_now = true;
	else if (!c->delack_at) {
		c->delack_at = now + (uint64_t)tcp->cfg.delack_ms * 1000;
		bh_tcp__armed(tcp, c->delack_at);
	}
	bh_tcp__event(tcp, c, BH_TCP_EV_READABLE, 0);
}

/* eighth: the FIN bit, once everything before it has come; one that came
 * ahead of a hole is remembered and taken when the hole fills. */
static void process_fin(struct bh_tcp *tcp, uint64_t now, struct tconn *c, const struct in *in)
{
	bh_seq end = bh_seq_add(in->seq, in->len);
	if (in->fin && !c->fin_rcvd && bh_seq_gt(end, c->rcv_nxt)) {
		c->fin_ahead = true;
		c->fin_ahead_seq = end;
	}
	bool fin_now = (in->fin && end == c->rcv_nxt) ||
		       (c->fin_ahead && c->fin_ahead_seq == c->rcv_nxt);
	if (!fin_now || c->fin_rcvd)
		return;
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

/* A segment for a synchronized connection (SYN-RECEIVED and after). */
static void synchronized_input(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			       const struct bh_ip_rx *rx, const struct bh_tcp_repr *seg)
{
	struct in in = {.rx = rx, .seg = seg};
	enum step st = check_seq(tcp, now, c, seg, &in);
	if (st == STEP_NEXT)
		st = check_rst(tcp, c, rx, seg);
	if (st == STEP_NEXT)
		st = check_syn(tcp, c, seg);
	if (st == STEP_NEXT)
		st = check_ack(tcp, now, c, rx, seg);
	if (st == STEP_DONE)
		return;
	if (st == STEP_DROP) {
		release_all(tcp, rx);
		if (c->used && c->state != BH_TCP_CLOSED)
			bh_tcp__output(tcp, c, now);
		return;
	}
	/* RFC 1122 4.2.2.13 (Linux: TCPAbortOnData): new data after the
	 * application closed can never be read, and saying so at once
	 * frees both ends; queueing it would hold the buffer until the
	 * peer gave up. */
	if (c->app_closed && in.len &&
	    (c->state == BH_TCP_FIN_WAIT_1 || c->state == BH_TCP_FIN_WAIT_2)) {
		tcp->ctr.abort_on_data++;
		tcp->ctr.conn_resets++;
		release_all(tcp, rx);
		bh_tcp__send_rst(tcp, c);
		bh_tcp__finish(tcp, c, 0);
		return;
	}
	/* sixth: URG - urgent data is delivered in line (RFC 6093); the
	 * pointer changes nothing in sequence accounting. */
	process_text(tcp, now, c, &in);
	process_fin(tcp, now, c, &in);
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
