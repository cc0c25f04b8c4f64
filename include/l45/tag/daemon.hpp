// The tag daemon (`l45 tagd`) and its client. The daemon loads and attaches the tag programs
// (TagPrograms), loads rules, writes log events to its log, and answers requests on a unix socket
// (SOCK_SEQPACKET, one JSON object per message, one request per connection) from root only
// (SO_PEERCRED). A malformed request gets {"ok":false,"error":...} and is counted; it never
// stops the daemon.
//
// Requests ("cmd"): ping, rules-load {text, name}, rules-show, stats, exec {pid, tags},
// exec-done {pid}, trust {uid, trusted}, stop {unload}, forward-prog (the answer carries the tc
// program for the `forward` focus).
//
// A second socket, open to every user, takes only signed-tag requests (l45/tag/sign.hpp): the
// socket to mark comes with the request (SCM_RIGHTS); a valid signature marks its tags signed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "l45/core/result.hpp"

namespace l45::tag {

constexpr const char* kDefaultSocket = "/run/l45/tagd.sock";
constexpr const char* kDefaultPinDir = "/sys/fs/bpf/l45";
constexpr const char* kDefaultStateDir = "/run/l45";
constexpr size_t kMaxRequest = 128 * 1024;  // under the default socket buffer (wmem_default)

struct DaemonConfig {
  std::string cgroup;  // empty: the cgroup v2 root from the mount table
  std::string pin_dir = kDefaultPinDir;
  std::string socket_path = kDefaultSocket;
  std::string state_dir = kDefaultStateDir;
  std::string rules_file;  // loaded at start when set
  std::string log_path;    // empty: stdout
  uint32_t log_per_sec = 1000;
  std::vector<uint32_t> trusted_uids{0};
  std::string trust_store = "/etc/l45/trust";      // app-<ID>.pub, root's
  std::string sign_socket = "/run/l45/sign.sock";  // any user; empty: no signing
  bool no_in_place = false;                        // ProgramsConfig::no_in_place
};

// Runs until SIGINT/SIGTERM or a stop request. Returns the exit code (2 with one line on
// stderr when it cannot start).
int run_daemon(const DaemonConfig& cfg);

// One request, one reply. Errors: cannot connect (no daemon), timeout, malformed reply.
Result<nlohmann::json> request(const std::string& socket_path, const nlohmann::json& req,
                               int timeout_ms = 5000);
// The same; a descriptor that comes with the answer goes to *fd (else -1).
Result<nlohmann::json> request_fd(const std::string& socket_path, const nlohmann::json& req,
                                  int* fd, int timeout_ms = 5000);

}  // namespace l45::tag
