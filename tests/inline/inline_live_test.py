#!/usr/bin/env python3
"""Inline mode live (root): a client, a middlebox and a server in network namespaces, real nginx
and curl, the middlebox's forwarded traffic queued to l45 through nftables and NFQUEUE.

  firewall: an allowed connection transfers a 2 MB file byte-identical; a DROP rule's
            connection times out; a REJECT rule's connection is refused at once (l45's RST);
            the hit counts match.
  rewrite:  a response header and a request header replaced by longer strings (every later
            sequence and acknowledgement number of the connection remapped): curl completes
            two keep-alive transfers of the 2 MB file, byte-identical, with the new header;
            nginx logs the new User-Agent.

Needs root, nginx, curl, nft; otherwise exits 77 with one line.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import live  # noqa: E402
from live import check, procs, results, sh, start, wait_listen  # noqa: E402

L45 = sys.argv[1]
if os.geteuid() != 0:
    print("SKIP: needs root (network namespaces, nftables, NFQUEUE)")
    sys.exit(77)
missing = [t for t in ("nginx", "curl", "nft", "iptables", "ip6tables", "ip", "ethtool") if not shutil.which(t)]
if missing:
    print(f"SKIP: needs {', '.join(missing)} (scripts/install-deps.sh)")
    sys.exit(77)

suffix = str(os.getpid())
NS_C, NS_M, NS_S = f"l45ic{suffix}", f"l45im{suffix}", f"l45is{suffix}"
CLIENT, CLIENT2, SERVER = "198.51.100.2", "198.51.100.3", "203.0.113.80"
CLIENT6, CLIENT6B, SERVER6 = "fd00:c::2", "fd00:c::3", "fd00:5::80"
tmp = tempfile.mkdtemp(prefix="l45-inline-")
namespaces = []





def veth(ns1, dev1, cidrs1, ns2, dev2, cidrs2):
    sh("ip", "-n", ns1, "link", "add", dev1, "type", "veth", "peer", "name", dev2, "netns", ns2)
    for ns, dev, cidrs in ((ns1, dev1, cidrs1), (ns2, dev2, cidrs2)):
        for cidr in cidrs:
            sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev, *(["nodad"] if ":" in cidr else []))
        sh("ip", "-n", ns, "link", "set", dev, "up")
        # MTU-sized segments through the queue, as on a physical link without offloads
        sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
           check=False)



def nginx(root):
    live.nginx_conf(f"{root}/nginx.conf", root, f"""\
  log_format ua '$remote_addr "$http_user_agent" $status $body_bytes_sent';
  access_log {root}/access.log ua;
  server {{ listen {SERVER}:80; listen {SERVER}:8080; listen [{SERVER6}]:80; root {root}/www; }}""")
    p = start(["ip", "netns", "exec", NS_S, "nginx", "-p", root, "-c", f"{root}/nginx.conf"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listen(NS_S, 80)
    wait_listen(NS_S, 8080)
    return p


def queue_rule(match, ipt_matches, q):
    """nftables' queue when the kernel has it, else iptables' NFQUEUE target (nft_compat)."""
    for cmd in (["nft", "flush", "ruleset"], ["iptables", "-F", "FORWARD"],
                ["ip6tables", "-F", "FORWARD"]):
        sh("ip", "netns", "exec", NS_M, *cmd, check=False)
    r = sh("ip", "netns", "exec", NS_M, "nft",
           f"add table inet l45t; add chain inet l45t fq {{ type filter hook forward priority 0; }}; "
           f"add rule inet l45t fq {match} queue num {q}", check=False)
    if r.returncode == 0:
        return
    sh("ip", "netns", "exec", NS_M, "nft", "flush", "ruleset", check=False)
    for tool in ("iptables", "ip6tables"):
        for m in ipt_matches:
            sh("ip", "netns", "exec", NS_M, tool, "-A", "FORWARD", *m.split(), "-j", "NFQUEUE",
               "--queue-num", str(q))


def curl(*args, source=CLIENT, timeout=30):
    try:
        return subprocess.run(["ip", "netns", "exec", NS_C, "curl", "-sS", "--interface", source,
                               "--connect-timeout", "3", "-m", "15", *args],
                              capture_output=True, timeout=timeout + 10)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -1, b"", b"timed out")


def l45_inline(*args):
    p = start(["ip", "netns", "exec", NS_M, L45, *args, "--json"], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the queue is bound
    return p


def finish(p, every=None):
    """SIGTERM; the last JSON line is the final count (`every` gets all of them, in order)."""
    out, err = live.stop(p, signal.SIGTERM, 10)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if every is not None:
        every.extend(lines)
    return (lines[-1] if lines else {}), err, p.returncode


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


try:
    live.netns(NS_C, namespaces)
    live.netns(NS_M, namespaces)
    live.netns(NS_S, namespaces)
    veth(NS_C, "c0", [f"{CLIENT}/24", f"{CLIENT2}/24", f"{CLIENT6}/64", f"{CLIENT6B}/64"],
         NS_M, "m0", ["198.51.100.1/24", "fd00:c::1/64"])
    veth(NS_M, "m1", ["203.0.113.1/24", "fd00:5::1/64"], NS_S, "s0", [f"{SERVER}/24",
                                                                      f"{SERVER6}/64"])
    sh("ip", "netns", "exec", NS_M, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "netns", "exec", NS_M, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    sh("ip", "-n", NS_C, "route", "add", "203.0.113.0/24", "via", "198.51.100.1")
    sh("ip", "-n", NS_S, "route", "add", "198.51.100.0/24", "via", "203.0.113.1")
    sh("ip", "-n", NS_C, "-6", "route", "add", "fd00:5::/64", "via", "fd00:c::1")
    sh("ip", "-n", NS_S, "-6", "route", "add", "fd00:c::/64", "via", "fd00:5::1")
    os.makedirs(f"{tmp}/www")
    with open(f"{tmp}/www/big.bin", "wb") as f:
        f.write(os.urandom(2 << 20))
    want = sha(f"{tmp}/www/big.bin")
    web = nginx(tmp)

    # --- firewall
    rules = f"{tmp}/fw.rules"
    with open(rules, "w") as f:
        f.write(f"# the live test's rules\nDROP any {SERVER} dport 8080\n"
                f"REJECT {CLIENT2} any\nREJECT {CLIENT6B} any\nACCEPT any any\n")
    queue_rule("meta l4proto tcp", ["-p tcp"], 5)
    fw = l45_inline("firewall", "--rules", rules, "--queue", "5")
    fw_t0 = time.monotonic()
    r = curl("-o", f"{tmp}/fw.bin", f"http://{SERVER}/big.bin")
    check("firewall: an allowed connection completes", r.returncode == 0, r.stderr)
    check("firewall: its 2 MB arrive byte-identical",
          os.path.exists(f"{tmp}/fw.bin") and sha(f"{tmp}/fw.bin") == want)
    t0 = time.monotonic()
    r = curl("-o", "/dev/null", f"http://{SERVER}:8080/big.bin")
    check("firewall: a DROP rule's connection times out", r.returncode == 28,
          f"curl exit {r.returncode} {r.stderr}")
    t0 = time.monotonic()
    r = curl("-o", "/dev/null", f"http://{SERVER}/big.bin", source=CLIENT2)
    took = time.monotonic() - t0
    check("firewall: a REJECT rule's connection is refused at once (RST)",
          r.returncode == 7 and took < 2.5, f"curl exit {r.returncode} after {took:.1f}s {r.stderr}")
    r = curl("-g", "-o", f"{tmp}/fw6.bin", f"http://[{SERVER6}]/big.bin", source=CLIENT6)
    check("firewall: an allowed IPv6 connection arrives byte-identical", r.returncode == 0
          and os.path.exists(f"{tmp}/fw6.bin") and sha(f"{tmp}/fw6.bin") == want, r.stderr)
    t0 = time.monotonic()
    r = curl("-g", "-o", "/dev/null", f"http://[{SERVER6}]/big.bin", source=CLIENT6B)
    took = time.monotonic() - t0
    check("firewall: an IPv6 REJECT is refused at once (RST over IPv6)",
          r.returncode == 7 and took < 2.5, f"curl exit {r.returncode} after {took:.1f}s {r.stderr}")
    fw_ran = time.monotonic() - fw_t0
    reports = []
    counts, err, rc = finish(fw, reports)
    hits = {x["line"]: x["hits"] for x in counts.get("rules", [])}
    seen = [sum(x["hits"] for x in r.get("rules", [])) for r in reports]
    check(f"firewall: hit counts printed every second ({len(reports)} reports in {fw_ran:.1f} s), "
          "never decreasing", len(reports) >= int(fw_ran) and seen == sorted(seen),
          f"{len(reports)} reports, totals {seen}")
    check("firewall: exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err}")
    check("firewall: hit counts per rule", hits.get(2, 0) >= 1 and hits.get(3) == 1
          and hits.get(4) == 1 and hits.get(5) == 2, counts)
    check("firewall: two RSTs were sent, none failed",
          counts.get("rst_sent") == 2 and counts.get("send_errors") == 0, counts)
    check("firewall: packets of dropped SYNs counted", counts.get("dropped", 0) >= 2, counts)

    # --- rewrite: lengths change both ways
    queue_rule("tcp sport 80 queue num 6; add rule inet l45t fq tcp dport 80", ["-p tcp --sport 80", "-p tcp --dport 80"], 6)
    rw = l45_inline("rewrite", "--queue", "6", "-f", "tcp port 80",
                    "--replace", "Server: nginx", "Server: l45-rewritten-by-the-middlebox",
                    "--replace", "User-Agent: curl/", "User-Agent: l45-agent/")
    r = curl("-D", f"{tmp}/headers", "-o", f"{tmp}/rw1.bin", f"http://{SERVER}/big.bin",
             "-o", f"{tmp}/rw2.bin", f"http://{SERVER}/big.bin")
    check("rewrite: curl completes two keep-alive transfers", r.returncode == 0, r.stderr)
    for n in (1, 2):
        check(f"rewrite: transfer {n} is byte-identical",
              os.path.exists(f"{tmp}/rw{n}.bin") and sha(f"{tmp}/rw{n}.bin") == want)
    headers = open(f"{tmp}/headers", errors="replace").read() if os.path.exists(
        f"{tmp}/headers") else ""
    check("rewrite: both responses carry the longer Server header",
          headers.count("Server: l45-rewritten-by-the-middlebox") == 2, headers[:300])
    counts, err, rc = finish(rw)
    check("rewrite: exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err}")
    check("rewrite: 4 replacements, none refused",
          counts.get("replaced") == 4 and counts.get("refused") == 0, counts)
    check("rewrite: the longer segments went in two pieces (MTU)", counts.get("split", 0) >= 2,
          counts)
    live.stop(web, signal.SIGTERM)
    log = open(f"{tmp}/access.log").read()
    check("rewrite: nginx saw the longer User-Agent on both requests",
          log.count('"l45-agent/') == 2, log[-400:])
finally:
    for p in procs:
        live.stop(p)
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{sum(results)}/{len(results)} checks passed")
sys.exit(0 if results and all(results) else 1)
