#!/bin/bash
# Hostile input from the wire, over TAP (root, python3-scapy):
#   - the one-SYN denial of service: SYNs from the Linux host whose
#     options are 03 02 01 00 (a window scale of length 2, then the end
#     of the list), each SYN-ACK answered by Linux with a RST, many more
#     than the listener's backlog; the listener must go on serving Linux
#     curl at once, and count no SYN dropped for a full backlog;
#   - a seeded barrage from a hostile host on the link (hostile_peer.py):
#     SYNs with every kind of malformed or odd option, bad checksums, bad
#     data offsets, truncated headers, odd flags, a closed port, and
#     segments into an established connection that no honest stack takes
#     for data. Then: the connection delivers the honest line that follows
#     and nothing else, Linux curl downloads work at once, no half-open
#     connection is left, and `bulkhead stats` accounts for every segment
#     (TCP's segments-in rose by exactly what reached it, and each kind of
#     bad input by exactly its count).
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
PEER="$(dirname "$0")/hostile_peer.py"
if [ "$(id -u)" -ne 0 ]; then
	fail "this test needs root (a TAP device, raw frames)"
	finish
fi
for t in curl "$PY" ip; do
	command -v "$t" >/dev/null || { fail "$t is not installed"; finish; }
done
"$PY" -c "import scapy" 2>/dev/null || { fail "python3-scapy is not installed"; finish; }

TAP="bhh$$"
interface_gone_at_exit "$TAP"
mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
HOST=10.79.0.1
BA=10.79.0.2
check "up over tap:$TAP" timeout 30 "$B" up t --driver "tap:$TAP" --host-addr "$HOST/24" \
	--addr "$BA/24"
serve t

# counters INSTANCE: "name value" for every counter, sorted (one reading).
counters() { timeout 10 "$B" stats "$1" | awk 'NF == 2 && $2 ~ /^[0-9]+$/' | sort; }
# delta BEFORE AFTER NAME: how much a counter rose between two readings.
delta() {
	local a b
	a="$(awk -v k="$3" '$1 == k {print $2}' <<<"$1")"
	b="$(awk -v k="$3" '$1 == k {print $2}' <<<"$2")"
	[ -n "$a" ] && [ -n "$b" ] || { echo "delta: no counter $3" >&2; echo -1; return 1; }
	echo $((b - a))
}
curl_ok() { # curl_ok N: N downloads of 1m by Linux curl, each intact
	local i
	for i in $(seq "$1"); do
		rm -f "$WORK/c"
		curl -sS --max-time 10 -o "$WORK/c" "http://$BA:8080/1m" 2>>"$WORK/curl.err" &&
			cmp -s "$WORK/c" "$WORK/www/1m" || return 1
	done
}
half_open() { conns_rows t | grep -c 'SYN-RECEIVED'; }

check "Linux curl downloads before anything hostile" curl_ok 3

# --- the one-SYN denial of service ------------------------------------------
sleep 0.2 # counters are published every 50 ms
c0="$(counters t)"
"$PY" - "$BA" <<'EOF' 2>>"$WORK/scapy.err"
import sys, time
from scapy.all import IP, TCP, Raw, send, conf
conf.verb = 0
# 64 in a burst (the backlog is 128 at most), then 200 more
for first, n in ((20000, 64), (30000, 200)):
    send([IP(dst=sys.argv[1]) / TCP(sport=first + i, dport=8080, flags="S", seq=i * 100000,
                                    dataofs=6) / Raw(b"\x03\x02\x01\x00") for i in range(n)])
    time.sleep(1)
EOF
check "one-SYN: after 264 such SYNs, Linux curl downloads at once" curl_ok 5
sleep 0.2
c1="$(counters t)"
check "one-SYN: each drew a SYN-ACK and a RST from Linux ($(delta "$c0" "$c1" tcp.passive_opens) opens, $(delta "$c0" "$c1" tcp.rst_in) resets)" \
	[ "$(delta "$c0" "$c1" tcp.rst_in)" -ge 264 ]
check "one-SYN: no SYN dropped for a full backlog ($(delta "$c0" "$c1" tcp.backlog_drops))" \
	[ "$(delta "$c0" "$c1" tcp.backlog_drops)" -eq 0 ]
check "one-SYN: no half-open connection left ($(half_open))" [ "$(half_open)" -eq 0 ]

# --- the barrage --------------------------------------------------------------
# The listener's standard input stays open (nothing to send) until fd 7 closes.
mkfifo "$WORK/hold"
timeout 70 "$B" nc t -l 0.0.0.0 7000 <"$WORK/hold" >"$WORK/est.out" 2>>"$WORK/nc.err" &
ncp=$!
exec 7>"$WORK/hold"
sleep 0.7
c0="$(counters t)"
out="$(timeout 120 "$PY" "$PEER" "$TAP" "$BA" 10.79.0.77 8080 7000 "${HOSTILE_SEED:-1}" 2>>"$WORK/scapy.err")"
echo "hostile peer: $out"
sleep 1
c1="$(counters t)"
exec 7>&-
wait "$ncp"
ncrc=$?
j() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$out" "$1" 2>/dev/null || echo -1; }
k() { j "kinds.get('$1', 0)"; }
check "barrage: the hostile peer ran ($(j 'sum(kinds.values())') frames)" [ "$(j 'sum(kinds.values())')" -gt 100 ]
check "barrage: the established connection delivered the honest line and nothing else" \
	bash -c "[ \"\$(cat '$WORK/est.out')\" = 'honest line after the barrage' ]"
check "barrage: the honest line was acknowledged" [ "$(j honest_acked)" = True ]
check "barrage: the listening nc ended normally (rc $ncrc)" [ "$ncrc" -eq 0 ]
check "barrage: Linux curl downloads at once" curl_ok 5
check "barrage: no half-open connection left ($(half_open))" [ "$(half_open)" -eq 0 ]
opt_syns=$(j "sum(v for n, v in kinds.items() if n.startswith('syn_opt_'))")
check "barrage: every SYN with odd options drew a SYN-ACK, as Linux answers them ($(j synacks) for $opt_syns)" \
	[ "$(j synacks)" -ge "$opt_syns" ]
# Accounted: every segment that reached TCP is counted there, each kind of
# bad input in its own counter.
check "stats: tcp.segs_in rose by exactly the segments sent ($(delta "$c0" "$c1" tcp.segs_in) for $(j reached_tcp))" \
	[ "$(delta "$c0" "$c1" tcp.segs_in)" -eq "$(j reached_tcp)" ]
check "stats: tcp.bad_checksum counts each bad checksum ($(delta "$c0" "$c1" tcp.bad_checksum))" \
	[ "$(delta "$c0" "$c1" tcp.bad_checksum)" -eq $(($(k syn_bad_checksum) + $(k est_bad_checksum))) ]
check "stats: tcp.bad_header counts each bad data offset ($(delta "$c0" "$c1" tcp.bad_header))" \
	[ "$(delta "$c0" "$c1" tcp.bad_header)" -eq $(($(k doff_below_5) + $(k doff_past_end))) ]
check "stats: ip.ip_short_transport counts each truncated TCP header ($(delta "$c0" "$c1" ip.ip_short_transport))" \
	[ "$(delta "$c0" "$c1" ip.ip_short_transport)" -eq "$(k short_tcp_header)" ]
check "stats: tcp.no_conn counts the SYNs to a closed port ($(delta "$c0" "$c1" tcp.no_conn))" \
	[ "$(delta "$c0" "$c1" tcp.no_conn)" -ge "$(k syn_to_closed_port)" ]
check "stats: challenge ACKs for the inexact RST and the SYN in the window ($(delta "$c0" "$c1" tcp.challenge_acks))" \
	[ "$(delta "$c0" "$c1" tcp.challenge_acks)" -ge 2 ]
check "stats: PAWS dropped the old timestamp ($(delta "$c0" "$c1" tcp.paws_drops))" \
	[ "$(delta "$c0" "$c1" tcp.paws_drops)" -ge "$(k est_old_timestamp)" ]
check "stats: out-of-window data, old data and the out-of-window RST counted ($(delta "$c0" "$c1" tcp.out_of_window))" \
	[ "$(delta "$c0" "$c1" tcp.out_of_window)" -ge $(($(k est_data_out_of_window) + $(k est_data_old) + $(k est_rst_out_of_window))) ]
check "stats: the ACK of data never sent counted ($(delta "$c0" "$c1" tcp.bad_acks))" \
	[ "$(delta "$c0" "$c1" tcp.bad_acks)" -ge "$(k est_ack_unsent)" ]
check "the instance never restarted a domain" \
	bash -c "[ \"\$(timeout 10 '$B' status t | awk '\$1 ~ /^(driver|ip|tcp|sock)\$/ && \$3 == \"running\" && \$4 == 0' | wc -l)\" -eq 4 ]"
kill "$SRV" 2>/dev/null
wait "$SRV" 2>/dev/null
check "down" timeout 20 "$B" down t
finish
