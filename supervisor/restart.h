/*
 * supervisor/restart.h - the supervisor's restart policy, as functions of
 * a domain's record and the time (CLOCK_MONOTONIC ns, passed in, so that
 * tests drive it with a clock of their own).
 *
 * Death.     A domain that dies is replaced. Its replacement is a quick
 *            failure if it dies before it serves, or within BH_STABLE_NS
 *            of serving with no fault injected into it (an injected fault
 *            is the test's doing, not the domain's). Each quick failure in
 *            a row doubles the wait before the next replacement, from
 *            BH_BACKOFF0_NS; the first replacement after a good run starts
 *            at once. After BH_MAX_QUICK_FAILS in a row the instance stops
 *            (a restart storm: something outside the domain is wrong).
 * Serving.   A replacement that has not said it serves BH_SERVE_TIMEOUT_NS
 *            after it started is killed (once), which counts as a death.
 * Hang.      A domain whose heartbeat (its stats region) has not moved for
 *            BH_HANG_NS is unresponsive; the factored build kills it to
 *            replace it, mono only reports it.
 */
#ifndef BH_SUPERVISOR_RESTART_H
#define BH_SUPERVISOR_RESTART_H

#include <stdbool.h>
#include <stdint.h>

#define BH_STABLE_NS (1000ull * 1000 * 1000)
#define BH_BACKOFF0_NS (50ull * 1000 * 1000)
#define BH_MAX_QUICK_FAILS 5u
#define BH_SERVE_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)
#define BH_HANG_NS (3ull * 1000 * 1000 * 1000)

/* One domain's incarnation, as the policy sees it. */
struct bh_restart {
	bool serving;         /* said it serves (ready) */
	uint64_t serving_ns;  /* when */
	uint64_t started_ns;  /* when this incarnation started */
	bool faulted;         /* a fault was injected into this incarnation */
	uint32_t quick_fails; /* replacements in a row that failed quickly */
};

/* The incarnation died at now_ns. Returns true and the wait before its
 * replacement in *wait_ns, or false: too many quick failures in a row,
 * the instance must stop. */
bool bh_restart_after_death(struct bh_restart *r, uint64_t now_ns, uint64_t *wait_ns);

/* A replacement started at now_ns (serving false until it says so). */
void bh_restart_started(struct bh_restart *r, uint64_t now_ns);
/* It says it serves. */
void bh_restart_serving(struct bh_restart *r, uint64_t now_ns);
/* True once, when a replacement that has not said it serves is overdue:
 * the caller kills it (the clock restarts so that it is said once). */
bool bh_restart_overdue(struct bh_restart *r, uint64_t now_ns);

/* A domain's heartbeat as last seen. */
struct bh_beat {
	uint64_t last;    /* the counter's last value */
	uint64_t seen_ns; /* when it last moved */
	bool hung;
};
enum bh_beat_verdict {
	BH_BEAT_SAME,    /* nothing to say */
	BH_BEAT_RESUMED, /* it was hung and moves again */
	BH_BEAT_HUNG,    /* it has not moved for BH_HANG_NS: said once */
};
enum bh_beat_verdict bh_beat_check(struct bh_beat *b, uint64_t beat, uint64_t now_ns);

#endif /* BH_SUPERVISOR_RESTART_H */
