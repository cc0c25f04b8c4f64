// The tag rules language: one rule per line, `FOCUS CONDITION... ACTION [ARG]`, `#` starts a
// comment (outside quotes). parse_rules() compiles a whole file into the records the eBPF
// programs read (struct l45_rule, l45/tag/bpf_abi.h), or lists every bad line with its number;
// a file with any error loads nothing.
//
//   out     app 24 tag 26                       log "Tagged_packet_found"
//   out     app 1 tag 7                         mark 1
//   out     app 5 tag "tenant-a" dport 443      count
//   in      app 9 untrusted                     drop
//   out     app 3 tag 1 signed                  throttle 10mbit
//
// focus      out | in | forward
// conditions app N | tag N | tag "string" | tag "prefix*" | src PREFIX | dst PREFIX |
//            sport N[-M] | dport N[-M] | proto tcp|udp | uid N | trusted | untrusted | signed
// actions    log [PREFIX] | mark N | count | drop | throttle RATE | priority N | export
//            (RATE: a number with bit, kbit, mbit, gbit (bits/s) or bps, kbps, mbps, gbps
//            (bytes/s), tc's units, k = 1000)
//
// A rule's tag conditions (app, tag, trusted, untrusted, signed) must hold for one and the same
// tag of the socket; a rule without any matches tagged and untagged sockets alike. Every
// matching rule acts on a packet, in file order, until one drops it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/tag/bpf_abi.h"

namespace l45::tag {

struct Rule {
  int line = 0;            // 1-based line in the file
  std::string text;        // the line without its comment, trimmed
  std::string log_prefix;  // for `log`
  l45_rule bpf{};          // what the programs evaluate
};

struct RuleError {
  int line = 0;
  std::string message;  // "unknown action 'frob'"
};

struct RuleSet {
  std::vector<Rule> rules;
  std::vector<RuleError> errors;  // empty: the set can be loaded
};

// Never fails on input: every problem is an entry in `errors`. At most L45_RULES_MAX rules.
RuleSet parse_rules(std::string_view text);

// "line 3: unknown action 'frob'" for each error, one per line.
std::string format_errors(const std::vector<RuleError>& errors);

// A tag value as written on the command line or in a rule: 26 (a number) or "tenant-a" / a bare
// word that is not a number (a string). Fills `t` (app set by the caller); false with `why`.
bool parse_tag_value(std::string_view s, l45_tag& t, std::string* why);

// "24:26" / "5:\"tenant-a\"" (the same text as l45_tag_format).
std::string format_tag(const l45_tag& t);

// The names used in stats and logs.
std::string_view focus_name(uint8_t focus);
std::string_view action_name(uint8_t action);

}  // namespace l45::tag
