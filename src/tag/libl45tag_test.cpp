// The C ABI's encoding (l45/tag.h): what an application puts on the wire of setsockopt.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "l45/tag.h"

namespace {

TEST(TagAbi, LayoutIsTwentyFourBytes) {
  EXPECT_EQ(sizeof(l45_tag), 24u);
  EXPECT_EQ(offsetof(l45_tag, value), 8u);
  EXPECT_EQ(l45_tag_abi_version(), L45_TAG_ABI_VERSION);
}

TEST(TagAbi, NumberIsLittleEndianWithZeroTail) {
  l45_tag t;
  std::memset(&t, 0xaa, sizeof t);
  ASSERT_EQ(l45_tag_num(&t, 24, 0x0102030405060708ULL), 0);
  EXPECT_EQ(t.app, 24u);
  EXPECT_EQ(t.kind, L45_TAG_NUM);
  EXPECT_EQ(t.len, 8);
  EXPECT_EQ(t.flags, 0);
  const uint8_t want[16] = {8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(std::memcmp(t.value, want, 16), 0);
  char buf[64];
  int n = l45_tag_format(&t, buf, sizeof buf);
  EXPECT_STREQ(buf, "24:72623859790382856");
  EXPECT_EQ(n, 20);
  EXPECT_EQ(l45_tag_format(&t, buf, 4), 20);  // truncated, like snprintf
  EXPECT_STREQ(buf, "24:");
}

TEST(TagAbi, StringsArePrintableAndAtMostSixteenBytes) {
  l45_tag t;
  ASSERT_EQ(l45_tag_str(&t, 5, "tenant-a"), 0);
  EXPECT_EQ(t.kind, L45_TAG_STR);
  EXPECT_EQ(t.len, 8);
  EXPECT_EQ(t.value[8], 0);
  char buf[64];
  l45_tag_format(&t, buf, sizeof buf);
  EXPECT_STREQ(buf, "5:\"tenant-a\"");
  EXPECT_EQ(l45_tag_str(&t, 5, "0123456789abcdef"), 0);
  errno = 0;
  EXPECT_EQ(l45_tag_str(&t, 5, "0123456789abcdefg"), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(l45_tag_str(&t, 5, ""), -1);
  EXPECT_EQ(l45_tag_str(&t, 5, "a b"), -1);
  EXPECT_EQ(l45_tag_str(&t, 5, "tab\there"), -1);
  EXPECT_EQ(l45_tag_str(&t, 0, "x"), -1);
  EXPECT_EQ(l45_tag_num(&t, 0, 1), -1);
  EXPECT_EQ(l45_tag_num(nullptr, 1, 1), -1);
}

TEST(TagAbi, BadArgumentsFailWithEinvalBeforeTheSystemCall) {
  l45_tag t;
  l45_tag_num(&t, 1, 1);
  errno = 0;
  EXPECT_EQ(l45_tag_set(-1, &t, L45_TAG_MAX + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(l45_tag_add(-1, nullptr), -1);
  EXPECT_EQ(l45_tag_list(-1, nullptr, 3), -1);
  errno = 0;
  EXPECT_EQ(l45_tag_add(-1, &t), -1);  // reaches setsockopt: a bad descriptor
  EXPECT_EQ(errno, EBADF);
}

TEST(TagAbi, AUnixSocketIsNeverTagged) {
  // No cgroup program sees AF_UNIX sockets: the kernel's own answer comes back, no crash.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  l45_tag t;
  l45_tag_num(&t, 1, 1);
  EXPECT_EQ(l45_tag_add(fd, &t), -1);
  EXPECT_NE(errno, 0);
  ::close(fd);
}

}  // namespace
