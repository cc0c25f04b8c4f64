// Manifest parsing (toml++), matching and the customization directory's checks.
#include "l45/shim/manifest.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace l45::shim {

std::string Problem::to_string() const {
  if (line > 0) return file + ":" + std::to_string(line) + ": " + reason;
  return file + ": " + reason;
}

std::optional<Prefix> Prefix::parse(std::string_view text) {
  std::string s(text);
  Prefix p;
  int max_len = 0;
  auto slash = s.find('/');
  std::string addr = s.substr(0, slash);
  if (inet_pton(AF_INET, addr.c_str(), p.addr) == 1) {
    p.family = AF_INET;
    max_len = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr) == 1) {
    p.family = AF_INET6;
    max_len = 128;
  } else {
    return std::nullopt;
  }
  p.len = max_len;
  if (slash != std::string::npos) {
    std::string len = s.substr(slash + 1);
    if (len.empty() || len.size() > 3 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    p.len = std::stoi(len);
    if (p.len > max_len) return std::nullopt;
  }
  return p;
}

namespace {

bool prefix_equal(const uint8_t* a, const uint8_t* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool Prefix::contains(const sockaddr_storage& a) const {
  if (a.ss_family == AF_INET) {
    if (family != AF_INET) return false;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&a);
    return prefix_equal(reinterpret_cast<const uint8_t*>(&sin->sin_addr), addr, len);
  }
  if (a.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a);
    const auto* b = reinterpret_cast<const uint8_t*>(&sin6->sin6_addr);
    if (family == AF_INET6) return prefix_equal(b, addr, len);
    if (family == AF_INET && std::memcmp(b, kV4Mapped, 12) == 0)
      return prefix_equal(b + 12, addr, len);
  }
  return false;
}

uint16_t port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

std::string format_endpoint(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port_of(a));
  }
  if (a.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port_of(a));
  }
  return "-";
}

namespace {

int line_of(const toml::node& n) {
  return static_cast<int>(n.source().begin.line);
}

struct Fail {
  int line;
  std::string reason;
};

std::optional<Fail> parse_match(const toml::table& t, Manifest& m) {
  for (auto&& [key, node] : t) {
    std::string k(key.str());
    int line = line_of(node);
    if (k == "program") {
      auto v = node.value<std::string>();
      if (!node.is_string() || !v || v->empty())
        return Fail{line, "match.program must be a non-empty string"};
      m.program = *v;
    } else if (k == "protocol") {
      auto v = node.value<std::string>();
      if (!node.is_string() || !v || (*v != "tcp" && *v != "udp"))
        return Fail{line, "match.protocol must be \"tcp\" or \"udp\""};
      m.protocol = *v == "tcp" ? IPPROTO_TCP : IPPROTO_UDP;
    } else if (k == "remote") {
      auto v = node.value<std::string>();
      std::optional<Prefix> p;
      if (node.is_string() && v) p = Prefix::parse(*v);
      if (!p)
        return Fail{line, "match.remote must be an address or prefix such as \"198.51.100.0/24\""};
      m.remote = *p;
    } else if (k == "ports") {
      auto add = [&](const toml::node& n) -> bool {
        if (!n.is_integer()) return false;
        int64_t port = *n.value<int64_t>();
        if (port < 1 || port > 65535) return false;
        m.ports.push_back(static_cast<uint16_t>(port));
        return true;
      };
      bool ok = true;
      if (const auto* arr = node.as_array()) {
        if (arr->empty()) ok = false;
        for (const auto& e : *arr)
          ok = ok && add(e);
      } else {
        ok = add(node);
      }
      if (!ok) return Fail{line, "match.ports must be a port or a list of ports, each 1-65535"};
    } else if (k == "side") {
      auto v = node.value<std::string>();
      if (!node.is_string() || !v || (*v != "client" && *v != "server" && *v != "any"))
        return Fail{line, "match.side must be \"client\", \"server\" or \"any\""};
      m.side = *v == "client"   ? SideMatch::Client
               : *v == "server" ? SideMatch::Server
                                : SideMatch::Any;
    } else {
      return Fail{line,
                  "unknown key match." + k + " (known: program, protocol, remote, ports, side)"};
    }
  }
  return std::nullopt;
}

std::optional<Fail> parse_params(const toml::table& t, Manifest& m) {
  for (auto&& [key, node] : t) {
    std::string text;
    if (auto s = node.as_string()) {
      text = s->get();
    } else if (auto i = node.as_integer()) {
      text = std::to_string(i->get());
    } else if (auto f = node.as_floating_point()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", f->get());
      text = buf;
    } else if (auto b = node.as_boolean()) {
      text = b->get() ? "true" : "false";
    } else {
      return Fail{line_of(node),
                  "params." + std::string(key.str()) + " must be a string, number or boolean"};
    }
    m.params.emplace_back(std::string(key.str()), std::move(text));
  }
  return std::nullopt;
}

std::optional<Fail> parse_top(const toml::table& t, Manifest& m) {
  bool have_name = false, have_module = false;
  for (auto&& [key, node] : t) {
    std::string k(key.str());
    int line = line_of(node);
    if (k == "name") {
      auto v = node.value<std::string>();
      if (!node.is_string() || !v || v->empty())
        return Fail{line, "name must be a non-empty string"};
      m.name = *v;
      have_name = true;
    } else if (k == "module") {
      auto v = node.value<std::string>();
      if (!node.is_string() || !v || v->empty())
        return Fail{line, "module must be a built-in module name or a path to a .so"};
      m.module = *v;
      have_module = true;
    } else if (k == "order") {
      if (!node.is_integer()) return Fail{line, "order must be an integer"};
      m.order = *node.value<int64_t>();
    } else if (k == "match") {
      const auto* mt = node.as_table();
      if (!mt) return Fail{line, "match must be a table ([match])"};
      if (auto f = parse_match(*mt, m)) return f;
    } else if (k == "params") {
      const auto* pt = node.as_table();
      if (!pt) return Fail{line, "params must be a table ([params])"};
      if (auto f = parse_params(*pt, m)) return f;
    } else {
      return Fail{line, "unknown key " + k + " (known: name, module, order, match, params)"};
    }
  }
  if (!have_name) return Fail{1, "missing key name"};
  if (!have_module) return Fail{1, "missing key module"};
  return std::nullopt;
}

}  // namespace

ParseResult parse_manifest(std::string_view text, const std::string& file) {
  ParseResult r;
  r.problem.file = file;
  Manifest m;
  m.file = file;
  try {
    toml::table t = toml::parse(text, file);
    if (auto f = parse_top(t, m)) {
      r.problem.line = f->line;
      r.problem.reason = std::move(f->reason);
      return r;
    }
  } catch (const toml::parse_error& e) {
    r.problem.line = static_cast<int>(e.source().begin.line);
    r.problem.reason = std::string(e.description());
    return r;
  } catch (const std::exception& e) {  // e.g. bad_alloc on a hostile file: still a named reason
    r.problem.reason = std::string("cannot parse: ") + e.what();
    return r;
  }
  r.manifest = std::move(m);
  return r;
}

bool matches(const Manifest& m, const Context& c) {
  if (m.program && *m.program != c.program) return false;
  if (m.protocol && m.protocol != c.protocol) return false;
  if (m.side == SideMatch::Client && c.side != Side::Client) return false;
  if (m.side == SideMatch::Server && c.side != Side::Server) return false;
  if (m.remote && !m.remote->contains(c.remote)) return false;
  if (!m.ports.empty()) {
    uint16_t port = c.side == Side::Server ? port_of(c.local) : port_of(c.remote);
    if (port == 0 || std::find(m.ports.begin(), m.ports.end(), port) == m.ports.end()) return false;
  }
  return true;
}

namespace {
bool chain_less(const Manifest& a, const Manifest& b) {
  if (a.order != b.order) return a.order < b.order;
  if (a.name != b.name) return a.name < b.name;
  return a.file < b.file;
}
}  // namespace

std::vector<const Manifest*> select_chain(const std::vector<Manifest>& all, const Context& c) {
  std::vector<const Manifest*> out;
  for (const auto& m : all)
    if (matches(m, c)) out.push_back(&m);
  std::stable_sort(out.begin(), out.end(),
                   [](const Manifest* a, const Manifest* b) { return chain_less(*a, *b); });
  return out;
}

std::optional<std::string> insecure_reason(const std::string& path, const struct stat& st,
                                           uint32_t uid) {
  if (st.st_uid != 0 && st.st_uid != uid)
    return path + " is owned by uid " + std::to_string(st.st_uid) + ", not root or uid " +
           std::to_string(uid);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + " is " + ((st.st_mode & S_IWOTH) ? "world" : "group") + "-writable (mode " +
           mode + ")";
  }
  return std::nullopt;
}

DirLoad load_directory(const std::string& dir, uint32_t uid) {
  DirLoad out;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) out.refusal = dir + ": " + std::strerror(errno);
    return out;
  }
  out.exists = true;
  if (!S_ISDIR(st.st_mode)) {
    out.refusal = dir + " is not a directory";
    return out;
  }
  if (auto why = insecure_reason(dir, st, uid)) {
    out.refusal = *why;
    return out;
  }
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    out.refusal = dir + ": " + std::strerror(errno);
    return out;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".toml") == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());

  constexpr off_t kMaxManifest = 64 * 1024;
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      out.skipped.push_back({path, 0, std::strerror(errno)});
      continue;
    }
    struct stat fst {};
    if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
      ::close(fd);
      out.skipped.push_back({path, 0, "not a regular file"});
      continue;
    }
    if (auto why = insecure_reason(path, fst, uid)) {
      ::close(fd);
      out.refusal = *why;
      out.skipped.clear();
      return out;
    }
    if (fst.st_size > kMaxManifest) {
      ::close(fd);
      out.skipped.push_back({path, 0, "larger than 64 KiB"});
      continue;
    }
    std::string text(static_cast<size_t>(fst.st_size), '\0');
    ssize_t got = 0;
    while (got < fst.st_size) {
      ssize_t r = ::read(fd, text.data() + got, text.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += r;
    }
    ::close(fd);
    text.resize(static_cast<size_t>(got));
    texts.emplace_back(path, std::move(text));
  }
  for (auto& [path, text] : texts) {
    auto r = parse_manifest(text, path);
    if (!r.manifest) {
      out.skipped.push_back(std::move(r.problem));
      continue;
    }
    // A module given as a path must pass the same ownership checks as the directory.
    const std::string& mod = r.manifest->module;
    if (mod.find('/') != std::string::npos) {
      struct stat mst {};
      if (::stat(mod.c_str(), &mst) != 0) {
        out.skipped.push_back({path, 0, "module " + mod + ": " + std::strerror(errno)});
        continue;
      }
      if (auto why = insecure_reason(mod, mst, uid)) {
        out.refusal = *why;
        out.manifests.clear();
        out.skipped.clear();
        return out;
      }
    }
    out.manifests.push_back(std::move(*r.manifest));
  }
  std::stable_sort(out.manifests.begin(), out.manifests.end(), chain_less);
  return out;
}

}  // namespace l45::shim
