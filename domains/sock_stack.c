/*
 * domains/sock_stack.c - the socket server's tcp and ip side.
 *
 *   from tcp   data (RX buffers, queued on the socket for copy in) and
 *              control messages: results, connected, acceptable and
 *              accepted connections, EOF, errors, closed
 *   from ip    UDP: bind results, and datagrams as a header message
 *              (BH_CTL_DGRAM) followed by its pieces
 *   reclaim    SOCK buffers given back by tcp or ip
 *   replaced   a new tcp knows no connection (each is reset, listeners
 *              listen again); a new ip knows no UDP binding (each is
 *              bound again)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains/logger.h"
#include "domains/recover.h"
#include "ip/ip.h"
#include "domains/sock_priv.h"

static void accept_ready(struct sockd *d, uint32_t lsid)
{
	struct ssock *l = sk_sock_of(d, lsid);
	if (l == NULL || !l->listener || l->app_closed)
		return;
	uint32_t nsid = sk_sid_alloc(d);
	if (nsid == 0) {
		bh_log_limited(&d->rl, "socket table full: connection on port %u not accepted",
			       l->lport);
		return;
	}
	struct ssock *n = &d->s[nsid];
	n->parent = lsid;
	n->tcp_has = true;
	struct bh_ctl c = {.arg = lsid};
	sk_to_tcp(d, BH_CTL_ACCEPT, nsid, &c);
}

static void ctl_from_tcp(struct sockd *d, const struct bh_ctl *c)
{
	struct ssock *s = sk_sock_of(d, c->sid);
	if (s == NULL || s->udp) {
		d->st.bad_sid++;
		return;
	}
	uint32_t sid = c->sid;
	switch (c->op) {
	case BH_CTL_RESULT:
		if (c->arg == BH_CTL_LISTEN) {
			if (c->err == 0) {
				s->listener = true;
				s->tcp_has = true;
			} else {
				sk_port_set(d, false, s->lport, false);
				s->lport = 0;
			}
			sk_publish(d, s);
			sk_answer(d, sid, BH_CTL_LISTEN, -c->err);
		} else if (c->arg == BH_CTL_CONNECT) {
			if (c->err) {
				s->connecting = false;
				s->tcp_has = false;
				s->err = c->err;
				sk_publish(d, s);
				sk_answer(d, sid, BH_CTL_CONNECTED, -c->err);
			} else {
				s->laddr = c->laddr;
				s->lport = c->lport;
				sk_publish(d, s);
			}
		} else if (c->arg == BH_CTL_ACCEPT) {
			/* The connection went before we took it. */
			s->tcp_has = false;
			sk_maybe_free(d, sid);
		} else if (c->arg == BH_CTL_SETOPT) {
			/* tcp answers in order: the kept options' answers
			 * (sent with CONNECT or ACCEPT) come before any the
			 * application asked for, and nobody waits for them. */
			if (s->kept_answers)
				s->kept_answers--;
			else
				sk_answer(d, sid, BH_CTL_SETOPT, -c->err);
		}
		break;
	case BH_CTL_CONNECTED:
		s->connecting = false;
		s->connected = true;
		s->laddr = c->laddr;
		s->lport = c->lport;
		s->raddr = c->raddr;
		s->rport = c->rport;
		sk_publish(d, s);
		sk_answer(d, sid, BH_CTL_CONNECTED, 0);
		sk_mark(d, sid);
		break;
	case BH_CTL_ACCEPTABLE:
		accept_ready(d, sid);
		break;
	case BH_CTL_ACCEPTED: {
		s->connected = true;
		s->laddr = c->laddr;
		s->lport = c->lport;
		s->raddr = c->raddr;
		s->rport = c->rport;
		struct ssock *l = sk_sock_of(d, s->parent);
		if (l == NULL || !l->listener || l->app_closed) {
			/* Its listener is gone: reset, as for those in the
			 * accept queue when it closed. */
			s->app_closed = true;
			sk_to_tcp(d, BH_CTL_ABORT, sid, NULL);
			break;
		}
		if (l->acc_tail)
			d->s[l->acc_tail].acc_next = sid;
		else
			l->acc_head = sid;
		l->acc_tail = sid;
		l->accq++;
		sk_publish(d, l);
		break;
	}
	case BH_CTL_EOF:
		s->eof_pending = true;
		sk_mark(d, sid);
		break;
	case BH_CTL_ERROR:
		s->err = c->err ? c->err : ECONNRESET;
		s->reset = true;
		s->connecting = false;
		sk_drop_rxq(d, s, BH_LINK_TS);
		sk_publish(d, s);
		sk_answer(d, sid, BH_CTL_CONNECTED, -s->err);
		break;
	case BH_CTL_CLOSED:
		s->tcp_has = false;
		if (!s->app_closed && !s->eof_pending) {
			s->reset = true;
			if (!s->err && s->connecting)
				s->err = ECONNREFUSED;
		}
		s->connecting = false;
		sk_publish(d, s);
		sk_answer(d, sid, BH_CTL_CONNECTED, -(s->err ? s->err : ECONNRESET));
		sk_mark(d, sid);
		sk_maybe_free(d, sid);
		break;
	default:
		d->st.bad_desc++;
		break;
	}
}

void sk_from_tcp(struct sockd *d, const struct bh_desc *x, unsigned n)
{
	struct bh_chan *ch = d->env->chan[BH_LINK_TS];
	for (unsigned i = 0; i < n; i++) {
		if (x[i].flags == BH_M_DATA && x[i].pool == BH_POOL_RX) {
			struct ssock *s = sk_sock_of(d, x[i].aux);
			if (s == NULL || s->udp || s->reset || s->app_closed ||
			    !bh_dq_push(&d->nodes, &s->rxq, &x[i])) {
				if (s == NULL)
					d->st.bad_sid++;
				struct bh_desc b = {.buf = x[i].buf, .pool = x[i].pool};
				bh_chan_give_back(ch, &b, 1);
				continue;
			}
			sk_mark(d, x[i].aux);
			continue;
		}
		struct bh_ctl c;
		if (x[i].flags == BH_M_CTL && bh_ctl_read(d->env, &x[i], &c))
			ctl_from_tcp(d, &c);
		else
			d->st.bad_desc++;
		bh_chan_give_back(ch, &x[i], 1);
	}
}

static void give_back_is(struct sockd *d, const struct bh_desc *x)
{
	struct bh_desc b = {.buf = x->buf, .pool = x->pool};
	bh_chan_give_back(d->env->chan[BH_LINK_IS], &b, 1);
}

/* UDP from ip: a header message (BH_CTL_DGRAM, arg = pieces), then its
 * pieces, possibly across batches. */
void sk_from_ip(struct sockd *d, const struct bh_desc *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].flags == BH_M_DATA && d->udp_want) {
			struct ssock *s = sk_sock_of(d, d->udp_sid);
			d->udp_want--;
			if (s && x[i].aux == d->udp_sid && bh_dq_push(&d->nodes, &s->rxq, &x[i]))
				continue;
			give_back_is(d, &x[i]);
			continue;
		}
		if (d->udp_want) {
			/* A datagram cut short: what came of it stays queued
			 * and copy_in stops at the next header. */
			d->udp_want = 0;
			d->st.bad_desc++;
		}
		struct bh_ctl c;
		if (x[i].flags != BH_M_CTL || !bh_ctl_read(d->env, &x[i], &c)) {
			d->st.bad_desc++;
			give_back_is(d, &x[i]);
			continue;
		}
		struct ssock *s = sk_sock_of(d, c.sid);
		if (c.op == BH_CTL_DGRAM) {
			if (c.arg == 0 || c.arg > BH_IP_MAX_PIECES) {
				d->st.bad_desc++;
				give_back_is(d, &x[i]);
				continue;
			}
			d->udp_want = c.arg;
			d->udp_sid = c.sid;
			struct bh_desc h = x[i];
			h.aux = UINT32_MAX;
			if (s && s->udp && !s->app_closed && bh_dq_push(&d->nodes, &s->rxq, &h)) {
				sk_mark(d, c.sid);
				continue;
			}
			d->udp_sid = 0; /* its pieces go home */
			d->st.bad_sid++;
			give_back_is(d, &x[i]);
			continue;
		}
		if (c.op == BH_CTL_RESULT && s && s->udp) {
			if (c.err) {
				sk_port_set(d, true, s->lport, false);
				s->lport = 0;
			}
			sk_publish(d, s);
			sk_answer(d, c.sid, BH_CTL_UDP_BIND, -c.err);
		} else {
			d->st.bad_desc++;
		}
		give_back_is(d, &x[i]);
	}
}

int sk_reclaim(struct sockd *d, int link, int peer)
{
	struct bh_desc x[BATCH];
	unsigned n = bh_env_reclaim(d->env, link, x, BATCH);
	for (unsigned i = 0; i < n; i++) {
		if (bh_pool_take_back(&d->env->own, x[i].buf, BH_HOLDER_DOM(peer)) != 0)
			continue;
		uint32_t sid = d->buf_sid[x[i].buf];
		uint32_t len = d->buf_len[x[i].buf];
		d->buf_sid[x[i].buf] = 0;
		d->buf_len[x[i].buf] = 0;
		bh_pool_free(&d->env->own, x[i].buf);
		struct ssock *s = sk_sock_of(d, sid);
		if (s && link == BH_LINK_TS && s->tx_out) {
			s->tx_out--;
			s->tx_out_bytes -= len < s->tx_out_bytes ? len : s->tx_out_bytes;
			sk_mark(d, sid);
			if (s->tx_out == 0)
				sk_maybe_free(d, sid);
		}
	}
	if (n && d->starved.n)
		sk_unstarve(d);
	return n != 0;
}

/* tcp was replaced: every connection it carried is gone (the new tcp
 * knows none of them). Each ends as a reset would end it, ECONNRESET to
 * its application; its unaccepted children go; listeners listen again,
 * so new connections work at once. Its SOCK buffers are recover.c's. */
void sk_tcp_replaced(struct sockd *d)
{
	unsigned conns = 0, listeners = 0;
	d->cq_tcp.tail = d->cq_tcp.head;
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct ssock *s = &d->s[sid];
		if (!s->used || s->udp)
			continue;
		s->tx_out = 0;
		s->tx_out_bytes = 0;
		if (s->listener && !s->app_closed) {
			for (uint32_t c = s->acc_head; c; c = d->s[c].acc_next) {
				d->s[c].app_closed = true;
				d->s[c].tcp_has = false;
			}
			for (uint32_t c = s->acc_head, next; c; c = next) {
				next = d->s[c].acc_next;
				sk_maybe_free(d, c);
			}
			s->acc_head = s->acc_tail = 0;
			s->accq = 0;
			s->tcp_has = false;
			struct bh_ctl c = {.lport = s->lport, .arg = s->backlog};
			sk_to_tcp(d, BH_CTL_LISTEN, sid, &c);
			sk_publish(d, s);
			listeners++;
			continue;
		}
		if (!s->tcp_has && !s->connecting)
			continue;
		if (s->connected && s->rport) {
			/* The new tcp knows nothing of it; its peer may be
			 * waiting in silence: have it reset. */
			struct bh_ctl c = {.laddr = s->laddr, .lport = s->lport, .raddr = s->raddr,
					   .rport = s->rport};
			sk_to_tcp(d, BH_CTL_LOST, 0, &c);
		}
		if (!s->app_closed && !s->eof_pending)
			s->reset = true;
		if (!s->err)
			s->err = ECONNRESET;
		s->connecting = false;
		s->tcp_has = false;
		sk_drop_rxq(d, s, BH_LINK_TS);
		sk_publish(d, s);
		sk_answer(d, sid, BH_CTL_CONNECTED, -s->err);
		sk_mark(d, sid);
		sk_maybe_free(d, sid);
		conns++;
	}
	bh_logf("tcp replaced: %u connections reset (ECONNRESET), %u listeners listening again",
		conns, listeners);
}

/* ip was replaced: it lost the UDP bindings; bind again what is bound.
 * Datagrams already here stay (their buffers go home as usual). */
void sk_ip_replaced(struct sockd *d)
{
	unsigned n = 0;
	d->cq_ip.tail = d->cq_ip.head;
	d->udp_want = 0;
	for (uint32_t sid = 1; sid < d->nsocks; sid++) {
		struct ssock *s = &d->s[sid];
		if (!s->used || !s->udp || !s->lport || s->app_closed)
			continue;
		struct bh_ctl c = {.op = BH_CTL_UDP_BIND, .sid = sid, .lport = s->lport};
		bh_ctl_send(d->env, &d->cq_ip, BH_LINK_IS, &c);
		n++;
	}
	bh_logf("ip replaced: %u UDP ports bound again", n);
}
