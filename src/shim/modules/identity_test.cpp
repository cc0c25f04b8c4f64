#include "l45/shim/identity.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "builtin.hpp"

namespace l45::shim {
namespace {

TEST(IdentityHeader, RoundTripsEveryField) {
  IdentityHeader h{"socat", "host-a", "1000", "ticket-4711", 0};
  auto bytes = build_identity_header(h);
  ASSERT_GE(bytes.size(), kIdentityFixed);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "L45I");
  EXPECT_EQ(bytes[4], 1);
  EXPECT_EQ((bytes[6] << 8) | bytes[7], static_cast<int>(bytes.size()));
  IdentityHeader back;
  ASSERT_EQ(parse_identity_header(bytes.data(), bytes.size(), &back), IdentityParse::Ok);
  EXPECT_EQ(back.application, "socat");
  EXPECT_EQ(back.host, "host-a");
  EXPECT_EQ(back.uid, "1000");
  EXPECT_EQ(back.user, "ticket-4711");
  EXPECT_EQ(back.length, bytes.size());
}

TEST(IdentityHeader, PrefixNeedsMoreOtherBytesAreNotAHeader) {
  auto bytes = build_identity_header({"a", "b", "0", "", 0});
  for (size_t n = 1; n < bytes.size(); ++n)
    EXPECT_EQ(parse_identity_header(bytes.data(), n, nullptr), IdentityParse::NeedMore) << n;
  const uint8_t http[] = {'G', 'E', 'T', ' '};
  EXPECT_EQ(parse_identity_header(http, 4, nullptr), IdentityParse::NotIdentity);
  const uint8_t l4[] = {'L', '4', 'X'};
  EXPECT_EQ(parse_identity_header(l4, 3, nullptr), IdentityParse::NotIdentity);
}

TEST(IdentityHeader, MalformedLengthsAreNotAHeader) {
  auto bytes = build_identity_header({"app", "", "", "", 0});
  auto bad = bytes;
  bad[7] = 4;  // shorter than the fixed part
  EXPECT_EQ(parse_identity_header(bad.data(), bad.size(), nullptr), IdentityParse::NotIdentity);
  bad = bytes;
  bad[6] = 0x10;  // longer than 1024
  EXPECT_EQ(parse_identity_header(bad.data(), bad.size(), nullptr), IdentityParse::NotIdentity);
  bad = bytes;
  bad[9] = 200;  // a field running past the header
  EXPECT_EQ(parse_identity_header(bad.data(), bad.size(), nullptr), IdentityParse::NotIdentity);
  bad = bytes;
  bad[4] = 2;  // a version this reader does not know
  EXPECT_EQ(parse_identity_header(bad.data(), bad.size(), nullptr), IdentityParse::NotIdentity);
}

struct Collector {
  std::string out;
  static void emit(void* ctx, const void* d, size_t n) {
    static_cast<Collector*>(ctx)->out.append(static_cast<const char*>(d), n);
  }
};

struct ModuleSock {
  const l45_shim_module* mod;
  void* inst;
  void* sock;
  ModuleSock(int proto, std::vector<l45_shim_param> params = {}) {
    mod = find_builtin("identity");
    int ok = 0;
    char err[128];
    inst = mod->init(params.data(), params.size(), &ok, err, sizeof err);
    l45_shim_sock_ctx ctx{};
    ctx.size = sizeof ctx;
    ctx.program = "prog";
    ctx.protocol = proto;
    sock = mod->sock_create(inst, &ctx);
  }
  ~ModuleSock() {
    mod->sock_destroy(sock);
    mod->fini(inst);
  }
  uint64_t counter(const char* name) {
    l45_shim_counter c[8];
    size_t n = mod->counters(sock, c, 8);
    for (size_t i = 0; i < n; ++i)
      if (std::string(c[i].name) == name) return c[i].value;
    return ~0ull;
  }
};

TEST(IdentityModule, TcpStreamSplitAnywhereArrivesIntact) {
  ModuleSock tx(IPPROTO_TCP, {{"user", "u1"}});
  Collector wire;
  std::string msg1 = "hello ", msg2 = "world";
  tx.mod->egress(tx.sock, msg1.data(), msg1.size(), Collector::emit, &wire);
  tx.mod->egress(tx.sock, msg2.data(), msg2.size(), Collector::emit, &wire);
  ASSERT_GT(wire.out.size(), msg1.size() + msg2.size());
  EXPECT_EQ(wire.out.compare(0, 4, "L45I"), 0);
  EXPECT_EQ(wire.out.find("L45I", 4), std::string::npos) << "one header per connection";
  // Every split point of the wire bytes, fed in two pieces, gives back the original.
  for (size_t cut = 0; cut <= wire.out.size(); ++cut) {
    ModuleSock rx(IPPROTO_TCP);
    Collector app;
    rx.mod->ingress(rx.sock, wire.out.data(), cut, Collector::emit, &app);
    rx.mod->ingress(rx.sock, wire.out.data() + cut, wire.out.size() - cut, Collector::emit, &app);
    EXPECT_EQ(app.out, "hello world") << cut;
    EXPECT_EQ(rx.counter("stripped"), 1u);
  }
}

TEST(IdentityModule, StreamWithoutHeaderPassesUnchanged) {
  ModuleSock rx(IPPROTO_TCP);
  Collector app;
  std::string data = "L4";  // could still be a header: held
  rx.mod->ingress(rx.sock, data.data(), data.size(), Collector::emit, &app);
  EXPECT_EQ(app.out, "");
  std::string more = "x and the rest";
  rx.mod->ingress(rx.sock, more.data(), more.size(), Collector::emit, &app);
  EXPECT_EQ(app.out, "L4x and the rest");
  EXPECT_EQ(rx.counter("no_header"), 1u);
}

TEST(IdentityModule, EveryDatagramCarriesAndLosesItsHeader) {
  ModuleSock tx(IPPROTO_UDP);
  ModuleSock rx(IPPROTO_UDP);
  for (std::string d : {"one", "", "three"}) {
    Collector wire, app;
    tx.mod->egress(tx.sock, d.data(), d.size(), Collector::emit, &wire);
    EXPECT_EQ(wire.out.compare(0, 4, "L45I"), 0);
    rx.mod->ingress(rx.sock, wire.out.data(), wire.out.size(), Collector::emit, &app);
    EXPECT_EQ(app.out, d);
  }
  EXPECT_EQ(tx.counter("inserted"), 3u);
  EXPECT_EQ(rx.counter("stripped"), 3u);
  Collector app;
  std::string plain = "plain";
  rx.mod->ingress(rx.sock, plain.data(), plain.size(), Collector::emit, &app);
  EXPECT_EQ(app.out, "plain");
  EXPECT_EQ(rx.counter("no_header"), 1u);
}

TEST(IdentityModule, UnknownParameterIsRefusedWithItsName) {
  const l45_shim_module* mod = find_builtin("identity");
  l45_shim_param p{"colour", "red"};
  int ok = 1;
  char err[128] = {};
  EXPECT_EQ(mod->init(&p, 1, &ok, err, sizeof err), nullptr);
  EXPECT_EQ(ok, 0);
  EXPECT_NE(std::string(err).find("colour"), std::string::npos) << err;
}

TEST(Builtins, MonitorIdentityAndTagAreRegisteredWithTheCurrentAbi) {
  for (const char* name : {"monitor", "identity", "tag"}) {
    const l45_shim_module* m = find_builtin(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->abi_version, L45_SHIM_ABI_VERSION);
  }
  EXPECT_EQ(find_builtin("nope"), nullptr);
}

}  // namespace
}  // namespace l45::shim
