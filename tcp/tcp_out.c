/*
 * tcp/tcp_out.c - building and sending segments: the send loop (windows,
 * congestion window, Nagle, silly window avoidance, limited transmit),
 * SACK recovery's NextSeg() loop, SYN and FIN, ACKs with SACK blocks,
 * resets, keepalive probes, the retransmission and persist timer, and the
 * receive window we advertise.
 *
 * Call chain: bh_tcp__output -> send_loop | sack_loop -> bh_tcp__xmit
 *                            -> bh_tcp__emit -> ops.output
 *             bh_tcp__timeout -> back off -> send_loop | bh_tcp__output
 */
#include <string.h>

#include "ip/checksum.h"
#include "tcp/tcp_impl.h"

/* RFC 7323 4.1 (and Linux): a 1 ms timestamp clock. */
static uint32_t ts_now(uint64_t now) { return (uint32_t)(now / 1000); }

/* The window: the bytes the receive buffer has room for, and no more
 * than the buffer memory left to the connection (BH_TCP_RCV_MEM, which
 * queue_data enforces) holds at the payload per buffer byte seen so far.
 * A peer sending small segments into large buffers (1448 bytes in 16 KiB
 * RX buffers, or 100-byte writes in 2 KiB ones) is offered what will be
 * kept, rather than a window whose data is dropped for memory: each such
 * drop costs a retransmission, and a run of them timeouts backed off to
 * minutes (Linux sizes its window from scaling_ratio the same way). */
/* Payload bytes the connection's receive bound still holds with `mem`
 * of it pinned, at the fill seen so far. */
static uint64_t mem_fits(const struct bh_tcp *tcp, const struct tconn *c, uint64_t mem)
{
	uint64_t bound = BH_TCP_RCV_MEM(c);
	uint64_t fill = c->rcv_fill ? c->rcv_fill : BH_TCP_FILL_START;
	return mem >= bound ? 0 : (bound - mem) * fill / BH_TCP_FILL_ONE;
}

uint32_t bh_tcp__rcv_window(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint32_t used = c->rcvq.bytes + c->oooq.bytes;
	uint32_t space = used >= c->rcv_space ? 0 : c->rcv_space - used;
	uint64_t fits = mem_fits(tcp, c, (uint64_t)c->rcvq.mem + c->oooq.mem);
	return fits < space ? (uint32_t)fits : space;
}

/* How far the right edge must move before it is worth offering (RFC
 * 9293 3.8.6.2.2: a segment, or half the buffer), and no more than half
 * the largest window the memory can hold at the fill seen: where that is
 * under a segment, a reader's window update would otherwise never be
 * worth sending, and the peer would wait on its persist timer. */
uint32_t bh_tcp__rcv_step(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint32_t step = c->rcv_space / 2 < c->smss ? c->rcv_space / 2 : c->smss;
	uint64_t reach = mem_fits(tcp, c, 0) / 2;
	if (reach < step)
		step = reach > 0 ? (uint32_t)reach : 1;
	return step;
}

/* The window field for a segment, and the right edge it promises.
 * RFC 9293 3.8.6.2.2 (receiver side silly window avoidance): the edge
 * moves only by at least min(buffer / 2, MSS); RFC 7323 2.4 / RFC 1122
 * 4.2.2.16: it never moves left. */
static uint16_t window_field(struct bh_tcp *tcp, struct tconn *c, bool syn)
{
	uint32_t space = bh_tcp__rcv_window(tcp, c);
	if (syn) /* RFC 7323 2.2: the SYN's window is never scaled */
		return (uint16_t)(space > 65535 ? 65535 : space);
	bh_seq edge = bh_seq_add(c->rcv_nxt, space);
	uint32_t step = bh_tcp__rcv_step(tcp, c);
	if (bh_seq_lt(edge, c->rcv_adv) ||
	    (bh_seq_gt(edge, c->rcv_adv) && bh_seq_span(c->rcv_adv, edge) < step &&
	     bh_seq_gt(c->rcv_adv, c->rcv_nxt)))
		edge = c->rcv_adv;
	if (bh_seq_lt(edge, c->rcv_nxt))
		edge = c->rcv_nxt;
	uint32_t span = bh_seq_span(c->rcv_nxt, edge);
	uint32_t w = span >> c->rcv_wscale;
	/* The shift rounds down; where that would take back part of the
	 * edge already offered, round up instead (Linux: tcp_select_window
	 * aligns up). Otherwise every ACK that holds the edge moves it left
	 * by up to 2^wscale - 1 bytes, and a window held by memory rather
	 * than by bytes (bh_tcp__rcv_window) then cuts off data the peer
	 * was offered. */
	if (bh_seq_lt(bh_seq_add(c->rcv_nxt, w << c->rcv_wscale), c->rcv_adv))
		w = (span + (1u << c->rcv_wscale) - 1) >> c->rcv_wscale;
	if (w > 65535)
		w = 65535;
	/* What the field really says, after the shift's rounding. */
	c->rcv_adv = bh_seq_add(c->rcv_nxt, w << c->rcv_wscale);
	return (uint16_t)w;
}

/* Takes [seq, seq + len) of the send queue for a segment: copied to
 * dst, or, with `ch`, named in it instead (a send chain, ip/ip.h), which
 * fails (false, the caller copies) when it takes more than BH_CHAIN_MAX
 * buffers. With `sum`, adds the bytes' checksum to *sum in the same pass,
 * each piece at its offset from the payload's start (fused with the
 * copy, or a read pass for a chain). The walk starts at the buffer the
 * last one ended in (c->snd_cur) when that is not past seq, so sending a
 * window costs one pass, not one per segment. */
static bool take_payload(struct bh_tcp *tcp, struct tconn *c, bh_seq seq, uint32_t len,
			 uint8_t *dst, struct bh_chain *ch, uint32_t *sum)
{
	uint32_t at = 0, n = 0, total = 0;
	uint32_t i = c->sndq.head;
	if (c->snd_cur != NONE && bh_seq_leq(tcp->seg[c->snd_cur].seq, seq))
		i = c->snd_cur;
	for (; i != NONE && len; i = tcp->seg[i].next) {
		const struct tseg *s = &tcp->seg[i];
		c->snd_cur = i;
		bh_seq end = bh_seq_add(s->seq, s->len);
		if (bh_seq_leq(end, seq))
			continue;
		uint32_t from = bh_seq_span(s->seq, seq);
		uint32_t k = s->len - from < len ? s->len - from : len;
		const uint8_t *src = bh_pkt_data(&s->pkt) + from;
		uint32_t piece = 0;
		if (ch) {
			if (n == BH_CHAIN_MAX)
				return false;
			ch->piece[n++] = (struct bh_chain_piece){
			    .handle = s->pkt.handle, .off = s->pkt.off + from, .len = k};
			if (sum)
				piece = bh_csum_partial(src, k, 0);
		} else if (sum) {
			piece = bh_csum_copy(dst + at, src, k, 0);
		} else {
			memcpy(dst + at, src, k);
		}
		if (sum)
			total = bh_csum_add_at(total, piece, at & 1);
		at += k;
		len -= k;
		seq = bh_seq_add(seq, k);
	}
	if (ch) {
		if (len)
			return false; /* the queue ends first: not for a chain */
		ch->magic = BH_CHAIN_MAGIC;
		ch->n = n;
		ch->payload = at;
		ch->reserved = 0;
	}
	if (sum)
		*sum = bh_csum_add_at(*sum, total, false);
	return true;
}

/* The checksum over the pseudo-header and the segment at p's off (its
 * first hlen bytes summed here, the payload's sum taken by take_payload), or
 * only the pseudo-header's part where the device completes it. The
 * header's length is a multiple of 4, so the payload starts even. */
static void fill_checksum(const struct bh_tcp *tcp, bh_ip4 raddr, struct bh_pkt *p,
			  uint32_t hlen, uint32_t payload_sum)
{
	uint8_t *h = bh_pkt_data(p);
	if (tcp->cfg.csum_offload) {
		bh_l4_partial(h, p->len, BH_IPPROTO_TCP, tcp->cfg.addr, raddr);
		p->csum = BH_CSUM_PARTIAL;
		return;
	}
	uint32_t sum = bh_ipv4_pseudo_sum(tcp->cfg.addr, raddr, BH_IPPROTO_TCP, (uint16_t)p->len);
	sum = bh_csum_add_at(bh_csum_partial(h, hlen, sum), payload_sum, false);
	uint16_t ck = bh_csum_fold(sum);
	memcpy(h + 16, &ck, 2);
}

bool bh_tcp__emit(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq seq, uint8_t flags,
		  uint32_t len)
{
	struct bh_pkt p;
	/* Out of buffers: out-of-order data is the one thing held that can
	 * be given up (RFC 2018 8); without it, two ends sharing a pool can
	 * each wait for the other's buffers forever. */
	bool got = tcp->ops.alloc(tcp->ctx, &p);
	if (!got && bh_tcp__prune_any(tcp, c))
		got = tcp->ops.alloc(tcp->ctx, &p);
	if (got &&
	    (p.off > p.size || p.size - p.off < BH_TCP_MAX_HLEN + len || p.off < BH_IP_HEADROOM)) {
		tcp->ops.release(tcp->ctx, &p);
		got = false;
	}
	if (!got) {
		/* What was not sent is sent when buffers come back
		 * (bh_tcp_buffers_back), not only when a timer or the peer
		 * next calls: an ACK stays owed (ack_now), data waits. */
		tcp->ctr.no_buffers++;
		c->nobuf = true;
		tcp->nobuf_any = true;
		return false;
	}
	bool syn = flags & BH_TCP_SYN;
	struct bh_tcp_repr t = {
		.sport = c->lport,
		.dport = c->rport,
		.seq = seq,
		.ack = (flags & BH_TCP_ACK) ? c->rcv_nxt : 0,
		.flags = flags,
	};
	t.window = (flags & BH_TCP_RST) && !(flags & BH_TCP_ACK) ? 0 : window_field(tcp, c, syn);
	if (syn) {
		bool synack = flags & BH_TCP_ACK;
		t.opt.has_mss = true;
		t.opt.mss = tcp->cfg.mss;
		/* RFC 7323 2.2, 3.2 and RFC 2018 2: offer in a SYN; in a
		 * SYN-ACK only what the peer offered. */
		t.opt.has_wscale = synack ? c->ws_ok : !tcp->cfg.no_wscale;
		t.opt.wscale = c->rcv_wscale;
		t.opt.sack_ok = synack ? c->sack_ok : !tcp->cfg.no_sack;
		t.opt.has_ts = synack ? c->ts_ok : !tcp->cfg.no_timestamps;
	} else {
		t.opt.has_ts = c->ts_ok && !(flags & BH_TCP_RST);
		/* RFC 2018 3: three blocks fit beside timestamps, four
		 * without; a D-SACK first (RFC 2883 4), once. */
		if ((flags & BH_TCP_ACK) && !(flags & BH_TCP_RST)) {
			unsigned max = t.opt.has_ts ? 3 : 4, k = 0;
			if (c->dsack_owed) { /* only set with SACK (note_dsack) */
				t.opt.sack[k++] = (struct bh_sack_block){c->dsack_l, c->dsack_r};
				c->dsack_owed = false;
				tcp->ctr.dsacks_out++;
			}
			t.opt.nsack = (uint8_t)(k + bh_tcp__sack_blocks(tcp, c, t.opt.sack + k, max - k));
		}
	}
	t.opt.ts_val = ts_now(now);
	t.opt.ts_ecr = c->ts_recent;
	uint8_t *h = bh_pkt_data(&p);
	unsigned hlen = bh_tcp_emit(h, &t);
	/* Where TCP sums the segment itself, the payload's sum is taken as
	 * it is copied: one pass over it, not two. */
	uint32_t payload_sum = 0;
	bh_seq from = syn ? bh_seq_add(seq, 1) : seq;
	uint32_t *sum = tcp->cfg.csum_offload ? NULL : &payload_sum;
	/* A chain lives in the buffer's last bytes, behind the header. */
	if (len && tcp->cfg.send_chain && p.size >= sizeof(struct bh_chain) &&
	    p.off + hlen <= bh_chain_at(p.size) &&
	    take_payload(tcp, c, from, len, NULL, (struct bh_chain *)(p.base + bh_chain_at(p.size)),
			 sum)) {
		p.chain = true;
		tcp->ctr.chain_bytes += len;
		tcp->ctr.chain_segs++;
	} else if (len) {
		take_payload(tcp, c, from, len, h + hlen, NULL, sum);
		tcp->ctr.copy_bytes += len;
	}
	p.len = hlen + len;
	p.gso = len > c->smss ? c->smss : 0;
	fill_checksum(tcp, c->raddr, &p, hlen, payload_sum);
	if (p.csum != BH_CSUM_PARTIAL)
		tcp->ctr.csum_bytes += len;
	tcp->ctr.segs_out++;
	if (flags & BH_TCP_RST)
		tcp->ctr.rst_out++;
	if (flags & BH_TCP_ACK) {
		c->last_ack_sent = c->rcv_nxt;
		c->ack_now = false;
		c->unacked = 0;
		c->delack_at = 0;
	}
	tcp->ops.output(tcp->ctx, &p, c->raddr);
	return true;
}

/* The number a segment without data carries: the highest sent, not
 * SND.NXT, which a timeout winds back (the peer has those numbers
 * already and would drop the segment as old, ACK field unread; both
 * sides doing so trade ACKs forever); but never past the window the peer
 * offered, as Linux's tcp_acceptable_seq(). */
bh_seq bh_tcp__ack_seq(const struct tconn *c)
{
	bh_seq edge = bh_seq_add(c->snd_una, c->snd_wnd);
	if (c->state == BH_TCP_SYN_SENT || c->state == BH_TCP_SYN_RECEIVED)
		return c->snd_nxt;
	return bh_seq_leq(c->snd_max, edge) ? c->snd_max : edge;
}

static void arm_rtx(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	if (!c->rtx_at) {
		c->rtx_at = now + c->rto;
		bh_tcp__armed(tcp, c->rtx_at);
	}
}

static bool fin_allowed(const struct tconn *c)
{
	return c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_CLOSE_WAIT ||
	       c->state == BH_TCP_FIN_WAIT_1 || c->state == BH_TCP_LAST_ACK ||
	       c->state == BH_TCP_CLOSING;
}

uint32_t bh_tcp__xmit(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq seq, uint32_t max)
{
	bh_seq end = bh_tcp__data_end(c);
	uint32_t avail = bh_seq_lt(seq, end) ? bh_seq_span(seq, end) : 0;
	uint32_t len = avail < max ? avail : max;
	/* New data may go in a large segment (cfg.seg_max); resent data in
	 * MSS-sized ones. */
	uint32_t most = c->seg_max > c->smss && !bh_seq_lt(seq, c->snd_max) ? c->seg_max : c->smss;
	if (len > most)
		len = most;
	bool fin = c->fin_queued && fin_allowed(c) && bh_seq_add(seq, len) == c->fin_seq;
	if (len == 0 && !fin)
		return 0;
	uint8_t flags = BH_TCP_ACK | (fin ? BH_TCP_FIN : 0) | (len && len == avail ? BH_TCP_PSH : 0);
	if (!bh_tcp__emit(tcp, c, now, seq, flags, len))
		return 0;
	uint32_t used = len + (fin ? 1 : 0);
	bh_tcp__rec_sent(tcp, c, seq, used, now);
	bool fresh = !bh_seq_lt(seq, c->snd_max);
	if (!fresh) {
		tcp->ctr.retransmits++;
		c->retransmits++;
		if (c->undo_on && !bh_seq_lt(seq, c->undo_marker))
			c->undo_bytes += used;
		/* Karn: the timed segment sent again gives no sample. */
		if (c->rtt_timing && bh_seq_lt(seq, c->rtt_seq))
			c->rtt_timing = false;
	} else if (!c->rtt_timing && len) {
		c->rtt_timing = true;
		c->rtt_seq = bh_seq_add(seq, len);
		c->rtt_start = now;
	}
	if (fresh)
		c->sent_flight = bh_seq_span(c->snd_una, bh_seq_add(seq, used));
	c->snd_max = bh_seq_max(c->snd_max, bh_seq_add(seq, used));
	c->last_send = now;
	arm_rtx(tcp, c, now);
	if (fresh)
		bh_tcp__tlp_arm(tcp, c, now); /* RFC 8985 7.2: new data restarts the PTO */
	if (fin) {
		if (c->state == BH_TCP_ESTABLISHED)
			c->state = BH_TCP_FIN_WAIT_1;
		else if (c->state == BH_TCP_CLOSE_WAIT)
			c->state = BH_TCP_LAST_ACK;
	}
	return used;
}

/* Bytes in [snd_una, snd_nxt) the peer has not SACKed. */
static uint32_t flight(const struct tconn *c)
{
	uint32_t f = bh_seq_span(c->snd_una, c->snd_nxt);
	for (unsigned i = 0; i < c->nsb && bh_seq_lt(c->sb[i].l, c->snd_nxt); i++)
		f -= bh_seq_span(c->sb[i].l, bh_seq_min(c->sb[i].r, c->snd_nxt));
	return f;
}

/* Sends new or (after a timeout) resent data and the FIN, skipping what
 * the peer has SACKed. `probe` is the persist timer: one segment into a
 * shut or small window, past Nagle and silly window avoidance (RFC 9293
 * 3.8.6.1, 3.8.6.2.1). */
static void send_loop(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bool probe)
{
	/* RFC 5681 4.1: after an idle RTO, restart from the initial window. */
	if (c->last_send && now - c->last_send > c->rto && c->snd_una == c->snd_max &&
	    bh_seq_lt(c->snd_nxt, bh_tcp__data_end(c))) {
		uint32_t iw = 10u * c->smss;
		if (c->cwnd > iw)
			c->cwnd = iw;
		c->cc->restart(c, now);
	}
	for (;;) {
		const struct tsb *b;
		while (bh_seq_lt(c->snd_nxt, c->snd_max) && (b = bh_tcp__sb_find(c, c->snd_nxt)))
			c->snd_nxt = b->r;
		bh_seq end = bh_tcp__data_end(c);
		uint32_t avail = bh_seq_lt(c->snd_nxt, end) ? bh_seq_span(c->snd_nxt, end) : 0;
		bool resend = bh_seq_lt(c->snd_nxt, c->snd_max);
		/* RFC 3042: on the first two duplicate ACKs, one new segment
		 * each past cwnd. With SACK, the segment SACKed has left the
		 * flight, which lets the new one go (as Linux counts it). */
		uint32_t cw = c->cwnd + (resend || c->nsb ? 0 : c->lt * (uint32_t)c->smss);
		uint32_t fl = flight(c);
		uint32_t usable = cw > fl ? cw - fl : 0;
		bh_seq edge = bh_seq_add(c->snd_una, c->snd_wnd);
		uint32_t wspace = bh_seq_gt(edge, c->snd_nxt) ? bh_seq_span(c->snd_nxt, edge) : 0;
		if (wspace < usable)
			usable = wspace;
		if (probe && usable == 0 && avail)
			usable = 1;
		bh_seq sacked_at = bh_tcp__sb_next(c, c->snd_nxt);
		if (resend && sacked_at != c->snd_max) { /* stop at the next SACKed range */
			uint32_t hole = bh_seq_span(c->snd_nxt, sacked_at);
			if (hole < avail)
				avail = hole;
		}
		uint32_t len = avail < usable ? avail : usable;
		uint32_t most = c->seg_max > c->smss && !resend && !probe ? c->seg_max : c->smss;
		if (len > most)
			len = most;
		bool fin = c->fin_queued && fin_allowed(c) && bh_seq_add(c->snd_nxt, len) == c->fin_seq;
		if (len == 0 && !fin)
			break;
		if (!probe && !resend && len < c->smss && !fin) {
			if (len == avail) {
				/* RFC 9293 3.7.4 (Nagle): a short segment waits
				 * while data is unacknowledged. */
				if (fl && !c->nodelay)
					break;
			} else if (len < c->max_snd_wnd / 2) {
				/* RFC 9293 3.8.6.2.1 (sender silly window
				 * avoidance): the window allows less than a
				 * segment and less than half the largest window
				 * offered; wait for more (the persist timer
				 * sends it if nothing else does). */
				break;
			}
		}
		if (c->lt && !resend)
			tcp->ctr.limited_transmits++;
		uint32_t n = bh_tcp__xmit(tcp, c, now, c->snd_nxt, len);
		if (!n)
			break;
		c->snd_nxt = bh_seq_add(c->snd_nxt, n);
		if (fin || probe)
			break;
	}
	/* Data waiting that nothing in flight will clock out (a shut or
	 * silly window): the retransmission timer doubles as the persist
	 * timer. */
	if (bh_seq_lt(c->snd_nxt, bh_tcp__data_end(c)) && (c->snd_wnd == 0 || c->snd_una == c->snd_max))
		arm_rtx(tcp, c, now);
}

/* RFC 6675 5 (C) with RACK's marks (RFC 8985 9.3): while the pipe is
 * below cwnd (PRR's window in a recovery, RFC 6937; slow start after a
 * timeout), send what NextSeg() picks: what RACK or the timeout marked
 * lost and not yet resent (rule 1), else new data (rule 2). Rules 3 and
 * 4 (holes not known lost, the rescue) are left to RACK's timer and TLP,
 * as in Linux. A segment goes while any room is left, so that PRR's
 * window in bytes sends whole segments. */
static void sack_loop(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	uint32_t pipe = bh_tcp__pipe(tcp, c);
	for (unsigned guard = 0; guard < 1024 && pipe < c->cwnd; guard++) {
		bh_seq seq;
		uint32_t max, n = 0;
		if (bh_tcp__next_lost(tcp, c, &seq, &max)) {
			n = bh_tcp__xmit(tcp, c, now, seq, max);
			if (n)
				tcp->ctr.sack_retransmits++;
		} else {
			/* (2) new data (or the FIN), as the receive window allows */
			bh_seq edge = bh_seq_add(c->snd_una, c->snd_wnd);
			uint32_t room = bh_seq_gt(edge, c->snd_max) ? bh_seq_span(c->snd_max, edge) : 0;
			bool fin_next = c->fin_queued && c->snd_max == c->fin_seq;
			if ((room && bh_seq_lt(c->snd_max, bh_tcp__data_end(c))) || fin_next) {
				n = bh_tcp__xmit(tcp, c, now, c->snd_max, room);
				c->snd_nxt = c->snd_max;
			}
		}
		if (!n)
			break;
		pipe += n;
		if (c->in_recovery)
			c->prr_out += n;
	}
}

void bh_tcp__output(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	switch (c->state) {
	case BH_TCP_CLOSED:
	case BH_TCP_LISTEN:
		return;
	case BH_TCP_SYN_SENT:
	case BH_TCP_SYN_RECEIVED:
		if (c->snd_nxt == c->iss) {
			uint8_t flags = BH_TCP_SYN | (c->state == BH_TCP_SYN_RECEIVED ? BH_TCP_ACK : 0);
			if (bh_tcp__emit(tcp, c, now, c->iss, flags, 0)) {
				c->snd_nxt = bh_seq_add(c->iss, 1);
				c->snd_max = bh_seq_max(c->snd_max, c->snd_nxt);
				if (c->backoff == 0) {
					c->rtt_timing = true;
					c->rtt_seq = c->snd_nxt;
					c->rtt_start = now;
				}
			}
			arm_rtx(tcp, c, now);
		}
		return;
	case BH_TCP_TIME_WAIT:
		break;
	default:
		if (c->sack_ok && (c->in_recovery || c->rto_recover))
			sack_loop(tcp, c, now);
		else
			send_loop(tcp, c, now, false);
		/* Whatever was or was not sent, data in flight has a timer,
		 * and so has a FIN that found no buffer: nothing else would
		 * send it (RFC 9293 3.10.4: the FIN is owed). */
		if (bh_seq_lt(c->snd_una, c->snd_max) || bh_tcp__fin_owed(c))
			arm_rtx(tcp, c, now);
		break;
	}
	/* In a batch (bh_tcp_batch_begin), one ACK for all the in-order data
	 * the pass brings, at bh_tcp_batch_end (as a receiver behind GRO
	 * sends; RFC 9293 3.8.6.3 asks for at least one per two segments,
	 * and the pass takes microseconds). Data out of order is ACKed at
	 * once, every segment (RFC 5681 4.2: the duplicate ACKs and SACK
	 * blocks that drive the sender's recovery). */
	if (c->ack_now && !(c->oooq.count == 0 && bh_tcp__owe_output(tcp, c)))
		bh_tcp__emit(tcp, c, now, bh_tcp__ack_seq(c), BH_TCP_ACK, 0);
}

void bh_tcp__keepalive_probe(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	bh_tcp__emit(tcp, c, now, c->snd_una - 1, BH_TCP_ACK, 0);
}

void bh_tcp__send_rst(struct bh_tcp *tcp, struct tconn *c)
{
	/* RFC 9293 3.10.4 ABORT / 3.10.7.4: <SEQ=SND.NXT><CTL=RST>, with
	 * the ACK as Linux sends it. */
	bh_tcp__emit(tcp, c, 0, bh_tcp__ack_seq(c), BH_TCP_RST | BH_TCP_ACK, 0);
}

void bh_tcp__reset_reply(struct bh_tcp *tcp, bh_ip4 raddr, const struct bh_tcp_repr *seg)
{
	/* RFC 9293 3.10.7.1: never answer a reset. */
	if (seg->flags & BH_TCP_RST)
		return;
	struct bh_pkt p;
	if (!tcp->ops.alloc(tcp->ctx, &p)) {
		tcp->ctr.no_buffers++;
		return;
	}
	if (p.off > p.size || p.size - p.off < BH_TCP_HLEN || p.off < BH_IP_HEADROOM) {
		tcp->ops.release(tcp->ctx, &p);
		return;
	}
	struct bh_tcp_repr t = {.sport = seg->dport, .dport = seg->sport};
	if (seg->flags & BH_TCP_ACK) {
		t.seq = seg->ack;
		t.flags = BH_TCP_RST;
	} else {
		t.seq = 0;
		t.ack = bh_seq_add(seg->seq, bh_tcp_seg_len(seg));
		t.flags = BH_TCP_RST | BH_TCP_ACK;
	}
	p.len = bh_tcp_emit(bh_pkt_data(&p), &t);
	fill_checksum(tcp, raddr, &p, p.len, 0);
	tcp->ctr.segs_out++;
	tcp->ctr.rst_out++;
	tcp->ops.output(tcp->ctx, &p, raddr);
}

void bh_tcp__timeout(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->rtx_at = 0;
	bool handshake = c->state == BH_TCP_SYN_SENT || c->state == BH_TCP_SYN_RECEIVED;
	bool outstanding = bh_seq_lt(c->snd_una, c->snd_max);
	/* A shut window to probe: data waiting or a probe byte out. Not in
	 * the handshake, where no window has been offered yet. A FIN that
	 * found no buffer waits too, and goes the same way. */
	bool waiting = bh_seq_lt(c->snd_nxt, bh_tcp__data_end(c)) || bh_tcp__fin_owed(c);
	bool zero_window = !handshake && ((c->snd_wnd == 0 && (outstanding || waiting)) ||
					  (!outstanding && waiting));
	if (!handshake && !outstanding && !zero_window)
		return;
	uint32_t limit = handshake ? tcp->cfg.syn_retries : tcp->cfg.retries;
	if (c->backoff >= limit) {
		tcp->ctr.conn_timeouts++;
		/* RFC 1122 4.2.3.9: a soft ICMP error heard meanwhile says
		 * more than "timed out" (Linux reports it too). */
		bh_tcp__finish(tcp, c, c->soft_err ? c->soft_err : ETIMEDOUT);
		return;
	}
	tcp->ctr.timeouts++;
	c->backoff++;
	/* RFC 6298 5.5: back off the timer; 5.6: restart it. */
	uint32_t was = c->rto;
	uint64_t rto = (uint64_t)c->rto * 2;
	uint64_t max = (uint64_t)tcp->cfg.rto_max_ms * 1000;
	c->rto = (uint32_t)(rto > max ? max : rto);
	/* Karn: no RTT sample from anything sent twice. */
	c->rtt_timing = false;
	uint64_t nobuf = tcp->ctr.no_buffers;
	if (zero_window) {
		/* The persist timer: probe the shut window again with one
		 * byte. The network lost nothing, so the congestion window is
		 * left alone (RFC 9293 3.8.6.1). */
		c->snd_nxt = c->snd_una;
		send_loop(tcp, c, now, true);
	} else if (handshake) {
		tcp->ctr.syn_timeouts++;
		c->snd_nxt = c->iss;
		tcp->ctr.retransmits++;
		c->retransmits++;
		bh_tcp__output(tcp, c, now);
	} else {
		/* RFC 5681 3.1 (4): ssthresh from the algorithm, held on a
		 * second timeout of the same data; one segment in flight. */
		if (c->backoff == 1)
			c->ssthresh = c->cc->ssthresh(c, bh_tcp__loss_flight(c), now);
		c->cwnd = c->smss;
		c->dupacks = 0;
		c->lt = 0;
		c->in_recovery = false;
		c->undo_on = false; /* a timeout's cut is not undone here */
		/* RFC 6582 4.1, RFC 6675 5.1: no fast recovery until this
		 * data is acknowledged; RFC 2018 8: the receiver may have
		 * reneged, so SACKed data is sent again too. */
		c->recover = c->snd_max;
		c->rto_recover = true;
		c->nsb = 0;
		bh_tcp__rack_stop(c);
		c->tlp_out = false;
		if (c->sack_ok) {
			/* RFC 8985 6.3: everything out is lost; the records
			 * say what to resend, in order, as the window opens. */
			bh_tcp__rack_all_lost(tcp, c);
			sack_loop(tcp, c, now);
		} else {
			c->snd_nxt = c->snd_una;
			send_loop(tcp, c, now, false);
		}
		if (c->ack_now)
			bh_tcp__emit(tcp, c, now, bh_tcp__ack_seq(c), BH_TCP_ACK, 0);
	}
	if (tcp->ctr.no_buffers != nobuf) {
		/* Our own buffers ran short, not the path (Linux: "local
		 * congestion, do not backoff"): the try does not count
		 * towards giving up, and the interval stays. Buffers coming
		 * back send it sooner (bh_tcp_buffers_back). */
		c->backoff--;
		c->rto = was;
		tcp->ctr.nobuf_timeouts++;
	}
	/* Never leave data, a probe or the handshake without a timer. */
	arm_rtx(tcp, c, now);
}
