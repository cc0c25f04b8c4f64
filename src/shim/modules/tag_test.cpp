// The tag module without a daemon: its parameters, and a socket it cannot tag (the kernel
// refuses SOL_L45 when no l45 tagd is attached) left working and counted as failed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "builtin.hpp"

namespace l45::shim {
namespace {

struct Init {
  void* inst = nullptr;
  int ok = 0;
  std::string err;
};

Init init(std::initializer_list<l45_shim_param> params) {
  const l45_shim_module* mod = find_builtin("tag");
  std::vector<l45_shim_param> p(params);
  Init r;
  char err[160] = {};
  r.inst = mod->init(p.data(), p.size(), &r.ok, err, sizeof err);
  r.err = err;
  return r;
}

TEST(TagModule, ParametersAreCheckedWithTheirNames) {
  for (auto [params, why] :
       std::initializer_list<std::pair<std::vector<l45_shim_param>, const char*>>{
           {{{"tags", "7"}}, "needs params.app"},
           {{{"app", "7"}}, "needs params.tags"},
           {{{"app", "0"}, {"tags", "7"}}, "params.app"},
           {{{"app", "4294967296"}, {"tags", "7"}}, "params.app"},
           {{{"app", "1"}, {"tags", "7,,8"}}, "printable"},
           {{{"app", "1"}, {"tags", "a-string-longer-than-16"}}, "printable"},
           {{{"app", "1"}, {"tags", "1,2,3,4,5,6,7,8,9"}}, "more than 8"},
           {{{"app", "1"}, {"tags", "7"}, {"colour", "red"}}, "colour"}}) {
    const l45_shim_module* mod = find_builtin("tag");
    ASSERT_NE(mod, nullptr);
    int ok = 1;
    char err[160] = {};
    EXPECT_EQ(mod->init(params.data(), params.size(), &ok, err, sizeof err), nullptr);
    EXPECT_EQ(ok, 0);
    EXPECT_NE(std::string(err).find(why), std::string::npos) << err;
  }
}

TEST(TagModule, WithoutADaemonTheSocketStaysUntaggedAndCounted) {
  Init i = init({{"app", "24"}, {"tags", "26,video"}});
  ASSERT_EQ(i.ok, 1) << i.err;
  const l45_shim_module* mod = find_builtin("tag");
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  l45_shim_sock_ctx ctx{};
  ctx.size = sizeof ctx;
  ctx.fd = fd;
  ctx.protocol = IPPROTO_TCP;
  ctx.family = AF_INET;
  errno = 1234;
  void* s = mod->sock_create(i.inst, &ctx);
  EXPECT_EQ(errno, 1234) << "the program's errno is kept";
  l45_shim_counter c[4];
  ASSERT_EQ(mod->counters(s, c, 4), 2u);
  EXPECT_EQ(std::string(c[0].name), "tagged");
  EXPECT_EQ(std::string(c[1].name), "failed");
  // Without a daemon's programs on this test's cgroup the kernel refuses both (ENOPROTOOPT);
  // under one it takes both (tag_live checks that case). Never half.
  EXPECT_EQ(c[0].value + c[1].value, 2u);
  EXPECT_TRUE(c[0].value == 0 || c[1].value == 0);
  int type = 0;
  socklen_t len = sizeof type;
  EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);  // still a working socket
  mod->sock_destroy(s);
  mod->fini(i.inst);
  ::close(fd);
}

}  // namespace
}  // namespace l45::shim
