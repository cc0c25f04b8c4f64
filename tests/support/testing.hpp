// Helpers shared by l45's tests: where the shared captures are, whether this process may
// use root-only kernel features, and a one-line skip that says why.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

namespace l45::testing {

// ../shared/pcaps next to the repository (or $L45_PCAPS), if it exists.
std::optional<std::filesystem::path> shared_pcaps_dir();
// The repository root ($L45_SOURCE_DIR, else the one this build was configured from).
std::filesystem::path source_dir();
// The build directory ($L45_BINARY_DIR, else this build's).
std::filesystem::path binary_dir();
// Empty when the process has CAP_NET_ADMIN and can create network namespaces; otherwise
// the reason it cannot.
std::string netns_unavailable_reason();
// Runs a shell command, returns its exit status; output goes to `out` when given.
int run(const std::string& cmd, std::string* out = nullptr);

}  // namespace l45::testing

// Skips the current test with one clear line when network namespaces are unavailable.
#define L45_REQUIRE_NETNS()                                                      \
  do {                                                                           \
    auto l45_reason = ::l45::testing::netns_unavailable_reason();                \
    if (!l45_reason.empty()) GTEST_SKIP() << "needs root netns: " << l45_reason; \
  } while (0)
