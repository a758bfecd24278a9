/*
 * domains/logger.c - the instance log's line format (logger.h).
 */
#include "domains/logger.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ipc/log.h"

/* Whose line it is: in mono, the loop names each domain as it runs it. */
static const char *log_dom = "bulkhead";

static void log_line(const char *text)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char line[512];
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: %s\n",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, log_dom, (int)getpid(), text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write: with O_APPEND, lines of different domains never mix. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void bh_log_init(const char *who)
{
	log_dom = who;
	bh_log_set_hook(log_line);
}

void bh_log_as(const char *who)
{
	log_dom = who;
}

void bh_logf(const char *fmt, ...)
{
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_line(text);
}

