#!/usr/bin/env python3
"""Writes the seed corpus for fuzz/fec_fuzz.cpp (format in that file's header)."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fec")
TICK = 255


def header(kind, k, m, index, group):
    return b"LF\x01" + bytes([kind, k, m, index, 0]) + struct.pack(">I", group)


def dgram(body, step=0):
    return bytes([len(body), step]) + body


def seed(name, data):
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def trip(k, m, bodies):
    """A round trip: k (1-16), m (1-4); the bodies also give the losses' bits."""
    return bytes([1, (k - 1) | (m - 1) << 4]) + b"".join(bytes([len(b)]) + b for b in bodies)


seed("trip_k10_m3", trip(10, 3, [b"datagram %d " % i * (i % 5 + 1) for i in range(35)]))
seed("trip_k1_m4", trip(1, 4, [b"\xff" * 9, b"", b"x", b"\x00" * 40, b"\xaa\x55" * 20]))
seed("trip_k16_m1", trip(16, 1, [bytes([i]) * i for i in range(40)]))
# Hostile: groups with data, parity of the wrong size, a gap given up by tick(), no header.
seed("hostile_groups", b"\x00" + b"".join([
    dgram(header(0, 2, 1, 0, 7) + b"first"),
    dgram(header(1, 2, 1, 2, 7) + b"\x00\x05parity", 1),
    dgram(header(0, 3, 2, 1, 8) + b"behind a gap", 2),
    bytes([0, TICK]),
    dgram(header(0, 3, 2, 0, 8) + b"late", 30),
    dgram(b"no header at all"),
    dgram(header(1, 200, 100, 250, 9) + b"\x01" * 20),
    dgram(header(0, 1, 1, 0, 0xFFFFFFFF) + b"wrap"),
    dgram(header(0, 1, 1, 0, 3) + b"old group"),
]))
seed("hostile_window", b"\x00" + b"".join(
    dgram(header(i % 2, 1, 1, i % 2, i // 2 * 5) + bytes([i]) * 3, i % 3) for i in range(60)))
