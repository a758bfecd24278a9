/*
 * tests/tcp/harness.c - see harness.h.
 */
#include "tests/tcp/harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"
#include "ip/ip_wire.h"

static bool op_alloc(void *ctx, struct bh_pkt *out)
{
	struct harness *h = ctx;
	if (h->fail_alloc)
		return false;
	for (uint32_t i = 0; i < h->nbufs; i++) {
		if (!h->used[i]) {
			h->used[i] = true;
			h->in_use++;
			*out = (struct bh_pkt){h->mem + (size_t)i * H_BUF, H_BUF, H_HEADROOM, 0, i, true, BH_CSUM_NONE, 0, false};
			return true;
		}
	}
	return false;
}

static void op_release(void *ctx, const struct bh_pkt *p)
{
	struct harness *h = ctx;
	if (p->handle >= h->nbufs || p->base != h->mem + p->handle * H_BUF) {
		h->bad_handle++;
		return;
	}
	if (!h->used[p->handle]) {
		h->double_release++;
		return;
	}
	h->used[p->handle] = false;
	h->in_use--;
}

static void op_output(void *ctx, const struct bh_pkt *seg, bh_ip4 dst)
{
	struct harness *h = ctx;
	if (h->nout < H_LOG) {
		struct h_seg *s = &h->out[h->nout];
		memset(&s->t, 0, sizeof s->t);
		s->dst = dst;
		s->at = h->now;
		/* The checksum must verify, as the peer's stack would check;
		 * one left to the device is completed first, as the device
		 * (or the wire's copy) does. */
		static uint8_t dev[65536];
		const uint8_t *b = bh_pkt_data(seg);
		/* A send chain: gathered as the driver would, each piece
		 * a buffer the library holds. */
		static uint8_t whole[65536];
		if (seg->chain) {
			const struct bh_chain *ch =
			    (const struct bh_chain *)(seg->base + bh_chain_at(seg->size));
			if (ch->magic != BH_CHAIN_MAGIC || ch->n == 0 || ch->n > BH_CHAIN_MAX ||
			    ch->payload >= seg->len) {
				fprintf(stderr, "harness: a malformed send chain\n");
				abort();
			}
			uint32_t hl = seg->len - ch->payload, at = hl;
			memcpy(whole, b, hl);
			for (uint32_t i = 0; i < ch->n; i++) {
				const struct bh_chain_piece *c = &ch->piece[i];
				if (c->handle >= h->nbufs || !h->used[c->handle] || c->off > H_BUF ||
				    c->len > H_BUF - c->off || at + c->len > seg->len) {
					fprintf(stderr, "harness: a chain names a buffer not held\n");
					abort();
				}
				memcpy(whole + at, h->mem + c->handle * H_BUF + c->off, c->len);
				at += c->len;
			}
			if (at != seg->len) {
				fprintf(stderr, "harness: a chain's pieces do not add up\n");
				abort();
			}
			b = whole;
			h->chain_out++;
		}
		if (seg->csum == BH_CSUM_PARTIAL) {
			memcpy(dev, b, seg->len);
			bh_l4_csum_complete(dev, seg->len, BH_IPPROTO_TCP);
			b = dev;
			h->partial_out++;
		}
		uint32_t sum = bh_ipv4_pseudo_sum(H_US, dst, BH_IPPROTO_TCP, (uint16_t)seg->len);
		bool ck = bh_csum_fold(bh_csum_partial(b, seg->len, sum)) == 0;
		if (!ck || bh_tcp_parse(b, seg->len, seg->len, &s->t) != BH_TCP_WIRE_OK) {
			fprintf(stderr, "harness: the library sent a malformed segment\n");
			abort();
		}
		s->len = s->t.payload_len;
		memcpy(s->data, b + s->t.hlen, s->len);
	}
	h->nout++;
	op_release(ctx, seg);
}

static void op_event(void *ctx, const struct bh_tcp_event *ev)
{
	struct harness *h = ctx;
	if (h->nev < H_LOG)
		h->ev[h->nev] = *ev;
	h->nev++;
}

static const struct bh_tcp_ops ops = {op_alloc, op_release, op_output, op_event};

void h_config(struct bh_tcp_config *c)
{
	memset(c, 0, sizeof *c);
	c->addr = H_US;
	c->secret[0] = 42;
	c->secret[1] = 43;
}

void h_init(struct harness *h, const struct bh_tcp_config *c)
{
	memset(h, 0, sizeof *h);
	struct bh_tcp_config def;
	if (!c) {
		h_config(&def);
		c = &def;
	}
	h->nbufs = 1024;
	h->mem = calloc(h->nbufs, H_BUF);
	h->used = calloc(h->nbufs, sizeof *h->used);
	h->out = calloc(H_LOG, sizeof *h->out);
	h->now = 1000 * MS;
	h->peer_port = 40000;
	h->our_port = 80;
	h->peer_iss = 0x10000000;
	const char *err = NULL;
	h->tcp = bh_tcp_create(c, &ops, h, &err);
	if (!h->tcp || !h->mem || !h->used || !h->out) {
		fprintf(stderr, "h_init: %s\n", err ? err : "out of memory");
		abort();
	}
}

void h_check(const struct harness *h, const char *where)
{
	const char *e = bh_tcp_check_invariants(h->tcp);
	if (e) {
		fprintf(stderr, "harness: %s: invariant broken: %s\n", where, e);
		abort();
	}
}

uint32_t h_fini(struct harness *h)
{
	h_check(h, "h_fini");
	bh_tcp_destroy(h->tcp);
	uint32_t bad = h->in_use + h->double_release + h->bad_handle;
	free(h->mem);
	free(h->used);
	free(h->out);
	return bad;
}

void h_clear(struct harness *h) { h->nout = h->nev = 0; }

uint64_t h_tick(struct harness *h, uint64_t now)
{
	h_check(h, "before h_tick");
	h->now = now;
	uint64_t next = bh_tcp_tick(h->tcp, now);
	h_check(h, "after h_tick");
	return next;
}

static void opts_from(const struct harness *h, struct bh_tcp_opts *t, const struct h_opts *o)
{
	if (!o)
		return;
	t->nsack = o->nsack;
	for (unsigned k = 0; k < o->nsack && k < 4; k++) {
		t->sack[k].left = h->our_iss + o->sack[k][0];
		t->sack[k].right = h->our_iss + o->sack[k][1];
	}
	t->has_mss = o->mss;
	t->mss = o->mss_v;
	t->has_wscale = o->ws;
	t->wscale = o->ws_v;
	t->sack_ok = o->sack_ok;
	t->has_ts = o->ts;
	t->ts_val = o->ts_val;
	t->ts_ecr = o->ts_ecr;
}

/* A buffer from the pool for the peer's segment, even while the
 * library's allocations are made to fail. */
static struct bh_pkt peer_buf(struct harness *h)
{
	struct bh_pkt p;
	bool saved = h->fail_alloc;
	h->fail_alloc = false;
	bool got = op_alloc(h, &p);
	h->fail_alloc = saved;
	if (!got)
		abort();
	return p;
}

/* Appends the data, fills in the checksum (corrupted on request) and
 * hands the segment (header of hl bytes at p's off) to the library. */
static void inject(struct harness *h, struct bh_pkt *p, unsigned hl, const void *data, uint32_t len,
		   bool bad_checksum)
{
	uint8_t *q = bh_pkt_data(p);
	if (hl + len > H_BUF - H_HEADROOM)
		abort();
	if (len)
		memcpy(q + hl, data, len);
	p->len = hl + len;
	uint32_t sum = bh_ipv4_pseudo_sum(H_PEER, H_US, BH_IPPROTO_TCP, (uint16_t)p->len);
	uint16_t ck = bh_csum_fold(bh_csum_partial(q, p->len, sum));
	if (bad_checksum)
		ck ^= 1;
	memcpy(q + 16, &ck, 2);
	p->writable = false;
	struct bh_ip_rx rx = {.proto = BH_IPPROTO_TCP, .ttl = 64, .cast = BH_IP_UNICAST,
			      .src = H_PEER, .dst = H_US, .len = p->len, .npieces = 1,
			      .csum_valid = h->vouch};
	rx.piece[0] = *p;
	h_check(h, "before a segment");
	bh_tcp_input(h->tcp, h->now, &rx);
	h_check(h, "after a segment");
}

void h_send_abs(struct harness *h, uint8_t flags, bh_seq seq, bh_seq ack, uint16_t window,
		const void *data, uint32_t len, const struct h_opts *o, bool bad_checksum)
{
	struct bh_pkt p = peer_buf(h);
	struct bh_tcp_repr t = {.sport = h->peer_port, .dport = h->our_port, .seq = seq, .ack = ack,
				.flags = flags, .window = window};
	opts_from(h, &t.opt, o);
	t.urgent = o ? o->urg : 0;
	unsigned hl = bh_tcp_emit(bh_pkt_data(&p), &t);
	inject(h, &p, hl, data, len, bad_checksum);
}

void h_send_raw(struct harness *h, uint8_t flags, bh_seq seq, bh_seq ack, uint16_t window,
		const uint8_t *opts, unsigned olen, const void *data, uint32_t len)
{
	if (olen > BH_TCP_MAX_HLEN - BH_TCP_HLEN)
		abort();
	struct bh_pkt p = peer_buf(h);
	uint8_t *q = bh_pkt_data(&p);
	unsigned hl = BH_TCP_HLEN + ((olen + 3) & ~3u);
	memset(q, 0, hl);
	bh_st16(q, h->peer_port);
	bh_st16(q + 2, h->our_port);
	bh_st32(q + 4, seq);
	bh_st32(q + 8, ack);
	q[12] = (uint8_t)(hl / 4 << 4);
	q[13] = flags;
	bh_st16(q + 14, window);
	if (olen)
		memcpy(q + BH_TCP_HLEN, opts, olen);
	inject(h, &p, hl, data, len, false);
}

void h_send(struct harness *h, uint8_t flags, uint32_t seq_rel, uint32_t ack_rel, uint16_t window,
	    const void *data, uint32_t len, const struct h_opts *o)
{
	h_send_abs(h, flags, h->peer_iss + seq_rel, h->our_iss + ack_rel, window, data, len, o,
		   false);
}

uint32_t h_rel_seq(const struct harness *h, unsigned i) { return h->out[i].t.seq - h->our_iss; }
uint32_t h_rel_ack(const struct harness *h, unsigned i) { return h->out[i].t.ack - h->peer_iss; }
uint32_t h_rel_sack(const struct harness *h, unsigned i, unsigned k, bool right)
{
	const struct bh_sack_block *b = &h->out[i].t.opt.sack[k];
	return (right ? b->right : b->left) - h->peer_iss;
}

unsigned h_events(const struct harness *h, enum bh_tcp_event_type t, bh_tcp_conn c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < h->nev && i < H_LOG; i++)
		if (h->ev[i].type == t && (c == 0 || h->ev[i].conn == c))
			n++;
	return n;
}

int h_last_error(const struct harness *h)
{
	for (unsigned i = h->nev < H_LOG ? h->nev : H_LOG; i-- > 0;)
		if (h->ev[i].type == BH_TCP_EV_ERROR)
			return h->ev[i].err;
	return 0;
}

bh_tcp_conn h_connect(struct harness *h, const struct h_opts *o)
{
	bh_tcp_conn c;
	h->our_port = 0; /* learned from the SYN */
	h_check(h, "before h_connect");
	int rc = bh_tcp_connect(h->tcp, h->now, H_PEER, h->peer_port, 0, 7, &c);
	h_check(h, "after bh_tcp_connect");
	if (rc != 0 || h->nout < 1)
		return 0;
	const struct h_seg *syn = &h->out[h->nout - 1];
	h->our_iss = syn->t.seq;
	h->our_port = syn->t.sport;
	struct h_opts def = {.mss = true, .mss_v = 1460};
	h->now += 10 * MS;
	h_send(h, BH_TCP_SYN | BH_TCP_ACK, 0, 1, 65535, NULL, 0, o ? o : &def);
	return c;
}

bh_tcp_conn h_accept(struct harness *h, const struct h_opts *o)
{
	bh_tcp_conn l, c;
	h_check(h, "before h_accept");
	if (bh_tcp_listen(h->tcp, h->our_port, 16, 1, &l) != 0)
		return 0;
	struct h_opts def = {.mss = true, .mss_v = 1460};
	h_send(h, BH_TCP_SYN, 0, 0, 65535, NULL, 0, o ? o : &def);
	if (h->nout < 1)
		return 0;
	h->our_iss = h->out[h->nout - 1].t.seq;
	h->now += 10 * MS;
	h_send(h, BH_TCP_ACK, 1, 1, 65535, NULL, 0, NULL);
	int rc = bh_tcp_accept(h->tcp, l, 9, &c);
	h_check(h, "after bh_tcp_accept");
	return rc == 0 ? c : 0;
}

int h_write(struct harness *h, bh_tcp_conn c, const void *data, uint32_t len)
{
	struct bh_pkt p;
	if (!op_alloc(h, &p))
		return -ENOBUFS;
	memcpy(bh_pkt_data(&p), data, len);
	p.len = len;
	h_check(h, "before h_write");
	int rc = bh_tcp_send(h->tcp, h->now, c, &p);
	h_check(h, "after h_write");
	if (rc != 0)
		op_release(h, &p);
	return rc;
}

int h_read(struct harness *h, bh_tcp_conn c, uint8_t *buf, uint32_t cap)
{
	uint32_t got = 0;
	h_check(h, "before h_read");
	for (;;) {
		struct bh_pkt p[16];
		int n = bh_tcp_recv(h->tcp, h->now, c, p, 16);
		h_check(h, "after bh_tcp_recv");
		if (n <= 0) {
			if (got)
				return (int)got;
			return n == 0 ? -1 : n;
		}
		for (int i = 0; i < n; i++) {
			uint32_t k = p[i].len < cap - got ? p[i].len : cap - got;
			memcpy(buf + got, bh_pkt_data(&p[i]), k);
			got += k;
			op_release(h, &p[i]);
		}
	}
}
