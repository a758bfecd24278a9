/*
 * ipc/channel.c - the channel interface and its two transports.
 * The contract is in channel.h.
 */
#include "ipc/channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which link ring plays which role for a side. */
static const int ring_tx_active[2] = {BH_LINK_ACTIVE_01, BH_LINK_ACTIVE_10};
static const int ring_rx_active[2] = {BH_LINK_ACTIVE_10, BH_LINK_ACTIVE_01};
static const int ring_tx_free[2] = {BH_LINK_FREE_10, BH_LINK_FREE_01};
static const int ring_rx_free[2] = {BH_LINK_FREE_01, BH_LINK_FREE_10};

static const char *verdict_name(enum bh_desc_verdict v)
{
	switch (v) {
	case BH_DESC_BAD_POOL:
		return "pool not accepted";
	case BH_DESC_BAD_INDEX:
		return "buffer index out of range";
	case BH_DESC_BAD_SPAN:
		return "span beyond buffer";
	default:
		return "ok";
	}
}

/* Keeps the descriptors that pass validation, in order; returns how many. */
static unsigned filter(struct bh_chan *ch, struct bh_desc *d, unsigned n,
		       const struct bh_pool_geom *const pools[BH_MAX_POOLS], const char *queue)
{
	unsigned kept = 0;
	for (unsigned i = 0; i < n; i++) {
		enum bh_desc_verdict v = bh_desc_check(&d[i], pools);
		if (v == BH_DESC_OK) {
			d[kept++] = d[i];
			continue;
		}
		ch->stats.rejected_desc++;
		bh_log_limited(&ch->reject_log,
			       "ipc: %s: rejected descriptor on %s: %s (pool=%u buf=%u off=%u len=%u)",
			       ch->name, queue, verdict_name(v), d[i].pool, d[i].buf, d[i].off,
			       d[i].len);
	}
	return kept;
}

int bh_chan_accept_rx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g)
{
	if (id >= BH_MAX_POOLS || g == NULL)
		return -EINVAL;
	free(ch->held[id]);
	ch->held_n[id] = 0;
	ch->held[id] = calloc((g->nbufs + 63) / 64, sizeof(uint64_t));
	if (ch->held[id] == NULL) {
		ch->rx_pools[id] = NULL;
		return -ENOMEM;
	}
	free(ch->owed[id]);
	ch->owed[id] = calloc((g->nbufs + 63) / 64, sizeof(uint64_t));
	if (ch->owed[id] == NULL) {
		ch->rx_pools[id] = NULL;
		return -ENOMEM;
	}
	ch->held_n[id] = g->nbufs;
	ch->rx_pools[id] = g;
	return 0;
}

void bh_chan__owe(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (d[i].flags == BH_DESC_DISCLAIM || !bh_chan_holds(ch, d[i].pool, d[i].buf))
			continue;
		uint64_t *w = &ch->owed[d[i].pool][d[i].buf >> 6];
		uint64_t bit = 1ull << (d[i].buf & 63);
		if (!(*w & bit)) {
			*w |= bit;
			ch->nowed++;
			ch->stats.give_back_full++;
		}
	}
}

bool bh_chan_flush_owed(struct bh_chan *ch)
{
	if (ch->nowed == 0 || !(ch->up || bh_chan__try_up(ch)))
		return false;
	uint32_t before = ch->nowed;
	for (int p = 0; p < BH_MAX_POOLS && ch->nowed; p++) {
		for (uint32_t w = 0; ch->owed[p] && w < (ch->held_n[p] + 63) / 64; w++) {
			uint64_t bits = ch->owed[p][w];
			if (bits == 0)
				continue;
			struct bh_desc batch[64];
			unsigned k = 0;
			for (; bits; bits &= bits - 1)
				batch[k++] = (struct bh_desc){.buf = w * 64 + (uint32_t)__builtin_ctzll(bits),
							      .pool = (uint8_t)p};
			unsigned sent = ch->ops->give_back(ch, batch, k);
			for (unsigned i = 0; i < sent; i++) {
				uint64_t bit = 1ull << (batch[i].buf & 63);
				ch->owed[p][w] &= ~bit;
				ch->held[p][w] &= ~bit;
			}
			ch->nowed -= sent;
			if (sent < k)
				return ch->nowed != before;
		}
	}
	return ch->nowed != before;
}

uint32_t bh_chan_held(const struct bh_chan *ch)
{
	uint32_t n = 0;
	for (int p = 0; p < BH_MAX_POOLS; p++)
		for (uint32_t w = 0; ch->held[p] && w < (ch->held_n[p] + 63) / 64; w++)
			n += (uint32_t)__builtin_popcountll(ch->held[p][w]);
	return n;
}

void bh_chan_fini(struct bh_chan *ch)
{
	for (int i = 0; i < BH_MAX_POOLS; i++) {
		free(ch->held[i]);
		free(ch->owed[i]);
		ch->owed[i] = NULL;
		ch->held[i] = NULL;
		ch->held_n[i] = 0;
		ch->rx_pools[i] = NULL;
	}
}

void bh_chan_accept_tx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g)
{
	if (id < BH_MAX_POOLS)
		ch->tx_pools[id] = g;
}


/* ------------------------------------------------------------------ */
/* shm transport                                                        */
/* ------------------------------------------------------------------ */

size_t bh_link_bytes(uint32_t cap)
{
	return bh_page_size() + BH_LINK_RINGS * bh_ring_bytes(cap);
}

static size_t ring_off(uint32_t cap, int ring)
{
	return bh_page_size() + (size_t)ring * bh_ring_bytes(cap);
}

int bh_link_format(struct bh_region *r, uint32_t cap)
{
	if (!bh_ring_cap_ok(cap) || r->size < bh_link_bytes(cap) || r->access != BH_ACCESS_RW)
		return -EINVAL;
	for (int i = 0; i < BH_LINK_RINGS; i++) {
		int err = bh_ring_format(r, ring_off(cap, i), cap);
		if (err)
			return err;
	}
	struct bh_link_meta *m =
	    (struct bh_link_meta *)((char *)r->base + sizeof(struct bh_region_hdr));
	m->magic = BH_LINK_MAGIC;
	m->cap = cap;
	m->epoch = 1;
	/* Epoch 1 is acknowledged for both sides at once: at first start
	 * every index is zero already, and a side may fill its rings before
	 * the peer's process exists. */
	for (int ring = BH_LINK_ACTIVE_01; ring <= BH_LINK_ACTIVE_10; ring += BH_LINK_ACTIVE_10) {
		struct bh_ring_prod_page *pp = bh_region_at(r, ring_off(cap, ring), sizeof(*pp));
		pp->user = 1;
	}
	return 0;
}

static uint32_t *meta_epoch(struct bh_region *r)
{
	return &((struct bh_link_meta *)((char *)r->base + sizeof(struct bh_region_hdr)))->epoch;
}

uint32_t bh_link_new_epoch(struct bh_region *r)
{
	uint32_t *e = meta_epoch(r);
	uint32_t next = bh_load_relaxed32(e) + 1;
	if (next == 0)
		next = 1; /* 0 means "none yet" to a side */
	/* RELEASE: nothing else to order; the sides acquire it in sync(). */
	bh_store_release32(e, next);
	return next;
}

static unsigned shm_send(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	unsigned k = bh_ring_produce(&ch->u.shm.tx_active, d, n);
	ch->stats.sent += k;
	ch->stats.send_full += n - k;
	if (k)
		ch->owe_active = true;
	return k;
}

static unsigned shm_give_back(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	unsigned k = bh_ring_produce(&ch->u.shm.rx_free, d, n);
	ch->stats.given_back += k;
	if (k)
		ch->owe_free = true;
	return k;
}

/* Consumes until `max` valid descriptors are out or the ring is empty. */
static unsigned consume_valid(struct bh_chan *ch, struct bh_ring_consumer *c, struct bh_desc *d,
			      unsigned max, const struct bh_pool_geom *const pools[BH_MAX_POOLS],
			      const char *queue)
{
	unsigned got = 0;
	while (got < max) {
		unsigned k = bh_ring_consume(c, d + got, max - got);
		if (k == 0)
			break;
		got += filter(ch, d + got, k, pools, queue);
	}
	return got;
}

static unsigned shm_recv(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	unsigned k = consume_valid(ch, &ch->u.shm.rx_active, d, max, ch->rx_pools, "rx-active");
	ch->stats.received += k;
	ch->stats.rx_batches += k != 0;
	return k;
}

static unsigned shm_reclaim(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	unsigned k = consume_valid(ch, &ch->u.shm.tx_free, d, max, ch->tx_pools, "tx-free");
	ch->stats.reclaimed += k;
	return k;
}

static void shm_notify(struct bh_chan *ch)
{
	if (!ch->owe_active && !ch->owe_free)
		return;
	ch->stats.notifies++;
	bool need = (ch->owe_active && bh_ring_producer_need_signal(&ch->u.shm.tx_active)) ||
		    (ch->owe_free && bh_ring_producer_need_signal(&ch->u.shm.rx_free));
	ch->owe_active = ch->owe_free = false;
	if (!need)
		return;
	ch->stats.signals++;
	ch->stats.wakes += (uint64_t)bh_ntfn_signal(ch->u.shm.peer_ntfn, ch->badge,
						    &ch->u.shm.nstats);
}

static bool shm_arm(struct bh_chan *ch)
{
	/* Both requests are made before either re-check result is used. */
	bool a = bh_ring_consumer_request_signal(&ch->u.shm.rx_active);
	bool b = !ch->lazy_free && bh_ring_consumer_request_signal(&ch->u.shm.tx_free);
	return a || b;
}

static void shm_disarm(struct bh_chan *ch)
{
	bh_ring_consumer_cancel_signal(&ch->u.shm.rx_active);
	bh_ring_consumer_cancel_signal(&ch->u.shm.tx_free);
}

static const struct bh_chan_ops shm_ops = {
    .send = shm_send,
    .recv = shm_recv,
    .give_back = shm_give_back,
    .reclaim = shm_reclaim,
    .notify = shm_notify,
    .arm = shm_arm,
    .disarm = shm_disarm,
};

/* Zeroes what this side owns and acknowledges epoch e (see channel.h). */
static void shm_reset(struct bh_chan *ch, uint32_t e)
{
	bh_ring_producer_reset(&ch->u.shm.tx_active);
	bh_ring_producer_reset(&ch->u.shm.rx_free);
	bh_ring_consumer_reset(&ch->u.shm.rx_active);
	bh_ring_consumer_reset(&ch->u.shm.tx_free);
	ch->owe_active = ch->owe_free = false;
	ch->up = false;
	ch->epoch = e;
	/* RELEASE: the zeroes above are visible to a peer that acquires the
	 * acknowledgement (shm_peer_acked). */
	bh_store_release32(&ch->u.shm.tx_active.prod->user, e);
	/* A peer waiting for this acknowledgement may be asleep. Epoch 1 is
	 * the first start: nobody waits, and a signal would only be a
	 * spurious badge. */
	if (e > 1)
		bh_ntfn_signal(ch->u.shm.peer_ntfn, ch->badge, &ch->u.shm.nstats);
}

/* ACQUIRE: pairs with the peer's RELEASE of its acknowledgement; its
 * zeroed indices are visible from here on. */
static bool shm_peer_acked(struct bh_chan *ch)
{
	return bh_load_acquire32(&ch->u.shm.rx_active.prod->user) == ch->epoch;
}

enum bh_chan_sync bh_chan_sync(struct bh_chan *ch)
{
	if (ch->meta_epoch == NULL)
		return BH_CHAN_STEADY; /* local transport: never reset */
	uint32_t e = bh_load_acquire32(ch->meta_epoch);
	if (e != ch->epoch) {
		shm_reset(ch, e);
		ch->stats.resets++;
		if (shm_peer_acked(ch))
			ch->up = true;
		return BH_CHAN_PEER_RESET;
	}
	if (ch->up)
		return BH_CHAN_STEADY;
	if (!shm_peer_acked(ch))
		return BH_CHAN_WAITING;
	ch->up = true;
	return BH_CHAN_UP;
}

bool bh_chan__try_up(struct bh_chan *ch)
{
	if (ch->meta_epoch == NULL || bh_load_acquire32(ch->meta_epoch) != ch->epoch)
		return false; /* a new epoch: sync() must see it first */
	if (shm_peer_acked(ch))
		ch->up = true;
	return ch->up;
}

unsigned bh_chan_corrupt_indices(struct bh_chan *ch, uint32_t garbage)
{
	if (ch->ops != &shm_ops)
		return 0;
	bh_store_release32(&ch->u.shm.tx_active.prod->head, garbage);
	bh_store_release32(&ch->u.shm.rx_free.prod->head, garbage ^ 0x5a5a5a5au);
	bh_store_release32(&ch->u.shm.rx_active.cons->tail, ~garbage);
	bh_store_release32(&ch->u.shm.tx_free.cons->tail, garbage + 0x10000u);
	return 4;
}

/* One index: ours in shared memory put back to our copy. Only the owner
 * writes it, so the relaxed load reads what we (or a scribble of ours)
 * last wrote; the RELEASE store pairs with the peer's ACQUIRE as a
 * publish does (what it covers was published before). */
static unsigned restore_index(uint32_t *shared, uint32_t ours)
{
	if (bh_load_relaxed32(shared) == ours)
		return 0;
	bh_store_release32(shared, ours);
	return 1;
}

unsigned bh_chan_restore_indices(struct bh_chan *ch)
{
	if (ch->ops != &shm_ops)
		return 0;
	unsigned n = restore_index(&ch->u.shm.tx_active.prod->head, ch->u.shm.tx_active.head) +
		     restore_index(&ch->u.shm.rx_free.prod->head, ch->u.shm.rx_free.head) +
		     restore_index(&ch->u.shm.rx_active.cons->tail, ch->u.shm.rx_active.tail) +
		     restore_index(&ch->u.shm.tx_free.cons->tail, ch->u.shm.tx_free.tail);
	if (n) {
		ch->stats.restores += n;
		ch->stats.signals++;
		ch->stats.wakes += (uint64_t)bh_ntfn_signal(ch->u.shm.peer_ntfn, ch->badge,
							    &ch->u.shm.nstats);
	}
	return n;
}

int bh_chan_shm_attach(struct bh_chan *ch, const char *name, struct bh_region *r, int side,
		       uint32_t cap, struct bh_ntfn *peer_ntfn, uint32_t badge)
{
	memset(ch, 0, sizeof(*ch));
	if ((side != 0 && side != 1) || peer_ntfn == NULL || !bh_ring_cap_ok(cap) ||
	    r->size < bh_link_bytes(cap))
		return -EINVAL;
	struct bh_link_meta m;
	memcpy(&m, (char *)r->base + sizeof(struct bh_region_hdr), sizeof(m));
	if (m.magic != BH_LINK_MAGIC || m.cap != cap)
		return -EPROTO;
	int err;
	/* The indices are not adopted: the reset below zeroes them. */
	if ((err = bh_ring__producer_map(&ch->u.shm.tx_active, r,
					 ring_off(cap, ring_tx_active[side]), cap)) ||
	    (err = bh_ring__producer_map(&ch->u.shm.rx_free, r, ring_off(cap, ring_rx_free[side]),
					 cap)) ||
	    (err = bh_ring_consumer_attach(&ch->u.shm.rx_active, r,
					   ring_off(cap, ring_rx_active[side]), cap)) ||
	    (err = bh_ring_consumer_attach(&ch->u.shm.tx_free, r, ring_off(cap, ring_tx_free[side]),
					   cap)))
		return err;
	ch->ops = &shm_ops;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->side = side;
	ch->badge = badge;
	ch->u.shm.peer_ntfn = peer_ntfn;
	ch->meta_epoch = meta_epoch(r);
	shm_reset(ch, bh_load_acquire32(ch->meta_epoch));
	return 0;
}

/* ------------------------------------------------------------------ */
/* local transport                                                      */
/* ------------------------------------------------------------------ */

int bh_local_link_init(struct bh_local_link *l, uint32_t cap, uint32_t *pending0,
		       uint32_t *pending1)
{
	memset(l, 0, sizeof(*l));
	if (!bh_ring_cap_ok(cap) || pending0 == NULL || pending1 == NULL)
		return -EINVAL;
	for (int i = 0; i < BH_LINK_RINGS; i++) {
		l->q[i].slots = calloc(cap, sizeof(struct bh_desc));
		if (l->q[i].slots == NULL) {
			bh_local_link_fini(l);
			return -ENOMEM;
		}
		l->q[i].cap = cap;
		l->q[i].mask = cap - 1;
	}
	l->pending[0] = pending0;
	l->pending[1] = pending1;
	return 0;
}

void bh_local_link_fini(struct bh_local_link *l)
{
	for (int i = 0; i < BH_LINK_RINGS; i++) {
		free(l->q[i].slots);
		l->q[i].slots = NULL;
	}
}

static unsigned lq_put(struct bh_local_queue *q, const struct bh_desc *d, unsigned n)
{
	unsigned space = q->cap - (q->head - q->tail);
	unsigned k = n < space ? n : space;
	for (unsigned i = 0; i < k; i++)
		q->slots[(q->head + i) & q->mask] = d[i];
	q->head += k;
	return k;
}

static unsigned lq_get(struct bh_local_queue *q, struct bh_desc *d, unsigned max)
{
	unsigned avail = q->head - q->tail;
	unsigned k = max < avail ? max : avail;
	for (unsigned i = 0; i < k; i++)
		d[i] = q->slots[(q->tail + i) & q->mask];
	q->tail += k;
	return k;
}

static struct bh_local_queue *lq(struct bh_chan *ch, const int role[2])
{
	return &ch->u.local.link->q[role[ch->side]];
}

static unsigned local_send(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	unsigned k = lq_put(lq(ch, ring_tx_active), d, n);
	ch->stats.sent += k;
	ch->stats.send_full += n - k;
	if (k)
		ch->owe_active = true;
	return k;
}

static unsigned local_give_back(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	unsigned k = lq_put(lq(ch, ring_rx_free), d, n);
	ch->stats.given_back += k;
	if (k)
		ch->owe_free = true;
	return k;
}

static unsigned local_take(struct bh_chan *ch, struct bh_local_queue *q, struct bh_desc *d,
			   unsigned max, const struct bh_pool_geom *const pools[BH_MAX_POOLS],
			   const char *queue)
{
	unsigned got = 0;
	while (got < max) {
		unsigned k = lq_get(q, d + got, max - got);
		if (k == 0)
			break;
		got += filter(ch, d + got, k, pools, queue);
	}
	return got;
}

static unsigned local_recv(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	unsigned k = local_take(ch, lq(ch, ring_rx_active), d, max, ch->rx_pools, "rx-active");
	ch->stats.received += k;
	ch->stats.rx_batches += k != 0;
	return k;
}

static unsigned local_reclaim(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	unsigned k = local_take(ch, lq(ch, ring_tx_free), d, max, ch->tx_pools, "tx-free");
	ch->stats.reclaimed += k;
	return k;
}

static void local_notify(struct bh_chan *ch)
{
	if (!ch->owe_active && !ch->owe_free)
		return;
	ch->stats.notifies++;
	ch->owe_active = ch->owe_free = false;
	struct bh_local_link *l = ch->u.local.link;
	int peer = 1 - ch->side;
	/* One thread runs both sides: a pending badge is all a signal is,
	 * and setting it costs less than deciding whether the peer wants it. */
	*l->pending[peer] |= ch->badge;
	ch->stats.signals++;
}

/* Signals always set the pending badge (local_notify), so arming has
 * nothing to request: it only re-checks the inbound queues. */
static bool local_arm(struct bh_chan *ch)
{
	const struct bh_local_queue *a = lq(ch, ring_rx_active), *f = lq(ch, ring_tx_free);
	return a->head != a->tail || (!ch->lazy_free && f->head != f->tail);
}

static void local_disarm(struct bh_chan *ch)
{
	(void)ch;
}

static const struct bh_chan_ops local_ops = {
    .send = local_send,
    .recv = local_recv,
    .give_back = local_give_back,
    .reclaim = local_reclaim,
    .notify = local_notify,
    .arm = local_arm,
    .disarm = local_disarm,
};

void bh_chan_local_attach(struct bh_chan *ch, const char *name, struct bh_local_link *l,
			  int side, uint32_t badge)
{
	memset(ch, 0, sizeof(*ch));
	ch->ops = &local_ops;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->side = side & 1;
	ch->badge = badge;
	ch->u.local.link = l;
	ch->up = true;
}

struct bh_chan_stats bh_chan_stats(const struct bh_chan *ch)
{
	struct bh_chan_stats s = ch->stats;
	if (ch->ops == &shm_ops) {
		s.rejected_index = ch->u.shm.tx_active.rejected + ch->u.shm.rx_free.rejected +
				   ch->u.shm.rx_active.rejected + ch->u.shm.tx_free.rejected;
	}
	return s;
}
