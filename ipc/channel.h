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
 *
 * Give-backs need not wake their owner: a side that sets lazy_free
 * before arm() asks to be woken for new descriptors only, not for its
 * own buffers coming home (they wait in the free ring for its next pass).
 * The caller sets it while it has buffers enough (domains/rt.h,
 * lazy_give_backs) and clears it when it runs low, so a give-back it
 * needs does wake it.
 *
 * Link resets (shm): the link region's first page carries an epoch that
 * only the supervisor writes; it bumps it when the domain at one end dies
 * and a new one takes its place. Each side calls sync() once per loop
 * pass. A side that sees a new epoch zeroes the ring indices it owns
 * (its producer heads, its consumer tails), forgets its local copies, and
 * publishes the epoch as its acknowledgement (the `user` word of its
 * tx-active producer page), then signals the peer. The link carries
 * nothing until the peer's acknowledgement names the same epoch: only
 * then are all four rings known to be empty on both sides. Descriptors in
 * flight at the reset are dropped; buffer recovery (domains/recover.h)
 * makes up for them.
 *
 * Epoch 1, at format, counts as acknowledged by both sides: at first
 * start the rings are empty, and a side may fill them before the peer's
 * process exists.
 *
 *   supervisor             survivor                new incarnation
 *   epoch = e+1  ──────▶   sees e+1: zero, ack    attaches: zero, ack e+1
 *   signal survivor        waits for peer ack     waits for peer ack
 *                          ◀────────── both acks == e+1: up ──────────▶
 *
 * The ledger: each side records, per buffer of every pool it accepts on
 * recv(), whether it holds one it has not given back yet (set by recv(),
 * cleared by give_back()). After a reset it says which of the peer's
 * buffers this side still has; everything else it disclaims.
 *
 * Give-backs are never lost: one that does not fit (the free ring is
 * full, or the link waits for a reset to finish) is owed, one bit per
 * buffer, and goes out with flush_owed() (once per loop pass) as a plain
 * return of that buffer.
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
	uint32_t epoch; /* written by the supervisor only; starts at 1 */
};

/* Descriptor flags on a free queue meaning "I do not hold this buffer":
 * sent after a link reset (domains/recover.h), never recorded as a
 * return in the ledger. */
#define BH_DESC_DISCLAIM 0xffu

struct bh_chan_stats {
	uint64_t sent, received, given_back, reclaimed;
	uint64_t rx_batches;     /* receives that found descriptors waiting:
				  * received / rx_batches is the mean ring
				  * occupancy the consumer found */
	uint64_t send_full;      /* descriptors that did not fit */
	uint64_t give_back_full; /* give-backs that did not fit (or link down) */
	uint64_t rejected_desc;  /* descriptors that failed validation */
	uint64_t rejected_index; /* invalid peer indices (shm only) */
	uint64_t notifies;       /* notify() calls that owed a signal */
	uint64_t signals;        /* signals actually sent */
	uint64_t wakes;          /* of which woke a sleeping peer (syscall) */
	uint64_t resets;         /* link resets seen (a peer was replaced) */
	uint64_t restores;       /* own indices found scribbled and put back */
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
	bool lazy_free; /* arm() does not ask to be woken for give-backs */
	bool up;        /* both sides acknowledged the current epoch */
	uint32_t epoch; /* the epoch this side last reset to (0: none yet) */
	const uint32_t *meta_epoch; /* shm: the supervisor's word */
	uint64_t *held[BH_MAX_POOLS]; /* the ledger, one bit per buffer */
	uint64_t *owed[BH_MAX_POOLS]; /* give-backs that did not fit yet */
	uint32_t held_n[BH_MAX_POOLS];
	uint32_t nowed;
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

/* Puts back, in shared memory, any index this side owns (producer heads,
 * consumer tails) that differs from its own copy; returns how many it
 * wrote (0 when all were right, and for the local transport). "The next
 * publish repairs them" holds only while there is a next publish: a
 * consumer that has taken everything never writes its tail again, and a
 * producer whose peer reads a garbage tail sees no room: the link would
 * stall for good. The domain loop calls this on its periodic pass (at
 * most every 50 ms while busy, at least every 100 ms while idle). Whatever it wrote, it signals the peer (which may be asleep
 * waiting for room or work) and counts in `restores`. Only the thread
 * that produces and consumes on ch may call it. */
unsigned bh_chan_restore_indices(struct bh_chan *ch);

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

/* Which pools this side accepts on recv (peer's) and reclaim (its own).
 * Accepting an rx pool allocates its ledger: -ENOMEM if that fails. */
int bh_chan_accept_rx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g);
void bh_chan_accept_tx_pool(struct bh_chan *ch, uint8_t id, const struct bh_pool_geom *g);

/* Frees the ledger. */
void bh_chan_fini(struct bh_chan *ch);

/* --- resets (shm; the local transport is always up) --- */

enum bh_chan_sync {
	BH_CHAN_STEADY = 0,     /* nothing changed */
	BH_CHAN_WAITING = 1,    /* reset done here, waiting for the peer */
	BH_CHAN_PEER_RESET = 2, /* a new epoch: the peer was replaced (just reset) */
	BH_CHAN_UP = 3,         /* the peer acknowledged: the link carries again */
};
/* Once per loop pass, before anything else touches the channel. */
enum bh_chan_sync bh_chan_sync(struct bh_chan *ch);

/* Supervisor: starts a new epoch on a link region it maps read-write;
 * returns it. */
uint32_t bh_link_new_epoch(struct bh_region *r);

/* How many of the peer's buffers the ledger says this side holds. */
uint32_t bh_chan_held(const struct bh_chan *ch);

/* Whether this side's ledger says it holds (pool, buf). */
static inline bool bh_chan_holds(const struct bh_chan *ch, uint8_t pool, uint32_t buf)
{
	return pool < BH_MAX_POOLS && ch->held[pool] && buf < ch->held_n[pool] &&
	       (ch->held[pool][buf >> 6] >> (buf & 63) & 1u);
}

/* Internal: records give-backs that did not fit (returns of buffers the
 * ledger holds; disclaims are recover.c's to retry). */
void bh_chan__owe(struct bh_chan *ch, const struct bh_desc *d, unsigned n);
/* Sends owed give-backs while there is room; true if it sent any. */
bool bh_chan_flush_owed(struct bh_chan *ch);

/* Internal: whether the peer has acknowledged this side's epoch yet
 * (without taking a new epoch, which only sync() does). */
bool bh_chan__try_up(struct bh_chan *ch);
#define BH_CHAN_UP_OR(ch, none)                                 \
	do {                                                    \
		if (!(ch)->up && !bh_chan__try_up(ch))          \
			return none;                            \
	} while (0)

/* --- what domain code calls --- */

/* While a reset waits for the peer, nothing moves (all return 0). */
static inline unsigned bh_chan_send(struct bh_chan *ch, const struct bh_desc *d, unsigned n)
{
	BH_CHAN_UP_OR(ch, 0);
	return ch->ops->send(ch, d, n);
}
static inline unsigned bh_chan_recv(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	BH_CHAN_UP_OR(ch, 0);
	unsigned k = ch->ops->recv(ch, d, max);
	/* recv() handed out only descriptors of accepted pools, in range. */
	for (unsigned i = 0; i < k; i++)
		ch->held[d[i].pool][d[i].buf >> 6] |= 1ull << (d[i].buf & 63);
	return k;
}
static inline unsigned bh_chan_give_back(struct bh_chan *ch, const struct bh_desc *d,
					 unsigned n)
{
	unsigned k = 0;
	if (ch->up || bh_chan__try_up(ch))
		k = ch->ops->give_back(ch, d, n);
	for (unsigned i = 0; i < k; i++)
		if (d[i].flags != BH_DESC_DISCLAIM && bh_chan_holds(ch, d[i].pool, d[i].buf))
			ch->held[d[i].pool][d[i].buf >> 6] &= ~(1ull << (d[i].buf & 63));
	if (k < n)
		bh_chan__owe(ch, d + k, n - k);
	return k;
}
static inline unsigned bh_chan_reclaim(struct bh_chan *ch, struct bh_desc *d, unsigned max)
{
	BH_CHAN_UP_OR(ch, 0);
	return ch->ops->reclaim(ch, d, max);
}
static inline void bh_chan_notify(struct bh_chan *ch)
{
	ch->ops->notify(ch);
}
static inline bool bh_chan_arm(struct bh_chan *ch)
{
	BH_CHAN_UP_OR(ch, false);
	return ch->ops->arm(ch);
}
static inline void bh_chan_disarm(struct bh_chan *ch)
{
	ch->ops->disarm(ch);
}

/* Counters, with the ring handles' rejection counts folded in. */
struct bh_chan_stats bh_chan_stats(const struct bh_chan *ch);

#endif /* BH_IPC_CHANNEL_H */
