#!/usr/bin/env bash
# `make bench`: l45's benchmarks beside ../shared/bench-peers, measured in one run.
#
#   scripts/bench.sh BUILD_DIR [REPEATS=7]
#
# Builds the peers (into /tmp/l45-peers/bin), generates the benchmark traces when missing
# (real nginx + wrk over veth, as root: ../shared/bench-peers/gen_trace.sh), then per trace:
#  1. `floor iter` and l45's decode_bench round-robin, pinned to one CPU, REPEATS times each:
#     medians and the ratio (the packet layer alone);
#  2. the flow engine beside the peers: ../shared/bench-peers/run_peers.sh with floor-iter,
#     floor-flow, libnids, libtins and `l45 bench` (L45=BUILD/tools/l45/l45), round-robin,
#     pinned to CPU 1; its summary.md, then one table of medians: Mpps, speed relative to
#     libnids and the floors, state memory per peak-concurrent flow, and whether the
#     reassembled bytes per direction equal libnids';
# then the event layer and two workers, where a run's time goes (parsing, flow and TCP state,
# reassembly), and last `l45 bench --synthetic-flows 1000000`: the memory of 1M open flows
# with empty buffers. Only ratios from one run are comparable. Raw outputs stay in $RUNS
# (default /tmp/l45-bench-runs/<trace>/raw).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?build dir}
REPS=${2:-7}
PEERS=$HERE/../shared/bench-peers
BIN=${BIN:-/tmp/l45-peers/bin}
TRACES=${TRACES:-/tmp/l45-traces}
RUNS=${RUNS:-/tmp/l45-bench-runs}
L45_BIN=$(readlink -f "$BUILD/tools/l45/l45")
[ -x "$L45_BIN" ] || { echo "bench: $BUILD/tools/l45/l45 not built" >&2; exit 2; }
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

# The flow engine beside the peers (run_peers.sh knows l45 as a peer: `$L45 bench -r TRACE`).
mkdir -p "$RUNS"
CPU=1
[ "$(nproc)" -gt 1 ] || CPU=none
for trace in bench-small many-flows; do
  T=$TRACES/$trace.pcap
  rm -rf "${RUNS:?}/$trace"
  echo
  echo "bench: $trace: floor-iter floor-flow libnids libtins l45, $REPS rounds (run_peers.sh)"
  L45=$L45_BIN BIN=$BIN "$PEERS/run_peers.sh" -r "$REPS" -c "$CPU" -o "$RUNS/$trace" \
    -p "floor-iter floor-flow libnids libtins l45" "$T" >"$RUNS/$trace.log" 2>&1 ||
    { cat "$RUNS/$trace.log" >&2; exit 1; }
  /usr/bin/python3 - "$RUNS/$trace" "$trace" <<'PY'
import os, re, statistics, sys
d, name = sys.argv[1], sys.argv[2]
runs = {}
for f in sorted(os.listdir(os.path.join(d, "raw"))):
    if not f.endswith(".out"):
        continue
    peer, tag = f[:-4].rsplit(".", 1)
    m = re.search(r"^RESULT (.*)$", open(os.path.join(d, "raw", f)).read(), re.M)
    if tag != "tiny" and m:
        runs.setdefault(peer, []).append(dict(kv.split("=", 1) for kv in m.group(1).split()))
def med(peer, key):
    return statistics.median(float(r[key]) for r in runs[peer])
sec = {p: med(p, "sec") for p in runs}
n = int(runs["libnids"][0]["packets"])
peak = int(runs["floor-flow"][0]["peak_concurrent"])
nids = runs["libnids"][0]
print(f"\n{name}: {n:,} packets, {peak:,} peak concurrent flows (floor-flow), medians of "
      f"{len(runs['libnids'])} rounds, pinned; raw outputs in {d}/raw")
print(f"| peer | median s | Mpps | x libnids pps | x floor-iter pps | x floor-flow pps "
      f"| state MB | state B / peak flow | flows | c2s = libnids | s2c = libnids |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
for p in ["floor-iter", "floor-flow", "libnids", "libtins", "l45"]:
    if p not in runs:
        continue
    r = runs[p][0]
    state = statistics.median(int(x["hwm_kb"]) - int(x["rss_load_kb"]) for x in runs[p])
    same = lambda k: "-" if p.startswith("floor") else ("yes" if r[k] == nids[k] else
                                                       f"no ({int(r[k]) - int(nids[k]):+,})")
    print(f"| {p} | {sec[p]:.4f} | {n / sec[p] / 1e6:.2f} | {sec['libnids'] / sec[p]:.2f} | "
          f"{sec['floor-iter'] / sec[p]:.2f} | {sec['floor-flow'] / sec[p]:.2f} | "
          f"{state / 1024:.1f} | {state * 1024 / peak:,.0f} | {r['flows']} | {same('c2s')} | "
          f"{same('s2c')} |")
if "l45" in runs:
    r = runs["l45"][0]
    print(f"\nl45: peak_flows={r['peak_flows']} (open + closed within the 5 s close delay), "
          f"engine_bytes_per_flow={r['engine_bytes_per_flow']} (Engine::memory_bytes() / "
          f"peak_flows, table preallocated for max_flows={r['max_flows']}), gaps={r['gaps']}, "
          f"mismatches={r['mismatches']}, partial={r['partial']}, evicted={r['evicted']}")
PY
done

# libnids and libtins drop data sent after an accepted RST (the receiver's view); l45 delivers
# it by default (the wire's, as tshark). With --drop-after-reset the bytes must equal libnids'.
echo
echo "bench: l45 bench --drop-after-reset (the receiver's view) against libnids' bytes"
for trace in bench-small many-flows; do
  nids=$(grep -h '^RESULT' "$(ls "$RUNS/$trace"/raw/libnids.[0-9]*.out | head -1)")
  ours=$("${PIN[@]}" "$L45_BIN" bench -r "$TRACES/$trace.pcap" --drop-after-reset)
  /usr/bin/python3 - "$trace" "$nids" "$ours" <<'PY'
import sys
kv = lambda line: dict(x.split("=", 1) for x in line.split()[1:])
n, o = kv(sys.argv[2]), kv(sys.argv[3])
for k in ("c2s", "s2c"):
    print(f"{sys.argv[1]}: {k} libnids {int(n[k]):,} l45 {int(o[k]):,} "
          f"{'equal' if n[k] == o[k] else 'DIFFERENT'}")
PY
done

# The monitoring layer's two goals (issue 4), in alternating rounds on each trace: the engine
# alone (`l45 bench`), the same through one handler subscribed to every built-in event
# (`--events`, goal: at least 0.8 of the engine's rate) and two workers (`-c 2`, goal: at least
# 1.8x one). Medians of sec (the timed packet loop) and of cpu_max_sec (the busiest worker's
# CPU time, what sec would be with each worker alone on its core). In the same rounds, where
# the engine's time goes: parsing (decode_bench --key: decode, key and hash each packet, as the
# engine does before its table lookup), the engine without reassembly (--no-reassembly); the
# differences of the medians are the flow table with both endpoints' TCP state, and reassembly.
echo
echo "bench: the event layer, two workers and where the time goes, $REPS alternating rounds"
for trace in bench-small many-flows; do
  out=$(mktemp)
  for ((r = 1; r <= REPS; r++)); do
    for mode in plain events workers state parse; do
      case $mode in
        plain) args=() ;;
        events) args=(--events) ;;
        workers) args=(-c 2) ;;
        state) args=(--no-reassembly) ;;
        parse)
          echo "MODE parse $("$BUILD/bench/decode_bench" "$TRACES/$trace.pcap" 1 --key)" >>"$out"
          continue
          ;;
      esac
      echo "MODE $mode $("$L45_BIN" bench -r "$TRACES/$trace.pcap" "${args[@]}")" >>"$out"
    done
  done
  /usr/bin/python3 - "$out" "$trace" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, rest = line.split(" ", 2)[1:]
    kv = dict(x.split("=", 1) for x in rest.split()[1:])
    runs.setdefault(mode, []).append(kv)
med = lambda m, k: statistics.median(float(r[k]) for r in runs[m])
p, e, w = med("plain", "sec"), med("events", "sec"), med("workers", "sec")
wc = med("workers", "cpu_max_sec")
print(f"{sys.argv[2]}: engine {p:.4f} s; --events {e:.4f} s = {p / e:.3f} of the engine's rate "
      f"(goal >= 0.8); -c 2 {w:.4f} s = {p / w:.2f}x one worker (goal >= 1.8; busiest worker's "
      f"CPU {wc:.4f} s = {med('plain', 'cpu_sec') / wc:.2f}x)")
a, st = med("parse", "sec"), med("state", "sec")
print(f"{sys.argv[2]}: engine {p:.4f} s = parsing (decode, key, hash) {a:.4f} s ({a / p:.0%}) + "
      f"flow table and TCP state {st - a:.4f} s ({(st - a) / p:.0%}) + reassembly {p - st:.4f} s "
      f"({(p - st) / p:.0%})")
PY
  rm -f "$out"
done

echo
echo "bench: 1,000,000 synthetic flows (handshakes, empty buffers), pinned"
"${PIN[@]}" "$L45_BIN" bench --synthetic-flows 1000000 >"$RUNS/synthetic.out"
/usr/bin/python3 - "$RUNS/synthetic.out" <<'PY'
import sys
for line in open(sys.argv[1]):
    if line.startswith("RESULT"):
        kv = dict(x.split("=", 1) for x in line.split()[1:])
        print(f"open flows {int(kv['open_flows']):,}; state (VmHWM - RSS after building the "
              f"frames) {float(kv['state_mib']):.1f} MiB = {kv['state_bytes_per_flow']} B/flow; "
              f"Engine::memory_bytes() {float(kv['engine_mib']):.1f} MiB = "
              f"{kv['engine_bytes_per_flow']} B/flow (sizeof Flow {kv['sizeof_flow']}, TCP state "
              f"{kv['sizeof_tcp_state']}); goals: <= 512 B/flow, 1M flows <= 1024 MiB")
PY
