#!/bin/bash
# Fault injection (bulkhead inject) into each domain of a running
# instance during a transfer, factored, and the contrast in mono:
#   - bad-desc into any domain: the neighbours reject and count what it
#     sent, nothing dies, the transfer completes with the right SHA-256;
#   - kill, crash, hang, scribble: the faulty domain is reported (killed,
#     SIGSEGV, unresponsive, or the scribble logged) and every other
#     domain of both instances, and the supervisor, keep running;
#   - in mono one fault takes the whole instance down.
# Restarting the faulty domain is not built yet (issue 6): these checks
# stop at detection and containment.
. "$(dirname "$0")/lib.sh"
# Faults on purpose: a crash must stay a SIGSEGV under the sanitizers
# (they would catch it and exit), and their reports about the faulty
# domain are expected, so the instance logs are not scanned.
FAULTS_INJECTED=1
export ASAN_OPTIONS="handle_segv=0:${ASAN_OPTIONS:-}"
export TSAN_OPTIONS="handle_segv=0:${TSAN_OPTIONS:-}"
export UBSAN_OPTIONS="handle_segv=0:${UBSAN_OPTIONS:-}"

mkdir -p "$WORK/www"
head -c 67108864 /dev/urandom >"$WORK/www/64m"
head -c 1048576 /dev/urandom >"$WORK/www/1m"

pair() { # pair MODE
	timeout 30 "$B" up a --driver wire:f1:0 --addr 10.9.0.1/24 --mode "$1" >/dev/null &&
		timeout 30 "$B" up b --driver wire:f1:1 --addr 10.9.0.2/24 --mode "$1" >/dev/null &&
		{ "$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" & SRV=$!; sleep 0.3; }
}
unpair() {
	kill "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	timeout 20 "$B" down a >/dev/null
	timeout 20 "$B" down b >/dev/null
}
state_of() { # state_of INSTANCE DOMAIN
	timeout 10 "$B" status "$1" | awk -v d="$2" '$1 == d {print $3}'
}
# The other domains of a (all but $1) and all of b: running.
others_running() {
	local d st
	for d in driver ip tcp sock; do
		[ "$d" = "$1" ] && continue
		st="$(state_of a "$d")"
		[ "$st" = running ] || { echo "a.$d is $st"; return 1; }
	done
	for d in driver ip tcp sock; do
		st="$(state_of b "$d")"
		[ "$st" = running ] || { echo "b.$d is $st"; return 1; }
	done
}
stat_sum() { # stat_sum INSTANCE REGEX: the sum of the counters matching
	timeout 10 "$B" stats "$1" | awk -v re="$2" '$1 ~ re {s += $2} END {print s + 0}'
}

# --- bad-desc: survived, counted, the transfer intact ---------------------
for d in driver ip tcp sock; do
	check "bad-desc $d: pair up" pair factored
	rm -f "$WORK/got"
	timeout 120 "$B" get b http://10.9.0.1:8080/64m -o "$WORK/got" 2>>"$WORK/get.err" &
	getp=$!
	sleep 0.1
	check "bad-desc $d: injected" timeout 10 "$B" inject a "$d" bad-desc --seed 11
	wait $getp
	rc=$?
	check "bad-desc $d: the 64 MiB transfer completed intact (rc $rc)" \
		[ $rc -eq 0 -a "$(sha "$WORK/got")" = "$(sha "$WORK/www/64m")" ]
	sleep 0.2 # counters are published every 50 ms
	rej=$(stat_sum a 'rejected_(desc|index)$')
	check "bad-desc $d: the neighbours rejected and counted it ($rej)" [ "$rej" -gt 0 ]
	check "bad-desc $d: the faulty domain logged what it sent" \
		bash -c "timeout 10 '$B' logs a $d | grep -q 'fault bad-desc: [0-9]* invalid descriptors'"
	out="$(others_running none)"
	check "bad-desc $d: every domain of both instances still running $out" [ -z "$out" ]
	check "bad-desc $d: a new transfer is intact" \
		bash -c "timeout 30 '$B' get b http://10.9.0.1:8080/1m -o '$WORK/got1' 2>/dev/null &&
			[ \"\$(sha256sum <'$WORK/got1')\" = \"\$(sha256sum <'$WORK/www/1m')\" ]"
	unpair
done

# --- kill, crash, hang, scribble: detected and contained ------------------
# expect FAULT STATE-PATTERN: what status shows for the faulty domain.
expect_state() {
	case "$1" in
	kill) echo "killed" ;;
	crash) echo "killed" ;;
	hang) echo "unresponsive" ;;
	scribble) echo "running|killed" ;; # it may or may not survive its own writes
	esac
}
for f in kill crash hang scribble; do
	for d in driver ip tcp sock; do
		check "$f $d: pair up" pair factored
		timeout 60 "$B" get b http://10.9.0.1:8080/64m -o /dev/null 2>/dev/null &
		getp=$!
		sleep 0.1
		check "$f $d: injected" timeout 10 "$B" inject a "$d" "$f" --seed 5
		want="$(expect_state "$f")"
		st=""
		for _ in $(seq 60); do # the heartbeat deadline is 3 s
			st="$(state_of a "$d")"
			grep -qxE "$want" <<<"$st" && [ "$f" != scribble -o -n "$st" ] && break
			sleep 0.1
		done
		check "$f $d: status shows the faulty domain as $st" grep -qxE "$want" <<<"$st"
		case "$f" in
		crash) check "$f $d: the exit is SIGSEGV" \
			bash -c "timeout 10 '$B' status a | grep -E '^$d ' | grep -q 'signal 11'" ;;
		scribble) check "$f $d: the scribble was logged with its count" \
			bash -c "timeout 10 '$B' logs a $d | grep -qE 'fault scribble: [0-9]+ random 8-byte writes'" ;;
		esac
		sleep 0.5
		out="$(others_running "$d")"
		check "$f $d: every other domain of both instances still running $out" [ -z "$out" ]
		check "$f $d: the supervisor still answers" bash -c "timeout 10 '$B' status a --json >/dev/null"
		kill $getp 2>/dev/null
		wait $getp 2>/dev/null
		unpair
	done
done

# --- mono: one fault, the whole instance ----------------------------------
check "mono: pair up" pair mono
check "mono: kill injected into tcp" timeout 10 "$B" inject a tcp kill
sleep 0.5
dead=0
for d in driver ip tcp sock; do
	[ "$(state_of a "$d")" = killed ] && dead=$((dead + 1))
done
check "mono: all four domains of a went down with it ($dead)" [ "$dead" -eq 4 ]
out="$(timeout 10 "$B" status b | grep -c running)"
check "mono: the other instance is untouched ($out running)" [ "$out" -eq 4 ]
unpair

check "inject refuses an unknown fault" bash -c "! timeout 10 '$B' inject a tcp melt 2>/dev/null"
finish
