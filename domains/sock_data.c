/*
 * domains/sock_data.c - the socket server's data path.
 *
 *   copy in    received data (RX buffers from tcp, datagram pieces from
 *              ip) into the application's receive ring; each buffer is
 *              given back once copied
 *   copy out   the application's send ring into SOCK buffers of our own
 *              pool, lent to tcp (a stream, cut at `chunk` bytes) or ip
 *              (one datagram each, with a struct bh_udp_out in front)
 *   service    one marked socket: copy in, copy out, a pending shutdown,
 *              and a closed socket's slot given back once drained
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains/logger.h"
#include "domains/sock_priv.h"
#include "ipc/order.h"

static uint8_t *rx_ring(struct sockd *d, struct ssock *s)
{
	struct app *a = &d->apps[s->app];
	return a->data + (size_t)s->slot * 2 * a->ring;
}

static uint8_t *tx_ring(struct sockd *d, struct ssock *s)
{
	struct app *a = &d->apps[s->app];
	return a->data + (size_t)s->slot * 2 * a->ring + a->ring;
}

/* A socket whose application broke its ring contract is reset. */
static void bad_index(struct sockd *d, uint32_t sid, struct ssock *s, const char *what)
{
	d->st.app_bad_index++;
	bh_log_limited(&d->rl, "application pid %d, socket slot %u: invalid %s; socket reset",
		       (int)d->apps[s->app].pid, s->slot, what);
	s->err = EPROTO;
	s->reset = true;
	if (s->tcp_has && !s->udp)
		sk_to_tcp(d, BH_CTL_ABORT, sid, NULL);
	sk_drop_rxq(d, s, BH_LINK_TS);
	sk_publish(d, s);
}

/* The bytes the application has not yet read from its receive ring,
 * checking what it wrote. */
static bool rx_used(struct sockd *d, uint32_t sid, struct ssock *s, uint32_t *used)
{
	struct app *a = &d->apps[s->app];
	uint32_t tail = bh_load_acquire32(&a->slots[s->slot].rx_tail);
	*used = s->rx_head - tail;
	if (*used > (s->udp ? a->ring : s->rx_win)) {
		bad_index(d, sid, s, "rx_tail");
		return false;
	}
	return true;
}

/* Room in the receive ring; at an empty ring, with data to write, a
 * stream socket's window may change (app_abi.h): published before the
 * data that follows. */
static bool rx_room(struct sockd *d, uint32_t sid, struct ssock *s, uint32_t *room,
		    uint32_t *used_out)
{
	bool writing = bh_dq_peek(&d->nodes, &s->rxq) != NULL;
	struct app *a = &d->apps[s->app];
	uint32_t used;
	if (!rx_used(d, sid, s, &used))
		return false;
	*used_out = used;
	if (s->udp) {
		*room = a->ring - used;
		return true;
	}
	if (used == 0 && writing) {
		uint32_t w = bh_win_next(&s->rx_use, s->rx_win, a->ring);
		if (w != s->rx_win) {
			s->rx_win = w;
			d->st.app_win_changes++;
			bh_store_relaxed32(&a->slots[s->slot].rx_win, w);
		}
	}
	*room = bh_win_room(&s->rx_use, s->rx_win, a->ring, used);
	return true;
}

/* Queued data into the application's ring (the copy in). */
static void copy_in(struct sockd *d, uint32_t sid, struct ssock *s)
{
	if (s->app == NO_APP || s->reset)
		return;
	struct app *a = &d->apps[s->app];
	uint32_t room, used0, put = 0;
	if (!rx_room(d, sid, s, &room, &used0))
		return;
	bool moved = false;
	struct bh_chan *ch = d->env->chan[s->udp ? BH_LINK_IS : BH_LINK_TS];
	uint8_t *ring = rx_ring(d, s);
	struct bh_desc *x;
	while ((x = bh_dq_peek(&d->nodes, &s->rxq)) != NULL) {
		if (s->udp) {
			/* A header (aux == UINT32_MAX, the ctl copied into
			 * meta fields) and its pieces. */
			struct bh_ctl c;
			if (!bh_ctl_read(d->env, x, &c)) {
				struct bh_desc b = {.buf = x->buf, .pool = x->pool};
				bh_dq_pop(&d->nodes, &s->rxq, NULL);
				bh_chan_give_back(ch, &b, 1);
				continue;
			}
			uint32_t need = bh_dgram_space(c.len);
			/* One that can never fit the ring is dropped whole
			 * (header and pieces), not left to block the rest. */
			bool fits = need <= a->ring;
			if (fits && need > room)
				break;
			if (fits) {
				struct bh_dgram_hdr h = {.len = c.len, .addr = c.raddr,
							 .port = c.rport};
				bh_ring_put(ring, a->ring, s->rx_head, &h, sizeof(h));
			}
			uint32_t at = s->rx_head + (uint32_t)sizeof(struct bh_dgram_hdr), got = 0;
			struct bh_desc hd = {0};
			bh_dq_pop(&d->nodes, &s->rxq, &hd);
			struct bh_desc b = {.buf = hd.buf, .pool = hd.pool};
			bh_chan_give_back(ch, &b, 1);
			for (uint32_t i = 0; i < c.arg; i++) {
				struct bh_desc p = {0};
				struct bh_desc *nx = bh_dq_peek(&d->nodes, &s->rxq);
				if (nx == NULL || nx->flags != BH_M_DATA)
					break;
				bh_dq_pop(&d->nodes, &s->rxq, &p);
				const uint8_t *src = bh_env_buf(d->env, p.pool, p.buf);
				uint32_t n = p.len;
				if (got + n > c.len)
					n = c.len - got;
				if (fits && src && n)
					bh_ring_put(ring, a->ring, at + got, src + p.off, n);
				got += n;
				struct bh_desc pb = {.buf = p.buf, .pool = p.pool};
				bh_chan_give_back(ch, &pb, 1);
			}
			if (!fits) {
				d->st.udp_too_big++;
				continue;
			}
			s->rx_head += need;
			room -= need;
			d->st.rx_bytes += c.len;
			moved = true;
			continue;
		}
		const uint8_t *src = bh_env_buf(d->env, x->pool, x->buf);
		uint32_t left = x->len - s->head_off;
		uint32_t n = left < room ? left : room;
		if (n == 0 && left)
			break;
		if (src && n)
			bh_ring_put(ring, s->rx_win, s->rx_head, src + x->off + s->head_off, n);
		s->rx_head += n;
		room -= n;
		put += n;
		s->head_off += n;
		d->st.rx_bytes += n;
		moved = true;
		if (s->head_off == x->len) {
			struct bh_desc b = {.buf = x->buf, .pool = x->pool};
			bh_dq_pop(&d->nodes, &s->rxq, NULL);
			bh_chan_give_back(ch, &b, 1);
			s->head_off = 0;
		}
	}
	bool waiting = bh_dq_peek(&d->nodes, &s->rxq) != NULL;
	if (!s->udp)
		bh_win_wrote(&s->rx_use, used0, put, waiting ? (size_t)put + 1 : put);
	if (!waiting && s->eof_pending && !s->eof) {
		s->eof = true;
		moved = true;
	}
	if (moved || waiting != s->rx_wants) {
		s->rx_wants = waiting;
		sk_publish(d, s);
	}
	if (waiting) {
		/* RX_WANTS, then re-read rx_tail (the application stores
		 * rx_tail, then reads RX_WANTS): room made meanwhile is seen
		 * by one of us. */
		bh_full_barrier();
		uint32_t used;
		if (rx_used(d, sid, s, &used) &&
		    (s->udp ? a->ring - used : bh_win_room(&s->rx_use, s->rx_win, a->ring, used)) > room)
			sk_mark(d, sid);
	}
}

/* The application's send ring into SOCK buffers for tcp (the copy out). */
static void copy_out(struct sockd *d, uint32_t sid, struct ssock *s)
{
	if (s->app == NO_APP || s->reset || (!s->connected && !s->udp))
		return;
	struct app *a = &d->apps[s->app];
	uint32_t head = bh_load_acquire32(&a->slots[s->slot].tx_head);
	uint32_t avail = head - s->tx_tail;
	/* The window after the index (app_abi.h); the application's word,
	 * so checked. */
	uint32_t win = s->udp ? a->ring : bh_win_of(bh_load_relaxed32(&a->slots[s->slot].tx_win), a->ring);
	if (win == 0) {
		bad_index(d, sid, s, "tx_win");
		return;
	}
	if (avail > win) {
		bad_index(d, sid, s, "tx_head");
		return;
	}
	if (s->shut_wr_sent && avail) {
		bad_index(d, sid, s, "tx_head after shutdown");
		return;
	}
	if (avail && d->cq_tcp.head != d->cq_tcp.tail) {
		/* Control messages first: they go in order. They wait for
		 * SOCK buffers too, so this socket waits as if for one. */
		sk_starved(d, sid);
		return;
	}
	struct bh_pool *pool = &d->env->own;
	uint8_t *ring = tx_ring(d, s);
	bool moved = false;
	while (avail > 0 && s->tx_out < d->tx_budget && s->tx_out_bytes < d->tx_budget_bytes) {
		uint32_t buf;
		if (bh_pool_alloc(pool, &buf) != 0) {
			sk_starved(d, sid);
			break;
		}
		uint8_t *dst = bh_pool_buf(pool, buf) + pool->geom.headroom;
		struct bh_desc x = {.buf = buf, .off = (uint16_t)pool->geom.headroom,
				    .pool = BH_POOL_SOCK, .aux = sid};
		uint32_t take;
		int link;
		if (s->udp) {
			struct bh_dgram_hdr h;
			if (avail < sizeof(h)) {
				bh_pool_free(pool, buf);
				bad_index(d, sid, s, "datagram framing");
				return;
			}
			bh_ring_get(&h, ring, a->ring, s->tx_tail, sizeof(h));
			uint32_t need = bh_dgram_space(h.len);
			uint32_t max = d->dgram_chunk - (uint32_t)sizeof(struct bh_udp_out);
			if (need > avail || h.len > max) {
				bh_pool_free(pool, buf);
				bad_index(d, sid, s, "datagram length");
				return;
			}
			struct bh_udp_out u = {.sid = sid,
					       .daddr = h.addr ? h.addr : s->raddr,
					       .dport = h.port ? h.port : s->rport,
					       .sport = s->lport};
			memcpy(dst, &u, sizeof(u));
			bh_ring_get(dst + sizeof(u), ring, a->ring, s->tx_tail + (uint32_t)sizeof(h),
				    h.len);
			x.len = (uint16_t)(sizeof(u) + h.len);
			x.flags = BH_M_DGRAM;
			take = need;
			link = BH_LINK_IS;
			d->st.tx_bytes += h.len;
		} else {
			take = avail < d->chunk ? avail : d->chunk;
			bh_ring_get(dst, ring, win, s->tx_tail, take);
			x.len = (uint16_t)take;
			x.flags = BH_M_DATA;
			link = BH_LINK_TS;
			d->st.tx_bytes += take;
		}
		int peer = link == BH_LINK_IS ? BH_DOM_IP : BH_DOM_TCP;
		bh_pool_lend(pool, buf, BH_HOLDER_DOM(peer));
		if (bh_chan_send(d->env->chan[link], &x, 1) != 1) {
			/* The link is full of other sockets' data, maybe:
			 * wait for a return, as for a buffer. */
			bh_pool_take_back(pool, buf, BH_HOLDER_DOM(peer));
			bh_pool_free(pool, buf);
			sk_starved(d, sid);
			break;
		}
		d->buf_sid[buf] = sid;
		d->buf_len[buf] = s->udp ? 0 : (uint16_t)take;
		if (!s->udp) {
			s->tx_out++;
			s->tx_out_bytes += take;
		}
		s->tx_tail += take;
		avail -= take;
		moved = true;
	}
	if (moved)
		sk_publish(d, s);
}

void sk_starved(struct sockd *d, uint32_t sid)
{
	d->st.tx_starved++;
	bh_wl_add(&d->starved, sid);
}

static void mark_cb(void *ctx, uint32_t sid)
{
	sk_mark(ctx, sid);
}

void sk_unstarve(struct sockd *d)
{
	bh_wl_drain(&d->starved, mark_cb, d);
}

void sk_service(struct sockd *d, uint32_t sid)
{
	struct ssock *s = sk_sock_of(d, sid);
	if (s == NULL)
		return;
	if (!s->app_closed)
		copy_in(d, sid, s);
	copy_out(d, sid, s);
	if (s->app == NO_APP && !s->app_closed)
		return;
	struct app *a = s->app == NO_APP ? NULL : &d->apps[s->app];
	/* shutdown(SHUT_WR): once everything before it went to tcp. */
	if (s->shut_wr_pending && a && s->tx_tail == s->shut_at && d->cq_tcp.head == d->cq_tcp.tail) {
		s->shut_wr_pending = false;
		s->shut_wr_sent = true;
		sk_to_tcp(d, BH_CTL_SHUTDOWN, sid, NULL);
		sk_publish(d, s);
	}
	if (s->app_closed && a) {
		uint32_t head = bh_load_acquire32(&a->slots[s->slot].tx_head);
		bool drained = head == s->tx_tail || s->reset || s->udp || !s->connected;
		if (drained || head - s->tx_tail > a->ring) {
			/* The slot is the application's again. */
			sk_app_unbind_slot(d, a, s->slot);
			s->app = NO_APP;
			if (s->tcp_has && !s->udp)
				sk_to_tcp(d, s->close_abort ? BH_CTL_ABORT : BH_CTL_CLOSE, sid, NULL);
			else if (s->udp)
				s->tcp_has = false;
			sk_maybe_free(d, sid);
		}
	}
}
