#include "text.hpp"

#include <fmt/format.h>

namespace l45::cli {

std::string format_endpoint(const IpAddr& a, uint16_t port) {
  return a.is_v4() ? fmt::format("{}:{}", a.to_string(), port)
                   : fmt::format("[{}]:{}", a.to_string(), port);
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      o += fmt::format("\\u{:04x}", c);
    else
      o += c;
  }
  return o;
}

}  // namespace l45::cli
