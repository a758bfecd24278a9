/*
 * domains/fault.h - the fault-injection hook compiled into every domain,
 * inert unless asked.
 *
 * The supervisor asks with a real-time signal (BH_FAULT_SIGNAL, sent with
 * sigqueue) whose value carries the fault and a seed; the handler only
 * records the request. The domain's own main loop performs the fault on
 * its next pass (at most BH_RT_MAX_SLEEP_NS later), so the fault happens
 * inside the domain's code path:
 *
 *   kill      the process sends itself SIGKILL
 *   crash     a store through a wild pointer (SIGSEGV)
 *   hang      the loop stops: no progress, no heartbeat
 *   scribble  seeded random 8-byte writes over every writable mapping of
 *             the process, shared regions included (the count is logged
 *             first), then it carries on
 *   bad-desc  out-of-range descriptors published on every link, forged
 *             buffers given back, and garbage written into the ring
 *             indices this domain owns; then it carries on
 *   syscall   tries what the sandbox forbids (open a file, create a
 *             socket): the seccomp filter kills it (SIGSYS)
 */
#ifndef BH_DOMAINS_FAULT_H
#define BH_DOMAINS_FAULT_H

#include <signal.h>
#include <stdint.h>

#include "domains/plan.h"

enum bh_fault {
	BH_FAULT_NONE = 0,
	BH_FAULT_KILL = 1,
	BH_FAULT_CRASH = 2,
	BH_FAULT_HANG = 3,
	BH_FAULT_SCRIBBLE = 4,
	BH_FAULT_BAD_DESC = 5,
	BH_FAULT_SYSCALL = 6,
};

#define BH_FAULT_SIGNAL (SIGRTMIN + 1)

/* The signal value: the fault in bits 0-3, the domain (which one of a
 * mono process) in bits 4-5, a seed in bits 6-30. */
static inline int bh_fault_value(enum bh_fault f, int dom, uint32_t seed)
{
	return (int)(((seed & 0x1ffffffu) << 6) | (((uint32_t)dom & 3u) << 4) |
		     ((uint32_t)f & 0xfu));
}

/* "kill", "crash", ... -> the fault; BH_FAULT_NONE if unknown. */
enum bh_fault bh_fault_parse(const char *name);
const char *bh_fault_name(enum bh_fault f);

/* Installs the handler (once per process). */
void bh_fault_install(void);

/* Called by the main loop on every pass: performs a pending fault on the
 * domains of this process (env[0..n-1]; in mono, the one asked for). */
void bh_fault_run(struct bh_env *const *env, int n);

#endif /* BH_DOMAINS_FAULT_H */
