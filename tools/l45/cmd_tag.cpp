// l45 tag: talks to the tag daemon (rules, stats, exec, stop) and checks rule files offline.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "command.hpp"
#include "l45/tag/daemon.hpp"
#include "l45/tag/rules.hpp"
#include "l45/tag/sign.hpp"

namespace l45::cli {
namespace {

using json = nlohmann::json;

struct TagArgs {
  std::string socket = tag::kDefaultSocket;
  std::string file;
  bool json = false;
  bool unload = false;
  uint32_t app = 0;
  std::vector<std::string> tags;
  std::vector<std::string> command;
  uint32_t uid = 0;
  bool untrust = false;
  std::string trust_store = "/etc/l45/trust";
  std::string key_file;
  std::string iface;
  bool detach = false;
};

std::string read_rules(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json call(const TagArgs& a, const json& req) {
  json reply = must(tag::request(a.socket, req));
  if (!reply.value("ok", false)) {
    std::string msg = reply.value("error", std::string("the daemon refused the request"));
    if (reply.contains("errors") && reply["errors"].is_array()) {
      for (const auto& e : reply["errors"])
        std::fprintf(stderr, "l45: %s: line %d: %s\n", reply.value("name", std::string()).c_str(),
                     e.value("line", 0), e.value("message", std::string()).c_str());
    }
    fail(msg, kExitProblem);
  }
  return reply;
}

void rules_check(const TagArgs& a) {
  auto set = tag::parse_rules(read_rules(a.file));
  if (!set.errors.empty()) {
    for (const auto& e : set.errors)
      std::fprintf(stderr, "l45: %s: line %d: %s\n", a.file.c_str(), e.line, e.message.c_str());
    throw Exit{kExitProblem, fmt::format("{}: {} error(s)", a.file, set.errors.size())};
  }
  std::printf("%s: %zu rule(s), no errors\n", a.file.c_str(), set.rules.size());
}

void rules_load(const TagArgs& a) {
  json req = {{"cmd", "rules-load"}, {"text", read_rules(a.file)}, {"name", a.file}};
  json reply = must(tag::request(a.socket, req));
  if (!reply.value("ok", false)) {
    if (reply.contains("errors") && reply["errors"].is_array())
      for (const auto& e : reply["errors"])
        std::fprintf(stderr, "l45: %s: line %d: %s\n", a.file.c_str(), e.value("line", 0),
                     e.value("message", std::string()).c_str());
    fail(reply.value("error", std::string("the daemon refused the rules")), kExitProblem);
  }
  std::printf("%s: %zu rule(s) loaded\n", a.file.c_str(), reply.value("rules", size_t{0}));
}

void rules_show(const TagArgs& a) {
  json reply = call(a, {{"cmd", "rules-show"}});
  for (const auto& r : reply["rules"])
    std::printf("%4d  %s\n", r.value("line", 0), r.value("text", std::string()).c_str());
}

void stats(const TagArgs& a) {
  json reply = call(a, {{"cmd", "stats"}});
  if (a.json) {
    reply.erase("ok");
    std::printf("%s\n", reply.dump().c_str());
    return;
  }
  std::printf("%-5s %-5s %12s %14s %14s %9s %9s  %s\n", "RULE", "LINE", "PACKETS", "BYTES",
              "PAYLOAD", "LOGDROP", "THROTTLED", "TEXT");
  for (const auto& r : reply["rules"])
    std::printf("%-5d %-5d %12llu %14llu %14llu %9llu %9llu  %s\n", r.value("rule", 0),
                r.value("line", 0), r.value("packets", 0ULL), r.value("bytes", 0ULL),
                r.value("payload", 0ULL), r.value("log_dropped", 0ULL), r.value("throttled", 0ULL),
                r.value("text", std::string()).c_str());
  std::printf("\n%-24s %12s %14s %14s %12s %14s %14s\n", "TAG", "OUT_PACKETS", "OUT_BYTES",
              "OUT_PAYLOAD", "IN_PACKETS", "IN_BYTES", "IN_PAYLOAD");
  for (const auto& t : reply["tags"])
    std::printf(
        "%-24s %12llu %14llu %14llu %12llu %14llu %14llu\n", t.value("tag", std::string()).c_str(),
        t.value("out_packets", 0ULL), t.value("out_bytes", 0ULL), t.value("out_payload", 0ULL),
        t.value("in_packets", 0ULL), t.value("in_bytes", 0ULL), t.value("in_payload", 0ULL));
}

void status(const TagArgs& a) {
  json reply = call(a, {{"cmd", "ping"}});
  std::printf("tagd pid %d, cgroup %s, pinned under %s, %u rule(s) active, sockets' tags %s\n",
              reply.value("pid", 0), reply.value("cgroup", std::string()).c_str(),
              reply.value("pin_dir", std::string()).c_str(), reply.value("rules", 0u),
              reply.value("tags_in_place", false) ? "read in place" : "looked up");
}

void stop(const TagArgs& a) {
  call(a, {{"cmd", "stop"}, {"unload", a.unload}});
  std::printf("tagd stopping%s\n", a.unload ? "; programs detached and unpinned" : "");
}

void trust(const TagArgs& a) {
  call(a, {{"cmd", "trust"}, {"uid", a.uid}, {"trusted", !a.untrust}});
}

// Runs the command in its own cgroup whose sockets get the tags when they are created: the
// child waits on a pipe until the daemon has moved it there, then execs.
void exec_tagged(const TagArgs& a) {
  if (a.command.empty()) fail("exec: no command (l45 tag exec --app ID --tag V -- CMD ARGS)");
  if (a.app == 0) fail("exec: --app ID (1 to 4294967295) is required");
  if (a.tags.empty()) fail("exec: at least one --tag VALUE is required");
  if (a.tags.size() > L45_TAG_MAX) fail(fmt::format("exec: at most {} tags", L45_TAG_MAX));
  json tags = json::array();
  for (const auto& v : a.tags) {
    l45_tag t{};
    t.app = a.app;
    std::string why;
    if (!tag::parse_tag_value(v, t, &why)) fail("exec: " + why);
    tags.push_back({{"app", a.app}, {"value", v}});
  }
  int go[2];
  if (::pipe2(go, O_CLOEXEC) < 0) fail(Error::from_errno("pipe"));
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) fail(Error::from_errno("fork"));
  if (child == 0) {
    ::close(go[1]);
    char c = 0;
    if (::read(go[0], &c, 1) != 1 || c != 'g') _exit(126);  // the parent gave up
    std::vector<char*> argv;
    for (const auto& s : a.command)
      argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "l45: error: exec %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  ::close(go[0]);
  auto reply = tag::request(a.socket, {{"cmd", "exec"}, {"pid", child}, {"tags", tags}});
  if (!reply.ok() || !reply->value("ok", false)) {
    ::close(go[1]);
    ::waitpid(child, nullptr, 0);
    if (!reply.ok()) fail(reply.error());
    fail(reply->value("error", std::string("the daemon refused the request")), kExitProblem);
  }
  signal(SIGINT, SIG_IGN);  // the terminal's ^C goes to the command; we wait for it
  signal(SIGTERM, SIG_IGN);
  (void)!::write(go[1], "g", 1);
  ::close(go[1]);
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  (void)tag::request(a.socket, {{"cmd", "exec-done"}, {"pid", child}});
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (code != 0) throw Exit{code, ""};
}

void keygen(const TagArgs& a) {
  if (a.app == 0) fail("keygen: --app ID (1 to 4294967295) is required");
  std::string key = a.key_file.empty() ? fmt::format("app-{}.key", a.app) : a.key_file;
  std::string why = tag::keygen(a.trust_store, a.app, key);
  if (!why.empty()) fail("keygen: " + why);
  std::printf("secret key: %s (keep it: the application signs with it)\npublic key: %s\n",
              key.c_str(), tag::public_key_path(a.trust_store, a.app).c_str());
}

// Attaches the daemon's tc program to an interface's ingress, in the network namespace this
// command runs in (so `ip netns exec NS l45 tag forward --iface X` works on a router namespace).
void forward(const TagArgs& a) {
  unsigned ifindex = ::if_nametoindex(a.iface.c_str());
  if (ifindex == 0) fail(fmt::format("forward: no interface '{}' here", a.iface));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 0x45, .priority = 45);
  if (a.detach) {
    if (int err = bpf_tc_detach(&hook, &opts))
      fail(Error(-err, fmt::format("forward: detaching from {}", a.iface)));
    std::printf("forward: detached from %s\n", a.iface.c_str());
    return;
  }
  int prog = -1;
  json reply = must(tag::request_fd(a.socket, {{"cmd", "forward-prog"}}, &prog));
  if (!reply.value("ok", false) || prog < 0)
    fail(reply.value("error", std::string("the daemon sent no program")), kExitProblem);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) fail(Error(-err, fmt::format("forward: clsact on {}", a.iface)));
  opts.prog_fd = prog;
  opts.flags = BPF_TC_F_REPLACE;
  err = bpf_tc_attach(&hook, &opts);
  ::close(prog);
  if (err) fail(Error(-err, fmt::format("forward: attaching to {} (ingress)", a.iface)));
  std::printf("forward: rules with focus 'forward' run on packets arriving on %s\n",
              a.iface.c_str());
}

void setup(CLI::App& app) {
  auto a = std::make_shared<TagArgs>();
  app.add_option("--socket", a->socket, "the daemon's socket")->capture_default_str();
  app.require_subcommand(1);

  auto* rules = app.add_subcommand("rules", "load, check or show rules");
  rules->require_subcommand(1);
  auto* load = rules->add_subcommand("load", "load a rules file into the daemon (atomically)");
  load->add_option("file", a->file, "the rules file")->required();
  load->callback([a] { rules_load(*a); });
  auto* check = rules->add_subcommand("check", "check a rules file (no daemon needed)");
  check->add_option("file", a->file, "the rules file")->required();
  check->callback([a] { rules_check(*a); });
  rules->add_subcommand("show", "the active rules")->callback([a] { rules_show(*a); });

  auto* st = app.add_subcommand("stats", "counters per rule and per (application, tag)");
  st->add_flag("--json", a->json, "one JSON object: {rules: [...], tags: [...], daemon: {...}}");
  st->callback([a] { stats(*a); });

  auto* ex = app.add_subcommand("exec", "run a command whose every socket carries the tags");
  ex->add_option("--app", a->app, "application id")->required();
  ex->add_option("--tag", a->tags, "a tag value: a number or a string (repeatable)")->required();
  // Everything after the options (or after --) is the command, its own options included.
  ex->prefix_command();
  ex->callback([a, ex] {
    a->command = ex->remaining();
    if (!a->command.empty() && a->command.front() == "--") a->command.erase(a->command.begin());
    exec_tagged(*a);
  });

  app.add_subcommand("status", "is the daemon running, where is it attached")->callback([a] {
    status(*a);
  });
  auto* sp = app.add_subcommand("stop", "stop the daemon (programs stay attached)");
  sp->add_flag("--unload", a->unload, "also detach and unpin the programs and maps");
  sp->callback([a] { stop(*a); });
  auto* tr = app.add_subcommand("trust", "trust (or not) the tags set by a user's processes");
  tr->add_option("--uid", a->uid, "the user id")->required();
  tr->add_flag("--untrust", a->untrust, "stop trusting them");
  tr->callback([a] { trust(*a); });

  auto* fw = app.add_subcommand("forward", "run 'forward' rules on an interface (a router's)");
  fw->add_option("--iface", a->iface, "the interface whose incoming packets are matched")
      ->required();
  fw->add_flag("--detach", a->detach, "remove it again");
  fw->callback([a] { forward(*a); });

  auto* kg = app.add_subcommand("keygen", "make an Ed25519 key pair for signing an app's tags");
  kg->add_option("--app", a->app, "application id")->required();
  kg->add_option("--trust-store", a->trust_store, "where the public key goes")
      ->capture_default_str();
  kg->add_option("--key", a->key_file, "the secret key file (default: ./app-ID.key)");
  kg->callback([a] { keygen(*a); });

  app.footer(R"(Examples:
  l45 tag rules check my.rules                    line-numbered errors, no daemon needed
  l45 tag rules load my.rules                     all or nothing; live sockets keep their marks
  l45 tag stats --json
  l45 tag exec --app 24 --tag 26 -- curl -o /dev/null http://198.51.100.1/
  l45 tag keygen --app 3                          Ed25519 key pair; public key to the trust store
  ip netns exec router l45 tag forward --iface eth0   'forward' rules on a router

Rules: one per line, 'FOCUS CONDITION... ACTION [ARG]', '#' comments:
  out  app 24 tag 26            log "Tagged_packet_found"
  out  app 1 tag 7              mark 1
  out  app 5 tag "tenant-a" dport 443  count
  in   app 9 untrusted          drop
  out  app 1 tag 7              export        (the tag in a TCP option, for routers)
  forward app 1 tag 7           count

Exit status: 0 done, 1 the daemon refused (bad rules: every error with its line), 2 bad
arguments or no daemon; exec: the command's status.)");
}

}  // namespace

L45_REGISTER_COMMAND("tag", "tag rules, counters and tagged commands (talks to l45 tagd)", setup,
                     61);

}  // namespace l45::cli
