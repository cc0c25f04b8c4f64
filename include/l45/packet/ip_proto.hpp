// IP protocol / IPv6 Next Header numbers the decoder knows
// (https://www.iana.org/assignments/protocol-numbers).
#pragma once

#include <cstdint>

namespace l45::ip_proto {

inline constexpr uint8_t kHopByHop = 0;
inline constexpr uint8_t kIcmp = 1;
inline constexpr uint8_t kIpip = 4;  // IPv4 in IP (RFC 2003)
inline constexpr uint8_t kTcp = 6;
inline constexpr uint8_t kUdp = 17;
inline constexpr uint8_t kIpv6 = 41;  // IPv6 in IP (RFC 4213 3.5)
inline constexpr uint8_t kRouting = 43;
inline constexpr uint8_t kFragment = 44;
inline constexpr uint8_t kGre = 47;
inline constexpr uint8_t kEsp = 50;
inline constexpr uint8_t kAh = 51;
inline constexpr uint8_t kIcmpv6 = 58;
inline constexpr uint8_t kNoNextHeader = 59;
inline constexpr uint8_t kDestOpts = 60;

}  // namespace l45::ip_proto
