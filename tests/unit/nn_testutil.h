/* Helpers for the nn op tests (test_ops_nn*.c): host tensors of any float type made from random
 * f32 values (rounded to the type, so a float64 reference sees exactly what the kernel sees), and
 * a one-node runner: check -> shape inference -> CPU kernel (prepare, run, release). */
#ifndef KILN_NN_TESTUTIL_H
#define KILN_NN_TESTUTIL_H

#include "testlib.h"

#include "backend/cpu/cpu.h"
#include "ir/shape_infer.h"

#include <stdlib.h>
#include <string.h>

/* A host tensor with its values as doubles (what the reference reads). */
typedef struct kt_t {
    kn_tensor t;
    double *v; /* numel values, exactly representable in t.dtype */
} kt_t;

static inline int64_t kt_numel(const kt_t *x) { return kn_tensor_numel(&x->t); }

static inline kt_t kt_make(kiln_dtype dt, int rank, const int64_t *dims) {
    kt_t x;
    memset(&x, 0, sizeof x);
    x.t.dtype = dt;
    x.t.rank = rank;
    for (int i = 0; i < rank; i++) x.t.dims[i] = dims[i];
    int64_t n = kn_tensor_numel(&x.t);
    x.t.data = calloc((size_t)(n ? n : 1), kiln_dtype_size(dt));
    x.v = calloc((size_t)(n ? n : 1), sizeof(double));
    return x;
}

/* Random values in [lo, hi), stored in dt and read back so v[] holds exactly the stored value. */
static inline kt_t kt_rand(kiln_dtype dt, int rank, const int64_t *dims, float lo, float hi) {
    kt_t x = kt_make(dt, rank, dims);
    int64_t n = kt_numel(&x);
    for (int64_t i = 0; i < n; i++) {
        double f = dt == KILN_F64 ? lo + (hi - lo) * (double)(kt_rand_u64() >> 11) * (1.0 / 9007199254740992.0)
                                  : (double)kt_uniform(lo, hi);
        if (dt == KILN_I64 || dt == KILN_I32 || dt == KILN_I8 || dt == KILN_U8) f = floor(f);
        kn_store_f64(x.t.data, dt, i, f);
        x.v[i] = kn_load_f64(x.t.data, dt, i);
    }
    return x;
}

static inline kt_t kt_absent(void) {
    kt_t x;
    memset(&x, 0, sizeof x);
    return x;
}

static inline void kt_free(kt_t *x) {
    free(x->t.data);
    free(x->v);
    memset(x, 0, sizeof *x);
}

/* Reads a tensor's values into x->v (after a kernel wrote t.data). */
static inline void kt_sync(kt_t *x) {
    int64_t n = kt_numel(x);
    free(x->v);
    x->v = calloc((size_t)(n ? n : 1), sizeof(double));
    for (int64_t i = 0; i < n; i++) x->v[i] = kn_load_f64(x->t.data, x->t.dtype, i);
}

/* max |got - want| / (atol + rtol |want|): <= 1 passes. */
static inline double kt_ratio(const double *got, const double *want, int64_t n, double rtol, double atol) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs(got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (isnan(got[i]) != isnan(want[i])) r = INFINITY;
        else if (isnan(got[i])) r = 0;
        if (!(r <= worst)) worst = r;
    }
    return worst;
}

/* Tolerances per output dtype, for sums of up to a few hundred products of values in [-1, 1). */
static inline double kt_rtol(kiln_dtype t) {
    return t == KILN_F64 ? 1e-12 : t == KILN_F16 ? 4e-3 : t == KILN_BF16 ? 2e-2 : 2e-5;
}
static inline double kt_atol(kiln_dtype t) {
    return t == KILN_F64 ? 1e-12 : t == KILN_F16 ? 4e-3 : t == KILN_BF16 ? 3e-2 : 2e-5;
}

/* One node over host tensors. in[i].t.dtype == INVALID marks an omitted optional input. On
 * success out[k] holds the inferred dtype and dims and the kernel's result (free with kt_free).
 * `runs` > 1 runs the prepared kernel that many times (the recorder replays run alone). */
static inline kiln_status kt_run_op_n(kn_op op, const char *name, int n_in, kt_t *in, int n_out, kt_t *out,
                                      int n_attr, const kiln_attr *attrs, int runs) {
    kn_graph *g = kn_graph_new();
    if (!g) return KILN_ERR_OUT_OF_MEMORY;
    int vin[16], vout[8], ni = -1;
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_in && st == KILN_OK; i++) {
        vin[i] = -1;
        if (!kn_tensor_present(&in[i].t)) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "in%d", i);
        st = kn_graph_new_value(g, nm, &vin[i]);
        if (st == KILN_OK) {
            g->values[vin[i]].dtype = in[i].t.dtype;
            g->values[vin[i]].rank = in[i].t.rank;
            g->values[vin[i]].flags |= KN_VALUE_INPUT;
        }
    }
    for (int o = 0; o < n_out && st == KILN_OK; o++) {
        char nm[32];
        snprintf(nm, sizeof nm, "out%d", o);
        st = kn_graph_new_value(g, nm, &vout[o]);
    }
    if (st == KILN_OK) st = kn_graph_new_node(g, op, name, n_in, vin, n_out, vout, &ni);
    for (int k = 0; k < n_attr && st == KILN_OK; k++) st = kn_node_set_attr(&g->nodes[ni], &attrs[k]);
    const kn_op_def *d = kn_op_get(op);
    const kn_node *node = st == KILN_OK ? &g->nodes[ni] : NULL;
    if (st == KILN_OK && (!d || !d->infer)) st = kn_error(KILN_ERR_UNSUPPORTED, "op has no definition");
    if (st == KILN_OK && (n_in < d->min_in || n_in > d->max_in || n_out < d->min_out || n_out > d->max_out))
        st = kn_node_error(node, KILN_ERR_INVALID_ARGUMENT, "arity %d/%d outside the op's", n_in, n_out);
    if (st == KILN_OK && d->check) st = d->check(g, node);
    kn_tensor tin[16], tout[8];
    memset(tout, 0, sizeof tout);
    for (int i = 0; i < n_in; i++) tin[i] = in[i].t;
    for (int o = 0; o < n_out; o++) out[o] = kt_absent();
    if (st == KILN_OK) {
        kn_infer_ctx ctx = {.g = g, .node = node, .n_in = n_in, .n_out = n_out, .in = tin, .out = tout};
        for (int i = 0; i < n_in; i++) tin[i].data = NULL;
        st = d->infer(&ctx);
        for (int i = 0; i < n_in; i++) tin[i] = in[i].t;
    }
    if (st == KILN_OK) {
        for (int o = 0; o < n_out; o++) {
            out[o] = kt_make(tout[o].dtype, tout[o].rank, tout[o].dims);
            memset(out[o].t.data, 0x7f, (size_t)kn_tensor_bytes(&out[o].t)); /* garbage, not zeros */
            tout[o] = out[o].t;
        }
        const kn_kernel *k = kn_cpu_kernel(op);
        if (!k || !k->run) {
            st = kn_node_error(node, KILN_ERR_UNSUPPORTED, "no CPU kernel");
        } else {
            kn_kernel_args a = {.node = node, .in = tin, .n_in = n_in, .out = tout, .n_out = n_out};
            void *state = NULL;
            if (k->prepare) st = k->prepare(&a, &state);
            a.state = state;
            for (int r = 0; r < runs && st == KILN_OK; r++) st = k->run(&a);
            if (k->release && state) k->release(state);
        }
        for (int o = 0; o < n_out; o++) kt_sync(&out[o]);
    }
    kn_graph_destroy(g);
    return st;
}

static inline kiln_status kt_run_op(kn_op op, const char *name, int n_in, kt_t *in, int n_out, kt_t *out,
                                    int n_attr, const kiln_attr *attrs) {
    return kt_run_op_n(op, name, n_in, in, n_out, out, n_attr, attrs, 1);
}

/* Checks out's dims against want (rank r). */
static inline int kt_dims_are(const kt_t *out, int r, const int64_t *want) {
    if (out->t.rank != r) return 0;
    for (int i = 0; i < r; i++)
        if (out->t.dims[i] != want[i]) return 0;
    return 1;
}

#endif
