#!/bin/bash
# bench/eval/bulk_ab.sh OLD_DIR NEW_DIR ROUNDS - a before and after of one
# change for bulk and 1-byte request/response: two mono instances over
# wire:, iperf3 under `bulkhead run` (3 s), then `loadgen bulk` (512 MiB)
# and `loadgen rr` (1 byte, 2000), with the default rings and with
# --max-conns 1100 (MCS="none mc" by default: "none" or "mc" to pick);
# the two builds alternated. Each DIR holds a `bulkhead` and its
# libbulkhead_preload.so. One line per measurement.
set -u
[ $# -eq 3 ] || { echo "usage: $0 OLD_DIR NEW_DIR ROUNDS" >&2; exit 2; }
OLD=$1 NEW=$2 ROUNDS=$3
TMP=$(mktemp -d /tmp/bh-bab.XXXXXX)
export BULKHEAD_RUN=$TMP/run
mkdir -p "$BULKHEAD_RUN"
T=""
trap '[ -n "$T" ] && { "$T" down a >/dev/null 2>&1; "$T" down b >/dev/null 2>&1; }; rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
	for mcw in ${MCS:-none mc}; do
		mc=""
		[ "$mcw" = mc ] && mc="--max-conns 1100"
		for which in old new; do
			D=$OLD
			[ $which = new ] && D=$NEW
			T=$D/bulkhead
			export BULKHEAD_PRELOAD=$D/libbulkhead_preload.so
			"$T" up a --driver wire:bab$$:0 --addr 10.97.0.1/24 --mode mono $mc >/dev/null &&
				"$T" up b --driver wire:bab$$:1 --addr 10.97.0.2/24 --mode mono $mc >/dev/null ||
				{ echo "$0: the instances did not start" >&2; exit 1; }
			"$T" run a -- iperf3 -s -4 -1 -p 5210 >/dev/null 2>&1 &
			sleep 0.5
			g=$("$T" run b -- timeout 60 iperf3 -4 -c 10.97.0.1 -p 5210 -t 3 -J 2>/dev/null |
				python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' 2>/dev/null)
			"$T" loadgen server --instance a --port 9100 2>/dev/null &
			lp=$!
			sleep 0.3
			l=$("$T" loadgen bulk --instance b --host 10.97.0.1 --port 9100 --bytes $((512 << 20)) 2>/dev/null |
				sed -n 's/.*mbps=\([0-9.]*\).*/\1/p')
			rr=$("$T" loadgen rr --instance b --host 10.97.0.1 --port 9100 --size 1 --count 2000 2>/dev/null |
				sed -n 's/.*per_s=\([0-9.]*\).*/\1/p')
			kill $lp
			sleep 0.2
			echo "$r ${mc:-default} $which iperf_gbps=$g loadgen_bulk_mbps=$l rr_per_s=$rr"
			"$T" down a >/dev/null
			"$T" down b >/dev/null
		done
	done
done
