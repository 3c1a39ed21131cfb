/* Engine files: little-endian encoding, the bounds-checked reader, and the device line. */
#include "plan.h"

#include <ctype.h>
#include <stdlib.h>

/* ---- writer ------------------------------------------------------------------------------------ */

void kn_wb_bytes(kn_wbuf *w, const void *data, size_t n) {
    if (w->failed || !n) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n) cap *= 2;
        uint8_t *p = kn_realloc(w->p, cap);
        if (!p) { w->failed = 1; return; }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, data, n);
    w->n += n;
}

void kn_wb_u8(kn_wbuf *w, uint8_t v) { kn_wb_bytes(w, &v, 1); }
void kn_wb_u32(kn_wbuf *w, uint32_t v) {
    uint8_t b[4];
    kn_put_u32(b, v);
    kn_wb_bytes(w, b, 4);
}
void kn_wb_i32(kn_wbuf *w, int32_t v) { kn_wb_u32(w, (uint32_t)v); }
void kn_wb_u64(kn_wbuf *w, uint64_t v) {
    uint8_t b[8];
    kn_put_u64(b, v);
    kn_wb_bytes(w, b, 8);
}
void kn_wb_i64(kn_wbuf *w, int64_t v) { kn_wb_u64(w, (uint64_t)v); }
void kn_wb_f32(kn_wbuf *w, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    kn_wb_u32(w, u);
}
void kn_wb_f64(kn_wbuf *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    kn_wb_u64(w, u);
}
void kn_wb_str(kn_wbuf *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n > KN_PLAN_MAX_STRING) { w->failed = 2; return; }
    kn_wb_u32(w, (uint32_t)n);
    kn_wb_bytes(w, s, n);
}
void kn_wb_free(kn_wbuf *w) {
    kn_free(w->p);
    memset(w, 0, sizeof *w);
}

/* ---- reader ------------------------------------------------------------------------------------ */

kiln_status kn_rd_fail(kn_rbuf *r, const char *fmt, ...) {
    if (r->st != KILN_OK) return r->st;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->st = kn_error(KILN_ERR_CORRUPT, "corrupt engine file at byte %zu: %s", r->base + r->pos, msg);
    return r->st;
}

static const uint8_t *kn_rd_take(kn_rbuf *r, size_t n, const char *what) {
    if (r->st != KILN_OK) return NULL;
    if (n > r->n - r->pos) {
        kn_rd_fail(r, "%s needs %zu bytes, the section has %zu left", what, n, r->n - r->pos);
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t kn_rd_u8(kn_rbuf *r, const char *what) {
    const uint8_t *p = kn_rd_take(r, 1, what);
    return p ? p[0] : 0;
}
uint32_t kn_rd_u32(kn_rbuf *r, const char *what) {
    const uint8_t *p = kn_rd_take(r, 4, what);
    return p ? kn_get_u32(p) : 0;
}
int32_t kn_rd_i32(kn_rbuf *r, const char *what) { return (int32_t)kn_rd_u32(r, what); }
uint64_t kn_rd_u64(kn_rbuf *r, const char *what) {
    const uint8_t *p = kn_rd_take(r, 8, what);
    return p ? kn_get_u64(p) : 0;
}
int64_t kn_rd_i64(kn_rbuf *r, const char *what) { return (int64_t)kn_rd_u64(r, what); }
float kn_rd_f32(kn_rbuf *r, const char *what) {
    uint32_t u = kn_rd_u32(r, what);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
double kn_rd_f64(kn_rbuf *r, const char *what) {
    uint64_t u = kn_rd_u64(r, what);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

int kn_rd_count(kn_rbuf *r, size_t min_entry_bytes, int max, const char *what) {
    uint32_t c = kn_rd_u32(r, what);
    if (r->st != KILN_OK) return 0;
    size_t left = r->n - r->pos;
    if (c > (uint32_t)max || (min_entry_bytes && (size_t)c > left / min_entry_bytes)) {
        r->pos -= 4;
        kn_rd_fail(r, "%s is %u, more than the %zu bytes left can hold (or above %d)", what, c, left, max);
        return 0;
    }
    return (int)c;
}

static const uint8_t *kn_rd_strbytes(kn_rbuf *r, uint32_t *len, const char *what) {
    *len = kn_rd_u32(r, what);
    if (r->st != KILN_OK) return NULL;
    if (*len > KN_PLAN_MAX_STRING) {
        r->pos -= 4;
        kn_rd_fail(r, "%s has length %u (at most %u)", what, *len, KN_PLAN_MAX_STRING);
        return NULL;
    }
    const uint8_t *p = kn_rd_take(r, *len, what);
    if (p && memchr(p, 0, *len)) {
        r->pos -= *len + 4;
        kn_rd_fail(r, "%s contains a NUL byte", what);
        return NULL;
    }
    return p;
}

char *kn_rd_str(kn_rbuf *r, const char *what) {
    uint32_t len;
    const uint8_t *p = kn_rd_strbytes(r, &len, what);
    if (!p) return NULL;
    char *s = kn_malloc((size_t)len + 1);
    if (!s) {
        r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory reading an engine file");
        return NULL;
    }
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

void kn_rd_str_into(kn_rbuf *r, char *buf, size_t cap, const char *what) {
    buf[0] = 0;
    uint32_t len;
    const uint8_t *p = kn_rd_strbytes(r, &len, what);
    if (!p) return;
    if ((size_t)len >= cap) {
        r->pos -= (size_t)len + 4;
        kn_rd_fail(r, "%s has length %u (at most %zu)", what, len, cap - 1);
        return;
    }
    memcpy(buf, p, len);
    buf[len] = 0;
}

/* ---- the device line ------------------------------------------------------------------------------ */

kiln_status kn_plan_describe(const kn_backend *be, const kiln_module *m, int device_index, char *buf,
                             size_t cap) {
    buf[0] = 0;
    if (be->describe_device) {
        be->describe_device(device_index, buf, cap);
    } else if (be->describe) {
        if (!m) return kn_error(KILN_ERR_INTERNAL, "describing backend %s needs a module", be->name);
        void *ctx = NULL;
        KN_TRY(be->session_init(m, 0, &ctx)); /* no arena: only the device and its libraries */
        be->describe(ctx, buf, cap);
        be->session_free(ctx);
    }
    if (!buf[0]) snprintf(buf, cap, "%s", be->name);
    return KILN_OK;
}

static int kn_is_lib_token(const char *t, size_t n) {
    static const char *const libs[] = {"cuda", "cudnn", "cublas", "driver", "runtime", "openblas"};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        size_t k = strlen(libs[i]);
        if (n < k) continue;
        size_t j = 0;
        while (j < k && tolower((unsigned char)t[j]) == libs[i][j]) j++;
        if (j == k) return 1;
    }
    return 0;
}

static void kn_copy_trimmed(char *dst, size_t cap, const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

void kn_plan_split_describe(const char *line, char *device, size_t dcap, char *libs, size_t lcap) {
    const char *bar = strstr(line, " | ");
    size_t len = strlen(line);
    if (bar) {
        kn_copy_trimmed(device, dcap, line, (size_t)(bar - line));
        kn_copy_trimmed(libs, lcap, bar + 3, len - (size_t)(bar + 3 - line));
        return;
    }
    const char *p = line;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        const char *t = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (p > t && kn_is_lib_token(t, (size_t)(p - t))) {
            kn_copy_trimmed(device, dcap, line, (size_t)(t - line));
            kn_copy_trimmed(libs, lcap, t, len - (size_t)(t - line));
            return;
        }
    }
    kn_copy_trimmed(device, dcap, line, len);
    libs[0] = 0;
}

kiln_status kn_plan_check_device(const char *stored, const char *present, int tuned) {
    if (!strcmp(stored, present)) return KILN_OK;
    char sd[256], sl[256], pd[256], pl[256];
    kn_plan_split_describe(stored, sd, sizeof sd, sl, sizeof sl);
    kn_plan_split_describe(present, pd, sizeof pd, pl, sizeof pl);
    if (strcmp(sd, pd))
        return kn_error(KILN_ERR_VERSION,
                        "the engine was built for device '%s' but this device is '%s': engines are "
                        "specific to the device they were built on; rebuild it here (kiln build)",
                        sd, pd);
    if (strcmp(sl, pl)) {
        if (tuned)
            return kn_error(KILN_ERR_VERSION,
                            "the engine's tactics were chosen with libraries '%s' but this machine has "
                            "'%s': the stored tactics may not exist or run with these versions; rebuild "
                            "the engine here (kiln build)",
                            sl, pl);
        KN_INFO("engine built with libraries '%s', running with '%s' (no stored tactics depend on them)", sl, pl);
    }
    return KILN_OK;
}
