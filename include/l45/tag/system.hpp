// Where the kernel objects the tag pillar needs live: the cgroup v2 hierarchy (found from the
// mount table, since hybrid v1/v2 systems mount it elsewhere than /sys/fs/cgroup, and
// `ip netns exec` remounts /sys), and bpffs for pinned programs and maps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "l45/core/result.hpp"

namespace l45::tag {

// The first cgroup2 mount point in a /proc/self/mountinfo text (mount points unescaped:
// "\040" is a space), or nullopt.
std::optional<std::string> cgroup2_mount_in(std::string_view mountinfo);
// True when `mountinfo` has a mount of type `fstype` exactly at `path`.
bool mounted_in(std::string_view mountinfo, std::string_view path, std::string_view fstype);

// The cgroup v2 root of this mount namespace; when none is mounted (e.g. inside `ip netns
// exec`), mounts cgroup2 at `fallback_dir` and returns that.
Result<std::string> cgroup2_root(const std::string& fallback_dir);
// Mounts bpffs at `dir` unless one is there already.
Result<void> ensure_bpffs(const std::string& dir);
// The id of the cgroup at `path` (the inode number of its directory on cgroup2).
Result<uint64_t> cgroup_id(const std::string& path);
// mkdir -p.
Result<void> make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace l45::tag
