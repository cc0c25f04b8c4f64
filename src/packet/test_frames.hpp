// Test-only frame composer for the packet tests: stacks headers field by field, then fills in
// the lengths and checksums it was not told to get wrong (like scapy's build), so a table row
// says only what it is about ("IHL 4", "TCP data offset 15"). Not the packet builder of the
// public API: it exists so these tests do not depend on the code they test.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "l45/packet/bytes.hpp"
#include "l45/packet/checksum.hpp"

namespace l45::test {

inline std::array<std::byte, 4> v4(const char* s) {
  std::array<std::byte, 4> a{};
  inet_pton(AF_INET, s, a.data());
  return a;
}
inline std::array<std::byte, 16> v6(const char* s) {
  std::array<std::byte, 16> a{};
  inet_pton(AF_INET6, s, a.data());
  return a;
}

struct Ipv4Spec {
  uint8_t proto = 6;
  const char* src = "192.0.2.1";
  const char* dst = "198.51.100.2";
  uint8_t ttl = 64;
  uint16_t id = 0x1234;
  uint16_t frag = 0;               // flags (0x2000 MF, 0x4000 DF) | offset in 8-byte units
  std::vector<uint8_t> options{};  // padded to 4 bytes unless ihl is set
  std::optional<uint8_t> ihl{};
  std::optional<uint16_t> total_len{};
  std::optional<uint16_t> checksum{};
  uint8_t version = 4;
};

struct Ipv6Spec {
  uint8_t nh = 6;
  const char* src = "2001:db8::1";
  const char* dst = "2001:db8::2";
  uint8_t hop_limit = 64;
  std::optional<uint16_t> payload_len{};
  uint8_t version = 6;
};

struct TcpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 80;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint8_t flags = 0x02;
  uint16_t window = 65535;
  std::vector<uint8_t> options{};  // padded with EOL to 4 bytes unless doff is set
  std::optional<uint8_t> doff{};
  std::optional<uint16_t> checksum{};
};

struct UdpSpec {
  uint16_t sport = 5353;
  uint16_t dport = 53;
  std::optional<uint16_t> length{};
  std::optional<uint16_t> checksum{};
};

class Frame {
 public:
  Frame& bytes(std::initializer_list<uint8_t> v) {
    for (uint8_t x : v)
      b_.push_back(std::byte{x});
    return *this;
  }
  Frame& be16(uint16_t v) { return bytes({uint8_t(v >> 8), uint8_t(v)}); }
  Frame& be32(uint32_t v) { return be16(uint16_t(v >> 16)).be16(uint16_t(v)); }
  Frame& raw(const std::vector<uint8_t>& v) {
    for (uint8_t x : v)
      b_.push_back(std::byte{x});
    return *this;
  }
  Frame& zeros(size_t n) {
    b_.insert(b_.end(), n, std::byte{0});
    return *this;
  }
  Frame& payload(const std::string& s) {
    for (char c : s)
      b_.push_back(std::byte(c));
    return *this;
  }

  Frame& eth(uint16_t type) {
    bytes({0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01});
    return be16(type);
  }
  Frame& vlan(uint16_t vid, uint16_t type, uint8_t pcp = 0) {
    return be16(uint16_t(pcp << 13 | vid)).be16(type);
  }
  Frame& mpls(uint32_t label, bool bos, uint8_t ttl = 64) {
    return be32(label << 12 | (bos ? 0x100 : 0) | ttl);
  }
  Frame& pppoe(uint16_t ppp_proto, std::optional<uint16_t> len = {}) {
    fix_.push_back({Kind::Pppoe, b_.size(), len.has_value(), false, 0});
    bytes({0x11, 0x00}).be16(0x0001).be16(len.value_or(0));
    return be16(ppp_proto);
  }
  Frame& ipv4(const Ipv4Spec& s = {}) {
    size_t at = b_.size();
    std::vector<uint8_t> opts = s.options;
    if (!s.ihl)
      while (opts.size() % 4)
        opts.push_back(0);
    uint8_t ihl = s.ihl.value_or(uint8_t(5 + opts.size() / 4));
    bytes({uint8_t(s.version << 4 | ihl), 0}).be16(s.total_len.value_or(0)).be16(s.id);
    be16(s.frag).bytes({s.ttl, s.proto}).be16(s.checksum.value_or(0));
    for (auto x : v4(s.src))
      b_.push_back(x);
    for (auto x : v4(s.dst))
      b_.push_back(x);
    raw(opts);
    fix_.push_back({Kind::Ipv4, at, s.total_len.has_value(), s.checksum.has_value(), 0});
    ip_ = fix_.size() - 1;
    return *this;
  }
  Frame& ipv6(const Ipv6Spec& s = {}) {
    size_t at = b_.size();
    bytes({uint8_t(s.version << 4), 0, 0, 0}).be16(s.payload_len.value_or(0));
    bytes({s.nh, s.hop_limit});
    for (auto x : v6(s.src))
      b_.push_back(x);
    for (auto x : v6(s.dst))
      b_.push_back(x);
    fix_.push_back({Kind::Ipv6, at, s.payload_len.has_value(), false, 0});
    ip_ = fix_.size() - 1;
    return *this;
  }
  // A generic (len + 1) * 8 extension header (hop-by-hop, routing, destination options) of
  // `units` 8-byte units, PadN-filled.
  Frame& ext(uint8_t nh, uint8_t units = 1) {
    bytes({nh, uint8_t(units - 1)});
    if (units * 8 - 2 >= 2) bytes({1, uint8_t(units * 8 - 4)});
    return zeros(units * 8 - 2 - (units * 8 - 2 >= 2 ? 2 : 0));
  }
  Frame& frag6(uint8_t nh, uint32_t offset_bytes, bool more, uint32_t id) {
    bytes({nh, 0}).be16(uint16_t(offset_bytes & 0xfff8) | (more ? 1 : 0));
    return be32(id);
  }
  Frame& ah(uint8_t nh, uint8_t len_field = 4) {  // (len + 2) * 4 bytes
    bytes({nh, len_field}).be16(0).be32(0x100).be32(1);
    return zeros(size_t(len_field + 2) * 4 - 12);
  }
  Frame& tcp(const TcpSpec& s = {}) {
    size_t at = b_.size();
    std::vector<uint8_t> opts = s.options;
    if (!s.doff)
      while (opts.size() % 4)
        opts.push_back(0);
    uint8_t doff = s.doff.value_or(uint8_t(5 + opts.size() / 4));
    be16(s.sport).be16(s.dport).be32(s.seq).be32(s.ack);
    bytes({uint8_t(doff << 4), s.flags}).be16(s.window).be16(s.checksum.value_or(0)).be16(0);
    raw(opts);
    fix_.push_back({Kind::Tcp, at, false, s.checksum.has_value(), ip_});
    return *this;
  }
  Frame& udp(const UdpSpec& s = {}) {
    size_t at = b_.size();
    be16(s.sport).be16(s.dport).be16(s.length.value_or(0)).be16(s.checksum.value_or(0));
    fix_.push_back({Kind::Udp, at, s.length.has_value(), s.checksum.has_value(), ip_});
    return *this;
  }
  Frame& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
    size_t at = b_.size();
    bytes({type, code}).be16(0).be16(id).be16(seq);
    fix_.push_back({Kind::Icmp, at, false, false, ip_});
    return *this;
  }
  Frame& icmpv6(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0) {
    size_t at = b_.size();
    bytes({type, code}).be16(0).be16(id).be16(seq);
    fix_.push_back({Kind::Icmpv6, at, false, false, ip_});
    return *this;
  }
  Frame& gre(uint16_t proto, uint16_t flags_version = 0) { return be16(flags_version).be16(proto); }
  Frame& vxlan(uint32_t vni) { return bytes({0x08, 0, 0, 0}).be32(vni << 8); }

  // Lengths first (inner before outer does not matter), then checksums innermost first so
  // an outer UDP checksum covers finished inner headers.
  std::vector<std::byte> build() const {
    std::vector<std::byte> out = b_;
    std::byte* p = out.data();
    size_t end = out.size();
    for (const Fix& f : fix_) {
      if (f.fixed_len) continue;
      uint32_t len = uint32_t(end - f.at);
      switch (f.kind) {
        case Kind::Ipv4:
          store_be16(p + f.at + 2, uint16_t(len));
          break;
        case Kind::Ipv6:
          store_be16(p + f.at + 4, uint16_t(len - 40));
          break;
        case Kind::Udp:
          store_be16(p + f.at + 4, uint16_t(len));
          break;
        case Kind::Pppoe:
          store_be16(p + f.at + 4, uint16_t(len - 6));
          break;
        default:
          break;
      }
    }
    for (size_t i = fix_.size(); i-- > 0;) {
      const Fix& f = fix_[i];
      if (f.fixed_csum) continue;
      if (f.kind == Kind::Ipv4) {
        size_t hl = size_t(load_u8(p + f.at) & 0xf) * 4;
        if (f.at + hl > end) continue;
        store_be16(p + f.at + 10, 0);
        store_be16(p + f.at + 10, checksum_finish(checksum_add({p + f.at, hl})));
        continue;
      }
      size_t field = f.kind == Kind::Tcp ? 16 : f.kind == Kind::Udp ? 6 : 2;
      if (f.kind == Kind::Pppoe || f.kind == Kind::Ipv6) continue;
      if (f.kind != Kind::Icmp && f.ip == kNoIp) continue;  // no pseudo-header to use
      uint32_t l4_len = uint32_t(end - f.at);
      if (f.kind == Kind::Udp) l4_len = load_be16(p + f.at + 4);
      if (f.at + l4_len > end) continue;
      uint8_t proto = f.kind == Kind::Tcp    ? 6
                      : f.kind == Kind::Udp  ? 17
                      : f.kind == Kind::Icmp ? 1
                                             : 58;
      uint32_t sum = 0;
      if (f.kind != Kind::Icmp) {
        const std::byte* ip = p + fix_[f.ip].at;
        sum = fix_[f.ip].kind == Kind::Ipv4 ? pseudo_header_sum_v4(ip + 12, ip + 16, proto, l4_len)
                                            : pseudo_header_sum_v6(ip + 8, ip + 24, proto, l4_len);
      }
      store_be16(p + f.at + field, 0);
      uint16_t c = checksum_finish(checksum_add({p + f.at, l4_len}, sum));
      if (f.kind == Kind::Udp && c == 0) c = 0xffff;  // RFC 768: 0 means "none"
      store_be16(p + f.at + field, c);
    }
    return out;
  }

 private:
  enum class Kind { Ipv4, Ipv6, Tcp, Udp, Icmp, Icmpv6, Pppoe };
  struct Fix {
    Kind kind;
    size_t at;
    bool fixed_len;
    bool fixed_csum;
    size_t ip;  // the IP header of a transport
  };
  std::vector<std::byte> b_;
  std::vector<Fix> fix_;
  static constexpr size_t kNoIp = SIZE_MAX;
  size_t ip_ = kNoIp;  // the latest IP header
};

}  // namespace l45::test
