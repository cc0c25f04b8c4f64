// Shim manifests: which modules a socket gets. One TOML file per module instance in the
// customization directory (default /etc/l45/modules.d):
//
//   name = "fec-video"
//   module = "fec"            # a built-in name or a path to a .so (see l45/shim_module.h)
//   order = 10                # lower runs first on egress (ingress runs the chain reversed)
//   [match]                   # every key optional; all given keys must match
//   program = "socat"         # executable name (basename of /proc/self/exe)
//   protocol = "udp"          # tcp | udp
//   remote = "198.51.100.0/24"  # remote address prefix (IPv4 or IPv6; one address = /32, /128)
//   ports = [5000]            # remote port on the client side, local port on the server side
//   side = "any"              # client | server | any
//   [params]                  # passed to the module as text, in key order
//   k = 10
//
// Unknown keys are refused (a misspelt match key must not widen a match). A bad manifest is
// skipped with file:line and the reason; the others still load. The directory and every file in
// it must be owned by root or by the invoking uid and writable by its owner only, else nothing
// loads (DirLoad::refusal says why).
//
// This header is used inside libl45shim.so: it depends on the standard library only.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace l45::shim {

enum class Side { Unknown, Client, Server };
enum class SideMatch { Any, Client, Server };

// An address prefix, IPv4 or IPv6. An IPv4 prefix also matches IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d), which is how dual-stack sockets see IPv4 peers.
struct Prefix {
  int family = AF_UNSPEC;
  uint8_t addr[16] = {};
  int len = 0;

  static std::optional<Prefix> parse(std::string_view text);
  bool contains(const sockaddr_storage& a) const;
};

struct Manifest {
  std::string file;  // where it came from, for messages
  std::string name;
  std::string module;
  int64_t order = 0;
  std::optional<std::string> program;
  int protocol = 0;  // 0 any, IPPROTO_TCP, IPPROTO_UDP
  std::optional<Prefix> remote;
  std::vector<uint16_t> ports;
  SideMatch side = SideMatch::Any;
  std::vector<std::pair<std::string, std::string>> params;
};

// Why a manifest or the directory was not used. line is 0 when no line applies.
struct Problem {
  std::string file;
  int line = 0;
  std::string reason;
  std::string to_string() const;  // "file:line: reason"
};

struct ParseResult {
  std::optional<Manifest> manifest;
  Problem problem;  // set when !manifest
};
ParseResult parse_manifest(std::string_view text, const std::string& file);

// A socket's context as far as the shim knows it (remote.ss_family AF_UNSPEC when unknown).
struct Context {
  std::string program;
  std::string program_path;
  uint32_t uid = 0;
  int protocol = 0;
  int family = 0;
  Side side = Side::Unknown;
  sockaddr_storage local{};
  sockaddr_storage remote{};
};

bool matches(const Manifest& m, const Context& c);
// The manifests that match `c`, in chain (egress) order: by `order`, then name, then file.
std::vector<const Manifest*> select_chain(const std::vector<Manifest>& all, const Context& c);

// Whether `path` (already stat'ed into `st`) may be trusted: owned by root or `uid`, not
// group- or world-writable. Returns the reason when not.
std::optional<std::string> insecure_reason(const std::string& path, const struct stat& st,
                                           uint32_t uid);

struct DirLoad {
  bool exists = false;
  std::optional<std::string> refusal;  // set: nothing loaded, and this says why
  std::vector<Manifest> manifests;     // sorted in chain order
  std::vector<Problem> skipped;        // bad manifests, each skipped
};
// Loads every *.toml file of `dir`, in name order.
DirLoad load_directory(const std::string& dir, uint32_t uid);

// Port of a sockaddr (host order), 0 when none.
uint16_t port_of(const sockaddr_storage& a);
// "198.51.100.1:80", "[fd00::1]:80", or "-" when unknown.
std::string format_endpoint(const sockaddr_storage& a);

}  // namespace l45::shim
