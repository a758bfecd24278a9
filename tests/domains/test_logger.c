/*
 * tests/domains/test_logger.c - the instance log's line format
 * (domains/logger.h): `bulkhead logs` selects lines by the name before
 * '[', and lines of different processes never mix only if each is one
 * write ending in a newline. Standard error is pointed at a pipe for the
 * test and read back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "domains/logger.h"

/* Runs bh_logf(fmt, arg) with standard error on a pipe; what it wrote. */
static ssize_t logged(char *out, size_t max, const char *fmt, const char *arg)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	int keep = dup(STDERR_FILENO);
	cr_assert_geq(keep, 0);
	cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	bh_logf(fmt, arg);
	dup2(keep, STDERR_FILENO);
	close(keep);
	close(p[1]);
	ssize_t n = read(p[0], out, max - 1);
	close(p[0]);
	cr_assert_gt(n, 0);
	out[n] = '\0';
	return n;
}

Test(logger, a_line_is_utc_time_name_pid_text)
{
	char line[1024];
	bh_log_as("tcp");
	/* The logger reads CLOCK_REALTIME; time() may read a coarser clock
	 * a tick behind it, so the bounds are read the logger's way. */
	struct timespec b, a;
	clock_gettime(CLOCK_REALTIME, &b);
	ssize_t n = logged(line, sizeof(line), "link %s reset", "ip-tcp");
	int y, mo, d, h, mi, s, ms, pid, text = 0;
	char who[16];
	cr_assert_eq(sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %15[^[][%d]: %n", &y, &mo, &d, &h,
			    &mi, &s, &ms, who, &pid, &text),
		     9, "%s", line);
	cr_assert_str_eq(who, "tcp");
	cr_assert_eq(pid, getpid());
	cr_assert_str_eq(line + text, "link ip-tcp reset\n");
	cr_assert_eq(line[n - 1], '\n');
	cr_assert_eq(memchr(line, '\n', (size_t)n - 1), NULL, "one line");
	cr_assert(ms >= 0 && ms < 1000);
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			.tm_hour = h, .tm_min = mi, .tm_sec = s};
	time_t t = timegm(&tm);
	clock_gettime(CLOCK_REALTIME, &a);
	cr_assert(t >= b.tv_sec && t <= a.tv_sec, "UTC, now (%lld not in %lld..%lld)", (long long)t,
		  (long long)b.tv_sec, (long long)a.tv_sec);
}

/* A text too long for a line is cut, and the line is still one line
 * with its name and pid in front. */
Test(logger, a_long_text_is_cut_to_one_line)
{
	char big[700], line[1024];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bh_log_as("sock");
	ssize_t n = logged(line, sizeof(line), "%s", big);
	cr_assert_lt(n, 512, "no longer than a line");
	cr_assert_eq(line[n - 1], '\n');
	cr_assert_eq(memchr(line, '\n', (size_t)n - 1), NULL);
	char tag[32];
	snprintf(tag, sizeof(tag), " sock[%d]: ", (int)getpid());
	char *text = strstr(line, tag);
	cr_assert_not_null(text);
	text += strlen(tag);
	size_t len = strlen(text) - 1;
	cr_assert_gt(len, 0);
	cr_assert_lt(len, sizeof(big) - 1, "cut");
	cr_assert_eq(strspn(text, "x"), len, "what is kept is the text's beginning");
}
