// libFuzzer target for the account middlebox's subscribers file (examples/account): any text is
// either a list of prefixes that each contain their own address, or an error naming a line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "account/account.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  const std::string_view text(reinterpret_cast<const char*>(d), n);
  auto r = l45::examples::parse_subscribers(text, "fuzz");
  if (!r.ok()) {
    if (r.error().message().rfind("fuzz:", 0) != 0) std::abort();  // always names the line
    return 0;
  }
  for (const auto& p : r.value()) {
    if (p.id.empty() || !p.contains(p.addr)) std::abort();
    if (p.len > (p.addr.is_v4() ? 32 : 128)) std::abort();
  }
  return 0;
}
