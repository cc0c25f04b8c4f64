// libFuzzer target for the firewall middlebox's rules file (examples/firewall): any text is
// either rules whose text reads back to the same rules, or an error naming a line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "firewall/firewall.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  const std::string_view text(reinterpret_cast<const char*>(d), n);
  auto r = l45::examples::parse_firewall_rules(text, "fuzz");
  if (!r.ok()) {
    if (r.error().message().rfind("fuzz:", 0) != 0) std::abort();  // always names the line
    return 0;
  }
  std::string again;
  for (const auto& rule : *r) {
    if (rule.line == 0 || rule.text.empty()) std::abort();
    if (rule.src && !rule.src->contains(rule.src->addr)) std::abort();
    again += rule.text + "\n";
  }
  // The normalized text parses to the same rules.
  auto r2 = l45::examples::parse_firewall_rules(again, "again");
  if (!r2.ok() || r2->size() != r->size()) std::abort();
  for (size_t i = 0; i < r->size(); ++i)
    if ((*r2)[i].text != (*r)[i].text || (*r2)[i].action != (*r)[i].action ||
        (*r2)[i].dport != (*r)[i].dport || (*r2)[i].sport != (*r)[i].sport)
      std::abort();
  return 0;
}
