// pcap and pcapng, read in place from a mapping and written through one buffer.
// Formats: pcap-savefile(5) and draft-ietf-opsawg-pcapng (sections 3-4: block framing, SHB,
// IDB with if_tsresol/if_tsoffset, EPB, SPB; appendix: the obsolete Packet Block).
#include "l45/io/pcap_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

namespace l45 {

namespace {

constexpr uint32_t kPcapMagicUs = 0xa1b2c3d4;
constexpr uint32_t kPcapMagicNs = 0xa1b23c4d;
constexpr uint32_t kPcapHeaderLen = 24;
constexpr uint32_t kPcapRecordHeaderLen = 16;

constexpr uint32_t kShbType = 0x0a0d0d0a;  // a palindrome: readable before the byte order is known
constexpr uint32_t kIdbType = 1;
constexpr uint32_t kPbType = 2;  // obsolete Packet Block (pcapng appendix)
constexpr uint32_t kSpbType = 3;
constexpr uint32_t kEpbType = 6;
constexpr uint32_t kByteOrderMagic = 0x1a2b3c4d;
constexpr uint32_t kBlockMinLen = 12;  // type, length, trailing length
constexpr uint32_t kShbMinLen = 28;
constexpr uint32_t kIdbMinLen = 20;
constexpr uint32_t kEpbMinLen = 32;
constexpr uint32_t kPbMinLen = 32;
constexpr uint32_t kSpbMinLen = 16;

constexpr uint16_t kOptEnd = 0;
constexpr uint16_t kOptFlags = 2;  // epb_flags / pack_flags
constexpr uint16_t kOptTsresol = 9;
constexpr uint16_t kOptTsoffset = 14;
constexpr uint16_t kOptUserAppl = 4;

constexpr uint64_t kNsPerSec = 1'000'000'000;
constexpr uint64_t kUsPerSec = 1'000'000;

// pcap 2.3 and older may hold caplen and len in each other's place (libpcap's rule).
constexpr uint8_t kLengthsInOrder = 0;
constexpr uint8_t kLengthsSwapped = 1;
constexpr uint8_t kLengthsMaybeSwapped = 2;

constexpr size_t kSinkBufferLen = 1 << 20;

// perf: records are found by chasing lengths through memory that is not in cache, one miss
// per record; touching the file 8 KiB ahead lets the misses overlap. pcap_file_bench on a
// 200 MB trace (363k packets, in the page cache): BM_RecordWalk/8192 vs /0 61 vs 95 ns per
// packet; BM_PcapFileSource 84 ns per packet with it, 107 without (same run, interleaved).
constexpr size_t kPrefetchAhead = 8192;

uint64_t load_le64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint64_t pad4(uint64_t n) {
  return (n + 3) & ~uint64_t{3};
}

// "open trace.pcap: No such file or directory". errno is read before the message is
// formatted, because formatting allocates and may change it.
Error errno_error(std::string_view what, std::string_view path) {
  const int code = errno;
  return Error(code, fmt::format("{} {}", what, path));
}

// A captured length above kMaxCaptureLength means the length field is garbage. One above the
// header's snapshot length is not: tools have written understated snaplens (libpcap's
// sf-pcap.c blames old Solaris BUFMOD), and Wireshark reads such records whole, so l45 keeps
// every captured byte too rather than refusing the file or cutting the packet as libpcap does.

int64_t saturate(__int128 v) {
  if (v > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (v < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

// pcapng time: `t` units of 1/units_per_sec s since the epoch, plus if_tsoffset seconds.
// Sub-nanosecond parts are truncated, as Wireshark does. A file can hold any 64-bit value, so
// the arithmetic is 128-bit and the result saturates instead of overflowing.
int64_t pcapng_time_ns(uint64_t t, uint64_t units_per_sec, int64_t offset_sec) {
  unsigned __int128 ns;
  if (units_per_sec == kUsPerSec) {
    ns = static_cast<unsigned __int128>(t) * 1000;
  } else if (units_per_sec == kNsPerSec) {
    ns = t;
  } else {
    ns = static_cast<unsigned __int128>(t / units_per_sec) * kNsPerSec +
         static_cast<unsigned __int128>(t % units_per_sec) * kNsPerSec / units_per_sec;
  }
  return saturate(static_cast<__int128>(ns) + static_cast<__int128>(offset_sec) * 1'000'000'000);
}

// The bytes of a capture file: a read-only mapping, or a heap copy when the file cannot be
// mapped (pipes, stdin) or came from memory. Packets hold it alive through their keepalive.
class Contents {
 public:
  Contents() = default;
  Contents(const Contents&) = delete;
  Contents& operator=(const Contents&) = delete;
  ~Contents() {
    if (map_) ::munmap(map_, map_len_);
  }

  static Result<std::shared_ptr<Contents>> load(const std::string& path) {
    const bool is_stdin = path == "-";
    int fd = is_stdin ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("open", path);
    auto c = std::make_shared<Contents>();
    auto r = c->fill(fd, is_stdin ? "stdin" : path);
    if (!is_stdin) ::close(fd);
    if (!r.ok()) return r.error();
    return c;
  }

  static std::shared_ptr<Contents> copy_of(Bytes data) {
    auto c = std::make_shared<Contents>();
    c->heap_.assign(data.begin(), data.end());
    return c;
  }

  Bytes bytes() const {
    if (map_) return {static_cast<const std::byte*>(map_), map_len_};
    return {heap_.data(), heap_.size()};
  }

 private:
  Result<void> fill(int fd, const std::string& what) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error("stat", what);
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
      // perf: a private read-only mapping lets the kernel's readahead feed us pages and lets
      // every packet point into the page cache: no copy, no read() per record.
      void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        ::madvise(m, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
        map_ = m;
        map_len_ = static_cast<size_t>(st.st_size);
        return {};
      }
      // Some file systems cannot map: read the file instead.
    }
    size_t used = 0;
    heap_.resize(S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1
                                                       : size_t{1} << 16);
    for (;;) {
      if (used == heap_.size()) heap_.resize(heap_.size() * 2);
      ssize_t n = ::read(fd, heap_.data() + used, heap_.size() - used);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("read", what);
      if (n == 0) break;
      used += static_cast<size_t>(n);
    }
    heap_.resize(used);  // no shrink_to_fit: it would copy the whole input once more
    return {};
  }

  void* map_ = nullptr;
  size_t map_len_ = 0;
  std::vector<std::byte> heap_;
};

}  // namespace

// ---- reader ----------------------------------------------------------------------------

struct PcapFileSource::Record {
  Bytes data;
  PacketMeta meta;
};

PcapFileSource::~PcapFileSource() = default;

uint16_t PcapFileSource::u16(const std::byte* p) const {
  return big_endian_ ? load_be16(p) : load_le16(p);
}
uint32_t PcapFileSource::u32(const std::byte* p) const {
  return big_endian_ ? load_be32(p) : load_le32(p);
}
uint64_t PcapFileSource::u64(const std::byte* p) const {
  return big_endian_ ? load_be64(p) : load_le64(p);
}

std::string PcapFileSource::name() const {
  return "file:" + path_;
}

std::string PcapFileSource::shown_path() const {
  return path_ == "-" ? "stdin" : path_;
}

bool PcapFileSource::at_end() const {
  return done_ && !pending_;
}

LinkType PcapFileSource::link_type() const {
  if (interfaces_.empty()) return LinkType::Ethernet;
  return static_cast<LinkType>(interfaces_.front().link_type);
}

uint32_t PcapFileSource::snaplen() const {
  return interfaces_.empty() ? 0 : interfaces_.front().snaplen;
}

PcapFileSource::Step PcapFileSource::fail(DropReason why, std::string msg) {
  stats_.drops.add(why);
  pending_ = Error(0, fmt::format("{}: {}", shown_path(), msg));
  done_ = true;
  return Step::Error;
}

Result<std::unique_ptr<PcapFileSource>> PcapFileSource::open(std::string_view path) {
  std::string p(path);
  L45_TRY(auto contents, Contents::load(p));
  Bytes data = contents->bytes();
  return start(std::move(contents), data, std::move(p));
}

Result<std::unique_ptr<PcapFileSource>> PcapFileSource::from_memory(Bytes data, std::string name) {
  auto contents = Contents::copy_of(data);
  Bytes copy = contents->bytes();
  return start(std::move(contents), copy, std::move(name));
}

Result<std::unique_ptr<PcapFileSource>> PcapFileSource::from_memory(
    Bytes data, std::shared_ptr<const void> keepalive, std::string name) {
  return start(std::move(keepalive), data, std::move(name));
}

Result<std::unique_ptr<PcapFileSource>> PcapFileSource::start(std::shared_ptr<const void> keepalive,
                                                              Bytes data, std::string path) {
  std::unique_ptr<PcapFileSource> s(new PcapFileSource());
  s->keepalive_ = std::move(keepalive);
  s->data_ = data;
  // perf: records are slices of one packet over the whole file (no allocation per record);
  // a file past 4 GiB borrows record by record.
  if (data.size() <= UINT32_MAX) s->whole_ = Packet::borrow(data, s->keepalive_);
  s->path_ = std::move(path);
  const std::string shown = s->shown_path();
  if (data.size() < 4) {
    return Error(0,
                 fmt::format("{}: not a pcap or pcapng file ({} bytes long)", shown, data.size()));
  }
  const uint32_t magic = load_be32(data.data());
  switch (magic) {
    case kPcapMagicUs:
    case kPcapMagicNs:
    case __builtin_bswap32(kPcapMagicUs):
    case __builtin_bswap32(kPcapMagicNs):
      s->format_ = CaptureFormat::Pcap;
      L45_TRY_VOID(s->open_pcap());
      break;
    case kShbType:
      s->format_ = CaptureFormat::Pcapng;
      L45_TRY_VOID(s->open_pcapng());
      break;
    default:
      return Error(
          0, fmt::format("{}: not a pcap or pcapng file (starts with 0x{:08x})", shown, magic));
  }
  return s;
}

Result<void> PcapFileSource::open_pcap() {
  const std::string shown = shown_path();
  if (data_.size() < kPcapHeaderLen) {
    return Error(
        0, fmt::format("{}: truncated pcap file header at byte 0: {} bytes needed, {} left", shown,
                       kPcapHeaderLen, data_.size()));
  }
  const std::byte* h = data_.data();
  const uint32_t magic = load_be32(h);
  big_endian_ = magic == kPcapMagicUs || magic == kPcapMagicNs;
  nanosecond_ = magic == kPcapMagicNs || magic == __builtin_bswap32(kPcapMagicNs);
  const uint16_t major = u16(h + 4);
  const uint16_t minor = u16(h + 6);
  if (major != 2) {
    return Error(0,
                 fmt::format("{}: unsupported pcap version {}.{} at byte 4", shown, major, minor));
  }
  lengths_swapped_ = minor < 3    ? kLengthsSwapped
                     : minor == 3 ? kLengthsMaybeSwapped
                                  : kLengthsInOrder;
  // h + 8: thiszone and sigfigs, always 0 in practice and ignored by libpcap and Wireshark.
  Interface itf;
  itf.snaplen = u32(h + 16);
  raw_link_type_ = u32(h + 20);
  // The upper 16 bits hold the FCS length and reserved flags (pcap-savefile(5) LinkType and
  // additional information); the link type proper is the low 16.
  itf.link_type = raw_link_type_ & 0xffff;
  itf.units_per_sec = nanosecond_ ? kNsPerSec : kUsPerSec;
  interfaces_.push_back(itf);
  link_ = static_cast<LinkType>(itf.link_type);
  pos_ = kPcapHeaderLen;
  return {};
}

Result<void> PcapFileSource::open_pcapng() {
  // link_type() must name the first interface before the first read (a filter is compiled
  // for it), so read the blocks up to the first IDB now. Nothing can precede them, so an
  // error here loses no packet.
  Record r;
  while (interfaces_.empty() && pos_ < data_.size()) {
    const size_t left = data_.size() - pos_;
    if (left >= 8 && pos_ > 0) {
      const uint32_t type = u32(data_.data() + pos_);
      if (type == kEpbType || type == kSpbType || type == kPbType) break;
    }
    if (next_pcapng(r) == Step::Error) {
      Error e = std::move(*pending_);
      pending_.reset();
      return e;
    }
  }
  raw_link_type_ = interfaces_.empty() ? 0 : interfaces_.front().link_type;
  return {};
}

Result<size_t> PcapFileSource::read_some(PacketBatch& batch) {
  if (pending_) {
    Error e = std::move(*pending_);
    pending_.reset();
    return e;
  }
  size_t n = 0;
  Record r;
  const bool ng = format_ == CaptureFormat::Pcapng;
  while (!done_ && !batch.full()) {
    const Step s = ng ? next_pcapng(r) : next_pcap(r);
    if (s == Step::Packet) {
      const size_t at = size_t(r.data.data() - data_.data());
      if (!whole_.empty() && r.data.data() >= data_.data() && at + r.data.size() <= whole_.size())
        batch.push(Packet::slice(whole_, at, r.data.size(), r.meta));
      else
        batch.push(Packet::borrow(r.data, keepalive_, r.meta));
      ++n;
    } else if (s == Step::End) {
      done_ = true;
    } else if (s == Step::Error && n == 0) {
      Error e = std::move(*pending_);
      pending_.reset();
      return e;
    }
    // Step::Error after packets: they go out now, the error with the next call.
  }
  return n;
}

PcapFileSource::Step PcapFileSource::next_pcap(Record& r) {
  const size_t left = data_.size() - pos_;
  if (left == 0) return Step::End;
  if (left > kPrefetchAhead) __builtin_prefetch(data_.data() + pos_ + kPrefetchAhead);
  const uint64_t packet = frames_ + 1;
  if (left < kPcapRecordHeaderLen) {
    return fail(
        DropReason::PcapTruncated,
        fmt::format("truncated record header at byte {} (packet {}): {} bytes needed, {} left",
                    pos_, packet, kPcapRecordHeaderLen, left));
  }
  const std::byte* h = data_.data() + pos_;
  uint32_t caplen = u32(h + 8);
  uint32_t len = u32(h + 12);
  if (lengths_swapped_ == kLengthsSwapped ||
      (lengths_swapped_ == kLengthsMaybeSwapped && caplen > len)) {
    std::swap(caplen, len);
  }
  if (caplen > kMaxCaptureLength) {
    return fail(
        DropReason::PcapCorrupt,
        fmt::format(
            "corrupt record at byte {} (packet {}): captured length {} exceeds the maximum {}",
            pos_, packet, caplen, kMaxCaptureLength));
  }
  const size_t room = left - kPcapRecordHeaderLen;
  if (caplen > room) {
    return fail(
        DropReason::PcapTruncated,
        fmt::format("truncated record at byte {} (packet {}): header says {} bytes, {} left", pos_,
                    packet, caplen, room));
  }
  // Seconds are unsigned 32 bits (pcap-savefile(5)); both parts fit an int64 of ns.
  const int64_t frac = u32(h + 4);
  r.data = {h + kPcapRecordHeaderLen, caplen};
  r.meta = PacketMeta{};
  r.meta.ts.ns = int64_t{u32(h)} * 1'000'000'000 + (nanosecond_ ? frac : frac * 1000);
  r.meta.wire_len = len;
  r.meta.frame = ++frames_;
  r.meta.link = link_;
  pos_ += kPcapRecordHeaderLen + caplen;
  return Step::Packet;
}

// A block's length fields (pcapng 3.1): at least `min_len`, a multiple of 4, inside the file,
// and equal to the trailing copy. `what` names the block in the message.
std::optional<PcapFileSource::Step> PcapFileSource::check_block_length(const std::byte* b,
                                                                       uint32_t len, size_t left,
                                                                       uint32_t min_len,
                                                                       std::string_view what) {
  if (len < min_len) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng {} at byte {}: block length {} is below the minimum {}",
                            what, pos_, len, min_len));
  }
  if (len % 4 != 0) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng {} at byte {}: block length {} is not a multiple of 4",
                            what, pos_, len));
  }
  if (len > left) {
    return fail(DropReason::PcapTruncated,
                fmt::format("truncated pcapng block at byte {}: block length {}, {} bytes left",
                            pos_, len, left));
  }
  const uint32_t trailing = u32(b + len - 4);
  if (trailing != len) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng {} at byte {}: trailing block length {} does not "
                            "match the leading {}",
                            what, pos_, trailing, len));
  }
  return std::nullopt;
}

// One pcapng block: a packet (Step::Packet), another block consumed (Step::Again), the end of
// the file or an error. The framing (length bounds, alignment, trailing copy) is checked for
// every block before its body is looked at, so a bad length is reported where it is.
PcapFileSource::Step PcapFileSource::next_pcapng(Record& r) {
  const size_t left = data_.size() - pos_;
  if (left == 0) return Step::End;
  if (left > kPrefetchAhead) __builtin_prefetch(data_.data() + pos_ + kPrefetchAhead);
  if (left < 8) {
    return fail(DropReason::PcapTruncated,
                fmt::format("truncated pcapng block header at byte {}: 8 bytes needed, {} left",
                            pos_, left));
  }
  const std::byte* b = data_.data() + pos_;
  const uint32_t type = load_le32(b);
  if (type == kShbType) return section_header(b, left);
  const uint32_t len = u32(b + 4);
  if (auto bad = check_block_length(b, len, left, kBlockMinLen, "block")) return *bad;
  switch (u32(b)) {
    case kEpbType:
    case kSpbType:
    case kPbType:
      return packet_block(u32(b), b, len, r);
    case kIdbType:
      if (interface_description(b, len) == Step::Error) return Step::Error;
      break;
    default:
      break;  // NRB, ISB, DSB, custom and future blocks: not ours to interpret
  }
  pos_ += len;
  return Step::Again;
}

PcapFileSource::Step PcapFileSource::section_header(const std::byte* b, size_t left) {
  if (left < 12) {
    return fail(DropReason::PcapTruncated,
                fmt::format("truncated pcapng section header at byte {}: 12 bytes needed, {} left",
                            pos_, left));
  }
  // Each section states its own byte order (pcapng 4.1); the length before the magic is in it.
  const uint32_t bom = load_le32(b + 8);
  if (bom == kByteOrderMagic) {
    big_endian_ = false;
  } else if (bom == __builtin_bswap32(kByteOrderMagic)) {
    big_endian_ = true;
  } else {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng section header at byte {}: byte-order magic 0x{:08x} "
                            "is not 0x1a2b3c4d in either byte order",
                            pos_, load_be32(b + 8)));
  }
  const uint32_t len = u32(b + 4);
  if (auto bad = check_block_length(b, len, left, kShbMinLen, "section header")) return *bad;
  const uint16_t major = u16(b + 12);
  const uint16_t minor = u16(b + 14);
  // 1.0 is the format; 1.2 was written by a few old tools for the same thing (libpcap and
  // Wireshark read both). Another major version is another format.
  if (major != 1) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("unsupported pcapng version {}.{} in the section header at byte {}",
                            major, minor, pos_));
  }
  // Interface ids restart at 0 in every section (pcapng 4.2).
  section_base_ = interfaces_.size();
  ++section_count_;
  pos_ += len;
  return Step::Again;
}

PcapFileSource::Step PcapFileSource::interface_description(const std::byte* b, uint32_t len) {
  if (len < kIdbMinLen) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng block at byte {}: block length {} is below the minimum "
                            "{} for an interface description block",
                            pos_, len, kIdbMinLen));
  }
  Interface itf;
  itf.link_type = u16(b + 8);
  itf.snaplen = u32(b + 12);
  itf.units_per_sec = kUsPerSec;  // if_tsresol absent: 10^-6 (pcapng 4.2)
  itf.section = section_count_ == 0 ? 0 : section_count_ - 1;
  const std::byte* o = b + 16;
  const std::byte* end = b + len - 4;
  while (end - o >= 4) {
    const uint16_t code = u16(o);
    const uint16_t olen = u16(o + 2);
    if (code == kOptEnd) break;
    if (pad4(olen) > static_cast<uint64_t>(end - o - 4)) {
      return fail(DropReason::PcapCorrupt,
                  fmt::format("corrupt pcapng block at byte {}: option {} at byte {} runs past the "
                              "end of the block",
                              pos_, code, pos_ + static_cast<size_t>(o - b)));
    }
    const std::byte* v = o + 4;
    if (code == kOptTsresol) {
      if (olen != 1) {
        return fail(DropReason::PcapCorrupt,
                    fmt::format("corrupt pcapng block at byte {}: if_tsresol option has length {}, "
                                "expected 1",
                                pos_, olen));
      }
      // MSB clear: 10^-n s; set: 2^-n s. 10^19 and 2^63 are the finest that fit 64 bits.
      const uint8_t res = load_u8(v);
      const uint8_t exp = res & 0x7f;
      if ((res & 0x80) ? exp > 63 : exp > 19) {
        return fail(DropReason::PcapCorrupt,
                    fmt::format("corrupt pcapng block at byte {}: unsupported if_tsresol 0x{:02x}",
                                pos_, res));
      }
      uint64_t units = 1;
      if (res & 0x80) {
        units <<= exp;
      } else {
        for (uint8_t i = 0; i < exp; ++i)
          units *= 10;
      }
      itf.units_per_sec = units;
    } else if (code == kOptTsoffset) {
      if (olen != 8) {
        return fail(DropReason::PcapCorrupt,
                    fmt::format("corrupt pcapng block at byte {}: if_tsoffset option has length "
                                "{}, expected 8",
                                pos_, olen));
      }
      itf.offset_sec = static_cast<int64_t>(u64(v));
    }
    o = v + pad4(olen);
  }
  interfaces_.push_back(itf);
  return Step::Again;
}

PcapFileSource::Step PcapFileSource::packet_block(uint32_t type, const std::byte* b, uint32_t len,
                                                  Record& r) {
  const uint64_t packet = frames_ + 1;
  const uint32_t min_len = type == kEpbType ? kEpbMinLen : type == kPbType ? kPbMinLen : kSpbMinLen;
  const char* kind = type == kEpbType  ? "an enhanced packet block"
                     : type == kPbType ? "a packet block"
                                       : "a simple packet block";
  if (len < min_len) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng block at byte {} (packet {}): block length {} is below "
                            "the minimum {} for {}",
                            pos_, packet, len, min_len, kind));
  }
  const std::byte* body = b + 8;
  const std::byte* end = b + len - 4;
  const size_t in_section = interfaces_.size() - section_base_;
  uint32_t iface = 0;
  uint32_t caplen = 0;
  uint32_t wire = 0;
  uint64_t ts = 0;
  const std::byte* data = nullptr;
  if (type == kSpbType) {
    wire = u32(body);
    data = body + 4;
  } else {
    // EPB: interface (32), time high, time low, caplen, len. PB: interface (16), drops (16), ...
    iface = type == kEpbType ? u32(body) : u16(body);
    ts = (uint64_t{u32(body + 4)} << 32) | u32(body + 8);
    caplen = u32(body + 12);
    wire = u32(body + 16);
    data = body + 20;
  }
  if (iface >= in_section) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng block at byte {} (packet {}): interface {} is not "
                            "defined (the section has {})",
                            pos_, packet, iface, in_section));
  }
  const size_t idx = section_base_ + iface;
  const Interface& itf = interfaces_[idx];
  const size_t room = static_cast<size_t>(end - data);
  if (type == kSpbType) {
    // An SPB's captured length is implied: the packet cut to interface 0's snaplen (pcapng 4.4).
    size_t c = std::min<size_t>(wire, room);
    if (itf.snaplen != 0) c = std::min<size_t>(c, itf.snaplen);
    caplen = static_cast<uint32_t>(c);
  } else if (caplen > room) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng block at byte {} (packet {}): captured length {} runs "
                            "past the block body ({} bytes)",
                            pos_, packet, caplen, room));
  }
  if (caplen > kMaxCaptureLength) {
    return fail(DropReason::PcapCorrupt,
                fmt::format("corrupt pcapng block at byte {} (packet {}): captured length {} "
                            "exceeds the maximum {}",
                            pos_, packet, caplen, kMaxCaptureLength));
  }
  r.data = {data, caplen};
  r.meta = PacketMeta{};
  // An SPB carries no time; 0 says "unknown" (libpcap and Wireshark do the same).
  if (type != kSpbType) r.meta.ts.ns = pcapng_time_ns(ts, itf.units_per_sec, itf.offset_sec);
  r.meta.wire_len = wire;
  r.meta.frame = ++frames_;
  r.meta.link = static_cast<LinkType>(itf.link_type);
  r.meta.ingress = static_cast<uint32_t>(idx + 1);
  if (type != kSpbType) {
    // Options are extras on an intact packet: a malformed one ends the walk, nothing more.
    const std::byte* o = data + pad4(caplen);
    while (o < end && end - o >= 4) {
      const uint16_t code = u16(o);
      const uint16_t olen = u16(o + 2);
      if (code == kOptEnd || pad4(olen) > static_cast<uint64_t>(end - o - 4)) break;
      if (code == kOptFlags && olen == 4) {
        // Bits 0-1: 01 inbound, 10 outbound (pcapng 4.3.1).
        const uint32_t flags = u32(o + 4);
        if ((flags & 3) == 1) r.meta.direction = Direction::Inbound;
        if ((flags & 3) == 2) r.meta.direction = Direction::Outbound;
      }
      o += 4 + pad4(olen);
    }
  }
  pos_ += len;
  return Step::Packet;
}

Result<std::vector<Packet>> PcapFileSource::read_all(std::string_view path) {
  L45_TRY(auto src, open(path));
  std::vector<Packet> out;
  PacketBatch batch(256);
  for (;;) {
    L45_TRY(size_t n, src->read(batch));
    if (n == 0 && src->at_end()) break;
    for (Packet& p : batch)
      out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<Packet>> read_capture(std::string_view path) {
  return PcapFileSource::read_all(path);
}

// ---- writer ----------------------------------------------------------------------------

Result<std::unique_ptr<PcapFileSink>> PcapFileSink::open(std::string_view path,
                                                         PcapWriteOptions opts) {
  if (opts.snaplen == 0 || opts.snaplen > kMaxCaptureLength) {
    return Error::invalid(
        fmt::format("{}: snaplen {} is outside 1..{}", path, opts.snaplen, kMaxCaptureLength));
  }
  if (opts.link && *opts.link > 0xffff) {
    return Error::invalid(fmt::format("{}: link type {} does not fit 16 bits", path, *opts.link));
  }
  std::unique_ptr<PcapFileSink> s(new PcapFileSink());
  s->path_ = std::string(path);
  s->opts_ = opts;
  s->nanosecond_ = opts.ts == TsResolution::Nano ||
                   (opts.ts == TsResolution::Auto && opts.format == CaptureFormat::Pcapng);
  if (path == "-") {
    s->fd_ = STDOUT_FILENO;
  } else {
    s->fd_ = ::open(s->path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd_ < 0) return errno_error("create", path);
    s->own_fd_ = true;
  }
  s->buf_.reserve(kSinkBufferLen);
  if (opts.link) L45_TRY_VOID(s->start(*opts.link));
  return s;
}

namespace {
bool has_pcapng_suffix(std::string_view path) {
  constexpr std::string_view kSuffix = ".pcapng";
  if (path.size() <= kSuffix.size()) return false;
  const std::string_view tail = path.substr(path.size() - kSuffix.size());
  return std::equal(tail.begin(), tail.end(), kSuffix.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == b;
  });
}
}  // namespace

Result<std::unique_ptr<PcapFileSink>> PcapFileSink::open(const SourceSpec& spec) {
  PcapWriteOptions o;
  const std::string& path = spec.arg;
  o.format = has_pcapng_suffix(path) ? CaptureFormat::Pcapng : CaptureFormat::Pcap;
  auto number = [&](std::string_view key, const std::string& v) -> Result<uint32_t> {
    uint32_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty())
      return Error::invalid(fmt::format("file:{}: {}={} is not a number", path, key, v));
    return n;
  };
  for (const auto& [k, v] : spec.options) {
    if (k == "format" && v == "pcap") {
      o.format = CaptureFormat::Pcap;
    } else if (k == "format" && v == "pcapng") {
      o.format = CaptureFormat::Pcapng;
    } else if (k == "ts" && v == "us") {
      o.ts = TsResolution::Micro;
    } else if (k == "ts" && v == "ns") {
      o.ts = TsResolution::Nano;
    } else if (k == "link") {
      L45_TRY(o.link, number(k, v));
    } else if (k == "snaplen") {
      L45_TRY(o.snaplen, number(k, v));
    } else if (k == "format" || k == "ts") {
      return Error::invalid(fmt::format("file:{}: {}={}: expected {}", path, k, v,
                                        k == "ts" ? "us or ns" : "pcap or pcapng"));
    } else {
      return Error::invalid(
          fmt::format("file:{}: unknown option '{}' (known: format, ts, link, snaplen)", path, k));
    }
  }
  return open(path, o);
}

PcapFileSink::~PcapFileSink() {
  (void)close();
}

std::string PcapFileSink::name() const {
  return "file:" + path_;
}

Result<void> PcapFileSink::start(uint32_t link) {
  started_ = true;
  link_ = link;
  std::byte* p;
  if (opts_.format == CaptureFormat::Pcap) {
    // Written little-endian whatever the host: every reader handles both orders.
    buf_.resize(buf_.size() + kPcapHeaderLen);
    p = buf_.data() + buf_.size() - kPcapHeaderLen;
    store_le32(p, nanosecond_ ? kPcapMagicNs : kPcapMagicUs);
    store_le16(p + 4, 2);
    store_le16(p + 6, 4);
    store_le32(p + 8, 0);   // thiszone
    store_le32(p + 12, 0);  // sigfigs
    store_le32(p + 16, opts_.snaplen);
    store_le32(p + 20, link);
    return {};
  }
  // SHB with shb_userappl "l45"; section length -1: not known while streaming.
  constexpr uint32_t len = 28 + 4 + 4 + 4;
  buf_.resize(buf_.size() + len);
  p = buf_.data() + buf_.size() - len;
  store_le32(p, kShbType);
  store_le32(p + 4, len);
  store_le32(p + 8, kByteOrderMagic);
  store_le16(p + 12, 1);
  store_le16(p + 14, 0);
  std::memset(p + 16, 0xff, 8);
  store_le16(p + 24, kOptUserAppl);
  store_le16(p + 26, 3);
  std::memcpy(p + 28, "l45", 4);  // with its padding byte
  store_le32(p + 32, 0);          // opt_endofopt
  store_le32(p + 36, len);
  return {};
}

void PcapFileSink::put_idb(uint32_t link) {
  // if_tsresol only when it is not the default 10^-6.
  const uint32_t len = nanosecond_ ? 32 : 20;
  buf_.resize(buf_.size() + len);
  std::byte* p = buf_.data() + buf_.size() - len;
  store_le32(p, kIdbType);
  store_le32(p + 4, len);
  store_le16(p + 8, static_cast<uint16_t>(link));
  store_le16(p + 10, 0);
  store_le32(p + 12, opts_.snaplen);
  if (nanosecond_) {
    store_le16(p + 16, kOptTsresol);
    store_le16(p + 18, 1);
    store_le32(p + 20, 9);  // 10^-9, then three padding bytes
    store_le32(p + 24, 0);  // opt_endofopt
  }
  store_le32(p + len - 4, len);
}

uint32_t PcapFileSink::interface_for(const Packet& p) {
  const uint32_t link = opts_.link ? *opts_.link : static_cast<uint32_t>(p.meta().link);
  const std::pair<uint32_t, uint32_t> key{link, p.meta().ingress};
  for (size_t i = 0; i < ifaces_.size(); ++i)
    if (ifaces_[i] == key) return static_cast<uint32_t>(i);
  ifaces_.push_back(key);
  put_idb(link);
  return static_cast<uint32_t>(ifaces_.size() - 1);
}

void PcapFileSink::put_pcap(const Packet& p) {
  const uint32_t caplen = static_cast<uint32_t>(std::min<size_t>(p.size(), opts_.snaplen));
  const uint32_t wire = std::max<uint32_t>(p.meta().wire_len, static_cast<uint32_t>(p.size()));
  // Classic pcap counts unsigned 32-bit seconds: clamp what does not fit.
  const int64_t ns = std::max<int64_t>(p.meta().ts.ns, 0);
  uint64_t sec = static_cast<uint64_t>(ns) / kNsPerSec;
  uint64_t frac = static_cast<uint64_t>(ns) % kNsPerSec;
  if (sec > UINT32_MAX) {
    sec = UINT32_MAX;
    frac = kNsPerSec - 1;
  }
  if (!nanosecond_) frac /= 1000;
  const size_t at = buf_.size();
  buf_.resize(at + kPcapRecordHeaderLen + caplen);
  std::byte* h = buf_.data() + at;
  store_le32(h, static_cast<uint32_t>(sec));
  store_le32(h + 4, static_cast<uint32_t>(frac));
  store_le32(h + 8, caplen);
  store_le32(h + 12, wire);
  if (caplen) std::memcpy(h + kPcapRecordHeaderLen, p.data().data(), caplen);
}

void PcapFileSink::put_pcapng(const Packet& p, uint32_t iface) {
  const uint32_t caplen = static_cast<uint32_t>(std::min<size_t>(p.size(), opts_.snaplen));
  const uint32_t wire = std::max<uint32_t>(p.meta().wire_len, static_cast<uint32_t>(p.size()));
  const uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(p.meta().ts.ns, 0));
  const uint64_t ts = nanosecond_ ? ns : ns / 1000;
  const Direction dir = p.meta().direction;
  const uint32_t opt_len = dir == Direction::Unknown ? 0 : 12;  // epb_flags + opt_endofopt
  const uint32_t len = static_cast<uint32_t>(kEpbMinLen + pad4(caplen) + opt_len);
  const size_t at = buf_.size();
  buf_.resize(at + len);
  std::byte* b = buf_.data() + at;
  store_le32(b, kEpbType);
  store_le32(b + 4, len);
  store_le32(b + 8, iface);
  store_le32(b + 12, static_cast<uint32_t>(ts >> 32));
  store_le32(b + 16, static_cast<uint32_t>(ts));
  store_le32(b + 20, caplen);
  store_le32(b + 24, wire);
  if (caplen) std::memcpy(b + 28, p.data().data(), caplen);
  std::memset(b + 28 + caplen, 0, pad4(caplen) - caplen);
  std::byte* o = b + 28 + pad4(caplen);
  if (opt_len) {
    store_le16(o, kOptFlags);
    store_le16(o + 2, 4);
    store_le32(o + 4, dir == Direction::Inbound ? 1 : 2);
    store_le32(o + 8, 0);
  }
  store_le32(b + len - 4, len);
}

Result<void> PcapFileSink::write(const Packet& p) {
  if (failed_) return *failed_;
  if (fd_ < 0) return Error(EBADF, fmt::format("write {}: the sink is closed", path_));
  if (!started_) L45_TRY_VOID(start(static_cast<uint32_t>(p.meta().link)));
  if (opts_.format == CaptureFormat::Pcap) {
    if (!opts_.link && static_cast<uint32_t>(p.meta().link) != link_) {
      return Error::invalid(fmt::format(
          "{}: packet {} has link type {} but the file holds link type {}; write pcapng "
          "(format=pcapng) to mix link types",
          path_, packets_ + 1, static_cast<uint32_t>(p.meta().link), link_));
    }
    put_pcap(p);
  } else {
    put_pcapng(p, interface_for(p));
  }
  ++packets_;
  if (buf_.size() >= kSinkBufferLen) return drain();
  return {};
}

Result<void> PcapFileSink::write(const PacketBatch& batch) {
  for (const Packet& p : batch)
    L45_TRY_VOID(write(p));
  return {};
}

Result<void> PcapFileSink::drain() {
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // Sticky: after a lost write the file has a hole, so nothing more goes into it.
      failed_ = errno_error("write", path_);
      buf_.clear();
      return *failed_;
    }
    done += static_cast<size_t>(n);
  }
  buf_.clear();
  return {};
}

Result<void> PcapFileSink::flush() {
  if (failed_) return *failed_;
  if (fd_ < 0) return {};
  // A file with no packet still gets its header, so that it reads as an empty capture.
  if (!started_) L45_TRY_VOID(start(opts_.link ? *opts_.link : uint32_t{1}));
  return drain();
}

Result<void> PcapFileSink::close() {
  if (fd_ < 0) return {};
  auto r = flush();
  if (own_fd_ && ::close(fd_) != 0 && r.ok()) r = errno_error("close", path_);
  fd_ = -1;
  return r;
}

// ---- registration ----------------------------------------------------------------------

namespace {

Result<std::unique_ptr<Source>> open_file_source(const SourceSpec& spec) {
  if (!spec.options.empty()) {
    return Error::invalid(fmt::format("file:{}: a file source takes no options (got '{}')",
                                      spec.arg, spec.options.front().first));
  }
  L45_TRY(auto s, PcapFileSource::open(spec.arg));
  return std::unique_ptr<Source>(std::move(s));
}

Result<std::unique_ptr<Sink>> open_file_sink(const SourceSpec& spec) {
  L45_TRY(auto s, PcapFileSink::open(spec));
  return std::unique_ptr<Sink>(std::move(s));
}

}  // namespace

L45_REGISTER_SOURCE("file", "pcap or pcapng capture file ('-' = stdin)", open_file_source);
L45_REGISTER_SINK("file", "pcap or pcapng capture file: file:out.pcap[,ts=ns][,format=pcapng]",
                  open_file_sink);

}  // namespace l45
