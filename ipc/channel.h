/*
 * ipc/channel.h - the one interface domain code uses to talk to a
 * neighbour: batches of descriptors and notifications, over either of two
 * transports it cannot tell apart.
 *
 *   shm    (factored build) four SPSC rings in a shared "link" region and
 *          the peer's notification word in a doorbell region; every
 *          index and descriptor from the peer is validated;
 *   local  (monolithic build) the same four queues in private memory and
 *          a plain pending-badge word; both sides run on one thread.
 *
 * A link joins side 0 and side 1. Each side sees four queues:
 *
 *   send()      tx active  my filled buffers (or buffers I forward) out
 *   reclaim()   tx free    my buffers coming back from the peer
 *   recv()      rx active  the peer's filled buffers in
 *   give_back() rx free    the peer's buffers going home
 *
 * recv() and reclaim() hand out only descriptors that pass bh_desc_check()
 * against the pool geometries this side was configured with (rx_pools for
 * recv, tx_pools for reclaim); the rest are counted in rejected_desc,
 * reported (rate-limited), and dropped. Pool ownership (which buffer the
 * peer holds) is the caller's, through pool.h.
 *
 * Notifications: send() and give_back() only mark the peer as owed a
 * signal; notify() delivers it, once per batch, and only if the peer asked
 * for one (ring.h's request/re-check/cancel), so a polling peer costs no
 * system call and usually no shared write. Before sleeping on its own
 * notification a side calls arm(); if it returns true, work arrived
 * meanwhile: call disarm() and process instead of sleeping.
 */
#ifndef BH_IPC_CHANNEL_H
#define BH_IPC_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc/desc.h"
#include "ipc/log.h"
#include "ipc/ntfn.h"
#include "ipc/region.h"
#include "ipc/ring.h"

#define BH_LINK_MAGIC 0x4b4e494cu /* "LINK" */

/* Ring numbering inside a link region. */
enum {
	BH_LINK_ACTIVE_01 = 0, /* side 0 -> 1, filled */
	BH_LINK_FREE_10 = 1,   /* side 1 -> 0, side 0's buffers home */
	BH_LINK_ACTIVE_10 = 2, /* side 1 -> 0, filled */
	BH_LINK_FREE_01 = 3,   /* side 0 -> 1, side 1's buffers home */
	BH_LINK_RINGS = 4,
};

struct bh_link_meta {
	uint32_t magic;
	uint32_t cap;
};

struct bh_chan_stats {
	uint64_t sent, received, given_back, reclaimed;
	uint64_t send_full;      /* descriptors that did not fit */
	uint64_t rejected_desc;  /* descriptors that failed validation */
	uint64_t rejected_index; /* invalid peer indices (shm only) */
	uint64_t notifies;       /* notify() calls that owed a signal */
	uint64_t signals;        /* signals actually sent */
	uint64_t wakes;          /* of which woke a sleeping peer (syscall) */
};

struct bh_chan;

struct bh_chan_ops {
	unsigned (*send)(struct bh_chan *, const struct bh_desc *, unsigned);
	unsigned (*recv)(struct bh_chan *, struct bh_desc *, unsigned);
	unsigned (*give_back)(struct bh_chan *, const struct bh_desc *, unsigned);
	unsigned (*reclaim)(struct bh_chan *, struct bh_desc *, unsigned);
	void (*notify)(struct bh_chan *);
	bool (*arm)(struct bh_chan *);
	void (*disarm)(struct bh_chan *);
};

/* In-process link: four plain queues, owned by whoever creates it. */
struct bh_local_queue {
	struct bh_desc *slots;
	uint32_t cap, mask, head, tail;
};

struct bh_local_link {
	struct bh_local_queue q[BH_LINK_RINGS];
	uint32_t *pending[2]; /* each side's pending-badge word */
};

struct bh_chan {
	const struct bh_chan_ops *ops;
	char name[32];
	int side;
	uint32_t badge; /* what the peer sees when we signal it */
	const struct bh_pool_geom *rx_pools[BH_MAX_POOLS];
	const struct bh_pool_geom *tx_pools[BH_MAX_POOLS];
	struct bh_chan_stats stats;
	struct bh_ratelimit reject_log;
	bool owe_active, owe_free; /* queued since the last notify */
	union {
		struct {
			struct bh_ring_producer tx_active, rx_free;
			struct bh_ring_consumer rx_active, tx_free;
			struct bh_ntfn *peer_ntfn;
			struct bh_ntfn_stats nstats;
		} shm;
		struct {
			struct bh_local_link *link;
		} local;
	} u;
};

/* Fault injection (domains/fault.c): writes `garbage` into the ring
 * indices this side owns in shared memory (the producer heads and
 * consumer tails it publishes). The local copies stay right, so the next
 * publish repairs them; the peer must reject what it reads meanwhile.
 * Returns the indices written (0 for the local transport). */
unsigned bh_chan_corrupt_indices(struct bh_chan *ch, uint32_t garbage);

/* --- link regions (shm transport) --- */

size_t bh_link_bytes(uint32_t cap);
/* Creator: formats the four rings of a link region mapped read-write. */
int bh_link_format(struct bh_region *r, uint32_t cap);

/* Attaches one side of a link. `r` may be mapped read-only: the side then
 * grants itself write access to exactly the pages it writes. */
int bh_chan_shm_attach(struct bh_chan *ch, const char *name, struct bh_region *r, int side,
		       uint32_t cap, struct bh_ntfn *peer_ntfn, uint32_t badge);

/* --- in-process links (local transport) --- */

int bh_local_link_init(struct bh_local_link *l, uint32_t cap, uint32_t *pending0,
		       uint32_t *pending1);
void bh_local_link_fini(struct bh_local_link *l);
void bh_chan_local_attach(struct bh_chan *ch, const char *name, struct bh_local_link *l,
			  int side, uint32_t badge);

/* Which pools this side accepts on recv (peer's) and reclaim (its own). */
void bh_chan_accept_rx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g);
void bh_chan_accept_tx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g);

/* --- what domain code calls --- */

static inline unsigned bh_chan_send(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	return ch->ops->send(ch, d, n);
}
static inline unsigned bh_chan_recv(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	return ch->ops->recv(ch, d, max);
}
static inline unsigned bh_chan_give_back(struct bh_chan *ch, const struct bh_desc *d,
					 unsigned n)
{
	return ch->ops->give_back(ch, d, n);
}
static inline unsigned bh_chan_reclaim(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	return ch->ops->reclaim(ch, d, max);
}
static inline void bh_chan_notify(struct bh_chan *ch)
{
	ch->ops->notify(ch);
}
static inline bool bh_chan_arm(struct bh_chan *ch)
{
	return ch->ops->arm(ch);
}
static inline void bh_chan_disarm(struct bh_chan *ch)
{
	ch->ops->disarm(ch);
}

/* Counters, with the ring handles' rejection counts folded in. */
struct bh_chan_stats bh_chan_stats(const struct bh_chan *ch);

#endif /* BH_IPC_CHANNEL_H */
