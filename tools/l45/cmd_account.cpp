// l45 account: mOS's cellular data accounting (examples/account), as a command.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "account/account.hpp"
#include "command.hpp"
#include "flow_common.hpp"

namespace l45::cli {
namespace {

struct AccountArgs {
  InputArgs in;
  EngineArgs engine;
  std::string subscribers;
  bool json = false;
};

void run_account(const AccountArgs& a) {
  std::ifstream f(a.subscribers);
  if (!f) fail(fmt::format("{}: cannot read the subscribers file", a.subscribers));
  std::stringstream text;
  text << f.rdbuf();
  auto subs = must(examples::parse_subscribers(text.str(), a.subscribers));
  if (subs.empty()) fail(a.subscribers + ": no subscribers (one 'PREFIX ID' per line)");
  auto src = open_input(a.in);
  MonitorContext ctx(engine_config(a.engine, a.in));
  examples::Accountant acct(ctx, std::move(subs));
  must(acct.status());
  const bool live = !a.in.iface.empty();
  SystemClock wall;
  auto r = for_each_packet(
      *src, 0, [&](const Packet& p) { ctx.process(p); },
      [&] {
        if (live) ctx.advance(wall.now());
      });
  ctx.finish();

  if (a.json) {
    for (const examples::Usage& u : acct.usage()) {
      nlohmann::json j = {{"id", u.id},
                          {"bytes_up", u.bytes_up},
                          {"bytes_down", u.bytes_down},
                          {"packets_up", u.packets_up},
                          {"packets_down", u.packets_down},
                          {"retransmitted_bytes", u.retransmitted_bytes},
                          {"flows", u.flows}};
      fmt::print("{}\n", j.dump());
    }
    for (const examples::AbuseReport& x : acct.abuse()) {
      nlohmann::json j = {{"abuse", "retransmission_differs"},
                          {"subscriber", x.subscriber},
                          {"uid", x.uid},
                          {"side", x.side == Side::Client ? "orig" : "resp"},
                          {"offset", x.offset},
                          {"length", x.length}};
      fmt::print("{}\n", j.dump());
    }
  } else {
    fmt::print("{:<16} {:>12} {:>12} {:>9} {:>9} {:>12} {:>6}\n", "subscriber", "bytes_up",
               "bytes_down", "pkts_up", "pkts_down", "rexmit_bytes", "flows");
    for (const examples::Usage& u : acct.usage())
      fmt::print("{:<16} {:>12} {:>12} {:>9} {:>9} {:>12} {:>6}\n", u.id, u.bytes_up, u.bytes_down,
                 u.packets_up, u.packets_down, u.retransmitted_bytes, u.flows);
    for (const examples::AbuseReport& x : acct.abuse())
      fmt::print("possible tunneling: {} flow {} {} bytes {}..{} resent with other content\n",
                 x.subscriber.empty() ? "-" : x.subscriber, x.uid,
                 x.side == Side::Client ? "orig" : "resp", x.offset, x.offset + x.length);
  }
  std::fflush(stdout);
  if (a.engine.stats) print_engine_stats(*src, ctx.engine());
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<AccountArgs>();
  add_input_options(app, a->in);
  app.add_option("--subscribers", a->subscribers, "file of 'PREFIX ID' lines ('#' comments)")
      ->required();
  app.add_flag("--json", a->json, "one JSON object per subscriber, then one per abuse report");
  add_engine_options(app, a->engine, true);
  app.footer(R"(Examples:
  l45 account -r trace.pcap --subscribers subs.txt
  l45 account -i eth0 --subscribers subs.txt --json | jq 'select(.abuse)'

subs.txt:
  # UE address pools
  198.51.100.0/24  cell-a
  fd00:45::/64     cell-b

Every flow one of whose endpoints is a subscriber (longest prefix; the client's first) is
billed to it: bytes_up what it sent, bytes_down what it received, as reassembled payload bytes,
so a retransmitted byte is billed once; rexmit_bytes counts the resent bytes apart. A
retransmission whose bytes differ from the first copy is reported as possible tunneling abuse
(mOS's cellular accounting case): flow uid (as in l45 conn), side, stream offsets.
JSON fields: id, bytes_up, bytes_down, packets_up, packets_down, retransmitted_bytes, flows;
abuse reports: abuse, subscriber, uid, side (orig|resp), offset, length.

Exit status: 0 done, 2 bad arguments, a bad subscribers file (with its line), unreadable or
corrupt input (after the usage of every packet before the fault).)");
  app.callback([a] { run_account(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("account",
                     "bill traffic per subscriber and flag retransmissions with other bytes", setup,
                     45);

}  // namespace l45::cli
