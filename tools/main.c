/*
 * tools/main.c - the `bulkhead` tool: one program that hands each
 * command (the usage text below lists them) to its module: the instance
 * commands (instance.h), the applications (apps/apps.h), the benchmarks
 * (bench/), and the two commands the supervisor starts its domains with,
 * `__domain NAME` and `__mono` (domains/rt.h). The launcher (../bulkhead)
 * handles demo, test, build and the evaluation itself and hands every
 * other command to this one. An unknown command exits with status 2.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/ip/ip_bench.h"
#include "bench/ipc/ipc_bench.h"
#include "bench/tcp/tcp_bench.h"
#include "domains/plan.h"
#include "domains/rt.h"
#include "apps/apps.h"
#include "tools/instance.h"

#define BH_VERSION "0.1.0"

static void bh_usage(FILE *f)
{
	fputs("usage: bulkhead COMMAND [ARGS...]\n"
	      "\n"
	      "commands:\n"
	      "  up NAME --driver SPEC --addr A.B.C.D/LEN [--gw IP] [--mode factored|mono]\n"
	      "     [--mtu N] [--capture FILE] [--impair SPEC] [--host-addr CIDR]\n"
	      "                      start an instance in the background; returns once\n"
	      "                      it serves traffic (bulkhead up --help)\n"
	      "  down NAME           stop it\n"
	      "  status NAME [--json] each domain: pid, state, restarts, uptime\n"
	      "  stats NAME [--json]  counters of every domain\n"
	      "  conns NAME [--json]  TCP connections: endpoints, state, cwnd, srtt, ...\n"
	      "  logs NAME [DOMAIN]   the instance's log lines\n"
	      "  inject NAME DOMAIN FAULT [--seed N]  fault injection: DOMAIN driver, ip,\n"
	      "                      tcp or sock; FAULT kill, crash, hang, scribble, bad-desc,\n"
	      "                      syscall\n"
	      "  serve NAME --port P --root DIR   HTTP/1.1 file server on the instance\n"
	      "  get NAME URL [-o FILE]           HTTP client on the instance\n"
	      "  nc NAME [-l] [-u] [-w SECS] HOST PORT  netcat on the instance\n"
	      "  run NAME [--host-fallback] [--] CMD [ARGS...]  run an unmodified program\n"
	      "                      with its sockets on the instance (bulkhead run --help)\n"
	      "  loadgen MODE (--instance NAME | --kernel) ...  load generator over\n"
	      "                      Bulkhead or kernel sockets (bulkhead loadgen)\n"
	      "  bench ipc [OPTIONS] measure the IPC layer against its baselines\n"
	      "                      (bulkhead bench ipc --help for the options)\n"
	      "  bench ip [OPTIONS]  measure the IP library's receive path\n"
	      "  bench tcp [OPTIONS] measure the TCP library: cost per segment, goodput\n"
	      "                      over a simulated lossy path; replay a simulation\n"
	      "  bench [--quick] [--smoke] [--check] [--out DIR]  (through the launcher ./bulkhead)\n"
	      "                      the evaluation: factored, mono, Linux over veth and\n"
	      "                      TAP, every workload, a report with tables and plots\n"
	      "  version             print the version\n"
	      "  help                this text\n"
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
	if (strcmp(cmd, "__domain") == 0 && argc >= 3) {
		for (int d = 0; d < BH_NDOMS; d++)
			if (strcmp(argv[2], bh_dom_name(d)) == 0)
				return bh_rt_run_domain(d, argc >= 5 && strcmp(argv[4], "restart") == 0);
		return 2;
	}
	if (strcmp(cmd, "__mono") == 0)
		return bh_rt_run_mono();
	if (strcmp(cmd, "up") == 0) {
		char exe[512];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0) {
			perror("bulkhead: /proc/self/exe");
			return 1;
		}
		exe[n] = '\0';
		return bh_cmd_up(argc - 1, argv + 1, exe);
	}
	if (strcmp(cmd, "down") == 0)
		return bh_cmd_down(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "stats") == 0 || strcmp(cmd, "conns") == 0)
		return bh_cmd_query(argc - 1, argv + 1);
	if (strcmp(cmd, "inject") == 0)
		return bh_cmd_inject(argc - 1, argv + 1);
	if (strcmp(cmd, "logs") == 0)
		return bh_cmd_logs(argc - 1, argv + 1);
	if (strcmp(cmd, "serve") == 0)
		return bh_cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "get") == 0)
		return bh_cmd_get(argc - 1, argv + 1);
	if (strcmp(cmd, "nc") == 0)
		return bh_cmd_nc(argc - 1, argv + 1);
	if (strcmp(cmd, "run") == 0)
		return bh_cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "loadgen") == 0)
		return bh_cmd_loadgen(argc - 1, argv + 1);
	fprintf(stderr, "bulkhead: unknown command '%s'\n", cmd);
	bh_usage(stderr);
	return 2;
}
