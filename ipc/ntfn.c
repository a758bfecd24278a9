/*
 * ipc/ntfn.c - notifications: badge words with suppressed futex wake-ups.
 * The protocol and its ordering argument are in ntfn.h.
 */
#include "ipc/ntfn.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <urcu/futex.h>

#include "ipc/clock.h"

uint32_t bh_ntfn_spin_budget(uint32_t dflt)
{
	const char *e = getenv("BULKHEAD_SPIN");
	if (e && *e)
		return (uint32_t)strtoul(e, NULL, 10);
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) <= 1)
		return 0;
	return dflt;
}

bool bh_ntfn_mark(struct bh_ntfn *n, uint32_t badges, struct bh_ntfn_stats *st)
{
	badges &= BH_NTFN_BADGES;
	if (st)
		st->signals++;
	uint32_t old = bh_load_relaxed32(&n->word);
	for (;;) {
		if ((old & badges) == badges && !(old & BH_NTFN_SLEEPING)) {
			/* Already pending and the receiver is awake: it will
			 * take them with its next poll or wait. */
			if (st)
				st->suppressed++;
			return false;
		}
		/* The one sender that finds SLEEPING clears it as it sets
		 * its badges: it alone makes the wake-up call, and the
		 * senders after it, before the receiver runs, make none. */
		uint32_t seen = bh_cmpxchg32(&n->word, old, (old | badges) & ~BH_NTFN_SLEEPING);
		if (seen == old)
			break;
		old = seen;
	}
	return (old & BH_NTFN_SLEEPING) != 0;
}

int bh_ntfn_signal(struct bh_ntfn *n, uint32_t badges, struct bh_ntfn_stats *st)
{
	if (!bh_ntfn_mark(n, badges, st))
		return 0;
	futex_async((int32_t *)&n->word, FUTEX_WAKE, 1, NULL, NULL, 0);
	if (st)
		st->wakes++;
	return 1;
}

uint32_t bh_ntfn_poll(struct bh_ntfn *n)
{
	if ((bh_load_relaxed32(&n->word) & BH_NTFN_BADGES) == 0)
		return 0;
	return bh_xchg32(&n->word, 0) & BH_NTFN_BADGES;
}

/* The start of every wait: up to `spin` polls of n (and of also, whose
 * signal reads as also_badge, when not NULL). The badges, or 0. */
static uint32_t spin_first(struct bh_ntfn *n, struct bh_ntfn *also, uint32_t also_badge,
			   uint32_t spin, struct bh_ntfn_stats *st)
{
	if (st)
		st->waits++;
	for (uint32_t i = 0; i < spin; i++) {
		uint32_t b = bh_ntfn_poll(n) | (also && bh_ntfn_poll(also) ? also_badge : 0);
		if (b) {
			if (st)
				st->spin_hits++;
			return b;
		}
		bh_cpu_relax();
	}
	return 0;
}

uint32_t bh_ntfn_wait(struct bh_ntfn *n, uint32_t spin, int64_t timeout_ns,
		      struct bh_ntfn_stats *st)
{
	uint32_t got = spin_first(n, NULL, 0, spin, st);
	if (got)
		return got;
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : bh_now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		uint32_t old = bh_cmpxchg32(&n->word, 0, BH_NTFN_SLEEPING);
		if (old != 0 && old != BH_NTFN_SLEEPING) {
			uint32_t b = bh_xchg32(&n->word, 0) & BH_NTFN_BADGES;
			if (b)
				return b;
			continue;
		}
		struct timespec ts, *tsp = NULL;
		if (deadline != UINT64_MAX) {
			uint64_t now = bh_now_ns();
			if (now >= deadline) {
				/* Clear our SLEEPING flag, keeping any badge
				 * that raced in. */
				uint32_t b = bh_xchg32(&n->word, 0) & BH_NTFN_BADGES;
				if (!b && st)
					st->timeouts++;
				return b;
			}
			uint64_t left = deadline - now;
			ts.tv_sec = (time_t)(left / 1000000000u);
			ts.tv_nsec = (long)(left % 1000000000u);
			tsp = &ts;
		}
		if (st)
			st->sleeps++;
		/* Sleeps only while the word still reads SLEEPING. */
		futex_async((int32_t *)&n->word, FUTEX_WAIT, (int32_t)BH_NTFN_SLEEPING, tsp, NULL,
			    0);
		uint32_t b = bh_xchg32(&n->word, 0) & BH_NTFN_BADGES;
		if (b)
			return b;
	}
}

/* ------------------------------------------------------------------ */
/* two words at once                                                    */
/* ------------------------------------------------------------------ */

#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif

/* Sleeps while both words read SLEEPING, until deadline (CLOCK_MONOTONIC
 * ns; UINT64_MAX: none). Shared futexes: the words are in memory other
 * processes map. */
static long futex_waitv2(struct bh_ntfn *a, struct bh_ntfn *b, uint64_t deadline)
{
	struct futex_waitv w[2] = {
	    {.val = BH_NTFN_SLEEPING, .uaddr = (uintptr_t)&a->word, .flags = FUTEX_32},
	    {.val = BH_NTFN_SLEEPING, .uaddr = (uintptr_t)&b->word, .flags = FUTEX_32},
	};
	struct timespec ts, *tsp = NULL;
	if (deadline != UINT64_MAX) {
		ts.tv_sec = (time_t)(deadline / 1000000000u);
		ts.tv_nsec = (long)(deadline % 1000000000u);
		tsp = &ts;
	}
	return syscall(__NR_futex_waitv, w, 2u, 0u, tsp, CLOCK_MONOTONIC);
}

bool bh_ntfn_wait2_supported(void)
{
	static int known; /* 0 not asked, 1 yes, 2 no */
	if (known == 0) {
		/* Neither word reads SLEEPING: a kernel with the call says
		 * EAGAIN at once. */
		struct bh_ntfn a = {.word = 0}, b = {.word = 0};
		long r = futex_waitv2(&a, &b, 0);
		known = r < 0 && errno == EAGAIN ? 1 : 2;
	}
	return known == 1;
}

/* Takes both words' badges, clearing the SLEEPING marks. */
static uint32_t take2(struct bh_ntfn *n, struct bh_ntfn *also, uint32_t also_badge)
{
	uint32_t b = bh_xchg32(&n->word, 0) & BH_NTFN_BADGES;
	if (bh_xchg32(&also->word, 0) & BH_NTFN_BADGES)
		b |= also_badge;
	return b;
}

uint32_t bh_ntfn_wait2(struct bh_ntfn *n, struct bh_ntfn *also, uint32_t also_badge,
		       uint32_t spin, int64_t timeout_ns, struct bh_ntfn_stats *st)
{
	uint32_t got = spin_first(n, also, also_badge, spin, st);
	if (got)
		return got;
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : bh_now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		/* Each mark as in bh_ntfn_wait: a word that already holds
		 * badges means no sleep. The second word is marked after the
		 * first; a badge on the first in between is found by the
		 * futex's own re-check of its word. */
		uint32_t old = bh_cmpxchg32(&n->word, 0, BH_NTFN_SLEEPING);
		uint32_t olda = BH_NTFN_SLEEPING;
		if (old == 0 || old == BH_NTFN_SLEEPING)
			olda = bh_cmpxchg32(&also->word, 0, BH_NTFN_SLEEPING);
		if ((old != 0 && old != BH_NTFN_SLEEPING) || (olda != 0 && olda != BH_NTFN_SLEEPING)) {
			uint32_t b = take2(n, also, also_badge);
			if (b)
				return b;
			continue;
		}
		if (deadline != UINT64_MAX && bh_now_ns() >= deadline) {
			uint32_t b = take2(n, also, also_badge);
			if (!b && st)
				st->timeouts++;
			return b;
		}
		if (st)
			st->sleeps++;
		/* Sleeps only while both words still read SLEEPING. */
		futex_waitv2(n, also, deadline);
		uint32_t b = take2(n, also, also_badge);
		if (b)
			return b;
	}
}
