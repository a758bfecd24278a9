/*
 * bench/tcp/tcp_bench.h - `bulkhead bench tcp`: the TCP library's
 * per-segment processing cost and its goodput over a simulated path with
 * loss; also replays one run of the simulation (--sim). The method is at
 * the top of tcp_bench.c.
 */
#ifndef BH_BENCH_TCP_BENCH_H
#define BH_BENCH_TCP_BENCH_H

/* Prints the figures (Markdown, or JSON with --json). Returns 0 when
 * every transfer was verified (every byte, the hash, no buffer leaked), 1
 * otherwise, 2 on a usage error. */
int bh_bench_tcp_main(int argc, char **argv);

#endif /* BH_BENCH_TCP_BENCH_H */
