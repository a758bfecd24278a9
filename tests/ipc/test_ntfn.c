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

/* --- two words at once (bh_ntfn_wait2) --- */

#define WAIT2_IO (1u << 8)

Test(ntfn, wait2_takes_pending_badges_of_either_word_without_sleeping)
{
	cr_assert(bh_ntfn_wait2_supported(), "this kernel has no futex_waitv (Linux 5.16+)");
	struct bh_ntfn n = {0}, also = {.word = 1};
	struct bh_ntfn_stats st = {0};
	cr_assert_eq(bh_ntfn_wait2(&n, &also, WAIT2_IO, 0, 1000 * 1000 * 1000, &st), WAIT2_IO);
	cr_assert_eq(also.word, 0, "the second word is cleared");
	n.word = 6;
	cr_assert_eq(bh_ntfn_wait2(&n, &also, WAIT2_IO, 0, 1000 * 1000 * 1000, &st), 6);
	cr_assert_eq(n.word, 0);
	cr_assert_eq(also.word, 0, "no SLEEPING mark left on a word not slept on");
	cr_assert_eq(st.sleeps, 0);
}

Test(ntfn, wait2_times_out_and_leaves_no_mark)
{
	cr_assert(bh_ntfn_wait2_supported(), "this kernel has no futex_waitv (Linux 5.16+)");
	struct bh_ntfn n = {0}, also = {0};
	struct bh_ntfn_stats st = {0};
	uint64_t t0 = bh_now_ns();
	cr_assert_eq(bh_ntfn_wait2(&n, &also, WAIT2_IO, 0, 20 * 1000 * 1000, &st), 0);
	cr_assert_geq(bh_now_ns() - t0, 20ull * 1000 * 1000, "it slept out its timeout");
	cr_assert_eq(st.timeouts, 1);
	cr_assert_eq(n.word, 0);
	cr_assert_eq(also.word, 0);
}

struct waker2 {
	struct bh_ntfn *n, *also, *signal;
	uint32_t badge;
	struct bh_ntfn_stats st;
};

static void *wake2_later(void *arg)
{
	struct waker2 *w = arg;
	/* until the receiver has marked both words: it is about to sleep */
	while (!(__atomic_load_n(&w->n->word, __ATOMIC_ACQUIRE) & BH_NTFN_SLEEPING) ||
	       !(__atomic_load_n(&w->also->word, __ATOMIC_ACQUIRE) & BH_NTFN_SLEEPING))
		usleep(100);
	usleep(2000);
	bh_ntfn_signal(w->signal, w->badge, &w->st);
	return NULL;
}

static void wait2_woken_by(bool second)
{
	struct bh_ntfn n = {0}, also = {0};
	struct waker2 w = {.n = &n, .also = &also, .signal = second ? &also : &n, .badge = 4};
	struct bh_ntfn_stats st = {0};
	pthread_t t;
	pthread_create(&t, NULL, wake2_later, &w);
	uint64_t t0 = bh_now_ns();
	uint32_t got = bh_ntfn_wait2(&n, &also, WAIT2_IO, 0, 5ll * 1000 * 1000 * 1000, &st);
	uint64_t took = bh_now_ns() - t0;
	pthread_join(t, NULL);
	cr_assert_lt(took, 2ull * 1000 * 1000 * 1000, "woken (took %llu ms), not timed out",
		     (unsigned long long)(took / 1000000));
	cr_assert_eq(got, second ? WAIT2_IO : 4u);
	cr_assert_eq(w.st.wakes, 1, "the sender found the receiver asleep and woke it");
	cr_assert_geq(st.sleeps, 1);
	cr_assert_eq(st.timeouts, 0, "woken, not timed out");
	cr_assert_eq(n.word, 0, "both marks cleared");
	cr_assert_eq(also.word, 0);
}

Test(ntfn, wait2_sleeper_is_woken_by_the_first_word)
{
	cr_assert(bh_ntfn_wait2_supported(), "this kernel has no futex_waitv (Linux 5.16+)");
	wait2_woken_by(false);
}

Test(ntfn, wait2_sleeper_is_woken_by_the_second_word)
{
	cr_assert(bh_ntfn_wait2_supported(), "this kernel has no futex_waitv (Linux 5.16+)");
	wait2_woken_by(true);
}
