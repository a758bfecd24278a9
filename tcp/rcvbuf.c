/*
 * tcp/rcvbuf.c - receive-buffer auto-tuning: a connection's receive
 * buffer (c->rcv_space, the bound of the window it advertises) grows from
 * cfg.rcv_buf towards cfg.rcv_buf_max with what the connection delivers
 * to the application in a round trip, so a long fat path is not held to
 * the starting buffer's window per round trip, and a slow or idle
 * connection keeps the small one. Linux's dynamic right-sizing
 * (tcp_rcv_space_adjust, after Fisher's DRS) does the same; the rules
 * below are its rules, in this library's terms.
 *
 * Call chain: tcp_in.c process_text -> bh_tcp__rcv_rtt_note (in-order data)
 *             api.c bh_tcp_recv -> bh_tcp__rcv_tune (data to the app)
 *
 * The round trip, as the receiver sees it: the farthest edge advertised
 * by time t (RCV.ADV) can be passed only by data the peer sent after an
 * ACK that left here after t (the first to offer more), so the time until
 * RCV.NXT passes it (goes beyond: data up to it may have been on its way
 * at t) is a round trip or more
 * (more when the sender was not using the whole window: the first edge,
 * a whole starting window, takes a sender in slow start three round
 * trips or so). The estimate is the least of these samples (Linux:
 * tcp_rcv_rtt_measure) and of the connection's own SRTT where it has one
 * (a receiver's comes from its handshake where that was timed, a clean
 * round trip, or from what it sends; Linux takes timestamps' samples
 * for the same end, which a 1 ms clock cannot give on sub-millisecond
 * paths). A peer that sends past the edge it was offered shortens the
 * samples, and so the measure, but cannot take the buffer past
 * rcv_buf_max.
 *
 * The buffer: once per estimated round trip, with `copied` the bytes the
 * application took in it, and only when that is more than any earlier
 * round trip took (the window is then what limits, or the rate grows),
 * and than ten segments (a sender's first window, RFC 6928):
 *   want = 2 x copied + 16 segments (a loss's round trip of recovery with
 *          the window still full, and some slack),
 *   plus twice want x the growth since the last round trip measured (a
 *          sender in slow start doubles each round trip, and the window
 *          offered now serves the next one; not after the first, whose
 *          interval is the first estimate's, often longer than a round
 *          trip, against the ten segments assumed),
 * no more than cfg.rcv_buf_max or what the window field can offer
 * (65535 << the scale agreed: a peer without window scaling gains
 * nothing past 64 KiB), and not while the memory all queues pin
 * (tcp->mem_used, with the growth's own share) would pass half the total
 * bound (cfg.mem): growth held back is counted (rcvbuf_held). The buffer
 * never shrinks: a window offered is never taken back (RFC 7323 2.4).
 */
#include "tcp/tcp_impl.h"

/* Segments of slack in the buffer wanted (Linux: 16 x advmss; here our
 * MSS, cfg.mss, which the peer cannot make small). */
#define TUNE_SLACK_SEGS 16u
/* What the first round trip is measured against: the initial window a
 * sender starts with (RFC 6928's ten segments; Linux: TCP_INIT_CWND). */
#define TUNE_FIRST_SEGS 10u

void bh_tcp__rcv_rtt_note(struct tconn *c, uint64_t now)
{
	if (c->rtt_from != 0 && bh_seq_gt(c->rcv_nxt, c->rtt_edge)) {
		uint64_t d = now - c->rtt_from;
		uint32_t sample = d == 0 ? 1 : d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
		if (c->rcv_rtt == 0 || sample < c->rcv_rtt)
			c->rcv_rtt = sample;
		c->rtt_from = 0;
	}
	/* Start a sample on an edge still ahead (none while the window is
	 * shut: no edge to pass). */
	if (c->rtt_from == 0 && bh_seq_gt(c->rcv_adv, c->rcv_nxt)) {
		c->rtt_edge = c->rcv_adv;
		c->rtt_from = now;
	}
}

void bh_tcp__rcv_tune(struct bh_tcp *tcp, struct tconn *c, uint64_t now, uint32_t taken)
{
	c->taken += taken;
	if (c->tune_from == 0) { /* the first measure starts after this read */
		c->tune_from = now;
		c->tune_mark = c->taken;
		return;
	}
	uint32_t rtt = c->rcv_rtt;
	if (c->srtt && (rtt == 0 || c->srtt < rtt))
		rtt = c->srtt;
	if (rtt == 0 || now - c->tune_from < rtt)
		return;
	uint64_t copied = c->taken - c->tune_mark;
	bool first = c->tune_last == 0;
	uint32_t mss = tcp->cfg.mss;
	uint32_t last = first ? TUNE_FIRST_SEGS * mss : c->tune_last;
	c->tune_mark = c->taken;
	c->tune_from = now;
	if (copied <= last)
		return;
	uint32_t was_last = c->tune_last;
	c->tune_last = copied > UINT32_MAX ? UINT32_MAX : (uint32_t)copied;
	uint64_t most = (uint64_t)65535 << c->rcv_wscale;
	if (most > tcp->cfg.rcv_buf_max)
		most = tcp->cfg.rcv_buf_max;
	if (c->rcv_space >= most)
		return;
	uint64_t want = 2 * copied + (uint64_t)TUNE_SLACK_SEGS * mss;
	if (!first)
		want += 2 * (want * (copied - last) / last);
	if (want > most)
		want = most;
	if (want <= c->rcv_space)
		return;
	/* BH_TCP_RCV_MEM: the memory bound grows by twice the buffer's
	 * growth. */
	if (tcp->mem_used + 2 * (want - c->rcv_space) > tcp->cfg.mem / 2) {
		/* held: this round trip is not the mark to beat, so that a
		 * connection the window holds back grows once memory frees */
		c->tune_last = was_last;
		tcp->ctr.rcvbuf_held++;
		return;
	}
	c->rcv_space = (uint32_t)want;
	tcp->ctr.rcvbuf_grown++;
}
