#include "testing.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace l45::testing {

std::filesystem::path source_dir() {
  const char* s = std::getenv("L45_SOURCE_DIR");
  return s ? std::filesystem::path(s) : std::filesystem::path(L45_DEFAULT_SOURCE_DIR);
}

std::filesystem::path binary_dir() {
  const char* s = std::getenv("L45_BINARY_DIR");
  return s ? std::filesystem::path(s) : std::filesystem::path(L45_DEFAULT_BINARY_DIR);
}

std::optional<std::filesystem::path> shared_pcaps_dir() {
  if (const char* e = std::getenv("L45_PCAPS")) {
    if (std::filesystem::is_directory(e)) return std::filesystem::path(e);
    return std::nullopt;
  }
  auto p = source_dir() / ".." / "shared" / "pcaps";
  if (std::filesystem::is_directory(p)) return std::filesystem::canonical(p);
  return std::nullopt;
}

int run(const std::string& cmd, std::string* out) {
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0)
    if (out) out->append(buf.data(), n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string netns_unavailable_reason() {
  if (geteuid() != 0) return "not running as root";
  static const std::string probe = [] {
    std::string name = "l45probe" + std::to_string(getpid());
    std::string out;
    if (run("ip netns add " + name, &out) != 0) return "cannot create a network namespace: " + out;
    run("ip netns del " + name);
    return std::string();
  }();
  return probe;
}

}  // namespace l45::testing
