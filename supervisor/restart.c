/*
 * supervisor/restart.c - the restart policy (restart.h).
 */
#include "supervisor/restart.h"

bool bh_restart_after_death(struct bh_restart *r, uint64_t now_ns, uint64_t *wait_ns)
{
	bool quick = !r->serving || (now_ns - r->serving_ns < BH_STABLE_NS && !r->faulted);
	r->quick_fails = quick ? r->quick_fails + 1 : 0;
	r->serving = false;
	if (r->quick_fails > BH_MAX_QUICK_FAILS)
		return false;
	*wait_ns = r->quick_fails ? BH_BACKOFF0_NS << (r->quick_fails - 1) : 0;
	return true;
}

void bh_restart_started(struct bh_restart *r, uint64_t now_ns)
{
	r->serving = false;
	r->faulted = false;
	r->started_ns = now_ns;
}

void bh_restart_serving(struct bh_restart *r, uint64_t now_ns)
{
	r->serving = true;
	r->serving_ns = now_ns;
}

bool bh_restart_overdue(struct bh_restart *r, uint64_t now_ns)
{
	if (r->serving || now_ns - r->started_ns <= BH_SERVE_TIMEOUT_NS)
		return false;
	r->started_ns = now_ns;
	return true;
}

enum bh_beat_verdict bh_beat_check(struct bh_beat *b, uint64_t beat, uint64_t now_ns)
{
	if (beat != b->last) {
		bool was = b->hung;
		b->last = beat;
		b->seen_ns = now_ns;
		b->hung = false;
		return was ? BH_BEAT_RESUMED : BH_BEAT_SAME;
	}
	if (!b->hung && now_ns - b->seen_ns > BH_HANG_NS) {
		b->hung = true;
		return BH_BEAT_HUNG;
	}
	return BH_BEAT_SAME;
}
