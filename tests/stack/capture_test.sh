#!/bin/bash
# --capture and the file: driver: an instance records what its driver
# sends and receives (ARP, a TCP exchange, a UDP datagram to a closed
# port and the ICMP error that answers it) into a pcap file that tcpdump
# reads; then the same capture is replayed into a fresh instance of the
# same name and address, which answers the replayed frames again (its
# own capture shows the ICMP error and TCP resets for a connection it
# never had).
. "$(dirname "$0")/lib.sh"
command -v tcpdump >/dev/null || { echo "FAIL: tcpdump is not installed"; exit 1; }

td() { tcpdump -nn -r "$1" 2>/dev/null; }

check "a up with --capture" \
	timeout 30 "$B" up a --driver wire:c1:0 --addr 10.9.0.1/24 --capture "$WORK/a.pcap"
check "b up" timeout 30 "$B" up b --driver wire:c1:1 --addr 10.9.0.2/24
echo "hello over tcp" >"$WORK/in"
timeout 20 "$B" nc a -l 0.0.0.0 7000 >"$WORK/out" </dev/null &
ncp=$!
sleep 0.3
timeout 20 "$B" nc b 10.9.0.1 7000 <"$WORK/in" >/dev/null
wait $ncp
check "the TCP exchange worked" [ "$(cat "$WORK/out")" = "hello over tcp" ]
echo "to a closed port" | timeout 10 "$B" nc b -u -w 1 10.9.0.1 5555
sleep 0.3
check "a down (closes the capture)" timeout 20 "$B" down a

cap="$(td "$WORK/a.pcap")"
n=$(wc -l <<<"$cap")
check "tcpdump reads the capture ($n frames)" [ "$n" -gt 8 ]
check "the capture has ARP" grep -q "ARP, Request who-has 10.9.0.1 tell 10.9.0.2" <<<"$cap"
check "the capture has the SYN to port 7000" grep -qE "10.9.0.2.[0-9]+ > 10.9.0.1.7000: Flags \[S\]" <<<"$cap"
# The data, alone or with the FIN: nc's data and its end of input reach
# tcp in one pass, and the FIN may ride on the data segment (as Linux's
# does when both are queued together).
check "the capture has the data" grep -qE "10.9.0.2.[0-9]+ > 10.9.0.1.7000: Flags \[F?P\.\].*length 15" <<<"$cap"
check "the capture has the UDP datagram" grep -qE "10.9.0.2.[0-9]+ > 10.9.0.1.5555: UDP, length 17" <<<"$cap"
check "the capture has a's ICMP port unreachable" \
	grep -q "10.9.0.1 > 10.9.0.2: ICMP 10.9.0.1 udp port 5555 unreachable" <<<"$cap"

# Replay: the same name and address (so the same MAC), a fresh stack.
check "replay instance up over file:" \
	timeout 30 "$B" up a --driver "file:$WORK/a.pcap" --addr 10.9.0.1/24 --capture "$WORK/r.pcap"
done=0
for _ in $(seq 50); do
	sleep 0.1
	[ "$(timeout 10 "$B" stats a | awk '$1 == "driver.dev.replay_done" {print $2}')" = 1 ] && { done=1; break; }
done
check "the replay reached the end of the file" [ "$done" -eq 1 ]
sleep 0.2 # counters are published every 50 ms
st="$(timeout 10 "$B" stats a)"
rx=$(awk '$1 == "driver.dev.rx_frames" {print $2}' <<<"$st")
check "every frame of the file was received ($rx of $n)" [ "${rx:-0}" -eq "$n" ]
check "a down" timeout 20 "$B" down a
rep="$(td "$WORK/r.pcap")"
check "the replay answered the UDP datagram with ICMP port unreachable again" \
	grep -q "10.9.0.1 > 10.9.0.2: ICMP 10.9.0.1 udp port 5555 unreachable" <<<"$rep"
check "the replay answered the unknown connection's segments with resets" \
	grep -qE "10.9.0.1.7000 > 10.9.0.2.[0-9]+: Flags \[R" <<<"$rep"
check "b down" timeout 20 "$B" down b
finish
