#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/engine_fuzz.cpp into fuzz/corpus/engine/.

Each seed is a config byte and then records in the target's format (see the comment at the top
of engine_fuzz.cpp): kind (link type index or control op), time step, 2-byte length, bytes.
Hand-built seeds cover one engine path each (handshake and close, out of order, overlaps, gaps,
RST in and out of window, reuse, fragments, VLAN, GRE, ICMP errors, UDP, idle expiry, controls);
the rest are the first packets of data/sample.pcap.
Rerun after changing it:  python3 fuzz/corpus/make_engine_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "engine")
SAMPLE = os.path.join(HERE, "..", "..", "data", "sample.pcap")

ETH, RAW = 0, 1  # indexes into kLinks
ADVANCE, STOP, DISABLE_C, DISABLE_S, BATCH, C_LAST, S_FIRST = 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6
LAST, REFUSE, KEY_VLAN, CSUM, DEPTH = 1, 2, 4, 8, 16
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
LONG = 201  # a time step of 14 s: past every timeout the target sets


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(src, dst, proto, payload, ident=0, frag=0):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                    bytes(src), bytes(dst))
    return h[:10] + struct.pack(">H", csum(h)) + h[12:] + payload


def l4sum(src, dst, proto, seg):
    pseudo = bytes(src) + bytes(dst) + struct.pack(">BBH", 0, proto, len(seg))
    return csum(pseudo + seg)


def tcp(src, dst, sp, dp, seq, ack, flags, data=b"", win=65535):
    seg = struct.pack(">HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      win, 0, 0) + data
    c = l4sum(src, dst, 6, seg)
    return ip4(src, dst, 6, seg[:16] + struct.pack(">H", c) + seg[18:])


def udp(src, dst, sp, dp, data):
    seg = struct.pack(">HHHH", sp, dp, 8 + len(data), 0) + data
    c = l4sum(src, dst, 17, seg) or 0xFFFF
    return ip4(src, dst, 17, seg[:6] + struct.pack(">H", c) + seg[8:])


def eth(payload, vlan=None, ethertype=0x0800):
    h = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    if vlan is not None:
        h += struct.pack(">HH", 0x8100, vlan)
    return h + struct.pack(">H", ethertype) + payload


def rec(kind, step, data=b""):
    return struct.pack(">BBH", kind, step, len(data)) + data


C, S = (10, 0, 0, 1), (10, 0, 0, 2)


class Conv:
    """One TCP conversation, client ISN 1000 and server ISN 5000 by default."""

    def __init__(self, cp=40000, sp=80, c=C, s=S):
        self.c, self.s, self.cp, self.sp = c, s, cp, sp

    def cli(self, seq, ack, flags, data=b"", step=1):
        return rec(RAW, step, tcp(self.c, self.s, self.cp, self.sp, seq, ack, flags, data))

    def srv(self, seq, ack, flags, data=b"", step=1):
        return rec(RAW, step, tcp(self.s, self.c, self.sp, self.cp, seq, ack, flags, data))

    def handshake(self, ci=1000, si=5000):
        return (self.cli(ci, 0, SYN) + self.srv(si, ci + 1, SYN | ACK) +
                self.cli(ci + 1, si + 1, ACK))


def seed(name, cfg, *recs):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([cfg]) + b"".join(recs))


def hand_built():
    cv = Conv()
    seed("fin_close", 0, cv.handshake(), cv.cli(1001, 5001, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n"),
         cv.srv(5001, 1019, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\nbody"),
         cv.srv(5025, 1019, FIN | ACK), cv.cli(1019, 5026, FIN | ACK),
         cv.srv(5026, 1020, ACK), rec(ADVANCE, LONG))
    seed("out_of_order", 0, cv.handshake(), cv.cli(1011, 5001, PSH | ACK, b"klmno"),
         cv.cli(1006, 5001, PSH | ACK, b"fghij"), cv.cli(1001, 5001, PSH | ACK, b"abcde"))
    for name, cfg in (("overlap_first", 0), ("overlap_last", LAST)):
        seed(name, cfg, cv.handshake(), cv.cli(1005, 5001, PSH | ACK, b"GOOD"),
             cv.cli(1005, 5001, PSH | ACK, b"EVIL"), cv.cli(1001, 5001, PSH | ACK, b"abcd"),
             cv.cli(1003, 5001, PSH | ACK, b"XXXXXX"))
    seed("gap_acked", 0, cv.handshake(), cv.cli(1001, 5001, PSH | ACK, b"aaaa"),
         cv.cli(1009, 5001, PSH | ACK, b"cccc"), cv.srv(5001, 1013, ACK),
         cv.cli(1013, 5001, PSH | ACK, b"dddd"))
    seed("rst_windows", 0, cv.handshake(), cv.srv(105001, 0, RST),
         cv.cli(1001, 5001, PSH | ACK, b"after"), cv.srv(5001, 1006, RST | ACK),
         cv.cli(1006, 5001, FIN | ACK))
    seed("reuse", 0, cv.handshake(), cv.cli(1001, 5001, FIN | ACK), cv.srv(5001, 1002, FIN | ACK),
         cv.cli(1002, 5002, ACK), cv.handshake(90000, 123456),
         cv.cli(90001, 123457, PSH | ACK, b"second"))
    seed("syn_new_isn", 0, cv.cli(1000, 0, SYN), cv.cli(70000, 0, SYN, step=199),
         cv.srv(5000, 70001, SYN | ACK), cv.cli(70001, 5001, PSH | ACK, b"hello"))
    seed("wrap", DEPTH, cv.handshake(0xFFFFFFF0, 0xFFFFFFFF),
         cv.cli(5, 0, PSH | ACK, b"UVWXY"), cv.cli(0xFFFFFFF1, 0, PSH | ACK, b"A" * 10),
         cv.cli(0xFFFFFFFB, 0, PSH | ACK, b"K" * 10), cv.cli(10, 0, FIN | ACK))
    seed("midstream_flip", 0, cv.srv(777777, 1234, PSH | ACK, b"first"),
         Conv(cp=40001).srv(5000, 1001, SYN | ACK), cv.cli(1234, 777782, PSH | ACK, b"reply"))
    seed("controls", 0, cv.handshake(), rec(DISABLE_S, 1), cv.srv(5001, 1001, PSH | ACK, b"x" * 50),
         cv.cli(1001, 5051, PSH | ACK, b"y" * 50), rec(STOP, 1),
         cv.cli(1051, 5051, PSH | ACK, b"z"))
    seed("stop_then_reuse", 0, cv.handshake(), rec(STOP, 1), cv.cli(1001, 5001, FIN | ACK),
         cv.srv(5001, 1002, FIN | ACK), cv.handshake(90000, 123456),
         cv.cli(90001, 123457, PSH | ACK, b"new"))
    # Budget and caps: many connections each with out-of-order data, then a SYN flood.
    many = []
    for k in range(24):
        c = Conv(cp=41000 + k)
        many += [c.handshake(), c.cli(1101, 5001, PSH | ACK, bytes([k]) * 300)]
    many += [Conv(cp=50000 + k, c=(10, 1, k >> 8, k & 255)).cli(7, 0, SYN) for k in range(80)]
    seed("budget_and_flood", 0, *many)
    seed("flood_refuse", REFUSE,
         *[Conv(cp=50000 + k).cli(7, 0, SYN) for k in range(70)], rec(ADVANCE, LONG),
         Conv(cp=1).cli(7, 0, SYN))
    # IPv4 fragments of one TCP segment, out of order, in a VLAN tag.
    seg = tcp(C, S, 40000, 80, 1001, 5001, PSH | ACK, bytes(range(48)))[20:]
    frags = [(24, 44, 0), (0, 24, 0x2000), (0, 24, 0x2000)]  # last, first, duplicate first
    recs = [rec(ETH, 1, eth(tcp(C, S, 40000, 80, 1000, 0, SYN), vlan=7))]
    for off, end, mf in frags:
        recs.append(rec(ETH, 1, eth(ip4(C, S, 6, seg[off:end], ident=99, frag=mf | off // 8),
                                    vlan=7)))
    seed("v4_fragments_vlan", KEY_VLAN, *recs)
    # GRE: the inner TCP SYN in GRE over 192.0.2.1 > 192.0.2.2.
    inner = tcp(C, S, 40000, 80, 1000, 0, SYN)
    gre = ip4((192, 0, 2, 1), (192, 0, 2, 2), 47, b"\0\0\x08\0" + inner)
    seed("gre", 0, rec(ETH, 1, eth(gre)), rec(RAW, 1, tcp(S, C, 80, 40000, 5000, 1001, SYN | ACK)))
    # UDP flow, then an ICMP port unreachable quoting it, one quoting nothing, idle expiry.
    q = udp(C, S, 5353, 53, b"query")
    unreach = lambda quoted: ip4(S, C, 1, struct.pack(">BBHI", 3, 3, 0, 0) + quoted)
    seed("udp_icmp_error", CSUM, rec(RAW, 1, q), rec(RAW, 1, unreach(q)),
         rec(RAW, 1, unreach(udp(C, S, 1, 2, b"none"))), rec(RAW, 150, udp(S, C, 53, 5353, b"a")),
         rec(ADVANCE, LONG), rec(RAW, 1, q))


def sample_seeds():
    with open(SAMPLE, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nsec = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(endian + "I", data[20:24])[0]
    kind = {1: ETH, 101: RAW}[link]
    pkts, off, prev = [], 24, None
    while off + 16 <= len(data) and len(pkts) < 150:
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        t = sec + frac / (1e9 if nsec else 1e6)
        step = 0 if prev is None else max(0, min(199, int((t - prev) * 1000)))
        prev = t
        pkts.append(rec(kind, step, data[off + 16:off + 16 + min(incl, 0xFFFF)]))
        off += 16 + incl
    for n, cfg in ((20, 0), (60, LAST | DEPTH), (150, REFUSE)):
        body = b""
        for r in pkts[:n]:
            if len(body) + len(r) > 64 * 1024:  # whole records only, seeds stay small
                break
            body += r
        seed("sample_first_%d" % n, cfg, body)
    # The same packets through process(span), in batches of up to 5, with the first flow's
    # overlap policy changed per side after its handshake.
    body = rec(BATCH, 0) + b"".join(pkts[:3]) + rec(C_LAST, 0) + rec(S_FIRST, 0) + rec(BATCH, 0)
    for r in pkts[3:60]:
        if len(body) + len(r) > 64 * 1024:
            break
        body += r
    seed("sample_batched_60", 0, body)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    hand_built()
    sample_seeds()
