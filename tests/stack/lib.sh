# tests/stack/lib.sh - shared by the stack tests: find the tool, give each
# test a run directory of its own, fail loudly, leave nothing behind.
#
# Each test script sources this first and ends with `finish`. The rules
# every script keeps through it:
#   - `set -u -o pipefail`: an unbound variable ends the script, and a
#     pipeline fails when any command in it fails (`status | awk` fails
#     when status does);
#   - one EXIT trap (on_exit): a script that stops before `finish`, for
#     whatever reason, fails with a line saying so, whatever it counted;
#     cleanup hooks of the script's own are registered with at_exit;
#   - checks go through check/pass/fail; a check that cannot run here is
#     reported with skip, which prints "SKIP: ..." (the launcher collects
#     these lines onto its console and counts them apart from passes);
#   - the helpers that read the running instance (pid_of, col, snapshot,
#     stat_of, stat_sum, conns_rows) fail, and say so on standard error,
#     when the command they wrap fails or prints nothing they can use.
set -u -o pipefail
B="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tools/bulkhead"
[ -x "$B" ] || B="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bazel-bin/tools/bulkhead"
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-test.XXXXXX)"
WORK="$(mktemp -d /tmp/bh-work.XXXXXX)"
FAILS=0
PASSES=0
SKIPS=0
FINISHED=0
EXIT_HOOKS=()
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
		{ tr '\0' '\n' <"$f" | grep -xF "BULKHEAD_RUN=$BULKHEAD_RUN" >/dev/null; } 2>/dev/null && echo "$p"
	done
}
# The files a sanitizer report may be in: every instance log (the
# supervisor's and, in mono, everything's standard error), the
# applications' standard error the tests keep in $WORK/*.err, and the
# per-process report files of the domains (RUNDIR/NAME/sanitizer.DOMAIN.PID,
# made in sanitizer builds: docs/FAULTS.md), but for the processes a test
# faulted on purpose (inject notes their pids in $WORK/faulted).
report_files() {
	local f
	for f in "$BULKHEAD_RUN"/*/log "$WORK"/*.err; do
		[ -f "$f" ] && echo "$f"
	done
	for f in "$BULKHEAD_RUN"/*/sanitizer.*; do
		[ -s "$f" ] || continue
		grep -qxF "${f##*.}" "$WORK/faulted" 2>/dev/null && continue
		echo "$f"
	done
}
cleanup() {
	local d
	for d in "$BULKHEAD_RUN"/*/; do
		[ -S "$d/ctl.sock" ] && timeout 15 "$B" down "$(basename "$d")" >/dev/null 2>&1
	done
	pkill -f "bh-test-app-$$" 2>/dev/null
	# Any bulkhead process still running with this run directory (every
	# supervisor, domain and application inherits it) is a leak.
	sleep 0.2
	local left p
	left="$(run_pids)"
	if [ -n "$left" ]; then
		fail "processes left behind:"
		for p in $left; do echo "  $p $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)"; done
		kill -9 $left 2>/dev/null
	fi
	# A sanitizer report from any process not faulted on purpose fails
	# the test.
	local rep files=()
	mapfile -t files < <(report_files)
	if [ ${#files[@]} -gt 0 ]; then
		rep="$(grep -lE "ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:" \
			"${files[@]}" 2>/dev/null)"
		if [ -n "$rep" ]; then
			fail "sanitizer reports in: $rep"
			for f in $rep; do grep -m1 -A25 -E "Sanitizer|runtime error:" "$f"; done
		fi
	fi
	rm -rf "$BULKHEAD_RUN" "$WORK"
}
# at_exit FUNC: FUNC runs at exit, after cleanup (instances are down);
# it may call fail.
at_exit() { EXIT_HOOKS+=("$1"); }
# interface_gone_at_exit IFNAME: at exit the interface is deleted if it
# is still there, and the test fails if it cannot be (a leak).
GONE_IFS=()
interfaces_gone() {
	local i
	for i in "${GONE_IFS[@]}"; do
		ip link del "$i" 2>/dev/null
		ip link show "$i" >/dev/null 2>&1 && fail "interface $i left behind"
	done
	return 0
}
interface_gone_at_exit() {
	[ ${#GONE_IFS[@]} -eq 0 ] && at_exit interfaces_gone
	GONE_IFS+=("$1")
}
on_exit() {
	local rc=$? h
	trap - EXIT
	[ "$FINISHED" = 1 ] || fail "the test stopped before its end (exit status $rc)"
	cleanup
	for h in "${EXIT_HOOKS[@]}"; do "$h"; done
	echo "checks: $PASSES passed, $FAILS failed, $SKIPS skipped"
	[ "$FAILS" -eq 0 ] || exit 1
	exit 0
}
trap on_exit EXIT
pass() { echo "ok: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP: $*"; SKIPS=$((SKIPS + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what="$1"; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
# The script's last line: the exit trap reports and sets the status.
finish() { FINISHED=1; exit 0; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# prefix_of PART WHOLE: PART is a prefix of WHOLE, byte for byte (an
# empty or missing PART is a prefix of anything).
prefix_of() {
	local n
	n=$(stat -c %s "$1" 2>/dev/null) || return 0
	cmp -s -n "$n" "$1" "$2"
}

# nothing_corrupt RC GOT WHOLE: a transfer that ended with status RC
# delivered nothing corrupt: complete (RC 0) and equal to WHOLE, or
# broken off (RC not 0) with what arrived a prefix of WHOLE.
nothing_corrupt() {
	if [ "$1" -eq 0 ]; then cmp -s "$2" "$3"; else prefix_of "$2" "$3"; fi
}

# --- reading the running instance (each fails loudly) -----------------------
# pid_of INSTANCE DOMAIN: the domain's pid from status.
pid_of() {
	local p
	p="$(timeout 10 "$B" status "$1" | awk -v d="$2" '$1 == d {print $2}')" && [ -n "$p" ] &&
		{ echo "$p"; return 0; }
	echo "pid_of: status of $1 gave no pid for $2" >&2
	return 1
}
# col INSTANCE DOMAIN COLUMN: one column of the domain's status row
# (2 pid, 3 state, 4 restarts). Quiet on failure: waits poll it.
col() {
	local v
	v="$(timeout 10 "$B" status "$1" 2>/dev/null | awk -v d="$2" -v c="$3" '$1 == d {print $c}')" &&
		[ -n "$v" ] && echo "$v"
}
# snapshot INSTANCE...: "inst.domain pid restarts state", one line for
# each of the four domains of each instance.
snapshot() {
	local i out
	for i in "$@"; do
		if ! out="$(timeout 10 "$B" status "$i" |
			awk -v i="$i" '$1 ~ /^(driver|ip|tcp|sock)$/ {print i "." $1, $2, $4, $3}')" ||
			[ "$(grep -c . <<<"$out")" -ne 4 ]; then
			echo "snapshot: status of $i failed or lacks a domain: $out" >&2
			return 1
		fi
		echo "$out"
	done
}
# stat_of INSTANCE COUNTER: the counter's value.
stat_of() {
	local v
	v="$(timeout 10 "$B" stats "$1" | awk -v k="$2" '$1 == k {print $2}')" && [ -n "$v" ] &&
		{ echo "$v"; return 0; }
	echo "stat_of: stats of $1 has no $2" >&2
	return 1
}
# stat_sum INSTANCE REGEX: the sum of the counters whose names match
# (fails when stats fails or no counter matches).
stat_sum() {
	timeout 10 "$B" stats "$1" | awk -v re="$2" '$1 ~ re {s += $2; n++} END {if (!n) exit 1; print s}' ||
		{ echo "stat_sum: stats of $1 has no counter matching $2" >&2; return 1; }
}
# conns_rows INSTANCE: the connection rows of `conns` (not the header);
# fails when conns fails or prints no header.
conns_rows() {
	local out
	out="$(timeout 10 "$B" conns "$1")" && [ "$(head -1 <<<"$out" | awk '{print $1}')" = LOCAL ] ||
		{ echo "conns_rows: conns of $1 failed: $out" >&2; return 1; }
	tail -n +2 <<<"$out"
}
# Every pool of INSTANCE full (each domain's pool.free equal to its
# pool.bufs) and nothing owed, from one reading of its counters.
pools_home() { # pools_home INSTANCE
	timeout 10 "$B" stats "$1" | awk '
		$1 ~ /^[a-z]+\.pool\.free$/ {d = $1; sub(/\..*/, "", d); free[d] = $2}
		$1 ~ /^[a-z]+\.pool\.bufs$/ {d = $1; sub(/\..*/, "", d); bufs[d] = $2}
		$1 ~ /owed$/ {owed += $2}
		END {
			for (d in bufs) if (bufs[d] > 0 && free[d] == bufs[d]) ok++
			exit !(ok == 4 && owed == 0)
		}'
}

# --- faults -------------------------------------------------------------------
# For tests that inject faults into domains on purpose: a crash must stay
# a SIGSEGV under the sanitizers (they would catch it and exit).
faults_on_purpose() {
	export ASAN_OPTIONS="handle_segv=0:${ASAN_OPTIONS:-}"
	export TSAN_OPTIONS="handle_segv=0:${TSAN_OPTIONS:-}"
	export UBSAN_OPTIONS="handle_segv=0:${UBSAN_OPTIONS:-}"
}
# inject INSTANCE DOMAIN FAULT [ARGS...]: `bulkhead inject`, its status
# returned. The target's pid is noted first: sanitizer reports of the
# process faulted on purpose are expected, a neighbour's are not.
inject() {
	local p
	p="$(pid_of "$1" "$2")" || return 1
	echo "$p" >>"$WORK/faulted"
	timeout 10 "$B" inject "$@" >/dev/null
}
# log_count INSTANCE PATTERN: lines of the instance log matching.
log_count() { grep -cE "$2" "$BULKHEAD_RUN/$1/log" 2>/dev/null || true; }

# The files the fault tests serve: $WORK/www/64m (SHA-256 in SUM64), 1m.
www_files() {
	mkdir -p "$WORK/www"
	head -c 67108864 /dev/urandom >"$WORK/www/64m"
	head -c 1048576 /dev/urandom >"$WORK/www/1m"
	SUM64="$(sha "$WORK/www/64m")"
}
# gets_whole N INSTANCE URL FILE OUT: N `get`s of URL on INSTANCE at
# once, into OUT.1 to OUT.N; prints how many came whole (equal to FILE)
# within GETS_TIMEOUT seconds each (120 unless set).
gets_whole() {
	local n="$1" inst="$2" url="$3" out="$5" want i p ok=0 pids=()
	want="$(sha "$4")"
	for i in $(seq 1 "$n"); do
		(timeout "${GETS_TIMEOUT:-120}" "$B" get "$inst" "$url" -o "$out.$i" 2>>"$out.err" &&
			[ "$(sha "$out.$i")" = "$want" ]) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
	echo "$ok"
}
# serve INSTANCE: bulkhead serve of $WORK/www on port 8080 (pid in SRV).
serve() {
	"$B" serve "$1" --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	SRV=$!
	sleep 0.3
}
