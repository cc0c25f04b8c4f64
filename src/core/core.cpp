#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "l45/core/assert.hpp"
#include "l45/core/config_lines.hpp"
#include "l45/core/counters.hpp"
#include "l45/core/drop_reason.hpp"
#include "l45/core/log.hpp"
#include "l45/core/result.hpp"
#include "l45/core/time.hpp"

namespace l45 {

namespace detail {
void check_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "l45: internal error: check failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}
}  // namespace detail

std::string Error::message() const {
  if (code_ == 0 || self_explained_) return context_;
  return context_ + ": " + std::strerror(code_);
}

Timestamp SystemClock::now() const {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timestamp::from_sec_nsec(ts.tv_sec, ts.tv_nsec);
}

namespace {
struct ReasonInfo {
  std::string_view name;
  std::string_view desc;
};
constexpr std::array<ReasonInfo, kDropReasonCount> kReasonInfo = [] {
  std::array<ReasonInfo, kDropReasonCount> t{};
#define L45_DR_INFO(id, num, name, desc) t[num] = {name, desc};
  L45_DROP_REASONS(L45_DR_INFO)
#undef L45_DR_INFO
  return t;
}();
}  // namespace

std::string_view drop_reason_name(DropReason r) {
  auto i = static_cast<size_t>(r);
  return i < kReasonInfo.size() && !kReasonInfo[i].name.empty() ? kReasonInfo[i].name : "unknown";
}
std::string_view drop_reason_description(DropReason r) {
  auto i = static_cast<size_t>(r);
  return i < kReasonInfo.size() ? kReasonInfo[i].desc : "";
}
std::optional<DropReason> drop_reason_from_name(std::string_view name) {
  for (size_t i = 0; i < kReasonInfo.size(); ++i)
    if (!kReasonInfo[i].name.empty() && kReasonInfo[i].name == name)
      return static_cast<DropReason>(i);
  return std::nullopt;
}

uint64_t DropCounters::total() const {
  uint64_t t = 0;
  for (size_t i = 1; i < counts_.size(); ++i)
    t += counts_[i];
  return t;
}
void DropCounters::merge(const DropCounters& o) {
  for (size_t i = 0; i < counts_.size(); ++i)
    counts_[i] += o.counts_[i];
}

uint64_t& CounterSet::add(std::string name, std::string help) {
  entries_.push_back({std::move(name), std::move(help), 0});
  return entries_.back().value;
}
const uint64_t* CounterSet::find(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e.value;
  return nullptr;
}

namespace log {
namespace {
Level g_level = Level::Warning;
}
void set_level(Level l) {
  g_level = l;
}
Level level() {
  return g_level;
}
void write(Level l, std::string_view msg) {
  static constexpr const char* kPrefix[] = {"error: ", "warning: ", "", "debug: "};
  std::fprintf(stderr, "l45: %s%.*s\n", kPrefix[static_cast<int>(l)], static_cast<int>(msg.size()),
               msg.data());
}
}  // namespace log

}  // namespace l45

namespace l45 {

std::vector<ConfigLine> config_lines(std::string_view text) {
  std::vector<ConfigLine> out;
  size_t number = 0;
  while (!text.empty()) {
    ++number;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    ConfigLine l{number, {}};
    for (size_t i = line.find_first_not_of(" \t\r"); i != std::string_view::npos;) {
      const size_t end = std::min(line.find_first_of(" \t\r", i), line.size());
      l.fields.push_back(line.substr(i, end - i));
      i = line.find_first_not_of(" \t\r", end);
    }
    if (!l.fields.empty()) out.push_back(std::move(l));
  }
  return out;
}

Error config_error(std::string_view name, size_t line, std::string_view why) {
  return Error::invalid(std::string(name) + ":" + std::to_string(line) + ": " + std::string(why));
}

}  // namespace l45
