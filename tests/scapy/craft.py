#!/usr/bin/python3
"""Crafts packets with scapy and writes what scapy says about them, for l45's decoder tests.

    /usr/bin/python3 tests/scapy/craft.py OUT_DIR            # NAME.bin + NAME.json per case
    /usr/bin/python3 tests/scapy/craft.py --corpus DIR       # libFuzzer seeds for packet_decode

Each case is built with scapy, serialised, then dissected again by scapy from the bytes; the
JSON holds the fields of that dissection (addresses, ports, options, lengths, the layer list in
l45's names) and scapy's own verdict on every checksum (scapy recomputes each one and compares).
src/packet/scapy_test.cpp decodes NAME.bin with PacketView and compares field by field.

JSON keys (all optional but name/link): link (pcap LINKTYPE_*), wire_len, error (l45 drop
reason name, "none" by default), layers, eth, vlan_ids, mpls_labels, ip (innermost), ip_layers,
frag, tcp, udp, icmp, icmpv6, arp, gre, vxlan, payload_len, payload_hex, checksum.

A fuzz seed is one byte selecting the link type (index into LINKS below, the order
fuzz/packet_decode_fuzz.cpp uses) followed by the packet.
"""

import json
import os
import struct
import sys
import warnings

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    ARP, GRE, ICMP, IP, TCP, UDP, Dot1Q, Ether, GRE_PPTP, IPOption_LSRR, IPOption_NOP,
    IPOption_Router_Alert, IPOption_RR, Padding, Raw, conf, fragment, load_contrib, raw)
from scapy.layers.inet import IPerror, TCPerror, UDPerror, ICMPerror  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6, IPerror6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting, ICMPv6EchoRequest, ICMPv6EchoReply,
    ICMPv6PacketTooBig, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, ICMPv6DestUnreach, PadN,
    RouterAlert, fragment6)
from scapy.layers.ipsec import AH, ESP  # noqa: E402
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Loopback  # noqa: E402
from scapy.layers.ppp import HDLC, PPP, PPPoE  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402

load_contrib("mpls")
from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.all import bind_layers  # noqa: E402

# scapy leaves AH's payload raw; let it dissect what l45 follows.
bind_layers(AH, TCP, nh=6)
bind_layers(AH, UDP, nh=17)

conf.verb = 0

# pcap LINKTYPE_* values; the order is the fuzzer's link selector.
LINKS = [1, 101, 113, 276, 0, 108, 228, 229]
ETHERNET, RAW, SLL, SLL2, NULL, LOOP, IPV4, IPV6 = LINKS

M1, M2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
A1, A2 = "192.0.2.1", "198.51.100.2"
S1, S2 = "2001:db8::1", "2001:db8:0:1::2"


def eth(**kw):
    return Ether(src=M1, dst=M2, **kw)


def ip(**kw):
    kw.setdefault("src", A1)
    kw.setdefault("dst", A2)
    return IP(**kw)


def ip6(**kw):
    kw.setdefault("src", S1)
    kw.setdefault("dst", S2)
    return IPv6(**kw)


def pad60(data):
    return data + b"\x00" * max(0, 60 - len(data))


# --- what scapy says -------------------------------------------------------------------------

ICMPV6_TYPES = (
    "ICMPv6", "_ICMPv6", "ICMPv6EchoRequest", "ICMPv6EchoReply", "ICMPv6PacketTooBig",
    "ICMPv6DestUnreach", "ICMPv6TimeExceeded", "ICMPv6ParamProblem", "ICMPv6ND_NS",
    "ICMPv6ND_NA", "ICMPv6ND_RS", "ICMPv6ND_RA", "ICMPv6Unknown")
STOP = (Raw, Padding, IPerror, TCPerror, UDPerror, ICMPerror, IPerror6)
EXT = {
    IPv6ExtHdrHopByHop: "ipv6.hopopts",
    IPv6ExtHdrDestOpt: "ipv6.dstopts",
    IPv6ExtHdrRouting: "ipv6.routing",
    IPv6ExtHdrSegmentRouting: "ipv6.routing",
    IPv6ExtHdrFragment: "ipv6.fraghdr",
    AH: "ah",
}


def is_icmpv6(layer):
    return type(layer).__name__ in ICMPV6_TYPES


def walk(pkt, total):
    """(name, layer, offset) for each header scapy dissected, in l45's layer names."""
    out = []
    prev = None
    layer = pkt
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if isinstance(layer, STOP):
            break
        off = total - len(raw(layer))
        t = type(layer)
        name = None
        if t is Ether:
            name = "eth"
        elif t is CookedLinux:
            name = "sll"
        elif t is CookedLinuxV2:
            name = "sll2"
        elif t is Loopback:
            name = "null"
        elif t is Dot1AD:
            name = "ieee8021ad"
        elif t is Dot1Q:
            name = "vlan"
        elif t is MPLS:
            name = "mpls"
        elif t is PPPoE:
            name = "pppoes"
        elif t is HDLC:
            name = None  # folded into l45's "ppp" layer
        elif t is PPP:
            name = None if isinstance(prev, PPPoE) else "ppp"
        elif t is ARP:
            name = "arp"
        elif t is IP:
            name = "ip"
        elif t is IPv6:
            name = "ipv6"
        elif t in EXT:
            name = EXT[t]
        elif t is ESP:
            name = "esp"
        elif t is TCP:
            name = "tcp"
        elif t is UDP:
            name = "udp"
        elif t is ICMP:
            name = "icmp"
        elif is_icmpv6(layer):
            name = "icmpv6"
        elif t in (GRE, GRE_PPTP):
            name = "gre"
        elif t is VXLAN:
            name = "vxlan"
        else:
            raise SystemExit(f"craft.py: no l45 name for scapy layer {t.__name__}")
        if t is PPP and isinstance(prev, HDLC):
            off -= 2
        if name:
            out.append((name, layer, off))
        prev = layer
        if name in ("icmp", "icmpv6", "esp", "arp", "tcp"):
            break  # l45 does not decode the quoted packet, NDP options or ciphertext
        if name == "udp" and not isinstance(layer.payload, VXLAN):
            break  # DNS, NTP, ...: application layers are not the decoder's
        layer = layer.payload
    return out


def strip_ah(ip_bytes, ip_cls):
    """The datagram without an AH that follows the IP header: scapy computes transport
    checksums only right under IP or an IPv6 extension header, and AH is in neither."""
    pkt = ip_cls(ip_bytes)
    if not isinstance(pkt.payload, AH):
        return ip_bytes
    ah = pkt.payload
    hl = 20 if ip_cls is IP else 40
    if ip_cls is IP:
        hl = pkt.ihl * 4
    ah_len = (ah.payloadlen + 2) * 4
    out = bytearray(ip_bytes[:hl] + ip_bytes[hl + ah_len:])
    if ip_cls is IP:
        out[9] = ah.nh
        struct.pack_into("!H", out, 2, len(out))
    else:
        out[6] = ah.nh
        struct.pack_into("!H", out, 4, len(out) - 40)
    return bytes(out)


def l4_checksum_ok(ip_bytes, ip_cls, l4_cls_test):
    """Scapy's verdict: recompute the transport checksum of a datagram and compare."""
    pkt = ip_cls(strip_ah(ip_bytes, ip_cls))
    l4 = next((lay for lay in pkt.iterpayloads() if l4_cls_test(lay)), None)
    if l4 is None:
        return None
    field = "cksum" if is_icmpv6(l4) else "chksum"
    sent = getattr(l4, field)
    delattr(l4, field)
    rebuilt = ip_cls(raw(pkt))
    l4b = next(lay for lay in rebuilt.iterpayloads() if l4_cls_test(lay))
    return getattr(l4b, field) == sent


def ipv4_header_ok(layer):
    h = IP(raw(layer))
    sent = h.chksum
    del h.chksum
    return IP(raw(h)).chksum == sent


def expect(name, link, data, wire_len=None, error="none", csum=True, overrides=None):
    """The JSON for one case: dissect `data` as scapy would for `link`."""
    total = len(data)
    full = data
    cls = {ETHERNET: Ether, SLL: CookedLinux, SLL2: CookedLinuxV2, NULL: Loopback,
           RAW: None, IPV4: IP, IPV6: IPv6, LOOP: None}[link]
    # scapy's Loopback knows only some address families and none is network-order: dissect
    # what follows the 4 bytes by its version nibble instead.
    if link in (RAW, LOOP, NULL):
        body = data if link == RAW else data[4:]
        inner = IP if body[0] >> 4 == 4 else IPv6
        pkt = inner(body)
    else:
        pkt = cls(data)
    layers = walk(pkt, len(data) - (0 if link == RAW else 4 if link in (LOOP, NULL) else 0))
    if link in (LOOP, NULL):
        layers = [("null", None, 0)] + [(n, lay, o + 4) for n, lay, o in layers]

    e = {"name": name, "link": link, "error": error, "layers": [n for n, _, _ in layers]}
    if wire_len is not None:
        e["wire_len"] = wire_len
    e["vlan_ids"] = [lay.vlan for n, lay, _ in layers if n in ("vlan", "ieee8021ad")]
    e["mpls_labels"] = [lay.label for n, lay, _ in layers if n == "mpls"]

    if layers and layers[0][0] == "eth":
        eh = layers[0][1]
        e["eth"] = {"src": eh.src, "dst": eh.dst, "type": eh.type}

    ips = [(n, lay, o) for n, lay, o in layers if n in ("ip", "ipv6")]
    e["ip_layers"] = [{"version": 4 if n == "ip" else 6, "src": lay.src, "dst": lay.dst}
                      for n, lay, _ in ips]
    inner_ip = ips[-1] if ips else None
    after = layers[layers.index(inner_ip) + 1:] if inner_ip else []
    exts = []
    for n, lay, o in after:
        if n in EXT.values():
            exts.append((n, lay, o))
        else:
            break
    upper = after[len(exts)] if len(after) > len(exts) else None

    ip_end = None
    if inner_ip:
        n, lay, o = inner_ip
        v4 = n == "ip"
        total_len = lay.len if v4 else 40 + lay.plen
        ip_end = o + total_len
        proto = lay.proto if v4 else lay.nh
        if exts:
            proto = exts[-1][1].nh
        frag = {"is_fragment": False, "mf": False, "offset": 0, "id": 0}
        if v4 and (lay.flags.MF or lay.frag):
            frag = {"is_fragment": True, "mf": bool(lay.flags.MF), "offset": lay.frag * 8,
                    "id": lay.id}
        for en, el, _ in exts:
            if en == "ipv6.fraghdr":
                frag = {"is_fragment": True, "mf": bool(el.m), "offset": el.offset * 8,
                        "id": el.id}
        # Where the upper layer starts: after the IP header and its extension headers.
        if exts:
            last = exts[-1][1]
            up_off = exts[-1][2] + len(raw(last)) - len(raw(last.payload))
        else:
            up_off = o + (lay.ihl * 4 if v4 else 40)
        e["ip"] = {"version": 4 if v4 else 6, "src": lay.src, "dst": lay.dst,
                   "ttl": lay.ttl if v4 else lay.hlim, "total_len": total_len,
                   "id": lay.id if v4 else (frag["id"] if frag["is_fragment"] else 0),
                   "proto": proto, "header_len": up_off - o}
        e["frag"] = frag
        # Payload by the headers, as l45 (and tcpdump) count it.
        pay_off, pay_end = up_off, ip_end
        if upper and upper[0] == "tcp":
            pay_off = up_off + upper[1].dataofs * 4
        elif upper and upper[0] == "udp" and not (frag["mf"] or frag["offset"]):
            pay_off, pay_end = up_off + 8, up_off + upper[1].len
        elif upper and upper[0] == "udp":
            pay_off = up_off + 8
        e["payload_len"] = pay_end - pay_off
        e["payload_hex"] = full[pay_off:min(pay_end, len(full))].hex()

    for n, lay, o in after[len(exts):]:
        if n == "tcp" and "tcp" not in e:
            e["tcp"] = tcp_fields(lay)
        elif n == "udp" and "udp" not in e and n == (upper[0] if upper else None):
            e["udp"] = {"sport": lay.sport, "dport": lay.dport, "len": lay.len}
        elif n == "icmp":
            body = raw(lay)  # scapy shows id/seq only for the types that have them
            e["icmp"] = {"type": lay.type, "code": lay.code,
                         "id": struct.unpack("!H", body[4:6])[0],
                         "seq": struct.unpack("!H", body[6:8])[0]}
        elif n == "icmpv6":
            body = raw(lay)
            e["icmpv6"] = {"type": lay.type, "code": lay.code,
                           "id": struct.unpack("!H", body[4:6])[0],
                           "seq": struct.unpack("!H", body[6:8])[0]}
    for n, lay, o in layers:
        if n == "arp":
            e["arp"] = {"op": lay.op, "hwsrc": lay.hwsrc, "psrc": lay.psrc, "hwdst": lay.hwdst,
                        "pdst": lay.pdst}
        if n == "gre" and "gre" not in e:
            g = {"proto": lay.proto, "version": lay.version}
            if lay.key_present:
                g["key"] = lay.key if isinstance(lay, GRE) and not isinstance(lay, GRE_PPTP) \
                    else (lay.payload_len << 16) | lay.call_id
            if lay.seqnum_present:
                g["seq"] = lay.seqence_number if hasattr(lay, "seqence_number") \
                    else lay.sequence_number
            e["gre"] = g
        if n == "vxlan" and "vxlan" not in e:
            e["vxlan"] = {"vni": lay.vni}

    if csum:
        e["checksum"] = checksums(layers, inner_ip, exts, upper, full, ip_end)
    if overrides:
        e.update(overrides)
    return e


def tcp_fields(t):
    f = {"sport": t.sport, "dport": t.dport, "seq": t.seq, "ack": t.ack, "flags": int(t.flags),
         "window": t.window, "doff": t.dataofs, "sack": [], "other": []}
    for opt in t.options:
        kind, val = opt
        if kind == "MSS":
            f["mss"] = val
        elif kind == "WScale":
            f["wscale"] = val
        elif kind == "SAckOK":
            f["sack_perm"] = True
        elif kind == "Timestamp":
            f["ts"] = list(val)
        elif kind == "SAck":
            f["sack"] = [[val[i], val[i + 1]] for i in range(0, len(val), 2)]
        elif kind in ("NOP", "EOL"):
            pass
        else:
            # scapy names some kinds (MD5, AO, TFO, ...); l45 keeps any other kind raw.
            code = kind if isinstance(kind, int) else {
                "AltChkSum": 14, "AltChkSumOpt": 15, "MD5": 19, "Mood": 25, "UTO": 28, "AO": 29,
                "TFO": 34}[kind]
            f["other"].append([code, len(val) + 2 if isinstance(val, bytes) else None])
    return f


def checksums(layers, inner_ip, exts, upper, full, ip_end):
    """Scapy's verdicts, summarised by l45's rules (decode.hpp checksum_status())."""
    v4 = [lay for n, lay, _ in layers if n == "ip"]
    ip_st = "unverified"
    if v4:
        ip_st = "ok" if all(ipv4_header_ok(lay) for lay in v4) else "bad"
    l4_st, expected = "unverified", False
    if inner_ip and upper and upper[0] in ("tcp", "udp", "icmp", "icmpv6"):
        n, lay, o = inner_ip
        frag = (n == "ip" and (lay.flags.MF or lay.frag)) or any(
            en == "ipv6.fraghdr" and (el.m or el.offset) for en, el, _ in exts)
        expected = True
        if frag or ip_end > len(full):
            pass
        elif upper[0] == "udp" and upper[1].chksum == 0 and n == "ip":
            expected = False
        elif upper[0] == "udp" and upper[1].chksum == 0:
            l4_st = "bad"
        else:
            test = {"tcp": lambda x: type(x) is TCP, "udp": lambda x: type(x) is UDP,
                    "icmp": lambda x: type(x) is ICMP, "icmpv6": is_icmpv6}[upper[0]]
            ok = l4_checksum_ok(full[o:ip_end], IP if n == "ip" else IPv6, test)
            l4_st = "ok" if ok else "bad"
    elif inner_ip:
        n, lay, o = inner_ip
        frag = (n == "ip" and (lay.flags.MF or lay.frag)) or any(
            en == "ipv6.fraghdr" and (el.m or el.offset) for en, el, _ in exts)
        expected = bool(frag)
    if "bad" in (ip_st, l4_st):
        all_st = "bad"
    elif expected and l4_st != "ok":
        all_st = "unverified"
    elif "ok" in (ip_st, l4_st):
        all_st = "ok"
    else:
        all_st = "unverified"
    return {"all": all_st, "ip": ip_st, "l4": l4_st}


# --- the cases -------------------------------------------------------------------------------

def cases():
    c = []

    def add(name, link, pkt_or_bytes, **kw):
        data = pkt_or_bytes if isinstance(pkt_or_bytes, bytes) else raw(pkt_or_bytes)
        c.append((name, link, data, kw))

    syn_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None),
                ("WScale", 7)]
    add("eth_ipv4_tcp_syn_options", ETHERNET,
        eth() / ip(ttl=61, id=4242) / TCP(sport=40000, dport=443, flags="S", seq=0xfffffff0,
                                          options=syn_opts))
    add("eth_ipv4_tcp_sack_three_blocks", ETHERNET,
        eth() / ip() / TCP(sport=443, dport=40000, flags="A", seq=1, ack=2,
                           options=[("NOP", None), ("NOP", None),
                                    ("Timestamp", (7, 8)),
                                    ("NOP", None), ("NOP", None),
                                    ("SAck", (100, 200, 300, 400, 0xfffffff0, 5))]) / b"data")
    add("eth_ipv4_tcp_sack_four_blocks", ETHERNET,
        eth() / ip() / TCP(flags="A", options=[("NOP", None), ("NOP", None),
                                               ("SAck", (1, 2, 3, 4, 5, 6, 7, 8))]))
    add("eth_ipv4_tcp_unknown_kinds", ETHERNET,
        eth() / ip() / TCP(flags="PA", options=[(254, b"\xf9\x89\x01\x02"), ("MSS", 1400),
                                                (30, b"\x00\x01\x02"), (19, b"\x11" * 16)])
        / (b"x" * 33))
    add("eth_ipv4_padded_tcp", ETHERNET,
        pad60(raw(eth() / ip() / TCP(flags="A") / b"hi")))
    add("eth_ipv4_options_rr_ra", ETHERNET,
        eth() / ip(options=[IPOption_RR(routers=["10.0.0.1"]), IPOption_NOP(),
                            IPOption_Router_Alert()]) / UDP(sport=1, dport=2) / b"abc")
    add("eth_ipv4_lsrr_tcp_final_destination", ETHERNET,
        eth() / ip(options=[IPOption_LSRR(routers=["203.0.113.7", "203.0.113.9"])])
        / TCP(flags="S"))
    add("eth_vlan_ipv4_udp", ETHERNET,
        eth() / Dot1Q(vlan=100, prio=5) / ip() / UDP(sport=5353, dport=5353) / b"mdns")
    add("eth_qinq_ipv6_tcp", ETHERNET,
        eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / ip6() / TCP(sport=1, dport=22, flags="S"))
    add("eth_three_vlans_ipv4_icmp", ETHERNET,
        eth() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=4094) / ip()
        / ICMP(type=8, id=1, seq=2) / b"ping")
    add("eth_mpls_two_labels_ipv4_icmp", ETHERNET,
        eth() / MPLS(label=100, s=0, ttl=9) / MPLS(label=200, s=1) / ip()
        / ICMP(type=0, id=7, seq=9))
    add("eth_mpls_ipv6_udp", ETHERNET,
        eth() / MPLS(label=1048575, s=1) / ip6() / UDP(sport=3, dport=4) / b"x")
    add("eth_pppoe_ipv4_tcp", ETHERNET,
        eth() / PPPoE(sessionid=0x1234) / PPP(proto=0x0021) / ip() / TCP(flags="S"))
    add("eth_pppoe_ipv6_udp_padded", ETHERNET,
        pad60(raw(eth() / PPPoE(sessionid=1) / PPP(proto=0x0057) / ip6(nh=59))))
    add("sll_ipv4_udp", SLL,
        CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0",
                    proto=0x0800) / ip() / UDP(sport=53, dport=3333) / b"answer")
    add("sll2_ipv6_tcp", SLL2,
        CookedLinuxV2(proto=0x86DD, ifindex=3, pkttype=0, lladdrlen=6) / ip6()
        / TCP(flags="SA", options=[("MSS", 1220)]))
    add("null_ipv4_icmp", NULL, Loopback(type=2) / ip() / ICMP(type=8, id=3, seq=4))
    add("null_ipv6_udp", NULL, Loopback(type=30) / ip6() / UDP(sport=9, dport=10))
    add("loop_ipv6_tcp", LOOP, struct.pack("!I", 24) + raw(ip6() / TCP(flags="R")))
    add("raw_ipv4_udp", RAW, ip() / UDP(sport=123, dport=123) / (b"\x23" + b"\0" * 47))
    add("raw_ipv6_icmpv6_echo", RAW, ip6() / ICMPv6EchoRequest(id=0x4545, seq=3, data=b"abc"))
    add("linktype_ipv4_tcp", IPV4, ip() / TCP(flags="F"))
    add("linktype_ipv6_udp", IPV6, ip6() / UDP(sport=1, dport=2))

    big = ip(id=0x7777) / UDP(sport=1111, dport=2222) / (b"f" * 3000)
    frags = fragment(big, fragsize=1480)
    for i, f in enumerate(frags):
        add(f"eth_ipv4_udp_fragment_{i}", ETHERNET, eth() / f)
    big6 = ip6() / IPv6ExtHdrFragment(id=0xabcdef) / TCP(flags="PA") / (b"g" * 2000)
    for i, f in enumerate(fragment6(big6, 1280)):
        add(f"eth_ipv6_tcp_fragment_{i}", ETHERNET, eth() / f)
    small = fragment(ip(id=0x7778) / UDP(sport=1, dport=2) / (b"h" * 40), fragsize=24)
    add("eth_ipv4_small_fragment_last", ETHERNET, eth() / small[-1])
    small6 = ip6() / IPv6ExtHdrFragment(id=0x55) / TCP(flags="PA") / (b"i" * 100)
    add("eth_ipv6_small_fragment_first", ETHERNET, eth() / fragment6(small6, 96)[0])
    add("eth_ipv6_atomic_fragment_tcp", ETHERNET,
        eth() / ip6() / IPv6ExtHdrFragment(offset=0, m=0, id=99) / TCP(flags="S"))
    add("eth_ipv6_hbh_dest_routing_tcp", ETHERNET,
        eth() / ip6() / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
        / IPv6ExtHdrRouting(addresses=[], segleft=0) / TCP(flags="S"))
    add("eth_ipv6_routing_type0_final_destination", ETHERNET,
        eth() / ip6() / IPv6ExtHdrRouting(addresses=["2001:db8::a", "2001:db8::b"], segleft=2)
        / UDP(sport=7, dport=8) / b"rh0")
    add("eth_ipv6_srh_final_destination", ETHERNET,
        eth() / ip6() / IPv6ExtHdrSegmentRouting(addresses=["2001:db8::c", "2001:db8::d"],
                                                 segleft=1)
        / UDP(sport=7, dport=8) / b"srh")
    # AH: scapy computes no transport checksum under AH, so take the transport bytes from the
    # same packet built without it (RFC 4302 3.3.3.1: AH is not in the pseudo-header).
    tcp6 = raw(ip6() / TCP(flags="S"))[40:]
    add("eth_ipv6_ah_tcp", ETHERNET,
        eth() / ip6() / AH(nh=6, payloadlen=4, spi=0x1001, seq=1, icv=b"\xaa" * 12) / Raw(tcp6))
    udp4 = raw(ip() / UDP(sport=500, dport=500) / b"ike")[20:]
    add("eth_ipv4_ah_udp", ETHERNET,
        eth() / ip(proto=51) / AH(nh=17, payloadlen=4, spi=0x1002, seq=2, icv=b"\xbb" * 12)
        / Raw(udp4))
    add("eth_ipv6_esp", ETHERNET, eth() / ip6() / ESP(spi=0x2001, seq=5, data=b"\x01" * 24))
    add("eth_ipv4_esp", ETHERNET, eth() / ip() / ESP(spi=0x2002, seq=6, data=b"\x02" * 24))
    add("eth_ipv4_icmp_unreachable_quote", ETHERNET,
        eth() / ip() / ICMP(type=3, code=3) / raw(ip(src=A2, dst=A1) / UDP(sport=9, dport=53))[:28])
    add("eth_ipv6_icmpv6_too_big", ETHERNET,
        eth() / ip6() / ICMPv6PacketTooBig(mtu=1280) / raw(ip6() / UDP() / (b"z" * 20)))
    add("eth_ipv6_icmpv6_neighbor_solicitation", ETHERNET,
        eth() / ip6(dst="ff02::1:ff00:5", hlim=255) / ICMPv6ND_NS(tgt="2001:db8::5")
        / ICMPv6NDOptSrcLLAddr(lladdr=M1))
    add("eth_ipv6_icmpv6_echo_reply", ETHERNET,
        eth() / ip6() / ICMPv6EchoReply(id=1, seq=65535, data=b"pong"))
    add("eth_ipv4_gre_ipv4_tcp", ETHERNET,
        eth() / ip() / GRE() / ip(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=5, dport=6))
    add("eth_ipv4_gre_key_seq_ipv6_udp", ETHERNET,
        eth() / ip() / GRE(key_present=1, key=0xdeadbeef, seqnum_present=1, seqence_number=77)
        / ip6() / UDP(sport=1, dport=2) / b"q")
    add("eth_ipv4_gre_checksum_teb_vlan", ETHERNET,
        eth() / ip() / GRE(chksum_present=1, proto=0x6558)
        / Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / Dot1Q(vlan=333)
        / ip(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=67, dport=68))
    add("eth_ipv4_gre_mpls_ipv4_icmp", ETHERNET,
        eth() / ip() / GRE(proto=0x8847) / MPLS(label=16, s=1) / ip(src="10.2.2.2")
        / ICMP(type=8))
    add("eth_ipv4_pptp_ppp_ipv4_udp", ETHERNET,
        eth() / ip() / GRE_PPTP(call_id=0x4242, seqnum_present=1, seqence_number=5,
                                acknum_present=1, ack_number=4)
        / HDLC() / PPP(proto=0x0021) / ip(src="172.16.1.1", dst="172.16.1.2")
        / UDP(sport=1701, dport=1701) / b"l2tp?")
    add("eth_ipv4_vxlan_eth_ipv4_tcp", ETHERNET,
        eth() / ip() / UDP(sport=49152, dport=4789) / VXLAN(vni=0x123456)
        / Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d")
        / ip(src="10.3.3.3", dst="10.3.3.4") / TCP(sport=1234, dport=80, flags="S"))
    add("eth_ipv6_vxlan_eth_ipv6_udp", ETHERNET,
        eth() / ip6() / UDP(sport=49153, dport=4789) / VXLAN(vni=7)
        / Ether(src="02:00:00:00:00:0e", dst="02:00:00:00:00:0f") / ip6(src="fd00::1", dst="fd00::2")
        / UDP(sport=53, dport=53) / b"dns")
    add("eth_ipv4_in_ipv4_tcp", ETHERNET,
        eth() / ip(proto=4) / ip(src="10.4.4.4", dst="10.4.4.5") / TCP(flags="S"))
    add("eth_ipv6_in_ipv4_udp", ETHERNET,
        eth() / ip(proto=41) / ip6(src="2001:db8:6::1", dst="2001:db8:6::2") / UDP())
    add("eth_ipv4_in_ipv6_icmp", ETHERNET,
        eth() / ip6(nh=4) / ip(src="10.5.5.5") / ICMP(type=8))
    add("eth_ipv6_in_ipv6_tcp", ETHERNET,
        eth() / ip6(nh=41) / ip6(src="fd01::1", dst="fd01::2") / TCP(flags="S"))
    add("eth_arp_request", ETHERNET,
        pad60(raw(Ether(src=M1, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=M1, psrc="10.0.0.1",
                                                               hwdst="00:00:00:00:00:00",
                                                               pdst="10.0.0.2"))))
    add("eth_arp_reply", ETHERNET,
        eth() / ARP(op=2, hwsrc=M2, psrc="10.0.0.2", hwdst=M1, pdst="10.0.0.1"))
    add("eth_ipv4_udp_zero_checksum", ETHERNET,
        eth() / ip() / UDP(sport=4, dport=5, chksum=0) / b"nocsum")
    add("eth_ipv4_bad_header_checksum", ETHERNET, eth() / ip(chksum=0x1234) / TCP())
    add("eth_ipv4_bad_tcp_checksum", ETHERNET, eth() / ip() / TCP(chksum=0xdead) / b"x")
    add("eth_ipv6_bad_udp_checksum", ETHERNET, eth() / ip6() / UDP(chksum=0xbeef) / b"y")
    add("eth_ipv6_udp_zero_checksum", ETHERNET, eth() / ip6() / UDP(chksum=0) / b"z")
    add("eth_ipv6_bad_icmpv6_checksum", ETHERNET,
        eth() / ip6() / ICMPv6EchoRequest(cksum=0x1111))
    return c


def snapcut_cases():
    """(name, full bytes, captured length, error, layers) — expectations from the full packet."""
    p = raw(eth() / ip() / TCP(flags="PA") / (b"s" * 200))
    q = raw(eth() / ip6() / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 12)])
            / UDP() / (b"u" * 100))
    return [
        ("snapcut_in_tcp_payload", p, 64, "none", None),
        ("snapcut_in_tcp_header", p, 44, "snap_cut", ["eth", "ip"]),
        ("snapcut_in_ipv6_hop_by_hop", q, 60, "snap_cut", ["eth", "ipv6"]),
    ]


def malformed_cases():
    """Crafted with bogus lengths; scapy supplies the rest of the fields."""
    return [
        ("bad_ihl_4", ETHERNET, raw(eth() / ip(ihl=4) / TCP()), "ipv4_bad_ihl", ["eth"]),
        ("bad_tcp_data_offset_15", ETHERNET, raw(eth() / ip() / TCP(dataofs=15)),
         "tcp_bad_data_offset", ["eth", "ip"]),
        ("bad_udp_length_4", ETHERNET, raw(eth() / ip() / UDP(len=4) / b"abcd"),
         "udp_bad_length", ["eth", "ip"]),
        ("bad_ipv6_payload_length", ETHERNET, raw(eth() / ip6(plen=500) / UDP()),
         "ipv6_bad_payload_length", ["eth", "ipv6"]),
        ("ipv6_nine_destination_options", ETHERNET,
         raw(eth() / ip6() / (IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()
                              / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()
                              / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt())
             / TCP()),
         "ipv6_ext_too_many", ["eth", "ipv6"] + ["ipv6.dstopts"] * 8),
        ("bad_tcp_option_mss_length_3", ETHERNET,
         raw(eth() / ip() / TCP(options=[(2, b"\x05")])), "tcp_bad_option", None),
    ]


def write_cases(out):
    os.makedirs(out, exist_ok=True)
    n = 0
    for name, link, data, kw in cases():
        e = expect(name, link, data)
        _write(out, name, data, e)
        n += 1
    for name, full, caplen, error, layers in snapcut_cases():
        e = expect(name, ETHERNET, full, wire_len=len(full), error=error)
        if layers is not None:
            e["layers"] = layers
            for k in ("tcp", "udp", "payload_len", "payload_hex"):
                e.pop(k, None)
            if "ipv6" in layers and len(layers) == 2:
                e.pop("ip", None)
                e.pop("frag", None)
                e["ip"] = {"version": 6}
        else:
            e["payload_hex"] = e["payload_hex"][:2 * max(0, caplen - (len(full) - e["payload_len"]))]
        e["checksum"] = {"all": "unverified", "ip": e["checksum"]["ip"], "l4": "unverified"}
        if error != "none":
            e.pop("checksum")
        _write(out, name, full[:caplen], e)
        n += 1
    for name, link, data, error, layers in malformed_cases():
        e = {"name": name, "link": link, "error": error}
        if layers is not None:
            e["layers"] = layers
        else:
            e["layers"] = ["eth", "ip", "tcp"]
        _write(out, name, data, e)
        n += 1
    print(f"craft.py: wrote {n} cases to {out}")


def _write(out, name, data, e):
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(e, f, indent=1, sort_keys=True)


def write_corpus(out):
    """A small seed set: one packet per link type and per encapsulation family."""
    os.makedirs(out, exist_ok=True)
    keep = [
        "eth_ipv4_tcp_syn_options", "eth_ipv4_tcp_sack_three_blocks", "eth_ipv4_options_rr_ra",
        "eth_qinq_ipv6_tcp", "eth_mpls_two_labels_ipv4_icmp", "eth_pppoe_ipv4_tcp",
        "sll_ipv4_udp", "sll2_ipv6_tcp", "null_ipv4_icmp", "loop_ipv6_tcp",
        "raw_ipv6_icmpv6_echo", "linktype_ipv4_tcp", "linktype_ipv6_udp",
        "eth_ipv4_small_fragment_last", "eth_ipv6_small_fragment_first",
        "eth_ipv6_hbh_dest_routing_tcp",
        "eth_ipv6_ah_tcp", "eth_ipv4_gre_key_seq_ipv6_udp", "eth_ipv4_pptp_ppp_ipv4_udp",
        "eth_ipv4_vxlan_eth_ipv4_tcp", "eth_arp_request", "eth_ipv4_icmp_unreachable_quote",
    ]
    by_name = {name: (link, data) for name, link, data, _ in cases()}
    for name in keep:
        link, data = by_name[name]
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([LINKS.index(link)]) + data)
    print(f"craft.py: wrote {len(keep)} seeds to {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
    elif len(sys.argv) == 2:
        write_cases(sys.argv[1])
    else:
        sys.exit(__doc__)
