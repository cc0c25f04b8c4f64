#include "l45/packet/link_type.hpp"

namespace l45 {

std::string_view link_type_name(LinkType t) {
  switch (t) {
    case LinkType::Null:
      return "NULL";
    case LinkType::Ethernet:
      return "EN10MB";
    case LinkType::Raw:
      return "RAW";
    case LinkType::Loop:
      return "LOOP";
    case LinkType::LinuxSll:
      return "LINUX_SLL";
    case LinkType::Ipv4:
      return "IPV4";
    case LinkType::Ipv6:
      return "IPV6";
    case LinkType::LinuxSll2:
      return "LINUX_SLL2";
  }
  return "UNKNOWN";
}

}  // namespace l45
