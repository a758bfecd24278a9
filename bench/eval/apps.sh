#!/bin/bash
# bench/eval/apps.sh TOOL OUT full|quick|smoke - the evaluation's part
# for unmodified programs (`bulkhead run`): the same Debian programs,
# server and client each on a stack of its own, over
#   factored  two Bulkhead instances over wire:, each program under
#             `bulkhead run` on one of them
#   mono      the same, --mode mono
#   linux     the kernel's TCP between two network namespaces over veth
#             (veth's default offloads), the programs as they are
# in interleaved rounds, CPUs free:
#   nginx + wrk     a 1 KiB page, keep-alive, at 1, 100 and 1000
#                   connections: requests/s and p99 latency
#   redis           redis-benchmark SET and GET (50 connections): ops/s
#   iperf3          one stream: Gbit/s
#   preload         Bulkhead only: the load generator linked with the
#                   client library against the same program over kernel
#                   sockets under `bulkhead run` (1-byte request/response
#                   and bulk), interleaved: what the preload library adds
# Writes OUT/apps.tsv (system workload param metric value), OUT/apps.md
# (the tables and the targets) and OUT/apps-check.txt (a line per target,
# as check.txt has them: run.sh adds them there).
set -u
TOOL="$1" OUT="$2" MODE="$3"
case "$MODE" in
smoke) ROUNDS=1 DUR=1 CONNS="1 100" REDIS_N=2000 IPERF_T=1 LG_RR=200 LG_BULK=$((16 << 20)) ;;
quick) ROUNDS=1 DUR=2 CONNS="1 100 1000" REDIS_N=20000 IPERF_T=2 LG_RR=1000 LG_BULK=$((64 << 20)) ;;
*) ROUNDS=3 DUR=3 CONNS="1 100 1000" REDIS_N=100000 IPERF_T=3 LG_RR=2000 LG_BULK=$((256 << 20)) ;;
esac
RES="$OUT/apps.tsv"
MD="$OUT/apps.md"
: >"$RES"
TMP="$(mktemp -d /tmp/bh-apps.XXXXXX)"
export BULKHEAD_RUN="${BULKHEAD_RUN:-$(mktemp -d /tmp/bh-apps-run.XXXXXX)}"
NS1="bhan1$$" NS2="bhan2$$"
say() { echo "bench apps: $*" >&2; }
. "$(dirname "$0")/../../tools/instances.sh"
# The servers' pids (`run` and `ip netns exec` exec the program: $! is
# the program's; redis renames its process, so no pattern would do).
PIDS=()
stop_progs() {
	[ ${#PIDS[@]} -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null
	pkill -f "nginx -c $TMP/nginx.conf" 2>/dev/null # its workers
	PIDS=()
	sleep 0.3
}
cleanup() {
	stop_progs
	stop_all
	for ns in "$NS1" "$NS2"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

missing=""
for t in nginx wrk redis-server redis-benchmark iperf3 curl; do
	command -v "$t" >/dev/null || missing="$missing $t"
done
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES"; }

mkdir -p "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k"
cat >"$TMP/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 2048; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 8090; root $TMP/www; }
}
EOF

SRV=() CLI=() HOST=""
sys_up() { # sys_up SYS
	case "$1" in
	factored | mono)
		timeout 30 "$TOOL" up a --driver wire:apps$$:0 --addr 10.98.0.1/24 --mode "$1" \
			--max-conns 1100 >/dev/null &&
			timeout 30 "$TOOL" up b --driver wire:apps$$:1 --addr 10.98.0.2/24 --mode "$1" \
				--max-conns 1100 >/dev/null || { say "the $1 instances did not start"; return 1; }
		SRV=("$TOOL" run a --) CLI=("$TOOL" run b --) HOST=10.98.0.1
		;;
	linux)
		[ "$(id -u)" -eq 0 ] || return 1
		ip netns add "$NS1" && ip netns add "$NS2" &&
			ip link add bhav1 netns "$NS1" type veth peer name bhav2 netns "$NS2" || return 1
		ip -n "$NS1" link set bhav1 up
		ip -n "$NS2" link set bhav2 up
		ip -n "$NS1" link set lo up
		ip -n "$NS2" link set lo up
		ip -n "$NS1" addr add 10.96.1.1/24 dev bhav1
		ip -n "$NS2" addr add 10.96.1.2/24 dev bhav2
		SRV=(ip netns exec "$NS1") CLI=(ip netns exec "$NS2") HOST=10.96.1.1
		;;
	esac
}
sys_down() {
	stop_progs
	stop_all
	for ns in "$NS1" "$NS2"; do ip netns del "$ns" 2>/dev/null; done
	return 0
}
until_ok() { # until_ok CMD...: up to 10 s
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

# wrk's latency as microseconds ("850.00us", "1.23ms", "1.02s").
to_us() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); x = v + 0;
	if (u == "ms") x *= 1000; else if (u == "s") x *= 1000000; else if (u == "m") x *= 60000000;
	printf "%.1f", x }'; }

run_nginx() { # run_nginx SYS
	local s="$1" n t out
	"${SRV[@]}" nginx -c "$TMP/nginx.conf" >>"$TMP/nginx.out" 2>&1 &
	PIDS+=($!)
	until_ok "${CLI[@]}" curl -sf -o /dev/null "http://$HOST:8090/1k" ||
		{ say "nginx on $s did not answer"; return 1; }
	for n in $CONNS; do
		t=2
		[ "$n" -lt 2 ] && t=1
		out="$("${CLI[@]}" timeout $((DUR + 30)) wrk -t$t -c"$n" -d"${DUR}s" --latency \
			"http://$HOST:8090/1k" 2>&1)"
		if ! grep -q 'Requests/sec' <<<"$out" || grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
			say "wrk $s $n: $(tail -2 <<<"$out" | tr '\n' ' ')"
			echo "apps $s nginx $n: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >>"$OUT/failures.txt"
			continue
		fi
		record "$s" nginx "$n" rps "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
		record "$s" nginx "$n" p99_us "$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
	done
	stop_progs
}

run_redis() {
	local s="$1" out
	"${SRV[@]}" redis-server --port 6390 --bind 0.0.0.0 --save "" --appendonly no \
		--protected-mode no >"$TMP/redis.out" 2>&1 &
	PIDS+=($!)
	until_ok bash -c "$(printf '%q ' "${CLI[@]}") redis-cli -h $HOST -p 6390 ping | grep -q PONG" ||
		{ say "redis on $s did not answer"; return 1; }
	out="$("${CLI[@]}" timeout 120 redis-benchmark -h "$HOST" -p 6390 -t set,get -n "$REDIS_N" \
		-c 50 -q 2>/dev/null | tr '\r' '\n')"
	for op in SET GET; do
		v="$(awk -v op="$op:" '$1 == op && $3 == "requests" {print $2}' <<<"$out" | tail -1)"
		[ -n "$v" ] && record "$s" redis "$op" ops "$v" ||
			echo "apps $s redis $op: no figure" >>"$OUT/failures.txt"
	done
	stop_progs
}

run_iperf() {
	local s="$1" v
	"${SRV[@]}" iperf3 -s -4 -1 -p 5210 >"$TMP/iperf-s.out" 2>&1 &
	PIDS+=($!)
	sleep 0.5
	v="$("${CLI[@]}" timeout 60 iperf3 -4 -c "$HOST" -p 5210 -t "$IPERF_T" -J 2>/dev/null |
		python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' 2>/dev/null)"
	[ -n "$v" ] && record "$s" iperf3 1 gbps "$v" || echo "apps $s iperf3: no figure" >>"$OUT/failures.txt"
	stop_progs
}

# The preload library's cost: the same load generator, linked with the
# client library and under `run` over kernel sockets, interleaved.
run_preload() {
	local s="$1" k line
	"$TOOL" loadgen server --instance a --port 9100 2>>"$TMP/lg.err" &
	PIDS+=($!)
	until_ok "$TOOL" loadgen rr --instance b --host 10.98.0.1 --port 9100 --size 1 --count 1
	for k in 1 2; do
		for how in direct preload; do
			local pre=()
			[ $how = preload ] && pre=("$TOOL" run b --)
			local tgt=(--instance b)
			[ $how = preload ] && tgt=(--kernel)
			line="$("${pre[@]}" "$TOOL" loadgen rr "${tgt[@]}" --host 10.98.0.1 --port 9100 \
				--size 1 --count "$LG_RR" 2>/dev/null)"
			record "$s" "preload_rr" "$how" per_s "$(sed -n 's/.*per_s=\([0-9.]*\).*/\1/p' <<<"$line")"
			line="$("${pre[@]}" "$TOOL" loadgen bulk "${tgt[@]}" --host 10.98.0.1 --port 9100 \
				--bytes "$LG_BULK" 2>/dev/null)"
			record "$s" "preload_bulk" "$how" mbps "$(sed -n 's/.*mbps=\([0-9.]*\).*/\1/p' <<<"$line")"
		done
	done
	stop_progs
}

START=$(date +%s)
if [ -n "$missing" ]; then
	say "not measured: missing$missing"
else
	SYSTEMS=(factored mono linux)
	for r in $(seq 1 "$ROUNDS"); do
		n=${#SYSTEMS[@]}
		for k in $(seq 0 $((n - 1))); do
			s="${SYSTEMS[$(((k + r - 1) % n))]}"
			say "round $r/$ROUNDS: $s"
			if sys_up "$s"; then
				run_nginx "$s"
				run_redis "$s"
				run_iperf "$s"
				[ "$s" != linux ] && run_preload "$s"
			fi
			sys_down
		done
	done
fi

# --- the report ----------------------------------------------------------------
RES="$RES" MISSING="$missing" ROUNDS="$ROUNDS" ELAPSED=$(($(date +%s) - START)) \
	awk -F'\t' -v check="$OUT/apps-check.txt" '
function median(key,   n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	lo[key] = a[1]; hi[key] = a[n]
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fig(key, fmt) {
	if (!(key in cnt)) return "-"
	m = median(key)
	if (cnt[key] == 1) return sprintf(fmt, m)
	return sprintf(fmt " (" fmt "-" fmt ")", m, lo[key], hi[key])
}
function med(key) { return (key in cnt) ? median(key) : "" }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function target(name, got, want, cmp) {
	if (got == "-") { printf "not measured\t%s\n", name > check; tl = tl sprintf("| %s | not measured |\n", name); return }
	ok = cmp == ">=" ? (got + 0 >= want + 0) : (got + 0 <= want + 0)
	printf "%s\t%s: %s (goal %s %s)\n", ok ? "met" : "missed", name, got, cmp, want > check
	tl = tl sprintf("| %s | %s (want %s %s): %s |\n", name, got, cmp, want, ok ? "met" : "missed")
}
{ k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4; cnt[k]++; val[k, cnt[k]] = $5 }
END {
	print "## Unmodified programs (`bulkhead run`)"
	print ""
	if (ENVIRON["MISSING"] != "") {
		print "Not measured: missing" ENVIRON["MISSING"] "."
		printf "not measured\tunmodified programs: missing%s\n", ENVIRON["MISSING"] > check
		exit
	}
	printf "The same Debian programs over two Bulkhead instances (each program under `bulkhead run`, over `wire:`) and over the kernel between two namespaces (veth, its default offloads); CPUs free; %s round(s), medians (min-max); %s s.\n\n", ENVIRON["ROUNDS"], ENVIRON["ELAPSED"]
	print "| workload | factored | mono | linux | factored/linux | mono/linux |"
	print "|---|---|---|---|---|---|"
	n = split("1 100 1000", cs, " ")
	for (i = 1; i <= n; i++) {
		c = cs[i]
		f = med("factored" SUBSEP "nginx" SUBSEP c SUBSEP "rps"); mo = med("mono" SUBSEP "nginx" SUBSEP c SUBSEP "rps"); l = med("linux" SUBSEP "nginx" SUBSEP c SUBSEP "rps")
		if (f == "" && mo == "" && l == "") continue
		printf "| nginx, 1 KiB, %s conns: requests/s | %s | %s | %s | %s | %s |\n", c, fig("factored" SUBSEP "nginx" SUBSEP c SUBSEP "rps", "%.0f"), fig("mono" SUBSEP "nginx" SUBSEP c SUBSEP "rps", "%.0f"), fig("linux" SUBSEP "nginx" SUBSEP c SUBSEP "rps", "%.0f"), ratio(f, l), ratio(mo, l)
		printf "| nginx, 1 KiB, %s conns: p99 µs | %s | %s | %s | | |\n", c, fig("factored" SUBSEP "nginx" SUBSEP c SUBSEP "p99_us", "%.0f"), fig("mono" SUBSEP "nginx" SUBSEP c SUBSEP "p99_us", "%.0f"), fig("linux" SUBSEP "nginx" SUBSEP c SUBSEP "p99_us", "%.0f")
		if (c >= 100) { rf[c] = ratio(f, l); rm[c] = ratio(mo, l) }
	}
	split("SET GET", ops, " ")
	for (i = 1; i <= 2; i++) {
		o = ops[i]
		f = med("factored" SUBSEP "redis" SUBSEP o SUBSEP "ops"); mo = med("mono" SUBSEP "redis" SUBSEP o SUBSEP "ops"); l = med("linux" SUBSEP "redis" SUBSEP o SUBSEP "ops")
		printf "| redis-benchmark %s: ops/s | %s | %s | %s | %s | %s |\n", o, fig("factored" SUBSEP "redis" SUBSEP o SUBSEP "ops", "%.0f"), fig("mono" SUBSEP "redis" SUBSEP o SUBSEP "ops", "%.0f"), fig("linux" SUBSEP "redis" SUBSEP o SUBSEP "ops", "%.0f"), ratio(f, l), ratio(mo, l)
	}
	f = med("factored" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps"); mo = med("mono" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps"); l = med("linux" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps")
	printf "| iperf3, one stream: Gbit/s | %s | %s | %s | %s | %s |\n", fig("factored" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps", "%.2f"), fig("mono" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps", "%.2f"), fig("linux" SUBSEP "iperf3" SUBSEP "1" SUBSEP "gbps", "%.2f"), ratio(f, l), ratio(mo, l)
	print ""
	print "What the preload library adds (the load generator over kernel sockets under `run`, against the same program linked with the client library; two interleaved runs each per round):"
	print ""
	print "| system | workload | client library | under run | run/library |"
	print "|---|---|---|---|---|"
	split("factored mono", ss, " ")
	for (i = 1; i <= 2; i++) {
		s = ss[i]
		d = med(s SUBSEP "preload_rr" SUBSEP "direct" SUBSEP "per_s"); p = med(s SUBSEP "preload_rr" SUBSEP "preload" SUBSEP "per_s")
		printf "| %s | 1-byte request/response, per s | %s | %s | %s |\n", s, fig(s SUBSEP "preload_rr" SUBSEP "direct" SUBSEP "per_s", "%.0f"), fig(s SUBSEP "preload_rr" SUBSEP "preload" SUBSEP "per_s", "%.0f"), ratio(p, d)
		pr[s] = ratio(p, d)
		d = med(s SUBSEP "preload_bulk" SUBSEP "direct" SUBSEP "mbps"); p = med(s SUBSEP "preload_bulk" SUBSEP "preload" SUBSEP "mbps")
		printf "| %s | bulk, Mbit/s | %s | %s | %s |\n", s, fig(s SUBSEP "preload_bulk" SUBSEP "direct" SUBSEP "mbps", "%.0f"), fig(s SUBSEP "preload_bulk" SUBSEP "preload" SUBSEP "mbps", "%.0f"), ratio(p, d)
		pb[s] = ratio(p, d)
	}
	print ""
	for (c in rm) {
		target("nginx mono/linux at " c " connections", rm[c], "1.2", ">=")
		target("nginx factored/linux at " c " connections", rf[c], "1.0", ">=")
	}
	for (s in pr) {
		target("preload, " s ", 1-byte rr: run/library", pr[s], "0.9", ">=")
		target("preload, " s ", bulk: run/library", pb[s], "0.9", ">=")
	}
	print "| target | figure |"
	print "|---|---|"
	printf "%s", tl
}' "$RES" >"$MD"
cat "$MD"
