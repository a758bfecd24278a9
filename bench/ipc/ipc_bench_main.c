/*
 * bench/ipc/ipc_bench_main.c - the IPC benchmark as a program of its own; the same
 * code runs as `bulkhead bench ipc`.
 */
#include "bench/ipc/ipc_bench.h"

int main(int argc, char **argv)
{
	return bh_bench_ipc_main(argc, argv);
}
