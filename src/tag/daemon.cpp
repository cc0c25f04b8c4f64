#include "l45/tag/daemon.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "l45/core/log.hpp"
#include "l45/tag/programs.hpp"
#include "l45/tag/rules.hpp"
#include "l45/tag/sign.hpp"
#include "l45/tag/system.hpp"

namespace l45::tag {

using json = nlohmann::json;

namespace {

std::string read_file(const std::string& path, bool* ok = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (ok) *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string addr_text(uint8_t family, const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
  return family == 6 ? fmt::format("[{}]", buf) : std::string(buf);
}

json error_reply(std::string msg) {
  return {{"ok", false}, {"error", std::move(msg)}};
}

class Daemon {
 public:
  Daemon(const DaemonConfig& cfg, std::unique_ptr<TagPrograms> progs, std::string cgroup, FILE* log)
      : cfg_(cfg), progs_(std::move(progs)), cgroup_(std::move(cgroup)), log_(log) {}

  int run(int listen_fd, int sig_fd, int sign_fd);
  Result<void> load_rules_text(const std::string& text, const std::string& name, json* reply);

 private:
  json handle(const json& req, const ucred& peer, int* send_fd);
  json stats();
  json exec(const json& req, const ucred& peer);
  json exec_done(const json& req);
  void serve_one(int listen_fd);
  void serve_sign(int sign_fd);
  json sign(const json& req, int sock_fd);
  void on_log(const l45_log_event& e);
  void collect_exec_cgroups();

  const DaemonConfig& cfg_;
  std::unique_ptr<TagPrograms> progs_;
  std::string cgroup_;
  FILE* log_;
  std::vector<Rule> sets_[2];  // the rules of each set, for log prefixes and stats
  bool stop_ = false;
  bool unload_ = false;
  uint64_t requests_ = 0, refused_ = 0, malformed_ = 0, log_events_ = 0;
  uint64_t signed_ = 0, sign_refused_ = 0;
  std::map<int, std::string> exec_cgroups_;  // pid -> cgroup dir
};

void Daemon::on_log(const l45_log_event& e) {
  ++log_events_;
  const auto& rules = sets_[e.set & 1];
  std::string prefix = e.rule < rules.size() && !rules[e.rule].log_prefix.empty()
                           ? rules[e.rule].log_prefix
                           : fmt::format("l45-tag-rule-{}", e.rule + 1);
  std::string proto = e.proto == IPPROTO_TCP   ? "tcp"
                      : e.proto == IPPROTO_UDP ? "udp"
                                               : fmt::format("proto-{}", e.proto);
  std::string tag = e.tag.app ? format_tag(e.tag) : "-";
  std::fprintf(log_, "%s %s tag %s cookie %llu %s %s:%u > %s:%u len %u\n", prefix.c_str(),
               std::string(focus_name(e.focus)).c_str(), tag.c_str(),
               static_cast<unsigned long long>(e.cookie), proto.c_str(),
               addr_text(e.family, e.src).c_str(), e.sport, addr_text(e.family, e.dst).c_str(),
               e.dport, e.len);
}

Result<void> Daemon::load_rules_text(const std::string& text, const std::string& name,
                                     json* reply) {
  RuleSet set = parse_rules(text);
  for (const auto& r : set.rules) {
    // Parsed, but this version has no program for them: refuse rather than ignore.
    if (r.bpf.focus == L45_FOCUS_FORWARD &&
        r.bpf.cond & (L45_C_UID | L45_C_TRUSTED | L45_C_UNTRUSTED | L45_C_SIGNED))
      set.errors.push_back({r.line,
                            "a forwarded packet has no owner: uid, trusted, untrusted and signed "
                            "do not apply to focus 'forward'"});
    else if (r.bpf.action == L45_ACT_EXPORT && r.bpf.focus != L45_FOCUS_OUT)
      set.errors.push_back({r.line, "'export' is for focus 'out'"});
    else if (r.bpf.action == L45_ACT_EXPORT && r.bpf.cond & L45_C_SPORT)
      set.errors.push_back({r.line, "'export' is decided at connect(): no sport condition"});
  }
  if (!set.errors.empty()) {
    std::sort(set.errors.begin(), set.errors.end(),
              [](const RuleError& a, const RuleError& b) { return a.line < b.line; });
    json errs = json::array();
    for (const auto& e : set.errors)
      errs.push_back({{"line", e.line}, {"message", e.message}});
    *reply = {{"ok", false},
              {"error", fmt::format("{}: {} error(s), nothing loaded", name, set.errors.size())},
              {"errors", errs}};
    return Error::invalid(fmt::format("{}: {}", name, format_errors(set.errors)));
  }
  L45_TRY(uint32_t active, progs_->load_rules(set.rules));
  sets_[active] = set.rules;
  // Kept so a daemon started again can name the rules of the pinned, still active set.
  std::ofstream(cfg_.state_dir + "/rules.active", std::ios::trunc) << text;
  *reply = {{"ok", true}, {"rules", set.rules.size()}, {"set", active}};
  return {};
}

json Daemon::stats() {
  json out;
  auto cfg = progs_->config();
  if (!cfg.ok()) return error_reply(cfg.error().message());
  uint32_t active = cfg->active & 1;
  auto rc = progs_->rule_counters(active);
  if (!rc.ok()) return error_reply(rc.error().message());
  json rules = json::array();
  for (const auto& r : *rc) {
    const Rule* rule = r.index < sets_[active].size() ? &sets_[active][r.index] : nullptr;
    rules.push_back({{"rule", r.index + 1},
                     {"line", rule ? rule->line : 0},
                     {"text", rule ? rule->text : ""},
                     {"packets", r.c.packets},
                     {"bytes", r.c.bytes},
                     {"payload", r.c.payload},
                     {"log_dropped", r.c.log_dropped},
                     {"throttled", r.c.throttled}});
  }
  auto tc = progs_->tag_counters();
  if (!tc.ok()) return error_reply(tc.error().message());
  json tags = json::array();
  for (const auto& t : *tc) {
    tags.push_back({{"tag", format_tag(t.tag)},
                    {"app", t.tag.app},
                    {"out_packets", t.c.packets[0]},
                    {"out_bytes", t.c.bytes[0]},
                    {"out_payload", t.c.payload[0]},
                    {"in_packets", t.c.packets[1]},
                    {"in_bytes", t.c.bytes[1]},
                    {"in_payload", t.c.payload[1]}});
  }
  out = {{"ok", true},
         {"rules", rules},
         {"tags", tags},
         {"daemon",
          {{"requests", requests_},
           {"refused", refused_},
           {"malformed", malformed_},
           {"log_events", log_events_},
           {"signed", signed_},
           {"sign_refused", sign_refused_},
           {"log_per_sec", cfg->log_per_sec}}}};
  return out;
}

// Moves `pid` (a child of the peer, waiting to exec) into a new cgroup whose sockets get `tags`.
json Daemon::exec(const json& req, const ucred& peer) {
  if (!req.contains("pid") || !req["pid"].is_number_integer() || !req.contains("tags") ||
      !req["tags"].is_array())
    return error_reply("exec: needs pid (number) and tags (array)");
  int pid = req["pid"].get<int>();
  // Only the requester's own child: a request never moves an unrelated process.
  std::string status = read_file(fmt::format("/proc/{}/status", pid));
  auto pp = status.find("\nPPid:");
  if (pid <= 0 || pp == std::string::npos ||
      std::atoi(status.c_str() + pp + 6) != static_cast<int>(peer.pid))
    return error_reply(fmt::format("exec: process {} is not a child of the requester", pid));
  l45_sk_tags t{};
  for (const auto& j : req["tags"]) {
    if (t.count >= L45_TAG_MAX) return error_reply("exec: more than 8 tags");
    if (!j.is_object() || !j.contains("app") || !j["app"].is_number_unsigned() ||
        !j.contains("value") || !j["value"].is_string())
      return error_reply("exec: a tag is {\"app\": N, \"value\": \"V\"}");
    uint64_t app = j["app"].get<uint64_t>();
    if (app == 0 || app > UINT32_MAX) return error_reply("exec: application id out of range");
    l45_tag tag{};
    tag.app = static_cast<uint32_t>(app);
    std::string why;
    if (!parse_tag_value(j["value"].get<std::string>(), tag, &why))
      return error_reply("exec: " + why);
    tag.flags = L45_TAG_F_TRUSTED | L45_TAG_F_EXEC;  // root asked for them
    t.tags[t.count++] = tag;
  }
  t.uid = peer.uid;
  std::string dir = fmt::format("{}/l45-exec-{}", cgroup_, pid);
  if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
    return error_reply(fmt::format("exec: mkdir {}: {}", dir, std::strerror(errno)));
  auto id = cgroup_id(dir);
  if (!id.ok()) return error_reply(id.error().message());
  if (auto r = progs_->set_exec_tags(*id, t); !r.ok()) return error_reply(r.error().message());
  std::ofstream procs(dir + "/cgroup.procs");
  procs << pid << std::flush;
  if (!procs) {
    (void)progs_->clear_exec_tags(*id);
    ::rmdir(dir.c_str());
    return error_reply(fmt::format("exec: cannot move {} into {}", pid, dir));
  }
  exec_cgroups_[pid] = dir;
  return {{"ok", true}, {"cgroup_id", *id}};
}

json Daemon::exec_done(const json& req) {
  if (!req.contains("pid") || !req["pid"].is_number_integer())
    return error_reply("exec-done: needs pid");
  collect_exec_cgroups();
  return {{"ok", true}};
}

// Removes the exec cgroups that are empty (their programs ended).
void Daemon::collect_exec_cgroups() {
  for (auto it = exec_cgroups_.begin(); it != exec_cgroups_.end();) {
    auto id = cgroup_id(it->second);
    if (::rmdir(it->second.c_str()) == 0 || errno == ENOENT) {
      if (id.ok()) (void)progs_->clear_exec_tags(*id);
      it = exec_cgroups_.erase(it);
    } else {
      ++it;
    }
  }
}

json Daemon::handle(const json& req, const ucred& peer, int* send_fd) {
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
    ++malformed_;
    return error_reply("bad request: a JSON object with \"cmd\" is expected");
  }
  std::string cmd = req["cmd"].get<std::string>();
  if (cmd == "ping") {
    auto c = progs_->config();
    return {{"ok", true},
            {"pid", ::getpid()},
            {"cgroup", cgroup_},
            {"pin_dir", cfg_.pin_dir},
            {"tags_in_place", progs_->in_place()},
            {"rules", c.ok() ? c->count[c->active & 1] : 0}};
  }
  if (cmd == "rules-load") {
    if (!req.contains("text") || !req["text"].is_string()) {
      ++malformed_;
      return error_reply("rules-load: needs text");
    }
    std::string name = req.contains("name") && req["name"].is_string()
                           ? req["name"].get<std::string>()
                           : std::string("rules");
    json reply;
    auto r = load_rules_text(req["text"].get<std::string>(), name, &reply);
    if (!r.ok() && reply.is_null()) return error_reply(r.error().message());
    if (r.ok()) log::info("tagd: loaded {} rule(s) from {}", reply["rules"].get<size_t>(), name);
    return reply;
  }
  if (cmd == "rules-show") {
    auto c = progs_->config();
    json rules = json::array();
    if (c.ok())
      for (const auto& r : sets_[c->active & 1])
        rules.push_back({{"line", r.line}, {"text", r.text}});
    return {{"ok", true}, {"rules", rules}};
  }
  if (cmd == "stats") return stats();
  if (cmd == "forward-prog") {
    // The tc program goes back with the answer (SCM_RIGHTS): the client attaches it where it
    // runs, in its own network namespace.
    *send_fd = progs_->forward_prog_fd();
    return {{"ok", true}};
  }
  if (cmd == "exec") return exec(req, peer);
  if (cmd == "exec-done") return exec_done(req);
  if (cmd == "trust") {
    if (!req.contains("uid") || !req["uid"].is_number_unsigned() || !req.contains("trusted") ||
        !req["trusted"].is_boolean())
      return error_reply("trust: needs uid (number) and trusted (true/false)");
    uint64_t uid = req["uid"].get<uint64_t>();
    if (uid > UINT32_MAX) return error_reply("trust: uid out of range");
    auto r = progs_->trust_uid(static_cast<uint32_t>(uid), req["trusted"].get<bool>());
    if (!r.ok()) return error_reply(r.error().message());
    return {{"ok", true}};
  }
  if (cmd == "stop") {
    stop_ = true;
    unload_ = req.contains("unload") && req["unload"].is_boolean() && req["unload"].get<bool>();
    return {{"ok", true}, {"unload", unload_}};
  }
  ++malformed_;
  return error_reply(fmt::format("unknown command '{}'", cmd.substr(0, 40)));
}

void Daemon::serve_one(int listen_fd) {
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  ++requests_;
  ucred peer{};
  socklen_t len = sizeof peer;
  json reply;
  int send_fd = -1;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 || peer.uid != 0) {
    ++refused_;
    reply = error_reply("permission denied: the tag daemon answers root only");
  } else {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) {
      ++malformed_;
      ::close(fd);
      return;
    }
    std::vector<char> buf(kMaxRequest + 1);
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
    if (n <= 0) {
      ++malformed_;
      ::close(fd);
      return;
    }
    if (static_cast<size_t>(n) > kMaxRequest) {
      ++malformed_;
      reply = error_reply(fmt::format("request too large (over {} bytes)", kMaxRequest));
    } else {
      json req = json::parse(buf.data(), buf.data() + n, nullptr, false);
      if (req.is_discarded()) {
        ++malformed_;
        reply = error_reply("bad request: not JSON");
      } else {
        reply = handle(req, peer, &send_fd);
      }
    }
  }
  std::string out = reply.dump(-1, ' ', true, json::error_handler_t::replace);
  iovec iov{out.data(), out.size()};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (send_fd >= 0) {
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &send_fd, sizeof send_fd);
  }
  (void)::sendmsg(fd, &mh, MSG_NOSIGNAL);
  ::close(fd);
}

json Daemon::sign(const json& req, int sock_fd) {
  auto refuse = [this](int err, const std::string& why) {
    ++sign_refused_;
    return json{{"ok", false}, {"errno", err}, {"error", why}};
  };
  if (!req.is_object() || req.value("cmd", std::string()) != "sign" || !req.contains("app") ||
      !req["app"].is_number_unsigned() || !req.contains("time") ||
      !req["time"].is_number_unsigned() || !req.contains("tags") || !req["tags"].is_string() ||
      !req.contains("sig") || !req["sig"].is_string())
    return refuse(EINVAL, "bad request: {cmd: sign, app, time, tags, sig} and one socket");
  if (sock_fd < 0) return refuse(EINVAL, "bad request: no socket came with it (SCM_RIGHTS)");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(sock_fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0)
    return refuse(EINVAL, "what came with the request is not a socket");
  uint64_t app = req["app"].get<uint64_t>();
  if (app == 0 || app > UINT32_MAX) return refuse(EINVAL, "application id out of range");
  SignCheck c =
      check_signature(cfg_.trust_store, static_cast<uint32_t>(app), req["time"].get<uint64_t>(),
                      req["tags"].get<std::string>(), req["sig"].get<std::string>(), cookie,
                      static_cast<uint64_t>(::time(nullptr)));
  if (!c.ok) return refuse(c.err, c.message);
  // Read first only to name a missing tag; the marking itself is the kernel's (below).
  auto st = progs_->socket_tags(sock_fd);
  if (!st.ok()) return refuse(EIO, st.error().message());
  std::vector<l45_tag> want_all;
  for (l45_tag want : c.tags) {
    want.flags = 0;
    bool found = false;
    for (uint32_t i = 0; i < st->count && i < L45_TAG_MAX; ++i) {
      l45_tag have = st->tags[i];
      have.flags = 0;
      found = found || std::memcmp(&have, &want, sizeof have) == 0;
    }
    if (!found) return refuse(ENOENT, fmt::format("tag {} is not on the socket", format_tag(want)));
    want_all.push_back(want);
  }
  // The socket's own setsockopt hook marks them, under the socket's lock: a tag the application
  // adds or removes meanwhile (another thread) is kept, where writing back what was read above
  // would lose it. One tag a call: each was verified, so one marked before another left the
  // socket meanwhile is still rightly signed.
  for (const l45_tag& want : want_all) {
    if (::setsockopt(sock_fd, SOL_L45, L45_SO_TAG_SIGNED, &want, sizeof want) == 0) continue;
    const int err = errno;
    if (err == ENOENT)
      return refuse(ENOENT, fmt::format("tag {} left the socket meanwhile", format_tag(want)));
    return refuse(EIO, fmt::format("marking tag {} signed: {} (is the socket in the daemon's "
                                   "cgroup, and the daemon root?)",
                                   format_tag(want), std::strerror(err)));
  }
  ++signed_;
  return {{"ok", true}, {"signed", c.tags.size()}};
}

void Daemon::serve_sign(int sign_fd) {
  int fd = ::accept4(sign_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 2000) <= 0) {
    ++sign_refused_;
    ::close(fd);
    return;
  }
  std::vector<char> buf(8192);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(4 * sizeof(int))];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  // Every descriptor that came is closed below, however many and whatever they are.
  std::vector<int> fds;
  for (cmsghdr* c = n >= 0 ? CMSG_FIRSTHDR(&mh) : nullptr; c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      fds.push_back(f);
    }
  }
  json reply;
  if (n <= 0) {
    ++sign_refused_;
    reply = {{"ok", false}, {"errno", EINVAL}, {"error", "empty request"}};
  } else if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || fds.size() > 1) {
    ++sign_refused_;
    reply = {{"ok", false},
             {"errno", EINVAL},
             {"error",
              "bad request: too large or too many "
              "descriptors"}};
  } else {
    json req = json::parse(buf.data(), buf.data() + n, nullptr, false);
    reply = sign(req, fds.empty() ? -1 : fds[0]);
  }
  for (int f : fds)
    ::close(f);
  std::string out = reply.dump(-1, ' ', true, json::error_handler_t::replace);
  (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  ::close(fd);
}

int Daemon::run(int listen_fd, int sig_fd, int sign_fd) {
  // Rules of a set that was active before a restart: names for the log and stats.
  if (auto c = progs_->config(); c.ok() && c->count[c->active & 1] > 0) {
    bool ok = false;
    std::string text = read_file(cfg_.state_dir + "/rules.active", &ok);
    RuleSet set = parse_rules(text);
    if (ok && set.errors.empty() && set.rules.size() == c->count[c->active & 1])
      sets_[c->active & 1] = set.rules;
  }
  auto last_gc = std::chrono::steady_clock::now();
  while (!stop_) {
    pollfd fds[4] = {{listen_fd, POLLIN, 0},
                     {sig_fd, POLLIN, 0},
                     {progs_->log_fd(), POLLIN, 0},
                     {sign_fd, POLLIN, 0}};
    int n = ::poll(fds, sign_fd >= 0 ? 4 : 3, 1000);
    if (n < 0 && errno != EINTR) {
      log::error("tagd: poll: {}", std::strerror(errno));
      return 1;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      (void)!::read(sig_fd, &si, sizeof si);
      log::info("tagd: signal {}, stopping (programs stay attached, pinned)", si.ssi_signo);
      break;
    }
    if (fds[2].revents & POLLIN) {
      auto r = progs_->poll_log(0, [this](const l45_log_event& e) { on_log(e); });
      if (!r.ok()) log::warn("tagd: {}", r.error().message());
      std::fflush(log_);
    }
    if (fds[0].revents & POLLIN) serve_one(listen_fd);
    if (sign_fd >= 0 && (fds[3].revents & POLLIN)) serve_sign(sign_fd);
    auto now = std::chrono::steady_clock::now();
    if (now - last_gc > std::chrono::seconds(5)) {
      collect_exec_cgroups();
      last_gc = now;
    }
  }
  // Drain what is left in the ring.
  (void)progs_->poll_log(0, [this](const l45_log_event& e) { on_log(e); });
  std::fflush(log_);
  collect_exec_cgroups();
  if (unload_) {
    if (auto r = progs_->unpin(); !r.ok()) log::warn("tagd: {}", r.error().message());
    ::unlink((cfg_.state_dir + "/rules.active").c_str());
    log::info("tagd: unpinned; the programs detach as this process exits");
  }
  return 0;
}

// `open_to_all`: the signing socket, which every user may reach (its directory 0711).
Result<int> listen_on(const std::string& path, bool open_to_all) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path)
    return Error::invalid(fmt::format("socket path {} is too long", path));
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    L45_TRY_VOID(make_dirs(dir, open_to_all ? 0711 : 0700));
    if (open_to_all) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & 0111) != 0111) ::chmod(dir.c_str(), 0711);
    }
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("socket(AF_UNIX)");
  // A socket file left by a daemon that died: remove it only when nobody answers on it.
  int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  if (probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    ::close(probe);
    ::close(fd);
    return Error(EADDRINUSE, fmt::format("a tag daemon already answers on {}", path));
  }
  if (probe >= 0) ::close(probe);
  ::unlink(path.c_str());
  mode_t old = ::umask(open_to_all ? 0 : 0077);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::umask(old);
  if (rc < 0) {
    ::close(fd);
    return Error::from_errno(fmt::format("bind {}", path));
  }
  if (::listen(fd, 16) < 0) {
    ::close(fd);
    return Error::from_errno(fmt::format("listen {}", path));
  }
  return fd;
}

// The capabilities the daemon's process lacks to load and attach the programs, by name:
// CAP_SYS_ADMIN covers them all; without it, CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN. Empty
// when it has them, or when capget() fails (loading then says what the kernel refused).
std::vector<std::string> missing_capabilities() {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &h, d) != 0) return {};
  auto has = [&d](int cap) { return (d[cap / 32].effective >> (cap % 32)) & 1; };
  if (has(CAP_SYS_ADMIN)) return {};
  std::vector<std::string> out;
  for (auto [cap, name] : {std::pair{CAP_BPF, "CAP_BPF"}, std::pair{CAP_PERFMON, "CAP_PERFMON"},
                           std::pair{CAP_NET_ADMIN, "CAP_NET_ADMIN"}})
    if (!has(cap)) out.emplace_back(name);
  return out;
}

}  // namespace

int run_daemon(const DaemonConfig& cfg) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "l45: error: %s\n", msg.c_str());
    return 2;
  };
  if (::geteuid() != 0) return fail("l45 tagd needs root (it loads eBPF programs)");
  if (auto missing = missing_capabilities(); !missing.empty()) {
    const bool perfmon = std::find(missing.begin(), missing.end(), "CAP_PERFMON") != missing.end();
    return fail(fmt::format(
        "l45 tagd needs CAP_SYS_ADMIN, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; this process "
        "lacks CAP_SYS_ADMIN, {}{}",
        fmt::join(missing, ", "),
        perfmon ? " (without CAP_SYS_ADMIN or CAP_PERFMON the verifier also follows speculative "
                  "paths and refuses the setsockopt program as too complex)"
                : ""));
  }
  if (auto r = make_dirs(cfg.state_dir, 0700); !r.ok()) return fail(r.error().message());
  std::string cgroup = cfg.cgroup;
  if (cgroup.empty()) {
    auto root = cgroup2_root(cfg.state_dir + "/cgroup2");
    if (!root.ok()) return fail(root.error().message());
    cgroup = *root;
  }
  auto slash = cfg.pin_dir.rfind('/');
  std::string bpffs = slash != std::string::npos && slash > 0 ? cfg.pin_dir.substr(0, slash)
                                                              : std::string("/sys/fs/bpf");
  if (auto r = ensure_bpffs(bpffs); !r.ok()) return fail(r.error().message());
  if (auto r = make_dirs(cfg.pin_dir, 0700); !r.ok()) return fail(r.error().message());

  auto listen_fd = listen_on(cfg.socket_path, false);
  if (!listen_fd.ok()) return fail(listen_fd.error().message());
  int sign_fd = -1;
  if (!cfg.sign_socket.empty()) {
    auto s = listen_on(cfg.sign_socket, true);
    if (!s.ok()) {
      ::close(*listen_fd);
      ::unlink(cfg.socket_path.c_str());
      return fail(s.error().message());
    }
    sign_fd = *s;
  }
  auto progs = TagPrograms::open({cgroup, cfg.pin_dir, cfg.no_in_place});
  if (!progs.ok()) {
    ::close(*listen_fd);
    ::unlink(cfg.socket_path.c_str());
    return fail(progs.error().message());
  }
  for (uint32_t uid : cfg.trusted_uids) {
    if (auto r = (*progs)->trust_uid(uid, true); !r.ok()) return fail(r.error().message());
  }
  if (auto r = (*progs)->set_log_rate(cfg.log_per_sec); !r.ok()) return fail(r.error().message());

  FILE* log = stdout;
  if (!cfg.log_path.empty()) {
    log = std::fopen(cfg.log_path.c_str(), "a");
    if (!log)
      return fail(fmt::format("opening the log {}: {}", cfg.log_path, std::strerror(errno)));
  }
  std::setvbuf(log, nullptr, _IOLBF, 0);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sig_fd = ::signalfd(-1, &mask, SFD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);

  Daemon d(cfg, std::move(*progs), cgroup, log);
  if (!cfg.rules_file.empty()) {
    bool ok = false;
    std::string text = read_file(cfg.rules_file, &ok);
    if (!ok) return fail(fmt::format("cannot read the rules file {}", cfg.rules_file));
    json reply;
    if (auto r = d.load_rules_text(text, cfg.rules_file, &reply); !r.ok()) {
      std::string msg = r.error().message();
      while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
      return fail(msg);
    }
  }
  log::info("tagd: attached to {}, pinned under {}, listening on {}", cgroup, cfg.pin_dir,
            cfg.socket_path);
  std::fprintf(stderr, "l45 tagd: ready (cgroup %s, socket %s)\n", cgroup.c_str(),
               cfg.socket_path.c_str());
  int rc = d.run(*listen_fd, sig_fd, sign_fd);
  ::close(*listen_fd);
  ::unlink(cfg.socket_path.c_str());
  if (sign_fd >= 0) {
    ::close(sign_fd);
    ::unlink(cfg.sign_socket.c_str());
  }
  ::close(sig_fd);
  if (log != stdout) std::fclose(log);
  return rc;
}

Result<json> request(const std::string& socket_path, const json& req, int timeout_ms) {
  return request_fd(socket_path, req, nullptr, timeout_ms);
}

Result<json> request_fd(const std::string& socket_path, const json& req, int* fd_out,
                        int timeout_ms) {
  if (fd_out) *fd_out = -1;
  sockaddr_un sa{};
  if (socket_path.size() >= sizeof sa.sun_path)
    return Error::invalid(fmt::format("socket path {} is too long", socket_path));
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("socket(AF_UNIX)");
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, socket_path.data(), socket_path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    Error e = Error::from_errno(
        fmt::format("no tag daemon answers on {} (start it with 'l45 tagd')", socket_path));
    ::close(fd);
    return e;
  }
  std::string out = req.dump(-1, ' ', false, json::error_handler_t::replace);
  if (out.size() > kMaxRequest) {
    ::close(fd);
    return Error::invalid(fmt::format("request too large (over {} bytes)", kMaxRequest));
  }
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) {
    Error e = Error::from_errno("sending to the tag daemon");
    ::close(fd);
    return e;
  }
  pollfd p{fd, POLLIN, 0};
  int n = ::poll(&p, 1, timeout_ms);
  if (n <= 0) {
    ::close(fd);
    return Error(ETIMEDOUT, "waiting for the tag daemon's answer");
  }
  std::vector<char> buf(4 * 1024 * 1024);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t got = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  ::close(fd);
  for (cmsghdr* c = got > 0 ? CMSG_FIRSTHDR(&mh) : nullptr; c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int f;
    std::memcpy(&f, CMSG_DATA(c), sizeof f);
    if (fd_out && *fd_out < 0)
      *fd_out = f;
    else
      ::close(f);
  }
  if (got <= 0) return Error(EPROTO, "the tag daemon closed the connection without answering");
  json reply = json::parse(buf.data(), buf.data() + got, nullptr, false);
  if (reply.is_discarded() || !reply.is_object())
    return Error(EPROTO, "the tag daemon's answer is not a JSON object");
  return reply;
}

}  // namespace l45::tag
