#!/usr/bin/env bash
# Runs the TCP benchmark briefly: it must exit 0 (only when every transfer
# was verified and every buffer came back) and print both processing
# figures and six verified goodput rows. No speed is asserted.
set -euo pipefail
out="$("$1" --quick)"
echo "$out"
grep -q '^| sender (A) | send, tick, input | [0-9]* sent | [0-9]* | [0-9.]* M | yes |$' <<<"$out" \
	|| { echo "no sender figure" >&2; exit 1; }
grep -q '^| receiver (B) | input, recv | [0-9]* received | [0-9]* | [0-9.]* M | yes |$' <<<"$out" \
	|| { echo "no receiver figure" >&2; exit 1; }
n=$(grep -c '^| [0-9]* [KM]iB | [0-9]*% | .* | yes |$' <<<"$out" || true)
[ "$n" -eq 6 ] || { echo "expected 6 verified goodput rows, got $n" >&2; exit 1; }
