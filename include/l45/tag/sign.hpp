// Signed tags (the paper's section 4): what is signed and how keys are stored. The library signs
// (application id, socket cookie, time, tags) with the application's Ed25519 secret key
// (libsodium) and passes the socket itself to the daemon (SCM_RIGHTS); the daemon recomputes the
// message with the cookie of the socket it received, verifies it with the application's public
// key from the root-owned trust store, checks the time, and marks those tags signed.
//
//   message = "l45-tag-sign-v1" NUL | app (u32 LE) | cookie (u64 LE) | time (u64 LE, Unix s)
//             | tags (24 bytes each, l45/tag.h, flags zero)
//
// A signature replayed on another socket has the wrong cookie; one older (or newer) than
// kSignMaxAgeSec is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/tag.h"

namespace l45::tag {

constexpr const char* kDefaultSignSocket = "/run/l45/sign.sock";
constexpr int kSignMaxAgeSec = 60;
constexpr size_t kSignatureBytes = 64;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSecretKeyBytes = 64;

std::vector<uint8_t> sign_message(uint32_t app, uint64_t cookie, uint64_t time, const l45_tag* tags,
                                  size_t n);

std::string to_hex(const uint8_t* p, size_t n);
// Exactly `n` bytes of hex (surrounding whitespace ignored), or nullopt.
std::optional<std::vector<uint8_t>> from_hex(std::string_view s, size_t n);

// Key files: one line of hex. "<dir>/app-<ID>.pub" in the trust store, "app-<ID>.key" secret.
std::string public_key_path(const std::string& trust_store, uint32_t app);

}  // namespace l45::tag

namespace l45::tag {

// What the daemon checks before it marks tags signed. `tags_hex`, `sig_hex`, `app` and `time`
// come from the request; `cookie` from the socket received with it; `now` the daemon's clock.
struct SignCheck {
  bool ok = false;
  int err = 0;          // errno for the client: EACCES (refused), EINVAL (malformed)
  std::string message;  // why, in one line
  std::vector<l45_tag> tags;
};
SignCheck check_signature(const std::string& trust_store, uint32_t app, uint64_t time,
                          const std::string& tags_hex, const std::string& sig_hex, uint64_t cookie,
                          uint64_t now);

// Makes a key pair for `app`: the public key into the trust store (mode 0644, the store
// created 0755), the secret key to `secret_path` (mode 0600). Refuses to overwrite either.
// Returns an empty string or why it failed.
std::string keygen(const std::string& trust_store, uint32_t app, const std::string& secret_path);

}  // namespace l45::tag
