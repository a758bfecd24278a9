#!/usr/bin/python3
"""tests/stack/hostile_peer.py - a hostile host on Bulkhead's TAP link.

It speaks Ethernet frames straight onto the TAP interface (scapy), as a
host of its own (MY_IP, a made-up MAC), so the Linux stack on the same
interface stays out of the conversation. In order:

  1. ARP: asks for Bulkhead's address (and so is learned by it);
  2. opens a connection by hand to EST_PORT (a Bulkhead `nc -l`), with
     MSS, window scale, SACK and timestamps;
  3. a seeded barrage at LISTEN_PORT: SYNs with every kind of malformed
     or odd option, bad checksums, bad data offsets, truncated headers,
     every odd flag combination, a closed port. Every SYN-ACK it draws is
     answered with a RST, as the Linux host answers a SYN-ACK for a SYN
     it never sent (the one-SYN denial of service was exactly that);
  4. a barrage into the established connection that no honest stack
     could take for data: out-of-window and old data, ACKs of data never
     sent, in-window RSTs and SYNs that are not exact (RFC 5961),
     a bad checksum, an old timestamp (PAWS), an out-of-window RST;
  5. then, on the same connection, a line of honest data and a FIN.

It prints one JSON object: how many frames of each kind it sent, how
many TCP segments reached Bulkhead's TCP layer by construction (a valid
IPv4 header and at least 20 bytes of TCP), the SYN-ACKs it saw, and
whether the honest line was acknowledged. The shell test checks these
against Bulkhead's counters and the listener's output.

usage: hostile_peer.py IFACE BULKHEAD_IP MY_IP LISTEN_PORT EST_PORT SEED
"""
import json
import random
import sys
import threading
import time

from scapy.all import ARP, IP, TCP, Ether, Raw, AsyncSniffer, conf

conf.verb = 0

IFACE, BH_IP, MY_IP = sys.argv[1], sys.argv[2], sys.argv[3]
LPORT, EPORT, SEED = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
MY_MAC = "02:00:00:00:00:77"
rng = random.Random(SEED)
lock = threading.Lock()
seen = []          # TCP segments from Bulkhead to us
kinds = {}         # frames sent, by kind
reached_tcp = 0    # segments that reach Bulkhead's TCP layer
synacks = 0
bh_mac = None
wire = conf.L2socket(iface=IFACE)  # one socket for every frame we send


def sendp(frame, iface=None):
    with lock:
        wire.send(frame)


def on_frame(p):
    """Sniffer callback: keep Bulkhead's segments, answer ARP for MY_IP,
    and reset every SYN-ACK from the listener (as Linux does)."""
    global bh_mac, synacks
    if ARP in p and p[ARP].psrc == BH_IP:
        bh_mac = p[ARP].hwsrc
        if p[ARP].op == 1 and p[ARP].pdst == MY_IP:
            sendp(Ether(dst=p[ARP].hwsrc, src=MY_MAC) /
                  ARP(op=2, hwsrc=MY_MAC, psrc=MY_IP, hwdst=p[ARP].hwsrc, pdst=BH_IP),
                  iface=IFACE)
        return
    if IP not in p or TCP not in p or p[IP].src != BH_IP or p[IP].dst != MY_IP:
        return
    t = p[TCP]
    with lock:
        seen.append(t)
    if t.sport == LPORT and (t.flags & 0x12) == 0x12:
        synacks += 1
        send("rst_answering_synack",
             IP(src=MY_IP, dst=BH_IP) / TCP(sport=t.dport, dport=LPORT, flags="R", seq=t.ack))


def send(kind, pkt, reaches=True):
    """Sends one IP packet as a frame from our MAC; counts it."""
    global reached_tcp
    frame = Ether(src=MY_MAC, dst=bh_mac) / pkt
    with lock:
        wire.send(frame)
        kinds[kind] = kinds.get(kind, 0) + 1
        if reaches:
            reached_tcp += 1


def wait_for(pred, secs=3.0):
    end = time.time() + secs
    while time.time() < end:
        with lock:
            for t in seen:
                if pred(t):
                    return t
        time.sleep(0.01)
    return None


sniffer = AsyncSniffer(iface=IFACE, prn=on_frame, store=False)
sniffer.start()
time.sleep(0.5)

# 1. ARP, until Bulkhead answers.
for _ in range(20):
    sendp(Ether(dst="ff:ff:ff:ff:ff:ff", src=MY_MAC) /
          ARP(op=1, hwsrc=MY_MAC, psrc=MY_IP, pdst=BH_IP), iface=IFACE)
    time.sleep(0.2)
    if bh_mac:
        break
if not bh_mac:
    print(json.dumps({"error": "no ARP answer from Bulkhead"}))
    sys.exit(1)

# 2. A connection by hand.
ES, ISS, TSV = 33333, rng.randrange(1 << 32), 1000


def opts(ts_val, ts_ecr):
    return [("Timestamp", (ts_val, ts_ecr))]


send("handshake", IP(src=MY_IP, dst=BH_IP) /
     TCP(sport=ES, dport=EPORT, flags="S", seq=ISS, window=65535,
         options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (TSV, 0)), ("NOP", None),
                  ("WScale", 7)]))
sa = wait_for(lambda t: t.sport == EPORT and t.dport == ES and (t.flags & 0x12) == 0x12)
if sa is None:
    print(json.dumps({"error": "no SYN-ACK for the connection"}))
    sys.exit(1)
IRS = sa.seq
TSE = dict(sa.options).get("Timestamp", (0, 0))[0]
snd, rcv = (ISS + 1) & 0xffffffff, (IRS + 1) & 0xffffffff


def est(flags, seq, ack, data=b"", ts=None, chksum=None, kind="est"):
    t = TCP(sport=ES, dport=EPORT, flags=flags, seq=seq & 0xffffffff, ack=ack & 0xffffffff,
            window=1024, options=opts(ts if ts is not None else TSV + 10, TSE))
    if chksum is not None:
        t.chksum = chksum
    send(kind, IP(src=MY_IP, dst=BH_IP) / t / Raw(data) if data else IP(src=MY_IP, dst=BH_IP) / t)


est("A", snd, rcv, kind="handshake")

# 3. The barrage at the listener.
SYN_OPTIONS = {
    "syn_opt_wscale_len2_eol": b"\x03\x02\x01\x00",   # the one-SYN denial of service
    "syn_opt_len0": b"\x03\x00\x01\x00",
    "syn_opt_len1": b"\x02\x01\x01\x00",
    "syn_opt_past_end": b"\x02\x28\x05\xb4",
    "syn_opt_mss_len3": b"\x02\x03\x05\x00",
    "syn_opt_ts_len9": b"\x08\x09" + b"\x00" * 7 + b"\x00\x00\x00",
    "syn_opt_sackok_len3": b"\x04\x03\x00\x00",
    "syn_opt_unknown_kind": b"\x63\x04\xab\xcd",
    "syn_opt_wscale_15": b"\x01\x03\x03\x0f",
    "syn_opt_wscale_255": b"\x01\x03\x03\xff",
    "syn_opt_mss_0": b"\x02\x04\x00\x00",
    "syn_opt_nops_40": b"\x01" * 40,
    "syn_opt_eol_first": b"\x00\x02\x04\x05\xb4\x03\x03\x07",
    "syn_opt_sack_blocks": b"\x01\x01\x05\x0a" + b"\x00" * 8,
    "syn_opt_mss_twice": b"\x02\x04\x05\xb4\x02\x04\x00\x40",
}


def at_listener(kind, flags, raw_opts=b"", data=b"", dport=LPORT, chksum=None, dataofs=None,
                reaches=True):
    pad = (-len(raw_opts)) % 4
    t = TCP(sport=rng.randrange(1024, 65535), dport=dport, flags=flags,
            seq=rng.randrange(1 << 32), ack=rng.randrange(1 << 32) if "A" in flags else 0,
            window=rng.randrange(1, 65535))
    t.dataofs = dataofs if dataofs is not None else 5 + (len(raw_opts) + pad) // 4
    if chksum is not None:
        t.chksum = chksum
    pkt = IP(src=MY_IP, dst=BH_IP) / t / Raw(raw_opts + b"\x00" * pad + data)
    send(kind, pkt, reaches)


plan = []
for name, raw in SYN_OPTIONS.items():
    plan += [(name, lambda n=name, r=raw: at_listener(n, "S", r))] * 3
plan += [("syn_bad_checksum", lambda: at_listener("syn_bad_checksum", "S", chksum=0xdead))] * 3
plan += [("doff_below_5", lambda: at_listener("doff_below_5", "S", dataofs=4))] * 3
plan += [("doff_past_end", lambda: at_listener("doff_past_end", "S", dataofs=15))] * 3
plan += [("short_tcp_header", lambda: send(
    "short_tcp_header", IP(src=MY_IP, dst=BH_IP, proto=6) / Raw(b"\x12\x34" * 5), reaches=False))] * 3
for fl in ["SF", "SR", "F", "", "A", "FPU", "R", "SA", "SEC", "PU"]:
    k = "flags_" + (fl or "none")
    plan += [(k, lambda k=k, fl=fl: at_listener(k, fl))] * 2
plan += [("syn_with_data", lambda: at_listener("syn_with_data", "S", data=b"x" * 100))] * 2
plan += [("syn_to_closed_port", lambda: at_listener("syn_to_closed_port", "S", dport=9))] * 3
rng.shuffle(plan)
for _, fn in plan:
    fn()
    time.sleep(0.005)
time.sleep(0.5)

# 4. The barrage into the established connection (none of it is data).
est("PA", snd + (1 << 30), rcv, b"EVIL-FAR", kind="est_data_out_of_window")
est("PA", snd - 100000, rcv, b"EVIL-OLD", kind="est_data_old")
est("A", snd, rcv + (1 << 20), kind="est_ack_unsent")
est("R", snd + 10, 0, kind="est_rst_in_window_not_exact")
est("S", snd + 5, 0, kind="est_syn_in_window")
est("PA", snd, rcv, b"EVIL-CHECKSUM", chksum=0xbeef, kind="est_bad_checksum")
est("PA", snd, rcv, b"EVIL-PAWS", ts=1, kind="est_old_timestamp")
est("R", snd + (1 << 31), 0, kind="est_rst_out_of_window")
time.sleep(0.5)

# 5. Honest data, acknowledged; then a FIN.
line = b"honest line after the barrage\n"
est("PA", snd, rcv, line, ts=TSV + 20, kind="honest")
acked = wait_for(lambda t: t.sport == EPORT and t.ack == (snd + len(line)) & 0xffffffff) is not None
est("FA", snd + len(line), rcv, ts=TSV + 21, kind="honest")
time.sleep(0.5)
sniffer.stop()
print(json.dumps({"kinds": kinds, "reached_tcp": reached_tcp, "synacks": synacks,
                  "honest_acked": acked}))
