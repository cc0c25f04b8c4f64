#include "l45/shim/fec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace l45::shim {
namespace {

std::vector<std::string> make_datagrams(int n, std::mt19937& rng) {
  std::vector<std::string> out;
  std::uniform_int_distribution<int> len(0, 1400), byte(0, 255);
  for (int i = 0; i < n; ++i) {
    std::string d(static_cast<size_t>(len(rng)), '\0');
    for (auto& c : d)
      c = static_cast<char>(byte(rng));
    // A recognisable prefix so every datagram is distinct.
    std::string id = std::to_string(i) + ":";
    d.replace(0, std::min(d.size(), id.size()), id.substr(0, std::min(d.size(), id.size())));
    out.push_back(d);
  }
  return out;
}

std::vector<std::string> encode(const std::vector<std::string>& in, FecParams p) {
  FecEncoder enc(p);
  std::vector<std::string> wire;
  auto emit = [&](std::string_view d) { wire.emplace_back(d); };
  for (const auto& d : in)
    enc.send(d, 0, emit);
  enc.flush(emit);
  return wire;
}

TEST(Fec, GroupsOfKDataFollowedByMParity) {
  std::mt19937 rng(1);
  auto in = make_datagrams(25, rng);
  auto wire = encode(in, {10, 3, 1'000'000'000});
  // 25 datagrams: two full groups and one of 5, each with 3 parity datagrams.
  ASSERT_EQ(wire.size(), 25u + 9u);
  EXPECT_EQ(wire[0].substr(0, 2), "LF");
  EXPECT_EQ(wire[0].substr(kFecHeader), in[0]);
  EXPECT_EQ(static_cast<uint8_t>(wire[10][3]), 1) << "parity after 10 data";
  EXPECT_EQ(static_cast<uint8_t>(wire.back()[4]), 5) << "the short group's parity says k=5";
}

TEST(Fec, AnyMLossesPerGroupAreRebuilt) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    auto in = make_datagrams(10, rng);
    auto wire = encode(in, {10, 3, 1'000'000'000});
    ASSERT_EQ(wire.size(), 13u);
    std::vector<int> idx(13);
    for (int i = 0; i < 13; ++i)
      idx[static_cast<size_t>(i)] = i;
    std::shuffle(idx.begin(), idx.end(), rng);
    std::set<int> lost(idx.begin(), idx.begin() + 3);
    FecDecoder dec;
    std::vector<std::string> got;
    for (int i = 0; i < 13; ++i)
      if (!lost.count(i))
        dec.receive(wire[static_cast<size_t>(i)], 0,
                    [&](std::string_view d) { got.emplace_back(d); });
    EXPECT_EQ(got, in) << "all of them, in order; trial " << trial;
    EXPECT_EQ(dec.no_header, 0u);
  }
}

TEST(Fec, MoreThanMLossesCountAsUnrecoverable) {
  std::mt19937 rng(3);
  auto in = make_datagrams(250, rng);  // 25 groups of 10
  auto wire = encode(in, {10, 3, 1'000'000'000});
  ASSERT_EQ(wire.size(), 250u + 75u);
  FecDecoder dec(20'000'000);
  std::vector<std::string> got;
  uint64_t now = 0;
  for (size_t i = 0; i < wire.size(); ++i, now += 1'000'000) {
    if (i < 4) continue;        // group 0 loses 4 of its data: one more than m
    if (i == 13 + 5) continue;  // group 1 loses one: rebuilt
    dec.receive(wire[i], now, [&](std::string_view d) { got.emplace_back(d); });
  }
  dec.tick(now + 1'000'000'000, [&](std::string_view d) { got.emplace_back(d); });
  EXPECT_EQ(got, std::vector<std::string>(in.begin() + 4, in.end())) << "all but 4, in order";
  EXPECT_EQ(dec.gaps_skipped, 1u);
  EXPECT_EQ(dec.deadline(), 0u);
  EXPECT_EQ(dec.recovered, 1u);
  EXPECT_EQ(dec.groups_recovered, 1u);
  EXPECT_EQ(dec.groups_unrecoverable, 1u) << "group 0, counted when it leaves the window";
}

TEST(Fec, DeliversInOrderAndWaitsAtMostMaxDelayForAGap) {
  std::mt19937 rng(11);
  auto in = make_datagrams(20, rng);
  auto wire = encode(in, {10, 3, 1'000'000'000});  // 2 groups: 0-9 data, 10-12 parity, ...
  FecDecoder dec(20'000'000);
  std::vector<std::string> got;
  auto take = [&](std::string_view d) { got.emplace_back(d); };
  // Reordered: data 1 before data 0 is held, then both come out in order.
  dec.receive(wire[1], 0, take);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(dec.deadline(), 20'000'000u);
  dec.receive(wire[0], 1'000'000, take);
  EXPECT_EQ(got, (std::vector<std::string>{in[0], in[1]}));
  // Data 2 lost (and no parity yet): 3 waits, then goes on after max_delay.
  dec.receive(wire[3], 2'000'000, take);
  dec.tick(21'000'000, take);
  EXPECT_EQ(got.size(), 2u) << "still within max_delay";
  dec.tick(22'000'000, take);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.back(), in[3]);
  EXPECT_EQ(dec.gaps_skipped, 1u);
  // The lost one arriving after its gap was given up is still delivered.
  dec.receive(wire[2], 23'000'000, take);
  EXPECT_EQ(got.back(), in[2]);
}

TEST(Fec, OldGroupClosesOnTheNextDatagramAfterMaxDelay) {
  FecEncoder enc({10, 2, 20'000'000});
  std::vector<std::string> wire;
  auto emit = [&](std::string_view d) { wire.emplace_back(d); };
  enc.send("a", 0, emit);
  enc.send("b", 5'000'000, emit);
  EXPECT_EQ(wire.size(), 2u);
  enc.send("c", 30'000'000, emit);  // the group is 30 ms old: its parity goes first
  ASSERT_EQ(wire.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(wire[2][3]), 1);
  EXPECT_EQ(static_cast<uint8_t>(wire[2][4]), 2);
  EXPECT_EQ(wire[4].substr(kFecHeader), "c");
  // The early group is rebuilt from its parity alone when both data datagrams are lost.
  FecDecoder dec;
  std::vector<std::string> got;
  dec.receive(wire[2], 0, [&](std::string_view d) { got.emplace_back(d); });
  dec.receive(wire[3], 0, [&](std::string_view d) { got.emplace_back(d); });
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b"}));
}

TEST(Fec, DatagramsWithoutHeaderPassAndGarbageNeverCrashes) {
  FecDecoder dec;
  std::vector<std::string> got;
  dec.receive("plain", 0, [&](std::string_view d) { got.emplace_back(d); });
  EXPECT_EQ(got, std::vector<std::string>{"plain"});
  EXPECT_EQ(dec.no_header, 1u);
  std::mt19937 rng(9);
  auto wire = encode(make_datagrams(30, rng), {5, 2, 1'000'000'000});
  for (int round = 0; round < 300; ++round) {
    std::string d = wire[static_cast<size_t>(rng() % wire.size())];
    if (!d.empty()) d[rng() % d.size()] = static_cast<char>(rng());
    if (round % 3 == 0) d.resize(rng() % (d.size() + 1));
    dec.receive(d, static_cast<uint64_t>(round) * 1'000'000, [](std::string_view) {});
  }
}

TEST(Fec, ParamsAreCheckedWithNamedErrors) {
  std::string why;
  EXPECT_TRUE(parse_fec_params({{"k", "10"}, {"m", "3"}, {"max_delay_ms", "20"}}, &why));
  EXPECT_FALSE(parse_fec_params({{"k", "0"}}, &why));
  EXPECT_NE(why.find("params.k"), std::string::npos);
  EXPECT_FALSE(parse_fec_params({{"m", "-1"}}, &why));
  EXPECT_NE(why.find("params.m"), std::string::npos);
  EXPECT_FALSE(parse_fec_params({{"colour", "1"}}, &why));
  EXPECT_NE(why.find("unknown parameter colour"), std::string::npos);
}

}  // namespace
}  // namespace l45::shim
