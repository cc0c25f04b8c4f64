// libFuzzer target for the capture-file reader (io/pcap_file): reads every packet of an
// arbitrary input until the end or the first error, checks the reader's promises, then writes
// what it read as pcapng and reads that back: the writer must reproduce every packet.
//
//   cmake --preset fuzz && cmake --build build-fuzz -j2 --target pcap_reader_fuzz
//   ./build-fuzz/fuzz/pcap_reader_fuzz fuzz/corpus/pcap_reader   (seeds: fuzz/corpus/*.py)
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "l45/core/assert.hpp"
#include "l45/io/pcap_file.hpp"

namespace {

using l45::Packet;
using l45::PacketBatch;
using l45::PcapFileSource;

// Reads everything; returns false when the source ended with an error.
bool read_everything(PcapFileSource& src, std::vector<Packet>& out) {
  PacketBatch batch(7);  // odd, so that errors land in the middle of batches
  for (;;) {
    auto r = src.read(batch);
    if (!r.ok()) {
      // Format errors carry no errno; afterwards the source is finished and quiet.
      L45_CHECK(r.error().code() == 0);
      L45_CHECK(src.at_end());
      auto again = src.read(batch);
      L45_CHECK(again.ok() && *again == 0);
      return false;
    }
    for (Packet& p : batch) {
      L45_CHECK(p.size() <= l45::kMaxCaptureLength);
      L45_CHECK(p.meta().frame == out.size() + 1);
      out.push_back(std::move(p));
    }
    if (*r == 0 && src.at_end()) return true;
  }
}

const std::string& scratch_path() {
  static const std::string path = [] {
    int fd = memfd_create("pcap_reader_fuzz", 0);
    L45_CHECK(fd >= 0);
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto src = PcapFileSource::from_memory(l45::as_bytes(data, size), "fuzz");
  if (!src.ok()) {
    L45_CHECK(src.error().code() == 0);
    return 0;
  }
  std::vector<Packet> pkts;
  const bool clean = read_everything(**src, pkts);
  L45_CHECK(clean || (*src)->stats().drops.total() == 1);
  uint64_t sum = 0;  // touch every byte handed out, for ASan
  for (const Packet& p : pkts)
    for (std::byte b : p.data())
      sum += static_cast<uint8_t>(b);
  if (pkts.empty()) return static_cast<int>(sum & 0);

  l45::PcapWriteOptions opt;
  opt.format = l45::CaptureFormat::Pcapng;
  opt.ts = l45::TsResolution::Nano;
  {
    auto sink = l45::PcapFileSink::open(scratch_path(), opt);
    L45_CHECK(sink.ok());
    for (const Packet& p : pkts)
      L45_CHECK((*sink)->write(p).ok());
    L45_CHECK((*sink)->close().ok());
  }
  auto back = PcapFileSource::open(scratch_path());
  L45_CHECK(back.ok());
  std::vector<Packet> again;
  L45_CHECK(read_everything(**back, again));
  L45_CHECK(again.size() == pkts.size());
  for (size_t i = 0; i < pkts.size(); ++i) {
    const l45::PacketMeta& a = pkts[i].meta();
    const l45::PacketMeta& b = again[i].meta();
    L45_CHECK(std::equal(pkts[i].data().begin(), pkts[i].data().end(), again[i].data().begin(),
                         again[i].data().end()));
    L45_CHECK(b.ts.ns == std::max<int64_t>(a.ts.ns, 0));  // pcapng time is unsigned
    L45_CHECK(b.wire_len == a.wire_len);
    L45_CHECK(b.link == a.link);
    L45_CHECK(b.direction == a.direction);
  }
  return 0;
}
