/*
 * tests/supervisor/test_restart.c - the supervisor's restart policy
 * (supervisor/restart.h) on a clock the test owns: which deaths are quick
 * failures, how the wait before a replacement grows, when the instance
 * gives up, when a silent replacement is overdue, and when a domain
 * counts as hung.
 */
#include <criterion/criterion.h>

#include "supervisor/restart.h"

#define MS (1000ull * 1000)
#define S (1000ull * MS)

/* A domain that started at t and said it serves at once. */
static struct bh_restart serving_since(uint64_t t)
{
	struct bh_restart r = {0};
	bh_restart_started(&r, t);
	bh_restart_serving(&r, t);
	return r;
}

Test(restart, a_death_after_a_good_run_is_replaced_at_once)
{
	struct bh_restart r = serving_since(10 * S);
	uint64_t wait = 12345;
	cr_assert(bh_restart_after_death(&r, 10 * S + BH_STABLE_NS + 1, &wait));
	cr_assert_eq(wait, 0);
	cr_assert_eq(r.quick_fails, 0);
	cr_assert_not(r.serving, "a dead domain does not serve");
}

Test(restart, a_death_soon_after_serving_is_quick_and_backs_off)
{
	struct bh_restart r = serving_since(10 * S);
	uint64_t wait = 0;
	cr_assert(bh_restart_after_death(&r, 10 * S + BH_STABLE_NS - 1, &wait));
	cr_assert_eq(r.quick_fails, 1);
	cr_assert_eq(wait, BH_BACKOFF0_NS);
}

Test(restart, an_injected_fault_is_not_the_domains_failure)
{
	struct bh_restart r = serving_since(10 * S);
	r.faulted = true;
	uint64_t wait = 1;
	cr_assert(bh_restart_after_death(&r, 10 * S + 1 * MS, &wait));
	cr_assert_eq(r.quick_fails, 0);
	cr_assert_eq(wait, 0);
	/* The next incarnation starts unfaulted. */
	bh_restart_started(&r, 11 * S);
	cr_assert_not(r.faulted);
}

Test(restart, a_replacement_that_dies_before_serving_is_quick_even_if_faulted)
{
	struct bh_restart r = {0};
	bh_restart_started(&r, 5 * S);
	r.faulted = true;
	uint64_t wait = 0;
	cr_assert(bh_restart_after_death(&r, 100 * S, &wait));
	cr_assert_eq(r.quick_fails, 1);
	cr_assert_eq(wait, BH_BACKOFF0_NS);
}

Test(restart, each_quick_failure_doubles_the_wait_then_the_instance_gives_up)
{
	struct bh_restart r = serving_since(0);
	uint64_t t = 1 * MS, wait = 0;
	for (uint32_t k = 1; k <= BH_MAX_QUICK_FAILS; k++) {
		cr_assert(bh_restart_after_death(&r, t, &wait), "failure %u still restarts", k);
		cr_assert_eq(r.quick_fails, k);
		cr_assert_eq(wait, BH_BACKOFF0_NS << (k - 1), "failure %u waits %llu ns", k,
			     (unsigned long long)wait);
		t += wait;
		bh_restart_started(&r, t);
		t += 1 * MS; /* dies before it serves */
	}
	cr_assert_not(bh_restart_after_death(&r, t, &wait), "a storm stops the instance");
	cr_assert_eq(r.quick_fails, BH_MAX_QUICK_FAILS + 1);
}

Test(restart, a_stable_run_forgets_earlier_quick_failures)
{
	struct bh_restart r = serving_since(0);
	uint64_t wait;
	cr_assert(bh_restart_after_death(&r, 1 * MS, &wait));
	cr_assert(bh_restart_after_death(&r, 2 * MS, &wait));
	cr_assert_eq(r.quick_fails, 2);
	bh_restart_started(&r, 3 * S);
	bh_restart_serving(&r, 3 * S);
	cr_assert(bh_restart_after_death(&r, 3 * S + BH_STABLE_NS, &wait));
	cr_assert_eq(r.quick_fails, 0);
	cr_assert_eq(wait, 0);
}

Test(restart, a_silent_replacement_is_overdue_once)
{
	struct bh_restart r = {0};
	bh_restart_started(&r, 1 * S);
	cr_assert_not(bh_restart_overdue(&r, 1 * S + BH_SERVE_TIMEOUT_NS));
	cr_assert(bh_restart_overdue(&r, 1 * S + BH_SERVE_TIMEOUT_NS + 1));
	cr_assert_not(bh_restart_overdue(&r, 1 * S + BH_SERVE_TIMEOUT_NS + 2), "said once");
	struct bh_restart ok = {0};
	bh_restart_started(&ok, 1 * S);
	bh_restart_serving(&ok, 2 * S);
	cr_assert_not(bh_restart_overdue(&ok, 100 * S), "a serving domain is never overdue");
}

Test(restart, a_heartbeat_that_stops_is_a_hang_said_once_then_a_resumption)
{
	struct bh_beat b = {.last = 7, .seen_ns = 1 * S};
	cr_assert_eq(bh_beat_check(&b, 7, 1 * S + BH_HANG_NS), BH_BEAT_SAME);
	cr_assert_eq(bh_beat_check(&b, 7, 1 * S + BH_HANG_NS + 1), BH_BEAT_HUNG);
	cr_assert(b.hung);
	cr_assert_eq(bh_beat_check(&b, 7, 20 * S), BH_BEAT_SAME, "said once");
	cr_assert_eq(bh_beat_check(&b, 8, 21 * S), BH_BEAT_RESUMED);
	cr_assert_not(b.hung);
	cr_assert_eq(b.seen_ns, 21 * S);
	cr_assert_eq(bh_beat_check(&b, 9, 22 * S), BH_BEAT_SAME);
}
