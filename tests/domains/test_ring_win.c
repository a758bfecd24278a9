/*
 * tests/domains/test_ring_win.c - ring windows (domains/app_abi.h): the
 * window a producer picks (bh_win_next, bh_win_room, bh_win_wrote), the
 * check a consumer makes of the window word (bh_win_of), and a stream
 * through one ring whose producer grows and shrinks the window as the
 * two sides agree, compared byte for byte.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "domains/app_abi.h"

#define RING (512u * 1024)

Test(ring_win, the_word_a_consumer_accepts)
{
	cr_expect_eq(bh_win_of(0, RING), RING, "0: the whole ring");
	cr_expect_eq(bh_win_of(BH_RING_WIN_MIN, RING), BH_RING_WIN_MIN);
	cr_expect_eq(bh_win_of(RING, RING), RING);
	cr_expect_eq(bh_win_of(BH_RING_WIN_MIN / 2, RING), 0, "under the minimum");
	cr_expect_eq(bh_win_of(2 * RING, RING), 0, "over the ring");
	cr_expect_eq(bh_win_of(BH_RING_WIN_MIN + 4096, RING), 0, "not a power of two");
	cr_expect_eq(bh_win_of(0xffffffffu, RING), 0);
	/* A ring smaller than the minimum is its own minimum. */
	cr_expect_eq(bh_win_of(4096, 4096), 4096);
	cr_expect_eq(bh_win_first(4096), 4096);
	cr_expect_eq(bh_win_first(RING), BH_RING_WIN_MIN);
}

Test(ring_win, grows_after_a_full_window_once_the_ring_is_empty)
{
	struct bh_win_use u = {0};
	uint32_t win = bh_win_first(RING);
	/* 100 KiB to write into 16 KiB: it takes the window, and notes it. */
	uint32_t room = bh_win_room(&u, win, RING, 0);
	cr_assert_eq(room, win);
	bh_win_wrote(&u, 0, room, 100 * 1024);
	cr_expect(u.full);
	/* Partly read: it waits for the ring to empty rather than fill the
	 * room, so that the window can grow. */
	cr_expect_eq(bh_win_room(&u, win, RING, win / 2), 0);
	win = bh_win_next(&u, win, RING);
	cr_expect_eq(win, 2 * BH_RING_WIN_MIN);
	cr_expect_not(u.full);
	/* It doubles up to the ring and no further. */
	for (int i = 0; i < 10; i++) {
		bh_win_wrote(&u, 0, win, (size_t)win + 1);
		win = bh_win_next(&u, win, RING);
	}
	cr_expect_eq(win, RING);
	/* A full window of the whole ring does not wait for empty. */
	bh_win_wrote(&u, 0, win, (size_t)win + 1);
	cr_expect_eq(bh_win_room(&u, win, RING, 1000), RING - 1000);
}

Test(ring_win, shrinks_after_many_quiet_rings_and_no_further_than_the_minimum)
{
	struct bh_win_use u = {0};
	uint32_t win = RING;
	int steps = 0;
	while (win > BH_RING_WIN_MIN && steps < 1000) {
		bh_win_wrote(&u, 0, 1200, 1200); /* a response, read at once */
		uint32_t w = bh_win_next(&u, win, RING);
		if (w != win)
			cr_expect_eq(steps % BH_WIN_QUIET, BH_WIN_QUIET - 1,
				     "halved on the last of BH_WIN_QUIET quiet rings (step %d)", steps);
		win = w;
		steps++;
	}
	cr_expect_eq(win, BH_RING_WIN_MIN);
	cr_expect_eq(steps, (int)BH_WIN_QUIET * 5, "512 KiB to 16 KiB: five halvings");
	for (int i = 0; i < 100; i++) {
		bh_win_wrote(&u, 0, 10, 10);
		win = bh_win_next(&u, win, RING);
	}
	cr_expect_eq(win, BH_RING_WIN_MIN);
	/* A ring used past a quarter starts the count again. */
	struct bh_win_use v = {0};
	win = 4 * BH_RING_WIN_MIN;
	for (uint32_t i = 0; i < BH_WIN_QUIET - 1; i++) {
		bh_win_wrote(&v, 0, 10, 10);
		win = bh_win_next(&v, win, RING);
	}
	bh_win_wrote(&v, 0, win / 2, win / 2);
	win = bh_win_next(&v, win, RING);
	bh_win_wrote(&v, 0, 10, 10);
	cr_expect_eq(bh_win_next(&v, win, RING), 4 * BH_RING_WIN_MIN);
}

/* One producer and one consumer over a ring, as sock and the library
 * use it: the producer changes the window only at an empty ring; the
 * consumer reads with the window in the word. Writes of random sizes
 * (small ones, then bulk, then small again) arrive whole and in order. */
Test(ring_win, a_stream_through_a_changing_window_arrives_whole)
{
	uint8_t *ring = malloc(RING);
	cr_assert_not_null(ring);
	uint32_t head = 0, tail = 0, word = bh_win_first(RING);
	struct bh_win_use u = {0};
	uint8_t out_next = 0, in_next = 0;
	static uint8_t buf[RING];
	unsigned changes = 0, seen_max = 0;
	srand(7);
	for (int step = 0; step < 6000; step++) {
		/* Producer. */
		size_t want = step < 2000 || step > 4000 ? 1 + (size_t)(rand() % 2000)
							 : 1 + (size_t)(rand() % 300000);
		uint32_t used = head - tail;
		uint32_t win = word;
		if (used == 0) {
			uint32_t w = bh_win_next(&u, win, RING);
			changes += w != win;
			win = word = w;
		}
		uint32_t room = bh_win_room(&u, win, RING, used);
		uint32_t k = want < room ? (uint32_t)want : room;
		for (uint32_t i = 0; i < k; i++)
			buf[i] = out_next++;
		bh_ring_put(ring, win, head, buf, k);
		bh_win_wrote(&u, used, k, want);
		head += k;
		if (win > seen_max)
			seen_max = win;
		/* Consumer: reads some or all of it, with the window in the
		 * word (checked). */
		uint32_t avail = head - tail;
		uint32_t cw = bh_win_of(word, RING);
		cr_assert_neq(cw, 0);
		cr_assert_leq(avail, cw);
		uint32_t take = rand() % 3 ? avail : avail / 2;
		bh_ring_get(buf, ring, cw, tail, take);
		for (uint32_t i = 0; i < take; i++)
			if (buf[i] != in_next++)
				cr_assert_fail("byte %u of a read at step %d", i, step);
		tail += take;
	}
	cr_expect_eq(seen_max, RING, "bulk grew the window to the ring");
	cr_expect_eq(word, BH_RING_WIN_MIN, "small writes shrank it again");
	cr_expect_gt(changes, 8);
	free(ring);
}
