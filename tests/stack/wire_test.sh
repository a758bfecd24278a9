#!/bin/bash
# Two instances over a shared-memory wire, factored and mono: nc both
# ways with half-close, HTTP transfers checked by SHA-256, status, stats,
# conns and logs, impairment, clean shutdown.
. "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/www"
head -c 1 /dev/urandom >"$WORK/www/one"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
head -c 20000000 /dev/urandom >"$WORK/www/20m"
head -c 268435456 /dev/urandom >"$WORK/www/256m"

pair() { # pair MODE [IMPAIR]
	local imp=()
	[ -n "${2:-}" ] && imp=(--impair "$2")
	timeout 30 "$B" up a --driver wire:l1:0 --addr 10.9.0.1/24 --mode "$1" "${imp[@]}" &&
		timeout 30 "$B" up b --driver wire:l1:1 --addr 10.9.0.2/24 --mode "$1" "${imp[@]}"
}
unpair() { timeout 20 "$B" down a >/dev/null; timeout 20 "$B" down b >/dev/null; }

fetch() { # fetch FILE: from a's server to b, hash checked
	local out="$WORK/got.$1"
	rm -f "$out"
	local rc=0
	timeout 120 "$B" get b "http://10.9.0.1:8080/$1" -o "$out" 2>"$WORK/get.last" &&
		[ "$(sha "$out")" = "$(sha "$WORK/www/$1")" ] || rc=1
	cat "$WORK/get.last" >>"$WORK/get.err" # kept for the sanitizer scan
	[ $rc -eq 0 ] || cat "$WORK/get.last"
	return $rc
}

for mode in factored mono; do
	check "$mode: both instances up" pair "$mode"
	st="$(timeout 10 "$B" status a --json)"
	n=$(grep -o '"state": "running"' <<<"$st" | wc -l)
	check "$mode: status --json shows four running domains ($n)" [ "$n" -eq 4 ]
	check "$mode: status --json has the mode" grep -q "\"mode\": \"$mode\"" <<<"$st"

	# nc: b connects to a; each sends a line and half-closes; each gets the other's.
	echo "from-a" >"$WORK/a.in"
	echo "from-b" >"$WORK/b.in"
	timeout 20 "$B" nc a -l 0.0.0.0 7000 <"$WORK/a.in" >"$WORK/a.out" &
	ncpid=$!
	sleep 0.3
	timeout 20 "$B" nc b 10.9.0.1 7000 <"$WORK/b.in" >"$WORK/b.out"
	rc=$?
	wait $ncpid
	rc2=$?
	check "$mode: nc both ways with half-close (rc $rc/$rc2; a got '$(cat "$WORK/a.out")', b got '$(cat "$WORK/b.out")')" \
		[ $rc -eq 0 -a $rc2 -eq 0 -a "$(cat "$WORK/a.out")" = from-b -a "$(cat "$WORK/b.out")" = from-a ]

	# UDP: an 1800-byte datagram (two fragments at MTU 1500) from b to a
	# listener on a, which answers its sender with another; then one
	# larger than the stack sends is refused with EMSGSIZE.
	head -c 1800 /dev/urandom >"$WORK/d.ab"
	head -c 1800 /dev/urandom >"$WORK/d.ba"
	rm -f "$WORK/u.a" "$WORK/u.b"
	(sleep 1; cat "$WORK/d.ba") | timeout 20 "$B" nc a -u -l -w 2 0.0.0.0 5000 >"$WORK/u.a" &
	ncpid=$!
	sleep 0.3
	(cat "$WORK/d.ab"; sleep 2) | timeout 20 "$B" nc b -u -w 2 10.9.0.1 5000 >"$WORK/u.b"
	wait $ncpid
	check "$mode: UDP 1800-byte datagrams both ways, whole ($(wc -c <"$WORK/u.a")/$(wc -c <"$WORK/u.b") bytes)" \
		[ "$(sha "$WORK/u.a")" = "$(sha "$WORK/d.ab")" -a "$(sha "$WORK/u.b")" = "$(sha "$WORK/d.ba")" ]
	sleep 0.2 # counters are published every 50 ms
	frag=$(timeout 10 "$B" stats a | awk '$1 == "ip.frag_rx" {print $2}')
	check "$mode: the datagram came in fragments (ip.frag_rx ${frag:-none})" [ "${frag:-0}" -ge 2 ]
	out="$(head -c 5000 /dev/urandom | timeout 10 "$B" nc b -u -w 1 10.9.0.1 5000 2>&1 |
		tee -a "$WORK/nc-emsgsize.err")" # kept for the sanitizer scan
	check "$mode: a datagram larger than the stack sends: EMSGSIZE (\"$out\")" \
		grep -q "Message too long" <<<"$out"

	"$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	srv=$!
	sleep 0.3
	for f in one 1m 20m 256m; do
		check "$mode: HTTP transfer of $f, SHA-256 equal" fetch "$f"
	done
	grep -h "Mbit/s" "$WORK/get.last"
	# get's own digest (libcrypto) is the file's; --no-hash skips it.
	check "$mode: get prints the body's SHA-256" \
		grep -q "sha256 $(sha "$WORK/www/256m")\$" "$WORK/get.last"
	out="$(timeout 120 "$B" get b http://10.9.0.1:8080/20m -o "$WORK/nohash" --no-hash 2>&1)"
	check "$mode: get --no-hash: the body whole, no digest ($out)" \
		bash -c "[ \"\$(sha256sum <'$WORK/nohash' | cut -d' ' -f1)\" = $(sha "$WORK/www/20m") ] &&
			grep -q 'sha256 not computed (--no-hash)' <<<'$out'"
	# Many at once.
	ok=$(gets_whole 16 b http://10.9.0.1:8080/1m "$WORK/www/1m" "$WORK/par")
	check "$mode: 16 concurrent transfers, all hashes equal ($ok)" [ "$ok" -eq 16 ]
	timeout 20 "$B" get b http://10.9.0.1:8080/nope -o "$WORK/nope" 2>"$WORK/404.err"
	rc=$?
	check "$mode: a 404 is an error (rc $rc: $(head -1 "$WORK/404.err"))" \
		bash -c "[ $rc -eq 1 ] && head -1 '$WORK/404.err' | grep -E '^HTTP/1\.[01] 404 ' >/dev/null"

	sleep 0.2 # counters are published every 50 ms
	c="$(timeout 10 "$B" conns a)"
	check "$mode: conns lists the listener" grep -q "10.9.0.1:8080 .*LISTEN" <<<"$c"
	s="$(timeout 10 "$B" stats b --json)"
	check "$mode: stats --json has every domain" grep -q '"driver": {.*"ip": {.*"tcp": {.*"sock": {' <<<"$s"
	segs=$(timeout 10 "$B" stats b | awk '$1 == "tcp.segs_in" {print $2}')
	check "$mode: stats counts segments ($segs)" [ "${segs:-0}" -gt 1000 ]
	# The driver sleeps on the wire's word itself: no poller thread, and
	# the other end's wake-up calls reach it directly.
	drv="$(timeout 10 "$B" stats b)"
	dv() { awk -v k="$1" '$1 == k {print $2}' <<<"$drv"; }
	# Both ends take large frames: a's segments of many MSS came whole,
	# each in a chain of buffers, and ip took every chain.
	check "$mode: large frames carried whole (b received $(dv driver.dev.rx_large) in chains, ip took $(dv ip.ip_rx_large); bad $(dv ip.eth_bad_large), cut short $(dv ip.bad_chain))" \
		[ "$(dv driver.dev.rx_large)" -gt 1000 -a "$(dv ip.ip_rx_large)" = "$(dv driver.dev.rx_large)" \
		-a "$(dv ip.eth_bad_large)" = 0 -a "$(dv ip.bad_chain)" = 0 ]
	# a's socket server lent tcp the files it served in whole 16 KiB
	# SOCK buffers (2 KiB ones would give at most 1,984 bytes each).
	sa="$(timeout 10 "$B" stats a)"
	av() { awk -v k="$1" '$1 == k {print $2}' <<<"$sa"; }
	lent=$(av sock.tx_bytes) ndesc=$(av sock.chan.tcp-sock.sent)
	check "$mode: a stream goes to tcp in large SOCK buffers (${lent:-none} bytes in ${ndesc:-none} descriptors)" \
		[ "${lent:-0}" -gt $((8000 * ${ndesc:-1})) ]
	# a sent the files in send chains: its tcp copied next to no
	# payload (only segments over more SOCK pieces than a chain
	# names), its driver gathered every chain, none was refused.
	check "$mode: a's payload went in send chains ($(av tcp.chain_bytes) bytes in $(av tcp.chain_segs) segments, $(av tcp.copy_bytes) copied; driver took $(av driver.tx_chains), refused $(av driver.tx_bad_chain), tcp's own bad $(av tcp.chain_bad))" \
		[ "$(av tcp.chain_bytes)" -gt 20000000 -a "$(av tcp.copy_bytes)" -lt $(($(av tcp.chain_bytes) / 100)) \
		-a "$(av driver.tx_chains)" -gt 0 -a "$(av driver.tx_bad_chain)" = 0 -a "$(av tcp.chain_bad)" = 0 ]
	if [ "$mode" = mono ]; then
		# Both ends take partial checksums: every TCP frame crossed
		# without a checksum computed or verified, and none was bad.
		check "$mode: checksums left to the link (b took $(dv driver.dev.rx_csum_valid) vouched frames, completed $(dv driver.dev.tx_csum_done); bad $(dv tcp.bad_checksum))" \
			[ "$(dv driver.dev.rx_csum_valid)" -gt 1000 -a "$(dv driver.dev.tx_csum_done)" = 0 \
			-a "$(dv tcp.bad_checksum)" = 0 ]
		offers=true
	else
		# Factored, TCP's checksum guards the payload against a faulty
		# ip or driver in between: computed and verified, never vouched.
		check "$mode: checksums computed and verified end to end (vouched frames $(dv driver.dev.rx_csum_valid), bad $(dv tcp.bad_checksum))" \
			[ "$(dv driver.dev.rx_csum_valid)" = 0 -a "$(dv tcp.bad_checksum)" = 0 ]
		offers=false
	fi
	check "$mode: status says what the link offers" \
		bash -c "timeout 10 '$B' status b --json | grep -q '\"link\": {\"mtu\": 1500, \"csum_offload_rx\": $offers, \"csum_offload_tx\": $offers, \"large_rx\": true, \"large_tx\": true, \"send_chains\": true}'"
	check "$mode: the wire needs no poller thread (poller.none $(dv driver.poller.none), poller.wakes $(dv driver.poller.wakes), the other end's wake-ups $(timeout 10 "$B" stats a | awk '$1 == "driver.dev.peer_wakes" {print $2}'))" \
		[ "$(dv driver.poller.none)" = 1 -a "$(dv driver.poller.wakes)" = 0 ]
	kill $srv
	wait $srv 2>/dev/null
	for d in driver ip tcp sock; do
		check "$mode: logs has $d lines" bash -c "timeout 10 '$B' logs a $d | grep -q ' $d\['"
	done
	unpair
	check "$mode: down removed the control socket" [ ! -e "$BULKHEAD_RUN/a/ctl.sock" ]
done

# Loss, reordering, duplication and corruption in both drivers, both modes.
for mode in factored mono; do
	check "$mode impaired: pair up" pair "$mode" "loss=1%,reorder=1%,dup=1%,corrupt=0.1%,seed=7"
	"$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
	srv=$!
	sleep 0.3
	check "$mode impaired: HTTP transfer of 1m, SHA-256 equal" fetch 1m
	check "$mode impaired: HTTP transfer of 20m, SHA-256 equal" fetch 20m
	grep -h "Mbit/s" "$WORK/get.last"
	sleep 0.2 # counters are published every 50 ms
	st="$(timeout 10 "$B" stats a)"
	v() { awk -v k="$1" '$1 == k {print $2}' <<<"$st"; }
	check "$mode impaired: lost $(v driver.impair.tx.lost), duplicated $(v driver.impair.tx.duplicated), reordered $(v driver.impair.tx.reordered), corrupted $(v driver.impair.tx.corrupted), retransmitted $(v tcp.retransmits)" \
		[ "$(v driver.impair.tx.lost)" -gt 0 -a "$(v driver.impair.tx.duplicated)" -gt 0 \
		-a "$(v driver.impair.tx.reordered)" -gt 0 -a "$(v driver.impair.tx.corrupted)" -gt 0 \
		-a "$(v tcp.retransmits)" -gt 0 ]
	check "$mode impaired: no checksum left to an impaired link ($(v driver.dev.rx_csum_valid) vouched frames)" \
		[ "$(v driver.dev.rx_csum_valid)" = 0 ]
	check "$mode impaired: no send chains where the driver impairs ($(v tcp.chain_segs) chains, $(v tcp.copy_bytes) bytes copied)" \
		[ "$(v tcp.chain_segs)" = 0 -a "$(v tcp.copy_bytes)" -gt 0 ]
	kill $srv
	wait $srv 2>/dev/null
	unpair
done

# --max-conns 10000: many small buffers, no large frames. A 20 MB
# transfer each way with no segment dropped by a receiver: before, its
# RX buffers were of 16 KiB for frames of 1514 bytes, the window
# promised eleven times the memory there was, and 64 MiB took thousands
# of retransmissions and tens of timeouts (tcp/tcp_out.c, the window;
# domains/plan.c).
check "max-conns: pair up (mono, --max-conns 10000)" bash -c "timeout 30 '$B' up a --driver wire:l1:0 --addr 10.9.0.1/24 --mode mono --max-conns 10000 && timeout 30 '$B' up b --driver wire:l1:1 --addr 10.9.0.2/24 --mode mono --max-conns 10000"
"$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
srv=$!
"$B" serve b --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
srv2=$!
sleep 0.3
check "max-conns: HTTP transfer of 20m, SHA-256 equal" fetch 20m
rm -f "$WORK/got.rev"
timeout 120 "$B" get a http://10.9.0.2:8080/20m -o "$WORK/got.rev" 2>>"$WORK/get.err"
check "max-conns: HTTP transfer of 20m the other way, SHA-256 equal" [ "$(sha "$WORK/got.rev")" = "$(sha "$WORK/www/20m")" ]
for i in a b; do
	st="$(timeout 10 "$B" stats $i)"
	v() { awk -v k="$1" '$1 == k {print $2}' <<<"$st"; }
	check "max-conns: $i dropped no segment it was sent (rcv_drops $(v tcp.rcv_drops), mem_drops $(v tcp.mem_drops); retransmitted $(v tcp.retransmits))" \
		[ "$(v tcp.rcv_drops)" = 0 -a "$(v tcp.mem_drops)" = 0 ]
done
kill $srv $srv2
wait $srv $srv2 2>/dev/null
unpair

# Two mono instances, one capturing (it needs whole checksums and says
# so), the other leaving them to the link: the other end's wire completes them in its
# copy, and a transfer both ways still checks out.
check "mixed: pair up (mono), a capturing" bash -c "timeout 30 '$B' up a --driver wire:l1:0 --addr 10.9.0.1/24 --mode mono --capture '$WORK/a.pcap' && timeout 30 '$B' up b --driver wire:l1:1 --addr 10.9.0.2/24 --mode mono"
"$B" serve a --port 8080 --root "$WORK/www" 2>>"$WORK/serve.err" &
srv=$!
sleep 0.3
check "mixed: HTTP transfer of 1m, SHA-256 equal" fetch 1m
sleep 0.2
st="$(timeout 10 "$B" stats b)"
v() { awk -v k="$1" '$1 == k {print $2}' <<<"$st"; }
sa="$(timeout 10 "$B" stats a)"
check "mixed: b completed its checksums for a (its ACKs, one per pass) ($(v driver.dev.tx_csum_done)); a verified them all (bad $(awk '$1 == "tcp.bad_checksum" {print $2}' <<<"$sa"))" \
	[ "$(v driver.dev.tx_csum_done)" -gt 10 -a "$(awk '$1 == "tcp.bad_checksum" {print $2}' <<<"$sa")" = 0 ]
check "mixed: status: a takes whole checksums only, b sends them whole" \
	bash -c "timeout 10 '$B' status a | grep -q 'checksums left to the link: received no, sent yes' && timeout 10 '$B' status b | grep -q 'checksums left to the link: received yes, sent no'"
check "mixed: status: a takes no large frames, b sends none whole" \
	bash -c "timeout 10 '$B' status a | grep -q 'large frames: received no, sent yes' && timeout 10 '$B' status b | grep -q 'large frames: received yes, sent no'"
kill $srv
wait $srv 2>/dev/null
# b's TCP sends large segments; a takes none, so b's driver cuts them
# into MTU-sized frames, whole checksums each.
"$B" serve b --port 8081 --root "$WORK/www" 2>>"$WORK/serve.err" &
srv=$!
sleep 0.3
rm -f "$WORK/got.rev"
timeout 120 "$B" get a http://10.9.0.2:8081/20m -o "$WORK/got.rev" 2>>"$WORK/get.err"
check "mixed: HTTP transfer of 20m the other way, SHA-256 equal" [ "$(sha "$WORK/got.rev")" = "$(sha "$WORK/www/20m")" ]
sleep 0.2
st="$(timeout 10 "$B" stats b)"
sa="$(timeout 10 "$B" stats a)"
check "mixed: b cut its large frames for a ($(v driver.tx_cut) into $(v driver.tx_cut_frames) frames, $(v driver.dev.tx_large) sent whole); a verified them all (bad $(awk '$1 == "tcp.bad_checksum" {print $2}' <<<"$sa"))" \
	[ "$(v driver.tx_cut)" -gt 10 -a "$(v driver.tx_cut_frames)" -gt "$(v driver.tx_cut)" \
	-a "$(v driver.dev.tx_large)" = 0 -a "$(awk '$1 == "tcp.bad_checksum" {print $2}' <<<"$sa")" = 0 ]
# ... and, sending chains, gathered each whole before cutting it.
check "mixed: b's chains were gathered whole to be cut ($(v driver.tx_linear_bytes) bytes, $(v tcp.chain_bytes) sent in chains)" \
	[ "$(v driver.tx_linear_bytes)" -gt 20000000 -a "$(v tcp.chain_segs)" -gt 0 ]
kill $srv
wait $srv 2>/dev/null
unpair
finish
