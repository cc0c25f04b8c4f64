/* The shim's per-process stats file: how a shimmed program publishes its sockets' counters and
 * how `l45 shim stats` reads them.
 *
 * Each process with at least one shimmed socket creates $L45_SHIM_RUNDIR/<pid>.stats (default
 * directory /run/l45/shim), a fixed-size file mapped shared: one header, then
 * L45_SHIM_STATS_SLOTS slots, one per socket. Counters are updated in place with relaxed atomic
 * adds, so a reader sees live values without any thread or signal in the program. A slot is free,
 * open or closed; a closed slot keeps its final counters until it is reused (the oldest closed
 * slot is reused when none is free). The file stays after the process exits; readers tell live
 * processes by their pid (`l45 shim stats --all` shows the others, `--prune` deletes them).
 *
 * All integers are native-endian: the file is read on the host that wrote it.
 */
#ifndef L45_SHIM_STATS_FORMAT_H
#define L45_SHIM_STATS_FORMAT_H

#include <stdint.h>

#define L45_SHIM_STATS_MAGIC "L45SHST\x01"
#define L45_SHIM_STATS_VERSION 1u
#define L45_SHIM_STATS_SLOTS 256u
#define L45_SHIM_STATS_BUCKETS 16u /* latency: [0,1us), [1,2us), ... [2^13, 2^14us), >= 16.4 ms */
#define L45_SHIM_STATS_EXTRA 6u    /* counters a module reports through its counters hook */

enum { L45_SLOT_FREE = 0, L45_SLOT_OPEN = 1, L45_SLOT_CLOSED = 2 };

struct l45_shim_stats_header {
  char magic[8];
  uint32_t version;
  uint32_t header_size; /* sizeof(struct l45_shim_stats_header) */
  uint32_t slot_size;   /* sizeof(struct l45_shim_stats_slot) */
  uint32_t nslots;
  int32_t pid;
  uint32_t uid;
  uint64_t start_ns;    /* CLOCK_REALTIME */
  uint64_t unpublished; /* sockets that found no slot */
  char program[64];
  char path[256];
};

struct l45_shim_stats_extra {
  char name[24];
  uint64_t value;
};

struct l45_shim_stats_slot {
  uint32_t state; /* L45_SLOT_* */
  int32_t fd;
  uint8_t protocol; /* IPPROTO_TCP / IPPROTO_UDP */
  uint8_t family;   /* AF_INET / AF_INET6 */
  uint8_t side;     /* enum l45_shim_side */
  uint8_t pad[5];   /* pad[0]: a monitor module counts into this slot */
  uint64_t opened_ns;
  uint64_t closed_ns;
  char local[56];
  char remote[56];
  char chain[64]; /* manifest names, comma-separated */
  uint64_t bytes_out, bytes_in;
  uint64_t msgs_out, msgs_in;
  uint64_t calls_out, calls_in;
  uint64_t errors_out, errors_in;
  uint64_t lat_out[L45_SHIM_STATS_BUCKETS];
  uint64_t lat_in[L45_SHIM_STATS_BUCKETS];
  struct l45_shim_stats_extra extra[L45_SHIM_STATS_EXTRA];
};

#endif /* L45_SHIM_STATS_FORMAT_H */
