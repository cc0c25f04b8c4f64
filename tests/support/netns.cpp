#include "netns.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "testing.hpp"

namespace l45::testing {

std::string shell_quote(std::string_view s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

Netns::Netns(std::string_view tag) {
  static std::atomic<int> counter{0};
  name_ = "l45" + std::string(tag) + std::to_string(getpid()) + "x" + std::to_string(counter++);
  std::string out;
  if (run("ip netns add " + name_, &out) != 0) {
    // A namespace left by a crashed run that had the same pid: take it over.
    run("ip netns del " + name_);
    out.clear();
    if (run("ip netns add " + name_, &out) != 0) {
      error_ = "ip netns add " + name_ + ": " + out;
      return;
    }
  }
  if (run("ip -n " + name_ + " link set lo up", &out) != 0)
    error_ = "ip -n " + name_ + " link set lo up: " + out;
}

Netns::~Netns() {
  while (!pids_.empty())
    kill(pids_.back());
  if (!name_.empty()) run("ip netns del " + name_ + " 2>/dev/null");
}

int Netns::exec(const std::string& cmd, std::string* out, int timeout_s) const {
  return run("timeout -s KILL " + std::to_string(timeout_s) + " ip netns exec " + name_ +
                 " sh -c " + shell_quote(cmd),
             out);
}

pid_t Netns::spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  // Everything the child needs is prepared before fork(): after it, only exec-safe calls.
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  std::vector<char*> cargv;
  for (auto& a : full)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::string log = log_path.empty() ? "/dev/null" : log_path;

  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so kill() also reaches whatever it starts
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  pids_.push_back(pid);
  return pid;
}

int Netns::wait(pid_t pid, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    if (r < 0 && errno != EINTR) {
      pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
      return -1;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Netns::exited(pid_t pid, int* status) {
  if (std::find(pids_.begin(), pids_.end(), pid) == pids_.end()) return true;
  int st = 0;
  if (waitpid(pid, &st, WNOHANG) != pid) return false;
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return true;
}

void Netns::kill(pid_t pid) {
  if (std::find(pids_.begin(), pids_.end(), pid) == pids_.end()) return;
  ::kill(-pid, SIGTERM);
  ::kill(pid, SIGTERM);
  int st = 0;
  bool reaped = false;
  for (int i = 0; i < 50 && !reaped; ++i) {
    if (waitpid(pid, &st, WNOHANG) == pid) reaped = true;
    if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!reaped) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
}

NetnsScope::NetnsScope(const Netns& ns) {
  saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved_ < 0) {
    error_ = std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    return;
  }
  std::string path = "/var/run/netns/" + ns.name();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error_ = "open " + path + ": " + std::strerror(errno);
    return;
  }
  if (setns(fd, CLONE_NEWNET) != 0) error_ = std::string("setns: ") + std::strerror(errno);
  ::close(fd);
}

NetnsScope::~NetnsScope() {
  if (saved_ < 0) return;
  // Failing to get back would leave every later test in the wrong namespace.
  if (setns(saved_, CLONE_NEWNET) != 0) std::abort();
  ::close(saved_);
}

std::string add_veth(const Netns& a, const VethEnd& ea, const Netns& b, const VethEnd& eb,
                     bool offloads_off) {
  std::string out;
  std::string cmd = "ip -n " + a.name() + " link add name " + ea.ifname + " type veth peer name " +
                    eb.ifname + " netns " + b.name();
  if (run(cmd, &out) != 0) return cmd + ": " + out;
  for (auto [ns, end] : {std::pair{&a, &ea}, std::pair{&b, &eb}}) {
    std::vector<std::string> cmds;
    if (!end->cidr.empty())
      cmds.push_back("ip -n " + ns->name() + " addr add " + end->cidr + " dev " + end->ifname);
    cmds.push_back("ip -n " + ns->name() + " link set " + end->ifname + " up");
    for (const auto& c : cmds) {
      out.clear();
      if (run(c, &out) != 0) return c + ": " + out;
    }
    if (offloads_off) {
      std::string c = "ip netns exec " + ns->name() + " ethtool -K " + end->ifname +
                      " tx off rx off sg off tso off gso off gro off";
      out.clear();
      if (run(c, &out) != 0) return c + ": " + out;
    }
  }
  return "";
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/l45testXXXXXX";
  char* p = mkdtemp(tmpl);
  if (!p) {
    // Without it, write() would scribble relative to the working directory.
    std::fprintf(stderr, "l45 test: mkdtemp /tmp: %s\n", std::strerror(errno));
    std::abort();
  }
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(const std::string& name, std::string_view content) const {
  auto p = path_ / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  return p;
}

pid_t start_nginx(Netns& ns, const TempDir& dir, const std::string& listen, std::string* err) {
  std::string d = dir.path().string();
  std::filesystem::create_directories(dir.path() / "www");
  // master_process off: one process, so the pid we hold is the one that serves.
  std::string conf =
      "daemon off;\nmaster_process off;\nworker_processes 1;\n"
      "pid " +
      d + "/nginx.pid;\nerror_log " + d +
      "/error.log;\n"
      "events { worker_connections 64; }\n"
      "http {\n  access_log off;\n"
      "  client_body_temp_path " +
      d + "/body;\n  proxy_temp_path " + d +
      "/proxy;\n"
      "  fastcgi_temp_path " +
      d + "/fcgi;\n  uwsgi_temp_path " + d +
      "/uwsgi;\n"
      "  scgi_temp_path " +
      d +
      "/scgi;\n"
      "  server { listen " +
      listen + "; root " + d + "/www; }\n}\n";
  auto conf_path = dir.write("nginx.conf", conf);
  pid_t pid = ns.spawn({"nginx", "-e", d + "/error.log", "-p", d, "-c", conf_path.string()},
                       d + "/nginx.out");
  if (pid < 0) {
    if (err) *err = "cannot fork nginx";
    return -1;
  }
  std::string port = listen.substr(listen.rfind(':') + 1);
  for (int i = 0; i < 300; ++i) {
    std::string out;
    ns.exec("ss -Hltn 'sport = :" + port + "'", &out);
    if (out.find("LISTEN") != std::string::npos) return pid;
    if (ns.exited(pid)) break;  // the log says why
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (err) {
    std::string log;
    run("cat " + shell_quote(d + "/error.log") + " " + shell_quote(d + "/nginx.out"), &log);
    *err = "nginx did not start: " + log;
  }
  ns.kill(pid);
  return -1;
}

std::string run_as_nobody(const std::function<std::string()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    std::string r;
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
      r = "cannot drop privileges";
    else
      r = fn();
    (void)!::write(fds[1], r.data(), r.size());
    _exit(0);
  }
  ::close(fds[1]);
  std::string r;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    r.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return "child failed: status " + std::to_string(st);
  return r;
}

}  // namespace l45::testing
