/*
 * domains/logger.h - the instance log: every process of an instance (the
 * supervisor and each domain) writes its lines to standard error, which
 * the supervisor points at RUNDIR/NAME/log, one write(2) per line so that
 * lines of different processes never mix (O_APPEND). Each line reads
 *
 *   2026-01-02T03:04:05.678Z driver[123]: text
 *
 * and `bulkhead logs NAME DOMAIN` selects by the name before '['. The
 * rate-limited reports of rejected input (ipc/log.h) go through the same
 * line writer once bh_log_init has run.
 *
 * Depends on ipc/log.h only, so that every domain file (fault.c,
 * recover.c, the domains' loops) can log without the runtime.
 */
#ifndef BH_DOMAINS_LOGGER_H
#define BH_DOMAINS_LOGGER_H

/* Names this process's lines (in mono, the loop renames them as it runs
 * each domain) and routes ipc/log.h's reports here. */
void bh_log_init(const char *who);
/* Names the lines that follow (mono: the domain the loop runs now). */
void bh_log_as(const char *who);
void bh_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* BH_DOMAINS_LOGGER_H */
