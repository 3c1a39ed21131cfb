/* kiln_module_save: writes a module as an engine file (docs/engine-format.md). The metadata is
 * encoded in memory first; the weights stream from the graph's host tensors straight into the
 * file, each at a 64-byte boundary, with the CRC-32 computed on the way. The file is written
 * under a temporary name in the same folder and renamed over `path` only when complete, so a
 * failed save leaves no half file (and an older file at `path` intact). */
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int kn_host_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint64_t kn_align_up(uint64_t x) { return (x + KN_PLAN_ALIGN - 1) & ~(uint64_t)(KN_PLAN_ALIGN - 1); }

/* One blob in the weights section. */
typedef struct kn_blob {
    const void *data;
    uint64_t bytes, offset; /* offset from the start of the weights section */
} kn_blob;

typedef struct kn_saver {
    const kiln_module *m;
    uint8_t *referenced; /* per value: read by a node or a graph output */
    kn_blob *blobs;
    int n_blobs, cap_blobs;
    uint64_t weights_bytes;
    kn_wbuf meta;
    uint32_t n_sections;
} kn_saver;

static kiln_status kn_add_blob(kn_saver *sv, const kn_host_tensor *t, uint64_t *offset, uint64_t *bytes) {
    KN_TRY(KN_GROW(sv->blobs, sv->cap_blobs, sv->n_blobs + 1));
    uint64_t b = (uint64_t)kn_host_numel(t) * kiln_dtype_size(t->dtype);
    kn_blob *bl = &sv->blobs[sv->n_blobs++];
    bl->data = t->data;
    bl->bytes = b;
    bl->offset = sv->weights_bytes;
    sv->weights_bytes = kn_align_up(sv->weights_bytes + b);
    *offset = bl->offset;
    *bytes = b;
    return KILN_OK;
}

static size_t kn_sec_begin(kn_saver *sv, uint32_t tag) {
    kn_wb_u32(&sv->meta, tag);
    kn_wb_u32(&sv->meta, KN_SEC_REQUIRED);
    size_t at = sv->meta.n;
    kn_wb_u64(&sv->meta, 0); /* length, patched by kn_sec_end */
    return at;
}

static void kn_sec_end(kn_saver *sv, size_t at) {
    if (sv->meta.failed) return;
    kn_put_u64(sv->meta.p + at, (uint64_t)(sv->meta.n - at - 8));
    sv->n_sections++;
}

static void kn_put_host_tensor_shape(kn_wbuf *w, const kn_host_tensor *t) {
    kn_wb_u32(w, (uint32_t)t->dtype);
    kn_wb_i32(w, t->rank);
    for (int i = 0; i < t->rank; i++) kn_wb_i64(w, t->dims[i]);
}

static kiln_status kn_save_info(kn_saver *sv) {
    const kiln_module *m = sv->m;
    char line[512];
    KN_TRY(kn_plan_describe(m->backend, m, m->device_index, line, sizeof line));
    size_t at = kn_sec_begin(sv, KN_SEC_INFO);
    kn_wb_str(&sv->meta, kiln_version());
    kn_wb_str(&sv->meta, m->backend->name);
    kn_wb_str(&sv->meta, line);
    kn_wb_i32(&sv->meta, (int32_t)m->device);
    kn_wb_f64(&sv->meta, m->build_ms);
    kn_sec_end(sv, at);
    return KILN_OK;
}

static void kn_save_conf(kn_saver *sv) {
    const kiln_module *m = sv->m;
    size_t at = kn_sec_begin(sv, KN_SEC_CONF);
    kn_wb_i32(&sv->meta, m->device_index);
    kn_wb_u32(&sv->meta, (uint32_t)m->precision);
    kn_wb_i32(&sv->meta, m->min_block_size);
    kn_wb_u32(&sv->meta, (m->require_full_compilation ? 1u : 0u) | (m->pass_through_build_failures ? 2u : 0u) |
                             (m->avoid_runtime_compilation ? 4u : 0u));
    kn_wb_u32(&sv->meta, (uint32_t)m->n_fallback_ops);
    for (int i = 0; i < m->n_fallback_ops; i++) kn_wb_str(&sv->meta, m->fallback_ops[i]);
    kn_wb_u64(&sv->meta, (uint64_t)m->workspace_limit);
    kn_sec_end(sv, at);
}

static kiln_status kn_save_attr(kn_saver *sv, const kn_node *nd, const kn_attr *a) {
    kn_wbuf *w = &sv->meta;
    kn_wb_str(w, a->name);
    kn_wb_u32(w, (uint32_t)a->type);
    switch (a->type) {
    case KILN_ATTR_INT: kn_wb_i64(w, a->i); break;
    case KILN_ATTR_FLOAT: kn_wb_f32(w, a->f); break;
    case KILN_ATTR_STRING: kn_wb_str(w, a->s ? a->s : ""); break;
    case KILN_ATTR_INTS:
        kn_wb_u32(w, (uint32_t)(a->ints ? a->count : 0));
        for (int i = 0; a->ints && i < a->count; i++) kn_wb_i64(w, a->ints[i]);
        break;
    case KILN_ATTR_FLOATS:
        kn_wb_u32(w, (uint32_t)(a->floats ? a->count : 0));
        for (int i = 0; a->floats && i < a->count; i++) kn_wb_f32(w, a->floats[i]);
        break;
    case KILN_ATTR_TENSOR: {
        if (!a->tensor) return kn_node_error(nd, KILN_ERR_INTERNAL, "tensor attribute '%s' has no tensor", a->name);
        uint64_t off, bytes;
        KN_TRY(kn_add_blob(sv, a->tensor, &off, &bytes));
        kn_put_host_tensor_shape(w, a->tensor);
        kn_wb_u64(w, off);
        kn_wb_u64(w, bytes);
        break;
    }
    default:
        return kn_node_error(nd, KILN_ERR_INTERNAL, "attribute '%s' has unknown type %d", a->name, (int)a->type);
    }
    return KILN_OK;
}

static kiln_status kn_save_graph(kn_saver *sv) {
    const kn_graph *g = sv->m->graph;
    kn_wbuf *w = &sv->meta;
    size_t at = kn_sec_begin(sv, KN_SEC_GRPH);
    kn_wb_i32(w, g->opset);
    kn_wb_u32(w, (uint32_t)g->n_syms);
    for (int i = 0; i < g->n_syms; i++) {
        kn_wb_str(w, g->syms[i].name);
        kn_wb_i64(w, g->syms[i].min);
        kn_wb_i64(w, g->syms[i].max);
    }
    kn_wb_u32(w, (uint32_t)g->n_values);
    for (int v = 0; v < g->n_values; v++) {
        const kn_value *val = &g->values[v];
        kn_wb_str(w, val->name);
        kn_wb_u32(w, (uint32_t)val->dtype);
        kn_wb_i32(w, val->rank);
        for (int i = 0; i < val->rank; i++) {
            kn_wb_i64(w, val->dims[i].v);
            kn_wb_i32(w, val->dims[i].sym);
        }
        kn_wb_u32(w, val->flags);
        if (!val->constant || !sv->referenced[v]) { /* a constant no node reads would only cost space */
            kn_wb_u32(w, KN_PLAN_CONST_NONE);
        } else {
            kn_wb_u32(w, KN_PLAN_CONST_DATA);
            uint64_t off, bytes;
            KN_TRY(kn_add_blob(sv, val->constant, &off, &bytes));
            kn_put_host_tensor_shape(w, val->constant);
            kn_wb_u64(w, off);
            kn_wb_u64(w, bytes);
        }
    }
    kn_wb_u32(w, (uint32_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        if (nd->dead) return kn_node_error(nd, KILN_ERR_INTERNAL, "the module's graph holds a dead node");
        kn_wb_str(w, kn_op_name(nd->op));
        kn_wb_str(w, nd->name);
        kn_wb_i32(w, nd->fallback);
        kn_wb_u32(w, (uint32_t)nd->n_in);
        for (int k = 0; k < nd->n_in; k++) kn_wb_i32(w, nd->in[k]);
        kn_wb_u32(w, (uint32_t)nd->n_out);
        for (int k = 0; k < nd->n_out; k++) kn_wb_i32(w, nd->out[k]);
        kn_wb_u32(w, (uint32_t)nd->n_attrs);
        for (int a = 0; a < nd->n_attrs; a++) KN_TRY(kn_save_attr(sv, nd, &nd->attrs[a]));
    }
    kn_wb_u32(w, (uint32_t)g->n_inputs);
    for (int k = 0; k < g->n_inputs; k++) kn_wb_i32(w, g->inputs[k]);
    kn_wb_u32(w, (uint32_t)g->n_outputs);
    for (int k = 0; k < g->n_outputs; k++) kn_wb_i32(w, g->outputs[k]);
    kn_sec_end(sv, at);
    return KILN_OK;
}

static void kn_save_io(kn_wbuf *w, const kiln_io_info *io, int value) {
    kn_wb_i32(w, value);
    kn_wb_u32(w, (uint32_t)io->dtype);
    kn_wb_i32(w, io->rank);
    for (int i = 0; i < io->rank; i++) {
        kn_wb_i64(w, io->min[i]);
        kn_wb_i64(w, io->opt[i]);
        kn_wb_i64(w, io->max[i]);
    }
}

static void kn_save_profiles(kn_saver *sv) {
    const kiln_module *m = sv->m;
    size_t at = kn_sec_begin(sv, KN_SEC_PROF);
    kn_wb_u32(&sv->meta, (uint32_t)m->n_inputs);
    for (int k = 0; k < m->n_inputs; k++) kn_save_io(&sv->meta, &m->inputs[k], m->graph->inputs[k]);
    kn_wb_u32(&sv->meta, (uint32_t)m->n_outputs);
    for (int k = 0; k < m->n_outputs; k++) kn_save_io(&sv->meta, &m->outputs[k], m->graph->outputs[k]);
    kn_sec_end(sv, at);
}

static kiln_status kn_save_partition(kn_saver *sv) {
    const kiln_module *m = sv->m;
    kn_wbuf *w = &sv->meta;
    size_t at = kn_sec_begin(sv, KN_SEC_PART);
    kn_wb_u32(w, (uint32_t)m->graph->n_nodes);
    for (int i = 0; i < m->graph->n_nodes; i++) kn_wb_u8(w, m->host_node ? m->host_node[i] : 0);
    kn_wb_u32(w, (uint32_t)m->part.n_segments);
    for (int s = 0; s < m->part.n_segments; s++) {
        const kn_segment *seg = &m->part.segments[s];
        kn_wb_u32(w, (uint32_t)seg->kind);
        kn_wb_i32(w, seg->first);
        kn_wb_i32(w, seg->count);
        kn_wb_u32(w, (uint32_t)seg->reason);
        kn_wb_u32(w, (uint32_t)seg->capturable);
        kn_wb_str(w, seg->detail);
    }
    kn_wb_u32(w, (uint32_t)m->part.n_steps);
    for (int s = 0; s < m->part.n_steps; s++) {
        const kn_step *st = &m->part.steps[s];
        if (!st->kernel || !st->kernel->name)
            return kn_error(KILN_ERR_INTERNAL, "step %d has no kernel: the module is not built", s);
        kn_wb_i32(w, st->node);
        kn_wb_i32(w, st->segment);
        kn_wb_str(w, st->kernel->name);
        kn_wb_i32(w, st->tactic);
        kn_wb_u32(w, (uint32_t)st->reason);
        kn_wb_f32(w, st->tactic_ms);
        kn_wb_str(w, st->tactic_key); /* format 2 */
    }
    kn_sec_end(sv, at);
    return KILN_OK;
}

static void kn_save_memory_plan(kn_saver *sv) {
    const kiln_module *m = sv->m;
    kn_wbuf *w = &sv->meta;
    size_t at = kn_sec_begin(sv, KN_SEC_MEMP);
    kn_wb_u64(w, m->arena_size);
    kn_wb_u64(w, m->peak_live);
    kn_wb_u32(w, (uint32_t)m->graph->n_values);
    for (int v = 0; v < m->graph->n_values; v++) {
        kn_wb_i64(w, m->offset[v]);
        kn_wb_u64(w, m->bytes[v]);
    }
    kn_sec_end(sv, at);
}

static void kn_saver_free(kn_saver *sv) {
    kn_free(sv->referenced);
    kn_free(sv->blobs);
    kn_wb_free(&sv->meta);
}

/* Encodes everything but the weights' bytes. */
static kiln_status kn_saver_prepare(kn_saver *sv, const kiln_module *m) {
    memset(sv, 0, sizeof *sv);
    sv->m = m;
    if (!m || !m->backend || !m->graph || !m->offset || !m->bytes)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "kiln_module_save: the module is not built");
    if (!kn_host_little_endian())
        return kn_error(KILN_ERR_UNSUPPORTED, "engine files are little-endian; this host is not");
    const kn_graph *g = m->graph;
    sv->referenced = kn_calloc((size_t)g->n_values + 1, 1);
    if (!sv->referenced) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory saving an engine");
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0 && g->nodes[i].in[k] < g->n_values) sv->referenced[g->nodes[i].in[k]] = 1;
    for (int k = 0; k < g->n_outputs; k++) sv->referenced[g->outputs[k]] = 1;
    KN_TRY(kn_save_info(sv));
    kn_save_conf(sv);
    KN_TRY(kn_save_graph(sv));
    kn_save_profiles(sv);
    KN_TRY(kn_save_partition(sv));
    kn_save_memory_plan(sv);
    if (sv->meta.failed == 2) return kn_error(KILN_ERR_INVALID_ARGUMENT, "a name is longer than %u bytes", KN_PLAN_MAX_STRING);
    if (sv->meta.failed) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory saving an engine");
    return KILN_OK;
}

/* ---- output: a file or memory, with the running CRC ------------------------------------------- */

typedef struct kn_sink {
    FILE *f;
    kn_wbuf *mem;
    uint32_t crc;
    uint64_t written;
} kn_sink;

static kiln_status kn_sink_put(kn_sink *s, const void *p, size_t n) {
    if (!n) return KILN_OK;
    s->crc = kn_crc32(s->crc, p, n);
    s->written += n;
    if (s->mem) {
        kn_wb_bytes(s->mem, p, n);
        if (s->mem->failed) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory saving an engine");
        return KILN_OK;
    }
    if (fwrite(p, 1, n, s->f) != n) return kn_error(KILN_ERR_IO, "write failed: %s", strerror(errno));
    return KILN_OK;
}

static kiln_status kn_sink_pad(kn_sink *s, uint64_t to) {
    static const uint8_t zeros[KN_PLAN_ALIGN];
    while (s->written < to) {
        uint64_t n = to - s->written;
        KN_TRY(kn_sink_put(s, zeros, n < sizeof zeros ? (size_t)n : sizeof zeros));
    }
    return KILN_OK;
}

static kiln_status kn_saver_write(const kn_saver *sv, kn_sink *s) {
    uint64_t meta_off = KN_PLAN_HEADER_BYTES;
    uint64_t weights_off = kn_align_up(meta_off + sv->meta.n);
    uint64_t file_bytes = weights_off + sv->weights_bytes + KN_PLAN_TRAILER_BYTES;
    uint8_t h[KN_PLAN_HEADER_BYTES] = {0};
    memcpy(h + KN_HDR_MAGIC, KN_PLAN_MAGIC, 8);
    kn_put_u32(h + KN_HDR_VERSION, KN_PLAN_VERSION);
    kn_put_u32(h + KN_HDR_HEADER_BYTES, KN_PLAN_HEADER_BYTES);
    kn_put_u64(h + KN_HDR_FILE_BYTES, file_bytes);
    kn_put_u64(h + KN_HDR_META_OFFSET, meta_off);
    kn_put_u64(h + KN_HDR_META_BYTES, sv->meta.n);
    kn_put_u64(h + KN_HDR_WEIGHTS_OFFSET, weights_off);
    kn_put_u64(h + KN_HDR_WEIGHTS_BYTES, sv->weights_bytes);
    kn_put_u32(h + KN_HDR_N_SECTIONS, sv->n_sections);
    s->crc = 0;
    s->written = 0;
    KN_TRY(kn_sink_put(s, h, sizeof h));
    KN_TRY(kn_sink_put(s, sv->meta.p, sv->meta.n));
    for (int b = 0; b < sv->n_blobs; b++) {
        KN_TRY(kn_sink_pad(s, weights_off + sv->blobs[b].offset));
        KN_TRY(kn_sink_put(s, sv->blobs[b].data, (size_t)sv->blobs[b].bytes));
    }
    KN_TRY(kn_sink_pad(s, weights_off + sv->weights_bytes));
    uint8_t t[KN_PLAN_TRAILER_BYTES] = {0};
    kn_put_u32(t, s->crc);
    memcpy(t + 8, KN_PLAN_END_MAGIC, 8);
    KN_TRY(kn_sink_put(s, t, sizeof t));
    if (s->written != file_bytes) return kn_error(KILN_ERR_INTERNAL, "engine file size %llu, planned %llu",
                                                  (unsigned long long)s->written, (unsigned long long)file_bytes);
    return KILN_OK;
}

kiln_status kn_plan_save_memory(const kiln_module *m, void **data, size_t *size) {
    KN_ARG_CHECK(data && size, "data/size");
    *data = NULL;
    *size = 0;
    kn_saver sv;
    kiln_status st = kn_saver_prepare(&sv, m);
    kn_wbuf out = {0};
    kn_sink s = {.mem = &out};
    if (st == KILN_OK) st = kn_saver_write(&sv, &s);
    kn_saver_free(&sv);
    if (st != KILN_OK) {
        kn_wb_free(&out);
        return st;
    }
    *data = out.p;
    *size = out.n;
    return KILN_OK;
}

kiln_status kiln_module_save(const kiln_module *m, const char *path) {
    KN_ARG_CHECK(m, "module");
    KN_ARG_CHECK(path && *path, "path");
    kn_saver sv;
    kiln_status st = kn_saver_prepare(&sv, m);
    if (st != KILN_OK) {
        kn_saver_free(&sv);
        return kn_error_context(st, "saving '%s'", path);
    }
    /* a temporary file beside the target, so that rename() replaces it in one step */
    size_t cap = strlen(path) + 64;
    char *tmp = kn_malloc(cap);
    int fd = -1;
    if (!tmp) {
        kn_saver_free(&sv);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory saving '%s'", path);
    }
    static _Atomic unsigned kn_tmp_counter;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%u", path, (long)getpid(), kn_tmp_counter++);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        st = kn_error(KILN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        kn_free(tmp);
        kn_saver_free(&sv);
        return kn_error_context(st, "saving '%s'", path);
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        st = kn_error(KILN_ERR_IO, "cannot open '%s': %s", tmp, strerror(errno));
        close(fd);
    } else {
        setvbuf(f, NULL, _IOFBF, 1 << 20);
        kn_sink s = {.f = f};
        st = kn_saver_write(&sv, &s);
        if (st == KILN_OK && fflush(f) != 0) st = kn_error(KILN_ERR_IO, "write failed: %s", strerror(errno));
        if (st == KILN_OK && fsync(fileno(f)) != 0 && errno != EINVAL)
            st = kn_error(KILN_ERR_IO, "fsync failed: %s", strerror(errno));
        if (fclose(f) != 0 && st == KILN_OK) st = kn_error(KILN_ERR_IO, "close failed: %s", strerror(errno));
    }
    if (st == KILN_OK && rename(tmp, path) != 0)
        st = kn_error(KILN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != KILN_OK) unlink(tmp);
    kn_free(tmp);
    kn_saver_free(&sv);
    if (st != KILN_OK) return kn_error_context(st, "saving '%s'", path);
    return KILN_OK;
}
