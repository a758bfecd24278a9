/*
 * domains/track.h - who holds the buffers a domain forwarded but does not
 * own (a received frame ip passed on to tcp; a segment ip passed to the
 * driver). A buffer comes back only from the neighbour it went to; what
 * comes back from anyone else is refused and counted, and when a
 * neighbour dies, what it held is known (domains/recover.h takes it back).
 *
 * One byte per buffer of each tracked pool (0: not out, else the holder's
 * domain id + 1) and one 32-bit tag the domain keeps with it (a socket
 * id, say). Private memory; one thread.
 *
 * After a neighbour is replaced (domains/recover.h) a buffer may also be
 * suspect: `suspect` holds a bit per domain that may still hold it from
 * before the replacement, and what to do upstream once all have answered
 * (BH_TRACK_UP_RETURN: give it back as usual; BH_TRACK_UP_DISCLAIM: this
 * domain is the new incarnation, so disclaim it). A buffer can be out
 * (held now) and suspect (an old answer still to come) at once.
 */
#ifndef BH_DOMAINS_TRACK_H
#define BH_DOMAINS_TRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "domains/proto.h"

#define BH_TRACK_UP_RETURN 0x40u
#define BH_TRACK_UP_DISCLAIM 0x80u
#define BH_TRACK_DOMS 0x0fu

struct bh_track {
	uint8_t *holder[BH_NPOOLS];
	uint8_t *suspect[BH_NPOOLS];
	uint32_t *tag[BH_NPOOLS];
	uint32_t n[BH_NPOOLS];
	uint32_t nout[BH_NPOOLS]; /* buffers of each pool out (held by a neighbour) */
	uint64_t refused; /* returns from a domain that did not hold the buffer */
	uint64_t dup_out; /* forwards of a buffer already out (a neighbour's lie) */
};

static inline int bh_track_init(struct bh_track *t, const struct bh_pools_geom *g,
				unsigned pools_mask)
{
	for (int p = 0; p < BH_NPOOLS; p++) {
		if (!(pools_mask & (1u << p)))
			continue;
		t->n[p] = g->g[p].nbufs;
		t->nout[p] = 0;
		t->holder[p] = calloc(t->n[p], 1);
		t->tag[p] = calloc(t->n[p], sizeof(uint32_t));
		t->suspect[p] = calloc(t->n[p], 1);
		if (t->holder[p] == NULL || t->tag[p] == NULL || t->suspect[p] == NULL)
			return -1;
	}
	return 0;
}

static inline void bh_track_fini(struct bh_track *t)
{
	for (int p = 0; p < BH_NPOOLS; p++) {
		free(t->holder[p]);
		free(t->tag[p]);
		free(t->suspect[p]);
		t->holder[p] = NULL;
		t->tag[p] = NULL;
		t->suspect[p] = NULL;
	}
}

/* Records that `to` now holds (pool, buf). False (and counted) if the
 * pool is not tracked or the buffer is already out: then do not forward. */
static inline bool bh_track_out(struct bh_track *t, uint8_t pool, uint32_t buf, int to,
				uint32_t tag)
{
	if (pool >= BH_NPOOLS || t->holder[pool] == NULL || buf >= t->n[pool] ||
	    t->holder[pool][buf] != 0) {
		t->dup_out++;
		return false;
	}
	t->holder[pool][buf] = (uint8_t)(to + 1);
	t->tag[pool][buf] = tag;
	t->nout[pool]++;
	return true;
}

/* Takes (pool, buf) back from `from`; false (and counted) unless it held it. */
static inline bool bh_track_back(struct bh_track *t, uint8_t pool, uint32_t buf, int from,
				 uint32_t *tag)
{
	if (pool >= BH_NPOOLS || t->holder[pool] == NULL || buf >= t->n[pool] ||
	    t->holder[pool][buf] != (uint8_t)(from + 1)) {
		t->refused++;
		return false;
	}
	t->holder[pool][buf] = 0;
	t->nout[pool]--;
	if (tag)
		*tag = t->tag[pool][buf];
	return true;
}

/* Whether few enough of pool's buffers are out that the domain may let
 * them come back at its own pace (rt.h, lazy_give_backs): under a
 * quarter of the pool, so that all of them waiting in its free ring
 * leaves the owner three quarters. An untracked pool: true. */
static inline bool bh_track_few_out(const struct bh_track *t, uint8_t pool)
{
	return pool >= BH_NPOOLS || t->holder[pool] == NULL || t->nout[pool] < t->n[pool] / 4;
}

static inline uint32_t bh_track_held(const struct bh_track *t, int by)
{
	uint32_t n = 0;
	for (int p = 0; p < BH_NPOOLS; p++)
		for (uint32_t i = 0; t->holder[p] && i < t->n[p]; i++)
			n += t->holder[p][i] == (uint8_t)(by + 1);
	return n;
}

#endif /* BH_DOMAINS_TRACK_H */
