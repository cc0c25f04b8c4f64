#!/usr/bin/python3
"""Oracle test: `l45 decode --json` agrees with tshark on every packet of every capture.

For each capture under the shared pcaps directory, tshark prints the fields below with
`-T fields`; l45 prints one JSON object per packet; both are compared field by field.

Deliberate differences (each is handled explicitly below, not silently):
- Tunnels: tshark lists every occurrence of a field (outer first). l45's top-level `ip` is the
  innermost header (what flows key on) and `tunnel` lists the outer ones, so l45's `ip` is
  compared with tshark's occurrence number len(tunnel of the same IP version).
- ICMP errors quote an IP header and part of a transport header; tshark decodes them as more
  occurrences of ip.* / tcp.* / udp.*. l45 reports the ICMP message; the quote is not the
  packet's own transport header, so those extra occurrences are not compared.
- IP fragments: tshark is run with reassembly off, so neither side decodes a transport
  header in a non-first fragment. tshark 4.0 prints ip.frag_offset in 8-byte units, l45 in
  bytes (as tcpdump does): tshark's value is multiplied by 8.
- 802.1ad: tshark reports S-tags as ieee8021ad.id and C-tags as vlan.id; l45's `vlan` lists
  all tags outermost first, so it is compared with the S-tags followed by the C-tags.
- Packets carried as application data (sFlow samples, for one) are dissected by tshark into
  more ip/tcp/udp occurrences; l45 stops at the transport header, so when l45 decoded UDP the
  tcp.* fields tshark found inside the payload are not compared.

Usage: decode_oracle.py L45_BINARY PCAPS_DIR   (exit 77 = skipped: no pcaps or no tshark)
"""
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "ieee8021ad.id", "vlan.id",
    "ip.version", "ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.len", "ip.id",
    "ip.frag_offset", "ip.flags.mf", "ip.checksum.status",
    "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.plen",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.window_size_value",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr", "tcp.len", "tcp.checksum.status",
    "udp.srcport", "udp.dstport", "udp.length", "udp.checksum.status",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
]
PREFS = [
    "ip.defragment:FALSE", "ipv6.defragment:FALSE", "tcp.check_checksum:TRUE",
    "udp.check_checksum:TRUE", "ip.check_checksum:TRUE", "tcp.analyze_sequence_numbers:FALSE",
    "tcp.relative_sequence_numbers:FALSE",
]
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
ICMP_ERRORS_V4 = {3, 4, 5, 11, 12}
ICMP_ERRORS_V6 = {1, 2, 3, 4}


def tshark_rows(path):
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=,"]
    for p in PREFS:
        cmd += ["-o", p]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        rows.append({f: (c.split(",") if c else []) for f, c in zip(FIELDS, cols)})
    return rows


def l45_rows(l45, path):
    p = subprocess.run([l45, "decode", "-r", path, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"l45 decode exited {p.returncode}: {p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def nth(t, field, i):
    v = t[field]
    return v[i] if i < len(v) else None


def as_int(s):
    return int(s, 0) if s is not None else None


def compare(t, o):
    """Returns a list of 'field: tshark X, l45 Y' strings for one packet."""
    bad = []

    def eq(name, tv, ov):
        if tv is None:
            return
        if ov is None or tv != ov:
            bad.append(f"{name}: tshark {tv}, l45 {ov}")

    eq("len", as_int(nth(t, "frame.len", 0)), o.get("len"))
    eq("caplen", as_int(nth(t, "frame.cap_len", 0)), o.get("caplen"))
    tts = nth(t, "frame.time_epoch", 0)
    if tts is not None and Decimal(tts) != Decimal(str(o.get("ts"))):
        bad.append(f"ts: tshark {tts}, l45 {o.get('ts')}")
    eq("vlan", [int(x) for x in t["ieee8021ad.id"] + t["vlan.id"]], o.get("vlan", []))

    ip = o.get("ip")
    tun = o.get("tunnel", [])
    icmp_error = False
    if ip:
        ver = ip["version"]
        k = sum(1 for x in tun if x.get("version") == ver)
        if ver == 4:
            eq("ip.src", nth(t, "ip.src", k), ip.get("src"))
            eq("ip.dst", nth(t, "ip.dst", k), ip.get("dst"))
            eq("ip.proto", as_int(nth(t, "ip.proto", k)), ip.get("proto"))
            eq("ip.ttl", as_int(nth(t, "ip.ttl", k)), ip.get("ttl"))
            eq("ip.len", as_int(nth(t, "ip.len", k)), ip.get("len"))
            eq("ip.id", as_int(nth(t, "ip.id", k)), ip.get("id"))
            fo = as_int(nth(t, "ip.frag_offset", k))
            eq("ip.frag_offset", fo * 8 if fo is not None else None, ip.get("frag_offset"))
            mf = nth(t, "ip.flags.mf", k)
            if mf is not None:
                eq("ip.mf", mf in ("1", "True"), ip.get("mf"))
        else:
            eq("ip.src", nth(t, "ipv6.src", k), ip.get("src"))
            eq("ip.dst", nth(t, "ipv6.dst", k), ip.get("dst"))
            eq("ip.ttl", as_int(nth(t, "ipv6.hlim", k)), ip.get("ttl"))
            plen = as_int(nth(t, "ipv6.plen", k))
            eq("ip.len", plen + 40 if plen is not None else None, ip.get("len"))
    elif t["ip.src"] or t["ipv6.src"]:
        if not o.get("error"):
            bad.append("ip: tshark decoded an IP header, l45 none")

    if "icmp" in o:
        eq("icmp.type", as_int(nth(t, "icmp.type", 0)), o["icmp"].get("type"))
        eq("icmp.code", as_int(nth(t, "icmp.code", 0)), o["icmp"].get("code"))
        icmp_error = o["icmp"].get("type") in ICMP_ERRORS_V4
    if "icmpv6" in o:
        eq("icmpv6.type", as_int(nth(t, "icmpv6.type", 0)), o["icmpv6"].get("type"))
        eq("icmpv6.code", as_int(nth(t, "icmpv6.code", 0)), o["icmpv6"].get("code"))
        icmp_error = o["icmpv6"].get("type") in ICMP_ERRORS_V6

    tcp = o.get("tcp")
    if tcp:
        eq("tcp.sport", as_int(nth(t, "tcp.srcport", 0)), tcp.get("sport"))
        eq("tcp.dport", as_int(nth(t, "tcp.dstport", 0)), tcp.get("dport"))
        eq("tcp.seq", as_int(nth(t, "tcp.seq_raw", 0)), tcp.get("seq"))
        eq("tcp.ack", as_int(nth(t, "tcp.ack_raw", 0)), tcp.get("ack"))
        tf = as_int(nth(t, "tcp.flags", 0))
        if tf is not None:
            mine = sum(FLAG_BITS[c] for c in tcp.get("flags", ""))
            eq("tcp.flags", tf & 0xff, mine)
        eq("tcp.win", as_int(nth(t, "tcp.window_size_value", 0)), tcp.get("win"))
        eq("tcp.mss", as_int(nth(t, "tcp.options.mss_val", 0)), tcp.get("mss"))
        eq("tcp.wscale", as_int(nth(t, "tcp.options.wscale.shift", 0)), tcp.get("wscale"))
        if t["tcp.options.sack_perm"]:
            eq("tcp.sack_perm", True, tcp.get("sack_perm"))
        elif tcp.get("sack_perm"):
            bad.append("tcp.sack_perm: tshark none, l45 true")
        eq("tcp.ts_val", as_int(nth(t, "tcp.options.timestamp.tsval", 0)), tcp.get("ts_val"))
        eq("tcp.ts_ecr", as_int(nth(t, "tcp.options.timestamp.tsecr", 0)), tcp.get("ts_ecr"))
        eq("payload_len", as_int(nth(t, "tcp.len", 0)), o.get("payload_len"))
    elif t["tcp.srcport"] and not icmp_error and not o.get("error") and "udp" not in o:
        bad.append("tcp: tshark decoded a TCP header, l45 none")

    udp = o.get("udp")
    if udp:
        eq("udp.sport", as_int(nth(t, "udp.srcport", 0)), udp.get("sport"))
        eq("udp.dport", as_int(nth(t, "udp.dstport", 0)), udp.get("dport"))
        eq("udp.len", as_int(nth(t, "udp.length", 0)), udp.get("len"))
    elif t["udp.srcport"] and not icmp_error and not o.get("error") and not tun:
        bad.append("udp: tshark decoded a UDP header, l45 none")

    # Checksums: a "bad" on either side must be matched by the other. tshark's status
    # values: 0 bad, 1 good, 2 unverified.
    statuses = [s for f in ("ip.checksum.status", "tcp.checksum.status", "udp.checksum.status")
                for s in t[f][:1]]
    if not icmp_error and o.get("csum") in ("ok", "bad"):
        t_bad = "0" in statuses
        if t_bad != (o["csum"] == "bad") and "1" in statuses + (["0"] if t_bad else []):
            bad.append(f"csum: tshark statuses {statuses}, l45 {o['csum']}")
    return bad


def captures(root):
    for dirpath, _, files in sorted(os.walk(root)):
        if any(part in ("expected", "gen", "context") for part in dirpath.split(os.sep)):
            continue
        for f in sorted(files):
            if f.endswith((".pcap", ".pcapng", ".cap")):
                yield os.path.join(dirpath, f)


def main():
    l45, root = sys.argv[1], sys.argv[2]
    if not os.path.isdir(root):
        print(f"SKIP: no shared captures at {root}")
        return 77
    if not shutil.which("tshark"):
        print("SKIP: tshark not installed (scripts/install-deps.sh installs it)")
        return 77
    passed = failed = packets = 0
    for path in captures(root):
        name = os.path.relpath(path, root)
        try:
            trows, orows = tshark_rows(path), l45_rows(l45, path)
        except (RuntimeError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
            print(f"FAIL {name}: {e}")
            failed += 1
            continue
        problems = []
        if len(trows) != len(orows):
            problems.append(f"packet count: tshark {len(trows)}, l45 {len(orows)}")
        for t, o in zip(trows, orows):
            for b in compare(t, o):
                problems.append(f"frame {o.get('frame')}: {b}")
        packets += len(orows)
        if problems:
            failed += 1
            print(f"FAIL {name}: {len(problems)} differences")
            for p in problems[:8]:
                print(f"    {p}")
        else:
            passed += 1
            print(f"ok   {name} ({len(orows)} packets)")
    print(f"decode oracle: {packets} packets compared")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
