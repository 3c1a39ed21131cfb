/* Helpers for the pass and partition tests: a compact graph builder on top of the public API,
 * compile-on-the-CPU with the options the tests vary, a run on f32 host inputs, and counters over
 * the compiled module's graph (through the internal headers). */
#ifndef KILN_TEST_PASSES_UTIL_H
#define KILN_TEST_PASSES_UTIL_H

#include "testlib.h"

#include "build/module.h"

#include <stdlib.h>
#include <string.h>

/* ---- building ------------------------------------------------------------------------------ */

static inline void kt_input(kiln_graph *g, const char *name, int rank, const int64_t *dims) {
    KT_OK(kiln_graph_add_input(g, name, KILN_F32, rank, dims, NULL));
}

/* An f32 constant of uniform values in [lo, hi]. */
static inline void kt_const(kiln_graph *g, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    int64_t n = kn_numel(rank, dims);
    float *d = malloc((size_t)(n ? n : 1) * sizeof(float));
    kt_fill_uniform(d, n, lo, hi);
    KT_OK(kiln_graph_add_initializer(g, name, KILN_F32, rank, dims, d));
    free(d);
}

static inline void kt_scalar(kiln_graph *g, const char *name, float v) {
    KT_OK(kiln_graph_add_initializer(g, name, KILN_F32, 0, NULL, &v));
}

static inline void kt_ints(kiln_graph *g, const char *name, int n, const int64_t *v) {
    int64_t d[1] = {n};
    KT_OK(kiln_graph_add_initializer(g, name, KILN_I64, 1, d, v));
}

static inline void kt_node(kiln_graph *g, const char *op, const char *name, const char *in0, const char *in1,
                           const char *out) {
    const char *in[2] = {in0, in1}, *o[1] = {out};
    KT_OK(kiln_graph_add_node(g, op, name, in1 ? 2 : 1, in, 1, o, 0, NULL));
}

static inline void kt_node_attrs(kiln_graph *g, const char *op, const char *name, int n_in, const char *const *in,
                                 const char *out, int n_attrs, const kiln_attr *attrs) {
    const char *o[1] = {out};
    KT_OK(kiln_graph_add_node(g, op, name, n_in, in, 1, o, n_attrs, attrs));
}

/* Conv with square kernel k, stride 1, "same" padding; W [cout, cin, k, k] and B [cout] made here
 * (no B when with_bias is 0). */
static inline void kt_conv(kiln_graph *g, const char *name, const char *x, const char *y, int64_t cin, int64_t cout,
                           int64_t k, int with_bias) {
    char w[128], b[128];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(b, sizeof b, "%s.b", name);
    int64_t wd[4] = {cout, cin, k, k}, bd[1] = {cout};
    kt_const(g, w, 4, wd, -0.5f, 0.5f);
    if (with_bias) kt_const(g, b, 1, bd, -0.5f, 0.5f);
    int64_t p = k / 2;
    const int64_t ks[2] = {k, k}, pads[4] = {p, p, p, p};
    kiln_attr a[2] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pads)};
    const char *in[3] = {x, w, b};
    kt_node_attrs(g, "Conv", name, with_bias ? 3 : 2, in, y, 2, a);
}

static inline void kt_bn(kiln_graph *g, const char *name, const char *x, const char *y, int64_t c) {
    static const char *const sfx[4] = {"scale", "bias", "mean", "var"};
    static const float lo[4] = {0.5f, -0.5f, -0.5f, 0.3f}, hi[4] = {1.5f, 0.5f, 0.5f, 2.0f};
    char pn[4][128];
    for (int i = 0; i < 4; i++) {
        snprintf(pn[i], sizeof pn[i], "%s.%s", name, sfx[i]);
        kt_const(g, pn[i], 1, &c, lo[i], hi[i]);
    }
    const char *in[5] = {x, pn[0], pn[1], pn[2], pn[3]};
    kiln_attr eps = kiln_attr_float("epsilon", 1e-3f);
    kt_node_attrs(g, "BatchNormalization", name, 5, in, y, 1, &eps);
}

/* ---- compiling and running -------------------------------------------------------------------- */

typedef struct kt_opts {
    bool optimize;
    int min_block_size;      /* 0: 1 */
    const char *const *fallback;
    int n_fallback;
    kiln_precision precision;
    const kiln_input_profile *profiles;
    int n_profiles;
    bool require_full;
    int verbose;
} kt_opts;

static inline void kt_config(kiln_build_config *c, const kt_opts *o) {
    kiln_build_config_init(c);
    c->device = KILN_DEVICE_CPU;
    c->optimize = o->optimize;
    c->min_block_size = o->min_block_size ? o->min_block_size : 1;
    c->fallback_ops = o->fallback;
    c->num_fallback_ops = o->n_fallback;
    c->precision = o->precision;
    c->profiles = o->profiles;
    c->num_profiles = o->n_profiles;
    c->require_full_compilation = o->require_full;
    c->time_tactics = false;
    c->verbose = o->verbose;
}

static inline kiln_module *kt_compile(const kiln_graph *g, const kt_opts *o) {
    kiln_build_config c;
    kt_config(&c, o);
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &c, &m));
    return m;
}

/* Runs m once on f32 inputs; dims NULL: each input at its profile's opt dims. Output k is copied
 * into a malloc'd outs[k] (the caller frees) with its element count in out_n[k] and, when shapes
 * is not NULL, its dtype, rank and dims in shapes[k]. */
static inline int kt_run_mode(const kiln_module *m, float *const *ins, const int64_t (*dims)[KILN_MAX_RANK],
                              float **outs, int64_t *out_n, kiln_tensor *shapes, kiln_cudagraphs_mode mode, int runs) {
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    if (!s) return 0;
    KT_OK(kiln_session_set_cudagraphs_mode(s, mode));
    int ni = kiln_module_num_inputs(m), no = kiln_module_num_outputs(m);
    kiln_tensor in[8], out[8];
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    for (int k = 0; k < ni && k < 8; k++) {
        kiln_io_info io;
        KT_OK(kiln_module_input_info(m, k, &io));
        in[k].data = ins[k];
        in[k].dtype = io.dtype;
        in[k].rank = io.rank;
        in[k].device = KILN_DEVICE_CPU;
        for (int i = 0; i < io.rank; i++) in[k].dims[i] = dims ? dims[k][i] : io.opt[i];
    }
    for (int k = 0; k < no; k++) out[k].device = KILN_DEVICE_CPU;
    kiln_status st = KILN_OK;
    for (int r = 0; r < (runs > 0 ? runs : 1) && st == KILN_OK; r++) st = kiln_session_run(s, in, ni, out, no);
    KT_CHECK(st == KILN_OK, "run: %s", kiln_last_error());
    for (int k = 0; k < no; k++) {
        outs[k] = NULL;
        out_n[k] = 0;
        if (st != KILN_OK) continue;
        KT_CHECK(out[k].dtype == KILN_F32, "output %d is %s", k, kiln_dtype_name(out[k].dtype));
        out_n[k] = kn_numel(out[k].rank, out[k].dims);
        if (shapes) {
            shapes[k] = out[k];
            shapes[k].data = NULL;
        }
        outs[k] = malloc((size_t)(out_n[k] ? out_n[k] : 1) * sizeof(float));
        if (out[k].dtype == KILN_F32) memcpy(outs[k], out[k].data, (size_t)out_n[k] * sizeof(float));
    }
    kiln_session_free(s);
    return st == KILN_OK;
}

static inline int kt_run_shapes(const kiln_module *m, float *const *ins, const int64_t (*dims)[KILN_MAX_RANK],
                                float **outs, int64_t *out_n, kiln_tensor *shapes) {
    return kt_run_mode(m, ins, dims, outs, out_n, shapes, KILN_CUDAGRAPHS_OFF, 1);
}

static inline int kt_run(const kiln_module *m, float *const *ins, const int64_t (*dims)[KILN_MAX_RANK], float **outs,
                         int64_t *out_n) {
    return kt_run_shapes(m, ins, dims, outs, out_n, NULL);
}

/* Compiles g optimized and not, runs both on the same random inputs (ins, numels in_n), and
 * checks output 0 agrees within rtol (relative to the largest magnitude). Returns the optimized
 * module (caller frees) for structural checks. */
static inline kiln_module *kt_compare_opt(const kiln_graph *g, kt_opts o, float *const *ins, double rtol,
                                         const char *what) {
    o.optimize = false;
    kiln_module *ref = kt_compile(g, &o);
    o.optimize = true;
    kiln_module *opt = kt_compile(g, &o);
    if (!ref || !opt) {
        kiln_module_free(ref);
        return opt;
    }
    float *a[8] = {0}, *b[8] = {0};
    int64_t na[8] = {0}, nb[8] = {0};
    kiln_tensor sa[8], sb[8];
    int no = kiln_module_num_outputs(ref);
    if (kt_run_shapes(ref, ins, NULL, a, na, sa) && kt_run_shapes(opt, ins, NULL, b, nb, sb)) {
        for (int k = 0; k < no; k++) {
            int same = sa[k].rank == sb[k].rank && sa[k].dtype == sb[k].dtype;
            for (int i = 0; same && i < sa[k].rank; i++) same = sa[k].dims[i] == sb[k].dims[i];
            KT_CHECK(same, "%s: output %d has another shape or type when optimized", what, k);
            KT_CHECK(na[k] == nb[k] && na[k] > 0, "%s: output %d has %lld vs %lld elements", what, k, (long long)na[k],
                     (long long)nb[k]);
            if (na[k] == nb[k]) {
                double err = kt_max_rel_err(b[k], a[k], na[k]);
                KT_CHECK(err <= rtol, "%s: optimized output %d differs by %g (relative), tolerance %g", what, k, err, rtol);
            }
        }
    }
    for (int k = 0; k < 8; k++) { free(a[k]); free(b[k]); }
    kiln_module_free(ref);
    return opt;
}

/* ---- looking inside a module ------------------------------------------------------------------ */

static inline int kt_count_op(const kiln_module *m, const char *op) {
    int n = 0;
    if (!m) return -1;
    for (int i = 0; i < m->graph->n_nodes; i++)
        n += !m->graph->nodes[i].dead && strcmp(kn_op_name(m->graph->nodes[i].op), op) == 0;
    return n;
}

static inline int kt_count_nodes(const kiln_module *m) {
    int n = 0;
    for (int i = 0; m && i < m->graph->n_nodes; i++) n += !m->graph->nodes[i].dead;
    return n;
}

/* The first live node of an op type (NULL if none). */
static inline const kn_node *kt_find_op(const kiln_module *m, const char *op) {
    for (int i = 0; m && i < m->graph->n_nodes; i++)
        if (!m->graph->nodes[i].dead && strcmp(kn_op_name(m->graph->nodes[i].op), op) == 0) return &m->graph->nodes[i];
    return NULL;
}

static inline const kn_node *kt_find_node(const kiln_module *m, const char *name) {
    for (int i = 0; m && i < m->graph->n_nodes; i++)
        if (!m->graph->nodes[i].dead && strcmp(m->graph->nodes[i].name, name) == 0) return &m->graph->nodes[i];
    return NULL;
}

static inline int kt_report_has(const kiln_module *m, const char *needle) {
    char *r = NULL;
    if (!m || kiln_module_report(m, false, &r) != KILN_OK) return -1;
    int has = strstr(r, needle) != NULL;
    kiln_free(r);
    return has;
}

#endif
