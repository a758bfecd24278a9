/*
 * tests/ipc/test_ntfn.c - notifications: badge OR and clear, suppressed
 * wake-ups, timeouts, and a sleeping receiver woken by another thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "ipc/clock.h"
#include "ipc/ntfn.h"

Test(ntfn, badges_accumulate_and_clear)
{
	struct bh_ntfn n = {0};
	struct bh_ntfn_stats st = {0};
	cr_assert_eq(bh_ntfn_poll(&n), 0);
	bh_ntfn_signal(&n, 1, &st);
	bh_ntfn_signal(&n, 4, &st);
	bh_ntfn_signal(&n, 4, &st);
	cr_assert_eq(st.suppressed, 1, "a badge already pending needs no write");
	cr_assert_eq(st.wakes, 0, "nobody sleeps: no system call");
	cr_assert_eq(bh_ntfn_wait(&n, 10, 0, NULL), 5);
	cr_assert_eq(bh_ntfn_poll(&n), 0, "wait cleared them");
}

Test(ntfn, sleeping_bit_is_not_a_badge)
{
	struct bh_ntfn n = {0};
	bh_ntfn_signal(&n, 0xffffffffu, NULL);
	cr_assert_eq(bh_ntfn_poll(&n), BH_NTFN_BADGES);
}

Test(ntfn, wait_times_out)
{
	struct bh_ntfn n = {0};
	struct bh_ntfn_stats st = {0};
	uint64_t t0 = bh_now_ns();
	cr_assert_eq(bh_ntfn_wait(&n, 100, 30 * 1000 * 1000, &st), 0);
	uint64_t dt = bh_now_ns() - t0;
	cr_assert_geq(dt, 30 * 1000 * 1000);
	cr_assert_lt(dt, 2000ull * 1000 * 1000);
	cr_assert_eq(st.timeouts, 1);
	cr_assert_eq(n.word, 0, "the sleeping flag is cleared on timeout");
}

/* The sender that finds the receiver asleep clears SLEEPING as it sets
 * its badges: the next sender, before the receiver runs, makes no
 * wake-up call, and the receiver still gets both badges. */
Test(ntfn, one_wake_per_sleep_however_many_senders)
{
	struct bh_ntfn n = {.word = BH_NTFN_SLEEPING}; /* as a receiver leaves it */
	struct bh_ntfn_stats st = {0};
	cr_assert_eq(bh_ntfn_signal(&n, 1, &st), 1, "the first sender wakes the sleeper");
	cr_assert_eq(n.word, 1, "and clears SLEEPING");
	cr_assert_eq(bh_ntfn_signal(&n, 2, &st), 0, "the second makes no wake-up call");
	cr_assert_eq(bh_ntfn_signal(&n, 4, &st), 0);
	cr_assert_eq(st.wakes, 1);
	cr_assert_eq(bh_ntfn_wait(&n, 0, 1000 * 1000, NULL), 7, "the receiver gets every badge");
	cr_assert_eq(n.word, 0);
}

struct waker {
	struct bh_ntfn *n;
	struct bh_ntfn_stats st;
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;
	/* wait until the receiver has gone to sleep, so a wake is needed */
	while (!(__atomic_load_n(&w->n->word, __ATOMIC_ACQUIRE) & BH_NTFN_SLEEPING))
		usleep(100);
	bh_ntfn_signal(w->n, 2, &w->st);
	return NULL;
}

Test(ntfn, sleeping_receiver_is_woken)
{
	struct bh_ntfn n = {0};
	struct waker w = {.n = &n};
	struct bh_ntfn_stats st = {0};
	pthread_t t;
	pthread_create(&t, NULL, wake_later, &w);
	cr_assert_eq(bh_ntfn_wait(&n, 0, 5ll * 1000 * 1000 * 1000, &st), 2);
	pthread_join(t, NULL);
	cr_assert_eq(w.st.wakes, 1, "a sleeper costs the sender one wake");
	cr_assert_geq(st.sleeps, 1);
	cr_assert_eq(st.timeouts, 0);
}
