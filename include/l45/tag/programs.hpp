// TagPrograms: the tag pillar's eBPF programs (src/bpf/tag.bpf.c) loaded, attached to a cgroup
// v2 and pinned under a bpffs directory, so they outlive the daemon that loaded them: a daemon
// that starts again reuses the pinned maps (the sockets keep their tags) and swaps its new
// programs into the pinned links. unpin() removes the pins: once the last file descriptor
// closes, the programs are detached and the maps freed.
//
//   auto p = TagPrograms::open({.cgroup = "/sys/fs/cgroup", .pin_dir = "/sys/fs/bpf/l45"});
//   p->load_rules(parse_rules(text));      // staged set, then one flip: atomic
//   p->poll_log(100, [](const l45_log_event& e) { ... });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/tag/bpf_abi.h"
#include "l45/tag/rules.hpp"

namespace l45::tag {

struct ProgramsConfig {
  std::string cgroup;   // the cgroup v2 directory to attach to
  std::string pin_dir;  // on bpffs
  // Load the packet programs that look each socket's tags up (bpf_sk_storage_get()), as on
  // kernels before 6.17, even where the ones that read them in place would load.
  bool no_in_place = false;
};

struct RuleCounters {
  uint32_t set = 0, index = 0;
  l45_counter c{};
};
struct TagCounters {
  l45_tag tag{};
  l45_tag_counter c{};
};

class TagPrograms {
 public:
  static Result<std::unique_ptr<TagPrograms>> open(const ProgramsConfig& cfg);
  ~TagPrograms();
  TagPrograms(const TagPrograms&) = delete;
  TagPrograms& operator=(const TagPrograms&) = delete;

  // True when open() found pinned maps and links from an earlier run.
  bool reused() const { return reused_; }
  // Whether the packet programs read the sockets' tags in place (l45_egress, l45_ingress) or
  // look them up (l45_egress_old, l45_ingress_old).
  bool in_place() const { return in_place_; }

  // Writes the staged set (its counters and state zeroed), then makes it the active one.
  // Returns the set index now active.
  Result<uint32_t> load_rules(const std::vector<Rule>& rules);
  Result<l45_config> config() const;
  Result<void> set_log_rate(uint32_t per_sec);

  Result<std::vector<RuleCounters>> rule_counters(uint32_t set) const;
  Result<std::vector<TagCounters>> tag_counters() const;

  Result<void> trust_uid(uint32_t uid, bool trusted);
  Result<void> set_exec_tags(uint64_t cgroup_id, const l45_sk_tags& tags);
  Result<void> clear_exec_tags(uint64_t cgroup_id);

  // A socket's tags, by a descriptor of it (socket-local storage is keyed by the socket).
  Result<l45_sk_tags> socket_tags(int sock_fd) const;

  // Waits up to timeout_ms for log events and calls `fn` for each. Returns how many.
  Result<int> poll_log(int timeout_ms, const std::function<void(const l45_log_event&)>& fn);
  int log_fd() const;
  // The tc program for the `forward` focus; `l45 tag forward --iface` attaches it.
  int forward_prog_fd() const;

  // Removes every pin (links and maps) this object made or reused.
  Result<void> unpin();

 private:
  TagPrograms() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool reused_ = false;
  bool in_place_ = false;
};

}  // namespace l45::tag
