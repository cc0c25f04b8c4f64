#include "l45/tag/programs.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdarg>
#include <cstring>

#include "l45/core/log.hpp"
#include "tag.skel.h"

namespace l45::tag {

namespace {

// libbpf's messages go to our log at debug level (warnings at info): a failed load is reported
// once, by us, with what to do.
int libbpf_print(enum libbpf_print_level level, const char* fmt_, va_list ap) {
  if (level == LIBBPF_DEBUG && log::level() < log::Level::Debug) return 0;
  if (level != LIBBPF_DEBUG && log::level() < log::Level::Info) return 0;
  // Whole: a verifier log is one message of up to megabytes, its reason at the end.
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(nullptr, 0, fmt_, ap);
  std::string s(n > 0 ? n : 0, '\0');
  if (n > 0) vsnprintf(s.data(), s.size() + 1, fmt_, again);
  va_end(again);
  while (!s.empty() && s.back() == '\n')
    s.pop_back();
  log::write(log::Level::Debug, "libbpf: " + s);
  return 0;
}

Error bpf_error(int err, std::string what) {
  return Error(err < 0 ? -err : err, std::move(what));
}

bool exists(const std::string& p) {
  return ::access(p.c_str(), F_OK) == 0;
}

// A new rules generation: the sockets' cached matches (struct l45_sk_cache) made before are
// stale. Its own write, after the config's: a program that reads the new generation reads the
// config whole.
Result<void> next_generation(l45_tag_bpf* skel) {
  uint32_t key = 0;
  uint64_t gen = 0;
  if (int err =
          bpf_map__lookup_elem(skel->maps.l45_generation, &key, sizeof key, &gen, sizeof gen, 0))
    return bpf_error(err, "reading the rules generation");
  ++gen;
  if (int err =
          bpf_map__update_elem(skel->maps.l45_generation, &key, sizeof key, &gen, sizeof gen, 0))
    return bpf_error(err, "writing the rules generation");
  return {};
}

}  // namespace

struct TagPrograms::Impl {
  l45_tag_bpf* skel = nullptr;
  std::vector<bpf_link*> links;
  std::vector<std::string> link_pins;
  std::string pin_dir;
  ring_buffer* rb = nullptr;
  std::function<void(const l45_log_event&)> on_event;
  int ncpus = 1;

  ~Impl() {
    if (rb) ring_buffer__free(rb);
    for (auto* l : links)
      bpf_link__destroy(l);
    if (skel) l45_tag_bpf__destroy(skel);
  }
};

TagPrograms::~TagPrograms() = default;

Result<std::unique_ptr<TagPrograms>> TagPrograms::open(const ProgramsConfig& cfg) {
  libbpf_set_print(libbpf_print);
  std::unique_ptr<TagPrograms> self(new TagPrograms());
  self->impl_ = std::make_unique<Impl>();
  Impl& im = *self->impl_;
  im.pin_dir = cfg.pin_dir;
  im.ncpus = libbpf_num_possible_cpus();
  if (im.ncpus <= 0) return bpf_error(im.ncpus, "counting the possible CPUs");

  self->reused_ = exists(cfg.pin_dir + "/l45_tags");
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = im.pin_dir.c_str());
  // The packet programs that read the sockets' tags in place (Linux 6.17 or newer) first; where
  // the kernel refuses them, the ones that ask bpf_sk_storage_get() (src/bpf/tag.bpf.c).
  int load_err = 0;
  for (bool in_place : {true, false}) {
    if (in_place && cfg.no_in_place) continue;
    if (im.skel) l45_tag_bpf__destroy(im.skel);
    im.skel = l45_tag_bpf__open_opts(&opts);
    if (!im.skel) return Error::from_errno("opening the tag eBPF object");
    bpf_program__set_autoload(im.skel->progs.l45_egress, in_place);
    bpf_program__set_autoload(im.skel->progs.l45_ingress, in_place);
    bpf_program__set_autoload(im.skel->progs.l45_egress_old, !in_place);
    bpf_program__set_autoload(im.skel->progs.l45_ingress_old, !in_place);
    load_err = l45_tag_bpf__load(im.skel);
    if (!load_err) {
      self->in_place_ = in_place;
      break;
    }
    if (in_place)
      log::write(log::Level::Info,
                 "the kernel refused the packet programs that read the sockets' tags in place "
                 "(Linux 6.17 or newer; -vv shows why); loading the ones that look them up");
  }
  if (int err = load_err) {
    if (self->reused_)
      return bpf_error(err, fmt::format("loading the tag eBPF programs with the maps pinned under "
                                        "{} (left by another l45 version? 'l45 tag stop --unload' "
                                        "or remove that directory; -vv says more)",
                                        im.pin_dir));
    return bpf_error(err,
                     "loading the tag eBPF programs (needs root, a kernel with "
                     "CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF, 5.19 or newer; -vv shows the "
                     "verifier's log)");
  }

  int cgfd = ::open(cfg.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgfd < 0) return Error::from_errno(fmt::format("opening the cgroup {}", cfg.cgroup));
  struct P {
    bpf_program* prog;
    const char* name;
  };
  const P progs[] = {
      {im.skel->progs.l45_setsockopt, "setsockopt"},
      {im.skel->progs.l45_getsockopt, "getsockopt"},
      {im.skel->progs.l45_sock_create, "sock_create"},
      {im.skel->progs.l45_connect4, "connect4"},
      {im.skel->progs.l45_connect6, "connect6"},
      {self->in_place_ ? im.skel->progs.l45_egress : im.skel->progs.l45_egress_old, "egress"},
      {self->in_place_ ? im.skel->progs.l45_ingress : im.skel->progs.l45_ingress_old, "ingress"},
      {im.skel->progs.l45_sockops, "sockops"}};
  for (const auto& p : progs) {
    std::string pin = fmt::format("{}/link_{}", im.pin_dir, p.name);
    bpf_link* link = nullptr;
    if (exists(pin)) {
      // A daemon ran before: its link stays attached; swap our program into it.
      link = bpf_link__open(pin.c_str());
      if (!link) {
        ::close(cgfd);
        return Error::from_errno(fmt::format("opening the pinned link {}", pin));
      }
      if (int err = bpf_link__update_program(link, p.prog)) {
        bpf_link__destroy(link);
        ::close(cgfd);
        return bpf_error(err, fmt::format("replacing the program in {}", pin));
      }
    } else {
      link = bpf_program__attach_cgroup(p.prog, cgfd);
      if (!link) {
        int e = errno;
        ::close(cgfd);
        return Error(e, fmt::format("attaching the {} program to {}", p.name, cfg.cgroup));
      }
      if (int err = bpf_link__pin(link, pin.c_str())) {
        bpf_link__destroy(link);
        ::close(cgfd);
        return bpf_error(err, fmt::format("pinning {}", pin));
      }
    }
    im.links.push_back(link);
    im.link_pins.push_back(pin);
  }
  ::close(cgfd);

  if (!self->reused_) {
    uint32_t key = 0;
    l45_config c{};
    c.log_per_sec = 1000;
    if (int err = bpf_map__update_elem(im.skel->maps.l45_config, &key, sizeof key, &c, sizeof c, 0))
      return bpf_error(err, "initialising the config map");
  }
  // Also for reused pins: the programs just swapped in may cache differently.
  L45_TRY_VOID(next_generation(im.skel));
  im.rb = ring_buffer__new(
      bpf_map__fd(im.skel->maps.l45_log),
      [](void* ctx, void* data, size_t size) -> int {
        auto* impl = static_cast<Impl*>(ctx);
        if (size < sizeof(l45_log_event) || !impl->on_event) return 0;
        l45_log_event e;
        std::memcpy(&e, data, sizeof e);
        impl->on_event(e);
        return 0;
      },
      &im, nullptr);
  if (!im.rb) return Error::from_errno("opening the log ring buffer");
  return self;
}

Result<l45_config> TagPrograms::config() const {
  uint32_t key = 0;
  l45_config c{};
  if (int err =
          bpf_map__lookup_elem(impl_->skel->maps.l45_config, &key, sizeof key, &c, sizeof c, 0))
    return bpf_error(err, "reading the config map");
  return c;
}

Result<void> TagPrograms::set_log_rate(uint32_t per_sec) {
  L45_TRY(l45_config c, config());
  c.log_per_sec = per_sec;
  uint32_t key = 0;
  if (int err =
          bpf_map__update_elem(impl_->skel->maps.l45_config, &key, sizeof key, &c, sizeof c, 0))
    return bpf_error(err, "writing the config map");
  return {};
}

Result<uint32_t> TagPrograms::load_rules(const std::vector<Rule>& rules) {
  if (rules.size() > L45_RULES_MAX) return Error::invalid("too many rules");
  Impl& im = *impl_;
  L45_TRY(l45_config c, config());
  uint32_t staged = (c.active & 1) ^ 1;
  std::vector<l45_rule_counters> zero_counters(im.ncpus);
  struct StateValue {
    uint32_t lock;
    uint32_t log_count;
    uint64_t log_window_ns, tokens, last_ns;
  } zero_state{};
  for (uint32_t i = 0; i < L45_RULES_MAX; ++i) {
    uint32_t idx = staged * L45_RULES_MAX + i;
    l45_rule r{};
    if (i < rules.size()) r = rules[i].bpf;
    if (int err = bpf_map__update_elem(im.skel->maps.l45_rules, &idx, sizeof idx, &r, sizeof r, 0))
      return bpf_error(err, "writing the rules map");
    if (int err = bpf_map__update_elem(im.skel->maps.l45_rule_state, &idx, sizeof idx, &zero_state,
                                       sizeof zero_state, 0))
      return bpf_error(err, "clearing the rule state");
  }
  if (int err = bpf_map__update_elem(im.skel->maps.l45_rule_stats, &staged, sizeof staged,
                                     zero_counters.data(),
                                     zero_counters.size() * sizeof(l45_rule_counters), 0))
    return bpf_error(err, "clearing the rule counters");
  c.count[staged] = static_cast<uint32_t>(rules.size());
  c.untagged[staged] = 0;
  for (const auto& r : rules)
    if (!(r.bpf.cond & L45_C_TAG_CONDS)) c.untagged[staged] = 1;
  c.active = staged;  // one write of one map value: the flip
  uint32_t key = 0;
  if (int err = bpf_map__update_elem(im.skel->maps.l45_config, &key, sizeof key, &c, sizeof c, 0))
    return bpf_error(err, "activating the rules");
  L45_TRY_VOID(next_generation(im.skel));
  return staged;
}

Result<std::vector<RuleCounters>> TagPrograms::rule_counters(uint32_t set) const {
  Impl& im = *impl_;
  L45_TRY(l45_config c, config());
  std::vector<RuleCounters> out;
  std::vector<l45_rule_counters> per_cpu(im.ncpus);
  uint32_t idx = set & 1;
  if (int err = bpf_map__lookup_elem(im.skel->maps.l45_rule_stats, &idx, sizeof idx, per_cpu.data(),
                                     per_cpu.size() * sizeof(l45_rule_counters), 0))
    return bpf_error(err, "reading the rule counters");
  for (uint32_t i = 0; i < c.count[set & 1] && i < L45_RULES_MAX; ++i) {
    RuleCounters rc;
    rc.set = set & 1;
    rc.index = i;
    for (const auto& rcs : per_cpu) {
      rc.c.packets += rcs.rule[i].packets;
      rc.c.bytes += rcs.rule[i].bytes;
      rc.c.payload += rcs.rule[i].payload;
      rc.c.log_dropped += rcs.more[i].log_dropped;
      rc.c.throttled += rcs.more[i].throttled;
    }
    out.push_back(rc);
  }
  return out;
}

Result<std::vector<TagCounters>> TagPrograms::tag_counters() const {
  Impl& im = *impl_;
  std::vector<TagCounters> out;
  std::vector<l45_tag_counts> per_cpu(im.ncpus);
  l45_tag_key key{}, next{};
  const void* prev = nullptr;
  for (int guard = 0; guard < 100000; ++guard) {
    if (bpf_map__get_next_key(im.skel->maps.l45_tag_slots, prev, &next, sizeof next) != 0) break;
    key = next;
    prev = &key;
    uint32_t slot = 0;
    if (bpf_map__lookup_elem(im.skel->maps.l45_tag_slots, &key, sizeof key, &slot, sizeof slot,
                             0) != 0)
      continue;  // deleted meanwhile
    if (bpf_map__lookup_elem(im.skel->maps.l45_tag_counts, &slot, sizeof slot, per_cpu.data(),
                             per_cpu.size() * sizeof(l45_tag_counts), 0) != 0)
      continue;
    TagCounters tc;
    tc.tag = key.tag;
    for (const auto& pc : per_cpu) {
      for (int d = 0; d < 2; ++d) {
        tc.c.packets[d] += pc.dir[d].packets;
        tc.c.bytes[d] += pc.dir[d].bytes;
        tc.c.payload[d] += pc.dir[d].payload;
      }
    }
    out.push_back(tc);
  }
  return out;
}

Result<void> TagPrograms::trust_uid(uint32_t uid, bool trusted) {
  uint32_t one = 1;
  int err = trusted ? bpf_map__update_elem(impl_->skel->maps.l45_trusted_uids, &uid, sizeof uid,
                                           &one, sizeof one, 0)
                    : bpf_map__delete_elem(impl_->skel->maps.l45_trusted_uids, &uid, sizeof uid, 0);
  if (err && !(err == -ENOENT && !trusted))
    return bpf_error(err, fmt::format("updating the trusted users (uid {})", uid));
  return {};
}

Result<void> TagPrograms::set_exec_tags(uint64_t cgroup_id, const l45_sk_tags& tags) {
  if (int err = bpf_map__update_elem(impl_->skel->maps.l45_exec_tags, &cgroup_id, sizeof cgroup_id,
                                     &tags, sizeof tags, 0))
    return bpf_error(err, "writing the exec tags map");
  return {};
}

Result<void> TagPrograms::clear_exec_tags(uint64_t cgroup_id) {
  int err = bpf_map__delete_elem(impl_->skel->maps.l45_exec_tags, &cgroup_id, sizeof cgroup_id, 0);
  if (err && err != -ENOENT) return bpf_error(err, "clearing the exec tags map");
  return {};
}

Result<l45_sk_tags> TagPrograms::socket_tags(int sock_fd) const {
  l45_sk_tags t{};
  int err =
      bpf_map__lookup_elem(impl_->skel->maps.l45_tags, &sock_fd, sizeof sock_fd, &t, sizeof t, 0);
  if (err == -ENOENT) return l45_sk_tags{};
  if (err) return bpf_error(err, "reading the socket's tags");
  return t;
}

Result<int> TagPrograms::poll_log(int timeout_ms,
                                  const std::function<void(const l45_log_event&)>& fn) {
  impl_->on_event = fn;
  int n = ring_buffer__poll(impl_->rb, timeout_ms);
  impl_->on_event = nullptr;
  if (n < 0 && n != -EINTR) return bpf_error(n, "reading the log ring buffer");
  return n < 0 ? 0 : n;
}

int TagPrograms::log_fd() const {
  return ring_buffer__epoll_fd(impl_->rb);
}

int TagPrograms::forward_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.l45_forward);
}

Result<void> TagPrograms::unpin() {
  Impl& im = *impl_;
  for (const auto& p : im.link_pins)
    ::unlink(p.c_str());
  if (int err = bpf_object__unpin_maps(im.skel->obj, nullptr))
    return bpf_error(err, fmt::format("unpinning the maps under {}", im.pin_dir));
  ::rmdir(im.pin_dir.c_str());  // when empty: nothing of ours is left there
  return {};
}

}  // namespace l45::tag
