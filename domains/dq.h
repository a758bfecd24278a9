/*
 * domains/dq.h - FIFO queues of descriptors sharing one node pool: a
 * domain keeps one queue per socket (data waiting for room) without a
 * ring per socket. Private memory; one thread.
 */
#ifndef BH_DOMAINS_DQ_H
#define BH_DOMAINS_DQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "ipc/desc.h"

#define BH_DQ_NIL UINT32_MAX

struct bh_dq_nodes {
	struct bh_desc *d;
	uint32_t *next;
	uint32_t free_head;
	uint32_t cap, used;
};

struct bh_dq {
	uint32_t head, tail;
	uint32_t n;
	uint64_t bytes; /* sum of len */
};

static inline int bh_dq_nodes_init(struct bh_dq_nodes *p, uint32_t cap)
{
	p->d = calloc(cap, sizeof(*p->d));
	p->next = calloc(cap, sizeof(*p->next));
	if (p->d == NULL || p->next == NULL)
		return -1;
	for (uint32_t i = 0; i < cap; i++)
		p->next[i] = i + 1 < cap ? i + 1 : BH_DQ_NIL;
	p->free_head = cap ? 0 : BH_DQ_NIL;
	p->cap = cap;
	p->used = 0;
	return 0;
}

static inline void bh_dq_nodes_fini(struct bh_dq_nodes *p)
{
	free(p->d);
	free(p->next);
	p->d = NULL;
	p->next = NULL;
}

static inline void bh_dq_init(struct bh_dq *q)
{
	q->head = q->tail = BH_DQ_NIL;
	q->n = 0;
	q->bytes = 0;
}

static inline bool bh_dq_push(struct bh_dq_nodes *p, struct bh_dq *q, const struct bh_desc *d)
{
	uint32_t i = p->free_head;
	if (i == BH_DQ_NIL)
		return false;
	p->free_head = p->next[i];
	p->used++;
	p->d[i] = *d;
	p->next[i] = BH_DQ_NIL;
	if (q->tail == BH_DQ_NIL)
		q->head = i;
	else
		p->next[q->tail] = i;
	q->tail = i;
	q->n++;
	q->bytes += d->len;
	return true;
}

static inline struct bh_desc *bh_dq_peek(struct bh_dq_nodes *p, struct bh_dq *q)
{
	return q->head == BH_DQ_NIL ? NULL : &p->d[q->head];
}

static inline bool bh_dq_pop(struct bh_dq_nodes *p, struct bh_dq *q, struct bh_desc *out)
{
	uint32_t i = q->head;
	if (i == BH_DQ_NIL)
		return false;
	if (out)
		*out = p->d[i];
	q->bytes -= p->d[i].len;
	q->head = p->next[i];
	if (q->head == BH_DQ_NIL)
		q->tail = BH_DQ_NIL;
	q->n--;
	p->next[i] = p->free_head;
	p->free_head = i;
	p->used--;
	return true;
}

#endif /* BH_DOMAINS_DQ_H */
