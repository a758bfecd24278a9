/*
 * tcp/tcp.c - the connection table, buffer queues, the application calls,
 * timers and introspection.
 *
 * Call chain: bh_tcp_input -> parse, checksum -> bh_tcp__segment (tcp_in.c)
 *             bh_tcp_tick -> bh_tcp__timeout | delayed ACK | keepalive |
 *                            TIME_WAIT end
 *             application calls -> state change -> bh_tcp__output (tcp_out.c)
 *
 * Size: over 900 lines, one file still. Its seams are the table and the
 * listener's queues, the buffer store and queues, the application calls,
 * and the timers; they share the static helpers conn_free, from_handle
 * and the queue primitives, and move apart together (with the upper
 * layers' split) rather than one at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "ip/checksum.h"
#include "ip/siphash.h"
#include "tcp/tcp_impl.h"

/* ---- counters and names ---- */

static const char *const ctr_name[] = {
#define BH_TCP_CTR_NAME(name, text) #name,
	BH_TCP_COUNTERS(BH_TCP_CTR_NAME)
#undef BH_TCP_CTR_NAME
};
#define NCTR (sizeof ctr_name / sizeof ctr_name[0])

const char *bh_tcp_counter_name(unsigned i) { return i < NCTR ? ctr_name[i] : NULL; }

uint64_t bh_tcp_counter_value(const struct bh_tcp_counters *c, unsigned i)
{
	_Static_assert(sizeof(struct bh_tcp_counters) == NCTR * sizeof(uint64_t), "flat counters");
	uint64_t v = 0;
	if (i < NCTR)
		memcpy(&v, (const char *)c + i * sizeof v, sizeof v);
	return v;
}

const struct bh_tcp_counters *bh_tcp_counters(const struct bh_tcp *tcp) { return &tcp->ctr; }

const char *bh_tcp_state_name(enum bh_tcp_state s)
{
	static const char *const n[] = {"CLOSED",     "LISTEN",      "SYN-SENT",   "SYN-RECEIVED",
					"ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
					"CLOSING",    "LAST-ACK",    "TIME-WAIT"};
	return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

/* ---- ISN (RFC 6528 3) ---- */

bh_seq bh_tcp_isn(const uint64_t secret[2], bh_ip4 laddr, uint16_t lport, bh_ip4 raddr,
		  uint16_t rport, uint64_t now_us)
{
	uint8_t k[12];
	bh_st32(k, laddr);
	bh_st16(k + 4, lport);
	bh_st32(k + 6, raddr);
	bh_st16(k + 10, rport);
	return (bh_seq)(now_us / 4) + (bh_seq)bh_siphash(secret, k, sizeof k);
}

/* ---- create ---- */

#define DEF(f, v)             \
	do {                  \
		if (c->f == 0) \
			c->f = v; \
	} while (0)

struct bh_tcp *bh_tcp_create(const struct bh_tcp_config *cfg, const struct bh_tcp_ops *ops,
			     void *ctx, const char **err)
{
	const char *dummy;
	if (!err)
		err = &dummy;
	if (!cfg || !ops || !ops->alloc || !ops->release || !ops->output || !ops->event) {
		*err = "configuration and the alloc, release, output and event calls are required";
		return NULL;
	}
	struct bh_tcp *tcp = calloc(1, sizeof *tcp);
	if (!tcp) {
		*err = "out of memory";
		return NULL;
	}
	tcp->cfg = *cfg;
	struct bh_tcp_config *c = &tcp->cfg;
	DEF(mss, 1460);
	DEF(conns, 1024);
	DEF(segs, 16384);
	DEF(rcv_buf, 262144);
	DEF(snd_buf, 262144);
	DEF(time_wait_ms, 60000);
	DEF(rto_initial_ms, 1000);
	DEF(rto_min_ms, 200);
	DEF(rto_max_ms, 120000);
	DEF(syn_retries, 6);
	DEF(retries, 15);
	DEF(delack_ms, 40);
	DEF(mem, 64ull << 20);
	DEF(keepidle_s, 7200);
	DEF(keepintvl_s, 75);
	DEF(keepcnt, 9);
	tcp->cc = bh_tcp__cc_find(c->cc);
	if (!tcp->cc) {
		*err = "unknown congestion control (cubic, newreno)";
		free(tcp);
		return NULL;
	}
	if (c->addr == 0 || c->mss < 64 || c->conns > 1000000 || c->segs > 16000000 ||
	    c->rto_min_ms > c->rto_max_ms || c->delack_ms >= 500 || c->rcv_buf < c->mss ||
	    c->rcv_buf > (1u << 30)) {
		*err = "address missing, or a limit out of range (mss >= 64, delack < 500 ms, "
		       "rto_min <= rto_max, mss <= rcv_buf <= 1 GiB)";
		free(tcp);
		return NULL;
	}
	tcp->ops = *ops;
	tcp->ctx = ctx;
	uint32_t buckets = 64;
	while (buckets < c->conns)
		buckets *= 2;
	tcp->hmask = buckets - 1;
	tcp->conn = calloc(c->conns, sizeof *tcp->conn);
	tcp->live = malloc(sizeof *tcp->live * c->conns);
	tcp->spare = malloc(sizeof *tcp->spare * c->conns);
	tcp->hash = malloc(sizeof *tcp->hash * buckets);
	tcp->seg = calloc(c->segs, sizeof *tcp->seg);
	if (!tcp->conn || !tcp->live || !tcp->spare || !tcp->hash || !tcp->seg) {
		*err = "out of memory";
		bh_tcp_destroy(tcp);
		return NULL;
	}
	/* Lowest slot on top: slots are taken in order, as before. */
	for (uint32_t i = 0; i < c->conns; i++)
		tcp->spare[i] = c->conns - 1 - i;
	tcp->nspare = c->conns;
	for (uint32_t i = 0; i < buckets; i++)
		tcp->hash[i] = NONE;
	for (uint32_t i = 0; i < c->segs; i++)
		tcp->seg[i].next = i + 1 < c->segs ? i + 1 : NONE;
	tcp->seg_free = 0;
	tcp->next_port = (uint16_t)(49152 + bh_siphash(c->secret, "port", 4) % 16384);
	return tcp;
}
#undef DEF

static void conn_drop_queues(struct bh_tcp *tcp, struct tconn *c)
{
	c->snd_cur = NONE;
	bh_tcp__q_drop(tcp, &c->sndq);
	bh_tcp__q_drop(tcp, &c->rcvq);
	bh_tcp__q_drop(tcp, &c->oooq);
}

void bh_tcp_destroy(struct bh_tcp *tcp)
{
	if (!tcp)
		return;
	if (tcp->conn && tcp->seg)
		for (uint32_t i = 0; i < tcp->cfg.conns; i++)
			if (tcp->conn[i].used)
				conn_drop_queues(tcp, &tcp->conn[i]);
	free(tcp->conn);
	free(tcp->live);
	free(tcp->spare);
	free(tcp->hash);
	free(tcp->seg);
	free(tcp);
}

/* ---- queues ---- */

bool bh_tcp__q_push(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq, const struct bh_pkt *p)
{
	return bh_tcp__q_insert(tcp, q, q->tail, seq, p);
}

bool bh_tcp__q_insert(struct bh_tcp *tcp, struct tqueue *q, uint32_t prev, bh_seq seq,
		      const struct bh_pkt *p)
{
	uint32_t i = tcp->seg_free;
	if (i == NONE)
		return false;
	struct tseg *s = &tcp->seg[i];
	tcp->seg_free = s->next;
	tcp->segs_used++;
	s->next = prev == NONE ? q->head : tcp->seg[prev].next;
	s->seq = seq;
	s->len = p->len;
	s->pkt = *p;
	if (prev == NONE)
		q->head = i;
	else
		tcp->seg[prev].next = i;
	if (s->next == NONE)
		q->tail = i;
	q->bytes += p->len;
	q->mem += p->size;
	q->count++;
	tcp->mem_used += p->size;
	return true;
}

bool bh_tcp__mem_ok(const struct bh_tcp *tcp, uint32_t size)
{
	return tcp->mem_used + size <= tcp->cfg.mem;
}

static void seg_free(struct bh_tcp *tcp, uint32_t i)
{
	tcp->seg[i].next = tcp->seg_free;
	tcp->seg_free = i;
	tcp->segs_used--;
}

struct bh_pkt bh_tcp__q_unlink(struct bh_tcp *tcp, struct tqueue *q, uint32_t prev, uint32_t i)
{
	struct tseg *s = &tcp->seg[i];
	struct bh_pkt p = s->pkt;
	if (prev == NONE)
		q->head = s->next;
	else
		tcp->seg[prev].next = s->next;
	if (q->tail == i)
		q->tail = prev;
	q->bytes -= s->len;
	q->mem -= p.size;
	q->count--;
	tcp->mem_used -= p.size;
	seg_free(tcp, i);
	return p;
}

void bh_tcp__q_drop(struct bh_tcp *tcp, struct tqueue *q)
{
	uint32_t i = q->head;
	while (i != NONE) {
		uint32_t n = tcp->seg[i].next;
		tcp->ops.release(tcp->ctx, &tcp->seg[i].pkt);
		tcp->mem_used -= tcp->seg[i].pkt.size;
		seg_free(tcp, i);
		i = n;
	}
	*q = (struct tqueue){NONE, NONE, 0, 0, 0};
}

void bh_tcp__q_trim_front(struct bh_tcp *tcp, struct tqueue *q, bh_seq seq)
{
	while (q->head != NONE) {
		struct tseg *s = &tcp->seg[q->head];
		if (bh_seq_leq(bh_seq_add(s->seq, s->len), seq)) {
			struct bh_pkt p = bh_tcp__q_unlink(tcp, q, NONE, q->head);
			tcp->ops.release(tcp->ctx, &p);
			continue;
		}
		if (bh_seq_lt(s->seq, seq)) {
			uint32_t cut = bh_seq_span(s->seq, seq);
			s->seq = seq;
			s->len -= cut;
			s->pkt.off += cut;
			s->pkt.len -= cut;
			q->bytes -= cut;
		}
		break;
	}
}

unsigned bh_tcp_held(const struct bh_tcp *tcp) { return tcp->segs_used; }

/* ---- table ---- */

uint32_t bh_tcp__bucket(const struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport)
{
	uint32_t h = raddr * 0x9e3779b1u ^ ((uint32_t)rport << 16 | lport) * 0x85ebca6bu;
	return (h ^ h >> 15) & tcp->hmask;
}

struct tconn *bh_tcp__lookup(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport)
{
	uint32_t i = tcp->hash[bh_tcp__bucket(tcp, raddr, rport, lport)];
	while (i != NONE) {
		struct tconn *c = &tcp->conn[i];
		if (c->raddr == raddr && c->rport == rport && c->lport == lport)
			return c;
		i = c->hnext;
	}
	return NULL;
}

struct tconn *bh_tcp__listener(struct bh_tcp *tcp, uint16_t lport)
{
	struct tconn *c = bh_tcp__lookup(tcp, 0, 0, lport);
	return c && c->listener ? c : NULL;
}

static void hash_insert(struct bh_tcp *tcp, struct tconn *c)
{
	uint32_t b = bh_tcp__bucket(tcp, c->raddr, c->rport, c->lport);
	c->hnext = tcp->hash[b];
	tcp->hash[b] = (uint32_t)(c - tcp->conn);
	c->hashed = true;
}

static void hash_remove(struct bh_tcp *tcp, struct tconn *c)
{
	uint32_t *p = &tcp->hash[bh_tcp__bucket(tcp, c->raddr, c->rport, c->lport)];
	uint32_t me = (uint32_t)(c - tcp->conn);
	while (*p != NONE) {
		if (*p == me) {
			*p = c->hnext;
			return;
		}
		p = &tcp->conn[*p].hnext;
	}
}

struct tconn *bh_tcp__new_conn(struct bh_tcp *tcp, bh_ip4 raddr, uint16_t rport, uint16_t lport)
{
	if (tcp->nspare == 0) {
		tcp->ctr.table_full++;
		return NULL;
	}
	uint32_t slot = tcp->spare[--tcp->nspare];
	struct tconn *c = &tcp->conn[slot];
	uint16_t gen = (uint16_t)(c->gen + 1);
	memset(c, 0, sizeof *c);
	c->gen = gen ? gen : 1;
	c->used = true;
	c->live_at = tcp->nlive;
	tcp->live[tcp->nlive++] = slot;
	c->raddr = raddr;
	c->rport = rport;
	c->lport = lport;
	c->parent = NONE;
	c->sndq = c->rcvq = c->oooq = (struct tqueue){NONE, NONE, 0, 0, 0};
	c->snd_cur = NONE;
	c->rto = tcp->cfg.rto_initial_ms * 1000;
	c->smss = 536; /* RFC 9293 3.7.1 default until the peer says */
	c->cc = tcp->cc;
	c->cc->init(c);
	c->ka_idle_s = tcp->cfg.keepidle_s;
	c->ka_intvl_s = tcp->cfg.keepintvl_s;
	c->ka_cnt = tcp->cfg.keepcnt;
	c->born = ++tcp->born;
	hash_insert(tcp, c);
	return c;
}

bh_tcp_conn bh_tcp__handle(const struct bh_tcp *tcp, const struct tconn *c)
{
	return (uint32_t)(c - tcp->conn) + 1 + ((uint32_t)c->gen << 20);
}

static struct tconn *from_handle(const struct bh_tcp *tcp, bh_tcp_conn h)
{
	uint32_t slot = (h & 0xfffff) - 1;
	if (h == 0 || slot >= tcp->cfg.conns)
		return NULL;
	struct tconn *c = &tcp->conn[slot];
	if (!c->used || !c->app_owned || c->app_closed || c->gen != (h >> 20))
		return NULL;
	return c;
}

/* ---- a listener's children ---- */

void bh_tcp__child_add(struct bh_tcp *tcp, struct tconn *l, struct tconn *c)
{
	c->parent = (uint32_t)(l - tcp->conn);
	c->in_acceptq = false;
	l->nchild++;
}

void bh_tcp__child_ready(struct bh_tcp *tcp, struct tconn *c)
{
	struct tconn *l = &tcp->conn[c->parent];
	l->nchild--;
	l->naccept++;
	c->in_acceptq = true;
}

/* Out of its listener's queue: accepted, or freed. The count is the one
 * the child's flag names, not one guessed from its state: a child
 * reset or timed out in SYN-RECEIVED reaches here CLOSED, and taking it
 * off the accept queue's count instead of the SYN queue's (as once
 * happened) wrapped naccept and shut the listener for good. */
static void child_remove(struct bh_tcp *tcp, struct tconn *c)
{
	struct tconn *l = &tcp->conn[c->parent];
	if (c->in_acceptq)
		l->naccept--;
	else
		l->nchild--;
	c->parent = NONE;
	c->in_acceptq = false;
}

static void conn_free(struct bh_tcp *tcp, struct tconn *c)
{
	conn_drop_queues(tcp, c);
	if (c->hashed)
		hash_remove(tcp, c);
	if (c->parent != NONE)
		child_remove(tcp, c);
	c->used = false;
	/* Out of the live list (the last one takes its place), onto the
	 * spare stack. */
	uint32_t last = tcp->live[--tcp->nlive];
	tcp->live[c->live_at] = last;
	tcp->conn[last].live_at = c->live_at;
	tcp->spare[tcp->nspare++] = (uint32_t)(c - tcp->conn);
}

void bh_tcp__event(struct bh_tcp *tcp, struct tconn *c, enum bh_tcp_event_type type, int err)
{
	struct bh_tcp_event ev = {type, bh_tcp__handle(tcp, c), c->cookie, err};
	tcp->ops.event(tcp->ctx, &ev);
}

void bh_tcp__finish(struct bh_tcp *tcp, struct tconn *c, int err)
{
	c->state = BH_TCP_CLOSED;
	c->rtx_at = c->delack_at = c->tw_at = 0;
	conn_drop_queues(tcp, c);
	if (c->app_owned && !c->app_closed) {
		/* The handle stays until the application closes it. */
		if (err) {
			c->err = err;
			bh_tcp__event(tcp, c, BH_TCP_EV_ERROR, err);
		}
		/* Out of the table: segments for its 4-tuple now find no
		 * connection, and the tuple may be used again. */
		if (c->hashed) {
			hash_remove(tcp, c);
			c->hashed = false;
		}
		return;
	}
	if (c->app_owned)
		bh_tcp__event(tcp, c, BH_TCP_EV_CLOSED, 0);
	conn_free(tcp, c);
}

void bh_tcp__enter_time_wait(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->state = BH_TCP_TIME_WAIT;
	c->rtx_at = 0;
	c->tw_at = now + (uint64_t)tcp->cfg.time_wait_ms * 1000;
	c->snd_cur = NONE;
	bh_tcp__q_drop(tcp, &c->sndq);
}

/* ---- input ---- */

void bh_tcp_input(struct bh_tcp *tcp, uint64_t now, const struct bh_ip_rx *rx)
{
	struct bh_tcp_repr seg;
	tcp->ctr.segs_in++;
	const struct bh_pkt *p0 = &rx->piece[0];
	/* Port 0 is no port, and 0.0.0.0 no source (RFC 1122 3.2.1.3; IP
	 * drops it, but IP is another domain): a remote end of 0.0.0.0:0
	 * would be the listener's own key in the table. */
	bool ok = rx->npieces >= 1 && rx->cast == BH_IP_UNICAST && rx->dst == tcp->cfg.addr &&
		  rx->src != 0 &&
		  bh_tcp_parse(bh_pkt_data(p0), p0->len, rx->len, &seg) == BH_TCP_WIRE_OK &&
		  seg.sport != 0 && seg.dport != 0;
	if (!ok) {
		tcp->ctr.bad_header++;
	} else {
		uint32_t sum = bh_ipv4_pseudo_sum(rx->src, rx->dst, BH_IPPROTO_TCP, (uint16_t)rx->len);
		if (bh_csum_fold(bh_ip_rx_sum(rx, rx->len, sum)) != 0) {
			tcp->ctr.bad_checksum++;
			ok = false;
		}
	}
	if (!ok) {
		for (unsigned i = 0; i < rx->npieces; i++)
			tcp->ops.release(tcp->ctx, &rx->piece[i]);
		return;
	}
	/* RFC 1122 4.2.2.5: the segment stands; what was ignored is counted
	 * (the library's log). */
	if (seg.opt.ignored || seg.opt.cut_short)
		tcp->ctr.bad_options++;
	bh_tcp__segment(tcp, now, rx, &seg);
	BH_TCP_ASSERT_INVARIANTS(tcp);
}

/* ---- applications ---- */

int bh_tcp_listen(struct bh_tcp *tcp, uint16_t port, uint32_t backlog, uint64_t cookie,
		  bh_tcp_conn *out)
{
	if (port == 0)
		return -EINVAL;
	if (bh_tcp__listener(tcp, port))
		return -EADDRINUSE;
	struct tconn *c = bh_tcp__new_conn(tcp, 0, 0, port);
	if (!c)
		return -ENOBUFS;
	c->listener = true;
	c->state = BH_TCP_LISTEN;
	c->backlog = backlog ? backlog : 128;
	c->cookie = cookie;
	c->app_owned = true;
	*out = bh_tcp__handle(tcp, c);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_accept(struct bh_tcp *tcp, bh_tcp_conn listener, uint64_t cookie, bh_tcp_conn *out)
{
	struct tconn *l = from_handle(tcp, listener);
	if (!l || !l->listener)
		return -EINVAL;
	uint32_t me = (uint32_t)(l - tcp->conn);
	struct tconn *best = NULL;
	for (uint32_t i = 0; i < tcp->nlive; i++) {
		struct tconn *c = &tcp->conn[tcp->live[i]];
		if (c->used && c->parent == me && c->in_acceptq && (!best || c->born < best->born))
			best = c;
	}
	if (!best)
		return -EAGAIN;
	child_remove(tcp, best);
	best->app_owned = true;
	best->cookie = cookie;
	*out = bh_tcp__handle(tcp, best);
	/* Data or a FIN may have come before the accept. */
	if (best->rcvq.count || best->fin_rcvd)
		bh_tcp__event(tcp, best, BH_TCP_EV_READABLE, 0);
	if (best->err)
		bh_tcp__event(tcp, best, BH_TCP_EV_ERROR, best->err);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

static uint16_t ephemeral_port(struct bh_tcp *tcp, bh_ip4 dst, uint16_t dport)
{
	for (unsigned tries = 0; tries < 16384; tries++) {
		uint16_t p = tcp->next_port;
		tcp->next_port = (uint16_t)(p >= 65535 ? 49152 : p + 1);
		if (!bh_tcp__lookup(tcp, dst, dport, p) && !bh_tcp__listener(tcp, p))
			return p;
	}
	return 0;
}

int bh_tcp_connect(struct bh_tcp *tcp, uint64_t now, bh_ip4 dst, uint16_t dport, uint16_t sport,
		   uint64_t cookie, bh_tcp_conn *out)
{
	if (dst == 0 || dport == 0 || dst == tcp->cfg.addr || bh_ip4_is_multicast(dst) ||
	    dst == BH_IP4_BROADCAST)
		return -EINVAL;
	if (sport == 0)
		sport = ephemeral_port(tcp, dst, dport);
	if (sport == 0)
		return -EADDRNOTAVAIL;
	if (bh_tcp__lookup(tcp, dst, dport, sport))
		return -EADDRINUSE;
	struct tconn *c = bh_tcp__new_conn(tcp, dst, dport, sport);
	if (!c)
		return -ENOBUFS;
	c->cookie = cookie;
	c->app_owned = true;
	c->state = BH_TCP_SYN_SENT;
	c->iss = bh_tcp_isn(tcp->cfg.secret, tcp->cfg.addr, sport, dst, dport, now);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss;
	c->snd_max = c->iss;
	c->rcv_wscale = 0;
	if (!tcp->cfg.no_wscale)
		while (c->rcv_wscale < BH_TCP_MAX_WSCALE && (tcp->cfg.rcv_buf >> c->rcv_wscale) > 65535)
			c->rcv_wscale++;
	tcp->ctr.active_opens++;
	*out = bh_tcp__handle(tcp, c);
	bh_tcp__output(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_send(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, const struct bh_pkt *data)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	if (c->err)
		return -c->err;
	switch (c->state) {
	case BH_TCP_SYN_SENT:
	case BH_TCP_SYN_RECEIVED:
	case BH_TCP_ESTABLISHED:
	case BH_TCP_CLOSE_WAIT:
		break;
	case BH_TCP_CLOSED:
		return -ENOTCONN;
	default:
		return -EPIPE;
	}
	if (c->fin_queued)
		return -EPIPE;
	if (data->off > data->size || data->len > data->size - data->off)
		return -EINVAL;
	if (data->len == 0) {
		tcp->ops.release(tcp->ctx, data);
		return 0;
	}
	/* The buffer bound counts bytes and, for tiny writes in large
	 * buffers, the memory they pin; one buffer larger than the bound
	 * goes into an empty queue rather than wait forever. */
	if (c->sndq.count && (c->sndq.bytes + data->len > tcp->cfg.snd_buf ||
			      c->sndq.mem + data->size > 2 * tcp->cfg.snd_buf + 65536))
		return -EAGAIN;
	/* The total bound: the application learns it is the stack's memory,
	 * not this connection's buffer, that is full. */
	if (!bh_tcp__mem_ok(tcp, data->size))
		return -ENOBUFS;
	bh_seq at = bh_tcp__data_end(c);
	if (!bh_tcp__q_push(tcp, &c->sndq, at, data))
		return -EAGAIN;
	bh_tcp__output(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_recv(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, struct bh_pkt *out, unsigned max)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	unsigned n = 0;
	uint32_t before = bh_tcp__rcv_window(tcp, c);
	while (n < max && c->rcvq.head != NONE)
		out[n++] = bh_tcp__q_unlink(tcp, &c->rcvq, NONE, c->rcvq.head);
	if (n) {
		/* RFC 9293 3.8.6.2.2: a window update once the window has
		 * opened by a segment or half the buffer, and (as Linux's
		 * __tcp_cleanup_rbuf) only while what the peer may still send
		 * is at most half the buffer and the update at least doubles
		 * it: a reader keeping up sends no extra ACKs. */
		uint32_t after = bh_tcp__rcv_window(tcp, c);
		uint32_t step = tcp->cfg.rcv_buf / 2 < c->smss ? tcp->cfg.rcv_buf / 2 : c->smss;
		uint32_t offered = bh_seq_gt(c->rcv_adv, c->rcv_nxt) ? bh_seq_span(c->rcv_nxt, c->rcv_adv)
								      : 0;
		bool worth = 2ull * offered <= tcp->cfg.rcv_buf && after >= 2ull * offered;
		if (after - before >= step && after >= offered + step && worth &&
		    c->state != BH_TCP_CLOSED) {
			c->ack_now = true;
			bh_tcp__output(tcp, c, now);
		}
		BH_TCP_ASSERT_INVARIANTS(tcp);
		return (int)n;
	}
	if (c->err)
		return -c->err;
	if (c->fin_rcvd || c->state == BH_TCP_CLOSED)
		return 0;
	return -EAGAIN;
}

static void do_shutdown(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	switch (c->state) {
	case BH_TCP_SYN_SENT:
		/* Nothing was sent yet: with nothing written either, the
		 * connection just closes (RFC 9293 3.10.4); data written
		 * before the handshake ended goes after it, then the FIN. */
		if (!c->sndq.bytes) {
			bh_tcp__finish(tcp, c, 0);
			return;
		}
		/* fall through */
	case BH_TCP_SYN_RECEIVED:
	case BH_TCP_ESTABLISHED:
	case BH_TCP_CLOSE_WAIT:
		if (!c->fin_queued) {
			c->fin_queued = true;
			c->fin_seq = bh_tcp__data_end(c);
		}
		bh_tcp__output(tcp, c, now);
		return;
	default:
		return;
	}
}

int bh_tcp_shutdown(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	do_shutdown(tcp, c, now);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

/* A listener's unaccepted connections go with it, each reset (as Linux's
 * inet_csk_listen_stop), whether the listener is closed or aborted: a
 * child left behind would keep the freed slot as its parent, and count
 * itself out of whatever listener took the slot next. */
static void listener_end(struct bh_tcp *tcp, struct tconn *l)
{
	uint32_t me = (uint32_t)(l - tcp->conn);
	/* Backwards: a child freed here is replaced by one already seen. */
	for (uint32_t i = tcp->nlive; i-- > 0;) {
		if (i >= tcp->nlive)
			continue;
		struct tconn *k = &tcp->conn[tcp->live[i]];
		if (k->used && k->parent == me) {
			if (k->state != BH_TCP_CLOSED)
				bh_tcp__send_rst(tcp, k);
			bh_tcp__finish(tcp, k, 0);
		}
	}
	l->app_closed = true;
	bh_tcp__finish(tcp, l, 0);
}

static int close_conn(struct bh_tcp *tcp, uint64_t now, struct tconn *c)
{
	if (c->listener) {
		listener_end(tcp, c);
		return 0;
	}
	/* RFC 1122 4.2.2.13 / RFC 9293 3.6: unread data means RST. */
	if (c->rcvq.bytes && c->state != BH_TCP_CLOSED) {
		c->app_closed = true;
		bh_tcp__send_rst(tcp, c);
		tcp->ctr.conn_resets++;
		bh_tcp__finish(tcp, c, 0);
		return 0;
	}
	c->app_closed = true;
	if (c->state == BH_TCP_CLOSED || c->state == BH_TCP_SYN_SENT) {
		bh_tcp__finish(tcp, c, 0);
		return 0;
	}
	do_shutdown(tcp, c, now);
	return 0;
}

int bh_tcp_close(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c)
		return -EINVAL;
	int rc = close_conn(tcp, now, c);
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return rc;
}

int bh_tcp_abort(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c)
		return -EINVAL;
	(void)now;
	if (c->listener) {
		listener_end(tcp, c);
	} else {
		if (c->state != BH_TCP_CLOSED && c->state != BH_TCP_SYN_SENT &&
		    c->state != BH_TCP_TIME_WAIT)
			bh_tcp__send_rst(tcp, c);
		c->app_closed = true;
		bh_tcp__finish(tcp, c, 0);
	}
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return 0;
}

int bh_tcp_probe_lost(struct bh_tcp *tcp, uint64_t now, bh_ip4 raddr, uint16_t lport,
		      uint16_t rport)
{
	if (lport == 0 || rport == 0 || raddr == 0)
		return -EINVAL;
	/* A scratch connection, never in the table, as for SYN cookies. */
	struct tconn t = {.state = BH_TCP_ESTABLISHED, .raddr = raddr, .lport = lport,
			  .rport = rport, .parent = NONE, .smss = tcp->cfg.mss};
	t.sndq = t.rcvq = t.oooq = (struct tqueue){NONE, NONE, 0, 0, 0};
	bh_seq far = bh_tcp_isn(tcp->cfg.secret, tcp->cfg.addr, lport, raddr, rport, now) +
		     0x80000000u;
	t.rcv_nxt = t.rcv_adv = far;
	tcp->ctr.lost_probes++;
	return bh_tcp__emit(tcp, &t, now, far, BH_TCP_ACK, 0) ? 0 : -ENOBUFS;
}

/* ---- options ---- */

int bh_tcp_setopt(struct bh_tcp *tcp, uint64_t now, bh_tcp_conn h, enum bh_tcp_opt opt,
		  uint32_t v)
{
	struct tconn *c = from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	switch (opt) {
	case BH_TCP_OPT_NODELAY:
		c->nodelay = v != 0;
		if (c->nodelay && c->state != BH_TCP_CLOSED)
			bh_tcp__output(tcp, c, now); /* what Nagle held goes now */
		BH_TCP_ASSERT_INVARIANTS(tcp);
		return 0;
	case BH_TCP_OPT_KEEPALIVE:
		c->keepalive = v != 0;
		c->ka_probes = 0;
		c->ka_at = 0;
		if (c->last_heard == 0)
			c->last_heard = now;
		return 0;
	case BH_TCP_OPT_KEEPIDLE:
	case BH_TCP_OPT_KEEPINTVL:
		/* Linux's bounds: 1 s to 32767 s. */
		if (v < 1 || v > 32767)
			return -EINVAL;
		if (opt == BH_TCP_OPT_KEEPIDLE)
			c->ka_idle_s = v;
		else
			c->ka_intvl_s = v;
		c->ka_at = 0;
		return 0;
	case BH_TCP_OPT_KEEPCNT:
		if (v < 1 || v > 127)
			return -EINVAL;
		c->ka_cnt = v;
		return 0;
	}
	return -ENOPROTOOPT;
}

int bh_tcp_getopt(const struct bh_tcp *tcp, bh_tcp_conn h, enum bh_tcp_opt opt, uint32_t *v)
{
	const struct tconn *c = from_handle(tcp, h);
	if (!c || c->listener)
		return -EINVAL;
	switch (opt) {
	case BH_TCP_OPT_NODELAY:
		*v = c->nodelay;
		return 0;
	case BH_TCP_OPT_KEEPALIVE:
		*v = c->keepalive;
		return 0;
	case BH_TCP_OPT_KEEPIDLE:
		*v = c->ka_idle_s;
		return 0;
	case BH_TCP_OPT_KEEPINTVL:
		*v = c->ka_intvl_s;
		return 0;
	case BH_TCP_OPT_KEEPCNT:
		*v = c->ka_cnt;
		return 0;
	}
	return -ENOPROTOOPT;
}

/* ---- timers ---- */

/* RFC 1122 4.2.3.6: after ka_idle_s of silence from the peer, probe
 * every ka_intvl_s; ka_cnt probes unanswered end the connection. A probe
 * is SND.UNA - 1 with no data (the form Linux sends), which any live peer
 * answers with an ACK. Only when nothing is outstanding: the
 * retransmission timer covers the rest. */
static void keepalive(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	bool idle_state = c->state == BH_TCP_ESTABLISHED || c->state == BH_TCP_CLOSE_WAIT ||
			  c->state == BH_TCP_FIN_WAIT_2;
	if (!c->keepalive || !idle_state || bh_seq_lt(c->snd_una, c->snd_max)) {
		c->ka_at = 0;
		return;
	}
	uint64_t due = c->ka_probes == 0
			       ? c->last_heard + (uint64_t)c->ka_idle_s * 1000000
			       : c->ka_at;
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

/* RFC 1122 4.2.3.9, RFC 5927 and RFC 5461: ICMP errors about our flows.
 * Port and protocol unreachable are hard errors; as in Linux (and as
 * RFC 5461 recommends) they end only a connection still in SYN-SENT.
 * The rest are soft: kept, and reported instead of ETIMEDOUT if the
 * connection times out. */
void bh_tcp_ip_event(struct bh_tcp *tcp, uint64_t now, const struct bh_ip_event *ev)
{
	(void)now;
	if (ev->proto != BH_IPPROTO_TCP ||
	    (ev->type != BH_IP_EV_ICMP_ERROR && ev->type != BH_IP_EV_HOST_UNREACH))
		return;
	struct tconn *c = bh_tcp__lookup(tcp, ev->dst, ev->dport, ev->sport);
	if (c == NULL || c->listener || c->state == BH_TCP_CLOSED ||
	    c->state == BH_TCP_TIME_WAIT) {
		tcp->ctr.icmp_ignored++;
		return;
	}
	int err = EHOSTUNREACH;
	bool hard = false;
	if (ev->type == BH_IP_EV_ICMP_ERROR) {
		/* RFC 5927 4.1: the segment it quotes must be one in flight. */
		if (!bh_seq_geq(ev->seq, c->snd_una) || !bh_seq_leq(ev->seq, c->snd_nxt)) {
			tcp->ctr.icmp_ignored++;
			return;
		}
		if (ev->icmp_type != BH_ICMP_DEST_UNREACH) {
			tcp->ctr.icmp_ignored++;
			return;
		}
		switch (ev->icmp_code) {
		case BH_ICMP_UNREACH_PROTOCOL:
		case BH_ICMP_UNREACH_PORT:
			err = ECONNREFUSED;
			hard = true;
			break;
		case BH_ICMP_UNREACH_NET:
			err = ENETUNREACH;
			break;
		case BH_ICMP_UNREACH_NEEDFRAG:
			/* No path MTU discovery: MSS is from the local MTU. */
			tcp->ctr.icmp_ignored++;
			return;
		default:
			break;
		}
	}
	tcp->ctr.icmp_errors++;
	if (hard && c->state == BH_TCP_SYN_SENT) {
		tcp->ctr.icmp_refused++;
		bh_tcp__finish(tcp, c, err);
		BH_TCP_ASSERT_INVARIANTS(tcp);
		return;
	}
	c->soft_err = err;
}

uint64_t bh_tcp_tick(struct bh_tcp *tcp, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	/* Backwards: a connection freed here is replaced by one already
	 * seen. */
	for (uint32_t i = tcp->nlive; i-- > 0;) {
		if (i >= tcp->nlive) /* more than one went at once */
			continue;
		struct tconn *c = &tcp->conn[tcp->live[i]];
		if (!c->used || c->listener)
			continue;
		if (c->tw_at && now >= c->tw_at) {
			bh_tcp__finish(tcp, c, 0);
			continue;
		}
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
		uint64_t t[4] = {c->tw_at, c->rtx_at, c->delack_at, c->keepalive ? c->ka_at : 0};
		for (int k = 0; k < 4; k++)
			if (t[k] && t[k] < next)
				next = t[k];
	}
	BH_TCP_ASSERT_INVARIANTS(tcp);
	return next;
}

/* ---- introspection ---- */

int bh_tcp_info(const struct bh_tcp *tcp, bh_tcp_conn h, struct bh_tcp_info *o)
{
	uint32_t slot = (h & 0xfffff) - 1;
	if (h == 0 || slot >= tcp->cfg.conns)
		return -EINVAL;
	const struct tconn *c = &tcp->conn[slot];
	if (!c->used || c->gen != (h >> 20))
		return -EINVAL;
	*o = (struct bh_tcp_info){
		.state = c->state,
		.local = tcp->cfg.addr,
		.remote = c->raddr,
		.lport = c->lport,
		.rport = c->rport,
		.iss = c->iss,
		.irs = c->irs,
		.snd_una = c->snd_una,
		.snd_nxt = c->snd_nxt,
		.rcv_nxt = c->rcv_nxt,
		.snd_wnd = c->snd_wnd,
		.rcv_wnd = bh_tcp__rcv_window(tcp, c),
		.cwnd = c->cwnd,
		.ssthresh = c->ssthresh,
		.srtt_us = c->srtt,
		.rttvar_us = c->rttvar,
		.rto_us = c->rto,
		.retransmits = c->retransmits,
		.mss = c->smss,
		.snd_queued = c->sndq.bytes,
		.rcv_queued = c->rcvq.bytes,
		.snd_wscale = c->snd_wscale,
		.rcv_wscale = c->rcv_wscale,
		.ts = c->ts_ok,
		.sack = c->sack_ok,
		.in_recovery = c->in_recovery,
		.sack_holes = bh_tcp__sb_holes(c),
		.sacked = bh_tcp__sb_sacked(c),
		.pipe = c->sack_ok ? bh_tcp__pipe(c) : bh_seq_span(c->snd_una, c->snd_max),
		.ooo_queued = c->oooq.bytes,
		.cc = c->cc ? c->cc->name : "",
	};
	return 0;
}

unsigned bh_tcp_list(const struct bh_tcp *tcp, bh_tcp_conn *out, unsigned n)
{
	unsigned k = 0;
	for (uint32_t i = 0; i < tcp->cfg.conns; i++) {
		if (!tcp->conn[i].used)
			continue;
		if (k < n)
			out[k] = bh_tcp__handle(tcp, &tcp->conn[i]);
		k++;
	}
	return k;
}
