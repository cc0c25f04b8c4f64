#include "l45/tag/system.hpp"

#include <gtest/gtest.h>

namespace l45::tag {
namespace {

// A hybrid v1/v2 system (Debian 10-style systemd): v1 controllers under /sys/fs/cgroup/*, the v2
// hierarchy at /sys/fs/cgroup/unified.
constexpr const char* kHybrid =
    "22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "26 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 "
    "cgroup2 rw,nsdelegate\n"
    "28 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "31 22 0:28 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:14 - bpf bpf rw,mode=700\n";

TEST(Mountinfo, FindsTheUnifiedHierarchyOnAHybridSystem) {
  auto m = cgroup2_mount_in(kHybrid);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup/unified");
  EXPECT_TRUE(mounted_in(kHybrid, "/sys/fs/bpf", "bpf"));
  EXPECT_FALSE(mounted_in(kHybrid, "/sys/fs/cgroup", "cgroup2"));
}

TEST(Mountinfo, OptionalFieldsAndEscapedSpaces) {
  // Any number of optional fields before "-"; a space in a path is written \040.
  auto m = cgroup2_mount_in(
      "40 1 0:30 / /mnt/my\\040cg rw shared:3 master:1 unbindable - cgroup2 none rw\n");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/mnt/my cg");
}

TEST(Mountinfo, NoCgroup2AndGarbageGiveNothing) {
  EXPECT_FALSE(cgroup2_mount_in("").has_value());
  EXPECT_FALSE(cgroup2_mount_in("garbage\n- - -\n1 2 3\n").has_value());
  EXPECT_FALSE(cgroup2_mount_in("26 22 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n").has_value());
}

}  // namespace
}  // namespace l45::tag
