/*
 * bench/ip/ip_bench.h - `bulkhead bench ip`: the IP library's receive path
 * on one core. The method is at the top of ip_bench.c.
 */
#ifndef BH_BENCH_IP_BENCH_H
#define BH_BENCH_IP_BENCH_H

/* Runs the benchmark and prints a Markdown table (or JSON with --json).
 * Returns 0 when every case ran and every frame was delivered and given
 * back, 1 otherwise, 2 on a usage error. A target that is not met is
 * reported as SHORT and does not change the status. */
int bh_bench_ip_main(int argc, char **argv);

#endif /* BH_BENCH_IP_BENCH_H */
