#!/bin/bash
# bench/eval/loss.sh TOOL OUT full|quick|smoke - the loss sweep: one
# Bulkhead instance (factored) against the host's Linux over a TAP
# interface with `--impair loss=L%,reorder=1%` (the impairment acts on
# both directions), for L in 0.5, 1, 2 and 5 (and 0, the reference: what
# each sender does with reordering alone), in interleaved rounds, the
# same program (`bulkhead loadgen bulk`, every byte checked against its
# pattern) each way over the same link:
#   bulkhead    Bulkhead sends (`--dir up`), Linux receives as it does
#               by default (delayed ACKs: a lone segment waits up to
#               40 ms for its ACK)
#   bulkheadqa  the same with the route to the instance set `quickack 1`:
#               Linux's receiver ACKs every segment at once, as
#               Bulkhead's does (it ACKs at the end of each pass)
#   linux       Linux sends (`--dir down`), Bulkhead receives
# with the sender's retransmission timeouts per MB beside each figure
# (Bulkhead: its tcp.timeouts; Linux: TcpExtTCPTimeouts from nstat, the
# host's count, which other traffic on the host may add to).
# The senders are compared on equal receivers (bulkheadqa against
# linux): with the receivers' ACK policies differing, small windows on a
# lossy path measure the receiver's delayed ACK more than the sender.
# Writes OUT/loss.tsv (sender loss metric value), OUT/loss.md (the
# table and the target) and OUT/loss-check.txt (a line per loss point,
# as check.txt has them: Bulkhead as sender >= 0.8 x Linux as sender,
# equal receivers).
set -u
TOOL="$1" OUT="$2" MODE="$3"
case "$MODE" in
smoke) ROUNDS=1 BYTES=$((2 << 20)) LOSSES="1" ;;
quick) ROUNDS=1 BYTES=$((8 << 20)) LOSSES="0 0.5 1 2 5" ;;
*) ROUNDS=3 BYTES=$((16 << 20)) LOSSES="0 0.5 1 2 5" ;;
esac
RES="$OUT/loss.tsv" MD="$OUT/loss.md" CHK="$OUT/loss-check.txt"
: >"$RES"
: >"$CHK"
TMP="$(mktemp -d /tmp/bh-loss.XXXXXX)"
export BULKHEAD_RUN="${BULKHEAD_RUN:-$(mktemp -d /tmp/bh-loss-run.XXXXXX)}"
TAP="bhls$$" PORT=9180
say() { echo "bench loss: $*" >&2; }
. "$(dirname "$0")/../../tools/instances.sh"
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	stop_all
	ip link del "$TAP" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RES"; }
stat_of() { timeout 10 "$TOOL" stats t | awk -v k="$1" '$1 == k {print $2}'; }
nstat_of() { nstat -az "$1" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }

if [ "$(id -u)" -ne 0 ] || ! command -v nstat >/dev/null; then
	say "not measured: needs root (TAP) and nstat"
	echo "loss sweep: not measured (needs root and nstat)" >>"$OUT/failures.txt"
	exit 0
fi
START=$(date +%s)
seed=1
for r in $(seq 1 "$ROUNDS"); do
	for L in $LOSSES; do
		seed=$((seed + 1))
		if ! timeout 30 "$TOOL" up t --driver "tap:$TAP" --addr 10.94.0.2/24 \
			--host-addr 10.94.0.1/24 --impair "loss=$L%,reorder=1%,seed=$seed" >/dev/null; then
			say "the tap instance did not start"
			echo "loss sweep: the tap instance did not start" >>"$OUT/failures.txt"
			exit 0
		fi
		"$TOOL" loadgen server --kernel --port "$PORT" 2>>"$TMP/server.err" &
		SRV=$!
		for _ in $(seq 50); do
			"$TOOL" loadgen rr --instance t --host 10.94.0.1 --port "$PORT" --size 1 --count 1 \
				>/dev/null 2>&1 && break
			sleep 0.1
		done
		for sender in bulkhead bulkheadqa linux; do
			dir=up qa=0
			[ $sender = linux ] && dir=down
			[ $sender = bulkheadqa ] && qa=1
			# Linux's receiver: delayed ACKs, or every segment ACKed
			# at once (a route metric; a new connection takes it).
			ip route replace 10.94.0.0/24 dev "$TAP" proto kernel scope link src 10.94.0.1 \
				quickack $qa 2>>"$TMP/route.err"
			t0=$(stat_of tcp.timeouts) k0=$(nstat_of TcpExtTCPTimeouts)
			line="$(timeout 300 "$TOOL" loadgen bulk --instance t --host 10.94.0.1 --port "$PORT" \
				--bytes "$BYTES" --dir $dir 2>>"$TMP/client.err")"
			sleep 0.1 # counters are published every 50 ms
			t1=$(stat_of tcp.timeouts) k1=$(nstat_of TcpExtTCPTimeouts)
			mbps="$(sed -n 's/.*mbps=\([0-9.]*\).*verified=1.*/\1/p' <<<"$line")"
			if [ -z "$mbps" ]; then
				say "$sender at $L%: ${line:-no result} $(tail -1 "$TMP/client.err")"
				echo "loss sweep: $sender at $L% loss: no verified transfer" >>"$OUT/failures.txt"
				continue
			fi
			if [ $sender != linux ]; then rtos=$((${t1:-0} - ${t0:-0})); else rtos=$((${k1:-0} - ${k0:-0})); fi
			record "$sender" "$L" mbps "$mbps"
			record "$sender" "$L" rtos_per_mb "$(awk -v n="$rtos" -v b="$BYTES" 'BEGIN {printf "%.2f", n / (b / 1048576)}')"
		done
		kill "$SRV" 2>/dev/null
		wait "$SRV" 2>/dev/null
		SRV=""
		timeout 20 "$TOOL" down t >/dev/null
	done
done
SECS=$(($(date +%s) - START))

# Medians (min-max) per sender and loss point.
stat() { # stat SENDER LOSS METRIC: "median (min-max)" or "-"
	awk -F'\t' -v s="$1" -v l="$2" -v m="$3" '$1 == s && $2 == l && $3 == m {v[n++] = $4}
	END { if (!n) { print "-"; exit }
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		if (n == 1) print v[0]; else printf "%s (%s-%s)\n", v[int((n - 1) / 2)], v[0], v[n - 1] }' "$RES"
}
med() { stat "$@" | awk '{print $1}'; }
{
	echo "## Loss sweep: Bulkhead as sender against Linux as sender"
	echo
	echo "One Bulkhead instance (factored) and the host's Linux over TAP with \`--impair loss=L%,reorder=1%\` (both directions); \`bulkhead loadgen bulk\` of $((BYTES >> 20)) MiB each way, every byte checked; $ROUNDS round(s), medians (min-max); ${SECS} s. RTOs per MB: the sender's retransmission timeouts (Linux: the host's TcpExtTCPTimeouts)."
	echo
	echo "Bulkhead sends twice: to Linux's receiver as it is (delayed ACKs), and with the route set \`quickack 1\` (every segment ACKed at once, as Bulkhead's receiver ACKs when Linux sends). The target's ratio compares the senders on equal receivers (the second against Linux as sender); the ratio as is stands beside it."
	echo
	echo "| loss | Bulkhead sends, Mbit/s | its RTOs/MB | ... to a quick-ACK receiver | its RTOs/MB | Linux sends, Mbit/s | its RTOs/MB | Bulkhead/Linux, equal receivers | as is |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for L in $LOSSES; do
		b="$(med bulkheadqa "$L" mbps)" l="$(med linux "$L" mbps)" d="$(med bulkhead "$L" mbps)"
		ratio="$(awk -v b="$b" -v l="$l" 'BEGIN { if (b == "-" || l == "-" || l == 0) print "-"; else printf "%.2f", b / l }')"
		asis="$(awk -v b="$d" -v l="$l" 'BEGIN { if (b == "-" || l == "-" || l == 0) print "-"; else printf "%.2f", b / l }')"
		echo "| $L% | $(stat bulkhead "$L" mbps) | $(stat bulkhead "$L" rtos_per_mb) | $(stat bulkheadqa "$L" mbps) | $(stat bulkheadqa "$L" rtos_per_mb) | $(stat linux "$L" mbps) | $(stat linux "$L" rtos_per_mb) | $ratio | $asis |"
		if [ "$L" = 0 ]; then
			: # the reference without loss: not a target point
		elif [ "$ratio" = - ]; then
			printf 'not measured\tloss %s%%: Bulkhead/Linux as sender\n' "$L" >>"$CHK"
		else
			printf '%s\tloss %s%%: Bulkhead/Linux as sender, equal receivers: %s (goal >= 0.8)\n' \
				"$(awk -v r="$ratio" 'BEGIN {print (r >= 0.8) ? "met" : "missed"}')" "$L" "$ratio" >>"$CHK"
		fi
	done
	echo
} >"$MD"
