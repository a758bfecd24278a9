/*
 * ipc/log.c - rate-limited logging hook.
 */
#include "ipc/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "ipc/clock.h"

static void default_hook(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

static bh_log_fn hook = default_hook;

void bh_log_set_hook(bh_log_fn fn)
{
	hook = fn ? fn : default_hook;
}

bool bh_ratelimit_ok(struct bh_ratelimit *rl)
{
	uint64_t now = bh_now_ns();
	if (now - rl->window_start_ns >= 1000000000u) {
		rl->window_start_ns = now;
		rl->in_window = 0;
	}
	if (rl->in_window >= BH_LOG_BURST) {
		rl->suppressed++;
		return false;
	}
	rl->in_window++;
	return true;
}

void bh_log_limited(struct bh_ratelimit *rl, const char *fmt, ...)
{
	if (!bh_ratelimit_ok(rl))
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hook(line);
}
