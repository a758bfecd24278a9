/*
 * tcp/tcp.c - the library's core: counters and names, the ISN, create and
 * destroy, the buffer store and its queues (bh_tcp__q_*), the connection
 * table (lookup, new connections, handles, a listener's children, events,
 * the end of a connection, TIME-WAIT), and what IP delivers: segments
 * (bh_tcp_input) and ICMP errors about our flows (bh_tcp_ip_event). The
 * application calls are api.c's, the timers timer.c's.
 *
 * Call chains: bh_tcp_input -> bh_tcp_parse (tcp_wire.c), checksum
 *                           -> bh_tcp__segment (tcp_in.c)
 *              bh_tcp_ip_event -> bh_tcp__lookup, then bh_tcp__finish (a
 *                                 hard error in SYN-SENT) or soft_err
 *              bh_tcp__finish -> conn_drop_queues, bh_tcp__event
 *                             -> conn_free (unless the application holds
 *                                the handle) -> hash_remove,
 *                                bh_tcp__child_remove
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
uint64_t bh_tcp_mem_used(const struct bh_tcp *tcp) { return tcp->mem_used; }

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
	DEF(rcv_buf_max, c->rcv_buf);
	DEF(time_wait_ms, 60000);
	DEF(fin_timeout_ms, 60000);
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
	    c->rcv_buf > (1u << 30) || c->rcv_buf_max < c->rcv_buf || c->rcv_buf_max > (1u << 30) ||
	    c->seg_max > 65535u - 20u - BH_TCP_MAX_HLEN) {
		*err = "address missing, or a limit out of range (mss >= 64, delack < 500 ms, "
		       "rto_min <= rto_max, mss <= rcv_buf <= rcv_buf_max <= 1 GiB, seg_max <= 65455)";
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
	tcp->owed = malloc(sizeof *tcp->owed * c->conns);
	/* Send records (rack.c): a segment of each buffer's worth of MSS
	 * pieces, four per buffer, is plenty; short, RACK is coarser. */
	tcp->nrec = c->segs * 4 > c->conns ? c->segs * 4 : c->conns;
	tcp->rec = malloc(sizeof *tcp->rec * tcp->nrec);
	if (!tcp->conn || !tcp->live || !tcp->spare || !tcp->hash || !tcp->seg || !tcp->owed ||
	    !tcp->rec) {
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
	for (uint32_t i = 0; i < tcp->nrec; i++)
		tcp->rec[i].next = i + 1 < tcp->nrec ? i + 1 : NONE;
	tcp->rec_free = 0;
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
	if (tcp->rec)
		bh_tcp__rec_drop(tcp, c);
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
	free(tcp->owed);
	free(tcp->rec);
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
	c->recs = (struct trecq){NONE, NONE, 0};
	c->reo_mult = 1;
	c->snd_cur = NONE;
	c->rto = tcp->cfg.rto_initial_ms * 1000;
	c->rcv_space = tcp->cfg.rcv_buf;
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

struct tconn *bh_tcp__from_handle(const struct bh_tcp *tcp, bh_tcp_conn h)
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
void bh_tcp__child_remove(struct bh_tcp *tcp, struct tconn *c)
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
		bh_tcp__child_remove(tcp, c);
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
	bh_tcp__rack_stop(c);
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

/* FIN-WAIT-2 after the application closed: no one will read or send
 * again, and only the peer's FIN ends it, so it ends by itself after
 * fin_timeout_ms (as Linux's orphans do); tw_at holds the deadline. */
void bh_tcp__fin_wait2(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	if (c->state == BH_TCP_FIN_WAIT_2 && c->app_closed && !c->tw_at) {
		c->tw_at = now + (uint64_t)tcp->cfg.fin_timeout_ms * 1000;
		bh_tcp__armed(tcp, c->tw_at);
	}
}

void bh_tcp__enter_time_wait(struct bh_tcp *tcp, struct tconn *c, uint64_t now)
{
	c->state = BH_TCP_TIME_WAIT;
	c->rtx_at = 0;
	bh_tcp__rack_stop(c);
	c->tw_at = now + (uint64_t)tcp->cfg.time_wait_ms * 1000;
	bh_tcp__armed(tcp, c->tw_at);
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
	} else if (!rx->csum_valid) {
		tcp->ctr.csum_bytes += seg.payload_len;
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

/* ---- ICMP errors ---- */

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
