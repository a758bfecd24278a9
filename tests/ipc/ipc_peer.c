/*
 * tests/ipc/ipc_peer.c - the other process of the cross-process tests.
 *
 *   ipc_peer ROLE LINK_FD DOORBELL_FD COUNT
 *
 * Roles:
 *   echo            receive COUNT descriptors, check their order (aux is a
 *                   sequence number), give each back; exit 3 on disorder
 *   echo-then-die   like echo, but SIGKILL itself after COUNT/2
 *   ping            COUNT notification round trips
 *   server          serve endpoint calls (reply mr[0] + 1) until label 0
 *   hostile-index   publish garbage ring indices, then behave
 *   hostile-desc    send out-of-range descriptors mixed with valid ones
 *   hostile-mutate  rewrite descriptors after publishing them, for a while
 *
 * Exit status: 0 done, 2 bad usage or setup, 3 the test's data was wrong,
 * 4 the test process went away.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/clock.h"
#include "ipc/peer.h"
#include "tests/ipc/xproc.h"

#define WAIT_SLICE_NS (50 * 1000 * 1000)

static struct bh_region link_map, bell_map;
static struct xp_doorbell *bell;
static struct bh_chan ch;
static struct bh_peer parent;

static void die_if_orphaned(void)
{
	if (!bh_peer_alive(&parent))
		exit(4);
}

/* Sleeps until the test signals or a slice passes (then checks on it). */
static void wait_for_work(void)
{
	if (bh_chan_arm(&ch)) {
		bh_chan_disarm(&ch);
		return;
	}
	bh_ntfn_wait(&bell->ntfn[1], 500, WAIT_SLICE_NS, NULL);
	bh_chan_disarm(&ch);
	die_if_orphaned();
}

static int role_echo(uint64_t count, int die_midway)
{
	struct bh_desc d[256];
	uint64_t expect = 0;
	while (expect < count) {
		unsigned k = bh_chan_recv(&ch, d, 256);
		if (k == 0) {
			wait_for_work();
			continue;
		}
		for (unsigned i = 0; i < k; i++) {
			if (d[i].aux != (uint32_t)expect || d[i].buf != expect % XP_POOL.nbufs) {
				fprintf(stderr, "peer: got aux=%u buf=%u, expected %llu\n", d[i].aux,
					d[i].buf, (unsigned long long)expect);
				return 3;
			}
			expect++;
			if (die_midway && expect == count / 2)
				raise(SIGKILL);
		}
		unsigned given = 0;
		while (given < k) {
			given += bh_chan_give_back(&ch, d + given, k - given);
			bh_chan_notify(&ch);
			if (given < k)
				wait_for_work();
		}
	}
	return 0;
}

static int role_ping(uint64_t count)
{
	for (uint64_t i = 0; i < count; i++) {
		uint32_t b = 0;
		while ((b = bh_ntfn_wait(&bell->ntfn[1], 2000, WAIT_SLICE_NS, NULL)) == 0)
			die_if_orphaned();
		if (b != XP_BADGE_TEST)
			return 3;
		bh_ntfn_signal(&bell->ntfn[0], XP_BADGE_PEER, NULL);
	}
	return 0;
}

static int role_server(void)
{
	struct bh_ep ep;
	if (bh_ep_server_init(&ep, &bell->ep, getppid()) != 0)
		return 2;
	struct bh_msg m;
	int r = bh_ep_recv(&ep, &m, 10ll * 1000 * 1000 * 1000);
	while (r == 0 && m.label != 0) {
		m.mr[0] += 1;
		m.len = 1;
		r = bh_ep_reply_recv(&ep, &m, 10ll * 1000 * 1000 * 1000);
	}
	if (r == 0)
		bh_ep_reply(&ep, &m);
	bh_ep_fini(&ep);
	return r == 0 ? 0 : 4;
}

/* Sends n valid descriptors from the peer's pool, seq numbers from seq. */
static void send_valid(uint32_t seq, unsigned n)
{
	struct bh_desc d[64];
	for (unsigned i = 0; i < n; i++)
		d[i] = (struct bh_desc){.pool = 1, .buf = (seq + i) % XP_PEER_POOL.nbufs,
					.off = 128, .len = 64, .aux = seq + i};
	unsigned sent = 0;
	while (sent < n) {
		sent += bh_chan_send(&ch, d + sent, n - sent);
		bh_chan_notify(&ch);
		if (sent < n)
			usleep(1000);
	}
}

/* Garbage in the head of the ring the peer produces into (ACTIVE_10),
 * written straight into shared memory, then a return to good behaviour. */
static int role_hostile_index(void)
{
	uint32_t *head = bh_region_at(&link_map, xp_ring_off(BH_LINK_ACTIVE_10), 4);
	send_valid(0, 10);
	uint32_t good = *head;
	uint32_t garbage[] = {good + 100000, good - 7, 0xffffffffu, good + XP_CAP + 1};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		*head = garbage[i];
		bh_ntfn_signal(&bell->ntfn[0], XP_BADGE_PEER, NULL);
		usleep(20 * 1000);
	}
	*head = good;
	send_valid(10, 10);
	return 0;
}

static int role_hostile_desc(void)
{
	struct bh_desc d[8] = {
	    {.pool = 1, .buf = 0, .off = 128, .len = 64, .aux = 0},
	    {.pool = 1, .buf = XP_PEER_POOL.nbufs, .aux = 1000},       /* index */
	    {.pool = 1, .buf = 1, .off = 2040, .len = 9, .aux = 1001}, /* span */
	    {.pool = 0, .buf = 1, .aux = 1002},                        /* the test's pool */
	    {.pool = 200, .buf = 1, .aux = 1003},                      /* no pool */
	    {.pool = 1, .buf = 0xffffffffu, .off = 0xffff, .len = 0xffff, .aux = 1004},
	    {.pool = 1, .buf = 2, .off = 2000, .len = 48, .aux = 1},
	    {.pool = 1, .buf = 3, .aux = 2},
	};
	unsigned sent = 0;
	while (sent < 8)
		sent += bh_chan_send(&ch, d + sent, 8 - sent);
	bh_chan_notify(&ch);
	return 0;
}

/* Publishes, then keeps rewriting the published slots with garbage while
 * the test is reading them, for a given number of milliseconds. */
static int role_hostile_mutate(uint64_t ms)
{
	struct bh_desc *slots =
	    bh_region_at(&link_map, xp_ring_off(BH_LINK_ACTIVE_10) + 2 * bh_page_size(),
			 XP_CAP * sizeof(struct bh_desc));
	uint64_t end = bh_now_ns() + ms * 1000 * 1000;
	uint32_t seq = 0, x = 12345;
	while (bh_now_ns() < end) {
		send_valid(seq, 16);
		seq += 16;
		for (int i = 0; i < 64; i++) {
			x = x * 1103515245u + 12345u;
			volatile struct bh_desc *s = &slots[x % XP_CAP];
			s->buf = x;
			s->off = (uint16_t)(x >> 7);
			s->len = (uint16_t)(x >> 13);
			s->pool = (uint8_t)(x >> 3) & 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: ipc_peer ROLE LINK_FD DOORBELL_FD COUNT\n");
		return 2;
	}
	const char *role = argv[1];
	int link_fd = atoi(argv[2]), bell_fd = atoi(argv[3]);
	uint64_t count = strtoull(argv[4], NULL, 10);
	bh_peer_open(&parent, getppid());

	/* Hostile roles map the link read-write to poke at it; honest ones
	 * map it read-only and get write access to their own pages only. */
	enum bh_access acc = strncmp(role, "hostile", 7) == 0 ? BH_ACCESS_RW : BH_ACCESS_RO;
	int err = bh_region_attach(&link_map, link_fd, BH_REGION_RINGS, acc);
	if (!err)
		err = bh_region_attach(&bell_map, bell_fd, BH_REGION_DOORBELL, BH_ACCESS_RW);
	if (err) {
		fprintf(stderr, "peer: attach: %s\n", bh_ipc_strerror(err));
		return 2;
	}
	bell = xp_doorbell(&bell_map);
	err = bh_chan_shm_attach(&ch, "peer", &link_map, 1, XP_CAP, &bell->ntfn[0], XP_BADGE_PEER);
	if (err) {
		fprintf(stderr, "peer: channel: %s\n", bh_ipc_strerror(err));
		return 2;
	}
	bh_chan_accept_rx_pool(&ch, 0, &XP_POOL);
	bh_chan_accept_tx_pool(&ch, 1, &XP_PEER_POOL);

	if (strcmp(role, "echo") == 0)
		return role_echo(count, 0);
	if (strcmp(role, "echo-then-die") == 0)
		return role_echo(count, 1);
	if (strcmp(role, "ping") == 0)
		return role_ping(count);
	if (strcmp(role, "server") == 0)
		return role_server();
	if (strcmp(role, "hostile-index") == 0)
		return role_hostile_index();
	if (strcmp(role, "hostile-desc") == 0)
		return role_hostile_desc();
	if (strcmp(role, "hostile-mutate") == 0)
		return role_hostile_mutate(count);
	fprintf(stderr, "peer: unknown role %s\n", role);
	return 2;
}
