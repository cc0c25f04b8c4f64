// Writing and reading the shim's per-process stats files (format: l45/shim/stats_format.h).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "l45/shim/stats_format.h"

namespace l45::shim {

// $L45_SHIM_RUNDIR, else /run/l45/shim.
std::string stats_rundir();

// The writer side, inside a shimmed process. Thread-safe and fork-aware: a forked child gets a
// file of its own, where the sockets it inherited count from zero at the slot addresses they
// had (so pointers to them stay valid); its parent's file keeps the parent's counts.
class StatsPublisher {
 public:
  // A free slot of this process's file, marked open, or nullptr (no room, or the file cannot be
  // created: `error` then says why, once).
  static l45_shim_stats_slot* claim(std::string* error);
  static void release(l45_shim_stats_slot* slot);
  // Fixes the directory (default: stats_rundir() at the first claim). The shim calls it at
  // start: some programs (nginx) clear their environment later.
  static void set_rundir(const std::string& dir);
};

// Bucket index of a latency, for lat_out / lat_in.
unsigned latency_bucket(uint64_t ns);

struct ProcessStats {
  std::string file;
  l45_shim_stats_header header{};
  bool alive = false;
  std::vector<l45_shim_stats_slot> slots;  // open and closed ones, in slot order
};

struct StatsScan {
  std::vector<ProcessStats> processes;
  std::vector<std::string> problems;  // unreadable or malformed files, one line each
};
// Reads every *.stats file of `dir`. A missing directory is an empty scan.
StatsScan read_stats_dir(const std::string& dir);
// Reads one file; nullopt and `why` when it is not a valid stats file.
std::optional<ProcessStats> read_stats_file(const std::string& path, std::string* why);

}  // namespace l45::shim
