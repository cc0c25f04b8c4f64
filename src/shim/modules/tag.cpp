// tag: puts the tag pillar's tags (l45/tag.h) on the sockets its manifest matches, so rules of
// `l45 tagd` see an unmodified program's traffic as the program would have tagged it.
//
//   name = "tag-backup"
//   module = "tag"
//   [match]
//   program = "rsync"
//   [params]
//   app = 7                  # application id, 1 to 2^32-1
//   tags = "3,nightly"       # comma-separated: numbers, or strings of 1-16 printable bytes
//
// The tags go on when the shim builds the socket's chain: at connect() for a client (after the
// SYN: rules that count, log, drop or throttle see every later packet; a `mark` rule's routing
// needs the tag before connect(), so use `l45 tag exec` for that), at accept() or the first
// send for a server. With no l45 tagd running the kernel refuses the option (ENOPROTOOPT): the
// program runs untagged, the shim says so once on stderr, and the socket's `failed` counter
// shows it.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "builtin.hpp"
#include "l45/tag.h"

namespace l45::shim {
namespace {

struct Instance {
  std::vector<l45_tag> tags;
};

struct Sock {
  uint64_t tagged = 0, failed = 0;
};

// One tag of the `tags` list, as l45/tag.h lays it out (what l45_tag_num / l45_tag_str fill;
// the shim does not link libl45tag, so it sets the fields itself).
bool parse_tag(std::string_view v, uint32_t app, l45_tag* t) {
  std::memset(t, 0, sizeof *t);
  t->app = app;
  uint64_t num = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), num);
  if (!v.empty() && ec == std::errc() && end == v.data() + v.size()) {
    t->kind = L45_TAG_NUM;
    t->len = 8;
    for (int i = 0; i < 8; ++i)
      t->value[i] = static_cast<l45_u8>(num >> (8 * i));
    return true;
  }
  if (v.empty() || v.size() > L45_TAG_STR_MAX) return false;
  for (char c : v)
    if (c < 0x21 || c > 0x7e) return false;
  t->kind = L45_TAG_STR;
  t->len = static_cast<l45_u8>(v.size());
  std::memcpy(t->value, v.data(), v.size());
  return true;
}

void* tag_init(const l45_shim_param* params, size_t n, int* ok, char* err, size_t errlen) {
  auto* inst = new Instance;
  uint64_t app = 0;
  std::string_view list;
  auto bad = [&](const char* why, std::string_view what) {
    std::snprintf(err, errlen, "tag: %s '%.*s'", why, static_cast<int>(what.size()), what.data());
    delete inst;
    *ok = 0;
    return nullptr;
  };
  for (size_t i = 0; i < n; ++i) {
    std::string_view k = params[i].key, v = params[i].value;
    if (k == "app") {
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), app);
      if (ec != std::errc() || end != v.data() + v.size() || app == 0 || app > UINT32_MAX)
        return bad("params.app must be 1 to 4294967295, not", v);
    } else if (k == "tags") {
      list = v;
    } else {
      return bad("unknown parameter", k);
    }
  }
  if (app == 0) return bad("needs params.app", "");
  if (list.empty()) return bad("needs params.tags", "");
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view one = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    l45_tag t;
    if (!parse_tag(one, static_cast<uint32_t>(app), &t))
      return bad("a tag is a number or 1-16 printable bytes, not", one);
    if (inst->tags.size() == L45_TAG_MAX) return bad("more than 8 tags in", params[0].value);
    inst->tags.push_back(t);
  }
  *ok = 1;
  return inst;
}

void tag_fini(void* instance) {
  delete static_cast<Instance*>(instance);
}

void* tag_sock_create(void* instance, const l45_shim_sock_ctx* ctx) {
  auto* inst = static_cast<Instance*>(instance);
  auto* s = new Sock;
  for (const l45_tag& t : inst->tags) {
    const int saved = errno;
    if (setsockopt(ctx->fd, SOL_L45, L45_SO_TAG_ADD, &t, sizeof t) == 0) {
      ++s->tagged;
    } else {
      ++s->failed;
      static std::atomic<bool> said{false};
      if (!said.exchange(true)) {
        char line[200];
        const int n = std::snprintf(
            line, sizeof line, "l45 shim: tag module: cannot tag sockets: %s%s\n",
            std::strerror(errno),
            errno == ENOPROTOOPT ? " (is l45 tagd running, attached to this cgroup?)" : "");
        if (n > 0) (void)!::write(2, line, std::min<size_t>(size_t(n), sizeof line - 1));
      }
    }
    errno = saved;
  }
  return s;
}

size_t tag_counters(void* sock, l45_shim_counter* out, size_t max) {
  auto* s = static_cast<Sock*>(sock);
  const NamedCounter c[] = {{"tagged", s->tagged}, {"failed", s->failed}};
  return fill_counters(c, out, max);
}

void tag_sock_destroy(void* sock) {
  delete static_cast<Sock*>(sock);
}

const l45_shim_module kTagModule = {
    L45_SHIM_ABI_VERSION, "tag",   tag_init,         tag_fini,
    tag_sock_create,      nullptr, nullptr,          nullptr,
    tag_counters,         nullptr, tag_sock_destroy,
};

}  // namespace
}  // namespace l45::shim

L45_SHIM_BUILTIN(l45::shim::kTagModule);
