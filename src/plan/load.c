/* kiln_module_load: reads an engine file back into a module (docs/engine-format.md). Order of
 * checks: magic, format version, size (truncation), checksum, then the sections, each length and
 * count bounded by the bytes that hold it; then the rebuilt module is checked for consistency
 * (graph structure, partition, memory plan, shapes at the profile's min/opt/max), the device and
 * libraries are compared with the present ones, each step's kernel is looked up by its stored name,
 * and the backend's module_init uploads the weights. Tactics are never re-timed. Every failure
 * frees what was made and says what was wrong. */
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KN_MAX_ITEMS (1 << 28) /* no count in an engine file may exceed this */
#define KN_MAX_TENSOR_BYTES (1ull << 48) /* nor any tensor or arena (256 TiB) */

/* numel * element size of dims, or UINT64_MAX when it overflows or a dim is negative. */
static uint64_t kn_safe_bytes(int rank, const int64_t *dims, size_t esize) {
    uint64_t n = esize;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return UINT64_MAX;
        if (dims[i] && n > UINT64_MAX / (uint64_t)dims[i]) return UINT64_MAX;
        n *= (uint64_t)dims[i];
    }
    return n;
}

typedef struct kn_loader {
    const uint8_t *file;
    size_t size;
    uint64_t weights_off, weights_bytes;
    kn_rbuf sec[6]; /* INFO, CONF, GRPH, PROF, PART, MEMP */
    char backend_name[64];
    char describe[512];
    char version[64];
    uint32_t format; /* the file's format version */
    int device;
    double build_ms;
    char **kernel_names; /* per step */
    int n_kernel_names;
    kiln_module *m;
    const kn_backend *be;
} kn_loader;

enum { KN_I_INFO, KN_I_CONF, KN_I_GRPH, KN_I_PROF, KN_I_PART, KN_I_MEMP, KN_N_SECTIONS };
static const uint32_t kn_sec_tags[KN_N_SECTIONS] = {KN_SEC_INFO, KN_SEC_CONF, KN_SEC_GRPH,
                                                    KN_SEC_PROF, KN_SEC_PART, KN_SEC_MEMP};

static void kn_tag_str(uint32_t tag, char out[5]) {
    for (int i = 0; i < 4; i++) {
        char c = (char)(tag >> (8 * i));
        out[i] = c >= 0x20 && c < 0x7f ? c : '?';
    }
    out[4] = 0;
}

static kiln_status kn_corrupt(const char *fmt, ...) KN_PRINTF(1, 2);
static kiln_status kn_corrupt(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kn_error(KILN_ERR_CORRUPT, "corrupt engine file: %s", msg);
}

/* ---- header, trailer, sections ------------------------------------------------------------------ */

static kiln_status kn_load_header(kn_loader *L, unsigned flags) {
    const uint8_t *f = L->file;
    size_t size = L->size;
    size_t have = size < 8 ? size : 8;
    if (memcmp(f, KN_PLAN_MAGIC, have) != 0)
        return kn_error(KILN_ERR_PARSE, "not a kiln engine file (it does not start with \"KILNENG\")");
    if (size < KN_HDR_VERSION + 4)
        return kn_error(KILN_ERR_CORRUPT, "the engine file is truncated: %zu bytes, the header alone has %u", size,
                        KN_PLAN_HEADER_BYTES);
    uint32_t version = kn_get_u32(f + KN_HDR_VERSION);
    if (version > KN_PLAN_VERSION)
        return kn_error(KILN_ERR_VERSION,
                        "the engine file has format version %u, newer than the version %u that this kiln (%s) "
                        "reads: use a newer kiln, or rebuild the engine with this one",
                        version, KN_PLAN_VERSION, kiln_version());
    if (version == 0) return kn_corrupt("format version 0 does not exist");
    L->format = version;
    if (size < KN_PLAN_HEADER_BYTES)
        return kn_error(KILN_ERR_CORRUPT, "the engine file is truncated: %zu bytes, the header alone has %u", size,
                        KN_PLAN_HEADER_BYTES);
    uint64_t file_bytes = kn_get_u64(f + KN_HDR_FILE_BYTES);
    if (file_bytes > size)
        return kn_error(KILN_ERR_CORRUPT, "the engine file is truncated: it has %zu bytes, its header says %llu", size,
                        (unsigned long long)file_bytes);
    if (file_bytes < size)
        return kn_corrupt("%llu bytes follow the end that the header gives (%llu); the file was damaged",
                          (unsigned long long)(size - file_bytes), (unsigned long long)file_bytes);
    if (size < KN_PLAN_HEADER_BYTES + KN_PLAN_TRAILER_BYTES)
        return kn_error(KILN_ERR_CORRUPT, "the engine file is truncated: %zu bytes leave no room for its trailer", size);
    const uint8_t *t = f + size - KN_PLAN_TRAILER_BYTES;
    if (memcmp(t + 8, KN_PLAN_END_MAGIC, 8) != 0)
        return kn_error(KILN_ERR_CORRUPT, "the engine file is truncated or damaged: its trailer is missing");
    uint32_t stored = kn_get_u32(t);
    if (!(flags & KN_PLAN_LOAD_SKIP_CRC)) {
        uint32_t crc = kn_crc32(0, f, size - KN_PLAN_TRAILER_BYTES);
        if (crc != stored)
            return kn_error(KILN_ERR_CORRUPT, "checksum mismatch: the file is corrupt (stored CRC-32 %08x, computed %08x)",
                            stored, crc);
    }
    uint32_t header_bytes = kn_get_u32(f + KN_HDR_HEADER_BYTES);
    uint64_t meta_off = kn_get_u64(f + KN_HDR_META_OFFSET), meta_bytes = kn_get_u64(f + KN_HDR_META_BYTES);
    uint64_t w_off = kn_get_u64(f + KN_HDR_WEIGHTS_OFFSET), w_bytes = kn_get_u64(f + KN_HDR_WEIGHTS_BYTES);
    uint64_t body_end = size - KN_PLAN_TRAILER_BYTES;
    if (header_bytes != KN_PLAN_HEADER_BYTES) return kn_corrupt("header size %u, expected %u", header_bytes, KN_PLAN_HEADER_BYTES);
    if (meta_off < KN_PLAN_HEADER_BYTES || meta_off > body_end || meta_bytes > body_end - meta_off)
        return kn_corrupt("the metadata (%llu bytes at %llu) lies outside the file", (unsigned long long)meta_bytes,
                          (unsigned long long)meta_off);
    if (w_off % KN_PLAN_ALIGN || w_off < meta_off + meta_bytes || w_off > body_end || w_bytes != body_end - w_off)
        return kn_corrupt("the weights (%llu bytes at %llu) do not fill the file up to its trailer at %llu",
                          (unsigned long long)w_bytes, (unsigned long long)w_off, (unsigned long long)body_end);
    L->weights_off = w_off;
    L->weights_bytes = w_bytes;

    /* sections: tag, flags, length, payload */
    uint32_t n_sections = kn_get_u32(f + KN_HDR_N_SECTIONS), seen = 0;
    uint64_t pos = meta_off, end = meta_off + meta_bytes;
    while (pos < end) {
        if (end - pos < 16) return kn_corrupt("a section header at byte %llu is cut short", (unsigned long long)pos);
        uint32_t tag = kn_get_u32(f + pos), sflags = kn_get_u32(f + pos + 4);
        uint64_t len = kn_get_u64(f + pos + 8);
        char name[5];
        kn_tag_str(tag, name);
        if (len > end - pos - 16)
            return kn_corrupt("section '%s' at byte %llu claims %llu bytes, %llu are left", name, (unsigned long long)pos,
                              (unsigned long long)len, (unsigned long long)(end - pos - 16));
        int idx = -1;
        for (int i = 0; i < KN_N_SECTIONS; i++)
            if (kn_sec_tags[i] == tag) idx = i;
        if (idx < 0 && (sflags & KN_SEC_REQUIRED))
            return kn_error(KILN_ERR_VERSION,
                            "the engine file has a section '%s' that this kiln (%s) does not know: it was written by a "
                            "newer kiln; use that, or rebuild the engine with this one",
                            name, kiln_version());
        if (idx >= 0) {
            if (L->sec[idx].p) return kn_corrupt("section '%s' appears twice", name);
            L->sec[idx] = (kn_rbuf){.p = f + pos + 16, .n = (size_t)len, .base = (size_t)(pos + 16)};
        }
        pos += 16 + len;
        seen++;
    }
    if (seen != n_sections) return kn_corrupt("the header lists %u sections, the metadata holds %u", n_sections, seen);
    for (int i = 0; i < KN_N_SECTIONS; i++)
        if (!L->sec[i].p) {
            char name[5];
            kn_tag_str(kn_sec_tags[i], name);
            return kn_corrupt("section '%s' is missing", name);
        }
    return KILN_OK;
}

/* Every section must be read to its end: bytes left over mean the writer and reader disagree. */
static kiln_status kn_section_done(kn_rbuf *r, const char *name) {
    if (r->st != KILN_OK) return r->st;
    if (r->pos != r->n) return kn_rd_fail(r, "section '%s' has %zu bytes after its last field", name, r->n - r->pos);
    return KILN_OK;
}

static kiln_status kn_load_info(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_INFO];
    kn_rd_str_into(r, L->version, sizeof L->version, "kiln version");
    kn_rd_str_into(r, L->backend_name, sizeof L->backend_name, "backend name");
    kn_rd_str_into(r, L->describe, sizeof L->describe, "device line");
    L->device = kn_rd_i32(r, "device");
    L->build_ms = kn_rd_f64(r, "build time");
    KN_TRY(kn_section_done(r, "INFO"));
    if (!strcmp(L->backend_name, "cpu")) {
        L->be = kn_backend_cpu();
    } else if (!strcmp(L->backend_name, "cuda")) {
        L->be = kn_backend_cuda();
        if (!L->be)
            return kn_error(KILN_ERR_VERSION, "the engine was built for the cuda backend (%s), but %s", L->describe,
#ifdef KILN_HAVE_CUDA
                            "no usable CUDA device was found"
#else
                            "this kiln was built without the CUDA backend"
#endif
            );
    } else {
        return kn_error(KILN_ERR_VERSION, "the engine was built for a backend '%s' that this kiln (%s) does not have",
                        L->backend_name, kiln_version());
    }
    if (L->device != (int)L->be->device) return kn_corrupt("backend %s with device kind %d", L->be->name, L->device);
    return KILN_OK;
}

static kiln_status kn_load_conf(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_CONF];
    kiln_module *m = L->m;
    m->device_index = kn_rd_i32(r, "device index");
    uint32_t prec = kn_rd_u32(r, "precision");
    m->min_block_size = kn_rd_i32(r, "min_block_size");
    uint32_t fl = kn_rd_u32(r, "build flags");
    int n = kn_rd_count(r, 4, KN_MAX_ITEMS, "number of fallback ops");
    if (r->st == KILN_OK && prec > KILN_PRECISION_BF16) kn_rd_fail(r, "precision %u is not known", prec);
    if (r->st == KILN_OK && (m->device_index < 0 || m->min_block_size < 0))
        kn_rd_fail(r, "device index %d / min_block_size %d", m->device_index, m->min_block_size);
    if (r->st != KILN_OK) return r->st;
    m->precision = (kiln_precision)prec;
    m->require_full_compilation = (fl & 1u) != 0;
    m->pass_through_build_failures = (fl & 2u) != 0;
    m->avoid_runtime_compilation = (fl & 4u) != 0;
    if (n) {
        m->fallback_ops = kn_calloc((size_t)n, sizeof(char *));
        if (!m->fallback_ops) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
        for (int i = 0; i < n && r->st == KILN_OK; i++) {
            m->fallback_ops[i] = kn_rd_str(r, "fallback op");
            if (m->fallback_ops[i]) m->n_fallback_ops++;
        }
    }
    /* the workspace limit came later: files written before it end here (limit 0, kiln's) */
    if (r->st == KILN_OK && r->pos < r->n) {
        uint64_t ws = kn_rd_u64(r, "workspace limit");
#if SIZE_MAX < UINT64_MAX
        if (r->st == KILN_OK && ws > SIZE_MAX) kn_rd_fail(r, "workspace limit %llu does not fit", (unsigned long long)ws);
#endif
        m->workspace_limit = (size_t)ws;
    }
    return kn_section_done(r, "CONF");
}

/* ---- the graph ------------------------------------------------------------------------------------ */

/* A host tensor's dtype, rank, dims and its bytes in the weights section, copied out. */
static kn_host_tensor *kn_load_tensor(kn_loader *L, kn_rbuf *r, const char *what) {
    uint32_t dt = kn_rd_u32(r, what);
    int32_t rank = kn_rd_i32(r, what);
    if (r->st != KILN_OK) return NULL;
    size_t esize = kiln_dtype_size((kiln_dtype)dt);
    if (!esize) { kn_rd_fail(r, "%s has element type %u", what, dt); return NULL; }
    if (rank < 0 || rank > KILN_MAX_RANK) { kn_rd_fail(r, "%s has rank %d", what, rank); return NULL; }
    int64_t dims[KILN_MAX_RANK];
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < rank; i++) {
        dims[i] = kn_rd_i64(r, what);
        if (dims[i] < 0) overflow = 1;
        else if (dims[i] && numel > UINT64_MAX / (uint64_t)dims[i]) overflow = 1;
        else numel *= (uint64_t)dims[i];
    }
    uint64_t off = kn_rd_u64(r, what), bytes = kn_rd_u64(r, what);
    if (r->st != KILN_OK) return NULL;
    if (overflow || numel > UINT64_MAX / esize || numel * esize != bytes) {
        kn_rd_fail(r, "%s: its dims do not match its %llu bytes", what, (unsigned long long)bytes);
        return NULL;
    }
    if (off % KN_PLAN_ALIGN || off > L->weights_bytes || bytes > L->weights_bytes - off) {
        kn_rd_fail(r, "%s: %llu bytes at weights offset %llu lie outside the %llu bytes of weights", what,
                   (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)L->weights_bytes);
        return NULL;
    }
    /* made here rather than by kn_host_tensor_new, which zeroes the data that we overwrite at once */
    kn_host_tensor *t = kn_calloc(1, sizeof *t);
    if (t) t->data = kn_aligned_alloc(bytes ? (size_t)bytes : 64);
    if (!t || !t->data) {
        kn_free(t);
        r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory for %s (%llu bytes)", what, (unsigned long long)bytes);
        return NULL;
    }
    t->dtype = (kiln_dtype)dt;
    t->rank = rank;
    memcpy(t->dims, dims, (size_t)rank * sizeof dims[0]);
    if (bytes) memcpy(t->data, L->file + L->weights_off + off, (size_t)bytes);
    return t;
}

static kiln_status kn_load_attr(kn_loader *L, kn_rbuf *r, kn_node *nd, kn_attr *a) {
    memset(a, 0, sizeof *a);
    a->name = kn_rd_str(r, "attribute name");
    uint32_t type = kn_rd_u32(r, "attribute type");
    if (r->st != KILN_OK) return r->st;
    a->type = (kiln_attr_type)type;
    switch (type) {
    case KILN_ATTR_INT: a->i = kn_rd_i64(r, "int attribute"); break;
    case KILN_ATTR_FLOAT: a->f = kn_rd_f32(r, "float attribute"); break;
    case KILN_ATTR_STRING: a->s = kn_rd_str(r, "string attribute"); break;
    case KILN_ATTR_INTS: {
        int n = kn_rd_count(r, 8, KN_MAX_ITEMS, "ints attribute count");
        if (r->st != KILN_OK) break;
        a->ints = kn_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
        if (!a->ints) return r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
        a->count = n;
        for (int i = 0; i < n; i++) a->ints[i] = kn_rd_i64(r, "ints attribute");
        break;
    }
    case KILN_ATTR_FLOATS: {
        int n = kn_rd_count(r, 4, KN_MAX_ITEMS, "floats attribute count");
        if (r->st != KILN_OK) break;
        a->floats = kn_malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!a->floats) return r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
        a->count = n;
        for (int i = 0; i < n; i++) a->floats[i] = kn_rd_f32(r, "floats attribute");
        break;
    }
    case KILN_ATTR_TENSOR: a->tensor = kn_load_tensor(L, r, "tensor attribute"); break;
    default: return kn_rd_fail(r, "node '%s': attribute '%s' has unknown type %u", nd->name, a->name, type);
    }
    return r->st;
}

static kiln_status kn_load_values(kn_loader *L, kn_rbuf *r, kn_graph *g) {
    int n = kn_rd_count(r, 20, KN_MAX_ITEMS, "number of values");
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        char *name = kn_rd_str(r, "value name");
        if (!name) break;
        int v = -1;
        kiln_status st = kn_graph_new_value(g, name, &v);
        if (st != KILN_OK) { kn_free(name); return r->st = st; }
        if (v != i || strcmp(g->values[v].name, name)) {
            kn_rd_fail(r, "value name '%s' appears twice or is empty", name);
            kn_free(name);
            break;
        }
        kn_free(name);
        kn_value *val = &g->values[v];
        uint32_t dt = kn_rd_u32(r, "value dtype");
        int32_t rank = kn_rd_i32(r, "value rank");
        if (r->st != KILN_OK) break;
        if (dt >= KILN_DTYPE_COUNT || rank < -1 || rank > KILN_MAX_RANK) {
            kn_rd_fail(r, "value '%s' has dtype %u and rank %d", val->name, dt, rank);
            break;
        }
        val->dtype = (kiln_dtype)dt;
        val->rank = rank;
        for (int d = 0; d < rank; d++) {
            val->dims[d].v = kn_rd_i64(r, "value dim");
            val->dims[d].sym = kn_rd_i32(r, "value dim symbol");
            if (r->st == KILN_OK && (val->dims[d].sym < -1 || val->dims[d].sym >= g->n_syms || val->dims[d].v < -1))
                kn_rd_fail(r, "value '%s' dim %d is %lld with symbol %d (%d symbols)", val->name, d,
                           (long long)val->dims[d].v, val->dims[d].sym, g->n_syms);
        }
        val->flags = kn_rd_u32(r, "value flags");
        uint32_t ck = kn_rd_u32(r, "constant kind");
        if (r->st != KILN_OK) break;
        if (ck == KN_PLAN_CONST_DATA) {
            kn_host_tensor *t = kn_load_tensor(L, r, "constant");
            if (!t) break;
            kn_value_set_constant(val, t);
        } else if (ck != KN_PLAN_CONST_NONE) {
            kn_rd_fail(r, "value '%s' has constant kind %u", val->name, ck);
        }
        if (r->st == KILN_OK && val->constant && (val->flags & KN_VALUE_INPUT))
            kn_rd_fail(r, "value '%s' is both a constant and a graph input", val->name);
    }
    return r->st;
}

static kiln_status kn_load_nodes(kn_loader *L, kn_rbuf *r, kn_graph *g) {
    int n = kn_rd_count(r, 24, KN_MAX_ITEMS, "number of nodes");
    int *io = NULL;
    for (int i = 0; i < n && r->st == KILN_OK; i++) {
        char op_name[64];
        kn_rd_str_into(r, op_name, sizeof op_name, "op type");
        char *name = kn_rd_str(r, "node name");
        int32_t fallback = kn_rd_i32(r, "fallback mark");
        int n_in = kn_rd_count(r, 4, 1 << 16, "number of node inputs");
        if (r->st != KILN_OK) { kn_free(name); break; }
        kn_op op = kn_op_from_name(op_name);
        if (op == KN_OP_INVALID) {
            kn_free(name);
            r->st = kn_error(KILN_ERR_VERSION,
                             "the engine file uses an op '%s' that this kiln (%s) does not know: it was built by "
                             "another kiln (%s); rebuild the engine with this one",
                             op_name, kiln_version(), L->version);
            break;
        }
        kn_free(io);
        io = kn_malloc(((size_t)n_in + 1) * sizeof(int));
        if (!io) { kn_free(name); r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine"); break; }
        for (int k = 0; k < n_in && r->st == KILN_OK; k++) {
            int v = io[k] = kn_rd_i32(r, "node input");
            if (r->st != KILN_OK) break;
            if (v < -1 || v >= g->n_values) { kn_rd_fail(r, "node '%s' input %d is value %d of %d", name, k, v, g->n_values); break; }
            if (v < 0) continue;
            const kn_value *val = &g->values[v];
            if (!val->constant && !(val->flags & KN_VALUE_INPUT) && val->producer < 0)
                kn_rd_fail(r, "node '%s' reads '%s' before any node makes it (nodes must be in topological order)",
                           name, val->name);
        }
        int n_out = kn_rd_count(r, 4, 1 << 16, "number of node outputs");
        int *out = NULL;
        if (r->st == KILN_OK) {
            out = kn_malloc(((size_t)n_out + 1) * sizeof(int));
            if (!out) { kn_free(name); r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine"); break; }
        }
        for (int k = 0; k < n_out && r->st == KILN_OK; k++) {
            int v = out[k] = kn_rd_i32(r, "node output");
            if (r->st != KILN_OK) break;
            if (v < -1 || v >= g->n_values) { kn_rd_fail(r, "node '%s' output %d is value %d of %d", name, k, v, g->n_values); break; }
            if (v < 0) continue;
            const kn_value *val = &g->values[v];
            if (val->constant || (val->flags & KN_VALUE_INPUT) || val->producer >= 0)
                kn_rd_fail(r, "node '%s' writes '%s', which is a constant, a graph input or another node's output", name,
                           val->name);
            for (int j = 0; j < k && r->st == KILN_OK; j++)
                if (out[j] == v) kn_rd_fail(r, "node '%s' writes '%s' twice", name, val->name);
        }
        if (r->st != KILN_OK) { kn_free(name); kn_free(out); break; }
        int idx;
        kiln_status st = kn_graph_new_node(g, op, name, n_in, io, n_out, out, &idx);
        kn_free(name);
        kn_free(out);
        if (st != KILN_OK) { r->st = st; break; }
        kn_node *nd = &g->nodes[idx];
        nd->fallback = fallback;
        int n_attrs = kn_rd_count(r, 8, 1 << 16, "number of attributes");
        if (r->st != KILN_OK) break;
        if (n_attrs) {
            nd->attrs = kn_calloc((size_t)n_attrs, sizeof *nd->attrs);
            if (!nd->attrs) { r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine"); break; }
        }
        for (int a = 0; a < n_attrs && r->st == KILN_OK; a++) {
            kn_attr *at = &nd->attrs[a];
            nd->n_attrs++; /* counted first: a failed attribute is freed with the node */
            if (kn_load_attr(L, r, nd, at) != KILN_OK) break;
            for (int b = 0; b < a; b++)
                if (!strcmp(nd->attrs[b].name, at->name)) { kn_rd_fail(r, "node '%s' has attribute '%s' twice", nd->name, at->name); break; }
        }
    }
    kn_free(io);
    return r->st;
}

static kiln_status kn_load_graph(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_GRPH];
    kn_graph *g = kn_graph_new();
    if (!g) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    L->m->graph = g;
    g->opset = kn_rd_i32(r, "opset");
    int n_syms = kn_rd_count(r, 20, KN_MAX_ITEMS, "number of symbols");
    for (int i = 0; i < n_syms && r->st == KILN_OK; i++) {
        char *name = kn_rd_str(r, "symbol name");
        int64_t mn = kn_rd_i64(r, "symbol min"), mx = kn_rd_i64(r, "symbol max");
        if (!name) break;
        int k = -1;
        kiln_status st = r->st == KILN_OK ? kn_graph_add_sym(g, name, &k) : r->st;
        if (st != KILN_OK) { kn_free(name); return r->st = st; }
        if (k != i || mn < 0 || mn > mx) kn_rd_fail(r, "symbol '%s' (%lld..%lld) is repeated or has a bad range", name, (long long)mn, (long long)mx);
        else { g->syms[k].min = mn; g->syms[k].max = mx; }
        kn_free(name);
    }
    if (r->st == KILN_OK) kn_load_values(L, r, g);
    if (r->st == KILN_OK) kn_load_nodes(L, r, g);
    int n_in = kn_rd_count(r, 4, g->n_values, "number of graph inputs");
    if (r->st == KILN_OK && n_in && KN_GROW(g->inputs, g->cap_inputs, n_in) != KILN_OK)
        return r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    for (int k = 0; k < n_in && r->st == KILN_OK; k++) {
        int v = kn_rd_i32(r, "graph input");
        if (r->st != KILN_OK) break;
        if (v < 0 || v >= g->n_values || !(g->values[v].flags & KN_VALUE_INPUT)) { kn_rd_fail(r, "graph input %d is value %d", k, v); break; }
        for (int j = 0; j < k; j++)
            if (g->inputs[j] == v) kn_rd_fail(r, "graph input '%s' is listed twice", g->values[v].name);
        g->inputs[g->n_inputs++] = v;
    }
    if (r->st == KILN_OK) { /* every value marked as an input is listed */
        int marked = 0;
        for (int v = 0; v < g->n_values; v++) marked += (g->values[v].flags & KN_VALUE_INPUT) != 0;
        if (marked != g->n_inputs) kn_rd_fail(r, "%d values are marked as inputs, %d are listed", marked, g->n_inputs);
    }
    int n_out = kn_rd_count(r, 4, g->n_values, "number of graph outputs");
    if (r->st == KILN_OK && n_out && KN_GROW(g->outputs, g->cap_outputs, n_out) != KILN_OK)
        return r->st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    for (int k = 0; k < n_out && r->st == KILN_OK; k++) {
        int v = kn_rd_i32(r, "graph output");
        if (r->st != KILN_OK) break;
        if (v < 0 || v >= g->n_values) { kn_rd_fail(r, "graph output %d is value %d of %d", k, v, g->n_values); break; }
        g->outputs[g->n_outputs++] = v;
    }
    KN_TRY(kn_section_done(r, "GRPH"));
    kiln_status st = kn_graph_verify(g); /* arities, attributes, sources, no cycles */
    if (st != KILN_OK) return kn_error_context(KILN_ERR_CORRUPT, "corrupt engine file: its graph does not verify");
    for (int v = 0; v < g->n_values; v++) {
        const kn_value *val = &g->values[v];
        if (val->constant)
            for (int d = 0; d < val->rank; d++)
                if (val->dims[d].sym >= 0) return kn_corrupt("constant '%s' has a symbolic dim", val->name);
    }
    return KILN_OK;
}

/* ---- profiles, partition, memory plan ------------------------------------------------------------ */

static kiln_status kn_load_io(kn_rbuf *r, const kn_graph *g, int value_expected, kiln_io_info *io, int is_input) {
    int v = kn_rd_i32(r, "io value");
    uint32_t dt = kn_rd_u32(r, "io dtype");
    int32_t rank = kn_rd_i32(r, "io rank");
    if (r->st != KILN_OK) return r->st;
    if (v != value_expected) return kn_rd_fail(r, "profile names value %d, the graph has %d there", v, value_expected);
    const kn_value *val = &g->values[v];
    if (dt >= KILN_DTYPE_COUNT || rank < 0 || rank > KILN_MAX_RANK || (is_input && (dt != (uint32_t)val->dtype || rank != val->rank)))
        return kn_rd_fail(r, "'%s': dtype %u rank %d disagree with the graph", val->name, dt, rank);
    io->name = val->name;
    io->dtype = (kiln_dtype)dt;
    io->rank = rank;
    for (int i = 0; i < rank; i++) {
        io->min[i] = kn_rd_i64(r, "profile min");
        io->opt[i] = kn_rd_i64(r, "profile opt");
        io->max[i] = kn_rd_i64(r, "profile max");
        if (r->st != KILN_OK) return r->st;
        if (io->min[i] < 0 || io->min[i] > io->opt[i] || io->opt[i] > io->max[i])
            return kn_rd_fail(r, "'%s' dim %d: profile %lld/%lld/%lld is not ordered", val->name, i, (long long)io->min[i],
                              (long long)io->opt[i], (long long)io->max[i]);
        if (io->max[i] > (int64_t)KN_MAX_TENSOR_BYTES)
            return kn_rd_fail(r, "'%s' dim %d has max %lld", val->name, i, (long long)io->max[i]);
        if (is_input && val->dims[i].sym < 0 && val->dims[i].v >= 0 && (io->min[i] != val->dims[i].v || io->max[i] != val->dims[i].v))
            return kn_rd_fail(r, "'%s' dim %d is fixed to %lld but the profile gives %lld..%lld", val->name, i,
                              (long long)val->dims[i].v, (long long)io->min[i], (long long)io->max[i]);
    }
    if (kn_safe_bytes(rank, io->max, kiln_dtype_size(io->dtype)) > KN_MAX_TENSOR_BYTES)
        return kn_rd_fail(r, "'%s' at its max dims needs more than %llu bytes", val->name, (unsigned long long)KN_MAX_TENSOR_BYTES);
    return KILN_OK;
}

static kiln_status kn_load_profiles(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_PROF];
    kiln_module *m = L->m;
    const kn_graph *g = m->graph;
    int n = kn_rd_count(r, 12, KN_MAX_ITEMS, "number of inputs");
    if (r->st == KILN_OK && n != g->n_inputs) return kn_rd_fail(r, "%d input profiles for %d graph inputs", n, g->n_inputs);
    if (r->st == KILN_OK && n > 64) return kn_error(KILN_ERR_UNSUPPORTED, "the engine has %d inputs; kiln runs at most 64", n);
    m->inputs = kn_calloc((size_t)g->n_inputs + 1, sizeof *m->inputs);
    m->outputs = kn_calloc((size_t)g->n_outputs + 1, sizeof *m->outputs);
    if (!m->inputs || !m->outputs) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    for (int k = 0; k < n && r->st == KILN_OK; k++) kn_load_io(r, g, g->inputs[k], &m->inputs[k], 1);
    m->n_inputs = g->n_inputs;
    int no = kn_rd_count(r, 12, KN_MAX_ITEMS, "number of outputs");
    if (r->st == KILN_OK && no != g->n_outputs) return kn_rd_fail(r, "%d output infos for %d graph outputs", no, g->n_outputs);
    for (int k = 0; k < no && r->st == KILN_OK; k++) kn_load_io(r, g, g->outputs[k], &m->outputs[k], 0);
    m->n_outputs = g->n_outputs;
    return kn_section_done(r, "PROF");
}

static kiln_status kn_load_partition(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_PART];
    kiln_module *m = L->m;
    const kn_graph *g = m->graph;
    int n_nodes = kn_rd_count(r, 1, KN_MAX_ITEMS, "number of host-node marks");
    if (r->st == KILN_OK && n_nodes != g->n_nodes) return kn_rd_fail(r, "%d host-node marks for %d nodes", n_nodes, g->n_nodes);
    m->host_node = kn_calloc((size_t)g->n_nodes + 1, 1);
    if (!m->host_node) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    int n_device = 0;
    for (int i = 0; i < n_nodes && r->st == KILN_OK; i++) {
        m->host_node[i] = kn_rd_u8(r, "host-node mark");
        if (m->host_node[i] > 1) kn_rd_fail(r, "host-node mark %u", m->host_node[i]);
        n_device += !m->host_node[i];
    }
    kn_partition *p = &m->part;
    int ns = kn_rd_count(r, 24, g->n_nodes, "number of segments");
    if (r->st != KILN_OK) return r->st;
    p->segments = kn_calloc((size_t)ns + 1, sizeof *p->segments);
    if (!p->segments) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    p->n_segments = ns;
    int next = 0;
    for (int s = 0; s < ns && r->st == KILN_OK; s++) {
        kn_segment *seg = &p->segments[s];
        uint32_t kind = kn_rd_u32(r, "segment kind");
        seg->first = kn_rd_i32(r, "segment first step");
        seg->count = kn_rd_i32(r, "segment step count");
        uint32_t reason = kn_rd_u32(r, "segment reason");
        uint32_t capt = kn_rd_u32(r, "segment capturable");
        kn_rd_str_into(r, seg->detail, sizeof seg->detail, "segment detail");
        if (r->st != KILN_OK) break;
        if (kind > KN_SEG_FALLBACK || reason > KN_BREAK_BUILD_FAILED || capt > 1 || seg->first != next || seg->count < 1 ||
            seg->count > n_device - next)
            return kn_rd_fail(r, "segment %d (kind %u, steps %d+%d, reason %u) does not follow segment %d", s, kind, seg->first,
                              seg->count, reason, s - 1);
        seg->kind = (kn_segment_kind)kind;
        seg->reason = (kn_break_reason)reason;
        seg->capturable = (int)capt;
        next += seg->count;
    }
    if (r->st != KILN_OK) return r->st;
    if (next != n_device) return kn_rd_fail(r, "segments cover %d steps, the graph has %d device nodes", next, n_device);
    int nsteps = kn_rd_count(r, 24, g->n_nodes, "number of steps");
    if (r->st != KILN_OK) return r->st;
    if (nsteps != n_device) return kn_rd_fail(r, "%d steps for %d device nodes", nsteps, n_device);
    p->steps = kn_calloc((size_t)nsteps + 1, sizeof *p->steps);
    L->kernel_names = kn_calloc((size_t)nsteps + 1, sizeof(char *));
    if (!p->steps || !L->kernel_names) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    p->n_steps = nsteps;
    int last_node = -1;
    for (int s = 0; s < nsteps && r->st == KILN_OK; s++) {
        kn_step *st = &p->steps[s];
        st->node = kn_rd_i32(r, "step node");
        st->segment = kn_rd_i32(r, "step segment");
        L->kernel_names[s] = kn_rd_str(r, "kernel name");
        if (L->kernel_names[s]) L->n_kernel_names = s + 1;
        st->tactic = kn_rd_i32(r, "tactic");
        uint32_t reason = kn_rd_u32(r, "step reason");
        st->tactic_ms = kn_rd_f32(r, "tactic time");
        if (L->format >= 2) kn_rd_str_into(r, st->tactic_key, sizeof st->tactic_key, "tactic key");
        if (r->st != KILN_OK) break;
        if (st->tactic_key[0] && !kn_tactic_key_valid(st->tactic_key))
            return kn_rd_fail(r, "step %d has a tactic key with characters outside [A-Za-z0-9:=,._+-/]", s);
        if (st->node <= last_node || st->node >= g->n_nodes || m->host_node[st->node])
            return kn_rd_fail(r, "step %d runs node %d (after node %d, of %d)", s, st->node, last_node, g->n_nodes);
        if (st->segment < 0 || st->segment >= ns || s < p->segments[st->segment].first ||
            s >= p->segments[st->segment].first + p->segments[st->segment].count)
            return kn_rd_fail(r, "step %d claims segment %d", s, st->segment);
        if (st->tactic < 0 || reason > KN_BREAK_BUILD_FAILED || !(st->tactic_ms >= 0) || isinf(st->tactic_ms))
            return kn_rd_fail(r, "step %d has tactic %d, reason %u, time %g", s, st->tactic, reason, (double)st->tactic_ms);
        st->reason = (kn_break_reason)reason;
        last_node = st->node;
    }
    return kn_section_done(r, "PART");
}

static kiln_status kn_load_memory_plan(kn_loader *L) {
    kn_rbuf *r = &L->sec[KN_I_MEMP];
    kiln_module *m = L->m;
    const kn_graph *g = m->graph;
    uint64_t arena = kn_rd_u64(r, "arena size"), peak = kn_rd_u64(r, "peak live bytes");
    int n = kn_rd_count(r, 16, KN_MAX_ITEMS, "number of planned values");
    if (r->st != KILN_OK) return r->st;
    if (n != g->n_values) return kn_rd_fail(r, "a plan for %d values, the graph has %d", n, g->n_values);
    m->offset = kn_malloc(((size_t)n + 1) * sizeof *m->offset);
    m->bytes = kn_calloc((size_t)n + 1, sizeof *m->bytes);
    if (!m->offset || !m->bytes) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    uint64_t bound = 4096;
    for (int v = 0; v < n && r->st == KILN_OK; v++) {
        int64_t off = kn_rd_i64(r, "value offset");
        uint64_t bytes = kn_rd_u64(r, "value bytes");
        if (r->st != KILN_OK) break;
        m->offset[v] = off;
        m->bytes[v] = (size_t)bytes;
        if (off == -1) continue;
        if (off < 0 || (uint64_t)off > arena || bytes > arena - (uint64_t)off || off % 16)
            return kn_rd_fail(r, "value '%s' at arena offset %lld (%llu bytes) lies outside the %llu-byte arena",
                              g->values[v].name, (long long)off, (unsigned long long)bytes, (unsigned long long)arena);
        if (g->values[v].constant) return kn_rd_fail(r, "constant '%s' has an arena offset", g->values[v].name);
        bound += (bytes + 4095) / 4096 * 4096 + 4096;
    }
    if (r->st != KILN_OK) return r->st;
    if (arena > bound || peak > arena || arena > KN_MAX_TENSOR_BYTES)
        return kn_rd_fail(r, "arena of %llu bytes (peak live %llu) for values that need at most %llu",
                          (unsigned long long)arena, (unsigned long long)peak, (unsigned long long)bound);
    m->arena_size = (size_t)arena;
    m->peak_live = (size_t)peak;
    /* every value a step writes, and every graph input, must have a place */
    for (int s = 0; s < m->part.n_steps; s++) {
        const kn_node *nd = &g->nodes[m->part.steps[s].node];
        for (int k = 0; k < nd->n_out; k++)
            if (nd->out[k] >= 0 && m->offset[nd->out[k]] < 0)
                return kn_corrupt("output '%s' of node '%s' has no place in the arena", g->values[nd->out[k]].name, nd->name);
    }
    for (int k = 0; k < g->n_inputs; k++)
        if (m->offset[g->inputs[k]] < 0) return kn_corrupt("input '%s' has no place in the arena", g->values[g->inputs[k]].name);
    /* a step's output meets its inputs' lifetimes, so it shares an offset with one of them only
     * as a view (docs/engine-format.md, MEMP): the output of a view op on its input 0 */
    for (int s = 0; s < m->part.n_steps; s++) {
        const kn_node *nd = &g->nodes[m->part.steps[s].node];
        for (int k = 0; k < nd->n_out; k++) {
            int y = nd->out[k];
            if (y < 0 || m->offset[y] < 0) continue;
            for (int j = 0; j < nd->n_in; j++) {
                int x = nd->in[j];
                if (x < 0 || m->offset[x] != m->offset[y] || (kn_node_is_view(g, nd) && j == 0 && k == 0)) continue;
                return kn_corrupt("output '%s' of node '%s' shares arena offset %lld with its input '%s': only a view "
                                  "(Reshape, Flatten, Squeeze, Unsqueeze, Identity, an order-keeping Transpose) may alias its input",
                                  g->values[y].name, nd->name, (long long)m->offset[y], g->values[x].name);
            }
        }
    }
    kn_mark_views(m);
    return kn_section_done(r, "MEMP");
}

/* Shape inference at the profile's min, opt and max: the stored plan must hold every shape, the
 * host-node marks and output infos must be what this kiln computes. */
static kiln_status kn_check_shapes(kn_loader *L) {
    kiln_module *m = L->m;
    const kn_graph *g = m->graph;
    int *order = kn_malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    int64_t (*dims)[KILN_MAX_RANK] = kn_calloc((size_t)g->n_inputs + 1, sizeof *dims);
    size_t *need_max = kn_calloc((size_t)g->n_values + 1, sizeof *need_max);
    kiln_status st = KILN_OK;
    if (!order || !dims || !need_max) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine"); goto done; }
    for (int i = 0; i < g->n_nodes; i++) order[i] = i;
    static const char *const which[3] = {"min", "opt", "max"};
    for (int p = 0; p < 3 && st == KILN_OK; p++) {
        for (int k = 0; k < g->n_inputs; k++)
            for (int i = 0; i < m->inputs[k].rank; i++)
                dims[k][i] = p == 0 ? m->inputs[k].min[i] : p == 1 ? m->inputs[k].opt[i] : m->inputs[k].max[i];
        kn_shapes sh;
        st = kn_shapes_infer(g, order, g->n_nodes, (const int64_t(*)[KILN_MAX_RANK])dims, &sh);
        if (st != KILN_OK) {
            st = kn_error_context(KILN_ERR_CORRUPT, "the engine's graph fails shape inference at the profile's %s shapes", which[p]);
            break;
        }
        for (int i = 0; i < g->n_nodes && st == KILN_OK; i++)
            if (!sh.host_node[i] != !m->host_node[i])
                st = kn_error(KILN_ERR_VERSION, "node '%s' is marked as %s-evaluated, this kiln evaluates it on the %s: rebuild the engine",
                              g->nodes[i].name, m->host_node[i] ? "host" : "device", sh.host_node[i] ? "host" : "device");
        for (int v = 0; v < g->n_values && st == KILN_OK; v++) {
            if (m->offset[v] < 0) continue;
            uint64_t need = kn_safe_bytes(sh.vals[v].rank, sh.vals[v].dims, kiln_dtype_size(sh.vals[v].dtype));
            if (need > need_max[v]) need_max[v] = (size_t)need;
            if (need > m->bytes[v])
                st = kn_corrupt("value '%s' is planned with %zu bytes but needs %llu at the profile's %s shapes", g->values[v].name,
                                m->bytes[v], (unsigned long long)need, which[p]);
        }
        for (int k = 0; k < g->n_outputs && st == KILN_OK; k++) {
            const kiln_io_info *io = &m->outputs[k];
            const kn_tensor *t = &sh.vals[g->outputs[k]];
            int same = t->dtype == io->dtype && t->rank == io->rank;
            for (int i = 0; same && i < io->rank; i++)
                same = t->dims[i] == (p == 0 ? io->min[i] : p == 1 ? io->opt[i] : io->max[i]);
            if (!same)
                st = kn_error(KILN_ERR_VERSION,
                              "output '%s' at the profile's %s shapes: the engine file says %s rank %d, this kiln infers %s "
                              "rank %d: rebuild the engine",
                              io->name, which[p], kiln_dtype_name(io->dtype), io->rank, kiln_dtype_name(t->dtype), t->rank);
        }
        kn_shapes_free(&sh);
    }
    for (int v = 0; v < g->n_values && st == KILN_OK; v++) /* no absurd sizes either */
        if (m->offset[v] >= 0 && m->bytes[v] > 2 * need_max[v] + 4096)
            st = kn_corrupt("value '%s' is planned with %zu bytes but needs at most %zu", g->values[v].name, m->bytes[v],
                            need_max[v]);
done:
    kn_free(order);
    kn_free(dims);
    kn_free(need_max);
    return st;
}

/* Each step's kernel by its stored name: the same lookup the builder made, which must agree. */
static kiln_status kn_resolve_kernels(kn_loader *L) {
    kiln_module *m = L->m;
    const kn_graph *g = m->graph;
    for (int s = 0; s < m->part.n_steps; s++) {
        kn_step *st = &m->part.steps[s];
        const kn_node *nd = &g->nodes[st->node];
        int engine = m->part.segments[st->segment].kind == KN_SEG_ENGINE;
        const kn_kernel *k = engine ? (L->be->engine_kernel ? L->be->engine_kernel(g, nd) : NULL)
                                    : (L->be->fallback_kernel ? L->be->fallback_kernel(g, nd) : NULL);
        const char *want = L->kernel_names[s];
        if (!k || !k->name || strcmp(k->name, want))
            return kn_node_error(nd, KILN_ERR_VERSION,
                                 "the engine file runs it with kernel '%s', but this kiln (%s; the file is from %s) %s%s%s: "
                                 "the kernel set changed; rebuild the engine (kiln build)",
                                 want, kiln_version(), L->version, k ? "chooses '" : "has no ",
                                 k ? (k->name ? k->name : "?") : (engine ? "engine kernel for it" : "fallback kernel for it"),
                                 k ? "'" : "");
        st->kernel = k;
        if (k->capturable && !k->capturable(nd)) m->part.segments[st->segment].capturable = 0;
    }
    return KILN_OK;
}

static int kn_module_tuned(const kiln_module *m) {
    for (int s = 0; s < m->part.n_steps; s++)
        if (m->part.steps[s].tactic != 0 || m->part.steps[s].tactic_ms > 0) return 1;
    return 0;
}

static void kn_loader_free(kn_loader *L) {
    for (int i = 0; i < L->n_kernel_names; i++) kn_free(L->kernel_names[i]);
    kn_free(L->kernel_names);
}

kiln_status kn_plan_load_memory(const void *data, size_t size, unsigned flags, kiln_module **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    KN_ARG_CHECK(data || !size, "data");
    kn_loader L;
    memset(&L, 0, sizeof L);
    L.file = data;
    L.size = size;
    if (!size) return kn_error(KILN_ERR_CORRUPT, "the engine file is empty (truncated to 0 bytes)");
    kiln_status st = kn_load_header(&L, flags);
    if (st != KILN_OK) return st;
    L.m = kn_calloc(1, sizeof *L.m);
    if (!L.m) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine");
    kiln_module *m = L.m;
    double t0 = kn_now_ms();
    KN_CHECK_GOTO(st, kn_load_info(&L), fail);
    KN_CHECK_GOTO(st, kn_load_conf(&L), fail);
    KN_CHECK_GOTO(st, kn_load_graph(&L), fail);
    KN_CHECK_GOTO(st, kn_load_profiles(&L), fail);
    KN_CHECK_GOTO(st, kn_load_partition(&L), fail);
    KN_CHECK_GOTO(st, kn_load_memory_plan(&L), fail);
    m->device = L.be->device;
    char present[512];
    int early = L.be->describe_device != NULL || L.be->describe == NULL;
    if (early) { /* before any device work */
        KN_CHECK_GOTO(st, kn_plan_describe(L.be, NULL, m->device_index, present, sizeof present), fail);
        KN_CHECK_GOTO(st, kn_plan_check_device(L.describe, present, kn_module_tuned(m)), fail);
    }
    KN_CHECK_GOTO(st, kn_check_shapes(&L), fail);
    KN_CHECK_GOTO(st, kn_resolve_kernels(&L), fail);
    m->const_ptr = kn_calloc((size_t)m->graph->n_values + 1, sizeof(void *));
    if (!m->const_ptr) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory loading an engine"); goto fail; }
    m->backend = L.be; /* from here kiln_module_free calls the backend's module_free */
    KN_CHECK_GOTO(st, L.be->module_init(m, &m->bstate), fail);
    if (!early) {
        KN_CHECK_GOTO(st, kn_plan_describe(L.be, m, m->device_index, present, sizeof present), fail);
        KN_CHECK_GOTO(st, kn_plan_check_device(L.describe, present, kn_module_tuned(m)), fail);
    }
    m->build_ms = L.build_ms;
    KN_VERBOSE("loaded an engine from kiln %s for %s in %.1f ms", L.version, L.describe, kn_now_ms() - t0);
    kn_loader_free(&L);
    *out = m;
    return KILN_OK;
fail:
    kn_loader_free(&L);
    kiln_module_free(m);
    return st;
}

/* The file is mapped (read-only, prefaulted): the checksum and the weights' copies read the page
 * cache directly, about twice as fast as read() into a buffer for large engines. A file truncated
 * by another process *while* it is being loaded could fault; kiln itself never does that (saving
 * renames a new file into place). Where mapping fails, the file is read into memory instead. */
static kiln_status kn_read_whole(int fd, size_t size, const char *path, uint8_t **buf, size_t *got) {
    *buf = kn_malloc(size ? size : 1);
    *got = 0;
    if (!*buf) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory reading '%s' (%zu bytes)", path, size);
    while (*got < size) {
        ssize_t n = read(fd, *buf + *got, size - *got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            kn_free(*buf);
            *buf = NULL;
            return kn_error(KILN_ERR_IO, "reading '%s' failed: %s", path, strerror(errno));
        }
        if (n == 0) break; /* the file shrank while reading: what is there is checked as a truncated file */
        *got += (size_t)n;
    }
    return KILN_OK;
}

kiln_status kiln_module_load(const char *path, kiln_module **out) {
    KN_ARG_CHECK(out, "out");
    *out = NULL;
    KN_ARG_CHECK(path && *path, "path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_error(errno == ENOENT ? KILN_ERR_NOT_FOUND : KILN_ERR_IO, "cannot open engine file '%s': %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kn_error(KILN_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : MAP_FAILED;
    kiln_status st;
    if (map != MAP_FAILED) {
        close(fd);
        st = kn_plan_load_memory(map, size, 0, out);
        munmap(map, size);
    } else {
        uint8_t *buf;
        size_t got;
        st = kn_read_whole(fd, size, path, &buf, &got);
        close(fd);
        if (st != KILN_OK) return st;
        st = kn_plan_load_memory(buf, got, 0, out);
        kn_free(buf);
    }
    if (st != KILN_OK) return kn_error_context(st, "loading '%s'", path);
    return KILN_OK;
}
