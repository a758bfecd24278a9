/*
 * tcp/tcp_out.c - building and sending segments: the send loop (windows,
 * congestion window, Nagle), SYN and FIN, ACKs, resets, the retransmission
 * timer and the receive window we advertise.
 *
 * Call chain: bh_tcp__output -> send_loop -> emit -> ops.output
 *             bh_tcp__timeout -> back off -> bh_tcp__output
 */
#include <string.h>

#include "ip/checksum.h"
#include "tcp/tcp_impl.h"

/* RFC 7323 4.1 (and Linux): a 1 ms timestamp clock. */
static uint32_t ts_now(uint64_t now) { return (uint32_t)(now / 1000); }

uint32_t bh_tcp__rcv_window(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint32_t used = c->rcvq.bytes + c->oooq.bytes;
	return used >= tcp->cfg.rcv_buf ? 0 : tcp->cfg.rcv_buf - used;
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
	uint32_t step = tcp->cfg.rcv_buf / 2 < c->smss ? tcp->cfg.rcv_buf / 2 : c->smss;
	if (bh_seq_lt(edge, c->rcv_adv) ||
	    (bh_seq_gt(edge, c->rcv_adv) && bh_seq_span(c->rcv_adv, edge) < step &&
	     bh_seq_gt(c->rcv_adv, c->rcv_nxt)))
		edge = c->rcv_adv;
	if (bh_seq_lt(edge, c->rcv_nxt))
		edge = c->rcv_nxt;
	uint32_t w = bh_seq_span(c->rcv_nxt, edge) >> c->rcv_wscale;
	if (w > 65535)
		w = 65535;
	/* What the field really says, after the shift rounds down. */
	c->rcv_adv = bh_seq_add(c->rcv_nxt, w << c->rcv_wscale);
	return (uint16_t)w;
}

/* Copies [seq, seq + len) of the send queue to dst. */
static void gather(struct bh_tcp *tcp, const struct tconn *c, bh_seq seq, uint32_t len, uint8_t *dst)
{
	for (uint32_t i = c->sndq.head; i != NONE && len; i = tcp->seg[i].next) {
		const struct tseg *s = &tcp->seg[i];
		bh_seq end = bh_seq_add(s->seq, s->len);
		if (bh_seq_leq(end, seq))
			continue;
		uint32_t from = bh_seq_span(s->seq, seq);
		uint32_t n = s->len - from < len ? s->len - from : len;
		memcpy(dst, bh_pkt_data(&s->pkt) + from, n);
		dst += n;
		len -= n;
		seq = bh_seq_add(seq, n);
	}
}

/* Builds one segment in a fresh buffer and hands it to IP. */
static bool emit(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bh_seq seq, uint8_t flags,
		 uint32_t len)
{
	struct bh_pkt p;
	if (!tcp->ops.alloc(tcp->ctx, &p)) {
		tcp->ctr.no_buffers++;
		return false;
	}
	if (p.off > p.size || p.size - p.off < BH_TCP_MAX_HLEN + len || p.off < BH_IP_HEADROOM) {
		tcp->ops.release(tcp->ctx, &p);
		tcp->ctr.no_buffers++;
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
	}
	t.opt.ts_val = ts_now(now);
	t.opt.ts_ecr = c->ts_recent;
	uint8_t *h = bh_pkt_data(&p);
	unsigned hlen = bh_tcp_emit(h, &t);
	if (len)
		gather(tcp, c, syn ? bh_seq_add(seq, 1) : seq, len, h + hlen);
	p.len = hlen + len;
	uint32_t sum = bh_ipv4_pseudo_sum(tcp->cfg.addr, c->raddr, BH_IPPROTO_TCP, (uint16_t)p.len);
	uint16_t ck = bh_csum_fold(bh_csum_partial(h, p.len, sum));
	memcpy(h + 16, &ck, 2);
	tcp->ctr.segs_out++;
	if (flags & BH_TCP_RST)
		tcp->ctr.rst_out++;
	if (flags & BH_TCP_ACK) {
		c->ack_now = false;
		c->unacked = 0;
		c->delack_at = 0;
	}
	tcp->ops.output(tcp->ctx, &p, c->raddr);
	return true;
}

static void arm_rtx(struct tconn *c, uint64_t now)
{
	if (!c->rtx_at)
		c->rtx_at = now + c->rto;
}

/* The end of queued data, as a sequence number. */
static bh_seq data_end(const struct tconn *c)
{
	bh_seq start = bh_seq_gt(c->snd_una, c->iss) ? c->snd_una : bh_seq_add(c->iss, 1);
	return bh_seq_add(start, c->sndq.bytes);
}

/* Sends new or (after a timeout) resent data and the FIN. `probe` forces
 * one byte into a zero window (RFC 9293 3.8.6.1). */
static void send_loop(struct bh_tcp *tcp, struct tconn *c, uint64_t now, bool probe)
{
	bool may_fin = c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_CLOSE_WAIT ||
		       c->state == BH_TCP_FIN_WAIT_1 || c->state == BH_TCP_LAST_ACK ||
		       c->state == BH_TCP_CLOSING;
	for (;;) {
		bh_seq end = data_end(c);
		uint32_t avail = bh_seq_lt(c->snd_nxt, end) ? bh_seq_span(c->snd_nxt, end) : 0;
		uint32_t flight = bh_seq_span(c->snd_una, c->snd_nxt);
		uint32_t wnd = c->snd_wnd < c->cwnd ? c->snd_wnd : c->cwnd;
		uint32_t usable = wnd > flight ? wnd - flight : 0;
		if (probe && usable == 0 && avail)
			usable = 1;
		uint32_t len = avail < usable ? avail : usable;
		if (len > c->smss)
			len = c->smss;
		bool fin = c->fin_queued && may_fin && bh_seq_add(c->snd_nxt, len) == c->fin_seq &&
			   len == avail;
		if (len == 0 && !fin)
			break;
		/* RFC 9293 3.7.4 (Nagle): a short segment waits while data
		 * is unacknowledged, unless it is all there is to send and the
		 * FIN closes it. */
		if (!probe && len < c->smss && len == avail && flight && !fin && len)
			break;
		uint8_t flags = BH_TCP_ACK;
		if (fin)
			flags |= BH_TCP_FIN;
		if (len && len == avail)
			flags |= BH_TCP_PSH;
		bh_seq seq = c->snd_nxt;
		if (!emit(tcp, c, now, seq, flags, len))
			break;
		if (bh_seq_lt(seq, c->snd_max)) {
			tcp->ctr.retransmits++;
			c->retransmits++;
		} else if (!c->rtt_timing && len) {
			c->rtt_timing = true;
			c->rtt_seq = bh_seq_add(seq, len);
			c->rtt_start = now;
		}
		c->snd_nxt = bh_seq_add(seq, len + (fin ? 1 : 0));
		c->snd_max = bh_seq_max(c->snd_max, c->snd_nxt);
		arm_rtx(c, now);
		if (fin) {
			if (c->state == BH_TCP_ESTABLISHED)
				c->state = BH_TCP_FIN_WAIT_1;
			else if (c->state == BH_TCP_CLOSE_WAIT)
				c->state = BH_TCP_LAST_ACK;
			break;
		}
		if (probe)
			break;
	}
	/* A zero window with data waiting: the retransmission timer doubles
	 * as the persist timer. */
	if (c->snd_wnd == 0 && bh_seq_lt(c->snd_nxt, data_end(c)))
		arm_rtx(c, now);
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
			if (emit(tcp, c, now, c->iss, flags, 0)) {
				c->snd_nxt = bh_seq_add(c->iss, 1);
				c->snd_max = bh_seq_max(c->snd_max, c->snd_nxt);
				if (c->backoff == 0) {
					c->rtt_timing = true;
					c->rtt_seq = c->snd_nxt;
					c->rtt_start = now;
				}
			}
			arm_rtx(c, now);
		}
		return;
	case BH_TCP_TIME_WAIT:
		break;
	default:
		send_loop(tcp, c, now, false);
		break;
	}
	if (c->ack_now)
		emit(tcp, c, now, c->snd_nxt, BH_TCP_ACK, 0);
}

void bh_tcp__send_rst(struct bh_tcp *tcp, struct tconn *c)
{
	/* RFC 9293 3.10.4 ABORT / 3.10.7.4: <SEQ=SND.NXT><CTL=RST>, with
	 * the ACK as Linux sends it. */
	emit(tcp, c, 0, c->snd_nxt, BH_TCP_RST | BH_TCP_ACK, 0);
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
		uint32_t seglen = seg->payload_len + ((seg->flags & BH_TCP_SYN) ? 1 : 0) +
				  ((seg->flags & BH_TCP_FIN) ? 1 : 0);
		t.seq = 0;
		t.ack = bh_seq_add(seg->seq, seglen);
		t.flags = BH_TCP_RST | BH_TCP_ACK;
	}
	uint8_t *h = bh_pkt_data(&p);
	p.len = bh_tcp_emit(h, &t);
	uint32_t sum = bh_ipv4_pseudo_sum(tcp->cfg.addr, raddr, BH_IPPROTO_TCP, (uint16_t)p.len);
	uint16_t ck = bh_csum_fold(bh_csum_partial(h, p.len, sum));
	memcpy(h + 16, &ck, 2);
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
	 * the handshake, where no window has been offered yet. */
	bool zero_window = !handshake && c->snd_wnd == 0 &&
			   (outstanding || bh_seq_lt(c->snd_nxt, data_end(c)));
	if (!handshake && !outstanding && !zero_window)
		return;
	uint32_t limit = handshake ? tcp->cfg.syn_retries : tcp->cfg.retries;
	if (c->backoff >= limit) {
		tcp->ctr.conn_timeouts++;
		bh_tcp__finish(tcp, c, ETIMEDOUT);
		return;
	}
	tcp->ctr.timeouts++;
	c->backoff++;
	/* RFC 6298 5.5: back off the timer; 5.6: restart it. */
	uint64_t rto = (uint64_t)c->rto * 2;
	uint64_t max = (uint64_t)tcp->cfg.rto_max_ms * 1000;
	c->rto = (uint32_t)(rto > max ? max : rto);
	/* Karn: no RTT sample from anything sent twice. */
	c->rtt_timing = false;
	if (zero_window) {
		/* The persist timer: probe the shut window again with one
		 * byte. The network lost nothing, so the congestion window is
		 * left alone (RFC 9293 3.8.6.1). */
		c->snd_nxt = c->snd_una;
		send_loop(tcp, c, now, true);
		return;
	}
	if (handshake) {
		c->snd_nxt = c->iss;
		tcp->ctr.retransmits++;
		c->retransmits++;
		bh_tcp__output(tcp, c, now);
		return;
	}
	if (outstanding) {
		/* RFC 5681 3.1 (4): ssthresh = max(FlightSize / 2, 2 SMSS),
		 * and one segment in flight. */
		uint32_t flight = bh_seq_span(c->snd_una, c->snd_max);
		c->ssthresh = flight / 2 > 2u * c->smss ? flight / 2 : 2u * c->smss;
		c->cwnd = c->smss;
		c->dupacks = 0;
		c->in_recovery = false;
		c->snd_nxt = c->snd_una;
		send_loop(tcp, c, now, false);
		if (c->ack_now)
			emit(tcp, c, now, c->snd_nxt, BH_TCP_ACK, 0);
		return;
	}
}
