// Ethernet II and 802.1Q / 802.1ad tag views (IEEE 802.3 3.2.6, IEEE 802.1Q 9.6).
//
// EthernetView covers the 14-byte MAC header; ether_type() is the raw Type/Length field (values
// below 0x0600 are 802.3 lengths, see is_length()). VlanView covers the 4 bytes that follow a
// TPID (0x8100 C-tag, 0x88a8 S-tag, 0x9100 pre-standard QinQ): the TCI and the next EtherType.
//
//   if (auto eth = EthernetView::parse(frame)) {
//     Bytes rest = eth->payload();
//     if (is_vlan_tpid(eth->ether_type())) if (auto tag = VlanView::parse(rest)) ... tag->vid()
//   }
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"
#include "l45/packet/mac_addr.hpp"

namespace l45 {

namespace ether_type {
inline constexpr uint16_t kIpv4 = 0x0800;
inline constexpr uint16_t kArp = 0x0806;
inline constexpr uint16_t kTeb = 0x6558;  // transparent Ethernet bridging (GRE, RFC 1701)
inline constexpr uint16_t kVlan = 0x8100;
inline constexpr uint16_t kIpv6 = 0x86dd;
inline constexpr uint16_t kPpp = 0x880b;  // PPP in enhanced GRE (PPTP, RFC 2637)
inline constexpr uint16_t kMpls = 0x8847;
inline constexpr uint16_t kMplsMulticast = 0x8848;
inline constexpr uint16_t kPppoeDiscovery = 0x8863;
inline constexpr uint16_t kPppoeSession = 0x8864;
inline constexpr uint16_t kQinq = 0x88a8;
inline constexpr uint16_t kQinqOld = 0x9100;
}  // namespace ether_type

inline bool is_vlan_tpid(uint16_t t) {
  return t == ether_type::kVlan || t == ether_type::kQinq || t == ether_type::kQinqOld;
}

class EthernetView {
 public:
  static constexpr size_t kHeaderLen = 14;

  static std::optional<EthernetView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return EthernetView(b);
  }
  MacAddr dst() const { return MacAddr::from(b_.data()); }
  MacAddr src() const { return MacAddr::from(b_.data() + 6); }
  uint16_t ether_type() const { return load_be16(b_.data() + 12); }
  // IEEE 802.3 3.2.6: a Type/Length value up to 1500 is a length (LLC follows), not a type.
  bool is_length() const { return ether_type() <= 1500; }
  size_t header_len() const { return kHeaderLen; }
  Bytes header() const { return b_.first(kHeaderLen); }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit EthernetView(Bytes b) : b_(b) {}
  Bytes b_;
};

class VlanView {
 public:
  static constexpr size_t kHeaderLen = 4;

  static std::optional<VlanView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return VlanView(b);
  }
  uint16_t tci() const { return load_be16(b_.data()); }
  uint8_t pcp() const { return uint8_t(tci() >> 13); }
  bool dei() const { return (tci() >> 12) & 1; }
  uint16_t vid() const { return tci() & 0x0fff; }
  uint16_t ether_type() const { return load_be16(b_.data() + 2); }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit VlanView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
