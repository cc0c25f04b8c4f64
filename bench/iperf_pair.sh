# Sourced by the overhead benchmarks: two network namespaces joined by a veth pair
# (198.51.100.1 in $A, 198.51.100.2 in $B) and an iperf3 server in $B that lives at most
# $1 seconds. Sets $srv to the server's PID; the caller's cleanup kills it and deletes the
# namespaces. SERVER_CPU, when set, pins the server (taskset -c).
#   A=... B=... id=...; source bench/iperf_pair.sh; iperf_pair SECONDS
iperf_pair() {
  ip netns add "$A"
  ip netns add "$B"
  ip link add "va$id" netns "$A" type veth peer name "vb$id" netns "$B"
  ip -n "$A" addr add 198.51.100.1/24 dev "va$id"
  ip -n "$B" addr add 198.51.100.2/24 dev "vb$id"
  for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
  ip -n "$A" link set "va$id" up
  ip -n "$B" link set "vb$id" up
  timeout "$1" ${SERVER_CPU:+taskset -c "$SERVER_CPU"} ip netns exec "$B" iperf3 -s -B 198.51.100.2 >/dev/null 2>&1 &
  srv=$!
  for _ in $(seq 50); do
    ip netns exec "$B" ss -Htln 'sport = :5201' | grep -q . && return 0
    sleep 0.1
  done
  echo "iperf3 did not start in $B" >&2
  return 1
}
