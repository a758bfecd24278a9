# tools/instances.sh - sourced by tools/demo.sh and bench/eval/run.sh:
# stop_all stops the application whose pid is in SRV (if any) and every
# instance under $BULKHEAD_RUN, using the tool $TOOL.
stop_all() {
	[ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	SRV=""
	local d
	for d in "$BULKHEAD_RUN"/*/; do
		[ -S "$d/ctl.sock" ] && timeout 15 "$TOOL" down "$(basename "$d")" >/dev/null 2>&1
	done
}
