#!/bin/bash
# bench/tcp/sweep.sh [FIRST LAST] - runs the TCP simulation over seeds
# FIRST..LAST (default 100..300) for each spec below and prints the
# failures and a count per spec. Build first:
#   bazel build //bench/tcp:tcp_bench_bin
# A failing seed replays with --trace (docs/TCP.md, "Simulation").
set -u
bin="${BH_SIM_BIN:-bazel-bin/bench/tcp/tcp_bench_bin}"
first="${1:-100}" last="${2:-300}"
specs=(
	'bytes=1M,loss=5%'
	'bytes=1M,back=1M,loss=3%,reorder=5%,dup=3%'
	'bytes=200K,back=200K,loss=20%'
	'bytes=200K,back=200K,loss=10%,reorder=10%,dup=5%,nosack=1'
	'bytes=1M,loss=2%,reorder=5%,dup=2%,corrupt=1%,split=10%,delay=5ms,rate=100m'
	'bytes=1M,mss=100,loss=2%,reorder=5%'
	'pool=200,bytes=1M,back=1M,loss=1%'
	'rrate=20m,buf=16K,loss=2%,reorder=2%'
	'buf=8K,loss=3%,reorder=3%'
	'mss=536,nots=1,nows=1,loss=3%,dup=3%,reorder=3%'
	'early=1,earlyshut=1,bytes=1K,loss=5%'
	'wmin=1,wmax=3,loss=2%,bytes=64K'
	'bytes=2M,loss=1%,delay=20ms,rate=50m'
)
total=0
for spec in "${specs[@]}"; do
	f=0
	for s in $(seq "$first" "$last"); do
		if ! timeout 60 "$bin" --sim --seed "$s" --spec "$spec" >/dev/null 2>&1; then
			f=$((f + 1))
			echo "FAIL: $bin --sim --seed $s --spec '$spec' --trace"
		fi
	done
	echo "$spec: $f failed of $((last - first + 1))"
	total=$((total + f))
done
[ "$total" -eq 0 ]
