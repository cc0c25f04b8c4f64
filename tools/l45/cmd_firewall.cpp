// l45 firewall: mOS's simple_firewall (examples/firewall), inline on an NFQUEUE.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.hpp"
#include "firewall/firewall.hpp"
#include "flow_common.hpp"

namespace l45::cli {
namespace {

struct FirewallArgs {
  QueueArgs queue;
  EngineArgs engine;
  std::string rules;
  bool check = false;
  bool json = false;
};

void print_hits(const examples::Firewall& fw, const NfqueueInlineCounters& n, bool json) {
  if (json) {
    nlohmann::json rules = nlohmann::json::array();
    for (const examples::FirewallRule& r : fw.rules())
      rules.push_back({{"line", r.line}, {"rule", r.text}, {"hits", r.hits}});
    nlohmann::json j = {{"packets", n.packets},        {"dropped", n.dropped},
                        {"rst_sent", n.sent},          {"send_errors", n.send_errors},
                        {"unmatched", fw.unmatched()}, {"rules", rules}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{} packets, {} dropped, {} RST sent; flows no rule matched: {}\n", n.packets,
               n.dropped, n.sent, fw.unmatched());
    for (const examples::FirewallRule& r : fw.rules())
      fmt::print("  {:>10}  line {:<4} {}\n", r.hits, r.line, r.text);
  }
  std::fflush(stdout);
}

void run_firewall(const FirewallArgs& a) {
  std::ifstream f(a.rules);
  if (!f) fail(fmt::format("{}: cannot read the rules file", a.rules));
  std::stringstream text;
  text << f.rdbuf();
  auto rules = must(examples::parse_firewall_rules(text.str(), a.rules));
  if (a.check) {
    for (const examples::FirewallRule& r : rules)
      fmt::print("line {:<4} {}\n", r.line, r.text);
    fmt::print("{}: {} rules\n", a.rules, rules.size());
    return;
  }
  MonitorContext ctx(live_engine_config(a.engine));
  examples::Firewall fw(ctx, std::move(rules));
  must(fw.status());
  auto r =
      run_inline(ctx, a.queue, [&](const NfqueueInlineCounters& n) { print_hits(fw, n, a.json); });
  ctx.finish();
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<FirewallArgs>();
  app.add_option("--rules", a->rules, "the rules file (see below)")->required();
  add_queue_options(app, a->queue);
  app.add_flag("--check", a->check, "only read the rules: print them, or the first bad line");
  app.add_flag("--json", a->json, "the counters as one JSON object per line");
  add_engine_options(app, a->engine, false);
  app.callback([a] { run_firewall(*a); });
  app.footer(R"(Rules, one per line, '#' comments, the first match wins:
  ACCEPT|DROP|REJECT  SRC[/LEN]|any  DST[/LEN]|any  [sport N] [dport N]
SRC is the connection's client, DST its server. A TCP connection is judged on its first SYN
(one picked up without its SYN, on its first packet), a UDP flow on its first datagram;
other packets pass. ACCEPT: the flow is no longer monitored. DROP: its packets are dropped.
REJECT: dropped, and a TCP client gets a RST at once. No match: accepted, counted apart.

Queue the traffic to l45 with netfilter, e.g. on a router (forwarded traffic):
  nft add table inet fw
  nft add chain inet fw fq '{ type filter hook forward priority 0; }'
  nft add rule inet fw fq meta l4proto '{ tcp, udp }' queue num 3 bypass
  l45 firewall --rules fw.rules --queue 3
(Kernels without nftables' queue: iptables -A FORWARD -p tcp -j NFQUEUE --queue-num 3.)

fw.rules:
  DROP    any             203.0.113.0/24  dport 23
  REJECT  198.51.100.7    any
  ACCEPT  any             any

The hit counts (flows per rule) are printed every second and at exit (Ctrl-C or SIGTERM);
with --json one object a line: packets, dropped, rst_sent, send_errors, unmatched, rules
[{line, rule, hits}]. RSTs leave through a raw socket (routed like the host's own packets).
Needs CAP_NET_ADMIN (root).

Exit status: 0 stopped by a signal, 2 bad arguments or a bad rules file (with its line), or the
queue could not be bound (e.g. another program holds it).)");
}

}  // namespace

L45_REGISTER_COMMAND("firewall", "allow or drop connections by rules, inline on an NFQUEUE", setup,
                     46);

}  // namespace l45::cli
