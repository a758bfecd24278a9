/*
 * ipc/ring.h - single-producer/single-consumer descriptor rings in shared
 * memory. Header-only.
 *
 * Layout of one ring at page-aligned offset `off` in a region:
 *
 *   off + 0 page   struct bh_ring_prod_page   written by the PRODUCER only
 *                    head: free-running count of descriptors published
 *                    magic, cap: written at format time, checked at attach
 *                    user: a word the producer publishes for the layer
 *                      above (channel.h: its answer to a link reset)
 *   off + 1 page   struct bh_ring_cons_page   written by the CONSUMER only
 *                    tail: free-running count of descriptors consumed
 *                    want_signal (next cache line): consumer asks to be
 *                    signalled (it is about to sleep)
 *   off + 2 pages  struct bh_desc slots[cap]  written by the PRODUCER only
 *
 * head and tail live on separate pages (so separate cache lines), and each
 * party grants itself write access only to the pages it writes: a stray
 * write by the consumer into the slots, or by the producer into the tail,
 * faults in the party that made it.
 *
 * Indices are free-running uint32 counters; slot = index & (cap - 1), cap a
 * power of two. Invariant: 0 <= head - tail <= cap (unsigned arithmetic).
 *
 * Ordering (see order.h):
 *  - producer: writes slots[head .. head+k), then RELEASE-stores head+k
 *    (bh_ring_produce). Pairs with the consumer's ACQUIRE load of head in
 *    bh_ring_consume(): the consumer sees the slots written.
 *  - consumer: copies slots[tail .. tail+k) out, then RELEASE-stores
 *    tail+k. Pairs with the producer's ACQUIRE load of tail in
 *    bh_ring_producer_refresh(): the producer may overwrite those slots.
 *  - signal request (sDDF's "request, re-check, cancel"): the consumer
 *    stores want_signal = 1, full barrier, re-reads head; the producer
 *    stores head, full barrier, reads want_signal. At least one of them
 *    sees the other's store, so a consumer never sleeps on a non-empty ring
 *    that nobody will signal.
 *
 * Trust: each side keeps its own index and the capacity in its local
 * handle and never re-reads them from shared memory. The other side's index
 * is read once per batch and checked: it may only move forward, never past
 * what was published. A violation is counted in `rejected` and treated as
 * "no progress" (nothing is consumed or reused), so a hostile or dead peer
 * can stall its own traffic but never make us read or overwrite a slot out
 * of turn. Descriptors are copied out of the slots once; the caller checks
 * the copies (desc.h) against bounds it owns.
 *
 * Mutual exclusion the caller owes: one thread at a time per handle.
 */
#ifndef BH_IPC_RING_H
#define BH_IPC_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ipc/desc.h"
#include "ipc/order.h"
#include "ipc/region.h"

#define BH_RING_MAGIC 0x474e4952u /* "RING" */
#define BH_RING_MAX_CAP (1u << 20)

struct bh_ring_prod_page {
	uint32_t head;
	uint32_t magic;
	uint32_t cap;
	uint32_t user;
};

struct bh_ring_cons_page {
	uint32_t tail;
	/* want_signal has a cache line of its own: the producer reads it
	 * after every batch, and must not pull the line the consumer writes
	 * on every consume. */
	uint32_t pad[BH_CACHE_LINE / 4 - 1];
	uint32_t want_signal;
};

struct bh_ring_producer {
	struct bh_ring_prod_page *prod;       /* RW for us */
	const struct bh_ring_cons_page *cons; /* RO for us */
	struct bh_desc *slots;                /* RW for us */
	uint32_t cap, mask;                   /* local copies */
	uint32_t head;                        /* authoritative: ours */
	uint32_t tail_seen;                   /* last valid tail read */
	uint64_t produced;                    /* descriptors published */
	uint64_t full;                        /* calls that found no room */
	uint64_t rejected;                    /* invalid tails seen */
};

struct bh_ring_consumer {
	const struct bh_ring_prod_page *prod; /* RO for us */
	struct bh_ring_cons_page *cons;       /* RW for us */
	const struct bh_desc *slots;          /* RO for us */
	uint32_t cap, mask;
	uint32_t tail;      /* authoritative: ours */
	uint32_t head_seen; /* last valid head read */
	uint64_t consumed;
	uint64_t rejected; /* invalid heads seen */
};

static inline bool bh_ring_cap_ok(uint32_t cap)
{
	return cap >= 2 && cap <= BH_RING_MAX_CAP && (cap & (cap - 1)) == 0;
}

/* Bytes one ring of `cap` slots occupies in a region (whole pages). */
static inline size_t bh_ring_bytes(uint32_t cap)
{
	return 2 * bh_page_size() + bh_page_round((size_t)cap * sizeof(struct bh_desc));
}

/* Creator: formats a ring at `off` of a region it maps read-write. */
static inline int bh_ring_format(struct bh_region *r, size_t off, uint32_t cap)
{
	if (!bh_ring_cap_ok(cap) || off % bh_page_size() != 0)
		return -EINVAL;
	char *base = bh_region_at(r, off, bh_ring_bytes(cap));
	if (base == NULL || r->access != BH_ACCESS_RW)
		return -EINVAL;
	memset(base, 0, bh_ring_bytes(cap));
	struct bh_ring_prod_page *pp = (struct bh_ring_prod_page *)base;
	pp->magic = BH_RING_MAGIC;
	pp->cap = cap;
	return 0;
}

/* Locates the ring's three parts, checks the format against what the
 * caller expects, and grants the caller write access to `own` parts when
 * the region was attached read-only. */
static inline int bh_ring__locate(struct bh_region *r, size_t off, uint32_t cap, char **prod,
				  char **cons, char **slots)
{
	size_t page = bh_page_size();
	if (!bh_ring_cap_ok(cap) || off % page != 0)
		return -EINVAL;
	char *base = bh_region_at(r, off, bh_ring_bytes(cap));
	if (base == NULL)
		return -EINVAL;
	const struct bh_ring_prod_page *pp = (const struct bh_ring_prod_page *)base;
	if (bh_load_relaxed32(&pp->magic) != BH_RING_MAGIC)
		return -EBADMSG;
	if (bh_load_relaxed32(&pp->cap) != cap)
		return -EPROTO;
	*prod = base;
	*cons = base + page;
	*slots = base + 2 * page;
	return 0;
}

/* Maps the producer's parts without looking at the indices. */
static inline int bh_ring__producer_map(struct bh_ring_producer *p, struct bh_region *r,
					size_t off, uint32_t cap)
{
	char *prod, *cons, *slots;
	int err = bh_ring__locate(r, off, cap, &prod, &cons, &slots);
	if (err)
		return err;
	if (r->access != BH_ACCESS_RW) {
		size_t page = bh_page_size();
		err = bh_region_protect(r, off, page, BH_ACCESS_RW);
		if (!err)
			err = bh_region_protect(r, off + 2 * page, bh_ring_bytes(cap) - 2 * page,
						BH_ACCESS_RW);
		if (err)
			return err;
	}
	memset(p, 0, sizeof(*p));
	p->prod = (struct bh_ring_prod_page *)prod;
	p->cons = (const struct bh_ring_cons_page *)cons;
	p->slots = (struct bh_desc *)slots;
	p->cap = cap;
	p->mask = cap - 1;
	return 0;
}

static inline int bh_ring_producer_attach(struct bh_ring_producer *p, struct bh_region *r,
					  size_t off, uint32_t cap)
{
	int err = bh_ring__producer_map(p, r, off, cap);
	if (err)
		return err;
	/* Adopt the ring as it is (a restarted producer resumes where the
	 * last one stopped); refuse one whose indices break the invariant. */
	p->head = bh_load_relaxed32(&p->prod->head);
	p->tail_seen = bh_load_acquire32(&p->cons->tail);
	if (p->head - p->tail_seen > cap)
		return -EPROTO;
	return 0;
}

static inline int bh_ring_consumer_attach(struct bh_ring_consumer *c, struct bh_region *r,
					  size_t off, uint32_t cap)
{
	char *prod, *cons, *slots;
	int err = bh_ring__locate(r, off, cap, &prod, &cons, &slots);
	if (err)
		return err;
	if (r->access != BH_ACCESS_RW) {
		err = bh_region_protect(r, off + bh_page_size(), bh_page_size(), BH_ACCESS_RW);
		if (err)
			return err;
	}
	memset(c, 0, sizeof(*c));
	c->prod = (const struct bh_ring_prod_page *)prod;
	c->cons = (struct bh_ring_cons_page *)cons;
	c->slots = (const struct bh_desc *)slots;
	c->cap = cap;
	c->mask = cap - 1;
	c->tail = bh_load_relaxed32(&c->cons->tail);
	c->head_seen = c->tail;
	return 0;
}

/* A link reset (channel.h): both sides start again from index 0. Each
 * side zeroes only the words it owns; RELEASE, so a peer that later
 * acquires the reset's acknowledgement sees the zeroes. */
static inline void bh_ring_producer_reset(struct bh_ring_producer *p)
{
	p->head = 0;
	p->tail_seen = 0;
	bh_store_release32(&p->prod->head, 0);
}

static inline void bh_ring_consumer_reset(struct bh_ring_consumer *c)
{
	c->tail = 0;
	c->head_seen = 0;
	bh_store_relaxed32(&c->cons->want_signal, 0);
	bh_store_release32(&c->cons->tail, 0);
}

/* Copies n descriptors. Counts are small and known only at run time;
 * a loop of 16-byte assignments beats a call to memcpy for them. */
static inline void bh_ring__copy(struct bh_desc *dst, const struct bh_desc *src, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		dst[i] = src[i];
}

/* Producer: reads the consumer's tail and accepts it only if it moved
 * forward by no more than what we published. */
static inline void bh_ring_producer_refresh(struct bh_ring_producer *p)
{
	/* ACQUIRE: pairs with the consumer's RELEASE of tail in
	 * bh_ring_consume(); slots below t have been copied out. */
	uint32_t t = bh_load_acquire32(&p->cons->tail);
	if (t - p->tail_seen <= p->head - p->tail_seen)
		p->tail_seen = t;
	else
		p->rejected++;
}

static inline uint32_t bh_ring_producer_space(struct bh_ring_producer *p)
{
	bh_ring_producer_refresh(p);
	return p->cap - (p->head - p->tail_seen);
}

/* Producer: publishes up to n descriptors; returns how many fit. */
static inline unsigned bh_ring_produce(struct bh_ring_producer *p, const struct bh_desc *d,
				       unsigned n)
{
	uint32_t space = p->cap - (p->head - p->tail_seen);
	if (space < n) {
		bh_ring_producer_refresh(p);
		space = p->cap - (p->head - p->tail_seen);
	}
	unsigned k = n < space ? n : space;
	if (k < n)
		p->full++;
	if (k == 0)
		return 0;
	uint32_t start = p->head & p->mask;
	uint32_t first = p->cap - start;
	if (first > k)
		first = k;
	bh_ring__copy(&p->slots[start], d, first);
	bh_ring__copy(&p->slots[0], d + first, k - first);
	p->head += k;
	p->produced += k;
	/* RELEASE: the slots written above are visible to a consumer that
	 * acquires this head (bh_ring_consume). */
	bh_store_release32(&p->prod->head, p->head);
	return k;
}

/* Consumer: snapshot of the producer's head, validated. Returns the number
 * of descriptors available (0 if the head is invalid, which is counted). */
static inline uint32_t bh_ring_consumer_avail(struct bh_ring_consumer *c)
{
	/* ACQUIRE: pairs with the producer's RELEASE of head in
	 * bh_ring_produce(); slots below h are written. */
	uint32_t h = bh_load_acquire32(&c->prod->head);
	uint32_t avail = h - c->tail;
	if (avail > c->cap || avail < c->head_seen - c->tail) {
		c->rejected++;
		return c->head_seen - c->tail;
	}
	c->head_seen = h;
	return avail;
}

/* Consumer: copies out up to max descriptors; returns how many. */
static inline unsigned bh_ring_consume(struct bh_ring_consumer *c, struct bh_desc *out,
				       unsigned max)
{
	uint32_t avail = bh_ring_consumer_avail(c);
	unsigned k = avail < max ? avail : max;
	if (k == 0)
		return 0;
	uint32_t start = c->tail & c->mask;
	uint32_t first = c->cap - start;
	if (first > k)
		first = k;
	bh_ring__copy(out, &c->slots[start], first);
	bh_ring__copy(out + first, &c->slots[0], k - first);
	c->tail += k;
	c->consumed += k;
	/* RELEASE: our copies are complete before the producer may reuse the
	 * slots (pairs with bh_ring_producer_refresh). */
	bh_store_release32(&c->cons->tail, c->tail);
	return k;
}

/* Consumer, before sleeping: asks for a signal, then re-checks. Returns
 * true if descriptors are already waiting; the caller then cancels and
 * consumes instead of sleeping. */
static inline bool bh_ring_consumer_request_signal(struct bh_ring_consumer *c)
{
	bh_store_relaxed32(&c->cons->want_signal, 1);
	/* Orders the flag store before the head load below; pairs with the
	 * barrier in bh_ring_producer_need_signal(). */
	bh_full_barrier();
	return bh_ring_consumer_avail(c) != 0;
}

static inline void bh_ring_consumer_cancel_signal(struct bh_ring_consumer *c)
{
	bh_store_relaxed32(&c->cons->want_signal, 0);
}

/* Producer, after publishing: whether the consumer asked to be signalled. */
static inline bool bh_ring_producer_need_signal(struct bh_ring_producer *p)
{
	/* Orders our head store before the flag load; pairs with the barrier
	 * in bh_ring_consumer_request_signal(). */
	bh_full_barrier();
	return bh_load_relaxed32(&p->cons->want_signal) != 0;
}

#endif /* BH_IPC_RING_H */
