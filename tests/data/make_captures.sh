#!/usr/bin/env bash
# make_captures.sh - regenerates the small packet captures in this directory.
#
# The IP library's replay tests feed these files to the stack frame by frame,
# so they have to be real on-wire Ethernet frames made by the Linux kernel, not
# frames we built by hand.  This script:
#
#   * makes two network namespaces joined by a veth pair with fixed MACs and
#     addresses (IPv6 off, so no ND/MLD noise; checksum and segmentation
#     offloads off, so every frame is a complete <= 1514-byte frame with correct
#     checksums, as it would be on a wire):
#       bhcapA: vA  02:00:00:00:00:01  10.9.0.1/24
#       bhcapB: vB  02:00:00:00:00:02  10.9.0.2/24
#   * for each scenario flushes both neighbour caches (so ARP resolution is in
#     the capture), runs tcpdump on vA in bhcapA ('arp or ip', -s 0, -U), runs
#     the traffic, and stops tcpdump with SIGINT:
#       arp_ping.pcap  ARP request/reply, 3 ICMP echo request/reply pairs
#       ping_frag.pcap ARP, 2 echo requests of 4000 bytes payload, fragmented
#                      by A, and their replies, fragmented by B
#       udp_frag.pcap  ARP, one 3000-byte UDP datagram to 10.9.0.2:9000 (which
#                      has a listener), fragmented; one small datagram to
#                      10.9.0.2:9001 (no listener) and B's ICMP port unreachable
#   * removes the namespaces on exit.
#
# Needs root, iproute2, tcpdump, iputils-ping, netcat-openbsd; ethtool is
# strongly recommended (without it veth's checksum offload leaves the small
# UDP datagram's checksum unfinished in the capture).
#
# Payloads are deterministic where the tools allow (ping -p pattern, a fixed
# UDP payload, fixed UDP source ports); ICMP ids, IP ids and the timestamps
# ping puts at the start of its payload change on every run, so tests must be
# written against the committed files, not against a fresh run.
#
# Usage: tests/data/make_captures.sh [OUTDIR]   (default: this directory)
set -euo pipefail

OUT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"

NS_A=bhcapA
NS_B=bhcapB
IF_A=vA
IF_B=vB
MAC_A=02:00:00:00:00:01
MAC_B=02:00:00:00:00:02
IP_A=10.9.0.1
IP_B=10.9.0.2

say() { printf 'make_captures: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"
for t in ip tcpdump ping nc; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install iproute2 tcpdump iputils-ping netcat-openbsd)"
done

inA() { ip netns exec "$NS_A" "$@"; }
inB() { ip netns exec "$NS_B" "$@"; }

TMP="$(mktemp -d)"
TCPDUMP_PID=
LISTEN_PID=

cleanup() {
	local pid
	for pid in $TCPDUMP_PID $LISTEN_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Namespace set-up. -------------------------------------------------------

# A leftover from an interrupted run would make `ip netns add` fail.
ip netns del "$NS_A" 2>/dev/null || true
ip netns del "$NS_B" 2>/dev/null || true
ip netns add "$NS_A"
ip netns add "$NS_B"

# IPv6 off before the interfaces exist, so they never get link-local
# addresses and never send router solicitations, MLD reports or DAD probes.
for ns in "$NS_A" "$NS_B"; do
	if ip netns exec "$ns" test -d /proc/sys/net/ipv6; then
		ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$ns" sysctl -q -w net.ipv6.conf.default.disable_ipv6=1
	fi
done

# Both ends are created directly in their namespaces.
ip -n "$NS_A" link add "$IF_A" address "$MAC_A" mtu 1500 type veth \
	peer name "$IF_B" netns "$NS_B" address "$MAC_B" mtu 1500

if inA test -d /proc/sys/net/ipv6/conf/"$IF_A"; then
	inA sysctl -q -w net.ipv6.conf."$IF_A".disable_ipv6=1
	inB sysctl -q -w net.ipv6.conf."$IF_B".disable_ipv6=1
fi

# Offloads off: with tx checksum offload the sender's frames are captured with
# unfinished (pseudo-header only) transport checksums, and with TSO/GSO/GRO
# the capture could hold frames bigger than the MTU.  A feature a device
# can't change is skipped.
if command -v ethtool >/dev/null; then
	for f in tx rx tso gso gro ufo lro sg; do
		inA ethtool -K "$IF_A" "$f" off >/dev/null 2>&1 || true
		inB ethtool -K "$IF_B" "$f" off >/dev/null 2>&1 || true
	done
else
	say "warning: no ethtool; offloads stay on (UDP checksums may be unfinished in the capture)"
fi

inA ip addr add "$IP_A"/24 dev "$IF_A"
inB ip addr add "$IP_B"/24 dev "$IF_B"
inA ip link set lo up
inB ip link set lo up
inA ip link set "$IF_A" up
inB ip link set "$IF_B" up

# Wait for the link to be up at both ends (veth carrier).
for _ in $(seq 50); do
	if inA ip link show "$IF_A" | grep -q 'state UP' &&
		inB ip link show "$IF_B" | grep -q 'state UP'; then
		break
	fi
	sleep 0.1
done

# Capturing. ---------------------------------------------------------------

# start_capture FILE: flushes both neighbour caches and starts tcpdump on vA
# writing FILE, returning once tcpdump is listening.
start_capture() {
	local file="$1"
	inA ip neigh flush dev "$IF_A"
	inB ip neigh flush dev "$IF_B"
	# Removed first: the background job truncates it asynchronously, so a
	# leftover "listening on" from the last capture could be seen too early.
	rm -f "$file" "$TMP/tcpdump.err"
	# --immediate-mode: otherwise libpcap's TPACKET_V3 ring hands packets over
	# only when a block fills or its 1 s timeout expires, and the SIGINT can
	# come first, losing the whole capture ("N received by filter, 0
	# captured").  -Z root: Debian's tcpdump otherwise drops to user tcpdump,
	# which may not be allowed to write OUT.  ip netns exec execs tcpdump, so
	# $! is its pid.
	ip netns exec "$NS_A" tcpdump -i "$IF_A" -s 0 -U --immediate-mode -n \
		-Z root -w "$file" \
		'arp or ip' 2>"$TMP/tcpdump.err" &
	TCPDUMP_PID=$!
	for _ in $(seq 100); do
		grep -q 'listening on' "$TMP/tcpdump.err" 2>/dev/null && break
		kill -0 "$TCPDUMP_PID" 2>/dev/null ||
			die "tcpdump failed: $(cat "$TMP/tcpdump.err")"
		sleep 0.05
	done
	grep -q 'listening on' "$TMP/tcpdump.err" || die "tcpdump did not start"
	sleep 0.2
}

# stop_capture: lets the last replies arrive, then stops tcpdump cleanly.
stop_capture() {
	sleep 0.5
	kill -INT "$TCPDUMP_PID"
	wait "$TCPDUMP_PID" || true
	TCPDUMP_PID=
	local captured received
	captured="$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$TMP/tcpdump.err")"
	received="$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter$/\1/p' "$TMP/tcpdump.err")"
	say "$captured packets captured, $received received by filter"
	[ -n "$captured" ] && [ "$captured" -gt 0 ] && [ "$captured" = "$received" ] ||
		die "tcpdump lost packets: $(cat "$TMP/tcpdump.err")"
}

# a) ARP, then three small echo request/reply pairs.
start_capture "$OUT/arp_ping.pcap"
inA ping -n -q -c 3 -i 0.2 -p 42 "$IP_B" >/dev/null
stop_capture

# b) Echo requests of 4000 bytes payload: 4028-byte IP datagrams, sent as three
# fragments each way.
start_capture "$OUT/ping_frag.pcap"
inA ping -n -q -c 2 -i 0.2 -s 4000 -p 42 "$IP_B" >/dev/null
stop_capture

# c) A fragmented 3000-byte UDP datagram to a listener, then a small datagram
# to a closed port, answered with ICMP port unreachable.
awk 'BEGIN { for (i = 0; i < 3000; i++) printf "%c", 65 + i % 26 }' >"$TMP/big"
printf 'bulkhead\n' >"$TMP/small"

# Not through inB: a backgrounded shell function runs in a subshell, so $!
# would be that subshell and killing it would leave nc running.
ip netns exec "$NS_B" nc -u -l "$IP_B" 9000 >"$TMP/received" &
LISTEN_PID=$!
for _ in $(seq 50); do
	inB ss -Hlun 'sport = :9000' | grep -q 9000 && break
	sleep 0.1
done

start_capture "$OUT/udp_frag.pcap"
# Input from a regular file: nc reads it in one read() and sends it as one
# datagram.  -q 0: quit at end of input.
inA nc -u -q 0 -s "$IP_A" -p 40000 "$IP_B" 9000 <"$TMP/big"
sleep 0.3
inA nc -u -q 0 -s "$IP_A" -p 40001 "$IP_B" 9001 <"$TMP/small" || true
stop_capture

kill "$LISTEN_PID" 2>/dev/null || true
wait "$LISTEN_PID" 2>/dev/null || true
LISTEN_PID=
got="$(wc -c <"$TMP/received")"
[ "$got" -eq 3000 ] || die "listener got $got bytes, expected 3000"

for f in arp_ping ping_frag udp_frag; do
	say "$OUT/$f.pcap: $(wc -c <"$OUT/$f.pcap") bytes"
done
