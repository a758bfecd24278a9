/*
 * domains/stats.c - the stats region: writer and checked reader.
 */
#include "domains/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/order.h"

#define HDR_OFF 64u

static size_t conns_off(void)
{
	return bh_page_size() + (size_t)BH_STATS_MAX_CTRS * sizeof(struct bh_stat_ctr);
}

size_t bh_stats_region_bytes(uint32_t max_conns)
{
	return conns_off() + (size_t)max_conns * sizeof(struct bh_stat_conn);
}

void bh_stats_format(struct bh_region *r, uint32_t max_conns)
{
	struct bh_stats_hdr *h = (struct bh_stats_hdr *)((char *)r->base + HDR_OFF);
	h->magic = BH_STATS_MAGIC;
	h->max_conns = max_conns;
}

int bh_stats_writer(struct bh_stats_w *w, struct bh_region *r)
{
	memset(w, 0, sizeof(*w));
	struct bh_stats_hdr *h = bh_region_at(r, HDR_OFF, sizeof(*h));
	if (h == NULL || h->magic != BH_STATS_MAGIC)
		return -EPROTO;
	uint32_t mc = h->max_conns;
	if (r->size < bh_stats_region_bytes(mc))
		return -EPROTO;
	w->h = h;
	w->max_conns = mc;
	w->ctr = (struct bh_stat_ctr *)((char *)r->base + bh_page_size());
	w->conn = (struct bh_stat_conn *)((char *)r->base + conns_off());
	h->pid = (uint32_t)getpid();
	return 0;
}

void bh_stats_begin(struct bh_stats_w *w)
{
	/* Odd: readers retry. The barrier orders this store before the
	 * updates below (pairs with the reader's second read of seq). */
	bh_store_relaxed32(&w->h->seq, w->h->seq + 1);
	bh_full_barrier();
	w->nc = 0;
	w->nconn = 0;
}

void bh_stats_add(struct bh_stats_w *w, const char *prefix, const char *name, uint64_t v)
{
	if (w->nc >= BH_STATS_MAX_CTRS)
		return;
	struct bh_stat_ctr *c = &w->ctr[w->nc++];
	snprintf(c->name, sizeof(c->name), "%s%s", prefix, name);
	c->value = v;
}

struct bh_stat_conn *bh_stats_conn(struct bh_stats_w *w)
{
	if (w->nconn >= w->max_conns)
		return NULL;
	struct bh_stat_conn *c = &w->conn[w->nconn++];
	memset(c, 0, sizeof(*c));
	return c;
}

void bh_stats_end(struct bh_stats_w *w, uint64_t now_ns)
{
	w->h->ncounters = w->nc;
	w->h->nconns = w->nconn;
	w->h->updated_ns = now_ns;
	/* Release: everything above is visible before seq turns even. */
	bh_store_release32(&w->h->seq, w->h->seq + 1);
}

void bh_stats_beat(struct bh_stats_w *w)
{
	bh_store_relaxed64(&w->h->heartbeat, w->h->heartbeat + 1);
}

void bh_stats_ready(struct bh_stats_w *w)
{
	bh_store_release32(&w->h->ready, 1);
}

uint64_t bh_stats_heartbeat(const struct bh_region *r)
{
	const struct bh_stats_hdr *h = bh_region_at(r, HDR_OFF, sizeof(*h));
	return h ? bh_load_relaxed64(&h->heartbeat) : 0;
}

void bh_stats_snap_free(struct bh_stats_snap *s)
{
	free(s->ctr);
	free(s->conn);
	s->ctr = NULL;
	s->conn = NULL;
}

int bh_stats_read(const struct bh_region *r, uint32_t max_conns, struct bh_stats_snap *out)
{
	memset(out, 0, sizeof(*out));
	const struct bh_stats_hdr *h = bh_region_at(r, HDR_OFF, sizeof(*h));
	if (h == NULL || r->size < bh_stats_region_bytes(max_conns))
		return -EPROTO;
	const struct bh_stat_ctr *ctr = (const void *)((const char *)r->base + bh_page_size());
	const struct bh_stat_conn *conn = (const void *)((const char *)r->base + conns_off());
	out->ctr = calloc(BH_STATS_MAX_CTRS, sizeof(*out->ctr));
	out->conn = calloc(max_conns ? max_conns : 1, sizeof(*out->conn));
	if (out->ctr == NULL || out->conn == NULL) {
		bh_stats_snap_free(out);
		return -ENOMEM;
	}
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t s1 = bh_load_acquire32(&h->seq);
		if (s1 & 1) {
			usleep(100);
			continue;
		}
		memcpy(&out->h, h, sizeof(out->h));
		uint32_t nc = out->h.ncounters < BH_STATS_MAX_CTRS ? out->h.ncounters
								    : BH_STATS_MAX_CTRS;
		uint32_t nconn = out->h.nconns < max_conns ? out->h.nconns : max_conns;
		memcpy(out->ctr, ctr, nc * sizeof(*ctr));
		memcpy(out->conn, conn, nconn * sizeof(*conn));
		bh_full_barrier();
		if (bh_load_relaxed32(&h->seq) != s1)
			continue;
		if (out->h.magic != BH_STATS_MAGIC) {
			bh_stats_snap_free(out);
			return -EPROTO;
		}
		out->h.ncounters = nc;
		out->h.nconns = nconn;
		for (uint32_t i = 0; i < nc; i++)
			out->ctr[i].name[sizeof(out->ctr[i].name) - 1] = '\0';
		for (uint32_t i = 0; i < nconn; i++)
			out->conn[i].cc[sizeof(out->conn[i].cc) - 1] = '\0';
		return 0;
	}
	bh_stats_snap_free(out);
	return -EAGAIN;
}
