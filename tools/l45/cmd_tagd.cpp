// l45 tagd: the tag daemon. Loads the tag eBPF programs, attaches them to a cgroup v2 (the root
// by default), pins them, serves `l45 tag` requests on a root-only unix socket and writes the
// `log` rules' lines to its log.
#include "command.hpp"
#include "l45/tag/daemon.hpp"

namespace l45::cli {
namespace {

void setup(CLI::App& app) {
  auto c = std::make_shared<tag::DaemonConfig>();
  app.add_option("--cgroup", c->cgroup,
                 "cgroup v2 directory to attach to (default: the root of the cgroup2 mount)");
  app.add_option("--pin", c->pin_dir, "bpffs directory for the pinned programs and maps")
      ->capture_default_str();
  app.add_option("--socket", c->socket_path, "the unix socket to serve")->capture_default_str();
  app.add_option("--state", c->state_dir, "directory for the daemon's state")
      ->capture_default_str();
  app.add_option("--rules", c->rules_file, "load this rules file at start");
  app.add_option("--log", c->log_path, "append log lines to FILE (default: stdout)");
  app.add_option("--log-rate", c->log_per_sec,
                 "log lines per rule per second; the rest are counted as dropped (0: no limit)")
      ->capture_default_str();
  app.add_option("--trust-uid", c->trusted_uids,
                 "users whose tags are trusted (default: root only)");
  app.add_option("--trust-store", c->trust_store,
                 "directory of the applications' public keys (app-ID.pub, root's)")
      ->capture_default_str();
  app.add_option("--sign-socket", c->sign_socket,
                 "socket for signed-tag requests, open to every user ('' for none)")
      ->capture_default_str();
  app.add_flag("--no-in-place", c->no_in_place,
               "packet programs look each socket's tags up (bpf_sk_storage_get) instead of "
               "reading them in place (the default on Linux 6.17 and newer; older kernels get "
               "the lookup anyway): for comparison");
  app.footer(R"(Examples:
  l45 tagd --rules /etc/l45/tag.rules --log /var/log/l45-tag.log &
  l45 tag rules load my.rules ; l45 tag stats
  l45 tag stop              # stops the daemon; the programs stay attached (pinned)
  l45 tag stop --unload     # stops it and detaches everything

A daemon started again reuses the pinned maps: live sockets keep their tags. The cgroup v2
hierarchy is found in /proc/self/mountinfo (hybrid systems mount it at
/sys/fs/cgroup/unified); bpffs is mounted at the pin directory's parent when absent.
It runs as root with CAP_SYS_ADMIN, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN.

Exit status: 0 stopped, 2 cannot start (one line says why).)");
  app.callback([c] {
    int rc = tag::run_daemon(*c);
    if (rc != 0) throw Exit{rc, ""};
  });
}

}  // namespace

L45_REGISTER_COMMAND("tagd", "the tag daemon: eBPF programs, rules and the tag log", setup, 60);

}  // namespace l45::cli
