/*
 * supervisor/cpulist.c - CPU lists (cpulist.h).
 */
#include "supervisor/cpulist.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CPU number at *p: digits only; advances *p. -1 when there is none or
 * it is out of range. */
static long cpu_number(const char **p)
{
	if (**p < '0' || **p > '9')
		return -1;
	long v = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (**p - '0');
		if (v >= CPU_SETSIZE)
			return -1;
		(*p)++;
	}
	return v;
}

int bh_cpulist_parse(const char *text, const cpu_set_t *allowed, cpu_set_t *out, char *why,
		     size_t whylen)
{
	CPU_ZERO(out);
	const char *p = text;
	if (*p == '\0') {
		snprintf(why, whylen, "an empty list");
		return -1;
	}
	for (;;) {
		long lo = cpu_number(&p), hi = lo;
		if (lo >= 0 && *p == '-') {
			p++;
			hi = cpu_number(&p);
		}
		if (lo < 0 || hi < lo) {
			snprintf(why, whylen, "not a CPU list (like 0, 0-1 or 0,2-3; CPUs below %d)",
				 CPU_SETSIZE);
			return -1;
		}
		for (long c = lo; c <= hi; c++) {
			if (allowed && !CPU_ISSET((int)c, allowed)) {
				char have[256];
				bh_cpulist_text(allowed, have, sizeof(have));
				snprintf(why, whylen, "CPU %ld is not available here (available: %s)", c,
					 have);
				return -1;
			}
			CPU_SET((int)c, out);
		}
		if (*p == '\0')
			return 0;
		if (*p != ',') {
			snprintf(why, whylen, "not a CPU list (like 0, 0-1 or 0,2-3; CPUs below %d)",
				 CPU_SETSIZE);
			return -1;
		}
		p++;
	}
}

void bh_cpulist_text(const cpu_set_t *set, char *out, size_t n)
{
	size_t len = 0;
	if (n == 0)
		return;
	out[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		int w = e == c ? snprintf(out + len, n - len, "%s%d", len ? "," : "", c)
			       : snprintf(out + len, n - len, "%s%d-%d", len ? "," : "", c, e);
		if (w < 0 || (size_t)w >= n - len) {
			out[len] = '\0';
			return;
		}
		len += (size_t)w;
		c = e;
	}
}
