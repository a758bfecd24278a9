#!/bin/bash
# Recovery under repetition and with Linux as the peer (root):
#   - 50 faults in a row ($REPEATS; kill and crash in turn, every tenth a hang) into
#     ip during one long transfer over wire: each is a restart, the transfer completes
#     intact, no other domain restarts, nothing leaks;
#   - Linux curl downloading 64 MiB from `bulkhead serve` over TAP while
#     each fault goes into each domain: through driver and ip faults curl
#     completes intact; through tcp and sock faults it gets a reset (an
#     error, not a hang) and a new download works;
#   - a restart storm is bounded: when replacements cannot start (the
#     program is gone), the supervisor backs off, says the instance
#     cannot recover, and stops it cleanly.
. "$(dirname "$0")/lib.sh"
# REPEATS, FAULTS and DOMAINS run it shorter by hand. Under a sanitizer
# (ASAN_OPTIONS or TSAN_OPTIONS set by the config, before
# faults_on_purpose adds to them) 10 faults in a row, and of the TAP
# matrix kill and bad-desc into each domain: the default pass runs all of
# it, and fault_test's matrix (every fault into every domain) runs in
# every pass; the whole of both in every pass took the suite past 20
# minutes.
if [ -n "${TSAN_OPTIONS:-}${ASAN_OPTIONS:-}" ]; then
	REPEATS=${REPEATS:-10}
	FAULTS=${FAULTS:-kill bad-desc}
fi
REPEATS=${REPEATS:-50}
faults_on_purpose

www_files

pools_full() { # pools_full INSTANCE (waits up to 5 s)
	for _ in $(seq 50); do
		pools_home "$1" && return 0
		sleep 0.1
	done
	timeout 10 "$B" stats "$1" | grep -E 'pool.free|owed|held' | grep -vE ' 0$'
	return 1
}
# Waits until DOMAIN of INSTANCE is running with at least N restarts,
# both read from one status: read from two, "running" could be the last
# replacement's before the fault was seen and the count the new one's
# before it served, and the next fault then killed it before it said so
# (the missing "serving again" line this test used to report now and then).
back() { # back INSTANCE DOMAIN N
	local st n
	for _ in $(seq 150); do
		read -r st n < <(timeout 10 "$B" status "$1" 2>/dev/null |
			awk -v d="$2" '$1 == d {print $3, $4}')
		[ "$st" = running ] && [ "${n:-0}" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

# --- REPEATS faults in a row into ip, one transfer ------------------------------
check "repeat: pair up" bash -c "timeout 30 '$B' up a --driver wire:r50:0 --addr 10.9.0.1/24 >/dev/null &&
	timeout 30 '$B' up b --driver wire:r50:1 --addr 10.9.0.2/24 --impair rate=${REPEAT_RATE:-20mbit} >/dev/null"
serve a
before="$(snapshot a b)"
check "repeat: status of both instances, every domain listed" [ -n "$before" ]
timeout 300 "$B" get b http://10.9.0.1:8080/64m -o "$WORK/got" 2>"$WORK/get.err" &
getp=$!
sleep 0.5
n=0
for i in $(seq "$REPEATS"); do
	f=kill
	[ $((i % 2)) -eq 0 ] && f=crash
	[ $((i % 10)) -eq 5 ] && f=hang
	inject a ip "$f" --seed "$i" || { fail "repeat: inject $f into ip, number $i"; break; }
	back a ip "$i" || { fail "repeat: ip not back after fault $i"; break; }
	n=$i
done
check "repeat: $REPEATS faults into ip, each followed by a restart ($n)" [ "$n" -eq "$REPEATS" ]
check "repeat: the transfer was still running after the last fault (it spans them all)" kill -0 $getp
wait $getp
rc=$?
check "repeat: the 64 MiB transfer completed intact through all of them (rc $rc)" \
	bash -c "[ $rc -eq 0 ] && [ \"\$(sha256sum <'$WORK/got' | cut -d' ' -f1)\" = $SUM64 ]"
after="$(snapshot a b)"
check "repeat: no other domain of either instance restarted" \
	[ -n "$after" -a "$(grep -v '^a\.ip ' <<<"$before")" = "$(grep -v '^a\.ip ' <<<"$after")" ]
check "repeat: ip restarted $REPEATS times ($(col a ip 4))" [ "$(col a ip 4)" = "$REPEATS" ]
check "repeat: every buffer home in a" pools_full a
check "repeat: every buffer home in b" pools_full b
times="$(timeout 10 "$B" logs a supervisor | grep -oE 'serving again .* ([0-9.]+) ms from detection' |
	grep -oE '[0-9.]+ ms' | grep -oE '[0-9.]+' | sort -n)"
cnt=$(grep -c . <<<"$times")
check "repeat: each of the $REPEATS restarts logged its time, detection to serving ($cnt): median $(sed -n "$(((cnt + 1) / 2))p" <<<"$times") ms, max $(tail -1 <<<"$times") ms" \
	[ "$cnt" -eq "$REPEATS" ]
if [ "$cnt" -ne "$REPEATS" ]; then
	# Which replacement has no serving line, and everything the log
	# says around it.
	sup="$(timeout 10 "$B" logs a supervisor)"
	for k in $(seq "$REPEATS"); do
		grep -q "serving again (pid [0-9]*, restart $k)" <<<"$sup" && continue
		echo "replacement $k: no serving line; its lines:"
		grep -E "replacement $k started|restart $k\)" <<<"$sup"
		pid="$(grep -oE "replacement $k started \(pid [0-9]+" <<<"$sup" | grep -oE '[0-9]+$')"
		[ -n "$pid" ] && timeout 10 "$B" logs a | grep -E "\b$pid\b"
	done
fi
kill $SRV 2>/dev/null
wait $SRV 2>/dev/null
timeout 20 "$B" down a >/dev/null
timeout 20 "$B" down b >/dev/null

# --- a restart storm is bounded -----------------------------------------
cp "$B" "$WORK/bulkhead-copy"
check "storm: up from a copy of the program" \
	timeout 30 "$WORK/bulkhead-copy" up s --driver wire:storm:0 --addr 10.9.1.1/24
rm -f "$WORK/bulkhead-copy"
check "storm: kill into tcp" inject s tcp kill
for _ in $(seq 100); do [ -S "$BULKHEAD_RUN/s/ctl.sock" ] || break; sleep 0.1; done
check "storm: the instance stopped by itself" bash -c "[ ! -S '$BULKHEAD_RUN/s/ctl.sock' ]"
check "storm: with backoff, then saying it cannot recover" \
	bash -c "grep -q 'restarting it in' '$BULKHEAD_RUN/s/log' &&
		grep -q 'the instance cannot recover' '$BULKHEAD_RUN/s/log'"
# (A zombie is not left running: where PID 1 does not reap the orphaned
# supervisor, it stays a zombie.)
check "storm: and no process of it is left" \
	bash -c "! ps -C bulkhead-copy -o stat= | grep -qv '^Z'"

# --- Linux curl over TAP, each fault into each domain -----------------------
if [ "$(id -u)" -ne 0 ] || ! command -v curl >/dev/null; then
	fail "the TAP part needs root and curl"
	finish
fi
TAP="bhr$$"
interface_gone_at_exit "$TAP"
for f in ${FAULTS:-kill crash hang bad-desc scribble}; do
	for d in ${DOMAINS:-driver ip tcp sock}; do
		cell="tap $f $d"
		for attempt in 1 2; do
			check "$cell: up" timeout 30 "$B" up t --driver "tap:$TAP" --host-addr 10.78.0.1/24 \
				--addr 10.78.0.2/24 --impair "rate=${TAP_RATE:-200mbit}" >/dev/null
			serve t
			before="$(snapshot t)"
			scribbles=$(log_count t 'fault scribble: [0-9]+ random')
			rm -f "$WORK/curl"
			curl -s --max-time 60 -o "$WORK/curl" http://10.78.0.2:8080/64m 2>>"$WORK/curl.err" &
			cp=$!
			sleep 0.5
			check "$cell: injected" inject t "$d" "$f" --seed 3
			late=0
			kill -0 $cp 2>/dev/null || late=1
			wait $cp
			rc=$?
			# A fault that lands after the download has ended shows
			# nothing of what it does to one (seen once, on a machine
			# loaded by a sanitizer pass: a sock hang, curl intact):
			# the cell again, once.
			[ $late -eq 1 ] && [ $attempt -eq 1 ] || break
			echo "cell: $cell: the download had ended when the fault landed (rc $rc); again"
			kill $SRV 2>/dev/null
			wait $SRV 2>/dev/null
			timeout 20 "$B" down t >/dev/null
		done
		want=1
		[ "$f" = bad-desc -o "$f" = scribble ] && want=0
		back t "$d" "$want"
		r="$(col t "$d" 4)"
		state="$(col t "$d" 3)"
		# Both conditions inside the check (a scribble may or may not
		# kill the domain: at most one restart).
		check "$cell: back and serving, restarted $want time(s) ($r)" \
			bash -c "[ '$state' = running ] && { [ '$r' = '$want' ] || [ '$f' = scribble -a '${r:-9}' -le 1 ]; }"
		# The supervisor's own account, when a cell goes wrong.
		[ "$state" = running ] ||
			tail -n 40 "$BULKHEAD_RUN/t/log" 2>/dev/null | sed 's/^/  instance log: /'
		after="$(snapshot t)"
		check "$cell: every other domain kept its pid, no restart" \
			[ -n "$before" -a -n "$after" -a "$(grep -v "^t\.$d " <<<"$before")" = "$(grep -v "^t\.$d " <<<"$after")" ]
		intact=no
		[ $rc -eq 0 ] && [ "$(sha "$WORK/curl")" = "$SUM64" ] && intact=yes
		case "$f" in
		bad-desc)
			sleep 0.2 # counters are published every 50 ms
			rej=$(stat_sum t 'rejected_(desc|index)$')
			check "$cell: the neighbours rejected and counted it (${rej:-no counters})" [ "${rej:-0}" -gt 0 ] ;;
		scribble)
			check "$cell: the domain logged its scribble" \
				[ "$(log_count t 'fault scribble: [0-9]+ random')" -gt "$scribbles" ] ;;
		esac
		case "$f:$d" in
		scribble:driver | scribble:ip)
			check "$cell: nothing corrupt was delivered (rc $rc, intact $intact)" \
				nothing_corrupt "$rc" "$WORK/curl" "$WORK/www/64m" ;;
		scribble:*)
			# Recorded, not promised (docs/FAULTS.md): what the
			# scribbled domain does to its own connections.
			echo "cell: tap scribble $d: curl rc $rc, intact $intact (recorded)" ;;
		*:driver | *:ip | bad-desc:*)
			check "$cell: curl completed intact (rc $rc)" \
				bash -c "[ $rc -eq 0 ] && [ \"\$(sha256sum <'$WORK/curl' | cut -d' ' -f1)\" = $SUM64 ]" ;;
		*)
			# 18: transfer closed with data outstanding; 56: failure
			# receiving (a reset); 28 would be the 60 s timeout.
			check "$cell: curl got a reset, not a hang (rc $rc)" [ $rc -eq 56 -o $rc -eq 18 ] ;;
		esac
		if [ "$d" = sock ] && [ "$(col t sock 4)" -ge 1 ]; then
			kill $SRV 2>/dev/null
			wait $SRV 2>/dev/null
			serve t
		fi
		if [ "$f" != scribble ]; then
			check "$cell: a new download works" \
				bash -c "curl -s --max-time 30 -o '$WORK/curl1' http://10.78.0.2:8080/1m &&
					cmp -s '$WORK/curl1' '$WORK/www/1m'"
			check "$cell: every buffer home" pools_full t
		fi
		kill $SRV 2>/dev/null
		wait $SRV 2>/dev/null
		timeout 20 "$B" down t >/dev/null
	done
done
finish
