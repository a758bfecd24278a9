/*
 * supervisor/cpulist.h - CPU lists as `up --cpus` takes them and `status`
 * prints them: "0", "0-3", "0,2,5-7" (the kernel's cpulist format,
 * cpuset(7)).
 */
#ifndef BH_SUPERVISOR_CPULIST_H
#define BH_SUPERVISOR_CPULIST_H

#include <sched.h>
#include <stddef.h>

/* Parses text into *out. 0, or -1 with the reason in why (a malformed
 * list, an empty one, a CPU at or beyond CPU_SETSIZE, or, when allowed
 * is not NULL, a CPU outside it). */
int bh_cpulist_parse(const char *text, const cpu_set_t *allowed, cpu_set_t *out, char *why,
		     size_t whylen);

/* The set as a list ("0-1,4"); "" for an empty set. Truncated to n. */
void bh_cpulist_text(const cpu_set_t *set, char *out, size_t n);

#endif /* BH_SUPERVISOR_CPULIST_H */
