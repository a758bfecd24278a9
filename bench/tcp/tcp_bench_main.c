/*
 * bench/tcp/tcp_bench_main.c - the TCP benchmark and simulation replay as a program
 * of its own; the same code runs as `bulkhead bench tcp`.
 */
#include "bench/tcp/tcp_bench.h"

int main(int argc, char **argv)
{
	return bh_bench_tcp_main(argc, argv);
}
