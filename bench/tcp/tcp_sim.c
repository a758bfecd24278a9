/*
 * bench/tcp/tcp_sim.c - see tcp_sim.h: the buffer pool, the simulated
 * path (links, segments in flight, delivery), the trace and the run.
 * tcp_sim_app.c has the two applications, tcp_sim_spec.c the spec's
 * parser; tcp_sim_impl.h is what they share.
 *
 * Main loop, at one virtual time `now`:
 *   1. each side's events and application steps (write, shutdown, read,
 *      close) until nothing moves; the segments the library hands to
 *      ops.output wait in the side's outbox and are put on the link after
 *      the call returns (the library is never re-entered from a callback,
 *      and the timed calls do not include the link);
 *   2. bh_tcp_tick() on a side touched since its last tick or whose
 *      deadline has come;
 *   3. the clock jumps to the earliest of the next arrival and the two
 *      deadlines, and every segment due by then is delivered with
 *      bh_tcp_input().
 */
#include "bench/tcp/tcp_sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/tcp/tcp_sim_impl.h"
#include "ip/checksum.h"
#include "ipc/clock.h"
#include "tcp/tcp.h"

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

/* ---- the streams: byte i of a stream is a function of (key, i) ---- */

static uint64_t stream_word(uint64_t key, uint64_t i)
{
	uint64_t x = key ^ (i * 0x9e3779b97f4a7c15ull);
	return splitmix64(&x);
}

void bh_sim__stream_fill(uint64_t key, uint64_t off, uint8_t *dst, uint32_t n)
{
	while (n) {
		uint64_t w = stream_word(key, off / 8);
		unsigned b = (unsigned)(off % 8);
		for (; b < 8 && n; b++, n--, off++)
			*dst++ = (uint8_t)(w >> (8 * b));
	}
}

uint64_t bh_sim__fnv1a(uint64_t h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

/* ---- segments in flight: a binary heap by (at, order) ---- */

static bool fl_before(const struct flight *a, const struct flight *b)
{
	return a->at != b->at ? a->at < b->at : a->order < b->order;
}

static bool heap_push(struct heap *h, const struct flight *f)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct flight *v = realloc(h->v, cap * sizeof *v);
		if (!v)
			return false;
		h->v = v;
		h->cap = cap;
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!fl_before(f, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = *f;
	return true;
}

static struct flight heap_pop(struct heap *h)
{
	struct flight top = h->v[0], last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = l;
		if (l >= h->n)
			break;
		if (l + 1 < h->n && fl_before(&h->v[l + 1], &h->v[l]))
			m = l + 1;
		if (!fl_before(&h->v[m], &last))
			break;
		h->v[i] = h->v[m];
		i = m;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* ---- failure and the buffer pool ---- */

void bh_sim__fail(struct sim *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->r->reason, sizeof s->r->reason, fmt, ap);
	va_end(ap);
}

static bool pool_valid(const struct pool *p, const struct bh_pkt *k)
{
	return k->handle < p->n && k->base == p->mem + k->handle * BH_SIM_BUF &&
	       k->size == BH_SIM_BUF;
}

bool bh_sim__pool_get(struct pool *p, uint8_t owner, struct bh_pkt *out)
{
	if (p->nfree == 0) {
		p->empty++;
		return false;
	}
	uint32_t i = p->free[--p->nfree];
	p->owner[i] = owner;
	*out = (struct bh_pkt){p->mem + (size_t)i * BH_SIM_BUF, BH_SIM_BUF, BH_SIM_HEADROOM, 0, i, true, BH_CSUM_NONE, 0, false};
	return true;
}

/* Gives a buffer back; false if `owner` did not own it. */
bool bh_sim__pool_put(struct pool *p, uint8_t owner, const struct bh_pkt *k)
{
	if (!pool_valid(p, k) || p->owner[k->handle] != owner) {
		p->bad_releases++;
		return false;
	}
	p->owner[k->handle] = FREE;
	p->free[p->nfree++] = (uint32_t)k->handle;
	return true;
}

/* ---- library callbacks ---- */

static bool cb_alloc(void *ctx, struct bh_pkt *out)
{
	struct side *x = ctx;
	return bh_sim__pool_get(&x->sim->pool, owner_of(x), out);
}

static void cb_release(void *ctx, const struct bh_pkt *p)
{
	struct side *x = ctx;
	if (!bh_sim__pool_put(&x->sim->pool, owner_of(x), p))
		bh_sim__fail(x->sim, "%s's library released buffer %llu it did not own (owner %d)",
			     x->name, (unsigned long long)p->handle,
			     pool_valid(&x->sim->pool, p) ? x->sim->pool.owner[p->handle] : -1);
}

static void cb_output(void *ctx, const struct bh_pkt *seg, bh_ip4 dst)
{
	struct side *x = ctx;
	struct sim *s = x->sim;
	if (dst != (x->id == 0 ? ADDR_B : ADDR_A)) {
		bh_sim__fail(s, "%s sent a segment to an unknown address %08x", x->name, dst);
		bh_sim__pool_put(&s->pool, owner_of(x), seg);
		return;
	}
	if (x->nout == x->capout) {
		size_t cap = x->capout ? x->capout * 2 : 256;
		struct bh_pkt *v = realloc(x->outbox, cap * sizeof *v);
		if (!v) {
			bh_sim__fail(s, "out of memory");
			bh_sim__pool_put(&s->pool, owner_of(x), seg);
			return;
		}
		x->outbox = v;
		x->capout = cap;
	}
	x->outbox[x->nout++] = *seg;
}

static void cb_event(void *ctx, const struct bh_tcp_event *ev)
{
	struct side *x = ctx;
	/* Data and room: the application tries again when told (or, with
	 * poll=1, every time round). */
	if (ev->type == BH_TCP_EV_READABLE || ev->type == BH_TCP_EV_WRITABLE) {
		if (ev->conn == x->conn || !x->conn) {
			if (ev->type == BH_TCP_EV_READABLE)
				x->readable = true;
			else
				x->writable = true;
		}
		return;
	}
	if (x->nev == MAX_EVENTS) {
		bh_sim__fail(x->sim, "%s: more than %d events waiting for the application", x->name,
			     MAX_EVENTS);
		return;
	}
	x->ev[x->nev++] = *ev;
}

static const struct bh_tcp_ops sim_ops = {cb_alloc, cb_release, cb_output, cb_event};

/* ---- trace ---- */

static void trace_seg(struct sim *s, const struct side *from, const struct bh_pkt *p,
		      const char *what)
{
	FILE *f = s->opts->trace;
	if (!f)
		return;
	const struct side *peer = &s->side[!from->id];
	struct bh_tcp_repr t;
	memset(&t, 0, sizeof t);
	if (bh_tcp_parse(bh_pkt_data(p), p->len, p->len, &t) != BH_TCP_WIRE_OK) {
		fprintf(f, "%12.6f %s>%s (unparsable, %u bytes) %s\n", (double)s->now / 1e6, from->name,
			peer->name, p->len, what);
		return;
	}
	char fl[8];
	int k = 0;
	if (t.flags & BH_TCP_SYN)
		fl[k++] = 'S';
	if (t.flags & BH_TCP_FIN)
		fl[k++] = 'F';
	if (t.flags & BH_TCP_RST)
		fl[k++] = 'R';
	if (t.flags & BH_TCP_PSH)
		fl[k++] = 'P';
	if (t.flags & BH_TCP_ACK)
		fl[k++] = '.';
	fl[k] = 0;
	fprintf(f, "%12.6f %s>%s %-4s seq %u ack %u len %u win %u %s\n", (double)s->now / 1e6,
		from->name, peer->name, fl, from->iss_known ? t.seq - from->iss : t.seq,
		(t.flags & BH_TCP_ACK) && peer->iss_known ? t.ack - peer->iss : t.ack, t.payload_len,
		t.window, what);
}

void bh_sim__trace_app(const struct sim *s, const struct side *x, const char *what)
{
	if (s->opts->trace)
		fprintf(s->opts->trace, "%12.6f %s: %s\n", (double)s->now / 1e6, x->name, what);
}

/* ---- the link ---- */

/* Whether the link loses a segment leaving at t_ns: independently at
 * loss_ppm, or, with cfg.burst_us, in bursts of time (a two-state
 * Gilbert-Elliott channel in continuous time: bad spells of mean length
 * burst_us, good ones long enough that the time spent bad is loss_ppm;
 * everything leaving in a bad spell is lost). The state at t follows
 * from the state at the last segment and the time between, so a sender
 * silent through a burst (waiting on its timer) meets it no longer. */
static bool link_loses(struct link *l, uint64_t t_ns)
{
	if (l->cfg.burst_us == 0)
		return rng_ppm(&l->rng, l->cfg.loss_ppm);
	double bad = l->cfg.loss_ppm / 1e6;
	if (bad >= 1)
		return true;
	double leave_bad = 1.0 / ((double)l->cfg.burst_us * 1000); /* per ns */
	double rate = leave_bad / (1 - bad);                       /* both ways */
	double dt = l->state_ns && t_ns > l->state_ns ? (double)(t_ns - l->state_ns) : 0;
	double keep = exp(-rate * dt);
	double p_bad = l->bad ? bad + (1 - bad) * keep : bad * (1 - keep);
	if (l->state_ns == 0)
		p_bad = bad; /* the first segment: the long-run mix */
	l->state_ns = t_ns;
	bool was = l->bad;
	l->bad = (double)rng_below(&l->rng, 1000000) < p_bad * 1e6;
	if (l->bad && !was)
		l->bursts++;
	return l->bad;
}
static void link_send(struct sim *s, struct side *from, struct bh_pkt p)
{
	struct link *l = &from->link;
	struct bh_sim_side *res = from->res;
	uint64_t now_ns = s->now * 1000;
	res->link_sent++;
	if (!from->iss_known && p.len >= BH_TCP_HLEN && (bh_pkt_data(&p)[13] & BH_TCP_SYN)) {
		from->iss = bh_ld32(bh_pkt_data(&p) + 4);
		from->iss_known = true;
	}
	uint64_t ip_len = (uint64_t)p.len + BH_IPV4_HLEN;
	uint64_t depart_ns = now_ns;
	if (l->cfg.rate_bps) {
		uint64_t start = l->free_ns > now_ns ? l->free_ns : now_ns;
		if (l->cfg.queue_bytes) {
			uint64_t backlog = (start - now_ns) * l->cfg.rate_bps / 8000000000ull;
			if (backlog + ip_len > l->cfg.queue_bytes) {
				res->link_qdrops++;
				trace_seg(s, from, &p, "queue full: dropped");
				bh_sim__pool_put(&s->pool, WIRE, &p);
				return;
			}
		}
		depart_ns = start + (ip_len * 8 * 1000000000ull + l->cfg.rate_bps - 1) / l->cfg.rate_bps;
		l->free_ns = depart_ns;
	}
	if (link_loses(l, depart_ns)) {
		res->link_lost++;
		trace_seg(s, from, &p, "lost");
		bh_sim__pool_put(&s->pool, WIRE, &p);
		return;
	}
	uint64_t at = (depart_ns + 999) / 1000 + l->cfg.delay_us;
	const char *fate = "";
	if (rng_ppm(&l->rng, l->cfg.reorder_ppm)) {
		at += 1 + rng_below(&l->rng, l->cfg.rdelay_us ? l->cfg.rdelay_us : 1);
		res->link_reordered++;
		fate = "late";
	}
	struct flight f = {at, s->order++, !from->id, p};
	if (!heap_push(&s->heap, &f)) {
		bh_sim__fail(s, "out of memory");
		bh_sim__pool_put(&s->pool, WIRE, &p);
		return;
	}
	if (rng_ppm(&l->rng, l->cfg.dup_ppm)) {
		struct bh_pkt d;
		if (bh_sim__pool_get(&s->pool, WIRE, &d)) {
			d.off = p.off;
			d.len = p.len;
			memcpy(bh_pkt_data(&d), bh_pkt_data(&p), p.len);
			struct flight g = {at + rng_below(&l->rng, 200), s->order++, !from->id, d};
			if (heap_push(&s->heap, &g))
				res->link_dup++;
			else
				bh_sim__pool_put(&s->pool, WIRE, &d);
			fate = *fate ? "late, duplicated" : "duplicated";
		}
	}
	trace_seg(s, from, &p, fate);
	if (s->heap.n > s->r->max_in_flight)
		s->r->max_in_flight = s->heap.n;
}

/* Moves what the side's library output to its link. */
void bh_sim__flush(struct sim *s, struct side *x)
{
	for (size_t i = 0; i < x->nout; i++) {
		struct bh_pkt p = x->outbox[i];
		if (!pool_valid(&s->pool, &p) || s->pool.owner[p.handle] != owner_of(x)) {
			bh_sim__fail(s, "%s output buffer %llu it did not own", x->name,
				     (unsigned long long)p.handle);
			continue;
		}
		s->pool.owner[p.handle] = WIRE;
		if (p.len < BH_TCP_HLEN || p.off > p.size || p.len > p.size - p.off) {
			bh_sim__fail(s, "%s output a segment of %u bytes at %u", x->name, p.len,
				     p.off);
			bh_sim__pool_put(&s->pool, WIRE, &p);
			continue;
		}
		link_send(s, x, p);
	}
	x->nout = 0;
}

/* Delivers one arrival: corruption and splitting happen here. */
static void deliver(struct sim *s, struct flight *f)
{
	struct side *to = &s->side[f->to], *from = &s->side[!f->to];
	struct link *l = &from->link;
	struct bh_pkt p = f->pkt;
	struct bh_ip_rx rx;
	memset(&rx, 0, offsetof(struct bh_ip_rx, piece));
	rx.proto = BH_IPPROTO_TCP;
	rx.ttl = 64;
	rx.cast = BH_IP_UNICAST;
	rx.src = from->id == 0 ? ADDR_A : ADDR_B;
	rx.dst = to->id == 0 ? ADDR_A : ADDR_B;
	rx.len = p.len;
	rx.npieces = 1;
	const char *what = "in";
	if (rng_ppm(&l->rng, l->cfg.corrupt_ppm)) {
		/* A byte whose change the parser cannot refuse first (not the
		 * data offset and flags, not the options), so that only the
		 * checksum can catch it: ports, numbers, window, checksum,
		 * urgent pointer, data. */
		uint32_t hl = (uint32_t)(bh_pkt_data(&p)[12] >> 4) * 4;
		uint32_t k = (uint32_t)rng_below(&l->rng, 18 + (p.len - hl));
		if (k >= 18)
			k = hl + (k - 18);
		else if (k >= 12)
			k += 2;
		bh_pkt_data(&p)[k] ^= (uint8_t)(1 + rng_below(&l->rng, 255));
		from->res->link_corrupted++;
		what = "in, corrupted";
	}
	uint8_t hlen = (uint8_t)((bh_pkt_data(&p)[12] >> 4) * 4);
	if (p.len > hlen && rng_ppm(&l->rng, l->cfg.forge_ppm)) {
		/* Corruption the checksum cannot see: the byte changes and
		 * the checksum is made to match. Only the stream check can
		 * catch it (a test that the check works). */
		uint8_t *h = bh_pkt_data(&p);
		h[hlen + rng_below(&l->rng, p.len - hlen)] ^= 0x5a;
		memset(h + 16, 0, 2);
		uint32_t sum = bh_ipv4_pseudo_sum(rx.src, rx.dst, BH_IPPROTO_TCP, (uint16_t)p.len);
		uint16_t ck = bh_csum_fold(bh_csum_partial(h, p.len, sum));
		memcpy(h + 16, &ck, 2);
		what = "in, forged";
	}
	trace_seg(s, from, &p, what);
	s->pool.owner[p.handle] = owner_of(to);
	p.writable = false;
	rx.piece[0] = p;
	if (p.len > hlen + 8u && rng_ppm(&l->rng, l->cfg.split_ppm)) {
		/* Piece boundaries fall at even offsets, as IP fragments do. */
		uint32_t cut = hlen + 8 * (uint32_t)(1 + rng_below(&l->rng, (p.len - hlen - 1) / 8));
		struct bh_pkt q;
		if (cut < p.len && bh_sim__pool_get(&s->pool, owner_of(to), &q)) {
			q.len = p.len - cut;
			memcpy(bh_pkt_data(&q), bh_pkt_data(&p) + cut, q.len);
			q.writable = false;
			rx.piece[0].len = cut;
			rx.piece[1] = q;
			rx.npieces = 2;
			from->res->link_split++;
		}
	}
	TIMED(to, input, bh_tcp_input(to->tcp, s->now, &rx));
	bh_sim__flush(s, to);
}

/* ---- state for failure reports ---- */

static int describe(const struct sim *s, char *out, size_t n)
{
	int k = snprintf(out, n, "virtual time %.6f s, pool %u of %u free, %zu segments in flight",
			 (double)(s->now - START_US) / 1e6, s->pool.nfree, s->pool.n, s->heap.n);
	if (s->heap.n && k >= 0 && (size_t)k < n)
		k += snprintf(out + k, n - (size_t)k, " (next at %.6f s)",
			      (double)(s->heap.v[0].at - START_US) / 1e6);
	for (int i = 0; i < 2 && k >= 0 && (size_t)k < n; i++) {
		const struct side *x = &s->side[i];
		k += snprintf(out + k, n - (size_t)k,
			      "\n  %s: sent %llu/%llu, received %llu/%llu%s%s%s, held %u, next timer ",
			      x->name, (unsigned long long)x->tx_done, (unsigned long long)x->tx_total,
			      (unsigned long long)x->rx_done, (unsigned long long)x->rx_total,
			      x->shut ? ", shut" : "", x->eof ? ", eof" : "",
			      x->close_called ? ", close called" : "", x->tcp ? bh_tcp_held(x->tcp) : 0);
		if ((size_t)k >= n)
			break;
		if (x->deadline == UINT64_MAX)
			k += snprintf(out + k, n - (size_t)k, "none");
		else
			k += snprintf(out + k, n - (size_t)k, "%.6f s",
				      (double)(x->deadline - START_US) / 1e6);
		struct bh_tcp_info in;
		if ((size_t)k >= n)
			break;
		if (!x->tcp || !x->conn || bh_tcp_info(x->tcp, x->conn, &in) != 0) {
			k += snprintf(out + k, n - (size_t)k, "\n     connection: %s",
				      x->conn ? "gone" : "none");
			continue;
		}
		k += snprintf(out + k, n - (size_t)k,
			      "\n     %s snd_una %u snd_nxt %u rcv_nxt %u (relative to the ISNs) "
			      "cwnd %u ssthresh %u snd_wnd %u rcv_wnd %u rto %u us srtt %u us "
			      "snd_queued %u rcv_queued %u retransmits %u",
			      bh_tcp_state_name(in.state), in.snd_una - in.iss, in.snd_nxt - in.iss,
			      in.rcv_nxt - in.irs, in.cwnd, in.ssthresh, in.snd_wnd, in.rcv_wnd,
			      in.rto_us, in.srtt_us, in.snd_queued, in.rcv_queued, in.retransmits);
	}
	return k;
}

static void fail_state(struct sim *s, const char *why)
{
	char st[3000];
	describe(s, st, sizeof st);
	bh_sim__fail(s, "%s\n  %s", why, st);
}

/* ---- the run ---- */

static void copy_counters(struct side *x)
{
	const struct bh_tcp_counters *c = bh_tcp_counters(x->tcp);
	struct bh_sim_side *r = x->res;
	r->segs_out = c->segs_out;
	r->segs_in = c->segs_in;
	r->retransmits = c->retransmits;
	r->timeouts = c->timeouts;
	r->syn_timeouts = c->syn_timeouts;
	r->fast_retransmits = c->fast_retransmits;
	r->rack_lost = c->rack_lost;
	r->lost_retransmits = c->lost_retransmits;
	r->tlp_probes = c->tlp_probes;
	r->tlp_recoveries = c->tlp_recoveries;
	r->dsacks_in = c->dsacks_in;
	r->undos = c->undos;
	r->rcvbuf_grown = c->rcvbuf_grown;
	r->link_bursts = x->link.bursts;
	r->bad_checksum = c->bad_checksum;
	r->bad_header = c->bad_header;
	r->dup_acks = c->dup_acks;
	r->ooo_segs = c->ooo_segs;
	r->no_buffers = c->no_buffers;
	r->rcv_drops = c->rcv_drops;
}

static bool setup(struct sim *s, uint64_t seed)
{
	const struct bh_sim_spec *sp = s->spec;
	uint32_t buf = sp->buf ? sp->buf : 262144;
	uint32_t rstart = sp->rbuf ? sp->rbuf : buf;
	if (sp->rbuf_max && sp->rbuf_max < rstart) {
		bh_sim__fail(s, "rbufmax (%u) is below the receive buffer it starts from (%u)",
			     sp->rbuf_max, rstart);
		return false;
	}
	if (sp->rbuf_max > buf)
		buf = sp->rbuf_max;
	uint32_t n = sp->pool;
	if (!n) {
		uint64_t want = 1024 + (uint64_t)buf / 128 * ((sp->bytes_ab && sp->bytes_ba) ? 2 : 1);
		n = want > 2000000 ? 2000000 : (uint32_t)want;
	}
	struct pool *p = &s->pool;
	p->n = n;
	p->mem = malloc((size_t)n * BH_SIM_BUF);
	p->owner = calloc(n, 1);
	p->free = malloc(sizeof *p->free * n);
	if (!p->mem || !p->owner || !p->free) {
		bh_sim__fail(s, "out of memory for %u buffers", n);
		return false;
	}
	for (uint32_t i = 0; i < n; i++)
		p->free[i] = n - 1 - i;
	p->nfree = n;
	for (int i = 0; i < 2; i++) {
		struct side *x = &s->side[i];
		x->sim = s;
		x->id = i;
		x->name = i == 0 ? "A" : "B";
		x->res = i == 0 ? &s->r->a : &s->r->b;
		x->link.cfg = i == 0 ? sp->ab : sp->ba;
		rng_seed(&x->link.rng, seed, 1 + (uint64_t)i);
		rng_seed(&x->rng, seed, 3 + (uint64_t)i);
		x->tx_total = i == 0 ? sp->bytes_ab : sp->bytes_ba;
		x->rx_total = i == 0 ? sp->bytes_ba : sp->bytes_ab;
		x->tx_hash = x->rx_hash = FNV_BASIS;
		uint64_t k = seed;
		x->tx_key = splitmix64(&k) + (uint64_t)i;
		x->deadline = x->wake = UINT64_MAX;
		x->writable = true;
		struct bh_tcp_config cfg;
		memset(&cfg, 0, sizeof cfg);
		cfg.addr = i == 0 ? ADDR_A : ADDR_B;
		cfg.mss = sp->mss;
		cfg.conns = 8;
		cfg.rcv_buf = cfg.snd_buf = sp->buf;
		if (sp->rbuf)
			cfg.rcv_buf = sp->rbuf;
		cfg.rcv_buf_max = sp->rbuf_max;
		cfg.time_wait_ms = sp->tw_ms;
		cfg.no_timestamps = sp->no_ts;
		cfg.no_wscale = sp->no_ws;
		cfg.no_sack = sp->no_sack;
		uint64_t sk = seed ^ (0x5eed0000ull + (uint64_t)i);
		cfg.secret[0] = splitmix64(&sk);
		cfg.secret[1] = splitmix64(&sk);
		const char *err = NULL;
		x->tcp = bh_tcp_create(&cfg, &sim_ops, x, &err);
		if (!x->tcp) {
			bh_sim__fail(s, "bh_tcp_create: %s", err ? err : "?");
			return false;
		}
	}
	s->side[0].rx_key = s->side[1].tx_key;
	s->side[1].rx_key = s->side[0].tx_key;
	return true;
}

static bool all_closed(const struct sim *s)
{
	return s->side[0].closed && s->side[1].closed && s->heap.n == 0;
}

static void loop(struct sim *s)
{
	const struct bh_sim_spec *sp = s->spec;
	struct side *a = &s->side[0], *b = &s->side[1];
	uint64_t end = START_US + sp->limit_us;
	while (!s->failed) {
		if (++s->iters > sp->max_iters) {
			fail_state(s, "iteration limit reached");
			return;
		}
		for (int k = 0; k < 1000 && !s->failed; k++) {
			bool moved = bh_sim__app_step(s, a);
			moved |= bh_sim__app_step(s, b);
			if (!moved)
				break;
		}
		bool evs = false;
		for (int i = 0; i < 2 && !s->failed; i++) {
			struct side *x = &s->side[i];
			if (x->dirty || s->now >= x->deadline) {
				uint64_t d;
				TIMED(x, tick, d = bh_tcp_tick(x->tcp, s->now));
				x->dirty = false;
				x->deadline = d;
				bh_sim__flush(s, x);
				evs |= x->nev > 0;
				if (d <= s->now) {
					fail_state(s, "bh_tcp_tick returned a deadline that is not in the future");
					return;
				}
			}
		}
		if (s->failed)
			return;
		if (evs)
			continue;
		if (all_closed(s))
			return;
		uint64_t next = a->deadline < b->deadline ? a->deadline : b->deadline;
		if (s->heap.n && s->heap.v[0].at < next)
			next = s->heap.v[0].at;
		for (int i = 0; i < 2; i++)
			if (s->side[i].wake < next && !s->side[i].close_called)
				next = s->side[i].wake;
		if (next == UINT64_MAX) {
			fail_state(s, "stalled: nothing in flight and no timer set");
			return;
		}
		if (next > end) {
			fail_state(s, "virtual time limit reached");
			return;
		}
		if (next > s->now)
			s->now = next;
		while (s->heap.n && s->heap.v[0].at <= s->now && !s->failed) {
			if (++s->iters > sp->max_iters) {
				fail_state(s, "iteration limit reached");
				return;
			}
			struct flight f = heap_pop(&s->heap);
			deliver(s, &f);
		}
	}
}

bool bh_sim_run(uint64_t seed, const struct bh_sim_spec *spec, const struct bh_sim_opts *opts,
		struct bh_sim_result *r)
{
	static const struct bh_sim_opts no_opts;
	struct sim *s = calloc(1, sizeof *s);
	memset(r, 0, sizeof *r);
	if (!s) {
		snprintf(r->reason, sizeof r->reason, "out of memory");
		return false;
	}
	s->spec = spec;
	s->opts = opts ? opts : &no_opts;
	s->r = r;
	s->now = START_US;
	if (spec->wmin == 0 || spec->wmax < spec->wmin || spec->wmax > BH_SIM_MAX_WRITE)
		bh_sim__fail(s, "write sizes must be 1 <= wmin <= wmax <= %d", BH_SIM_MAX_WRITE);
	else if (spec->bytes_ab == 0 && spec->bytes_ba == 0)
		bh_sim__fail(s, "nothing to send");
	struct side *a = &s->side[0], *b = &s->side[1];
	if (!s->failed && setup(s, seed)) {
		int rc;
		TIMED(b, other, rc = bh_tcp_listen(b->tcp, PORT_B, 4, 1, &b->listener));
		if (rc != 0)
			bh_sim__fail(s, "listen: %s", bh_sim__err_name(-rc));
		TIMED(a, other,
		      rc = bh_tcp_connect(a->tcp, s->now, ADDR_B, PORT_B, 0, 1, &a->conn));
		bh_sim__flush(s, a);
		if (rc != 0)
			bh_sim__fail(s, "connect: %s", bh_sim__err_name(-rc));
		if (!s->failed)
			loop(s);
	}
	r->iters = s->iters;
	r->total_us = s->now - START_US;
	uint64_t t = 0;
	for (int i = 0; i < 2; i++) {
		struct side *x = &s->side[i];
		if (x->rx_total && x->res->eof_us > t)
			t = x->res->eof_us;
		r->bytes += x->rx_done;
	}
	r->transfer_us = t;
	r->goodput = t ? (double)r->bytes * 1e6 / (double)t : 0;
	/* The end: the listener goes, nothing may be left in either
	 * library, then every buffer must be back in the pool. */
	if (b->tcp && b->listener && !b->listener_closed) {
		bh_tcp_close(b->tcp, s->now, b->listener);
		bh_sim__app_events(s, b);
		if (!s->failed && !b->listener_closed)
			bh_sim__fail(s, "B: closing the listener gave no CLOSED event");
	}
	for (int i = 0; i < 2; i++) {
		struct side *x = &s->side[i];
		if (!x->tcp)
			continue;
		bh_tcp_conn h[4];
		unsigned nh = bh_tcp_list(x->tcp, h, 4);
		unsigned held = bh_tcp_held(x->tcp);
		if (!s->failed && (nh || held))
			bh_sim__fail(s,
				     "%s: %u handles and %u buffers still in the library after every close",
				     x->name, nh, held);
		copy_counters(x);
		/* Segments output after the last flush, the application's
		 * pending write, and whatever is still in flight go back. */
		for (size_t k = 0; k < x->nout; k++)
			bh_sim__pool_put(&s->pool, owner_of(x), &x->outbox[k]);
		x->nout = 0;
		bh_tcp_destroy(x->tcp);
		if (x->has_pending)
			bh_sim__pool_put(&s->pool, owner_of(x), &x->pending);
	}
	while (s->heap.n) {
		struct flight f = heap_pop(&s->heap);
		bh_sim__pool_put(&s->pool, WIRE, &f.pkt);
	}
	if (s->pool.mem) {
		r->leaks = s->pool.n - s->pool.nfree;
		r->bad_releases = s->pool.bad_releases;
		r->pool_empty = s->pool.empty;
		if (!s->failed && r->leaks)
			bh_sim__fail(s, "%llu buffers never came back to the pool",
				     (unsigned long long)r->leaks);
		if (!s->failed && r->bad_releases)
			bh_sim__fail(s, "%llu buffers released twice, by a non-owner, or unknown",
				     (unsigned long long)r->bad_releases);
	}
	if (!s->failed && r->a.bad_checksum != r->b.link_corrupted)
		bh_sim__fail(s, "A counted %llu bad checksums, the link corrupted %llu",
			     (unsigned long long)r->a.bad_checksum,
			     (unsigned long long)r->b.link_corrupted);
	if (!s->failed && r->b.bad_checksum != r->a.link_corrupted)
		bh_sim__fail(s, "B counted %llu bad checksums, the link corrupted %llu",
			     (unsigned long long)r->b.bad_checksum,
			     (unsigned long long)r->a.link_corrupted);
	r->ok = !s->failed;
	free(s->pool.mem);
	free(s->pool.owner);
	free(s->pool.free);
	free(s->heap.v);
	free(a->outbox);
	free(b->outbox);
	free(s);
	return r->ok;
}

void bh_sim_replay_cmd(char *out, size_t n, uint64_t seed, const char *spec)
{
	snprintf(out, n, "bazel run //bench/tcp:tcp_bench_bin -- --sim --seed %llu --spec '%s' --trace",
		 (unsigned long long)seed, spec);
}
