// l45 run: runs an unmodified program with the shim (libl45shim.so) preloaded, so its sockets
// get the modules the customization directory's manifests pick for them.
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "command.hpp"

#ifndef L45_SHIM_BUILD_PATH
#define L45_SHIM_BUILD_PATH ""
#endif
#ifndef L45_SHIM_INSTALL_PATH
#define L45_SHIM_INSTALL_PATH "/usr/local/lib/libl45shim.so"
#endif

namespace l45::cli {
namespace {

struct RunArgs {
  std::string modules;
  std::string rundir;
  bool debug = false;
};

bool is_file(const std::string& p) {
  struct stat st {};
  return !p.empty() && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dir_of_self() {
  char buf[PATH_MAX] = {};
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

// $L45_SHIM_LIB, then beside the binary (installed: ../lib; build tree: the build's lib/), then
// the build and install paths this l45 was configured with.
std::string find_shim(std::vector<std::string>* tried) {
  std::vector<std::string> candidates;
  if (const char* e = std::getenv("L45_SHIM_LIB"); e && *e) candidates.push_back(e);
  std::string self = dir_of_self();
  if (!self.empty()) {
    candidates.push_back(self + "/../lib/libl45shim.so");
    candidates.push_back(self + "/../../lib/libl45shim.so");
    candidates.push_back(self + "/libl45shim.so");
  }
  candidates.push_back(L45_SHIM_BUILD_PATH);
  candidates.push_back(L45_SHIM_INSTALL_PATH);
  for (const auto& c : candidates) {
    if (c.empty()) continue;
    if (is_file(c)) {
      char real[PATH_MAX];
      return ::realpath(c.c_str(), real) ? std::string(real) : c;
    }
    tried->push_back(c);
  }
  return {};
}

std::string absolute(const std::string& p) {
  char real[PATH_MAX];
  return ::realpath(p.c_str(), real) ? std::string(real) : p;
}

void run(const RunArgs& a, std::vector<std::string> cmd) {
  if (!cmd.empty() && cmd.front() == "--") cmd.erase(cmd.begin());
  if (cmd.empty()) fail("nothing to run: l45 run [--modules DIR] -- COMMAND [ARGS...]");
  std::vector<std::string> tried;
  std::string shim = find_shim(&tried);
  if (shim.empty()) {
    std::string where;
    for (const auto& t : tried)
      where += (where.empty() ? "" : ", ") + t;
    fail("libl45shim.so not found (looked at " + where +
         "); build it (cmake --build build) or set L45_SHIM_LIB");
  }
  if (!a.modules.empty()) {
    struct stat st {};
    if (::stat(a.modules.c_str(), &st) != 0)
      fail("--modules " + a.modules + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail("--modules " + a.modules + ": not a directory");
    ::setenv("L45_SHIM_MODULES", absolute(a.modules).c_str(), 1);
  }
  if (!a.rundir.empty()) ::setenv("L45_SHIM_RUNDIR", absolute(a.rundir).c_str(), 1);
  if (a.debug) ::setenv("L45_SHIM_DEBUG", "1", 1);
  std::string preload = shim;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(" ") + old;
  ::setenv("LD_PRELOAD", preload.c_str(), 1);

  std::vector<char*> argv;
  for (auto& s : cmd)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  int e = errno;
  ::unsetenv("LD_PRELOAD");
  fail("cannot run " + cmd.front() + ": " + std::strerror(e), e == ENOENT ? 127 : 126);
}

void setup(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto cmd = std::make_shared<std::vector<std::string>>();
  app.description(
      "Run COMMAND with libl45shim.so preloaded: each of its TCP and UDP sockets gets the\n"
      "modules whose manifests (*.toml in the customization directory) match the socket's\n"
      "program, protocol, remote address, port and side. Without a match a socket behaves\n"
      "exactly as without the shim.\n\n"
      "examples:\n"
      "  l45 run -- curl http://198.51.100.1/\n"
      "  l45 run --modules ./modules.d -- socat - UDP:192.0.2.1:5000\n"
      "  l45 run --modules ./modules.d --debug -- nginx -c ./nginx.conf");
  app.add_option("--modules", a->modules,
                 "customization directory (default /etc/l45/modules.d; must be owned by root or "
                 "you and writable only by its owner)");
  app.add_option("--rundir", a->rundir,
                 "where the program publishes its stats (default "
                 "/run/l45/shim; read by 'l45 shim stats')");
  app.add_flag("--debug", a->debug, "print each socket's context and chain on stderr");
  app.add_option("command", *cmd, "the program and its arguments, after --")->required();
  app.positionals_at_end();
  app.callback([a, cmd] { run(*a, *cmd); });
}

}  // namespace

L45_REGISTER_COMMAND("run", "run a program with the shim: modules on its sockets", setup, 60);

}  // namespace l45::cli
