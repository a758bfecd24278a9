/*
 * domains/waitlist.h - sockets waiting for a shared resource (a buffer
 * pool, room on a link, a memory bound) that no event of their own may
 * ever bring back: each is listed once, by id, and all are serviced again
 * when some of the resource comes back (bh_wl_drain). A socket serviced
 * for nothing simply waits again. Private memory; one thread.
 *
 * The rule it keeps: a socket that stops for want of something shared
 * must be listed, or it may never run again (its own events, such as its
 * buffers coming home, may all have happened already).
 */
#ifndef BH_DOMAINS_WAITLIST_H
#define BH_DOMAINS_WAITLIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct bh_wl {
	uint32_t *ids;
	uint8_t *on; /* by id: listed */
	uint32_t n, cap;
};

static inline int bh_wl_init(struct bh_wl *w, uint32_t cap)
{
	w->ids = calloc(cap ? cap : 1, sizeof(*w->ids));
	w->on = calloc(cap ? cap : 1, sizeof(*w->on));
	w->n = 0;
	w->cap = cap;
	return w->ids == NULL || w->on == NULL ? -1 : 0;
}

static inline void bh_wl_fini(struct bh_wl *w)
{
	free(w->ids);
	free(w->on);
	w->ids = NULL;
	w->on = NULL;
	w->n = 0;
}

/* Lists id (once; ids at or above cap are ignored). */
static inline void bh_wl_add(struct bh_wl *w, uint32_t id)
{
	if (id < w->cap && !w->on[id]) {
		w->on[id] = 1;
		w->ids[w->n++] = id;
	}
}

/* Empties the list, calling wake(ctx, id) for each id in the order
 * listed. wake only marks the socket for service and must not list ids
 * itself: the service, later, lists again those that still wait. */
static inline void bh_wl_drain(struct bh_wl *w, void (*wake)(void *ctx, uint32_t id), void *ctx)
{
	for (uint32_t i = 0; i < w->n; i++) {
		w->on[w->ids[i]] = 0;
		wake(ctx, w->ids[i]);
	}
	w->n = 0;
}

#endif
