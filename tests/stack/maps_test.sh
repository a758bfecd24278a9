#!/bin/bash
# Least privilege, as mapped: each running domain's shared mappings
# (/proc/PID/maps, the memfd regions the supervisor made) against the
# table in docs/ARCHITECTURE.md ("Who maps what (per domain)"), exactly:
# nothing missing, nothing more, each with its permission. "part" is a
# link region mapped read-only with read-write pages only where that side
# writes. With an application attached, its region is mapped by the
# socket server and by the application, by no other domain.
# Then the rest of least privilege: each domain runs with no capability,
# no_new_privs and (but in ASan and TSan builds, which say so in the log)
# the seccomp filter; a domain that tries a forbidden call (the `syscall`
# fault: open a file, create a socket) is killed by SIGSYS and replaced.
. "$(dirname "$0")/lib.sh"

declare -A WANT
# The driver of a wire: instance that neither captures nor impairs reads
# the payload of tcp's send chains where it lies (pool-sock, read-only);
# where it captures it does not
# (DRIVER_NO_CHAIN, checked below on an instance that captures).
DRIVER_NO_CHAIN="bell-driver:rw bell-ip:rw link-driver-ip:part plan:r pool-ip:r pool-rx:rw pool-seg:r stats-driver:rw"
WANT[driver]="bell-driver:rw bell-ip:rw link-driver-ip:part plan:r pool-ip:r pool-rx:rw pool-seg:r pool-sock:r stats-driver:rw"
WANT[ip]="bell-driver:rw bell-ip:rw bell-sock:rw bell-tcp:rw link-driver-ip:part link-ip-sock:part link-ip-tcp:part plan:r pool-ip:rw pool-rx:r pool-seg:rw pool-sock:r stats-ip:rw"
WANT[tcp]="bell-ip:rw bell-sock:rw bell-tcp:rw link-ip-tcp:part link-tcp-sock:part plan:r pool-ip:r pool-rx:r pool-seg:rw pool-sock:r stats-tcp:rw"
WANT[sock]="bell-ip:rw bell-sock:rw bell-tcp:rw link-ip-sock:part link-tcp-sock:part plan:r pool-ip:r pool-rx:r pool-seg:r pool-sock:rw stats-sock:rw"

# mapped PID: "region:perm ..." sorted, from the bh-* memfd mappings.
mapped() {
	awk '$6 ~ /^\/memfd:bh-/ {
		name = substr($6, length("/memfd:bh-") + 1)
		if ($2 ~ /^rw/) rw[name] = 1; else if ($2 ~ /^r/) ro[name] = 1
		seen[name] = 1
	}
	END {
		for (n in seen) {
			p = (n in rw) && (n in ro) ? "part" : (n in rw) ? "rw" : "r"
			print n ":" p
		}
	}' "/proc/$1/maps" | sort | tr '\n' ' ' | sed 's/ $//'
}

check "instance up" timeout 30 "$B" up a --driver wire:m1:0 --addr 10.9.0.1/24
for d in driver ip tcp sock; do
	got="$(mapped "$(pid_of a "$d")")"
	check "$d maps exactly: $got" [ "$got" = "${WANT[$d]}" ]
done

# An application attached: its region appears in sock and nowhere else.
"$B" nc a -l 0.0.0.0 7000 </dev/null >/dev/null &
app=$!
sleep 0.5
check "the application is attached" kill -0 $app
appreg="app-$app"
for d in driver ip tcp sock; do
	got="$(mapped "$(pid_of a "$d")")"
	want="${WANT[$d]}"
	[ "$d" = sock ] && want="$(tr ' ' '\n' <<<"$want $appreg:rw" | sort | tr '\n' ' ' | sed 's/ $//')"
	check "with an application, $d maps exactly: $got" [ "$got" = "$want" ]
done
check "the application maps its own region and the socket server's bell, nothing else" \
	[ "$(mapped $app)" = "$appreg:rw bell-sock:rw" ]
kill $app
wait $app 2>/dev/null

# No send chains where the driver captures: no SOCK pool in the driver.
check "an instance that captures is up" timeout 30 "$B" up c --driver wire:m2:0 --addr 10.9.1.1/24 \
	--capture "$WORK/maps-c.pcap"
got="$(mapped "$(pid_of c driver)")"
check "where it captures, driver maps exactly: $got" [ "$got" = "$DRIVER_NO_CHAIN" ]
"$B" down c >/dev/null 2>&1

# --- capabilities, no_new_privs, seccomp ----------------------------------
status_field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
filters=1
grep -q "no seccomp filter in this sanitizer build" "$BULKHEAD_RUN/a/log" && filters=0
[ $filters = 1 ] || skip "the seccomp checks: this sanitizer build loads no seccomp filter (docs/FAULTS.md)"
# Every thread of every domain; in a sanitizer build only the main
# thread, as the sanitizer's runtime starts threads of its own (ThreadSanitizer's
# background thread) that Bulkhead does not run.
for d in driver ip tcp sock; do
	p="$(pid_of a "$d")" || { fail "$d: no pid in status"; continue; }
	tasks="$(ls "/proc/$p/task")"
	[ $filters = 1 ] || tasks="$p"
	check "$d: threads to check ($(wc -w <<<"$tasks"))" [ -n "$tasks" ]
	for t in $tasks; do
		check "$d thread $t: no capabilities" [ "$(status_field "$p/task/$t" CapEff)" = 0000000000000000 \
			-a "$(status_field "$p/task/$t" CapPrm)" = 0000000000000000 \
			-a "$(status_field "$p/task/$t" CapBnd)" = 0000000000000000 ]
		check "$d thread $t: no_new_privs" [ "$(status_field "$p/task/$t" NoNewPrivs)" = 1 ]
		[ $filters = 1 ] && check "$d thread $t: seccomp filter" [ "$(status_field "$p/task/$t" Seccomp)" = 2 ]
	done
done
if [ $filters = 1 ]; then
	export ASAN_OPTIONS="handle_segv=0:${ASAN_OPTIONS:-}" UBSAN_OPTIONS="handle_segv=0:${UBSAN_OPTIONS:-}"
	for d in driver ip tcp sock; do
		check "syscall $d: injected" inject a "$d" syscall
		for _ in $(seq 100); do
			[ "$(timeout 10 "$B" status a | awk -v d=$d '$1 == d {print $4}')" = 1 ] &&
				[ "$(timeout 10 "$B" status a | awk -v d=$d '$1 == d {print $3}')" = running ] && break
			sleep 0.05
		done
		check "syscall $d: stopped by SIGSYS at the first forbidden call, and replaced" \
			bash -c "timeout 10 '$B' status a | grep -E '^$d ' | grep -q 'last: signal 31'"
		check "syscall $d: the forbidden calls never returned" \
			bash -c "! grep -q 'the sandbox did not stop them' '$BULKHEAD_RUN/a/log'"
	done
	check "after the four replacements, all four run under the sandbox again" \
		bash -c "[ \$(timeout 10 '$B' status a | grep -cE '^(driver|ip|tcp|sock) .* running ') = 4 ] &&
			for d in driver ip tcp sock; do
				p=\$(timeout 10 '$B' status a | awk -v d=\$d '\$1 == d {print \$2}')
				grep -qE '^Seccomp:[[:space:]]+2' /proc/\$p/status || exit 1
			done"
fi
check "down" timeout 20 "$B" down a
finish
