/* Elementwise ops: shape inference and CPU kernels against naive float64 references written
 * here (independent of the kernels), on random inputs of several shapes, with broadcasting,
 * in f32, f16, bf16, f64 and the integer types; error paths name the node. */
#include "testlib.h"

#include "ir/shape_infer.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

#include "kt_node.h"

/* numpy broadcast of shapes (an independent reimplementation for the reference). */
static int kt_bshape(int n, const kt_t *ins, int64_t *dims) {
    int r = 0;
    for (int k = 0; k < n; k++) r = ins[k].rank > r ? ins[k].rank : r;
    for (int i = 0; i < r; i++) {
        dims[i] = 1;
        for (int k = 0; k < n; k++) {
            int j = i - (r - ins[k].rank);
            if (j >= 0 && ins[k].dims[j] != 1) dims[i] = ins[k].dims[j];
        }
    }
    return r;
}

/* Value of input t at flat output index o of an output of shape (r, dims). */
static double kt_at(const kt_t *t, int r, const int64_t *dims, int64_t o) {
    int64_t idx = 0, stride = 1;
    for (int d = r - 1; d >= 0; d--) {
        int64_t c = o % dims[d];
        o /= dims[d];
        int j = d - (r - t->rank);
        if (j < 0) continue;
        idx += (t->dims[j] == 1 ? 0 : c) * stride;
        stride *= t->dims[j];
    }
    return t->v[idx];
}


/* ---- unary float ops ------------------------------------------------------------------------ */

static double kt_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double kt_softplus(double x) { return log(1.0 + exp(x)); }

typedef struct kt_unary {
    const char *op;
    double lo, hi;
    int n_attr;
    kiln_attr attr[2];
} kt_unary;

static double kt_unary_ref(const kt_unary *u, double x) {
    const char *op = u->op;
    double alpha = u->n_attr ? u->attr[0].f : 0, beta = u->n_attr > 1 ? u->attr[1].f : 0;
    if (!strcmp(op, "Relu")) return x > 0 ? x : 0;
    if (!strcmp(op, "LeakyRelu")) return x >= 0 ? x : alpha * x;
    if (!strcmp(op, "Elu")) return x >= 0 ? x : alpha * (exp(x) - 1);
    /* ONNX's defaults are the float attributes nearest the exact constants */
    if (!strcmp(op, "Selu")) return 1.05070102214813232421875 * (x > 0 ? x : 1.67326319217681884765625 * (exp(x) - 1));
    if (!strcmp(op, "HardSigmoid")) { double v = alpha * x + beta; return v < 0 ? 0 : v > 1 ? 1 : v; }
    if (!strcmp(op, "HardSwish")) { double v = x / 6 + 0.5; return x * (v < 0 ? 0 : v > 1 ? 1 : v); }
    if (!strcmp(op, "Sigmoid")) return kt_sigmoid(x);
    if (!strcmp(op, "Tanh")) return (exp(2 * x) - 1) / (exp(2 * x) + 1);
    if (!strcmp(op, "Erf")) return erf(x);
    if (!strcmp(op, "Gelu") && u->n_attr && !strcmp(u->attr[0].s, "tanh"))
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * pow(x, 3))));
    if (!strcmp(op, "Gelu")) return x * 0.5 * erfc(-x / sqrt(2.0));
    if (!strcmp(op, "Softplus")) return kt_softplus(x);
    if (!strcmp(op, "Mish")) return x * tanh(kt_softplus(x));
    if (!strcmp(op, "Sqrt")) return sqrt(x);
    if (!strcmp(op, "Reciprocal")) return 1 / x;
    if (!strcmp(op, "Neg")) return -x;
    if (!strcmp(op, "Abs")) return x < 0 ? -x : x;
    if (!strcmp(op, "Exp")) return exp(x);
    if (!strcmp(op, "Log")) return log(x);
    if (!strcmp(op, "Floor")) return floor(x);
    if (!strcmp(op, "Ceil")) return ceil(x);
    if (!strcmp(op, "Clip")) return x < alpha ? alpha : x > beta ? beta : x;
    if (!strcmp(op, "Identity")) return x;
    return NAN;
}

static void test_unary_float(void) {
    static const kt_unary cases[] = {
        {"Relu", -3, 3},
        {"LeakyRelu", -3, 3, 1, {{.name = "alpha", .type = KILN_ATTR_FLOAT, .f = 0.3f}}},
        {"LeakyRelu", -3, 3}, /* default alpha 0.01: filled below */
        {"Elu", -3, 3, 1, {{.name = "alpha", .type = KILN_ATTR_FLOAT, .f = 0.7f}}},
        {"Selu", -3, 3},
        {"HardSigmoid", -5, 5, 2, {{.name = "alpha", .type = KILN_ATTR_FLOAT, .f = 0.3f}, {.name = "beta", .type = KILN_ATTR_FLOAT, .f = 0.4f}}},
        {"HardSwish", -5, 5},
        {"Sigmoid", -12, 12},
        {"Tanh", -4, 4},
        {"Erf", -3, 3},
        {"Gelu", -4, 4},
        {"Gelu", -4, 4, 1, {{.name = "approximate", .type = KILN_ATTR_STRING, .s = "tanh"}}},
        {"Gelu", -4, 4, 1, {{.name = "approximate", .type = KILN_ATTR_STRING, .s = "none"}}},
        {"Softplus", -15, 15},
        {"Mish", -5, 5},
        {"Sqrt", 0.01, 10},
        {"Reciprocal", 0.25, 4},
        {"Neg", -3, 3},
        {"Abs", -3, 3},
        {"Exp", -5, 5},
        {"Log", 0.01, 10},
        {"Floor", -5, 5},
        {"Ceil", -5, 5},
        {"Clip", -2, 2, 2, {{.name = "min", .type = KILN_ATTR_FLOAT, .f = -0.5f}, {.name = "max", .type = KILN_ATTR_FLOAT, .f = 0.7f}}},
        {"Identity", -3, 3},
    };
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_BF16, KILN_F64};
    const int64_t shapes[3][3] = {{0}, {37}, {3, 5, 4}};
    const int ranks[3] = {0, 1, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kt_unary u = cases[c];
        if (!strcmp(u.op, "LeakyRelu") && !u.n_attr) { /* reference with the default, node without */
            u.n_attr = 1;
            u.attr[0] = kiln_attr_float("alpha", 0.01f);
        }
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (int s = 0; s < 3; s++) {
                kt_t x = kt_rnd(dts[d], ranks[s], shapes[s], u.lo, u.hi), y = {0};
                if (!strcmp(u.op, "Reciprocal"))
                    for (int64_t i = 0; i < kt_n(&x); i += 2) x.v[i] = -x.v[i]; /* both signs */
                char what[64];
                snprintf(what, sizeof what, "%s #%zu rank %d", u.op, c, ranks[s]);
                KT_OK(kt_run(u.op, "u", 1, &x, cases[c].n_attr, u.attr, 1, &y));
                if (y.v) {
                    kt_expect_shape(what, &y, dts[d], ranks[s], shapes[s]);
                    double *ref = malloc((size_t)kt_n(&x) * sizeof(double));
                    for (int64_t i = 0; i < kt_n(&x); i++) ref[i] = kt_unary_ref(&u, x.v[i]);
                    kt_expect(what, &y, ref, kt_n(&x));
                    free(ref);
                }
                kt_free(&x); kt_free(&y);
            }
    }
}

/* Special values: NaN and infinities flow through as the math says. */
static void test_unary_special(void) {
    kt_t x = kt_make(KILN_F32, 1, KT_D(4)), y = {0};
    double in[4] = {NAN, INFINITY, -INFINITY, -0.0};
    memcpy(x.v, in, sizeof in);
    KT_OK(kt_run("Sigmoid", "s", 1, &x, 0, NULL, 1, &y));
    KT_CHECK(y.v && isnan(y.v[0]) && y.v[1] == 1 && y.v[2] == 0 && y.v[3] == 0.5, "sigmoid specials");
    kt_free(&y);
    KT_OK(kt_run("Relu", "r", 1, &x, 0, NULL, 1, &y));
    KT_CHECK(y.v && isnan(y.v[0]) && isinf(y.v[1]) && y.v[2] == 0, "relu specials");
    kt_free(&y);
    KT_OK(kt_run("Softplus", "sp", 1, &x, 0, NULL, 1, &y));
    KT_CHECK(y.v && isnan(y.v[0]) && isinf(y.v[1]) && y.v[2] == 0, "softplus specials");
    kt_free(&y);
    /* large magnitudes stay finite where the function is */
    x.v[0] = 100; x.v[1] = -100; x.v[2] = 80; x.v[3] = -80;
    KT_OK(kt_run("Softplus", "sp", 1, &x, 0, NULL, 1, &y));
    KT_CHECK(y.v && fabs(y.v[0] - 100) < 1e-4 && y.v[1] >= 0 && y.v[1] < 1e-30, "softplus large");
    kt_free(&y);
    KT_OK(kt_run("Mish", "m", 1, &x, 0, NULL, 1, &y));
    KT_CHECK(y.v && fabs(y.v[0] - 100) < 1e-4 && fabs(y.v[1]) < 1e-30, "mish large");
    kt_free(&y); kt_free(&x);
}

/* Relu, Neg, Abs on integers; Not on bool. */
static void test_unary_int(void) {
    static const kiln_dtype dts[] = {KILN_I64, KILN_I32, KILN_I8, KILN_U8};
    static const char *ops[] = {"Relu", "Neg", "Abs", "Identity"};
    for (size_t d = 0; d < 4; d++)
        for (size_t o = 0; o < 4; o++) {
            if (dts[d] == KILN_U8 && (o == 0 || o == 1)) continue; /* not defined on u8 */
            kt_t x = kt_rnd(dts[d], 2, KT_D(4, 6), dts[d] == KILN_U8 ? 0 : -100, 100), y = {0};
            if (dts[d] == KILN_I8) x.v[0] = -128; /* Neg/Abs wrap to -128 */
            KT_OK(kt_run(ops[o], "i", 1, &x, 0, NULL, 1, &y));
            double ref[24];
            for (int i = 0; i < 24; i++) {
                double v = x.v[i];
                ref[i] = o == 0 ? (v > 0 ? v : 0) : o == 1 ? -v : o == 2 ? fabs(v) : v;
                if (dts[d] == KILN_I8 && ref[i] == 128) ref[i] = -128;
            }
            if (y.v) kt_expect(ops[o], &y, ref, 24);
            kt_free(&x); kt_free(&y);
        }
    kt_t b = kt_rnd(KILN_BOOL, 1, KT_D(9), 0, 1), y = {0};
    KT_OK(kt_run("Not", "not", 1, &b, 0, NULL, 1, &y));
    double ref[9];
    for (int i = 0; i < 9; i++) ref[i] = !b.v[i];
    if (y.v) { kt_expect_shape("Not", &y, KILN_BOOL, 1, KT_D(9)); kt_expect("Not", &y, ref, 9); }
    kt_free(&b); kt_free(&y);
}

/* ---- broadcasting binaries -------------------------------------------------------------------- */

static const struct { int ra, rb; int64_t a[4], b[4]; } kt_bshapes[] = {
    {2, 2, {3, 4}, {3, 4}},             /* equal: the flat path */
    {3, 1, {2, 3, 4}, {4}},             /* bias along the last dim */
    {3, 2, {2, 1, 4}, {3, 1}},          /* both sides broadcast */
    {0, 2, {0}, {2, 3}},                /* scalar */
    {4, 4, {1, 5, 1, 3}, {4, 1, 2, 1}}, /* 4-D, alternating */
    {4, 4, {2, 3, 4, 5}, {1, 3, 1, 1}}, /* NCHW per-channel */
    {2, 2, {3, 0}, {1, 0}},             /* empty */
};

__attribute__((noinline)) static double kt_binary_ref(const char *op, kiln_dtype dt, double a, double b) {
    int integer = kn_dtype_is_int(dt) || dt == KILN_BOOL;
    if (!strcmp(op, "Add")) return a + b;
    if (!strcmp(op, "Sub")) return a - b;
    if (!strcmp(op, "Mul")) return a * b;
    if (!strcmp(op, "Div")) return integer ? (b == 0 ? 0 : trunc(a / b)) : a / b;
    if (!strcmp(op, "Pow")) return pow(a, b);
    if (!strcmp(op, "Min")) return a < b ? a : b;
    if (!strcmp(op, "Max")) return a > b ? a : b;
    if (!strcmp(op, "Equal")) return a == b;
    if (!strcmp(op, "Less")) return a < b;
    if (!strcmp(op, "Greater")) return a > b;
    if (!strcmp(op, "And")) return a != 0 && b != 0;
    return NAN;
}

/* Wraps an exact integer result into the range of dt, as two's complement storage does. */
static double kt_wrap(kiln_dtype dt, double v) {
    if (dt == KILN_I8) { int64_t i = ((int64_t)v % 256 + 256) % 256; return (double)(i >= 128 ? i - 256 : i); }
    if (dt == KILN_U8) return (double)(((int64_t)v % 256 + 256) % 256);
    return v;
}

static void test_binary(void) {
    static const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Equal", "Less", "Greater"};
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_BF16, KILN_F64, KILN_I64, KILN_I32, KILN_I8, KILN_U8};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (size_t s = 0; s < sizeof kt_bshapes / sizeof kt_bshapes[0]; s++) {
                kiln_dtype dt = dts[d];
                int is_pow = !strcmp(ops[o], "Pow"), integer = kn_dtype_is_int(dt);
                if (is_pow && (dt == KILN_I8 || dt == KILN_U8)) continue;
                double lo = integer ? (dt == KILN_U8 ? 0 : -60) : -3, hi = integer ? 60 : 3;
                kt_t in[2] = {kt_rnd(dt, kt_bshapes[s].ra, kt_bshapes[s].a, lo, hi),
                              kt_rnd(dt, kt_bshapes[s].rb, kt_bshapes[s].b, lo, hi)};
                if (is_pow) { /* positive base, small exponents */
                    kt_rand(&in[0], integer ? 1 : 0.1, integer ? 6 : 3);
                    kt_rand(&in[1], integer ? 0 : -2, integer ? 5 : 2);
                }
                if (!strcmp(ops[o], "Equal")) /* make some equal */
                    for (int64_t i = 0; i < kt_n(&in[1]); i += 2) in[1].v[i] = in[0].v[i % (kt_n(&in[0]) ? kt_n(&in[0]) : 1)];
                if (!strcmp(ops[o], "Div") && !integer)
                    for (int64_t i = 0; i < kt_n(&in[1]); i++) in[1].v[i] = kt_round(dt, in[1].v[i] >= 0 ? in[1].v[i] + 0.5 : in[1].v[i] - 0.5);
                kt_t y = {0};
                char what[96];
                snprintf(what, sizeof what, "%s %s shapes #%zu", ops[o], kiln_dtype_name(dt), s);
                KT_OK(kt_run(ops[o], "bin", 2, in, 0, NULL, 1, &y));
                int64_t dims[KILN_MAX_RANK];
                int r = kt_bshape(2, in, dims);
                int cmp = o >= 7;
                if (y.v) {
                    kt_expect_shape(what, &y, cmp ? KILN_BOOL : dt, r, dims);
                    int64_t n = kn_numel(r, dims);
                    double *ref = malloc((size_t)(n + 1) * sizeof(double));
                    for (int64_t i = 0; i < n; i++) {
                        double v = kt_binary_ref(ops[o], dt, kt_at(&in[0], r, dims, i), kt_at(&in[1], r, dims, i));
                        ref[i] = integer && !cmp ? kt_wrap(dt, v) : v;
                    }
                    kt_expect(what, &y, ref, n);
                    free(ref);
                }
                kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
            }
}

/* Integer edge cases: truncating division, divide by zero, wrap-around, Pow with mixed types. */
static void test_binary_int_edges(void) {
    kt_t a = kt_make(KILN_I64, 1, KT_D(6)), b = kt_make(KILN_I64, 1, KT_D(6)), y = {0};
    double av[6] = {7, -7, 7, -7, 5, 0}, bv[6] = {2, 2, -2, -2, 0, 0};
    memcpy(a.v, av, sizeof av); memcpy(b.v, bv, sizeof bv);
    kt_t in[2] = {a, b};
    KT_OK(kt_run("Div", "div", 2, in, 0, NULL, 1, &y));
    double want[6] = {3, -3, -3, 3, 0, 0};
    if (y.v) kt_expect("Div i64 truncation and x/0 = 0", &y, want, 6);
    kt_free(&y);
    /* exactness beyond 2^53: (2^62 + 1) + 1 */
    kn_tensor ti[2] = {{0}}, to = {0};
    int64_t x0 = ((int64_t)1 << 62) + 1, x1 = 1, r = 0;
    ti[0] = (kn_tensor){.data = &x0, .host = &x0, .dtype = KILN_I64};
    ti[1] = (kn_tensor){.data = &x1, .host = &x1, .dtype = KILN_I64};
    to = (kn_tensor){.data = &r, .dtype = KILN_I64};
    kn_node n = {.name = "exact", .op = KN_OP_Add, .n_in = 2, .n_out = 1};
    KT_OK(kn_cpu_eval_node(&n, ti, 2, &to, 1));
    KT_CHECK(r == ((int64_t)1 << 62) + 2, "i64 add is exact: %lld", (long long)r);
    n.op = KN_OP_Mul;
    x0 = INT64_MAX; x1 = 2;
    KT_OK(kn_cpu_eval_node(&n, ti, 2, &to, 1));
    KT_CHECK(r == -2, "i64 mul wraps: %lld", (long long)r);
    n.op = KN_OP_Div;
    x0 = INT64_MIN; x1 = -1;
    KT_OK(kn_cpu_eval_node(&n, ti, 2, &to, 1));
    KT_CHECK(r == INT64_MIN, "INT64_MIN / -1 does not trap: %lld", (long long)r);
    kt_free(&a); kt_free(&b);
    /* i8 wraps */
    kt_t c[2] = {kt_scalar(KILN_I8, 100), kt_scalar(KILN_I8, 100)};
    KT_OK(kt_run("Add", "i8", 2, c, 0, NULL, 1, &y));
    KT_CHECK(y.v && y.v[0] == -56, "i8 100 + 100 wraps to -56, got %g", y.v ? y.v[0] : 0);
    kt_free(&y); kt_free(&c[0]); kt_free(&c[1]);
    /* Pow: int base, float exponent -> int (ONNX test_pow_types_int64_float32) */
    kt_t p[2] = {kt_make(KILN_I64, 1, KT_D(3)), kt_make(KILN_F32, 1, KT_D(3))};
    for (int i = 0; i < 3; i++) { p[0].v[i] = i + 1; p[1].v[i] = i + 4; }
    KT_OK(kt_run("Pow", "pow", 2, p, 0, NULL, 1, &y));
    double pw[3] = {1, 32, 729};
    if (y.v) { kt_expect_shape("Pow i64^f32", &y, KILN_I64, 1, KT_D(3)); kt_expect("Pow i64^f32", &y, pw, 3); }
    kt_free(&y);
    /* float base, int exponent; and int ^ negative int */
    p[1].dt = KILN_I32;
    p[0].dt = KILN_F32;
    KT_OK(kt_run("Pow", "pow", 2, p, 0, NULL, 1, &y));
    if (y.v) kt_expect("Pow f32^i32", &y, pw, 3);
    kt_free(&y);
    p[0].dt = KILN_I32; p[1].dt = KILN_I64;
    p[0].v[0] = -1; p[0].v[1] = 2; p[1].v[0] = -3; p[1].v[1] = -1; p[1].v[2] = 2;
    KT_OK(kt_run("Pow", "pow", 2, p, 0, NULL, 1, &y));
    double pn[3] = {-1, 0, 9};
    if (y.v) kt_expect("Pow i32^negative", &y, pn, 3);
    kt_free(&y); kt_free(&p[0]); kt_free(&p[1]);
}

static void test_min_max_nan(void) {
    kt_t in[2] = {kt_make(KILN_F32, 1, KT_D(3)), kt_make(KILN_F32, 1, KT_D(3))}, y = {0};
    in[0].v[0] = NAN; in[0].v[1] = 1; in[0].v[2] = 2;
    in[1].v[0] = 1; in[1].v[1] = NAN; in[1].v[2] = -2;
    KT_OK(kt_run("Max", "max", 2, in, 0, NULL, 1, &y));
    KT_CHECK(y.v && isnan(y.v[0]) && isnan(y.v[1]) && y.v[2] == 2, "Max propagates NaN");
    kt_free(&y);
    KT_OK(kt_run("Equal", "eq", 2, in, 0, NULL, 1, &y));
    KT_CHECK(y.v && y.v[0] == 0 && y.v[1] == 0 && y.v[2] == 0, "NaN is equal to nothing");
    kt_free(&y); kt_free(&in[0]); kt_free(&in[1]);
}

static void test_bool_binary(void) {
    for (size_t s = 0; s < sizeof kt_bshapes / sizeof kt_bshapes[0]; s++)
        for (int op = 0; op < 2; op++) {
            const char *name = op ? "Equal" : "And";
            kt_t in[2] = {kt_rnd(KILN_BOOL, kt_bshapes[s].ra, kt_bshapes[s].a, 0, 1),
                          kt_rnd(KILN_BOOL, kt_bshapes[s].rb, kt_bshapes[s].b, 0, 1)}, y = {0};
            KT_OK(kt_run(name, "b", 2, in, 0, NULL, 1, &y));
            int64_t dims[KILN_MAX_RANK];
            int r = kt_bshape(2, in, dims);
            int64_t n = kn_numel(r, dims);
            double *ref = malloc((size_t)(n + 1) * sizeof(double));
            for (int64_t i = 0; i < n; i++) ref[i] = kt_binary_ref(name, KILN_BOOL, kt_at(&in[0], r, dims, i), kt_at(&in[1], r, dims, i));
            if (y.v) { kt_expect_shape(name, &y, KILN_BOOL, r, dims); kt_expect(name, &y, ref, n); }
            free(ref); kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
        }
}

static void test_prelu(void) {
    static const struct { int rs; int64_t s[3]; } slopes[] = {{1, {4}}, {3, {3, 1, 1}}, {0, {0}}, {3, {3, 5, 4}}};
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_I64};
    for (size_t d = 0; d < 3; d++)
        for (size_t k = 0; k < 4; k++) {
            kt_t in[2] = {kt_rnd(dts[d], 3, KT_D(3, 5, 4), -10, 10), kt_rnd(dts[d], slopes[k].rs, slopes[k].s, -2, 2)}, y = {0};
            KT_OK(kt_run("PRelu", "prelu", 2, in, 0, NULL, 1, &y));
            double ref[60];
            for (int64_t i = 0; i < 60; i++) {
                double x = in[0].v[i];
                ref[i] = x < 0 ? x * kt_at(&in[1], 3, KT_D(3, 5, 4), i) : x;
            }
            if (y.v) { kt_expect_shape("PRelu", &y, dts[d], 3, KT_D(3, 5, 4)); kt_expect("PRelu", &y, ref, 60); }
            kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
        }
}

/* ---- variadic, Where, Clip, Cast, Identity, Dropout ------------------------------------------ */

static void test_variadic(void) {
    static const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_F64, KILN_I64, KILN_I32};
    for (int o = 0; o < 4; o++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (int n_in = 1; n_in <= 4; n_in++) {
                kiln_dtype dt = dts[d];
                if (o == 1 && kn_dtype_is_int(dt)) continue; /* Mean: floats */
                const int64_t shapes[4][3] = {{2, 3, 4}, {3, 1}, {4}, {2, 1, 1}};
                const int ranks[4] = {3, 2, 1, 3};
                kt_t in[4], y = {0};
                for (int k = 0; k < n_in; k++) in[k] = kt_rnd(dt, ranks[k], shapes[k], -50, 50);
                KT_OK(kt_run(ops[o], "var", n_in, in, 0, NULL, 1, &y));
                int64_t dims[KILN_MAX_RANK];
                int r = kt_bshape(n_in, in, dims);
                int64_t n = kn_numel(r, dims);
                double *ref = malloc((size_t)n * sizeof(double));
                for (int64_t i = 0; i < n; i++) {
                    double v = kt_at(&in[0], r, dims, i);
                    for (int k = 1; k < n_in; k++) {
                        double w = kt_at(&in[k], r, dims, i);
                        v = o <= 1 ? v + w : o == 2 ? fmin(v, w) : fmax(v, w);
                    }
                    ref[i] = o == 1 ? v / n_in : v;
                }
                char what[64];
                snprintf(what, sizeof what, "%s of %d %s", ops[o], n_in, kiln_dtype_name(dt));
                if (y.v) { kt_expect_shape(what, &y, dt, r, dims); kt_expect(what, &y, ref, n); }
                free(ref);
                for (int k = 0; k < n_in; k++) kt_free(&in[k]);
                kt_free(&y);
            }
}

static void test_where(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_I64, KILN_I8, KILN_BOOL, KILN_F64};
    static const struct { int r[3]; int64_t d[3][3]; } shapes[] = {
        {{2, 2, 2}, {{3, 4}, {3, 4}, {3, 4}}},
        {{3, 2, 0}, {{2, 1, 4}, {3, 1}, {0}}},
        {{1, 2, 3}, {{4}, {3, 1}, {2, 1, 1}}},
    };
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t s = 0; s < 3; s++) {
            kt_t in[3] = {kt_rnd(KILN_BOOL, shapes[s].r[0], shapes[s].d[0], 0, 1),
                          kt_rnd(dts[d], shapes[s].r[1], shapes[s].d[1], -9, 9),
                          kt_rnd(dts[d], shapes[s].r[2], shapes[s].d[2], -9, 9)}, y = {0};
            KT_OK(kt_run("Where", "where", 3, in, 0, NULL, 1, &y));
            int64_t dims[KILN_MAX_RANK];
            int r = kt_bshape(3, in, dims);
            int64_t n = kn_numel(r, dims);
            double *ref = malloc((size_t)n * sizeof(double));
            for (int64_t i = 0; i < n; i++)
                ref[i] = kt_at(&in[0], r, dims, i) ? kt_at(&in[1], r, dims, i) : kt_at(&in[2], r, dims, i);
            if (y.v) { kt_expect_shape("Where", &y, dts[d], r, dims); kt_expect("Where", &y, ref, n); }
            free(ref); kt_free(&in[0]); kt_free(&in[1]); kt_free(&in[2]); kt_free(&y);
        }
}

static void test_clip_inputs(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_I64, KILN_I32, KILN_U8};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (int form = 0; form < 4; form++) { /* both, min only, max only, min > max */
            kiln_dtype dt = dts[d];
            double lo = form == 3 ? 8 : 3, hi = form == 3 ? 2 : 7;
            kt_t in[3] = {kt_rnd(dt, 2, KT_D(5, 6), 0, 10), kt_scalar(dt, lo), kt_make(dt, 1, KT_D(1))}, y = {0};
            in[2].v[0] = hi; /* a 1-element 1-D tensor is taken as a scalar too */
            if (form == 1) in[2].dt = KILN_DTYPE_INVALID;
            if (form == 2) in[1].dt = KILN_DTYPE_INVALID;
            KT_OK(kt_run("Clip", "clip", 3, in, 0, NULL, 1, &y));
            double ref[30];
            for (int i = 0; i < 30; i++) {
                double v = in[0].v[i];
                if (form != 2 && v < lo) v = lo;
                if (form != 1 && v > hi) v = hi;
                ref[i] = v;
            }
            if (y.v) kt_expect("Clip", &y, ref, 30);
            in[1].dt = in[2].dt = dt;
            kt_free(&in[0]); kt_free(&in[1]); kt_free(&in[2]); kt_free(&y);
        }
    /* only X: no clipping */
    kt_t x = kt_rnd(KILN_F32, 1, KT_D(8), -1e6, 1e6), y = {0};
    KT_OK(kt_run("Clip", "clip", 1, &x, 0, NULL, 1, &y));
    if (y.v) kt_expect("Clip without bounds", &y, x.v, 8);
    kt_free(&x); kt_free(&y);
}

static void test_cast(void) {
    static const struct { int code; kiln_dtype dt; } codes[] = {
        {1, KILN_F32}, {2, KILN_U8}, {3, KILN_I8}, {6, KILN_I32}, {7, KILN_I64},
        {9, KILN_BOOL}, {10, KILN_F16}, {11, KILN_F64}, {16, KILN_BF16},
    };
    for (size_t s = 0; s < 9; s++)
        for (size_t d = 0; d < 9; d++) {
            kiln_dtype st = codes[s].dt, dt = codes[d].dt;
            kt_t x = kt_rnd(st, 2, KT_D(3, 7), st == KILN_U8 ? 0 : -100, 100), y = {0};
            x.v[0] = 0;
            if (kn_dtype_is_float(st)) { x.v[1] = kt_round(st, -2.75); x.v[2] = kt_round(st, 2.75); }
            kiln_attr to = kiln_attr_int("to", codes[d].code);
            KT_OK(kt_run("Cast", "cast", 1, &x, 1, &to, 1, &y));
            double ref[21];
            for (int i = 0; i < 21; i++) {
                double v = x.v[i];
                if (dt == KILN_BOOL) v = v != 0;
                else if (kn_dtype_is_int(dt) && kn_dtype_is_float(st)) { /* toward zero, saturating */
                    v = trunc(v);
                    if (dt == KILN_U8) v = v < 0 ? 0 : v > 255 ? 255 : v;
                    if (dt == KILN_I8) v = v < -128 ? -128 : v > 127 ? 127 : v;
                } else if (kn_dtype_is_int(dt)) v = kt_wrap(dt, v); /* int to int: wraps */
                else v = kt_round(dt, v);
                ref[i] = v;
            }
            char what[64];
            snprintf(what, sizeof what, "Cast %s -> %s", kiln_dtype_name(st), kiln_dtype_name(dt));
            if (y.v) { kt_expect_shape(what, &y, dt, 2, KT_D(3, 7)); kt_expect(what, &y, ref, 21); }
            kt_free(&x); kt_free(&y);
        }
    /* float to int: NaN is 0, huge saturates for i32/i64 (no undefined behaviour) */
    kt_t x = kt_make(KILN_F32, 1, KT_D(3)), y = {0};
    x.v[0] = NAN; x.v[1] = 1e30; x.v[2] = -1e30;
    kiln_attr to = kiln_attr_int("to", 6);
    KT_OK(kt_run("Cast", "cast", 1, &x, 1, &to, 1, &y));
    KT_CHECK(y.v && y.v[0] == 0 && y.v[1] == INT32_MAX && y.v[2] == INT32_MIN, "Cast f32 -> i32 saturates");
    kt_free(&x); kt_free(&y);
}

static void test_identity_dropout(void) {
    kt_t x = kt_rnd(KILN_F16, 3, KT_D(2, 3, 5), -5, 5), y[2] = {{0}};
    KT_OK(kt_run("Identity", "id", 1, &x, 0, NULL, 1, y));
    if (y[0].v) kt_expect("Identity", &y[0], x.v, 30);
    kt_free(&y[0]);
    kt_t ins[3] = {x, kt_scalar(KILN_F32, 0.5), kt_scalar(KILN_BOOL, 0)};
    KT_OK(kt_run("Dropout", "drop", 3, ins, 0, NULL, 2, y));
    double ones[30];
    for (int i = 0; i < 30; i++) ones[i] = 1;
    if (y[0].v && y[1].v) {
        kt_expect("Dropout output", &y[0], x.v, 30);
        kt_expect_shape("Dropout mask", &y[1], KILN_BOOL, 3, KT_D(2, 3, 5));
        kt_expect("Dropout mask", &y[1], ones, 30);
    }
    kt_free(&y[0]); kt_free(&y[1]);
    ins[2].v[0] = 1;
    KT_FAILS(kt_run("Dropout", "drop_train", 3, ins, 0, NULL, 2, y), KILN_ERR_UNSUPPORTED, "drop_train");
    ins[1].v[0] = 0; /* training with ratio 0 is the identity too */
    KT_OK(kt_run("Dropout", "drop_train0", 3, ins, 0, NULL, 2, y));
    if (y[0].v && y[1].v) { kt_expect("Dropout ratio 0", &y[0], x.v, 30); kt_expect("Dropout ratio 0 mask", &y[1], ones, 30); }
    kt_free(&y[0]); kt_free(&y[1]);
    ins[2].no_host = 1; /* not known before the run: refused, it could mean training */
    KT_FAILS(kt_run("Dropout", "drop_unknown", 3, ins, 0, NULL, 1, y), KILN_ERR_UNSUPPORTED, "must be known before the run");
    kt_free(&y[0]);
    kt_free(&x); kt_free(&ins[1]); kt_free(&ins[2]);
}

/* A fused epilogue (kiln.act) on a binary op, as the passes may leave it. */
static void test_fused_act(void) {
    kt_t in[2] = {kt_rnd(KILN_F32, 2, KT_D(4, 5), -3, 3), kt_rnd(KILN_F32, 1, KT_D(5), -3, 3)}, y = {0};
    kiln_attr act = kiln_attr_int("kiln.act", KN_ACT_RELU);
    KT_OK(kt_run("Add", "add_relu", 2, in, 1, &act, 1, &y));
    double ref[20];
    for (int i = 0; i < 20; i++) { double v = in[0].v[i] + in[1].v[i % 5]; ref[i] = v > 0 ? v : 0; }
    if (y.v) kt_expect("Add + fused Relu", &y, ref, 20);
    kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
}

/* ---- Mod ---------------------------------------------------------------------------------------- */

/* The reference: remainders from the quotient's truncation (fmod = 1) or floor (fmod = 0) in
 * float64, nudged back into the remainder's range when the division rounded across an integer;
 * integer x mod 0 is 0 (kiln's choice). */
static double kt_mod_ref(int fmod_c, int integer, double a, double b) {
    if (integer && b == 0) return 0;
    double q = a / b, r = a - b * (fmod_c ? trunc(q) : floor(q));
    double sign = fmod_c ? a : b; /* a nonzero result takes this operand's sign */
    if (r != 0 && (r < 0) != (sign < 0)) r += (r < 0) == (b < 0) ? -b : b;
    if (fabs(r) >= fabs(b) && b != 0) r -= (r < 0) == (b < 0) ? b : -b;
    return r;
}

static void test_mod(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_F16, KILN_BF16, KILN_F64, KILN_I64, KILN_I32, KILN_I8, KILN_U8};
    for (int fm = 0; fm <= 1; fm++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            for (size_t s = 0; s < sizeof kt_bshapes / sizeof kt_bshapes[0]; s++) {
                kiln_dtype dt = dts[d];
                int integer = kn_dtype_is_int(dt);
                if (!integer && fm == 0) continue; /* refused: see test_mod_edges */
                double lo = integer ? (dt == KILN_U8 ? 0 : -100) : -30, hi = integer ? 100 : 30;
                kt_t in[2] = {kt_rnd(dt, kt_bshapes[s].ra, kt_bshapes[s].a, lo, hi),
                              kt_rnd(dt, kt_bshapes[s].rb, kt_bshapes[s].b, integer ? lo / 5 : -7, integer ? hi / 5 : 7)};
                for (int64_t i = 0; i < kt_n(&in[1]); i++) {
                    if (!integer && fabs(in[1].v[i]) < 0.25) in[1].v[i] = kt_round(dt, in[1].v[i] < 0 ? -1.375 : 0.625);
                    if (integer && i % 7 == 3) in[1].v[i] = 0; /* x mod 0 = 0 */
                }
                kt_t y = {0};
                char what[96];
                snprintf(what, sizeof what, "Mod fmod=%d %s shapes #%zu", fm, kiln_dtype_name(dt), s);
                kiln_attr at = kiln_attr_int("fmod", fm);
                KT_OK(kt_run("Mod", "mod", 2, in, 1, &at, 1, &y));
                int64_t dims[KILN_MAX_RANK];
                int r = kt_bshape(2, in, dims);
                if (y.v) {
                    kt_expect_shape(what, &y, dt, r, dims);
                    int64_t n = kn_numel(r, dims);
                    double *ref = malloc((size_t)(n + 1) * sizeof(double));
                    for (int64_t i = 0; i < n; i++)
                        ref[i] = kt_round(dt, kt_mod_ref(fm, integer, kt_at(&in[0], r, dims, i), kt_at(&in[1], r, dims, i)));
                    kt_expect(what, &y, ref, n);
                    free(ref);
                }
                kt_free(&in[0]); kt_free(&in[1]); kt_free(&y);
            }
}

/* Mixed signs (ONNX's example), zero and -1 divisors at the ends of the integer range, float
 * specials, and the refusals. */
static void test_mod_edges(void) {
    static const double x[6] = {-4, 7, 5, 4, -7, 8}, yv[6] = {2, -3, 8, -2, 3, 5};
    static const double want[2][6] = {{0, -2, 5, 0, 2, 3}, {-0.0, 1, 5, 0, -1, 3}};
    static const kiln_dtype dts[] = {KILN_I64, KILN_I32, KILN_I8};
    kt_t y = {0};
    for (int fm = 0; fm <= 1; fm++)
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
            kt_t in[2] = {kt_make(dts[d], 1, KT_D(6)), kt_make(dts[d], 1, KT_D(6))};
            memcpy(in[0].v, x, sizeof x); memcpy(in[1].v, yv, sizeof yv);
            kiln_attr at = kiln_attr_int("fmod", fm);
            KT_OK(kt_run("Mod", "mixed", 2, in, 1, &at, 1, &y));
            char what[64];
            snprintf(what, sizeof what, "Mod mixed signs fmod=%d %s", fm, kiln_dtype_name(dts[d]));
            if (y.v) kt_expect(what, &y, want[fm], 6);
            kt_free(&y); kt_free(&in[0]); kt_free(&in[1]);
        }
    /* f32 fmod = 1: the dividend's sign, NaN for a zero divisor or an infinite dividend */
    kt_t f[2] = {kt_make(KILN_F32, 1, KT_D(6)), kt_make(KILN_F32, 1, KT_D(6))};
    double fa[6] = {-4.5, 7.25, -0.0, 5, INFINITY, 3}, fb[6] = {2, -3, 2, 0, 2, INFINITY};
    memcpy(f[0].v, fa, sizeof fa); memcpy(f[1].v, fb, sizeof fb);
    kiln_attr one = kiln_attr_int("fmod", 1), zero = kiln_attr_int("fmod", 0), two = kiln_attr_int("fmod", 2);
    KT_OK(kt_run("Mod", "fmod_f32", 2, f, 1, &one, 1, &y));
    double fw[6] = {-0.5, 1.25, -0.0, NAN, NAN, 3};
    if (y.v) {
        kt_expect("Mod f32 fmod=1 specials", &y, fw, 6);
        KT_CHECK(signbit(y.v[2]), "fmod(-0, 2) is -0");
    }
    kt_free(&y);
    /* the ends of the integer ranges through the CPU kernel directly (exact in i64) */
    kn_tensor ti[2] = {{0}}, to = {0};
    int64_t a0[4] = {INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN}, b0[4] = {-1, 0, INT64_MIN, 3}, r0[4] = {9, 9, 9, 9};
    ti[0] = (kn_tensor){.data = a0, .host = a0, .dtype = KILN_I64, .rank = 1, .dims = {4}};
    ti[1] = (kn_tensor){.data = b0, .host = b0, .dtype = KILN_I64, .rank = 1, .dims = {4}};
    to = (kn_tensor){.data = r0, .dtype = KILN_I64, .rank = 1, .dims = {4}};
    kn_attr zattr = {.name = (char *)"fmod", .type = KILN_ATTR_INT, .i = 0};
    kn_node n = {.name = "ends", .op = KN_OP_Mod, .n_in = 2, .n_out = 1, .n_attrs = 1, .attrs = &zattr};
    KT_OK(kn_cpu_eval_node(&n, ti, 2, &to, 1));
    /* Python: MIN % -1 = 0, MIN % 0 -> 0 (ours), MAX % MIN = MAX + MIN = -1, MIN % 3 = 1 */
    KT_CHECK(r0[0] == 0 && r0[1] == 0 && r0[2] == -1 && r0[3] == 1, "i64 Mod fmod=0 at the ends: %lld %lld %lld %lld",
             (long long)r0[0], (long long)r0[1], (long long)r0[2], (long long)r0[3]);
    zattr.i = 1;
    KT_OK(kn_cpu_eval_node(&n, ti, 2, &to, 1));
    /* C: MIN % -1 = 0, MIN % 0 -> 0 (ours), MAX % MIN = MAX, MIN % 3 = -2 */
    KT_CHECK(r0[0] == 0 && r0[1] == 0 && r0[2] == INT64_MAX && r0[3] == -2, "i64 Mod fmod=1 at the ends: %lld %lld %lld %lld",
             (long long)r0[0], (long long)r0[1], (long long)r0[2], (long long)r0[3]);
    /* u8: values above 127 stay unsigned */
    kt_t u[2] = {kt_scalar(KILN_U8, 250), kt_scalar(KILN_U8, 7)};
    KT_OK(kt_run("Mod", "u8", 2, u, 1, &zero, 1, &y));
    KT_CHECK(y.v && y.v[0] == 5, "u8 250 mod 7 = 5, got %g", y.v ? y.v[0] : -1);
    kt_free(&y); kt_free(&u[0]); kt_free(&u[1]);
    /* refusals name the node */
    KT_FAILS(kt_run("Mod", "float_intmod", 2, f, 1, &zero, 1, &y), KILN_ERR_INVALID_ARGUMENT, "Mod 'float_intmod'");
    KT_FAILS(kt_run("Mod", "float_intmod", 2, f, 0, NULL, 1, &y), KILN_ERR_INVALID_ARGUMENT, "fmod = 1");
    KT_FAILS(kt_run("Mod", "mod_two", 2, f, 1, &two, 1, &y), KILN_ERR_INVALID_ARGUMENT, "Mod 'mod_two': attribute 'fmod'");
    kt_t mixed[2] = {f[0], kt_make(KILN_I64, 1, KT_D(6))};
    KT_FAILS(kt_run("Mod", "mod_mixed", 2, mixed, 1, &one, 1, &y), KILN_ERR_DTYPE, "Mod 'mod_mixed'");
    kt_t nb[2] = {kt_rnd(KILN_I32, 2, KT_D(3, 4), -9, 9), kt_rnd(KILN_I32, 1, KT_D(5), 1, 9)};
    KT_FAILS(kt_run("Mod", "mod_bcast", 2, nb, 0, NULL, 1, &y), KILN_ERR_SHAPE, "Mod 'mod_bcast'");
    kt_free(&f[0]); kt_free(&f[1]); kt_free(&mixed[1]); kt_free(&nb[0]); kt_free(&nb[1]);
}

/* Shape arithmetic with Mod is evaluated on the host at shape time, like Add and Div. */
static void test_mod_host(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 3, KT_D(-1, 6, 4), (const char *[]){"batch", NULL, NULL}));
    int64_t k[3] = {-4, 4, 5};
    KT_OK(kiln_graph_add_initializer(g, "k", KILN_I64, 1, KT_D(3), k));
    KT_OK(kiln_graph_add_node(g, "Shape", "shape", 1, (const char *[]){"x"}, 1, (const char *[]){"s"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Mod", "m", 2, (const char *[]){"s", "k"}, 1, (const char *[]){"m"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Mod", "mf", 2, (const char *[]){"s", "k"}, 1, (const char *[]){"mf"}, 1,
                              (const kiln_attr[]){kiln_attr_int("fmod", 1)}));
    KT_OK(kiln_graph_add_output(g, "m"));
    KT_OK(kiln_graph_add_output(g, "mf"));
    int *order = NULL, n_order = 0;
    KT_OK(kn_graph_topo_order(&g->g, &order, &n_order));
    int64_t dims[1][KILN_MAX_RANK] = {{7, 6, 4}};
    kn_shapes s;
    KT_OK(kn_shapes_infer(&g->g, order, n_order, (const int64_t(*)[KILN_MAX_RANK])dims, &s));
    const int64_t *m = s.vals[kn_graph_find_value(&g->g, "m")].host, *mf = s.vals[kn_graph_find_value(&g->g, "mf")].host;
    /* [7, 6, 4] mod [-4, 4, 5]: Python's % gives [-1, 2, 4], C's gives [3, 2, 4] */
    KT_CHECK(m && m[0] == -1 && m[1] == 2 && m[2] == 4, "host Mod fmod=0 [7,6,4] %% [-4,4,5] = [-1,2,4]");
    KT_CHECK(mf && mf[0] == 3 && mf[1] == 2 && mf[2] == 4, "host Mod fmod=1 [7,6,4] fmod [-4,4,5] = [3,2,4]");
    kn_shapes_free(&s);
    kn_free(order);
    kiln_graph_free(g);
}

/* ---- errors name the node and the input ------------------------------------------------------- */

static void test_errors(void) {
    kt_t y[2] = {{0}};
    kt_t ab[2] = {kt_rnd(KILN_F32, 2, KT_D(3, 4), -1, 1), kt_rnd(KILN_I64, 2, KT_D(3, 4), -1, 1)};
    KT_FAILS(kt_run("Add", "mixed_add", 2, ab, 0, NULL, 1, y), KILN_ERR_DTYPE, "Add 'mixed_add'");
    KT_FAILS(kt_run("Add", "mixed_add", 2, ab, 0, NULL, 1, y), KILN_ERR_DTYPE, "in1");
    KT_FAILS(kt_run("Where", "bad_where", 3, (kt_t[]){ab[0], ab[0], ab[0]}, 0, NULL, 1, y), KILN_ERR_DTYPE, "Where 'bad_where': input 0 'in0'");
    KT_FAILS(kt_run("Sigmoid", "int_sigmoid", 1, &ab[1], 0, NULL, 1, y), KILN_ERR_DTYPE, "int_sigmoid");
    KT_FAILS(kt_run("Not", "float_not", 1, &ab[0], 0, NULL, 1, y), KILN_ERR_DTYPE, "expected one of bool");
    kt_t bb[2] = {kt_scalar(KILN_BOOL, 1), kt_scalar(KILN_BOOL, 0)};
    KT_FAILS(kt_run("Less", "bool_less", 2, bb, 0, NULL, 1, y), KILN_ERR_DTYPE, "bool_less");
    kt_free(&bb[0]); kt_free(&bb[1]);
    kt_t nb[2] = {kt_rnd(KILN_F32, 2, KT_D(3, 4), -1, 1), kt_rnd(KILN_F32, 1, KT_D(5), -1, 1)};
    KT_FAILS(kt_run("Mul", "no_bcast", 2, nb, 0, NULL, 1, y), KILN_ERR_SHAPE, "Mul 'no_bcast'");
    KT_FAILS(kt_run("Sum", "no_bcast_sum", 2, nb, 0, NULL, 1, y), KILN_ERR_SHAPE, "no_bcast_sum");
    kt_t pr[2] = {kt_rnd(KILN_F32, 1, KT_D(4), -1, 1), kt_rnd(KILN_F32, 2, KT_D(3, 4), -1, 1)};
    KT_FAILS(kt_run("PRelu", "prelu_bidir", 2, pr, 0, NULL, 1, y), KILN_ERR_SHAPE, "does not broadcast to X");
    kiln_attr bad = kiln_attr_string("approximate", "fast");
    KT_FAILS(kt_run("Gelu", "gelu_fast", 1, ab, 1, &bad, 1, y), KILN_ERR_INVALID_ARGUMENT, "Gelu 'gelu_fast'");
    kiln_attr to_str = kiln_attr_int("to", 8);
    KT_FAILS(kt_run("Cast", "cast_str", 1, ab, 1, &to_str, 1, y), KILN_ERR_UNSUPPORTED, "cast_str");
    KT_FAILS(kt_run("Cast", "cast_no_to", 1, ab, 0, NULL, 1, y), KILN_ERR_INVALID_ARGUMENT, "'to'");
    kt_t cl[3] = {ab[0], kt_rnd(KILN_F32, 1, KT_D(2), -1, 1), {0}};
    KT_FAILS(kt_run("Clip", "clip_vec", 2, cl, 0, NULL, 1, y), KILN_ERR_SHAPE, "must be a scalar");
    kt_t cm[2] = {ab[0], kt_scalar(KILN_F64, 1)};
    KT_FAILS(kt_run("Clip", "clip_f64", 2, cm, 0, NULL, 1, y), KILN_ERR_DTYPE, "clip_f64");
    kt_free(&ab[0]); kt_free(&ab[1]); kt_free(&nb[0]); kt_free(&nb[1]);
    kt_free(&pr[0]); kt_free(&pr[1]); kt_free(&cl[1]); kt_free(&cm[1]);
}

/* ---- through the public builder API, and shape arithmetic on the host ----------------------- */

static void test_builder(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 3, KT_D(-1, 3, 4), (const char *[]){"batch", NULL, NULL}));
    KT_OK(kiln_graph_add_input(g, "b", KILN_F32, 1, KT_D(4), NULL));
    KT_OK(kiln_graph_add_node(g, "Add", "add", 2, (const char *[]){"x", "b"}, 1, (const char *[]){"s"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Gelu", "gelu", 1, (const char *[]){"s"}, 1, (const char *[]){"y"}, 0, NULL));
    KT_FAILS(kiln_graph_add_node(g, "Gelu", "gelu_bad", 1, (const char *[]){"s"}, 1, (const char *[]){"z"}, 1,
                                 (const kiln_attr[]){kiln_attr_string("approximate", "erf")}),
             KILN_ERR_INVALID_ARGUMENT, "gelu_bad");
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_OK(kiln_graph_verify(g));
    const kn_value *y = &g->g.values[kn_graph_find_value(&g->g, "y")];
    KT_CHECK(y->dtype == KILN_F32 && y->rank == 3 && y->dims[0].sym >= 0 && y->dims[1].v == 3 && y->dims[2].v == 4,
             "Add+Gelu infers f32 [batch,3,4]");
    kiln_graph_free(g);

    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, KT_D(3, 4), NULL));
    KT_OK(kiln_graph_add_input(g, "b", KILN_F32, 1, KT_D(5), NULL));
    KT_OK(kiln_graph_add_node(g, "Sub", "sub_mismatch", 2, (const char *[]){"x", "b"}, 1, (const char *[]){"y"}, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_FAILS(kiln_graph_verify(g), KILN_ERR_SHAPE, "Sub 'sub_mismatch'");
    kiln_graph_free(g);

    /* host evaluation: integer shape arithmetic is exact in i64 (beyond 2^53) */
    KT_OK(kiln_graph_create(&g));
    int64_t a[2] = {((int64_t)1 << 60) + 1, 6}, two = 2, three[2] = {3, 3};
    KT_OK(kiln_graph_add_initializer(g, "a", KILN_I64, 1, KT_D(2), a));
    KT_OK(kiln_graph_add_initializer(g, "two", KILN_I64, 0, NULL, &two));
    KT_OK(kiln_graph_add_initializer(g, "three", KILN_I64, 1, KT_D(2), three));
    KT_OK(kiln_graph_add_node(g, "Mul", "m", 2, (const char *[]){"a", "two"}, 1, (const char *[]){"am"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Div", "d", 2, (const char *[]){"am", "three"}, 1, (const char *[]){"ad"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Greater", "gt", 2, (const char *[]){"ad", "three"}, 1, (const char *[]){"big"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Where", "w", 3, (const char *[]){"big", "ad", "three"}, 1, (const char *[]){"w"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Cast", "c", 1, (const char *[]){"w"}, 1, (const char *[]){"wc"}, 1,
                              (const kiln_attr[]){kiln_attr_int("to", 6)}));
    KT_OK(kiln_graph_add_node(g, "Neg", "n", 1, (const char *[]){"ad"}, 1, (const char *[]){"nd"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Max", "mx", 2, (const char *[]){"nd", "three"}, 1, (const char *[]){"mx"}, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "wc"));
    KT_OK(kiln_graph_add_output(g, "mx"));
    int *order = NULL, n_order = 0;
    KT_OK(kn_graph_topo_order(&g->g, &order, &n_order));
    kn_shapes s;
    KT_OK(kn_shapes_infer(&g->g, order, n_order, NULL, &s));
    const kn_tensor *ad = &s.vals[kn_graph_find_value(&g->g, "ad")];
    const kn_tensor *wc = &s.vals[kn_graph_find_value(&g->g, "wc")];
    const kn_tensor *mx = &s.vals[kn_graph_find_value(&g->g, "mx")];
    KT_CHECK(ad->host && ((const int64_t *)ad->host)[0] == (((int64_t)1 << 61) + 2) / 3 && ((const int64_t *)ad->host)[1] == 4,
             "host Mul/Div exact");
    KT_CHECK(wc->host && wc->dtype == KILN_I32 && ((const int32_t *)wc->host)[0] == (int32_t)((((int64_t)1 << 61) + 2) / 3) &&
                 ((const int32_t *)wc->host)[1] == 4, "host Greater/Where/Cast");
    KT_CHECK(mx->host && ((const int64_t *)mx->host)[0] == 3 && ((const int64_t *)mx->host)[1] == 3, "host Neg/Max");
    kn_shapes_free(&s);
    kn_free(order);
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(1);
    test_unary_float();
    test_unary_special();
    test_unary_int();
    test_binary();
    test_binary_int_edges();
    test_min_max_nan();
    test_mod();
    test_mod_edges();
    test_mod_host();
    test_bool_binary();
    test_prelu();
    test_variadic();
    test_where();
    test_clip_inputs();
    test_cast();
    test_identity_dropout();
    test_fused_act();
    test_errors();
    test_builder();
    return kt_finish();
}
