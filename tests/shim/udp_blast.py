#!/usr/bin/python3
"""A UDP sender and receiver of numbered, self-checking datagrams of varied sizes, for the shim's
fec test (run under `l45 run`).

  udp_blast.py send HOST PORT COUNT         sends COUNT datagrams, paced, sizes 16-1200 bytes
  udp_blast.py recv ADDR PORT COUNT OUT     receives until COUNT or 3 s of silence (at most 60 s),
                                            writes {"intact": n, "corrupt": n, "dups": n,
                                            "out_of_order": n} to OUT (out_of_order: datagrams
                                            that came after one with a higher number)
"""
import hashlib
import json
import socket
import struct
import sys
import time


def payload(seq):
    size = 16 + (seq * 7919) % 1185
    body = hashlib.sha256(struct.pack(">I", seq)).digest()
    data = struct.pack(">I", seq) + body * (size // 32 + 1)
    return data[:size]


def send(host, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for seq in range(count):
        s.sendto(payload(seq), (host, port))
        if seq % 40 == 39:
            time.sleep(0.004)
    s.close()


def recv(addr, port, count, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((addr, port))
    s.settimeout(3.0)
    seen, corrupt, dups, out_of_order, highest = set(), 0, 0, 0, -1
    deadline = time.monotonic() + 60
    while len(seen) < count and time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            if seen:
                break
            continue
        if len(d) < 4:
            corrupt += 1
            continue
        seq = struct.unpack(">I", d[:4])[0]
        if seq >= count or d != payload(seq):
            corrupt += 1
        elif seq in seen:
            dups += 1
        else:
            seen.add(seq)
            if seq < highest:
                out_of_order += 1
            highest = max(highest, seq)
    with open(out, "w") as f:
        json.dump({"intact": len(seen), "corrupt": corrupt, "dups": dups, "out_of_order": out_of_order}, f)


if sys.argv[1] == "send":
    send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    recv(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
