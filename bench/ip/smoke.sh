#!/usr/bin/env bash
# Runs the IP receive benchmark briefly: it must exit 0 (every frame
# delivered and every buffer given back) and report every case as verified.
set -euo pipefail
out="$("$1" --seconds 0.05 --json)"
echo "$out"
n=$(grep -o '"verified": true' <<<"$out" | wc -l)
[ "$n" -eq 6 ] || { echo "expected 6 verified cases, got $n" >&2; exit 1; }
