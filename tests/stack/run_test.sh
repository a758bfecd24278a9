#!/bin/bash
# `bulkhead run`: unmodified programs from Debian with their sockets on
# an instance, factored and mono, over TAP with Linux as the peer and
# over wire: between two instances.
#   - callcheck (every call the preload library takes over) prints the
#     same transcript under `run` as on the kernel;
#   - curl, wget, python3's urllib and http.server, nc both ways, every
#     file hashed; loopback stays with the host (and the log says so);
#   - nginx (a master that forks two workers after listen) serving Linux
#     curl and wrk; redis-server and redis-benchmark, each under run with
#     the other on Linux; iperf3 both ways;
#   - exec into a program not under run with a socket not marked
#     close-on-exec says so (callcheck keeps one across exec under run);
#   - an instance that goes down ends a blocked read with ECONNRESET, a
#     destination off the subnet without a gateway is ENETUNREACH, and
#     `run` of an instance that is not there says so.
# Needs root (TAP).
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	fail "this test needs root (TAP devices)"
	finish
fi
for t in curl wget nc python3 nginx wrk redis-server redis-benchmark iperf3; do
	command -v "$t" >/dev/null || { fail "$t is not installed"; finish; }
done
CALLCHECK="$(dirname "$B")/../tests/stack/callcheck"
[ -x "$CALLCHECK" ] || CALLCHECK="$(dirname "$0")/callcheck"
PEER="$(dirname "$0")/run_peer.py"

TAP="bhr$$"
# A subnet no other test uses: tests run two at a time, and two TAP
# interfaces with one subnet send the other test's traffic astray.
HOST=10.83.0.1
ME=10.83.0.2
interface_gone_at_exit "$TAP"
KIDS=()
kids_gone() { for p in "${KIDS[@]}"; do kill "$p" 2>/dev/null; done; return 0; }
at_exit kids_gone

mkdir -p "$WORK/www"
head -c 20000000 /dev/urandom >"$WORK/www/20m"
head -c 100000 /dev/urandom >"$WORK/small"
SUM="$(sha "$WORK/www/20m")"

# until_up SECONDS CMD...: retries CMD until it succeeds.
until_up() {
	local n="$1"; shift
	for _ in $(seq 1 $((n * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

# A program that blocks in a read until the instance goes: its errno.
cat >"$WORK/blocked.py" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("connected", flush=True)
try:
    s.recv(10)
    print("returned")
except OSError as e:
    print("errno", e.errno)
EOF

# A hostile program under run: it scribbles over its own region (found
# in /proc/self/maps, as any process could) while using a socket.
cat >"$WORK/scribble.py" <<'EOF'
import ctypes, random, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
base = size = None
for line in open("/proc/self/maps"):
    if "bh-app-" in line and "rw" in line.split()[1]:
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        base, size = lo, hi - lo
if base is None:
    print("no region")
    sys.exit(3)
rnd = random.Random(7)
s.settimeout(0.2)
for _ in range(100):
    for _ in range(2000):
        ctypes.memset(base + rnd.randrange(size), rnd.randrange(256), 1)
    try:
        s.send(b"x" * 100)
        s.recv(100)
    except OSError:
        pass
print("done")
EOF
all_running() { # all_running INSTANCE: four domains running, none restarted
	local st
	st="$(timeout 10 "$B" status "$1" --json)" || return 1
	[ "$(grep -o '"state": "running"' <<<"$st" | wc -l)" -eq 4 ] &&
		! grep -qE '"restarts": [1-9]' <<<"$st"
}

# Each round has ports of its own: the instance log (and any server
# still going down) outlives a round.
round=0
for mode in factored mono; do
	round=$((round + 1))
	PNC=$((9200 + round))
	PLO=$((8100 + round))
	check "$mode: up over tap:$TAP" \
		timeout 30 "$B" up r --driver "tap:$TAP" --host-addr $HOST/24 --addr $ME/24 --mode $mode
	python3 "$PEER" $HOST 7000 >"$WORK/peer.out" 2>&1 &
	KIDS+=($!)
	(cd "$WORK/www" && exec python3 -m http.server 8000 --bind $HOST) >"$WORK/http.out" 2>&1 &
	KIDS+=($!)
	until_up 10 curl -sf -o /dev/null http://$HOST:8000/ || fail "$mode: host http.server did not start"
	until_up 10 bash -c "echo | nc -q0 $HOST 7000" || fail "$mode: the peer did not start"

	# Every call, against the kernel's transcript.
	timeout 60 "$CALLCHECK" $HOST 7000 >"$WORK/kernel.txt" 2>"$WORK/kernel.err"
	check "$mode: callcheck on the kernel runs to its end" grep -qx "== done" "$WORK/kernel.txt"
	# (In a sanitizer build callcheck has ASan's runtime, which wants to
	# be loaded first; the preload library, built without it, comes
	# first under run and takes nothing from it: the check is off.)
	ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0" \
		timeout 60 "$B" run r -- "$CALLCHECK" $HOST 7000 >"$WORK/run.txt" 2>"$WORK/run.err"
	check "$mode: callcheck under run runs to its end" grep -qx "== done" "$WORK/run.txt"
	if diff "$WORK/kernel.txt" "$WORK/run.txt" >"$WORK/calls.diff"; then
		pass "$mode: callcheck's transcript under run is the kernel's ($(wc -l <"$WORK/run.txt") lines)"
	else
		fail "$mode: callcheck's transcript differs from the kernel's:"
		cat "$WORK/calls.diff"
	fi
	check "$mode: an option the library lacks is named once on stderr" \
		bash -c "[ \$(grep -c 'setsockopt level 6 option 9999: not supported' '$WORK/run.err') = 1 ]"

	# Real programs.
	rm -f "$WORK/got"
	check "$mode: curl under run downloads from Linux" \
		timeout 60 "$B" run r -- curl -sS -o "$WORK/got" http://$HOST:8000/20m
	check "$mode: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
	rm -f "$WORK/got"
	check "$mode: wget under run downloads from Linux" \
		timeout 60 "$B" run r -- wget -q -O "$WORK/got" http://$HOST:8000/20m
	check "$mode: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
	check "$mode: python3 urllib under run" bash -c "[ \"\$(timeout 60 '$B' run r -- python3 -c \"
import urllib.request, hashlib
print(hashlib.sha256(urllib.request.urlopen('http://$HOST:8000/20m').read()).hexdigest())\")\" = '$SUM' ]"
	(cd "$WORK/www" && exec timeout 120 "$B" run r -- python3 -m http.server 8080) \
		>"$WORK/srv.out" 2>&1 &
	KIDS+=($!)
	until_up 10 curl -sf -o /dev/null http://$ME:8080/ || fail "$mode: http.server under run did not start"
	rm -f "$WORK/got"
	check "$mode: Linux curl from python3 http.server under run" \
		timeout 60 curl -sS -o "$WORK/got" http://$ME:8080/20m
	check "$mode: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
	kill "${KIDS[-1]}" 2>/dev/null

	timeout 20 nc -l -s $HOST -p 9100 >"$WORK/nc1" 2>/dev/null &
	sleep 0.3
	check "$mode: nc under run to Linux nc" \
		timeout 20 "$B" run r -- nc -q1 $HOST 9100 <"$WORK/small"
	sleep 0.3
	check "$mode: ... every byte" cmp -s "$WORK/small" "$WORK/nc1"
	timeout 20 "$B" run r -- nc -l -p $PNC >"$WORK/nc2" 2>/dev/null &
	until_up 5 grep -q "bind 0.0.0.0:$PNC" "$BULKHEAD_RUN/r/log"
	check "$mode: Linux nc to nc -l under run" timeout 20 nc -q1 $ME $PNC <"$WORK/small"
	sleep 0.3
	check "$mode: ... every byte" cmp -s "$WORK/small" "$WORK/nc2"

	# Servers that fork, and event loops (epoll) of real programs.
	mkdir -p "$WORK/ng"
	cat >"$WORK/ng/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server { listen 8090; root $WORK/www; }
}
EOF
	head -c 1024 /dev/urandom >"$WORK/www/1k"
	timeout 120 "$B" run r -- nginx -c "$WORK/ng/nginx.conf" >"$WORK/ng/out" 2>&1 &
	KIDS+=($!)
	until_up 10 curl -sf -o /dev/null http://$ME:8090/1k || fail "$mode: nginx under run did not start"
	check "$mode: nginx under run: a master and two workers" \
		bash -c "[ \$(pgrep -f 'nginx: worker process' | wc -l) -ge 2 ]"
	rm -f "$WORK/got"
	check "$mode: Linux curl from nginx under run" timeout 60 curl -sS -o "$WORK/got" http://$ME:8090/20m
	check "$mode: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
	timeout 30 wrk -t2 -c50 -d2s http://$ME:8090/1k >"$WORK/wrk.out" 2>&1
	check "$mode: wrk against nginx under run: $(grep -o 'Requests/sec: *[0-9.]*' "$WORK/wrk.out"), no error" \
		bash -c "grep -q 'Requests/sec' '$WORK/wrk.out' && ! grep -qE 'Non-2xx|Socket errors' '$WORK/wrk.out'"
	check "$mode: nginx said nothing alarming" bash -c "! grep -E '\\[(alert|emerg|crit)\\]' '$WORK/ng/out' '$WORK/ng/error.log'"
	pkill -f "nginx -c $WORK/ng/nginx.conf"

	timeout 60 "$B" run r -- redis-server --port 6390 --bind 0.0.0.0 --save "" --appendonly no \
		--protected-mode no >"$WORK/redis.out" 2>&1 &
	KIDS+=($!)
	until_up 10 bash -c "redis-cli -h $ME -p 6390 ping | grep -q PONG"
	check "$mode: redis-benchmark from Linux against redis-server under run" bash -c \
		"timeout 60 redis-benchmark -h $ME -p 6390 -t set,get -n 5000 -q 2>/dev/null | tr '\\r' '\\n' | grep -q '^GET: [0-9.]* requests per second'"
	check "$mode: ... a key set over Linux reads back" bash -c \
		"redis-cli -h $ME -p 6390 set k$mode v$$ >/dev/null && [ \"\$(redis-cli -h $ME -p 6390 get k$mode)\" = v$$ ]"
	kill "${KIDS[-1]}" 2>/dev/null
	redis-server --port 6391 --bind $HOST --save "" --appendonly no --protected-mode no >"$WORK/redis2.out" 2>&1 &
	KIDS+=($!)
	until_up 10 bash -c "redis-cli -h $HOST -p 6391 ping | grep -q PONG"
	check "$mode: redis-benchmark under run against redis-server on Linux" bash -c \
		"timeout 60 '$B' run r -- redis-benchmark -h $HOST -p 6391 -t set,get -n 5000 -q 2>/dev/null | tr '\\r' '\\n' | grep -q '^GET: [0-9.]* requests per second'"
	kill "${KIDS[-1]}" 2>/dev/null

	timeout 30 "$B" run r -- iperf3 -s -4 -1 -p 5201 >"$WORK/ip3s.out" 2>&1 &
	until_up 10 grep -q "bind 0.0.0.0:5201" "$BULKHEAD_RUN/r/log"
	sleep 0.3
	check "$mode: iperf3 from Linux to iperf3 -s under run" bash -c \
		"timeout 20 iperf3 -4 -c $ME -p 5201 -t 2 >'$WORK/ip3c.out' 2>&1 && grep -q receiver '$WORK/ip3c.out'"
	iperf3 -s -4 -B $HOST -p 5202 >"$WORK/ip3k.out" 2>&1 &
	KIDS+=($!)
	sleep 0.5
	check "$mode: iperf3 under run to Linux iperf3 -s" bash -c \
		"timeout 20 '$B' run r -- iperf3 -4 -c $HOST -p 5202 -t 2 >'$WORK/ip3u.out' 2>&1 && grep -q receiver '$WORK/ip3u.out'"
	check "$mode: ... and back (-R)" bash -c \
		"timeout 20 '$B' run r -- iperf3 -4 -c $HOST -p 5202 -t 2 -R >'$WORK/ip3r.out' 2>&1 && grep -q receiver '$WORK/ip3r.out'"

	# Loopback stays with the host.
	rm -f "$WORK/got"
	(cd "$WORK/www" && exec python3 -m http.server $PLO --bind 127.0.0.1) >/dev/null 2>&1 &
	KIDS+=($!)
	until_up 10 curl -sf -o /dev/null http://127.0.0.1:$PLO/
	check "$mode: loopback from a program under run goes to the host" \
		timeout 20 "$B" run r -- curl -sS -o "$WORK/got" http://127.0.0.1:$PLO/20m
	check "$mode: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
	check "$mode: run's log says what went where" \
		bash -c "'$B' logs r run | grep -q 'to the host.s stack: connect 127.0.0.1:$PLO' &&
			 '$B' logs r run | grep -q 'to the instance: connect $HOST:8000'"

	if [ $mode = factored ]; then
		rm -f "$WORK/got"
		timeout 60 "$B" run r -- curl -sS -o "$WORK/got" http://$HOST:8000/20m &
		CU=$!
		timeout 60 "$B" run r -- python3 "$WORK/scribble.py" $HOST 7000 >"$WORK/scribble.out" 2>&1
		wait "$CU"
		check "$mode: a program under run scribbled over its region ($(tail -1 "$WORK/scribble.out"))" \
			grep -qE "^done|Segmentation|Error" "$WORK/scribble.out"
		check "$mode: ... another program's download beside it is whole" \
			[ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
		check "$mode: ... no domain restarted" all_running r
	fi

	# exec: a socket not marked close-on-exec goes on in a program under
	# run (callcheck above); into one that is not, it is named.
	check "$mode: exec out of run with a socket not marked close-on-exec says so" bash -c "timeout 20 '$B' run r -- python3 -c \"
import os, socket
s = socket.create_connection(('$HOST', 7000))
os.set_inheritable(s.fileno(), True)
os.execve('/bin/true', ['true'], {})\" 2>&1 | grep -q 'not marked close-on-exec (descriptor [0-9]*) do not survive exec of /bin/true (not under bulkhead run)'"

	# Failures are errors, never hangs.
	check "$mode: off the subnet without a gateway: ENETUNREACH" bash -c "[ \"\$(timeout 20 '$B' run r -- python3 -c \"
import socket
try:
    socket.create_connection(('192.0.2.1', 80), timeout=5)
except OSError as e:
    print(e.errno)\")\" = 101 ]"
	timeout 30 "$B" run r -- python3 "$WORK/blocked.py" $HOST 7000 >"$WORK/blocked.out" 2>&1 &
	BL=$!
	until_up 10 grep -q connected "$WORK/blocked.out"
	sleep 0.3
	check "$mode: down with a program blocked in a read" timeout 30 "$B" down r
	wait "$BL"
	check "$mode: ... its read ends with ECONNRESET" grep -qx "errno 104" "$WORK/blocked.out"
	kids_gone
	KIDS=()
	sleep 0.3
done

check "run of an instance that is not there says so" \
	bash -c "! '$B' run nosuch -- true 2>'$WORK/err' && grep -q 'not running' '$WORK/err'"

# wire: a program under run on one instance, bulkhead serve on the other.
check "wire: pair up (mono and factored)" bash -c \
	"timeout 30 '$B' up a --driver wire:rl$$:0 --addr 10.9.0.1/24 --mode mono &&
	 timeout 30 '$B' up b --driver wire:rl$$:1 --addr 10.9.0.2/24"
serve a
rm -f "$WORK/got"
check "wire: curl under run on b from bulkhead serve on a" \
	timeout 60 "$B" run b -- curl -sS -o "$WORK/got" http://10.9.0.1:8080/20m
check "wire: ... every byte" [ "$(sha "$WORK/got" 2>/dev/null)" = "$SUM" ]
kill "$SRV" 2>/dev/null
"$B" down a >/dev/null
"$B" down b >/dev/null
finish
