#!/bin/bash
# bench/stack/run.sh TOOL [--quick] - `./bulkhead bench stack`: bulk
# throughput and request/response latency of the running stack, the same
# load generator (bulkhead loadgen) over
#   - two Bulkhead instances over wire:, factored (four processes each),
#   - the same, mono (one process each),
#   - the Linux kernel's TCP between two network namespaces over veth at
#     the same MTU (root only),
# in one run, in turn, ROUNDS times; prints the medians and the ratios
# as a Markdown table. Everything it starts it stops.
set -u
TOOL="$1"
shift
QUICK=0
for a in "$@"; do
	case "$a" in
	--quick) QUICK=1 ;;
	*) echo "usage: bulkhead bench stack [--quick]" >&2; exit 2 ;;
	esac
done
if [ "$QUICK" -eq 1 ]; then
	ROUNDS=1 BYTES=$((64 << 20)) RR=500
else
	ROUNDS=3 BYTES=$((512 << 20)) RR=5000
fi
MTU=1500
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-bench.XXXXXX)"
OUT="$(mktemp -d /tmp/bh-bench-out.XXXXXX)"
NS1="bhbn1$$" NS2="bhbn2$$"
SRV=""

. "$(dirname "$0")/../../tools/instances.sh"
cleanup() {
	stop_all
	for ns in "$NS1" "$NS2"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$BULKHEAD_RUN" "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# measure SYSTEM: every workload once against the server at $HOST:9000,
# through the client command CLI; appends each figure to $OUT/SYSTEM.*.
measure() {
	local sys="$1" line
	line="$("${CLI[@]}" bulk --host "$HOST" --port 9000 --bytes "$BYTES")" &&
		sed -n 's/.*mbps=\([0-9.]*\).*/\1/p' <<<"$line" >>"$OUT/$sys.bulk"
	for size in 1 1024 16384; do
		line="$("${CLI[@]}" rr --host "$HOST" --port 9000 --size "$size" --count "$RR")" || continue
		sed -n 's/.*per_s=\([0-9.]*\).*/\1/p' <<<"$line" >>"$OUT/$sys.rr$size.per_s"
		sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$line" >>"$OUT/$sys.rr$size.p50"
		sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$line" >>"$OUT/$sys.rr$size.p99"
	done
}

bulkhead_round() { # bulkhead_round MODE
	timeout 30 "$TOOL" up a --driver wire:bench:0 --addr 10.97.0.1/24 --mtu "$MTU" --mode "$1" >/dev/null &&
		timeout 30 "$TOOL" up b --driver wire:bench:1 --addr 10.97.0.2/24 --mtu "$MTU" --mode "$1" >/dev/null ||
		{ echo "bench: $1 instances did not start" >&2; stop_all; return 1; }
	"$TOOL" loadgen server --instance a --port 9000 &
	SRV=$!
	sleep 0.3
	CLI=(client_bh)
	HOST=10.97.0.1
	measure "$1"
	stop_all
}
client_bh() { timeout 120 "$TOOL" loadgen "$1" --instance b "${@:2}"; }
client_kernel() { timeout 120 ip netns exec "$NS2" "$TOOL" loadgen "$1" --kernel "${@:2}"; }

LINUX=0
linux_setup() {
	[ "$(id -u)" -eq 0 ] || return 1
	ip netns add "$NS1" && ip netns add "$NS2" || return 1
	ip link add bhbv1 netns "$NS1" type veth peer name bhbv2 netns "$NS2" || return 1
	ip -n "$NS1" link set bhbv1 mtu "$MTU" up
	ip -n "$NS2" link set bhbv2 mtu "$MTU" up
	ip -n "$NS1" link set lo up
	ip -n "$NS2" link set lo up
	ip -n "$NS1" addr add 10.96.0.1/24 dev bhbv1
	ip -n "$NS2" addr add 10.96.0.2/24 dev bhbv2
}
linux_round() {
	ip netns exec "$NS1" "$TOOL" loadgen server --kernel --port 9000 &
	SRV=$!
	sleep 0.3
	CLI=(client_kernel)
	HOST=10.96.0.1
	measure linux
	stop_all
}

if linux_setup; then
	LINUX=1
else
	echo "bench: the Linux-over-veth column needs root and network namespaces; left out" >&2
fi

echo "bench stack: $ROUNDS round(s); bulk $((BYTES >> 20)) MiB, request/response $RR exchanges;" \
	"MTU $MTU; $(nproc) cores, $(uname -r)" >&2
for r in $(seq "$ROUNDS"); do
	echo "bench stack: round $r of $ROUNDS" >&2
	bulkhead_round factored
	bulkhead_round mono
	[ "$LINUX" -eq 1 ] && linux_round
done

med() { [ -s "$1" ] && sort -g "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}' || echo "-"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }
# For latencies lower is better: the ratio shown is b/a so that above 1
# still means the first system is better.
iratio() { ratio "$2" "$1"; }

SYS=(factored mono)
[ "$LINUX" -eq 1 ] && SYS+=(linux)
echo
echo "| workload | factored | mono | linux (veth) | factored/mono | factored/linux | mono/linux |"
echo "|---|---|---|---|---|---|---|"
row() { # row LABEL FILE-SUFFIX KIND(hi|lo)
	local f m l
	f="$(med "$OUT/factored.$2")" m="$(med "$OUT/mono.$2")" l="$(med "$OUT/linux.$2")"
	local r=ratio
	[ "$3" = lo ] && r=iratio
	echo "| $1 | $f | $m | $l | $($r "$f" "$m") | $($r "$f" "$l") | $($r "$m" "$l") |"
}
row "bulk, Mbit/s" bulk hi
for size in 1 1024 16384; do
	row "rr ${size} B, exchanges/s" "rr$size.per_s" hi
	row "rr ${size} B, p50 µs" "rr$size.p50" lo
	row "rr ${size} B, p99 µs" "rr$size.p99" lo
done
echo
echo "Ratios: above 1 means the first system is better (for latency, the inverse ratio)."
echo "Medians of $ROUNDS round(s); each round runs every system in turn."
