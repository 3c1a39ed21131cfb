/* The one-node op harness (kt_node.h). */
#include "kt_node.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


int64_t kt_n(const kt_t *t) { return kn_numel(t->rank, t->dims); }

kt_t kt_make(kiln_dtype dt, int rank, const int64_t *dims) {
    kt_t t = {.dt = dt, .rank = rank};
    if (rank > 0 && rank <= KILN_MAX_RANK) memcpy(t.dims, dims, (size_t)rank * sizeof dims[0]);
    t.v = calloc((size_t)kt_n(&t) + 1, sizeof(double));
    return t;
}

/* Rounds v to what dtype dt holds. */
double kt_round(kiln_dtype dt, double v) {
    unsigned char buf[8];
    kn_store_f64(buf, dt, 0, v);
    return kn_load_f64(buf, dt, 0);
}

/* Random values in [lo, hi): floats rounded to dt, integers floored, bools 0/1. */
void kt_rand(kt_t *t, double lo, double hi) {
    for (int64_t i = 0; i < kt_n(t); i++) {
        double u = kt_uniform((float)lo, (float)hi);
        t->v[i] = t->dt == KILN_BOOL ? (double)(kt_rand_u64() & 1)
                  : kn_dtype_is_int(t->dt) ? floor(u) : kt_round(t->dt, u);
    }
}

kt_t kt_rnd(kiln_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    kt_t t = kt_make(dt, rank, dims);
    kt_rand(&t, lo, hi);
    return t;
}

kt_t kt_scalar(kiln_dtype dt, double v) {
    kt_t t = kt_make(dt, 0, NULL);
    t.v[0] = kt_round(dt, v);
    return t;
}

void kt_free(kt_t *t) { free(t->v); t->v = NULL; }

static void *kt_to_buf(const kt_t *t) {
    int64_t n = kt_n(t);
    void *b = calloc((size_t)n + 1, 8);
    for (int64_t i = 0; i < n; i++) {
        if (t->dt == KILN_I64) ((int64_t *)b)[i] = (int64_t)t->v[i];
        else kn_store_f64(b, t->dt, i, t->v[i]);
    }
    return b;
}

/* Infers and runs op on ins (dt INVALID: an omitted input); fills outs. */
kiln_status kt_run(const char *op, const char *name, int n_in, const kt_t *ins, int n_attr,
                          const kiln_attr *attrs, int n_out, kt_t *outs) {
    kn_graph *g = kn_graph_new();
    int iv[16], ov[4], k;
    kn_tensor ti[16] = {{0}}, to[4] = {{0}};
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_in; i++) {
        iv[i] = -1;
        if (ins[i].dt == KILN_DTYPE_INVALID) continue;
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        kn_graph_new_value(g, nm, &iv[i]);
        ti[i].dtype = ins[i].dt;
        ti[i].rank = ins[i].rank;
        memcpy(ti[i].dims, ins[i].dims, sizeof ti[i].dims);
        ti[i].data = kt_to_buf(&ins[i]);
        ti[i].host = ins[i].no_host ? NULL : ti[i].data;
    }
    for (int o = 0; o < n_out; o++) {
        char nm[16];
        snprintf(nm, sizeof nm, "out%d", o);
        kn_graph_new_value(g, nm, &ov[o]);
    }
    kn_graph_new_node(g, kn_op_from_name(op), name, n_in, iv, n_out, ov, &k);
    kn_node *n = &g->nodes[k];
    for (int a = 0; a < n_attr; a++) kn_node_set_attr(n, &attrs[a]);
    const kn_op_def *d = kn_op_get(n->op);
    if (d->check) KN_CHECK_GOTO(st, d->check(g, n), done);
    kn_infer_ctx c = {.g = g, .node = n, .n_in = n_in, .n_out = n_out, .in = ti, .out = to};
    KN_CHECK_GOTO(st, d->infer(&c), done);
    for (int o = 0; o < n_out; o++) to[o].data = calloc((size_t)kn_tensor_numel(&to[o]) + 1, 8);
    KN_CHECK_GOTO(st, kn_cpu_eval_node(n, ti, n_in, to, n_out), done);
    for (int o = 0; o < n_out; o++) {
        outs[o] = kt_make(to[o].dtype, to[o].rank, to[o].dims);
        for (int64_t i = 0; i < kt_n(&outs[o]); i++)
            outs[o].v[i] = to[o].dtype == KILN_I64 ? (double)((int64_t *)to[o].data)[i]
                                                   : kn_load_f64(to[o].data, to[o].dtype, i);
    }
done:
    for (int i = 0; i < n_in; i++) free(ti[i].data);
    for (int o = 0; o < n_out; o++) free(to[o].data);
    kn_graph_destroy(g);
    return st;
}

/* Tolerances of a result rounded to dt (the reference is exact in double). */
double kt_rtol(kiln_dtype dt) {
    switch (dt) {
    case KILN_F32: return 2e-6;
    case KILN_F16: return 1e-3;
    case KILN_BF16: return 8e-3;
    case KILN_F64: return 1e-12;
    default: return 0;
    }
}

/* Compares out's values to ref (n values) within dt's tolerance; NaN matches NaN. */
void kt_expect(const char *what, const kt_t *out, const double *ref, int64_t n) {
    double rtol = kt_rtol(out->dt), atol = rtol, worst = 0;
    int64_t at = 0;
    KT_CHECK(kt_n(out) == n, "%s: %lld values, expected %lld", what, (long long)kt_n(out), (long long)n);
    if (kt_n(out) != n) return;
    for (int64_t i = 0; i < n; i++) {
        double a = out->v[i], b = ref[i], r;
        if (isnan(a) || isnan(b)) r = isnan(a) && isnan(b) ? 0 : INFINITY;
        else if (isinf(a) || isinf(b)) r = a == b ? 0 : INFINITY;
        else r = fabs(a - b) / (atol + rtol * fabs(b));
        if (rtol == 0) r = a == b ? 0 : INFINITY;
        if (r > worst) { worst = r; at = i; }
    }
    KT_CHECK(worst <= 1, "%s (%s): element %lld is %.9g, expected %.9g", what, kiln_dtype_name(out->dt),
             (long long)at, out->v[at], ref[at]);
}

void kt_expect_shape(const char *what, const kt_t *out, kiln_dtype dt, int rank, const int64_t *dims) {
    int ok = out->dt == dt && out->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = out->dims[i] == dims[i];
    char a[96], b[96];
    KT_CHECK(ok, "%s: output %s %s, expected %s %s", what, kiln_dtype_name(out->dt),
             kn_dims_str(out->rank, out->dims, a, sizeof a), kiln_dtype_name(dt), kn_dims_str(rank, dims, b, sizeof b));
}

