/*
 * bench/ip/ip_bench_main.c - the IP receive benchmark as a program of its own; the
 * same code runs as `bulkhead bench ip`.
 */
#include "bench/ip/ip_bench.h"

int main(int argc, char **argv)
{
	return bh_bench_ip_main(argc, argv);
}
