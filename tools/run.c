/*
 * tools/run.c - `bulkhead run NAME [--host-fallback] [--] CMD [ARGS...]`:
 * runs CMD with the preload library (preload/, libbulkhead_preload.so
 * beside this tool: bazel-bin/preload/) in LD_PRELOAD, so that its
 * sockets, and those of everything it forks and execs, go to instance
 * NAME. The tool execs CMD: its exit status is CMD's.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domains/paths.h"
#include "tools/instance.h"

static void run_usage(FILE *f)
{
	fputs("usage: bulkhead run NAME [--host-fallback] [--] CMD [ARGS...]\n"
	      "\n"
	      "Runs CMD (a dynamically linked program) with its IPv4 TCP and UDP\n"
	      "sockets on instance NAME, and those of what it forks and execs.\n"
	      "Loopback, AF_UNIX and AF_INET6 stay with the host's stack; so do\n"
	      "destinations outside the instance's subnet with --host-fallback\n"
	      "(without it they go through the instance's gateway, or fail with\n"
	      "ENETUNREACH when it has none). `bulkhead logs NAME run` says what\n"
	      "went where. The preload library is found beside this tool, or at\n"
	      "$BULKHEAD_PRELOAD.\n",
	      f);
}

/* The preload library: $BULKHEAD_PRELOAD, else ../preload/ from this
 * executable (bazel-bin/tools/bulkhead -> bazel-bin/preload/). */
static int find_preload(char *out, size_t n)
{
	const char *env = getenv("BULKHEAD_PRELOAD");
	if (env && *env) {
		if (snprintf(out, n, "%s", env) >= (int)n)
			return -ENAMETOOLONG;
		return access(out, R_OK) == 0 ? 0 : -errno;
	}
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k < 0)
		return -errno;
	exe[k] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return -ENOENT;
	*slash = '\0';
	if (snprintf(out, n, "%s/../preload/libbulkhead_preload.so", exe) >= (int)n)
		return -ENAMETOOLONG;
	char *r = realpath(out, NULL);
	if (r == NULL)
		return -errno;
	int e = snprintf(out, n, "%s", r) >= (int)n ? -ENAMETOOLONG : 0;
	free(r);
	return e;
}

int bh_cmd_run(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		run_usage(stdout);
		return 0;
	}
	if (argc < 3) {
		run_usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!bh_name_ok(name)) {
		fprintf(stderr, "bulkhead run: '%s' is not an instance name\n", name);
		return 2;
	}
	bool fallback = false;
	int i = 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--host-fallback") == 0) {
			fallback = true;
			continue;
		}
		fprintf(stderr, "bulkhead run: unknown option %s\n", argv[i]);
		run_usage(stderr);
		return 2;
	}
	if (i >= argc) {
		fprintf(stderr, "bulkhead run: no command to run\n");
		return 2;
	}
	char sock[256];
	struct stat st;
	if (bh_inst_path(sock, sizeof(sock), name, "app.sock") != 0 || stat(sock, &st) != 0) {
		fprintf(stderr, "bulkhead run: instance %s is not running (no %s)\n", name, sock);
		return 1;
	}
	char lib[PATH_MAX];
	int e = find_preload(lib, sizeof(lib));
	if (e) {
		fprintf(stderr,
			"bulkhead run: cannot find the preload library libbulkhead_preload.so "
			"(%s); build it with ./bulkhead build, or set BULKHEAD_PRELOAD\n",
			strerror(-e));
		return 1;
	}
	/* Ours first; a program's own preloads stay after it. (The library
	 * is built without sanitizers in every configuration: preload/BUILD.) */
	const char *old = getenv("LD_PRELOAD");
	size_t len = strlen(lib) + (old ? strlen(old) + 2 : 1);
	char *pre = malloc(len);
	if (pre == NULL)
		return 1;
	snprintf(pre, len, "%s%s%s", lib, old && *old ? " " : "", old ? old : "");
	if (setenv("LD_PRELOAD", pre, 1) != 0 || setenv("BULKHEAD_INSTANCE", name, 1) != 0 ||
	    (fallback ? setenv("BULKHEAD_FALLBACK", "host", 1) : unsetenv("BULKHEAD_FALLBACK")) != 0) {
		perror("bulkhead run: setenv");
		return 1;
	}
	execvp(argv[i], argv + i);
	fprintf(stderr, "bulkhead run: %s: %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
