/*
 * tests/ipc/stress.c - concurrency stress for the IPC layer, with random
 * yields injected between operations (in the spirit of liburcu's
 * yield-injection tests). A plain program, not Criterion, so that it runs
 * under ThreadSanitizer too; it reports through its exit status.
 *
 *   1. channel over shm between two threads: random batch sizes, random
 *      yields, the full arm/notify/sleep handshake with small spin budgets
 *      (so the futex path is taken often); every descriptor checked for
 *      order, and every buffer returned.
 *   2. notification ping-pong with random spin budgets, including zero: a
 *      lost wake-up shows up as a timeout.
 *   3. several senders signalling one receiver with distinct badges: every
 *      sender's signal is seen.
 *   4. endpoint call/reply between threads with random yields and delays.
 *
 * BH_STRESS_SCALE (default 1) multiplies the iteration counts.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/channel.h"
#include "ipc/clock.h"
#include "ipc/endpoint.h"

#define SEC (1000ll * 1000 * 1000)

static int failures;
static unsigned scale = 1;

#define CHECK(cond, ...)                                                                         \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "stress: %s:%d: ", __FILE__, __LINE__);                  \
			fprintf(stderr, __VA_ARGS__);                                            \
			fprintf(stderr, "\n");                                                   \
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                      \
		}                                                                                \
	} while (0)

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void maybe_yield(uint32_t *s)
{
	uint32_t r = rnd(s) % 16;
	if (r == 0)
		sched_yield();
	else if (r == 1)
		for (uint32_t i = rnd(s) % 200; i > 0; i--)
			bh_cpu_relax();
}

/* ---- 1. channel between threads ---- */

static const struct bh_pool_geom G = {.nbufs = 1024, .buf_size = 2048, .headroom = 0};

struct chan_side {
	struct bh_chan ch;
	struct bh_ntfn *mine;
	uint64_t total;
	uint32_t seed;
};

static void wait_on(struct chan_side *s)
{
	if (bh_chan_arm(&s->ch)) {
		bh_chan_disarm(&s->ch);
		return;
	}
	uint32_t spin = rnd(&s->seed) % 4 ? 0 : 100;
	bh_ntfn_wait(s->mine, spin, SEC, NULL);
	bh_chan_disarm(&s->ch);
}

static void *chan_echo(void *arg)
{
	struct chan_side *s = arg;
	struct bh_desc d[64];
	uint64_t expect = 0, idle = 0;
	while (expect < s->total && idle < 20) {
		maybe_yield(&s->seed);
		unsigned k = bh_chan_recv(&s->ch, d, 1 + rnd(&s->seed) % 64);
		if (k == 0) {
			uint64_t t0 = bh_now_ns();
			wait_on(s);
			idle = bh_now_ns() - t0 > SEC / 2 ? idle + 1 : 0;
			continue;
		}
		for (unsigned i = 0; i < k; i++, expect++)
			CHECK(d[i].aux == (uint32_t)expect, "echo: got %u expected %llu", d[i].aux,
			      (unsigned long long)expect);
		unsigned given = 0;
		while (given < k) {
			maybe_yield(&s->seed);
			given += bh_chan_give_back(&s->ch, d + given, k - given);
			bh_chan_notify(&s->ch);
			if (given < k)
				wait_on(s);
		}
	}
	CHECK(expect == s->total, "echo: received %llu of %llu", (unsigned long long)expect,
	      (unsigned long long)s->total);
	return NULL;
}

static void stress_channel(void)
{
	uint32_t cap = 64;
	uint64_t total = 300000ull * scale;
	struct bh_region link;
	struct bh_ntfn *ntfn = aligned_alloc(BH_CACHE_LINE, 2 * sizeof(struct bh_ntfn));
	memset(ntfn, 0, 2 * sizeof(*ntfn));
	CHECK(bh_region_create(&link, "stress", BH_REGION_RINGS, bh_link_bytes(cap)) == 0,
	      "create");
	CHECK(bh_link_format(&link, cap) == 0, "format");
	struct chan_side a = {.mine = &ntfn[0], .total = total, .seed = 1};
	struct chan_side b = {.mine = &ntfn[1], .total = total, .seed = 2};
	CHECK(bh_chan_shm_attach(&a.ch, "a", &link, 0, cap, &ntfn[1], 1) == 0, "attach a");
	CHECK(bh_chan_shm_attach(&b.ch, "b", &link, 1, cap, &ntfn[0], 2) == 0, "attach b");
	bh_chan_accept_tx_pool(&a.ch, 0, &G);
	bh_chan_accept_rx_pool(&b.ch, 0, &G);

	pthread_t t;
	pthread_create(&t, NULL, chan_echo, &b);
	uint64_t sent = 0, back = 0;
	uint64_t deadline = bh_now_ns() + 120 * SEC;
	struct bh_desc d[64];
	while (back < total && bh_now_ns() < deadline) {
		maybe_yield(&a.seed);
		unsigned n = 1 + rnd(&a.seed) % 64;
		unsigned m = 0;
		while (m < n && sent + m < total && sent + m - back < G.nbufs) {
			uint64_t q = sent + m;
			d[m++] = (struct bh_desc){.buf = (uint32_t)(q % G.nbufs), .aux = (uint32_t)q};
		}
		unsigned k = m ? bh_chan_send(&a.ch, d, m) : 0;
		sent += k;
		bh_chan_notify(&a.ch);
		unsigned got = bh_chan_reclaim(&a.ch, d, 64);
		for (unsigned i = 0; i < got; i++, back++)
			CHECK(d[i].aux == (uint32_t)back, "returned %u expected %llu", d[i].aux,
			      (unsigned long long)back);
		if (k == 0 && got == 0)
			wait_on(&a);
	}
	pthread_join(t, NULL);
	CHECK(back == total, "channel: %llu of %llu came back", (unsigned long long)back,
	      (unsigned long long)total);
	struct bh_chan_stats sa = bh_chan_stats(&a.ch), sb = bh_chan_stats(&b.ch);
	CHECK(sa.rejected_desc + sa.rejected_index + sb.rejected_desc + sb.rejected_index == 0,
	      "honest peers were rejected");
	printf("stress: channel: %llu descriptors, %llu+%llu signals, %llu+%llu wakes\n",
	       (unsigned long long)total, (unsigned long long)sa.signals,
	       (unsigned long long)sb.signals, (unsigned long long)sa.wakes,
	       (unsigned long long)sb.wakes);
	bh_chan_fini(&a.ch);
	bh_chan_fini(&b.ch);
	bh_region_close(&link);
	free(ntfn);
}

/* ---- 2. notification ping-pong ---- */

struct pp {
	struct bh_ntfn n[2];
	int rounds;
	int timeouts;
};

static void *pong(void *arg)
{
	struct pp *p = arg;
	uint32_t seed = 99;
	for (int i = 0; i < p->rounds; i++) {
		uint32_t spin = rnd(&seed) % 3 == 0 ? 0 : rnd(&seed) % 300;
		if (bh_ntfn_wait(&p->n[1], spin, 5 * SEC, NULL) != 4) {
			__atomic_add_fetch(&p->timeouts, 1, __ATOMIC_RELAXED);
			return NULL;
		}
		maybe_yield(&seed);
		bh_ntfn_signal(&p->n[0], 8, NULL);
	}
	return NULL;
}

static void stress_ntfn(void)
{
	struct pp *p = aligned_alloc(BH_CACHE_LINE, sizeof(*p));
	memset(p, 0, sizeof(*p));
	p->rounds = 20000 * (int)scale;
	pthread_t t;
	pthread_create(&t, NULL, pong, p);
	uint32_t seed = 7;
	int i;
	for (i = 0; i < p->rounds; i++) {
		maybe_yield(&seed);
		bh_ntfn_signal(&p->n[1], 4, NULL);
		uint32_t spin = rnd(&seed) % 3 == 0 ? 0 : rnd(&seed) % 300;
		if (bh_ntfn_wait(&p->n[0], spin, 5 * SEC, NULL) != 8)
			break;
	}
	pthread_join(t, NULL);
	CHECK(i == p->rounds && p->timeouts == 0, "ntfn ping-pong: lost wake-up at round %d", i);
	printf("stress: notification ping-pong: %d rounds\n", i);
	free(p);
}

/* ---- 3. many senders, one receiver ---- */

#define SENDERS 4

struct fan {
	struct bh_ntfn n;
	struct bh_ntfn ack[SENDERS];
	int rounds;
};

struct fan_arg {
	struct fan *f;
	int id;
	int ok;
};

static void *fan_sender(void *arg)
{
	struct fan_arg *a = arg;
	uint32_t seed = 1000u + (uint32_t)a->id;
	for (int i = 0; i < a->f->rounds; i++) {
		maybe_yield(&seed);
		bh_ntfn_signal(&a->f->n, 1u << a->id, NULL);
		if (bh_ntfn_wait(&a->f->ack[a->id], rnd(&seed) % 100, 5 * SEC, NULL) == 0)
			return NULL;
	}
	a->ok = 1;
	return NULL;
}

static void stress_fan_in(void)
{
	struct fan *f = aligned_alloc(BH_CACHE_LINE, sizeof(*f));
	memset(f, 0, sizeof(*f));
	f->rounds = 5000 * (int)scale;
	struct fan_arg args[SENDERS];
	pthread_t t[SENDERS];
	for (int i = 0; i < SENDERS; i++) {
		args[i] = (struct fan_arg){.f = f, .id = i};
		pthread_create(&t[i], NULL, fan_sender, &args[i]);
	}
	int seen[SENDERS] = {0};
	int total = 0, want = f->rounds * SENDERS;
	while (total < want) {
		uint32_t b = bh_ntfn_wait(&f->n, 50, 5 * SEC, NULL);
		if (b == 0)
			break;
		for (int i = 0; i < SENDERS; i++)
			if (b & (1u << i)) {
				seen[i]++;
				total++;
				bh_ntfn_signal(&f->ack[i], 1, NULL);
			}
	}
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(t[i], NULL);
		CHECK(args[i].ok && seen[i] == f->rounds, "fan-in: sender %d seen %d of %d", i,
		      seen[i], f->rounds);
	}
	printf("stress: fan-in: %d signals from %d senders\n", total, SENDERS);
	free(f);
}

/* ---- 4. endpoint ---- */

struct eps {
	struct bh_ep_shared sh;
	int calls;
	int served;
};

static void *ep_server(void *arg)
{
	struct eps *e = arg;
	struct bh_ep ep;
	bh_ep_server_init(&ep, &e->sh, 0);
	uint32_t seed = 5;
	struct bh_msg m;
	int r = bh_ep_recv(&ep, &m, 5 * SEC);
	while (r == 0) {
		e->served++;
		maybe_yield(&seed);
		m.mr[0] = m.mr[0] * 2 + 1;
		bool last = m.label == 0;
		if (last) {
			bh_ep_reply(&ep, &m);
			break;
		}
		r = bh_ep_reply_recv(&ep, &m, 5 * SEC);
	}
	bh_ep_fini(&ep);
	return NULL;
}

static void stress_endpoint(void)
{
	struct eps *e = aligned_alloc(BH_CACHE_LINE, sizeof(*e));
	memset(e, 0, sizeof(*e));
	bh_ep_format(&e->sh);
	e->calls = 5000 * (int)scale;
	pthread_t t;
	pthread_create(&t, NULL, ep_server, e);
	struct bh_ep ep;
	bh_ep_client_init(&ep, &e->sh, 3, 0);
	uint32_t seed = 11;
	int ok = 0;
	for (int i = 0; i < e->calls; i++) {
		maybe_yield(&seed);
		struct bh_msg m = {.label = i + 1 == e->calls ? 0 : 1, .len = 1, .mr = {(uint64_t)i}};
		int r = bh_ep_call(&ep, &m, 5 * SEC);
		CHECK(r == 0 && m.mr[0] == (uint64_t)i * 2 + 1, "endpoint: call %d: %d", i, r);
		if (r != 0)
			break;
		ok++;
	}
	pthread_join(t, NULL);
	CHECK(ok == e->calls && e->served == e->calls, "endpoint: %d calls, %d served", ok,
	      e->served);
	printf("stress: endpoint: %d calls\n", ok);
	bh_ep_fini(&ep);
	free(e);
}

int main(void)
{
	const char *s = getenv("BH_STRESS_SCALE");
	if (s && atoi(s) > 0)
		scale = (unsigned)atoi(s);
	void (*const parts[])(void) = {stress_channel, stress_ntfn, stress_fan_in,
				       stress_endpoint};
	int passed = 0, failed = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		int before = failures;
		parts[i]();
		if (failures == before)
			passed++;
		else
			failed++;
	}
	printf("stress: %d passed, %d failed\n", passed, failed);
	return failures ? 1 : 0;
}
