// libFuzzer target for the shim's untrusted configuration and wire input: manifest parsing
// (toml++ and every key check), matching a parsed manifest against a context, and the identity
// header reader. Besides not crashing, it checks the parser's promises: a refusal always carries
// a reason, and a parsed manifest's ports are all valid.
//
// Seeds: fuzz/corpus/shim_manifest (manifests, good and bad).
// Run:  ./build-fuzz/fuzz/shim_manifest_fuzz -max_total_time=60 fuzz/corpus/shim_manifest
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "l45/shim/identity.hpp"
#include "l45/shim/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace l45::shim;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ParseResult r = parse_manifest(text, "fuzz.toml");
  if (!r.manifest) {
    if (r.problem.reason.empty()) std::abort();  // every refusal says why
  } else {
    for (uint16_t p : r.manifest->ports)
      if (p == 0) std::abort();
    Context c;
    c.program = "socat";
    c.protocol = size % 2 ? IPPROTO_TCP : IPPROTO_UDP;
    c.side = size % 3 == 0 ? Side::Client : size % 3 == 1 ? Side::Server : Side::Unknown;
    auto* rem = reinterpret_cast<sockaddr_in6*>(&c.remote);
    rem->sin6_family = AF_INET6;
    rem->sin6_port = htons(static_cast<uint16_t>(size));
    for (size_t i = 0; i < 16 && i < size; ++i)
      rem->sin6_addr.s6_addr[i] = data[i];
    std::vector<Manifest> all{*r.manifest};
    (void)select_chain(all, c);
  }
  IdentityHeader h;
  if (parse_identity_header(data, size, &h) == IdentityParse::Ok && h.length > size) std::abort();
  return 0;
}
