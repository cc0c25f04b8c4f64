// Capture files are built here field by field (FileBuilder, in either byte order), by scapy,
// or taken from ../shared/pcaps; tshark is the oracle for what a reader must see.
#include "l45/io/pcap_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "l45/io/registry.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

namespace fs = std::filesystem;
using ByteVec = std::vector<std::byte>;

// ---- building files --------------------------------------------------------------------

// Appends integers in the chosen byte order; independent of the sink under test.
class FileBuilder {
 public:
  explicit FileBuilder(bool big_endian = false) : big_(big_endian) {}
  void set_big_endian(bool big) { big_ = big; }
  FileBuilder& u8(uint8_t v) {
    out.push_back(std::byte{v});
    return *this;
  }
  FileBuilder& u16(uint16_t v) {
    for (int i = 0; i < 2; ++i)
      u8(static_cast<uint8_t>(v >> (big_ ? 8 - 8 * i : 8 * i)));
    return *this;
  }
  FileBuilder& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      u8(static_cast<uint8_t>(v >> (big_ ? 24 - 8 * i : 8 * i)));
    return *this;
  }
  FileBuilder& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      u8(static_cast<uint8_t>(v >> (big_ ? 56 - 8 * i : 8 * i)));
    return *this;
  }
  FileBuilder& raw(Bytes b) {
    out.insert(out.end(), b.begin(), b.end());
    return *this;
  }
  FileBuilder& pad4() {
    while (out.size() % 4)
      u8(0);
    return *this;
  }
  size_t size() const { return out.size(); }
  ByteVec out;

 private:
  bool big_;
};

ByteVec frame_bytes(size_t n, uint8_t seed) {
  ByteVec v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = std::byte(static_cast<uint8_t>(seed + i * 7));
  return v;
}

struct Rec {
  uint32_t sec;
  uint32_t frac;  // us or ns, as the file says
  ByteVec data;
  uint32_t wire;
};

void pcap_header(FileBuilder& b, bool ns, uint32_t snaplen, uint32_t link, uint16_t minor = 4) {
  b.u32(ns ? 0xa1b23c4d : 0xa1b2c3d4).u16(2).u16(minor).u32(0).u32(0).u32(snaplen).u32(link);
}

void pcap_record(FileBuilder& b, const Rec& r) {
  b.u32(r.sec).u32(r.frac).u32(static_cast<uint32_t>(r.data.size())).u32(r.wire).raw(r.data);
}

ByteVec make_pcap(bool big, bool ns, const std::vector<Rec>& recs, uint32_t snaplen = 65535,
                  uint32_t link = 1) {
  FileBuilder b(big);
  pcap_header(b, ns, snaplen, link);
  for (const Rec& r : recs)
    pcap_record(b, r);
  return b.out;
}

std::vector<Rec> sample_records() {
  return {{1700000000, 1, frame_bytes(60, 1), 60},
          {1700000000, 999999, frame_bytes(1514, 2), 1514},
          {1700000001, 0, frame_bytes(54, 3), 1400},  // cut by the snaplen of the capture
          {4000000000u, 123456, frame_bytes(0, 4), 0}};
}

// One pcapng block with correct framing: type, length, body padded to 4, length.
void block(FileBuilder& b, uint32_t type, const ByteVec& body) {
  const uint32_t len = static_cast<uint32_t>(12 + ((body.size() + 3) & ~size_t{3}));
  b.u32(type).u32(len).raw(body).pad4().u32(len);
}

// The body builders use the same byte order as the block they go into.
void shb(FileBuilder& b, bool big) {
  b.set_big_endian(big);
  FileBuilder body(big);
  body.u32(0x1a2b3c4d).u16(1).u16(0).u64(~uint64_t{0});
  block(b, 0x0a0d0d0a, body.out);
}

struct IdbOpts {
  std::optional<uint8_t> tsresol;
  std::optional<int64_t> tsoffset;
};

void idb(FileBuilder& b, bool big, uint16_t link, uint32_t snaplen, IdbOpts o = {}) {
  FileBuilder body(big);
  body.u16(link).u16(0).u32(snaplen);
  if (o.tsresol) body.u16(9).u16(1).u8(*o.tsresol).pad4();
  if (o.tsoffset) body.u16(14).u16(8).u64(static_cast<uint64_t>(*o.tsoffset));
  if (o.tsresol || o.tsoffset) body.u16(0).u16(0);
  block(b, 1, body.out);
}

void epb(FileBuilder& b, bool big, uint32_t iface, uint64_t ts, const ByteVec& data, uint32_t wire,
         std::optional<uint32_t> flags = {}) {
  FileBuilder body(big);
  body.u32(iface).u32(static_cast<uint32_t>(ts >> 32)).u32(static_cast<uint32_t>(ts));
  body.u32(static_cast<uint32_t>(data.size())).u32(wire).raw(data).pad4();
  if (flags) body.u16(2).u16(4).u32(*flags).u16(0).u16(0);
  block(b, 6, body.out);
}

void spb(FileBuilder& b, bool big, uint32_t wire, const ByteVec& data) {
  FileBuilder body(big);
  body.u32(wire).raw(data);
  block(b, 3, body.out);
}

void obsolete_pb(FileBuilder& b, bool big, uint16_t iface, uint64_t ts, const ByteVec& data,
                 uint32_t wire) {
  FileBuilder body(big);
  body.u16(iface).u16(0).u32(static_cast<uint32_t>(ts >> 32)).u32(static_cast<uint32_t>(ts));
  body.u32(static_cast<uint32_t>(data.size())).u32(wire).raw(data);
  block(b, 2, body.out);
}

// ---- reading ---------------------------------------------------------------------------

struct Outcome {
  std::vector<Packet> packets;
  std::optional<Error> error;
  bool open_failed = false;
  SourceStats stats;
};

Outcome drain(PcapFileSource& src, size_t batch_capacity = 3) {
  Outcome o;
  PacketBatch batch(batch_capacity);
  for (int guard = 0; guard < 1000000; ++guard) {
    auto r = src.read(batch);
    if (!r.ok()) {
      o.error = r.error();
      // After the error: finished, and quiet.
      auto again = src.read(batch);
      EXPECT_TRUE(again.ok());
      if (again.ok()) {
        EXPECT_EQ(*again, 0u);
      }
      EXPECT_TRUE(src.at_end());
      break;
    }
    for (Packet& p : batch)
      o.packets.push_back(std::move(p));
    if (*r == 0 && src.at_end()) break;
  }
  o.stats = src.stats();
  return o;
}

Outcome read_memory(const ByteVec& file, std::string name = "t.pcap") {
  auto src = PcapFileSource::from_memory(Bytes(file), std::move(name));
  if (!src.ok()) {
    Outcome o;
    o.error = src.error();
    o.open_failed = true;
    return o;
  }
  return drain(**src);
}

std::string message_of(const Outcome& o) {
  return o.error ? o.error->message() : "(no error)";
}

void expect_same_as_records(const std::vector<Packet>& got, const std::vector<Rec>& recs, bool ns) {
  ASSERT_EQ(got.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    SCOPED_TRACE(i);
    const Packet& p = got[i];
    EXPECT_EQ(p.meta().frame, i + 1);
    EXPECT_EQ(p.meta().ts.ns, int64_t{recs[i].sec} * 1000000000 + recs[i].frac * (ns ? 1 : 1000));
    EXPECT_EQ(p.meta().wire_len, recs[i].wire);
    EXPECT_EQ(p.meta().ingress, 0u);
    ASSERT_EQ(p.size(), recs[i].data.size());
    EXPECT_TRUE(std::equal(p.data().begin(), p.data().end(), recs[i].data.begin()));
  }
}

// ---- classic pcap ----------------------------------------------------------------------

TEST(PcapFileSource, ClassicPcapGivesExactTimesLengthsAndOrdinalsInAllFourVariants) {
  for (bool big : {false, true}) {
    for (bool ns : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "big=" << big << " ns=" << ns);
      auto recs = sample_records();
      auto o = read_memory(make_pcap(big, ns, recs));
      ASSERT_FALSE(o.error) << message_of(o);
      expect_same_as_records(o.packets, recs, ns);
      for (const Packet& p : o.packets)
        EXPECT_EQ(p.meta().link, LinkType::Ethernet);
      EXPECT_EQ(o.stats.drops.total(), 0u);
    }
  }
}

TEST(PcapFileSource, ClassicHeaderFieldsAreExposed) {
  FileBuilder b(true);
  // FCS length 4 with the F bit in the upper bits (pcap-savefile(5)); LINKTYPE_RAW below.
  pcap_header(b, true, 1500, (4u << 28) | (1u << 26) | 101);
  auto src = PcapFileSource::from_memory(Bytes(b.out), "h.pcap");
  ASSERT_TRUE(src.ok()) << src.error().message();
  EXPECT_EQ((*src)->format(), CaptureFormat::Pcap);
  EXPECT_EQ((*src)->link_type(), LinkType::Raw);
  EXPECT_EQ((*src)->raw_link_type(), (4u << 28) | (1u << 26) | 101);
  EXPECT_EQ((*src)->snaplen(), 1500u);
  EXPECT_EQ((*src)->name(), "file:h.pcap");
  ASSERT_EQ((*src)->interfaces().size(), 1u);
  EXPECT_EQ((*src)->interfaces()[0].units_per_sec, 1000000000u);
  auto o = drain(**src);
  EXPECT_FALSE(o.error);
  EXPECT_TRUE(o.packets.empty());
}

TEST(PcapFileSource, UnknownLinkTypeIsNotAReaderError) {
  auto o = read_memory(make_pcap(false, false, {{1, 2, frame_bytes(10, 0), 10}}, 65535, 147));
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(static_cast<uint32_t>(o.packets[0].meta().link), 147u);
}

TEST(PcapFileSource, PcapBefore24WithSwappedLengthsIsReadLikeLibpcap) {
  // 2.2 always swapped caplen and len; 2.3 only sometimes (caplen > len shows it).
  for (uint16_t minor : {2, 3}) {
    FileBuilder b;
    pcap_header(b, false, 65535, 1, minor);
    b.u32(5).u32(6).u32(1000).u32(40).raw(frame_bytes(40, 9));  // as old writers stored them
    auto o = read_memory(b.out);
    ASSERT_FALSE(o.error) << message_of(o);
    ASSERT_EQ(o.packets.size(), 1u);
    EXPECT_EQ(o.packets[0].size(), 40u);
    EXPECT_EQ(o.packets[0].meta().wire_len, 1000u);
  }
}

// ---- pcapng ----------------------------------------------------------------------------

TEST(PcapFileSource, PcapngEpbGivesTimeLengthsLinkAndIngress) {
  for (bool big : {false, true}) {
    SCOPED_TRACE(big);
    FileBuilder b;
    shb(b, big);
    idb(b, big, 1, 65535);
    epb(b, big, 0, 1700000000123456ull, frame_bytes(61, 1), 61);
    epb(b, big, 0, 1700000000123457ull, frame_bytes(33, 2), 1500);
    auto src = PcapFileSource::from_memory(Bytes(b.out), "t.pcapng");
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->format(), CaptureFormat::Pcapng);
    auto o = drain(**src);
    ASSERT_FALSE(o.error) << message_of(o);
    ASSERT_EQ(o.packets.size(), 2u);
    EXPECT_EQ(o.packets[0].meta().ts.ns, 1700000000123456000);
    EXPECT_EQ(o.packets[1].meta().ts.ns, 1700000000123457000);
    EXPECT_EQ(o.packets[0].size(), 61u);
    EXPECT_EQ(o.packets[1].size(), 33u);
    EXPECT_EQ(o.packets[1].meta().wire_len, 1500u);
    EXPECT_EQ(o.packets[1].meta().frame, 2u);
    EXPECT_EQ(o.packets[0].meta().ingress, 1u);
    auto want = frame_bytes(33, 2);
    EXPECT_TRUE(std::equal(o.packets[1].data().begin(), o.packets[1].data().end(), want.begin()));
  }
}

TEST(PcapFileSource, MultiSectionPcapngSwitchesByteOrderAndRestartsInterfaceIds) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 0);
  epb(b, false, 0, 1000000, frame_bytes(20, 1), 20);
  shb(b, true);
  idb(b, true, 101, 0, {.tsresol = 9});
  idb(b, true, 1, 0);
  epb(b, true, 0, 2000000000, frame_bytes(21, 2), 21);  // interface 0 of section 2: RAW, ns
  epb(b, true, 1, 3000000, frame_bytes(22, 3), 22);     // interface 1 of section 2: us
  shb(b, false);
  idb(b, false, 228, 0);
  epb(b, false, 0, 4000000, frame_bytes(23, 4), 23);
  auto src = PcapFileSource::from_memory(Bytes(b.out), "m.pcapng");
  ASSERT_TRUE(src.ok()) << src.error().message();
  auto o = drain(**src);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 4u);
  const int64_t want_ns[] = {1000000000, 2000000000, 3000000000, 4000000000};
  const uint32_t want_ingress[] = {1, 2, 3, 4};
  const uint32_t want_link[] = {1, 101, 1, 228};
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(o.packets[i].meta().ts.ns, want_ns[i]);
    EXPECT_EQ(o.packets[i].meta().ingress, want_ingress[i]);
    EXPECT_EQ(static_cast<uint32_t>(o.packets[i].meta().link), want_link[i]);
    EXPECT_EQ(o.packets[i].size(), 20 + i);
  }
  const auto& itfs = (*src)->interfaces();
  ASSERT_EQ(itfs.size(), 4u);
  EXPECT_EQ(itfs[1].section, 1u);
  EXPECT_EQ(itfs[3].section, 2u);
  EXPECT_EQ((*src)->link_type(), LinkType::Ethernet);  // the first interface's
}

TEST(PcapFileSource, LinkTypeIsTheFirstInterfacesBeforeAnyRead) {
  FileBuilder b;
  shb(b, false);
  block(b, 0x40000bad, frame_bytes(13, 0));  // a custom block before the IDB
  idb(b, false, 113, 0);
  idb(b, false, 1, 0);
  epb(b, false, 1, 0, frame_bytes(14, 0), 14);
  auto src = PcapFileSource::from_memory(Bytes(b.out), "l.pcapng");
  ASSERT_TRUE(src.ok()) << src.error().message();
  EXPECT_EQ((*src)->link_type(), LinkType::LinuxSll);
  EXPECT_EQ((*src)->raw_link_type(), 113u);
  auto o = drain(**src);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(o.packets[0].meta().link, LinkType::Ethernet);
}

TEST(PcapFileSource, SimplePacketBlockTakesItsLengthFromInterfaceZeroSnaplen) {
  for (bool big : {false, true}) {
    FileBuilder b;
    shb(b, big);
    idb(b, big, 1, 64);
    spb(b, big, 1514, frame_bytes(64, 5));  // cut at the snaplen
    spb(b, big, 42, frame_bytes(42, 6));    // shorter than the snaplen; body padded to 44
    auto o = read_memory(b.out);
    ASSERT_FALSE(o.error) << message_of(o);
    ASSERT_EQ(o.packets.size(), 2u);
    EXPECT_EQ(o.packets[0].size(), 64u);
    EXPECT_EQ(o.packets[0].meta().wire_len, 1514u);
    EXPECT_EQ(o.packets[1].size(), 42u);
    EXPECT_EQ(o.packets[1].meta().ts.ns, 0);  // an SPB has no time
    EXPECT_EQ(o.packets[1].meta().ingress, 1u);
  }
}

TEST(PcapFileSource, ObsoletePacketBlockIsRead) {
  FileBuilder b;
  shb(b, true);
  idb(b, true, 1, 0);
  idb(b, true, 101, 0);
  obsolete_pb(b, true, 1, 5000000, frame_bytes(30, 7), 31);
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(o.packets[0].meta().ts.ns, 5000000000);
  EXPECT_EQ(o.packets[0].meta().link, LinkType::Raw);
  EXPECT_EQ(o.packets[0].meta().ingress, 2u);
  EXPECT_EQ(o.packets[0].meta().wire_len, 31u);
}

TEST(PcapFileSource, OtherPcapngBlocksAreSkippedByTheirLength) {
  FileBuilder b;
  shb(b, false);
  block(b, 4, frame_bytes(17, 0));  // name resolution
  idb(b, false, 1, 0);
  block(b, 5, frame_bytes(24, 0));           // interface statistics
  block(b, 0x0bad, frame_bytes(0, 0));       // unknown, empty body
  block(b, 0x80000001, frame_bytes(99, 0));  // unknown, "do not copy" custom range
  epb(b, false, 0, 1, frame_bytes(10, 0), 10);
  block(b, 10, frame_bytes(8, 0));  // decryption secrets
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  EXPECT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(o.stats.drops.total(), 0u);
}

TEST(PcapFileSource, TsresolPowerOfTwoConvertsToExactNanoseconds) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 0, {.tsresol = 0x80 | 20});  // 2^-20 s
  idb(b, false, 1, 0, {.tsresol = 0x80 | 0});   // whole seconds
  idb(b, false, 1, 0, {.tsresol = 0x80 | 40});  // 2^-40 s: sub-ns parts are truncated
  epb(b, false, 0, (uint64_t{1700000000} << 20) | (uint64_t{1} << 19), frame_bytes(1, 0), 1);
  epb(b, false, 0, (uint64_t{3} << 20) | 1, frame_bytes(1, 0), 1);  // + 953.67431640625 ns
  epb(b, false, 1, 1700000000, frame_bytes(1, 0), 1);
  epb(b, false, 2, (uint64_t{5} << 40) | (uint64_t{3} << 38), frame_bytes(1, 0), 1);
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 4u);
  EXPECT_EQ(o.packets[0].meta().ts.ns, 1700000000500000000);
  EXPECT_EQ(o.packets[1].meta().ts.ns, 3000000953);
  EXPECT_EQ(o.packets[2].meta().ts.ns, 1700000000000000000);
  EXPECT_EQ(o.packets[3].meta().ts.ns, 5750000000);
}

TEST(PcapFileSource, TsresolPowerOfTenAndTsoffsetAreApplied) {
  FileBuilder b;
  shb(b, true);
  idb(b, true, 1, 0, {.tsresol = 9});
  idb(b, true, 1, 0, {.tsresol = 3, .tsoffset = 1600000000});
  idb(b, true, 1, 0, {.tsresol = 12, .tsoffset = -10});  // picoseconds, truncated to ns
  idb(b, true, 1, 0, {.tsresol = 0, .tsoffset = 0});     // whole seconds
  epb(b, true, 0, 1700000000123456789ull, frame_bytes(1, 0), 1);
  epb(b, true, 1, 1500, frame_bytes(1, 0), 1);
  epb(b, true, 2, 12345678901234ull, frame_bytes(1, 0), 1);
  epb(b, true, 3, 7, frame_bytes(1, 0), 1);
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 4u);
  EXPECT_EQ(o.packets[0].meta().ts.ns, 1700000000123456789);
  EXPECT_EQ(o.packets[1].meta().ts.ns, 1600000001500000000);
  EXPECT_EQ(o.packets[2].meta().ts.ns, 12345678901 - 10000000000);
  EXPECT_EQ(o.packets[3].meta().ts.ns, 7000000000);
}

TEST(PcapFileSource, HugeTimestampsSaturateInsteadOfOverflowing) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 0, {.tsresol = 0, .tsoffset = INT64_MAX});
  epb(b, false, 0, ~uint64_t{0}, frame_bytes(1, 0), 1);
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(o.packets[0].meta().ts.ns, INT64_MAX);
}

TEST(PcapFileSource, EpbFlagsGiveTheDirection) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 0);
  epb(b, false, 0, 0, frame_bytes(5, 0), 5, 1);
  epb(b, false, 0, 0, frame_bytes(6, 0), 6, 2);
  epb(b, false, 0, 0, frame_bytes(7, 0), 7, 0);
  auto o = read_memory(b.out);
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), 3u);
  EXPECT_EQ(o.packets[0].meta().direction, Direction::Inbound);
  EXPECT_EQ(o.packets[1].meta().direction, Direction::Outbound);
  EXPECT_EQ(o.packets[2].meta().direction, Direction::Unknown);
}

// ---- corrupt and truncated input ------------------------------------------------------

TEST(PcapFileSource, FileThatIsNotACaptureNamesItsMagic) {
  std::string html = "<html><body>nope</body></html>";
  ByteVec v(reinterpret_cast<const std::byte*>(html.data()),
            reinterpret_cast<const std::byte*>(html.data()) + html.size());
  auto o = read_memory(v, "page.pcap");
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o), "page.pcap: not a pcap or pcapng file (starts with 0x3c68746d)");
  auto tiny = read_memory(frame_bytes(3, 0), "tiny.pcap");
  EXPECT_EQ(message_of(tiny), "tiny.pcap: not a pcap or pcapng file (3 bytes long)");
  auto empty = read_memory({}, "empty.pcap");
  EXPECT_EQ(message_of(empty), "empty.pcap: not a pcap or pcapng file (0 bytes long)");
}

TEST(PcapFileSource, TruncatedPcapFileHeaderFailsOpen) {
  auto file = make_pcap(false, false, {});
  file.resize(10);
  auto o = read_memory(file);
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o),
            "t.pcap: truncated pcap file header at byte 0: 24 bytes needed, 10 left");
}

TEST(PcapFileSource, UnsupportedPcapVersionFailsOpen) {
  FileBuilder b;
  b.u32(0xa1b2c3d4).u16(1).u16(0).u32(0).u32(0).u32(65535).u32(1);
  auto o = read_memory(b.out);
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o), "t.pcap: unsupported pcap version 1.0 at byte 4");
}

TEST(PcapFileSource, TruncatedRecordHeaderDeliversEarlierPacketsThenNamesTheOffset) {
  auto recs = sample_records();
  auto file = make_pcap(false, false, recs);
  file.resize(file.size() - 16 + 5);  // the last record (no data) keeps 5 header bytes
  auto o = read_memory(file, "trace.pcap");
  ASSERT_EQ(o.packets.size(), 3u);
  const size_t at = 24 + 3 * 16 + 60 + 1514 + 54;
  EXPECT_EQ(message_of(o), "trace.pcap: truncated record header at byte " + std::to_string(at) +
                               " (packet 4): 16 bytes needed, 5 left");
  EXPECT_EQ(o.stats.drops.get(DropReason::PcapTruncated), 1u);
}

TEST(PcapFileSource, TruncatedRecordDataDeliversEarlierPacketsThenNamesTheOffset) {
  auto recs = sample_records();
  auto file = make_pcap(false, false, recs);
  file.resize(24 + 16 + 60 + 16 + 200);  // inside the 1514-byte frame
  auto o = read_memory(file, "trace.pcap");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(
      message_of(o),
      "trace.pcap: truncated record at byte 100 (packet 2): header says 1514 bytes, 200 left");
  EXPECT_EQ(o.stats.drops.get(DropReason::PcapTruncated), 1u);
  EXPECT_EQ(o.stats.packets, 1u);
}

TEST(PcapFileSource, CaplenAboveAnUnderstatedSnaplenIsReadWholeLikeWireshark) {
  auto recs = sample_records();
  auto o = read_memory(make_pcap(true, false, recs, 1000), "s.pcap");
  ASSERT_FALSE(o.error) << message_of(o);
  ASSERT_EQ(o.packets.size(), recs.size());
  EXPECT_EQ(o.packets[1].size(), 1514u);
}

TEST(PcapFileSource, CaplenAbove256KiBIsCorruptWhateverTheSnaplen) {
  for (uint32_t snaplen : {0u, 0x7fffffffu}) {
    FileBuilder b;
    pcap_header(b, false, snaplen, 1);
    pcap_record(b, {1, 1, frame_bytes(8, 0), 8});
    b.u32(1).u32(1).u32(262145).u32(262145);
    auto o = read_memory(b.out);
    ASSERT_EQ(o.packets.size(), 1u);
    EXPECT_EQ(message_of(o),
              "t.pcap: corrupt record at byte 48 (packet 2): captured length 262145 exceeds the "
              "maximum 262144");
  }
}

// A small valid pcapng: SHB (28) IDB (20) EPB (32 + 12) EPB (32 + 16).
ByteVec small_pcapng(bool big = false) {
  FileBuilder b;
  shb(b, big);
  idb(b, big, 1, 65535);
  epb(b, big, 0, 1, frame_bytes(12, 1), 12);
  epb(b, big, 0, 2, frame_bytes(16, 2), 16);
  return b.out;
}
constexpr size_t kSecondEpbAt = 28 + 20 + 44;

void set_u32(ByteVec& v, size_t at, uint32_t x, bool big = false) {
  for (int i = 0; i < 4; ++i)
    v[at + i] = std::byte(static_cast<uint8_t>(x >> (big ? 24 - 8 * i : 8 * i)));
}

TEST(PcapFileSource, PcapngBlockLengthBelowTheMinimumIsCorrupt) {
  auto f = small_pcapng();
  set_u32(f, kSecondEpbAt + 4, 7);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 92: block length 7 is below "
            "the minimum 12");
  EXPECT_EQ(o.stats.drops.get(DropReason::PcapCorrupt), 1u);
}

TEST(PcapFileSource, PcapngBlockLengthNotAMultipleOf4IsCorrupt) {
  auto f = small_pcapng(true);
  set_u32(f, kSecondEpbAt + 4, 46, true);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 92: block length 46 is not a multiple of 4");
}

TEST(PcapFileSource, PcapngBlockPastTheEndIsTruncated) {
  auto f = small_pcapng();
  set_u32(f, kSecondEpbAt + 4, 1000);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: truncated pcapng block at byte 92: block length 1000, 48 bytes left");
  EXPECT_EQ(o.stats.drops.get(DropReason::PcapTruncated), 1u);
}

TEST(PcapFileSource, PcapngTrailingLengthMismatchIsCorrupt) {
  auto f = small_pcapng();
  set_u32(f, f.size() - 4, 52);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 92: trailing block length 52 "
            "does not match the leading 48");
}

TEST(PcapFileSource, PcapngTruncatedBlockHeaderIsReported) {
  auto f = small_pcapng();
  f.push_back(std::byte{6});
  f.push_back(std::byte{0});
  f.push_back(std::byte{0});
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 2u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: truncated pcapng block header at byte 140: 8 bytes needed, 3 left");
}

TEST(PcapFileSource, PcapngPacketOnAnUndefinedInterfaceIsCorrupt) {
  auto f = small_pcapng();
  set_u32(f, kSecondEpbAt + 8, 1);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 92 (packet 2): interface 1 is "
            "not defined (the section has 1)");
}

TEST(PcapFileSource, PcapngCaplenPastTheBlockBodyIsCorrupt) {
  auto f = small_pcapng();
  set_u32(f, kSecondEpbAt + 20, 17);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 92 (packet 2): captured "
            "length 17 runs past the block body (16 bytes)");
}

TEST(PcapFileSource, PcapngCaplenAboveTheInterfaceSnaplenIsReadWhole) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 10);
  epb(b, false, 0, 1, frame_bytes(12, 1), 12);
  auto o = read_memory(b.out, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 1u);
  EXPECT_EQ(o.packets[0].size(), 12u);
}

TEST(PcapFileSource, PcapngEpbShorterThanItsFixedFieldsIsCorrupt) {
  FileBuilder b;
  shb(b, false);
  idb(b, false, 1, 0);
  block(b, 6, frame_bytes(8, 0));
  auto o = read_memory(b.out, "x.pcapng");
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 48 (packet 1): block length "
            "20 is below the minimum 32 for an enhanced packet block");
}

TEST(PcapFileSource, PcapngSecondSectionWithBadByteOrderMagicIsCorrupt) {
  auto f = small_pcapng();
  const size_t second = f.size();
  FileBuilder b;
  shb(b, false);
  f.insert(f.end(), b.out.begin(), b.out.end());
  set_u32(f, second + 8, 0x01020304);
  auto o = read_memory(f, "x.pcapng");
  ASSERT_EQ(o.packets.size(), 2u);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng section header at byte 140: byte-order "
            "magic 0x04030201 is not 0x1a2b3c4d in either byte order");
}

TEST(PcapFileSource, UnsupportedPcapngVersionIsAnError) {
  FileBuilder b;
  shb(b, false);
  b.out[12] = std::byte{2};
  auto o = read_memory(b.out, "x.pcapng");
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o),
            "x.pcapng: unsupported pcapng version 2.0 in the section header at "
            "byte 0");
}

TEST(PcapFileSource, CorruptFirstSectionHeaderFailsOpen) {
  auto f = small_pcapng();
  set_u32(f, 4, 7);
  auto o = read_memory(f, "x.pcapng");
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng section header at byte 0: block length 7 is "
            "below the minimum 28");
}

TEST(PcapFileSource, PcapngOptionPastTheBlockIsCorrupt) {
  FileBuilder b;
  shb(b, false);
  FileBuilder body;
  body.u16(1).u16(0).u32(0).u16(9).u16(40).u32(0);  // if_tsresol claiming 40 bytes
  block(b, 1, body.out);
  auto o = read_memory(b.out, "x.pcapng");
  EXPECT_TRUE(o.open_failed);
  EXPECT_EQ(message_of(o),
            "x.pcapng: corrupt pcapng block at byte 28: option 9 at byte 44 runs "
            "past the end of the block");
}

TEST(PcapFileSource, ErrorComesOnceAfterThePacketsOfTheSameBatch) {
  auto recs = sample_records();
  auto file = make_pcap(false, true, recs);
  file.pop_back();  // the last record (no data) loses one byte of its header
  auto src = PcapFileSource::from_memory(Bytes(file), "e.pcap");
  ASSERT_TRUE(src.ok());
  PacketBatch batch(64);
  auto first = (*src)->read(batch);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 3u);
  EXPECT_FALSE((*src)->at_end());
  auto second = (*src)->read(batch);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), 0);
  EXPECT_TRUE((*src)->at_end());
  auto third = (*src)->read(batch);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(*third, 0u);
  EXPECT_EQ((*src)->stats().drops.total(), 1u);
}

// Whatever byte a file is cut at, the reader delivers every record that is complete before
// the cut and then one named error (or none, at a record boundary).
TEST(PcapFileSource, CuttingAFileAnywhereDeliversEveryCompleteRecordThenOneError) {
  struct Case {
    ByteVec file;
    std::vector<size_t> ends;  // where each packet's record or block ends
    size_t header;             // bytes before the first packet
  };
  auto recs = sample_records();
  Case pcap{make_pcap(false, false, recs), {}, 24};
  for (size_t at = 24; const Rec& r : recs)
    pcap.ends.push_back(at += 16 + r.data.size());
  Case ng{small_pcapng(true), {28 + 20 + 44, 28 + 20 + 44 + 48}, 48};
  for (const Case& c : {pcap, ng}) {
    for (size_t cut = 0; cut <= c.file.size(); ++cut) {
      SCOPED_TRACE(cut);
      ByteVec f(c.file.begin(), c.file.begin() + static_cast<ptrdiff_t>(cut));
      auto o = read_memory(f);
      if (cut < c.header) {
        // pcapng: the SHB alone is a valid empty capture
        if (!(c.header == 48 && cut == 28)) {
          EXPECT_TRUE(o.error);
        }
        continue;
      }
      size_t complete = 0;
      while (complete < c.ends.size() && c.ends[complete] <= cut)
        ++complete;
      EXPECT_EQ(o.packets.size(), complete);
      const bool boundary = cut == c.header || (complete && c.ends[complete - 1] == cut);
      EXPECT_EQ(o.error.has_value(), !boundary) << message_of(o);
      if (o.error) {
        EXPECT_NE(message_of(o).find("truncated"), std::string::npos) << message_of(o);
        EXPECT_EQ(o.stats.drops.get(DropReason::PcapTruncated), 1u);
      }
    }
  }
}

// ---- files, pipes, registry -----------------------------------------------------------

class PcapFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "l45-pcapfile-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_file(const std::string& p, const ByteVec& v) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
  }
  fs::path dir_;
};

TEST_F(PcapFileOnDisk, MappedPacketsBorrowTheFileAndOutliveTheSource) {
  auto recs = sample_records();
  write_file(path("a.pcap"), make_pcap(false, false, recs));
  std::vector<Packet> kept;
  {
    auto src = PcapFileSource::open(path("a.pcap"));
    ASSERT_TRUE(src.ok()) << src.error().message();
    auto o = drain(**src);
    ASSERT_FALSE(o.error) << message_of(o);
    kept = std::move(o.packets);
  }
  fs::remove(path("a.pcap"));
  expect_same_as_records(kept, recs, false);
  for (const Packet& p : kept)
    EXPECT_FALSE(p.is_unique());  // borrowed, not copied
}

TEST_F(PcapFileOnDisk, ReadAllReturnsEveryPacketOrTheError) {
  auto recs = sample_records();
  write_file(path("a.pcap"), make_pcap(true, true, recs));
  auto all = PcapFileSource::read_all(path("a.pcap"));
  ASSERT_TRUE(all.ok()) << all.error().message();
  expect_same_as_records(*all, recs, true);
  auto same = read_capture(path("a.pcap"));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size(), recs.size());
  write_file(path("b.pcap"), frame_bytes(30, 0));
  EXPECT_FALSE(PcapFileSource::read_all(path("b.pcap")).ok());
}

TEST_F(PcapFileOnDisk, MissingFileIsAnEnvironmentErrorWithErrno) {
  auto src = PcapFileSource::open(path("nope.pcap"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.error().code(), ENOENT);
  EXPECT_EQ(src.error().context(), "open " + path("nope.pcap"));
}

TEST_F(PcapFileOnDisk, FifoIsReadWholeThenParsed) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  auto file = small_pcapng();
  std::thread writer([&] {
    int fd = ::open(path("fifo").c_str(), O_WRONLY);
    if (fd < 0) return;
    for (size_t off = 0; off < file.size();) {  // in small pieces, like a slow producer
      ssize_t n = ::write(fd, file.data() + off, std::min<size_t>(7, file.size() - off));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  auto src = PcapFileSource::open(path("fifo"));
  writer.join();
  ASSERT_TRUE(src.ok()) << src.error().message();
  auto o = drain(**src);
  EXPECT_FALSE(o.error) << message_of(o);
  EXPECT_EQ(o.packets.size(), 2u);
}

TEST_F(PcapFileOnDisk, DashReadsStandardInput) {
  auto file = make_pcap(false, false, sample_records());
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  int saved = ::dup(STDIN_FILENO);
  ASSERT_GE(saved, 0);
  ::dup2(pipefd[0], STDIN_FILENO);
  ::close(pipefd[0]);
  std::thread writer([&] {
    for (size_t off = 0; off < file.size();) {
      ssize_t n = ::write(pipefd[1], file.data() + off, file.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(pipefd[1]);
  });
  auto src = PcapFileSource::open("-");
  writer.join();
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  ASSERT_TRUE(src.ok()) << src.error().message();
  EXPECT_EQ((*src)->name(), "file:-");
  auto o = drain(**src);
  EXPECT_FALSE(o.error) << message_of(o);
  EXPECT_EQ(o.packets.size(), 4u);
}

TEST_F(PcapFileOnDisk, StdinErrorsAreNamedStdin) {
  auto file = make_pcap(false, false, sample_records());
  file.resize(50);
  write_file(path("cut.pcap"), file);
  int fd = ::open(path("cut.pcap").c_str(), O_RDONLY);
  int saved = ::dup(STDIN_FILENO);
  ::dup2(fd, STDIN_FILENO);
  ::close(fd);
  auto src = PcapFileSource::open("-");
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  ASSERT_TRUE(src.ok()) << src.error().message();
  auto o = drain(**src);
  EXPECT_EQ(message_of(o),
            "stdin: truncated record at byte 24 (packet 1): header says 60 bytes, "
            "10 left");
}

TEST_F(PcapFileOnDisk, FileSchemeAndBarePathOpenTheReader) {
  write_file(path("r.pcapng"), small_pcapng());
  for (const std::string& spec : {"file:" + path("r.pcapng"), path("r.pcapng")}) {
    auto src = open_source(spec);
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->name(), "file:" + path("r.pcapng"));
    EXPECT_EQ((*src)->link_type(), LinkType::Ethernet);
    PacketBatch batch;
    auto n = (*src)->read(batch);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 2u);
  }
  auto bad = open_source("file:" + path("r.pcapng") + ",snaplen=5");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("takes no options"), std::string::npos);
}

TEST_F(PcapFileOnDisk, FilterRunsOnTheFileLinkType) {
  write_file(path("f.pcap"), make_pcap(false, false, sample_records()));
  auto src = open_source(path("f.pcap"));
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->set_filter("greater 1000").ok());
  PacketBatch batch;
  auto n = (*src)->read(batch);
  ASSERT_TRUE(n.ok());
  // The filter sees the wire length: the 54-byte capture of a 1400-byte frame matches too.
  ASSERT_EQ(*n, 2u);
  EXPECT_EQ(batch[0].size(), 1514u);
  EXPECT_EQ(batch[1].size(), 54u);
  EXPECT_EQ((*src)->stats().filtered, 2u);
}

// ---- writer ----------------------------------------------------------------------------

std::vector<Packet> sample_packets(bool ns_precise, bool mixed) {
  std::vector<Packet> v;
  const int64_t base = 1700000000LL * 1000000000;
  for (int i = 0; i < 6; ++i) {
    PacketMeta m;
    m.ts.ns = base + i * 1234567000LL + (ns_precise ? i * 89 + 1 : 0);
    m.wire_len = static_cast<uint32_t>(64 + i * 300 + (i == 3 ? 5000 : 0));
    m.link = mixed && i % 2 ? LinkType::Raw : LinkType::Ethernet;
    m.ingress = mixed ? static_cast<uint32_t>(1 + i % 2) : 0;
    m.direction = mixed && i > 3 ? Direction::Outbound : Direction::Unknown;
    v.push_back(Packet::copy_of(frame_bytes(static_cast<size_t>(64 + i * 300), uint8_t(i)), m));
  }
  return v;
}

void expect_same_packets(const std::vector<Packet>& got, const std::vector<Packet>& want,
                         bool compare_ingress) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].meta().ts.ns, want[i].meta().ts.ns);
    EXPECT_EQ(got[i].meta().wire_len, want[i].meta().wire_len);
    EXPECT_EQ(got[i].meta().link, want[i].meta().link);
    EXPECT_EQ(got[i].meta().direction, want[i].meta().direction);
    EXPECT_EQ(got[i].meta().frame, i + 1);
    if (compare_ingress) {
      EXPECT_EQ(got[i].meta().ingress, want[i].meta().ingress);
    }
    ASSERT_EQ(got[i].size(), want[i].size());
    EXPECT_TRUE(std::equal(got[i].data().begin(), got[i].data().end(), want[i].data().begin()));
  }
}

Result<void> write_all(const std::string& spec, const std::vector<Packet>& pkts) {
  L45_TRY(auto sink, open_sink(spec));
  PacketBatch batch(4);
  for (const Packet& p : pkts) {
    batch.push(p.share());
    if (batch.full()) {
      L45_TRY_VOID(sink->write(batch));
      batch.clear();
    }
  }
  L45_TRY_VOID(sink->write(batch));
  return sink->flush();
}

TEST_F(PcapFileOnDisk, PcapRoundTripIsExactInBothResolutions) {
  for (bool ns : {false, true}) {
    SCOPED_TRACE(ns);
    auto pkts = sample_packets(ns, false);
    const std::string p = path(ns ? "ns.pcap" : "us.pcap");
    auto w = write_all("file:" + p + (ns ? ",ts=ns" : ""), pkts);
    ASSERT_TRUE(w.ok()) << w.error().message();
    auto src = PcapFileSource::open(p);
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->format(), CaptureFormat::Pcap);
    EXPECT_EQ((*src)->interfaces()[0].units_per_sec, ns ? 1000000000u : 1000000u);
    auto o = drain(**src);
    ASSERT_FALSE(o.error) << message_of(o);
    expect_same_packets(o.packets, pkts, true);
    // and once more through the sink: the bytes are identical
    const std::string again = path("again.pcap");
    ASSERT_TRUE(write_all("file:" + again + (ns ? ",ts=ns" : ""), o.packets).ok());
    std::string a;
    testing::run("cmp " + p + " " + again, &a);
    EXPECT_EQ(a, "");
  }
}

TEST_F(PcapFileOnDisk, PcapngRoundTripIsExactWithMixedLinksInterfacesAndDirections) {
  for (const char* ts : {"", ",ts=us", ",ts=ns"}) {
    SCOPED_TRACE(ts);
    const bool ns = std::string(ts) != ",ts=us";
    auto pkts = sample_packets(ns, true);
    const std::string p = path("out.pcapng");
    auto w = write_all("file:" + p + ts, pkts);
    ASSERT_TRUE(w.ok()) << w.error().message();
    auto src = PcapFileSource::open(p);
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->format(), CaptureFormat::Pcapng);
    auto o = drain(**src);
    ASSERT_FALSE(o.error) << message_of(o);
    expect_same_packets(o.packets, pkts, true);
    EXPECT_EQ((*src)->interfaces().size(), 2u);
  }
}

TEST_F(PcapFileOnDisk, FormatOptionWritesPcapngWhateverThePath) {
  auto pkts = sample_packets(false, false);
  ASSERT_TRUE(write_all("file:" + path("x.bin") + ",format=pcapng", pkts).ok());
  auto src = PcapFileSource::open(path("x.bin"));
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->format(), CaptureFormat::Pcapng);
  ASSERT_TRUE(write_all("file:" + path("y.pcapng") + ",format=pcap", pkts).ok());
  auto src2 = PcapFileSource::open(path("y.pcapng"));
  ASSERT_TRUE(src2.ok());
  EXPECT_EQ((*src2)->format(), CaptureFormat::Pcap);
}

TEST_F(PcapFileOnDisk, UpperCasePcapngSuffixSelectsPcapng) {
  ASSERT_TRUE(write_all("file:" + path("X.PCAPNG"), sample_packets(false, false)).ok());
  auto src = PcapFileSource::open(path("X.PCAPNG"));
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->format(), CaptureFormat::Pcapng);
}

TEST(PcapFileSink, WriteErrorIsStickyAndNamesTheFile) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  auto sink = PcapFileSink::open("/dev/full");
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  ASSERT_TRUE((*sink)->write(Packet::copy_of(frame_bytes(100, 0))).ok());  // buffered
  auto r = (*sink)->flush();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ENOSPC);
  EXPECT_EQ(r.error().context(), "write /dev/full");
  auto again = (*sink)->write(Packet::copy_of(frame_bytes(100, 0)));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ENOSPC);
  EXPECT_FALSE((*sink)->close().ok());
}

TEST_F(PcapFileOnDisk, MicrosecondFilesDropSubMicrosecondDigits) {
  auto pkts = sample_packets(true, false);
  ASSERT_TRUE(write_all("file:" + path("us.pcap"), pkts).ok());
  auto all = PcapFileSource::read_all(path("us.pcap"));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), pkts.size());
  for (size_t i = 0; i < pkts.size(); ++i)
    EXPECT_EQ((*all)[i].meta().ts.ns, pkts[i].meta().ts.ns / 1000 * 1000);
}

TEST_F(PcapFileOnDisk, LinkOptionOverridesThePacketsLinkType) {
  auto pkts = sample_packets(false, true);
  ASSERT_TRUE(write_all("file:" + path("l.pcap") + ",link=147", pkts).ok());
  auto src = PcapFileSource::open(path("l.pcap"));
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->raw_link_type(), 147u);
  auto o = drain(**src);
  ASSERT_EQ(o.packets.size(), pkts.size());
  for (const Packet& p : o.packets)
    EXPECT_EQ(static_cast<uint32_t>(p.meta().link), 147u);
}

TEST_F(PcapFileOnDisk, ClassicSinkRefusesASecondLinkType) {
  auto pkts = sample_packets(false, true);
  auto w = write_all("file:" + path("mixed.pcap"), pkts);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("packet 2 has link type 101 but the file holds link type 1"),
            std::string::npos)
      << w.error().message();
}

TEST_F(PcapFileOnDisk, SinkWithoutPacketsWritesAReadableEmptyCapture) {
  for (const char* name : {"e.pcap", "e.pcapng"}) {
    {
      auto sink = open_sink("file:" + path(name));
      ASSERT_TRUE(sink.ok());
    }  // the destructor flushes
    auto src = PcapFileSource::open(path(name));
    ASSERT_TRUE(src.ok()) << src.error().message();
    auto o = drain(**src);
    EXPECT_FALSE(o.error);
    EXPECT_TRUE(o.packets.empty());
  }
}

TEST_F(PcapFileOnDisk, SinkCutsPacketsToItsSnaplen) {
  auto pkts = sample_packets(false, false);
  ASSERT_TRUE(write_all("file:" + path("s.pcap") + ",snaplen=100", pkts).ok());
  auto all = PcapFileSource::read_all(path("s.pcap"));
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), pkts.size());
  for (size_t i = 0; i < pkts.size(); ++i) {
    EXPECT_EQ((*all)[i].size(), std::min<size_t>(100, pkts[i].size()));
    EXPECT_EQ((*all)[i].meta().wire_len, pkts[i].meta().wire_len);
  }
}

TEST_F(PcapFileOnDisk, BadSinkOptionsAreRejectedWithTheirName) {
  const std::pair<std::string, std::string> cases[] = {
      {",ts=ms", "ts=ms: expected us or ns"},
      {",format=erf", "format=erf: expected pcap or pcapng"},
      {",link=eth", "link=eth is not a number"},
      {",snaplen=0", "snaplen 0 is outside 1..262144"},
      {",colour=red", "unknown option 'colour'"},
  };
  for (const auto& [opt, want] : cases) {
    auto s = open_sink("file:" + path("o.pcap") + opt);
    ASSERT_FALSE(s.ok()) << opt;
    EXPECT_NE(s.error().message().find(want), std::string::npos) << s.error().message();
  }
  auto closed = PcapFileSink::open(path("c.pcap"));
  ASSERT_TRUE(closed.ok());
  ASSERT_TRUE((*closed)->close().ok());
  EXPECT_FALSE((*closed)->write(Packet::copy_of(frame_bytes(10, 0))).ok());
}

// ---- oracles: tshark and scapy --------------------------------------------------------

bool have(const std::string& cmd) {
  return testing::run("command -v " + cmd + " >/dev/null") == 0;
}

struct TsharkFrame {
  int64_t ns;
  uint32_t caplen;
  uint32_t len;
  std::string iface;
};

// "1377201633.570191000" -> ns, exactly (tshark prints nine digits).
std::optional<int64_t> parse_epoch(std::string_view s) {
  auto dot = s.find('.');
  int64_t sec = 0;
  int64_t frac = 0;
  std::string_view a = s.substr(0, dot);
  if (std::from_chars(a.data(), a.data() + a.size(), sec).ec != std::errc()) return std::nullopt;
  if (dot != std::string_view::npos) {
    std::string digits(s.substr(dot + 1));
    if (digits.size() > 9) return std::nullopt;
    digits.resize(9, '0');
    if (std::from_chars(digits.data(), digits.data() + 9, frac).ec != std::errc())
      return std::nullopt;
  }
  return sec * 1000000000 + frac;
}

std::vector<TsharkFrame> parse_tshark(const std::string& text) {
  std::vector<TsharkFrame> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, '\t'))
      f.push_back(cell);
    if (f.size() < 3) continue;
    TsharkFrame t;
    auto ns = parse_epoch(f[0]);
    t.ns = ns ? *ns : INT64_MIN;
    t.caplen = static_cast<uint32_t>(std::stoul(f[1]));
    t.len = static_cast<uint32_t>(std::stoul(f[2]));
    t.iface = f.size() > 3 ? f[3] : "";
    v.push_back(t);
  }
  return v;
}

const char* kTsharkFields =
    "-T fields -E separator=/t -e frame.time_epoch -e frame.cap_len -e frame.len "
    "-e frame.interface_id";

std::string tshark_file(const std::string& path) {
  std::string out;
  testing::run("{ tshark -n -r '" + path + "' " + kTsharkFields + " 2>/dev/null; }", &out);
  return out;
}

// Compares what we read from `file` with tshark's frames; returns a description of the first
// difference, or "" when they agree. `check_iface`: compare pcapng interface ids too.
std::string compare_frames(const std::string& file, const std::vector<Packet>& got, bool ng,
                           const std::vector<TsharkFrame>& want, bool check_iface) {
  if (want.size() != got.size()) {
    return "tshark sees " + std::to_string(want.size()) + " packets, we read " +
           std::to_string(got.size());
  }
  for (size_t i = 0; i < want.size(); ++i) {
    const PacketMeta& m = got[i].meta();
    std::string at = file + " packet " + std::to_string(i + 1) + ": ";
    if (m.ts.ns != want[i].ns)
      return at + "time " + std::to_string(m.ts.ns) + " vs tshark " + std::to_string(want[i].ns);
    if (got[i].size() != want[i].caplen)
      return at + "caplen " + std::to_string(got[i].size()) + " vs tshark " +
             std::to_string(want[i].caplen);
    if (m.wire_len != want[i].len)
      return at + "len " + std::to_string(m.wire_len) + " vs tshark " + std::to_string(want[i].len);
    if (check_iface && ng && std::to_string(m.ingress - 1) != want[i].iface)
      return at + "interface " + std::to_string(m.ingress - 1) + " vs tshark " + want[i].iface;
  }
  return "";
}

struct ReadFile {
  std::vector<Packet> packets;
  bool pcapng = false;
  std::string error;
};

ReadFile read_file(const std::string& file) {
  ReadFile r;
  auto src = PcapFileSource::open(file);
  if (!src.ok()) {
    r.error = "open: " + src.error().message();
    return r;
  }
  r.pcapng = (*src)->format() == CaptureFormat::Pcapng;
  auto o = drain(**src, 256);
  if (o.error) r.error = "read: " + o.error->message();
  r.packets = std::move(o.packets);
  return r;
}

std::string compare_with_tshark(const std::string& file) {
  ReadFile r = read_file(file);
  if (!r.error.empty()) return r.error;
  return compare_frames(file, r.packets, r.pcapng, parse_tshark(tshark_file(file)), true);
}

TEST(PcapFileOracle, EveryCaptureInSharedPcapsReadsAsTsharkReadsIt) {
  auto dir = testing::shared_pcaps_dir();
  if (!dir) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS to point at them)";
  if (!have("tshark") || !have("mergecap")) GTEST_SKIP() << "tshark/mergecap not installed";
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(*dir)) {
    const auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap"))
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  // tshark's start-up (~0.25 s) would dominate one run per file on two cores, so wiretap
  // concatenates the files (mergecap -a keeps every record and its order) and one tshark run
  // reads them all; each file's share is then compared with what we read from that file.
  // Interface ids are renumbered by mergecap: those are checked by the sink round trips.
  std::string tmpl = (fs::temp_directory_path() / "l45-tshark-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  std::string cmd = "mergecap -a -F pcapng -w " + tmpl + "/all.pcapng";
  for (const std::string& f : files)
    cmd += " '" + f + "'";
  std::string out;
  ASSERT_EQ(testing::run(cmd, &out), 0) << out;
  auto want = parse_tshark(tshark_file(tmpl + "/all.pcapng"));
  fs::remove_all(tmpl);
  size_t at = 0;
  for (const std::string& f : files) {
    ReadFile r = read_file(f);
    ASSERT_EQ(r.error, "") << f;
    const size_t n = std::min(r.packets.size(), want.size() - at);
    std::vector<TsharkFrame> share(want.begin() + static_cast<ptrdiff_t>(at),
                                   want.begin() + static_cast<ptrdiff_t>(at + n));
    ASSERT_EQ(compare_frames(f, r.packets, r.pcapng, share, false), "");
    at += n;
  }
  EXPECT_EQ(at, want.size()) << "tshark saw more packets than we read";
  std::cout << "[ shared  ] " << files.size() << " captures, " << at
            << " packets: count, time (ns), caplen and length agree with tshark\n";
}

TEST_F(PcapFileOnDisk, TsharkReadsWhatTheSinkWrites) {
  if (!have("tshark")) GTEST_SKIP() << "tshark not installed";
  for (const char* spec : {"a.pcap", "b.pcap,ts=ns", "c.pcapng", "d.pcapng,ts=us"}) {
    SCOPED_TRACE(spec);
    auto pkts = sample_packets(true, std::string(spec).find("pcapng") != std::string::npos);
    ASSERT_TRUE(write_all("file:" + path(spec), pkts).ok());
    const std::string file = path(std::string(spec).substr(0, std::string(spec).find(',')));
    EXPECT_EQ(compare_with_tshark(file), "");
  }
}

TEST_F(PcapFileOnDisk, ScapyWrittenBigEndianFilesReadAsTsharkReadsThem) {
  if (testing::run("/usr/bin/python3 -c 'import scapy.utils' >/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with scapy not available";
  if (!have("tshark")) GTEST_SKIP() << "tshark not installed";
  // scapy writes pcap in the byte order asked for; its pcapng writer only knows little-endian,
  // so it is switched to big-endian through its two byte-order attributes.
  const std::string script = R"PY(
import sys
from scapy.utils import PcapWriter, PcapNgWriter
d = sys.argv[1]
pkts = [bytes((j * 7 + i) & 0xff for j in range(60 + i * 37 % 200)) for i in range(5)]
for name, nano in (("be-us.pcap", False), ("be-ns.pcap", True)):
    w = PcapWriter(d + "/" + name, linktype=1, endianness=">", nano=nano)
    w._write_header(None)
    for i, p in enumerate(pkts):
        w.write_packet(p, sec=1500000000 + i, usec=(123456789 + i) if nano else (123457 + i * 1001))
    w.close()
w = PcapNgWriter(d + "/be.pcapng")
w.endian = ">"
w.endian_magic = b"\x1a\x2b\x3c\x4d"
w._write_header(None)
for i, p in enumerate(pkts):
    w.write_packet(p, sec=1500000000 + i, wirelen=len(p) + i)
w.close()
)PY";
  {
    std::ofstream f(path("gen.py"));
    f << script;
  }
  std::string out;
  ASSERT_EQ(testing::run("/usr/bin/python3 " + path("gen.py") + " " + dir_.string(), &out), 0)
      << out;
  for (const char* name : {"be-us.pcap", "be-ns.pcap", "be.pcapng"}) {
    SCOPED_TRACE(name);
    std::string first4;
    testing::run("head -c4 " + path(name) + " | od -An -tx1 | tr -d ' \\n'", &first4);
    EXPECT_TRUE(first4 == "a1b2c3d4" || first4 == "a1b23c4d" || first4 == "0a0d0d0a") << first4;
    auto src = PcapFileSource::open(path(name));
    ASSERT_TRUE(src.ok()) << src.error().message();
    auto o = drain(**src);
    EXPECT_EQ(o.packets.size(), 5u);
    EXPECT_EQ(compare_with_tshark(path(name)), "");
  }
}

TEST(PcapFileFuzzSeeds, CommittedSeedsReadToTheEndOrToANamedError) {
  const fs::path dir = testing::source_dir() / "fuzz" / "corpus" / "pcap_reader";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no fuzz corpus at " << dir;
  size_t seeds = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() == ".py") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ByteVec v(reinterpret_cast<const std::byte*>(s.data()),
              reinterpret_cast<const std::byte*>(s.data()) + s.size());
    auto o = read_memory(v, e.path().filename().string());
    if (o.error) {
      EXPECT_EQ(o.error->code(), 0) << o.error->message();
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 10u);
}

}  // namespace
}  // namespace l45
