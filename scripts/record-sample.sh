#!/usr/bin/env bash
# Records data/sample.pcap: real nginx and curl traffic between two network namespaces over a
# veth pair, captured by tcpdump on the client side. Offloads are off so the capture holds
# real <=1514-byte frames with valid checksums.
#
#   scripts/record-sample.sh [OUT.pcap]      (as root; default data/sample.pcap)
#
# Transfers: a small page, two requests on one keep-alive connection, a 404, a 256 KiB file
# over IPv6, and a 256 KiB file with every 25th server segment dropped by an nftables rule
# (numgen inc), so the trace holds real retransmissions. Addresses: 198.51.100.0/24 and
# fd00:45::/64 only; no route out. Every process runs under `timeout`; namespaces and
# processes are removed on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(readlink -f "${1:-$HERE/data/sample.pcap}")
[ "$(id -u)" -eq 0 ] || { echo "record-sample: needs root (network namespaces, tcpdump)" >&2; exit 2; }
for t in nginx curl tcpdump ethtool ip nft; do
  command -v $t >/dev/null || { echo "record-sample: missing $t (run scripts/install-deps.sh)" >&2; exit 2; }
done

SUF=$$
NS_S=l45rs-srv$SUF NS_C=l45rs-cli$SUF
TMP=$(mktemp -d /tmp/l45-record.XXXXXX)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  ip netns del "$NS_S" 2>/dev/null
  ip netns del "$NS_C" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS_S"
ip netns add "$NS_C"
ip -n "$NS_S" link add veth-s type veth peer name veth-c netns "$NS_C"
ip -n "$NS_S" addr add 198.51.100.1/24 dev veth-s
ip -n "$NS_C" addr add 198.51.100.2/24 dev veth-c
ip -n "$NS_S" addr add fd00:45::1/64 dev veth-s nodad
ip -n "$NS_C" addr add fd00:45::2/64 dev veth-c nodad
for nd in "$NS_S veth-s" "$NS_C veth-c"; do
  set -- $nd
  ip -n "$1" link set lo up
  ip -n "$1" link set "$2" mtu 1500 up
  ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off >/dev/null
done

# Content: deterministic bytes, so the payload is the same on every recording.
mkdir -p "$TMP/www" "$TMP/logs"
printf '<html><body><h1>l45 sample</h1><p>hello from nginx</p></body></html>\n' >"$TMP/www/index.html"
/usr/bin/python3 - "$TMP/www" <<'PY'
import sys, hashlib
out = sys.argv[1]
def blob(name, n):
    data = bytearray()
    i = 0
    while len(data) < n:
        data += hashlib.sha256(f"{name}:{i}".encode()).digest()
        i += 1
    open(f"{out}/{name}", "wb").write(bytes(data[:n]))
blob("small.bin", 2000)
blob("big.bin", 256 * 1024)
PY
cat >"$TMP/nginx.conf" <<NGX
worker_processes 1;
daemon off;
user root;
pid $TMP/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  keepalive_timeout 5s;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  types { text/html html; application/octet-stream bin; }
  server {
    listen 198.51.100.1:80;
    listen [fd00:45::1]:80;
    root $TMP/www;
  }
}
NGX
ip netns exec "$NS_S" timeout 60 nginx -c "$TMP/nginx.conf" &
PIDS+=($!)

# Loss for one transfer only: every 25th of the server's segments to client port 40100 is
# dropped at the client's input hook. Segments there are real (GRO off), and tcpdump sees
# them before netfilter does, so the capture holds each original and its retransmission, as
# a middlebox in front of a lossy last hop would.
ip netns exec "$NS_C" nft -f - <<'NFT'
table inet l45loss {
  chain in {
    type filter hook input priority 0;
    tcp sport 80 tcp dport 40100 tcp flags & (syn | fin | rst) == 0 numgen inc mod 25 == 7 counter drop
  }
}
NFT

ip netns exec "$NS_C" timeout 60 tcpdump -q -n -U --immediate-mode -B 16384 -i veth-c -s 0 -w "$TMP/out.pcap" 2>"$TMP/tcpdump.err" &
PIDS+=($!)

# Wait (bounded) for nginx to listen and tcpdump to start capturing.
for _ in $(seq 50); do
  ip netns exec "$NS_S" ss -ltn | grep -q '198.51.100.1:80' && grep -q listening "$TMP/tcpdump.err" && break
  sleep 0.1
done

C="ip netns exec $NS_C timeout 20 curl -sS -o /dev/null --max-time 15"
$C http://198.51.100.1/
$C -o /dev/null http://198.51.100.1/small.bin http://198.51.100.1/index.html  # keep-alive: 2 requests
$C http://198.51.100.1/missing                                   # 404
$C -g 'http://[fd00:45::1]/big.bin'                              # IPv6
$C --local-port 40100 -w "record-sample: lossy transfer: %{size_download} bytes in %{time_total} s\n" http://198.51.100.1/big.bin

sleep 0.5
kill -INT "${PIDS[1]}" 2>/dev/null || true
wait "${PIDS[1]}" 2>/dev/null || true
mkdir -p "$(dirname "$OUT")"
grep -E "captured|dropped" "$TMP/tcpdump.err" | sed "s/^/record-sample: tcpdump: /"
cp "$TMP/out.pcap" "$OUT"
echo "record-sample: wrote $OUT ($(stat -c %s "$OUT") bytes)"
