/* Gemm and MatMul against float64 loops written here: Gemm's transposes, alpha/beta and every
 * broadcast form of C, the fused activation; MatMul's numpy semantics (batch broadcasting, 1-D
 * operands), kiln's fused bias + activation, f32/f16/bf16/f64/int64; and the error paths. */
#include "nn_testutil.h"

static double ref_act(int act, double x, double alpha) {
    switch (act) {
    case KN_ACT_NONE: return x;
    case KN_ACT_RELU: return x > 0 ? x : 0;
    case KN_ACT_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case KN_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KN_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case KN_ACT_SILU: return x / (1 + exp(-x));
    default: return NAN;
    }
}

typedef struct gemm_cfg {
    const char *label;
    kiln_dtype dt;
    int64_t M, K, N;
    int ta, tb;
    float alpha, beta;
    int c_rank;
    int64_t c_dims[2];
    int act;
} gemm_cfg;

static void test_gemm(const gemm_cfg *c) {
    int64_t ad[2] = {c->ta ? c->K : c->M, c->ta ? c->M : c->K}, bd[2] = {c->tb ? c->N : c->K, c->tb ? c->K : c->N};
    kt_t in[3] = {kt_rand(c->dt, 2, ad, -1, 1), kt_rand(c->dt, 2, bd, -1, 1),
                  c->c_rank >= 0 ? kt_rand(c->dt, c->c_rank, c->c_dims, -1, 1) : kt_absent()},
         y;
    kiln_attr at[5] = {kiln_attr_int("transA", c->ta), kiln_attr_int("transB", c->tb),
                       kiln_attr_float("alpha", c->alpha), kiln_attr_float("beta", c->beta),
                       kiln_attr_int("kiln.act", c->act)};
    kiln_status st = kt_run_op(KN_OP_Gemm, c->label, c->c_rank >= 0 ? 3 : 2, in, 1, &y, 5, at);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        int64_t yd[2] = {c->M, c->N};
        KT_CHECK(kt_dims_are(&y, 2, yd) && y.t.dtype == c->dt, "%s: output dims", c->label);
        double *ref = calloc((size_t)(c->M * c->N), sizeof *ref);
        for (int64_t i = 0; i < c->M; i++)
            for (int64_t j = 0; j < c->N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < c->K; k++) {
                    double a = c->ta ? in[0].v[k * c->M + i] : in[0].v[i * c->K + k];
                    double b = c->tb ? in[1].v[j * c->K + k] : in[1].v[k * c->N + j];
                    acc += a * b;
                }
                acc *= (double)c->alpha;
                if (c->c_rank >= 0) {
                    int64_t ci = 0;
                    if (c->c_rank == 1) ci = c->c_dims[0] == 1 ? 0 : j;
                    if (c->c_rank == 2) ci = (c->c_dims[0] == 1 ? 0 : i) * c->c_dims[1] + (c->c_dims[1] == 1 ? 0 : j);
                    acc += (double)c->beta * in[2].v[ci];
                }
                ref[i * c->N + j] = ref_act(c->act, acc, (double)0.01f);
            }
        double r = kt_ratio(y.v, ref, c->M * c->N, kt_rtol(c->dt), kt_atol(c->dt));
        KT_CHECK(r <= 1, "%s: off by %.3g tolerances", c->label, r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
}

static const gemm_cfg gemm_cases[] = {
    {"gemm_plain", KILN_F32, 7, 13, 5, 0, 0, 1, 1, -1},
    {"gemm_transA", KILN_F32, 6, 9, 4, 1, 0, 1, 1, 2, {6, 4}},
    {"gemm_transB_vec_bias", KILN_F32, 5, 16, 11, 0, 1, 1, 1, 1, {11}},
    {"gemm_transAB_alpha_beta", KILN_F32, 8, 7, 6, 1, 1, 0.5f, 2.0f, 2, {8, 1}},
    {"gemm_row_bias", KILN_F32, 4, 5, 6, 0, 0, 1.5f, -0.5f, 2, {1, 6}},
    {"gemm_scalar_bias", KILN_F32, 3, 4, 5, 0, 1, 1, 1, 0},
    {"gemm_one_elem_bias", KILN_F32, 3, 4, 5, 0, 0, 1, 3, 1, {1}},
    {"gemm_beta0", KILN_F32, 3, 4, 5, 0, 0, 1, 0, 2, {3, 5}},
    {"gemm_relu", KILN_F32, 9, 12, 10, 0, 1, 1, 1, 1, {10}, KN_ACT_RELU},
    {"gemm_gelu", KILN_F32, 9, 12, 10, 0, 1, 1, 1, 1, {10}, KN_ACT_GELU_ERF},
    {"gemm_k1", KILN_F32, 4, 1, 3, 0, 0, 1, 1, -1},
    {"gemm_f16", KILN_F16, 6, 20, 7, 0, 1, 1, 1, 1, {7}, KN_ACT_RELU},
    {"gemm_f16_transA", KILN_F16, 5, 8, 3, 1, 0, 0.25f, 1, 2, {5, 3}},
    {"gemm_bf16", KILN_BF16, 4, 8, 6, 0, 0, 1, 1, 1, {6}},
    {"gemm_f64", KILN_F64, 5, 9, 6, 1, 1, 2, 0.5f, 2, {5, 6}, KN_ACT_LEAKY_RELU},
};

/* ---- MatMul ------------------------------------------------------------------------------------------- */

typedef struct mm_cfg {
    const char *label;
    kiln_dtype dt;
    int ra;
    int64_t ad[5];
    int rb;
    int64_t bd[5];
    int rbias; /* -1: no bias */
    int64_t biasd[5];
    int act;
    int ry;
    int64_t yd[5]; /* expected output dims */
} mm_cfg;

static void test_matmul(const mm_cfg *c) {
    int is_int = c->dt == KILN_I64 || c->dt == KILN_I32;
    float lo = is_int ? -9 : -1, hi = is_int ? 9 : 1;
    kt_t in[3] = {kt_rand(c->dt, c->ra, c->ad, lo, hi), kt_rand(c->dt, c->rb, c->bd, lo, hi),
                  c->rbias >= 0 ? kt_rand(c->dt, c->rbias, c->biasd, lo, hi) : kt_absent()},
         y;
    kiln_attr at[1] = {kiln_attr_int("kiln.act", c->act)};
    kiln_status st = kt_run_op(KN_OP_MatMul, c->label, c->rbias >= 0 ? 3 : 2, in, 1, &y, c->act ? 1 : 0, at);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y, c->ry, c->yd) && y.t.dtype == c->dt, "%s: output dims (rank %d: %lld %lld %lld)",
                 c->label, y.t.rank, (long long)y.t.dims[0], (long long)y.t.dims[1], (long long)y.t.dims[2]);
        /* numpy: promote 1-D operands, broadcast batch dims, multiply; the output dims are
         * checked above, so index the product in a rank-8 frame */
        int64_t A[8], B[8], O[8];
        int ra = c->ra == 1 ? 2 : c->ra, rb = c->rb == 1 ? 2 : c->rb;
        int64_t a2[8], b2[8];
        for (int i = 0; i < 8; i++) a2[i] = b2[i] = 1;
        if (c->ra == 1) { a2[0] = 1; a2[1] = c->ad[0]; } else for (int i = 0; i < ra; i++) a2[i] = c->ad[i];
        if (c->rb == 1) { b2[0] = c->bd[0]; b2[1] = 1; } else for (int i = 0; i < rb; i++) b2[i] = c->bd[i];
        /* right-align into 8 dims */
        for (int i = 0; i < 8; i++) {
            A[i] = i < 8 - ra ? 1 : a2[i - (8 - ra)];
            B[i] = i < 8 - rb ? 1 : b2[i - (8 - rb)];
            O[i] = i < 6 ? (A[i] > B[i] ? A[i] : B[i]) : 0;
        }
        int64_t M = A[6], K = A[7], N = B[7];
        O[6] = M;
        O[7] = N;
        /* the bias broadcasts against the output as written (1-D operands' dims removed): map
         * the output frame to the squeezed output's trailing dims */
        int64_t total = 1;
        for (int i = 0; i < 8; i++) total *= O[i];
        double *ref = calloc((size_t)total, sizeof *ref);
        int64_t oc[8];
        for (int64_t o = 0; o < total; o++) {
            int64_t t = o;
            for (int i = 7; i >= 0; i--) {
                oc[i] = t % O[i];
                t /= O[i];
            }
            int64_t abase = 0, bbase = 0;
            for (int i = 0; i < 6; i++) {
                abase = abase * A[i] + (A[i] == 1 ? 0 : oc[i]);
                bbase = bbase * B[i] + (B[i] == 1 ? 0 : oc[i]);
            }
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += in[0].v[(abase * M + oc[6]) * K + k] * in[1].v[(bbase * K + k) * N + oc[7]];
            if (c->rbias >= 0) {
                /* squeezed output coords: drop dim 6 when A was 1-D, dim 7 when B was 1-D */
                int64_t sc[8];
                int r = 0;
                for (int i = 0; i < 8; i++) {
                    if ((i == 6 && c->ra == 1) || (i == 7 && c->rb == 1)) continue;
                    sc[r++] = oc[i];
                }
                int64_t bi = 0;
                for (int i = 0; i < c->rbias; i++) {
                    int64_t d = c->biasd[i];
                    bi = bi * d + (d == 1 ? 0 : sc[r - c->rbias + i]);
                }
                acc += in[2].v[bi];
            }
            ref[o] = ref_act(c->act, acc, (double)0.01f);
        }
        double r = kt_ratio(y.v, ref, total, is_int ? 0 : kt_rtol(c->dt), is_int ? 1e-9 : kt_atol(c->dt));
        KT_CHECK(kt_numel(&y) == total, "%s: numel", c->label);
        if (kt_numel(&y) == total) KT_CHECK(r <= 1, "%s: off by %.3g tolerances", c->label, r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
}

static const mm_cfg mm_cases[] = {
    {"mm_2d", KILN_F32, 2, {7, 9}, 2, {9, 5}, -1, {0}, 0, 2, {7, 5}},
    {"mm_batched", KILN_F32, 3, {4, 6, 8}, 3, {4, 8, 3}, -1, {0}, 0, 3, {4, 6, 3}},
    {"mm_bcast_4d_3d", KILN_F32, 4, {2, 1, 5, 6}, 3, {3, 6, 4}, -1, {0}, 0, 4, {2, 3, 5, 4}},
    {"mm_bcast_b_batched", KILN_F32, 2, {5, 6}, 4, {2, 3, 6, 4}, -1, {0}, 0, 4, {2, 3, 5, 4}},
    {"mm_fold_weights", KILN_F32, 3, {3, 10, 16}, 2, {16, 12}, 1, {12}, KN_ACT_GELU_ERF, 3, {3, 10, 12}},
    {"mm_fold_b_batch1", KILN_F32, 3, {3, 4, 8}, 3, {1, 8, 5}, -1, {0}, 0, 3, {3, 4, 5}},
    {"mm_1d_1d", KILN_F32, 1, {9}, 1, {9}, -1, {0}, 0, 0, {0}},
    {"mm_1d_nd", KILN_F32, 1, {6}, 3, {2, 6, 4}, -1, {0}, 0, 2, {2, 4}},
    {"mm_nd_1d", KILN_F32, 3, {2, 5, 6}, 1, {6}, -1, {0}, 0, 2, {2, 5}},
    {"mm_1d_2d_bias", KILN_F32, 1, {6}, 2, {6, 4}, 1, {4}, KN_ACT_RELU, 1, {4}},
    {"mm_bias_gelu", KILN_F32, 3, {2, 7, 16}, 2, {16, 24}, 1, {24}, KN_ACT_GELU_ERF, 3, {2, 7, 24}},
    {"mm_bias_tanh_gelu", KILN_F32, 2, {7, 16}, 2, {16, 24}, 1, {24}, KN_ACT_GELU_TANH, 2, {7, 24}},
    {"mm_bias_full", KILN_F32, 3, {2, 3, 4}, 3, {2, 4, 5}, 3, {2, 3, 5}, KN_ACT_SILU, 3, {2, 3, 5}},
    {"mm_bias_col", KILN_F32, 3, {2, 3, 4}, 3, {2, 4, 5}, 2, {3, 1}, 0, 3, {2, 3, 5}},
    {"mm_bias_batch", KILN_F32, 3, {2, 3, 4}, 2, {4, 5}, 3, {2, 1, 5}, KN_ACT_RELU, 3, {2, 3, 5}},
    {"mm_k1", KILN_F32, 2, {3, 1}, 2, {1, 4}, -1, {0}, 0, 2, {3, 4}},
    {"mm_f16", KILN_F16, 3, {2, 5, 32}, 3, {2, 32, 6}, -1, {0}, 0, 3, {2, 5, 6}},
    {"mm_f16_bias_gelu", KILN_F16, 3, {2, 7, 16}, 2, {16, 8}, 1, {8}, KN_ACT_GELU_ERF, 3, {2, 7, 8}},
    {"mm_f16_1d", KILN_F16, 1, {12}, 2, {12, 3}, -1, {0}, 0, 1, {3}},
    {"mm_bf16", KILN_BF16, 2, {4, 8}, 2, {8, 4}, -1, {0}, 0, 2, {4, 4}},
    {"mm_f64_bcast", KILN_F64, 4, {2, 1, 3, 5}, 3, {2, 5, 4}, 1, {4}, KN_ACT_GELU_ERF, 4, {2, 2, 3, 4}},
    {"mm_i64", KILN_I64, 3, {2, 3, 4}, 2, {4, 5}, 1, {5}, 0, 3, {2, 3, 5}},
    {"mm_i32_1d", KILN_I32, 1, {4}, 2, {4, 3}, -1, {0}, 0, 1, {3}},
};

static kiln_status mm_err(kn_op op, const char *name, int ra, const int64_t *ad, int rb, const int64_t *bd, int rc,
                          const int64_t *cd, int na, const kiln_attr *at) {
    kt_t in[3] = {kt_rand(KILN_F32, ra, ad, -1, 1), kt_rand(KILN_F32, rb, bd, -1, 1),
                  rc >= 0 ? kt_rand(KILN_F32, rc, cd, -1, 1) : kt_absent()},
         y;
    kiln_status st = kt_run_op(op, name, rc >= 0 ? 3 : 2, in, 1, &y, na, at);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
    kt_free(&y);
    return st;
}

static void test_errors(void) {
    int64_t a[2] = {3, 4}, b[2] = {5, 6}, b2[2] = {4, 6}, c[2] = {2, 6}, a3[3] = {2, 3, 4};
    KT_FAILS(mm_err(KN_OP_Gemm, "fc1", 2, a, 2, b, -1, NULL, 0, NULL), KILN_ERR_SHAPE,
             "Gemm 'fc1': inner dims differ: A is 3x4 (K = 4), B is 5x6 (K = 5)");
    kiln_attr ta = kiln_attr_int("transA", 1);
    KT_FAILS(mm_err(KN_OP_Gemm, "fc2", 2, a, 2, b2, -1, NULL, 1, &ta), KILN_ERR_SHAPE,
             "Gemm 'fc2': inner dims differ: A^T is 3x4 (K = 3)");
    KT_FAILS(mm_err(KN_OP_Gemm, "fc3", 2, a, 2, b2, 2, c, 0, NULL), KILN_ERR_SHAPE,
             "Gemm 'fc3': input 'C' has dims 2x6; it must broadcast to the output 3x6");
    KT_FAILS(mm_err(KN_OP_Gemm, "fc4", 3, a3, 2, b2, -1, NULL, 0, NULL), KILN_ERR_SHAPE,
             "Gemm 'fc4': inputs 'A' (2x3x4) and 'B' (4x6) must both be matrices");
    kiln_attr tb2 = kiln_attr_int("transB", 2);
    KT_FAILS(mm_err(KN_OP_Gemm, "fc5", 2, a, 2, b2, -1, NULL, 1, &tb2), KILN_ERR_INVALID_ARGUMENT,
             "Gemm 'fc5': attribute 'transB' is 2");
    KT_FAILS(mm_err(KN_OP_MatMul, "mm1", 3, a3, 2, b, -1, NULL, 0, NULL), KILN_ERR_SHAPE,
             "MatMul 'mm1': inner dims differ: A is 2x3x4 (K = 4), B is 5x6 (K = 5)");
    int64_t a33[3] = {2, 3, 4}, b345[3] = {3, 4, 5};
    int64_t b253[3] = {2, 5, 3};
    KT_FAILS(mm_err(KN_OP_MatMul, "mm2", 3, a33, 3, b253, -1, NULL, 0, NULL), KILN_ERR_SHAPE,
             "MatMul 'mm2': inner dims differ: A is 2x3x4 (K = 4), B is 2x5x3 (K = 5)");
    KT_FAILS(mm_err(KN_OP_MatMul, "mm3", 3, a33, 3, b345, -1, NULL, 0, NULL), KILN_ERR_SHAPE,
             "MatMul 'mm3': shapes 2 and 3 do not broadcast");
    int64_t bias_bad[1] = {7};
    KT_FAILS(mm_err(KN_OP_MatMul, "mm4", 2, a, 2, b2, 1, bias_bad, 0, NULL), KILN_ERR_SHAPE,
             "MatMul 'mm4': input 2 (the fused bias) has dims 7; it must broadcast to the output 3x6");
    kiln_attr act = kiln_attr_int("kiln.act", -1);
    KT_FAILS(mm_err(KN_OP_MatMul, "mm5", 2, a, 2, b2, -1, NULL, 1, &act), KILN_ERR_INVALID_ARGUMENT,
             "MatMul 'mm5': attribute 'kiln.act' is -1");
    /* a scalar operand and mismatched dtypes */
    kt_t in[2] = {kt_rand(KILN_F32, 0, NULL, -1, 1), kt_rand(KILN_F32, 2, b2, -1, 1)}, y;
    KT_FAILS(kt_run_op(KN_OP_MatMul, "mm6", 2, in, 1, &y, 0, NULL), KILN_ERR_SHAPE,
             "MatMul 'mm6': inputs 'A' (scalar) and 'B' (4x6) must have rank >= 1");
    kt_free(&in[0]);
    in[0] = kt_rand(KILN_F16, 2, a, -1, 1);
    KT_FAILS(kt_run_op(KN_OP_MatMul, "mm7", 2, in, 1, &y, 0, NULL), KILN_ERR_DTYPE, "MatMul 'mm7': input 'B' is f32, A is f16");
    kt_free(&in[0]);
    kt_free(&in[1]);
}

int main(void) {
    kt_seed(42);
    for (size_t i = 0; i < sizeof gemm_cases / sizeof gemm_cases[0]; i++) test_gemm(&gemm_cases[i]);
    for (size_t i = 0; i < sizeof mm_cases / sizeof mm_cases[0]; i++) test_matmul(&mm_cases[i]);
    test_errors();
    return kt_finish();
}
