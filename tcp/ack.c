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

#define RTT_FX 16 /* srtt_fx, rttvar_fx: 1/65536 us */

/* A round-trip sample r (us) into SRTT, RTTVAR and the RTO: RFC 6298
 * 2.2 and 2.3 (alpha 1/8, beta 1/4, K 4), the gains divided by the
 * samples expected per round trip (`per_rtt`) when every ACK gives one
 * (RFC 7323 Appendix G: ExpectedSamples = ceil(FlightSize / (2 SMSS))),
 * so that a window's worth of samples moves the estimate as one round
 * trip's single sample did, and RTTVAR does not shrink to nothing. */
static void rtt_update(struct bh_tcp *tcp, struct tconn *c, uint32_t r, uint32_t per_rtt)
{
	if (r == 0)
		r = 1;
	int64_t x = (int64_t)r << RTT_FX;
	if (c->srtt == 0) {
		c->srtt_fx = (uint64_t)x;
		c->rttvar_fx = (uint64_t)x / 2;
	} else {
		int64_t s = (int64_t)c->srtt_fx, v = (int64_t)c->rttvar_fx;
		int64_t d = x > s ? x - s : s - x;
		v += (d - v) / (4 * (int64_t)per_rtt);
		s += (x - s) / (8 * (int64_t)per_rtt);
		c->rttvar_fx = (uint64_t)v;
		c->srtt_fx = (uint64_t)(s > 0 ? s : 1);
	}
	c->srtt = (uint32_t)(c->srtt_fx >> RTT_FX);
	if (c->srtt == 0)
		c->srtt = 1;
	c->rttvar = (uint32_t)(c->rttvar_fx >> RTT_FX);
	uint64_t rto = (uint64_t)c->srtt + 4ull * c->rttvar;
	uint64_t lo = (uint64_t)tcp->cfg.rto_min_ms * 1000, hi = (uint64_t)tcp->cfg.rto_max_ms * 1000;
	c->rto = (uint32_t)(rto < lo ? lo : rto > hi ? hi : rto);
}

/* A round-trip sample from the segment timed (rtt_start; Karn's rule:
 * never a segment sent twice), into SRTT, RTTVAR and the RTO. */
void bh_tcp__rtt_sample(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	uint64_t r64 = now - c->rtt_start;
	uint32_t r = r64 > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)r64;
	bh_tcp__min_rtt_sample(c, r ? r : 1, now);
	rtt_update(tcp, c, r, 1);
	c->rtt_timing = false;
}

/* The round trip an ACK that moved SND.UNA measures, us (0: none): from
 * the send records, the oldest data it acknowledged that was sent once
 * (c->una_rtt, from bh_tcp__rack_ack; exact to the microsecond); or from
 * the timestamp it echoes (RFC 7323 4.2, on ACKs that move the left
 * edge only), which is good for a resend too, since the echo is of the
 * copy that arrived: Karn's ambiguity is gone (RFC 7323 4.1). The
 * timestamp clock ticks in ms; an echo from this tick counts as one
 * (Linux: tcp_rtt_tsopt_us). An echo from the future, or older than the
 * longest RTO, is no sample. */
static uint32_t ack_rtt(const struct bh_tcp *tcp, const struct tconn *c, uint64_t now,
			const struct bh_tcp_repr *seg)
{
	if (c->una_rtt)
		return c->una_rtt;
	if (!c->ts_ok || !seg->opt.has_ts || seg->opt.ts_ecr == 0)
		return 0;
	uint32_t ticks = (uint32_t)(now / 1000) - seg->opt.ts_ecr;
	if ((int32_t)ticks < 0 || ticks > tcp->cfg.rto_max_ms)
		return 0;
	uint64_t us = (uint64_t)(ticks ? ticks : 1) * 1000u;
	return us > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)us;
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

/* Loss recovery starts (RFC 5681 3.2): the algorithm sets ssthresh.
 * With SACK, RACK has marked what is lost, PRR (RFC 6937) paces the
 * window down to ssthresh from the flight now (RecoverFS), and
 * bh_tcp__output() resends the lost records (RFC 6675 5 (C) with RACK's
 * marks, RFC 8985 9.3); without, NewReno (RFC 6582 3.2). */
void bh_tcp__enter_recovery(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	uint32_t flight = bh_seq_span(c->snd_una, c->snd_max);
	/* Undo's state (ssthresh as Linux's tcp_current_ssthresh: at least
	 * three quarters of the window in use). What is already out more
	 * than once (a probe's resend, say) counts from the start, as
	 * Linux's undo_retrans starts from retrans_out: its D-SACK proves
	 * nothing of this recovery's resends. */
	c->undo_on = c->sack_ok;
	c->undo_dsacked = false;
	c->undo_marker = c->snd_una;
	c->undo_bytes = c->sack_ok ? bh_tcp__rec_again_bytes(tcp, c, c->snd_una, c->snd_max) : 0;
	c->prior_cwnd = c->cwnd;
	uint32_t three_q = (c->cwnd >> 1) + (c->cwnd >> 2);
	c->prior_ssthresh = c->ssthresh > three_q ? c->ssthresh : three_q;
	c->ssthresh = c->cc->ssthresh(c, bh_tcp__loss_flight(c), now);
	c->in_recovery = true;
	c->recover = c->snd_max;
	c->lt = 0;
	c->rtt_timing = false; /* Karn: the timed segment may be resent */
	c->tlp_out = false;    /* RFC 8985 7.4: recovery ends a probe's episode */
	c->tlp_at = 0;
	tcp->ctr.fast_retransmits++;
	if (c->sack_ok) {
		tcp->ctr.sack_recoveries++;
		c->prr_delivered = c->prr_out = 0;
		c->recover_fs = flight ? flight : 1;
		return;
	}
	resend_head(tcp, now, c);
	c->cwnd = c->ssthresh + 3u * c->smss;
}

/* Takes a recovery's cut back once it is over, if every byte it resent
 * came back D-SACKed: the peer had it all, the resends were needless
 * (reordering, or a delay), and so was the cut. The window goes back to
 * what it was (Linux: tcp_undo_cwnd_reduction). */
static void try_undo(struct bh_tcp *tcp, struct tconn *c)
{
	if (!c->undo_on || !c->undo_dsacked || c->undo_bytes || c->in_recovery || c->rto_recover)
		return;
	if (c->cwnd < c->prior_cwnd)
		c->cwnd = c->prior_cwnd;
	if (c->ssthresh < c->prior_ssthresh)
		c->ssthresh = c->prior_ssthresh;
	c->undo_on = false;
	tcp->ctr.undos++;
}

/* A D-SACK [l, r) (RFC 2883) against the recovery being judged. Only
 * what lies at or above its undo_marker can be what it resent: a block
 * below was resent before it (an earlier recovery's). Above SND.UNA the
 * send records say which bytes went more than once, and only those
 * count; below it they are gone, and every byte counts (Linux: "dumb
 * counting" for forgotten data). The block ends at SND.MAX at most
 * (nothing was sent beyond), and the bytes counted are no more than
 * are still to be accounted for. A marker a gigabyte behind is let go
 * before sequence numbers wrap around it. */
static void undo_dsack(struct bh_tcp *tcp, struct tconn *c, bh_seq l, bh_seq r)
{
	if (!c->undo_on)
		return;
	if (bh_seq_span(c->undo_marker, c->snd_una) > (1u << 30)) {
		c->undo_on = false;
		return;
	}
	r = bh_seq_min(r, c->snd_max);
	if (bh_seq_lt(l, c->undo_marker) || !bh_seq_lt(l, r) || c->undo_bytes == 0)
		return;
	uint32_t n = 0;
	if (bh_seq_lt(l, c->snd_una))
		n += bh_seq_span(l, bh_seq_min(r, c->snd_una));
	if (bh_seq_gt(r, c->snd_una))
		n += bh_tcp__rec_again_bytes(tcp, c, bh_seq_max(l, c->snd_una), r);
	if (n == 0)
		return;
	c->undo_bytes -= n < c->undo_bytes ? n : c->undo_bytes;
	c->undo_dsacked = true;
	try_undo(tcp, c);
}

/* RFC 6937 3: the window for what this ACK (or timer) lets recovery
 * send: in proportion to what was delivered while the pipe is above
 * ssthresh (ssthresh / RecoverFS of it), then no more than a slow start
 * back up to ssthresh (PRR-SSRB). The first resend always goes (RFC
 * 6937bis: the fast retransmit itself). `delivered`: bytes newly
 * acknowledged or SACKed (DeliveredData). */
static void prr_window(struct bh_tcp *tcp, struct tconn *c, uint32_t delivered)
{
	c->prr_delivered += delivered;
	uint32_t pipe = bh_tcp__pipe(tcp, c);
	uint64_t sndcnt;
	if (pipe > c->ssthresh) {
		uint64_t want = ((uint64_t)c->prr_delivered * c->ssthresh + c->recover_fs - 1) /
				c->recover_fs;
		sndcnt = want > c->prr_out ? want - c->prr_out : 0;
	} else {
		uint64_t lim = c->prr_delivered > c->prr_out ? c->prr_delivered - c->prr_out : 0;
		if (lim < delivered)
			lim = delivered;
		lim += c->smss;
		sndcnt = c->ssthresh - pipe;
		if (sndcnt > lim)
			sndcnt = lim;
	}
	if (c->prr_out == 0 && sndcnt < c->smss)
		sndcnt = c->smss;
	uint64_t w = pipe + sndcnt;
	c->cwnd = w > BH_TCP_CWND_MAX ? BH_TCP_CWND_MAX : (uint32_t)w;
}

/* The reordering timer found a loss (rack.c): recovery starts without an
 * ACK, and its first resend goes. */
void bh_tcp__recovery_by_timer(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	bh_tcp__enter_recovery(tcp, now, c);
	if (c->sack_ok)
		prr_window(tcp, c, 0);
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
static void advance_una(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			const struct bh_tcp_repr *seg)
{
	bh_seq ack = seg->ack;
	/* What this round trip's ACKs answer: the flight, no more than the
	 * window (after a timeout, one segment, not the whole old flight). */
	uint32_t flight = bh_tcp__loss_flight(c);
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
	bh_tcp__sb_trim(c);
	/* An RTT from every ACK that has one (RFC 7323 4); Karn's timed
	 * segment where none has (no SACK records, no timestamps). */
	uint32_t r = ack_rtt(tcp, c, now, seg);
	if (r) {
		uint32_t per_rtt = (flight + 2u * c->smss - 1) / (2u * c->smss);
		rtt_update(tcp, c, r, per_rtt ? per_rtt : 1);
		c->rtt_timing = false;
	} else if (c->rtt_timing && bh_seq_geq(ack, c->rtt_seq)) {
		bh_tcp__rtt_sample(tcp, c, now);
	}
	c->backoff = 0;
	/* RFC 6298 5.2, 5.3 */
	c->rtx_at = bh_seq_lt(c->snd_una, c->snd_max) ? now + c->rto : 0;
	bh_tcp__armed(tcp, c->rtx_at);
	/* Everything acknowledged: keep-alive runs again (its deadline
	 * was dropped while data was out), and the next tick must see it. */
	if (!c->rtx_at && c->keepalive)
		bh_tcp__armed(tcp, bh_tcp__ka_due(c));
	if (c->rto_recover && bh_seq_geq(ack, c->recover)) {
		c->rto_recover = false;
		bh_tcp__rack_recovery_over(c);
	}
	if (!c->rtx_at)
		bh_tcp__rack_stop(c); /* nothing out: nothing to find or probe */
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
			bh_tcp__rack_recovery_over(c);
			uint32_t flight = bh_seq_span(c->snd_una, c->snd_max);
			uint32_t cap = c->sack_ok ? c->ssthresh : flight + c->smss;
			c->cwnd = c->ssthresh < cap ? c->ssthresh : cap;
			try_undo(tcp, c);
		} else if (!c->sack_ok) {
			/* RFC 6582 3.2 (5): partial ACK: resend the next
			 * hole, deflate. */
			c->cwnd = c->cwnd > acked ? c->cwnd - acked + c->smss : c->smss;
			resend_head(tcp, now, c);
		}
		/* With SACK, PRR sets the window after this ACK and
		 * bh_tcp__output() resends what RACK marked lost. */
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
static void new_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c, const struct bh_tcp_repr *seg)
{
	bh_seq ack = seg->ack;
	uint32_t acked = bh_seq_span(c->snd_una, ack);
	bool was_lost = c->rto_recover;
	advance_una(tcp, now, c, seg);
	new_ack_cwnd(tcp, now, c, acked, was_lost);
	c->dupacks = 0;
	c->lt = 0;
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

/* A duplicate ACK. Without SACK the third starts recovery (RFC 5681 3.2,
 * RFC 6582), not again before a timeout's recovery point (RFC 6582
 * 4.1); with SACK, RACK decides (bh_tcp__ack_processing), unless the
 * peer, SACK agreed, sends no blocks (a middlebox may strip them): then
 * the third marks the first segment lost, as RFC 5681 would. The first
 * two let limited transmit send (RFC 3042). */
static void dup_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	tcp->ctr.dup_acks++;
	c->dupacks++;
	bool third = !c->in_recovery && !c->rto_recover && c->dupacks >= 3;
	if (third && c->sack_ok && c->nsb == 0 && bh_tcp__rack_head_lost(tcp, c)) {
		bh_tcp__enter_recovery(tcp, now, c);
	} else if (third && !c->sack_ok) {
		bh_tcp__enter_recovery(tcp, now, c);
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

/* With SACK, after the ACK's own processing: RACK marks what it shows
 * lost (RFC 8985 6.2), which starts recovery outside one (RFC 8985 9.3,
 * in place of RFC 6675's DupThresh); a probe's episode learns from it
 * (7.4); PRR sets the window in recovery (RFC 6937); the probe timeout
 * starts again (7.2). delivered: bytes newly acknowledged or SACKed. */
static void rack_after_ack(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_tcp_repr *seg, bool una_moved, uint32_t newly_sacked,
			   uint32_t delivered)
{
	bool dsack = bh_tcp__is_dsack(&seg->opt, seg->ack);
	if (dsack) {
		tcp->ctr.dsacks_in++;
		bh_tcp__rack_dsack(c);
		undo_dsack(tcp, c, seg->opt.sack[0].left, seg->opt.sack[0].right);
	}
	bool lost = bh_tcp__rack_detect(tcp, c, now) > 0;
	bh_tcp__tlp_ack(tcp, c, now, seg->ack, una_moved, dsack, newly_sacked > 0);
	/* Marked lost in a recovery that has ended, and not yet resent:
	 * a loss of its own (as Linux re-enters recovery on lost_out). */
	bh_seq s;
	uint32_t m;
	if (!lost && !c->in_recovery && !c->rto_recover && c->nsb)
		lost = bh_tcp__next_lost(tcp, c, &s, &m);
	bool started = lost && !c->in_recovery && !c->rto_recover;
	if (started)
		bh_tcp__enter_recovery(tcp, now, c);
	if (c->in_recovery)
		prr_window(tcp, c, delivered);
	if (una_moved || newly_sacked)
		bh_tcp__tlp_arm(tcp, c, now);
}

bool bh_tcp__ack_processing(struct bh_tcp *tcp, uint64_t now, struct tconn *c,
			   const struct bh_tcp_repr *seg)
{
	bh_seq ack = seg->ack;
	if (ack_unacceptable(tcp, c, ack))
		return false;
	uint32_t wnd = (uint32_t)seg->window << c->snd_wscale;
	bh_seq una = c->snd_una;
	uint32_t sacked_before = bh_tcp__sb_sacked(c);
	uint32_t newly_sacked = sack_input(tcp, c, seg);
	bh_tcp__rack_ack(tcp, c, now, seg);
	bool una_moved = bh_seq_gt(ack, una);
	if (una_moved)
		new_ack(tcp, now, c, seg);
	else if (is_dup_ack(c, seg, wnd, newly_sacked))
		dup_ack(tcp, now, c);
	if (c->sack_ok && c->state != BH_TCP_CLOSED) {
		/* RFC 6937's DeliveredData: SND.UNA's move, plus the change
		 * in bytes SACKed (what the ACK passed leaves the count). */
		uint64_t d = (uint64_t)bh_seq_span(una, c->snd_una) + bh_tcp__sb_sacked(c);
		uint32_t delivered = d > sacked_before ? (uint32_t)(d - sacked_before) : 0;
		rack_after_ack(tcp, now, c, seg, una_moved, newly_sacked, delivered);
	}
	/* RFC 1122 4.2.2.17: while the peer answers zero-window probes the
	 * connection stays up, however long the window stays shut. */
	if (wnd == 0 && ack == c->snd_una)
		c->backoff = 0;
	window_update(c, seg, wnd);
	return true;
}
