// GRE header view: RFC 2784 with the key and sequence number of RFC 2890 (version 0), and the
// enhanced GRE of PPTP (RFC 2637 4.1, version 1: key = payload length + call id, optional
// acknowledgment number). protocol() is an EtherType: 0x0800 IPv4, 0x86dd IPv6, 0x6558
// transparent Ethernet bridging, 0x8847 MPLS, 0x880b PPP (version 1).
//
// parse() refuses what it cannot size or does not know: versions above 1, the RFC 1701
// routing bit (a variable source-route list), and version 1 without its mandatory key.
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class GreView {
 public:
  static constexpr size_t kMinHeaderLen = 4;

  static std::optional<GreView> parse(Bytes b) {
    if (b.size() < kMinHeaderLen || !supported(load_be16(b.data()))) return std::nullopt;
    if (b.size() < length_of(load_be16(b.data()))) return std::nullopt;
    return GreView(b);
  }
  // Whether the flags/version word describes a header this view reads.
  static constexpr bool supported(uint16_t fv) {
    uint16_t ver = fv & 7;
    if (ver > 1 || (fv & 0x4000)) return false;    // R bit: RFC 1701 routing
    if (ver == 1 && !(fv & 0x2000)) return false;  // RFC 2637 4.1: K is always set
    return true;
  }
  static constexpr size_t length_of(uint16_t fv) {
    return kMinHeaderLen + ((fv & 0x8000) ? 4 : 0) + ((fv & 0x2000) ? 4 : 0) +
           ((fv & 0x1000) ? 4 : 0) + (((fv & 7) == 1 && (fv & 0x0080)) ? 4 : 0);
  }

  uint16_t flags_version() const { return load_be16(b_.data()); }
  bool checksum_present() const { return flags_version() & 0x8000; }
  bool key_present() const { return flags_version() & 0x2000; }
  bool seq_present() const { return flags_version() & 0x1000; }
  bool ack_present() const { return version() == 1 && (flags_version() & 0x0080); }
  uint8_t version() const { return flags_version() & 7; }
  uint16_t protocol() const { return load_be16(b_.data() + 2); }

  std::optional<uint16_t> checksum() const {
    if (!checksum_present()) return std::nullopt;
    return load_be16(b_.data() + 4);
  }
  std::optional<uint32_t> key() const {
    if (!key_present()) return std::nullopt;
    return load_be32(b_.data() + 4 + (checksum_present() ? 4 : 0));
  }
  std::optional<uint32_t> sequence() const {
    if (!seq_present()) return std::nullopt;
    return load_be32(b_.data() + 4 + (checksum_present() ? 4 : 0) + (key_present() ? 4 : 0));
  }
  std::optional<uint32_t> ack() const {
    if (!ack_present()) return std::nullopt;
    return load_be32(b_.data() + header_len() - 4);
  }
  // Version 1 (PPTP): the key's halves.
  uint16_t pptp_payload_length() const { return uint16_t(key().value_or(0) >> 16); }
  uint16_t pptp_call_id() const { return uint16_t(key().value_or(0)); }

  size_t header_len() const { return length_of(flags_version()); }
  Bytes header() const { return b_.first(header_len()); }
  // Version 1 payload is clipped to the payload length its key carries.
  Bytes payload() const {
    Bytes p = b_.subspan(header_len());
    return version() == 1 ? p.first(std::min<size_t>(p.size(), pptp_payload_length())) : p;
  }

 private:
  explicit GreView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
