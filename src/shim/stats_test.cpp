#include "l45/shim/stats.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace l45::shim {
namespace {

TEST(Stats, LatencyBucketsAreLog2Microseconds) {
  EXPECT_EQ(latency_bucket(0), 0u);
  EXPECT_EQ(latency_bucket(999), 0u);
  EXPECT_EQ(latency_bucket(1000), 1u);
  EXPECT_EQ(latency_bucket(1999), 1u);
  EXPECT_EQ(latency_bucket(2000), 2u);
  EXPECT_EQ(latency_bucket(3999), 2u);
  EXPECT_EQ(latency_bucket(4000), 3u);
  EXPECT_EQ(latency_bucket(60ull * 1000000000ull), L45_SHIM_STATS_BUCKETS - 1);
}

TEST(Stats, ClaimedSlotsAreReadBackOpenThenClosed) {
  char tmpl[] = "/tmp/l45-shim-stats-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  ::setenv("L45_SHIM_RUNDIR", dir.c_str(), 1);
  std::string err;
  l45_shim_stats_slot* a = StatsPublisher::claim(&err);
  l45_shim_stats_slot* b = StatsPublisher::claim(&err);
  ASSERT_NE(a, nullptr) << err;
  ASSERT_NE(b, nullptr) << err;
  EXPECT_NE(a, b);
  a->bytes_out = 1234;
  std::snprintf(a->chain, sizeof a->chain, "mon");
  StatsPublisher::release(b);

  StatsScan scan = read_stats_dir(dir);
  EXPECT_TRUE(scan.problems.empty());
  ASSERT_EQ(scan.processes.size(), 1u);
  const auto& p = scan.processes[0];
  EXPECT_EQ(p.header.pid, getpid());
  EXPECT_TRUE(p.alive);
  ASSERT_EQ(p.slots.size(), 2u);
  EXPECT_EQ(p.slots[0].state, static_cast<uint32_t>(L45_SLOT_OPEN));
  EXPECT_EQ(p.slots[0].bytes_out, 1234u);
  EXPECT_STREQ(p.slots[0].chain, "mon");
  EXPECT_EQ(p.slots[1].state, static_cast<uint32_t>(L45_SLOT_CLOSED));
  StatsPublisher::release(a);
  ::unsetenv("L45_SHIM_RUNDIR");
  std::filesystem::remove_all(dir);
}

TEST(Stats, ForeignOrTruncatedFilesAreNamedProblems) {
  char tmpl[] = "/tmp/l45-shim-stats-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::ofstream(dir + "/1.stats") << "short";
  std::ofstream(dir + "/2.stats") << std::string(4096, 'x');
  StatsScan scan = read_stats_dir(dir);
  EXPECT_TRUE(scan.processes.empty());
  ASSERT_EQ(scan.problems.size(), 2u);
  EXPECT_NE(scan.problems[0].find("truncated"), std::string::npos) << scan.problems[0];
  EXPECT_NE(scan.problems[1].find("bad magic"), std::string::npos) << scan.problems[1];
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace l45::shim
