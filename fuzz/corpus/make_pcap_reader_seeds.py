#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/pcap_reader_fuzz.cpp into fuzz/corpus/pcap_reader/.

Tiny capture files, one per feature of the reader and one per kind of damage, built field by
field (pcap-savefile(5), draft-ietf-opsawg-pcapng) so that the fuzzer starts from every
branch. Rerun after changing it:  python3 fuzz/corpus/make_pcap_reader_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pcap_reader")


def frame(n, seed):
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


# ---- classic pcap ------------------------------------------------------------------------

def pcap(records, e="<", nano=False, snaplen=65535, link=1, minor=4):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, minor, 0, 0, snaplen, link)
    for sec, frac, data, wire in records:
        out += struct.pack(e + "IIII", sec, frac, len(data), wire) + data
    return out


RECS = [(1700000000, 1, frame(42, 1), 42), (1700000000, 999999, frame(60, 2), 1514),
        (1700000001, 5, frame(20, 3), 20)]


# ---- pcapng --------------------------------------------------------------------------------

def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def block(e, btype, body):
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def opt(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def opt_end(e):
    return struct.pack(e + "HH", 0, 0)


def shb(e):
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(e, link=1, snaplen=0, tsresol=None, tsoffset=None):
    body = struct.pack(e + "HHI", link, 0, snaplen)
    opts = b""
    if tsresol is not None:
        opts += opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        body += opts + opt_end(e)
    return block(e, 1, body)


def epb(e, iface, ts, data, wire=None, flags=None):
    body = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if wire is None else wire) + pad4(data)
    if flags is not None:
        body += opt(e, 2, struct.pack(e + "I", flags)) + opt_end(e)
    return block(e, 6, body)


def spb(e, wire, data):
    return block(e, 3, struct.pack(e + "I", wire) + data)


def pb(e, iface, ts, data):
    return block(e, 2, struct.pack(e + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF,
                                   len(data), len(data)) + data)


def ng_simple(e="<"):
    return (shb(e) + idb(e, 1, 65535) + epb(e, 0, 1700000000123456, frame(42, 1), flags=1) +
            epb(e, 0, 1700000000123999, frame(33, 2), 1500, flags=2))


def seeds():
    s = {}
    s["pcap-le-us.pcap"] = pcap(RECS)
    s["pcap-be-ns.pcap"] = pcap(RECS, e=">", nano=True)
    s["pcap-fcs-bits-raw.pcap"] = pcap(RECS[:1], link=(4 << 28) | (1 << 26) | 101)
    s["pcap-v22-swapped-lengths.pcap"] = pcap([(1, 2, frame(30, 4), 30)], minor=2)
    s["pcap-snaplen0.pcap"] = pcap(RECS, snaplen=0)
    s["pcap-cut-in-data.pcap"] = pcap(RECS)[:-7]
    s["pcap-cut-in-header.pcap"] = pcap(RECS) + struct.pack("<II", 1, 2)
    s["pcap-caplen-over-snaplen.pcap"] = pcap(RECS, snaplen=50)
    s["ng-le.pcapng"] = ng_simple("<")
    s["ng-be.pcapng"] = ng_simple(">")
    s["ng-sections-mixed.pcapng"] = (
        shb("<") + idb("<", 1, 0, tsresol=9) + epb("<", 0, 1700000000123456789, frame(20, 5)) +
        shb(">") + idb(">", 101, 0, tsresol=0x80 | 20, tsoffset=100) + idb(">", 228, 128) +
        epb(">", 1, 5, frame(21, 6)) + epb(">", 0, (3 << 20) | 1, frame(22, 7)))
    s["ng-spb.pcapng"] = shb("<") + idb("<", 1, 32) + spb("<", 1514, frame(32, 8)) + spb(
        "<", 10, frame(10, 9))
    s["ng-obsolete-pb.pcapng"] = shb(">") + idb(">", 113, 0) + pb(">", 0, 12345, frame(25, 10))
    # name resolution (one IPv4 record), interface statistics, a custom block, secrets
    nrb = opt("<", 1, bytes([192, 0, 2, 1]) + b"example.test\0") + opt_end("<")
    isb = struct.pack("<III", 0, 0, 5) + opt_end("<")
    dsb = struct.pack("<II", 0x544C534B, 4) + b"key\n"
    s["ng-other-blocks.pcapng"] = (shb("<") + block("<", 4, nrb) + idb("<", 1, 0) +
                                   block("<", 5, isb) + block("<", 0x40000BAD, b"\0\0\0\0") +
                                   epb("<", 0, 1, frame(15, 11)) + block("<", 10, dsb))
    bad = bytearray(ng_simple("<"))
    bad[-4:] = struct.pack("<I", 52)
    s["ng-trailing-mismatch.pcapng"] = bytes(bad)
    s["ng-cut-in-block.pcapng"] = ng_simple("<")[:-9]
    short = bytearray(ng_simple("<"))
    second = len(shb("<") + idb("<", 1, 65535) + epb("<", 0, 0, frame(42, 1), flags=1))
    short[second + 4:second + 8] = struct.pack("<I", 7)
    s["ng-block-length-7.pcapng"] = bytes(short)
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
