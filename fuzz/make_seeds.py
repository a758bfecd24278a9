#!/usr/bin/env python3
"""Writes the seed corpora of the IP fuzzers (fuzz/corpus/ip_input and
fuzz/corpus/ip_frag). Seeds are small scripts in each fuzzer's record
format (see the comment at the top of each *_fuzz.c); checksums are left
to the fuzzer's fix-up flag. Run from the repository root."""
import os
import struct

ENV_MAC = bytes([2, 0, 0, 0, 0, 2])
PEER_MAC = bytes([2, 0, 0, 0, 0, 9])
BCAST = b"\xff" * 6
ENV = bytes([10, 0, 0, 2])
PEER = bytes([10, 0, 0, 9])


def eth(dst, src, typ):
    return dst + src + struct.pack("!H", typ)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa


def ipv4(proto, payload, src=PEER, dst=ENV, ident=1, frag=0, ttl=64, opts=b""):
    hl = 20 + len(opts)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), ident, frag,
                       ttl, proto, 0, src, dst) + opts + payload


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp(typ, code, rest, data):
    return struct.pack("!BBHI", typ, code, 0, rest) + data


def rec(op, body):
    return bytes([op]) + struct.pack("!H", len(body)) + body


def frame(body, fix=True):
    return rec(0x40 if fix else 0, body)


def ipframe(*a, **k):
    return frame(eth(ENV_MAC, PEER_MAC, 0x0800) + ipv4(*a, **k))


def tick(ms):
    return rec(1, struct.pack("!H", ms // 16))


seeds = {
    "arp_request": frame(eth(BCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER, b"\0" * 6, ENV)),
    "arp_reply_then_udp": rec(2, bytes([9]) + b"hello")
    + frame(eth(ENV_MAC, PEER_MAC, 0x0806) + arp(2, PEER_MAC, PEER, ENV_MAC, ENV))
    + rec(2, bytes([9]) + b"again"),
    "arp_timeout": rec(2, bytes([33]) + b"x") + tick(4000),
    "echo": ipframe(1, icmp(8, 0, 0x12340001, b"abcdefgh" * 8)),
    "udp_bound": ipframe(17, udp(5000, 53, b"query")),
    "udp_unbound": ipframe(17, udp(5000, 54, b"nobody")),
    "unknown_proto": ipframe(99, b"\0" * 16),
    "options": ipframe(17, udp(1, 53, b"o"), opts=bytes([1, 30, 6, 1, 2, 3, 0, 0])),
    "icmp_error": ipframe(1, icmp(3, 3, 0, ipv4(17, udp(4000, 53, b""), src=ENV, dst=PEER))),
    "fragments": ipframe(17, udp(7, 53, b"A" * 24)[:16], ident=5, frag=0x2000)
    + ipframe(17, b"B" * 16, ident=5, frag=2)
    + tick(31000),
    "bind_and_send": rec(3, struct.pack("!H", 9999)) + ipframe(17, udp(1, 9999, b"x"))
    + rec(3, struct.pack("!H", 9999)) + ipframe(17, udp(1, 9999, b"x")),
    "no_buffers": rec(0x44, b"") + ipframe(1, icmp(8, 0, 1, b"x")) + rec(4, b""),
    "vlan": frame(eth(ENV_MAC, PEER_MAC, 0x8100) + b"\0" * 40, fix=False),
    # A large frame in a chain of 200-byte pieces: a TCP datagram and a
    # UDP one (op 5, checksums fixed).
    "chain_tcp": rec(0x45, bytes([66]) + eth(ENV_MAC, PEER_MAC, 0x0800)
                     + ipv4(6, struct.pack("!HHIIBBHHH", 4000, 80, 1, 0, 0x50, 0x10, 512, 0, 0)
                            + b"T" * 1500)),
    "chain_udp": rec(0x45, bytes([200]) + eth(ENV_MAC, PEER_MAC, 0x0800)
                     + ipv4(17, udp(5000, 53, b"U" * 1200))),
}


def frag(ident, mf, off, payload, proto=0, dt=0, flags=0):
    return bytes([ident, (1 if mf else 0) | flags]) + struct.pack("!HHBB", off, len(payload),
                                                                 proto, dt) + payload


frag_seeds = {
    "in_order": frag(0, True, 0, bytes(range(8)) * 4) + frag(0, False, 32, b"z" * 20),
    "reverse": frag(1, False, 64, b"y" * 10) + frag(1, True, 32, b"x" * 32)
    + frag(1, True, 0, b"w" * 32),
    "overlap": frag(2, True, 0, b"a" * 32) + frag(2, True, 16, b"b" * 32)
    + frag(2, False, 48, b"c" * 8),
    "duplicate": frag(3, True, 0, b"a" * 16) + frag(3, True, 0, b"a" * 16)
    + frag(3, False, 16, b"b"),
    "tiny_tcp": frag(4, True, 0, b"t" * 8, proto=1) + frag(4, False, 8, b"u" * 40, proto=1),
    "timeout": frag(5, True, 0, b"q" * 64) + frag(6, False, 1024, b"r", dt=200),
    "echo": frag(7, True, 0, bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"e" * 1472, proto=2)
    + frag(7, False, 1480, b"f" * 600, proto=2),
}


def tcphdr(flags, opts=b"", extra=0):
    opts = opts + b"\0" * (-len(opts) % 4)
    h = struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, (20 + len(opts)) // 4 << 4, flags, 29200,
                    0, 0)
    return struct.pack("!H", extra) + h + opts


tcp_seeds = {
    "plain_ack": tcphdr(0x10, extra=100),
    "linux_syn": tcphdr(0x02, bytes([2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3,
                                     3, 7])),
    "sack": tcphdr(0x10, bytes([1, 1, 8, 10]) + b"\0" * 8 + bytes([1, 1, 5, 26]) + b"\1" * 24),
    "bad_len": tcphdr(0x10, bytes([30, 0, 0, 0])),
    "wscale_15": tcphdr(0x02, bytes([1, 3, 3, 15])),
}


def trec(op, flags=0, seq=0, ack=0, length=0, window=0xff):
    return struct.pack("!BBHHBB", op, flags, seq, ack, length, window)


SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
tcp_input_seeds = {
    "data_both_ways": b"\0" + trec(1, length=100) + trec(0, ACK, 1, 601, 10)
    + trec(2) + trec(6, length=10),
    "active_close": b"\0" + trec(4) + trec(0, ACK, 1, 2) + trec(0, FIN | ACK, 1, 2)
    + trec(6, length=255),
    "passive_open": b"\1" + trec(0, SYN, 0, 0) + trec(0, ACK, 1, 1) + trec(0, ACK | PSH, 1, 1, 5)
    + trec(2) + trec(0, FIN | ACK, 31, 1) + trec(4),
    "resets": b"\0" + trec(0, RST, 50) + trec(0, RST, 1) + trec(1, length=10),
    "lossy": b"\0" + trec(1, length=250) + trec(1, length=250) + trec(6, length=200)
    + trec(0, ACK, 1, 1501) + trec(0, ACK, 1, 1501) + trec(0, ACK, 1, 1501)
    + trec(0, ACK, 1, 1501) + trec(6, length=255),
    "zero_window": b"\0" + trec(0, ACK, 1, 1, 0, 0) + trec(1, length=50) + trec(6, length=255)
    + trec(6, length=255),
    "garbage": b"\0" + trec(0x80, 0xff, 0x1234, 0x5678, 20, 3),
    "no_buffers": b"\0" + trec(7, 1) + trec(1, length=50) + trec(7, 0) + trec(6, length=100),
    # SACK and timestamps offered: a loss the peer SACKs around, then an
    # old timestamp (PAWS)
    "sack_recovery": b"\6" + trec(1, length=250) + trec(1, length=250) + trec(1, length=250)
    + trec(0x08, ACK, 1, 1, 200, 40) + trec(0x08, ACK, 1, 1, 220, 60)
    + trec(0x18, ACK, 1, 1, 240, 80) + trec(0, ACK, 1, 4501) + trec(0x20, ACK, 0, 1, 3)
    + trec(6, length=255),
    # SYNs from several ports fill the SYN queue: cookies
    "cookies": b"\1" + b"".join(trec(0x40, SYN | k << 5) for k in range(1, 7))
    + trec(0x40, ACK | 6 << 5, 1, 1) + trec(0, ACK, 1, 1),
    "keepalive": b"\0" + trec(7, 4) + trec(6, length=255) + trec(6, length=255)
    + trec(0, ACK, 1, 1) + trec(6, length=255),
}

for name, d in (("ip_input", seeds), ("ip_frag", frag_seeds), ("tcp_wire", tcp_seeds),
                ("tcp_input", tcp_input_seeds)):
    path = os.path.join("fuzz", "corpus", name)
    os.makedirs(path, exist_ok=True)
    for k, v in d.items():
        with open(os.path.join(path, k), "wb") as f:
            f.write(v)
