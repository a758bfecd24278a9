/*
 * bench/tcp/tcp_sim_app.c - the simulation's two applications (see
 * tcp_sim.h): A connects to B; each writes its stream as its send buffer
 * allows, shuts down, reads the other's stream to its end checking every
 * byte and the hash, then closes. bh_sim__app_step is one turn of a side
 * in step 1 of the main loop (tcp_sim.c).
 */
#include <errno.h>
#include <string.h>

#include "bench/tcp/tcp_sim_impl.h"

const char *bh_sim__err_name(int e)
{
	switch (e) {
	case ECONNRESET:
		return "ECONNRESET";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case EPIPE:
		return "EPIPE";
	case ENOTCONN:
		return "ENOTCONN";
	case EINVAL:
		return "EINVAL";
	default:
		return strerror(e);
	}
}

/* Handles the side's events; returns true if there were any. */
bool bh_sim__app_events(struct sim *s, struct side *x)
{
	if (x->nev == 0)
		return false;
	struct bh_tcp_event ev[MAX_EVENTS];
	unsigned n = x->nev;
	memcpy(ev, x->ev, n * sizeof ev[0]);
	x->nev = 0;
	for (unsigned i = 0; i < n; i++) {
		switch (ev[i].type) {
		case BH_TCP_EV_CONNECTED:
			if (ev[i].conn == x->conn)
				x->connected = true;
			bh_sim__trace_app(s, x, "connected");
			break;
		case BH_TCP_EV_ACCEPTABLE: {
			bh_tcp_conn c;
			int rc;
			TIMED(x, other, rc = bh_tcp_accept(x->tcp, x->listener, 2, &c));
			if (rc == -EAGAIN)
				break;
			if (rc != 0) {
				bh_sim__fail(s, "%s: accept: %s", x->name, bh_sim__err_name(-rc));
				break;
			}
			if (x->conn) {
				bh_sim__fail(s, "%s: accepted a second connection", x->name);
				break;
			}
			x->conn = c;
			x->connected = true;
			bh_sim__trace_app(s, x, "accepted");
			break;
		}
		case BH_TCP_EV_READABLE:
		case BH_TCP_EV_WRITABLE:
			break; /* the application polls */
		case BH_TCP_EV_ERROR:
			bh_sim__fail(s, "%s: connection error %s", x->name,
				     bh_sim__err_name(ev[i].err));
			break;
		case BH_TCP_EV_CLOSED:
			bh_sim__trace_app(s, x, "CLOSED event");
			if (ev[i].conn == x->conn && x->conn)
				x->closed = true;
			else if (ev[i].conn == x->listener && x->listener)
				x->listener_closed = true;
			else
				bh_sim__fail(s, "%s: CLOSED for an unknown handle %08x", x->name,
					     ev[i].conn);
			break;
		}
	}
	return true;
}

/* Takes the side's next write from its stream into x->pending, unless the
 * pool is low; false when there is nothing to write with. */
static bool app_fill(struct sim *s, struct side *x)
{
	const struct bh_sim_spec *sp = s->spec;
	/* Like a socket layer, the application leaves a quarter of the pool
	 * to the libraries: the send queue is bounded in bytes, and tiny
	 * writes could otherwise pin every buffer and leave none to send
	 * with. */
	if (s->pool.nfree < s->pool.n / 4) {
		x->res->pool_waits++;
		return false;
	}
	if (!bh_sim__pool_get(&s->pool, owner_of(x), &x->pending))
		return false;
	uint64_t left = x->tx_total - x->tx_done;
	uint32_t n = sp->wmin + (uint32_t)rng_below(&x->rng, sp->wmax - sp->wmin + 1);
	if (n > left)
		n = (uint32_t)left;
	/* bh_tcp_send takes a buffer whole or not at all: one larger than
	 * the send buffer would never go. */
	if (sp->buf && n > sp->buf)
		n = sp->buf;
	bh_sim__stream_fill(x->tx_key, x->tx_done, bh_pkt_data(&x->pending), n);
	x->pending.len = n;
	x->has_pending = true;
	return true;
}

/* The application's steps below set *moved when they did anything and
 * return false when a call failed (the run has failed: the step ends). */

/* Writes the side's stream while the library takes it. */
static bool app_write(struct sim *s, struct side *x, bool *moved)
{
	const struct bh_sim_spec *sp = s->spec;
	while (x->tx_done < x->tx_total && (x->writable || sp->poll)) {
		if (!x->has_pending && !app_fill(s, x))
			break;
		int rc;
		TIMED(x, send, rc = bh_tcp_send(x->tcp, s->now, x->conn, &x->pending));
		bh_sim__flush(s, x);
		if (rc == -EAGAIN) {
			x->writable = false;
			break;
		}
		if (rc != 0) {
			bh_sim__fail(s, "%s: send: %s after %llu of %llu bytes", x->name,
				     bh_sim__err_name(-rc), (unsigned long long)x->tx_done,
				     (unsigned long long)x->tx_total);
			return false;
		}
		x->tx_hash = bh_sim__fnv1a(x->tx_hash, bh_pkt_data(&x->pending), x->pending.len);
		x->tx_done += x->pending.len;
		x->res->bytes_sent += x->pending.len;
		x->has_pending = false;
		*moved = true;
	}
	return true;
}

/* Shuts the side's sending down once its stream is written. */
static bool app_shutdown(struct sim *s, struct side *x, bool *moved)
{
	if (!x->tx_total || x->tx_done != x->tx_total || x->shut ||
	    !(x->connected || s->spec->early_shut))
		return true;
	int rc;
	TIMED(x, other, rc = bh_tcp_shutdown(x->tcp, s->now, x->conn));
	bh_sim__flush(s, x);
	if (rc != 0) {
		bh_sim__fail(s, "%s: shutdown: %s", x->name, bh_sim__err_name(-rc));
		return false;
	}
	x->shut = true;
	bh_sim__trace_app(s, x, "shutdown");
	*moved = true;
	return true;
}

/* The end of the peer's stream: every byte of it must have come. */
static void app_eof(struct sim *s, struct side *x)
{
	x->eof = true;
	x->res->eof_us = s->now - START_US;
	bh_sim__trace_app(s, x, "end of stream");
	if (x->rx_done != x->rx_total)
		bh_sim__fail(s, "%s: end of stream after %llu of %llu bytes", x->name,
			     (unsigned long long)x->rx_done, (unsigned long long)x->rx_total);
	else if (x->rx_hash != s->side[!x->id].tx_hash)
		bh_sim__fail(s, "%s: stream hash %016llx, sent %016llx", x->name,
			     (unsigned long long)x->rx_hash,
			     (unsigned long long)s->side[!x->id].tx_hash);
}

/* Checks one received buffer against the peer's stream, then gives it
 * back to the pool. */
static void app_check(struct sim *s, struct side *x, const struct bh_pkt *p)
{
	const uint8_t *d = bh_pkt_data(p);
	uint32_t len = p->len;
	if (!s->failed && (len == 0 || x->rx_done + len > x->rx_total)) {
		bh_sim__fail(s, "%s: received %u bytes at %llu of a %llu-byte stream", x->name, len,
			     (unsigned long long)x->rx_done, (unsigned long long)x->rx_total);
	} else if (!s->failed) {
		uint8_t want[BH_SIM_BUF];
		uint32_t m = len <= sizeof want ? len : (uint32_t)sizeof want;
		bh_sim__stream_fill(x->rx_key, x->rx_done, want, m);
		if (m != len || memcmp(want, d, len) != 0) {
			uint32_t k = 0;
			while (k < m && want[k] == d[k])
				k++;
			bh_sim__fail(s, "%s: byte %llu of the stream differs (got %02x, sent %02x)",
				     x->name, (unsigned long long)(x->rx_done + k),
				     k < len ? d[k] : 0, k < m ? want[k] : 0);
		}
		x->rx_hash = bh_sim__fnv1a(x->rx_hash, d, len);
		x->rx_done += len;
		x->res->bytes_rcvd += len;
	}
	if (!bh_sim__pool_put(&s->pool, owner_of(x), p))
		bh_sim__fail(s, "%s: recv handed over buffer %llu the side did not own", x->name,
			     (unsigned long long)p->handle);
}

/* Reads the peer's stream while there is something to read (a slow
 * reader no faster than its rate) and checks it. */
static bool app_read(struct sim *s, struct side *x, bool *moved)
{
	const struct bh_sim_spec *sp = s->spec;
	x->wake = UINT64_MAX;
	while (!x->eof && x->connected && (x->readable || sp->poll)) {
		struct bh_pkt in[32];
		unsigned max = 32;
		if (sp->rrate_bps) {
			/* A slow reader: one buffer at a time, no further ahead
			 * than the rate allows; it wakes when it may read more. */
			uint64_t may = (s->now - START_US) * (sp->rrate_bps / 8) / 1000000;
			if (x->rx_done >= may) {
				x->wake = START_US + (x->rx_done + BH_SIM_MAX_WRITE) * 1000000 /
							     (sp->rrate_bps / 8);
				break;
			}
			max = 1;
		}
		int n;
		TIMED(x, recv, n = bh_tcp_recv(x->tcp, s->now, x->conn, in, max));
		bh_sim__flush(s, x);
		struct bh_tcp_info info;
		if (n > 0 && bh_tcp_info(x->tcp, x->conn, &info) == 0 && info.rcv_buf > x->res->rcv_buf_peak)
			x->res->rcv_buf_peak = info.rcv_buf;
		if (n == -EAGAIN) {
			x->readable = false;
			break;
		}
		if (n < 0) {
			bh_sim__fail(s, "%s: recv: %s after %llu of %llu bytes", x->name,
				     bh_sim__err_name(-n), (unsigned long long)x->rx_done,
				     (unsigned long long)x->rx_total);
			return false;
		}
		*moved = true;
		if (n == 0) {
			app_eof(s, x);
			break;
		}
		for (int i = 0; i < n; i++)
			app_check(s, x, &in[i]);
	}
	return true;
}

/* Closes once the peer's stream has ended and the side's own is shut. */
static bool app_close(struct sim *s, struct side *x, bool *moved)
{
	bool sending_done = x->tx_total == 0 || x->shut;
	if (!x->eof || !sending_done || x->close_called || s->failed)
		return true;
	int rc;
	TIMED(x, other, rc = bh_tcp_close(x->tcp, s->now, x->conn));
	bh_sim__flush(s, x);
	if (rc != 0) {
		bh_sim__fail(s, "%s: close: %s", x->name, bh_sim__err_name(-rc));
		return false;
	}
	x->close_called = true;
	bh_sim__trace_app(s, x, "close");
	*moved = true;
	return true;
}

/* Writes, shuts down, reads and closes as far as it can; true if it did
 * anything. */
bool bh_sim__app_step(struct sim *s, struct side *x)
{
	bool moved = bh_sim__app_events(s, x);
	const struct bh_sim_spec *sp = s->spec;
	bool may_write = x->connected || (x->id == 0 && sp->early && x->conn);
	if (!x->conn || x->close_called || s->failed || !may_write)
		return moved;
	if (!app_write(s, x, &moved) || !app_shutdown(s, x, &moved) || !app_read(s, x, &moved) ||
	    !app_close(s, x, &moved))
		return true;
	return moved;
}
