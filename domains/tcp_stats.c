/*
 * domains/tcp_stats.c - what the TCP domain publishes to its stats
 * region: the library's counters, its own (tcp_priv.h), and a record per
 * live connection (`bulkhead conns`).
 */
#include <stdio.h>

#include "domains/tcp_priv.h"

void bh_tcpd_publish(void *self, struct bh_stats_w *w)
{
	struct tcpd *d = self;
	const struct bh_tcp_counters *c = bh_tcp_counters(d->tcp);
	for (unsigned i = 0; bh_tcp_counter_name(i); i++)
		bh_stats_add(w, "", bh_tcp_counter_name(i), bh_tcp_counter_value(c, i));
#define TCPD_COUNTER_ADD(name) bh_stats_add(w, "", #name, d->st.name);
	TCPD_COUNTERS(TCPD_COUNTER_ADD)
#undef TCPD_COUNTER_ADD
	bh_stats_add(w, "", "ctl_lost", d->cq.overflow);
	/* SOCK buffers acknowledged while a chain still named them. */
	bh_stats_add(w, "", "chain_parked", d->pins.parked);
	bh_stats_add(w, "track.", "refused", d->tr.refused);
	bh_stats_add(w, "", "held", bh_tcp_held(d->tcp));
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct tsock *t = &d->s[sid];
		struct bh_tcp_info info;
		if (!t->used || t->gone || bh_tcp_info(d->tcp, t->conn, &info) != 0)
			continue;
		struct bh_stat_conn *sc = bh_stats_conn(w);
		if (sc == NULL)
			break;
		sc->laddr = info.local;
		sc->raddr = info.remote;
		sc->lport = info.lport;
		sc->rport = info.rport;
		sc->state = (uint8_t)info.state;
		sc->sid = sid;
		sc->cwnd = info.cwnd;
		sc->ssthresh = info.ssthresh;
		sc->srtt_us = info.srtt_us;
		sc->rto_us = info.rto_us;
		sc->retransmits = info.retransmits;
		sc->mss = info.mss;
		sc->snd_queued = info.snd_queued;
		sc->rcv_queued = info.rcv_queued;
		sc->snd_wnd = info.snd_wnd;
		sc->rcv_wnd = info.rcv_wnd;
		sc->rcv_buf = info.rcv_buf;
		sc->rcv_rtt_us = info.rcv_rtt_us;
		sc->in_flight = bh_seq_span(info.snd_una, info.snd_nxt);
		sc->ooo_queued = info.ooo_queued;
		sc->rtx_armed = info.rtx_armed;
		sc->with_sock = t->rx_out;
		sc->wait_rx = t->pend_rx.n;
		sc->wait_tx = t->pend_tx.n;
		snprintf(sc->cc, sizeof(sc->cc), "%s", info.cc ? info.cc : "");
	}
}
