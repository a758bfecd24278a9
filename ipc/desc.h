/*
 * ipc/desc.h - the descriptor every ring carries, and the pool geometry a
 * receiver checks it against.
 *
 * A descriptor names a buffer by (pool, index), never by pointer, plus the
 * span of bytes that holds data. It is 16 bytes: four to a cache line.
 * Descriptors arrive from other domains and are untrusted: a receiver
 * copies one out of the ring once and checks it with bh_desc_check()
 * against a geometry the receiver owns (configured, not read from the
 * sender's memory) before it touches the buffer.
 */
#ifndef BH_IPC_DESC_H
#define BH_IPC_DESC_H

#include <stdbool.h>
#include <stdint.h>

struct bh_desc {
	uint32_t buf;  /* buffer index within the pool */
	uint16_t off;  /* first byte of data within the buffer */
	uint16_t len;  /* bytes of data */
	uint8_t pool;  /* which pool (link-specific numbering) */
	uint8_t flags; /* link-specific */
	uint16_t meta; /* link-specific (protocol, port, ...) */
	uint32_t aux;  /* link-specific (flow id, cookie, sequence) */
};

_Static_assert(sizeof(struct bh_desc) == 16, "bh_desc is 16 bytes");

/* The shape of a buffer pool, as the receiver knows it. */
struct bh_pool_geom {
	uint32_t nbufs;    /* number of buffers */
	uint32_t buf_size; /* bytes per buffer, headroom included */
	uint32_t headroom; /* bytes reserved in front for headers */
};

#define BH_MAX_POOLS 8

enum bh_desc_verdict {
	BH_DESC_OK = 0,
	BH_DESC_BAD_POOL,  /* pool id not accepted on this link */
	BH_DESC_BAD_INDEX, /* buf >= nbufs */
	BH_DESC_BAD_SPAN,  /* off + len beyond the buffer */
};

/* Checks a descriptor that has already been copied out of shared memory. */
static inline enum bh_desc_verdict
bh_desc_check(const struct bh_desc *d, const struct bh_pool_geom *const pools[BH_MAX_POOLS])
{
	if (d->pool >= BH_MAX_POOLS || pools[d->pool] == 0)
		return BH_DESC_BAD_POOL;
	const struct bh_pool_geom *g = pools[d->pool];
	if (d->buf >= g->nbufs)
		return BH_DESC_BAD_INDEX;
	if ((uint32_t)d->off + (uint32_t)d->len > g->buf_size)
		return BH_DESC_BAD_SPAN;
	return BH_DESC_OK;
}

#endif /* BH_IPC_DESC_H */
