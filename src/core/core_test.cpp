#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "l45/core/config_lines.hpp"
#include "l45/core/counters.hpp"
#include "l45/core/drop_reason.hpp"
#include "l45/core/huge_alloc.hpp"
#include "l45/core/result.hpp"
#include "l45/core/time.hpp"

namespace l45 {
namespace {

// The mapping a large array gets: 2 MiB aligned, asked for huge pages (whether the kernel
// backs it with them depends on THP and free memory, so that is not asserted: the madvise
// flag is), usable end to end, and unmapped when freed. A small array (operator new) works.
TEST(HugeAlloc, LargeArraysAreAdvisedHugePageMappingsUnmappedWhenFreed) {
  // Whether a mapping starts at `at` in /proc/self/smaps, and whether its flags have "hg"
  // (MADV_HUGEPAGE).
  auto mapping_at = [](uintptr_t at) {
    std::pair<bool, bool> r{false, false};
    std::ifstream maps("/proc/self/smaps");
    for (std::string line; std::getline(maps, line);) {
      if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
          line.find('-') != std::string::npos) {
        r.first = std::stoull(line.substr(0, line.find('-')), nullptr, 16) == at;
      } else if (r.first && line.rfind("VmFlags:", 0) == 0) {
        r.second = line.find(" hg") != std::string::npos;
        break;
      }
    }
    return r;
  };
  std::vector<uint64_t, HugeAlloc<uint64_t>> big(3 << 17);  // 3 MiB: two huge pages
  const auto at = reinterpret_cast<uintptr_t>(big.data());
  EXPECT_EQ(at % detail::kHugePage, 0u);
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = i;
  big.back() = 9;
  EXPECT_EQ(big[4096], 4096u);
  EXPECT_EQ(big.back(), 9u);
  const auto [found, advised] = mapping_at(at);
  EXPECT_TRUE(found) << "no mapping starts at the array";
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled"))
    EXPECT_TRUE(advised) << "the mapping is not MADV_HUGEPAGE";
  else
    std::printf("HugeAlloc: this kernel has no transparent huge pages; madvise not checked\n");
  big.clear();
  big.shrink_to_fit();
  EXPECT_FALSE(mapping_at(at).first) << "the mapping outlived the array";
  std::vector<uint64_t, HugeAlloc<uint64_t>> small(100);
  small[99] = 7;
  EXPECT_EQ(small[99], 7u);
}

TEST(DropReason, NamesRoundTripAndNumbersAreStable) {
  EXPECT_EQ(drop_reason_name(DropReason::Ipv4BadIhl), "ipv4_bad_ihl");
  EXPECT_EQ(static_cast<int>(DropReason::Ipv4BadIhl), 14);
  EXPECT_EQ(drop_reason_from_name("tcp_bad_data_offset"), DropReason::TcpBadDataOffset);
  EXPECT_FALSE(drop_reason_from_name("no_such_reason").has_value());
  // Numbers may have gaps (blocks are reserved per layer), so walk the table, not 0..count.
#define L45_DR_ROUND_TRIP(id, num, name, desc) \
  EXPECT_EQ(drop_reason_from_name(drop_reason_name(DropReason::id)), DropReason::id) << num;
  L45_DROP_REASONS(L45_DR_ROUND_TRIP)
#undef L45_DR_ROUND_TRIP
}

TEST(DropCounters, CountsEachReasonAndTotalsAllButNone) {
  DropCounters c;
  c.add(DropReason::Truncated);
  c.add(DropReason::Truncated, 2);
  c.add(DropReason::None, 5);
  EXPECT_EQ(c.get(DropReason::Truncated), 3u);
  EXPECT_EQ(c.total(), 3u);
  int seen = 0;
  c.for_each_nonzero([&](DropReason r, uint64_t n) {
    EXPECT_EQ(r, DropReason::Truncated);
    EXPECT_EQ(n, 3u);
    ++seen;
  });
  EXPECT_EQ(seen, 1);
}

Result<int> half(int x) {
  if (x % 2) return Error::invalid("odd");
  return x / 2;
}
Result<int> quarter(int x) {
  L45_TRY(int h, half(x));
  return half(h);
}

TEST(Result, TryPropagatesTheFirstError) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().context(), "odd");
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_EQ(r.error().message(), "odd");  // no ": Invalid argument" on a self-explained error
  EXPECT_EQ(Error(ENOENT, "open x").message(), "open x: No such file or directory");
}

TEST(PacketClock, NeverGoesBackwards) {
  PacketClock c;
  c.advance(Timestamp{100});
  c.advance(Timestamp{50});
  EXPECT_EQ(c.now().ns, 100);
  c.advance(Timestamp{200});
  EXPECT_EQ(c.now().ns, 200);
}

TEST(Timestamp, SplitsNegativeTimesIntoSecondsAndPositiveNanos) {
  Timestamp t{-1500000000};
  EXPECT_EQ(t.sec(), -2);
  EXPECT_EQ(t.nsec_part(), 500000000);
}

TEST(CounterSet, ReferencesSurviveGrowth) {
  CounterSet s;
  uint64_t& a = s.add("a");
  for (int i = 0; i < 100; ++i)
    s.add("x" + std::to_string(i));
  ++a;
  EXPECT_EQ(*s.find("a"), 1u);
}

}  // namespace
}  // namespace l45

namespace l45 {
namespace {

TEST(ConfigLines, FieldsOfEachLineWithTheirNumbersCommentsAndBlanksGone) {
  const auto lines = config_lines("# head\r\n\n a  b\tc # tail\r\nd\n   # only\nlast");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].number, 3u);
  EXPECT_EQ(lines[0].fields, (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(lines[1].number, 4u);
  EXPECT_EQ(lines[1].fields, (std::vector<std::string_view>{"d"}));
  EXPECT_EQ(lines[2].number, 6u);
  EXPECT_EQ(lines[2].fields, (std::vector<std::string_view>{"last"}));
  EXPECT_EQ(config_error("f.txt", 4, "bad").message(), "f.txt:4: bad");
  EXPECT_TRUE(config_lines("").empty());
}

}  // namespace
}  // namespace l45
