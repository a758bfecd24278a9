#!/bin/bash
# bench/eval/nginx_ab.sh OLD_DIR NEW_DIR ROUNDS "MODES" "CONNS" - a before
# and after of one change: nginx (two workers, a 1 KiB page) under
# `bulkhead run` on one instance, wrk under `run` on another, over wire:,
# the two builds alternated in each round so the machine's load falls on
# both alike. Each DIR holds a `bulkhead` and its libbulkhead_preload.so
# (copies of bazel-bin/tools/bulkhead and bazel-bin/preload/). Prints one
# line per measurement: round mode build conns requests/s p99 [errors].
# DUR (seconds per wrk run, default 3) may be set.
set -u
[ $# -eq 5 ] || { echo "usage: $0 OLD_DIR NEW_DIR ROUNDS \"MODES\" \"CONNS\"" >&2; exit 2; }
OLD="$1" NEW="$2" ROUNDS="$3" MODES="$4" CONNS="$5" DUR=${DUR:-3}
for t in nginx wrk curl; do command -v $t >/dev/null || { echo "$0: needs $t" >&2; exit 1; }; done
TMP=$(mktemp -d /tmp/bh-ab.XXXXXX)
export BULKHEAD_RUN=$TMP/run
mkdir -p "$BULKHEAD_RUN" "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k"
cat >"$TMP/nginx.conf" <<EOC
user root;
worker_processes 2;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 2048; }
http { access_log off; keepalive_requests 1000000; server { listen 8090; root $TMP/www; } }
EOC
T=""
cleanup() {
	pkill -f "nginx -c $TMP/nginx.conf" 2>/dev/null
	[ -n "$T" ] && { "$T" down a >/dev/null 2>&1; "$T" down b >/dev/null 2>&1; }
	rm -rf "$TMP"
}
trap cleanup EXIT
for r in $(seq "$ROUNDS"); do
	for mode in $MODES; do
		for which in old new; do
			D=$OLD
			[ $which = new ] && D=$NEW
			T=$D/bulkhead
			export BULKHEAD_PRELOAD=$D/libbulkhead_preload.so
			"$T" up a --driver wire:ab$$:0 --addr 10.97.0.1/24 --mode "$mode" --max-conns 1100 >/dev/null &&
				"$T" up b --driver wire:ab$$:1 --addr 10.97.0.2/24 --mode "$mode" --max-conns 1100 >/dev/null ||
				{ echo "$0: the instances did not start" >&2; exit 1; }
			"$T" run a -- nginx -c "$TMP/nginx.conf" >/dev/null 2>&1 &
			for _ in $(seq 100); do
				"$T" run b -- curl -sf -o /dev/null http://10.97.0.1:8090/1k && break
				sleep 0.1
			done
			for n in $CONNS; do
				out=$("$T" run b -- timeout $((DUR + 30)) wrk -t2 -c"$n" -d"${DUR}s" --latency \
					http://10.97.0.1:8090/1k 2>&1)
				echo "$r $mode $which $n $(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
					"$(awk '$1 == "99%" {print $2}' <<<"$out") $(grep -E 'Socket errors|Non-2xx' <<<"$out")"
			done
			pkill -f "nginx -c $TMP/nginx.conf"
			sleep 0.3
			"$T" down a >/dev/null
			"$T" down b >/dev/null
		done
	done
done
