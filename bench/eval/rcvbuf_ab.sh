#!/bin/bash
# bench/eval/rcvbuf_ab.sh TOOL ROUNDS DELAY BYTES - receive-buffer
# auto-tuning off and on (docs/PERFORMANCE.md): the host's Linux sends
# BYTES to one Bulkhead instance (`loadgen bulk --dir down`, every byte
# checked) over TAP with `--impair delay=DELAY` (each way; DELAY "" for a
# plain TAP), tuning off (BULKHEAD_TCP_RCVBUF_MAX=0: the window fixed at
# the starting buffer) and on (the default), alternated in every round.
# One line per measurement, with the tcp domain's rcvbuf_grown.
set -u
[ $# -eq 4 ] || { echo "usage: $0 TOOL ROUNDS DELAY BYTES" >&2; exit 2; }
T=$1 R=$2 DELAY=$3 BYTES=$4
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (TAP)" >&2; exit 1; }
TAP="bhrb$$" PORT=9190
export BULKHEAD_RUN=$(mktemp -d /tmp/bh-rcvbuf.XXXXXX)
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	"$T" down x >/dev/null 2>&1
	ip link del "$TAP" 2>/dev/null
	rm -rf "$BULKHEAD_RUN"
}
trap cleanup EXIT
for r in $(seq "$R"); do
	for mode in off on; do
		rmax=""
		[ $mode = off ] && rmax=0
		env ${rmax:+BULKHEAD_TCP_RCVBUF_MAX=$rmax} timeout 30 "$T" up x --driver "tap:$TAP" --addr 10.95.0.2/24 \
			--host-addr 10.95.0.1/24 ${DELAY:+--impair "delay=$DELAY"} >/dev/null ||
			{ echo "$0: the instance did not start" >&2; exit 1; }
		"$T" loadgen server --kernel --port $PORT 2>/dev/null &
		SRV=$!
		for _ in $(seq 50); do
			"$T" loadgen rr --instance x --host 10.95.0.1 --port $PORT --size 1 --count 1 \
				>/dev/null 2>&1 && break
			sleep 0.1
		done
		m=$(timeout 120 "$T" loadgen bulk --instance x --host 10.95.0.1 --port $PORT \
			--bytes "$BYTES" --dir down 2>&1 | grep -o 'mbps=[0-9.]*')
		sleep 0.1 # counters are published every 50 ms
		echo "round $r tuning $mode ${m:-mbps=none} grown=$("$T" stats x | awk '$1 == "tcp.rcvbuf_grown" {print $2}')"
		kill "$SRV" 2>/dev/null
		wait "$SRV" 2>/dev/null
		SRV=""
		"$T" down x >/dev/null
		ip link del "$TAP" 2>/dev/null
	done
done
