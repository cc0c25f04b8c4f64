// The tag rules parser (l45/tag/rules.hpp). Input is untrusted: every problem becomes a
// RuleError with its line, never an exception or a crash.
#include "l45/tag/rules.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <span>

namespace l45::tag {
namespace {

struct Token {
  std::string text;
  bool quoted = false;
};

// Splits a line into words and "quoted strings", dropping a `#` comment. False with `why` on an
// unterminated quote.
bool tokenize(std::string_view line, std::vector<Token>& out, std::string* why) {
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#') break;
    if (c == '"') {
      size_t end = line.find('"', i + 1);
      if (end == std::string_view::npos) {
        *why = "unterminated quoted string";
        return false;
      }
      out.push_back({std::string(line.substr(i + 1, end - i - 1)), true});
      i = end + 1;
      if (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
          line[i] != '#') {
        *why = "a quoted string must be followed by a space";
        return false;
      }
      continue;
    }
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
           line[i] != '#' && line[i] != '"')
      ++i;
    out.push_back({std::string(line.substr(start, i - start)), false});
  }
  return true;
}

template <typename T>
bool parse_uint(std::string_view s, T& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

std::string shown(std::string_view s) {
  std::string o;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f)
      o += static_cast<char>(c);
    else
      o += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > 40) o += "...";
  return o;
}

bool parse_prefix(std::string_view s, l45_prefix& p, std::string* why) {
  std::string addr(s);
  int plen = -1;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    addr = std::string(s.substr(0, slash));
    unsigned v = 0;
    if (!parse_uint(s.substr(slash + 1), v)) {
      *why = fmt::format("bad prefix length in '{}'", shown(s));
      return false;
    }
    plen = static_cast<int>(v);
  }
  p = {};
  int bits;
  if (inet_pton(AF_INET, addr.c_str(), p.addr) == 1) {
    p.family = 4;
    bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr) == 1) {
    p.family = 6;
    bits = 128;
  } else {
    *why = fmt::format("'{}' is not an IPv4 or IPv6 address or prefix", shown(s));
    return false;
  }
  if (plen < 0) plen = bits;
  if (plen > bits) {
    *why = fmt::format("prefix length {} is longer than {} bits", plen, bits);
    return false;
  }
  for (int i = 0; i < plen; ++i)
    p.mask[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
  for (int i = 0; i < 16; ++i)
    p.addr[i] &= p.mask[i];
  return true;
}

bool parse_range(std::string_view s, uint16_t& lo, uint16_t& hi, std::string* why) {
  auto dash = s.find('-');
  std::string_view a = s.substr(0, dash);
  std::string_view b = dash == std::string_view::npos ? a : s.substr(dash + 1);
  if (!parse_uint(a, lo) || !parse_uint(b, hi)) {
    *why = fmt::format("'{}' is not a port or a port range N-M (0-65535)", shown(s));
    return false;
  }
  if (lo > hi) {
    *why = fmt::format("port range '{}' ends before it starts", shown(s));
    return false;
  }
  return true;
}

// tc's rate units, k = 1000. Result in bytes per second.
bool parse_rate(std::string_view s, uint64_t& bytes_per_sec, std::string* why) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  uint64_t n = 0;
  std::string_view unit = s.substr(i);
  struct U {
    std::string_view name;
    uint64_t mul;  // bits per unit * 1; bytes: * 8
    bool bits;
  };
  static constexpr U kUnits[] = {{"bit", 1, true},         {"kbit", 1000, true},
                                 {"mbit", 1000000, true},  {"gbit", 1000000000, true},
                                 {"bps", 1, false},        {"kbps", 1000, false},
                                 {"mbps", 1000000, false}, {"gbps", 1000000000, false}};
  if (!parse_uint(s.substr(0, i), n) || n == 0) {
    *why = fmt::format("'{}' is not a rate such as 10mbit or 500kbps", shown(s));
    return false;
  }
  for (const auto& u : kUnits) {
    if (unit != u.name) continue;
    if (n > UINT64_MAX / u.mul) break;
    uint64_t v = n * u.mul;
    bytes_per_sec = u.bits ? v / 8 : v;
    if (bytes_per_sec == 0) {
      *why = fmt::format("rate '{}' is below one byte per second", shown(s));
      return false;
    }
    return true;
  }
  *why = fmt::format(
      "'{}' is not a rate such as 10mbit or 500kbps (units: bit kbit mbit gbit "
      "bps kbps mbps gbps)",
      shown(s));
  return false;
}

struct Keyword {
  std::string_view name;
  uint32_t bit;  // condition bit; 0 for actions
  uint8_t action;
};
constexpr Keyword kConditions[] = {
    {"app", L45_C_APP, 0},         {"tag", L45_C_TAG, 0},
    {"src", L45_C_SRC, 0},         {"dst", L45_C_DST, 0},
    {"sport", L45_C_SPORT, 0},     {"dport", L45_C_DPORT, 0},
    {"proto", L45_C_PROTO, 0},     {"uid", L45_C_UID, 0},
    {"trusted", L45_C_TRUSTED, 0}, {"untrusted", L45_C_UNTRUSTED, 0},
    {"signed", L45_C_SIGNED, 0},
};
constexpr Keyword kActions[] = {
    {"log", 0, L45_ACT_LOG},           {"mark", 0, L45_ACT_MARK},
    {"count", 0, L45_ACT_COUNT},       {"drop", 0, L45_ACT_DROP},
    {"throttle", 0, L45_ACT_THROTTLE}, {"priority", 0, L45_ACT_PRIORITY},
    {"export", 0, L45_ACT_EXPORT},
};

const Keyword* find(std::span<const Keyword> table, std::string_view w) {
  for (const auto& k : table)
    if (k.name == w) return &k;
  return nullptr;
}

// Parses one non-empty line into `r`; false with `why`.
bool parse_line(const std::vector<Token>& tok, Rule& r, std::string* why) {
  size_t i = 0;
  auto& b = r.bpf;
  const Token& focus = tok[i++];
  if (focus.quoted || (focus.text != "out" && focus.text != "in" && focus.text != "forward")) {
    *why = fmt::format("a rule starts with its focus (out, in or forward), not '{}'",
                       shown(focus.text));
    return false;
  }
  b.focus = focus.text == "out"  ? L45_FOCUS_OUT
            : focus.text == "in" ? L45_FOCUS_IN
                                 : L45_FOCUS_FORWARD;
  auto arg = [&](std::string_view what, std::string& out) {
    if (i >= tok.size()) {
      *why = fmt::format("'{}' needs a value", what);
      return false;
    }
    out = tok[i++].text;
    return true;
  };
  // conditions
  while (i < tok.size()) {
    const Token& t = tok[i];
    if (t.quoted) {
      *why = fmt::format("unexpected quoted string \"{}\"", shown(t.text));
      return false;
    }
    const Keyword* k = find(kConditions, t.text);
    if (!k) break;
    ++i;
    if (b.cond & k->bit) {
      *why = fmt::format("condition '{}' given twice", k->name);
      return false;
    }
    b.cond |= k->bit;
    std::string v;
    switch (k->bit) {
      case L45_C_APP:
        if (!arg("app", v)) return false;
        if (!parse_uint(v, b.app) || b.app == 0) {
          *why = fmt::format("application id '{}' is not a number from 1 to 4294967295", shown(v));
          return false;
        }
        break;
      case L45_C_TAG: {
        if (i >= tok.size()) {
          *why = "'tag' needs a value";
          return false;
        }
        const Token& tv = tok[i++];
        if (tv.quoted && !tv.text.empty() && tv.text.back() == '*') {
          std::string_view pre(tv.text.data(), tv.text.size() - 1);
          if (pre.size() > L45_TAG_STR_MAX || !printable(pre)) {
            *why = fmt::format("tag prefix \"{}\" must be up to {} printable characters",
                               shown(pre), L45_TAG_STR_MAX);
            return false;
          }
          b.cond |= L45_C_TAG_PREFIX;
          b.tag_kind = L45_TAG_STR;
          b.tag_len = static_cast<uint8_t>(pre.size());
          std::memcpy(b.tag_value, pre.data(), pre.size());
          std::memset(b.tag_mask, 0xff, pre.size());
          break;
        }
        l45_tag want{};
        if (tv.quoted) {
          if (tv.text.empty() || tv.text.size() > L45_TAG_STR_MAX || !printable(tv.text)) {
            *why = fmt::format("tag \"{}\" must be 1 to {} printable characters, no spaces",
                               shown(tv.text), L45_TAG_STR_MAX);
            return false;
          }
          want.kind = L45_TAG_STR;
          want.len = static_cast<uint8_t>(tv.text.size());
          std::memcpy(want.value, tv.text.data(), tv.text.size());
        } else {
          uint64_t n = 0;
          if (!parse_uint(tv.text, n)) {
            *why =
                fmt::format("tag '{}' is neither a number nor a \"quoted string\"", shown(tv.text));
            return false;
          }
          want.kind = L45_TAG_NUM;
          want.len = 8;
          for (int j = 0; j < 8; ++j)
            want.value[j] = static_cast<uint8_t>(n >> (8 * j));
        }
        b.tag_kind = want.kind;
        b.tag_len = want.len;
        std::memcpy(b.tag_value, want.value, sizeof want.value);
        std::memset(b.tag_mask, 0xff, sizeof b.tag_mask);
        break;
      }
      case L45_C_SRC:
      case L45_C_DST:
        if (!arg(k->name, v)) return false;
        if (!parse_prefix(v, k->bit == L45_C_SRC ? b.src : b.dst, why)) return false;
        break;
      case L45_C_SPORT:
        if (!arg("sport", v) || !parse_range(v, b.sport_lo, b.sport_hi, why)) return false;
        break;
      case L45_C_DPORT:
        if (!arg("dport", v) || !parse_range(v, b.dport_lo, b.dport_hi, why)) return false;
        break;
      case L45_C_PROTO:
        if (!arg("proto", v)) return false;
        if (v == "tcp") {
          b.proto = IPPROTO_TCP;
        } else if (v == "udp") {
          b.proto = IPPROTO_UDP;
        } else {
          *why = fmt::format("proto '{}' is not tcp or udp", shown(v));
          return false;
        }
        break;
      case L45_C_UID:
        if (!arg("uid", v)) return false;
        if (!parse_uint(v, b.uid)) {
          *why = fmt::format("uid '{}' is not a number", shown(v));
          return false;
        }
        break;
      default:  // trusted, untrusted, signed: no value
        break;
    }
  }
  if ((b.cond & L45_C_TRUSTED) && (b.cond & L45_C_UNTRUSTED)) {
    *why = "a rule cannot require both trusted and untrusted";
    return false;
  }
  if ((b.cond & L45_C_SRC) && (b.cond & L45_C_DST) && b.src.family != b.dst.family) {
    *why = "src and dst are of different address families";
    return false;
  }
  // the action
  if (i >= tok.size()) {
    *why = "no action (log, mark, count, drop, throttle, priority or export)";
    return false;
  }
  const Token& at = tok[i++];
  const Keyword* a = at.quoted ? nullptr : find(kActions, at.text);
  if (!a) {
    *why = fmt::format("unknown condition or action '{}'", shown(at.text));
    return false;
  }
  b.action = a->action;
  std::string v;
  switch (a->action) {
    case L45_ACT_LOG:
      if (i < tok.size()) {
        r.log_prefix = tok[i++].text;
        if (r.log_prefix.size() > 64 || r.log_prefix.find_first_of("\n\r\t") != std::string::npos) {
          *why = "a log prefix is up to 64 characters on one line";
          return false;
        }
        for (unsigned char c : r.log_prefix) {
          if (c < 0x20 || c > 0x7e) {
            *why = "a log prefix is printable ASCII";
            return false;
          }
        }
      }
      break;
    case L45_ACT_MARK:
    case L45_ACT_PRIORITY: {
      if (!arg(a->name, v)) return false;
      uint32_t n = 0;
      bool hex = v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
      auto [p, ec] = hex ? std::from_chars(v.data() + 2, v.data() + v.size(), n, 16)
                         : std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || v.empty()) {
        *why = fmt::format("{} '{}' is not a 32-bit number", a->name, shown(v));
        return false;
      }
      b.arg = n;
      break;
    }
    case L45_ACT_THROTTLE:
      if (!arg("throttle", v) || !parse_rate(v, b.arg, why)) return false;
      break;
    default:
      break;
  }
  if (i < tok.size()) {
    *why = fmt::format("unexpected '{}' after the action", shown(tok[i].text));
    return false;
  }
  if (b.focus == L45_FOCUS_IN && (a->action == L45_ACT_MARK || a->action == L45_ACT_EXPORT)) {
    *why = fmt::format("'{}' applies to outgoing traffic (focus out or forward)", a->name);
    return false;
  }
  return true;
}

}  // namespace

RuleSet parse_rules(std::string_view text) {
  RuleSet set;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (line.find('\0') != std::string_view::npos) {
      set.errors.push_back({line_no, "NUL byte in the line"});
      continue;
    }
    std::vector<Token> tok;
    std::string why;
    if (!tokenize(line, tok, &why)) {
      set.errors.push_back({line_no, why});
      continue;
    }
    if (tok.empty()) continue;
    Rule r;
    r.line = line_no;
    std::string_view body = line.substr(0, line.find('#'));
    // a '#' inside quotes is not a comment: keep the whole line then
    if (std::count(body.begin(), body.end(), '"') % 2) body = line;
    while (!body.empty() && (body.back() == ' ' || body.back() == '\t' || body.back() == '\r'))
      body.remove_suffix(1);
    while (!body.empty() && (body.front() == ' ' || body.front() == '\t'))
      body.remove_prefix(1);
    r.text = std::string(body);
    if (!parse_line(tok, r, &why)) {
      set.errors.push_back({line_no, why});
      continue;
    }
    if (set.rules.size() >= L45_RULES_MAX) {
      set.errors.push_back({line_no, fmt::format("more than {} rules", L45_RULES_MAX)});
      continue;
    }
    set.rules.push_back(std::move(r));
  }
  return set;
}

std::string format_errors(const std::vector<RuleError>& errors) {
  std::string o;
  for (const auto& e : errors)
    o += fmt::format("line {}: {}\n", e.line, e.message);
  return o;
}

bool parse_tag_value(std::string_view s, l45_tag& t, std::string* why) {
  uint32_t app = t.app;
  t = {};
  t.app = app;
  uint64_t n = 0;
  bool quoted = s.size() >= 2 && s.front() == '"' && s.back() == '"';
  if (!quoted && parse_uint(s, n)) {
    t.kind = L45_TAG_NUM;
    t.len = 8;
    for (int j = 0; j < 8; ++j)
      t.value[j] = static_cast<uint8_t>(n >> (8 * j));
    return true;
  }
  if (quoted) s = s.substr(1, s.size() - 2);
  if (s.empty() || s.size() > L45_TAG_STR_MAX || !printable(s)) {
    *why = fmt::format("tag '{}' must be a number or 1 to {} printable characters, no spaces",
                       shown(s), L45_TAG_STR_MAX);
    return false;
  }
  t.kind = L45_TAG_STR;
  t.len = static_cast<uint8_t>(s.size());
  std::memcpy(t.value, s.data(), s.size());
  return true;
}

std::string format_tag(const l45_tag& t) {
  if (t.kind == L45_TAG_NUM) {
    uint64_t n = 0;
    for (int j = 0; j < 8; ++j)
      n |= static_cast<uint64_t>(t.value[j]) << (8 * j);
    return fmt::format("{}:{}", t.app, n);
  }
  size_t len = t.len > L45_TAG_STR_MAX ? L45_TAG_STR_MAX : t.len;
  return fmt::format("{}:\"{}\"", t.app, shown({reinterpret_cast<const char*>(t.value), len}));
}

std::string_view focus_name(uint8_t focus) {
  switch (focus) {
    case L45_FOCUS_OUT:
      return "out";
    case L45_FOCUS_IN:
      return "in";
    case L45_FOCUS_FORWARD:
      return "forward";
  }
  return "?";
}

std::string_view action_name(uint8_t action) {
  for (const auto& a : kActions)
    if (a.action == action) return a.name;
  return "?";
}

}  // namespace l45::tag
