/* Reductions (ReduceMean/Sum/Max/Min) and Softmax/LogSoftmax: shape inference and CPU kernels
 * against naive float64 references written here, on random inputs; axes as an input and as the
 * old attribute, keepdims, noop_with_empty_axes, empty reductions; error paths name the node.
 * The harness is the same as test_ops_elementwise.c's (each test is its own program). */
#include "testlib.h"

#include "ir/shape_infer.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#include "kt_node.h"

/* ---- reductions ------------------------------------------------------------------------------- */

static const char *const kt_reduce_ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"};

/* Naive reference: every input element goes to the output element whose index drops (or zeros)
 * the reduced coordinates. Returns the output shape in (*orank, odims); ref holds the values. */
static void kt_reduce_ref(int op, const kt_t *x, const int *red, int keep, int *orank, int64_t *odims, double *ref) {
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!red[i]) odims[r++] = x->dims[i];
        else if (keep) odims[r++] = 1;
    }
    *orank = r;
    int64_t no = kn_numel(r, odims), count = 1;
    for (int i = 0; i < x->rank; i++) if (red[i]) count *= x->dims[i];
    int integer = !kn_dtype_is_float(x->dt);
    for (int64_t o = 0; o < no; o++) ref[o] = op == 2 ? -INFINITY : op == 3 ? INFINITY : 0;
    for (int64_t i = 0; i < kt_n(x); i++) {
        int64_t c[KILN_MAX_RANK], rem = i, o = 0;
        for (int d = x->rank - 1; d >= 0; d--) { c[d] = rem % x->dims[d]; rem /= x->dims[d]; }
        for (int d = 0; d < x->rank; d++) {
            if (!red[d]) o = o * x->dims[d] + c[d];
        }
        double v = x->v[i];
        if (op <= 1) ref[o] += v;
        else if (op == 2) ref[o] = v > ref[o] ? v : ref[o];
        else ref[o] = v < ref[o] ? v : ref[o];
    }
    if (op == 1)
        for (int64_t o = 0; o < no; o++) ref[o] = integer ? (count ? trunc(ref[o] / (double)count) : 0) : ref[o] / (double)count;
}

static void test_reduce(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_F64, KILN_I64, KILN_I32};
    static const struct { int rank; int64_t dims[4]; } shapes[] = {{3, {2, 3, 4}}, {1, {5}}, {4, {3, 1, 4, 2}}, {0, {0}}};
    static const struct { int n; int64_t ax[4]; } axsets[] = {
        {0, {0}}, {1, {0}}, {1, {-1}}, {2, {0, 2}}, {2, {1, -1}}, {3, {2, 0, 1}}, {4, {3, 1, 0, 2}},
    };
    for (int op = 0; op < 4; op++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (size_t a = 0; a < sizeof axsets / sizeof axsets[0]; a++)
                    for (int keep = 0; keep < 2; keep++)
                        for (int form = 0; form < 2; form++) { /* axes input, axes attribute */
                            int rank = shapes[s].rank, n_ax = axsets[a].n, ok = 1, red[KILN_MAX_RANK] = {0};
                            for (int k = 0; k < n_ax; k++) {
                                int64_t ax = axsets[a].ax[k] < 0 ? axsets[a].ax[k] + rank : axsets[a].ax[k];
                                ok &= ax >= 0 && ax < rank;
                                if (ok) red[ax] = 1;
                            }
                            if (!ok) continue;
                            if (n_ax == 0) for (int i = 0; i < rank; i++) red[i] = 1;
                            kiln_dtype dt = dts[d];
                            kt_t in[2] = {kt_rnd(dt, rank, shapes[s].dims, -40, 40), kt_make(KILN_I64, 1, KT_D(n_ax))}, y = {0};
                            for (int k = 0; k < n_ax; k++) in[1].v[k] = (double)axsets[a].ax[k];
                            kiln_attr attrs[2] = {kiln_attr_int("keepdims", keep), kiln_attr_ints("axes", n_ax, axsets[a].ax)};
                            int n_attr = form ? 2 : (keep ? (int)(kt_rand_u64() & 1) : 1); /* keepdims=1 left to its default */
                            char what[96];
                            snprintf(what, sizeof what, "%s %s rank %d axes #%zu keep %d form %d", kt_reduce_ops[op],
                                     kiln_dtype_name(dt), rank, a, keep, form);
                            KT_OK(kt_run(kt_reduce_ops[op], "red", form ? 1 : 2, in, n_attr, attrs, 1, &y));
                            int orank;
                            int64_t odims[KILN_MAX_RANK];
                            double ref[128];
                            kt_reduce_ref(op, &in[0], red, keep, &orank, odims, ref);
                            if (y.v) { kt_expect_shape(what, &y, dt, orank, odims); kt_expect(what, &y, ref, kn_numel(orank, odims)); }
                            kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
                        }
}

static void test_reduce_special(void) {
    kt_t y = {0};
    /* noop_with_empty_axes: the identity */
    kt_t in[2] = {kt_rnd(KILN_F32, 2, KT_D(3, 4), -1, 1), kt_make(KILN_I64, 1, KT_D(0))};
    kiln_attr noop = kiln_attr_int("noop_with_empty_axes", 1);
    KT_OK(kt_run("ReduceSum", "noop", 2, in, 1, &noop, 1, &y));
    if (y.v) { kt_expect_shape("noop", &y, KILN_F32, 2, KT_D(3, 4)); kt_expect("noop", &y, in[0].v, 12); }
    kt_free(&y);
    KT_OK(kt_run("ReduceMax", "noop_attr", 1, in, 1, &noop, 1, &y)); /* no axes at all */
    if (y.v) kt_expect("noop without axes", &y, in[0].v, 12);
    kt_free(&y);
    /* axes given as i32 */
    kt_free(&in[1]);
    in[1] = kt_make(KILN_I32, 1, KT_D(1));
    in[1].v[0] = -2;
    KT_OK(kt_run("ReduceMin", "i32_axes", 2, in, 0, NULL, 1, &y));
    double mins[4];
    for (int j = 0; j < 4; j++) mins[j] = fmin(fmin(in[0].v[j], in[0].v[4 + j]), in[0].v[8 + j]);
    if (y.v) { kt_expect_shape("i32 axes", &y, KILN_F32, 2, KT_D(1, 4)); kt_expect("i32 axes", &y, mins, 4); }
    kt_free(&y);
    /* NaN propagates through Max and Min */
    in[0].v[5] = NAN;
    KT_OK(kt_run("ReduceMax", "nan", 2, in, 0, NULL, 1, &y));
    KT_CHECK(y.v && isnan(y.v[1]) && !isnan(y.v[0]) && !isnan(y.v[2]), "ReduceMax propagates NaN");
    kt_free(&y); kt_free(&in[0]); kt_free(&in[1]);
    /* empty reductions: Sum 0, Mean NaN, Max lowest, Min highest (ONNX 18) */
    static const kiln_dtype dts[] = {KILN_F32, KILN_I32, KILN_U8};
    for (int d = 0; d < 3; d++) {
        kt_t e[2] = {kt_make(dts[d], 3, KT_D(2, 0, 3)), kt_make(KILN_I64, 1, KT_D(1))};
        e[1].v[0] = 1;
        kiln_attr keep0 = kiln_attr_int("keepdims", 0);
        double lo = dts[d] == KILN_F32 ? -(double)INFINITY : dts[d] == KILN_I32 ? (double)INT32_MIN : 0;
        double hi = dts[d] == KILN_F32 ? (double)INFINITY : dts[d] == KILN_I32 ? (double)INT32_MAX : 255;
        double want[4] = {0, dts[d] == KILN_F32 ? NAN : 0, lo, hi};
        for (int op = 0; op < 4; op++) {
            KT_OK(kt_run(kt_reduce_ops[op], "empty", 2, e, 1, &keep0, 1, &y));
            double ref[6] = {want[op], want[op], want[op], want[op], want[op], want[op]};
            if (y.v) { kt_expect_shape("empty", &y, dts[d], 2, KT_D(2, 3)); kt_expect(kt_reduce_ops[op], &y, ref, 6); }
            kt_free(&y);
        }
        kt_free(&e[0]); kt_free(&e[1]);
    }
    /* u8 sums wrap; bool Max/Min are any/all */
    kt_t u = kt_make(KILN_U8, 1, KT_D(3));
    u.v[0] = 200; u.v[1] = 100; u.v[2] = 7;
    KT_OK(kt_run("ReduceSum", "u8sum", 1, &u, 0, NULL, 1, &y));
    KT_CHECK(y.v && y.rank == 1 && y.v[0] == 51, "u8 sum wraps: %g", y.v ? y.v[0] : -1);
    kt_free(&y); kt_free(&u);
    kt_t b = kt_make(KILN_BOOL, 2, KT_D(2, 3));
    b.v[0] = 1; b.v[3] = 1; b.v[4] = 1; b.v[5] = 1;
    kt_t bin[2] = {b, kt_make(KILN_I64, 1, KT_D(1))};
    bin[1].v[0] = 1;
    KT_OK(kt_run("ReduceMax", "any", 2, bin, 0, NULL, 1, &y));
    KT_CHECK(y.v && y.dt == KILN_BOOL && y.v[0] == 1 && y.v[1] == 1, "bool ReduceMax is any");
    kt_free(&y);
    KT_OK(kt_run("ReduceMin", "all", 2, bin, 0, NULL, 1, &y));
    KT_CHECK(y.v && y.v[0] == 0 && y.v[1] == 1, "bool ReduceMin is all");
    kt_free(&y); kt_free(&b); kt_free(&bin[1]);
}

/* ---- softmax ---------------------------------------------------------------------------------- */

static void test_softmax(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_BF16, KILN_F64};
    static const struct { int rank; int64_t dims[3]; } shapes[] = {{3, {3, 4, 5}}, {1, {7}}, {2, {1, 6}}};
    for (int logsm = 0; logsm < 2; logsm++)
        for (size_t d = 0; d < 4; d++)
            for (size_t s = 0; s < 3; s++)
                for (int axis = -shapes[s].rank - 1; axis <= shapes[s].rank; axis++) { /* incl. default */
                    int rank = shapes[s].rank;
                    if (axis == rank) continue;
                    const char *op = logsm ? "LogSoftmax" : "Softmax";
                    kt_t x = kt_rnd(dts[d], rank, shapes[s].dims, -6, 6), y = {0};
                    if (s == 1) for (int i = 0; i < 7; i++) x.v[i] = kt_round(dts[d], x.v[i] + 500); /* stable for large */
                    kiln_attr at = kiln_attr_int("axis", axis);
                    int use_attr = axis >= -rank;
                    KT_OK(kt_run(op, "sm", 1, &x, use_attr, &at, 1, &y));
                    int ax = !use_attr ? rank - 1 : axis < 0 ? axis + rank : axis;
                    int64_t n = kt_n(&x), len = shapes[s].dims[ax], stride = kn_numel(rank - ax - 1, shapes[s].dims + ax + 1);
                    double *ref = malloc((size_t)n * sizeof(double));
                    for (int64_t i = 0; i < n; i++) {
                        int64_t c = (i / stride) % len, base = i - c * stride;
                        double m = -INFINITY, sum = 0;
                        for (int64_t k = 0; k < len; k++) m = fmax(m, x.v[base + k * stride]);
                        for (int64_t k = 0; k < len; k++) sum += exp(x.v[base + k * stride] - m);
                        ref[i] = logsm ? x.v[i] - m - log(sum) : exp(x.v[i] - m) / sum;
                    }
                    char what[96];
                    snprintf(what, sizeof what, "%s %s rank %d axis %d", op, kiln_dtype_name(dts[d]), rank, axis);
                    if (y.v) { kt_expect_shape(what, &y, dts[d], rank, shapes[s].dims); kt_expect(what, &y, ref, n); }
                    free(ref); kt_free(&x); kt_free(&y);
                }
}

/* ---- errors -------------------------------------------------------------------------------------- */

static void test_errors(void) {
    kt_t y = {0};
    kt_t in[2] = {kt_rnd(KILN_F32, 3, KT_D(2, 3, 4), -1, 1), kt_make(KILN_I64, 1, KT_D(2))};
    in[1].v[0] = 0; in[1].v[1] = 3;
    KT_FAILS(kt_run("ReduceSum", "sum_oob", 2, in, 0, NULL, 1, &y), KILN_ERR_SHAPE, "ReduceSum 'sum_oob': axis 3 is out of range");
    in[1].v[1] = -3;
    KT_FAILS(kt_run("ReduceMean", "mean_twice", 2, in, 0, NULL, 1, &y), KILN_ERR_SHAPE, "listed twice");
    in[1].v[1] = 1;
    in[1].no_host = 1;
    KT_FAILS(kt_run("ReduceMax", "max_dyn", 2, in, 0, NULL, 1, &y), KILN_ERR_UNSUPPORTED, "ReduceMax 'max_dyn'");
    in[1].no_host = 0;
    kiln_attr keep2 = kiln_attr_int("keepdims", 2);
    KT_FAILS(kt_run("ReduceMin", "keep2", 2, in, 1, &keep2, 1, &y), KILN_ERR_INVALID_ARGUMENT, "keepdims");
    kt_t fa[2] = {in[0], kt_make(KILN_F32, 1, KT_D(1))};
    KT_FAILS(kt_run("ReduceSum", "float_axes", 2, fa, 0, NULL, 1, &y), KILN_ERR_DTYPE, "float_axes");
    kt_t bi = kt_rnd(KILN_BOOL, 1, KT_D(3), 0, 1);
    KT_FAILS(kt_run("ReduceSum", "bool_sum", 1, &bi, 0, NULL, 1, &y), KILN_ERR_DTYPE, "ReduceSum 'bool_sum': input 0 'in0'");
    kiln_attr ax3 = kiln_attr_int("axis", 3);
    KT_FAILS(kt_run("Softmax", "sm_axis", 1, in, 1, &ax3, 1, &y), KILN_ERR_SHAPE, "Softmax 'sm_axis': axis 3");
    kt_t ii = kt_rnd(KILN_I64, 1, KT_D(3), 0, 9);
    KT_FAILS(kt_run("LogSoftmax", "lsm_int", 1, &ii, 0, NULL, 1, &y), KILN_ERR_DTYPE, "lsm_int");
    kt_free(&in[0]); kt_free(&in[1]); kt_free(&fa[1]); kt_free(&bi); kt_free(&ii);
}

/* A graph built through the public API: ReduceMean over a symbolic batch keeps it symbolic. */
static void test_builder(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, KT_D(-1, 8, 5, 5), (const char *[]){"n", NULL, NULL, NULL}));
    int64_t axes[2] = {2, 3};
    KT_OK(kiln_graph_add_initializer(g, "axes", KILN_I64, 1, KT_D(2), axes));
    KT_OK(kiln_graph_add_node(g, "ReduceMean", "gap", 2, (const char *[]){"x", "axes"}, 1, (const char *[]){"m"}, 1,
                              (const kiln_attr[]){kiln_attr_int("keepdims", 0)}));
    KT_OK(kiln_graph_add_node(g, "Softmax", "sm", 1, (const char *[]){"m"}, 1, (const char *[]){"p"}, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "p"));
    KT_OK(kiln_graph_verify(g));
    const kn_value *p = &g->g.values[kn_graph_find_value(&g->g, "p")];
    KT_CHECK(p->rank == 2 && p->dims[0].sym >= 0 && p->dims[1].v == 8, "ReduceMean + Softmax gives [n, 8]");
    KT_FAILS(kiln_graph_add_node(g, "ReduceSum", "bad_keep", 1, (const char *[]){"x"}, 1, (const char *[]){"q"}, 1,
                                 (const kiln_attr[]){kiln_attr_float("keepdims", 1)}),
             KILN_ERR_INVALID_ARGUMENT, "bad_keep");
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(2);
    test_reduce();
    test_reduce_special();
    test_softmax();
    test_errors();
    test_builder();
    return kt_finish();
}
