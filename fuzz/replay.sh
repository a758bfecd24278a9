#!/usr/bin/env bash
# Replays a corpus directory through a fuzz target built with the replay
# driver (or through libFuzzer with -runs=0 when built with --config=fuzz).
set -euo pipefail
bin="$1"
shift
if "$bin" -help=1 2>&1 | grep -q libFuzzer; then
	exec "$bin" -runs=0 "$@"
fi
exec "$bin" "$@"
