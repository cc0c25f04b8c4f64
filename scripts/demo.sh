#!/usr/bin/env bash
# `make demo`: l45's main job on the capture that ships in the repository.
set -euo pipefail
L45=${1:?path to the l45 binary}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SAMPLE=$HERE/data/sample.pcap
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "l45 decode -r data/sample.pcap -c 12"
"$L45" decode -r "$SAMPLE" -c 12
say "l45 decode -r data/sample.pcap -f 'tcp port 40100 and tcp[tcpflags] & tcp-syn != 0' --json"
"$L45" decode -r "$SAMPLE" -f 'tcp port 40100 and tcp[tcpflags] & tcp-syn != 0' --json
say "l45 decode -r data/sample.pcap --stats >/dev/null   (the totals and any parse error, by name)"
"$L45" decode -r "$SAMPLE" --stats >/dev/null

# The flow engine: connections, their reassembled bytes, and both endpoints' TCP states.
say "l45 conn -r data/sample.pcap   (Zeek's conn.log: one line per connection)"
"$L45" conn -r "$SAMPLE"
say "l45 midstat -r data/sample.pcap --every 0.01   (the tracked flows every 10 ms of the 38 ms capture)"
"$L45" midstat -r "$SAMPLE" --every 0.01
OUT=/tmp/l45-demo-streams
rm -rf "$OUT"
say "l45 follow -r data/sample.pcap -o $OUT   (each side's bytes in a file)"
FOLLOW=$("$L45" follow -r "$SAMPLE" -o "$OUT")
echo "$FOLLOW"
FIRST=$OUT/${FOLLOW%% *}.orig   # the first word is the first connection's uid
say "head -c 300 $FIRST"
head -c 300 "$FIRST"
echo
echo "The capture was recorded by scripts/record-sample.sh (nginx and curl in two network"
echo "namespaces); see README.md for what else l45 does."
