// Link-layer header types, numbered as LINKTYPE_* values in pcap and pcapng files
// (https://www.tcpdump.org/linktypes.html). io/ maps libpcap's DLT_* values to these.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace l45 {

enum class LinkType : uint32_t {
  Null = 0,         // BSD loopback: 4-byte host-order address family
  Ethernet = 1,     // Ethernet II (and 802.3 with VLAN tags)
  Raw = 101,        // raw IPv4 or IPv6, version from the first nibble
  Loop = 108,       // OpenBSD loopback: 4-byte network-order address family
  LinuxSll = 113,   // Linux cooked capture v1
  Ipv4 = 228,       // raw IPv4
  Ipv6 = 229,       // raw IPv6
  LinuxSll2 = 276,  // Linux cooked capture v2
};

std::string_view link_type_name(LinkType t);  // "EN10MB", "RAW", "LINUX_SLL", ...

}  // namespace l45
