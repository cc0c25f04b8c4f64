// Capture files: reading and writing pcap and pcapng, without libpcap's reader.
//
// PcapFileSource reads classic pcap (either byte order, microsecond or nanosecond magic) and
// pcapng (every section in its own byte order; IDB, EPB, SPB and the obsolete Packet Block;
// other blocks are skipped by their length). The format comes from the magic, never from the
// file name. The file is memory-mapped and each packet borrows its bytes from the mapping
// (zero copy); pipes and stdin ("-") are read whole first. As with any mapping, a file that
// another process truncates while it is read raises SIGBUS: copy files that are still being
// written (or read them through a pipe).
//
//   source spec:  file:PATH   or a bare PATH;  "-" is stdin.  No options.
//   per packet:   meta.ts       exact, in ns (pcapng if_tsresol, power-of-10 or power-of-2, and
//                               if_tsoffset applied; a Simple Packet Block has no time: 0)
//                 meta.wire_len original length; the packet's bytes are what was captured
//                 meta.frame    1-based ordinal in the file
//                 meta.link     the link type of the packet's interface (a pcapng file may mix)
//                 meta.ingress  pcapng: 1 + the interface's index among all IDBs of the file
//                               (counted across sections, so interfaces() is indexed by it;
//                               tshark's frame.interface_id restarts in each section);
//                               classic pcap: 0
//                 meta.direction from epb_flags / pack_flags when present
//
// A truncated or corrupt file is one clear Error, never a crash, and nothing before it is lost:
// the packets before the bad record are delivered first, then read() returns e.g.
//   trace.pcap: truncated record at byte 1234 (packet 17): header says 1514 bytes, 200 left
//   x.pcapng: corrupt pcapng block at byte 88: block length 7 is below the minimum 12
// and counts it once in stats().drops as pcap_truncated (the file ends inside a record) or
// pcap_corrupt (a length or field that cannot be right). After that, read() returns 0 and
// at_end() is true. A captured length above 256 KiB is corrupt; one above an understated
// snapshot length is read whole, as Wireshark does. An unknown link type is not an error here (the
// decoder reports unknown_link_type). Format errors carry errno 0: their message says everything.
//
// PcapFileSink writes classic pcap, or pcapng when the path ends in ".pcapng" or
// format=pcapng. Each packet's captured bytes, wire length, timestamp (and, for pcapng, its
// direction) are written, so read -> write -> read is exact.
//
//   sink spec:    file:PATH[,format=pcap|pcapng][,ts=us|ns][,link=N][,snaplen=N];  "-" is stdout
//     format      pcap (default) or pcapng (default when PATH ends in .pcapng)
//     ts          timestamp resolution: us (default for pcap, which every reader knows) or ns
//                 (default for pcapng, whose readers all honour if_tsresol)
//     link        LINKTYPE_ number written in the header; default: the first packet's meta.link.
//                 Classic pcap has one link type: a packet of another is an error (use pcapng,
//                 which gets one interface per (link type, ingress) seen). With link=N every
//                 packet is written under N.
//     snaplen     snapshot length in the header (default 262144); longer packets are cut to it
//   Times before 1970 are written as 1970; classic pcap also clamps times after 2106 (its
//   seconds are 32 bits unsigned).
//
//   L45_TRY(auto in, PcapFileSource::open("trace.pcapng"));
//   L45_TRY(auto out, open_sink("file:copy.pcap,ts=ns"));
//   PacketBatch batch;
//   for (;;) {
//     L45_TRY(size_t n, in->read(batch));
//     if (n == 0 && in->at_end()) break;
//     L45_TRY_VOID(out->write(batch));
//   }
//   L45_TRY_VOID(out->flush());
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/io/registry.hpp"
#include "l45/io/source.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

enum class CaptureFormat : uint8_t { Pcap, Pcapng };

// The largest captured length accepted (libpcap's and Wireshark's limit for every common
// link type): anything above it is taken as a corrupt length field.
inline constexpr uint32_t kMaxCaptureLength = 262144;

class PcapFileSource final : public Source {
 public:
  // One capture interface: the classic pcap header, or one pcapng IDB.
  struct Interface {
    uint32_t link_type = 0;      // LINKTYPE_ value (low 16 bits of the header field)
    uint32_t snaplen = 0;        // as written; 0 = no limit
    uint64_t units_per_sec = 0;  // timestamp units per second: from if_tsresol, or 1e6/1e9
    int64_t offset_sec = 0;      // pcapng if_tsoffset
    uint32_t section = 0;        // 0-based pcapng section it belongs to
  };

  ~PcapFileSource() override;

  // Opens and maps PATH ("-" = stdin) and reads the file header (for pcapng: up to the first
  // interface). Fails on I/O errors and on a file that is not pcap/pcapng or whose header is
  // already bad; later corruption is reported by read().
  static Result<std::unique_ptr<PcapFileSource>> open(std::string_view path);
  // The same over bytes in memory. This overload copies them; `name` prefixes messages.
  static Result<std::unique_ptr<PcapFileSource>> from_memory(Bytes data, std::string name);
  // Zero copy: packets borrow `data`, which `keepalive` must keep alive.
  static Result<std::unique_ptr<PcapFileSource>> from_memory(Bytes data,
                                                             std::shared_ptr<const void> keepalive,
                                                             std::string name);
  // Every packet of PATH, or the first error (packets before it are discarded with it).
  static Result<std::vector<Packet>> read_all(std::string_view path);

  bool at_end() const override;
  LinkType link_type() const override;  // the first interface's
  std::string name() const override;    // "file:PATH"

  CaptureFormat format() const { return format_; }
  uint32_t snaplen() const;  // the first interface's
  // The whole 32-bit link-type field of a classic pcap header (FCS and reserved bits
  // included); for pcapng, the first IDB's link type.
  uint32_t raw_link_type() const { return raw_link_type_; }
  // Classic pcap: the one header. pcapng: every IDB read so far, in file order.
  const std::vector<Interface>& interfaces() const { return interfaces_; }

 protected:
  Result<size_t> read_some(PacketBatch& batch) override;

 private:
  struct Record;
  enum class Step : uint8_t { Packet, Again, End, Error };

  PcapFileSource() = default;
  static Result<std::unique_ptr<PcapFileSource>> start(std::shared_ptr<const void> keepalive,
                                                       Bytes data, std::string path);
  Result<void> open_pcap();
  Result<void> open_pcapng();
  Step next_pcap(Record& r);
  Step next_pcapng(Record& r);
  std::optional<Step> check_block_length(const std::byte* b, uint32_t len, size_t left,
                                         uint32_t min_len, std::string_view what);
  Step section_header(const std::byte* b, size_t left);
  Step interface_description(const std::byte* b, uint32_t len);
  Step packet_block(uint32_t type, const std::byte* b, uint32_t len, Record& r);
  Step fail(DropReason why, std::string msg);
  std::string shown_path() const;  // as messages name it: the path, or "stdin"
  uint16_t u16(const std::byte* p) const;
  uint32_t u32(const std::byte* p) const;
  uint64_t u64(const std::byte* p) const;

  std::shared_ptr<const void> keepalive_;  // owns the bytes that packets borrow
  Bytes data_;
  Packet whole_;  // all of data_, when under 4 GiB: records are slices of it
  std::string path_;
  CaptureFormat format_ = CaptureFormat::Pcap;
  size_t pos_ = 0;           // next record or block
  uint64_t frames_ = 0;      // packets produced so far
  bool big_endian_ = false;  // of the file (pcap) or of the current section (pcapng)
  bool done_ = false;
  std::optional<Error> pending_;  // an error found after packets that were delivered first

  // classic pcap
  bool nanosecond_ = false;
  uint8_t lengths_swapped_ = 0;  // files before pcap 2.4 may hold caplen and len swapped
  LinkType link_ = LinkType::Ethernet;
  uint32_t raw_link_type_ = 0;

  // pcapng
  std::vector<Interface> interfaces_;
  size_t section_base_ = 0;     // index in interfaces_ of the section's interface 0
  uint32_t section_count_ = 0;  // number of sections seen
};

// Every packet of a capture file (PcapFileSource::read_all): for tests and benchmarks that
// want the whole trace in memory, borrowed from its mapping.
Result<std::vector<Packet>> read_capture(std::string_view path);

enum class TsResolution : uint8_t { Auto, Micro, Nano };  // Auto: us for pcap, ns for pcapng

struct PcapWriteOptions {
  CaptureFormat format = CaptureFormat::Pcap;
  TsResolution ts = TsResolution::Auto;
  std::optional<uint32_t> link;  // LINKTYPE_; default: the first packet's meta.link
  uint32_t snaplen = kMaxCaptureLength;
};

class PcapFileSink final : public Sink {
 public:
  // Creates (truncates) PATH; "-" is stdout.
  static Result<std::unique_ptr<PcapFileSink>> open(std::string_view path,
                                                    PcapWriteOptions opts = {});
  // From a sink spec's options (see the top of this file).
  static Result<std::unique_ptr<PcapFileSink>> open(const SourceSpec& spec);
  // Flushes and closes, ignoring errors: call close() to see them.
  ~PcapFileSink() override;

  Result<void> write(const PacketBatch& batch) override;
  Result<void> write(const Packet& p) override;
  // Writes the header (even with no packet yet) and everything buffered.
  Result<void> flush() override;
  // flush(), then close the file. Later writes fail. After a failed write every call returns
  // that error: the file would have a hole.
  Result<void> close();
  std::string name() const override;
  uint64_t packets_written() const { return packets_; }

 private:
  PcapFileSink() = default;
  Result<void> start(uint32_t link);
  uint32_t interface_for(const Packet& p);
  void put_pcap(const Packet& p);
  void put_pcapng(const Packet& p, uint32_t iface);
  void put_idb(uint32_t link);
  Result<void> drain();

  int fd_ = -1;
  bool own_fd_ = false;
  std::string path_;
  PcapWriteOptions opts_;
  bool nanosecond_ = false;
  bool started_ = false;
  uint32_t link_ = 0;
  uint64_t packets_ = 0;
  // pcapng: one interface per (link type, ingress) in order of first use
  std::vector<std::pair<uint32_t, uint32_t>> ifaces_;
  std::vector<std::byte> buf_;
  std::optional<Error> failed_;  // a write that failed: every later call returns it
};

}  // namespace l45
