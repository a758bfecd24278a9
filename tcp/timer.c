/*
 * tcp/timer.c - time: bh_tcp_tick fires what is due on each live
 * connection and returns the next deadline; keepalive (RFC 1122 4.2.3.6)
 * is here too. The retransmission and persist timer itself is tcp_out.c's.
 *
 * Call chain: bh_tcp_tick -> bh_tcp__finish (TIME-WAIT over; tcp.c)
 *                         | bh_tcp__tlp_fire (tail loss probe; rack.c)
 *                         | bh_tcp__rack_timeout (RACK's reordering
 *                           timer; rack.c)
 *                         | bh_tcp__timeout (retransmission, persist;
 *                           tcp_out.c)
 *                         | bh_tcp__output (delayed ACK)
 *                         | keepalive -> bh_tcp__keepalive_probe, or
 *                           bh_tcp__send_rst and bh_tcp__finish
 *                           (ETIMEDOUT)
 */
#include "tcp/tcp_impl.h"

/* RFC 1122 4.2.3.6: after ka_idle_s of silence from the peer, probe
 * every ka_intvl_s; ka_cnt probes unanswered end the connection. A probe
 * is SND.UNA - 1 with no data (the form Linux sends), which any live peer
 * answers with an ACK. Only when nothing is outstanding: the
 * retransmission timer covers the rest. */
static void keepalive(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	uint64_t due = bh_tcp__ka_due(c);
	if (due == 0) {
		c->ka_at = 0;
		return;
	}
	if (now < due) {
		c->ka_at = due;
		return;
	}
	if (c->ka_probes >= c->ka_cnt) {
		tcp->ctr.conn_timeouts++;
		bh_tcp__send_rst(tcp, c);
		bh_tcp__finish(tcp, c, ETIMEDOUT);
		return;
	}
	c->ka_probes++;
	tcp->ctr.keepalive_probes++;
	bh_tcp__keepalive_probe(tcp, c, now);
	c->ka_at = now + (uint64_t)c->ka_intvl_s * 1000000;
}

bh_us bh_tcp_timer_hint(const struct bh_tcp *tcp)
{
	return tcp->timer_hint;
}

uint64_t bh_tcp_tick(struct bh_tcp *tcp, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	tcp->timer_hint = UINT64_MAX; /* what is armed from here on is reported anew */
	tcp->soon_at = 0;
	/* Backwards: a connection freed here is replaced by one already
	 * seen. */
	for (uint32_t i = tcp->nlive; i-- > 0;) {
		if (i >= tcp->nlive) /* more than one went at once */
			continue;
		struct tconn *c = &tcp->conn[tcp->live[i]];
		if (!c->used || c->listener)
			continue;
		if (c->tw_at && now >= c->tw_at) {
			if (c->state == BH_TCP_FIN_WAIT_2) {
				tcp->ctr.fin_timeouts++;
				bh_tcp__send_rst(tcp, c);
			}
			bh_tcp__finish(tcp, c, 0);
			continue;
		}
		/* The probe before the RTO it may share a deadline with:
		 * sending it restarts the RTO (RFC 8985 7.3). */
		if (c->tlp_at && now >= c->tlp_at)
			bh_tcp__tlp_fire(tcp, c, now);
		if (c->reo_at && now >= c->reo_at)
			bh_tcp__rack_timeout(tcp, c, now);
		if (c->rtx_at && now >= c->rtx_at) {
			bh_tcp__timeout(tcp, c, now);
			if (!c->used)
				continue;
		}
		if (c->delack_at && now >= c->delack_at) {
			c->delack_at = 0;
			c->ack_now = true;
			bh_tcp__output(tcp, c, now);
		}
		if (c->keepalive) {
			keepalive(tcp, c, now);
			if (!c->used)
				continue;
		}
		uint64_t t[6] = {c->tw_at,    c->rtx_at, c->delack_at, c->keepalive ? c->ka_at : 0,
				 c->reo_at, c->tlp_at};
		for (int k = 0; k < 6; k++)
			if (t[k] && t[k] < next)
				next = t[k];
	}
	tcp->tick_next = next;
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return next;
}
