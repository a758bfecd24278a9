#!/usr/bin/env python3
"""The peer of callcheck (tests/stack/callcheck.c), on the host's stack.

  run_peer.py ADDR PORT
    PORT    TCP echo: echoes until the other side ends, then closes
    PORT+1  TCP connect-back: reads "A.B.C.D PORT\\n", connects there,
            sends "hi", closes
    PORT+2  TCP late: after 300 ms sends "late", then echoes until the end
    PORT+3  nothing listens (connection refused)
    PORT    UDP echo (each datagram back to its sender)
"""
import socket
import sys
import threading
import time

addr, port = sys.argv[1], int(sys.argv[2])


def echo(c, delay=0.0):
    with c:
        if delay:
            time.sleep(delay)
            c.sendall(b"late")
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            c.sendall(d)


def back(c):
    with c:
        line = b""
        while not line.endswith(b"\n"):
            d = c.recv(100)
            if not d:
                return
            line += d
        a, p = line.decode().split()
        s = socket.create_connection((a, int(p)), timeout=5)
        s.sendall(b"hi")
        s.close()


def serve(p, fn):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, p))
    l.listen(64)
    while True:
        c, _ = l.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()


def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, port))
    while True:
        d, a = u.recvfrom(65536)
        u.sendto(d, a)


for p, fn in ((port, echo), (port + 1, back), (port + 2, lambda c: echo(c, 0.3))):
    threading.Thread(target=serve, args=(p, fn), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
