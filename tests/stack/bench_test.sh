#!/bin/bash
# The evaluation's own logic, in its smallest run (bench --quick --smoke):
# every system produced figures for every workload, every transfer was
# verified by the load generator, the sweeps, the connection counts and
# the cost runs left their figures, the report has its tables and the
# plots are PNG files. No speed is asserted. (root: veth, netns, TAP)
. "$(dirname "$0")/lib.sh"
EVAL="$(dirname "$B")/../bench/eval/run.sh"
OUT="$WORK/out"
timeout 600 "$EVAL" "$B" --quick --smoke --check --out "$OUT"
rc=$?
check "bench --quick --smoke --check runs to the end (rc $rc: 0, or 3 when a target is missed)" \
	[ "$rc" -eq 0 -o "$rc" -eq 3 ]
R="$OUT/results.tsv"
C="$OUT/check.txt"
check "check.txt has a verdict for every target ($(wc -l <"$C") lines)" \
	awk -F'\t' '$1 !~ /^(met|missed|not measured)/ {bad = 1} END {exit bad || NR < 18}' "$C"
check "copies and checksum passes per payload byte were counted (factored and mono)" \
	awk -F'\t' '$2 ~ /^(copies|checksum passes)/ {n++; if ($1 ~ /^not measured/) bad = 1} END {exit bad || n != 4}' "$C"
if grep -qv '^met' "$C"; then want=3; else want=0; fi
check "--check exits $want: $(grep -cv '^met' "$C") targets missed or not measured" [ "$rc" -eq "$want" ]
check "no run failed" test ! -s "$OUT/failures.txt"

# has CPU SYS WORK METRIC: at least one figure of that kind.
has() { awk -F'\t' -v c="$1" -v s="$2" -v w="$3" -v m="$4" \
	'$1 == c && $2 == s && $3 == w && $5 == m {f = 1} END {exit !f}' "$R"; }
for cpu in free pinned; do
	for s in factored mono linux linuxoff tap; do
		for w in bulk_up bulk_down rr crr conc udp; do
			check "$cpu $s $w: verified" has "$cpu" "$s" "$w" verified
		done
		check "$cpu $s: throughput figure" has "$cpu" "$s" bulk_up mbps
		check "$cpu $s: latency figure" has "$cpu" "$s" rr p999_us
		check "$cpu $s: machine CPU time" has "$cpu" "$s" bulk_up cpu_s
	done
	for s in factored mono tap; do
		check "$cpu $s: cost run read Bulkhead's counters" has "$cpu" "$s" cost_bulk chan_notifies
		check "$cpu $s: cost run counted frames" has "$cpu" "$s" cost_rr tx_frames
	done
	check "$cpu factored: CPU time per domain" has "$cpu" factored cost_bulk cpu_s.a.tcp
	check "$cpu mono: CPU time of the one process" has "$cpu" mono cost_bulk cpu_s.a.all
	check "$cpu linux: cost run counted veth packets" has "$cpu" linux cost_bulk frames
	check "$cpu linux, no offloads: cost run counted veth packets" has "$cpu" linuxoff cost_bulk frames
	check "$cpu factored: cost run counted ring batches (crossings)" has "$cpu" factored cost_rr chan_rx_batches
done
check "a futex hand-off on one CPU was measured" has pinned ipc handoff ns
# Unmodified programs (apps.sh): each system's figures, and a verdict
# for the preload library's cost.
A="$OUT/apps.tsv"
for s in factored mono linux; do
	for w in "nginx 100 rps" "redis GET ops" "iperf3 1 gbps"; do
		set -- $w
		check "apps: $s $1 $2 $3" awk -F'\t' -v s=$s -v w=$1 -v p=$2 -v m=$3 \
			'$1 == s && $2 == w && $3 == p && $4 == m && $5 > 0 {f = 1} END {exit !f}' "$A"
	done
done
check "apps: the report has its section" grep -qF '## Unmodified programs' "$OUT/report.md"
# The loss sweep (loss.sh): both senders measured, verified, with RTOs.
for s in bulkhead bulkheadqa linux; do
	check "loss: $s as sender, Mbit/s and RTOs per MB at 1%" awk -F'\t' -v s=$s \
		'$1 == s && $2 == 1 && $3 == "mbps" && $4 > 0 {m = 1} $1 == s && $2 == 1 && $3 == "rtos_per_mb" {r = 1} END {exit !(m && r)}' \
		"$OUT/loss.tsv"
done
check "loss: the report has its section" grep -qF '## Loss sweep' "$OUT/report.md"
check "loss: a verdict per loss point ($(grep -c $'\tloss ' "$C"))" [ "$(grep -c $'\tloss ' "$C")" -ge 1 ]
check "apps: verdicts for the preload library's cost ($(grep -c 'preload' "$C"))" \
	[ "$(grep -c 'preload' "$C")" -eq 4 ]
# Placed (two CPUs or more): every system's workloads ran, and the
# absolute targets have placed verdicts.
if [ "$(nproc)" -ge 2 ]; then
	for s in factored mono linux linuxoff tap; do
		for w in bulk_up bulk_down rr crr conc udp; do
			check "placed $s $w: verified" has placed "$s" "$w" verified
		done
	done
	check "report: the placed section" grep -qF "## Every workload, CPUs placed" "$OUT/report.md"
	check "check.txt: placed verdicts for mono and factored bulk ($(grep -c 'Mbit/s, placed' "$C"))" \
		[ "$(grep -c 'Mbit/s, placed' "$C")" -eq 2 ]
else
	skip "the placed CPU setting: this machine has one CPU"
fi
# Without GSO and TSO the kernel sends no frame larger than the MTU: more
# frames than with them, for the same bytes.
lf() { awk -F'\t' -v s="$1" '$1 == "free" && $2 == s && $3 == "cost_bulk" && $5 == "frames" {print $6}' "$R"; }
check "linux without offloads sends more frames ($(lf linuxoff)) than with them ($(lf linux))" \
	[ "$(lf linuxoff)" -gt "$(lf linux)" ]
for s in factored mono linux; do
	check "connection count: $s" has free "$s" conns verified
done
for s in factored mono; do
	for k in batch_bulk batch_rr spin_bulk spin_rr; do
		check "sweep $k: $s" has free "$s" "$k" verified
	done
done
# Every figure a transfer produced came with verified=1, never anything else.
check "every verified figure is 1" awk -F'\t' '$5 == "verified" && $6 != 1 {bad = 1} END {exit bad}' "$R"
if command -v perf >/dev/null && perf stat -a -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
	check "perf counted system calls" has free factored cost_bulk perf.raw_syscalls:sys_enter
else
	skip "perf's system-call count: perf cannot count raw_syscalls:sys_enter on this machine"
fi
for t in "## Every workload, CPUs free" "## Every workload, CPUs pinned" "## Against the targets" \
	"## Connection count" "## Batch size" "## Polling budget" "## Where the cost goes" "| CPU |"; do
	check "report: $t" grep -qF "$t" "$OUT/report.md"
done
# A ratio column holds numbers (a figure missing would show as "-").
check "report: factored/mono of bulk up is a number" \
	awk -F'|' '$2 ~ /bulk up .* Mbit\/s/ {if ($8 ~ /^ *[0-9.]+ *$/) f = 1} END {exit !f}' "$OUT/report.md"
check "report: the latency target names its crossings and hand-off" \
	grep -qE '^\| rr 1 B p50: factored minus mono \(bound: 1.5 x [0-9.]+ extra crossings x [0-9.]+ µs hand-off\)' "$OUT/report.md"
for p in throughput latency connections knobs; do
	check "plot $p.png is a PNG" bash -c "head -c 8 '$OUT/$p.png' | od -An -tx1 | grep -q '89 50 4e 47'"
done
# Nothing of the bench's own instances is left running.
left=""
for f in /proc/[0-9]*/environ; do
	tr '\0' '\n' <"$f" 2>/dev/null | grep '^BULKHEAD_RUN=/tmp/bh-eval\.' >/dev/null &&
		{ p="${f#/proc/}"; left="$left ${p%/environ}"; }
done
check "the bench left nothing running" test -z "$left"
finish
