#include "l45/tag/sign.hpp"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace l45::tag {
namespace {

class Signing : public ::testing::Test {
 protected:
  void SetUp() override {
    // The trust store must be root's: as another user every check is (rightly) refused.
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the trust store is root's)";
    ASSERT_GE(sodium_init(), 0);
    char tmpl[] = "/tmp/l45-sign-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = dir_ + "/trust";
    ASSERT_EQ(keygen(store_, 3, dir_ + "/app-3.key"), "");
    ASSERT_EQ(keygen(store_, 4, dir_ + "/app-4.key"), "");
    sk3_ = read_key(dir_ + "/app-3.key");
    sk4_ = read_key(dir_ + "/app-4.key");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  static std::vector<uint8_t> read_key(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return from_hex(ss.str(), kSecretKeyBytes).value_or(std::vector<uint8_t>{});
  }
  static l45_tag num(uint32_t app, uint8_t v) {
    l45_tag t{};
    t.app = app;
    t.kind = L45_TAG_NUM;
    t.len = 8;
    t.value[0] = v;
    return t;
  }
  // What the library sends: tags and signature in hex.
  std::pair<std::string, std::string> sign(const std::vector<uint8_t>& sk, uint32_t app,
                                           uint64_t cookie, uint64_t time,
                                           const std::vector<l45_tag>& tags) {
    auto m = sign_message(app, cookie, time, tags.data(), tags.size());
    uint8_t sig[kSignatureBytes];
    crypto_sign_detached(sig, nullptr, m.data(), m.size(), sk.data());
    return {to_hex(reinterpret_cast<const uint8_t*>(tags.data()), tags.size() * sizeof(l45_tag)),
            to_hex(sig, sizeof sig)};
  }

  std::string dir_, store_;
  std::vector<uint8_t> sk3_, sk4_;
};

TEST_F(Signing, KeygenWritesARootOnlySecretAndAPublicKey) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/app-3.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(public_key_path(store_, 3).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(sk3_.size(), kSecretKeyBytes);
  EXPECT_NE(keygen(store_, 3, dir_ + "/other.key"), "");  // never over an existing key
}

TEST_F(Signing, AValidSignatureOfTheRightSocketAndTimeIsAccepted) {
  auto [tags, sig] = sign(sk3_, 3, 77, 1000, {num(3, 1), num(3, 2)});
  auto c = check_signature(store_, 3, 1000, tags, sig, 77, 1030);
  ASSERT_TRUE(c.ok) << c.message;
  ASSERT_EQ(c.tags.size(), 2u);
  EXPECT_EQ(c.tags[1].value[0], 2);
}

TEST_F(Signing, AnotherSocketAnotherTimeOrAnotherTagIsRefused) {
  auto [tags, sig] = sign(sk3_, 3, 77, 1000, {num(3, 1)});
  EXPECT_EQ(check_signature(store_, 3, 1000, tags, sig, 78, 1000).err, EACCES);  // replayed
  EXPECT_EQ(check_signature(store_, 3, 1001, tags, sig, 77, 1000).err, EACCES);  // time changed
  auto [other, unused] = sign(sk3_, 3, 77, 1000, {num(3, 9)});
  EXPECT_EQ(check_signature(store_, 3, 1000, other, sig, 77, 1000).err, EACCES);
}

TEST_F(Signing, AnExpiredOrFutureSignatureIsRefused) {
  auto [tags, sig] = sign(sk3_, 3, 77, 1000, {num(3, 1)});
  auto c = check_signature(store_, 3, 1000, tags, sig, 77, 1000 + kSignMaxAgeSec + 1);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.message.find("expired"), std::string::npos);
  EXPECT_FALSE(check_signature(store_, 3, 1000, tags, sig, 77, 1000 - kSignMaxAgeSec - 1).ok);
}

TEST_F(Signing, AnotherApplicationsKeyOrTagIsRefused) {
  auto [tags, sig] = sign(sk4_, 3, 77, 1000, {num(3, 1)});  // app 4's key claims app 3
  EXPECT_EQ(check_signature(store_, 3, 1000, tags, sig, 77, 1000).err, EACCES);
  auto [t4, s4] = sign(sk4_, 4, 77, 1000, {num(3, 1)});  // app 4 signs app 3's tag
  auto c = check_signature(store_, 4, 1000, t4, s4, 77, 1000);
  EXPECT_EQ(c.err, EACCES);
  EXPECT_NE(c.message.find("application 3"), std::string::npos);
  auto [t9, s9] = sign(sk3_, 9, 77, 1000, {num(9, 1)});  // no key in the store
  EXPECT_EQ(check_signature(store_, 9, 1000, t9, s9, 77, 1000).err, EACCES);
}

TEST_F(Signing, MalformedRequestsAreEinval) {
  auto [tags, sig] = sign(sk3_, 3, 77, 1000, {num(3, 1)});
  EXPECT_EQ(check_signature(store_, 3, 1000, "", sig, 77, 1000).err, EINVAL);
  EXPECT_EQ(check_signature(store_, 3, 1000, tags + "00", sig, 77, 1000).err, EINVAL);
  EXPECT_EQ(check_signature(store_, 3, 1000, tags, sig.substr(2), 77, 1000).err, EINVAL);
  std::string bad = tags;
  bad[0] = 'z';
  EXPECT_EQ(check_signature(store_, 3, 1000, bad, sig, 77, 1000).err, EINVAL);
  l45_tag flagged = num(3, 1);
  flagged.flags = L45_TAG_F_SIGNED;  // a client cannot claim flags
  auto [tf, sf] = sign(sk3_, 3, 77, 1000, {flagged});
  (void)sf;
  std::string raw = to_hex(reinterpret_cast<const uint8_t*>(&flagged), sizeof flagged);
  EXPECT_EQ(check_signature(store_, 3, 1000, raw, sig, 77, 1000).err, EINVAL);
}

TEST_F(Signing, AKeyOthersCanWriteProvesNothing) {
  auto [tags, sig] = sign(sk3_, 3, 77, 1000, {num(3, 1)});
  ASSERT_EQ(::chmod(public_key_path(store_, 3).c_str(), 0666), 0);
  auto c = check_signature(store_, 3, 1000, tags, sig, 77, 1000);
  EXPECT_EQ(c.err, EACCES);
  EXPECT_NE(c.message.find("root's alone"), std::string::npos);
}

TEST(Hex, RoundTripAndRejects) {
  const uint8_t b[3] = {0x00, 0xab, 0xff};
  EXPECT_EQ(to_hex(b, 3), "00abff");
  auto back = from_hex(" 00ABff\n", 3);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ((*back)[1], 0xab);
  EXPECT_FALSE(from_hex("00ab", 3).has_value());
  EXPECT_FALSE(from_hex("00abfg", 3).has_value());
}

}  // namespace
}  // namespace l45::tag
