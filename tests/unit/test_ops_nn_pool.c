/* MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool against direct float64 loops
 * written here: strides, pads, dilations, ceil_mode, auto_pad, count_include_pad, Indices,
 * 1-D/3-D, f32/f16/u8; and the error paths. */
#include "nn_testutil.h"

typedef struct pool_cfg {
    const char *label;
    int is_max;
    kiln_dtype dt;
    int nsp;
    int64_t N, C;
    int64_t in[3], k[3], s[3], d[3], pads[6];
    const char *auto_pad;
    int ceil_mode, include_pad, indices, col_major;
} pool_cfg;

static void unravel(int64_t i, int n, const int64_t *dims, int64_t *c) {
    for (int d = n - 1; d >= 0; d--) {
        c[d] = i % dims[d];
        i /= dims[d];
    }
}

static int64_t prod(int n, const int64_t *d) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= d[i];
    return p;
}

static void pool_geom(const pool_cfg *c, int64_t *out, int64_t *pb, int64_t *pe) {
    for (int i = 0; i < c->nsp; i++) {
        int64_t ek = (c->k[i] - 1) * c->d[i] + 1;
        if (c->auto_pad && !strncmp(c->auto_pad, "SAME", 4)) {
            out[i] = (c->in[i] + c->s[i] - 1) / c->s[i];
            int64_t total = (out[i] - 1) * c->s[i] + ek - c->in[i];
            if (total < 0) total = 0;
            pb[i] = !strcmp(c->auto_pad, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
            pe[i] = total - pb[i];
            continue;
        }
        pb[i] = c->auto_pad ? 0 : c->pads[i];
        pe[i] = c->auto_pad ? 0 : c->pads[i + c->nsp];
        int64_t span = c->in[i] + pb[i] + pe[i] - ek;
        if (!c->ceil_mode) {
            out[i] = span / c->s[i] + 1;
        } else {
            out[i] = (span + c->s[i] - 1) / c->s[i] + 1;
            if ((out[i] - 1) * c->s[i] >= c->in[i] + pb[i]) out[i]--; /* window must start before the end pad */
        }
    }
}

/* Reference pool; idx (when not NULL) gets the flat index of each max. */
static void ref_pool(const pool_cfg *c, const int64_t *out, const int64_t *pb, const int64_t *pe, const double *x,
                     double *y, double *idx) {
    int ns = c->nsp;
    int64_t isp = prod(ns, c->in), osp = prod(ns, out), K = prod(ns, c->k);
    for (int64_t nc = 0; nc < c->N * c->C; nc++)
        for (int64_t o = 0; o < osp; o++) {
            int64_t oc[3], kc[3];
            unravel(o, ns, out, oc);
            double best = -INFINITY, sum = 0, best_i = -1;
            int64_t valid = 0, padded = 0;
            for (int64_t kk = 0; kk < K; kk++) {
                unravel(kk, ns, c->k, kc);
                int64_t z[3], in_x = 1, in_pad = 1;
                for (int i = 0; i < ns; i++) {
                    z[i] = oc[i] * c->s[i] - pb[i] + kc[i] * c->d[i];
                    in_x &= z[i] >= 0 && z[i] < c->in[i];
                    in_pad &= z[i] >= -pb[i] && z[i] < c->in[i] + pe[i];
                }
                padded += in_pad;
                if (!in_x) continue;
                int64_t lin = 0, lin_cm = 0;
                for (int i = 0; i < ns; i++) lin = lin * c->in[i] + z[i];
                for (int i = ns - 1; i >= 0; i--) lin_cm = lin_cm * c->in[i] + z[i];
                double v = x[nc * isp + lin];
                valid++;
                sum += v;
                if (v > best) {
                    best = v;
                    best_i = (double)(nc * isp + (c->col_major ? lin_cm : lin));
                }
            }
            y[nc * osp + o] = c->is_max ? best : sum / (double)(c->include_pad ? padded : valid);
            if (idx) idx[nc * osp + o] = best_i;
        }
}

static void run_pool_case(const pool_cfg *c) {
    int ns = c->nsp;
    int64_t xd[5] = {c->N, c->C}, out[3], pb[3], pe[3];
    for (int i = 0; i < ns; i++) xd[2 + i] = c->in[i];
    pool_geom(c, out, pb, pe);
    int64_t yd[5] = {c->N, c->C};
    for (int i = 0; i < ns; i++) yd[2 + i] = out[i];
    kt_t x = c->dt == KILN_U8 ? kt_rand(c->dt, 2 + ns, xd, 0, 255) : kt_rand(c->dt, 2 + ns, xd, -1, 1), y[2];
    kiln_attr at[10];
    int64_t pads[6];
    int na = 0;
    at[na++] = kiln_attr_ints("kernel_shape", ns, c->k);
    at[na++] = kiln_attr_ints("strides", ns, c->s);
    at[na++] = kiln_attr_ints("dilations", ns, c->d);
    if (c->auto_pad) {
        at[na++] = kiln_attr_string("auto_pad", c->auto_pad);
    } else {
        memcpy(pads, c->pads, sizeof pads);
        at[na++] = kiln_attr_ints("pads", 2 * ns, pads);
    }
    at[na++] = kiln_attr_int("ceil_mode", c->ceil_mode);
    if (!c->is_max) at[na++] = kiln_attr_int("count_include_pad", c->include_pad);
    if (c->col_major) at[na++] = kiln_attr_int("storage_order", 1);
    kiln_status st = kt_run_op(c->is_max ? KN_OP_MaxPool : KN_OP_AveragePool, c->label, 1, &x, c->indices ? 2 : 1,
                               y, na, at);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y[0], 2 + ns, yd) && y[0].t.dtype == c->dt, "%s: output dims/dtype", c->label);
        int64_t n = prod(2 + ns, yd);
        double *ref = calloc((size_t)n, sizeof *ref), *ridx = calloc((size_t)n, sizeof *ridx);
        ref_pool(c, out, pb, pe, x.v, ref, ridx);
        double r = kt_ratio(y[0].v, ref, n, kt_rtol(c->dt), kt_atol(c->dt));
        KT_CHECK(r <= 1, "%s: off by %.3g tolerances", c->label, r);
        if (c->indices) {
            KT_CHECK(y[1].t.dtype == KILN_I64 && kt_dims_are(&y[1], 2 + ns, yd), "%s: Indices dims/dtype", c->label);
            int same = 1;
            for (int64_t i = 0; i < n; i++) same &= y[1].v[i] == ridx[i];
            KT_CHECK(same, "%s: Indices differ", c->label);
        }
        free(ref);
        free(ridx);
    }
    kt_free(&x);
    for (int o = 0; o < (c->indices ? 2 : 1); o++) kt_free(&y[o]);
}

static const pool_cfg pool_cases[] = {
    {"max_k2s2", 1, KILN_F32, 2, 2, 3, {8, 8}, {2, 2}, {2, 2}, {1, 1}, {0}},
    {"max_k3s1_pad1", 1, KILN_F32, 2, 1, 4, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}},
    {"max_dil2_asym", 1, KILN_F32, 2, 1, 2, {11, 10}, {3, 2}, {2, 1}, {2, 3}, {0, 1, 2, 1}},
    {"max_ceil", 1, KILN_F32, 2, 1, 2, {8, 9}, {3, 3}, {2, 2}, {1, 1}, {0}, NULL, 1},
    {"max_ceil_pads", 1, KILN_F32, 2, 1, 2, {6, 7}, {3, 3}, {3, 3}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"max_same_upper", 1, KILN_F32, 2, 1, 3, {7, 8}, {3, 2}, {2, 2}, {1, 1}, {0}, "SAME_UPPER"},
    {"max_same_lower", 1, KILN_F32, 2, 1, 3, {7, 8}, {4, 3}, {2, 3}, {1, 1}, {0}, "SAME_LOWER"},
    {"max_valid", 1, KILN_F32, 2, 1, 3, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {0}, "VALID"},
    {"max_1d", 1, KILN_F32, 1, 2, 3, {15}, {4}, {3}, {1}, {2, 1}},
    {"max_3d", 1, KILN_F32, 3, 1, 2, {5, 6, 7}, {2, 3, 2}, {2, 1, 2}, {1, 1, 2}, {0, 1, 0, 1, 0, 1}},
    {"max_u8", 1, KILN_U8, 2, 1, 2, {6, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}},
    {"max_f16", 1, KILN_F16, 2, 2, 2, {7, 7}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}},
    {"max_indices", 1, KILN_F32, 2, 2, 3, {7, 6}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 1, 1}, NULL, 0, 0, 1},
    {"max_indices_col_major", 1, KILN_F32, 2, 2, 3, {7, 6}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 1, 1}, NULL, 0, 0, 1, 1},
    {"max_indices_3d", 1, KILN_F32, 3, 1, 2, {4, 5, 3}, {2, 2, 2}, {1, 2, 1}, {1, 1, 1}, {0}, NULL, 0, 0, 1},
    {"avg_pad_exclude", 0, KILN_F32, 2, 2, 3, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 0},
    {"avg_pad_include", 0, KILN_F32, 2, 2, 3, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 1},
    {"avg_asym_include", 0, KILN_F32, 2, 1, 2, {6, 5}, {3, 2}, {1, 2}, {1, 1}, {2, 0, 1, 1}, NULL, 0, 1},
    {"avg_ceil_exclude", 0, KILN_F32, 2, 1, 2, {8, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0},
    {"avg_ceil_include", 0, KILN_F32, 2, 1, 2, {8, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
    {"avg_dilation", 0, KILN_F32, 2, 1, 2, {9, 9}, {3, 3}, {1, 2}, {2, 2}, {2, 2, 2, 2}, NULL, 0, 0},
    {"avg_same_upper", 0, KILN_F32, 2, 1, 2, {7, 6}, {3, 3}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", 0, 0},
    {"avg_same_lower_include", 0, KILN_F32, 2, 1, 2, {7, 6}, {2, 2}, {1, 1}, {1, 1}, {0}, "SAME_LOWER", 0, 1},
    {"avg_1d", 0, KILN_F32, 1, 2, 2, {13}, {3}, {2}, {1}, {1, 1}, NULL, 0, 1},
    {"avg_3d", 0, KILN_F32, 3, 1, 2, {5, 4, 6}, {2, 2, 3}, {2, 1, 2}, {1, 1, 1}, {1, 0, 1, 0, 1, 1}, NULL, 1, 0},
    {"avg_f16", 0, KILN_F16, 2, 2, 2, {7, 7}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 0},
    {"avg_bf16", 0, KILN_BF16, 2, 1, 2, {6, 6}, {2, 2}, {2, 2}, {1, 1}, {0}, NULL, 0, 0},
};

static void test_global(kn_op op, kiln_dtype dt, int rank, const int64_t *dims) {
    kt_t x = kt_rand(dt, rank, dims, -1, 1), y;
    kiln_status st = kt_run_op(op, "gp", 1, &x, 1, &y, 0, NULL);
    KT_CHECK(st == KILN_OK, "%s: %s", kn_op_name(op), kiln_last_error());
    if (st == KILN_OK) {
        int64_t want[8] = {dims[0], dims[1], 1, 1, 1, 1, 1, 1}, nc = dims[0] * dims[1], sp = prod(rank - 2, dims + 2);
        KT_CHECK(kt_dims_are(&y, rank, want) && y.t.dtype == dt, "%s: output dims", kn_op_name(op));
        double *ref = calloc((size_t)nc, sizeof *ref);
        for (int64_t c = 0; c < nc; c++) {
            double acc = op == KN_OP_GlobalMaxPool ? -INFINITY : 0;
            for (int64_t i = 0; i < sp; i++) {
                double v = x.v[c * sp + i];
                acc = op == KN_OP_GlobalMaxPool ? (v > acc ? v : acc) : acc + v;
            }
            ref[c] = op == KN_OP_GlobalMaxPool ? acc : acc / (double)sp;
        }
        double r = kt_ratio(y.v, ref, nc, kt_rtol(dt), kt_atol(dt));
        KT_CHECK(r <= 1, "%s %s: off by %.3g tolerances", kn_op_name(op), kiln_dtype_name(dt), r);
        free(ref);
    }
    kt_free(&x);
    kt_free(&y);
}

static kiln_status pool_err(kn_op op, const char *name, kiln_dtype dt, int rank, const int64_t *dims, int na,
                            const kiln_attr *at) {
    kt_t x = kt_rand(dt, rank, dims, -1, 1), y;
    kiln_status st = kt_run_op(op, name, 1, &x, 1, &y, na, at);
    kt_free(&x);
    kt_free(&y);
    return st;
}

static void test_pool_errors(void) {
    int64_t xd[4] = {1, 2, 5, 5}, k2[2] = {2, 2}, k3[3] = {2, 2, 2}, k9[2] = {9, 2};
    KT_FAILS(pool_err(KN_OP_MaxPool, "pool1", KILN_F32, 4, xd, 0, NULL), KILN_ERR_INVALID_ARGUMENT,
             "MaxPool 'pool1': attribute 'kernel_shape' is required");
    kiln_attr at[2] = {kiln_attr_ints("kernel_shape", 3, k3)};
    KT_FAILS(pool_err(KN_OP_AveragePool, "pool2", KILN_F32, 4, xd, 1, at), KILN_ERR_SHAPE,
             "AveragePool 'pool2': attribute 'kernel_shape' has 3 values, input 'X' (1x2x5x5) has 2 spatial dims");
    at[0] = kiln_attr_ints("kernel_shape", 2, k9);
    KT_FAILS(pool_err(KN_OP_MaxPool, "pool3", KILN_F32, 4, xd, 1, at), KILN_ERR_SHAPE,
             "MaxPool 'pool3': kernel of size 9 (dilated: 9) is larger than the padded input (5 + 0 + 0) in spatial dim 0");
    at[0] = kiln_attr_ints("kernel_shape", 2, k2);
    at[1] = kiln_attr_int("ceil_mode", 2);
    KT_FAILS(pool_err(KN_OP_MaxPool, "pool4", KILN_F32, 4, xd, 2, at), KILN_ERR_INVALID_ARGUMENT,
             "MaxPool 'pool4': attribute 'ceil_mode' is 2");
    at[1] = kiln_attr_int("count_include_pad", 3);
    KT_FAILS(pool_err(KN_OP_AveragePool, "pool5", KILN_F32, 4, xd, 2, at), KILN_ERR_INVALID_ARGUMENT,
             "'count_include_pad' is 3");
    KT_FAILS(pool_err(KN_OP_AveragePool, "pool6", KILN_I32, 4, xd, 1, at), KILN_ERR_DTYPE,
             "AveragePool 'pool6': input 'X' must be a float tensor, got i32");
    int64_t zero_s[2] = {0, 1};
    at[1] = kiln_attr_ints("strides", 2, zero_s);
    KT_FAILS(pool_err(KN_OP_MaxPool, "pool7", KILN_F32, 4, xd, 2, at), KILN_ERR_INVALID_ARGUMENT,
             "MaxPool 'pool7': attribute 'strides' has 0 at 0");
    int64_t x2[2] = {1, 2};
    KT_FAILS(pool_err(KN_OP_GlobalAveragePool, "gap", KILN_F32, 2, x2, 0, NULL), KILN_ERR_SHAPE,
             "GlobalAveragePool 'gap': input 'X' has dims 1x2; expected rank >= 3");
    int64_t x6[6] = {1, 1, 2, 2, 2, 2}, k4[4] = {1, 1, 1, 1};
    at[0] = kiln_attr_ints("kernel_shape", 4, k4);
    KT_FAILS(pool_err(KN_OP_MaxPool, "pool4d", KILN_F32, 6, x6, 1, at), KILN_ERR_UNSUPPORTED,
             "MaxPool 'pool4d': input 'X' has 4 spatial dims; kiln takes 1 to 3");
}

int main(void) {
    kt_seed(99);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) run_pool_case(&pool_cases[i]);
    int64_t d4[4] = {2, 3, 5, 7}, d5[5] = {1, 4, 3, 4, 5}, d3[3] = {3, 2, 9};
    test_global(KN_OP_GlobalAveragePool, KILN_F32, 4, d4);
    test_global(KN_OP_GlobalAveragePool, KILN_F16, 5, d5);
    test_global(KN_OP_GlobalAveragePool, KILN_F64, 3, d3);
    test_global(KN_OP_GlobalMaxPool, KILN_F32, 4, d4);
    test_global(KN_OP_GlobalMaxPool, KILN_F16, 5, d5);
    test_global(KN_OP_GlobalMaxPool, KILN_F32, 3, d3);
    test_pool_errors();
    return kt_finish();
}
