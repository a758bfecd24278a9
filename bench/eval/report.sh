#!/bin/bash
# bench/eval/report.sh - writes $OUT/report.md from $RES (results.tsv) for
# bench/eval/run.sh: the machine, then every table, each figure the
# median over the rounds, ratios taken between systems of the same run.
set -u
{
	cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	virt="$(systemd-detect-virt 2>/dev/null || true)"
	[ -z "$virt" ] && grep -qw hypervisor /proc/cpuinfo && virt="a hypervisor (unnamed)"
	[ -z "$virt" ] && virt="none detected"
	mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	commit="$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "# Bulkhead evaluation ($MODE run)"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| date | $(date -u +%Y-%m-%dT%H:%MZ) |"
	echo "| command | \`./bulkhead bench$([ "$MODE" = full ] || echo " --quick")$([ "$MODE" = smoke ] && echo " --smoke")\` (${ELAPSED} s) |"
	echo "| commit | $commit |"
	echo "| CPU | $cpu_model, $(nproc) cores online |"
	echo "| memory | $mem |"
	echo "| kernel | $(uname -sr) |"
	echo "| virtualisation | $virt |"
	echo "| MTU | 1500 on every path (wire:, veth, TAP) |"
	echo "| rounds | $ROUNDS; each figure is the median over the rounds |"
	echo "| perf | $PERF_NOTE |"
	echo "| huge pages | $HUGE_NOTE |"
	echo
	echo "Systems: **factored** (two Bulkhead instances over \`wire:\`, four domain"
	echo "processes each), **mono** (the same, one process each), **linux** (the kernel's"
	echo "TCP between two network namespaces over veth, with veth's offloads: TSO and"
	echo "GSO on, GRO off), **linux, no offloads** (the same with GSO, TSO and GRO off:"
	echo "1500-byte frames, as Bulkhead's), **tap** (a factored Bulkhead"
	echo "instance as client, the host's Linux as server, over TAP). One load"
	echo "generator drives them all and verifies every byte. **free**: every CPU"
	echo "free; **pinned**: every process of the run on CPU 0 (equal CPU)."
	echo "Ratios above 1 mean the first system is better (for latency and CPU"
	echo "per byte, the inverse ratio is shown)."
	echo
	awk -F'\t' -v cpus="$CPUS" -v linux="$LINUX" -v medf="$OUT/medians.tsv" \
		-v checkf="$OUT/check.txt" -f "$(dirname "$0")/report.awk" "$RES"
	if [ -s "$OUT/failures.txt" ]; then
		echo
		echo "## Runs that failed"
		echo
		sed 's/^/- /' "$OUT/failures.txt"
	fi
} >"$OUT/report.md"
