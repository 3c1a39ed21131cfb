/* Every op of the op set on CUDA against the CPU backend, through the public API: a one-node
 * graph is built with the builder, compiled for KILN_DEVICE_CUDA (tactics timed, min block size
 * 1) and for KILN_DEVICE_CPU, run on the same random inputs, eagerly and again replayed from a
 * recorded CUDA graph, and the outputs are compared.
 *
 * Tolerances (|gpu - cpu| <= tol * (1 + |cpu|)): fp32 1e-4 (true fp32 on both sides), tf32 1e-2,
 * fp16/bf16 graphs 1e-2 (both sides store f16; math order differs). Integer and bool outputs
 * must match exactly, and so must infinities and NaNs. A case whose node the builder refuses or whose CPU reference does not
 * compile (an op not defined yet) is listed as SKIP, since the reference is not this test's
 * subject; any CUDA failure where the CPU works is a failure.
 * Prints "SKIP: no CUDA device" and passes on a machine without a GPU. */
#include "testlib.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

#define S(...) ((const char *[]){__VA_ARGS__})
#define D(...) ((const int64_t[]){__VA_ARGS__})
#define A(...) ((const kiln_attr[]){__VA_ARGS__})

typedef struct tin {
    const char *name;
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    float lo, hi;
} tin;

typedef struct tc {
    kiln_graph *g;
    int n_in;
    tin in[8];
    int n_out;
    const char *out[4];
    char build_err[256]; /* the builder refused the node (an op not defined yet) */
} tc;

static int n_skipped;
static size_t tc_workspace_limit; /* the CUDA build's kiln_build_config.workspace_limit (0: kiln's) */
static char skipped[4096];

static void tc_begin(tc *t) {
    memset(t, 0, sizeof *t);
    KT_OK(kiln_graph_create(&t->g));
}

static void tc_input(tc *t, const char *name, kiln_dtype dt, int rank, const int64_t *dims, float lo, float hi) {
    tin *i = &t->in[t->n_in++];
    i->name = name;
    i->dt = dt;
    i->rank = rank;
    memcpy(i->dims, dims, (size_t)rank * sizeof *dims);
    i->lo = lo;
    i->hi = hi;
    KT_OK(kiln_graph_add_input(t->g, name, dt, rank, dims, NULL));
}

/* Random constant (weights) of dtype dt. */
static void tc_const(tc *t, const char *name, kiln_dtype dt, int rank, const int64_t *dims, float lo, float hi) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    kt_fill_uniform(f, n, lo, hi);
    void *raw = malloc((size_t)(n ? n : 1) * 8);
    kn_convert(f, KILN_F32, raw, dt, n);
    KT_OK(kiln_graph_add_initializer(t->g, name, dt, rank, dims, raw));
    free(f);
    free(raw);
}

static void tc_ints(tc *t, const char *name, int n, const int64_t *v) {
    KT_OK(kiln_graph_add_initializer(t->g, name, KILN_I64, 1, D(n), v));
}

static void tc_floats(tc *t, const char *name, int n, const float *v) {
    KT_OK(kiln_graph_add_initializer(t->g, name, KILN_F32, 1, D(n), v));
}

static void tc_node(tc *t, const char *op, int n_in, const char *const *ins, int n_out, const char *const *outs,
                    int n_attr, const kiln_attr *attrs) {
    if (kiln_graph_add_node(t->g, op, op, n_in, ins, n_out, outs, n_attr, attrs) != KILN_OK) {
        snprintf(t->build_err, sizeof t->build_err, "%s", kiln_last_error());
        return;
    }
    for (int i = 0; i < n_out; i++) t->out[t->n_out++] = outs[i];
}

static int is_float(kiln_dtype t) { return t == KILN_F32 || t == KILN_F16 || t == KILN_BF16 || t == KILN_F64; }

/* Runs a session on host buffers; returns outputs converted to float (caller frees). */
static kiln_status run_session(kiln_module *m, int graphs, const kiln_tensor *ins, int n_in, kiln_tensor *outs,
                               float **fouts, int n_out) {
    kiln_session *s = NULL;
    kiln_status st = kiln_session_create(m, &s);
    if (st != KILN_OK) return st;
    if (graphs) st = kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE);
    void *bufs[4] = {0};
    for (int o = 0; o < n_out && st == KILN_OK; o++) {
        kiln_io_info info;
        st = kiln_module_output_info(m, o, &info);
        int64_t n = 1;
        for (int d = 0; d < info.rank; d++) n *= info.max[d];
        bufs[o] = calloc((size_t)(n ? n : 1), 8);
        outs[o] = (kiln_tensor){.data = bufs[o], .device = KILN_DEVICE_CPU};
    }
    /* graphs: warm-up, record and replay; the last run's results are compared */
    for (int r = 0; r < (graphs ? 3 : 1) && st == KILN_OK; r++) st = kiln_session_run(s, ins, n_in, outs, n_out);
    if (st == KILN_OK && graphs) {
        kiln_counters c;
        kiln_session_counters(s, &c);
        KT_CHECK(c.replays >= 1, "a recorded graph was replayed (%llu replays)", (unsigned long long)c.replays);
    }
    for (int o = 0; o < n_out; o++) {
        if (st == KILN_OK) {
            int64_t n = 1;
            for (int d = 0; d < outs[o].rank; d++) n *= outs[o].dims[d];
            fouts[o] = malloc((size_t)(n ? n : 1) * sizeof(float));
            kn_convert(bufs[o], outs[o].dtype == KILN_BOOL ? KILN_U8 : outs[o].dtype, fouts[o], KILN_F32, n);
        }
        free(bufs[o]);
    }
    kiln_session_free(s);
    return st;
}

/* Compiles for both devices, runs and compares. */
static void tc_finish(tc *t, const char *label, kiln_precision prec, double tol) {
    for (int o = 0; o < t->n_out; o++) KT_OK(kiln_graph_add_output(t->g, t->out[o]));
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.min_block_size = 1;
    cfg.device = KILN_DEVICE_CPU;
    kiln_module *mc = NULL, *mg = NULL;
    kiln_status st = t->build_err[0] ? KILN_ERR_UNSUPPORTED : kiln_compile(t->g, &cfg, &mc);
    if (st != KILN_OK) {
        n_skipped++;
        size_t l = strlen(skipped);
        snprintf(skipped + l, sizeof skipped - l, "%s%s", l ? ", " : "", label);
        printf("  SKIP %-40s (no CPU reference: %s)\n", label, t->build_err[0] ? t->build_err : kiln_last_error());
        kiln_graph_free(t->g);
        return;
    }
    cfg.device = KILN_DEVICE_CUDA;
    cfg.precision = prec;
    cfg.workspace_limit = tc_workspace_limit;
    st = kiln_compile(t->g, &cfg, &mg);
    KT_CHECK(st == KILN_OK, "%s: CUDA compile: %s", label, kiln_last_error());
    if (st != KILN_OK) {
        kiln_module_free(mc);
        kiln_graph_free(t->g);
        return;
    }
    KT_CHECK(kiln_module_num_engine_blocks(mg) == 1 && kiln_module_num_segments(mg) == 1,
             "%s: one CUDA engine block (%d blocks, %d segments)", label, kiln_module_num_engine_blocks(mg),
             kiln_module_num_segments(mg));
    kiln_tensor ins[8];
    void *raw[8];
    for (int i = 0; i < t->n_in; i++) {
        tin *d = &t->in[i];
        int64_t n = 1;
        for (int k = 0; k < d->rank; k++) n *= d->dims[k];
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        kt_fill_uniform(f, n, d->lo, d->hi);
        raw[i] = malloc((size_t)(n ? n : 1) * 8);
        if (d->dt == KILN_BOOL) {
            for (int64_t k = 0; k < n; k++) ((uint8_t *)raw[i])[k] = f[k] > 0;
        } else if (!is_float(d->dt)) {
            for (int64_t k = 0; k < n; k++) f[k] = floorf(f[k]);
            kn_convert(f, KILN_F32, raw[i], d->dt, n);
        } else {
            kn_convert(f, KILN_F32, raw[i], d->dt, n);
        }
        free(f);
        ins[i] = (kiln_tensor){.data = raw[i], .dtype = d->dt, .rank = d->rank, .device = KILN_DEVICE_CPU};
        memcpy(ins[i].dims, d->dims, sizeof d->dims);
    }
    kiln_tensor oc[4], og[4];
    float *fc[4] = {0}, *fg[4] = {0};
    st = run_session(mc, 0, ins, t->n_in, oc, fc, t->n_out);
    KT_CHECK(st == KILN_OK, "%s: CPU run: %s", label, kiln_last_error());
    for (int pass = 0; pass < 2 && st == KILN_OK; pass++) {
        kiln_status sg = run_session(mg, pass, ins, t->n_in, og, fg, t->n_out);
        KT_CHECK(sg == KILN_OK, "%s: CUDA run%s: %s", label, pass ? " with CUDA graphs" : "", kiln_last_error());
        if (sg != KILN_OK) break;
        double worst = 0;
        for (int o = 0; o < t->n_out; o++) {
            int64_t n = 1;
            int same = og[o].rank == oc[o].rank && og[o].dtype == oc[o].dtype;
            for (int d = 0; d < oc[o].rank && same; d++) same = og[o].dims[d] == oc[o].dims[d];
            for (int d = 0; d < oc[o].rank; d++) n *= oc[o].dims[d];
            KT_CHECK(same, "%s: output %d has the same dtype and dims on both devices", label, o);
            if (!same) continue;
            int exact = !is_float(oc[o].dtype);
            for (int64_t k = 0; k < n; k++) {
                double a = fg[o][k], b = fc[o][k];
                double r = exact ? (a == b ? 0 : INFINITY) : fabs(a - b) / (tol * (1 + fabs(b)));
                if (isinf(a) || isinf(b)) r = a == b ? 0 : INFINITY; /* inf - inf is NaN, never > worst */
                if (isnan(a) || isnan(b)) r = isnan(a) && isnan(b) ? 0 : INFINITY;
                if (r > worst) worst = r;
            }
            free(fg[o]);
            fg[o] = NULL;
        }
        KT_CHECK(worst <= 1.0, "%s%s: CUDA vs CPU error ratio %.3g (tolerance %.0e)", label, pass ? " (graph)" : "", worst, tol);
        if (pass == 0) printf("  %-44s %s max err/tol %.3f\n", label, worst <= 1 ? "ok  " : "FAIL", worst);
    }
    for (int o = 0; o < t->n_out; o++) free(fc[o]);
    for (int i = 0; i < t->n_in; i++) free(raw[i]);
    kiln_module_free(mc);
    kiln_module_free(mg);
    kiln_graph_free(t->g);
}

/* ---- cases ------------------------------------------------------------------------------------------- */

static const double F32 = 1e-4, LOW = 1e-2;

static void unary(const char *op, kiln_dtype dt, float lo, float hi, int n_attr, const kiln_attr *attrs) {
    tc t;
    tc_begin(&t);
    tc_input(&t, "x", dt, 3, D(2, 33, 17), lo, hi);
    tc_node(&t, op, 1, S("x"), 1, S("y"), n_attr, attrs);
    char label[64];
    snprintf(label, sizeof label, "%s %s", op, kiln_dtype_name(dt));
    tc_finish(&t, label, KILN_PRECISION_FP32, dt == KILN_F32 ? F32 : LOW);
}

static void binary(const char *op, kiln_dtype dt, float lo, float hi, float lo2, float hi2) {
    tc t;
    tc_begin(&t);
    tc_input(&t, "a", dt, 4, D(2, 3, 4, 5), lo, hi);
    tc_input(&t, "b", dt, 3, D(3, 1, 5), lo2, hi2);
    tc_node(&t, op, 2, S("a", "b"), 1, S("y"), 0, NULL);
    char label[64];
    snprintf(label, sizeof label, "%s %s bcast", op, kiln_dtype_name(dt));
    tc_finish(&t, label, KILN_PRECISION_FP32, is_float(dt) && dt != KILN_F32 ? LOW : F32);
}

/* a (dims da) op b (dims db) where one side is a per-channel [C, 1, 1] of the other's NCHW: the
 * vector kernel's channel operand (aligned or not to its vectors), and the indexed kernel where
 * the element count is not a whole number of vectors. */
static void channel_bcast(const char *op, kiln_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db) {
    tc t;
    tc_begin(&t);
    tc_input(&t, "a", dt, ra, da, -1, 1);
    tc_input(&t, "b", dt, rb, db, -1, 1);
    tc_node(&t, op, 2, S("a", "b"), 1, S("y"), 0, NULL);
    char label[96];
    snprintf(label, sizeof label, "%s %s per-channel bcast [%lld..] [%lld..]", op, kiln_dtype_name(dt), (long long)da[0],
             (long long)db[0]);
    tc_finish(&t, label, KILN_PRECISION_FP32, dt == KILN_F32 ? F32 : LOW);
}

/* Mod with its fmod attribute; integer divisors include 0 (both sides give 0) and -1. `same`:
 * equal shapes of 1122 elements (the vectorized path and its tail), else broadcasting. */
static void mod_case(kiln_dtype dt, int fmod_c, int same, float lo, float hi, float lo2, float hi2) {
    tc t;
    tc_begin(&t);
    if (same) {
        tc_input(&t, "a", dt, 3, D(2, 33, 17), lo, hi);
        tc_input(&t, "b", dt, 3, D(2, 33, 17), lo2, hi2);
    } else {
        tc_input(&t, "a", dt, 4, D(2, 3, 4, 5), lo, hi);
        tc_input(&t, "b", dt, 3, D(3, 1, 5), lo2, hi2);
    }
    tc_node(&t, "Mod", 2, S("a", "b"), 1, S("y"), 1, A(kiln_attr_int("fmod", fmod_c)));
    char label[64];
    snprintf(label, sizeof label, "Mod fmod=%d %s %s", fmod_c, kiln_dtype_name(dt), same ? "same shape" : "bcast");
    tc_finish(&t, label, KILN_PRECISION_FP32, F32); /* fmod is exact: both sides agree bit for bit */
}

/* Pow with the base and exponent of different types (or both integers): the output has the base's. */
static void pow_mixed(kiln_dtype bt, float lo, float hi, kiln_dtype et, float lo2, float hi2) {
    tc t;
    tc_begin(&t);
    tc_input(&t, "a", bt, 4, D(2, 3, 4, 5), lo, hi);
    tc_input(&t, "b", et, 3, D(3, 1, 5), lo2, hi2);
    tc_node(&t, "Pow", 2, S("a", "b"), 1, S("y"), 0, NULL);
    char label[64];
    snprintf(label, sizeof label, "Pow %s ^ %s bcast", kiln_dtype_name(bt), kiln_dtype_name(et));
    tc_finish(&t, label, KILN_PRECISION_FP32, is_float(bt) && bt != KILN_F32 ? LOW : F32);
}

static void variadic(const char *op) {
    tc t;
    tc_begin(&t);
    tc_input(&t, "a", KILN_F32, 3, D(4, 1, 6), -1, 1);
    tc_input(&t, "b", KILN_F32, 2, D(5, 6), -1, 1);
    tc_input(&t, "c", KILN_F32, 1, D(1), -1, 1);
    tc_node(&t, op, 3, S("a", "b", "c"), 1, S("y"), 0, NULL);
    char label[64];
    snprintf(label, sizeof label, "%s x3 bcast", op);
    tc_finish(&t, label, KILN_PRECISION_FP32, F32);
}

static void elementwise_cases(void) {
    unary("Relu", KILN_F32, -1, 1, 0, NULL);
    unary("Relu", KILN_F16, -1, 1, 0, NULL);
    unary("LeakyRelu", KILN_F32, -1, 1, 1, A(kiln_attr_float("alpha", 0.2f)));
    unary("Elu", KILN_F32, -2, 2, 1, A(kiln_attr_float("alpha", 0.7f)));
    unary("Selu", KILN_F32, -2, 2, 0, NULL);
    unary("HardSigmoid", KILN_F32, -4, 4, 0, NULL);
    unary("HardSwish", KILN_F32, -4, 4, 0, NULL);
    unary("Sigmoid", KILN_F32, -4, 4, 0, NULL);
    unary("Sigmoid", KILN_BF16, -4, 4, 0, NULL);
    unary("Tanh", KILN_F32, -3, 3, 0, NULL);
    unary("Erf", KILN_F32, -2, 2, 0, NULL);
    unary("Gelu", KILN_F32, -3, 3, 0, NULL);
    unary("Gelu", KILN_F32, -3, 3, 1, A(kiln_attr_string("approximate", "tanh")));
    unary("Softplus", KILN_F32, -3, 3, 0, NULL);
    unary("Mish", KILN_F32, -3, 3, 0, NULL);
    unary("Sqrt", KILN_F32, 0.1f, 4, 0, NULL);
    unary("Reciprocal", KILN_F32, 0.5f, 2, 0, NULL);
    unary("Neg", KILN_F32, -1, 1, 0, NULL);
    unary("Abs", KILN_F32, -1, 1, 0, NULL);
    unary("Exp", KILN_F32, -2, 2, 0, NULL);
    unary("Log", KILN_F32, 0.1f, 4, 0, NULL);
    unary("Floor", KILN_F32, -3, 3, 0, NULL);
    unary("Ceil", KILN_F32, -3, 3, 0, NULL);
    unary("Identity", KILN_F32, -1, 1, 0, NULL);
    unary("Not", KILN_BOOL, -1, 1, 0, NULL);
    unary("Cast", KILN_F32, -50, 50, 1, A(kiln_attr_int("to", 10)));  /* f32 -> f16 */
    unary("Cast", KILN_F32, -50, 50, 1, A(kiln_attr_int("to", 6)));   /* f32 -> i32 */
    unary("Cast", KILN_I64, -50, 50, 1, A(kiln_attr_int("to", 1)));   /* i64 -> f32 */
    unary("Cast", KILN_F32, -1, 1, 1, A(kiln_attr_int("to", 9)));     /* f32 -> bool */
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 2, D(7, 9), -2, 2);
        float lo = -0.5f, hi = 0.75f;
        KT_OK(kiln_graph_add_initializer(t.g, "lo", KILN_F32, 0, NULL, &lo));
        KT_OK(kiln_graph_add_initializer(t.g, "hi", KILN_F32, 0, NULL, &hi));
        tc_node(&t, "Clip", 3, S("x", "lo", "hi"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Clip min/max", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 4, 5), -1, 1);
        tc_const(&t, "slope", KILN_F32, 3, D(3, 1, 1), 0, 0.5f);
        tc_node(&t, "PRelu", 2, S("x", "slope"), 1, S("y"), 0, NULL);
        tc_finish(&t, "PRelu per channel", KILN_PRECISION_FP32, F32);
    }
    binary("Add", KILN_F32, -1, 1, -1, 1);
    binary("Add", KILN_F16, -1, 1, -1, 1);
    binary("Add", KILN_I64, -100, 100, -100, 100);
    channel_bcast("Add", KILN_F32, 4, D(2, 6, 5, 8), 3, D(6, 1, 1));  /* 40 per channel: whole vectors */
    channel_bcast("Mul", KILN_F16, 4, D(4, 6, 7, 7), 3, D(6, 1, 1));  /* 49: vectors straddle channels */
    channel_bcast("Sub", KILN_F32, 4, D(1, 6, 5, 8), 3, D(6, 1, 1));  /* batch 1: [C, HW] */
    channel_bcast("Add", KILN_F32, 4, D(3, 5, 3, 3), 3, D(5, 1, 1));  /* 135 elements: indexed kernel */
    channel_bcast("Sub", KILN_BF16, 3, D(6, 1, 1), 4, D(2, 6, 4, 4)); /* the channel operand first */
    binary("Sub", KILN_F32, -1, 1, -1, 1);
    binary("Mul", KILN_F32, -1, 1, -1, 1);
    binary("Div", KILN_F32, -1, 1, 0.5f, 2);
    binary("Pow", KILN_F32, 0.5f, 2, -2, 2);
    pow_mixed(KILN_F32, 0.5f, 2, KILN_I32, -3, 4);    /* integer exponents -3..3 */
    pow_mixed(KILN_F16, 0.5f, 2, KILN_I64, -3, 4);
    pow_mixed(KILN_I32, -3, 10, KILN_F32, 0, 2.5f);   /* truncated; negative base ^ fraction: NaN -> 0 */
    pow_mixed(KILN_I64, -6, 7, KILN_I64, -2, 6);      /* power by squaring; negative exponents */
    pow_mixed(KILN_I32, -4, 5, KILN_I8, 0, 8);
    pow_mixed(KILN_F64, -2, 2, KILN_U8, 0, 6);
    mod_case(KILN_F32, 1, 0, -10, 10, -3, 3);
    mod_case(KILN_F32, 1, 1, -10, 10, -3, 3);
    mod_case(KILN_F16, 1, 1, -10, 10, -3, 3);
    mod_case(KILN_F64, 1, 0, -10, 10, -3, 3);
    mod_case(KILN_I64, 0, 0, -100, 100, -7, 7);
    mod_case(KILN_I64, 1, 1, -100, 100, -7, 7);
    mod_case(KILN_I32, 0, 1, -100, 100, -7, 7);
    mod_case(KILN_I8, 0, 0, -120, 120, -7, 7);
    mod_case(KILN_U8, 0, 0, 0, 250, 0, 9);
    binary("Equal", KILN_I64, 0, 3, 0, 3);
    binary("Less", KILN_F32, -1, 1, -1, 1);
    binary("Greater", KILN_F32, -1, 1, -1, 1);
    binary("And", KILN_BOOL, -1, 1, -1, 1);
    variadic("Min");
    variadic("Max");
    variadic("Sum");
    variadic("Mean");
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "c", KILN_BOOL, 2, D(4, 5), -1, 1);
        tc_input(&t, "x", KILN_F32, 3, D(3, 4, 5), -1, 1);
        tc_input(&t, "y", KILN_F32, 1, D(5), -1, 1);
        tc_node(&t, "Where", 3, S("c", "x", "y"), 1, S("o"), 0, NULL);
        tc_finish(&t, "Where bcast", KILN_PRECISION_FP32, F32);
    }
}

static void conv_cases(void) {
    struct { const char *label; kiln_dtype dt; kiln_precision p; int group, stride; int bias; } cs[] = {
        {"Conv 3x3 s1 +bias", KILN_F32, KILN_PRECISION_FP32, 1, 1, 1},
        {"Conv 3x3 s2 group 2", KILN_F32, KILN_PRECISION_FP32, 2, 2, 0},
        {"Conv 3x3 depthwise +bias", KILN_F32, KILN_PRECISION_FP32, 8, 1, 1},
        {"Conv 3x3 fp16 +bias", KILN_F16, KILN_PRECISION_FP32, 1, 1, 1},
        {"Conv 3x3 tf32 +bias", KILN_F32, KILN_PRECISION_TF32, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", cs[i].dt, 4, D(2, 8, 12, 10), -1, 1);
        tc_const(&t, "w", cs[i].dt, 4, D(16, 8 / cs[i].group, 3, 3), -0.5f, 0.5f);
        tc_const(&t, "b", cs[i].dt, 1, D(16), -1, 1);
        int64_t pads[4] = {1, 1, 1, 1}, st[2] = {cs[i].stride, cs[i].stride}, ks[2] = {3, 3};
        tc_node(&t, "Conv", cs[i].bias ? 3 : 2, S("x", "w", "b"), 1, S("y"), 4,
                A(kiln_attr_ints("pads", 4, pads), kiln_attr_ints("strides", 2, st), kiln_attr_int("group", cs[i].group),
                  kiln_attr_ints("kernel_shape", 2, ks)));
        double tol = cs[i].dt != KILN_F32 || cs[i].p == KILN_PRECISION_TF32 ? LOW : F32;
        tc_finish(&t, cs[i].label, cs[i].p, tol);
    }
    {
        /* fp32 3x3 convolutions large enough that tactic timing may pick cuDNN's Winograd or FFT
         * engines (strict fp32 adds the global engines the heuristics do not rank): bias + ReLU
         * fused, and bias + residual + ReLU; whichever tactic wins must agree with the CPU */
        for (int variant = 0; variant < 3; variant++) {
            /* 2: with residual again, its cuDNN plans capped at 1 MiB of workspace (Winograd and
             * FFT engines wanted tens of MB here): other engines take over, the result holds */
            const int res = variant > 0;
            tc_workspace_limit = variant == 2 ? (size_t)1 << 20 : 0;
            tc t;
            tc_begin(&t);
            tc_input(&t, "x", KILN_F32, 4, D(4, 64, 28, 28), -1, 1);
            tc_const(&t, "w", KILN_F32, 4, D(64, 64, 3, 3), -0.05f, 0.05f);
            tc_const(&t, "b", KILN_F32, 1, D(64), -1, 1);
            int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3};
            tc_node(&t, "Conv", 3, S("x", "w", "b"), 1, S("c"), 2,
                    A(kiln_attr_ints("pads", 4, pads), kiln_attr_ints("kernel_shape", 2, ks)));
            t.n_out--; /* c and s stay inner values, so that the passes fuse them into the convolution */
            if (res) {
                tc_node(&t, "Add", 2, S("c", "x"), 1, S("s"), 0, NULL);
                t.n_out--;
            }
            tc_node(&t, "Relu", 1, S(res ? "s" : "c"), 1, S("y"), 0, NULL);
            tc_finish(&t, variant == 2 ? "Conv 3x3 fp32 64ch +res, workspace 1 MiB"
                          : res      ? "Conv 3x3 fp32 64ch +bias+residual+Relu"
                                     : "Conv 3x3 fp32 64ch +bias+Relu",
                      KILN_PRECISION_FP32, F32);
        }
        tc_workspace_limit = 0;
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 3, D(2, 4, 30), -1, 1);
        tc_const(&t, "w", KILN_F32, 3, D(6, 4, 5), -0.5f, 0.5f);
        int64_t pads[2] = {2, 2};
        tc_node(&t, "Conv", 2, S("x", "w"), 1, S("y"), 1, A(kiln_attr_ints("pads", 2, pads)));
        tc_finish(&t, "Conv1d k5 p2", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 6, 5, 4), -1, 1);
        tc_const(&t, "w", KILN_F32, 4, D(6, 3, 3, 3), -0.5f, 0.5f);
        tc_const(&t, "b", KILN_F32, 1, D(3), -1, 1);
        int64_t pads[4] = {1, 1, 1, 1}, st[2] = {2, 2}, op[2] = {1, 1};
        tc_node(&t, "ConvTranspose", 3, S("x", "w", "b"), 1, S("y"), 3,
                A(kiln_attr_ints("pads", 4, pads), kiln_attr_ints("strides", 2, st), kiln_attr_ints("output_padding", 2, op)));
        tc_finish(&t, "ConvTranspose s2 p1 op1 +bias", KILN_PRECISION_FP32, F32);
    }
}

static void nn_cases(void) {
    int64_t k3[2] = {3, 3}, s2[2] = {2, 2}, p1[4] = {1, 1, 1, 1};
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 11, 10), -1, 1);
        tc_node(&t, "MaxPool", 1, S("x"), 1, S("y"), 3, A(kiln_attr_ints("kernel_shape", 2, k3), kiln_attr_ints("strides", 2, s2), kiln_attr_ints("pads", 4, p1)));
        tc_finish(&t, "MaxPool 3x3 s2 p1", KILN_PRECISION_FP32, F32);
    }
    {
        /* uint8 (ties are common: the first maximum wins on both sides) with the Indices output */
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_U8, 4, D(2, 3, 11, 10), 0, 256);
        tc_node(&t, "MaxPool", 1, S("x"), 2, S("y", "ind"), 3,
                A(kiln_attr_ints("kernel_shape", 2, k3), kiln_attr_ints("strides", 2, s2), kiln_attr_ints("pads", 4, p1)));
        tc_finish(&t, "MaxPool uint8 3x3 s2 p1 +indices", KILN_PRECISION_FP32, F32);
    }
    {
        /* Indices counting the spatial dims column major */
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 11, 10), -1, 1);
        tc_node(&t, "MaxPool", 1, S("x"), 2, S("y", "ind"), 3,
                A(kiln_attr_ints("kernel_shape", 2, k3), kiln_attr_ints("strides", 2, s2), kiln_attr_int("storage_order", 1)));
        tc_finish(&t, "MaxPool 3x3 s2 +indices storage_order 1", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        int64_t k222[3] = {2, 2, 2}, p3[6] = {1, 0, 1, 0, 1, 0};
        tc_input(&t, "x", KILN_I8, 5, D(1, 2, 5, 4, 6), -128, 128);
        tc_node(&t, "MaxPool", 1, S("x"), 2, S("y", "ind"), 3,
                A(kiln_attr_ints("kernel_shape", 3, k222), kiln_attr_ints("pads", 6, p3), kiln_attr_int("storage_order", 1)));
        tc_finish(&t, "MaxPool3d int8 +indices storage_order 1", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        int64_t k5[2] = {5, 5}, p2[4] = {2, 2, 2, 2};
        tc_input(&t, "x", KILN_U8, 4, D(1, 2, 7, 6), 0, 256);
        tc_node(&t, "MaxPool", 1, S("x"), 1, S("y"), 2, A(kiln_attr_ints("kernel_shape", 2, k5), kiln_attr_ints("pads", 4, p2)));
        tc_finish(&t, "MaxPool uint8 5x5 p2", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        int64_t k2[1] = {2}, d2[1] = {2}, p1d[2] = {1, 0};
        tc_input(&t, "x", KILN_I8, 3, D(2, 4, 17), -128, 128);
        tc_node(&t, "MaxPool", 1, S("x"), 1, S("y"), 3,
                A(kiln_attr_ints("kernel_shape", 1, k2), kiln_attr_ints("dilations", 1, d2), kiln_attr_ints("pads", 2, p1d)));
        tc_finish(&t, "MaxPool1d int8 k2 dil2 p1,0", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F16, 4, D(2, 3, 11, 10), -1, 1);
        tc_node(&t, "AveragePool", 1, S("x"), 1, S("y"), 4,
                A(kiln_attr_ints("kernel_shape", 2, k3), kiln_attr_ints("strides", 2, s2), kiln_attr_ints("pads", 4, p1),
                  kiln_attr_int("count_include_pad", 1)));
        tc_finish(&t, "AveragePool fp16 count_include_pad", KILN_PRECISION_FP32, LOW);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 11, 10), -1, 1);
        tc_node(&t, "AveragePool", 1, S("x"), 1, S("y"), 4,
                A(kiln_attr_ints("kernel_shape", 2, k3), kiln_attr_ints("strides", 2, s2), kiln_attr_ints("pads", 4, p1),
                  kiln_attr_int("ceil_mode", 1)));
        tc_finish(&t, "AveragePool ceil_mode", KILN_PRECISION_FP32, F32);
    }
    {
        /* NCHW float pools take pool2d_nchw; NaNs (Sqrt of the negative sixth of the inputs) must
         * win their windows as on the CPU, in the fixed 3x3 form and the general one */
        int64_t k2[2] = {2, 2}, s1[2] = {1, 1};
        for (int form = 0; form < 2; form++) {
            tc t;
            tc_begin(&t);
            tc_input(&t, "x", KILN_F32, 4, D(2, 3, 12, 9), -0.2f, 1);
            tc_node(&t, "Sqrt", 1, S("x"), 1, S("r"), 0, NULL);
            tc_node(&t, "MaxPool", 1, S("r"), 1, S("y"), 3,
                    A(kiln_attr_ints("kernel_shape", 2, form ? k2 : k3), kiln_attr_ints("strides", 2, form ? s1 : s2),
                      kiln_attr_ints("pads", 4, p1)));
            tc_finish(&t, form ? "MaxPool 2x2 s1 p1 with NaNs" : "MaxPool 3x3 s2 p1 with NaNs", KILN_PRECISION_FP32, F32);
        }
    }
    {
        tc t;
        tc_begin(&t);
        int64_t k23[2] = {2, 3}, d21[2] = {2, 1}, s12[2] = {1, 2}, p0[4] = {1, 0, 0, 1};
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 13, 11), -1, 1);
        tc_node(&t, "MaxPool", 1, S("x"), 1, S("y"), 4,
                A(kiln_attr_ints("kernel_shape", 2, k23), kiln_attr_ints("dilations", 2, d21), kiln_attr_ints("strides", 2, s12),
                  kiln_attr_ints("pads", 4, p0)));
        tc_finish(&t, "MaxPool 2x3 dil 2,1 s 1,2", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        int64_t k5[2] = {5, 5}, p2[4] = {2, 2, 2, 2};
        tc_input(&t, "x", KILN_BF16, 4, D(2, 4, 9, 10), -1, 1);
        tc_node(&t, "AveragePool", 1, S("x"), 1, S("y"), 2, A(kiln_attr_ints("kernel_shape", 2, k5), kiln_attr_ints("pads", 4, p2)));
        tc_finish(&t, "AveragePool bf16 5x5 p2", KILN_PRECISION_FP32, LOW);
    }
    const char *glob[2] = {"GlobalAveragePool", "GlobalMaxPool"};
    for (int i = 0; i < 2; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 16, 7, 7), -1, 1);
        tc_node(&t, glob[i], 1, S("x"), 1, S("y"), 0, NULL);
        tc_finish(&t, glob[i], KILN_PRECISION_FP32, F32);
    }
    const char *sm[2] = {"Softmax", "LogSoftmax"};
    for (int i = 0; i < 2; i++)
        for (int ax = 1; ax <= 2; ax++) {
            tc t;
            tc_begin(&t);
            tc_input(&t, "x", KILN_F32, 3, D(4, 9, 70), -3, 3);
            tc_node(&t, sm[i], 1, S("x"), 1, S("y"), 1, A(kiln_attr_int("axis", ax == 2 ? -1 : 1)));
            char label[64];
            snprintf(label, sizeof label, "%s axis %s", sm[i], ax == 2 ? "-1" : "1");
            tc_finish(&t, label, KILN_PRECISION_FP32, F32);
        }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F16, 2, D(8, 512), -3, 3);
        tc_node(&t, "Softmax", 1, S("x"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Softmax fp16", KILN_PRECISION_FP32, LOW);
    }
    for (int h = 0; h < 2; h++) {
        tc t;
        tc_begin(&t);
        kiln_dtype dt = h ? KILN_F16 : KILN_F32;
        tc_input(&t, "x", dt, 3, D(3, 5, 96), -2, 2);
        tc_const(&t, "g", dt, 1, D(96), 0.5f, 1.5f);
        tc_const(&t, "b", dt, 1, D(96), -1, 1);
        tc_node(&t, "LayerNormalization", 3, S("x", "g", "b"), 1, S("y"), 1, A(kiln_attr_int("axis", -1)));
        tc_finish(&t, h ? "LayerNormalization fp16" : "LayerNormalization", KILN_PRECISION_FP32, h ? LOW : F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 6, 5, 7), -2, 2);
        tc_const(&t, "g", KILN_F32, 1, D(6), 0.5f, 1.5f);
        tc_const(&t, "b", KILN_F32, 1, D(6), -1, 1);
        tc_node(&t, "InstanceNormalization", 3, S("x", "g", "b"), 1, S("y"), 0, NULL);
        tc_finish(&t, "InstanceNormalization", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 6, 5, 7), -2, 2);
        tc_const(&t, "g", KILN_F32, 1, D(6), 0.5f, 1.5f);
        tc_const(&t, "b", KILN_F32, 1, D(6), -1, 1);
        tc_const(&t, "m", KILN_F32, 1, D(6), -1, 1);
        tc_const(&t, "v", KILN_F32, 1, D(6), 0.5f, 2);
        tc_node(&t, "BatchNormalization", 5, S("x", "g", "b", "m", "v"), 1, S("y"), 0, NULL);
        tc_finish(&t, "BatchNormalization (inference)", KILN_PRECISION_FP32, F32);
    }
}

static void gemm_cases(void) {
    struct { const char *label; kiln_dtype dt; kiln_precision p; int tb; } gs[] = {
        {"Gemm transB +C[N]", KILN_F32, KILN_PRECISION_FP32, 1},
        {"Gemm +C[N] tf32", KILN_F32, KILN_PRECISION_TF32, 0},
        {"Gemm fp16 transB +C[N]", KILN_F16, KILN_PRECISION_FP32, 1},
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "a", gs[i].dt, 2, D(37, 64), -1, 1);
        tc_const(&t, "b", gs[i].dt, 2, gs[i].tb ? D(24, 64) : D(64, 24), -0.5f, 0.5f);
        tc_const(&t, "c", gs[i].dt, 1, D(24), -1, 1);
        tc_node(&t, "Gemm", 3, S("a", "b", "c"), 1, S("y"), 1, A(kiln_attr_int("transB", gs[i].tb)));
        tc_finish(&t, gs[i].label, gs[i].p, gs[i].dt == KILN_F32 && gs[i].p == KILN_PRECISION_FP32 ? F32 : LOW);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "a", KILN_F32, 2, D(20, 16), -1, 1);
        tc_input(&t, "b", KILN_F32, 2, D(30, 20), -1, 1);
        tc_input(&t, "c", KILN_F32, 2, D(16, 30), -1, 1);
        tc_node(&t, "Gemm", 3, S("a", "b", "c"), 1, S("y"), 4,
                A(kiln_attr_int("transA", 1), kiln_attr_int("transB", 1), kiln_attr_float("alpha", 0.5f), kiln_attr_float("beta", 2.0f)));
        tc_finish(&t, "Gemm transA transB C[M,N] alpha beta", KILN_PRECISION_FP32, F32);
    }
    struct { const char *label; int ra; int64_t ad[4]; int rb; int64_t bd[4]; kiln_dtype dt; } ms[] = {
        {"MatMul batched [2,3]", 4, {2, 3, 9, 16}, 4, {2, 3, 16, 7}, KILN_F32},
        {"MatMul x 2-D weight", 3, {4, 9, 16}, 2, {16, 7}, KILN_F32},
        {"MatMul bcast [2,1]x[1,3]", 4, {2, 1, 9, 16}, 4, {1, 3, 16, 7}, KILN_F32},
        {"MatMul vector x matrix", 1, {16}, 3, {2, 16, 7}, KILN_F32},
        {"MatMul fp16 batched", 3, {4, 32, 64}, 3, {4, 64, 16}, KILN_F16},
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "a", ms[i].dt, ms[i].ra, ms[i].ad, -1, 1);
        tc_input(&t, "b", ms[i].dt, ms[i].rb, ms[i].bd, -1, 1);
        tc_node(&t, "MatMul", 2, S("a", "b"), 1, S("y"), 0, NULL);
        tc_finish(&t, ms[i].label, KILN_PRECISION_FP32, ms[i].dt == KILN_F32 ? F32 : LOW);
    }
}

static void tensor_cases(void) {
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 4, 5), -1, 1);
        tc_node(&t, "Flatten", 1, S("x"), 1, S("y"), 1, A(kiln_attr_int("axis", 2)));
        tc_finish(&t, "Flatten axis 2", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 3, D(2, 3, 4), -1, 1);
        tc_ints(&t, "shape", 2, D(4, -1));
        tc_node(&t, "Reshape", 2, S("x", "shape"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Reshape", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 3, 4, 5), -1, 1);
        int64_t perm[4] = {0, 2, 3, 1};
        tc_node(&t, "Transpose", 1, S("x"), 1, S("y"), 1, A(kiln_attr_ints("perm", 4, perm)));
        tc_finish(&t, "Transpose NCHW->NHWC", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F16, 3, D(7, 9, 5), -1, 1);
        tc_node(&t, "Transpose", 1, S("x"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Transpose fp16 default perm", KILN_PRECISION_FP32, LOW);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "a", KILN_F32, 3, D(2, 3, 4), -1, 1);
        tc_input(&t, "b", KILN_F32, 3, D(2, 1, 4), -1, 1);
        tc_input(&t, "c", KILN_F32, 3, D(2, 5, 4), -1, 1);
        tc_node(&t, "Concat", 3, S("a", "b", "c"), 1, S("y"), 1, A(kiln_attr_int("axis", 1)));
        tc_finish(&t, "Concat axis 1", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 3, D(2, 9, 4), -1, 1);
        tc_ints(&t, "split", 2, D(3, 6));
        tc_node(&t, "Split", 2, S("x", "split"), 2, S("y0", "y1"), 1, A(kiln_attr_int("axis", 1)));
        tc_finish(&t, "Split axis 1 [3,6]", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 3, D(6, 10, 8), -1, 1);
        tc_ints(&t, "starts", 3, D(1, -2, 0));
        tc_ints(&t, "ends", 3, D(5, 0, 8));
        tc_ints(&t, "axes", 3, D(0, 1, 2));
        tc_ints(&t, "steps", 3, D(2, -3, 3));
        tc_node(&t, "Slice", 5, S("x", "starts", "ends", "axes", "steps"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Slice steps 2,-3,3", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(2, 1, 5, 1), -1, 1);
        tc_ints(&t, "axes", 2, D(1, 3));
        tc_node(&t, "Squeeze", 2, S("x", "axes"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Squeeze", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 2, D(3, 5), -1, 1);
        tc_ints(&t, "axes", 2, D(0, 2));
        tc_node(&t, "Unsqueeze", 2, S("x", "axes"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Unsqueeze", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 3, D(4, 7, 3), -1, 1);
        KT_OK(kiln_graph_add_initializer(t.g, "idx", KILN_I64, 2, D(2, 2), (const int64_t[]){0, -1, 3, 2}));
        tc_node(&t, "Gather", 2, S("x", "idx"), 1, S("y"), 1, A(kiln_attr_int("axis", 1)));
        tc_finish(&t, "Gather axis 1 (negative index)", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 2, D(3, 1), -1, 1);
        tc_ints(&t, "shape", 3, D(2, 3, 4));
        tc_node(&t, "Expand", 2, S("x", "shape"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Expand [3,1]->[2,3,4]", KILN_PRECISION_FP32, F32);
    }
    {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 2, D(3, 4), -1, 1);
        tc_ints(&t, "rep", 2, D(2, 3));
        tc_node(&t, "Tile", 2, S("x", "rep"), 1, S("y"), 0, NULL);
        tc_finish(&t, "Tile [2,3]", KILN_PRECISION_FP32, F32);
    }
    const char *modes[3] = {"constant", "reflect", "edge"};
    for (int i = 0; i < 3; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(1, 2, 5, 6), -1, 1);
        tc_ints(&t, "pads", 8, D(0, 0, 2, 1, 0, 0, 1, 3));
        float cv = 0.5f;
        KT_OK(kiln_graph_add_initializer(t.g, "cv", KILN_F32, 0, NULL, &cv));
        tc_node(&t, "Pad", i == 0 ? 3 : 2, S("x", "pads", "cv"), 1, S("y"), 1, A(kiln_attr_string("mode", modes[i])));
        char label[64];
        snprintf(label, sizeof label, "Pad %s", modes[i]);
        tc_finish(&t, label, KILN_PRECISION_FP32, F32);
    }
    struct { const char *label; const char *mode; const char *ct; } rs[] = {
        {"Resize nearest x2 asymmetric", "nearest", "asymmetric"},
        {"Resize linear x2 half_pixel", "linear", "half_pixel"},
        {"Resize linear x2 align_corners", "linear", "align_corners"},
        {"Resize linear x2 pytorch_half_pixel", "linear", "pytorch_half_pixel"},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_F32, 4, D(1, 2, 5, 6), -1, 1);
        float scales[4] = {1, 1, 2, 2};
        tc_floats(&t, "scales", 4, scales);
        tc_node(&t, "Resize", 3, S("x", "", "scales"), 1, S("y"), 2,
                A(kiln_attr_string("mode", rs[i].mode), kiln_attr_string("coordinate_transformation_mode", rs[i].ct)));
        tc_finish(&t, rs[i].label, KILN_PRECISION_FP32, F32);
    }
}

static void reduce_cases(void) {
    const char *ops[4] = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"};
    struct { const char *label; int n; int64_t axes[3]; int keep; } cs[] = {
        {"axis -1", 1, {-1}, 1}, {"axis 1 keepdims 0", 1, {1}, 0}, {"axes 0,2", 2, {0, 2}, 1}, {"all", 0, {0}, 0},
    };
    for (int o = 0; o < 4; o++)
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            tc t;
            tc_begin(&t);
            tc_input(&t, "x", KILN_F32, 3, D(4, 33, 9), -1, 1);
            if (cs[i].n) tc_ints(&t, "axes", cs[i].n, cs[i].axes);
            tc_node(&t, ops[o], cs[i].n ? 2 : 1, S("x", "axes"), 1, S("y"), 1, A(kiln_attr_int("keepdims", cs[i].keep)));
            char label[64];
            snprintf(label, sizeof label, "%s %s", ops[o], cs[i].label);
            tc_finish(&t, label, KILN_PRECISION_FP32, F32);
        }
}

/* Bool Max (any) and Min (all) over short axes, so both values occur; and reductions of an empty
 * extent, which fill the output with the identity (Sum 0, Mean NaN, Max lowest, Min highest). */
static void reduce_variant_cases(void) {
    struct { const char *op; int n; int64_t axes[2]; int keep; const char *label; } bs[] = {
        {"ReduceMax", 1, {1}, 1, "ReduceMax bool axis 1"},
        {"ReduceMin", 1, {-1}, 0, "ReduceMin bool axis -1 keepdims 0"},
        {"ReduceMax", 2, {0, 2}, 1, "ReduceMax bool axes 0,2"},
        {"ReduceMin", 2, {0, 2}, 0, "ReduceMin bool axes 0,2 keepdims 0"},
    };
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", KILN_BOOL, 3, D(2, 3, 2), -1, 1);
        tc_ints(&t, "axes", bs[i].n, bs[i].axes);
        tc_node(&t, bs[i].op, 2, S("x", "axes"), 1, S("y"), 1, A(kiln_attr_int("keepdims", bs[i].keep)));
        tc_finish(&t, bs[i].label, KILN_PRECISION_FP32, F32);
    }
    struct { const char *op; kiln_dtype dt; int n; int64_t axes[2]; int keep; const char *label; } es[] = {
        {"ReduceMax", KILN_F32, 1, {1}, 1, "ReduceMax empty set f32"},
        {"ReduceMin", KILN_F32, 1, {1}, 1, "ReduceMin empty set f32"},
        {"ReduceSum", KILN_F32, 1, {1}, 1, "ReduceSum empty set f32"},
        {"ReduceMean", KILN_F32, 1, {1}, 0, "ReduceMean empty set f32 keepdims 0"},
        {"ReduceMax", KILN_F16, 2, {0, 1}, 0, "ReduceMax empty set f16 axes 0,1"},
        {"ReduceMin", KILN_I32, 1, {1}, 1, "ReduceMin empty set i32"},
        {"ReduceMax", KILN_I8, 1, {1}, 1, "ReduceMax empty set i8"},
        {"ReduceMin", KILN_U8, 1, {1}, 1, "ReduceMin empty set u8"},
        {"ReduceMin", KILN_BOOL, 1, {1}, 1, "ReduceMin empty set bool"},
        {"ReduceSum", KILN_I64, 0, {0}, 0, "ReduceSum empty set i64 all"},
    };
    for (size_t i = 0; i < sizeof es / sizeof es[0]; i++) {
        tc t;
        tc_begin(&t);
        tc_input(&t, "x", es[i].dt, 3, D(2, 0, 4), -1, 1);
        if (es[i].n) tc_ints(&t, "axes", es[i].n, es[i].axes);
        tc_node(&t, es[i].op, es[i].n ? 2 : 1, S("x", "axes"), 1, S("y"), 1, A(kiln_attr_int("keepdims", es[i].keep)));
        tc_finish(&t, es[i].label, KILN_PRECISION_FP32, F32);
    }
}

int main(void) {
    if (!kiln_cuda_available()) {
        printf("SKIP: no CUDA device\n");
        return kt_finish();
    }
    kt_seed(11);
    elementwise_cases();
    conv_cases();
    nn_cases();
    gemm_cases();
    tensor_cases();
    reduce_cases();
    reduce_variant_cases();
    if (n_skipped) printf("SKIP: %d cases without a CPU reference yet: %s\n", n_skipped, skipped);
    return kt_finish();
}
