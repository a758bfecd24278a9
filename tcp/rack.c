/*
 * tcp/rack.c - loss detection by time: RACK-TLP (RFC 8985), for
 * connections with SACK.
 *
 * Each connection keeps send records (struct trec, tcp_impl.h): pieces of
 * [SND.UNA, SND.MAX) in order, each with the time it last went and what
 * became of it (SACKed, lost, resent). RACK reads them:
 *   - an ACK delivers records, cumulatively or by SACK; the latest-sent
 *     of them is RACK.xmit_ts (rack_sent), its RTT RACK.rtt (6.2 steps
 *     1-3; bh_tcp__rack_ack);
 *   - a record sent before that one and still missing a reordering window
 *     (reo_wnd) past RACK.rtt is lost (step 5; bh_tcp__rack_detect); one
 *     not yet that old arms the reordering timer. A retransmission is a
 *     record like any other, so a lost one is found the same way;
 *   - the records marked lost are what recovery sends (bh_tcp__next_lost)
 *     and what the pipe leaves out (bh_tcp__pipe), as RFC 8985 9.3 asks
 *     of RFC 6675;
 *   - TLP: with data out and no loss seen, a probe timeout (PTO, 2 SRTT)
 *     sends one segment, new or the last, so that a lost tail draws an
 *     ACK that RACK can use instead of waiting for the RTO (section 7).
 *
 * Call chain: ack.c bh_tcp__ack_processing -> bh_tcp__rack_ack,
 *             bh_tcp__rack_detect, bh_tcp__tlp_ack, bh_tcp__tlp_arm;
 *             tcp_out.c bh_tcp__xmit -> bh_tcp__rec_sent, bh_tcp__tlp_arm;
 *             timer.c bh_tcp_tick -> bh_tcp__rack_timeout, bh_tcp__tlp_fire.
 *
 * The records come from one store for all connections (tcp->rec). When
 * it runs dry a record is not split, or new data joins the last record:
 * the marks become coarser (counted in rec_short), never wrong in a way
 * that loses data; the RTO still covers everything.
 */
#include "tcp/tcp_impl.h"

#define DUPTHRESH 3 /* RFC 8985 6.2 step 4, as RFC 6675 */
#define MIN_RTT_WIN_US 10000000ull /* min_RTT's window: 10 s */
#define REO_PERSIST 16 /* RFC 8985 6.2 step 4 */
#define TLP_EXTRA_US 2000 /* PTO beyond 2 SRTT with more than a segment out (Linux) */

/* ---- the record store ---- */

/* Records one connection may hold: two per segment its send buffer
 * holds, and some. A peer SACKing odd ranges (a byte here and there)
 * splits records wherever its blocks end; past this the splits are
 * refused and the marks get coarser (rec_capped), so a peer can neither
 * take the store from other connections nor make each ACK's walk long
 * (Linux's answer to the same attack, CVE-2019-11478, limits
 * tcp_fragment the same way). */
static bool rec_room(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint32_t cap = 2 * (tcp->cfg.snd_buf / (c->smss ? c->smss : 536)) + 64;
	return c->recs.count < cap;
}

static uint32_t rec_alloc(struct bh_tcp *tcp)
{
	uint32_t i = tcp->rec_free;
	if (i == NONE) {
		tcp->ctr.rec_short++;
		return NONE;
	}
	tcp->rec_free = tcp->rec[i].next;
	tcp->recs_used++;
	return i;
}

static void rec_free(struct bh_tcp *tcp, uint32_t i)
{
	tcp->rec[i].next = tcp->rec_free;
	tcp->rec_free = i;
	tcp->recs_used--;
}

void bh_tcp__rec_drop(struct bh_tcp *tcp, struct tconn *c)
{
	for (uint32_t i = c->recs.head; i != NONE;) {
		uint32_t n = tcp->rec[i].next;
		rec_free(tcp, i);
		i = n;
	}
	c->recs = (struct trecq){NONE, NONE, 0};
}

static bh_seq rec_end(const struct trec *r) { return bh_seq_add(r->seq, r->len); }

/* Splits record i at `at` (inside it): i keeps the front, a new record
 * after it the rest, with the same time and marks. False when the store
 * is dry. */
static bool rec_split(struct bh_tcp *tcp, struct tconn *c, uint32_t i, bh_seq at)
{
	if (!rec_room(tcp, c)) {
		tcp->ctr.rec_capped++;
		return false;
	}
	uint32_t j = rec_alloc(tcp);
	if (j == NONE)
		return false;
	struct trec *r = &tcp->rec[i], *n = &tcp->rec[j];
	uint32_t front = bh_seq_span(r->seq, at);
	*n = *r;
	n->seq = at;
	n->len = r->len - front;
	r->len = front;
	r->next = j;
	if (c->recs.tail == i)
		c->recs.tail = j;
	c->recs.count++;
	return true;
}

/* New data [seq, seq + len) at SND.MAX, sent at now. */
static void rec_append(struct bh_tcp *tcp, struct tconn *c, bh_seq seq, uint32_t len,
		       uint64_t now)
{
	struct trec *t = c->recs.tail != NONE ? &tcp->rec[c->recs.tail] : NULL;
	/* One burst in one microsecond is one record: RACK cannot order
	 * its pieces by time anyway. */
	if (t && t->flags == 0 && t->sent == now && t->order == c->tx_order - 1 &&
	    rec_end(t) == seq) {
		t->len += len;
		t->order = c->tx_order;
		return;
	}
	uint32_t j = NONE;
	if (!t || rec_room(tcp, c))
		j = rec_alloc(tcp);
	else
		tcp->ctr.rec_capped++;
	if (j == NONE) {
		if (t && rec_end(t) == seq) { /* coarser: the tail grows, and is newer */
			t->len += len;
			t->sent = now;
			t->order = c->tx_order;
			t->flags |= BH_REC_COARSE;
		}
		return;
	}
	tcp->rec[j] = (struct trec){
	    .next = NONE, .seq = seq, .len = len, .flags = 0, .order = c->tx_order, .sent = now};
	if (t)
		t->next = j;
	else
		c->recs.head = j;
	c->recs.tail = j;
	c->recs.count++;
}

/* [l, r), below SND.MAX, was sent again at now. */
static void rec_resent(struct bh_tcp *tcp, struct tconn *c, bh_seq l, bh_seq r, uint64_t now)
{
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		struct trec *x = &tcp->rec[i];
		if (bh_seq_leq(rec_end(x), l))
			continue;
		if (!bh_seq_lt(x->seq, r))
			break;
		/* Only [l, r) is new: split off what is outside it (the next
		 * round of the loop finds the part from l). */
		if (bh_seq_lt(x->seq, l) && rec_split(tcp, c, i, l))
			continue;
		if (bh_seq_gt(rec_end(x), r))
			rec_split(tcp, c, i, r);
		x->sent = now;
		x->order = c->tx_order;
		x->flags |= BH_REC_RETRANS | BH_REC_AGAIN;
	}
}

void bh_tcp__rec_sent(struct bh_tcp *tcp, struct tconn *c, bh_seq seq, uint32_t len,
		      uint64_t now)
{
	if (!c->sack_ok || len == 0)
		return;
	c->tx_order++;
	bh_seq end = bh_seq_add(seq, len);
	if (bh_seq_lt(seq, c->snd_max)) {
		rec_resent(tcp, c, seq, bh_seq_min(end, c->snd_max), now);
		if (!bh_seq_gt(end, c->snd_max))
			return;
		seq = c->snd_max;
	}
	rec_append(tcp, c, seq, bh_seq_span(seq, end), now);
}

/* ---- RACK (RFC 8985 6) ---- */

/* RFC 8985 6.2's RACK_sent_after: sent later, or at once and higher.
 * "Later" is the order of transmission (tx_order), exact where the
 * clock is not; within one record (one burst), the higher number. */
static bool sent_after(uint32_t o1, bh_seq s1, uint32_t o2, bh_seq s2)
{
	return (int32_t)(o1 - o2) > 0 || (o1 == o2 && bh_seq_gt(s1, s2));
}

/* A windowed minimum: the least sample of the last MIN_RTT_WIN_US, or
 * the newest once the window has passed without a lower one. */
void bh_tcp__min_rtt_sample(struct tconn *c, uint32_t rtt, uint64_t now)
{
	if (rtt == 0)
		rtt = 1; /* 0: no sample yet */
	if (c->min_rtt == 0 || rtt <= c->min_rtt || now - c->min_rtt_at > MIN_RTT_WIN_US) {
		c->min_rtt = rtt;
		c->min_rtt_at = now;
	}
}

/* RFC 8985 6.2 steps 2 and 3 for a record delivered up to end. */
static void rack_update(struct tconn *c, const struct trec *r, bh_seq end, uint64_t now,
			const struct bh_tcp_repr *seg)
{
	/* Step 3: data delivered below the highest delivered, and sent
	 * once, came out of order. */
	if (bh_seq_gt(end, c->rack_fack))
		c->rack_fack = end;
	else if (bh_seq_lt(end, c->rack_fack) && !(r->flags & BH_REC_AGAIN))
		c->reord_seen = true;
	uint64_t d = now - r->sent;
	uint32_t rtt = d > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)d;
	if (r->flags & BH_REC_AGAIN) {
		/* Step 2: the ACK may be for an earlier copy: the echoed
		 * timestamp is older than the last copy's, or the time is
		 * shorter than any round trip. */
		uint32_t tsval = (uint32_t)(r->sent / 1000);
		if (c->ts_ok && seg->opt.has_ts && (int32_t)(seg->opt.ts_ecr - tsval) < 0)
			return;
		if (rtt < c->min_rtt)
			return;
	} else {
		bh_tcp__min_rtt_sample(c, rtt, now);
	}
	if (c->rack_sent == 0 || sent_after(r->order, end, c->rack_order, c->rack_end)) {
		c->rack_sent = r->sent;
		c->rack_order = r->order;
		c->rack_end = end;
		c->rack_rtt = rtt;
	}
}

void bh_tcp__rack_ack(struct bh_tcp *tcp, struct tconn *c, uint64_t now,
		      const struct bh_tcp_repr *seg)
{
	c->una_rtt = 0;
	if (!c->sack_ok)
		return;
	bh_seq ack = seg->ack;
	/* Cumulatively acknowledged: delivered (unless SACKed before), and
	 * gone; a record the ACK ends inside keeps its rest. The oldest of
	 * them not SACKed before gives the ACK's RTT for the RTO (ack.c, as
	 * Linux's seq_rtt from first_ackt), unless the ACK covers data sent
	 * more than once (Linux: FLAG_RETRANS_DATA_ACKED; the timestamp
	 * echo serves then) or a record whose time is too new for it. */
	bool rtt_ok = true;
	while (c->recs.head != NONE && bh_seq_gt(ack, c->snd_una)) {
		uint32_t i = c->recs.head;
		struct trec *r = &tcp->rec[i];
		if (!bh_seq_gt(ack, r->seq))
			break;
		bh_seq end = rec_end(r);
		if (!(r->flags & BH_REC_SACKED))
			rack_update(c, r, bh_seq_min(end, ack), now, seg);
		if (r->flags & (BH_REC_AGAIN | BH_REC_COARSE))
			rtt_ok = false;
		else if (!(r->flags & BH_REC_SACKED) && c->una_rtt == 0) {
			uint64_t d = now - r->sent;
			c->una_rtt = d == 0 ? 1 : d > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)d;
		}
		if (bh_seq_gt(end, ack)) {
			r->len = bh_seq_span(ack, end);
			r->seq = ack;
			break;
		}
		c->recs.head = r->next;
		if (c->recs.tail == i)
			c->recs.tail = NONE;
		c->recs.count--;
		rec_free(tcp, i);
	}
	if (!rtt_ok)
		c->una_rtt = 0;
	/* Newly SACKed: the records against the scoreboard, both sorted. */
	unsigned b = 0;
	for (uint32_t i = c->recs.head; i != NONE && b < c->nsb; i = tcp->rec[i].next) {
		struct trec *r = &tcp->rec[i];
		if (r->flags & BH_REC_SACKED)
			continue;
		while (b < c->nsb && bh_seq_leq(c->sb[b].r, r->seq))
			b++;
		if (b == c->nsb || bh_seq_leq(rec_end(r), c->sb[b].l))
			continue;
		/* It overlaps range b: only the part inside is SACKed (the
		 * next round finds a part split off at the range's start). */
		if (bh_seq_lt(r->seq, c->sb[b].l)) {
			rec_split(tcp, c, i, c->sb[b].l);
			continue;
		}
		if (bh_seq_gt(rec_end(r), c->sb[b].r) && !rec_split(tcp, c, i, c->sb[b].r))
			continue;
		r->flags |= BH_REC_SACKED;
		rack_update(c, r, rec_end(r), now, seg);
	}
	if (bh_seq_lt(c->rack_fack, ack))
		c->rack_fack = ack;
}

/* RFC 8985 6.2 step 4. */
static uint32_t reo_wnd(const struct tconn *c)
{
	if (!c->reord_seen) {
		if (c->in_recovery || c->rto_recover)
			return 0;
		/* DupThresh segments SACKed, counted in bytes as RFC 6675's
		 * IsLost() does */
		if (bh_tcp__sb_sacked(c) > (DUPTHRESH - 1) * (uint32_t)c->smss)
			return 0;
	}
	uint64_t w = (uint64_t)c->min_rtt / 4 * (c->reo_mult ? c->reo_mult : 1);
	if (c->srtt && w > c->srtt)
		w = c->srtt;
	return (uint32_t)w;
}

uint32_t bh_tcp__rack_detect(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->reo_at = 0;
	if (!c->sack_ok || c->rack_sent == 0)
		return 0;
	/* Nothing SACKed and no recovery: all that was delivered was
	 * acknowledged cumulatively, and what is left was sent after it
	 * (in order of sequence, as nothing was resent): no walk. */
	if (c->nsb == 0 && !c->in_recovery && !c->rto_recover)
		return 0;
	uint64_t reo = reo_wnd(c), wait = 0;
	uint32_t lost = 0;
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		struct trec *r = &tcp->rec[i];
		if (r->flags & BH_REC_SACKED)
			continue;
		/* lost and not yet sent again: nothing more to find */
		if ((r->flags & (BH_REC_LOST | BH_REC_RETRANS)) == BH_REC_LOST)
			continue;
		if (sent_after(r->order, rec_end(r), c->rack_order, c->rack_end))
			continue;
		uint64_t due = r->sent + c->rack_rtt + reo;
		if (due > now) {
			if (due > wait)
				wait = due;
			continue;
		}
		if ((r->flags & (BH_REC_LOST | BH_REC_RETRANS)) == (BH_REC_LOST | BH_REC_RETRANS))
			tcp->ctr.lost_retransmits++;
		r->flags = (uint8_t)((r->flags | BH_REC_LOST) & ~BH_REC_RETRANS);
		tcp->ctr.rack_lost++;
		lost += r->len;
	}
	/* RFC 8985 6.2 step 5: the timer for the latest of those not yet
	 * old enough; its expiry finds them all. */
	if (wait) {
		c->reo_at = wait;
		bh_tcp__armed(tcp, wait);
	}
	return lost;
}

void bh_tcp__rack_timeout(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->reo_at = 0;
	tcp->ctr.rack_reo_timeouts++;
	if (bh_tcp__rack_detect(tcp, c, now) && !c->in_recovery && !c->rto_recover)
		bh_tcp__recovery_by_timer(tcp, now, c);
	bh_tcp__output(tcp, c, now);
}

bool bh_tcp__rack_head_lost(struct bh_tcp *tcp, struct tconn *c)
{
	uint32_t i = c->recs.head;
	if (i == NONE || (tcp->rec[i].flags & (BH_REC_LOST | BH_REC_SACKED)))
		return false;
	uint32_t most = c->smss;
	if (tcp->rec[i].len > most)
		rec_split(tcp, c, i, bh_seq_add(tcp->rec[i].seq, most));
	tcp->rec[i].flags = (uint8_t)((tcp->rec[i].flags | BH_REC_LOST) & ~BH_REC_RETRANS);
	tcp->ctr.rack_lost++;
	return true;
}

void bh_tcp__rack_all_lost(struct bh_tcp *tcp, struct tconn *c)
{
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next)
		tcp->rec[i].flags = (uint8_t)((tcp->rec[i].flags & BH_REC_AGAIN) | BH_REC_LOST);
}

/* RFC 8985 6.2 step 4: D-SACKs widen the reordering window, once per
 * round trip; recoveries without them narrow it back. */
void bh_tcp__rack_dsack(struct tconn *c)
{
	if (c->dsack_round_on && !bh_seq_lt(c->snd_una, c->dsack_round))
		c->dsack_round_on = false;
	if (c->dsack_round_on)
		return;
	c->dsack_round_on = true;
	c->dsack_round = c->snd_max;
	if (c->reo_mult < 16)
		c->reo_mult++;
	c->reo_persist = REO_PERSIST;
}

void bh_tcp__rack_recovery_over(struct tconn *c)
{
	if (c->reo_persist && --c->reo_persist == 0)
		c->reo_mult = 1;
}

uint32_t bh_tcp__pipe(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint32_t pipe = 0;
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		const struct trec *r = &tcp->rec[i];
		if (r->flags & BH_REC_SACKED)
			continue;
		if (!(r->flags & BH_REC_LOST))
			pipe += r->len;
		if (r->flags & BH_REC_RETRANS)
			pipe += r->len;
	}
	return pipe;
}

bool bh_tcp__next_lost(const struct bh_tcp *tcp, const struct tconn *c, bh_seq *seq, uint32_t *max)
{
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		const struct trec *r = &tcp->rec[i];
		if ((r->flags & (BH_REC_LOST | BH_REC_RETRANS | BH_REC_SACKED)) == BH_REC_LOST) {
			*seq = r->seq;
			*max = r->len;
			return true;
		}
	}
	return false;
}

/* Bytes of [l, r) in records sent more than once (undo, ack.c). */
uint32_t bh_tcp__rec_again_bytes(const struct bh_tcp *tcp, const struct tconn *c, bh_seq l,
				 bh_seq r)
{
	uint32_t n = 0;
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		const struct trec *x = &tcp->rec[i];
		if (!bh_seq_lt(x->seq, r))
			break;
		bh_seq a = bh_seq_max(x->seq, l), b = bh_seq_min(rec_end(x), r);
		if ((x->flags & BH_REC_AGAIN) && bh_seq_lt(a, b))
			n += bh_seq_span(a, b);
	}
	return n;
}

/* ---- TLP (RFC 8985 7) ---- */

static bool tlp_state(const struct tconn *c)
{
	return c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_CLOSE_WAIT ||
	       c->state == BH_TCP_FIN_WAIT_1 || c->state == BH_TCP_CLOSING ||
	       c->state == BH_TCP_LAST_ACK;
}

/* 7.2: a probe only with SACK, data out, no recovery under way, nothing
 * SACKed (RACK's timer covers that), and no probe out already (one per
 * flight). */
static bool tlp_allowed(const struct tconn *c)
{
	return c->sack_ok && tlp_state(c) && !c->in_recovery && !c->rto_recover && !c->tlp_out &&
	       c->nsb == 0 && c->snd_wnd > 0 && bh_seq_lt(c->snd_una, c->snd_max);
}

void bh_tcp__tlp_arm(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->tlp_at = 0;
	if (!tlp_allowed(c))
		return;
	/* 7.2: PTO = 2 SRTT, and with one segment out time for the peer's
	 * delayed ACK (the RTO's floor, as Linux adds); no SRTT: 1 s. */
	uint64_t pto = 1000000;
	if (c->srtt) {
		bool one = bh_seq_span(c->snd_una, c->snd_max) <= c->smss;
		pto = 2ull * c->srtt + (one ? (uint64_t)tcp->cfg.rto_min_ms * 1000 : TLP_EXTRA_US);
	}
	uint64_t at = now + pto;
	/* Never after the RTO: the probe goes first, and restarts it
	 * (Linux: min(PTO, RTO)). */
	if (c->rtx_at && at > c->rtx_at)
		at = c->rtx_at;
	c->tlp_at = at;
	bh_tcp__armed(tcp, at);
}

void bh_tcp__tlp_fire(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->tlp_at = 0;
	if (!tlp_allowed(c))
		return;
	c->tlp_out = true; /* before sending: new data sent does not re-arm */
	uint32_t n = 0;
	/* 7.3: new data if the window lets a segment go ... */
	bh_seq edge = bh_seq_add(c->snd_una, c->snd_wnd);
	bool more = bh_seq_lt(c->snd_max, bh_tcp__data_end(c)) || bh_tcp__fin_owed(c);
	if (more && bh_seq_gt(edge, c->snd_max)) {
		uint32_t room = bh_seq_span(c->snd_max, edge);
		bh_seq was = c->snd_max;
		n = bh_tcp__xmit(tcp, c, now, c->snd_max, room < c->smss ? room : c->smss);
		if (c->snd_nxt == was)
			c->snd_nxt = c->snd_max;
		c->tlp_retrans = false;
	}
	/* ... else the last segment sent, again (with the FIN if it went). */
	if (!n) {
		bh_seq top = bh_seq_min(c->snd_max, bh_tcp__data_end(c));
		bh_seq start = bh_tcp__data_start(c);
		bh_seq from = bh_seq_span(start, top) > c->smss ? top - c->smss : start;
		n = bh_tcp__xmit(tcp, c, now, from, bh_seq_span(from, top));
		c->tlp_retrans = true;
	}
	if (n) {
		tcp->ctr.tlp_probes++;
		c->tlp_end = c->snd_max;
	} else {
		c->tlp_out = false;
	}
	/* 7.3: the RTO starts again from the probe. */
	c->rtx_at = now + c->rto;
	bh_tcp__armed(tcp, c->rtx_at);
}

void bh_tcp__tlp_ack(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq ack,
		     bool una_moved, bool dsack, bool sacked)
{
	if (!c->tlp_out || bh_seq_lt(ack, c->tlp_end))
		return;
	/* 7.4: a probe of new data, or one D-SACKed (both copies came),
	 * hid no loss; nor did a duplicate ACK of a probe's number. */
	if (!c->tlp_retrans || dsack) {
		c->tlp_out = false;
	} else if (bh_seq_gt(ack, c->tlp_end)) {
		/* Past the probe, no D-SACK: the probe repaired a loss
		 * (7.4.2), and congestion control answers it as a fast
		 * recovery would, once. */
		c->tlp_out = false;
		tcp->ctr.tlp_recoveries++;
		if (!c->in_recovery && !c->rto_recover) {
			c->ssthresh = c->cc->ssthresh(c, c->cwnd, now);
			if (c->cwnd > c->ssthresh)
				c->cwnd = c->ssthresh;
			c->undo_on = false; /* a late undo must not take this back */
		}
	} else if (!una_moved && !sacked) {
		c->tlp_out = false;
	}
}
