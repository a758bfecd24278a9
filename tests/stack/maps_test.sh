#!/bin/bash
# Least privilege, as mapped: each running domain's shared mappings
# (/proc/PID/maps, the memfd regions the supervisor made) against the
# table in docs/ARCHITECTURE.md ("Who maps what (per domain)"), exactly:
# nothing missing, nothing more, each with its permission. "part" is a
# link region mapped read-only with read-write pages only where that side
# writes. With an application attached, its region is mapped by the
# socket server and by the application, by no other domain.
. "$(dirname "$0")/lib.sh"

declare -A WANT
WANT[driver]="bell-driver:rw bell-ip:rw link-driver-ip:part plan:r pool-ip:r pool-rx:rw pool-seg:r stats-driver:rw"
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
pid_of() { timeout 10 "$B" status "$1" | awk -v d="$2" '$1 == d {print $2}'; }

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
check "down" timeout 20 "$B" down a
finish
