/*
 * tcp/seq.h - sequence-number arithmetic (RFC 9293 3.4), the only way the
 * TCP library compares or moves sequence numbers.
 *
 * Sequence space is modulo 2^32. a < b means b is ahead of a by less
 * than 2^31; the comparisons are meaningless for numbers 2^31 or more
 * apart, which the window rules keep from happening. A bare < on two
 * sequence numbers is a bug: use these (lwIP TCP_SEQ_LT, smoltcp
 * SeqNumber).
 */
#ifndef BH_TCP_SEQ_H
#define BH_TCP_SEQ_H

#include <stdbool.h>
#include <stdint.h>

typedef uint32_t bh_seq;

static inline int32_t bh_seq_diff(bh_seq a, bh_seq b) { return (int32_t)(a - b); }
static inline bool bh_seq_lt(bh_seq a, bh_seq b) { return bh_seq_diff(a, b) < 0; }
static inline bool bh_seq_leq(bh_seq a, bh_seq b) { return bh_seq_diff(a, b) <= 0; }
static inline bool bh_seq_gt(bh_seq a, bh_seq b) { return bh_seq_diff(a, b) > 0; }
static inline bool bh_seq_geq(bh_seq a, bh_seq b) { return bh_seq_diff(a, b) >= 0; }
static inline bh_seq bh_seq_add(bh_seq a, uint32_t n) { return a + n; }
static inline bh_seq bh_seq_max(bh_seq a, bh_seq b) { return bh_seq_gt(a, b) ? a : b; }
static inline bh_seq bh_seq_min(bh_seq a, bh_seq b) { return bh_seq_lt(a, b) ? a : b; }

/* lo <= s < hi, the half-open window test of RFC 9293 3.10.7.4. */
static inline bool bh_seq_in(bh_seq s, bh_seq lo, bh_seq hi)
{
	return bh_seq_leq(lo, s) && bh_seq_lt(s, hi);
}

/* Bytes from a to b, for b at or ahead of a. */
static inline uint32_t bh_seq_span(bh_seq a, bh_seq b) { return b - a; }

#endif /* BH_TCP_SEQ_H */
