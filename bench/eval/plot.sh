#!/bin/bash
# bench/eval/plot.sh - the PNG plots of a bench run, with gnuplot, from
# $OUT/medians.tsv (written by report.awk) and the latency samples
# $OUT/lat-CPU-SYSTEM-rrSIZE.txt (sorted, µs):
#   throughput.png   request/response throughput against message size
#   latency.png      distribution of 1-byte exchange latency (CDF)
#   connections.png  exchanges/s against connections open at once
#   knobs.png        factored/mono against batch size and spin budget
set -u
M="$OUT/medians.tsv"
D="$TMP/plot"
mkdir -p "$D"
command -v gnuplot >/dev/null || { echo "bench: gnuplot is not installed: no plots" >&2; exit 1; }

# series CPU SYS WORK METRIC [SCALE-BY-PARAM]: "param value" lines, by param.
series() {
	awk -F'\t' -v c="$1" -v s="$2" -v w="$3" -v m="$4" -v x="${5:-0}" \
		'$1 == c && $2 == s && $3 == w && $5 == m {print $4, (x ? 2 * $4 * $6 / 1e6 : $6)}' "$M" |
		sort -g
}
SYS="factored mono linux tap"
plots=()
have() { [ -s "$1" ]; }
# plot NAME TITLE XLABEL YLABEL SETTINGS: NAME.png of the series in args.
plot() {
	[ "${#args[@]}" -gt 0 ] || return 0
	gnuplot <<EOF
set terminal pngcairo size 800,500
set output '$OUT/$1.png'
set title '$2'
set xlabel '$3'
set ylabel '$4'
set grid
$5
plot $(IFS=,; echo "${args[*]}")
EOF
	plots+=("$1.png")
}

# Throughput against message size: MB/s moved by 1-at-a-time exchanges.
args=()
for s in $SYS; do
	series free "$s" rr per_s 1 >"$D/tp-$s"
	have "$D/tp-$s" && args+=("'$D/tp-$s' using 1:2 with linespoints title '$s'")
done
plot throughput 'Request/response throughput against message size (CPUs free)' \
	'message size, bytes (each way)' 'MB/s (both directions)' 'set logscale x 2; set key top left'

# Latency distribution of 1-byte exchanges, every sample.
args=()
for c in free pinned; do
	for s in $SYS; do
		f="$OUT/lat-$c-$s-rr1.txt"
		have "$f" || continue
		awk -v n="$(wc -l <"$f")" '{print $1, NR / n}' "$f" >"$D/cdf-$c-$s"
		dt=1
		[ "$c" = pinned ] && dt=2
		args+=("'$D/cdf-$c-$s' using 1:2 with lines dt $dt lw 2 title '$s, $c'")
	done
done
plot latency 'Latency of 1-byte exchanges (cumulative distribution)' \
	'round trip, µs' 'fraction of exchanges' 'set logscale x; set yrange [0:1]; set key bottom right'

# Connection count.
args=()
for s in $SYS; do
	series free "$s" conns per_s >"$D/cn-$s"
	have "$D/cn-$s" && args+=("'$D/cn-$s' using 1:2 with linespoints title '$s'")
done
plot connections 'Exchanges/s with many connections open at once (64 B, CPUs free)' \
	'connections' 'exchanges/s' 'set logscale x 10; set key top right'

# factored/mono against the knobs.
ratio_series() { # ratio_series WORK METRIC
	join <(series free factored "$1" "$2") <(series free mono "$1" "$2") |
		awk '$3 > 0 {print $1, $2 / $3}' | sort -g
}
for k in batch spin; do
	ratio_series "${k}_bulk" mbps >"$D/$k-bulk"
	ratio_series "${k}_rr" per_s >"$D/$k-rr"
done
if have "$D/batch-bulk" || have "$D/spin-bulk"; then
	gnuplot <<EOF
set terminal pngcairo size 1000,450
set output '$OUT/knobs.png'
set multiplot layout 1,2 title 'factored/mono (CPUs free)'
set grid
set ylabel 'factored / mono'
set key bottom right
set logscale x 2
set xlabel 'batch: descriptors per queue per pass'
plot '$D/batch-bulk' using 1:2 with linespoints title 'bulk', '$D/batch-rr' using 1:2 with linespoints title 'rr 1 B'
set logscale x 10
set xlabel 'spin: polls before sleeping (0 plotted at 1)'
plot '$D/spin-bulk' using (\$1 > 0 ? \$1 : 1):2 with linespoints title 'bulk', '$D/spin-rr' using (\$1 > 0 ? \$1 : 1):2 with linespoints title 'rr 1 B'
unset multiplot
EOF
	plots+=(knobs.png)
fi
echo "bench: plots: ${plots[*]:-none}" >&2
