/*
 * ipc/order.h - the one place Bulkhead chooses memory barriers.
 *
 * Every shared-memory protocol in ipc/ publishes data with a release store
 * and observes it with an acquire load of the same word. These helpers name
 * that pairing so each call site can say which release its acquire pairs
 * with. They are built from liburcu's primitives (CMM_LOAD_SHARED,
 * CMM_STORE_SHARED, cmm barriers, uatomic read-modify-writes):
 *
 *  - On x86 (TSO) loads are not reordered with older loads, and stores are
 *    not reordered with older loads or stores, so acquire and release need
 *    only stop the compiler: cmm_barrier().
 *  - On weakly ordered CPUs a release must order older loads and stores
 *    before the store, and an acquire must order the load before younger
 *    loads and stores; cmm_smp_mb() is the liburcu barrier that does both.
 *  - Under ThreadSanitizer the same operations are expressed with the
 *    compiler's __atomic builtins, because TSan does not model inline-asm
 *    fences and would otherwise report every ring slot as a race. The
 *    orderings are identical; only the spelling changes.
 *
 * Read-modify-writes (bh_cmpxchg32, bh_xchg32) are full barriers on every
 * architecture (liburcu's uatomic guarantees this for value-returning
 * operations), which the Dekker-style "store my flag, then load yours"
 * handshakes in ring.h and ntfn.c rely on together with bh_full_barrier().
 */
#ifndef BH_IPC_ORDER_H
#define BH_IPC_ORDER_H

#include <stdint.h>
#include <urcu/arch.h>
#include <urcu/compiler.h>
#include <urcu/system.h>
#include <urcu/uatomic.h>

#if defined(__SANITIZE_THREAD__)
#define BH_ORDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BH_ORDER_TSAN 1
#endif
#endif

#if defined(__x86_64__) || defined(__i386__)
#define BH_ACQUIRE_FENCE() cmm_barrier()
#define BH_RELEASE_FENCE() cmm_barrier()
#else
#define BH_ACQUIRE_FENCE() cmm_smp_mb()
#define BH_RELEASE_FENCE() cmm_smp_mb()
#endif

#define BH_CACHE_LINE 64

/* Load that later loads and stores cannot move above. Pairs with a
 * bh_store_release32() of the same word by the other party. */
static inline uint32_t bh_load_acquire32(const uint32_t *p)
{
#ifdef BH_ORDER_TSAN
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#else
	uint32_t v = CMM_LOAD_SHARED(*p);
	BH_ACQUIRE_FENCE();
	return v;
#endif
}

/* Store that earlier loads and stores cannot move below: everything this
 * party wrote before is visible to whoever acquires the new value. */
static inline void bh_store_release32(uint32_t *p, uint32_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
#else
	BH_RELEASE_FENCE();
	CMM_STORE_SHARED(*p, v);
#endif
}

/* Single-copy-atomic load and store with no ordering: for a party's own
 * words and for values that are validated before use. */
static inline uint32_t bh_load_relaxed32(const uint32_t *p)
{
#ifdef BH_ORDER_TSAN
	return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
	return CMM_LOAD_SHARED(*p);
#endif
}

static inline void bh_store_relaxed32(uint32_t *p, uint32_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
#else
	CMM_STORE_SHARED(*p, v);
#endif
}

static inline uint64_t bh_load_relaxed64(const uint64_t *p)
{
#ifdef BH_ORDER_TSAN
	return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
	return CMM_LOAD_SHARED(*p);
#endif
}

static inline void bh_store_relaxed64(uint64_t *p, uint64_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
#else
	CMM_STORE_SHARED(*p, v);
#endif
}

/* Orders every earlier load and store before every later one (a store
 * followed by a load of another word, in particular). */
#ifdef BH_ORDER_TSAN
/* gcc's TSan does not support fences: every "fence" is instead a
 * sequentially consistent read-modify-write of one shared word, which is a
 * full barrier on the hardware and, being totally ordered, gives TSan the
 * same happens-before edges. Defined in region.c. */
extern uint32_t bh_order_tsan_word;
#endif

static inline void bh_full_barrier(void)
{
#ifdef BH_ORDER_TSAN
	__atomic_fetch_add(&bh_order_tsan_word, 0, __ATOMIC_SEQ_CST);
#else
	cmm_smp_mb();
#endif
}

/* Compare-and-swap; returns the value found. Full barrier. */
static inline uint32_t bh_cmpxchg32(uint32_t *p, uint32_t expect, uint32_t desired)
{
#ifdef BH_ORDER_TSAN
	__atomic_compare_exchange_n(p, &expect, desired, 0, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
	return expect;
#else
	return uatomic_cmpxchg(p, expect, desired);
#endif
}

/* Exchange; returns the old value. Full barrier. */
static inline uint32_t bh_xchg32(uint32_t *p, uint32_t v)
{
#ifdef BH_ORDER_TSAN
	return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
#else
	return uatomic_xchg(p, v);
#endif
}

/* Atomic OR and AND of a word shared with another process; each is a
 * full barrier (the Dekker-style "set my flag, then read your state"
 * needs no separate bh_full_barrier()). liburcu's uatomic_or/and imply
 * no barrier: the cmm_smp_mb__{before,after}_uatomic_* calls add it. */
static inline void bh_or32(uint32_t *p, uint32_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
#else
	cmm_smp_mb__before_uatomic_or();
	uatomic_or(p, v);
	cmm_smp_mb__after_uatomic_or();
#endif
}

static inline void bh_or64(uint64_t *p, uint64_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
#else
	cmm_smp_mb__before_uatomic_or();
	uatomic_or(p, v);
	cmm_smp_mb__after_uatomic_or();
#endif
}

static inline void bh_and64(uint64_t *p, uint64_t v)
{
#ifdef BH_ORDER_TSAN
	__atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
#else
	cmm_smp_mb__before_uatomic_and();
	uatomic_and(p, v);
	cmm_smp_mb__after_uatomic_and();
#endif
}

static inline void bh_cpu_relax(void)
{
	caa_cpu_relax();
}

#endif /* BH_IPC_ORDER_H */
