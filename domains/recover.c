/*
 * domains/recover.c - buffer recovery after a neighbour is replaced.
 * The rules and why they are safe are in recover.h.
 */
#include "domains/recover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains/logger.h"
#include "domains/track.h"

static inline void bit_set(uint64_t *m, uint32_t i) { m[i >> 6] |= 1ull << (i & 63); }

static uint32_t pool_nbufs(const struct bh_env *env, int p)
{
	return env->plan->pools.g[p].nbufs;
}

int bh_recover_init(struct bh_env *env)
{
	struct bh_recover *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	env->rec = r;
	r->hold = env->rec_hold;
	for (int l = 0; l < BH_NLINKS; l++) {
		struct bh_chan *ch = env->chan[l];
		if (ch == NULL)
			continue;
		for (int p = 0; p < BH_NPOOLS; p++) {
			if (ch->rx_pools[p] == NULL)
				continue;
			size_t words = (pool_nbufs(env, p) + 63) / 64;
			r->dis[l][p] = calloc(words, sizeof(uint64_t));
			if (r->dis[l][p] == NULL)
				return -ENOMEM;
		}
	}
	return 0;
}

void bh_recover_fini(struct bh_env *env)
{
	struct bh_recover *r = env->rec;
	if (r == NULL)
		return;
	for (int l = 0; l < BH_NLINKS; l++)
		for (int p = 0; p < BH_NPOOLS; p++)
			free(r->dis[l][p]);
	free(r);
	env->rec = NULL;
}

static bool tracked(const struct bh_env *env, int p)
{
	return env->track && env->track->holder[p] != NULL;
}

/* The link on which this domain receives pool p (a forwarded pool comes
 * from one place only), or -1. */
static int upstream_link(const struct bh_env *env, int p)
{
	for (int l = 0; l < BH_NLINKS; l++)
		if (env->chan[l] && env->chan[l]->rx_pools[p])
			return l;
	return -1;
}

/* Domains (as suspect bits) this one sends pool p to. */
static uint8_t downstream(const struct bh_env *env, int p)
{
	uint8_t m = 0;
	for (int l = 0; l < BH_NLINKS; l++)
		if (env->chan[l] && env->chan[l]->tx_pools[p])
			m |= (uint8_t)(1u << bh_link_peer(l, env->dom));
	return m;
}

static void owe(struct bh_recover *r, uint64_t *m, uint32_t b)
{
	if (!(m[b >> 6] >> (b & 63) & 1u)) {
		bit_set(m, b);
		r->owed++;
	}
}

/* Disclaims, on `link`, every buffer of the pools received there that
 * this side does not hold (ledger) and is not waiting to hear about. */
static void sweep(struct bh_env *env, int link)
{
	struct bh_recover *r = env->rec;
	struct bh_chan *ch = env->chan[link];
	for (int p = 0; p < BH_NPOOLS; p++) {
		if (ch->rx_pools[p] == NULL)
			continue;
		const uint8_t *sus = tracked(env, p) ? env->track->suspect[p] : NULL;
		const uint8_t *out = tracked(env, p) ? env->track->holder[p] : NULL;
		for (uint32_t b = 0; b < pool_nbufs(env, p); b++) {
			if (bh_chan_holds(ch, (uint8_t)p, b) || (sus && sus[b]) || (out && out[b]))
				continue;
			owe(r, r->dis[link][p], b);
		}
	}
}

void bh_recover_restarted(struct bh_env *env)
{
	struct bh_recover *r = env->rec;
	uint8_t borrowers = 0, own = downstream(env, env->dom);
	for (int d = 0; d < BH_NDOMS; d++)
		if (own & (1u << d))
			borrowers |= bh_holder_bit(BH_HOLDER_DOM(d));
	bh_pool_suspect_all(&env->own, borrowers);
	r->st.suspected += borrowers ? env->own.geom.nbufs : 0;
	for (int p = 0; p < BH_NPOOLS; p++) {
		if (p == env->dom || !tracked(env, p))
			continue;
		uint8_t down = downstream(env, p);
		memset(env->track->suspect[p], down | BH_TRACK_UP_DISCLAIM, env->track->n[p]);
		r->st.suspected += env->track->n[p];
	}
	for (int l = 0; l < BH_NLINKS; l++)
		if (env->chan[l])
			sweep(env, l);
	bh_logf("new incarnation: own pool suspected by %d neighbours until they answer; "
		"%u give-backs owed",
		__builtin_popcount(borrowers), r->owed);
}

void bh_recover_peer_reset(struct bh_env *env, int link)
{
	struct bh_recover *r = env->rec;
	int peer = bh_link_peer(link, env->dom);
	uint32_t n = bh_pool_suspect_peer(&env->own, BH_HOLDER_DOM(peer));
	uint32_t f = 0;
	for (int p = 0; env->track && p < BH_NPOOLS; p++) {
		if (!tracked(env, p))
			continue;
		for (uint32_t b = 0; b < env->track->n[p]; b++) {
			if (env->track->holder[p][b] != (uint8_t)(peer + 1))
				continue;
			env->track->holder[p][b] = 0;
			env->track->nout[p]--;
			env->track->suspect[p][b] |= (uint8_t)((1u << peer) | BH_TRACK_UP_RETURN);
			f++;
		}
	}
	uint32_t before = r->owed;
	sweep(env, link);
	r->st.peer_resets++;
	r->st.suspected += n + f;
	bh_logf("link %s reset (%s replaced): %u own buffers and %u forwarded ones wait for "
		"its answer; %u disclaims owed to it",
		env->chan[link]->name, bh_dom_name(peer), n, f, r->owed - before);
}

/* Every downstream suspect answered for (pool p, buf b): upstream. */
static void settle_forwarded(struct bh_env *env, int p, uint32_t b)
{
	struct bh_recover *r = env->rec;
	uint8_t s = env->track->suspect[p][b];
	if (s & BH_TRACK_DOMS)
		return;
	env->track->suspect[p][b] = 0;
	r->st.settled++;
	int up = upstream_link(env, p);
	if (up < 0)
		return;
	if (s & BH_TRACK_UP_DISCLAIM) {
		owe(r, r->dis[up][p], b);
	} else if (s & BH_TRACK_UP_RETURN) {
		/* An ordinary return (the ledger holds it): if it does not fit,
		 * the channel owes it. */
		struct bh_desc x = {.buf = b, .pool = (uint8_t)p};
		bh_chan_give_back(env->chan[up], &x, 1);
		r->st.returned_up++;
	}
}

/* An answer from `peer` about (p, b): true if it was one (consumed). */
static bool answer(struct bh_env *env, int peer, const struct bh_desc *x)
{
	struct bh_recover *r = env->rec;
	bool disclaim = x->flags == BH_DESC_DISCLAIM;
	if (disclaim)
		r->st.disclaims_recv++;
	if (x->pool == env->dom) {
		uint8_t who = BH_HOLDER_DOM(peer);
		if (!disclaim && env->own.holder[x->buf] == who)
			return false; /* an ordinary return */
		int e = disclaim ? bh_pool_disclaim(&env->own, x->buf, who)
				 : bh_pool_suspected_by(&env->own, x->buf, who)
				       ? bh_pool_take_back(&env->own, x->buf, who)
				       : -EINVAL;
		if (e == -EINVAL)
			return false; /* the domain refuses and counts it */
		if (e == -ENOENT)
			r->st.disclaims_noop++;
		if (e == 0) {
			r->st.settled++;
			bh_pool_free(&env->own, x->buf);
		}
		return true;
	}
	if (!tracked(env, x->pool) || x->buf >= env->track->n[x->pool])
		return disclaim; /* a disclaim about nothing: dropped */
	uint8_t *s = &env->track->suspect[x->pool][x->buf];
	bool suspected = *s & (1u << peer);
	if (!disclaim && env->track->holder[x->pool][x->buf] == (uint8_t)(peer + 1))
		return false;
	if (!suspected) {
		if (disclaim)
			r->st.disclaims_noop++;
		return disclaim;
	}
	*s &= (uint8_t)~(1u << peer);
	settle_forwarded(env, x->pool, x->buf);
	return true;
}

unsigned bh_env_reclaim(struct bh_env *env, int link, struct bh_desc *x, unsigned max)
{
	unsigned n = bh_chan_reclaim(env->chan[link], x, max);
	if (env->rec == NULL)
		return n;
	int peer = bh_link_peer(link, env->dom);
	unsigned kept = 0;
	for (unsigned i = 0; i < n; i++)
		if (!answer(env, peer, &x[i]))
			x[kept++] = x[i];
	return kept;
}

/* Sends owed disclaims on one link; false once it is full. */
static bool flush_map(struct bh_env *env, int link, int p, uint64_t *m)
{
	struct bh_recover *r = env->rec;
	struct bh_desc batch[64];
	uint32_t words = (pool_nbufs(env, p) + 63) / 64;
	for (uint32_t w = 0; w < words && r->owed; w++) {
		if (m[w] == 0)
			continue;
		unsigned k = 0;
		for (uint64_t bits = m[w]; bits; bits &= bits - 1) {
			uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(bits);
			/* Held now (lent again since it was owed, or owed
			 * before a later reset while a held back disclaim
			 * waited): never disclaimed; it comes home as a
			 * return. */
			if (bh_chan_holds(env->chan[link], (uint8_t)p, b)) {
				m[w] &= ~(1ull << (b & 63));
				r->owed--;
				continue;
			}
			batch[k++] = (struct bh_desc){.buf = b, .pool = (uint8_t)p,
						      .flags = BH_DESC_DISCLAIM};
		}
		unsigned sent = bh_chan_give_back(env->chan[link], batch, k);
		for (unsigned i = 0; i < sent; i++)
			m[w] &= ~(1ull << (batch[i].buf & 63));
		r->owed -= sent;
		r->st.disclaims_sent += sent;
		if (sent < k)
			return false;
	}
	return true;
}

bool bh_recover_flush(struct bh_env *env)
{
	struct bh_recover *r = env->rec;
	if (r == NULL || r->owed == 0)
		return false;
	uint32_t before = r->owed;
	for (int l = 0; l < BH_NLINKS; l++) {
		struct bh_chan *ch = env->chan[l];
		if (ch == NULL || !ch->up)
			continue;
		for (int p = 0; p < BH_NPOOLS; p++) {
			if (r->dis[l][p] == NULL || (r->hold >> p & 1u))
				continue;
			if (!flush_map(env, l, p, r->dis[l][p]))
				break;
		}
	}
	return r->owed != before;
}

void bh_recover_hold(struct bh_env *env, int pool, bool on)
{
	struct bh_recover *r = env->rec;
	if (r == NULL)
		return;
	if (on)
		r->hold |= 1u << pool;
	else
		r->hold &= ~(1u << pool);
}

void bh_recover_publish(const struct bh_env *env, struct bh_stats_w *w)
{
	const struct bh_recover *r = env->rec;
	if (r == NULL)
		return;
	bh_stats_add(w, "recover.", "peer_resets", r->st.peer_resets);
	bh_stats_add(w, "recover.", "suspected", r->st.suspected);
	bh_stats_add(w, "recover.", "settled", r->st.settled);
	bh_stats_add(w, "recover.", "disclaims_sent", r->st.disclaims_sent);
	bh_stats_add(w, "recover.", "disclaims_recv", r->st.disclaims_recv);
	bh_stats_add(w, "recover.", "disclaims_noop", r->st.disclaims_noop);
	bh_stats_add(w, "recover.", "returned_up", r->st.returned_up);
	bh_stats_add(w, "recover.", "owed", r->owed);
	bh_stats_add(w, "recover.", "held_pools", r->hold);
}
