#!/bin/bash
# bench/eval/run.sh TOOL [--quick] [--smoke] [--out DIR] - `./bulkhead bench`:
# the protection-domain overhead evaluation. One load generator
# (`bulkhead loadgen`, apps/loadgen.c) drives every system in turn, in
# the same run:
#   factored  two Bulkhead instances over wire: (four domain processes each)
#   mono      the same two, each one process (--mode mono)
#   linux     the kernel's TCP between two network namespaces over veth,
#             at the same MTU, the same program over kernel sockets
#             (veth's defaults: TSO and GSO on, GRO off)
#   linuxoff  the same with GSO, TSO and GRO off on both ends (every
#             packet a 1500-byte frame, as Bulkhead's: equal packet work)
#   tap       one Bulkhead instance (factored) against the host's Linux
#             over a TAP interface
# with every CPU free, again with every process pinned to one core
# (equal CPU), and (on two CPUs or more) placed: each instance, with
# `up --cpus`, and its application on a CPU of its own. Every transfer is verified by the load generator (each
# byte against a pattern, each echo against what was sent). Each pinned
# round also measures one futex hand-off between two processes on one
# CPU (`bulkhead bench ipc`), the unit of the latency target.
#
# What it writes to DIR (default bench-out/ in the current directory):
#   report.md      the machine, the tables with ratios, the targets, where
#                  the cost goes
#   check.txt      one line per target: met, missed or not measured
#   results.tsv    every figure: cpu system workload param metric value
#   *.png          plots (gnuplot): throughput vs message size, latency
#                  distributions, connection count, batch and spin sweeps
# --quick: one round of fewer, shorter runs (under two minutes);
# --smoke: the smallest run that still exercises every system and plot
# (the suite runs --quick --smoke and checks the output).
# --check: exit 3 when a target of docs/PERFORMANCE.md is missed or could
# not be measured (after writing the report).
set -u
TOOL="$1"
shift
QUICK=0 SMOKE=0 CHECK=0 OUT="$PWD/bench-out"
usage() { echo "usage: bulkhead bench [--quick] [--smoke] [--check] [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--smoke) SMOKE=1 ;;
	--check) CHECK=1 ;;
	--out) [ $# -ge 2 ] || usage; OUT="$2"; shift ;;
	*) usage ;;
	esac
	shift
done

# --- what to run ------------------------------------------------------------
MTU=1500
if [ "$SMOKE" -eq 1 ]; then
	ROUNDS=1 BULK=$((4 << 20)) RR_SIZES="1 1024 65536" RR_N=40 CRR_N=20 UDP_SIZES="64"
	UDP_N=40 CONC=10 CONNS="1 10" BATCHES="4 64" SPINS="0 100" SWEEP_BULK=$((4 << 20))
	SWEEP_RR=40 COST_BULK=$((4 << 20)) COST_RR=40
elif [ "$QUICK" -eq 1 ]; then
	ROUNDS=1 BULK=$((32 << 20)) RR_SIZES="1 1024 16384 65536" RR_N=300 CRR_N=100
	UDP_SIZES="64 1024" UDP_N=300 CONC=100 CONNS="1 100 1000" BATCHES="1 64" SPINS="0 100"
	SWEEP_BULK=$((16 << 20)) SWEEP_RR=300 COST_BULK=$((32 << 20)) COST_RR=300
else
	ROUNDS=5 BULK=$((256 << 20)) RR_SIZES="1 64 1024 4096 16384 65536" RR_N=2000 CRR_N=500
	UDP_SIZES="64 1024" UDP_N=2000 CONC=100 CONNS="1 10 100 1000 10000" BATCHES="1 4 16 64 256"
	SPINS="0 100 1000 10000" SWEEP_BULK=$((64 << 20)) SWEEP_RR=1000
	COST_BULK=$((128 << 20)) COST_RR=2000
fi
# free: every CPU free; pinned: everything on CPU 0; placed (two CPUs or
# more): each instance (`up --cpus`) with its application on a CPU of
# its own, the server's side on CPU 0 and the client's on CPU 1. The
# cost runs take free and pinned.
COST_CPUS="free pinned"
CPUS="free pinned"
[ "$(nproc)" -ge 2 ] && CPUS="free pinned placed"
MAXCONNS=0
for n in $CONNS; do [ "$n" -gt "$MAXCONNS" ] && MAXCONNS=$n; done

mkdir -p "$OUT" || exit 1
OUT="$(cd "$OUT" && pwd)"
RES="$OUT/results.tsv"
: >"$RES"
: >"$OUT/failures.txt"
: >"$OUT/check.txt"
rm -f "$OUT"/*.png "$OUT"/lat-*.txt "$OUT/report.md" "$OUT"/apps* "$OUT"/loss*
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-eval.XXXXXX)"
TMP="$(mktemp -d /tmp/bh-eval-tmp.XXXXXX)"
NS1="bhen1$$" NS2="bhen2$$" TAP="bhet$$"
SRV=""
PORT=9000

. "$(dirname "$0")/../../tools/instances.sh"
cleanup() {
	stop_all
	for ns in "$NS1" "$NS2"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$BULKHEAD_RUN" "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "bench: $*" >&2; }

# The machine's setting for huge pages in shared memory, for the report:
# Bulkhead's buffer pools ask for them (ipc/region.c), the setting decides.
# The run leaves it as it is: after the warm-up (server_ready) they made
# no difference here (docs/PERFORMANCE.md, "Huge pages for the shared
# regions").
HUGE_NOTE="$(sed -n 's/.*\[\(.*\)\].*/shmem_enabled \1/p' \
	/sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null)"
HUGE_NOTE="${HUGE_NOTE:-not available on this kernel}"

# --- measuring ---------------------------------------------------------------

# Machine-wide busy CPU time, in clock ticks (everything but idle and
# iowait, softirq and the guest's steal included).
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
TICK="$(getconf CLK_TCK)"

# record CPU SYS WORK PARAM METRIC VALUE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES"; }

# measure CPU SYS WORK PARAM LOADGEN-ARGS...: runs the client once, records
# every key=value figure it prints, and the machine's CPU time meanwhile.
measure() {
	local cpu="$1" sys="$2" work="$3" param="$4" line t0 t1
	shift 4
	t0="$(busy_ticks)"
	if ! line="$(client "$@" 2>"$TMP/err")"; then
		say "FAILED: $cpu $sys $work $param: $(tail -1 "$TMP/err")"
		echo "$cpu $sys $work $param: $(tail -1 "$TMP/err")" >>"$OUT/failures.txt"
		return 1
	fi
	t1="$(busy_ticks)"
	record_line "$cpu" "$sys" "$work" "$param" "$line"
	record "$cpu" "$sys" "$work" "$param" cpu_s "$(awk -v t=$((t1 - t0)) -v h="$TICK" 'BEGIN {printf "%.3f", t / h}')"
}

# record_line CPU SYS WORK PARAM LINE: each key=value of a client's line.
record_line() {
	local kv
	for kv in $5; do
		case "$kv" in *=*) record "$1" "$2" "$3" "$4" "${kv%%=*}" "${kv#*=}" ;; esac
	done
}

# The client command for the system under test (set by each system's
# setup): CLIENT_PREFIX, CLIENT_TARGET; run under WRAP (perf stat, for
# the cost runs) when set.
WRAP=()
client() {
	local mode="$1"
	shift
	"${WRAP[@]}" timeout 300 "${CLIENT_PREFIX[@]}" "$TOOL" loadgen "$mode" \
		"${CLIENT_TARGET[@]}" --port "$PORT" "$@"
}

# A warm-up for the 100-connection point, not recorded: 100 rounds over
# N connections. A fresh instance's first tens of rounds over new
# connections cost about five times the later ones (docs/PERFORMANCE.md,
# "Open: the first rounds of many new connections are slow"); after such
# a run, as many new connections are as fast as old ones.
warm_conc() { # warm_conc N
	client conc --conns "$1" --size 64 --count $(($1 * 100)) >/dev/null 2>&1 ||
		say "the warm-up of $1 connections failed; measuring anyway"
}

# Every workload once, against the server that is up.
workloads() { # workloads CPU SYS
	local c="$1" s="$2" size
	measure "$c" "$s" bulk_up "$BULK" bulk --bytes "$BULK" --dir up
	measure "$c" "$s" bulk_down "$BULK" bulk --bytes "$BULK" --dir down
	for size in $RR_SIZES; do
		local n=$RR_N
		[ "$size" -ge 16384 ] && n=$(((RR_N + 3) / 4))
		measure "$c" "$s" rr "$size" rr --size "$size" --count "$n" \
			--samples "$OUT/lat-$c-$s-rr$size.txt"
	done
	measure "$c" "$s" crr 64 crr --size 64 --count "$CRR_N"
	warm_conc "$CONC"
	measure "$c" "$s" conc "$CONC" conc --conns "$CONC" --size 64 --count $((CONC * 10))
	for size in $UDP_SIZES; do
		measure "$c" "$s" udp "$size" udp --size "$size" --count "$UDP_N"
	done
}

# --- the systems -----------------------------------------------------------------

# PIN_A: the server's side (instance a, the server application, the
# Linux server); PIN_B: the client's side. UP_A, UP_B: what `up` adds.
PIN_A=() PIN_B=() UP_A=() UP_B=()
pin_for() {
	PIN_A=() PIN_B=() UP_A=() UP_B=()
	case "$1" in
	pinned) PIN_A=(taskset -c 0) PIN_B=(taskset -c 0) ;;
	placed) PIN_A=(taskset -c 0) PIN_B=(taskset -c 1) UP_A=(--cpus 0) UP_B=(--cpus 1) ;;
	esac
}

# Two Bulkhead instances over wire:, server on a, client on b. Extra
# arguments go to `up` (--max-conns).
bulkhead_up() { # bulkhead_up MODE [UP-ARGS...]
	local mode="$1"
	shift
	timeout 30 "${PIN_A[@]}" "$TOOL" up a --driver wire:eval:0 --addr 10.97.0.1/24 --mtu "$MTU" \
		--mode "$mode" "${UP_A[@]}" "$@" >/dev/null &&
		timeout 30 "${PIN_B[@]}" "$TOOL" up b --driver wire:eval:1 --addr 10.97.0.2/24 \
			--mtu "$MTU" --mode "$mode" "${UP_B[@]}" "$@" >/dev/null ||
		{ say "the $mode instances did not start"; stop_all; return 1; }
	"${PIN_A[@]}" "$TOOL" loadgen server --instance a --port "$PORT" 2>>"$TMP/server.err" &
	SRV=$!
	CLIENT_PREFIX=("${PIN_B[@]}")
	CLIENT_TARGET=(--instance b --host 10.97.0.1)
	server_ready
}

LINUX=0
linux_setup() {
	[ "$(id -u)" -eq 0 ] || return 1
	ip netns add "$NS1" && ip netns add "$NS2" || return 1
	ip link add bhev1 netns "$NS1" type veth peer name bhev2 netns "$NS2" || return 1
	ip -n "$NS1" link set bhev1 mtu "$MTU" up
	ip -n "$NS2" link set bhev2 mtu "$MTU" up
	ip -n "$NS1" link set lo up
	ip -n "$NS2" link set lo up
	ip -n "$NS1" addr add 10.96.0.1/24 dev bhev1
	ip -n "$NS2" addr add 10.96.0.2/24 dev bhev2
}
# linux_up OFFLOADS: the veth's offloads as ethtool -K sets them (veth's
# defaults: TSO and GSO on, GRO off).
linux_up() {
	ip netns exec "$NS1" ethtool -K bhev1 $1 >/dev/null 2>&1 &&
		ip netns exec "$NS2" ethtool -K bhev2 $1 >/dev/null 2>&1 ||
		{ say "ethtool -K cannot set the veth's offloads: $1"; return 1; }
	ip netns exec "$NS1" "${PIN_A[@]}" "$TOOL" loadgen server --kernel --port "$PORT" \
		2>>"$TMP/server.err" &
	SRV=$!
	CLIENT_PREFIX=(ip netns exec "$NS2" "${PIN_B[@]}")
	CLIENT_TARGET=(--kernel --host 10.96.0.1)
	server_ready
}

# Bulkhead (factored) on a TAP interface; the host's Linux is the server.
tap_up() {
	timeout 30 "${PIN_B[@]}" "$TOOL" up t --driver "tap:$TAP" --addr 10.95.0.2/24 \
		--host-addr 10.95.0.1/24 --mtu "$MTU" "${UP_B[@]}" >/dev/null ||
		{ say "the tap instance did not start"; stop_all; return 1; }
	"${PIN_A[@]}" "$TOOL" loadgen server --kernel --port "$PORT" 2>>"$TMP/server.err" &
	SRV=$!
	CLIENT_PREFIX=("${PIN_B[@]}")
	CLIENT_TARGET=(--instance t --host 10.95.0.1)
	server_ready
}

# The server listens once it answers a one-exchange run (at most 5 s).
# Then a warm-up, not recorded, for every system alike: a bulk transfer
# of a quarter of BULK each way. A fresh instance's buffer pools are
# untouched memory, and the kernel gives it pages (zeroed, and on this
# kind of guest first backed by the host) as the buffers are first used:
# about 100 ms for the first 256 MiB each way, which the first bulk run
# of every system would otherwise pay (docs/PERFORMANCE.md, "A warm-up
# before the measured runs").
server_ready() {
	local i warm=$((BULK / 4))
	for i in $(seq 50); do
		if client rr --size 1 --count 1 >/dev/null 2>&1; then
			client bulk --bytes "$warm" --dir up >/dev/null 2>&1 ||
				say "the warm-up bulk up failed; measuring anyway"
			client bulk --bytes "$warm" --dir down >/dev/null 2>&1 ||
				say "the warm-up bulk down failed; measuring anyway"
			return 0
		fi
		sleep 0.1
	done
	say "the load generator's server did not answer"
	stop_all
	return 1
}

system_up() { # system_up SYS [UP-ARGS...]
	local s="$1"
	shift
	case "$s" in
	factored | mono) bulkhead_up "$s" "$@" ;;
	linux) linux_up "gso on tso on gro off" ;;
	linuxoff) linux_up "gso off tso off gro off" ;;
	tap) tap_up ;;
	esac
}

# --- where the cost goes ------------------------------------------------------

PERF_EVENTS="raw_syscalls:sys_enter,context-switches,cpu-migrations,task-clock"
perf_setup() {
	if ! command -v perf >/dev/null; then
		PERF_NOTE="perf is not installed: no system call or context switch counts"
		PERF_EVENTS=""
		return
	fi
	if ! perf stat -a -x, -e "$PERF_EVENTS" true >/dev/null 2>&1; then
		PERF_NOTE="perf stat cannot count system-wide here: no system call counts"
		PERF_EVENTS=""
		return
	fi
	if perf stat -x, -e cycles,instructions true 2>&1 | grep -q "not supported"; then
		PERF_NOTE="cycles and instructions: not supported on this machine (no hardware counters in this guest); system calls and context switches from perf's software events"
	else
		PERF_EVENTS="$PERF_EVENTS,cycles,instructions"
		PERF_NOTE="cycles and instructions from perf stat's hardware counters"
	fi
}

# Bulkhead's counters, summed over both instances: name value lines.
bh_counters() {
	local i
	for i in "$@"; do timeout 10 "$TOOL" stats "$i" 2>/dev/null; done |
		awk '$1 ~ /^(sock\.(rx|tx)_bytes|tcp\.(copy|csum|chain)_bytes|driver\.dev\.(rx|tx|tx_csum)_bytes|driver\.tx_linear_bytes)$/ {
				w[$1] += $2 }
			{n = $1; sub(/^[a-z]+\./, "", n)
			if (n ~ /^chan\.[a-z-]+\.(sent|notifies|signals|wakes|received|rx_batches)$/) {
				sub(/^chan\.[a-z-]+\./, "", n); s["chan_" n] += $2 }
			else if (n ~ /^dev\.(tx|rx)_frames$/) { sub(/^dev\./, "", n); s[n] += $2 }
			else if (n == "dev.peer_wakes") s["peer_wakes"] += $2
			else if (n == "loop.sleeps" || n == "poller.wakes" || n == "app_signals") s[n] += $2 }
			END {for (k in s) print k, s[k]; for (k in w) print "work." k, w[k]}'
}
# Per-process CPU ticks of the domains of an instance: "inst.domain ticks"
# ("inst.all" when one process runs them all: mono).
dom_cpu() {
	local i
	for i in "$@"; do
		timeout 10 "$TOOL" status "$i" --json 2>/dev/null |
			grep -o '"name": "[a-z]*", "pid": [0-9]*' |
			sed 's/"name": "\([a-z]*\)", "pid": \([0-9]*\)/\1 \2/' |
			awk -v i="$i" '{d[NR] = $1; p[NR] = $2; u[$2] = 1} END {
				n = 0; for (x in u) n++
				for (k = 1; k <= NR; k++) if (n > 1 || k == 1) print (n > 1 ? i "." d[k] : i ".all"), p[k] }' |
			while read -r d p; do
				awk -v n="$d" '{sub(/^.*\) /, ""); print n, $12 + $13}' "/proc/$p/stat" 2>/dev/null
			done
	done
}
veth_packets() {
	local a b
	a="$(ip netns exec "$NS1" cat /sys/class/net/bhev1/statistics/tx_packets)"
	b="$(ip netns exec "$NS2" cat /sys/class/net/bhev2/statistics/tx_packets)"
	echo $((a + b))
}

# cost CPU SYS WORK PARAM LOADGEN-ARGS: one run under perf stat, with
# Bulkhead's own counters and per-domain CPU read before and after.
cost() {
	local cpu="$1" sys="$2" work="$3" param="$4" insts=() pk0 pk1
	shift 4
	case "$sys" in factored | mono) insts=(a b) ;; tap) insts=(t) ;; esac
	if [ "${#insts[@]}" -gt 0 ]; then
		# Counters are published every 50 ms: what ran just before
		# (a warm-up, the last round) is all in before we start.
		sleep 0.15
		bh_counters "${insts[@]}" >"$TMP/c0"
		dom_cpu "${insts[@]}" >"$TMP/d0"
	else
		pk0="$(veth_packets)"
	fi
	local line rc
	[ -n "$PERF_EVENTS" ] && WRAP=(perf stat -a -x, -e "$PERF_EVENTS" -o "$TMP/perf" --)
	line="$(client "$@" 2>"$TMP/err")"
	rc=$?
	WRAP=()
	[ "$rc" -eq 0 ] || { say "FAILED: cost $cpu $sys $work"; return 1; }
	# Counters are published every 50 ms.
	sleep 0.15
	local k="cost_$work"
	if [ "${#insts[@]}" -gt 0 ]; then
		bh_counters "${insts[@]}" >"$TMP/c1"
		dom_cpu "${insts[@]}" >"$TMP/d1"
		awk 'NR == FNR {a[$1] = $2; next} {print $1, $2 - a[$1]}' "$TMP/c0" "$TMP/c1" |
			while read -r n v; do record "$cpu" "$sys" "$k" "$param" "$n" "$v"; done
		awk -v t="$TICK" 'NR == FNR {a[$1] = $2; next} {printf "%s %.3f\n", $1, ($2 - a[$1]) / t}' \
			"$TMP/d0" "$TMP/d1" |
			while read -r n v; do record "$cpu" "$sys" "$k" "$param" "cpu_s.$n" "$v"; done
	else
		pk1="$(veth_packets)"
		record "$cpu" "$sys" "$k" "$param" frames $((pk1 - pk0))
	fi
	if [ -n "$PERF_EVENTS" ]; then
		awk -F, '$3 != "" && $1 ~ /^[0-9.]+$/ {print $3, $1}' "$TMP/perf" |
			while read -r n v; do record "$cpu" "$sys" "$k" "$param" "perf.$n" "$v"; done
	fi
	record_line "$cpu" "$sys" "$k" "$param" "$line"
}

# --- the run -----------------------------------------------------------------------

SYSTEMS=(factored mono)
if linux_setup; then
	LINUX=1
	SYSTEMS+=(linux linuxoff tap)
else
	say "the Linux columns (veth, TAP) need root and network namespaces; left out"
fi
perf_setup
say "$PERF_NOTE"
START="$(date +%s)"
say "$ROUNDS round(s) on $(nproc) cores, $(uname -r); results in $OUT"

# One futex hand-off between two processes on one CPU: half the round
# trip of `bulkhead bench ipc`'s raw futex test, pinned to CPU 0.
handoff() {
	local rtt
	rtt="$(timeout 60 taskset -c 0 "$TOOL" bench ipc --quick --only futex --spin 0 --json \
		2>/dev/null | grep -o '"id": "futex", [^}]*"rtt_ns": [0-9.e+]*' |
		sed 's/.*"rtt_ns": //')"
	[ -n "$rtt" ] || { say "the IPC bench gave no futex round trip"; return 1; }
	record pinned ipc handoff 1 ns "$(awk -v r="$rtt" 'BEGIN {printf "%.0f", r / 2}')"
}

# 1. Every workload on every system, CPUs free, pinned and placed, in rounds
#    (the order of systems turns each round).
for r in $(seq "$ROUNDS"); do
	for cpu in $CPUS; do
		pin_for "$cpu"
		[ "$cpu" = pinned ] && handoff
		n=${#SYSTEMS[@]}
		for k in $(seq 0 $((n - 1))); do
			s="${SYSTEMS[$(((k + r - 1) % n))]}"
			say "round $r/$ROUNDS, $cpu: $s"
			system_up "$s" && workloads "$cpu" "$s"
			stop_all
		done
	done
done

# 2. Connection count (CPUs free): N connections open at once.
pin_for free
for s in "${SYSTEMS[@]}"; do
	[ "$s" = tap ] || [ "$s" = linuxoff ] && continue
	say "connections: $s ($CONNS)"
	system_up "$s" --max-conns "$MAXCONNS" || continue
	# No warm-up here: its connections, still closing, would count
	# against the next run's (--max-conns); these points measure a
	# start-up (docs/PERFORMANCE.md, "Open: ...").
	for n in $CONNS; do
		c=$((n * 4))
		[ "$c" -lt 400 ] && c=400
		measure free "$s" conns "$n" conc --conns "$n" --size 64 --count "$c" || break
	done
	stop_all
done

# 3. The factored/mono ratio against batch size and spin budget.
for knob in batch spin; do
	vals="$BATCHES"
	[ "$knob" = spin ] && vals="$SPINS"
	for v in $vals; do
		for s in factored mono; do
			say "$knob $v: $s"
			if [ "$knob" = batch ]; then export BULKHEAD_BATCH="$v"; else export BULKHEAD_SPIN="$v"; fi
			system_up "$s" &&
				measure free "$s" "${knob}_bulk" "$v" bulk --bytes "$SWEEP_BULK" &&
				measure free "$s" "${knob}_rr" "$v" rr --size 1 --count "$SWEEP_RR"
			stop_all
			unset BULKHEAD_BATCH BULKHEAD_SPIN
		done
	done
done

# 4. Where the cost goes: one bulk and one 1-byte run of each system under
#    perf stat, with the counters around them.
for cpu in $COST_CPUS; do
	pin_for "$cpu"
	for s in "${SYSTEMS[@]}"; do
		say "cost, $cpu: $s"
		system_up "$s" || continue
		cost "$cpu" "$s" bulk "$COST_BULK" bulk --bytes "$COST_BULK"
		cost "$cpu" "$s" rr 1 rr --size 1 --count "$COST_RR"
		stop_all
	done
done

# 5. Unmodified programs under `bulkhead run` (apps.sh: nginx + wrk,
#    redis, iperf3, the preload library's cost), with their own report
#    section and targets.
APPS_MODE=full
[ "$QUICK" -eq 1 ] && APPS_MODE=quick
[ "$SMOKE" -eq 1 ] && APPS_MODE=smoke
say "unmodified programs ($APPS_MODE)"
"$(dirname "$0")/apps.sh" "$TOOL" "$OUT" "$APPS_MODE" >/dev/null ||
	echo "apps.sh failed" >>"$OUT/failures.txt"

# 6. The loss sweep (loss.sh): Bulkhead as sender against Linux as
#    sender over one lossy TAP link, with RTOs per MB.
say "loss sweep ($APPS_MODE)"
"$(dirname "$0")/loss.sh" "$TOOL" "$OUT" "$APPS_MODE" >/dev/null ||
	echo "loss.sh failed" >>"$OUT/failures.txt"
ELAPSED=$(($(date +%s) - START))

# --- the report -------------------------------------------------------------------
MODE=full
[ "$QUICK" -eq 1 ] && MODE=quick
[ "$SMOKE" -eq 1 ] && MODE=smoke
export RES OUT TMP MODE ROUNDS ELAPSED PERF_NOTE HUGE_NOTE LINUX CPUS
"$(dirname "$0")/report.sh" || exit 1
"$(dirname "$0")/plot.sh" || say "plots failed (gnuplot)"
if [ -s "$OUT/apps.md" ]; then
	echo >>"$OUT/report.md"
	cat "$OUT/apps.md" >>"$OUT/report.md"
	cat "$OUT/apps-check.txt" >>"$OUT/check.txt" 2>/dev/null
fi
if [ -s "$OUT/loss.md" ]; then
	echo >>"$OUT/report.md"
	cat "$OUT/loss.md" >>"$OUT/report.md"
	cat "$OUT/loss-check.txt" >>"$OUT/check.txt" 2>/dev/null
fi
{
	echo
	echo "## Plots"
	echo
	for f in "$OUT"/*.png; do [ -f "$f" ] && echo "![$(basename "$f" .png)]($(basename "$f"))"; done
} >>"$OUT/report.md"
cat "$OUT/report.md"
[ -s "$OUT/failures.txt" ] && { say "some runs failed: $OUT/failures.txt"; exit 1; }
if [ "$CHECK" -eq 1 ]; then
	missed="$(grep -cv '^met' "$OUT/check.txt")"
	if [ "$missed" -gt 0 ]; then
		say "$missed of $(wc -l <"$OUT/check.txt") targets missed or not measured ($OUT/check.txt)"
		exit 3
	fi
	say "every target met"
fi
exit 0
