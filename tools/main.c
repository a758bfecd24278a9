/*
 * tools/main.c - the `bulkhead` tool: one program, one subcommand per
 * line of the brief's command table. The launcher (../bulkhead) handles
 * demo, test and build itself and hands every other command to this one.
 *
 * Commands of the contract that this build does not implement yet say so
 * and exit with status 2, like an unknown command, so that a script never
 * mistakes a missing feature for success.
 */
#include <stdio.h>
#include <string.h>

#include "bench/ip/ip_bench.h"
#include "bench/ipc/ipc_bench.h"
#include "bench/tcp/tcp_bench.h"

#define BH_VERSION "0.1.0"

/* The brief's commands still to be built (see its interface contract). */
static const char *const bh_pending_cmds[] = {
    "up", "down", "status", "stats", "conns", "logs", "inject", "serve", "get", "nc",
};

static void bh_usage(FILE *f)
{
	fputs("usage: bulkhead COMMAND [ARGS...]\n"
	      "\n"
	      "commands:\n"
	      "  bench ipc [OPTIONS] measure the IPC layer against its baselines\n"
	      "                      (bulkhead bench ipc --help for the options)\n"
	      "  bench ip [OPTIONS]  measure the IP library's receive path\n"
	      "  bench tcp [OPTIONS] measure the TCP library: cost per segment, goodput\n"
	      "                      over a simulated lossy path; replay a simulation\n"
	      "  version             print the version\n"
	      "  help                this text\n"
	      "\n"
	      "not available in this build yet:\n"
	      "  up, down, status, stats, conns, logs, inject, serve, get, nc\n"
	      "\n"
	      "The launcher ./bulkhead also runs: demo, test [--all], build.\n",
	      f);
}

static void bh_bench_usage(FILE *f)
{
	fputs("usage: bulkhead bench BENCHMARK [OPTIONS]\n"
	      "\n"
	      "benchmarks:\n"
	      "  ipc    rings and notifications against a function call, a shared\n"
	      "         cache line, a futex, a pipe, an eventfd and a socketpair\n"
	      "         (bulkhead bench ipc --help for its options)\n"
	      "  ip     the IP library's receive path on one core: packets per\n"
	      "         second for 64- and 1514-byte frames\n"
	      "         (bulkhead bench ip --help for its options)\n"
	      "  tcp    the TCP library: send and receive processing per segment,\n"
	      "         goodput over a simulated 10 ms, 1 Gbit/s path with 0-5% loss;\n"
	      "         --sim replays one run of the test simulation\n"
	      "         (bulkhead bench tcp --help for its options)\n",
	      f);
}

/* argv[0] is "bench". */
static int bh_cmd_bench(int argc, char **argv)
{
	if (argc < 2) {
		bh_bench_usage(stderr);
		return 2;
	}
	const char *what = argv[1];
	if (strcmp(what, "ipc") == 0)
		return bh_bench_ipc_main(argc - 1, argv + 1);
	if (strcmp(what, "ip") == 0)
		return bh_bench_ip_main(argc - 1, argv + 1);
	if (strcmp(what, "tcp") == 0)
		return bh_bench_tcp_main(argc - 1, argv + 1);
	if (strcmp(what, "help") == 0 || strcmp(what, "-h") == 0 || strcmp(what, "--help") == 0) {
		bh_bench_usage(stdout);
		return 0;
	}
	fprintf(stderr, "bulkhead: unknown benchmark '%s'\n", what);
	bh_bench_usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		bh_usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		bh_usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("bulkhead %s\n", BH_VERSION);
		return 0;
	}
	if (strcmp(cmd, "bench") == 0)
		return bh_cmd_bench(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(bh_pending_cmds) / sizeof(bh_pending_cmds[0]); i++) {
		if (strcmp(cmd, bh_pending_cmds[i]) == 0) {
			fprintf(stderr, "bulkhead: '%s' is not available in this build yet\n", cmd);
			return 2;
		}
	}
	fprintf(stderr, "bulkhead: unknown command '%s'\n", cmd);
	bh_usage(stderr);
	return 2;
}
