# tests/stack/lib.sh - shared by the stack tests: find the tool, give each
# test a run directory of its own, and leave nothing behind.
set -u
B="${TEST_SRCDIR:-/nonexistent}/${TEST_WORKSPACE:-bulkhead}/tools/bulkhead"
[ -x "$B" ] || B="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bazel-bin/tools/bulkhead"
export BULKHEAD_RUN="$(mktemp -d /tmp/bh-test.XXXXXX)"
WORK="$(mktemp -d /tmp/bh-work.XXXXXX)"
FAILS=0
cleanup() {
	for d in "$BULKHEAD_RUN"/*/; do
		[ -S "$d/ctl.sock" ] && timeout 15 "$B" down "$(basename "$d")" >/dev/null 2>&1
	done
	pkill -f "bh-test-app-$$" 2>/dev/null
	# Anything still running from this run directory is a leak.
	sleep 0.2
	if pgrep -f "$BULKHEAD_RUN" >/dev/null 2>&1; then
		echo "FAIL: processes left behind"; pgrep -af "$BULKHEAD_RUN"; FAILS=$((FAILS + 1))
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
