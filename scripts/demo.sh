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
echo
echo "The capture was recorded by scripts/record-sample.sh (nginx and curl in two network"
echo "namespaces); see README.md for what else l45 does."
