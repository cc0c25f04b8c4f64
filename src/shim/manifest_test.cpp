#include "l45/shim/manifest.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace l45::shim {
namespace {

constexpr const char* kIssueExample = R"(name = "fec-video"
module = "fec"            # a built-in name or a path to a .so
order = 10                # lower runs first on egress
[match]                   # every key optional; all given keys must match
program = "socat"         # executable name
protocol = "udp"          # tcp | udp
remote = "198.51.100.0/24"
ports = [5000]            # remote port, or local port on the server side
side = "any"              # client | server | any
[params]
k = 10
m = 3
max_delay_ms = 20
)";

sockaddr_storage v4(const char* a, uint16_t port) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  inet_pton(AF_INET, a, &s->sin_addr);
  return ss;
}

sockaddr_storage v6(const char* a, uint16_t port) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  inet_pton(AF_INET6, a, &s->sin6_addr);
  return ss;
}

Manifest parse_ok(const std::string& text) {
  auto r = parse_manifest(text, "t.toml");
  EXPECT_TRUE(r.manifest) << r.problem.to_string();
  return r.manifest ? *r.manifest : Manifest{};
}

Problem parse_bad(const std::string& text) {
  auto r = parse_manifest(text, "t.toml");
  EXPECT_FALSE(r.manifest);
  return r.problem;
}

TEST(Manifest, ParsesEveryKeyOfTheIssueExample) {
  Manifest m = parse_ok(kIssueExample);
  EXPECT_EQ(m.name, "fec-video");
  EXPECT_EQ(m.module, "fec");
  EXPECT_EQ(m.order, 10);
  EXPECT_EQ(m.program, "socat");
  EXPECT_EQ(m.protocol, IPPROTO_UDP);
  ASSERT_TRUE(m.remote);
  EXPECT_EQ(m.remote->len, 24);
  EXPECT_EQ(m.ports, std::vector<uint16_t>{5000});
  EXPECT_EQ(m.side, SideMatch::Any);
  std::vector<std::pair<std::string, std::string>> want = {
      {"k", "10"}, {"m", "3"}, {"max_delay_ms", "20"}};
  EXPECT_EQ(m.params, want);
}

TEST(Manifest, OnlyNameAndModuleAreRequired) {
  Manifest m = parse_ok("name = \"a\"\nmodule = \"monitor\"\n");
  EXPECT_EQ(m.order, 0);
  EXPECT_FALSE(m.program);
  EXPECT_EQ(m.protocol, 0);
  EXPECT_TRUE(m.ports.empty());
}

TEST(Manifest, MisspeltMatchKeyIsRefusedWithItsLine) {
  Problem p = parse_bad("name = \"a\"\nmodule = \"monitor\"\n[match]\nprogam = \"socat\"\n");
  EXPECT_EQ(p.line, 4);
  EXPECT_NE(p.reason.find("unknown key match.progam"), std::string::npos) << p.reason;
  EXPECT_EQ(p.to_string().rfind("t.toml:4: ", 0), 0u) << p.to_string();
}

TEST(Manifest, EveryBadValueGetsItsLineAndAReason) {
  struct Case {
    const char* text;
    int line;
    const char* reason;
  } cases[] = {
      {"name = \"a\"\nmodule = \"m\"\n[match]\nports = [0]\n", 4, "match.ports"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nports = [70000]\n", 4, "match.ports"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nports = []\n", 4, "match.ports"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nports = [\"80\"]\n", 4, "match.ports"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nprotocol = \"sctp\"\n", 4, "match.protocol"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nremote = \"198.51.100.0/33\"\n", 4, "match.remote"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nremote = \"bogus\"\n", 4, "match.remote"},
      {"name = \"a\"\nmodule = \"m\"\n[match]\nside = \"both\"\n", 4, "match.side"},
      {"name = \"a\"\nmodule = \"m\"\norder = \"first\"\n", 3, "order must be an integer"},
      {"name = \"\"\nmodule = \"m\"\n", 1, "name"},
      {"module = \"m\"\n", 1, "missing key name"},
      {"name = \"a\"\n", 1, "missing key module"},
      {"name = \"a\"\nmodule = \"m\"\ncolour = 1\n", 3, "unknown key colour"},
      {"name = \"a\"\nmodule = \"m\"\nmatch = 3\n", 3, "match must be a table"},
      {"name = \"a\"\nmodule = \"m\"\n[params]\nlist = [1, 2]\n", 4, "params.list"},
  };
  for (const auto& c : cases) {
    Problem p = parse_bad(c.text);
    EXPECT_EQ(p.line, c.line) << c.text;
    EXPECT_NE(p.reason.find(c.reason), std::string::npos) << c.text << " -> " << p.reason;
  }
}

TEST(Manifest, TomlSyntaxErrorReportsTheParsersLine) {
  Problem p = parse_bad("name = \"a\"\nmodule = \"m\"\n\norder = = 3\n");
  EXPECT_EQ(p.line, 4);
  EXPECT_FALSE(p.reason.empty());
}

TEST(Manifest, ParamsArePassedAsTextInKeyOrder) {
  Manifest m =
      parse_ok("name = \"a\"\nmodule = \"m\"\n[params]\ns = \"x y\"\nb = true\nf = 0.5\ni = -7\n");
  std::vector<std::pair<std::string, std::string>> want = {
      {"b", "true"}, {"f", "0.5"}, {"i", "-7"}, {"s", "x y"}};
  EXPECT_EQ(m.params, want);
}

TEST(Prefix, ContainsV4V6AndV4MappedAddresses) {
  auto p = Prefix::parse("198.51.100.0/24");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(v4("198.51.100.77", 1)));
  EXPECT_FALSE(p->contains(v4("198.51.101.1", 1)));
  EXPECT_TRUE(p->contains(v6("::ffff:198.51.100.9", 1)));
  EXPECT_FALSE(p->contains(v6("fd00::1", 1)));
  auto q = Prefix::parse("fd00:45::/32");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->contains(v6("fd00:45::2", 1)));
  EXPECT_FALSE(q->contains(v6("fd00:46::2", 1)));
  EXPECT_FALSE(q->contains(v4("198.51.100.1", 1)));
  auto host = Prefix::parse("203.0.113.5");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->len, 32);
  EXPECT_TRUE(host->contains(v4("203.0.113.5", 9)));
  EXPECT_FALSE(host->contains(v4("203.0.113.4", 9)));
  auto odd = Prefix::parse("192.0.2.128/25");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(v4("192.0.2.200", 1)));
  EXPECT_FALSE(odd->contains(v4("192.0.2.100", 1)));
  EXPECT_FALSE(Prefix::parse("192.0.2.0/"));
  EXPECT_FALSE(Prefix::parse("192.0.2.0/x"));
  sockaddr_storage unknown{};
  EXPECT_FALSE(p->contains(unknown));
}

Context ctx(const char* program, int proto, Side side, sockaddr_storage local,
            sockaddr_storage remote) {
  Context c;
  c.program = program;
  c.protocol = proto;
  c.family = AF_INET;
  c.side = side;
  c.local = local;
  c.remote = remote;
  return c;
}

TEST(Match, EveryGivenKeyMustMatch) {
  Manifest m = parse_ok(kIssueExample);
  auto client =
      ctx("socat", IPPROTO_UDP, Side::Client, v4("192.0.2.1", 40000), v4("198.51.100.1", 5000));
  EXPECT_TRUE(matches(m, client));
  auto other = client;
  other.program = "nc";
  EXPECT_FALSE(matches(m, other));
  other = client;
  other.protocol = IPPROTO_TCP;
  EXPECT_FALSE(matches(m, other));
  other = client;
  other.remote = v4("203.0.113.1", 5000);
  EXPECT_FALSE(matches(m, other));
  other = client;
  other.remote = v4("198.51.100.1", 5001);
  EXPECT_FALSE(matches(m, other));
  other = client;
  other.remote = {};
  EXPECT_FALSE(matches(m, other)) << "an unknown remote never matches a remote prefix";
}

TEST(Match, PortsMeanTheLocalPortOnTheServerSide) {
  Manifest m = parse_ok("name = \"a\"\nmodule = \"m\"\n[match]\nports = [80, 443]\n");
  auto server =
      ctx("nginx", IPPROTO_TCP, Side::Server, v4("198.51.100.1", 80), v4("198.51.100.2", 51000));
  EXPECT_TRUE(matches(m, server));
  auto client =
      ctx("curl", IPPROTO_TCP, Side::Client, v4("198.51.100.2", 51000), v4("198.51.100.1", 443));
  EXPECT_TRUE(matches(m, client));
  client.remote = v4("198.51.100.1", 8080);
  EXPECT_FALSE(matches(m, client));
  server.local = v4("198.51.100.1", 8080);
  server.remote = v4("198.51.100.2", 80);
  EXPECT_FALSE(matches(m, server)) << "the server side is matched on its own port";
}

TEST(Match, SideClientServerAny) {
  Manifest c = parse_ok("name = \"a\"\nmodule = \"m\"\n[match]\nside = \"client\"\n");
  Manifest s = parse_ok("name = \"a\"\nmodule = \"m\"\n[match]\nside = \"server\"\n");
  Manifest a = parse_ok("name = \"a\"\nmodule = \"m\"\n[match]\nside = \"any\"\n");
  auto cl = ctx("x", IPPROTO_TCP, Side::Client, {}, v4("192.0.2.1", 1));
  auto sv = ctx("x", IPPROTO_TCP, Side::Server, v4("192.0.2.1", 1), {});
  auto unk = ctx("x", IPPROTO_UDP, Side::Unknown, {}, {});
  EXPECT_TRUE(matches(c, cl));
  EXPECT_FALSE(matches(c, sv));
  EXPECT_FALSE(matches(s, cl));
  EXPECT_TRUE(matches(s, sv));
  EXPECT_TRUE(matches(a, cl) && matches(a, sv) && matches(a, unk));
  EXPECT_FALSE(matches(c, unk) || matches(s, unk));
}

TEST(Chain, OrderedByOrderThenNameAndOnlyMatchingOnes) {
  std::vector<Manifest> all;
  all.push_back(parse_ok("name = \"late\"\nmodule = \"m\"\norder = 30\n"));
  all.push_back(parse_ok("name = \"b-early\"\nmodule = \"m\"\norder = -5\n"));
  all.push_back(parse_ok("name = \"a-early\"\nmodule = \"m\"\norder = -5\n"));
  all.push_back(
      parse_ok("name = \"udp-only\"\nmodule = \"m\"\norder = 1\n[match]\nprotocol = \"udp\"\n"));
  all.push_back(parse_ok("name = \"mid\"\nmodule = \"m\"\norder = 10\n"));
  auto c = ctx("x", IPPROTO_TCP, Side::Client, {}, v4("192.0.2.1", 1));
  std::vector<std::string> names;
  for (const auto* m : select_chain(all, c))
    names.push_back(m->name);
  EXPECT_EQ(names, (std::vector<std::string>{"a-early", "b-early", "mid", "late"}));
}

// A scratch directory, removed at the end.
class Dir {
 public:
  Dir() {
    char tmpl[] = "/tmp/l45-shim-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
    ::chmod(path_.c_str(), 0755);
  }
  ~Dir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Directory, LoadsGoodManifestsAndSkipsBadOnesWithFileAndLine) {
  Dir d;
  d.write("20-mon.toml", "name = \"mon\"\nmodule = \"monitor\"\norder = 20\n");
  d.write("10-id.toml", "name = \"id\"\nmodule = \"identity\"\norder = 10\n");
  d.write("30-bad.toml", "name = \"bad\"\nmodule = \"monitor\"\n[match]\nports = [0]\n");
  d.write("README", "not a manifest");
  DirLoad l = load_directory(d.path(), getuid());
  EXPECT_TRUE(l.exists);
  EXPECT_FALSE(l.refusal);
  ASSERT_EQ(l.manifests.size(), 2u);
  EXPECT_EQ(l.manifests[0].name, "id");
  EXPECT_EQ(l.manifests[1].name, "mon");
  ASSERT_EQ(l.skipped.size(), 1u);
  EXPECT_EQ(l.skipped[0].to_string().rfind(d.path() + "/30-bad.toml:4: ", 0), 0u)
      << l.skipped[0].to_string();
}

TEST(Directory, GroupOrWorldWritableDirectoryLoadsNothingAndSaysWhy) {
  Dir d;
  d.write("mon.toml", "name = \"mon\"\nmodule = \"monitor\"\n");
  ::chmod(d.path().c_str(), 0775);
  DirLoad l = load_directory(d.path(), getuid());
  ASSERT_TRUE(l.refusal);
  EXPECT_NE(l.refusal->find("group-writable (mode 0775)"), std::string::npos) << *l.refusal;
  EXPECT_TRUE(l.manifests.empty());
  ::chmod(d.path().c_str(), 0757);
  l = load_directory(d.path(), getuid());
  ASSERT_TRUE(l.refusal);
  EXPECT_NE(l.refusal->find("world-writable"), std::string::npos) << *l.refusal;
}

TEST(Directory, OneWritableManifestRefusesTheWholeDirectory) {
  Dir d;
  d.write("a.toml", "name = \"a\"\nmodule = \"monitor\"\n");
  std::string bad = d.write("b.toml", "name = \"b\"\nmodule = \"monitor\"\n", 0666);
  DirLoad l = load_directory(d.path(), getuid());
  ASSERT_TRUE(l.refusal);
  EXPECT_NE(l.refusal->find(bad), std::string::npos) << *l.refusal;
  EXPECT_TRUE(l.manifests.empty());
}

TEST(Directory, OwnedBySomeoneElseIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  Dir d;
  std::string f = d.write("a.toml", "name = \"a\"\nmodule = \"monitor\"\n");
  ASSERT_EQ(::chown(f.c_str(), 12345, 12345), 0);
  DirLoad l = load_directory(d.path(), 0);
  ASSERT_TRUE(l.refusal);
  EXPECT_NE(l.refusal->find("owned by uid 12345"), std::string::npos) << *l.refusal;
  // The owner itself may use it (tests point --modules at their own directory).
  ASSERT_EQ(::chown(d.path().c_str(), 12345, 12345), 0);
  l = load_directory(d.path(), 12345);
  EXPECT_FALSE(l.refusal) << *l.refusal;
}

TEST(Directory, ModuleSharedObjectMustPassTheSameChecks) {
  Dir d;
  std::string so = d.write("mod.so", "not really", 0666);
  d.write("a.toml", "name = \"a\"\nmodule = \"" + so + "\"\n");
  DirLoad l = load_directory(d.path(), getuid());
  ASSERT_TRUE(l.refusal);
  EXPECT_NE(l.refusal->find("mod.so is world-writable"), std::string::npos) << *l.refusal;
}

TEST(Directory, MissingDirectoryIsEmptyNotAnError) {
  DirLoad l = load_directory("/nonexistent/l45/modules.d", getuid());
  EXPECT_FALSE(l.exists);
  EXPECT_FALSE(l.refusal);
  EXPECT_TRUE(l.manifests.empty());
}

TEST(Endpoint, FormatsBothFamiliesAndUnknown) {
  EXPECT_EQ(format_endpoint(v4("198.51.100.1", 80)), "198.51.100.1:80");
  EXPECT_EQ(format_endpoint(v6("fd00::1", 443)), "[fd00::1]:443");
  EXPECT_EQ(format_endpoint(sockaddr_storage{}), "-");
}

}  // namespace
}  // namespace l45::shim
