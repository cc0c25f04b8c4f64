#!/usr/bin/python3
"""`l45 decode -i` end to end: a live capture in a network namespace of real ping traffic,
and the missing-privilege error. Needs root; otherwise exits 77 (skipped) with one line.

Usage: cli_live_test.py L45_BINARY
"""
import json
import os
import subprocess
import sys
import time

L45 = sys.argv[1]
if os.geteuid() != 0:
    print("SKIP: needs root (network namespaces, live capture)")
    sys.exit(77)

suffix = str(os.getpid())
NS_A, NS_B = f"l45cli-a{suffix}", f"l45cli-b{suffix}"
results = []


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


try:
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "-n", NS_A, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", NS_B)
    sh("ip", "-n", NS_A, "addr", "add", "192.0.2.1/24", "dev", "veth-a")
    sh("ip", "-n", NS_B, "addr", "add", "192.0.2.2/24", "dev", "veth-b")
    for ns, dev in ((NS_A, "veth-a"), (NS_B, "veth-b")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    cap = subprocess.Popen(["ip", "netns", "exec", NS_A, "timeout", "20", L45, "decode", "-i", "veth-a",
                            "-f", "icmp", "-c", "4", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let the capture open before the first ping
    sh("ip", "netns", "exec", NS_B, "ping", "-c", "2", "-i", "0.2", "-W", "2", "192.0.2.1", check=False)
    out, err = cap.communicate(timeout=25)
    objs = [json.loads(line) for line in out.splitlines() if line.strip()]
    types = sorted(o.get("icmp", {}).get("type") for o in objs)
    check("decode -i captures 2 real echo requests and 2 replies, then stops at -c 4",
          cap.returncode == 0 and types == [0, 0, 8, 8], f"rc={cap.returncode} {types} {err!r}")
    check("live packets carry addresses, valid checksums and increasing frame numbers",
          all(o["ip"]["src"] in ("192.0.2.1", "192.0.2.2") and o["csum"] == "ok" for o in objs)
          and [o["frame"] for o in objs] == sorted(o["frame"] for o in objs), objs)

    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", L45, "decode",
                        "-i", "lo"], capture_output=True, text=True, timeout=20)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    check("without privilege: exit 2 and one line saying what is needed",
          p.returncode == 2 and len(lines) == 1 and "root" in lines[0], f"rc={p.returncode} {p.stderr!r}")
finally:
    subprocess.run(["ip", "netns", "del", NS_A], capture_output=True)
    subprocess.run(["ip", "netns", "del", NS_B], capture_output=True)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
