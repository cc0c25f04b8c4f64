// fec: see l45/shim/fec.hpp for the wire format, parameters and counters.
#include "l45/shim/fec.hpp"

#include <isa-l/erasure_code.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "builtin.hpp"

namespace l45::shim {

namespace {

constexpr uint8_t kMagic0 = 'L', kMagic1 = 'F', kVersion = 1;
constexpr uint32_t kWindow = 16;  // groups kept for late datagrams

std::string header(int kind, int k, int m, int index, uint32_t group) {
  std::string h(kFecHeader, '\0');
  h[0] = static_cast<char>(kMagic0);
  h[1] = static_cast<char>(kMagic1);
  h[2] = static_cast<char>(kVersion);
  h[3] = static_cast<char>(kind);
  h[4] = static_cast<char>(k);
  h[5] = static_cast<char>(m);
  h[6] = static_cast<char>(index);
  h[8] = static_cast<char>(group >> 24);
  h[9] = static_cast<char>(group >> 16);
  h[10] = static_cast<char>(group >> 8);
  h[11] = static_cast<char>(group);
  return h;
}

// The Cauchy encoding matrix for (k, m): (k+m) x k, its top k rows the identity.
std::vector<uint8_t> matrix(int k, int m) {
  std::vector<uint8_t> a(static_cast<size_t>((k + m) * k));
  gf_gen_cauchy1_matrix(a.data(), k + m, k);
  return a;
}

// A data datagram as a shard of S bytes: [length BE16, bytes, zeros].
std::string as_shard(const std::string& d, size_t s) {
  std::string out(s, '\0');
  out[0] = static_cast<char>(d.size() >> 8);
  out[1] = static_cast<char>(d.size());
  std::memcpy(out.data() + 2, d.data(), d.size());
  return out;
}

bool parse_int(const std::string& v, long lo, long hi, long* out) {
  if (v.empty() || v.size() > 9) return false;
  long n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (n < lo || n > hi) return false;
  *out = n;
  return true;
}

}  // namespace

std::optional<FecParams> parse_fec_params(const std::vector<std::pair<std::string, std::string>>& p,
                                          std::string* why) {
  FecParams f;
  for (const auto& [k, v] : p) {
    long n = 0;
    if (k == "k") {
      if (!parse_int(v, 1, 128, &n)) {
        *why = "fec: params.k must be 1-128";
        return std::nullopt;
      }
      f.k = static_cast<int>(n);
    } else if (k == "m") {
      if (!parse_int(v, 1, 64, &n)) {
        *why = "fec: params.m must be 1-64";
        return std::nullopt;
      }
      f.m = static_cast<int>(n);
    } else if (k == "max_delay_ms") {
      if (!parse_int(v, 0, 10000, &n)) {
        *why = "fec: params.max_delay_ms must be 0-10000";
        return std::nullopt;
      }
      f.max_delay_ns = static_cast<uint64_t>(n) * 1000000ull;
    } else {
      *why = "fec: unknown parameter " + k + " (known: k, m, max_delay_ms)";
      return std::nullopt;
    }
  }
  return f;
}

void FecEncoder::send(std::string_view datagram, uint64_t now_ns, const FecEmit& emit) {
  if (!data_.empty() && now_ns - started_ns_ > p_.max_delay_ns) flush(emit);
  if (data_.empty()) started_ns_ = now_ns;
  int index = static_cast<int>(data_.size());
  std::string out = header(0, p_.k, p_.m, index, group_);
  out.append(datagram);
  emit(out);
  data_.emplace_back(datagram);
  if (static_cast<int>(data_.size()) == p_.k) flush(emit);
}

void FecEncoder::flush(const FecEmit& emit) {
  if (data_.empty()) return;
  int k = static_cast<int>(data_.size());
  int m = p_.m;
  size_t longest = 0;
  for (const auto& d : data_)
    longest = std::max(longest, d.size());
  size_t s = longest + 2;
  std::vector<std::string> shards;
  shards.reserve(static_cast<size_t>(k));
  for (const auto& d : data_)
    shards.push_back(as_shard(d, s));
  std::vector<std::string> parity(static_cast<size_t>(m), std::string(s, '\0'));
  std::vector<uint8_t*> in, out;
  for (auto& sh : shards)
    in.push_back(reinterpret_cast<uint8_t*>(sh.data()));
  for (auto& p : parity)
    out.push_back(reinterpret_cast<uint8_t*>(p.data()));
  auto a = matrix(k, m);
  std::vector<uint8_t> tbls(static_cast<size_t>(32 * k * m));
  ec_init_tables(k, m, a.data() + k * k, tbls.data());
  ec_encode_data(static_cast<int>(s), k, m, tbls.data(), in.data(), out.data());
  for (int i = 0; i < m; ++i) {
    std::string d = header(1, k, m, k + i, group_);
    d += parity[static_cast<size_t>(i)];
    emit(d);
    ++parity_sent;
  }
  ++groups_sent;
  ++group_;
  data_.clear();
}

bool FecDecoder::Group::missing_data() const {
  for (int i = 0; i < k; ++i)
    if (!shards.count(i)) return true;
  return false;
}

FecDecoder::~FecDecoder() = default;

void FecDecoder::receive(std::string_view d, uint64_t now, const FecEmit& emit) {
  const auto* p = reinterpret_cast<const uint8_t*>(d.data());
  bool valid = d.size() >= kFecHeader && p[0] == kMagic0 && p[1] == kMagic1 && p[2] == kVersion &&
               p[3] <= 1 && p[4] >= 1 && p[5] >= 1 && p[6] < p[4] + p[5] &&
               (p[3] == 0) == (p[6] < p[4]);
  if (!valid) {
    ++no_header;
    emit(d);
    return;
  }
  int kind = p[3], k = p[4], m = p[5], index = p[6];
  uint32_t group = (uint32_t{p[8]} << 24) | (uint32_t{p[9]} << 16) | (uint32_t{p[10]} << 8) | p[11];
  std::string_view body = d.substr(kFecHeader);
  if (!started_) {
    started_ = true;
    next_group_ = group;
    next_index_ = 0;
  }
  if (have_newest_ && static_cast<int32_t>(newest_ - group) >= static_cast<int32_t>(kWindow)) {
    // Too old to help any group we keep; a data datagram is still the application's.
    if (kind == 0) hold(group, index, std::string(body), now, emit);
    release(now, emit);
    return;
  }
  if (!have_newest_ || static_cast<int32_t>(group - newest_) > 0) {
    newest_ = group;
    have_newest_ = true;
    evict(group);
  }
  Group& g = groups_[group];
  if (kind == 1 || g.k == 0) {
    g.k = k;
    g.m = m;
  }
  // The group's length for in-order delivery, kept until delivery has passed it (the recovery
  // window above may have dropped the group by then).
  if (static_cast<int32_t>(group - next_group_) >= 0 && (kind == 1 || !group_k_.count(group)))
    group_k_[group] = k;
  if (g.shards.count(index)) return;  // a duplicate
  if (kind == 0 && g.done) return;    // already rebuilt
  g.shards.emplace(index, std::string(body));
  if (kind == 0) hold(group, index, std::string(body), now, emit);
  if (!g.done) try_recover(group, g, now, emit);
  release(now, emit);
}

void FecDecoder::hold(uint32_t group, int index, std::string data, uint64_t now,
                      const FecEmit& emit) {
  uint64_t k = key(group, index);
  if (k < key(next_group_, next_index_)) {  // its gap was given up already: late, but not lost
    emit(data);
    return;
  }
  if (held_.emplace(k, Held{std::move(data), now}).second) arrivals_.insert(now);
}

void FecDecoder::release(uint64_t now, const FecEmit& emit) {
  constexpr size_t kMaxHeld = 4096;  // memory bound: past it, gaps are given up at once
  while (!held_.empty()) {
    auto it = held_.begin();
    if (it->first <= key(next_group_, next_index_)) {
      emit(it->second.data);
      if (it->first == key(next_group_, next_index_)) ++next_index_;
      arrivals_.erase(arrivals_.find(it->second.arrival));
      held_.erase(it);
      continue;
    }
    auto g = group_k_.find(next_group_);
    if (g != group_k_.end() && next_index_ >= g->second) {
      group_k_.erase(group_k_.begin(), std::next(g));  // past the group's last datagram
      ++next_group_;
      next_index_ = 0;
      continue;
    }
    if (*arrivals_.begin() + max_delay_ <= now || held_.size() > kMaxHeld) {
      ++gaps_skipped;  // waited long enough: what is held goes on without the gap
      next_group_ = static_cast<uint32_t>(it->first >> 8);
      next_index_ = static_cast<int>(it->first & 0xff);
      group_k_.erase(group_k_.begin(), group_k_.lower_bound(next_group_));
      continue;
    }
    break;
  }
}

void FecDecoder::tick(uint64_t now, const FecEmit& emit) {
  release(now, emit);
}

uint64_t FecDecoder::deadline() const {
  return arrivals_.empty() ? 0 : *arrivals_.begin() + max_delay_;
}

void FecDecoder::try_recover(uint32_t group, Group& g, uint64_t now, const FecEmit& emit) {
  if (!g.missing_data()) {
    g.done = true;
    return;
  }
  // The real k is only known from a parity datagram; without one nothing can be rebuilt.
  bool have_parity = false;
  size_t s = 0;
  for (const auto& [i, sh] : g.shards)
    if (i >= g.k) {
      have_parity = true;
      s = sh.size();
    }
  if (!have_parity || static_cast<int>(g.shards.size()) < g.k) return;
  int k = g.k, m = g.m;
  std::vector<int> rows;
  std::vector<std::string> in;
  for (const auto& [i, sh] : g.shards) {
    if (static_cast<int>(rows.size()) == k) break;
    if (i >= k + m) continue;
    if (i < k) {
      if (sh.size() + 2 > s) {  // longer than the group's shards: not a group we can rebuild
        g.done = true;
        ++groups_unrecoverable;
        return;
      }
      in.push_back(as_shard(sh, s));
    } else {
      if (sh.size() != s) {
        g.done = true;
        ++groups_unrecoverable;
        return;
      }
      in.push_back(sh);
    }
    rows.push_back(i);
  }
  if (static_cast<int>(rows.size()) < k) return;
  auto a = matrix(k, m);
  std::vector<uint8_t> b(static_cast<size_t>(k * k)), inv(static_cast<size_t>(k * k));
  for (int r = 0; r < k; ++r)
    std::memcpy(&b[static_cast<size_t>(r * k)], &a[static_cast<size_t>(rows[r] * k)],
                static_cast<size_t>(k));
  if (gf_invert_matrix(b.data(), inv.data(), k) != 0) return;
  std::vector<int> lost;
  for (int i = 0; i < k; ++i)
    if (!g.shards.count(i)) lost.push_back(i);
  int nlost = static_cast<int>(lost.size());
  std::vector<uint8_t> c(static_cast<size_t>(nlost * k));
  for (int r = 0; r < nlost; ++r)
    std::memcpy(&c[static_cast<size_t>(r * k)], &inv[static_cast<size_t>(lost[r] * k)],
                static_cast<size_t>(k));
  std::vector<uint8_t> tbls(static_cast<size_t>(32 * k * nlost));
  ec_init_tables(k, nlost, c.data(), tbls.data());
  std::vector<std::string> out(static_cast<size_t>(nlost), std::string(s, '\0'));
  std::vector<uint8_t*> inp, outp;
  for (auto& x : in)
    inp.push_back(reinterpret_cast<uint8_t*>(x.data()));
  for (auto& x : out)
    outp.push_back(reinterpret_cast<uint8_t*>(x.data()));
  ec_encode_data(static_cast<int>(s), k, nlost, tbls.data(), inp.data(), outp.data());
  for (int r = 0; r < nlost; ++r) {
    const std::string& sh = out[static_cast<size_t>(r)];
    size_t len =
        (static_cast<size_t>(static_cast<uint8_t>(sh[0])) << 8) | static_cast<uint8_t>(sh[1]);
    if (len + 2 > s) continue;  // garbage in, nothing out
    std::string d = sh.substr(2, len);
    g.shards.emplace(lost[static_cast<size_t>(r)], d);
    hold(group, lost[static_cast<size_t>(r)], std::move(d), now, emit);
    ++recovered;
  }
  ++groups_recovered;
  g.done = true;
}

void FecDecoder::evict(uint32_t newest) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (static_cast<int32_t>(newest - it->first) >= static_cast<int32_t>(kWindow)) {
      if (!it->second.done && it->second.missing_data()) ++groups_unrecoverable;
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {

struct Sock {
  FecEncoder enc;
  FecDecoder dec;
  explicit Sock(FecParams p) : enc(p), dec(p.max_delay_ns) {}
};

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void* fec_init(const l45_shim_param* params, size_t n, int* ok, char* err, size_t errlen) {
  std::vector<std::pair<std::string, std::string>> p;
  for (size_t i = 0; i < n; ++i)
    p.emplace_back(params[i].key, params[i].value);
  std::string why;
  auto f = parse_fec_params(p, &why);
  if (!f) {
    std::snprintf(err, errlen, "%s", why.c_str());
    *ok = 0;
    return nullptr;
  }
  *ok = 1;
  return new FecParams(*f);
}

void fec_fini(void* inst) {
  delete static_cast<FecParams*>(inst);
}

void* fec_sock_create(void* inst, const l45_shim_sock_ctx* ctx) {
  if (ctx->protocol != IPPROTO_UDP) return nullptr;  // FEC is for datagrams: TCP passes
  return new Sock(*static_cast<FecParams*>(inst));
}

int fec_egress(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  if (!s) {
    emit(ectx, data, len);
    return L45_SHIM_OK;
  }
  s->enc.send(std::string_view(static_cast<const char*>(data), len), now_ns(),
              [&](std::string_view d) { emit(ectx, d.data(), d.size()); });
  return L45_SHIM_OK;
}

int fec_ingress(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  if (!s) {
    emit(ectx, data, len);
    return L45_SHIM_OK;
  }
  s->dec.receive(std::string_view(static_cast<const char*>(data), len), now_ns(),
                 [&](std::string_view d) { emit(ectx, d.data(), d.size()); });
  return L45_SHIM_OK;
}

uint64_t fec_deadline(void* sock) {
  auto* s = static_cast<Sock*>(sock);
  return s ? s->dec.deadline() : 0;
}

void fec_tick(void* sock, uint64_t now, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  if (s) s->dec.tick(now, [&](std::string_view d) { emit(ectx, d.data(), d.size()); });
}

void fec_close(void* sock, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  if (s) s->enc.flush([&](std::string_view d) { emit(ectx, d.data(), d.size()); });
}

size_t fec_counters(void* sock, l45_shim_counter* out, size_t max) {
  auto* s = static_cast<Sock*>(sock);
  if (!s) return 0;
  const NamedCounter c[] = {{"parity_sent", s->enc.parity_sent},
                            {"recovered", s->dec.recovered},
                            {"groups_recovered", s->dec.groups_recovered},
                            {"groups_unrecoverable", s->dec.groups_unrecoverable},
                            {"gaps_skipped", s->dec.gaps_skipped},
                            {"no_header", s->dec.no_header}};
  return fill_counters(c, out, max);
}

void fec_destroy(void* sock) {
  delete static_cast<Sock*>(sock);
}

const l45_shim_module kFecModule = {
    L45_SHIM_ABI_VERSION, "fec",        fec_init, fec_fini,     fec_sock_create,
    fec_egress,           fec_ingress,  nullptr,  fec_counters, fec_close,
    fec_destroy,          fec_deadline, fec_tick,
};

}  // namespace
}  // namespace l45::shim

L45_SHIM_BUILTIN(l45::shim::kFecModule);
