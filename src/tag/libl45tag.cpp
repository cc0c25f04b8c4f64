// libl45tag: the C ABI of l45/tag.h. Thin wrappers over setsockopt/getsockopt on SOL_L45; the
// checks here only spare a system call, the eBPF program checks everything again.
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "l45/tag.h"

namespace {

bool printable(const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

int fail(int e) {
  errno = e;
  return -1;
}

}  // namespace

extern "C" {

int l45_tag_abi_version(void) {
  return L45_TAG_ABI_VERSION;
}

int l45_tag_num(struct l45_tag* t, l45_u32 app, l45_u64 value) {
  if (!t || app == 0) return fail(EINVAL);
  std::memset(t, 0, sizeof *t);
  t->app = app;
  t->kind = L45_TAG_NUM;
  t->len = 8;
  for (int i = 0; i < 8; ++i)
    t->value[i] = static_cast<l45_u8>(value >> (8 * i));
  return 0;
}

int l45_tag_str(struct l45_tag* t, l45_u32 app, const char* value) {
  if (!t || !value || app == 0) return fail(EINVAL);
  size_t n = strnlen(value, L45_TAG_STR_MAX + 1);
  if (n == 0 || n > L45_TAG_STR_MAX || !printable(value, n)) return fail(EINVAL);
  std::memset(t, 0, sizeof *t);
  t->app = app;
  t->kind = L45_TAG_STR;
  t->len = static_cast<l45_u8>(n);
  std::memcpy(t->value, value, n);
  return 0;
}

int l45_tag_set(int fd, const struct l45_tag* tags, size_t n) {
  if (n > L45_TAG_MAX || (n && !tags)) return fail(EINVAL);
  return setsockopt(fd, SOL_L45, L45_SO_TAG_SET, tags, static_cast<socklen_t>(n * sizeof *tags));
}

int l45_tag_add(int fd, const struct l45_tag* t) {
  if (!t) return fail(EINVAL);
  return setsockopt(fd, SOL_L45, L45_SO_TAG_ADD, t, sizeof *t);
}

int l45_tag_remove(int fd, const struct l45_tag* t) {
  if (!t) return fail(EINVAL);
  return setsockopt(fd, SOL_L45, L45_SO_TAG_DEL, t, sizeof *t);
}

int l45_tag_clear(int fd) {
  int zero = 0;
  return setsockopt(fd, SOL_L45, L45_SO_TAG_CLEAR, &zero, sizeof zero);
}

int l45_tag_list(int fd, struct l45_tag* out, size_t cap) {
  if (cap && !out) return fail(EINVAL);
  struct l45_tag buf[L45_TAG_MAX];
  socklen_t len = sizeof buf;
  if (getsockopt(fd, SOL_L45, L45_SO_TAG_LIST, buf, &len) < 0) {
    // Unintercepted, TCP answers EOPNOTSUPP where setsockopt says ENOPROTOOPT: one errno for
    // "no l45 programs here".
    if (errno == EOPNOTSUPP) errno = ENOPROTOOPT;
    return -1;
  }
  if (len % sizeof buf[0] || len > sizeof buf) return fail(EPROTO);
  size_t n = len / sizeof buf[0];
  std::memcpy(out, buf, (n < cap ? n : cap) * sizeof buf[0]);
  return static_cast<int>(n);
}

int l45_tag_format(const struct l45_tag* t, char* buf, size_t size) {
  if (!t) return fail(EINVAL);
  if (t->kind == L45_TAG_NUM) {
    l45_u64 v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<l45_u64>(t->value[i]) << (8 * i);
    return std::snprintf(buf, size, "%u:%llu", t->app, static_cast<unsigned long long>(v));
  }
  int n = t->len > L45_TAG_STR_MAX ? L45_TAG_STR_MAX : t->len;
  return std::snprintf(buf, size, "%u:\"%.*s\"", t->app, n,
                       reinterpret_cast<const char*>(t->value));
}

}  // extern "C"
