// decode_bench: parses every packet of a trace held in memory with PacketView::decode and
// prints the RESULT line of ../shared/bench-peers (peer=l45-decode), so scripts/bench.sh can
// set it beside `floor iter` (a plain Eth/IPv4/TCP header walk) measured in the same run.
// --key also keys and hashes each packet as the flow engine does before its table lookup
// (key_into(), FlowKeyHasher) and fetches the headers ahead as it does (peer=l45-decode-key):
// the parsing share of `l45 bench`.
//
//   decode_bench TRACE.pcap [REPEATS=5] [--csum] [--key]
// The trace is read and indexed before the timer starts; each repeat walks every packet
// once; the line reports the median repeat.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "l45/flow/flow_table.hpp"
#include "l45/io/pcap_file.hpp"
#include "l45/packet/decode.hpp"

namespace {

long status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (!std::strncmp(line, key, kl)) {
      v = std::strtol(line + kl, nullptr, 10);
      break;
    }
  std::fclose(f);
  return v;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_bench TRACE.pcap [REPEATS] [--csum] [--key]\n");
    return 2;
  }
  int repeats = argc > 2 && argv[2][0] != '-' ? std::max(1, std::atoi(argv[2])) : 5;
  bool csum = false, key = false;
  for (int i = 2; i < argc; ++i) {
    csum |= std::string(argv[i]) == "--csum";
    key |= std::string(argv[i]) == "--key";
  }

  double t0 = now();
  auto all = l45::read_capture(argv[1]);
  if (!all.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", all.error().message().c_str());
    return 2;
  }
  const std::vector<l45::Packet>& pkts = *all;
  uint64_t wire = 0;
  for (const auto& p : pkts)
    wire += p.meta().wire_len;
  double load_sec = now() - t0;
  long rss_load = status_kb("VmRSS:");

  l45::DecodeOptions opt;
  opt.verify_checksums = csum;
  std::vector<double> times;
  uint64_t sink = 0, errors = 0, keyed = 0;
  const l45::FlowKeyHasher hasher(0);
  for (int r = 0; r < repeats; ++r) {
    double s = now();
    for (size_t i = 0; i < pkts.size(); ++i) {
      // --key: the headers 16 packets ahead are fetched, as the engine's batch driver fetches
      // the next batch's while it works on one (without it, a trace larger than the LLC
      // makes this loop wait on every header the engine finds in the cache).
      if (key && i + 16 < pkts.size()) {
        const l45::Bytes d = pkts[i + 16].data();
        __builtin_prefetch(d.data());
        if (d.size() > 63) __builtin_prefetch(d.data() + 63);
      }
      const l45::Packet& p = pkts[i];
      auto v = l45::PacketView::decode(p.meta().link, p.data(), p.meta().wire_len, opt);
      sink += v.payload_len() + v.l4_proto();
      errors += v.error() != l45::DropReason::None;
      l45::KeyedPacket kp;
      l45::FlowKeyWords w;
      if (key && v.ok() && l45::key_into(v, {}, kp, w)) {
        sink += hasher.words(w);
        ++keyed;
      }
    }
    times.push_back(now() - s);
  }
  std::sort(times.begin(), times.end());
  double sec = times[times.size() / 2];
  double n = static_cast<double>(pkts.size());
  std::printf(
      "RESULT peer=l45-decode%s%s packets=%zu bytes=%llu flows=-1 c2s=-1 s2c=-1 sec=%.6f "
      "mpps=%.4f gbps=%.4f load_sec=%.4f rss_load_kb=%ld hwm_kb=%ld ns_per_pkt=%.2f "
      "repeats=%d parse_errors=%llu keyed=%llu checksum=%llu\n",
      csum ? "-csum" : "", key ? "-key" : "", pkts.size(), static_cast<unsigned long long>(wire),
      sec, sec > 0 ? n / sec / 1e6 : 0, sec > 0 ? wire * 8.0 / sec / 1e9 : 0, load_sec, rss_load,
      status_kb("VmHWM:"), sec > 0 ? sec * 1e9 / n : 0, repeats,
      static_cast<unsigned long long>(errors / repeats),
      static_cast<unsigned long long>(keyed / repeats), static_cast<unsigned long long>(sink));
  return 0;
}
