#!/usr/bin/python3
"""The `l45` command's contract: exit codes, one clear error line, output shapes.

Usage: cli_test.py L45_BINARY SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

L45, SRC = sys.argv[1], sys.argv[2]
SAMPLE = os.path.join(SRC, "data", "sample.pcap")
results = []


def run(*args, stdin=None):
    return subprocess.run([L45, *args], capture_output=True, text=True, input=stdin, timeout=60)


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def one_error_line(p, *needles):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    text = p.stderr
    return (p.returncode == 2 and len(lines) >= 1 and lines[0].startswith("l45: error:")
            and all(n in text for n in needles)), f"rc={p.returncode} stderr={p.stderr!r}"


p = run("--version")
check("--version prints the version", p.returncode == 0 and p.stdout.startswith("l45 "), p)
p = run("help")
check("help lists decode", p.returncode == 0 and "decode" in p.stdout, p.stdout)
p = run("help", "decode")
check("help decode shows its options", p.returncode == 0 and "--json" in p.stdout, p.stdout)
p = run("decode", "--help")
check("decode --help teaches with an example", p.returncode == 0 and "Examples" in p.stdout, p.stdout)

check("missing file: exit 2, one line naming it", *one_error_line(run("decode", "-r", "/nonexistent.pcap"), "/nonexistent.pcap"))
check("not a capture: exit 2, one line", *one_error_line(run("decode", "-r", os.path.join(SRC, "README.md")), "not a pcap"))
check("bad filter: exit 2, one line", *one_error_line(run("decode", "-r", SAMPLE, "-f", "tcp prot 80"), "bad filter"))
check("unknown interface: exit 2, one line", *one_error_line(run("decode", "-i", "l45-no-such-if0"), "l45-no-such-if0"))
check("neither -r nor -i: exit 2", *one_error_line(run("decode")))
check("both -r and -i: exit 2", run("decode", "-r", SAMPLE, "-i", "lo").returncode == 2)
check("unknown command: exit 2", run("no-such-command").returncode == 2)

p = run("decode", "-r", SAMPLE, "-c", "5")
check("-c 5 prints 5 lines", p.returncode == 0 and len(p.stdout.splitlines()) == 5, p.stdout)

p = run("decode", "-r", SAMPLE, "--json", "-c", "3")
objs = [json.loads(l) for l in p.stdout.splitlines()]
check("--json: one object per line, frames 1..3", [o["frame"] for o in objs] == [1, 2, 3], p.stdout)
p = run("decode", "-r", SAMPLE, "--json", "-f", "tcp", "-c", "1")
objs = [json.loads(l) for l in p.stdout.splitlines()]
check("--json: the first TCP packet is the client's SYN to nginx",
      len(objs) == 1 and objs[0]["tcp"]["flags"] == "S" and objs[0]["ip"]["dst"] == "198.51.100.1"
      and objs[0]["tcp"]["dport"] == 80 and objs[0]["csum"] == "ok", objs)

# The filter is tcpdump's language: the count must equal tcpdump's for the same expression.
tcpdump = subprocess.run(["tcpdump", "-n", "-r", SAMPLE, "ip6"], capture_output=True, text=True)
want = len(tcpdump.stdout.splitlines())
p = run("decode", "-r", SAMPLE, "-f", "ip6", "--json")
objs = [json.loads(l) for l in p.stdout.splitlines()]
check(f"-f ip6 keeps tcpdump's {want} packets, all IPv6",
      want > 0 and len(objs) == want and all(o["ip"]["version"] == 6 for o in objs), f"{len(objs)} vs {want}")

with open(SAMPLE, "rb") as f:
    data = f.read()
p = subprocess.run([L45, "decode", "-r", "-", "-c", "2"], input=data, capture_output=True, timeout=60)
check("-r - reads a capture from stdin", p.returncode == 0 and len(p.stdout.splitlines()) == 2, p.stderr)

# A truncated capture: every whole packet is printed, then one error line with the offset.
with tempfile.NamedTemporaryFile(suffix=".pcap") as t:
    t.write(data[: len(data) // 2 + 7])
    t.flush()
    full = len(run("decode", "-r", SAMPLE).stdout.splitlines())
    p = run("decode", "-r", t.name)
    n = len(p.stdout.splitlines())
    check("truncated capture: packets before the cut are printed, then an error with the byte offset",
          p.returncode == 2 and 0 < n < full and "byte" in p.stderr, f"rc={p.returncode} n={n} {p.stderr!r}")

p = run("decode", "-r", SAMPLE, "--stats")
check("--stats prints totals on stderr", p.returncode == 0 and "packets" in p.stderr, p.stderr)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
