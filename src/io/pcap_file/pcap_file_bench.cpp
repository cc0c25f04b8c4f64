// Reading a whole capture file: PcapFileSource beside its floors and libpcap, in one process.
//
//   L45_BENCH_TRACE=/tmp/trace.pcap pcap_file_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
// (no build rule yet; by hand: g++ -std=c++20 -O2 -DNDEBUG -Iinclude THIS_FILE
//  -Wl,--whole-archive build/src/io/libl45_io.a -Wl,--no-whole-archive
//  build/src/packet/libl45_packet.a build/src/core/libl45_core.a -lbenchmark -lpcap
//  -lnetfilter_queue -lmnl -lfmt -lpthread)
//
//   MappedPageTouch   mmap the file and read one byte per 4 KiB page: the page-fault floor
//   RecordWalk        the same mapping, walking classic pcap record headers: the parse floor
//   PcapFileSource    open + read() in batches of 64, one byte of each packet read
//   LibpcapNextEx     pcap_open_offline + pcap_next_ex, one byte of each packet read
//   PacketBorrow      Packet::borrow and its release alone (its one small allocation), in memory
// Each iteration maps the file afresh, so its minor faults are counted every time; the file
// itself stays in the page cache. Counters: packets/s and bytes/s of captured data.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "l45/io/pcap_file.hpp"

namespace {

const char* trace() {
  return std::getenv("L45_BENCH_TRACE");
}

struct Mapping {
  explicit Mapping(const char* path) {
    int fd = ::open(path, O_RDONLY);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) return;
    len = static_cast<size_t>(st.st_size);
    void* m = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) return;
    ::madvise(m, len, MADV_SEQUENTIAL);
    p = static_cast<const unsigned char*>(m);
  }
  ~Mapping() {
    if (p) ::munmap(const_cast<unsigned char*>(p), len);
  }
  const unsigned char* p = nullptr;
  size_t len = 0;
};

void report(benchmark::State& state, uint64_t packets, uint64_t bytes) {
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["ns/pkt"] = benchmark::Counter(
      static_cast<double>(packets), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_MappedPageTouch(benchmark::State& state) {
  if (!trace()) return state.SkipWithError("set L45_BENCH_TRACE to a pcap file");
  uint64_t sum = 0, bytes = 0;
  for (auto _ : state) {
    Mapping m(trace());
    for (size_t i = 0; i < m.len; i += 4096)
      sum += m.p[i];
    bytes += m.len;
  }
  benchmark::DoNotOptimize(sum);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// range(0): software prefetch distance in bytes ahead of the record being read (0 = none).
void BM_RecordWalk(benchmark::State& state) {
  if (!trace()) return state.SkipWithError("set L45_BENCH_TRACE to a pcap file");
  const size_t ahead = static_cast<size_t>(state.range(0));
  uint64_t sum = 0, packets = 0, bytes = 0;
  for (auto _ : state) {
    Mapping m(trace());
    for (size_t at = 24; at + 16 <= m.len;) {
      if (ahead && at + ahead < m.len) __builtin_prefetch(m.p + at + ahead);
      uint32_t caplen;
      std::memcpy(&caplen, m.p + at + 8, 4);  // little-endian traces only: a floor, not a reader
      if (caplen > m.len - at - 16) break;
      sum += m.p[at + 16];
      ++packets;
      bytes += caplen;
      at += 16 + caplen;
    }
  }
  benchmark::DoNotOptimize(sum);
  report(state, packets, bytes);
}

void BM_PcapFileSource(benchmark::State& state) {
  if (!trace()) return state.SkipWithError("set L45_BENCH_TRACE to a pcap file");
  uint64_t sum = 0, packets = 0, bytes = 0;
  l45::PacketBatch batch(64);
  for (auto _ : state) {
    auto src = l45::PcapFileSource::open(trace());
    if (!src.ok()) return state.SkipWithError(src.error().message().c_str());
    for (;;) {
      auto n = (*src)->read(batch);
      if (!n.ok()) return state.SkipWithError(n.error().message().c_str());
      if (*n == 0 && (*src)->at_end()) break;
      for (const l45::Packet& p : batch) {
        if (!p.empty()) sum += static_cast<uint8_t>(p.data()[0]);
        bytes += p.size();
      }
      packets += *n;
    }
  }
  benchmark::DoNotOptimize(sum);
  report(state, packets, bytes);
}

void BM_LibpcapNextEx(benchmark::State& state) {
  if (!trace()) return state.SkipWithError("set L45_BENCH_TRACE to a pcap file");
  uint64_t sum = 0, packets = 0, bytes = 0;
  char err[PCAP_ERRBUF_SIZE];
  for (auto _ : state) {
    pcap_t* p = pcap_open_offline(trace(), err);
    if (!p) return state.SkipWithError(err);
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
      if (h->caplen) sum += d[0];
      ++packets;
      bytes += h->caplen;
    }
    pcap_close(p);
  }
  benchmark::DoNotOptimize(sum);
  report(state, packets, bytes);
}

void BM_PacketBorrow(benchmark::State& state) {
  static const std::byte data[1514] = {};
  auto keep = std::make_shared<int>(0);
  l45::PacketMeta meta;
  meta.wire_len = 1514;
  uint64_t packets = 0;
  for (auto _ : state) {
    l45::Packet p = l45::Packet::borrow(l45::Bytes(data, sizeof data), keep, meta);
    benchmark::DoNotOptimize(p);
    ++packets;
  }
  report(state, packets, packets * sizeof data);
}

BENCHMARK(BM_MappedPageTouch)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RecordWalk)->Arg(0)->Arg(2048)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PcapFileSource)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LibpcapNextEx)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PacketBorrow);

}  // namespace

BENCHMARK_MAIN();
