// libl45tag: the C ABI of l45/tag.h. Thin wrappers over setsockopt/getsockopt on SOL_L45; the
// checks here only spare a system call, the eBPF program checks everything again.
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "l45/tag.h"
#include "l45/tag/sign.hpp"

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
  // Zeroed first: for a socket without tags the kernel copies nothing and leaves len as it was
  // (a cgroup getsockopt program's optlen 0 means "no change"), and a tag's app is never 0.
  struct l45_tag buf[L45_TAG_MAX] = {};
  socklen_t len = sizeof buf;
  if (getsockopt(fd, SOL_L45, L45_SO_TAG_LIST, buf, &len) < 0) {
    // Unintercepted, TCP answers EOPNOTSUPP where setsockopt says ENOPROTOOPT: one errno for
    // "no l45 programs here".
    if (errno == EOPNOTSUPP) errno = ENOPROTOOPT;
    return -1;
  }
  if (len % sizeof buf[0] || len > sizeof buf) return fail(EPROTO);
  size_t n = 0;
  while (n < len / sizeof buf[0] && buf[n].app != 0)
    ++n;
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

int l45_tag_read_key(const char* path, unsigned char secret_key[64]) {
  if (!path || !secret_key) return fail(EINVAL);
  std::ifstream in(path);
  if (!in) return -1;  // errno from open
  std::stringstream ss;
  ss << in.rdbuf();
  auto key = l45::tag::from_hex(ss.str(), l45::tag::kSecretKeyBytes);
  if (!key) return fail(EINVAL);
  std::memcpy(secret_key, key->data(), key->size());
  sodium_memzero(key->data(), key->size());
  return 0;
}

int l45_tag_sign(int fd, const struct l45_tag* tags, size_t n, const unsigned char secret_key[64]) {
  if (!tags || n == 0 || n > L45_TAG_MAX || !secret_key) return fail(EINVAL);
  for (size_t i = 1; i < n; ++i)
    if (tags[i].app != tags[0].app) return fail(EINVAL);  // one application signs its own tags
  if (sodium_init() < 0) return fail(ENOSYS);
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0) return -1;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t t = static_cast<uint64_t>(now.tv_sec);
  auto msg = l45::tag::sign_message(tags[0].app, cookie, t, tags, n);
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, msg.data(), msg.size(), secret_key);
  std::string tag_hex;
  for (size_t i = 0; i < n; ++i) {
    l45_tag c = tags[i];
    c.flags = 0;
    tag_hex += l45::tag::to_hex(reinterpret_cast<const uint8_t*>(&c), sizeof c);
  }
  char req[1024];
  int req_len = std::snprintf(
      req, sizeof req, "{\"cmd\":\"sign\",\"app\":%u,\"time\":%llu,\"tags\":\"%s\",\"sig\":\"%s\"}",
      tags[0].app, static_cast<unsigned long long>(t), tag_hex.c_str(),
      l45::tag::to_hex(sig, sizeof sig).c_str());
  if (req_len <= 0 || static_cast<size_t>(req_len) >= sizeof req) return fail(EINVAL);

  const char* path = std::getenv("L45_TAG_SIGN_SOCKET");
  if (!path || !*path) path = l45::tag::kDefaultSignSocket;
  sockaddr_un sa{};
  if (std::strlen(path) >= sizeof sa.sun_path) return fail(ENAMETOOLONG);
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, path);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    close(s);
    return fail(e);
  }
  // The socket itself travels with the request: the daemon reads its cookie, not ours.
  iovec iov{req, static_cast<size_t>(req_len)};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0) {
    int e = errno;
    close(s);
    return fail(e);
  }
  pollfd p{s, POLLIN, 0};
  if (poll(&p, 1, 5000) <= 0) {
    close(s);
    return fail(ETIMEDOUT);
  }
  char reply[2048];
  ssize_t got = recv(s, reply, sizeof reply, 0);
  close(s);
  if (got <= 0) return fail(EPROTO);
  auto j = nlohmann::json::parse(reply, reply + got, nullptr, false);
  if (!j.is_object()) return fail(EPROTO);
  if (j.value("ok", false)) return 0;
  int e = j.value("errno", EACCES);
  return fail(e > 0 ? e : EACCES);
}

}  // extern "C"
