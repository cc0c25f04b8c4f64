// libFuzzer target for the tag rules parser (l45/tag/rules.hpp): any bytes as a rules file.
//
// The target checks parse_rules()'s promises and traps when one breaks: at most L45_RULES_MAX
// rules; every rule and error carries a line number inside the file, in order; and a rule's own
// text, parsed again, gives exactly the same compiled record (what the eBPF programs read).
//
// Seeds: fuzz/corpus/tag_rules (rules files: the examples, every condition and action,
// bad lines).
// Run:  ./build-fuzz/fuzz/tag_rules_fuzz -max_total_time=60 fuzz/corpus/tag_rules
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "l45/tag/rules.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto set = l45::tag::parse_rules(text);
  int lines = 1;
  for (char c : text)
    lines += c == '\n';
  check(set.rules.size() <= L45_RULES_MAX);
  int last = 0;
  for (const auto& r : set.rules) {
    check(r.line > last && r.line <= lines);
    last = r.line;
    auto again = l45::tag::parse_rules(r.text);
    check(again.errors.empty() && again.rules.size() == 1);
    check(std::memcmp(&again.rules[0].bpf, &r.bpf, sizeof r.bpf) == 0);
    check(again.rules[0].log_prefix == r.log_prefix);
  }
  for (const auto& e : set.errors)
    check(e.line >= 1 && e.line <= lines && !e.message.empty());
  (void)l45::tag::format_errors(set.errors);
  return 0;
}
