// Network namespaces, veth pairs, background processes and temporary directories for tests
// that run real peers (nginx, curl, ping) as root. Everything a test creates is undone by a
// destructor, so a failing ASSERT still leaves the host as it was.
//
//   L45_REQUIRE_NETNS();
//   Netns c("cli"), s("srv");
//   ASSERT_TRUE(c.ok() && s.ok()) << c.error() << s.error();
//   ASSERT_EQ(add_veth(c, {"vc", "198.51.100.1/24"}, s, {"vs", "198.51.100.2/24"}), "");
//   pid_t web = s.spawn({"nginx", "-c", conf});
//   {
//     NetnsScope in(c);            // this thread now lives in `c`
//     auto src = LiveSource::open({.iface = "vc"});
//   }                              // back in the original namespace; the socket stays in `c`
//
// setns(CLONE_NEWNET) changes only the calling thread: sockets opened inside a NetnsScope
// belong to that namespace for their whole life, wherever they are used afterwards.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace l45::testing {

class Netns {
 public:
  // Creates "l45<tag><pid>x<n>", unique per process and call. Check ok().
  explicit Netns(std::string_view tag);
  // Kills the processes spawn() started (SIGTERM, then SIGKILL), then deletes the namespace
  // and the interfaces in it.
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }

  // Runs `cmd` with sh inside the namespace and returns its exit status (124 when it ran
  // longer than `timeout_s` and was killed). Output (stdout and stderr) goes to `out`.
  int exec(const std::string& cmd, std::string* out = nullptr, int timeout_s = 10) const;
  // Starts `argv` inside the namespace in the background, in its own process group, output
  // appended to `log_path` (or discarded). Returns the pid, or -1.
  pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path = {});
  // Waits up to `timeout_ms` for a spawned process. Returns its exit status; -1 when it did
  // not exit in time (it is then killed) or died from a signal.
  int wait(pid_t pid, int timeout_ms);
  // True when a spawned process has exited (and reaps it); its status goes to `status`.
  bool exited(pid_t pid, int* status = nullptr);
  // Kills a spawned process (and its group) now and reaps it.
  void kill(pid_t pid);

 private:
  std::string name_;
  std::string error_;
  std::vector<pid_t> pids_;
};

// Moves the calling thread into `ns` until destroyed; then back to where it was.
class NetnsScope {
 public:
  explicit NetnsScope(const Netns& ns);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  int saved_ = -1;
  std::string error_;
};

struct VethEnd {
  std::string ifname;
  std::string cidr;  // "198.51.100.1/24"; empty: no address
};

// Joins `a` and `b` with a veth pair, assigns the addresses and brings both ends (and lo in
// both namespaces) up. With `offloads_off`, TSO/GSO/GRO and checksum offload are turned off
// so frames on the wire (and in a capture) are real-sized and carry full checksums.
// Returns "" on success, else what failed. The pair goes away with the namespaces.
std::string add_veth(const Netns& a, const VethEnd& ea, const Netns& b, const VethEnd& eb,
                     bool offloads_off = true);

// A fresh directory under /tmp, removed with everything in it when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name (creating directories in `name`); returns the full path.
  std::filesystem::path write(const std::string& name, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// Starts nginx (no master process, no daemon) in `ns`, serving dir.path()/"www" on `listen`
// ("198.51.100.2:80"), with its config, logs and temp files in `dir`. Returns its pid once it
// accepts connections; -1 with `err` set when it did not start within 3 s.
pid_t start_nginx(Netns& ns, const TempDir& dir, const std::string& listen, std::string* err);

// Runs `fn` in a forked child that has dropped root (uid/gid 65534, no capabilities) and
// returns what `fn` returned, or a description of how the child failed. For asserting the
// messages l45 gives to users who forgot sudo.
std::string run_as_nobody(const std::function<std::string()>& fn);

// Single-quotes `s` for sh.
std::string shell_quote(std::string_view s);

}  // namespace l45::testing
