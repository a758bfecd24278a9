/*
 * tcp/check.c - the invariants of the connection table, the listeners'
 * queues, the timers and the buffer store, checked in one walk
 * (bh_tcp_check_invariants). The test harness calls it after every
 * input; builds with -DBH_TCP_DEBUG_INVARIANTS call it after every entry
 * point (bh_tcp__assert_invariants) and abort on the first one broken.
 *
 * The walk is O(slots + buffers + listeners x connections): a check for
 * tests and debug builds, never for the -O2 data path.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tcp/tcp_impl.h"

/* Walks queue q: its entries are valid store indices, linked without a
 * cycle, non-empty, with count, bytes, mem and tail as recorded. */
static const char *check_queue(const struct bh_tcp *tcp, const struct tqueue *q)
{
	uint32_t n = 0, bytes = 0, mem = 0, last = NONE;
	for (uint32_t i = q->head; i != NONE; i = tcp->seg[i].next) {
		if (i >= tcp->cfg.segs || ++n > tcp->cfg.segs)
			return "a queue links outside the store or in a cycle";
		const struct tseg *s = &tcp->seg[i];
		if (s->len == 0 || s->len != s->pkt.len)
			return "a queued buffer is empty or its length disagrees with its span";
		bytes += s->len;
		mem += s->pkt.size;
		last = i;
	}
	if (n != q->count || bytes != q->bytes || mem != q->mem)
		return "a queue's count, bytes or memory disagree with its entries";
	if (q->tail != last)
		return "a queue's tail is not its last entry";
	return NULL;
}

/* The sequence numbers of the queued data: the send queue runs without a
 * gap from the first byte not yet acknowledged; the receive queue without
 * a gap up to RCV.NXT (before a FIN); the out-of-order queue is sorted,
 * disjoint and wholly at or above RCV.NXT. */
static const char *check_queue_seqs(const struct bh_tcp *tcp, const struct tconn *c)
{
	bh_seq at = bh_tcp__data_start(c);
	bool cur_found = c->snd_cur == NONE;
	for (uint32_t i = c->sndq.head; i != NONE; i = tcp->seg[i].next) {
		if (tcp->seg[i].seq != at)
			return "the send queue has a gap or does not start at the first unacknowledged byte";
		at = bh_seq_add(at, tcp->seg[i].len);
		cur_found |= i == c->snd_cur;
	}
	if (!cur_found)
		return "the send cursor names a buffer outside the send queue";
	if (c->rcvq.head != NONE) {
		at = tcp->seg[c->rcvq.head].seq;
		for (uint32_t i = c->rcvq.head; i != NONE; i = tcp->seg[i].next) {
			if (tcp->seg[i].seq != at)
				return "the receive queue has a gap";
			at = bh_seq_add(at, tcp->seg[i].len);
		}
		if (bh_seq_add(at, c->fin_rcvd ? 1 : 0) != c->rcv_nxt)
			return "the receive queue does not end at RCV.NXT";
	}
	bh_seq prev_end = c->rcv_nxt;
	for (uint32_t i = c->oooq.head; i != NONE; i = tcp->seg[i].next) {
		if (bh_seq_lt(tcp->seg[i].seq, prev_end))
			return "the out-of-order queue overlaps, is unsorted, or holds data below RCV.NXT";
		prev_end = bh_seq_add(tcp->seg[i].seq, tcp->seg[i].len);
	}
	return NULL;
}

static bool queues_empty(const struct tconn *c)
{
	return c->sndq.head == NONE && c->rcvq.head == NONE && c->oooq.head == NONE;
}

/* Every connection that is not closed has the timer its state needs:
 * the handshake its retransmission timer; data or a FIN not yet sent or
 * not yet acknowledged the retransmission (or persist) timer; TIME-WAIT
 * its 2 MSL; FIN-WAIT-2 after the application closed its fin_timeout.
 * ESTABLISHED, CLOSE-WAIT and FIN-WAIT-2 with nothing owed need none
 * (keepalive sets its own on the next tick). */
static const char *check_timers(const struct tconn *c)
{
	switch (c->state) {
	case BH_TCP_CLOSED:
		if (c->rtx_at || c->delack_at || c->tw_at || c->reo_at || c->tlp_at)
			return "a closed connection has a timer";
		return NULL;
	case BH_TCP_LISTEN:
		if (c->rtx_at || c->delack_at || c->tw_at || c->reo_at || c->tlp_at)
			return "a listener has a timer";
		return NULL;
	case BH_TCP_SYN_SENT:
	case BH_TCP_SYN_RECEIVED:
		if (!c->rtx_at)
			return "a connection in the handshake has no retransmission timer";
		return NULL;
	case BH_TCP_TIME_WAIT:
		if (!c->tw_at)
			return "a connection in TIME-WAIT has no 2 MSL timer";
		return NULL;
	case BH_TCP_FIN_WAIT_2:
		if (c->app_closed && !c->tw_at)
			return "a closed connection in FIN-WAIT-2 has no timeout";
		break;
	default:
		break;
	}
	bool owed = bh_seq_lt(c->snd_una, c->snd_max) || bh_seq_lt(c->snd_nxt, bh_tcp__data_end(c)) ||
		    bh_tcp__fin_owed(c);
	if (owed && !c->rtx_at && !c->out_owed)
		return "data or a FIN to send or resend, and no retransmission timer";
	return NULL;
}

/* bh_tcp_timer_hint's promise: no timer is due before both what the last
 * tick returned and the hint, so a caller that ticks only at the earlier
 * of the two misses none; except one already overdue when a tick was
 * asked for at once (bh_tcp__tick_soon), which that tick fires. A timer
 * set without bh_tcp__armed breaks it. */
static const char *check_timer_seen(const struct bh_tcp *tcp, const struct tconn *c)
{
	uint64_t seen = tcp->tick_next < tcp->timer_hint ? tcp->tick_next : tcp->timer_hint;
	uint64_t t[6] = {c->tw_at, c->rtx_at, c->delack_at, bh_tcp__ka_due(c), c->reo_at, c->tlp_at};
	for (int k = 0; k < 6; k++)
		if (t[k] && t[k] < seen && t[k] >= tcp->soon_at)
			return "a timer is due before the next tick bh_tcp_timer_hint reports";
	return NULL;
}

/* The send records (rack.c): in order, disjoint, within [SND.UNA,
 * SND.MAX], counted right; with SACK and the SYN acknowledged, tiling
 * [SND.UNA, SND.MAX) exactly unless the store ran dry at some point
 * (rec_short); none, and no RACK or TLP timer, without SACK. */
static const char *check_records(const struct bh_tcp *tcp, const struct tconn *c)
{
	if (!c->sack_ok) {
		if (c->recs.head != NONE || c->reo_at || c->tlp_at)
			return "a connection without SACK has send records or a RACK or TLP timer";
		return NULL;
	}
	uint32_t n = 0, last = NONE;
	bool tiled = true;
	bh_seq at = c->snd_una;
	for (uint32_t i = c->recs.head; i != NONE; i = tcp->rec[i].next) {
		const struct trec *r = &tcp->rec[i];
		if (i >= tcp->nrec || ++n > c->recs.count)
			return "a connection's send records leave the store, run in a cycle or outnumber its count";
		if (r->len == 0 || bh_seq_lt(r->seq, at) ||
		    bh_seq_gt(bh_seq_add(r->seq, r->len), c->snd_max))
			return "send records overlap, are unsorted, empty, or outside [SND.UNA, SND.MAX)";
		if ((r->flags & BH_REC_RETRANS) && !(r->flags & BH_REC_AGAIN))
			return "a send record resent is not marked as sent more than once";
		tiled &= r->seq == at;
		at = bh_seq_add(r->seq, r->len);
		last = i;
	}
	if (n != c->recs.count || last != c->recs.tail)
		return "a connection's send record count or tail is wrong";
	if (c->syn_acked && c->state != BH_TCP_CLOSED && tcp->ctr.rec_short == 0 &&
	    (!tiled || at != c->snd_max))
		return "send records do not tile [SND.UNA, SND.MAX)";
	return NULL;
}

/* One connection or listener, alone. */
static const char *check_conn(const struct bh_tcp *tcp, const struct tconn *c)
{
	const char *e;
	if ((e = check_queue(tcp, &c->sndq)) || (e = check_queue(tcp, &c->rcvq)) ||
	    (e = check_queue(tcp, &c->oooq)))
		return e;
	if (c->app_closed && !c->app_owned)
		return "a handle given back that was never the application's";
	if (c->hashed != (c->state != BH_TCP_CLOSED))
		return "a connection is in the lookup table if and only if it is not closed";
	if (c->listener != (c->state == BH_TCP_LISTEN))
		return "a listener and only a listener is in LISTEN";
	if ((e = check_timers(c)) || (e = check_timer_seen(tcp, c)) || (e = check_records(tcp, c)))
		return e;
	if (!c->listener && (c->rcv_space < tcp->cfg.rcv_buf || c->rcv_space > tcp->cfg.rcv_buf_max))
		return "the receive buffer is outside rcv_buf .. rcv_buf_max";
	if ((uint64_t)c->rcvq.mem + c->oooq.mem > BH_TCP_RCV_MEM(c))
		return "received data pins more memory than the connection's bound";
	if (c->state == BH_TCP_CLOSED) {
		/* Only a handle the application still holds stays closed;
		 * anything else is freed by bh_tcp__finish(). */
		if (!c->app_owned || c->app_closed)
			return "a closed connection no application holds was not freed";
		if (!queues_empty(c))
			return "a closed connection holds buffers";
		if (c->parent != NONE)
			return "a closed connection is still a listener's child";
		return NULL;
	}
	if (c->listener) {
		if (c->raddr || c->rport || !c->lport || c->parent != NONE)
			return "a listener has a remote end or a parent";
		if (!c->app_owned || c->app_closed)
			return "a listener no application holds";
		if (!queues_empty(c))
			return "a listener holds buffers";
		if (c->nchild > c->backlog)
			return "a listener's SYN queue is longer than its backlog";
		return NULL;
	}
	if (!c->raddr || !c->rport || !c->lport)
		return "a connection without its 4-tuple";
	if (!bh_seq_leq(c->snd_una, c->snd_nxt) || !bh_seq_leq(c->snd_nxt, c->snd_max))
		return "SND.UNA <= SND.NXT <= the highest number sent does not hold";
	if (c->state == BH_TCP_SYN_SENT || c->state == BH_TCP_SYN_RECEIVED)
		if (c->rcvq.head != NONE || c->oooq.head != NONE)
			return "received data held before the handshake completed";
	if (c->state == BH_TCP_TIME_WAIT && c->sndq.head != NONE)
		return "a connection in TIME-WAIT holds data to send";
	if ((e = check_queue_seqs(tcp, c)))
		return e;
	if (c->parent == NONE) {
		if (!c->app_owned)
			return "a connection that is neither a child nor the application's";
		if (c->in_acceptq)
			return "a connection without a listener marked as in its accept queue";
		return NULL;
	}
	/* A listener's child, not yet accepted. */
	if (c->parent >= tcp->cfg.conns)
		return "a child's listener is outside the table";
	const struct tconn *l = &tcp->conn[c->parent];
	if (!l->used || !l->listener || l->app_closed || l->lport != c->lport)
		return "a child's listener is gone or is another port's";
	if (c->app_owned)
		return "a child not yet accepted has a handle";
	if (c->in_acceptq) {
		if (c->state != BH_TCP_ESTABLISHED && c->state != BH_TCP_CLOSE_WAIT)
			return "a child in the accept queue is not ESTABLISHED or CLOSE-WAIT";
	} else if (c->state != BH_TCP_SYN_RECEIVED) {
		return "a child in the SYN queue is not in SYN-RECEIVED";
	}
	return NULL;
}

/* The slots: the live list holds exactly the used slots, each at its
 * live_at; the spare stack exactly the others. */
static const char *check_slots(const struct bh_tcp *tcp)
{
	const uint32_t n = tcp->cfg.conns;
	if (tcp->nlive > n || tcp->nspare > n || tcp->nlive + tcp->nspare != n)
		return "live and spare slots do not add up to the table";
	uint32_t used = 0;
	uint64_t free_sum = 0, spare_sum = 0;
	uint32_t free_xor = 0, spare_xor = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct tconn *c = &tcp->conn[i];
		if (!c->used) {
			free_sum += i;
			free_xor ^= i;
			continue;
		}
		used++;
		if (c->live_at >= tcp->nlive || tcp->live[c->live_at] != i)
			return "a used slot is not in the live list where it says";
	}
	if (used != tcp->nlive)
		return "the live list does not hold exactly the used slots";
	for (uint32_t k = 0; k < tcp->nspare; k++) {
		uint32_t i = tcp->spare[k];
		if (i >= n || tcp->conn[i].used)
			return "the spare stack holds a used slot or one outside the table";
		spare_sum += i;
		spare_xor ^= i;
	}
	if (spare_sum != free_sum || spare_xor != free_xor)
		return "the spare stack does not hold exactly the free slots";
	return NULL;
}

/* The lookup table: every chain entry is a used, hashed slot in the
 * bucket of its own 4-tuple, no cycle, no 4-tuple twice; every hashed
 * connection on a chain. */
static const char *check_hash(const struct bh_tcp *tcp)
{
	uint32_t on_chains = 0, hashed = 0;
	for (uint32_t b = 0; b <= tcp->hmask; b++) {
		uint32_t steps = 0;
		for (uint32_t i = tcp->hash[b]; i != NONE; i = tcp->conn[i].hnext) {
			if (i >= tcp->cfg.conns || ++steps > tcp->nlive)
				return "a hash chain leaves the table or runs in a cycle";
			const struct tconn *c = &tcp->conn[i];
			if (!c->used || !c->hashed)
				return "a hash chain holds a free or unhashed slot";
			if (bh_tcp__bucket(tcp, c->raddr, c->rport, c->lport) != b)
				return "a connection is chained in another 4-tuple's bucket";
		}
		on_chains += steps;
		/* The chain is finite now: no 4-tuple twice. */
		for (uint32_t i = tcp->hash[b]; i != NONE; i = tcp->conn[i].hnext) {
			const struct tconn *c = &tcp->conn[i];
			for (uint32_t j = c->hnext; j != NONE; j = tcp->conn[j].hnext) {
				const struct tconn *d = &tcp->conn[j];
				if (d->raddr == c->raddr && d->rport == c->rport && d->lport == c->lport)
					return "two connections share a 4-tuple";
			}
		}
	}
	for (uint32_t k = 0; k < tcp->nlive; k++)
		hashed += tcp->conn[tcp->live[k]].hashed;
	if (on_chains != hashed)
		return "a hashed connection is missing from its chain";
	return NULL;
}

/* Every listener's counts are its children in the table: nchild those
 * in its SYN queue, naccept those in its accept queue. */
static const char *check_listeners(const struct bh_tcp *tcp)
{
	for (uint32_t k = 0; k < tcp->nlive; k++) {
		uint32_t slot = tcp->live[k];
		const struct tconn *l = &tcp->conn[slot];
		if (!l->listener)
			continue;
		uint32_t syn = 0, acc = 0;
		for (uint32_t j = 0; j < tcp->nlive; j++) {
			const struct tconn *c = &tcp->conn[tcp->live[j]];
			if (c->parent == slot) {
				if (c->in_acceptq)
					acc++;
				else
					syn++;
			}
		}
		if (l->nchild != syn)
			return "a listener's SYN queue count is not its children in SYN-RECEIVED";
		if (l->naccept != acc)
			return "a listener's accept queue count is not its children waiting to be accepted";
	}
	return NULL;
}

/* The buffer store: the queues of the live connections hold every entry
 * in use, and the memory counted; the free list the rest. */
static const char *check_store(const struct bh_tcp *tcp)
{
	uint64_t segs = 0, mem = 0, forced = 0;
	for (uint32_t k = 0; k < tcp->nlive; k++) {
		const struct tconn *c = &tcp->conn[tcp->live[k]];
		segs += (uint64_t)c->sndq.count + c->rcvq.count + c->oooq.count;
		mem += (uint64_t)c->sndq.mem + c->rcvq.mem + c->oooq.mem;
		/* A buffer taken past the bound came into an empty receive
		 * queue, and stays its head until it is read. */
		if (c->rcvq.head != NONE)
			forced += tcp->seg[c->rcvq.head].pkt.size;
	}
	if (segs != tcp->segs_used)
		return "queue entries in use do not add up to the store's count";
	if (mem != tcp->mem_used)
		return "buffer memory held does not add up to the total counted";
	if (tcp->mem_used > tcp->cfg.mem + forced)
		return "buffer memory held is past the total bound (and one receive buffer a connection)";
	uint32_t nfree = 0;
	for (uint32_t i = tcp->seg_free; i != NONE; i = tcp->seg[i].next)
		if (i >= tcp->cfg.segs || ++nfree > tcp->cfg.segs)
			return "the free list leaves the store or runs in a cycle";
	if (nfree + tcp->segs_used != tcp->cfg.segs)
		return "free and used queue entries do not add up to the store";
	uint64_t recs = 0;
	for (uint32_t k = 0; k < tcp->nlive; k++)
		recs += tcp->conn[tcp->live[k]].recs.count;
	if (recs != tcp->recs_used)
		return "send records in use do not add up to the record store's count";
	nfree = 0;
	for (uint32_t i = tcp->rec_free; i != NONE; i = tcp->rec[i].next)
		if (i >= tcp->nrec || ++nfree > tcp->nrec)
			return "the record free list leaves the store or runs in a cycle";
	if (nfree + tcp->recs_used != tcp->nrec)
		return "free and used send records do not add up to the store";
	return NULL;
}

const char *bh_tcp_check_invariants(const struct bh_tcp *tcp)
{
	const char *e;
	if ((e = check_slots(tcp)) || (e = check_hash(tcp)) || (e = check_store(tcp)) ||
	    (e = check_listeners(tcp)))
		return e;
	for (uint32_t k = 0; k < tcp->nlive; k++)
		if ((e = check_conn(tcp, &tcp->conn[tcp->live[k]])))
			return e;
	return NULL;
}

#ifdef BH_TCP_DEBUG_INVARIANTS
void bh_tcp__assert_invariants(const struct bh_tcp *tcp, const char *where)
{
	const char *e = bh_tcp_check_invariants(tcp);
	if (e) {
		fprintf(stderr, "bh_tcp: after %s: invariant broken: %s\n", where, e);
		abort();
	}
}
#endif
