// Linux cooked capture headers (libpcap LINKTYPE_LINUX_SLL, 16 bytes; LINKTYPE_LINUX_SLL2,
// 20 bytes; https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html). protocol() is an
// EtherType for the ARPHRD types the decoder follows (Ethernet, loopback, IP tunnels).
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class SllView {
 public:
  static constexpr size_t kHeaderLen = 16;

  static std::optional<SllView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return SllView(b);
  }
  uint16_t packet_type() const { return load_be16(b_.data()); }  // 0 host, 4 outgoing, ...
  uint16_t arphrd_type() const { return load_be16(b_.data() + 2); }
  uint16_t addr_len() const { return load_be16(b_.data() + 4); }
  Bytes addr() const { return b_.subspan(6, std::min<size_t>(addr_len(), 8)); }
  uint16_t protocol() const { return load_be16(b_.data() + 14); }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit SllView(Bytes b) : b_(b) {}
  Bytes b_;
};

class Sll2View {
 public:
  static constexpr size_t kHeaderLen = 20;

  static std::optional<Sll2View> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return Sll2View(b);
  }
  uint16_t protocol() const { return load_be16(b_.data()); }
  uint32_t interface_index() const { return load_be32(b_.data() + 4); }
  uint16_t arphrd_type() const { return load_be16(b_.data() + 8); }
  uint8_t packet_type() const { return load_u8(b_.data() + 10); }
  uint8_t addr_len() const { return load_u8(b_.data() + 11); }
  Bytes addr() const { return b_.subspan(12, std::min<size_t>(addr_len(), 8)); }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit Sll2View(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
