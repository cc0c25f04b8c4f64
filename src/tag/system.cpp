#include "l45/tag/system.hpp"

#include <fmt/format.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

namespace l45::tag {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescape(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      o += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      o += s[i];
    }
  }
  return o;
}

struct Mount {
  std::string point;
  std::string fstype;
};

// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
std::vector<Mount> parse(std::string_view text) {
  std::vector<Mount> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == text.npos ? text.npos : nl - pos);
    pos = nl == text.npos ? text.size() : nl + 1;
    std::vector<std::string_view> f;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ')
        ++i;
      size_t s = i;
      while (i < line.size() && line[i] != ' ')
        ++i;
      if (i > s) f.push_back(line.substr(s, i - s));
    }
    size_t dash = 0;
    for (size_t k = 6; k < f.size(); ++k) {
      if (f[k] == "-") {
        dash = k;
        break;
      }
    }
    if (f.size() < 5 || dash == 0 || dash + 1 >= f.size()) continue;
    out.push_back({unescape(f[4]), std::string(f[dash + 1])});
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<std::string> cgroup2_mount_in(std::string_view mountinfo) {
  for (const auto& m : parse(mountinfo))
    if (m.fstype == "cgroup2") return m.point;
  return std::nullopt;
}

bool mounted_in(std::string_view mountinfo, std::string_view path, std::string_view fstype) {
  for (const auto& m : parse(mountinfo))
    if (m.point == path && m.fstype == fstype) return true;
  return false;
}

Result<void> make_dirs(const std::string& path, unsigned mode) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string p = path.substr(0, i);
    if (::mkdir(p.c_str(), mode) < 0 && errno != EEXIST)
      return Error::from_errno(fmt::format("mkdir {}", p));
  }
  return {};
}

Result<std::string> cgroup2_root(const std::string& fallback_dir) {
  if (auto m = cgroup2_mount_in(read_file("/proc/self/mountinfo"))) return *m;
  L45_TRY_VOID(make_dirs(fallback_dir));
  if (::mount("cgroup2", fallback_dir.c_str(), "cgroup2", 0, nullptr) < 0)
    return Error::from_errno(
        fmt::format("no cgroup2 in /proc/self/mountinfo, and mounting one at {}", fallback_dir));
  return fallback_dir;
}

Result<void> ensure_bpffs(const std::string& dir) {
  if (mounted_in(read_file("/proc/self/mountinfo"), dir, "bpf")) return {};
  L45_TRY_VOID(make_dirs(dir));
  if (::mount("bpf", dir.c_str(), "bpf", 0, nullptr) < 0)
    return Error::from_errno(fmt::format("mount bpffs at {}", dir));
  return {};
}

Result<uint64_t> cgroup_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) return Error::from_errno(fmt::format("stat {}", path));
  return static_cast<uint64_t>(st.st_ino);
}

}  // namespace l45::tag
