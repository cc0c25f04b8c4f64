#!/usr/bin/python3
"""Parses packets that l45 built and prints, as JSON, what scapy sees in them; and, the other
way round, crafts edits for l45 to reproduce.

    /usr/bin/python3 tests/scapy/check_built.py DIR
    /usr/bin/python3 tests/scapy/check_built.py --edits

DIR holds one file per packet: NAME.eth (an Ethernet frame) or NAME.ip (a raw IPv4/IPv6
datagram). The output maps NAME to:

    {"layers": [{"name": "IP", "fields": {...}}, ...],  # every layer, fields as scapy decodes
     "recomputed": [{"name": "IP", "fields": {"chksum": 1234, "len": 60}}, ...],
     "summary": "..."}

"recomputed" holds, for each layer up to the first quoted (ICMP error) packet, the length and
checksum fields scapy computes itself when they are deleted and the packet is rebuilt: equal to
the stored ones exactly when l45 filled them in as scapy (and the RFCs) would. Quoted packets
inside ICMP errors are left as they were sent.

--edits prints a JSON list of {"name", "link" ("eth" or "ip"), "op", "args", "in", "want"}:
"in" is a packet scapy crafted (hex), "want" is what scapy makes of it after the edit "op" with
"args" (it rewrites the field, or the payload, and deletes the lengths and checksums so that it
computes them again). src/packet/builder_test.cpp applies the same op with l45 to "in" and
expects exactly "want", byte for byte.

Exit status 2 when scapy cannot be imported (the gtest skips on it).
"""

import json
import logging
import os
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
try:
    from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, IPOption_LSRR, Packet, Raw
    from scapy.layers.inet6 import IPv6ExtHdrRouting
    from scapy.packet import NoPayload
    from scapy.fields import FlagValue
except ImportError as e:  # pragma: no cover
    print(f"scapy not importable: {e}", file=sys.stderr)
    sys.exit(2)

# Fields scapy fills in when they are None: lengths, header lengths, checksums.
COMPUTED = ("chksum", "cksum", "len", "plen", "ihl", "dataofs")


def jsonable(v):
    if isinstance(v, FlagValue):
        return int(v)
    if isinstance(v, Packet):
        return {"name": type(v).__name__, "bytes": bytes(v).hex()}
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def is_quote(layer):
    # IPerror, TCPerror, UDPerror, ICMPerror, IPerror6, ...: the packet inside an ICMP error.
    return type(layer).__name__.endswith("error") or type(layer).__name__.endswith("error6")


def layers_of(pkt):
    out = []
    layer = pkt
    while not isinstance(layer, NoPayload):
        out.append(layer)
        layer = layer.payload
    return out


def describe(pkt):
    layers = []
    for layer in layers_of(pkt):
        fields = {f.name: jsonable(layer.getfieldval(f.name)) for f in layer.fields_desc}
        layers.append({"name": type(layer).__name__, "fields": fields})
    return layers


def recompute(pkt):
    ref = pkt.copy()
    for layer in layers_of(ref):
        if is_quote(layer):
            break
        for name in COMPUTED:
            if name in layer.fields:
                setattr(layer, name, None)
    rebuilt = type(pkt)(bytes(ref))
    out = []
    for layer in layers_of(rebuilt):
        if is_quote(layer):
            break
        fields = {n: jsonable(layer.getfieldval(n)) for n in COMPUTED if n in layer.fields}
        out.append({"name": type(layer).__name__, "fields": fields})
    return out


def parse(path):
    data = open(path, "rb").read()
    if path.endswith(".eth"):
        return Ether(data)
    return IP(data) if data and data[0] >> 4 == 4 else IPv6(data)


def redo(pkt, *layers):
    """Deletes the lengths and checksums of `layers` so that scapy computes them again."""
    for cls in layers:
        for name in COMPUTED:
            if cls in pkt and name in pkt[cls].fields and name not in ("ihl", "dataofs"):
                setattr(pkt[cls], name, None)
    return type(pkt)(bytes(pkt))


def edits():
    M1, M2 = "00:00:5e:00:53:01", "00:00:5e:00:53:02"
    tcp4 = Ether(src=M1, dst=M2) / Dot1Q(vlan=7) / \
        IP(src="192.0.2.1", dst="198.51.100.2", id=9) / \
        TCP(sport=40000, dport=443, seq=1000, ack=2000, flags="PA",
            options=[("NOP", None), ("NOP", None), ("Timestamp", (5, 6))]) / Raw(b"abcde")
    tcp4 = Ether(bytes(tcp4))
    udp6 = IPv6(src="2001:db8::1", dst="2001:db8::2", fl=7) / UDP(sport=5000, dport=6000) / \
        Raw(b"odd")
    udp6 = IPv6(bytes(udp6))
    routed = IP(src="192.0.2.1", dst="203.0.113.1",
                options=[IPOption_LSRR(routers=["198.51.100.99"])]) / UDP(sport=1, dport=2) / \
        Raw(b"r")
    routed = IP(bytes(routed))
    rh6 = IPv6(src="2001:db8::1", dst="2001:db8:1::1") / \
        IPv6ExtHdrRouting(addresses=["2001:db8:9::9"], segleft=1) / TCP(sport=1, dport=2) / b"x"
    rh6 = IPv6(bytes(rh6))
    out = []

    def add(name, pkt, op, args, want):
        out.append({"name": name, "link": "eth" if isinstance(pkt, Ether) else "ip", "op": op,
                    "args": args, "in": bytes(pkt).hex(), "want": bytes(want).hex()})

    def field_edit(name, pkt, op, args, layer, field, value, *recompute):
        want = pkt.copy()
        setattr(want[layer], field, value)
        add(name, pkt, op, args, redo(want, *recompute))

    field_edit("tcp4 src", tcp4, "set_ip_src", ["10.1.2.3"], IP, "src", "10.1.2.3", IP, TCP)
    field_edit("tcp4 dst", tcp4, "set_ip_dst", ["172.16.0.9"], IP, "dst", "172.16.0.9", IP, TCP)
    field_edit("tcp4 ttl", tcp4, "set_ttl", [1], IP, "ttl", 1, IP)
    field_edit("tcp4 sport", tcp4, "set_src_port", [61000], TCP, "sport", 61000, TCP)
    field_edit("tcp4 dport", tcp4, "set_dst_port", [8443], TCP, "dport", 8443, TCP)
    field_edit("tcp4 seq", tcp4, "set_tcp_seq", [0xfffffff0], TCP, "seq", 0xfffffff0, TCP)
    field_edit("tcp4 ack", tcp4, "set_tcp_ack", [77], TCP, "ack", 77, TCP)
    field_edit("tcp4 window", tcp4, "set_tcp_window", [0], TCP, "window", 0, TCP)
    field_edit("tcp4 flags", tcp4, "set_tcp_flags", [0x11], TCP, "flags", "FA", TCP)
    field_edit("udp6 src", udp6, "set_ip_src", ["2001:db8:ffff::5"], IPv6, "src",
               "2001:db8:ffff::5", UDP)
    field_edit("udp6 dst", udp6, "set_ip_dst", ["64:ff9b::c000:201"], IPv6, "dst",
               "64:ff9b::c000:201", UDP)
    field_edit("udp6 hop limit", udp6, "set_ttl", [9], IPv6, "hlim", 9)
    field_edit("udp6 dport", udp6, "set_dst_port", [8053], UDP, "dport", 8053, UDP)
    # RFC 791 3.1: the next hop in the header is not in the pseudo-header of a source route.
    field_edit("lsrr next hop", routed, "set_ip_dst", ["203.0.113.77"], IP, "dst", "203.0.113.77",
               IP, UDP)
    field_edit("ipv6 routing header src", rh6, "set_ip_src", ["2001:db8:7::7"], IPv6, "src",
               "2001:db8:7::7", TCP)

    for name, pkt, data in (("tcp4 payload", tcp4, b"hello, world"),
                            ("tcp4 empty payload", tcp4, b""),
                            ("udp6 payload", udp6, b"x" * 301)):
        want = pkt.copy()
        want[Raw].load = data
        if not data:
            want[Raw].underlayer.remove_payload()
        add(name, pkt, "with_payload", [data.hex()], redo(want, IP, IPv6, TCP, UDP))

    bad = tcp4.copy()
    bad[IP].chksum = 0x1234
    bad[TCP].chksum = 0x4321
    add("bad checksums", Ether(bytes(bad)), "fix_checksums", [], redo(bad, IP, TCP))
    lens = IP(src="192.0.2.1", dst="198.51.100.2", len=1000) / UDP(sport=1, dport=2, len=3) / \
        Raw(b"lengths")
    add("bad lengths", IP(bytes(lens)), "fix_lengths_and_checksums", [], redo(lens, IP, UDP))
    nosum = IP(src="192.0.2.1", dst="198.51.100.2", len=99) / UDP(sport=1, dport=2, chksum=0) / \
        Raw(b"z")
    want = nosum.copy()
    want[IP].len = None
    want[IP].chksum = None
    want[UDP].len = None
    add("zero udp checksum kept", IP(bytes(nosum)), "fix_lengths_and_checksums", [],
        IP(bytes(want)))

    # The reply l45 makes: addresses and ports swapped, seq = ack, ack = seq + payload length,
    # TTL 64, IP id 0, no IP flags, window 65535 (l45's defaults).
    t = tcp4
    reply = Ether(src=M2, dst=M1) / Dot1Q(vlan=7) / \
        IP(src=t[IP].dst, dst=t[IP].src, ttl=64, id=0) / \
        TCP(sport=t[TCP].dport, dport=t[TCP].sport, seq=t[TCP].ack, ack=t[TCP].seq + 5,
            flags="FA", window=65535) / Raw(b"bye")
    add("tcp reply", tcp4, "make_reply", [0x11, b"bye".hex()], Ether(bytes(reply)))
    icmp = IP(src=t[IP].dst, dst=t[IP].src, ttl=64, id=0) / ICMP(type=3, code=3) / \
        bytes(t[IP])
    add("port unreachable", IP(bytes(t[IP])), "make_icmp_error", [3, 3], IP(bytes(icmp)))
    return out


def main():
    if sys.argv[1:] == ["--edits"]:
        json.dump(edits(), sys.stdout, indent=1)
        print()
        return 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    d = sys.argv[1]
    result = {}
    for name in sorted(os.listdir(d)):
        stem, ext = os.path.splitext(name)
        if ext not in (".eth", ".ip"):
            continue
        pkt = parse(os.path.join(d, name))
        result[stem] = {"layers": describe(pkt), "recomputed": recompute(pkt),
                        "summary": pkt.summary()}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
