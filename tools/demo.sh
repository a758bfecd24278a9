#!/bin/bash
# tools/demo.sh TOOL - what `./bulkhead demo` runs once the tool is built:
# two instances over a shared-memory wire download a file over HTTP,
# factored and then monolithic, three times each in turn, with every
# SHA-256 checked; the throughput ratio; then, as root, Linux curl fetching
# from `bulkhead serve` over a TAP interface. Everything it starts it
# stops, also on failure or Ctrl-C.
set -u
TOOL="$1"
SIZE_MIB="${BULKHEAD_DEMO_MIB:-256}"
ROUNDS="${BULKHEAD_DEMO_ROUNDS:-3}"
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-demo.XXXXXX)"
WORK="$(mktemp -d /tmp/bh-demo-www.XXXXXX)"
TAP="bhdemo$$"
SRV=""
FAILED=0

. "$(dirname "$0")/instances.sh"
cleanup() {
	stop_all
	ip link del "$TAP" >/dev/null 2>&1
	rm -rf "$BULKHEAD_RUN" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*"; }
bad() { say "  FAILED: $*"; FAILED=1; }

# serve_on INSTANCE: starts bulkhead serve on port 8080 of INSTANCE.
serve_on() {
	"$TOOL" serve "$1" --port 8080 --root "$WORK" 2>/dev/null &
	SRV=$!
	sleep 0.3
}

# pair MODE: instances a and b over wire:demo, serving from a.
pair() {
	timeout 30 "$TOOL" up a --driver wire:demo:0 --addr 10.99.0.1/24 --mode "$1" >/dev/null &&
		timeout 30 "$TOOL" up b --driver wire:demo:1 --addr 10.99.0.2/24 --mode "$1" >/dev/null &&
		serve_on a
}

# fetch: one download from a to b; prints its Mbit/s and succeeds, or
# prints why it failed and fails (it runs in a subshell: the caller
# records the failure).
fetch() {
	local out
	rm -f "$WORK/got"
	out="$(timeout 120 "$TOOL" get b "http://10.99.0.1:8080/file" -o "$WORK/got" 2>&1 | tail -1)"
	if [ "$(sha256sum <"$WORK/got" 2>/dev/null)" != "$WANT" ]; then
		echo "download failed or SHA-256 differs: $out"
		return 1
	fi
	sed -n 's/.* \([0-9.]*\) Mbit\/s.*/\1/p' <<<"$out"
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }

say "Bulkhead demo: $(nproc) cores, $(uname -sr)"
say ""
head -c "$((SIZE_MIB * 1048576))" /dev/urandom >"$WORK/file"
WANT="$(sha256sum <"$WORK/file")"

declare -A RATE
say "1. Two instances over a shared-memory wire; HTTP download of $SIZE_MIB MiB,"
say "   $ROUNDS rounds each, factored (four processes per instance) and mono"
say "   (one process per instance), in turn; every SHA-256 checked."
for r in $(seq "$ROUNDS"); do
	for mode in factored mono; do
		if ! pair "$mode"; then
			bad "$mode instances did not come up"
			stop_all
			continue
		fi
		if [ "$r" -eq 1 ] && [ "$mode" = factored ]; then
			say ""
			"$TOOL" status a | sed 's/^/   /'
			say ""
		fi
		if v="$(fetch)" && [ -n "$v" ]; then
			RATE[$mode]+="$v "
			printf '   round %d  %-8s  %8s Mbit/s  SHA-256 ok\n' "$r" "$mode" "$v"
		else
			printf '   round %d  %-8s  failed\n' "$r" "$mode"
			bad "$v"
		fi
		stop_all
	done
done
F="$(tr ' ' '\n' <<<"${RATE[factored]:-}" | grep . | median)"
M="$(tr ' ' '\n' <<<"${RATE[mono]:-}" | grep . | median)"
say ""
if [ -n "$F" ] && [ -n "$M" ]; then
	say "   median: factored $F Mbit/s, mono $M Mbit/s;" \
		"factored/mono = $(awk -v f="$F" -v m="$M" 'BEGIN {printf "%.2f", f / m}')"
else
	bad "no figures to compare"
fi

say ""
if [ "$(id -u)" -eq 0 ] && command -v curl >/dev/null; then
	say "2. Linux curl fetching from bulkhead serve over a TAP interface ($TAP)"
	if timeout 30 "$TOOL" up t --driver "tap:$TAP" --host-addr 10.98.0.1/24 \
		--addr 10.98.0.2/24 >/dev/null; then
		serve_on t
		rm -f "$WORK/got"
		bps="$(curl -sS --max-time 120 -o "$WORK/got" -w '%{speed_download}' \
			http://10.98.0.2:8080/file 2>&1)"
		if [ "$(sha256sum <"$WORK/got" 2>/dev/null)" = "$WANT" ]; then
			say "   curl: $SIZE_MIB MiB at $(awk -v b="$bps" 'BEGIN {printf "%.1f", b * 8 / 1e6}') Mbit/s, SHA-256 ok"
		else
			bad "curl over TAP: $bps"
		fi
		stop_all
	else
		bad "the TAP instance did not come up"
	fi
else
	say "2. (skipped: Linux curl over TAP needs root)"
fi

say ""
if [ "$FAILED" -eq 0 ]; then
	say "Every transfer arrived intact; everything the demo started is stopped."
	say "More: bulkhead stats/conns/logs NAME while an instance runs; docs/PERFORMANCE.md."
else
	say "Something failed (above); everything the demo started is stopped."
fi
exit "$FAILED"
