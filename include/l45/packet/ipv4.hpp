// IPv4 header view (RFC 791 3.1).
//
// parse() checks what the bytes alone can prove: version 4, IHL >= 5, the whole header (with
// options) present, total length not below the header. A total length past the bytes given
// only clips payload(): the capture may have been cut. A total length of 0 is taken as "to the
// end of the bytes": Linux captures TSO/GSO super-segments before the NIC fills it in, and
// Wireshark reads it the same way.
//
//   if (auto ip = Ipv4View::parse(b)) {
//     if (!ip->options_valid()) ...Ipv4BadOptions...
//     auto c = ip->option_cursor(); for (HeaderOption o; c.next(o);) ...
//   }
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"
#include "l45/packet/header_option.hpp"
#include "l45/packet/ip_addr.hpp"

namespace l45 {

class Ipv4View {
 public:
  static constexpr size_t kMinHeaderLen = 20;

  static std::optional<Ipv4View> parse(Bytes b) {
    if (b.size() < kMinHeaderLen) return std::nullopt;
    uint8_t vihl = load_u8(b.data());
    size_t hl = size_t(vihl & 0x0f) * 4;
    if ((vihl >> 4) != 4 || hl < kMinHeaderLen || hl > b.size()) return std::nullopt;
    uint16_t tl = load_be16(b.data() + 2);
    if (tl != 0 && tl < hl) return std::nullopt;
    return Ipv4View(b);
  }

  uint8_t version() const { return load_u8(b_.data()) >> 4; }
  uint8_t ihl() const { return load_u8(b_.data()) & 0x0f; }
  size_t header_len() const { return size_t(ihl()) * 4; }
  uint8_t tos() const { return load_u8(b_.data() + 1); }
  uint8_t dscp() const { return tos() >> 2; }
  uint8_t ecn() const { return tos() & 3; }
  uint16_t total_length() const { return load_be16(b_.data() + 2); }  // as on the wire
  uint16_t id() const { return load_be16(b_.data() + 4); }
  bool dont_fragment() const { return load_u8(b_.data() + 6) & 0x40; }
  bool more_fragments() const { return load_u8(b_.data() + 6) & 0x20; }
  uint16_t fragment_offset() const { return load_be16(b_.data() + 6) & 0x1fff; }  // 8-byte units
  uint32_t fragment_offset_bytes() const { return uint32_t(fragment_offset()) * 8; }
  bool is_fragment() const { return more_fragments() || fragment_offset() != 0; }
  uint8_t ttl() const { return load_u8(b_.data() + 8); }
  uint8_t protocol() const { return load_u8(b_.data() + 9); }
  uint16_t checksum() const { return load_be16(b_.data() + 10); }
  IpAddr src() const { return IpAddr::v4(b_.data() + 12); }
  IpAddr dst() const { return IpAddr::v4(b_.data() + 16); }
  const std::byte* src_bytes() const { return b_.data() + 12; }
  const std::byte* dst_bytes() const { return b_.data() + 16; }

  Bytes header() const { return b_.first(header_len()); }
  Bytes options() const { return b_.subspan(kMinHeaderLen, header_len() - kMinHeaderLen); }
  OptionCursor option_cursor() const { return OptionCursor(options(), kMinHeaderLen); }
  bool options_valid() const;
  // RFC 791 3.1 / RFC 1071: the one's-complement sum over the header is 0xffff.
  bool header_checksum_ok() const;

  // The datagram as far as the bytes reach: total_length(), or the end of the bytes when the
  // field is 0 (TSO) or the capture was cut.
  Bytes datagram() const {
    size_t tl = total_length() ? total_length() : b_.size();
    return b_.first(std::min(tl, b_.size()));
  }
  Bytes payload() const { return datagram().subspan(header_len()); }

 private:
  explicit Ipv4View(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
