/*
 * domains/sock_table.c - the socket server's socket table: ids, bound
 * ports, the state each socket publishes to its application's slot,
 * replies to requests, and how a socket is closed and freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "domains/sock_priv.h"
#include "ipc/order.h"

uint32_t sk_sid_alloc(struct sockd *d)
{
	for (uint32_t i = 0; i < d->nsocks - 1; i++) {
		uint32_t sid = 1 + (d->next_sid + i) % (d->nsocks - 1);
		if (!d->s[sid].used) {
			d->next_sid = sid;
			struct ssock *s = &d->s[sid];
			memset(s, 0, sizeof(*s));
			s->used = true;
			s->app = NO_APP;
			bh_dq_init(&s->rxq);
			return sid;
		}
	}
	return 0;
}

bool sk_port_used(struct sockd *d, bool udp, uint16_t p)
{
	return d->ports[udp][p / 8] & (1u << (p % 8));
}

void sk_port_set(struct sockd *d, bool udp, uint16_t p, bool on)
{
	if (on)
		d->ports[udp][p / 8] |= (uint8_t)(1u << (p % 8));
	else
		d->ports[udp][p / 8] &= (uint8_t)~(1u << (p % 8));
}

static struct bh_app_slot *slot_of(struct sockd *d, struct ssock *s)
{
	if (s->app == NO_APP)
		return NULL;
	return &d->apps[s->app].slots[s->slot];
}

/* Publishes a socket's state to its application's slot. */
void sk_publish(struct sockd *d, struct ssock *s)
{
	struct bh_app_slot *sl = slot_of(d, s);
	if (sl == NULL)
		return;
	uint32_t st = BH_SS_OPEN;
	if (s->connecting)
		st |= BH_SS_CONNECTING;
	if (s->connected)
		st |= BH_SS_CONNECTED;
	if (s->listener)
		st |= BH_SS_LISTENING;
	if (s->eof)
		st |= BH_SS_RX_EOF;
	if (s->err)
		st |= BH_SS_ERROR;
	if (s->reset)
		st |= BH_SS_HUP;
	if (s->shut_wr_pending || s->shut_wr_sent)
		st |= BH_SS_TX_SHUT;
	if (s->lport)
		st |= BH_SS_BOUND;
	if (s->rx_wants)
		st |= BH_SS_RX_WANTS;
	sl->err = s->err;
	sl->laddr = s->laddr;
	sl->raddr = s->raddr;
	sl->lport = s->lport;
	sl->rport = s->rport;
	sl->accq = s->accq;
	bh_store_release32(&sl->rx_head, s->rx_head);
	bh_store_release32(&sl->tx_tail, s->tx_tail);
	bh_store_release32(&sl->state, st);
	bh_store_release32(&sl->seq, sl->seq + 1);
	struct app *a = &d->apps[s->app];
	/* Readers wait for data, a connection to accept, or a state change;
	 * senders for room, or a state change. A change of one side wakes
	 * only its own waiters. */
	bool any = !s->published || st != s->pub_state;
	bool rx = any || s->rx_head != s->pub_rx_head || s->accq != s->pub_accq;
	bool tx = any || s->tx_tail != s->pub_tx_tail;
	s->published = true;
	s->pub_state = st;
	s->pub_rx_head = s->rx_head;
	s->pub_tx_tail = s->tx_tail;
	s->pub_accq = s->accq;
	/* The stores above, then want (the application stores want, then
	 * re-reads them): one of us sees the other. An idle application
	 * costs no signal. */
	bh_full_barrier();
	if (rx)
		a->owe |= bh_load_relaxed64(&sl->want_rx);
	if (tx)
		a->owe |= bh_load_relaxed64(&sl->want_tx);
}

void sk_reply(struct sockd *d, struct app *a, const struct bh_rpc_rep *r)
{
	ssize_t w = send(a->fd, r, sizeof(*r), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w; /* a dead application's replies go nowhere */
}

void sk_reply_err(struct sockd *d, struct app *a, int ret)
{
	struct bh_rpc_rep r = {.ret = ret};
	sk_reply(d, a, &r);
}

void sk_reply_sock(struct sockd *d, struct app *a, int ret, struct ssock *s)
{
	struct bh_rpc_rep r = {.ret = ret};
	if (s) {
		r.slot = s->slot;
		r.laddr = s->laddr;
		r.raddr = s->raddr;
		r.lport = s->lport;
		r.rport = s->rport;
	}
	sk_reply(d, a, &r);
}

/* A request waiting for tcp or ip is answered. */
void sk_answer(struct sockd *d, uint32_t sid, uint32_t op, int ret)
{
	struct ssock *s = sk_sock_of(d, sid);
	if (s == NULL || s->app == NO_APP)
		return;
	/* The member of the socket's application that asked. */
	for (uint32_t i = 0; i < d->napps; i++) {
		struct app *m = &d->apps[i];
		if (m->used && m->root == s->app && m->waiting && m->wait_sid == sid &&
		    m->wait_op == op) {
			m->waiting = false;
			sk_reply_sock(d, m, ret, s);
			return;
		}
	}
}

void sk_to_tcp(struct sockd *d, uint16_t op, uint32_t sid, const struct bh_ctl *extra)
{
	struct bh_ctl c = extra ? *extra : (struct bh_ctl){0};
	c.op = op;
	c.sid = sid;
	bh_ctl_send(d->env, &d->cq_tcp, BH_LINK_TS, &c);
}

void sk_drop_rxq(struct sockd *d, struct ssock *s, int link)
{
	struct bh_desc x = {0};
	while (bh_dq_pop(&d->nodes, &s->rxq, &x)) {
		struct bh_desc b = {.buf = x.buf, .pool = x.pool};
		bh_chan_give_back(d->env->chan[x.aux == UINT32_MAX ? BH_LINK_IS : link], &b, 1);
	}
	s->head_off = 0;
}

/* The socket's id is free for reuse once tcp and the application are
 * both done with it. */
void sk_maybe_free(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sk_sock_of(d, sid);
	if (s == NULL || s->tcp_has || s->app != NO_APP || s->tx_out)
		return;
	sk_drop_rxq(d, s, s->udp ? BH_LINK_IS : BH_LINK_TS);
	s->used = false;
}

/* The application closed a socket: drain what it sent, then let go. */
void sk_sock_close(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sk_sock_of(d, sid);
	if (s == NULL)
		return;
	s->app_closed = true;
	/* RFC 1122 4.2.2.13: closing with received data unread resets the
	 * connection (as Linux does), whether the data waits here or in
	 * the application's ring (its index is only read for this). */
	struct app *a = s->app == NO_APP ? NULL : &d->apps[s->app];
	if (!s->udp && !s->listener &&
	    (bh_dq_peek(&d->nodes, &s->rxq) != NULL ||
	     (a && bh_load_acquire32(&a->slots[s->slot].rx_tail) != s->rx_head)))
		s->close_abort = true;
	if (s->listener) {
		/* Accepted connections nobody took are reset, as Linux does. */
		for (uint32_t c = s->acc_head; c; c = d->s[c].acc_next) {
			d->s[c].app_closed = true;
			if (d->s[c].tcp_has)
				sk_to_tcp(d, BH_CTL_ABORT, c, NULL);
		}
		s->acc_head = s->acc_tail = 0;
		s->accq = 0;
	}
	if (s->udp) {
		if (s->lport) {
			struct bh_ctl c = {.op = BH_CTL_UDP_UNBIND, .sid = sid, .lport = s->lport};
			bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
			sk_port_set(d, true, s->lport, false);
		}
	} else if (s->listener && s->lport) {
		sk_port_set(d, false, s->lport, false);
	}
	sk_drop_rxq(d, s, s->udp ? BH_LINK_IS : BH_LINK_TS);
	sk_mark(d, sid);
}
