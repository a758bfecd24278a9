/*
 * domains/plan.c - the instance's configuration, its regions, and
 * attaching a domain (or all four, monolithic) to them. See plan.h.
 */
#include "domains/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "domains/stats.h"

static const char *const dom_names[BH_NDOMS] = {"driver", "ip", "tcp", "sock"};
static const char *const pool_names[BH_NPOOLS] = {"rx", "ip", "seg", "sock"};
static const char *const link_names[BH_NLINKS] = {"driver-ip", "ip-tcp", "tcp-sock",
						   "ip-sock"};

const char *bh_dom_name(int dom)
{
	return dom >= 0 && dom < BH_NDOMS ? dom_names[dom] : "?";
}

const char *bh_pool_name(int pool)
{
	return pool >= 0 && pool < BH_NPOOLS ? pool_names[pool] : "?";
}

/* Which domains each link joins: side 0, side 1. */
static const int link_ends[BH_NLINKS][2] = {
    [BH_LINK_DI] = {BH_DOM_DRIVER, BH_DOM_IP},
    [BH_LINK_IT] = {BH_DOM_IP, BH_DOM_TCP},
    [BH_LINK_TS] = {BH_DOM_TCP, BH_DOM_SOCK},
    [BH_LINK_IS] = {BH_DOM_IP, BH_DOM_SOCK},
};

/* Pools that travel on each link from side 0 to side 1, and back. */
#define P(x) (1u << (x))
static const unsigned link_pools[BH_NLINKS][2] = {
    [BH_LINK_DI] = {P(BH_POOL_RX), P(BH_POOL_IP) | P(BH_POOL_SEG)},
    [BH_LINK_IT] = {P(BH_POOL_RX) | P(BH_POOL_IP), P(BH_POOL_SEG)},
    [BH_LINK_TS] = {P(BH_POOL_RX) | P(BH_POOL_SEG), P(BH_POOL_SOCK)},
    [BH_LINK_IS] = {P(BH_POOL_RX) | P(BH_POOL_IP), P(BH_POOL_SOCK)},
};

/* Pools each domain reads (besides its own, which it writes). */
static const unsigned dom_reads[BH_NDOMS] = {
    [BH_DOM_DRIVER] = P(BH_POOL_IP) | P(BH_POOL_SEG),
    [BH_DOM_IP] = P(BH_POOL_RX) | P(BH_POOL_SOCK),
    [BH_DOM_TCP] = P(BH_POOL_RX) | P(BH_POOL_IP) | P(BH_POOL_SOCK),
    [BH_DOM_SOCK] = P(BH_POOL_RX) | P(BH_POOL_IP) | P(BH_POOL_SEG),
};
/* Where tcp sends chains (bh_plan_send_chain), the driver reads the
 * payload they name where it lies: in SOCK buffers. */
static unsigned reads_of(const struct bh_plan *p, int dom)
{
	unsigned r = dom_reads[dom];
	if (dom == BH_DOM_DRIVER && p != NULL && bh_plan_send_chain(p))
		r |= 1u << BH_POOL_SOCK;
	return r;
}
/* ... and pools it writes that it does not own: ip writes headers into
 * TCP's segments. */
static const unsigned dom_writes[BH_NDOMS] = {
    [BH_DOM_IP] = P(BH_POOL_SEG),
};
#undef P

bool bh_dom_on_link(int dom, int link, int *side)
{
	for (int s = 0; s < 2; s++) {
		if (link_ends[link][s] == dom) {
			if (side)
				*side = s;
			return true;
		}
	}
	return false;
}

int bh_link_peer(int link, int dom)
{
	return link_ends[link][0] == dom ? link_ends[link][1] : link_ends[link][0];
}

static bool neighbours(int a, int b)
{
	if (a == b)
		return true;
	for (int l = 0; l < BH_NLINKS; l++)
		if ((link_ends[l][0] == a && link_ends[l][1] == b) ||
		    (link_ends[l][0] == b && link_ends[l][1] == a))
			return true;
	return false;
}

static uint32_t round64(uint32_t n)
{
	return (n + 63u) & ~63u;
}

void bh_plan_defaults(struct bh_plan *p)
{
	if (p->magic == 0) {
		p->magic = BH_PLAN_MAGIC;
		p->version = BH_PLAN_VERSION;
	}
	if (p->mtu == 0)
		p->mtu = 1500;
	uint32_t frame = (uint32_t)p->mtu + 14u;
	uint32_t size = round64(frame + 128u);
	if (size < 2048)
		size = 2048;
	/* RX and SOCK hold the receive and send windows of every
	 * connection (tcp_buf each way): eight full 1 MiB windows at once. */
	const uint32_t nbufs[BH_NPOOLS] = {8192, 1024, 4096, 8192};
	const uint32_t headroom[BH_NPOOLS] = {64, 64, 128, 64};
	for (int i = 0; i < BH_NPOOLS; i++) {
		struct bh_pool_geom *g = &p->pools.g[i];
		if (g->nbufs == 0)
			g->nbufs = nbufs[i];
		if (g->buf_size == 0)
			g->buf_size = size;
		if (g->headroom == 0)
			g->headroom = headroom[i];
	}
	/* SEG buffers for large frames (plan.h), where the link can carry
	 * them and the buffers stay within 1 GiB of (sparse) pool: only
	 * the buffers in flight are ever touched. */
	struct bh_pool_geom *seg = &p->pools.g[BH_POOL_SEG];
	bool large_link = bh_plan_plain_wire(p) || bh_plan_plain_tap(p);
	if (large_link && seg->buf_size == size && (uint64_t)seg->nbufs * BH_LARGE_SEG_BUF <= (1ull << 30))
		seg->buf_size = BH_LARGE_SEG_BUF;
	/* RX buffers of 16 KiB there too (the other end of a wire:, or
	 * Linux behind a TAP, sends large frames back): a large frame comes in a chain of
	 * five rather than 34, fewer descriptors at every hop up. Only
	 * where this end sends large frames too (a peer set up alike sends
	 * them back): under --max-conns, whose SEG buffers stay small, the
	 * frames that come are of MTU size, and a 1514-byte frame in a
	 * 16 KiB buffer pins eleven times its payload, which the receive
	 * window must then leave unused (tcp/tcp_out.c, the window). */
	struct bh_pool_geom *rx = &p->pools.g[BH_POOL_RX];
	if (large_link && seg->buf_size >= BH_LARGE_SEG_BUF && rx->buf_size == size &&
	    (uint64_t)rx->nbufs * BH_LARGE_RX_BUF <= (1ull << 30))
		rx->buf_size = BH_LARGE_RX_BUF;
	/* SOCK buffers of 16 KiB where the segments are large: a stream
	 * goes to tcp in an eighth of the descriptors (docs/PERFORMANCE.md).
	 * Not for the many small sockets of --max-conns (whose SEG buffers
	 * stay small): tcp bounds the memory its queues hold by buffer
	 * size, and a 64-byte write would hold 16 KiB. */
	struct bh_pool_geom *sk = &p->pools.g[BH_POOL_SOCK];
	if (large_link && seg->buf_size == BH_LARGE_SEG_BUF && sk->buf_size == size &&
	    (uint64_t)sk->nbufs * BH_LARGE_SOCK_BUF <= (1ull << 30))
		sk->buf_size = BH_LARGE_SOCK_BUF;
	if (p->link_cap == 0)
		p->link_cap = 4096;
	if (p->max_socks == 0)
		p->max_socks = 4096;
	if (p->app_max_socks == 0)
		p->app_max_socks = 1024;
	/* 512 KiB per socket each way: an application's wake-up moves up
	 * to that much (docs/PERFORMANCE.md: 128 KiB bounded a bulk
	 * transfer's batches to two large segments). */
	if (p->app_ring == 0)
		p->app_ring = 512 * 1024;
	/* Region bytes (sparse: only what the rings carried is touched):
	 * room for every socket's rings at the default sizes. */
	if (p->app_max_mem == 0)
		p->app_max_mem = 1ull << 30;
	if (p->max_apps == 0)
		p->max_apps = 64;
	/* The window each way (docs/PERFORMANCE.md: 1 MiB lets a bulk
	 * transfer move in larger batches than 256 KiB did; with large
	 * frames, 4 MiB is 64 segments in flight rather than 16). */
	if (p->tcp_buf == 0)
		p->tcp_buf = bh_plan_large_frames(p) ? 4u << 20 : 1u << 20;
}

const char *bh_plan_check(const struct bh_plan *p)
{
	if (p->magic != BH_PLAN_MAGIC || p->version != BH_PLAN_VERSION)
		return "not a plan of this version";
	if (p->name[0] == '\0' || memchr(p->name, 0, sizeof(p->name)) == NULL ||
	    memchr(p->dir, 0, sizeof(p->dir)) == NULL ||
	    memchr(p->driver, 0, sizeof(p->driver)) == NULL ||
	    memchr(p->capture, 0, sizeof(p->capture)) == NULL ||
	    memchr(p->impair, 0, sizeof(p->impair)) == NULL)
		return "unterminated string";
	if (p->mode != BH_MODE_FACTORED && p->mode != BH_MODE_MONO)
		return "unknown mode";
	if (p->flags & ~BH_PLAN_NO_CHAIN)
		return "unknown flags";
	if (p->mtu < 576 || p->mtu > 9000)
		return "MTU must be 576 to 9000";
	if (p->prefix > 32)
		return "prefix length above 32";
	for (int i = 0; i < BH_NPOOLS; i++) {
		if (bh_pool_geom_check(&p->pools.g[i]) != 0)
			return "bad pool geometry";
		if (p->pools.g[i].buf_size < (uint32_t)p->mtu + 14u + p->pools.g[i].headroom)
			return "pool buffers too small for the MTU";
	}
	if (!bh_ring_cap_ok(p->link_cap))
		return "link capacity must be a power of two";
	if (p->max_socks == 0 || p->max_socks > (1u << 20) || p->app_max_socks == 0 ||
	    p->max_apps == 0 || p->max_apps > 1024)
		return "bad socket limits";
	if (p->app_ring < 4096 || p->app_ring > (64u << 20) || (p->app_ring & (p->app_ring - 1)))
		return "application ring size must be a power of two, 4 KiB to 64 MiB";
	return NULL;
}

size_t bh_stats_bytes(const struct bh_plan *p, int dom)
{
	return bh_stats_region_bytes(dom == BH_DOM_TCP ? p->max_socks : 0);
}

static uint32_t stats_conns(const struct bh_plan *p, int dom)
{
	return dom == BH_DOM_TCP ? p->max_socks : 0;
}

void bh_regions_close(struct bh_regions *r)
{
	bh_region_close(&r->plan);
	for (int i = 0; i < BH_NDOMS; i++) {
		bh_region_close(&r->bell[i]);
		bh_region_close(&r->stats[i]);
	}
	for (int i = 0; i < BH_NLINKS; i++)
		bh_region_close(&r->link[i]);
	for (int i = 0; i < BH_NPOOLS; i++)
		bh_region_close(&r->pool[i]);
}

#define BELL_OFF 64u
#define PLAN_OFF 4096u

int bh_regions_create(struct bh_regions *r, const struct bh_plan *p)
{
	memset(r, 0, sizeof(*r));
	r->plan.fd = -1;
	for (int i = 0; i < BH_NDOMS; i++)
		r->bell[i].fd = r->stats[i].fd = -1;
	for (int i = 0; i < BH_NLINKS; i++)
		r->link[i].fd = -1;
	for (int i = 0; i < BH_NPOOLS; i++)
		r->pool[i].fd = -1;

	char name[BH_REGION_NAME_MAX];
	int err = bh_region_create_ex(&r->plan, "plan", BH_REGION_PLAN,
				      PLAN_OFF + sizeof(struct bh_plan), BH_REGION_OWNER_WRITES);
	if (err)
		goto fail;
	memcpy((char *)r->plan.base + PLAN_OFF, p, sizeof(*p));
	for (int i = 0; i < BH_NDOMS; i++) {
		snprintf(name, sizeof(name), "bell-%s", dom_names[i]);
		if ((err = bh_region_create(&r->bell[i], name, BH_REGION_DOORBELL, BELL_OFF +
					    sizeof(struct bh_ntfn))))
			goto fail;
		snprintf(name, sizeof(name), "stats-%s", dom_names[i]);
		if ((err = bh_region_create(&r->stats[i], name, BH_REGION_STATS,
					    bh_stats_bytes(p, i))))
			goto fail;
		bh_stats_format(&r->stats[i], stats_conns(p, i));
	}
	for (int i = 0; i < BH_NLINKS; i++) {
		snprintf(name, sizeof(name), "link-%s", link_names[i]);
		if ((err = bh_region_create(&r->link[i], name, BH_REGION_RINGS,
					    bh_link_bytes(p->link_cap))) ||
		    (err = bh_link_format(&r->link[i], p->link_cap)))
			goto fail;
	}
	for (int i = 0; i < BH_NPOOLS; i++) {
		snprintf(name, sizeof(name), "pool-%s", pool_names[i]);
		if ((err = bh_pool_region_create(&r->pool[i], name, &p->pools.g[i])))
			goto fail;
		/* The supervisor never touches packet memory. */
		bh_region_unmap(&r->pool[i]);
	}
	return 0;
fail:
	bh_regions_close(r);
	return err;
}

void bh_regions_reset_links(struct bh_regions *r, int dom)
{
	for (int l = 0; l < BH_NLINKS; l++) {
		int side;
		if (!bh_dom_on_link(dom, l, &side))
			continue;
		bh_link_new_epoch(&r->link[l]);
		int peer = link_ends[l][1 - side];
		struct bh_ntfn *bell = bh_region_at(&r->bell[peer], BELL_OFF, sizeof(struct bh_ntfn));
		if (bell)
			bh_ntfn_signal(bell, BH_BADGE_LINK(l), NULL);
	}
}

static int add_fd(struct bh_fd_map *out, int n, int max, int src, int dst, bool ro)
{
	if (n >= max || src < 0)
		return n;
	out[n].dst = dst;
	out[n].read_only = ro;
	out[n].src = ro ? bh_region_readonly_fd(src) : src;
	if (out[n].src < 0)
		return n;
	return n + 1;
}

int bh_dom_fds(const struct bh_regions *r, int dom, struct bh_fd_map *out, int max)
{
	int n = 0;
	n = add_fd(out, n, max, r->plan.fd, BH_FD_PLAN, true);
	for (int d = 0; d < BH_NDOMS; d++) {
		if (neighbours(dom, d))
			n = add_fd(out, n, max, r->bell[d].fd, BH_FD_BELL0 + d, false);
	}
	n = add_fd(out, n, max, r->stats[dom].fd, BH_FD_STATS0 + dom, false);
	for (int l = 0; l < BH_NLINKS; l++)
		if (bh_dom_on_link(dom, l, NULL))
			n = add_fd(out, n, max, r->link[l].fd, BH_FD_LINK0 + l, false);
	for (int p = 0; p < BH_NPOOLS; p++) {
		bool writes = p == dom || (dom_writes[dom] & (1u << p));
		bool reads = reads_of(bh_region_at(&r->plan, PLAN_OFF, sizeof(struct bh_plan)), dom) &
			     (1u << p);
		if (writes || reads)
			n = add_fd(out, n, max, r->pool[p].fd, BH_FD_POOL0 + p, !writes);
	}
	return n;
}

int bh_plan_attach(struct bh_region *r, const struct bh_plan **out)
{
	int err = bh_region_attach(r, BH_FD_PLAN, BH_REGION_PLAN, BH_ACCESS_RO);
	if (err)
		return err;
	const struct bh_plan *p = bh_region_at(r, PLAN_OFF, sizeof(*p));
	if (p == NULL || bh_plan_check(p) != NULL)
		return -EPROTO;
	*out = p;
	return 0;
}

static bool fcntl_ok(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static struct bh_ntfn *bell_word(struct bh_region *r)
{
	return bh_region_at(r, BELL_OFF, sizeof(struct bh_ntfn));
}

/* Pools a side accepts on a link. */
static int accept_pools(struct bh_chan *ch, const struct bh_plan *p, int link, int side)
{
	unsigned in = link_pools[link][1 - side], out = link_pools[link][side];
	for (int i = 0; i < BH_NPOOLS; i++) {
		if ((in & (1u << i)) && bh_chan_accept_rx_pool(ch, (uint8_t)i, &p->pools.g[i]))
			return -ENOMEM;
		if (out & (1u << i))
			bh_chan_accept_tx_pool(ch, (uint8_t)i, &p->pools.g[i]);
	}
	return 0;
}

static void env_init(struct bh_env *env, const struct bh_plan *plan, int dom)
{
	memset(env, 0, sizeof(*env));
	env->plan = plan;
	env->dom = dom;
	env->tap_fd = -1;
	env->apps_fd = -1;
	env->own.region.fd = -1;
	env->stats.fd = -1;
	for (int i = 0; i < BH_NDOMS; i++)
		env->bell_regions[i].fd = -1;
	for (int i = 0; i < BH_NLINKS; i++)
		env->link_regions[i].fd = -1;
	for (int i = 0; i < BH_NPOOLS; i++)
		env->views[i].region.fd = -1;
}

#define FAIL(...)                                            \
	do {                                                 \
		snprintf(errbuf, errlen, __VA_ARGS__);       \
		goto fail;                                   \
	} while (0)

int bh_env_attach(struct bh_env *env, const struct bh_plan *plan, int dom, char *errbuf,
		  size_t errlen)
{
	env_init(env, plan, dom);
	int err = 0;
	for (int d = 0; d < BH_NDOMS; d++) {
		if (!neighbours(dom, d))
			continue;
		err = bh_region_attach(&env->bell_regions[d], BH_FD_BELL0 + d, BH_REGION_DOORBELL,
				       BH_ACCESS_RW);
		if (err)
			FAIL("bell of %s: %s", dom_names[d], bh_ipc_strerror(err));
	}
	env->bell = bell_word(&env->bell_regions[dom]);
	if ((err = bh_region_attach(&env->stats, BH_FD_STATS0 + dom, BH_REGION_STATS,
				    BH_ACCESS_RW)))
		FAIL("stats region: %s", bh_ipc_strerror(err));
	if ((err = bh_pool_attach(&env->own, BH_FD_POOL0 + dom, &plan->pools.g[dom])))
		FAIL("own pool: %s", bh_ipc_strerror(err));
	env->view[dom] = env->wview[dom] = env->own.data;
	for (int p = 0; p < BH_NPOOLS; p++) {
		if (p == dom)
			continue;
		bool writes = dom_writes[dom] & (1u << p);
		if (!writes && !(reads_of(plan, dom) & (1u << p)))
			continue;
		err = bh_pool_view_attach(&env->views[p], BH_FD_POOL0 + p, &plan->pools.g[p],
					  writes ? BH_ACCESS_RW : BH_ACCESS_RO);
		if (err)
			FAIL("pool %s: %s", pool_names[p], bh_ipc_strerror(err));
		env->view[p] = env->views[p].data;
		if (writes)
			env->wview[p] = env->views[p].data;
	}
	for (int l = 0; l < BH_NLINKS; l++) {
		int side;
		if (!bh_dom_on_link(dom, l, &side))
			continue;
		int peer = link_ends[l][1 - side];
		err = bh_region_attach(&env->link_regions[l], BH_FD_LINK0 + l, BH_REGION_RINGS,
				       BH_ACCESS_RO);
		if (err)
			FAIL("link %s: %s", link_names[l], bh_ipc_strerror(err));
		err = bh_chan_shm_attach(&env->chans[l], link_names[l], &env->link_regions[l], side,
					 plan->link_cap, bell_word(&env->bell_regions[peer]),
					 BH_BADGE_LINK(l));
		if (err)
			FAIL("link %s: %s", link_names[l], bh_ipc_strerror(err));
		env->chan[l] = &env->chans[l];
		if (accept_pools(&env->chans[l], plan, l, side))
			FAIL("link %s: out of memory", link_names[l]);
	}
	if (dom == BH_DOM_DRIVER && fcntl_ok(BH_FD_TAP))
		env->tap_fd = BH_FD_TAP;
	if (dom == BH_DOM_SOCK && fcntl_ok(BH_FD_APPS))
		env->apps_fd = BH_FD_APPS;
	return 0;
fail:
	bh_env_detach(env);
	return err ? err : -EINVAL;
}

int bh_env_attach_mono(struct bh_env env[BH_NDOMS], struct bh_mono_links *ml,
		       const struct bh_plan *plan, char *errbuf, size_t errlen)
{
	memset(ml, 0, sizeof(*ml));
	for (int d = 0; d < BH_NDOMS; d++)
		env_init(&env[d], plan, d);
	int err = 0;
	/* One word wakes the whole process: the socket server's bell, which
	 * applications signal too. */
	err = bh_region_attach(&env[BH_DOM_SOCK].bell_regions[BH_DOM_SOCK],
			       BH_FD_BELL0 + BH_DOM_SOCK, BH_REGION_DOORBELL, BH_ACCESS_RW);
	if (err)
		FAIL("bell: %s", bh_ipc_strerror(err));
	struct bh_ntfn *bell = bell_word(&env[BH_DOM_SOCK].bell_regions[BH_DOM_SOCK]);
	for (int d = 0; d < BH_NDOMS; d++) {
		env[d].bell = bell;
		if ((err = bh_region_attach(&env[d].stats, BH_FD_STATS0 + d, BH_REGION_STATS,
					    BH_ACCESS_RW)))
			FAIL("stats region of %s: %s", dom_names[d], bh_ipc_strerror(err));
		if ((err = bh_pool_attach(&env[d].own, BH_FD_POOL0 + d, &plan->pools.g[d])))
			FAIL("pool %s: %s", pool_names[d], bh_ipc_strerror(err));
	}
	for (int d = 0; d < BH_NDOMS; d++)
		for (int p = 0; p < BH_NPOOLS; p++)
			env[d].view[p] = env[d].wview[p] = env[p].own.data;
	for (int l = 0; l < BH_NLINKS; l++) {
		if ((err = bh_local_link_init(&ml->link[l], plan->link_cap, &ml->pending,
					      &ml->pending)))
			FAIL("link %s: %s", link_names[l], bh_ipc_strerror(err));
		for (int s = 0; s < 2; s++) {
			struct bh_env *e = &env[link_ends[l][s]];
			bh_chan_local_attach(&e->chans[l], link_names[l], &ml->link[l], s,
					     BH_BADGE_LINK(l));
			e->chan[l] = &e->chans[l];
			if (accept_pools(&e->chans[l], plan, l, s))
				FAIL("link %s: out of memory", link_names[l]);
		}
	}
	if (fcntl_ok(BH_FD_TAP))
		env[BH_DOM_DRIVER].tap_fd = BH_FD_TAP;
	if (fcntl_ok(BH_FD_APPS))
		env[BH_DOM_SOCK].apps_fd = BH_FD_APPS;
	return 0;
fail:
	for (int d = 0; d < BH_NDOMS; d++)
		bh_env_detach(&env[d]);
	for (int l = 0; l < BH_NLINKS; l++)
		bh_local_link_fini(&ml->link[l]);
	return err ? err : -EINVAL;
}

void bh_env_detach(struct bh_env *env)
{
	bh_pool_destroy(&env->own);
	for (int i = 0; i < BH_NPOOLS; i++)
		bh_pool_view_detach(&env->views[i]);
	for (int i = 0; i < BH_NLINKS; i++) {
		if (env->chan[i])
			bh_chan_fini(env->chan[i]);
		bh_region_close(&env->link_regions[i]);
	}
	for (int i = 0; i < BH_NDOMS; i++)
		bh_region_close(&env->bell_regions[i]);
	bh_region_close(&env->stats);
	memset(env->chan, 0, sizeof(env->chan));
}
