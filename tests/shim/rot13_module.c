/* A shim module written in plain C against l45/shim_module.h, loaded from a path by the live
 * test: rot13 on egress, rot13 again on ingress, so two shimmed ends see their own bytes and the
 * wire (or an unshimmed peer) sees them rotated. Parameter: letters_only = "true" (default) or
 * "false" (then it is a no-op, to test parameters). Counter: rotated (bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l45/shim_module.h"

struct sock {
  int enabled;
  unsigned long long rotated;
};

static void* init(const struct l45_shim_param* params, size_t n, int* ok, char* err,
                  size_t errlen) {
  int* enabled = malloc(sizeof *enabled);
  *enabled = 1;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(params[i].key, "letters_only") == 0) {
      *enabled = strcmp(params[i].value, "false") != 0;
    } else {
      snprintf(err, errlen, "rot13: unknown parameter %s", params[i].key);
      free(enabled);
      *ok = 0;
      return NULL;
    }
  }
  *ok = 1;
  return enabled;
}

static void fini(void* inst) {
  free(inst);
}

static void* create(void* inst, const struct l45_shim_sock_ctx* ctx) {
  (void)ctx;
  struct sock* s = calloc(1, sizeof *s);
  s->enabled = *(int*)inst;
  return s;
}

static int rotate(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* ectx) {
  struct sock* s = sock;
  char* out = malloc(len ? len : 1);
  const char* in = data;
  for (size_t i = 0; i < len; ++i) {
    char c = in[i];
    if (s->enabled && c >= 'a' && c <= 'z') c = (char)('a' + (c - 'a' + 13) % 26);
    if (s->enabled && c >= 'A' && c <= 'Z') c = (char)('A' + (c - 'A' + 13) % 26);
    out[i] = c;
  }
  s->rotated += len;
  emit(ectx, out, len);
  free(out);
  return L45_SHIM_OK;
}

static size_t counters(void* sock, struct l45_shim_counter* out, size_t max) {
  if (max < 1) return 0;
  snprintf(out[0].name, sizeof out[0].name, "rotated");
  out[0].value = ((struct sock*)sock)->rotated;
  return 1;
}

static void destroy(void* sock) {
  free(sock);
}

static const struct l45_shim_module kRot13 = {
    L45_SHIM_ABI_VERSION,
    "rot13",
    init,
    fini,
    create,
    rotate,
    rotate,
    NULL,
    counters,
    NULL,
    destroy,
};

__attribute__((visibility("default"))) const struct l45_shim_module* l45_shim_module_v1(void) {
  return &kRot13;
}
