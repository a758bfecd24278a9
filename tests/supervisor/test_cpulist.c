/*
 * tests/supervisor/test_cpulist.c - CPU lists (supervisor/cpulist.c):
 * parsed as cpuset(7) writes them, printed back the same way, and every
 * malformed or unavailable list refused with a reason.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "supervisor/cpulist.h"

static void round_trip(const char *in, const char *want)
{
	cpu_set_t s;
	char why[300] = "", out[256];
	cr_assert_eq(bh_cpulist_parse(in, NULL, &s, why, sizeof(why)), 0, "%s: %s", in, why);
	bh_cpulist_text(&s, out, sizeof(out));
	cr_assert_str_eq(out, want, "%s", in);
}

Test(cpulist, parses_and_prints_lists)
{
	round_trip("0", "0");
	round_trip("1", "1");
	round_trip("0-1", "0-1");
	round_trip("0,1", "0-1");
	round_trip("3,0-1", "0-1,3");
	round_trip("0,2,5-7", "0,2,5-7");
	round_trip("5-5", "5");
	round_trip("1023", "1023");
}

static void refused(const char *in, const char *reason)
{
	cpu_set_t s;
	char why[300] = "";
	cr_assert_eq(bh_cpulist_parse(in, NULL, &s, why, sizeof(why)), -1, "%s taken", in);
	cr_assert(strstr(why, reason) != NULL, "%s: '%s' lacks '%s'", in, why, reason);
}

Test(cpulist, refuses_what_is_not_a_list)
{
	refused("", "empty");
	refused("x", "not a CPU list");
	refused("1-", "not a CPU list");
	refused("-1", "not a CPU list");
	refused("2-1", "not a CPU list");
	refused("0,", "not a CPU list");
	refused("0 1", "not a CPU list");
	refused("1024", "not a CPU list");
	refused("99999999999999999999", "not a CPU list");
}

Test(cpulist, refuses_cpus_outside_the_allowed_set)
{
	cpu_set_t allowed, s;
	CPU_ZERO(&allowed);
	CPU_SET(0, &allowed);
	CPU_SET(1, &allowed);
	char why[300] = "";
	cr_assert_eq(bh_cpulist_parse("0-1", &allowed, &s, why, sizeof(why)), 0);
	cr_assert_eq(bh_cpulist_parse("1-2", &allowed, &s, why, sizeof(why)), -1);
	cr_assert(strstr(why, "CPU 2 is not available here (available: 0-1)") != NULL, "%s", why);
}

Test(cpulist, text_is_truncated_not_overrun)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	for (int c = 0; c < 64; c += 2)
		CPU_SET(c, &s);
	char out[8];
	memset(out, 'z', sizeof(out));
	bh_cpulist_text(&s, out, sizeof(out));
	cr_assert(memchr(out, '\0', sizeof(out)) != NULL);
	cr_assert_str_eq(out, "0,2,4,6");
}
