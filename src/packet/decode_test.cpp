#include "l45/packet/decode.hpp"

#include <gtest/gtest.h>

namespace l45 {
namespace {

TEST(PacketView, EmptyEthernetFrameIsEthTruncated) {
  PacketView v = PacketView::decode(LinkType::Ethernet, {}, 0);
  EXPECT_EQ(v.error(), DropReason::EthTruncated);
}

}  // namespace
}  // namespace l45
