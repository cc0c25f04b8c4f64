// Text helpers every command's output shares.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "l45/packet/ip_addr.hpp"

namespace l45::cli {

std::string format_endpoint(const IpAddr& a, uint16_t port);  // 1.2.3.4:80, [::1]:80
std::string json_escape(std::string_view s);                  // for a JSON string's body

}  // namespace l45::cli
