/*
 * tcp/ack.c - the ACK field of a segment that arrives in ESTABLISHED or a
 * state after it: RFC 9293 3.10.7.4's fifth step once SYN-RECEIVED is
 * behind, called from tcp_in.c (bh_tcp__ack_processing). In order:
 *   acceptability (RFC 5961 5.2), the peer's SACK blocks (RFC 2018,
 *   RFC 6675), new data acknowledged (the send queue, SND.UNA, the RTT
 *   and RTO of RFC 6298, the congestion window of RFC 5681 and RFC 9438,
 *   leaving recovery: RFC 6582, RFC 6675) or a duplicate ACK (fast
 *   retransmit and entering recovery: RFC 5681 3.2, RFC 6582, RFC 6675;
 *   limited transmit: RFC 3042), and the send window update.
 *
 * What is sent as a result goes from bh_tcp__output() after the whole
 * segment is processed, except the one segment that recovery resends at
 * once (resend_head).
 */
#include "tcp/tcp_impl.h"

/* A round-trip sample from the segment timed (rtt_start), into SRTT,
 * RTTVAR and the RTO. */
void bh_tcp__rtt_sample(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
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

/* RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <=
 * SND.NXT; an ACK of data never sent, or older than that, gets an ACK
 * back and the segment is dropped. */
static bool ack_unacceptable(struct bh_tcp *tcp, struct tconn *c, bh_seq ack)
{
	if (bh_seq_gt(ack, c->snd_max) ||
	    bh_seq_lt(ack, c->snd_una - (c->max_snd_wnd ? c->max_snd_wnd : 1))) {
		tcp->ctr.bad_acks++;
		c->ack_now = true;
		return true;
	}
	return false;
}

/* The peer's SACK blocks into the scoreboard (RFC 2018, RFC 6675 4);
 * returns the bytes newly SACKed. */
static uint32_t sack_input(struct bh_tcp *tcp, struct tconn *c, const struct bh_tcp_repr *seg)
{
	if (!c->sack_ok || !seg->opt.nsack)
		return 0;
	unsigned bad = 0;
	tcp->ctr.sack_blocks_in += seg->opt.nsack;
	uint32_t newly_sacked = bh_tcp__sb_update(c, &seg->opt, seg->ack, &bad);
	tcp->ctr.sack_bad_blocks += bad;
	return newly_sacked;
}

/* SND.UNA < SEG.ACK: what the ACK covers leaves the send queue and SND.UNA
 * moves up to it; an RTT sample is taken and the retransmission timer
 * restarted or stopped. */
static void advance_una(struct bh_tcp *tcp, uint64_t now, struct tconn *c, bh_seq ack)
{
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
		bh_tcp__rtt_sample(tcp, c, now);
	c->backoff = 0;
	/* RFC 6298 5.2, 5.3 */
	c->rtx_at = bh_seq_lt(c->snd_una, c->snd_max) ? now + c->rto : 0;
	bh_tcp__armed(tcp, c->rtx_at);
	/* Everything acknowledged: keep-alive runs again (its deadline
	 * was dropped while data was out), and the next tick must see it. */
	if (!c->rtx_at && c->keepalive)
		bh_tcp__armed(tcp, bh_tcp__ka_due(c));
	if (c->rto_recover && bh_seq_geq(ack, c->recover))
		c->rto_recover = false;
}

/* The congestion window after an ACK of new data (acked bytes; was_lost:
 * a timeout's recovery was under way when it came): recovery ends or, in
 * NewReno, a partial ACK resends the next hole; outside recovery the
 * algorithm grows the window, if the window was in use. */
static void new_ack_cwnd(struct bh_tcp *tcp, uint64_t now, struct tconn *c, uint32_t acked,
			 bool was_lost)
{
	if (c->in_recovery) {
		if (bh_seq_geq(c->snd_una, c->recover)) {
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
}

/* An ACK of new data (SND.UNA < SEG.ACK <= SND.NXT). */
static void new_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c, bh_seq ack,
		    uint32_t newly_sacked)
{
	uint32_t acked = bh_seq_span(c->snd_una, ack);
	bool was_lost = c->rto_recover;
	advance_una(tcp, now, c, ack);
	new_ack_cwnd(tcp, now, c, acked, was_lost);
	c->dupacks = 0;
	c->lt = 0;
	/* RFC 6675 2 and 5 (b): an ACK that moves the cumulative point
	 * and SACKs more can show a loss by itself. */
	if (!c->in_recovery && !c->rto_recover && newly_sacked && bh_tcp__is_lost(c, c->snd_una) &&
	    bh_seq_lt(c->snd_una, c->snd_max))
		enter_recovery(tcp, now, c);
	bh_tcp__event(tcp, c, BH_TCP_EV_WRITABLE, 0);
}

/* RFC 5681 2 (duplicate ACK): SEG.ACK = SND.UNA with data outstanding,
 * and no data, SYN, FIN or window change; with SACK, an ACK that SACKs
 * something new (RFC 6675 2, DupAck). wnd is the segment's window,
 * scaled. */
static bool is_dup_ack(const struct tconn *c, const struct bh_tcp_repr *seg, uint32_t wnd,
		       uint32_t newly_sacked)
{
	if (seg->ack != c->snd_una || !bh_seq_lt(c->snd_una, c->snd_max))
		return false;
	if (c->sack_ok && seg->opt.nsack)
		return newly_sacked > 0;
	return seg->payload_len == 0 && !(seg->flags & (BH_TCP_SYN | BH_TCP_FIN)) &&
	       wnd == c->snd_wnd;
}

static void dup_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
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

/* RFC 9293 3.10.7.4: the send window is updated from a newer segment
 * (SND.WL1 < SEG.SEQ, or SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK). */
static void window_update(struct tconn *c, const struct bh_tcp_repr *seg, uint32_t wnd)
{
	if (!(bh_seq_lt(c->snd_wl1, seg->seq) ||
	      (c->snd_wl1 == seg->seq && bh_seq_leq(c->snd_wl2, seg->ack))))
		return;
	/* The window opens while a probe byte is out: the peer dropped
	 * it; send from SND.UNA now rather than at the next timeout. */
	if (c->snd_wnd == 0 && wnd > 0 && bh_seq_gt(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	c->snd_wnd = wnd;
	if (wnd > c->max_snd_wnd)
		c->max_snd_wnd = wnd;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = seg->ack;
}

bool bh_tcp__ack_processing(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_tcp_repr *seg)
{
	bh_seq ack = seg->ack;
	if (ack_unacceptable(tcp, c, ack))
		return false;
	uint32_t wnd = (uint32_t)seg->window << c->snd_wscale;
	uint32_t newly_sacked = sack_input(tcp, c, seg);
	if (bh_seq_gt(ack, c->snd_una))
		new_ack(tcp, now, c, ack, newly_sacked);
	else if (is_dup_ack(c, seg, wnd, newly_sacked))
		dup_ack(tcp, now, c);
	/* RFC 1122 4.2.2.17: while the peer answers zero-window probes the
	 * connection stays up, however long the window stays shut. */
	if (wnd == 0 && ack == c->snd_una)
		c->backoff = 0;
	window_update(c, seg, wnd);
	return true;
}
