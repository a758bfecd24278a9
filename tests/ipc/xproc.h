/*
 * tests/ipc/xproc.h - what the cross-process tests and their peer program
 * (ipc_peer.c) agree on: a link region (four rings) and a doorbell region
 * holding both sides' notification words and one endpoint.
 *
 * The test process is side 0, the peer is side 1. Side 0 sends buffers of
 * XP_POOL (pool id 0) and the peer returns them; the peer's own sends use
 * pool id 1 (XP_PEER_POOL).
 */
#ifndef BH_TESTS_XPROC_H
#define BH_TESTS_XPROC_H

#include <stddef.h>

#include "ipc/channel.h"
#include "ipc/endpoint.h"
#include "ipc/ntfn.h"
#include "ipc/region.h"

#define XP_CAP 512
#define XP_BADGE_TEST 0x1 /* what the test's signals carry */
#define XP_BADGE_PEER 0x2 /* what the peer's signals carry */

static const struct bh_pool_geom XP_POOL = {.nbufs = 4096, .buf_size = 2048, .headroom = 128};
static const struct bh_pool_geom XP_PEER_POOL = {.nbufs = 256, .buf_size = 2048,
						 .headroom = 128};

struct xp_doorbell {
	struct bh_ntfn ntfn[2]; /* ntfn[side]: that side waits on it */
	struct bh_ep_shared ep; /* the test calls, the peer serves */
};

static inline struct xp_doorbell *xp_doorbell(struct bh_region *r)
{
	return (struct xp_doorbell *)bh_region_at(r, bh_page_size(), sizeof(struct xp_doorbell));
}

/* Byte offset of link ring `ring` (BH_LINK_*) for a hostile peer. */
static inline size_t xp_ring_off(int ring)
{
	return bh_page_size() + (size_t)ring * bh_ring_bytes(XP_CAP);
}

#endif /* BH_TESTS_XPROC_H */
