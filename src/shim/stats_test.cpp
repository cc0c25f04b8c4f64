#include "l45/shim/stats.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
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

// A fork-per-connection server: the parent claims a slot for an accepted socket, forks, and
// closes its copy; the child goes on using the socket. The child's counts must land in a file
// of its own, at the same slot, and the parent's file must keep only the parent's counts.
TEST(Stats, ForkedChildCountsInItsOwnFile) {
  char tmpl[] = "/tmp/l45-shim-stats-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  int pids[2];
  ASSERT_EQ(::pipe(pids), 0);
  // Everything runs in a child of the test process, whose mapping may hold other tests' state.
  pid_t server = ::fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    StatsPublisher::set_rundir(dir);
    std::string err;
    l45_shim_stats_slot* accepted = StatsPublisher::claim(&err);
    if (!accepted) ::_exit(10);
    std::snprintf(accepted->chain, sizeof accepted->chain, "watch");
    accepted->bytes_in = 100;  // the parent read the request
    pid_t worker = ::fork();
    if (worker < 0) ::_exit(11);
    if (worker == 0) {
      __atomic_fetch_add(&accepted->bytes_out, 7, __ATOMIC_RELAXED);  // the child answers
      l45_shim_stats_slot* fresh = StatsPublisher::claim(&err);       // and opens a socket
      if (!fresh || fresh == accepted) ::_exit(12);
      fresh->bytes_out = 5;
      ::_exit(0);
    }
    StatsPublisher::release(accepted);  // the parent closes its copy
    int st = 0;
    ::waitpid(worker, &st, 0);
    if (::write(pids[1], &worker, sizeof worker) != sizeof worker) ::_exit(13);
    ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st));
  }
  ::close(pids[1]);
  int st = 0;
  ASSERT_EQ(::waitpid(server, &st, 0), server);
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  pid_t worker = 0;
  ASSERT_EQ(::read(pids[0], &worker, sizeof worker), static_cast<ssize_t>(sizeof worker));
  ::close(pids[0]);

  StatsScan scan = read_stats_dir(dir);
  EXPECT_TRUE(scan.problems.empty());
  ASSERT_EQ(scan.processes.size(), 2u);
  const ProcessStats* parent = nullptr;
  const ProcessStats* child = nullptr;
  for (const auto& p : scan.processes)
    (p.header.pid == server ? parent : p.header.pid == worker ? child : parent) = &p;
  ASSERT_NE(parent, nullptr);
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(parent->slots.size(), 1u);
  EXPECT_EQ(parent->slots[0].state, static_cast<uint32_t>(L45_SLOT_CLOSED));
  EXPECT_EQ(parent->slots[0].bytes_in, 100u);
  EXPECT_EQ(parent->slots[0].bytes_out, 0u) << "the child counted into its parent's file";
  ASSERT_EQ(child->slots.size(), 2u);
  EXPECT_EQ(child->slots[0].state, static_cast<uint32_t>(L45_SLOT_OPEN));
  EXPECT_STREQ(child->slots[0].chain, "watch");
  EXPECT_EQ(child->slots[0].bytes_in, 0u) << "inherited sockets count from zero";
  EXPECT_EQ(child->slots[0].bytes_out, 7u);
  EXPECT_EQ(child->slots[1].bytes_out, 5u);
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
