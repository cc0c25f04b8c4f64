#include "firewall/firewall.hpp"

#include <charconv>

#include "l45/core/config_lines.hpp"

namespace l45::examples {

std::string_view firewall_action_name(FirewallAction a) {
  switch (a) {
    case FirewallAction::Accept:
      return "ACCEPT";
    case FirewallAction::Drop:
      return "DROP";
    case FirewallAction::Reject:
      return "REJECT";
  }
  return "?";
}

bool FirewallRule::matches(const IpAddr& client, uint16_t cport, const IpAddr& server,
                           uint16_t srv_port) const {
  return (!src || src->contains(client)) && (!dst || dst->contains(server)) &&
         (!sport || *sport == cport) && (!dport || *dport == srv_port);
}

Result<std::vector<FirewallRule>> parse_firewall_rules(std::string_view text,
                                                       std::string_view name) {
  std::vector<FirewallRule> out;
  for (const ConfigLine& l : config_lines(text)) {
    auto fail = [&](const std::string& why) { return config_error(name, l.number, why); };
    const std::vector<std::string_view>& w = l.fields;
    FirewallRule r;
    r.line = l.number;
    if (w[0] == "ACCEPT")
      r.action = FirewallAction::Accept;
    else if (w[0] == "DROP")
      r.action = FirewallAction::Drop;
    else if (w[0] == "REJECT")
      r.action = FirewallAction::Reject;
    else
      return fail("unknown action '" + std::string(w[0]) + "' (ACCEPT, DROP or REJECT)");
    if (w.size() < 3) return fail("expected 'ACTION SRC DST [sport N] [dport N]'");
    for (int k = 1; k <= 2; ++k) {
      if (w[k] == "any") continue;
      auto p = IpPrefix::parse(w[k]);
      if (!p) return fail("bad address or prefix '" + std::string(w[k]) + "'");
      (k == 1 ? r.src : r.dst) = *p;
    }
    for (size_t i = 3; i < w.size(); i += 2) {
      if (w[i] != "sport" && w[i] != "dport")
        return fail("unexpected '" + std::string(w[i]) + "' (sport N or dport N)");
      if (i + 1 >= w.size()) return fail(std::string(w[i]) + " needs a port number");
      unsigned port = 0;
      auto [end, ec] = std::from_chars(w[i + 1].data(), w[i + 1].data() + w[i + 1].size(), port);
      if (ec != std::errc() || end != w[i + 1].data() + w[i + 1].size() || port > 65535)
        return fail("bad port '" + std::string(w[i + 1]) + "' after " + std::string(w[i]));
      auto& field = w[i] == "sport" ? r.sport : r.dport;
      if (field) return fail(std::string(w[i]) + " given twice");
      field = uint16_t(port);
    }
    for (size_t i = 0; i < w.size(); ++i)
      r.text += (i ? " " : "") + std::string(w[i]);
    out.push_back(std::move(r));
  }
  return out;
}

Firewall::Firewall(MonitorContext& ctx, std::vector<FirewallRule> rules)
    : rules_(std::move(rules)) {
  status_ = setup(ctx);
}

Result<void> Firewall::setup(MonitorContext& ctx) {
  L45_TRY(SocketId sock, ctx.socket(SocketKind::Stream, "tcp or udp"));
  L45_TRY(HandlerId start,
          ctx.handler("firewall.start",
                      [this](MonitorContext& c, FlowHandle f, Side, EventId) { on_start(c, f); }));
  L45_TRY(deny_, ctx.handler("firewall.deny", [this](MonitorContext& c, FlowHandle, Side, EventId) {
    on_denied_packet(c);
  }));
  return ctx.on(sock, BuiltinEvent::ConnStart, Hook::Receiver, start);
}

// The flow's first packet: the rules decide, once.
void Firewall::on_start(MonitorContext& c, FlowHandle f) {
  const auto client = c.peer(f, Side::Client), server = c.peer(f, Side::Server);
  if (!client || !server) return;
  for (FirewallRule& r : rules_) {
    if (!r.matches(client->addr, client->port, server->addr, server->port)) continue;
    ++r.hits;
    switch (r.action) {
      case FirewallAction::Accept:
        (void)c.stop(f);  // the flow exists: cannot fail
        return;
      case FirewallAction::Reject:
        if (c.reset(f).ok()) {  // TCP: RST to the client, packet dropped, flow stopped
          ++dropped_;
          return;
        }
        [[fallthrough]];  // UDP: dropped like DROP
      case FirewallAction::Drop:
        on_denied_packet(c);
        // Later packets of the flow (the client retrying its SYN) meet the same end.
        (void)c.subscribe(f, EventId(BuiltinEvent::Packet), Hook::Receiver, deny_);
        return;
    }
  }
  ++unmatched_;
  (void)c.stop(f);
}

void Firewall::on_denied_packet(MonitorContext& c) {
  if (c.drop().ok()) ++dropped_;
}

}  // namespace l45::examples
