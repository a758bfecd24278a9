/*
 * tests/ipc/test_endpoint.c - call/reply endpoints: round trips, timeouts
 * that leave the endpoint usable, a dead server detected, corrupt state.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/clock.h"
#include "ipc/endpoint.h"

#define SEC (1000ll * 1000 * 1000)

static struct bh_ep_shared *shared_ep(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	bh_ep_format(p);
	return p;
}

struct server_arg {
	struct bh_ep_shared *sh;
	int calls;
	int64_t delay_us; /* before replying */
};

/* Adds the message words and replies with the sum in mr[0]. */
static void *adder(void *arg)
{
	struct server_arg *a = arg;
	struct bh_ep ep;
	bh_ep_server_init(&ep, a->sh, 0);
	struct bh_msg m;
	int r = bh_ep_recv(&ep, &m, 5 * SEC);
	for (int i = 0; i < a->calls && r == 0; i++) {
		uint64_t sum = 0;
		for (uint32_t k = 0; k < m.len; k++)
			sum += m.mr[k];
		if (a->delay_us)
			usleep((useconds_t)a->delay_us);
		m.label = 7;
		m.len = 1;
		m.mr[0] = sum + m.badge;
		if (i + 1 == a->calls)
			r = bh_ep_reply(&ep, &m);
		else
			r = bh_ep_reply_recv(&ep, &m, 5 * SEC);
	}
	bh_ep_fini(&ep);
	return NULL;
}

Test(endpoint, call_and_reply_round_trips)
{
	struct bh_ep_shared *sh = shared_ep();
	struct server_arg a = {.sh = sh, .calls = 1000};
	pthread_t t;
	pthread_create(&t, NULL, adder, &a);
	struct bh_ep ep;
	cr_assert_eq(bh_ep_client_init(&ep, sh, 100, 0), 0);
	for (uint64_t i = 0; i < 1000; i++) {
		struct bh_msg m = {.label = 1, .len = 3, .mr = {i, 2 * i, 3}};
		cr_assert_eq(bh_ep_call(&ep, &m, 5 * SEC), 0);
		cr_assert_eq(m.label, 7);
		cr_assert_eq(m.len, 1);
		cr_assert_eq(m.mr[0], 3 * i + 3 + 100, "the server saw the badge and the words");
	}
	pthread_join(t, NULL);
	cr_assert_eq(sh->state, BH_EP_IDLE);
	bh_ep_fini(&ep);
}

Test(endpoint, call_with_no_server_times_out_and_endpoint_stays_usable)
{
	struct bh_ep_shared *sh = shared_ep();
	struct bh_ep ep;
	bh_ep_client_init(&ep, sh, 1, 0);
	struct bh_msg m = {.len = 1, .mr = {1}};
	uint64_t t0 = bh_now_ns();
	cr_assert_eq(bh_ep_call(&ep, &m, SEC / 20), -ETIMEDOUT);
	cr_assert_lt(bh_now_ns() - t0, 2ull * SEC);
	cr_assert_eq(sh->state, BH_EP_IDLE, "the call was withdrawn");

	struct server_arg a = {.sh = sh, .calls = 1};
	pthread_t t;
	pthread_create(&t, NULL, adder, &a);
	m.len = 2;
	m.mr[0] = 5;
	m.mr[1] = 6;
	cr_assert_eq(bh_ep_call(&ep, &m, 5 * SEC), 0);
	cr_assert_eq(m.mr[0], 12);
	pthread_join(t, NULL);
	bh_ep_fini(&ep);
}

Test(endpoint, slow_server_reply_is_abandoned_not_mistaken)
{
	struct bh_ep_shared *sh = shared_ep();
	struct server_arg a = {.sh = sh, .calls = 1, .delay_us = 200 * 1000};
	pthread_t t;
	pthread_create(&t, NULL, adder, &a);
	struct bh_ep ep;
	bh_ep_client_init(&ep, sh, 0, 0);
	struct bh_msg m = {.len = 1, .mr = {41}};
	cr_assert_eq(bh_ep_call(&ep, &m, SEC / 20), -ETIMEDOUT);
	/* while the abandoned call is being served, a new call is refused */
	struct bh_msg m2 = {.len = 1, .mr = {1}};
	int r = bh_ep_call(&ep, &m2, SEC / 20);
	cr_assert(r == -EBUSY || r == -ETIMEDOUT, "got %d", r);
	pthread_join(t, NULL);
	cr_assert_eq(sh->state, BH_EP_IDLE, "the late reply put the endpoint back");
	bh_ep_fini(&ep);
}

Test(endpoint, dead_server_is_detected_not_waited_for)
{
	struct bh_ep_shared *sh = shared_ep();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* takes the call, then dies without replying */
		struct bh_ep ep;
		struct bh_msg m;
		bh_ep_server_init(&ep, sh, 0);
		if (bh_ep_recv(&ep, &m, 5 * SEC) == 0)
			raise(SIGKILL);
		_exit(1);
	}
	struct bh_ep ep;
	cr_assert_eq(bh_ep_client_init(&ep, sh, 0, pid), 0);
	struct bh_msg m = {.len = 0};
	uint64_t t0 = bh_now_ns();
	cr_assert_eq(bh_ep_call(&ep, &m, 10 * SEC), -EPIPE);
	cr_assert_lt(bh_now_ns() - t0, 2ull * SEC, "detected within a few slices");
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFSIGNALED(st));
	bh_ep_fini(&ep);
}

Test(endpoint, dead_client_is_detected_by_the_server)
{
	struct bh_ep_shared *sh = shared_ep();
	pid_t pid = fork();
	if (pid == 0) {
		usleep(20 * 1000);
		_exit(0);
	}
	struct bh_ep ep;
	cr_assert_eq(bh_ep_server_init(&ep, sh, pid), 0);
	struct bh_msg m;
	cr_assert_eq(bh_ep_recv(&ep, &m, 10 * SEC), -EPIPE);
	waitpid(pid, NULL, 0);
	bh_ep_fini(&ep);
}

Test(endpoint, corrupt_state_and_lengths_are_protocol_errors)
{
	struct bh_ep_shared *sh = shared_ep();
	struct bh_ep ep;
	bh_ep_client_init(&ep, sh, 0, 0);
	struct bh_msg m = {.len = BH_EP_MR + 1};
	cr_assert_eq(bh_ep_call(&ep, &m, SEC), -EINVAL);
	sh->state = 77;
	m.len = 0;
	cr_assert_eq(bh_ep_call(&ep, &m, SEC), -EPROTO);
	struct bh_ep srv;
	bh_ep_server_init(&srv, sh, 0);
	cr_assert_eq(bh_ep_recv(&srv, &m, SEC / 10), -EPROTO);
	cr_assert_eq(srv.protocol_errors, 1);

	/* a call whose length lies is answered with EPROTO, not served */
	bh_ep_format(sh);
	sh->len = 1000;
	sh->seq = 1;
	sh->state = BH_EP_CALLING;
	cr_assert_eq(bh_ep_recv(&srv, &m, SEC / 10), -ETIMEDOUT);
	cr_assert_eq(sh->state, BH_EP_REPLIED);
	cr_assert_eq(sh->label, EPROTO);
	bh_ep_fini(&srv);
	bh_ep_fini(&ep);
}
