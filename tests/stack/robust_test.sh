#!/bin/bash
# Bad input and misbehaving applications: nonsense arguments and bad
# configuration get clear errors and start nothing; a name in use is
# refused; an application killed mid-transfer (client or server) harms
# nobody else; an application that scribbles over its own region is
# reset and logged while a transfer of another application completes
# intact; sends that tcp's total memory bound held back all go once
# memory frees. Nothing is left behind.
. "$(dirname "$0")/lib.sh"
SCRIBBLE="$(dirname "$B")/../tests/stack/scribble_app"
[ -x "$SCRIBBLE" ] || SCRIBBLE="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tests/stack/scribble_app"

# refuses DESCRIPTION STATUS PATTERN ARGS...: the tool exits with
# STATUS (1: bad input or state, 2: bad usage) and the first line it
# prints matches PATTERN (an extended regular expression); nothing it
# printed is a sanitizer's report.
refuses() {
	local what="$1" want="$2" pat="$3"
	shift 3
	local out rc
	out="$(timeout 30 "$B" "$@" 2>&1)"
	rc=$?
	if [ $rc -eq "$want" ] && head -1 <<<"$out" | grep -E "$pat" >/dev/null &&
		! grep -E "Sanitizer|runtime error" <<<"$out" >/dev/null; then
		pass "$what (\"$(head -1 <<<"$out")\")"
	else
		fail "$what: rc $rc (want $want), said: $out"
	fi
}

W="--driver wire:r1:0"
A="--addr 10.9.0.1/24"
refuses "no command" 2 "^usage: bulkhead COMMAND"
refuses "unknown command" 2 "^bulkhead: unknown command 'frobnicate'$" frobnicate
refuses "up without a name" 2 "^usage: bulkhead up NAME " up
refuses "up without --driver" 2 "^bulkhead: up needs --driver SPEC$" up x $A
refuses "up without --addr" 2 "^bulkhead: up needs --addr A.B.C.D/LEN$" up x $W
refuses "up without either" 2 "^bulkhead: up needs --driver SPEC and --addr A.B.C.D/LEN$" up x
refuses "unknown driver kind" 1 "^bulkhead: bad --driver 'bogus:y': unknown driver" up x --driver bogus:y $A
refuses "wire end other than 0 or 1" 1 "^bulkhead: bad --driver 'wire:r1:2': .*the end, 0 or 1" up x --driver wire:r1:2 $A
refuses "address out of range" 1 "^bulkhead: bad --addr '300.1.1.1/24': not an IPv4 address" up x $W --addr 300.1.1.1/24
refuses "prefix length out of range" 1 "^bulkhead: bad --addr '10.9.0.1/40': the prefix length must be 0 to 32" up x $W --addr 10.9.0.1/40
refuses "address without a prefix" 1 "^bulkhead: bad --addr '10.9.0.1': no prefix length" up x $W --addr 10.9.0.1
refuses "gateway off the subnet" 1 "^bulkhead: bad --gw '10.10.0.1': the gateway is not on the subnet" up x $W $A --gw 10.10.0.1
refuses "unknown mode" 1 "^bulkhead: bad --mode 'turbo': factored or mono$" up x $W $A --mode turbo
refuses "MTU too small" 1 "^bulkhead: bad --mtu '50': 576 to 9000$" up x $W $A --mtu 50
refuses "MTU not a number" 1 "^bulkhead: bad --mtu 'big': 576 to 9000$" up x $W $A --mtu big
refuses "loss over 100%" 1 "^bulkhead: bad --impair 'loss=200%': impair: bad value" up x $W $A --impair loss=200%
refuses "unknown impairment" 1 "^bulkhead: bad --impair 'jitter=5ms': impair: unknown key" up x $W $A --impair jitter=5ms
refuses "unknown option" 2 "^bulkhead: unknown option --colour$" up x $W $A --colour blue
refuses "--cpus not a list" 1 "^bulkhead: bad --cpus '0-x': not a CPU list" up x $W $A --cpus 0-x
refuses "--cpus beyond this machine's" 1 "^bulkhead: bad --cpus '4095': not a CPU list" up x $W $A --cpus 4095
out="$(taskset -c 0 "$B" up x $W $A --cpus 0-1 2>&1)"
check "--cpus outside the CPUs allowed here ($out)" \
	grep -qx "bulkhead: bad --cpus '0-1': CPU 1 is not available here (available: 0)" <<<"$out"
refuses "a name with a slash" 1 "^bulkhead: bad instance name '../x'" up ../x $W $A
refuses "pcap on an interface that does not exist" 1 "^bulkhead: pcap:bhnope0: no such interface$" up x --driver pcap:bhnope0 $A
refuses "file: replay of a missing file" 1 "^bulkhead: file:/nonexistent/nope.pcap: No such file or directory$" up x --driver file:/nonexistent/nope.pcap $A
refuses "status of an instance that is not up" 1 "^bulkhead: instance nothere is not up" status nothere
refuses "down of an instance that is not up" 1 "^bulkhead: instance nothere is not up" down nothere
refuses "get from an instance that is not up" 1 "^bulkhead get: cannot attach to instance nothere: it is not up$" get nothere http://10.9.0.1/
refuses "get of a URL that is not http://" 2 "^bulkhead get: only http:// URLs" get nothere ftp://10.9.0.1/x
refuses "nc with a bad port" 2 "^usage: bulkhead nc NAME" nc nothere 10.9.0.1 99999
refuses "serve with a missing root" 1 "^bulkhead serve: --root /nonexistent/www: No such file or directory$" serve nothere --port 8080 --root /nonexistent/www
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
	skip "the unprivileged-TAP check: it needs root (to drop to nobody) and a user nobody"
fi

mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
head -c 67108864 /dev/urandom >"$WORK/www/64m"
# Long enough to be mid-transfer whatever the speed (sparse: no disk).
truncate -s 8G "$WORK/www/8g"

check "a up" timeout 30 "$B" up a --driver wire:r1:0 --addr 10.9.0.1/24
check "b up" timeout 30 "$B" up b --driver wire:r1:1 --addr 10.9.0.2/24
refuses "the same name again" 1 "^bulkhead: instance a is already up \(bulkhead down a first\)$" up a --driver wire:r2:0 --addr 10.9.1.1/24
refuses "a wire end already attached" 1 "^bulkhead: .*wire:r1: end 0 is in use by process [0-9]+" up c --driver wire:r1:0 --addr 10.9.0.3/24
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
	skip "the low-port checks: they need root (to drop to nobody) and a user nobody"
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
"$B" get b http://10.9.0.1:8080/8g -o /dev/null --no-hash 2>>"$WORK/victim.err" &
victim=$!
sleep 0.15
kill -0 $victim 2>/dev/null
check "client killed mid-transfer: it was still running when killed" [ $? -eq 0 ]
kill -9 $victim
wait $victim 2>/dev/null
# within 5 s: no connection left on either side but a's listener (a
# reset ends both ends at once: no CLOSE-WAIT, FIN-WAIT or TIME-WAIT).
only_listener() { # only_listener INSTANCE: conns shows nothing but LISTEN rows
	local rows
	rows="$(conns_rows "$1")" || return 1
	! grep -v ' LISTEN ' <<<"$rows" | grep . >/dev/null
}
no_established() {
	for _ in $(seq 50); do
		only_listener a && only_listener b && return 0
		sleep 0.1
	done
	echo "  a: $(conns_rows a | tr '\n' ';')"
	echo "  b: $(conns_rows b | tr '\n' ';')"
	return 1
}
check "a's listener is listed by conns" bash -c "timeout 10 '$B' conns a | grep -E '10.9.0.1:8080 .* LISTEN ' >/dev/null"
# What a stalled connection is read by: the timer and where its buffers are.
check "conns --json: every row says its flight, timer and buffers with sock" bash -c \
	"timeout 10 '$B' conns a --json | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"conns\"]; k=(\"in_flight\",\"ooo_queued\",\"rtx_timer\",\"with_sock\",\"wait_rx\",\"wait_tx\"); sys.exit(0 if r and all(all(x in c for x in k) and c[\"rtx_timer\"] in (True,False) for c in r) else 1)'"
check "client killed mid-transfer: a new transfer is intact" fetch_ok 1m
check "client killed mid-transfer: both instances fully running, no restart" \
	bash -c "$(declare -f all_running); B='$B'; all_running a && all_running b"

# A server killed mid-transfer: the client gets an error, not a hang.
"$B" serve a --port 8081 --root "$WORK/www" 2>>"$WORK/serve2.err" &
srv2=$!
sleep 0.3
timeout 60 "$B" get b http://10.9.0.1:8081/8g -o /dev/null --no-hash 2>"$WORK/dead.err" &
getp=$!
sleep 0.15
kill -9 $srv2
wait $srv2 2>/dev/null
wait $getp
rc=$?
check "server killed mid-transfer: the client ends with an error ($rc: $(tail -1 "$WORK/dead.err"))" \
	[ $rc -ne 0 -a $rc -ne 124 ]
check "server killed mid-transfer: the other server still serves" fetch_ok 1m

# A server stopped before it accepts, then killed: the connection waiting
# in its accept queue is reset (not left hanging), and tcp lets go of the
# listener, so the port can be listened on again.
until_true() { # until_true SECONDS COMMAND...: polls every 0.1 s
	local n=$(($1 * 10)); shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
has_row() { conns_rows "$1" | grep -qE "$2"; }
no_row() { local r; r="$(conns_rows "$1")" || return 1; ! grep -qE "$2" <<<"$r"; }
"$B" serve a --port 8082 --root "$WORK/www" 2>>"$WORK/serve3.err" &
srv3=$!
check "a serves port 8082" until_true 20 has_row a '^10\.9\.0\.1:8082 .* LISTEN'
kill -STOP $srv3
timeout 60 "$B" get b http://10.9.0.1:8082/1m -o /dev/null --no-hash 2>"$WORK/queued.err" &
getp=$!
check "the stopped server's connection is established" \
	until_true 20 has_row b '10\.9\.0\.1:8082 +ESTABLISHED'
kill -9 $srv3
wait $srv3 2>/dev/null
wait $getp
rc=$?
check "server killed with a connection in its accept queue: the client is reset ($rc: $(tail -1 "$WORK/queued.err"))" \
	[ $rc -ne 0 -a $rc -ne 124 ]
check "and a holds nothing on port 8082" until_true 10 no_row a ':8082 '
"$B" serve a --port 8082 --root "$WORK/www" 2>>"$WORK/serve3.err" &
srv3=$!
check "port 8082 is listened on again" until_true 20 has_row a '^10\.9\.0\.1:8082 .* LISTEN'
got_8082() {
	rm -f "$WORK/got3"
	timeout 60 "$B" get b http://10.9.0.1:8082/1m -o "$WORK/got3" 2>>"$WORK/get.err" &&
		[ "$(sha "$WORK/got3")" = "$(sha "$WORK/www/1m")" ]
}
check "and served whole" got_8082
kill $srv3
wait $srv3 2>/dev/null

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

# A supervisor that dies leaves a trace: status says why (a fatal signal
# of its own, or nothing at all after SIGKILL), the log has it, and its
# domains go with it.
sup_pid() { timeout 10 "$B" status "$1" --json | grep -oE '"supervisor_pid": [0-9]+' | grep -oE '[0-9]+$'; }
gone() { # gone INSTANCE: no domain process its log names still runs (waits up to 5 s)
	local p st left
	for _ in $(seq 50); do
		left=""
		for p in $(grep -oE '(driver|ip|tcp|sock|mono)\[[0-9]+\]' "$BULKHEAD_RUN/$1/log" |
			grep -oE '[0-9]+' | sort -u); do
			st="$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)"
			[ -n "$st" ] && [ "$st" != Z ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = bulkhead ] &&
				left="$left $p"
		done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "  still running:$left"
	return 1
}
check "c up" timeout 30 "$B" up c --driver wire:r3:0 --addr 10.9.3.1/24
sp="$(sup_pid c)"
check "c's supervisor pid ($sp)" [ -n "$sp" ]
kill -SEGV "$sp"
sleep 0.3
refuses "status after the supervisor crashed says why" 1 \
	"^bulkhead: instance c is not up: supervisor: fatal signal 11; it exits" status c
check "the log has the supervisor's last line" grep -q "supervisor: fatal signal 11" "$BULKHEAD_RUN/c/log"
check "c's domains went with their supervisor" gone c
check "c up again" timeout 30 "$B" up c --driver wire:r3:0 --addr 10.9.3.1/24
sp="$(sup_pid c)"
kill -KILL "$sp"
sleep 0.3
refuses "status after the supervisor was killed says it left no word" 1 \
	"^bulkhead: instance c is not up: its supervisor ended without a word" status c
check "c's domains went with their supervisor" gone c

# --cpus: the supervisor, every domain and a replacement on the CPUs
# chosen, and status says so.
cpus_of() { # the distinct Cpus_allowed_list of INSTANCE's processes
	local p
	for p in $(sup_pid "$1") $(pid_of "$1" driver) $(pid_of "$1" ip) \
		$(pid_of "$1" tcp) $(pid_of "$1" sock); do
		awk '/^Cpus_allowed_list/ {print $2}' "/proc/$p/status"
	done | sort -u | tr '\n' ' '
}
check "up --cpus 0" timeout 30 "$B" up p --driver wire:r4:0 --addr 10.9.4.1/24 --cpus 0
check "every process of it on CPU 0 ($(cpus_of p))" [ "$(cpus_of p)" = "0 " ]
check "status says so" bash -c "timeout 10 '$B' status p | grep -qx 'cpus: 0 (up --cpus)' &&
	timeout 10 '$B' status p --json | grep -q '\"cpus\": \"0\", \"cpus_chosen\": true'"
check "kill into ip" timeout 10 "$B" inject p ip kill
for _ in $(seq 100); do [ "$(col p ip 4)" = 1 ] && [ "$(col p ip 3)" = running ] && break; sleep 0.05; done
check "the replacement on CPU 0 too ($(cpus_of p))" [ "$(cpus_of p)" = "0 " ]
check "p down" timeout 20 "$B" down p

# tcp's total memory bound reached: 200 connections' 64-byte writes,
# each in a 16 KiB SOCK buffer, against a bound of 1 MiB. A send the
# bound refuses waits, and goes once the others' ACKs free memory (it
# used to wait for an event of its own connection, which never came:
# the echoes stayed missing).
check "m0 up with a 1 MiB tcp memory bound" env BULKHEAD_TCP_MEM=1048576 \
	timeout 30 "$B" up m0 --driver wire:r5:0 --addr 10.9.5.1/24
check "m1 up with a 1 MiB tcp memory bound" env BULKHEAD_TCP_MEM=1048576 \
	timeout 30 "$B" up m1 --driver wire:r5:1 --addr 10.9.5.2/24
timeout 60 "$B" loadgen server --instance m0 --port 9000 2>/dev/null &
lsrv=$!
sleep 0.3
out="$(timeout 60 "$B" loadgen conc --instance m1 --host 10.9.5.1 --port 9000 --conns 200 \
	--size 64 --count 400 2>&1 | tail -1)"
sleep 0.2 # counters are published every 50 ms
waits=$(( $(stat_of m1 tcp.nomem_waits || echo 0) + $(stat_of m0 tcp.nomem_waits || echo 0) ))
check "every echo came back though sends waited for memory ($waits waits: $out)" \
	bash -c "[ $waits -gt 0 ] && grep -q 'verified=1' <<<'$out'"
kill $lsrv 2>/dev/null
wait $lsrv 2>/dev/null
check "m0 down" timeout 20 "$B" down m0
check "m1 down" timeout 20 "$B" down m1

# The SOCK pool run empty: 8 downloads of 20 MB from a server whose pool
# has 256 buffers (one socket's budget alone is more), every one whole.
# A socket that finds the pool empty, or its data behind control
# messages waiting for buffers, is serviced again when any buffer comes
# home: it used to wait for a buffer of its own, and 3 of 48 parallel
# 20 MB downloads on the default pool never completed. (This run does
# not reproduce that stall every time: each socket here usually holds
# buffers of its own, whose return wakes it; it checks that nothing
# stalls when the pool is empty over and over.)
mkdir -p "$WORK/sb"
head -c 20000000 /dev/urandom >"$WORK/sb/20m"
check "s0 up with 256 SOCK buffers" env BULKHEAD_SOCK_BUFS=256 \
	timeout 30 "$B" up s0 --driver wire:r6:0 --addr 10.9.6.1/24
check "s1 up" timeout 30 "$B" up s1 --driver wire:r6:1 --addr 10.9.6.2/24
"$B" serve s0 --port 8080 --root "$WORK/sb" 2>>"$WORK/serve-sb.err" &
ssrv=$!
sleep 0.3
ok=$(gets_whole 8 s1 http://10.9.6.1:8080/20m "$WORK/sb/20m" "$WORK/sb")
sleep 0.2 # counters are published every 50 ms
starved=$(stat_of s0 sock.tx_starved || echo 0)
check "8 downloads through 256 SOCK buffers, every one whole ($ok; the pool was empty $starved times)" \
	[ "$ok" -eq 8 -a "$starved" -gt 0 ]
out="$(BULKHEAD_SOCK_BUFS=7 timeout 30 "$B" up x --driver wire:r7:0 $A 2>&1)"
rc=$?
said=0
grep -q "^bulkhead: bad BULKHEAD_SOCK_BUFS '7': 64 to " <<<"$out" && said=1
check "a SOCK pool knob out of range is refused (rc $rc: $out)" [ "$rc" -eq 1 -a "$said" -eq 1 ]
out="$(BULKHEAD_SEND_CHAIN=yes timeout 30 "$B" up x --driver wire:r7:0 $A 2>&1)"
rc=$?
said=0
grep -q "^bulkhead: bad BULKHEAD_SEND_CHAIN 'yes': 0 or 1" <<<"$out" && said=1
check "a send chain knob other than 0 or 1 is refused (rc $rc: $out)" [ "$rc" -eq 1 -a "$said" -eq 1 ]
check "x up with send chains off" env BULKHEAD_SEND_CHAIN=0 timeout 30 "$B" up x --driver wire:r7:0 $A
check "status says send chains are off" \
	bash -c "timeout 10 '$B' status x | grep -q 'send chains (payload gathered by the driver): no' && timeout 10 '$B' status x --json | grep -q '\"send_chains\": false'"
check "x down" timeout 20 "$B" down x
kill $ssrv 2>/dev/null
wait $ssrv 2>/dev/null
check "s0 down" timeout 20 "$B" down s0
check "s1 down" timeout 20 "$B" down s1

# The receiver's memory bound reached: 48 downloads of 5 MB into a
# client whose tcp may hold 1 MiB (their windows promise 192). In-order
# data takes memory from other connections' out-of-order data, and a
# connection with nothing queued always takes one segment: before, each
# in-order segment was dropped for memory the others' holes pinned, and
# the senders backed off towards RTOs of tens of seconds (the last of
# the 48 came after 59 s; all take about 5 s now, and 30 s is the limit
# for a stall, not a speed test).
rm -f "$WORK"/sb.[0-9]*
check "k0 up" timeout 30 "$B" up k0 --driver wire:r8:0 --addr 10.9.8.1/24
check "k1 up with a 1 MiB tcp memory bound" env BULKHEAD_TCP_MEM=1048576 \
	timeout 30 "$B" up k1 --driver wire:r8:1 --addr 10.9.8.2/24
"$B" serve k0 --port 8080 --root "$WORK/sb" 2>>"$WORK/serve-k.err" &
ksrv=$!
sleep 0.3
head -c 5000000 /dev/urandom >"$WORK/sb/5m"
# ThreadSanitizer runs every process several times slower (35 of 48
# came within 30 s there): fewer downloads, a longer limit.
n=48 lim=30
[ -n "${TSAN_OPTIONS:-}" ] && n=16 lim=120
ok=$(GETS_TIMEOUT=$lim gets_whole $n k1 http://10.9.8.1:8080/5m "$WORK/sb/5m" "$WORK/k")
sleep 0.2 # counters are published every 50 ms
taken=$(( $(stat_of k1 tcp.mem_forced || echo 0) + $(stat_of k1 tcp.ooo_pruned || echo 0) ))
check "$n downloads through a 1 MiB receive bound, every one whole within $lim s ($ok; memory taken back or past the bound $taken times)" \
	[ "$ok" -eq "$n" -a "$taken" -gt 0 ]
kill $ksrv 2>/dev/null
wait $ksrv 2>/dev/null
check "k0 down" timeout 20 "$B" down k0
check "k1 down" timeout 20 "$B" down k1

kill $srv
wait $srv 2>/dev/null
check "a down" timeout 20 "$B" down a
check "b down" timeout 20 "$B" down b
finish
