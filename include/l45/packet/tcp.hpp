// TCP header view (RFC 9293 3.1) and its options.
//
// parse() needs the 20-byte header and a data offset that is at least 5 and within the bytes.
// options() reads every option into a fixed-size TcpOptions, no heap: MSS (RFC 9293 3.2),
// window scale (RFC 7323 2), SACK-permitted and up to 4 SACK blocks (RFC 2018), timestamps
// (RFC 7323 3); any other kind (MD5, TCP-AO, MPTCP, Fast Open, experimental) is kept as
// (kind, offset, length) for the caller to read from header(). A known kind with the wrong
// length, or any option running past the header, stops the walk and sets malformed
// (DropReason::TcpBadOption); what was read before it stays.
//
//   if (auto t = TcpView::parse(b)) {
//     TcpOptions o = t->options();
//     if (o.mss) ...; for (auto& s : o.sack_blocks()) ...s.left, s.right...
//   }
#pragma once

#include <array>
#include <optional>
#include <span>

#include "l45/packet/bytes.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {

namespace tcp_flag {
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
inline constexpr uint8_t kUrg = 0x20;
inline constexpr uint8_t kEce = 0x40;
inline constexpr uint8_t kCwr = 0x80;
}  // namespace tcp_flag

namespace tcp_option {
inline constexpr uint8_t kEol = 0;
inline constexpr uint8_t kNop = 1;
inline constexpr uint8_t kMss = 2;
inline constexpr uint8_t kWindowScale = 3;
inline constexpr uint8_t kSackPermitted = 4;
inline constexpr uint8_t kSack = 5;
inline constexpr uint8_t kTimestamps = 8;
}  // namespace tcp_option

struct TcpSackBlock {
  TcpSeq left;   // first sequence number of the block
  TcpSeq right;  // sequence number just after the block
};

struct TcpTimestamps {
  uint32_t value = 0;  // TSval: the sender's clock, not a sequence number
  uint32_t echo = 0;   // TSecr
};

struct TcpOtherOption {
  uint8_t kind = 0;
  uint8_t offset = 0;  // from the start of the TCP header
  uint8_t length = 0;  // the option's length octet
};

struct TcpOptions {
  static constexpr size_t kMaxSackBlocks = 4;  // (40 - 2) / 8
  static constexpr size_t kMaxOther = 20;      // 40 bytes of option space / 2

  std::optional<uint16_t> mss;
  std::optional<uint8_t> window_scale;  // shift count as sent (RFC 7323 2.3 caps its use at 14)
  bool sack_permitted = false;
  std::optional<TcpTimestamps> timestamps;
  uint8_t sack_count = 0;
  uint8_t other_count = 0;
  bool malformed = false;
  std::array<TcpSackBlock, kMaxSackBlocks> sack{};
  std::array<TcpOtherOption, kMaxOther> other{};

  std::span<const TcpSackBlock> sack_blocks() const { return {sack.data(), sack_count}; }
  std::span<const TcpOtherOption> others() const { return {other.data(), other_count}; }
};

class TcpView {
 public:
  static constexpr size_t kMinHeaderLen = 20;

  static std::optional<TcpView> parse(Bytes b) {
    if (b.size() < kMinHeaderLen) return std::nullopt;
    size_t hl = size_t(load_u8(b.data() + 12) >> 4) * 4;
    if (hl < kMinHeaderLen || hl > b.size()) return std::nullopt;
    return TcpView(b);
  }
  uint16_t src_port() const { return load_be16(b_.data()); }
  uint16_t dst_port() const { return load_be16(b_.data() + 2); }
  TcpSeq seq() const { return TcpSeq(load_be32(b_.data() + 4)); }
  TcpSeq ack() const { return TcpSeq(load_be32(b_.data() + 8)); }
  uint8_t data_offset() const { return load_u8(b_.data() + 12) >> 4; }  // 32-bit words
  size_t header_len() const { return size_t(data_offset()) * 4; }
  uint8_t flags() const { return load_u8(b_.data() + 13); }  // tcp_flag::k*
  // RFC 3540 (historic) ECN nonce: the low bit of the reserved nibble.
  bool ns() const { return load_u8(b_.data() + 12) & 1; }
  bool fin() const { return flags() & tcp_flag::kFin; }
  bool syn() const { return flags() & tcp_flag::kSyn; }
  bool rst() const { return flags() & tcp_flag::kRst; }
  bool psh() const { return flags() & tcp_flag::kPsh; }
  bool has_ack() const { return flags() & tcp_flag::kAck; }
  bool urg() const { return flags() & tcp_flag::kUrg; }
  bool ece() const { return flags() & tcp_flag::kEce; }
  bool cwr() const { return flags() & tcp_flag::kCwr; }
  uint16_t window() const { return load_be16(b_.data() + 14); }  // unscaled
  uint16_t checksum() const { return load_be16(b_.data() + 16); }
  uint16_t urgent_pointer() const { return load_be16(b_.data() + 18); }

  Bytes header() const { return b_.first(header_len()); }
  Bytes option_bytes() const { return b_.subspan(kMinHeaderLen, header_len() - kMinHeaderLen); }
  TcpOptions options() const;
  // Cheaper than options().malformed when only validity matters.
  bool options_valid() const {
    // perf: most segments of a connection carry exactly NOP, NOP, timestamps (RFC 7323
    // appendix A layout); accept it without the walk.
    if (header_len() == 32 && load_be32(b_.data() + 20) == 0x0101080a) return true;
    return header_len() == kMinHeaderLen || linux_syn_options() || options_valid_slow();
  }
  // perf: exactly MSS, SACK permitted, timestamps, NOP, window scale: the options Linux puts on
  // every SYN and SYN-ACK, recognised without the walk (l45 bench many-flows: the walks were
  // ~500 instructions per SYN). Timestamps at option bytes 8 and 12, the shift at 19.
  bool linux_syn_options() const {
    return header_len() == 40 && (load_be32(b_.data() + 20) & 0xffff0000) == 0x02040000 &&
           load_be32(b_.data() + 24) == 0x0402080a &&
           (load_be32(b_.data() + 36) & 0xffffff00) == 0x01030300;
  }
  Bytes payload() const { return b_.subspan(header_len()); }

 private:
  friend class PacketView;  // builds it from a header the decoder already checked
  friend struct TcpFrame;   // the same
  explicit TcpView(Bytes b) : b_(b) {}
  bool options_valid_slow() const;
  Bytes b_;
};

}  // namespace l45
