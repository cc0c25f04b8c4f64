#!/usr/bin/python3
"""Oracle test: `l45 conn --json` agrees with Zeek's conn.log baselines.

For every case with a Zeek conn.log baseline (`*/expected/conn.log`, and
zeek-udp-dns-dhcp/expected/dhcp.conn.log for dhcp.pcap) l45 prints one JSON object per
connection; connections are matched by (proto, orig_h, orig_p, resp_h, resp_p) as a multiset in
order (the same 5-tuple appears several times when a 4-tuple is reused, as in zeek-pop3), and
these fields are compared: conn_state, history, orig_bytes, resp_bytes, missed_bytes, orig_pkts,
orig_ip_bytes, resp_pkts, resp_ip_bytes, duration (within 1 us). Zeek's "-" (unset) must be an
absent key in l45's JSON. The baselines' timestamps are canonified (XXXXXXXXXX.XXXXXX), so ts is
not compared. l45's "tunnel" must name an encapsulation (more than VLAN tags / MPLS labels)
exactly on the rows Zeek gives tunnel_parents. The TSV output (without --json) must carry the
same values as the JSON.
Every connection on either side must be matched.

zeek-conn-state-rst: expected/out has one "history, conn_state" line per pcap, in the order
the README lists them; each pcap must give exactly one connection with those values.

Deliberate differences are the DIFFERENCES table below and nothing else; each names the case, the
connection (as Zeek logs it), the field and the reason. Kinds:
- "zeek_only": Zeek logs a connection l45 deliberately does not have (the row is not matched).
- "flip": Zeek flipped the roles ('^' in history) by its likely-server-port heuristic, while l45
  keeps the first sender as originator. The row is compared with the sides swapped: the orig_*
  and resp_* fields exchanged, the history without '^' and with the case of every letter swapped
  (upper = originator), and conn_state mirrored (FLIP_STATE).

Usage: conn_oracle.py L45_BINARY PCAPS_DIR   (exit 77 = skipped: no pcaps)
       conn_oracle.py --self-test PCAPS_DIR   (checks the readers on the baselines themselves)
"""
import ipaddress
import json
import os
import subprocess
import sys

COMPARED = ["conn_state", "history", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts",
            "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "duration"]
INT_FIELDS = {"orig_p", "resp_p", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts",
              "orig_ip_bytes", "resp_pkts", "resp_ip_bytes"}
SWAP = [("id.orig_h", "id.resp_h"), ("id.orig_p", "id.resp_p"), ("orig_bytes", "resp_bytes"),
        ("orig_pkts", "resp_pkts"), ("orig_ip_bytes", "resp_ip_bytes")]
# conn_state as seen from the other side (Zeek's conn.log documentation of each state).
FLIP_STATE = {"S0": "SHR", "SHR": "S0", "SH": "SHR", "S2": "S3", "S3": "S2", "RSTO": "RSTR",
              "RSTR": "RSTO", "RSTOS0": "RSTRH", "RSTRH": "RSTOS0"}

# (case, (proto, orig_h, orig_p, resp_h, resp_p) as Zeek logs it, field, kind, reason)
DIFFERENCES = [
    ("zeek-gre-sample", ("icmp", "172.28.2.3", 3, "66.59.111.190", 3), "row", "zeek_only",
     "ICMP port unreachable (type 3 code 3) quoting the GRE-tunnelled DNS query "
     "66.59.111.190:37675 -> 172.28.2.3:53: l45 attributes an ICMP error to the flow it quotes "
     "instead of logging it as a connection of its own"),
    ("zeek-udp-dns-dhcp", ("udp", "128.2.6.97", 68, "128.2.6.152", 67), "orientation", "flip",
     "one DHCP reply 128.2.6.152:67 -> 128.2.6.97:68; Zeek makes port 68 the originator "
     "(likely server port 67, history '^d'); l45's originator is the first sender"),
    ("zeek-udp-dns-dhcp", ("udp", "128.2.6.189", 68, "128.2.6.152", 67), "orientation", "flip",
     "one DHCP reply 128.2.6.152:67 -> 128.2.6.189:68; same as above"),
]

RST_PCAPS = ["single-rst.pcap", "syn-then-rst.pcap", "syn-then-ack-then-rst.pcap",
             "syn-then-stuff-then-rst.pcap"]


def norm_addr(a):
    try:
        return str(ipaddress.ip_address(a))
    except ValueError:
        return a


def read_zeek_tsv(path):
    with open(path, encoding="utf-8") as f:
        return parse_zeek_tsv(f, path)


def parse_zeek_tsv(lines, path):
    """Rows of a Zeek TSV log as dicts; unset ('-') and empty ('(empty)') become None."""
    fields, rows = None, []
    if True:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
                continue
            if not line or line.startswith("#"):
                continue
            if fields is None:
                raise ValueError(f"{path}: data before #fields")
            cols = line.split("\t")
            if len(cols) != len(fields):
                raise ValueError(f"{path}: {len(cols)} columns, #fields has {len(fields)}")
            row = {}
            for k, v in zip(fields, cols):
                row[k] = None if v in ("-", "(empty)") else v
            rows.append(normalise(row))
    return rows


def normalise(row):
    """Both sides' rows in one form: ints as int, duration as float, addresses canonical."""
    out = dict(row)
    for k in ("id.orig_p", "id.resp_p", *INT_FIELDS):
        if out.get(k) is not None:
            out[k] = int(out[k])
    if out.get("duration") is not None:
        out["duration"] = float(out["duration"])
    for k in ("id.orig_h", "id.resp_h"):
        if out.get(k) is not None:
            out[k] = norm_addr(str(out[k]))
    return out


def key(row):
    return (row.get("proto"), row.get("id.orig_h"), row.get("id.orig_p"), row.get("id.resp_h"),
            row.get("id.resp_p"))


def flipped(row):
    """The Zeek row seen from the other side (see the module doc)."""
    out = dict(row)
    for a, b in SWAP:
        out[a], out[b] = row.get(b), row.get(a)
    h = row.get("history")
    if h is not None:
        out["history"] = h.replace("^", "").swapcase() or None
    st = row.get("conn_state")
    out["conn_state"] = FLIP_STATE.get(st, st)
    return out


def l45_conns(l45, pcap):
    p = subprocess.run([l45, "conn", "-r", pcap, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"l45 conn exited {p.returncode}: {p.stderr.strip()[:300]}")
    return [normalise(json.loads(line)) for line in p.stdout.splitlines() if line.strip()]


def l45_tsv(l45, pcap):
    p = subprocess.run([l45, "conn", "-r", pcap], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"l45 conn (TSV) exited {p.returncode}: {p.stderr.strip()[:300]}")
    return parse_zeek_tsv(p.stdout.splitlines(), f"l45 conn -r {pcap}")


def compare_tsv_json(trows, orows):
    """The TSV output carries the same values as the JSON (absent key = '-')."""
    if len(trows) != len(orows):
        return [f"TSV has {len(trows)} rows, JSON {len(orows)}"]
    bad = []
    for t, o in zip(trows, orows):
        for k in sorted(set(t) | set(o)):
            tv, ov = t.get(k), o.get(k)
            if k in ("ts", "duration") and tv is not None and ov is not None:
                if abs(float(tv) - float(ov)) <= 1e-6 + 1e-9:
                    continue
            if tv != ov:
                bad.append(f"{o.get('uid')} {k}: TSV {tv}, JSON {ov}")
    return bad


def compare_row(z, o):
    bad = []
    for f in COMPARED:
        zv, ov = z.get(f), o.get(f)
        if f == "duration" and zv is not None and ov is not None:
            if abs(zv - float(ov)) > 1e-6 + 1e-9:
                bad.append(f"{f}: zeek {zv:.6f}, l45 {ov}")
        elif zv != ov:
            bad.append(f"{f}: zeek {zv}, l45 {ov}")
    if (z.get("tunnel_parents") is not None) != encapsulated(o.get("tunnel")):
        bad.append(f"tunnel: zeek tunnel_parents {z.get('tunnel_parents')}, "
                   f"l45 {o.get('tunnel')}")
    return bad


def encapsulated(tunnel):
    """Whether l45's outer path has an encapsulation Zeek makes a tunnel of. l45's "tunnel" also
    lists VLAN ids and MPLS labels ("vlan:13 vlan:10"), which Zeek never counts as tunnels
    (no tunnel_parents for zeek-q-in-q)."""
    return any(not t.startswith(("vlan:", "mpls:")) for t in (tunnel or "").split())


def fmt_key(k):
    return f"{k[0]} {k[1]}:{k[2]} -> {k[3]}:{k[4]}"


def compare_case(case, zrows, orows):
    """Returns the problem lines of one capture."""
    diffs = {(c, tuple(k)): (field, kind) for c, k, field, kind, _ in DIFFERENCES if c == case}
    used = [False] * len(orows)
    problems = []
    for z in zrows:
        zk = key(z)
        field, kind = diffs.get((case, zk), (None, None))
        if kind == "zeek_only":
            continue
        want = flipped(z) if kind == "flip" else z
        wk = key(want)
        idx = next((i for i, o in enumerate(orows) if not used[i] and key(o) == wk), None)
        if idx is None:
            problems.append(f"zeek {fmt_key(zk)} [{z.get('history')} {z.get('conn_state')}]: "
                            f"no l45 connection {fmt_key(wk)}")
            continue
        used[idx] = True
        for b in compare_row(want, orows[idx]):
            note = " (sides swapped, see DIFFERENCES)" if kind == "flip" else ""
            problems.append(f"{fmt_key(wk)}{note}: {b}")
    for i, o in enumerate(orows):
        if not used[i]:
            problems.append(f"l45 {fmt_key(key(o))} [{o.get('history')} {o.get('conn_state')} "
                            f"{o.get('l45_end')}]: not in Zeek's log")
    return problems


def baselines(root):
    """(case name, pcap, conn.log) for every Zeek conn.log baseline."""
    out = []
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        log = os.path.join(d, "expected", "conn.log")
        if os.path.isfile(log):
            pcaps = sorted(f for f in os.listdir(d) if f.endswith((".pcap", ".pcapng", ".cap")))
            if len(pcaps) != 1:
                raise ValueError(f"{case}: expected one capture next to conn.log, got {pcaps}")
            out.append((case, os.path.join(d, pcaps[0]), log))
    dhcp = os.path.join(root, "zeek-udp-dns-dhcp")
    if os.path.isdir(dhcp):
        out.append(("zeek-udp-dns-dhcp", os.path.join(dhcp, "dhcp.pcap"),
                    os.path.join(dhcp, "expected", "dhcp.conn.log")))
    return out


def rst_expectations(root):
    path = os.path.join(root, "zeek-conn-state-rst", "expected", "out")
    lines = [ln.strip() for ln in open(path, encoding="utf-8")
             if ln.strip() and not ln.startswith("#")]
    if len(lines) != len(RST_PCAPS):
        raise ValueError(f"{path}: {len(lines)} lines for {len(RST_PCAPS)} pcaps")
    return [(p, *[x.strip() for x in ln.split(",")]) for p, ln in zip(RST_PCAPS, lines)]


def self_test(root):
    counts = {os.path.relpath(log, root): len(read_zeek_tsv(log)) for _, _, log in baselines(root)}
    want = {"zeek-ftp-ipv4/expected/conn.log": 5, "zeek-ftp-ipv6/expected/conn.log": 6,
            "zeek-gre-sample/expected/conn.log": 7, "zeek-http-get/expected/conn.log": 1,
            "zeek-irc-dcc/expected/conn.log": 3, "zeek-missing-syn/expected/conn.log": 1,
            "zeek-pop3/expected/conn.log": 11, "zeek-q-in-q/expected/conn.log": 2,
            "zeek-retransmit-fast009/expected/conn.log": 1,
            "zeek-wikipedia/expected/conn.log": 34, "zeek-udp-dns-dhcp/expected/dhcp.conn.log": 4}
    checks = [("baseline row counts", counts == want)]
    rows = read_zeek_tsv(os.path.join(root, "zeek-udp-dns-dhcp", "expected", "dhcp.conn.log"))
    f = flipped(rows[1])
    checks.append(("flip of a '^d' DHCP row", key(f) == ("udp", "128.2.6.152", 67, "128.2.6.97", 68)
                   and f["history"] == "D" and f["conn_state"] == "S0" and f["orig_pkts"] == 1
                   and f["duration"] is None))
    checks.append(("unset fields",
                   rows[1]["orig_bytes"] is None and rows[0]["duration"] == 5.099034))
    checks.append(("RST expectations", rst_expectations(root)[3] ==
                   ("syn-then-stuff-then-rst.pcap", "SaFR", "OTH")))
    checks.append(("encapsulated", encapsulated("vlan:1 gre:1.1.1.1>2.2.2.2")
                   and not encapsulated("vlan:13 vlan:10") and not encapsulated(None)))
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} self-test {name}")
    failed = sum(1 for _, ok in checks if not ok)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    if sys.argv[1] == "--self-test":
        if not os.path.isdir(sys.argv[2]):
            print(f"SKIP: no shared captures at {sys.argv[2]}")
            return 77
        return self_test(sys.argv[2])
    l45, root = sys.argv[1], sys.argv[2]
    if not os.path.isdir(root):
        print(f"SKIP: no shared captures at {root}")
        return 77
    passed = failed = 0
    for case, pcap, log in baselines(root):
        name = f"{case}/{os.path.basename(pcap)}"
        try:
            zrows, orows, trows = read_zeek_tsv(log), l45_conns(l45, pcap), l45_tsv(l45, pcap)
        except (RuntimeError, ValueError, json.JSONDecodeError) as e:
            print(f"FAIL {name}: {e}")
            failed += 1
            continue
        problems = compare_case(case, zrows, orows) + compare_tsv_json(trows, orows)
        if problems:
            failed += 1
            print(f"FAIL {name}: {len(problems)} differences "
                  f"({len(zrows)} Zeek connections, {len(orows)} l45)")
            for p in problems:
                print(f"    {p}")
        else:
            passed += 1
            print(f"ok   {name} ({len(zrows)} connections)")

    rst_dir = os.path.join(root, "zeek-conn-state-rst")
    if os.path.isdir(rst_dir):
        for pcap, history, state in rst_expectations(root):
            name = f"zeek-conn-state-rst/{pcap}"
            try:
                orows = l45_conns(l45, os.path.join(rst_dir, pcap))
            except (RuntimeError, json.JSONDecodeError) as e:
                print(f"FAIL {name}: {e}")
                failed += 1
                continue
            got = [(o.get("history"), o.get("conn_state")) for o in orows]
            if got == [(history, state)]:
                passed += 1
                print(f"ok   {name} ({history}, {state})")
            else:
                failed += 1
                print(f"FAIL {name}: zeek [({history}, {state})], l45 {got}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
