/*
 * domains/marks.h - the sockets a domain's pass must service: each is
 * listed once (its own `dirty` flag says it is listed) and serviced in
 * the order marked. A socket marked again while it is serviced goes in
 * the next round: bh_marks_run runs at most BH_MARK_ROUNDS rounds a pass
 * and leaves the rest for the next, so a socket that marks itself every
 * time cannot hold the loop, and the list, two rounds long (each socket
 * at most once in each), cannot overflow. Private memory; one thread.
 * (Appending to the list being walked, as sock and tcp once did, let a
 * self-marking socket write past its end.)
 */
#ifndef BH_DOMAINS_MARKS_H
#define BH_DOMAINS_MARKS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define BH_MARK_ROUNDS 4

/* The list's size for nsocks sockets. */
static inline size_t bh_marks_cap(uint32_t nsocks)
{
	return 2 * (size_t)nsocks;
}

/* Services the ids in list[0..*n): unmark(ctx, id), then service(ctx,
 * id); marks made meanwhile are appended (at most once per id a round)
 * and run in the next round. Returns whether anything ran. */
static inline bool bh_marks_run(uint32_t *list, uint32_t *n, void *ctx,
				void (*unmark)(void *ctx, uint32_t id),
				void (*service)(void *ctx, uint32_t id))
{
	bool ran = false;
	for (int round = 0; round < BH_MARK_ROUNDS && *n; round++) {
		uint32_t n0 = *n;
		for (uint32_t i = 0; i < n0; i++) {
			unmark(ctx, list[i]);
			service(ctx, list[i]);
		}
		*n -= n0;
		memmove(list, list + n0, *n * sizeof(*list));
		ran = true;
	}
	return ran;
}

#endif /* BH_DOMAINS_MARKS_H */
