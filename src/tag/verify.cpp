// The daemon's side of signed tags (l45/tag/sign.hpp): key generation and verification.
#include <fcntl.h>
#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "l45/tag/sign.hpp"
#include "l45/tag/system.hpp"

namespace l45::tag {

namespace {

SignCheck refuse(int err, std::string why) {
  SignCheck c;
  c.err = err;
  c.message = std::move(why);
  return c;
}

bool valid_tag(const l45_tag& t) {
  if (t.app == 0 || t.flags != 0) return false;
  if (t.kind == L45_TAG_NUM) {
    if (t.len != 8) return false;
    for (int i = 8; i < L45_TAG_STR_MAX; ++i)
      if (t.value[i]) return false;
    return true;
  }
  if (t.kind != L45_TAG_STR || t.len == 0 || t.len > L45_TAG_STR_MAX) return false;
  for (int i = 0; i < L45_TAG_STR_MAX; ++i) {
    if (i < t.len ? (t.value[i] < 0x21 || t.value[i] > 0x7e) : t.value[i] != 0) return false;
  }
  return true;
}

bool write_new(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fchmod(fd, mode) == 0 && ok;
  ::close(fd);
  return ok;
}

}  // namespace

SignCheck check_signature(const std::string& trust_store, uint32_t app, uint64_t time,
                          const std::string& tags_hex, const std::string& sig_hex, uint64_t cookie,
                          uint64_t now) {
  if (sodium_init() < 0) return refuse(ENOSYS, "libsodium cannot start");
  if (app == 0) return refuse(EINVAL, "application id 0");
  size_t n = tags_hex.size() / (2 * sizeof(l45_tag));
  if (n == 0 || n > L45_TAG_MAX || tags_hex.size() != n * 2 * sizeof(l45_tag))
    return refuse(EINVAL, "tags: 1 to 8 tags of 24 bytes, in hex");
  auto raw = from_hex(tags_hex, n * sizeof(l45_tag));
  auto sig = from_hex(sig_hex, kSignatureBytes);
  if (!raw || !sig) return refuse(EINVAL, "tags or signature is not hex of the right length");
  std::vector<l45_tag> tags(n);
  std::memcpy(tags.data(), raw->data(), raw->size());
  for (const auto& t : tags) {
    if (!valid_tag(t)) return refuse(EINVAL, "a malformed tag");
    if (t.app != app)
      return refuse(EACCES, fmt::format("tag of application {} in a request of "
                                        "application {}",
                                        t.app, app));
  }
  // The trust store is root's: a key anyone else could have written proves nothing.
  std::string path = public_key_path(trust_store, app);
  struct stat dir {
  }, st{};
  if (::stat(trust_store.c_str(), &dir) < 0 || dir.st_uid != 0 || (dir.st_mode & 022))
    return refuse(EACCES,
                  fmt::format("trust store {} is missing or not root's alone", trust_store));
  if (::stat(path.c_str(), &st) < 0)
    return refuse(EACCES, fmt::format("no public key for application {} in the trust store", app));
  if (st.st_uid != 0 || (st.st_mode & 022) || !S_ISREG(st.st_mode))
    return refuse(EACCES, fmt::format("{} is not root's alone", path));
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto pk = from_hex(ss.str(), kPublicKeyBytes);
  if (!pk) return refuse(EACCES, fmt::format("{} does not hold a public key", path));
  auto msg = sign_message(app, cookie, time, tags.data(), n);
  if (crypto_sign_verify_detached(sig->data(), msg.data(), msg.size(), pk->data()) != 0)
    return refuse(EACCES, "bad signature: not application " + std::to_string(app) +
                              "'s key, or signed for another socket or time");
  uint64_t age = now > time ? now - time : time - now;
  if (age > static_cast<uint64_t>(kSignMaxAgeSec))
    return refuse(EACCES, fmt::format("signature expired ({} s from now; at most {} s)", age,
                                      kSignMaxAgeSec));
  SignCheck ok;
  ok.ok = true;
  ok.tags = std::move(tags);
  return ok;
}

std::string keygen(const std::string& trust_store, uint32_t app, const std::string& secret_path) {
  if (sodium_init() < 0) return "libsodium cannot start";
  if (app == 0) return "application id 0";
  if (auto r = make_dirs(trust_store, 0755); !r.ok()) return r.error().message();
  std::string pub_path = public_key_path(trust_store, app);
  if (::access(pub_path.c_str(), F_OK) == 0)
    return fmt::format("{} exists: application {} has a key already (remove it first)", pub_path,
                       app);
  if (::access(secret_path.c_str(), F_OK) == 0) return fmt::format("{} exists", secret_path);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  std::string sk_hex = to_hex(sk, sizeof sk) + "\n";
  sodium_memzero(sk, sizeof sk);
  bool ok = write_new(secret_path, sk_hex, 0600);
  sodium_memzero(sk_hex.data(), sk_hex.size());
  if (!ok) return fmt::format("writing {}: {}", secret_path, std::strerror(errno));
  if (!write_new(pub_path, to_hex(pk, sizeof pk) + "\n", 0644)) {
    std::string why = fmt::format("writing {}: {}", pub_path, std::strerror(errno));
    ::unlink(secret_path.c_str());
    return why;
  }
  return {};
}

}  // namespace l45::tag
