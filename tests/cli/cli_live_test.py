#!/usr/bin/python3
"""Live captures end to end, in network namespaces: `l45 decode -i` on real ping traffic and the
missing-privilege error; `l45 conn -i` and `l45 midstat -i` on real nginx and curl traffic.
Needs root, network namespaces, nginx and curl; otherwise exits 77 (skipped) with one line.

Usage: cli_live_test.py L45_BINARY
"""
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
from live import procs, start, stop  # noqa: E402

L45 = sys.argv[1]
if os.geteuid() != 0:
    print("SKIP: needs root (network namespaces, live capture)")
    sys.exit(77)
missing = [t for t in ("nginx", "curl", "ss", "ethtool") if not shutil.which(t)]
if missing:
    print(f"SKIP: needs {', '.join(missing)} (scripts/install-deps.sh)")
    sys.exit(77)

suffix = str(os.getpid())
probe = f"l45cli-p{suffix}"
if subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=30).returncode != 0:
    print("SKIP: cannot create a network namespace here ('ip netns add' failed)")
    sys.exit(77)
subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
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


# ---- l45 conn -i and l45 midstat -i on real HTTP: nginx and curl in two namespaces -----------
# Server 198.51.100.1 (NS_S, veth-s, where l45 listens), client 198.51.100.2 (NS_C, veth-c).
# Offloads are off so the frames l45 sees are the real segments. Every process below is started
# with its own session and killed by its pid in `finally`; every wait has a timeout.
K = 5
BODY = b"<html><body><h1>l45 live</h1>" + b"x" * 3000 + b"</body></html>\n"
BIG = 8 << 20  # nginx sends it at 256 KiB/s: the connection outlives the midstat run




def curl(*args, timeout=15):
    return sh("ip", "netns", "exec", NS_C, "curl", "-sS", "--max-time", str(timeout - 5), *args,
              check=False)


NS_S, NS_C = f"l45cli-s{suffix}", f"l45cli-c{suffix}"
tmp = tempfile.mkdtemp(prefix="l45-live-")
try:
    sh("ip", "netns", "add", NS_S)
    sh("ip", "netns", "add", NS_C)
    sh("ip", "-n", NS_S, "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns", NS_C)
    sh("ip", "-n", NS_S, "addr", "add", "198.51.100.1/24", "dev", "veth-s")
    sh("ip", "-n", NS_C, "addr", "add", "198.51.100.2/24", "dev", "veth-c")
    for ns, dev in ((NS_S, "veth-s"), (NS_C, "veth-c")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
           "tx", "off", check=False)

    os.makedirs(f"{tmp}/www")
    with open(f"{tmp}/www/index.html", "wb") as f:
        f.write(BODY)
    with open(f"{tmp}/www/big.bin", "wb") as f:
        f.write(os.urandom(BIG))
    live.nginx_conf(f"{tmp}/nginx.conf", tmp, f"""\
  access_log off;
  keepalive_timeout 30s;
  server {{
    listen 198.51.100.1:80;
    root {tmp}/www;
    location = /big.bin {{ limit_rate 256k; }}  # the slow download midstat watches
  }}""")
    nginx = start(["ip", "netns", "exec", NS_S, "nginx", "-e", f"{tmp}/error.log", "-p", tmp, "-c",
                   f"{tmp}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and nginx.poll() is None:
        if "LISTEN" in sh("ip", "netns", "exec", NS_S, "ss", "-Hltn", "sport = :80").stdout:
            break
        time.sleep(0.05)
    listening = "LISTEN" in sh("ip", "netns", "exec", NS_S, "ss", "-Hltn", "sport = :80").stdout
    check("nginx listens on 198.51.100.1:80 in the server namespace", listening,
          open(f"{tmp}/error.log").read() if os.path.exists(f"{tmp}/error.log") else "")

    # -- l45 conn -i: K single-request connections and one keep-alive pair
    conn = start(["ip", "netns", "exec", NS_S, L45, "conn", "-i", "veth-s", "--json"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let the capture open before the first SYN
    url = "http://198.51.100.1/index.html"
    codes = [curl("-o", "/dev/null", "-w", "%{http_code} %{num_connects}", url).stdout for _ in range(K)]
    pair = curl("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n", url, url).stdout.split()
    # curl closes first; nginx answers the FIN at once. Wait (bounded) until the server has no
    # connection left on port 80 but TIME_WAIT ones, then give l45 a moment to read the last ACK.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ss = sh("ip", "netns", "exec", NS_S, "ss", "-Htn", "state", "connected", "sport = :80").stdout
        if all("TIME-WAIT" in l for l in ss.splitlines()):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    out, err = stop(conn, signal.SIGINT, timeout=10)
    check("curl made K single-request connections and one keep-alive connection with 2 requests",
          codes == ["200 1"] * K and pair == ["1", "0"], f"{codes} {pair}")
    try:
        recs = [json.loads(l) for l in out.splitlines() if l.strip()]
    except ValueError as e:
        recs = []
        err += f" (bad JSON: {e})"
    web = [r for r in recs if r["proto"] == "tcp" and r["id.resp_p"] == 80]
    check(f"conn -i: exits 0 on SIGINT, exactly K+1 = {K + 1} TCP connections to port 80",
          conn.returncode == 0 and len(web) == K + 1 and len({r["uid"] for r in web}) == K + 1,
          f"rc={conn.returncode} {len(web)} {err!r} {out!r}")
    check("conn -i: every connection closed cleanly: conn_state SF, history starts with ShAD",
          web and all(r["conn_state"] == "SF" and r.get("history", "").startswith("ShAD") for r in web),
          [(r["conn_state"], r.get("history"), r["l45_end"]) for r in web])
    check("conn -i: orig is curl (198.51.100.2), resp is nginx (198.51.100.1:80)",
          web and all(r["id.orig_h"] == "198.51.100.2" and r["id.resp_h"] == "198.51.100.1" for r in web),
          web)
    sizes = sorted(r.get("resp_bytes", 0) for r in web)
    check(f"conn -i: resp_bytes >= the body ({len(BODY)} B), twice the body on the keep-alive one",
          len(sizes) == K + 1 and sizes[0] >= len(BODY) and sizes[-1] >= 2 * len(BODY)
          and all(r.get("orig_bytes", 0) > 0 for r in web), sizes)

    # -- l45 midstat -i: a slow download is listed while it runs
    mid = start(["ip", "netns", "exec", NS_S, L45, "midstat", "-i", "veth-s"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    slow = start(["ip", "netns", "exec", NS_C, "curl", "-sS", "-o", "/dev/null", "--max-time", "20",
                  "-w", "%{http_code} %{size_download}",
                  "http://198.51.100.1/big.bin"],
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.2)
    out, err = stop(mid, signal.SIGINT, timeout=10)
    still_running = slow.poll() is None
    curl_out = stop(slow)[0]
    tables, cur = [], None
    for line in out.splitlines():
        if line.startswith("# "):
            cur = []
            tables.append(cur)
        elif cur is not None and line and not line.startswith("PROTO"):
            cur.append(line.split())
    live = [t for t in tables
            if any(r[0] == "tcp" and r[2].startswith("198.51.100.2:") and r[4] == "198.51.100.1:80"
                   and r[3] == "ESTABLISHED" and r[5] == "ESTABLISHED" for r in t)]
    check("midstat -i for ~2 s: at least two tables (one a second, one at exit), exit 0 on SIGINT",
          mid.returncode == 0 and len(tables) >= 2, f"rc={mid.returncode} {err!r} {out!r}")
    check("midstat -i: the tables list the live download, both sides ESTABLISHED",
          still_running and len(live) >= 1, f"curl running={still_running} ({curl_out!r}) {out!r}")

    # -- l45 account -i with one worker and with two, side by side on the same interface: the
    # same bill, and the downloads' bytes in it.
    with open(f"{tmp}/subs.txt", "w") as f:
        f.write("# the client namespace\n198.51.100.2/32 client\n")
    bills = {}
    for n in (1, 2):
        bills[n] = start(["ip", "netns", "exec", NS_S, L45, "account", "-i", "veth-s", "-c", str(n),
                          "--subscribers", f"{tmp}/subs.txt", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    got = [curl("-o", "/dev/null", "-w", "%{size_download}", url).stdout for _ in range(K)]
    time.sleep(0.5)
    outs = {n: stop(p, signal.SIGINT, timeout=10) for n, p in bills.items()}
    subs = {}
    for n, (out, err) in outs.items():
        try:
            subs[n] = [json.loads(l) for l in out.splitlines() if l.strip() and '"id"' in l]
        except ValueError:
            subs[n] = []
    down = sum(int(x) for x in got if x.isdigit())
    check(f"account -i -c 2 bills what -c 1 bills, live ({K} downloads, {down} B of bodies)",
          all(bills[n].returncode == 0 for n in bills) and len(subs[1]) == 1 and subs[1] == subs[2]
          and subs[1][0]["bytes_down"] >= down > 0,
          f"rc={[bills[n].returncode for n in bills]} {subs} {[outs[n][1] for n in outs]}")
finally:
    for p in procs:
        stop(p)
    subprocess.run(["ip", "netns", "del", NS_S], capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", NS_C], capture_output=True, timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
