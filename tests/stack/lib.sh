# tests/stack/lib.sh - shared by the stack tests: find the tool, give each
# test a run directory of its own, and leave nothing behind.
set -u
B="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tools/bulkhead"
[ -x "$B" ] || B="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bazel-bin/tools/bulkhead"
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-test.XXXXXX)"
WORK="$(mktemp -d /tmp/bh-work.XXXXXX)"
FAILS=0
# The pids of bulkhead processes (supervisors, domains, applications)
# whose environment names this test's run directory.
run_pids() {
	local f p
	for f in /proc/[0-9]*/environ; do
		p="${f#/proc/}"
		p="${p%/environ}"
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = bulkhead ] || continue
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
	rm -rf "$BULKHEAD_RUN" "$WORK"
}
trap cleanup EXIT
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what="$1"; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
finish() { [ "$FAILS" -eq 0 ] && echo "all passed" && exit 0; echo "$FAILS failed"; exit 1; }
