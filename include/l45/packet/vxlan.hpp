// VXLAN header view (RFC 7348 5): 8 bytes, flags with the I bit (VNI valid), 24-bit VNI; an
// Ethernet frame follows. Carried in UDP to port 4789 (DecodeOptions::vxlan_port).
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class VxlanView {
 public:
  static constexpr size_t kHeaderLen = 8;
  static constexpr uint16_t kPort = 4789;  // IANA, RFC 7348 5

  static std::optional<VxlanView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return VxlanView(b);
  }
  uint8_t flags() const { return load_u8(b_.data()); }
  bool vni_valid() const { return flags() & 0x08; }
  uint32_t vni() const { return load_be24(b_.data() + 4); }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit VxlanView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
