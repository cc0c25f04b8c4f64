/* A statically linked TCP sender for tag_live_test.py: no libl45tag, no LD_PRELOAD possible.
 * `l45 tag exec` must tag its socket all the same (cgroup/sock_create).
 *   static_sender IPV4 PORT BYTES */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[2]));
  if (fd < 0 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) return 3;
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0) return 4;
  static char buf[1000];
  memset(buf, 's', sizeof buf);
  for (long left = atol(argv[3]); left > 0; left -= sizeof buf)
    if (write(fd, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf) < 0) return 5;
  shutdown(fd, SHUT_WR);
  char c;
  while (read(fd, &c, 1) > 0) {
  }
  close(fd);
  return 0;
}
