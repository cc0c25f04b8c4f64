#include "l45/packet/packet.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace l45 {
namespace {

std::vector<std::byte> bytes(size_t n, uint8_t start = 0) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = std::byte(start + i);
  return v;
}

TEST(Packet, ResizeMovesTheWireLengthWithTheData) {
  auto b = bytes(100);
  PacketMeta m;
  m.wire_len = 100;
  Packet p = Packet::copy_of(b, m);
  p.resize(60);
  EXPECT_EQ(p.size(), 60u);
  EXPECT_EQ(p.meta().wire_len, 60u);
  p.resize(80);
  EXPECT_EQ(p.meta().wire_len, 80u);
  // A snap-cut packet stays cut by the same amount.
  m.wire_len = 1500;
  Packet cut = Packet::copy_of(b, m);
  cut.resize(40);
  EXPECT_EQ(cut.meta().wire_len, 1440u);
}

TEST(Packet, SharedBytesAreCopiedOnWriteAndTheOriginalIsUnchanged) {
  auto b = bytes(32);
  Packet a = Packet::copy_of(b);
  Packet c = a.share();
  EXPECT_FALSE(a.is_unique());
  c.mutable_data()[0] = std::byte{0xff};
  EXPECT_EQ(a.data()[0], std::byte{0});
  EXPECT_EQ(c.data()[0], std::byte{0xff});
  EXPECT_TRUE(c.is_unique());
}

TEST(Packet, BorrowedBytesAreReadInPlaceAndCopiedOnFirstWrite) {
  auto b = std::make_shared<std::vector<std::byte>>(bytes(16, 1));
  Packet p = Packet::borrow(*b, b);
  EXPECT_EQ(p.data().data(), b->data());
  EXPECT_FALSE(p.is_unique());
  p.mutable_data()[1] = std::byte{9};
  EXPECT_NE(p.data().data(), b->data());
  EXPECT_EQ((*b)[1], std::byte{2});
}

TEST(Packet, PushFrontUsesHeadroomAndPullFrontUndoesIt) {
  auto b = bytes(20);
  Packet p = Packet::copy_of(b);
  const std::byte* before = p.data().data();
  auto front = p.push_front(14);
  EXPECT_EQ(front.data() + 14, before);  // no copy: the headroom was used
  EXPECT_EQ(p.size(), 34u);
  EXPECT_EQ(p.meta().wire_len, 34u);
  p.pull_front(14);
  EXPECT_EQ(p.data().data(), before);
  EXPECT_EQ(p.meta().wire_len, 20u);
  // Beyond the headroom the bytes move, and stay intact.
  p.push_front(Packet::kDefaultHeadroom + 100);
  EXPECT_EQ(p.data()[Packet::kDefaultHeadroom + 100 + 5], std::byte{5});
}

TEST(Packet, MovedFromPacketIsEmpty) {
  auto b = bytes(8);
  Packet a = Packet::copy_of(b);
  Packet c = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_EQ(c.size(), 8u);
}

}  // namespace
}  // namespace l45
