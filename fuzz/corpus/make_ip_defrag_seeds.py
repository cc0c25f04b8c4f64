#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/ip_defrag_fuzz.cpp into fuzz/corpus/ip_defrag/.

Each seed is a sequence of records in the target's format (see the comment at the top of
ip_defrag_fuzz.cpp): control byte, 2-byte offset in 8-byte units, 2-byte length, data. One seed
per path: in order, reverse, overlap, duplicate, IPv6 with extension headers, limits, expiry.
Rerun after changing it:  python3 fuzz/corpus/make_ip_defrag_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ip_defrag")

V6, MF, OPT, VLAN, LATE, DST = 1, 2, 4, 8, 0x40, 0x80


def data(n, seed):
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def frag(ctl, off_bytes, payload, id_sel=0):
    return struct.pack(">BHH", ctl | (id_sel << 4), off_bytes // 8, len(payload)) + payload


def split(ctl, total, size, seed=1, id_sel=0):
    d = data(total, seed)
    out = []
    for off in range(0, total, size):
        chunk = d[off:off + size]
        more = MF if off + size < total else 0
        out.append(frag(ctl | more, off, chunk, id_sel))
    return out


SEEDS = {
    "v4_in_order": b"".join(split(0, 100, 32)),
    "v4_reverse": b"".join(reversed(split(0, 100, 32))),
    "v4_vlan_df": b"".join(split(VLAN | OPT, 64, 16)),
    "v4_overlap_diff": frag(MF, 0, data(48, 1)) + frag(MF, 32, data(48, 9)) + frag(0, 80, data(20, 1)),
    "v4_duplicate": frag(MF, 0, data(32, 1)) * 2 + frag(0, 32, data(8, 1)),
    "v4_interleaved": b"".join(a + b for a, b in zip(split(0, 96, 32, 1, 0), split(0, 96, 32, 2, 1))),
    "v4_too_many": b"".join(split(0, 200, 16)),
    "v4_late": frag(MF, 0, data(32, 1)) + frag(LATE, 32, data(8, 1)),
    "v4_bad_length": frag(MF, 0, data(30, 1)) + frag(MF, 64, b""),
    "v6_in_order": b"".join(split(V6, 100, 32)),
    "v6_ext": b"".join(split(V6 | OPT | DST, 100, 24)),
    "v6_overlap": frag(V6 | MF, 0, data(48, 1)) + frag(V6 | MF, 32, data(48, 1)),
    "v6_atomic": frag(V6, 0, data(40, 3)),
    "raw_frame": b"\xff" + struct.pack(">H", 42) + bytes.fromhex(
        "ffffffffffff0200000000010800" "4500001c000120004011f6c7c0000201c0000202" "0000000000000000"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
