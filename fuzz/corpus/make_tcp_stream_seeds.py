#!/usr/bin/env python3
"""Writes the seed corpus for fuzz/tcp_stream_fuzz.cpp (format in that file's header)."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_stream")
SYN, FIN, SKIP, FLUSH = 1, 2, 4, 8


def rec(rel, op, payload=b""):
    return struct.pack(">hBB", rel, op, len(payload)) + payload


def seed(name, cfg, isn, *recs):
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([cfg]) + struct.pack(">I", isn) + b"".join(recs))


seed("in_order", 0, 1000, rec(0, SYN), rec(1, 0, b"hello "), rec(7, FIN, b"world"))
seed("reverse", 0, 0, rec(0, SYN), rec(7, 0, b"ghi"), rec(4, 0, b"def"), rec(1, 0, b"abc"))
seed("overlap_last", 1, 0, rec(0, SYN), rec(3, 0, b"GOOD"), rec(3, 0, b"EVIL"), rec(1, 0, b"ab"))
seed("rexmit_mismatch", 6, 0, rec(0, SYN), rec(1, 0, b"GET /index"), rec(5, 0, b"/EVIL"))
seed("wrap", 2, 0xFFFFFFFA, rec(0, SYN), rec(9, 0, b"6789"), rec(1, 0, b"012345"),
     rec(7, 0, b"XY"))
seed("gap_skip", 0, 0, rec(0, SYN), rec(1, 0, b"ab"), rec(6, 0, b"fg"), rec(9, SKIP),
     rec(12, FLUSH, b"lm"))
seed("depth", 8, 5, rec(0, SYN), rec(1, 0, b"x" * 200), rec(201, 0, b"y" * 200))
seed("keepalive", 4, 0, rec(0, SYN), rec(1, 0, b"abc"), rec(3, 0, b"\0"), rec(4, 0, b"d"))
seed("before_isn", 0, 100, rec(-20, 0, b"z" * 30), rec(10, FIN, b"q"))
seed("many_holes", 0, 7, rec(0, SYN), *[rec(10 + 2 * i, 0, b"h") for i in range(40)],
     rec(1, 0, b"x" * 100))
