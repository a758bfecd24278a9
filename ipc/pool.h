/*
 * ipc/pool.h - fixed-size packet buffers in a region, addressed by index,
 * with ownership tracked by the pool's owner.
 *
 * Region layout (kind BH_REGION_POOL):
 *   page 0          struct bh_region_hdr, then struct bh_pool_meta
 *   page 1 ...      nbufs buffers of buf_size bytes each (buf_size is a
 *                   multiple of 64, so every buffer starts on a cache line)
 *
 * The owner maps the region read-write; a party that only reads the
 * buffers attaches a view through a read-only descriptor.
 *
 * Ownership lives in the owner's private memory, never in the region: for
 * every buffer the owner records who holds it (itself, free, or a peer by
 * party id). A buffer goes out with bh_pool_lend() and comes back with
 * bh_pool_take_back(), which refuses (and counts) a buffer that the peer
 * does not hold: forged indices, double returns, another party's buffers.
 * When a peer dies, bh_pool_reclaim() returns everything it held.
 *
 * Suspects (recovery after a peer is replaced, domains/recover.h): when
 * nobody knows for sure who holds a buffer, the owner records the set of
 * peers that might ("suspect"), and the buffer stays out of the free list
 * until each of them has either returned it or disclaimed it. A buffer is
 * suspect when the peer that held it was replaced (bh_pool_suspect_peer)
 * or when the owner itself is a new incarnation (bh_pool_suspect_all). A
 * suspect buffer is never lent again before it is settled, so a return or
 * a disclaim of it can only be about the old lending; a disclaim of a
 * buffer that is not suspect changes nothing, whoever holds it now.
 *
 * Mutual exclusion the caller owes: one thread at a time per owner handle.
 */
#ifndef BH_IPC_POOL_H
#define BH_IPC_POOL_H

#include <stdint.h>

#include "ipc/desc.h"
#include "ipc/region.h"

#define BH_POOL_MAGIC 0x4c4f4f50u /* "POOL" */
#define BH_POOL_MAX_BUFS (1u << 20)
#define BH_POOL_MAX_BUF_SIZE (64u * 1024u)

/* Party ids in the ownership table. */
#define BH_HOLDER_FREE 0u  /* in the owner's free list */
#define BH_HOLDER_OWNER 1u /* allocated, in the owner's hands */
#define BH_HOLDER_PEER_MIN 2u
#define BH_HOLDER_PEER_MAX 127u
/* 0x80 | mask: suspected by the peers whose bit is set in mask, bit i
 * for peer BH_HOLDER_PEER_MIN + i (peers 2..8 only). */
#define BH_HOLDER_SUSPECT 0x80u
#define BH_HOLDER_SUSPECT_PEERS 7u
static inline uint8_t bh_holder_bit(uint8_t peer)
{
	return peer >= BH_HOLDER_PEER_MIN && peer < BH_HOLDER_PEER_MIN + BH_HOLDER_SUSPECT_PEERS
		   ? (uint8_t)(1u << (peer - BH_HOLDER_PEER_MIN))
		   : 0;
}

struct bh_pool_meta {
	uint32_t magic;
	uint32_t nbufs;
	uint32_t buf_size;
	uint32_t headroom;
	uint64_t data_off;
};

struct bh_pool_stats {
	uint64_t allocs;
	uint64_t alloc_fail;    /* pool empty */
	uint64_t lent;
	uint64_t returned;
	uint64_t bad_return;    /* index out of range or not held by that peer */
	uint64_t reclaimed;     /* taken back from dead peers */
	uint64_t settled;       /* suspect buffers freed: every suspect answered */
	uint64_t disclaim_noop; /* disclaims of buffers not suspected of that peer */
};

/* The owner's handle. */
struct bh_pool {
	struct bh_region region;
	struct bh_pool_geom geom; /* local copy */
	uint8_t *data;
	uint8_t *holder;     /* private: holder[i] */
	uint32_t *free_list; /* private stack of free indices */
	uint32_t nfree;
	struct bh_pool_stats stats;
	/* Optional: told of every buffer bh_pool_free() puts back in the
	 * free list, whichever path brought it home (a return, a settled
	 * suspicion), before it can be allocated again. */
	void (*on_free)(void *ctx, uint32_t buf);
	void *on_free_ctx;
};

/* A reader's handle: geometry from its own configuration. */
struct bh_pool_view {
	struct bh_region region;
	struct bh_pool_geom geom;
	uint8_t *data;
};

size_t bh_pool_bytes(const struct bh_pool_geom *g);
int bh_pool_geom_check(const struct bh_pool_geom *g);

int bh_pool_create(struct bh_pool *p, const char *name, const struct bh_pool_geom *g);
void bh_pool_destroy(struct bh_pool *p);

/* A pool made by one party (the supervisor) for another (the owning
 * domain): bh_pool_region_create() makes and formats the region, without
 * the owner-writes seal (the owner maps it from a descriptor it is
 * handed); readers get read-only descriptors (bh_region_readonly_fd). The
 * owner then builds its private ownership table with bh_pool_attach(),
 * which checks the region against the geometry it was configured with
 * and takes ownership of fd on success. */
int bh_pool_region_create(struct bh_region *r, const char *name, const struct bh_pool_geom *g);
int bh_pool_attach(struct bh_pool *p, int fd, const struct bh_pool_geom *g);

/* Takes a free buffer (holder becomes OWNER); -ENOBUFS when empty. */
int bh_pool_alloc(struct bh_pool *p, uint32_t *buf);
/* Returns an OWNER-held buffer to the free list; -EINVAL otherwise. */
int bh_pool_free(struct bh_pool *p, uint32_t buf);
/* OWNER -> peer. */
int bh_pool_lend(struct bh_pool *p, uint32_t buf, uint8_t peer);
/* peer -> OWNER, only if that peer holds it; counted in bad_return if not.
 * A suspect buffer: the peer's suspicion is cleared (it returned it);
 * returns 1 while other suspects remain, 0 once it is the owner's. */
int bh_pool_take_back(struct bh_pool *p, uint32_t buf, uint8_t peer);
/* `peer` says it does not hold buf: clears its suspicion. 0 when the
 * buffer became the owner's (the caller frees it), 1 when others remain,
 * -ENOENT (counted in disclaim_noop) when peer was not a suspect. */
int bh_pool_disclaim(struct bh_pool *p, uint32_t buf, uint8_t peer);
/* Every buffer `peer` holds becomes suspected by it; returns how many. */
uint32_t bh_pool_suspect_peer(struct bh_pool *p, uint8_t peer);
/* A new owner of a pool in use: every buffer suspected by the peers in
 * `mask` (bh_holder_bit values ORed), none free; what it has allocated
 * itself stays its own. */
void bh_pool_suspect_all(struct bh_pool *p, uint8_t mask);
static inline bool bh_pool_suspected_by(const struct bh_pool *p, uint32_t buf, uint8_t peer)
{
	uint8_t h = buf < p->geom.nbufs ? p->holder[buf] : 0;
	return (h & BH_HOLDER_SUSPECT) && (h & bh_holder_bit(peer));
}
/* Every buffer `peer` holds goes back to the free list; returns how many. */
uint32_t bh_pool_reclaim(struct bh_pool *p, uint8_t peer);
uint32_t bh_pool_held_by(const struct bh_pool *p, uint8_t holder);
/* How many buffers are still suspect (a scan of the table). */
uint32_t bh_pool_suspects(const struct bh_pool *p);

static inline uint8_t *bh_pool_buf(struct bh_pool *p, uint32_t buf)
{
	return p->data + (size_t)buf * p->geom.buf_size;
}

/* Attaches a view of a pool received as fd; `g` is the geometry the
 * reader was configured with and must match the region's. */
int bh_pool_view_attach(struct bh_pool_view *v, int fd, const struct bh_pool_geom *g,
			enum bh_access access);
void bh_pool_view_detach(struct bh_pool_view *v);

/* The data a descriptor names, or NULL if it fails the bounds check. */
static inline const uint8_t *bh_pool_view_data(const struct bh_pool_view *v,
					       const struct bh_desc *d)
{
	if (d->buf >= v->geom.nbufs || (uint32_t)d->off + d->len > v->geom.buf_size)
		return 0;
	return v->data + (size_t)d->buf * v->geom.buf_size + d->off;
}

#endif /* BH_IPC_POOL_H */
