// identity: see l45/shim/identity.hpp for the wire format and parameters.
#include "l45/shim/identity.hpp"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "builtin.hpp"

namespace l45::shim {

std::vector<uint8_t> build_identity_header(const IdentityHeader& h) {
  std::vector<uint8_t> out(kIdentityMagic, kIdentityMagic + 4);
  out.push_back(kIdentityVersion);
  out.push_back(0);
  out.push_back(0);
  out.push_back(0);
  auto field = [&](IdentityField t, const std::string& v) {
    if (v.empty()) return;
    size_t n = std::min<size_t>(v.size(), 255);
    if (out.size() + 2 + n > kIdentityMax) return;
    out.push_back(static_cast<uint8_t>(t));
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  };
  field(IdentityField::Application, h.application);
  field(IdentityField::Host, h.host);
  field(IdentityField::Uid, h.uid);
  field(IdentityField::User, h.user);
  out[6] = static_cast<uint8_t>(out.size() >> 8);
  out[7] = static_cast<uint8_t>(out.size());
  return out;
}

IdentityParse parse_identity_header(const uint8_t* data, size_t len, IdentityHeader* out) {
  if (len == 0) return IdentityParse::NeedMore;  // nothing yet is the start of anything
  size_t magic = std::min<size_t>(len, 4);
  if (std::memcmp(data, kIdentityMagic, magic) != 0) return IdentityParse::NotIdentity;
  if (len >= 5 && data[4] != kIdentityVersion) return IdentityParse::NotIdentity;
  if (len < kIdentityFixed) return IdentityParse::NeedMore;
  size_t h = (static_cast<size_t>(data[6]) << 8) | data[7];
  if (h < kIdentityFixed || h > kIdentityMax) return IdentityParse::NotIdentity;
  if (len < h) return IdentityParse::NeedMore;
  IdentityHeader r;
  r.length = h;
  size_t pos = kIdentityFixed;
  while (pos < h) {
    if (pos + 2 > h) return IdentityParse::NotIdentity;
    uint8_t type = data[pos];
    size_t n = data[pos + 1];
    if (pos + 2 + n > h) return IdentityParse::NotIdentity;
    std::string v(reinterpret_cast<const char*>(data + pos + 2), n);
    switch (static_cast<IdentityField>(type)) {
      case IdentityField::Application:
        r.application = std::move(v);
        break;
      case IdentityField::Host:
        r.host = std::move(v);
        break;
      case IdentityField::Uid:
        r.uid = std::move(v);
        break;
      case IdentityField::User:
        r.user = std::move(v);
        break;
      default:
        break;  // unknown fields are skipped
    }
    pos += 2 + n;
  }
  if (out) *out = std::move(r);
  return IdentityParse::Ok;
}

namespace {

struct Instance {
  std::string app, host, user;
};

struct Sock {
  bool udp = false;
  std::vector<uint8_t> header;
  bool sent_header = false;
  bool ingress_done = false;         // TCP: the stream's start has been decided
  std::vector<uint8_t> ingress_buf;  // TCP: bytes that may still be a header's start
  uint64_t inserted = 0, stripped = 0, no_header = 0;
};

void* identity_init(const l45_shim_param* params, size_t n, int* ok, char* err, size_t errlen) {
  auto* inst = new Instance;
  for (size_t i = 0; i < n; ++i) {
    std::string_view k = params[i].key;
    std::string v = params[i].value;
    if (v.size() > 255) {
      std::snprintf(err, errlen, "identity: params.%s longer than 255 bytes", params[i].key);
      delete inst;
      *ok = 0;
      return nullptr;
    }
    if (k == "app") {
      inst->app = v;
    } else if (k == "host") {
      inst->host = v;
    } else if (k == "user") {
      inst->user = v;
    } else {
      std::snprintf(err, errlen, "identity: unknown parameter %s (known: app, host, user)",
                    params[i].key);
      delete inst;
      *ok = 0;
      return nullptr;
    }
  }
  *ok = 1;
  return inst;
}

void identity_fini(void* inst) {
  delete static_cast<Instance*>(inst);
}

void* identity_sock_create(void* instance, const l45_shim_sock_ctx* ctx) {
  const auto* inst = static_cast<const Instance*>(instance);
  auto* s = new Sock;
  s->udp = ctx->protocol == IPPROTO_UDP;
  IdentityHeader h;
  h.application = inst && !inst->app.empty() ? inst->app : (ctx->program ? ctx->program : "");
  if (inst && !inst->host.empty()) {
    h.host = inst->host;
  } else {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) h.host = host;
  }
  h.uid = std::to_string(ctx->uid);
  if (inst) h.user = inst->user;
  s->header = build_identity_header(h);
  return s;
}

int identity_egress(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  if (s->udp) {
    std::vector<uint8_t> d(s->header);
    d.insert(d.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + len);
    emit(ectx, d.data(), d.size());
    ++s->inserted;
    return L45_SHIM_OK;
  }
  if (!s->sent_header) {
    emit(ectx, s->header.data(), s->header.size());
    s->sent_header = true;
    ++s->inserted;
  }
  if (len) emit(ectx, data, len);
  return L45_SHIM_OK;
}

int identity_ingress(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* ectx) {
  auto* s = static_cast<Sock*>(sock);
  const auto* p = static_cast<const uint8_t*>(data);
  if (s->udp) {
    IdentityHeader h;
    if (parse_identity_header(p, len, &h) == IdentityParse::Ok) {
      ++s->stripped;
      emit(ectx, p + h.length, len - h.length);
    } else {
      ++s->no_header;
      emit(ectx, p, len);
    }
    return L45_SHIM_OK;
  }
  if (s->ingress_done) {
    if (len) emit(ectx, data, len);
    return L45_SHIM_OK;
  }
  s->ingress_buf.insert(s->ingress_buf.end(), p, p + len);
  IdentityHeader h;
  switch (parse_identity_header(s->ingress_buf.data(), s->ingress_buf.size(), &h)) {
    case IdentityParse::NeedMore:
      return L45_SHIM_OK;  // wait for the rest of the header
    case IdentityParse::Ok:
      ++s->stripped;
      if (s->ingress_buf.size() > h.length)
        emit(ectx, s->ingress_buf.data() + h.length, s->ingress_buf.size() - h.length);
      break;
    case IdentityParse::NotIdentity:
      ++s->no_header;
      emit(ectx, s->ingress_buf.data(), s->ingress_buf.size());
      break;
  }
  s->ingress_done = true;
  s->ingress_buf.clear();
  s->ingress_buf.shrink_to_fit();
  return L45_SHIM_OK;
}

size_t identity_counters(void* sock, l45_shim_counter* out, size_t max) {
  auto* s = static_cast<Sock*>(sock);
  const NamedCounter c[] = {
      {"inserted", s->inserted}, {"stripped", s->stripped}, {"no_header", s->no_header}};
  return fill_counters(c, out, max);
}

void identity_sock_destroy(void* sock) {
  delete static_cast<Sock*>(sock);
}

const l45_shim_module kIdentityModule = {
    L45_SHIM_ABI_VERSION, "identity",      identity_init,         identity_fini,
    identity_sock_create, identity_egress, identity_ingress,      nullptr,
    identity_counters,    nullptr,         identity_sock_destroy,
};

}  // namespace
}  // namespace l45::shim

L45_SHIM_BUILTIN(l45::shim::kIdentityModule);
