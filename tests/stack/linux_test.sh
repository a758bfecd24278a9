#!/bin/bash
# Bulkhead against the Linux kernel's stack and tools, over TAP and over
# veth into a network namespace with the pcap: driver: ping answered
# (small and fragmented), Linux curl downloading from `bulkhead serve`,
# `bulkhead get` downloading from python3's http.server, Linux nc both
# ways with half-close, UDP both ways (one datagram in several
# fragments), all hashes checked; then 20 MB each way over a lossy,
# reordering TAP link. Every run is captured (--capture) and tshark's
# checks find no malformed frame and no bad checksum in any capture.
# Needs root; leaves no interface, namespace or process behind.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	fail "this test needs root (TAP devices, network namespaces)"
	finish
fi
for t in curl nc ping python3 ip ethtool tshark; do
	command -v "$t" >/dev/null || { fail "$t is not installed"; finish; }
done

TAP="bht$$"
NS="bhns$$"
VA="bhva$$" # our end of the veth pair, in this namespace
VB="bhvb$$" # Linux's end, in $NS
netns_gone() {
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	ip netns list | grep -w "$NS" >/dev/null && fail "namespace $NS left behind"
	return 0
}
interface_gone_at_exit "$TAP"
interface_gone_at_exit "$VA"
at_exit netns_gone

mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
head -c 20000000 /dev/urandom >"$WORK/www/20m"

# same_after OUT WANT CMD...: CMD succeeds and OUT then equals WANT.
same_after() {
	local out="$1" want="$2"
	shift 2
	"$@" 2>>"$WORK/get.err" && [ "$(sha "$out")" = "$(sha "$want")" ]
}

# A Linux client that reads an HTTP/1.0 answer to its end (the server's
# close), sends more, and exits 0 if a later send fails with a reset.
cat >"$WORK/late.py" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), 5)
s.sendall(b"GET /1m HTTP/1.0\r\n\r\n")
while s.recv(65536):
    pass
time.sleep(0.2)
s.sendall(b"late data after the server closed")
time.sleep(0.5)
try:
    s.sendall(b"x")
    time.sleep(0.2)
    s.sendall(b"y")
except (ConnectionResetError, BrokenPipeError):
    sys.exit(0)
print("late.py: no reset after sending past the server's close", file=sys.stderr)
sys.exit(1)
EOF

# The checks, run once per attachment. L runs a command on the Linux side
# (directly, or in the namespace); LA is Linux's address, BA Bulkhead's.
linux_suite() { # linux_suite LABEL INSTANCE LA BA L...
	local lab="$1" inst="$2" la="$3" ba="$4"
	shift 4
	local L=("$@")

	check "$lab: ping from Linux answered" \
		"${L[@]}" ping -c 3 -i 0.2 -W 2 -q "$ba"
	check "$lab: ping of 4000 bytes (reassembled, answered in fragments)" \
		"${L[@]}" ping -c 2 -i 0.2 -W 2 -q -s 4000 "$ba"

	"$B" serve "$inst" --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	local srv=$!
	sleep 0.3
	for f in 1m 20m; do
		rm -f "$WORK/curl.$f"
		check "$lab: Linux curl downloads $f from bulkhead serve, SHA-256 equal" \
			same_after "$WORK/curl.$f" "$WORK/www/$f" "${L[@]}" curl -sS --max-time 60 \
			-o "$WORK/curl.$f" "http://$ba:8080/$f"
	done
	# Keep-alive: two URLs over one connection, both bodies checked.
	rm -f "$WORK/ka1" "$WORK/ka2"
	"${L[@]}" curl -sSv --max-time 30 -o "$WORK/ka1" -o "$WORK/ka2" \
		"http://$ba:8080/1m" "http://$ba:8080/20m" >"$WORK/curl.v" 2>&1
	local krc=$?
	check "$lab: Linux curl, two requests on one kept-alive connection (rc $krc), both bodies equal" \
		bash -c "[ $krc -eq 0 ] && grep -q 'Re-using existing connection' '$WORK/curl.v' &&
			cmp -s '$WORK/ka1' '$WORK/www/1m' && cmp -s '$WORK/ka2' '$WORK/www/20m'"
	# RFC 1122 4.2.2.13: data that comes after the server closed (an
	# HTTP/1.0 answer ends with its close) is answered with a reset, so
	# Linux's next send fails; it used to be queued for nobody.
	check "$lab: Linux sends after bulkhead serve closed: reset, the next send fails" \
		"${L[@]}" timeout 20 python3 "$WORK/late.py" "$ba"
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null

	"${L[@]}" timeout 60 python3 -m http.server 8000 --bind "$la" \
		--directory "$WORK/www" >"$WORK/py.log" 2>&1 &
	local py=$!
	local up=0
	for _ in $(seq 50); do
		"${L[@]}" curl -s -o /dev/null "http://$la:8000/" && { up=1; break; }
		sleep 0.1
	done
	check "$lab: python3 http.server is up" [ "$up" -eq 1 ]
	for f in 1m 20m; do
		rm -f "$WORK/get.$f"
		check "$lab: bulkhead get downloads $f from python3 http.server, SHA-256 equal" \
			same_after "$WORK/get.$f" "$WORK/www/$f" \
			timeout 60 "$B" get "$inst" "http://$la:8000/$f" -o "$WORK/get.$f"
	done
	kill "$py" 2>/dev/null
	wait "$py" 2>/dev/null

	# nc, Linux listening: each side sends a line, half-closes, and
	# still receives the other's line.
	echo "from-linux-$lab" >"$WORK/l.in"
	echo "from-bulkhead-$lab" >"$WORK/b.in"
	"${L[@]}" timeout 20 nc -N -l "$la" 7001 <"$WORK/l.in" >"$WORK/l.out" &
	local lp=$!
	sleep 0.3
	timeout 20 "$B" nc "$inst" "$la" 7001 <"$WORK/b.in" >"$WORK/b.out"
	local rc=$?
	wait "$lp"
	local rc2=$?
	check "$lab: bulkhead nc to Linux nc -l, half-close both ways (rc $rc/$rc2)" \
		[ $rc -eq 0 -a $rc2 -eq 0 -a "$(cat "$WORK/l.out")" = "from-bulkhead-$lab" \
		-a "$(cat "$WORK/b.out")" = "from-linux-$lab" ]

	# nc, Bulkhead listening; 1 MiB from Linux, then a line back after
	# Linux has half-closed.
	rm -f "$WORK/b.out" "$WORK/l.out"
	timeout 20 "$B" nc "$inst" -l 0.0.0.0 7002 <"$WORK/b.in" >"$WORK/b.out" &
	lp=$!
	sleep 0.3
	"${L[@]}" timeout 20 nc -N "$ba" 7002 <"$WORK/www/1m" >"$WORK/l.out"
	rc=$?
	wait "$lp"
	rc2=$?
	check "$lab: Linux nc to bulkhead nc -l, 1 MiB in, a line back after half-close (rc $rc/$rc2)" \
		[ $rc -eq 0 -a $rc2 -eq 0 -a "$(sha "$WORK/b.out")" = "$(sha "$WORK/www/1m")" \
		-a "$(cat "$WORK/l.out")" = "from-bulkhead-$lab" ]

	# UDP: Linux sends a 5000-byte datagram (fragmented) to a Bulkhead
	# listener, which answers the sender.
	head -c 5000 /dev/urandom >"$WORK/dgram"
	rm -f "$WORK/u.out"
	(sleep 1; echo "udp-from-bulkhead") |
		timeout 10 "$B" nc "$inst" -u -l -w 2 0.0.0.0 5000 >"$WORK/u.out" &
	lp=$!
	sleep 0.3
	local reply
	reply="$("${L[@]}" timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(open(sys.argv[1], "rb").read(), (sys.argv[2], 5000))
print(s.recvfrom(65535)[0].decode().strip())' "$WORK/dgram" "$ba")"
	wait "$lp"
	check "$lab: UDP 5000-byte datagram from Linux arrives whole, the answer returns" \
		[ "$(sha "$WORK/u.out")" = "$(sha "$WORK/dgram")" -a "$reply" = "udp-from-bulkhead" ]
	"${L[@]}" timeout 10 nc -u -l "$la" 5001 >"$WORK/lu.out" &
	lp=$!
	sleep 0.3
	echo "udp-to-linux" | timeout 10 "$B" nc "$inst" -u -w 1 "$la" 5001
	sleep 0.3
	kill "$lp" 2>/dev/null
	wait "$lp" 2>/dev/null
	check "$lab: UDP from bulkhead nc to Linux nc -u -l" \
		[ "$(cat "$WORK/lu.out")" = "udp-to-linux" ]

	grep -h "Mbit/s" "$WORK/get.err" 2>/dev/null | tail -2
}

# dissected PCAP: tshark's own checks over a capture: nothing malformed,
# no error, no bad IPv4, TCP, UDP or ICMP checksum. Payloads are read as
# plain data (HTTP and every heuristic dissector of TCP and UDP off):
# those read random file bytes as messages, and once a capture has a gap
# (a frame the impairment dropped) they report the bytes malformed.
# A TCP checksum sent as 0xffff where the sum makes it 0x0000 is the same
# one's-complement zero and verifies (Linux's skb_checksum_help writes it
# so, CSUM_MANGLED_0, about one segment in 65536); tshark marks that, and
# only that, with tcp.checksum.ffff, and calls the checksum bad: such a
# frame is not counted.
TSHARK=(tshark --disable-protocol http -o tcp.desegment_tcp_streams:FALSE
	-o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE)
for p in $(tshark -G heuristic-decodes 2>/dev/null | awk -F'\t' '$1 == "tcp" || $1 == "udp" {print $2}'); do
	TSHARK+=(--disable-protocol "$p")
done
dissected() {
	local n bad
	n=$("${TSHARK[@]}" -r "$1" 2>/dev/null | wc -l)
	bad="$("${TSHARK[@]}" -r "$1" -Y '_ws.malformed || ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad" || (!tcp.checksum.ffff && (_ws.expert.severity == error || tcp.checksum.status == "Bad"))' 2>/dev/null)"
	echo "  $1: $n frames, $(grep -c . <<<"$bad") flagged"
	[ "$n" -gt 1000 ] && [ -z "$bad" ] || { head -5 <<<"$bad"; return 1; }
}

# --- TAP: Bulkhead creates the interface, Linux gets 10.77.0.1. -------------
check "tap: bulkhead up over tap:$TAP" \
	timeout 30 "$B" up t --driver "tap:$TAP" --host-addr 10.77.0.1/24 --addr 10.77.0.2/24 \
	--capture "$WORK/tap.pcap"
check "tap: the TAP interface exists with the host address" \
	bash -c "ip -4 addr show $TAP | grep -q 10.77.0.1/24"
check "tap: the same TAP name again is refused" \
	bash -c "! timeout 30 '$B' up t2 --driver tap:$TAP --addr 10.77.0.3/24 2>$WORK/err && grep -qi exists $WORK/err"
linux_suite tap t 10.77.0.1 10.77.0.2 env
check "tap: down" timeout 20 "$B" down t
check "tap: the TAP interface is gone with the instance" \
	bash -c "! ip link show $TAP >/dev/null 2>&1"
check "tap: tshark finds nothing malformed and no bad checksum in the capture" dissected "$WORK/tap.pcap"

# both_ways LABEL TAG: serve on instance t and python3's http.server on
# Linux; Linux curl downloads 20m from t, t's get downloads it from Linux,
# each hashed ($WORK/curl.TAG, $WORK/get.TAG).
both_ways() {
	"$B" serve t --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	local srv=$! py
	timeout 60 python3 -m http.server 8000 --bind 10.77.0.1 --directory "$WORK/www" >"$WORK/py.log" 2>&1 &
	py=$!
	sleep 1
	rm -f "$WORK/curl.$2" "$WORK/get.$2"
	check "$1: Linux curl downloads 20m from bulkhead serve, SHA-256 equal" \
		same_after "$WORK/curl.$2" "$WORK/www/20m" curl -sS --max-time 60 -o "$WORK/curl.$2" \
		http://10.77.0.2:8080/20m
	check "$1: bulkhead get downloads 20m from python3 http.server, SHA-256 equal" \
		same_after "$WORK/get.$2" "$WORK/www/20m" timeout 60 "$B" get t http://10.77.0.1:8000/20m \
		-o "$WORK/get.$2"
	kill "$srv" "$py" 2>/dev/null
	wait "$srv" "$py" 2>/dev/null
}

# --- TAP as it runs uncaptured: large segments both ways, send chains. -----
# The kernel is handed TCP segments of up to 64 KiB behind the virtio-net
# header and cuts them itself (as from a virtual machine's NIC); factored,
# the driver verifies TCP's checksum over the segment first and hands the
# kernel a partial one, mono's TCP leaves it partial. The kernel sends
# large segments back with partial checksums: mono takes them on its
# word, factored completes them for TCP to verify. Both ways, hashed.
for mode in factored mono; do
	check "fast tap ($mode): up, no capture" \
		timeout 30 "$B" up t --driver "tap:$TAP" --host-addr 10.77.0.1/24 --addr 10.77.0.2/24 \
		--mode "$mode"
	both_ways "fast tap ($mode)" fast
	# A small datagram from Linux: its checksum comes partial (the tap
	# offers checksums) and only TCP takes the link's word: UDP's is
	# completed in the driver, in either mode.
	rm -f "$WORK/u.fast"
	timeout 10 "$B" nc t -u -l -w 2 0.0.0.0 5002 >"$WORK/u.fast" &
	lp=$!
	sleep 0.3
	echo "small-udp-$mode" | timeout 5 nc -u -w 1 -s 10.77.0.1 10.77.0.2 5002
	wait "$lp"
	check "fast tap ($mode): a small UDP datagram from Linux arrives ('$(cat "$WORK/u.fast")', bad checksums $(stat_of t ip.udp_bad_checksum))" \
		[ "$(cat "$WORK/u.fast")" = "small-udp-$mode" ]
	large=$(stat_of t driver.dev.tx_large) chains=$(stat_of t tcp.chain_segs)
	bad=$(stat_of t driver.tx_cut_bad) errs=$(stat_of t driver.dev.tx_errors)
	check "fast tap ($mode): large segments to the kernel (${large:-none}) in send chains (${chains:-none}), none refused (checksum ${bad:-?}, device ${errs:-?})" \
		[ "${large:-0}" -gt 100 -a "${chains:-0}" -gt 100 -a "${bad:-1}" = 0 -a "${errs:-1}" = 0 ]
	rl=$(stat_of t driver.dev.rx_large) ipl=$(stat_of t ip.ip_rx_large) rerr=$(stat_of t driver.dev.rx_errors)
	vouched=$(stat_of t driver.dev.rx_csum_valid) badck=$(stat_of t tcp.bad_checksum)
	check "fast tap ($mode): large segments from the kernel (${rl:-none}, ip took ${ipl:-none}; refused ${rerr:-?}; checksums vouched ${vouched:-?}, bad ${badck:-?})" \
		[ "${rl:-0}" -gt 100 -a "${ipl:-0}" = "${rl:-x}" -a "${rerr:-1}" = 0 -a "${badck:-1}" = 0 ]
	offers=no
	[ "$mode" = mono ] && offers=yes
	if [ "$mode" = mono ]; then
		check "fast tap (mono): the kernel's partial checksums taken on its word (${vouched:-none})" [ "${vouched:-0}" -gt 100 ]
	else
		check "fast tap (factored): the kernel's partial checksums completed for TCP to verify (vouched ${vouched:-?})" [ "${vouched:-1}" = 0 ]
	fi
	check "fast tap ($mode): status says what the link takes" \
		bash -c "timeout 10 '$B' status t | grep -q 'checksums left to the link: received $offers, sent $offers; large frames: received yes, sent yes; send chains (payload gathered by the driver): yes'"
	check "fast tap ($mode): down" timeout 20 "$B" down t
done

# --- TAP with loss and reordering, both directions, captured. ----------------
check "lossy tap: up with --impair loss=2%,reorder=1%" \
	timeout 30 "$B" up t --driver "tap:$TAP" --host-addr 10.77.0.1/24 --addr 10.77.0.2/24 \
	--impair loss=2%,reorder=1%,seed=11 --capture "$WORK/lossy.pcap"
both_ways "lossy tap" lossy
lost=$(stat_of t driver.impair.tx.lost)
check "lossy tap: the link lost frames (${lost:-none})" [ "${lost:-0}" -gt 0 ]
# Loss recovery (RFC 8985): RACK found the losses of the 20 MiB Bulkhead
# sent, and they cost fast recoveries, not timeouts: a data timeout is
# left to what no probe answers (the duplicate-ACK rules alone took about
# one per 2 MiB here).
rl=$(stat_of t tcp.rack_lost) rto=$(stat_of t tcp.timeouts) srto=$(stat_of t tcp.syn_timeouts)
rec=$(stat_of t tcp.sack_recoveries) tlp=$(stat_of t tcp.tlp_probes)
check "lossy tap: RACK marked ${rl:-?} segments lost, ${rec:-?} recoveries, ${tlp:-?} tail probes; $((${rto:-0} - ${srto:-0})) data timeouts (at most 4)" \
	[ "${rl:-0}" -gt 0 -a "${rec:-0}" -gt 0 -a $((${rto:-99} - ${srto:-0})) -le 4 ]
check "lossy tap: down" timeout 20 "$B" down t
check "lossy tap: tshark finds nothing malformed and no bad checksum in the capture" \
	dissected "$WORK/lossy.pcap"

# --- veth + netns: Linux in its own namespace, Bulkhead on the other end
# through libpcap. Checksum offload off on Linux's end: frames that
# leave it are captured before any device would fill them in.
ip netns add "$NS"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VB" netns "$NS"
ip link set "$VA" up
ip -n "$NS" addr add 10.78.0.1/24 dev "$VB"
ip -n "$NS" link set "$VB" up
ip -n "$NS" link set lo up
ip netns exec "$NS" ethtool -K "$VB" tx off >/dev/null 2>&1
check "pcap: bulkhead up over pcap:$VA" \
	timeout 30 "$B" up p --driver "pcap:$VA" --addr 10.78.0.2/24 --capture "$WORK/veth.pcap"
linux_suite pcap p 10.78.0.1 10.78.0.2 ip netns exec "$NS"
check "pcap: down" timeout 20 "$B" down p
check "pcap: tshark finds nothing malformed and no bad checksum in the capture" dissected "$WORK/veth.pcap"

finish
