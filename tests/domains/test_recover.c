/*
 * tests/domains/test_recover.c - getting every buffer home after a domain
 * is replaced (domains/recover.c), checked step by step in one process.
 *
 * The instance is real: the supervisor's regions (bh_regions_create),
 * each domain attached as its own process attaches (bh_env_attach, shm
 * links, its own pool and views), and a death is what the supervisor
 * does about one (bh_regions_reset_links: a new epoch on each of its
 * links) followed by a fresh attach of the replacement. The test plays
 * each domain's data path (lend, receive, forward, give back, take back,
 * as driver_domain.c, ip_domain.c and tcp_domain.c do) and the recovery
 * calls of its loop (rt.c: sync, then reclaim, then flush), and after
 * each step checks what the bookkeeping says: which buffers are suspect
 * and by whom, which are home, what is owed to whom, and the counters.
 *
 * Pools of 64 buffers and links of 32 slots: a survivor owes more
 * disclaims than a ring holds, so they go out over several passes, as
 * in a real restart.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domains/logger.h"
#include "domains/plan.h"
#include "domains/recover.h"
#include "domains/stats.h"
#include "domains/track.h"

#define NB 64u  /* buffers in every pool */
#define CAP 32u /* slots in every ring */
#define HIGH_FD 256

enum { DRV = BH_DOM_DRIVER, IP = BH_DOM_IP, TCP = BH_DOM_TCP, SOCK = BH_DOM_SOCK };
#define ALL 0xfu
#define ONLY(d) (1u << (d))
#define WHO(d) BH_HOLDER_DOM(d)  /* a domain in a pool's ownership table */
#define BIT(d) ((uint8_t)(1u << (d))) /* a domain in a ledger's suspect byte */

/* The pools each domain keeps a ledger of (ip_domain.c, tcp_domain.c). */
static const unsigned tracked[BH_NDOMS] = {
    [BH_DOM_IP] = (1u << BH_POOL_RX) | (1u << BH_POOL_SEG),
    [BH_DOM_TCP] = 1u << BH_POOL_RX,
};

struct inst {
	struct bh_plan plan;
	struct bh_regions r;
	struct bh_env env[BH_NDOMS];
	struct bh_track tr[BH_NDOMS];
	bool live[BH_NDOMS];
	uint32_t hold[BH_NDOMS]; /* pools whose disclaims a replacement holds
				  * from the start (bh_env.rec_hold) */
};

/* --- the instance --- */

static void move_up(int *fd)
{
	if (*fd < 0)
		return;
	int n = fcntl(*fd, F_DUPFD_CLOEXEC, HIGH_FD);
	cr_assert_geq(n, HIGH_FD);
	close(*fd);
	*fd = n;
}

/* bh_env_attach finds a domain's regions at the fixed descriptor numbers
 * of plan.h, and Criterion's worker may have descriptors of its own among
 * them (its arena was seen at 12 and 13, the bells of tcp and sock).
 * Each number is borrowed for the attach: whatever was there is set
 * aside and put back after, and the domain's descriptors move above
 * HIGH_FD. The plan is handed by pointer (BH_FD_PLAN is Criterion's). */
static void attach(struct inst *in, int d)
{
	struct bh_fd_map map[24];
	int saved[24];
	int n = bh_dom_fds(&in->r, d, map, 24);
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++)
		if (map[i].read_only)
			move_up(&map[i].src);
	for (int i = 0; i < n; i++) {
		saved[i] = -2;
		if (map[i].dst == BH_FD_PLAN)
			continue;
		saved[i] = fcntl(map[i].dst, F_DUPFD_CLOEXEC, HIGH_FD); /* -1: nothing there */
		cr_assert_eq(dup2(map[i].src, map[i].dst), map[i].dst);
	}
	char err[160] = "";
	struct bh_env *env = &in->env[d];
	cr_assert_eq(bh_env_attach(env, &in->plan, d, err, sizeof(err)), 0, "attach %s: %s",
		     bh_dom_name(d), err);
	/* A copy above HIGH_FD for each; the fixed numbers are put back below. */
	int *fds[BH_NDOMS + BH_NPOOLS + BH_NLINKS + 2];
	int k = 0;
	for (int i = 0; i < BH_NDOMS; i++)
		fds[k++] = &env->bell_regions[i].fd;
	for (int i = 0; i < BH_NPOOLS; i++)
		fds[k++] = &env->views[i].region.fd;
	for (int i = 0; i < BH_NLINKS; i++)
		fds[k++] = &env->link_regions[i].fd;
	fds[k++] = &env->stats.fd;
	fds[k++] = &env->own.region.fd;
	for (int i = 0; i < k; i++) {
		if (*fds[i] < 0 || *fds[i] >= HIGH_FD)
			continue;
		*fds[i] = fcntl(*fds[i], F_DUPFD_CLOEXEC, HIGH_FD);
		cr_assert_geq(*fds[i], HIGH_FD);
	}
	for (int i = 0; i < n; i++) {
		if (saved[i] >= 0) {
			dup2(saved[i], map[i].dst);
			close(saved[i]);
		} else if (saved[i] == -1) {
			close(map[i].dst);
		}
		if (map[i].read_only)
			close(map[i].src);
	}
}

/* A domain starts (or a replacement: restarted), as rt.c's loop_init
 * does: its init sets the ledger, then recovery is set up. */
static void start(struct inst *in, int d, bool restarted)
{
	bh_log_as(bh_dom_name(d));
	attach(in, d);
	struct bh_env *env = &in->env[d];
	if (tracked[d]) {
		memset(&in->tr[d], 0, sizeof(in->tr[d]));
		cr_assert_eq(bh_track_init(&in->tr[d], &in->plan.pools, tracked[d]), 0);
		env->track = &in->tr[d];
	}
	env->restarted = restarted;
	env->rec_hold = restarted ? in->hold[d] : 0;
	cr_assert_eq(bh_recover_init(env), 0);
	if (restarted)
		bh_recover_restarted(env);
	in->live[d] = true;
}

static void stop(struct inst *in, int d)
{
	struct bh_env *env = &in->env[d];
	bh_recover_fini(env);
	if (env->track)
		bh_track_fini(env->track);
	env->track = NULL;
	bh_env_detach(env);
	in->live[d] = false;
}

/* Domain d dies with everything it held; the supervisor starts a new
 * epoch on each of its links. */
static void die(struct inst *in, int d)
{
	stop(in, d);
	bh_regions_reset_links(&in->r, d);
}

static struct inst *instance(void)
{
	struct inst *in = calloc(1, sizeof(*in));
	cr_assert_not_null(in);
	snprintf(in->plan.name, sizeof(in->plan.name), "recover");
	const uint32_t headroom[BH_NPOOLS] = {64, 64, 128, 64};
	for (int p = 0; p < BH_NPOOLS; p++)
		in->plan.pools.g[p] =
		    (struct bh_pool_geom){.nbufs = NB, .buf_size = 2048, .headroom = headroom[p]};
	in->plan.link_cap = CAP;
	in->plan.max_socks = 64;
	bh_plan_defaults(&in->plan);
	cr_assert_null(bh_plan_check(&in->plan));
	cr_assert_eq(bh_regions_create(&in->r, &in->plan), 0);
	/* The supervisor's descriptors, out of the way of the fixed numbers. */
	move_up(&in->r.plan.fd);
	for (int i = 0; i < BH_NDOMS; i++) {
		move_up(&in->r.bell[i].fd);
		move_up(&in->r.stats[i].fd);
	}
	for (int i = 0; i < BH_NLINKS; i++)
		move_up(&in->r.link[i].fd);
	for (int i = 0; i < BH_NPOOLS; i++)
		move_up(&in->r.pool[i].fd);
	for (int d = 0; d < BH_NDOMS; d++)
		start(in, d, false);
	return in;
}

static void finish(struct inst *in)
{
	for (int d = 0; d < BH_NDOMS; d++)
		if (in->live[d])
			stop(in, d);
	bh_regions_close(&in->r);
	free(in);
}

/* --- what the domains do --- */

static struct bh_desc desc(int pool, uint32_t buf)
{
	return (struct bh_desc){.buf = buf, .len = 64, .pool = (uint8_t)pool, .flags = BH_M_FRAME};
}

/* Owner d fills n buffers of its pool and lends them over `link`. */
static void lend(struct inst *in, int d, int link, uint32_t *bufs, unsigned n)
{
	struct bh_env *env = &in->env[d];
	struct bh_desc x[CAP];
	cr_assert_leq(n, CAP);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(bh_pool_alloc(&env->own, &bufs[i]), 0);
		cr_assert_eq(bh_pool_lend(&env->own, bufs[i], WHO(bh_link_peer(link, d))), 0);
		x[i] = desc(d, bufs[i]);
	}
	cr_assert_eq(bh_chan_send(env->chan[link], x, n), n);
}

static unsigned take(struct inst *in, int d, int link, struct bh_desc *x, unsigned max)
{
	return bh_chan_recv(in->env[d].chan[link], x, max);
}

/* d passes a buffer it does not own on over `link`, in its ledger. */
static void forward(struct inst *in, int d, int link, const struct bh_desc *x)
{
	cr_assert(bh_track_out(in->env[d].track, x->pool, x->buf, bh_link_peer(link, d), 0));
	cr_assert_eq(bh_chan_send(in->env[d].chan[link], x, 1), 1);
}

/* d is done with buffers of `pool` it received on `link`. */
static void give(struct inst *in, int d, int link, int pool, const uint32_t *bufs, unsigned n)
{
	struct bh_desc x[CAP];
	cr_assert_leq(n, CAP);
	for (unsigned i = 0; i < n; i++)
		x[i] = (struct bh_desc){.buf = bufs[i], .pool = (uint8_t)pool};
	cr_assert_eq(bh_chan_give_back(in->env[d].chan[link], x, n), n);
}

/* The link on which env receives pool p: where a forwarded buffer goes
 * home. */
static int upstream(const struct bh_env *env, int p)
{
	for (int l = 0; l < BH_NLINKS; l++)
		if (env->chan[l] && env->chan[l]->rx_pools[p])
			return l;
	cr_assert_fail("%s does not receive pool %s", bh_dom_name(env->dom), bh_pool_name(p));
	return -1;
}

/* Buffers coming home to d, as the domains take them: its own back to
 * its pool, forwarded ones (if its ledger agrees) on upstream. True if
 * anything was taken off a ring. */
static bool home(struct inst *in, int d)
{
	struct bh_env *env = &in->env[d];
	bool moved = false;
	for (int l = 0; l < BH_NLINKS; l++) {
		struct bh_chan *ch = env->chan[l];
		if (ch == NULL)
			continue;
		int peer = bh_link_peer(l, d);
		uint64_t before = ch->stats.reclaimed;
		struct bh_desc x[64];
		unsigned n = bh_env_reclaim(env, l, x, 64);
		moved |= ch->stats.reclaimed != before;
		for (unsigned i = 0; i < n; i++) {
			if (x[i].pool == d) {
				if (bh_pool_take_back(&env->own, x[i].buf, WHO(peer)) == 0)
					bh_pool_free(&env->own, x[i].buf);
			} else if (env->track &&
				   bh_track_back(env->track, x[i].pool, x[i].buf, peer, NULL)) {
				struct bh_desc h = {.buf = x[i].buf, .pool = x[i].pool};
				bh_chan_give_back(env->chan[upstream(env, x[i].pool)], &h, 1);
			}
		}
	}
	return moved;
}

/* One pass of d's loop, the parts that concern recovery (rt.c). */
static bool pass(struct inst *in, int d)
{
	struct bh_env *env = &in->env[d];
	bool progress = false;
	bh_log_as(bh_dom_name(d));
	for (int l = 0; l < BH_NLINKS; l++) {
		if (env->chan[l] == NULL)
			continue;
		switch (bh_chan_sync(env->chan[l])) {
		case BH_CHAN_PEER_RESET:
			bh_recover_peer_reset(env, l);
			progress = true;
			break;
		case BH_CHAN_UP:
			progress = true;
			break;
		default:
			break;
		}
	}
	progress |= home(in, d);
	progress |= bh_recover_flush(env);
	for (int l = 0; l < BH_NLINKS; l++)
		if (env->chan[l])
			progress |= bh_chan_flush_owed(env->chan[l]);
	return progress;
}

/* The live domains among `doms` run until nothing moves. */
static void run(struct inst *in, unsigned doms)
{
	for (int round = 0; round < 1000; round++) {
		bool progress = false;
		for (int d = 0; d < BH_NDOMS; d++)
			if ((doms & ONLY(d)) && in->live[d])
				progress |= pass(in, d);
		if (!progress)
			return;
	}
	cr_assert_fail("recovery never settled");
}

/* --- what the bookkeeping says --- */

static uint32_t free_bufs(const struct bh_pool *p)
{
	uint32_t n = bh_pool_held_by(p, BH_HOLDER_FREE);
	cr_assert_eq(n, p->nfree, "the free list and the ownership table agree");
	return n;
}

static const struct bh_recover_stats *st(struct inst *in, int d)
{
	return &in->env[d].rec->st;
}

/* Disclaims d owes on link l for pool p. */
static uint32_t owed_on(struct inst *in, int d, int l, int p)
{
	const uint64_t *m = in->env[d].rec->dis[l][p];
	uint32_t n = 0;
	for (uint32_t w = 0; m && w < (NB + 63) / 64; w++)
		n += (uint32_t)__builtin_popcountll(m[w]);
	return n;
}

/* Buffers of pool p in d's ledger that are still suspect. */
static uint32_t suspects(struct inst *in, int d, int p)
{
	uint32_t n = 0;
	for (uint32_t b = 0; b < NB; b++)
		n += in->env[d].track->suspect[p][b] != 0;
	return n;
}

static uint32_t out_in_ledger(struct inst *in, int d, int p)
{
	uint32_t n = 0;
	for (uint32_t b = 0; b < NB; b++)
		n += in->env[d].track->holder[p][b] != 0;
	return n;
}

/* --- the tests --- */

/* ip dies holding frames of the driver's, two more still in the ring to
 * it. The driver suspects exactly those, lends none of them again, owes
 * ip a disclaim for every buffer of ip's pools it does not hold, and gets
 * them all back once the new ip (after tcp and sock answered for the
 * frames it might have passed on) disclaims them. Frames lent to the new
 * ip meanwhile are not suspect, and it holds them: no disclaim of them
 * goes out (one would change nothing). */
Test(recover, a_survivor_suspects_what_its_replaced_neighbour_held)
{
	struct inst *in = instance();
	struct bh_env *drv = &in->env[DRV];
	uint32_t f[5], b;
	struct bh_desc x[8];
	lend(in, DRV, BH_LINK_DI, f, 5);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 3), 3);
	give(in, IP, BH_LINK_DI, BH_POOL_RX, &f[0], 1);
	run(in, ALL);
	cr_assert_eq(drv->own.holder[f[0]], BH_HOLDER_FREE, "an ordinary return, home");
	cr_assert_eq(bh_pool_held_by(&drv->own, WHO(IP)), 4);

	die(in, IP);
	run(in, ALL);
	for (int i = 1; i < 5; i++)
		cr_assert(bh_pool_suspected_by(&drv->own, f[i], WHO(IP)), "frame %u", f[i]);
	cr_assert_eq(bh_pool_held_by(&drv->own, WHO(IP)), 0);
	cr_assert_eq(free_bufs(&drv->own), NB - 4);
	cr_assert_eq(st(in, DRV)->peer_resets, 1);
	cr_assert_eq(st(in, DRV)->suspected, 4);
	cr_assert_eq(owed_on(in, DRV, BH_LINK_DI, BH_POOL_IP), NB, "holds none of ip's");
	cr_assert_eq(owed_on(in, DRV, BH_LINK_DI, BH_POOL_SEG), NB, "nor of tcp's it forwards");
	cr_assert_eq(drv->rec->owed, 2 * NB);
	cr_assert_not(bh_recover_flush(drv), "nothing goes out before the new ip acknowledged");
	cr_assert_eq(drv->rec->owed, 2 * NB);
	for (uint32_t n = 0; n < NB - 4; n++) {
		cr_assert_eq(bh_pool_alloc(&drv->own, &b), 0);
		cr_assert(b != f[1] && b != f[2] && b != f[3] && b != f[4], "a suspect lent again");
	}
	cr_assert_eq(bh_pool_alloc(&drv->own, &b), -ENOBUFS);
	for (b = 0; b < NB; b++)
		if (drv->own.holder[b] == BH_HOLDER_OWNER)
			bh_pool_free(&drv->own, b);

	start(in, IP, true);
	run(in, ONLY(DRV) | ONLY(IP));
	uint32_t n2[2];
	lend(in, DRV, BH_LINK_DI, n2, 2);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 8), 2, "the frames in flight at the reset are gone");
	cr_assert_eq(x[0].buf, n2[0]);
	cr_assert_eq(x[1].buf, n2[1]);
	cr_assert_eq(st(in, DRV)->settled, 0, "the new ip waits for tcp and sock");
	run(in, ALL & ~ONLY(SOCK));
	cr_assert_eq(suspects(in, IP, BH_POOL_RX), NB);
	cr_assert_eq(in->env[IP].track->suspect[BH_POOL_RX][f[1]], BIT(SOCK) | BH_TRACK_UP_DISCLAIM);
	cr_assert_eq(st(in, DRV)->settled, 0, "tcp has answered, sock not yet");

	run(in, ALL);
	cr_assert_eq(free_bufs(&drv->own), NB - 2, "every frame home but the two lent anew");
	cr_assert_eq(drv->own.holder[n2[0]], WHO(IP));
	cr_assert_eq(drv->own.holder[n2[1]], WHO(IP));
	cr_assert_eq(st(in, DRV)->settled, 4);
	cr_assert_eq(st(in, DRV)->disclaims_recv, NB - 2, "none for the two ip holds");
	cr_assert_eq(st(in, DRV)->disclaims_noop, NB - 6);
	cr_assert_eq(st(in, DRV)->disclaims_sent, 2 * NB);
	cr_assert_eq(drv->rec->owed, 0);
	finish(in);
}

/* The new ip's side of the same: its whole pool is suspected by every
 * neighbour it lends to, the frames and segments it forwards by the
 * domains downstream, and it owes sock a disclaim for every buffer of
 * sock's pool (it keeps no ledger of those). The driver still holds two
 * of the old ip's buffers: they stay suspect, by the driver alone, until
 * the driver is done with them and returns them. */
Test(recover, a_new_incarnation_suspects_its_pool_until_every_borrower_answers)
{
	struct inst *in = instance();
	struct bh_env *ip = &in->env[IP];
	uint32_t e[3], b;
	struct bh_desc x[8];
	lend(in, IP, BH_LINK_DI, e, 3);
	cr_assert_eq(take(in, DRV, BH_LINK_DI, x, 8), 3);
	give(in, DRV, BH_LINK_DI, BH_POOL_IP, &e[0], 1);
	run(in, ALL);

	die(in, IP);
	start(in, IP, true);
	cr_assert_eq(bh_pool_alloc(&ip->own, &b), -ENOBUFS);
	for (b = 0; b < NB; b++) {
		cr_assert(bh_pool_suspected_by(&ip->own, b, WHO(DRV)));
		cr_assert(bh_pool_suspected_by(&ip->own, b, WHO(TCP)));
		cr_assert(bh_pool_suspected_by(&ip->own, b, WHO(SOCK)));
		cr_assert_not(bh_pool_suspected_by(&ip->own, b, WHO(IP)));
		cr_assert_eq(ip->track->suspect[BH_POOL_RX][b],
			     BIT(TCP) | BIT(SOCK) | BH_TRACK_UP_DISCLAIM);
		cr_assert_eq(ip->track->suspect[BH_POOL_SEG][b], BIT(DRV) | BH_TRACK_UP_DISCLAIM);
	}
	cr_assert_eq(st(in, IP)->suspected, 3 * NB);
	cr_assert_eq(owed_on(in, IP, BH_LINK_IS, BH_POOL_SOCK), NB);
	cr_assert_eq(owed_on(in, IP, BH_LINK_DI, BH_POOL_RX), 0, "not before tcp and sock answer");
	cr_assert_eq(owed_on(in, IP, BH_LINK_IT, BH_POOL_SEG), 0, "not before the driver answers");
	cr_assert_eq(ip->rec->owed, NB);

	run(in, ALL);
	cr_assert_eq(st(in, DRV)->disclaims_sent, 2 * NB - 2, "all but the two it holds");
	cr_assert_eq(free_bufs(&ip->own), NB - 2);
	for (int i = 1; i < 3; i++) {
		cr_assert(bh_pool_suspected_by(&ip->own, e[i], WHO(DRV)));
		cr_assert_not(bh_pool_suspected_by(&ip->own, e[i], WHO(TCP)));
		cr_assert_not(bh_pool_suspected_by(&ip->own, e[i], WHO(SOCK)));
	}
	cr_assert_eq(suspects(in, IP, BH_POOL_RX), 0);
	cr_assert_eq(suspects(in, IP, BH_POOL_SEG), 0);

	give(in, DRV, BH_LINK_DI, BH_POOL_IP, &e[1], 2);
	run(in, ALL);
	cr_assert_eq(free_bufs(&ip->own), NB, "returned late, settled all the same");
	cr_assert_eq(st(in, IP)->settled, 3 * NB);
	cr_assert_eq(st(in, IP)->disclaims_recv, 6 * NB - 2);
	cr_assert_eq(st(in, IP)->disclaims_noop, 0, "every answer was awaited");
	cr_assert_eq(st(in, IP)->disclaims_sent, 3 * NB, "sock's, and rx and seg upstream");
	cr_assert_eq(st(in, IP)->returned_up, 0);
	cr_assert_eq(ip->rec->owed, 0);
	cr_assert_eq(st(in, TCP)->disclaims_noop, NB, "tcp's segments, disclaimed once each");
	cr_assert_eq(free_bufs(&in->env[TCP].own), NB);
	cr_assert_eq(free_bufs(&in->env[SOCK].own), NB);
	finish(in);
}

/* tcp dies holding frames ip forwarded to it, one of which it passed on
 * to sock, and one of ip's buffers (an ICMP report). ip, the survivor,
 * clears its ledger of what tcp held and waits: each frame goes home to
 * the driver only once the new tcp has answered for it, and the one sock
 * still holds only once sock has returned it to the new tcp. */
Test(recover, forwarded_buffers_go_home_once_every_suspect_answered)
{
	struct inst *in = instance();
	struct bh_env *drv = &in->env[DRV], *ip = &in->env[IP], *tcp = &in->env[TCP];
	uint32_t f[4], ev[1];
	struct bh_desc x[8];
	lend(in, DRV, BH_LINK_DI, f, 4);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 8), 4);
	for (int i = 0; i < 3; i++)
		forward(in, IP, BH_LINK_IT, &x[i]);
	lend(in, IP, BH_LINK_IT, ev, 1);
	cr_assert_eq(take(in, TCP, BH_LINK_IT, x, 8), 4);
	forward(in, TCP, BH_LINK_TS, &x[2]);
	cr_assert_eq(x[2].buf, f[2]);
	cr_assert_eq(take(in, SOCK, BH_LINK_TS, x, 8), 1);
	cr_assert_eq(out_in_ledger(in, IP, BH_POOL_RX), 3);

	die(in, TCP);
	run(in, ALL);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(ip->track->holder[BH_POOL_RX][f[i]], 0);
		cr_assert_eq(ip->track->suspect[BH_POOL_RX][f[i]], BIT(TCP) | BH_TRACK_UP_RETURN);
	}
	cr_assert_eq(ip->track->suspect[BH_POOL_RX][f[3]], 0, "ip holds that one itself");
	cr_assert(bh_pool_suspected_by(&ip->own, ev[0], WHO(TCP)));
	cr_assert_eq(st(in, IP)->suspected, 4);
	cr_assert_eq(owed_on(in, IP, BH_LINK_IT, BH_POOL_SEG), NB);
	cr_assert_eq(owed_on(in, SOCK, BH_LINK_TS, BH_POOL_RX), NB - 1, "sock still holds f2");
	cr_assert_eq(owed_on(in, SOCK, BH_LINK_TS, BH_POOL_SEG), NB);
	cr_assert_eq(bh_pool_held_by(&drv->own, WHO(IP)), 4, "nothing goes home early");

	start(in, TCP, true);
	cr_assert_eq(owed_on(in, TCP, BH_LINK_IT, BH_POOL_IP), NB, "ip's pool: no ledger");
	cr_assert_eq(owed_on(in, TCP, BH_LINK_TS, BH_POOL_SOCK), NB);
	cr_assert_eq(owed_on(in, TCP, BH_LINK_IT, BH_POOL_RX), 0, "waits for sock");
	cr_assert_eq(st(in, TCP)->suspected, 2 * NB);
	run(in, ALL);
	cr_assert_eq(drv->own.holder[f[0]], BH_HOLDER_FREE);
	cr_assert_eq(drv->own.holder[f[1]], BH_HOLDER_FREE);
	cr_assert_eq(drv->own.holder[f[2]], WHO(IP), "sock has not returned it yet");
	cr_assert_eq(drv->own.holder[f[3]], WHO(IP));
	cr_assert_eq(st(in, IP)->returned_up, 2);
	cr_assert_eq(ip->track->suspect[BH_POOL_RX][f[2]], BIT(TCP) | BH_TRACK_UP_RETURN);
	cr_assert_eq(tcp->track->suspect[BH_POOL_RX][f[2]], BIT(SOCK) | BH_TRACK_UP_DISCLAIM);
	cr_assert_eq(suspects(in, TCP, BH_POOL_RX), 1);
	cr_assert_eq(free_bufs(&ip->own), NB, "the ICMP report's buffer settled");
	/* The new tcp disclaimed every buffer of ip's pool (one suspect) and
	 * every frame sock had answered for (two suspect). */
	cr_assert_eq(st(in, IP)->disclaims_noop, (NB - 1) + (NB - 3));

	give(in, SOCK, BH_LINK_TS, BH_POOL_RX, &f[2], 1);
	run(in, ALL);
	cr_assert_eq(drv->own.holder[f[2]], BH_HOLDER_FREE);
	cr_assert_eq(st(in, IP)->returned_up, 3);
	cr_assert_eq(st(in, IP)->settled, 4);
	cr_assert_eq(suspects(in, IP, BH_POOL_RX), 0);
	cr_assert_eq(out_in_ledger(in, IP, BH_POOL_RX), 0);
	cr_assert_eq(suspects(in, TCP, BH_POOL_RX), 0);
	cr_assert_eq(free_bufs(&tcp->own), NB);
	cr_assert_eq(st(in, TCP)->settled, 2 * NB);

	give(in, IP, BH_LINK_DI, BH_POOL_RX, &f[3], 1);
	run(in, ALL);
	cr_assert_eq(free_bufs(&drv->own), NB);
	cr_assert_eq(st(in, DRV)->peer_resets, 0, "the driver saw nothing");
	cr_assert_eq(st(in, DRV)->suspected, 0);
	cr_assert_eq(st(in, DRV)->disclaims_recv, 0);
	finish(in);
}

/* sock dies holding a frame that came up through ip and tcp, while tcp
 * holds a buffer of sock's (data not yet acknowledged). tcp settles the
 * frame when the new sock disclaims it and returns it to ip as usual,
 * which passes it to the driver; the new sock's buffer comes home when
 * tcp is done with it. */
Test(recover, a_settled_frame_goes_home_through_every_hop)
{
	struct inst *in = instance();
	struct bh_env *drv = &in->env[DRV], *tcp = &in->env[TCP], *sock = &in->env[SOCK];
	uint32_t r[1], s[1];
	struct bh_desc x[4];
	lend(in, DRV, BH_LINK_DI, r, 1);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 4), 1);
	forward(in, IP, BH_LINK_IT, &x[0]);
	cr_assert_eq(take(in, TCP, BH_LINK_IT, x, 4), 1);
	forward(in, TCP, BH_LINK_TS, &x[0]);
	cr_assert_eq(take(in, SOCK, BH_LINK_TS, x, 4), 1);
	lend(in, SOCK, BH_LINK_TS, s, 1);
	cr_assert_eq(take(in, TCP, BH_LINK_TS, x, 4), 1);

	die(in, SOCK);
	run(in, ALL);
	cr_assert_eq(tcp->track->suspect[BH_POOL_RX][r[0]], BIT(SOCK) | BH_TRACK_UP_RETURN);
	cr_assert_eq(owed_on(in, TCP, BH_LINK_TS, BH_POOL_SOCK), NB - 1, "not the one it holds");
	cr_assert_eq(owed_on(in, IP, BH_LINK_IS, BH_POOL_SOCK), NB);
	cr_assert_eq(drv->own.holder[r[0]], WHO(IP));

	start(in, SOCK, true);
	cr_assert_eq(sock->rec->owed, 4 * NB, "rx and seg to tcp, rx and ip to ip");
	run(in, ALL);
	cr_assert_eq(free_bufs(&drv->own), NB, "the frame is home");
	cr_assert_eq(st(in, TCP)->returned_up, 1);
	cr_assert_eq(st(in, TCP)->settled, 1);
	cr_assert_eq(st(in, TCP)->disclaims_noop, 2 * NB - 1);
	cr_assert_eq(st(in, IP)->returned_up, 0, "for ip an ordinary return");
	cr_assert_eq(free_bufs(&sock->own), NB - 1);
	cr_assert(bh_pool_suspected_by(&sock->own, s[0], WHO(TCP)));
	cr_assert_not(bh_pool_suspected_by(&sock->own, s[0], WHO(IP)));

	give(in, TCP, BH_LINK_TS, BH_POOL_SOCK, s, 1);
	run(in, ALL);
	cr_assert_eq(free_bufs(&sock->own), NB);
	cr_assert_eq(st(in, SOCK)->settled, NB);
	cr_assert_eq(sock->rec->owed, 0);
	finish(in);
}

/* Without any reset: a disclaim of a buffer nobody suspects (a hostile
 * or late one) is taken out of the batch and counted, and changes
 * nothing: the buffer stays with the peer that holds it, whose real
 * return still works. Ordinary returns, forged ones included, go to the
 * domain untouched (its pool refuses the forged one). */
Test(recover, a_disclaim_of_a_buffer_not_suspected_changes_nothing)
{
	struct inst *in = instance();
	struct bh_env *drv = &in->env[DRV], *ip = &in->env[IP];
	uint32_t f[2];
	struct bh_desc x[8];
	lend(in, DRV, BH_LINK_DI, f, 2);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 8), 2);
	const uint32_t never = NB - 1;
	struct bh_desc back[4] = {
	    {.buf = f[0], .pool = BH_POOL_RX, .flags = BH_DESC_DISCLAIM},
	    {.buf = never, .pool = BH_POOL_RX, .flags = BH_DESC_DISCLAIM},
	    {.buf = f[1], .pool = BH_POOL_RX},
	    {.buf = never, .pool = BH_POOL_RX},
	};
	cr_assert_eq(bh_chan_give_back(ip->chan[BH_LINK_DI], back, 4), 4);
	cr_assert_eq(bh_env_reclaim(drv, BH_LINK_DI, x, 8), 2, "the two returns, not the disclaims");
	cr_assert_eq(x[0].buf, f[1]);
	cr_assert_eq(x[1].buf, never);
	cr_assert_eq(st(in, DRV)->disclaims_recv, 2);
	cr_assert_eq(st(in, DRV)->disclaims_noop, 2);
	cr_assert_eq(st(in, DRV)->settled, 0);
	cr_assert_eq(drv->own.holder[f[0]], WHO(IP), "still ip's");
	cr_assert_eq(bh_pool_take_back(&drv->own, f[1], WHO(IP)), 0);
	cr_assert_eq(bh_pool_take_back(&drv->own, never, WHO(IP)), -EINVAL);

	/* The same for a forwarded frame, against ip's ledger. */
	struct bh_desc fr = desc(BH_POOL_RX, f[0]);
	forward(in, IP, BH_LINK_IT, &fr);
	cr_assert_eq(take(in, TCP, BH_LINK_IT, x, 8), 1);
	struct bh_desc dis = {.buf = f[0], .pool = BH_POOL_RX, .flags = BH_DESC_DISCLAIM};
	cr_assert_eq(bh_chan_give_back(in->env[TCP].chan[BH_LINK_IT], &dis, 1), 1);
	cr_assert_eq(bh_env_reclaim(ip, BH_LINK_IT, x, 8), 0);
	cr_assert_eq(st(in, IP)->disclaims_noop, 1);
	cr_assert_eq(ip->track->holder[BH_POOL_RX][f[0]], TCP + 1, "still tcp's");
	give(in, TCP, BH_LINK_IT, BH_POOL_RX, &f[0], 1);
	cr_assert_eq(bh_env_reclaim(ip, BH_LINK_IT, x, 8), 1, "its real return is handed on");
	cr_assert_eq(x[0].buf, f[0]);
	finish(in);
}

/* Owed disclaims wait while the link waits for the new peer, then go out
 * as the ring has room: 32 slots for 128 disclaims, lowest buffers
 * first; the rest stay owed, none twice, none lost. */
Test(recover, owed_disclaims_wait_for_the_link_then_go_out_as_room_allows)
{
	struct inst *in = instance();
	struct bh_env *drv = &in->env[DRV], *ip = &in->env[IP];
	struct bh_desc x[64];
	die(in, IP);
	cr_assert_eq(bh_chan_sync(drv->chan[BH_LINK_DI]), BH_CHAN_PEER_RESET);
	bh_recover_peer_reset(drv, BH_LINK_DI);
	cr_assert_eq(drv->rec->owed, 2 * NB);
	cr_assert_not(bh_recover_flush(drv));
	cr_assert_eq(st(in, DRV)->disclaims_sent, 0);

	start(in, IP, true);
	cr_assert_eq(bh_chan_sync(drv->chan[BH_LINK_DI]), BH_CHAN_UP);
	cr_assert(bh_recover_flush(drv));
	cr_assert_eq(drv->rec->owed, 2 * NB - CAP);
	cr_assert_eq(drv->rec->dis[BH_LINK_DI][BH_POOL_IP][0], ~0ull << CAP, "the first 32 went");
	cr_assert_not(bh_recover_flush(drv), "the ring is full");
	cr_assert_eq(st(in, DRV)->disclaims_sent, CAP);
	unsigned rounds = 1;
	while (drv->rec->owed) {
		cr_assert_eq(bh_env_reclaim(ip, BH_LINK_DI, x, 64), 0, "answers, all taken out");
		cr_assert(bh_recover_flush(drv));
		rounds++;
	}
	cr_assert_eq(bh_env_reclaim(ip, BH_LINK_DI, x, 64), 0);
	cr_assert_eq(rounds, 2 * NB / CAP);
	cr_assert_eq(st(in, DRV)->disclaims_sent, 2 * NB);
	cr_assert_eq(st(in, IP)->disclaims_recv, 2 * NB);
	cr_assert_eq(st(in, IP)->disclaims_noop, 0);
	cr_assert_not(bh_recover_flush(drv), "nothing owed: nothing to do");
	finish(in);
}

/* A new tcp holds back its disclaims of SOCK buffers (its old
 * incarnation's send chains may still be read downstream). Meanwhile it
 * takes SOCK buffer c from sock, and then sock is replaced too, so c is
 * suspect in the new sock's pool. The disclaim owed for c since tcp's
 * own restart must never go out once the hold ends: c is tcp's, and a
 * disclaim would let sock settle and reuse it while tcp still has it.
 * It comes home as a return. (Before the fix, the held-back mark was
 * sent: sock settled c with tcp holding it.) */
Test(recover, a_held_back_disclaim_is_not_sent_for_a_buffer_held_since)
{
	struct inst *in = instance();
	struct bh_env *tcp = &in->env[TCP];
	struct bh_desc x[8];
	uint32_t c;
	in->hold[TCP] = 1u << BH_POOL_SOCK;
	die(in, TCP);
	start(in, TCP, true);
	run(in, ALL);
	cr_assert_eq(owed_on(in, TCP, BH_LINK_TS, BH_POOL_SOCK), NB, "every SOCK disclaim held");
	lend(in, SOCK, BH_LINK_TS, &c, 1);
	cr_assert_eq(take(in, TCP, BH_LINK_TS, x, 8), 1);
	die(in, SOCK);
	start(in, SOCK, true);
	run(in, ALL);
	struct bh_env *sock = &in->env[SOCK];
	cr_assert(bh_pool_suspected_by(&sock->own, c, WHO(TCP)), "the new sock suspects c of tcp");
	bh_recover_hold(tcp, BH_POOL_SOCK, false);
	run(in, ALL);
	cr_assert_eq(owed_on(in, TCP, BH_LINK_TS, BH_POOL_SOCK), 0, "nothing left owed");
	cr_assert(bh_pool_suspected_by(&sock->own, c, WHO(TCP)), "c still waits for tcp");
	cr_assert_eq(free_bufs(&sock->own), NB - 1, "everything else settled");
	give(in, TCP, BH_LINK_TS, BH_POOL_SOCK, &c, 1);
	run(in, ALL);
	cr_assert_eq(free_bufs(&sock->own), NB, "c home by its return");
	finish(in);
}

/* What `bulkhead stats` shows: the recover.* counters in the domain's
 * stats region, read back through the supervisor's handle. */
static uint64_t counter(struct inst *in, int d, const char *name)
{
	struct bh_stats_w w;
	cr_assert_eq(bh_stats_writer(&w, &in->env[d].stats), 0);
	bh_stats_begin(&w);
	bh_recover_publish(&in->env[d], &w);
	bh_stats_end(&w, 1);
	struct bh_stats_snap s;
	cr_assert_eq(bh_stats_read(&in->r.stats[d], 0, &s), 0);
	for (uint32_t i = 0; i < s.h.ncounters; i++) {
		if (strcmp(s.ctr[i].name, name) == 0) {
			uint64_t v = s.ctr[i].value;
			bh_stats_snap_free(&s);
			return v;
		}
	}
	bh_stats_snap_free(&s);
	cr_assert_fail("no counter %s", name);
	return 0;
}

Test(recover, publish_shows_the_counters)
{
	struct inst *in = instance();
	uint32_t f[4];
	struct bh_desc x[4];
	lend(in, DRV, BH_LINK_DI, f, 4);
	cr_assert_eq(take(in, IP, BH_LINK_DI, x, 4), 4);
	die(in, IP);
	run(in, ONLY(DRV));
	cr_assert_eq(counter(in, DRV, "recover.peer_resets"), 1);
	cr_assert_eq(counter(in, DRV, "recover.suspected"), 4);
	cr_assert_eq(counter(in, DRV, "recover.owed"), 2 * NB);
	cr_assert_eq(counter(in, DRV, "recover.settled"), 0);

	start(in, IP, true);
	run(in, ALL);
	cr_assert_eq(counter(in, DRV, "recover.peer_resets"), 1);
	cr_assert_eq(counter(in, DRV, "recover.suspected"), 4);
	cr_assert_eq(counter(in, DRV, "recover.settled"), 4);
	cr_assert_eq(counter(in, DRV, "recover.disclaims_sent"), 2 * NB);
	cr_assert_eq(counter(in, DRV, "recover.disclaims_recv"), NB);
	cr_assert_eq(counter(in, DRV, "recover.disclaims_noop"), NB - 4);
	cr_assert_eq(counter(in, DRV, "recover.returned_up"), 0);
	cr_assert_eq(counter(in, DRV, "recover.owed"), 0);
	cr_assert_eq(counter(in, IP, "recover.suspected"), 3 * NB);
	cr_assert_eq(counter(in, IP, "recover.settled"), 3 * NB);
	finish(in);
}
