#!/usr/bin/env bash
# `make bench`: l45's benchmarks beside ../shared/bench-peers, measured in one run.
#
#   scripts/bench.sh BUILD_DIR [REPEATS=7]
#
# Builds the peers (into /tmp/l45-peers/bin), generates the benchmark traces when missing
# (real nginx + wrk over veth, as root: ../shared/bench-peers/gen_trace.sh), then runs
# `floor iter` and l45's decode_bench round-robin, pinned to one CPU, REPEATS times each, and
# prints medians and the ratio. Only ratios from one run are comparable.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?build dir}
REPS=${2:-7}
PEERS=$HERE/../shared/bench-peers
BIN=${BIN:-/tmp/l45-peers/bin}
TRACES=${TRACES:-/tmp/l45-traces}
[ -d "$PEERS" ] || { echo "bench: $PEERS not found (the shared benchmark harness)" >&2; exit 2; }
"$HERE/scripts/install-deps.sh" bench
make -s -C "$PEERS" BIN="$BIN" >/dev/null
mkdir -p "$TRACES"
if [ ! -s "$TRACES/bench-small.pcap" ]; then
  echo "bench: generating $TRACES/bench-small.pcap (about 20 s)"
  "$PEERS/gen_trace.sh" -o "$TRACES/bench-small.pcap" >/dev/null
fi
if [ ! -s "$TRACES/many-flows.pcap" ]; then
  echo "bench: generating $TRACES/many-flows.pcap (about 20 s)"
  NGINX_WORKERS=2 "$PEERS/gen_trace.sh" -o "$TRACES/many-flows.pcap" -s 256 -w 1 -k 1 -c 16000 \
    -n 40 -d 8 -r none >/dev/null
fi

PIN=(taskset -c 1)
[ "$(nproc)" -gt 1 ] || PIN=()
for trace in bench-small many-flows; do
  T=$TRACES/$trace.pcap
  out=$(mktemp)
  for ((r = 1; r <= REPS; r++)); do
    "${PIN[@]}" "$BIN/floor" iter "$T" >>"$out"
    "${PIN[@]}" "$BUILD/bench/decode_bench" "$T" 1 >>"$out"
    "${PIN[@]}" "$BUILD/bench/decode_bench" "$T" 1 --csum >>"$out"
  done
  /usr/bin/python3 - "$out" "$trace" "$REPS" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    kv = dict(x.split("=", 1) for x in line.split()[1:])
    rows.setdefault(kv["peer"], []).append(kv)
floor = statistics.median(float(r["sec"]) for r in rows["floor-iter"])
print(f"\n{sys.argv[2]}: {rows['floor-iter'][0]['packets']} packets, median of {sys.argv[3]} runs each, pinned to CPU 1")
print(f"{'peer':<18}{'sec':>10}{'Mpps':>9}{'ns/pkt':>9}{'Gbps':>9}{'x floor-iter speed':>20}")
for peer, rs in rows.items():
    sec = statistics.median(float(r["sec"]) for r in rs)
    n = int(rs[0]["packets"]); b = int(rs[0]["bytes"])
    print(f"{peer:<18}{sec:>10.4f}{n/sec/1e6:>9.2f}{sec*1e9/n:>9.1f}{b*8/sec/1e9:>9.2f}{floor/sec:>20.2f}")
PY
  rm -f "$out"
done
