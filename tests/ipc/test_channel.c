/*
 * tests/ipc/test_channel.c - the channel interface, run identically over
 * both transports (shm and local): the four queues, validation of what
 * the peer hands over, and the arm/notify handshake.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "ipc/channel.h"
#include "ipc/pool.h"

static const struct bh_pool_geom G0 = {.nbufs = 32, .buf_size = 2048, .headroom = 64};
static const struct bh_pool_geom G1 = {.nbufs = 16, .buf_size = 1024, .headroom = 0};

enum transport { SHM, LOCAL };

struct pair {
	enum transport t;
	struct bh_chan a, b; /* side 0, side 1 */
	struct bh_region link, map0, map1;
	struct bh_ntfn ntfn[2];
	struct bh_local_link local;
	uint32_t pending[2];
};

/* Polls for a side's badges, whichever transport it uses. */
static uint32_t badges(struct pair *p, int side)
{
	if (p->t == SHM)
		return bh_ntfn_poll(&p->ntfn[side]);
	uint32_t b = p->pending[side];
	p->pending[side] = 0;
	return b;
}

static struct pair *make_pair(enum transport t, uint32_t cap)
{
	struct pair *p = calloc(1, sizeof(*p));
	p->t = t;
	if (t == SHM) {
		cr_assert_eq(bh_region_create(&p->link, "link", BH_REGION_RINGS, bh_link_bytes(cap)),
			     0);
		cr_assert_eq(bh_link_format(&p->link, cap), 0);
		cr_assert_eq(bh_region_attach(&p->map0, dup(p->link.fd), BH_REGION_RINGS,
					      BH_ACCESS_RO),
			     0);
		cr_assert_eq(bh_region_attach(&p->map1, dup(p->link.fd), BH_REGION_RINGS,
					      BH_ACCESS_RO),
			     0);
		cr_assert_eq(bh_chan_shm_attach(&p->a, "a", &p->map0, 0, cap, &p->ntfn[1], 0x1), 0);
		cr_assert_eq(bh_chan_shm_attach(&p->b, "b", &p->map1, 1, cap, &p->ntfn[0], 0x2), 0);
	} else {
		cr_assert_eq(bh_local_link_init(&p->local, cap, &p->pending[0], &p->pending[1]), 0);
		bh_chan_local_attach(&p->a, "a", &p->local, 0, 0x1);
		bh_chan_local_attach(&p->b, "b", &p->local, 1, 0x2);
	}
	/* a sends its pool 0 buffers; b sends its pool 1 buffers */
	bh_chan_accept_tx_pool(&p->a, 0, &G0);
	bh_chan_accept_rx_pool(&p->a, 1, &G1);
	bh_chan_accept_rx_pool(&p->b, 0, &G0);
	bh_chan_accept_tx_pool(&p->b, 1, &G1);
	return p;
}

static void free_pair(struct pair *p)
{
	bh_chan_fini(&p->a);
	bh_chan_fini(&p->b);
	if (p->t == SHM) {
		bh_region_close(&p->map0);
		bh_region_close(&p->map1);
		bh_region_close(&p->link);
	} else {
		bh_local_link_fini(&p->local);
	}
	free(p);
}

ParameterizedTestParameters(channel, both_transports)
{
	static enum transport t[] = {SHM, LOCAL};
	return cr_make_param_array(enum transport, t, 2);
}

static void exercise(enum transport t)
{
	struct pair *p = make_pair(t, 8);
	struct bh_desc d[16], out[16];
	for (uint32_t i = 0; i < 16; i++)
		d[i] = (struct bh_desc){.buf = i, .off = 64, .len = 100, .pool = 0, .aux = i};

	/* b sleeps: arms first; nothing pending yet */
	cr_assert_not(bh_chan_arm(&p->b));
	cr_assert_eq(bh_chan_send(&p->a, d, 16), 8, "capacity bounds a batch");
	cr_assert_eq(p->a.stats.send_full, 8);
	bh_chan_notify(&p->a);
	cr_assert_eq(badges(p, 1), 0x1, "an armed peer is signalled with our badge");
	bh_chan_notify(&p->a);
	cr_assert_eq(badges(p, 1), 0, "nothing new queued: no second signal");
	bh_chan_disarm(&p->b);

	cr_assert_eq(bh_chan_recv(&p->b, out, 16), 8);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(out[i].aux, i);
	cr_assert_eq(bh_chan_give_back(&p->b, out, 8), 8);
	bh_chan_notify(&p->b);
	cr_assert_eq(bh_chan_reclaim(&p->a, out, 16), 8);
	cr_assert_eq(out[7].buf, 7);

	/* a peer that is not armed is not signalled (shm: no shared write) */
	cr_assert_eq(bh_chan_send(&p->a, d, 1), 1);
	bh_chan_notify(&p->a);
	if (t == SHM)
		cr_assert_eq(badges(p, 1), 0);
	cr_assert(bh_chan_arm(&p->b), "arm re-checks and sees the pending work");
	bh_chan_disarm(&p->b);
	cr_assert_eq(bh_chan_recv(&p->b, out, 16), 1);

	/* invalid descriptors: wrong pool, index, span; valid ones survive */
	struct bh_desc bad[5] = {
	    {.pool = 1, .buf = 0, .len = 1},             /* b accepts only pool 0 from a */
	    {.pool = 0, .buf = 32, .len = 1},            /* index out of range */
	    {.pool = 0, .buf = 1, .off = 2000, .len = 49}, /* past the end */
	    {.pool = 9, .buf = 0},                       /* no such pool */
	    {.pool = 0, .buf = 31, .off = 2000, .len = 48, .aux = 99},
	};
	cr_assert_eq(bh_chan_send(&p->a, bad, 5), 5);
	cr_assert_eq(bh_chan_recv(&p->b, out, 16), 1);
	cr_assert_eq(out[0].aux, 99);
	cr_assert_eq(bh_chan_stats(&p->b).rejected_desc, 4);

	/* the same checks on buffers coming home */
	struct bh_desc home[2] = {{.pool = 1, .buf = 3}, {.pool = 0, .buf = 40}};
	cr_assert_eq(bh_chan_give_back(&p->b, home, 2), 2);
	cr_assert_eq(bh_chan_reclaim(&p->a, out, 16), 0, "neither is one of a's buffers");
	cr_assert_eq(bh_chan_stats(&p->a).rejected_desc, 2);
	free_pair(p);
}

ParameterizedTest(enum transport *t, channel, both_transports)
{
	exercise(*t);
}

/* A side with lazy_free set is not woken for its own buffers coming
 * home, and arm() does not count them as work; new descriptors still
 * wake it, and the buffers are there for its next reclaim. Cleared, a
 * give-back wakes it again. */
static void lazy_give_backs(enum transport t)
{
	struct pair *p = make_pair(t, 8);
	struct bh_desc d[4], out[8];
	for (uint32_t i = 0; i < 4; i++)
		d[i] = (struct bh_desc){.buf = i, .off = 64, .len = 100, .pool = 0, .aux = i};
	cr_assert_eq(bh_chan_send(&p->a, d, 4), 4);
	bh_chan_notify(&p->a);
	badges(p, 1);
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 4);

	p->a.lazy_free = true;
	cr_assert_not(bh_chan_arm(&p->a));
	cr_assert_eq(bh_chan_give_back(&p->b, out, 2), 2);
	bh_chan_notify(&p->b);
	if (t == SHM)
		cr_assert_eq(badges(p, 0), 0, "a lazy owner is not woken for a give-back");
	else
		badges(p, 0); /* one thread: a pending badge costs nothing */
	cr_assert_not(bh_chan_arm(&p->a), "give-backs waiting are not work for a lazy owner");
	bh_chan_disarm(&p->a);
	cr_assert_eq(bh_chan_reclaim(&p->a, out + 4, 4), 2, "they wait for its next pass");

	p->a.lazy_free = false;
	cr_assert_not(bh_chan_arm(&p->a));
	cr_assert_eq(bh_chan_give_back(&p->b, out + 2, 2), 2);
	bh_chan_notify(&p->b);
	cr_assert_eq(badges(p, 0), 0x2, "an owner that runs low is woken by a give-back");
	bh_chan_disarm(&p->a);
	cr_assert_eq(bh_chan_reclaim(&p->a, out + 4, 4), 2);

	p->a.lazy_free = true;
	cr_assert_not(bh_chan_arm(&p->a));
	cr_assert_eq(bh_chan_send(&p->b, (struct bh_desc[]){{.pool = 1, .buf = 0, .len = 1}}, 1),
		     1);
	bh_chan_notify(&p->b);
	cr_assert_eq(badges(p, 0), 0x2, "new descriptors wake a lazy side as ever");
	bh_chan_disarm(&p->a);
	free_pair(p);
}

ParameterizedTestParameters(channel, lazy_transports)
{
	static enum transport t[] = {SHM, LOCAL};
	return cr_make_param_array(enum transport, t, 2);
}

ParameterizedTest(enum transport *t, channel, lazy_transports)
{
	lazy_give_backs(*t);
}

/* A link reset (shm): the supervisor starts a new epoch; nothing moves
 * until both sides have reset; what was in flight is dropped; both start
 * again from index 0. The ledger records what each side holds. */
Test(channel, reset_handshake_drops_what_was_in_flight)
{
	struct pair *p = make_pair(SHM, 8);
	struct bh_desc d[4], out[8];
	for (uint32_t i = 0; i < 4; i++)
		d[i] = (struct bh_desc){.buf = i, .len = 10, .pool = 0, .aux = i};
	cr_assert_eq(bh_chan_sync(&p->a), BH_CHAN_UP);
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_UP);
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_STEADY);
	cr_assert_eq(bh_chan_send(&p->a, d, 4), 4);
	cr_assert_eq(bh_chan_recv(&p->b, out, 1), 1);
	cr_assert_eq(bh_chan_held(&p->b), 1, "the ledger: b holds buffer 0");
	cr_assert(bh_chan_holds(&p->b, 0, 0));

	bh_link_new_epoch(&p->link);
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_PEER_RESET);
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 0, "not until a has reset too");
	cr_assert_eq(bh_chan_give_back(&p->b, out, 1), 0, "a give-back waits...");
	cr_assert_eq(p->b.nowed, 1, "...owed, not lost");
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_WAITING);
	cr_assert_eq(bh_chan_sync(&p->a), BH_CHAN_PEER_RESET);
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_UP);
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 0, "the three in flight were dropped");
	cr_assert(bh_chan_flush_owed(&p->b));
	cr_assert_eq(p->b.nowed, 0);
	cr_assert_eq(bh_chan_held(&p->b), 0);
	cr_assert_eq(bh_chan_reclaim(&p->a, out, 8), 1, "the owed return arrives");
	cr_assert_eq(out[0].buf, 0);
	cr_assert_eq(bh_chan_send(&p->a, d + 1, 3), 3, "the rings carry again");
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 3);
	cr_assert_eq(out[0].aux, 1);
	cr_assert_eq(bh_chan_stats(&p->a).rejected_index, 0, "nobody saw an index go backwards");
	cr_assert_eq(bh_chan_stats(&p->b).resets, 1);

	/* a disclaim is not a return: the ledger keeps what it holds */
	struct bh_desc dis = {.buf = 1, .pool = 0, .flags = BH_DESC_DISCLAIM};
	cr_assert_eq(bh_chan_give_back(&p->b, &dis, 1), 1);
	cr_assert(bh_chan_holds(&p->b, 0, 1));
	cr_assert_eq(bh_chan_reclaim(&p->a, out, 8), 1);
	cr_assert_eq(out[0].flags, BH_DESC_DISCLAIM);
	bh_chan_fini(&p->a);
	bh_chan_fini(&p->b);
	free_pair(p);
}

/* A replacement attaches with garbage left in the indices it owns (the
 * dead one wrote it): attaching zeroes them; nothing is read out of turn. */
Test(channel, a_replacement_starts_clean_over_garbage_indices)
{
	struct pair *p = make_pair(SHM, 8);
	struct bh_desc d = {.buf = 3, .len = 1, .pool = 0};
	cr_assert_eq(bh_chan_send(&p->a, &d, 1), 1);
	cr_assert_eq(bh_chan_corrupt_indices(&p->a, 0xdeadbeef), 4);
	bh_chan_fini(&p->a);
	bh_link_new_epoch(&p->link);
	struct bh_region map;
	cr_assert_eq(bh_region_attach(&map, dup(p->link.fd), BH_REGION_RINGS, BH_ACCESS_RO), 0);
	struct bh_chan a2;
	cr_assert_eq(bh_chan_shm_attach(&a2, "a2", &map, 0, 8, &p->ntfn[1], 0x1), 0);
	bh_chan_accept_tx_pool(&a2, 0, &G0);
	bh_chan_accept_rx_pool(&a2, 1, &G1);
	struct bh_desc out[8];
	cr_assert_eq(bh_chan_send(&a2, &d, 1), 0, "b has not reset yet");
	cr_assert_eq(bh_chan_sync(&p->b), BH_CHAN_PEER_RESET);
	cr_assert(p->b.up, "a2 had acknowledged already");
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 0, "the old descriptor is gone");
	cr_assert_eq(bh_chan_send(&a2, &d, 1), 1);
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 1);
	cr_assert_eq(bh_chan_stats(&p->b).rejected_index, 0);
	bh_chan_fini(&a2);
	bh_chan_fini(&p->b);
	bh_region_close(&map);
	free_pair(p);
}

/* A domain scribbles over the indices it owns (the bad-desc fault does
 * exactly that) and then carries on honestly. Its neighbour rejects the
 * garbage and keeps the last good value; but an owner that has nothing
 * more to publish never writes that index again: here b had taken all
 * eight of a full ring, so a, seeing no valid tail, has no room, and b,
 * seeing nothing, never consumes: the link stalled for good. Owners now
 * put their own value back on their periodic pass
 * (bh_chan_restore_indices), and the link carries again. */
Test(channel, indices_scribbled_by_their_owner_are_restored)
{
	struct pair *p = make_pair(SHM, 8);
	struct bh_desc d[8], out[8];
	for (uint32_t i = 0; i < 8; i++)
		d[i] = (struct bh_desc){.buf = i, .off = 64, .len = 100, .pool = 0, .aux = i};
	cr_assert_eq(bh_chan_send(&p->a, d, 8), 8, "the ring is full");
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 8, "b takes them all");
	cr_assert_eq(bh_chan_corrupt_indices(&p->b, 0x7fff1234), 4);
	cr_assert_eq(bh_chan_send(&p->a, d, 1), 0, "a sees no valid tail: no room");
	cr_assert_gt(bh_chan_stats(&p->a).rejected_index, 0, "and counts the garbage");
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 0);
	cr_assert_eq(bh_chan_restore_indices(&p->b), 4, "b puts back the four it owns");
	cr_assert_eq(bh_chan_restore_indices(&p->b), 0, "and, once right, writes nothing");
	cr_assert_eq(bh_chan_send(&p->a, d, 1), 1, "the link carries again");
	cr_assert_eq(bh_chan_recv(&p->b, out, 8), 1);
	cr_assert_eq(out[0].aux, 0);
	/* The other way too: b's give-backs reach a again. */
	cr_assert_eq(bh_chan_give_back(&p->b, out, 1), 1);
	cr_assert_eq(bh_chan_reclaim(&p->a, out, 8), 1);
	free_pair(p);
}
