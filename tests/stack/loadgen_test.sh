#!/bin/bash
# The load generator's own workloads over two factored instances on a
# wire, each checked by the generator itself (verified=1): the short form
# of bench_test for the ThreadSanitizer pass (bench_test, which drives
# every system of the evaluation, is too long there; this drives the
# same client library and the generator's threads).
. "$(dirname "$0")/lib.sh"
check "pair up" bash -c "timeout 30 '$B' up a --driver wire:lg:0 --addr 10.9.0.1/24 >/dev/null &&
	timeout 30 '$B' up b --driver wire:lg:1 --addr 10.9.0.2/24 >/dev/null"
"$B" loadgen server --instance a --port 9000 2>"$WORK/server.err" &
srv=$!
run() { # run WORKLOAD ARGS...: one run, verified by the generator
	local out
	out="$(timeout 120 "$B" loadgen "$@" --instance b --host 10.9.0.1 --port 9000 2>&1)"
	echo "$out"
	grep -q 'verified=1' <<<"$out"
}
ready=0
for _ in $(seq 50); do run rr --size 1 --count 1 >/dev/null && { ready=1; break; }; sleep 0.1; done
check "the load generator's server answers" [ "$ready" -eq 1 ]
check "bulk up, 4 MiB, verified" run bulk --bytes $((4 << 20)) --dir up
check "bulk down, 4 MiB, verified" run bulk --bytes $((4 << 20)) --dir down
check "1-byte exchanges, verified" run rr --size 1 --count 200
check "64 KiB exchanges, verified" run rr --size 65536 --count 20
check "connect, exchange, close, verified" run crr --size 64 --count 50
check "20 connections at once, verified" run conc --conns 20 --size 64 --count 200
check "UDP exchanges, verified" run udp --size 64 --count 100
kill $srv
wait $srv 2>/dev/null
check "the server logged no error" bash -c "! grep -qi 'error' '$WORK/server.err'"
timeout 20 "$B" down a >/dev/null
timeout 20 "$B" down b >/dev/null
finish
