// l45 rewrite: replace byte strings in TCP payloads inline (examples/rewrite), on an NFQUEUE.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "flow_common.hpp"
#include "rewrite/rewrite.hpp"

namespace l45::cli {
namespace {

struct RewriteArgs {
  QueueArgs queue;
  EngineArgs engine;
  std::vector<std::string> replace;  // FROM TO pairs
  std::string side = "both";
  std::string filter = "tcp";
  bool json = false;
};

void run_rewrite(const RewriteArgs& a) {
  std::vector<examples::Replacement> rules;
  for (size_t i = 0; i + 1 < a.replace.size(); i += 2) {
    examples::Replacement r{a.replace[i], a.replace[i + 1], std::nullopt};
    if (a.side != "both") r.side = a.side == "client" ? Side::Client : Side::Server;
    rules.push_back(std::move(r));
  }
  if (rules.empty()) fail("give at least one --replace FROM TO");
  MonitorContext ctx(live_engine_config(a.engine));
  examples::Rewriter rw(ctx, std::move(rules), a.filter);
  must(rw.status());
  auto r = run_inline(ctx, a.queue, [&](const NfqueueInlineCounters& n) {
    const InlineStats& s = ctx.inline_stats();
    if (a.json) {
      nlohmann::json j = {{"packets", n.packets},      {"modified", n.modified},
                          {"replaced", rw.replaced()}, {"refused", rw.refused()},
                          {"reedited", s.reedited},    {"split", s.split},
                          {"partial", s.partial},      {"flows_remapped", s.remapped_flows}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print(
          "{} packets, {} changed, {} extra pieces; {} replacements ({} refused); "
          "retransmissions re-edited {}, cut {}; flows remapped {}\n",
          n.packets, n.modified, s.split, rw.replaced(), rw.refused(), s.reedited, s.partial,
          s.remapped_flows);
    }
    std::fflush(stdout);
  });
  ctx.finish();
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<RewriteArgs>();
  add_queue_options(app, a->queue);
  app.add_option("--replace", a->replace, "replace the bytes FROM by TO (repeatable)")
      ->expected(2)
      ->type_name("FROM TO")
      ->allow_extra_args(false)
      ->take_all();
  app.add_option("--side", a->side, "rewrite what this side sends")
      ->check(CLI::IsMember({"client", "server", "both"}));
  app.add_option("-f,--filter", a->filter, "tcpdump-syntax filter for the flows to rewrite");
  app.add_flag("--json", a->json, "the counters as one JSON object per line");
  add_engine_options(app, a->engine, false);
  app.callback([a] { run_rewrite(*a); });
  app.footer(
      R"(Example: a middlebox that renames the server in HTTP responses (a longer string: every
later sequence and acknowledgement number of the connection is remapped):
  nft add table inet rw
  nft add chain inet rw fq '{ type filter hook forward priority 0; }'
  nft add rule inet rw fq tcp sport 80 queue num 5
  nft add rule inet rw fq tcp dport 80 queue num 5
  l45 rewrite --queue 5 -f 'tcp port 80' --side server --replace 'Server: nginx' 'Server: l45-rewritten'

(Kernels without nftables' queue: iptables -A FORWARD -p tcp --sport 80 -j NFQUEUE --queue-num 5,
and the same with --dport 80.) Queue both directions of a connection: the acknowledgements
coming back must be remapped too. A segment made longer than it came is cut in two (the path's
MTU still holds).
A FROM cut by a segment boundary is not replaced (edits act on the packet that carried the
data). Counters every second and at exit (Ctrl-C or SIGTERM). Needs CAP_NET_ADMIN (root).)");
}

}  // namespace

L45_REGISTER_COMMAND("rewrite", "replace byte strings in TCP payloads inline, lengths may change",
                     setup, 47);

}  // namespace l45::cli
