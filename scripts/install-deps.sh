#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need.
# Idempotent and silent when everything is present; runs `apt-get update` once, only when
# something is missing. Needs root (or sudo) on Debian 12.
set -euo pipefail

# `install-deps.sh bench` adds what ../shared/bench-peers needs (trace generator and peers).
packages=(
  # build
  cmake ninja-build g++ ccache pkg-config make git
  libpcap-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libnetfilter-queue-dev libmnl-dev
  libtomlplusplus-dev libisal-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev clang-format
  # tag pillar: eBPF programs (compiled by clang, skeletons by bpftool), signed tags
  libbpf-dev bpftool libsodium-dev
  # tests and the sample recorder: real peers, kernel tools, oracles
  tshark tcpdump python3 python3-scapy
  nginx-light curl iproute2 nftables iptables ethtool iputils-ping procps util-linux jq
  socat iperf3 dnsmasq-base bind9-dnsutils
)
if [ "${1:-}" = bench ]; then
  packages+=(wrk libnids-dev libtins-dev libndpi-bin time)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: missing ${missing[*]}; run as root" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer "no" without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
