/* l45/tag.h: application tags on sockets (the tag pillar; the paper's SO_USERTAG without a kernel
 * patch). Plain C, versioned (L45_TAG_ABI_VERSION); link with -ll45tag.
 *
 * A tag is (application id, value); the value is a number or a short string (1 to 16 printable
 * ASCII bytes). A socket holds up to L45_TAG_MAX tags. Tags are set with setsockopt() on l45's own
 * option level, SOL_L45; an eBPF program loaded by `l45 tagd` validates them (bad input: EINVAL,
 * nothing stored), keeps them in socket-local storage (an accepted socket inherits its
 * listener's) and consumes the option. With no daemon's programs attached, nothing intercepts the
 * level and every call fails with ENOPROTOOPT ("Protocol not available").
 *
 *   int fd = socket(AF_INET, SOCK_STREAM, 0);
 *   struct l45_tag t;
 *   l45_tag_num(&t, 24, 26);             // application 24, tag 26
 *   if (l45_tag_add(fd, &t) < 0) perror("l45_tag_add");
 *   connect(fd, ...);                    // every packet now carries (24, 26) for the rules
 *
 * Every function returns 0 (or a count) on success and -1 with errno set on failure, as a system
 * call does.
 */
#ifndef L45_TAG_H
#define L45_TAG_H

#ifdef __bpf__
#include <linux/types.h>
typedef __u8 l45_u8;
typedef __u16 l45_u16;
typedef __u32 l45_u32;
typedef __u64 l45_u64;
#else
#include <stddef.h>
#include <stdint.h>
typedef uint8_t l45_u8;
typedef uint16_t l45_u16;
typedef uint32_t l45_u32;
typedef uint64_t l45_u64;
#endif

#define L45_TAG_ABI_VERSION 1

/* The option level: outside every level the kernel knows, so an unintercepted call gets
 * ENOPROTOOPT. */
#define SOL_L45 0x4c45

/* setsockopt(fd, SOL_L45, ...) option names. */
#define L45_SO_TAG_SET 1   /* optval: 0 to L45_TAG_MAX struct l45_tag; replaces all tags */
#define L45_SO_TAG_ADD 2   /* optval: one struct l45_tag; adding a present tag is a no-op */
#define L45_SO_TAG_DEL 3   /* optval: one struct l45_tag; ENOENT when absent */
#define L45_SO_TAG_CLEAR 4 /* optval ignored */
/* getsockopt(fd, SOL_L45, L45_SO_TAG_LIST, buf, &len): the tags, len = count * sizeof tag.
 * Zero buf first: for a socket without tags the kernel leaves len unchanged; a tag whose app is
 * 0 ends the list (l45_tag_list does this for you). */
#define L45_SO_TAG_LIST 1

#define L45_TAG_MAX 8
#define L45_TAG_STR_MAX 16

/* kind */
#define L45_TAG_NUM 1 /* value: little-endian 64-bit number in value[0..7], value[8..15] zero */
#define L45_TAG_STR 2 /* value: len bytes of printable ASCII (0x21-0x7e), the rest zero */

/* flags: zero when setting; set by the kernel side, seen by l45_tag_list */
#define L45_TAG_F_TRUSTED 0x1 /* set by a process of a trusted user (root by default) */
#define L45_TAG_F_SIGNED 0x2  /* verified against the trust store */
#define L45_TAG_F_EXEC 0x4    /* given at socket creation by `l45 tag exec` */

struct l45_tag {
  l45_u32 app; /* application id, not 0 */
  l45_u8 kind; /* L45_TAG_NUM or L45_TAG_STR */
  l45_u8 len;  /* string length (1..16); 8 for numbers */
  l45_u16 flags;
  l45_u8 value[L45_TAG_STR_MAX];
};

#ifndef __bpf__
#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version the library was built with (L45_TAG_ABI_VERSION). */
int l45_tag_abi_version(void);

/* Fill a tag. l45_tag_str fails with EINVAL for an empty, too long or non-printable string;
 * both fail with EINVAL for application id 0. */
int l45_tag_num(struct l45_tag* t, l45_u32 app, l45_u64 value);
int l45_tag_str(struct l45_tag* t, l45_u32 app, const char* value);

/* The socket's tags: replace all, add one, remove one, remove all. */
int l45_tag_set(int fd, const struct l45_tag* tags, size_t n);
int l45_tag_add(int fd, const struct l45_tag* t);
int l45_tag_remove(int fd, const struct l45_tag* t);
int l45_tag_clear(int fd);

/* Copies up to `cap` tags into `out`; returns how many the socket has (may exceed cap). */
int l45_tag_list(int fd, struct l45_tag* out, size_t cap);

/* "24:26" or "5:\"tenant-a\"" into buf (NUL-terminated); returns the length it needs, like
 * snprintf. */
int l45_tag_format(const struct l45_tag* t, char* buf, size_t size);

/* Signed tags. l45_tag_read_key reads an application's secret key file (made by `l45 tag keygen
 * --app ID`: one line of hex). l45_tag_sign signs `n` tags of one application that the socket
 * already has, together with the socket's cookie and the time, and hands the socket to the daemon
 * (socket L45_TAG_SIGN_SOCKET, or the environment variable of that name), which verifies the
 * signature against its trust store and marks the tags L45_TAG_F_SIGNED. Errors: EACCES (wrong
 * key, another application's key, expired), ENOENT (a tag is not on the socket), ECONNREFUSED
 * or ENOENT (no daemon), EINVAL (bad arguments). */
#define L45_TAG_SIGN_SOCKET "/run/l45/sign.sock"
int l45_tag_read_key(const char* path, unsigned char secret_key[64]);
int l45_tag_sign(int fd, const struct l45_tag* tags, size_t n, const unsigned char secret_key[64]);

#ifdef __cplusplus
}
#endif
#endif /* !__bpf__ */

#endif /* L45_TAG_H */
