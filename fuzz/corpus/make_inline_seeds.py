#!/usr/bin/env python3
"""Seeds for inline_fuzz: a TCP connection over raw IPv4 (handshake, data both ways, a
retransmission, FIN), each packet with a different edit script. Writes fuzz/corpus/inline/."""
import os
import struct


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def tcp(src, dst, sport, dport, seq, ack, flags, data=b""):
    th = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ph = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, 6, len(th) + len(data))
    th = th[:16] + struct.pack("!H", csum(ph + th + data)) + th[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(th) + len(data), 1, 0x4000, 64, 6, 0,
                     bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + th + data


C, S = [198, 51, 100, 2], [203, 0, 113, 80]
pkts = [
    tcp(C, S, 40000, 80, 1000, 0, 0x02),
    tcp(S, C, 80, 40000, 5000, 1001, 0x12),
    tcp(C, S, 40000, 80, 1001, 5001, 0x10),
    tcp(C, S, 40000, 80, 1001, 5001, 0x18, b"GET / HTTP/1.1\r\nUser-Agent: curl/7\r\n\r\n"),
    tcp(S, C, 80, 40000, 5001, 1039, 0x18, b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nhello"),
    tcp(S, C, 80, 40000, 5001, 1039, 0x18, b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nhello"),
    tcp(C, S, 40000, 80, 1039, 5045, 0x10),
    tcp(C, S, 40000, 80, 1039, 5045, 0x11),
    tcp(S, C, 80, 40000, 5045, 1040, 0x11),
    tcp(C, S, 40000, 80, 1040, 5046, 0x10),
]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inline")
os.makedirs(out, exist_ok=True)
for n, scripts in enumerate([[0] * 10, [1] * 10, [3, 3, 3, 3, 3, 1, 2, 3, 4, 5],
                             [0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0], [0x80 | 0x21] * 10,
                             [0, 0, 0, 0x10, 0x06, 0x08, 0, 0, 0, 0]]):
    with open(os.path.join(out, f"seed{n}"), "wb") as f:
        for p, sc in zip(pkts, scripts):
            f.write(struct.pack("!BBBH", 0, sc, 9 + n, len(p)) + p)
