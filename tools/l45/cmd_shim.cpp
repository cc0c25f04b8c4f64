// l45 shim: look at the shim from outside the programs it runs in.
//   l45 shim stats   the live shimmed sockets per program and their counters (table or JSON)
//   l45 shim check   what a customization directory would load, and why not
#include <fmt/format.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "command.hpp"
#include "l45/shim/manifest.hpp"
#include "l45/shim/stats.hpp"

namespace l45::cli {
namespace {

struct StatsArgs {
  std::string rundir;
  bool json = false;
  bool all = false;
  bool prune = false;
};

const char* side_name(uint8_t s) {
  return s == 1 ? "client" : s == 2 ? "server" : "-";
}
const char* proto_name(uint8_t p) {
  return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : "?";
}

nlohmann::json slot_json(const l45_shim_stats_slot& s, bool alive) {
  nlohmann::json j;
  j["fd"] = s.fd;
  j["protocol"] = proto_name(s.protocol);
  j["side"] = side_name(s.side);
  j["local"] = s.local;
  j["remote"] = s.remote;
  j["chain"] = s.chain;
  j["state"] = s.state != L45_SLOT_OPEN ? "closed" : alive ? "open" : "exited";
  j["bytes_out"] = s.bytes_out;
  j["bytes_in"] = s.bytes_in;
  j["msgs_out"] = s.msgs_out;
  j["msgs_in"] = s.msgs_in;
  j["calls_out"] = s.calls_out;
  j["calls_in"] = s.calls_in;
  j["errors_out"] = s.errors_out;
  j["errors_in"] = s.errors_in;
  j["latency_out_log2us"] = std::vector<uint64_t>(s.lat_out, s.lat_out + L45_SHIM_STATS_BUCKETS);
  j["latency_in_log2us"] = std::vector<uint64_t>(s.lat_in, s.lat_in + L45_SHIM_STATS_BUCKETS);
  nlohmann::json c = nlohmann::json::object();
  for (const auto& e : s.extra)
    if (e.name[0]) c[e.name] = e.value;
  j["counters"] = c;
  j["opened_ns"] = s.opened_ns;
  if (s.state == L45_SLOT_CLOSED) j["closed_ns"] = s.closed_ns;
  return j;
}

void stats(const StatsArgs& a) {
  std::string dir = a.rundir.empty() ? shim::stats_rundir() : a.rundir;
  shim::StatsScan scan = shim::read_stats_dir(dir);
  for (const auto& p : scan.problems)
    std::fprintf(stderr, "l45: warning: %s\n", p.c_str());
  if (a.prune) {
    for (const auto& p : scan.processes)
      if (!p.alive) ::unlink(p.file.c_str());
  }
  nlohmann::json out = nlohmann::json::array();
  std::string table;
  for (const auto& p : scan.processes) {
    if (!p.alive && !a.all) continue;
    nlohmann::json pj;
    pj["pid"] = p.header.pid;
    pj["program"] = p.header.program;
    pj["path"] = p.header.path;
    pj["uid"] = p.header.uid;
    pj["alive"] = p.alive;
    pj["unpublished"] = p.header.unpublished;
    nlohmann::json socks = nlohmann::json::array();
    std::string rows;
    int shown = 0;
    for (const auto& s : p.slots) {
      if (s.state != L45_SLOT_OPEN && !a.all) continue;
      socks.push_back(slot_json(s, p.alive));
      ++shown;
      rows += fmt::format(
          "  {:>4} {:<4} {:<6} {:<24} {:<24} {:>12} {:>12} {:>8} {:>8} {:>6} {:<6} {}\n", s.fd,
          proto_name(s.protocol), side_name(s.side), s.local, s.remote, s.bytes_out, s.bytes_in,
          s.msgs_out, s.msgs_in, s.errors_out + s.errors_in,
          s.state != L45_SLOT_OPEN ? "closed"
          : p.alive                ? "open"
                                   : "exited",
          s.chain);
    }
    pj["sockets"] = socks;
    out.push_back(pj);
    table += fmt::format("{} (pid {}, uid {}{}): {} socket{}\n", p.header.program, p.header.pid,
                         p.header.uid, p.alive ? "" : ", exited", shown, shown == 1 ? "" : "s");
    if (shown)
      table += fmt::format(
                   "  {:>4} {:<4} {:<6} {:<24} {:<24} {:>12} {:>12} {:>8} {:>8} {:>6} {:<6} {}\n",
                   "fd", "prot", "side", "local", "remote", "bytes_out", "bytes_in", "msgs_out",
                   "msgs_in", "errors", "state", "chain") +
               rows;
  }
  if (a.json) {
    nlohmann::json doc;
    doc["rundir"] = dir;
    doc["processes"] = out;
    std::puts(doc.dump().c_str());
  } else if (table.empty()) {
    std::printf("no shimmed process%s in %s\n", a.all ? "" : " alive", dir.c_str());
  } else {
    std::fputs(table.c_str(), stdout);
  }
}

struct CheckArgs {
  std::string modules = "/etc/l45/modules.d";
  bool json = false;
};

void check(const CheckArgs& a) {
  shim::DirLoad d = shim::load_directory(a.modules, static_cast<uint32_t>(getuid()));
  if (!d.exists && !d.refusal) fail(a.modules + ": no such directory");
  if (d.refusal) {
    std::printf("refused: %s: nothing would load\n", d.refusal->c_str());
    throw Exit{kExitProblem, ""};
  }
  for (const auto& m : d.manifests) {
    std::string match;
    if (m.program) match += " program=" + *m.program;
    if (m.protocol) match += m.protocol == IPPROTO_TCP ? " protocol=tcp" : " protocol=udp";
    if (!m.ports.empty()) match += fmt::format(" ports={}", fmt::join(m.ports, ","));
    if (m.remote) match += " remote=(prefix)";
    if (m.side != shim::SideMatch::Any)
      match += m.side == shim::SideMatch::Client ? " side=client" : " side=server";
    std::printf("ok      %s: %s (module %s, order %lld)%s\n", m.file.c_str(), m.name.c_str(),
                m.module.c_str(), static_cast<long long>(m.order), match.c_str());
  }
  for (const auto& p : d.skipped)
    std::printf("skipped %s\n", p.to_string().c_str());
  if (!d.skipped.empty()) throw Exit{kExitProblem, ""};
}

void setup(CLI::App& app) {
  app.require_subcommand(1, 1);
  auto sa = std::make_shared<StatsArgs>();
  auto* st = app.add_subcommand("stats", "the live shimmed sockets per program, with counters");
  st->description(
      "List the sockets of the programs running under the shim (l45 run) with their chain\n"
      "and the monitor module's counters: bytes, messages, errors per direction and a\n"
      "latency histogram of the real calls (--json: latency_*_log2us, bucket i counts calls\n"
      "that took [2^(i-1), 2^i) us, bucket 0 under 1 us).\n\n"
      "examples:\n"
      "  l45 shim stats\n"
      "  l45 shim stats --json | jq '.processes[].sockets[] | {remote, bytes_out}'");
  st->add_option("--rundir", sa->rundir,
                 "where the programs publish (default $L45_SHIM_RUNDIR "
                 "or /run/l45/shim)");
  st->add_flag("--json", sa->json, "one JSON document");
  st->add_flag("--all", sa->all, "also closed sockets and exited programs");
  st->add_flag("--prune", sa->prune, "delete the files of exited programs");
  st->callback([sa] { stats(*sa); });

  auto ca = std::make_shared<CheckArgs>();
  auto* ck = app.add_subcommand("check", "what a customization directory would load");
  ck->add_option("--modules", ca->modules, "the directory (default /etc/l45/modules.d)");
  ck->callback([ca] { check(*ca); });
}

}  // namespace

L45_REGISTER_COMMAND("shim", "the shim's live sockets (stats) and manifests (check)", setup, 61);

}  // namespace l45::cli
