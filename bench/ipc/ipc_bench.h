/*
 * bench/ipc/ipc_bench.h - `bulkhead bench ipc`: what the IPC layer (ipc/ring.h,
 * ipc/ntfn.h) costs next to the mechanisms it stands in for, measured in one
 * run so the IPC layer's targets can be checked as ratios. The method and the
 * list of tests are at the top of ipc_bench.c.
 */
#ifndef BH_BENCH_IPC_BENCH_H
#define BH_BENCH_IPC_BENCH_H

/*
 * Runs the benchmark and prints its report on stdout (a Markdown table, or
 * one JSON object with --json). argv[0] names the command and is not parsed;
 * the options follow it (--help lists them).
 *
 * Returns the exit status: 0 when every test ran and every descriptor arrived
 * intact and in order; 1 when a test failed (an error, a lost or reordered
 * descriptor, a peer that died or hung); 2 on a usage error. A target that is
 * not met is reported as SHORT and does not change the status: the numbers
 * are the result, not a verdict on the run.
 */
int bh_bench_ipc_main(int argc, char **argv);

#endif /* BH_BENCH_IPC_BENCH_H */
