/*
 * ipc/log.h - rate-limited reports of rejected input.
 *
 * Everything a neighbour hands over is checked; what fails is counted
 * always and reported at most BH_LOG_BURST times per second per limiter,
 * so a hostile peer cannot flood the log. Where reports go is a hook the
 * domain sets (the supervisor's per-instance log later); the default
 * writes one line to stderr.
 */
#ifndef BH_IPC_LOG_H
#define BH_IPC_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define BH_LOG_BURST 10

struct bh_ratelimit {
	uint64_t window_start_ns;
	uint32_t in_window;
	uint64_t suppressed; /* reports dropped by the limit */
};

typedef void (*bh_log_fn)(const char *line);

void bh_log_set_hook(bh_log_fn fn);

/* Whether a report may be made now; counts suppressed ones. */
bool bh_ratelimit_ok(struct bh_ratelimit *rl);

/* Formats and emits one line if the limiter allows it. */
void bh_log_limited(struct bh_ratelimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* BH_IPC_LOG_H */
