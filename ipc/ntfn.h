/*
 * ipc/ntfn.h - seL4-style notifications over shared memory.
 *
 * A notification is one 32-bit word in shared memory (on a cache line of
 * its own). Senders OR badge bits into it; the receiver's wait returns the
 * accumulated badges and clears them. Signals do not queue: two signals
 * with the same badge before a wait are seen once, as in seL4.
 *
 *   bits 0..30   badges (BH_NTFN_BADGES)
 *   bit  31      BH_NTFN_SLEEPING: set by the receiver, and only by it,
 *                with a compare-and-swap from 0, just before it sleeps on
 *                the word's futex
 *
 * Receiver (one thread): spins briefly reading the word; then
 * cmpxchg(0 -> SLEEPING) and futex-waits while the word is SLEEPING; then
 * exchanges the word with 0 and returns the badges. If badges arrived
 * before the cmpxchg, it fails and the receiver takes them without
 * sleeping.
 *
 * Sender (any number): cmpxchg(old -> (old | badges) & ~SLEEPING). Only
 * when the old value had SLEEPING does it make the FUTEX_WAKE system call,
 * and since its cmpxchg cleared SLEEPING, it is the only sender that does
 * for that sleep: one wake-up call per sleep, however many senders signal
 * before the receiver runs. While the receiver is awake and polling, a
 * signal costs one atomic and no system call, and when the badges are
 * already pending, not even that.
 *
 * Both read-modify-writes are full barriers, so a receiver that went to
 * sleep (its cmpxchg succeeded on 0) is seen as SLEEPING by the next
 * sender's cmpxchg, which then wakes it; futex_wait re-checks the word in
 * the kernel (it sleeps only while the word is exactly SLEEPING), so a
 * wake between the cmpxchg and the futex call is not lost: the word then
 * holds badges without SLEEPING and the wait returns at once.
 *
 * The futex is shared (not FUTEX_PRIVATE), since sender and receiver are
 * different processes mapping the same memfd.
 *
 * Trust: a hostile sender can set any bits, including SLEEPING; the worst
 * it causes is a spurious wake-up or a missed sleep. Waits take a timeout,
 * so a receiver never sleeps forever on a dead sender.
 */
#ifndef BH_IPC_NTFN_H
#define BH_IPC_NTFN_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc/order.h"

#define BH_NTFN_SLEEPING 0x80000000u
#define BH_NTFN_BADGES 0x7fffffffu

struct bh_ntfn {
	uint32_t word;
	uint32_t pad[BH_CACHE_LINE / 4 - 1];
} __attribute__((aligned(BH_CACHE_LINE)));

/* Local counters of one party (never in shared memory). */
struct bh_ntfn_stats {
	uint64_t signals;    /* bh_ntfn_signal calls */
	uint64_t suppressed; /* signals that needed no write: badges pending */
	uint64_t wakes;      /* FUTEX_WAKE system calls made */
	uint64_t waits;      /* bh_ntfn_wait calls */
	uint64_t spin_hits;  /* waits satisfied while spinning */
	uint64_t sleeps;     /* FUTEX_WAIT system calls made */
	uint64_t timeouts;   /* waits that returned 0 */
};

/* Default spin budget before sleeping, in polls of the word. */
#define BH_NTFN_SPIN_DEFAULT 2000u

/* The spin budget for a waiter of this process: $BULKHEAD_SPIN if set;
 * else 0 when the process may run on one CPU only (a waiter that spins
 * there only keeps its signaller from running); else dflt. Read once
 * and kept by the caller. */
uint32_t bh_ntfn_spin_budget(uint32_t dflt);

/* ORs badges in; wakes the receiver only if it sleeps. Returns 1 when a
 * wake-up system call was made. */
int bh_ntfn_signal(struct bh_ntfn *n, uint32_t badges, struct bh_ntfn_stats *st);

/* bh_ntfn_signal without the wake-up call: ORs badges in and returns
 * true when the receiver was marked SLEEPING, for a receiver that
 * sleeps elsewhere than on the word's futex (the caller then wakes it
 * its own way: an application waiting in poll on an eventfd,
 * domains/app_abi.h). */
bool bh_ntfn_mark(struct bh_ntfn *n, uint32_t badges, struct bh_ntfn_stats *st);

/* Takes pending badges without blocking (0 if none). */
uint32_t bh_ntfn_poll(struct bh_ntfn *n);

/* Spins up to `spin` polls, then sleeps until signalled or until
 * timeout_ns passes (timeout_ns < 0: no limit). Returns the badges, or 0 on
 * timeout. */
uint32_t bh_ntfn_wait(struct bh_ntfn *n, uint32_t spin, int64_t timeout_ns,
		      struct bh_ntfn_stats *st);

/* Waits on two notifications at once: n, and `also`, a second word whose
 * senders keep the same protocol (the other end of a shared-memory link,
 * say), so that one thread sleeps on both without a helper thread.
 * Each word gets its own SLEEPING mark, and one futex_waitv call (Linux
 * 5.16) sleeps until either is woken or timeout_ns passes. Returns n's
 * badges, with also_badge added when `also` was signalled; 0 on timeout.
 * A sender on either word keeps the one-wake-per-sleep rule of its own
 * word. Call only where bh_ntfn_wait2_supported() said yes. */
uint32_t bh_ntfn_wait2(struct bh_ntfn *n, struct bh_ntfn *also, uint32_t also_badge,
		       uint32_t spin, int64_t timeout_ns, struct bh_ntfn_stats *st);
/* True when this kernel has futex_waitv (asked once, before a seccomp
 * filter that allows it is loaded; the answer is kept). */
bool bh_ntfn_wait2_supported(void);

#endif /* BH_IPC_NTFN_H */
