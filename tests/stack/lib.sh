# tests/stack/lib.sh - shared by the stack tests: find the tool, give each
# test a run directory of its own, and leave nothing behind.
set -u
B="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tools/bulkhead"
[ -x "$B" ] || B="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bazel-bin/tools/bulkhead"
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-test.XXXXXX)"
WORK="$(mktemp -d /tmp/bh-work.XXXXXX)"
FAILS=0
# The pids of our programs (supervisors, domains, applications, the
# tests' own scribble_app) whose environment names this test's run
# directory.
run_pids() {
	local f p
	for f in /proc/[0-9]*/environ; do
		p="${f#/proc/}"
		p="${p%/environ}"
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		bulkhead | scribble_app) ;;
		*) continue ;;
		esac
		{ tr '\0' '\n' <"$f" | grep -qxF "BULKHEAD_RUN=$BULKHEAD_RUN"; } 2>/dev/null && echo "$p"
	done
}
cleanup() {
	for d in "$BULKHEAD_RUN"/*/; do
		[ -S "$d/ctl.sock" ] && timeout 15 "$B" down "$(basename "$d")" >/dev/null 2>&1
	done
	pkill -f "bh-test-app-$$" 2>/dev/null
	# Any bulkhead process still running with this run directory (every
	# supervisor, domain and application inherits it) is a leak.
	sleep 0.2
	local left
	left="$(run_pids)"
	if [ -n "$left" ]; then
		echo "FAIL: processes left behind:"
		for p in $left; do echo "  $p $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)"; done
		FAILS=$((FAILS + 1))
		kill -9 $left 2>/dev/null
	fi
	# A sanitizer report from any domain (instance logs) or application
	# (the tests keep their standard error in $WORK) fails the test.
	# A test that injects faults into domains on purpose sets
	# FAULTS_INJECTED=1: its instance logs are not scanned.
	local rep logs=("$BULKHEAD_RUN"/*/log)
	[ "${FAULTS_INJECTED:-0}" = 1 ] && logs=()
	rep="$(grep -lE "ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:" \
		"${logs[@]}" "$WORK"/*.err 2>/dev/null)"
	if [ -n "$rep" ]; then
		echo "FAIL: sanitizer reports in: $rep"
		for f in $rep; do grep -m1 -A25 -E "Sanitizer|runtime error:" "$f"; done
		FAILS=$((FAILS + 1))
	fi
	rm -rf "$BULKHEAD_RUN" "$WORK"
}
# Failures found while cleaning up (leaks, sanitizer reports) fail the test.
trap 'cleanup; [ "$FAILS" -eq 0 ] || exit 1' EXIT
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what="$1"; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# For tests that inject faults into domains on purpose: a crash must stay
# a SIGSEGV under the sanitizers (they would catch it and exit), and
# their reports about the faulty domain are expected, so the instance
# logs are not scanned (cleanup).
# Every pool of INSTANCE full (the default sizes) and nothing owed, from
# one reading of its counters.
pools_home() { # pools_home INSTANCE
	timeout 10 "$B" stats "$1" | awk '
		$1 == "driver.pool.free" && $2 == 4096 {ok++}
		$1 == "ip.pool.free" && $2 == 1024 {ok++}
		$1 == "tcp.pool.free" && $2 == 4096 {ok++}
		$1 == "sock.pool.free" && $2 == 4096 {ok++}
		$1 ~ /owed$/ {owed += $2}
		END {exit !(ok == 4 && owed == 0)}'
}
faults_on_purpose() {
	FAULTS_INJECTED=1
	export ASAN_OPTIONS="handle_segv=0:${ASAN_OPTIONS:-}"
	export TSAN_OPTIONS="handle_segv=0:${TSAN_OPTIONS:-}"
	export UBSAN_OPTIONS="handle_segv=0:${UBSAN_OPTIONS:-}"
}
# The files the fault tests serve: $WORK/www/64m (SHA-256 in SUM64), 1m.
www_files() {
	mkdir -p "$WORK/www"
	head -c 67108864 /dev/urandom >"$WORK/www/64m"
	head -c 1048576 /dev/urandom >"$WORK/www/1m"
	SUM64="$(sha "$WORK/www/64m")"
}
col() { # col INSTANCE DOMAIN COLUMN (status table)
	timeout 10 "$B" status "$1" | awk -v d="$2" -v c="$3" '$1 == d {print $c}'
}
# serve INSTANCE: bulkhead serve of $WORK/www on port 8080 (pid in SRV).
serve() {
	"$B" serve "$1" --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	SRV=$!
	sleep 0.3
}
finish() { [ "$FAILS" -eq 0 ] && echo "all passed" && exit 0; echo "$FAILS failed"; exit 1; }
