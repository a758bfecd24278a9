/*
 * ipc/pool.c - buffer pools and their private ownership table.
 */
#include "ipc/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bh_pool_geom_check(const struct bh_pool_geom *g)
{
	if (g->nbufs == 0 || g->nbufs > BH_POOL_MAX_BUFS)
		return -EINVAL;
	if (g->buf_size < 64 || g->buf_size > BH_POOL_MAX_BUF_SIZE || g->buf_size % 64 != 0)
		return -EINVAL;
	if (g->headroom >= g->buf_size)
		return -EINVAL;
	return 0;
}

size_t bh_pool_bytes(const struct bh_pool_geom *g)
{
	return bh_page_size() + bh_page_round((size_t)g->nbufs * g->buf_size);
}

static void pool_format(struct bh_region *r, const struct bh_pool_geom *g)
{
	struct bh_pool_meta *m =
	    (struct bh_pool_meta *)((char *)r->base + sizeof(struct bh_region_hdr));
	m->magic = BH_POOL_MAGIC;
	m->nbufs = g->nbufs;
	m->buf_size = g->buf_size;
	m->headroom = g->headroom;
	m->data_off = bh_page_size();
}

/* The owner's private table: every buffer free. */
static int pool_init_owner(struct bh_pool *p, const struct bh_pool_geom *g)
{
	p->holder = calloc(g->nbufs, sizeof(*p->holder));
	p->free_list = calloc(g->nbufs, sizeof(*p->free_list));
	if (p->holder == NULL || p->free_list == NULL) {
		free(p->holder);
		free(p->free_list);
		p->holder = NULL;
		p->free_list = NULL;
		return -ENOMEM;
	}
	p->geom = *g;
	p->data = (uint8_t *)p->region.base + bh_page_size();
	/* Lowest indices on top of the stack: allocation order is predictable. */
	for (uint32_t i = 0; i < g->nbufs; i++)
		p->free_list[i] = g->nbufs - 1 - i;
	p->nfree = g->nbufs;
	return 0;
}

int bh_pool_create(struct bh_pool *p, const char *name, const struct bh_pool_geom *g)
{
	memset(p, 0, sizeof(*p));
	p->region.fd = -1;
	int err = bh_pool_geom_check(g);
	if (err)
		return err;
	err = bh_region_create_ex(&p->region, name, BH_REGION_POOL, bh_pool_bytes(g),
				  BH_REGION_OWNER_WRITES);
	if (err)
		return err;
	pool_format(&p->region, g);
	err = pool_init_owner(p, g);
	if (err)
		bh_region_close(&p->region);
	return err;
}

int bh_pool_region_create(struct bh_region *r, const char *name, const struct bh_pool_geom *g)
{
	int err = bh_pool_geom_check(g);
	if (err)
		return err;
	err = bh_region_create_ex(r, name, BH_REGION_POOL, bh_pool_bytes(g), 0);
	if (err)
		return err;
	pool_format(r, g);
	return 0;
}

/* Checks a mapped pool region's meta against the configured geometry. */
static int pool_meta_ok(const struct bh_region *r, const struct bh_pool_geom *g)
{
	struct bh_pool_meta m;
	memcpy(&m, (const char *)r->base + sizeof(struct bh_region_hdr), sizeof(m));
	return m.magic == BH_POOL_MAGIC && m.nbufs == g->nbufs && m.buf_size == g->buf_size &&
	       m.headroom == g->headroom && m.data_off == bh_page_size() &&
	       r->size >= bh_pool_bytes(g);
}

int bh_pool_attach(struct bh_pool *p, int fd, const struct bh_pool_geom *g)
{
	memset(p, 0, sizeof(*p));
	p->region.fd = -1;
	int err = bh_pool_geom_check(g);
	if (err)
		return err;
	struct bh_region r;
	err = bh_region_attach(&r, fd, BH_REGION_POOL, BH_ACCESS_RW);
	if (err)
		return err;
	if (!pool_meta_ok(&r, g)) {
		bh_region_unmap(&r);
		return -EPROTO;
	}
	p->region = r;
	p->data = (uint8_t *)r.base + bh_page_size();
	err = pool_init_owner(p, g);
	if (err) {
		bh_region_unmap(&p->region); /* the caller keeps fd on failure */
		p->region.fd = -1;
	}
	return err;
}

void bh_pool_destroy(struct bh_pool *p)
{
	bh_region_close(&p->region);
	free(p->holder);
	free(p->free_list);
	p->holder = NULL;
	p->free_list = NULL;
	p->nfree = 0;
}

int bh_pool_alloc(struct bh_pool *p, uint32_t *buf)
{
	if (p->nfree == 0) {
		p->stats.alloc_fail++;
		return -ENOBUFS;
	}
	uint32_t b = p->free_list[--p->nfree];
	p->holder[b] = BH_HOLDER_OWNER;
	p->stats.allocs++;
	*buf = b;
	return 0;
}

int bh_pool_free(struct bh_pool *p, uint32_t buf)
{
	if (buf >= p->geom.nbufs || p->holder[buf] != BH_HOLDER_OWNER)
		return -EINVAL;
	if (p->on_free)
		p->on_free(p->on_free_ctx, buf);
	p->holder[buf] = BH_HOLDER_FREE;
	p->free_list[p->nfree++] = buf;
	return 0;
}

int bh_pool_lend(struct bh_pool *p, uint32_t buf, uint8_t peer)
{
	if (peer < BH_HOLDER_PEER_MIN || buf >= p->geom.nbufs ||
	    p->holder[buf] != BH_HOLDER_OWNER)
		return -EINVAL;
	p->holder[buf] = peer;
	p->stats.lent++;
	return 0;
}

/* Clears peer's suspicion of a suspect buffer; 0 once none remain. */
static int unsuspect(struct bh_pool *p, uint32_t buf, uint8_t peer)
{
	uint8_t left = (uint8_t)(p->holder[buf] & ~bh_holder_bit(peer) & ~BH_HOLDER_SUSPECT);
	if (left) {
		p->holder[buf] = (uint8_t)(BH_HOLDER_SUSPECT | left);
		return 1;
	}
	p->holder[buf] = BH_HOLDER_OWNER;
	p->stats.settled++;
	return 0;
}

int bh_pool_take_back(struct bh_pool *p, uint32_t buf, uint8_t peer)
{
	if (buf < p->geom.nbufs && peer >= BH_HOLDER_PEER_MIN && p->holder[buf] == peer) {
		p->holder[buf] = BH_HOLDER_OWNER;
		p->stats.returned++;
		return 0;
	}
	if (bh_pool_suspected_by(p, buf, peer)) {
		p->stats.returned++;
		return unsuspect(p, buf, peer);
	}
	p->stats.bad_return++;
	return -EINVAL;
}

int bh_pool_disclaim(struct bh_pool *p, uint32_t buf, uint8_t peer)
{
	if (!bh_pool_suspected_by(p, buf, peer)) {
		p->stats.disclaim_noop++;
		return -ENOENT;
	}
	return unsuspect(p, buf, peer);
}

uint32_t bh_pool_suspect_peer(struct bh_pool *p, uint8_t peer)
{
	uint8_t bit = bh_holder_bit(peer);
	uint32_t n = 0;
	if (bit == 0)
		return 0;
	for (uint32_t i = 0; i < p->geom.nbufs; i++) {
		/* A suspect buffer was never lent to it: nothing to add. */
		if (p->holder[i] == peer) {
			p->holder[i] = (uint8_t)(BH_HOLDER_SUSPECT | bit);
			n++;
		}
	}
	return n;
}

void bh_pool_suspect_all(struct bh_pool *p, uint8_t mask)
{
	mask &= (uint8_t)((1u << BH_HOLDER_SUSPECT_PEERS) - 1);
	/* What the new owner allocated already (in its own start-up) is
	 * its own; everything else may be anyone's. */
	p->nfree = 0;
	for (uint32_t i = p->geom.nbufs; i-- > 0;) {
		if (p->holder[i] == BH_HOLDER_OWNER)
			continue;
		p->holder[i] = mask ? (uint8_t)(BH_HOLDER_SUSPECT | mask) : BH_HOLDER_FREE;
		if (mask == 0)
			p->free_list[p->nfree++] = i;
	}
}

uint32_t bh_pool_reclaim(struct bh_pool *p, uint8_t peer)
{
	uint32_t n = 0;
	if (peer < BH_HOLDER_PEER_MIN)
		return 0;
	for (uint32_t i = 0; i < p->geom.nbufs; i++) {
		if (p->holder[i] == peer) {
			p->holder[i] = BH_HOLDER_FREE;
			p->free_list[p->nfree++] = i;
			n++;
		}
	}
	p->stats.reclaimed += n;
	return n;
}

uint32_t bh_pool_held_by(const struct bh_pool *p, uint8_t holder)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->geom.nbufs; i++)
		n += p->holder[i] == holder;
	return n;
}

int bh_pool_view_attach(struct bh_pool_view *v, int fd, const struct bh_pool_geom *g,
			enum bh_access access)
{
	memset(v, 0, sizeof(*v));
	v->region.fd = -1;
	int err = bh_pool_geom_check(g);
	if (err)
		return err;
	struct bh_region r;
	err = bh_region_attach(&r, fd, BH_REGION_POOL, access);
	if (err)
		return err;
	if (!pool_meta_ok(&r, g)) {
		/* Give the descriptor back to the caller untouched. */
		bh_region_unmap(&r);
		return -EPROTO;
	}
	v->region = r;
	v->geom = *g;
	v->data = (uint8_t *)r.base + bh_page_size();
	return 0;
}

void bh_pool_view_detach(struct bh_pool_view *v)
{
	bh_region_close(&v->region);
	v->data = NULL;
}

uint32_t bh_pool_suspects(const struct bh_pool *p)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->geom.nbufs; i++)
		n += (p->holder[i] & BH_HOLDER_SUSPECT) != 0;
	return n;
}
