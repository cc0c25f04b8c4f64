// midstat: the table kept from conn_start, tcp_state and conn_end events is, after every packet
// of the bundled and the shared captures, the engine's own flow table with its endpoints' states.
#include "midstat.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "l45/io/pcap_file.hpp"
#include "testing.hpp"

namespace l45::examples {
namespace {

// "uid CLIENT_STATE SERVER_STATE" per flow the engine holds, oldest first, read from the engine.
std::vector<std::string> engine_table(const Engine& e) {
  std::vector<const Flow*> flows;
  e.for_each_flow([&](const Flow& f) { flows.push_back(&f); });
  std::sort(flows.begin(), flows.end(),
            [](const Flow* a, const Flow* b) { return a->serial() < b->serial(); });
  std::vector<std::string> out;
  for (const Flow* f : flows) {
    auto st = [&](Side s) {
      if (f->tcp()) return std::string(tcp_endpoint_state_name(f->tcp()->endpoint(s).state));
      return std::string(f->counters(s).packets ? "ACTIVE" : "-");
    };
    out.push_back(f->uid() + " " + st(Side::Client) + " " + st(Side::Server));
  }
  return out;
}

std::vector<std::string> midstat_table(const Midstat& m) {
  std::vector<std::string> out;
  for (const MidstatRow& r : m.table())
    out.push_back(r.uid + " " + r.client_state + " " + r.server_state);
  return out;
}

void expect_same_after_every_packet(const std::vector<Packet>& pkts, const std::string& name) {
  EngineConfig cfg;
  cfg.reassemble = false;
  MonitorContext ctx(cfg);
  Midstat mid(ctx);
  ASSERT_TRUE(mid.status().ok());
  size_t i = 0;
  for (const Packet& p : pkts) {
    ctx.process(p);
    ++i;
    ASSERT_EQ(midstat_table(mid), engine_table(ctx.engine())) << name << " after packet " << i;
  }
  ctx.finish();
  EXPECT_EQ(mid.size(), 0u);
}

TEST(Midstat, TheEventKeptTableIsTheEnginesAfterEveryPacketOfTheBundledCapture) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  expect_same_after_every_packet(pkts.value(), "sample.pcap");
}

TEST(Midstat, TheEventKeptTableIsTheEnginesAfterEveryPacketOfEverySharedCapture) {
  auto root = testing::shared_pcaps_dir();
  if (!root) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS to point at it)";
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(*root)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".pcap" && ext != ".pcapng") continue;
    auto pkts = read_capture(e.path().string());
    if (!pkts.ok() || pkts.value().size() > 20000) continue;  // O(packets x flows): small ones
    ++files;
    expect_same_after_every_packet(pkts.value(), e.path().filename().string());
  }
  EXPECT_GT(files, 20u);
}

}  // namespace
}  // namespace l45::examples
