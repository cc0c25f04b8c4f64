// l45 account: mOS's cellular data accounting (examples/account), as a command.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "account/account.hpp"
#include "command.hpp"
#include "flow_common.hpp"
#include "flow_order.hpp"
#include "l45/monitor/workers.hpp"

namespace l45::cli {
namespace {

struct AccountArgs {
  InputArgs in;
  EngineArgs engine;
  std::string subscribers;
  bool json = false;
  unsigned workers = 1;
};

// The bill of a run: usage per subscriber (file order), abuse reports in input order.
struct Bill {
  std::vector<examples::Usage> usage;
  std::vector<examples::AbuseReport> abuse;
};

Bill run_one(const AccountArgs& a, Source& src, std::vector<examples::SubscriberPrefix> subs,
             Result<void>& r, const std::function<void(const Engine&)>& stats) {
  MonitorContext ctx(engine_config(a.engine, a.in));
  examples::Accountant acct(ctx, std::move(subs));
  must(acct.status());
  const bool live = !a.in.iface.empty();
  SystemClock wall;
  r = for_each_packet(
      src, 0, [&](const Packet& p) { ctx.process(p); },
      [&] {
        if (live) ctx.advance(wall.now());
      });
  ctx.finish();
  stats(ctx.engine());
  return {acct.usage(), acct.abuse()};
}

// -c N: one Accountant per worker (WorkerPool). Usage adds up; abuse reports are put in input
// order (the frame that showed them; those found when a flow ends last) with one engine's uids.
Bill run_workers(const AccountArgs& a, Source& src,
                 const std::vector<examples::SubscriberPrefix>& subs, Result<void>& r,
                 const std::function<void(const Engine&)>& stats) {
  const unsigned n = a.workers;
  const bool live = !a.in.iface.empty();
  std::vector<std::unique_ptr<examples::Accountant>> accts(n);
  FlowOrder order(n);
  WorkerPool pool({.workers = n, .engine = engine_config(a.engine, a.in)},
                  [&](unsigned w, MonitorContext& ctx) -> Result<void> {
                    if (auto o = order.watch(w, ctx); !o.ok()) return o;
                    accts[w] = std::make_unique<examples::Accountant>(ctx, subs);
                    return accts[w]->status();
                  });
  SystemClock wall;
  r = for_each_packet(
      src, 0,
      // A file's packets stay valid (slices of the loaded file); a live source reuses buffers.
      [&](const Packet& p) { pool.push(live ? Packet::copy_of(p.data(), p.meta()) : p.share()); },
      [&] {
        if (live) pool.advance(wall.now());
      });
  must(pool.finish());
  Bill bill{accts[0]->usage(), {}};
  std::vector<std::vector<uint64_t>> opened;
  for (unsigned w = 0; w < n; ++w)
    opened.push_back(order.take(w));
  order.add(opened);
  for (unsigned w = 0; w < n; ++w) {
    stats(pool.context(w).engine());
    if (w > 0)
      for (size_t i = 0; i < bill.usage.size(); ++i) {
        const examples::Usage& u = accts[w]->usage()[i];
        examples::Usage& t = bill.usage[i];
        t.bytes_up += u.bytes_up, t.bytes_down += u.bytes_down;
        t.packets_up += u.packets_up, t.packets_down += u.packets_down;
        t.retransmitted_bytes += u.retransmitted_bytes, t.flows += u.flows;
      }
    for (examples::AbuseReport x : accts[w]->abuse()) {
      x.serial = order.serial(order.frame(w, x.serial));
      x.uid = flow_uid(x.serial);
      bill.abuse.push_back(std::move(x));
    }
  }
  auto at = [](const examples::AbuseReport& x) { return x.frame ? x.frame : UINT64_MAX; };
  std::stable_sort(bill.abuse.begin(), bill.abuse.end(), [&](const auto& x, const auto& y) {
    return at(x) != at(y) ? at(x) < at(y) : x.serial < y.serial;
  });
  return bill;
}

void run_account(const AccountArgs& a) {
  std::ifstream f(a.subscribers);
  if (!f) fail(fmt::format("{}: cannot read the subscribers file", a.subscribers));
  std::stringstream text;
  text << f.rdbuf();
  auto subs = must(examples::parse_subscribers(text.str(), a.subscribers));
  if (subs.empty()) fail(a.subscribers + ": no subscribers (one 'PREFIX ID' per line)");
  auto src = open_input(a.in);
  Result<void> r;
  // --stats goes to stderr when the engines are done (per worker with -c N).
  unsigned worker = 0;
  auto stats = [&](const Engine& e) {
    if (!a.engine.stats) return;
    if (a.workers > 1) std::fprintf(stderr, "l45: worker %u:\n", worker++);
    print_engine_stats(*src, e);
  };
  const Bill bill = a.workers > 1 ? run_workers(a, *src, subs, r, stats)
                                  : run_one(a, *src, std::move(subs), r, stats);

  if (a.json) {
    for (const examples::Usage& u : bill.usage) {
      nlohmann::json j = {{"id", u.id},
                          {"bytes_up", u.bytes_up},
                          {"bytes_down", u.bytes_down},
                          {"packets_up", u.packets_up},
                          {"packets_down", u.packets_down},
                          {"retransmitted_bytes", u.retransmitted_bytes},
                          {"flows", u.flows}};
      fmt::print("{}\n", j.dump());
    }
    for (const examples::AbuseReport& x : bill.abuse) {
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
    for (const examples::Usage& u : bill.usage)
      fmt::print("{:<16} {:>12} {:>12} {:>9} {:>9} {:>12} {:>6}\n", u.id, u.bytes_up, u.bytes_down,
                 u.packets_up, u.packets_down, u.retransmitted_bytes, u.flows);
    for (const examples::AbuseReport& x : bill.abuse)
      fmt::print("possible tunneling: {} flow {} {} bytes {}..{} resent with other content\n",
                 x.subscriber.empty() ? "-" : x.subscriber, x.uid,
                 x.side == Side::Client ? "orig" : "resp", x.offset, x.offset + x.length);
  }
  std::fflush(stdout);
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<AccountArgs>();
  add_input_options(app, a->in);
  app.add_option("--subscribers", a->subscribers, "file of 'PREFIX ID' lines ('#' comments)")
      ->required();
  app.add_flag("--json", a->json, "one JSON object per subscriber, then one per abuse report");
  app.add_option("-c,--workers", a->workers,
                 "N shared-nothing workers (threads, one flow table each); flows spread by hash")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  add_engine_options(app, a->engine, true);
  app.footer(R"(Examples:
  l45 account -r trace.pcap --subscribers subs.txt
  l45 account -i eth0 --subscribers subs.txt --json | jq 'select(.abuse)'
  l45 account -r trace.pcap --subscribers subs.txt -c 2     two workers

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
-c N: packets are spread over N workers by a symmetric hash of the flow (both directions, ICMP
errors, IP fragments on one worker), each with its own flow table; usage is added up and abuse
reports are listed in input order with the uids of -c 1, so a file gives -c 1's output.

Exit status: 0 done, 2 bad arguments, a bad subscribers file (with its line), unreadable or
corrupt input (after the usage of every packet before the fault).)");
  app.callback([a] { run_account(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("account",
                     "bill traffic per subscriber and flag retransmissions with other bytes", setup,
                     45);

}  // namespace l45::cli
