// firewall: mOS's simple_firewall, inline, written only against l45's public monitoring API.
//
// Rules, one per line, `#` comments, first match wins:
//
//   ACCEPT|DROP|REJECT  SRC[/LEN]|any  DST[/LEN]|any  [sport N] [dport N]
//
// SRC is the connection's client, DST its server. A TCP connection is judged on its first SYN
// (one picked up without a SYN, on its first packet); a UDP flow on its first datagram.
//   ACCEPT  the flow is no longer monitored: its packets pass untouched, at no further cost
//   DROP    the packet is dropped, and so is every later packet of the flow (SYN retries)
//   REJECT  DROP, and a TCP client gets a RST at once (MonitorContext::reset)
// A flow no rule matches is accepted and counted apart.
//
// Events used: conn_start on one stream socket (tcp or udp), packet on denied flows.
//
//   auto rules = parse_firewall_rules(text, "fw.rules");
//   Firewall fw(ctx, *rules);
//   ... ctx.process_inline(p) ...
//   for (const FirewallRule& r : fw.rules()) print(r.text, r.hits);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::examples {

enum class FirewallAction : uint8_t { Accept, Drop, Reject };

struct FirewallRule {
  FirewallAction action = FirewallAction::Accept;
  std::optional<IpPrefix> src, dst;  // nullopt: any
  std::optional<uint16_t> sport, dport;
  size_t line = 0;
  std::string text;   // the rule as written, for reports
  uint64_t hits = 0;  // flows it judged
  bool matches(const IpAddr& client, uint16_t cport, const IpAddr& server, uint16_t sport) const;
};

// Errors name the file and line: "fw.rules:3: bad port 'http' after dport".
Result<std::vector<FirewallRule>> parse_firewall_rules(std::string_view text,
                                                       std::string_view name);
std::string_view firewall_action_name(FirewallAction a);  // "ACCEPT", ...

class Firewall {
 public:
  Firewall(MonitorContext& ctx, std::vector<FirewallRule> rules);
  Result<void> status() const { return status_; }
  const std::vector<FirewallRule>& rules() const { return rules_; }
  uint64_t unmatched() const { return unmatched_; }  // flows accepted by no rule
  uint64_t dropped() const { return dropped_; }      // packets dropped

 private:
  Result<void> setup(MonitorContext& ctx);
  void on_start(MonitorContext& c, FlowHandle f);
  void on_denied_packet(MonitorContext& c);

  std::vector<FirewallRule> rules_;
  HandlerId deny_ = 0;
  uint64_t unmatched_ = 0;
  uint64_t dropped_ = 0;
  Result<void> status_;
};

}  // namespace l45::examples
