/*
 * ipc/clock.h - monotonic time in nanoseconds (vDSO, no system call).
 */
#ifndef BH_IPC_CLOCK_H
#define BH_IPC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t bh_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* BH_IPC_CLOCK_H */
