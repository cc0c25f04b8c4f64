#!/usr/bin/python3
"""Parses packets that l45 built and prints, as JSON, what scapy sees in them.

    /usr/bin/python3 tests/scapy/check_built.py DIR

DIR holds one file per packet: NAME.eth (an Ethernet frame) or NAME.ip (a raw IPv4/IPv6
datagram). The output maps NAME to:

    {"layers": [{"name": "IP", "fields": {...}}, ...],  # every layer, fields as scapy decodes
     "recomputed": [{"name": "IP", "fields": {"chksum": 1234, "len": 60}}, ...],
     "summary": "..."}

"recomputed" holds, for each layer up to the first quoted (ICMP error) packet, the length and
checksum fields scapy computes itself when they are deleted and the packet is rebuilt: equal to
the stored ones exactly when l45 filled them in as scapy (and the RFCs) would. Quoted packets
inside ICMP errors are left as they were sent.

Exit status 2 when scapy cannot be imported (the gtest skips on it).
"""

import json
import logging
import os
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
try:
    from scapy.all import Ether, IP, IPv6, Packet
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


def main():
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
