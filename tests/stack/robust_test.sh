#!/bin/bash
# Bad input and misbehaving applications: nonsense arguments and bad
# configuration get clear errors and start nothing; a name in use is
# refused; an application killed mid-transfer (client or server) harms
# nobody else; an application that scribbles over its own region is
# reset and logged while a transfer of another application completes
# intact. Nothing is left behind.
. "$(dirname "$0")/lib.sh"
SCRIBBLE="$(dirname "$B")/../tests/stack/scribble_app"
[ -x "$SCRIBBLE" ] || SCRIBBLE="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tests/stack/scribble_app"

# refuses DESCRIPTION PATTERN ARGS...: the tool fails with a message
# matching PATTERN (case-insensitive), and no instance is left.
refuses() {
	local what="$1" pat="$2"
	shift 2
	local out rc
	out="$(timeout 30 "$B" "$@" 2>&1)"
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qiE "$pat" <<<"$out"; then
		pass "$what (\"$(head -1 <<<"$out")\")"
	else
		fail "$what: rc $rc, said: $out"
	fi
}

refuses "no command" "usage"
refuses "unknown command" "unknown|usage" frobnicate
refuses "up without a name" "usage|name" up
refuses "up without --driver" "driver" up x --addr 10.9.0.1/24
refuses "up without --addr" "addr" up x --driver wire:r1:0
refuses "unknown driver kind" "driver" up x --driver bogus:y --addr 10.9.0.1/24
refuses "wire end other than 0 or 1" "wire|end" up x --driver wire:r1:2 --addr 10.9.0.1/24
refuses "address out of range" "address" up x --driver wire:r1:0 --addr 300.1.1.1/24
refuses "prefix length out of range" "prefix|address" up x --driver wire:r1:0 --addr 10.9.0.1/40
refuses "address without a prefix" "address|prefix|CIDR" up x --driver wire:r1:0 --addr 10.9.0.1
refuses "gateway off the subnet" "gateway|gw" up x --driver wire:r1:0 --addr 10.9.0.1/24 --gw 10.10.0.1
refuses "unknown mode" "mode" up x --driver wire:r1:0 --addr 10.9.0.1/24 --mode turbo
refuses "MTU too small" "mtu" up x --driver wire:r1:0 --addr 10.9.0.1/24 --mtu 50
refuses "MTU not a number" "mtu" up x --driver wire:r1:0 --addr 10.9.0.1/24 --mtu big
refuses "loss over 100%" "impair|loss" up x --driver wire:r1:0 --addr 10.9.0.1/24 --impair loss=200%
refuses "unknown impairment" "impair" up x --driver wire:r1:0 --addr 10.9.0.1/24 --impair jitter=5ms
refuses "unknown option" "option|usage" up x --driver wire:r1:0 --addr 10.9.0.1/24 --colour blue
refuses "a name with a slash" "name" up ../x --driver wire:r1:0 --addr 10.9.0.1/24
refuses "pcap on an interface that does not exist" "bhnope0|interface|exist" up x --driver pcap:bhnope0 --addr 10.9.0.1/24
refuses "file: replay of a missing file" "nope.pcap|no such|file" up x --driver file:/nonexistent/nope.pcap --addr 10.9.0.1/24
refuses "status of an instance that is not up" "not up|no such|not running" status nothere
refuses "down of an instance that is not up" "not up|no such|not running" down nothere
refuses "get from an instance that is not up" "not up" get nothere http://10.9.0.1/
refuses "get of a URL that is not http://" "url|http" get nothere ftp://10.9.0.1/x
refuses "nc with a bad port" "usage|port" nc nothere 10.9.0.1 99999
refuses "serve with a missing root" "root|directory|no such" serve nothere --port 8080 --root /nonexistent/www
none_running() { [ -z "$(run_pids)" ]; }
sleep 0.2
check "nothing was started by the refused commands" none_running

if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	cp "$B" "$WORK/bulkhead" && chmod 755 "$WORK" "$WORK/bulkhead"
	out="$(BULKHEAD_RUN="$WORK/nobody-run" timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$WORK/bulkhead" up x --driver tap:bhnr$$ --addr 10.9.0.1/24 2>&1)"
	rc=$?
	check "tap as an unprivileged user is refused with a reason (\"$out\")" \
		bash -c "[ $rc -ne 0 ] && grep -qiE 'root|CAP_NET_ADMIN|permit' <<<\"\$0\"" "$out"
	check "and no interface was made" bash -c "! ip link show bhnr$$ >/dev/null 2>&1"
else
	echo "note: not root: the unprivileged-TAP check needs root to drop to nobody; not run"
fi

mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
head -c 67108864 /dev/urandom >"$WORK/www/64m"

check "a up" timeout 30 "$B" up a --driver wire:r1:0 --addr 10.9.0.1/24
check "b up" timeout 30 "$B" up b --driver wire:r1:1 --addr 10.9.0.2/24
refuses "the same name again" "in use|already|running" up a --driver wire:r2:0 --addr 10.9.1.1/24
refuses "a wire end already attached" "in use|busy" up c --driver wire:r1:0 --addr 10.9.0.3/24
check "the first a is untouched" bash -c "timeout 10 '$B' status a | grep -c running | grep -qx 4"

# Ports below 1024 are for root (the socket server knows each
# application's uid from SO_PEERCRED); others may bind above.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	chmod 755 "$BULKHEAD_RUN"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$WORK/bulkhead" "$@"; }
	out="$(timeout 10 bash -c "$(declare -f as_nobody); WORK='$WORK'; as_nobody nc a -l 0.0.0.0 80 </dev/null" 2>&1)"
	check "port 80 refused to an unprivileged application (\"$out\")" grep -qi "permission denied" <<<"$out"
	timeout 1 bash -c "$(declare -f as_nobody); WORK='$WORK'; as_nobody nc a -l 0.0.0.0 8090 </dev/null" >/dev/null 2>&1
	check "port 8090 allowed to it (still listening when stopped)" [ $? -eq 124 ]
	sleep 0.2 # counters are published every 50 ms
	low=$(timeout 10 "$B" stats a | awk '$1 == "sock.low_port_denied" {print $2}')
	check "the refusal is counted (sock.low_port_denied ${low:-none})" [ "${low:-0}" -ge 1 ]
else
	echo "note: not root: the low-port check needs root to drop to nobody; not run"
fi

"$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
srv=$!
sleep 0.3

all_running() { # all_running INSTANCE: four domains running, none restarted
	local st
	st="$(timeout 10 "$B" status "$1" --json)" || return 1
	[ "$(grep -o '"state": "running"' <<<"$st" | wc -l)" -eq 4 ] &&
		! grep -qE '"restarts": [1-9]' <<<"$st"
}
fetch_ok() { # fetch_ok FILE: b gets FILE from a, hash checked
	rm -f "$WORK/got"
	timeout 60 "$B" get b "http://10.9.0.1:8080/$1" -o "$WORK/got" 2>>"$WORK/get.err" &&
		[ "$(sha "$WORK/got")" = "$(sha "$WORK/www/$1")" ]
}

# A client killed mid-transfer.
"$B" get b http://10.9.0.1:8080/64m -o "$WORK/dead" 2>/dev/null &
victim=$!
sleep 0.15
kill -0 $victim 2>/dev/null
check "client killed mid-transfer: it was still running when killed" [ $? -eq 0 ]
kill -9 $victim
wait $victim 2>/dev/null
# within 5 s: no established connection left on either side
no_established() {
	for _ in $(seq 50); do
		! timeout 10 "$B" conns a | grep -q ESTABLISHED &&
			! timeout 10 "$B" conns b | grep -q ESTABLISHED && return 0
		sleep 0.1
	done
	return 1
}
check "client killed mid-transfer: its connection is reset on both sides" no_established
check "client killed mid-transfer: a new transfer is intact" fetch_ok 1m
check "client killed mid-transfer: both instances fully running, no restart" \
	bash -c "$(declare -f all_running); B='$B'; all_running a && all_running b"

# A server killed mid-transfer: the client gets an error, not a hang.
"$B" serve a --port 8081 --root "$WORK/www" 2>>"$WORK/serve2.err" &
srv2=$!
sleep 0.3
timeout 60 "$B" get b http://10.9.0.1:8081/64m -o "$WORK/dead" 2>"$WORK/dead.err" &
getp=$!
sleep 0.15
kill -9 $srv2
wait $srv2 2>/dev/null
wait $getp
rc=$?
check "server killed mid-transfer: the client ends with an error ($rc: $(tail -1 "$WORK/dead.err"))" \
	[ $rc -ne 0 -a $rc -ne 124 ]
check "server killed mid-transfer: the other server still serves" fetch_ok 1m

# An application scribbling over its own region, while another
# application downloads 64 MiB.
timeout 60 "$B" get b http://10.9.0.1:8080/64m -o "$WORK/during" 2>>"$WORK/get.err" &
getp=$!
timeout 60 "$SCRIBBLE" b 10.9.0.1 8080 7 200 >"$WORK/scribble.out" 2>"$WORK/scribble.err"
src=$?
wait $getp
grc=$?
check "scribbler ran to its end ($src: $(tail -1 "$WORK/scribble.out") $(tail -1 "$WORK/scribble.err"))" [ $src -eq 0 ]
check "scribbler: the other application's 64 MiB arrived intact" \
	[ $grc -eq 0 -a "$(sha "$WORK/during")" = "$(sha "$WORK/www/64m")" ]
sleep 0.2 # counters are published every 50 ms
bad=$(timeout 10 "$B" stats b | awk '$1 == "sock.app_bad_index" {print $2}')
check "scribbler: the socket server counted its bad indices (${bad:-none})" [ "${bad:-0}" -gt 0 ]
check "scribbler: the socket server logged it" \
	bash -c "timeout 10 '$B' logs b sock | grep -qiE 'bad|reset|invalid'"
check "scribbler: both instances fully running, no restart" \
	bash -c "$(declare -f all_running); B='$B'; all_running a && all_running b"
check "scribbler: a new transfer afterwards is intact" fetch_ok 64m

kill $srv
wait $srv 2>/dev/null
check "a down" timeout 20 "$B" down a
check "b down" timeout 20 "$B" down b
finish
