#include "l45/packet/packet.hpp"

#include <gtest/gtest.h>

#include <memory>
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

TEST(Packet, SlicesShareTheWholeAndOutliveIt) {
  auto b = std::make_shared<std::vector<std::byte>>(bytes(64, 0));
  std::weak_ptr<std::vector<std::byte>> alive = b;
  PacketMeta m;
  m.frame = 7;
  Packet s;
  {
    Packet whole = Packet::borrow(*b, b);
    b.reset();
    s = Packet::slice(whole, 10, 20, m);
    Packet t = Packet::slice(whole, 40, 24);
    EXPECT_EQ(s.data().data(), whole.data().data() + 10);
    EXPECT_EQ(t.data()[0], std::byte{40});
    EXPECT_EQ(s.meta().frame, 7u);
    EXPECT_EQ(s.meta().wire_len, 20u);  // at least the bytes it has
    EXPECT_TRUE(s.is_borrowed());
    EXPECT_FALSE(s.is_unique());
  }
  // The file's bytes live while a slice (or a Hold of it) does.
  Packet::Hold h = s.hold();
  EXPECT_FALSE(alive.expired());
  EXPECT_EQ(s.data()[0], std::byte{10});
  s.mutable_data()[0] = std::byte{0xee};  // copies: the file is never written
  EXPECT_FALSE(s.is_borrowed());
  EXPECT_FALSE(alive.expired());  // still held by h
  h = {};
  EXPECT_TRUE(alive.expired());
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

#include <random>

#include "l45/packet/checksum.hpp"

namespace l45 {
namespace {

// RFC 1071's reference: 16-bit big-endian words, carries folded at the end.
uint16_t reference_checksum(Bytes b, uint32_t start) {
  uint64_t s = start;
  for (size_t i = 0; i + 1 < b.size(); i += 2)
    s += load_be16(b.data() + i);
  if (b.size() % 2) s += uint32_t(load_u8(b.data() + b.size() - 1)) << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffff);
}

TEST(Checksum, EqualsTheRfc1071ReferenceForEveryLengthAndAlignment) {
  std::mt19937 rng(45);
  std::vector<std::byte> buf(2048 + 8);
  for (auto& b : buf)
    b = std::byte(rng());
  for (size_t len = 0; len <= 300; ++len)
    for (size_t align = 0; align < 8; ++align) {
      Bytes b(buf.data() + align, len);
      uint32_t start = rng() & 0x3ffff;
      ASSERT_EQ(checksum_finish(checksum_add(b, start)), reference_checksum(b, start))
          << "len " << len << " align " << align;
    }
  // All-ones data drives every carry path.
  std::vector<std::byte> ones(1500, std::byte{0xff});
  EXPECT_EQ(checksum_finish(checksum_add(ones)), reference_checksum(ones, 0));
}

TEST(Checksum, EmptySpanAddsNothing) {
  EXPECT_EQ(checksum_add(Bytes{}, 0x1234), 0x1234u);
  EXPECT_EQ(checksum_finish(checksum_add(Bytes{})), 0xffff);
}

TEST(Checksum, ChainedEvenChunksEqualOneSum) {
  std::vector<std::byte> buf(1000);
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = std::byte(i * 7 + 3);
  Bytes all(buf);
  uint32_t s = checksum_add(all.first(300));
  s = checksum_add(all.subspan(300, 402), s);
  s = checksum_add(all.subspan(702), s);
  EXPECT_EQ(checksum_finish(s), checksum_finish(checksum_add(all)));
}

}  // namespace
}  // namespace l45
