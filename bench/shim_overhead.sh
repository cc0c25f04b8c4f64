#!/usr/bin/env bash
# The shim's cost on bulk TCP (issue 6): iperf3 over a veth pair between two network namespaces,
# the client run plain, under `l45 run` with the `monitor` module, and under `l45 run` with no
# module matched, in alternating rounds (the order turning each round) so drift hits all three
# alike. Prints each mode's median throughput and its ratio to plain, and the median of the
# per-round ratios with their quartiles (goals: monitor >= 0.99, no module >= 0.995). On a
# shared VM the quartiles span several percent: the shim's cost is below that noise.
#
#   bench/shim_overhead.sh [ROUNDS=7] [SECONDS=3]      as root; L45=path/to/l45 to pick the binary
#
# Addresses 198.51.100.1 and .2 inside the namespaces only; every process runs under timeout and
# is stopped by PID; the namespaces and the temporary module directories go on exit.
set -euo pipefail
ROUNDS=${1:-7}
SECS=${2:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
L45=$(readlink -f "${L45:-$HERE/build/tools/l45/l45}")
[ "$(id -u)" -eq 0 ] || { echo "shim_overhead: needs root (network namespaces)" >&2; exit 2; }
[ -x "$L45" ] || { echo "shim_overhead: $L45 not built" >&2; exit 2; }
command -v iperf3 >/dev/null || { echo "shim_overhead: iperf3 missing (scripts/install-deps.sh)" >&2; exit 2; }

id=$$
A=l45so-a$id B=l45so-b$id
tmp=$(mktemp -d)
srv=""
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

source "$HERE/bench/iperf_pair.sh"
iperf_pair $((ROUNDS * (SECS + 5) * 3 + 60))

# Module directories: root's, not group- or world-writable (the shim's rule).
mkdir -m 755 "$tmp/monitor" "$tmp/none"
cat >"$tmp/monitor/10-monitor.toml" <<'EOF'
name = "bench-monitor"
module = "monitor"
order = 10
[match]
program = "iperf3"
EOF
cat >"$tmp/none/10-nothing.toml" <<'EOF'
name = "matches-nothing"
module = "monitor"
order = 10
[match]
program = "no-such-program"
EOF

client=(timeout $((SECS + 30)) iperf3 -c 198.51.100.2 -t "$SECS" -J)
run() {
  case $1 in
    plain) ip netns exec "$A" "${client[@]}" ;;
    monitor) ip netns exec "$A" "$L45" run --modules "$tmp/monitor" --rundir "$tmp/run" -- "${client[@]}" ;;
    none) ip netns exec "$A" "$L45" run --modules "$tmp/none" --rundir "$tmp/run" -- "${client[@]}" ;;
  esac | jq -r '.end.sum_received.bits_per_second'
}

echo "shim_overhead: $ROUNDS rounds of plain, monitor, no module ($SECS s iperf3 each)"
: >"$tmp/results"
modes=(plain monitor none)
for ((r = 1; r <= ROUNDS; r++)); do
  # The order turns each round, so no mode always runs first or last (a drift within a round,
  # the iperf3 server warming up or the machine's load changing, does not favour one mode).
  for ((k = 0; k < 3; k++)); do
    mode=${modes[$(((r + k) % 3))]}
    bps=$(run "$mode")
    echo "$mode $bps" >>"$tmp/results"
    awk -v r="$r" -v m="$mode" -v b="$bps" 'BEGIN { printf "  round %d %-8s %8.0f Mbit/s\n", r, m, b / 1e6 }'
  done
  # The monitor module really ran: its process published its counters.
  if [ "$r" -eq 1 ] && ! ls "$tmp"/run/*.stats >/dev/null 2>&1; then
    echo "shim_overhead: no stats in $tmp/run: the monitor module did not load" >&2
    exit 1
  fi
done

/usr/bin/python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, bps = line.split()
    rows.setdefault(mode, []).append(float(bps))
plain = statistics.median(rows["plain"])
# Paired too: each round's run against the same round's plain run, so a drift slower than a
# round cancels; the median of those ratios, and their spread (quartiles).
print(f"{'mode':10} {'median Mbit/s':>14} {'ratio':>7} {'paired':>7} {'quartiles':>13}  goal")
for mode, goal in (("plain", ""), ("monitor", ">= 0.99"), ("none", ">= 0.995")):
    m = statistics.median(rows[mode])
    pr = [x / p for x, p in zip(rows[mode], rows["plain"])]
    q = statistics.quantiles(pr, n=4) if len(pr) > 1 else [pr[0]] * 3
    print(f"{mode:10} {m / 1e6:14.0f} {m / plain:7.3f} {statistics.median(pr):7.3f} "
          f"{q[0]:6.3f}-{q[2]:.3f}  {goal}")
PY
