/*
 * tests/domains/test_track.c - the forwarding ledger's count of buffers
 * out (domains/track.h), which decides whether a forwarder may let them
 * come back lazily (bh_track_few_out).
 */
#include <criterion/criterion.h>

#include "domains/track.h"

static struct bh_track t;
static struct bh_pools_geom g;

static void setup(void)
{
	memset(&t, 0, sizeof(t));
	memset(&g, 0, sizeof(g));
	g.g[BH_POOL_RX].nbufs = 16;
	cr_assert_eq(bh_track_init(&t, &g, 1u << BH_POOL_RX), 0);
}

static void teardown(void)
{
	bh_track_fini(&t);
}

TestSuite(track, .init = setup, .fini = teardown);

Test(track, few_out_below_a_quarter_of_the_pool)
{
	cr_assert(bh_track_few_out(&t, BH_POOL_RX));
	for (uint32_t b = 0; b < 3; b++)
		cr_assert(bh_track_out(&t, BH_POOL_RX, b, BH_DOM_TCP, 0));
	cr_assert(bh_track_few_out(&t, BH_POOL_RX), "3 of 16 out");
	cr_assert(bh_track_out(&t, BH_POOL_RX, 3, BH_DOM_TCP, 0));
	cr_assert_not(bh_track_few_out(&t, BH_POOL_RX), "4 of 16 out: a quarter");
	cr_assert(bh_track_back(&t, BH_POOL_RX, 0, BH_DOM_TCP, NULL));
	cr_assert(bh_track_few_out(&t, BH_POOL_RX), "one came back");
	cr_assert_eq(t.nout[BH_POOL_RX], 3);
}

Test(track, refused_moves_do_not_count)
{
	cr_assert(bh_track_out(&t, BH_POOL_RX, 5, BH_DOM_TCP, 0));
	cr_assert_not(bh_track_out(&t, BH_POOL_RX, 5, BH_DOM_TCP, 0), "already out");
	cr_assert_not(bh_track_back(&t, BH_POOL_RX, 5, BH_DOM_SOCK, NULL), "not its holder");
	cr_assert_not(bh_track_back(&t, BH_POOL_RX, 6, BH_DOM_TCP, NULL), "never out");
	cr_assert_eq(t.nout[BH_POOL_RX], 1);
}

Test(track, an_untracked_pool_is_always_few)
{
	cr_assert(bh_track_few_out(&t, BH_POOL_SEG));
	cr_assert(bh_track_few_out(&t, 200));
}
