/* CPU Gemm and MatMul through OpenBLAS sgemm, with kiln's fused epilogues (Gemm: C then the
 * activation; MatMul: a broadcast bias then the activation) and MatMul's fused operand forms
 * (kiln.trans_a / kiln.trans_b: the operand is read with its last two dims swapped, as sgemm's
 * transpose flags; kiln.alpha: the product is scaled before the bias). f16/bf16 go through f32
 * scratch made in prepare; f64 (and MatMul's int32/int64) use plain loops. */
#include "nn_kernels.h"

typedef struct kn_mm_plan {
    int64_t M, N, K;
    int ta, tb;         /* Gemm's transA/transB; MatMul's kiln.trans_a/kiln.trans_b */
    float alpha, beta;  /* Gemm; MatMul's kiln.alpha (beta unused) */
    int64_t cs[2];      /* Gemm: strides of C over (M, N), 0 on broadcast dims */
    int nb;             /* MatMul: batch rank of the output */
    int64_t bdims[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK]; /* batch dims; strides in matrices */
    int64_t batch;
    int fold;           /* MatMul: B has no batch, A is neither broadcast nor transposed: one (batch*M) x K product */
    int64_t bias_s[KILN_MAX_RANK]; /* MatMul: bias strides over the output dims */
    kn_nn_act act;
    float *af, *bf, *yf;
    void *mem;
} kn_mm_plan;

static void kn_mm_release(void *state) {
    kn_mm_plan *p = state;
    if (!p) return;
    kn_aligned_free(p->mem);
    kn_free(p);
}

/* Carves f32 copies of A, B and Y for f16/bf16; nothing for f32, f64 and ints. */
static kiln_status kn_mm_scratch(const kn_kernel_args *a, kn_mm_plan *p) {
    if (!kn_nn_via_f32(a->in[0].dtype)) return KILN_OK;
    kn_nn_carver cv = {0};
    for (int pass = 0; pass < 2; pass++) {
        p->af = kn_nn_carve(&cv, kn_tensor_numel(&a->in[0]));
        p->bf = kn_nn_carve(&cv, kn_tensor_numel(&a->in[1]));
        p->yf = kn_nn_carve(&cv, kn_tensor_numel(&a->out[0]));
        if (pass == 0) {
            p->mem = kn_aligned_alloc(cv.used ? cv.used : 64);
            if (!p->mem)
                return kn_node_error(a->node, KILN_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of scratch",
                                     cv.used);
            cv = (kn_nn_carver){.base = p->mem};
        }
    }
    return KILN_OK;
}

static const kn_tensor *kn_opt_in(const kn_kernel_args *a, int i) {
    return a->n_in > i && kn_tensor_present(&a->in[i]) ? &a->in[i] : NULL;
}

/* Points af and bf at f32 views of A and B (converting f16/bf16 into scratch); returns Y's f32 buffer. */
static float *kn_mm_f32_views(const kn_kernel_args *a, const kn_mm_plan *p, const float **af, const float **bf) {
    const kn_tensor *A = &a->in[0], *B = &a->in[1];
    if (!kn_nn_via_f32(A->dtype)) {
        *af = A->data;
        *bf = B->data;
        return a->out[0].data;
    }
    kn_convert(A->data, A->dtype, p->af, KILN_F32, kn_tensor_numel(A));
    kn_convert(B->data, B->dtype, p->bf, KILN_F32, kn_tensor_numel(B));
    *af = p->af;
    *bf = p->bf;
    return p->yf;
}

/* ---- Gemm ------------------------------------------------------------------------------------------ */

static kiln_status kn_gemm_prepare(const kn_kernel_args *a, void **state) {
    const kn_node *n = a->node;
    const kn_tensor *A = &a->in[0], *B = &a->in[1], *C = kn_opt_in(a, 2);
    *state = NULL;
    if (!kn_dtype_is_float(A->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "the CPU kernel takes float inputs, got %s", kiln_dtype_name(A->dtype));
    kn_mm_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a Gemm");
    p->ta = (int)kn_attr_i(n, "transA", 0);
    p->tb = (int)kn_attr_i(n, "transB", 0);
    p->alpha = kn_attr_f(n, "alpha", 1.0f);
    p->beta = kn_attr_f(n, "beta", 1.0f);
    p->M = A->dims[p->ta];
    p->K = A->dims[1 - p->ta];
    p->N = B->dims[1 - p->tb];
    p->act = kn_nn_act_of(n);
    if (C) {
        int64_t d0 = C->rank == 2 ? C->dims[0] : 1, d1 = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
        p->cs[0] = d0 == 1 ? 0 : d1;
        p->cs[1] = d1 == 1 ? 0 : 1;
    }
    kiln_status st = kn_nn_blas_fits(n, p->M, p->N, p->K);
    if (st == KILN_OK) st = kn_mm_scratch(a, p);
    if (st != KILN_OK) {
        kn_mm_release(p);
        return st;
    }
    *state = p;
    return KILN_OK;
}

static void kn_gemm_f64(const kn_mm_plan *p, const kn_tensor *A, const kn_tensor *B, const kn_tensor *C,
                        const kn_tensor *Y) {
    const double *a = A->data, *b = B->data;
    double *y = Y->data;
    for (int64_t i = 0; i < p->M; i++)
        for (int64_t j = 0; j < p->N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < p->K; k++)
                acc += a[p->ta ? k * p->M + i : i * p->K + k] * b[p->tb ? j * p->K + k : k * p->N + j];
            acc *= p->alpha;
            if (C) acc += (double)p->beta * kn_nn_ld(C->data, C->dtype, i * p->cs[0] + j * p->cs[1]);
            y[i * p->N + j] = kn_nn_act_d(&p->act, acc);
        }
}

static kiln_status kn_cpu_gemm(const kn_kernel_args *a) {
    const kn_mm_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the Gemm kernel ran without its prepare step");
    const kn_tensor *C = kn_opt_in(a, 2), *Y = &a->out[0];
    if (Y->dtype == KILN_F64) {
        kn_gemm_f64(p, &a->in[0], &a->in[1], C, Y);
        return KILN_OK;
    }
    const float *af, *bf;
    float *y = kn_mm_f32_views(a, p, &af, &bf);
    int use_c = C && p->beta != 0.0f;
    if (use_c)
        for (int64_t i = 0; i < p->M; i++)
            for (int64_t j = 0; j < p->N; j++)
                y[i * p->N + j] = p->beta * kn_cpu_ld(C->data, C->dtype, i * p->cs[0] + j * p->cs[1]);
    kn_nn_sgemm(p->ta, p->tb, p->M, p->N, p->K, p->alpha, af, p->ta ? p->M : p->K, bf, p->tb ? p->K : p->N,
                use_c ? 1.0f : 0.0f, y, p->N);
    int via = kn_nn_via_f32(Y->dtype), act = p->act.act;
    if (via || act != KN_ACT_NONE) {
        int64_t total = p->M * p->N;
        for (int64_t i = 0; i < total; i++) {
            float v = act != KN_ACT_NONE ? kn_cpu_act(act, y[i], p->act.alpha, p->act.beta) : y[i];
            if (via) kn_cpu_st(Y->data, Y->dtype, i, v);
            else y[i] = v;
        }
    }
    return KILN_OK;
}

/* ---- MatMul ------------------------------------------------------------------------------------------ */

static kiln_status kn_matmul_prepare(const kn_kernel_args *a, void **state) {
    const kn_node *n = a->node;
    const kn_tensor *A = &a->in[0], *B = &a->in[1], *bias = kn_opt_in(a, 2), *Y = &a->out[0];
    *state = NULL;
    kn_mm_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a MatMul");
    p->ta = (int)kn_attr_i(n, "kiln.trans_a", 0) && A->rank >= 2;
    p->tb = (int)kn_attr_i(n, "kiln.trans_b", 0) && B->rank >= 2;
    p->alpha = kn_attr_f(n, "kiln.alpha", 1.0f);
    p->M = A->rank >= 2 ? A->dims[A->rank - 2 + p->ta] : 1;
    p->K = A->dims[A->rank - 1 - p->ta];
    p->N = B->rank >= 2 ? B->dims[B->rank - 1 - p->tb] : 1;
    p->act = kn_nn_act_of(n);
    int ra = A->rank > 2 ? A->rank - 2 : 0, rb = B->rank > 2 ? B->rank - 2 : 0;
    p->nb = ra > rb ? ra : rb;
    p->batch = 1;
    int64_t nbb = 1, sa = 1, sb = 1;
    int a_broadcast = ra != p->nb;
    for (int i = p->nb - 1; i >= 0; i--) {
        int ia = i - (p->nb - ra), ib = i - (p->nb - rb);
        int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
        p->bdims[i] = da == 1 ? db : da;
        p->sa[i] = da == 1 ? 0 : sa;
        p->sb[i] = db == 1 ? 0 : sb;
        if (da != p->bdims[i]) a_broadcast = 1;
        sa *= da;
        sb *= db;
        nbb *= db;
        p->batch *= p->bdims[i];
    }
    p->fold = nbb == 1 && !a_broadcast && !p->ta;
    if (bias) kn_cpu_broadcast_strides(bias, Y, p->bias_s);
    kiln_status st = kn_nn_blas_fits(n, p->fold ? p->batch * p->M : p->M, p->N, p->K);
    if (st == KILN_OK) st = kn_mm_scratch(a, p);
    if (st != KILN_OK) {
        kn_mm_release(p);
        return st;
    }
    *state = p;
    return KILN_OK;
}

static inline int64_t kn_ld_int(const void *p, kiln_dtype t, int64_t i) {
    return t == KILN_I64 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}

/* f64 and integer MatMul: the definition, one batch at a time. */
static void kn_matmul_plain(const kn_mm_plan *p, const kn_tensor *A, const kn_tensor *B, const kn_tensor *Y) {
    int64_t idx[KILN_MAX_RANK] = {0}, oa = 0, ob = 0;
    int is_int = !kn_dtype_is_float(Y->dtype);
    for (int64_t bi = 0; bi < p->batch; bi++) {
        int64_t abase = oa * p->M * p->K, bbase = ob * p->K * p->N, ybase = bi * p->M * p->N;
        for (int64_t i = 0; i < p->M; i++)
            for (int64_t j = 0; j < p->N; j++) {
                if (is_int) {
                    int64_t acc = 0;
                    for (int64_t k = 0; k < p->K; k++)
                        acc += kn_ld_int(A->data, A->dtype, abase + (p->ta ? k * p->M + i : i * p->K + k)) *
                               kn_ld_int(B->data, B->dtype, bbase + (p->tb ? j * p->K + k : k * p->N + j));
                    if (Y->dtype == KILN_I64) ((int64_t *)Y->data)[ybase + i * p->N + j] = acc;
                    else ((int32_t *)Y->data)[ybase + i * p->N + j] = (int32_t)acc;
                } else {
                    const double *a = A->data, *b = B->data;
                    double acc = 0;
                    for (int64_t k = 0; k < p->K; k++)
                        acc += a[abase + (p->ta ? k * p->M + i : i * p->K + k)] * b[bbase + (p->tb ? j * p->K + k : k * p->N + j)];
                    ((double *)Y->data)[ybase + i * p->N + j] = acc * (double)p->alpha;
                }
            }
        kn_nn_odometer(p->nb, p->bdims, idx, p->sa, &oa, p->sb, &ob);
    }
}

/* y = act(y + bias) over the output, then the store into Y when y is f32 scratch. */
static void kn_matmul_epilogue(const kn_mm_plan *p, float *y, const kn_tensor *bias, const kn_tensor *Y) {
    int via = kn_nn_via_f32(Y->dtype), act = p->act.act;
    int64_t total = kn_tensor_numel(Y);
    if (!bias) {
        if (!via && act == KN_ACT_NONE) return;
        for (int64_t i = 0; i < total; i++) {
            float v = act != KN_ACT_NONE ? kn_cpu_act(act, y[i], p->act.alpha, p->act.beta) : y[i];
            if (via) kn_cpu_st(Y->data, Y->dtype, i, v);
            else y[i] = v;
        }
        return;
    }
    /* rows over all output dims but the last; the bias offset follows an odometer */
    int outer_rank = Y->rank > 0 ? Y->rank - 1 : 0;
    int64_t last = Y->rank > 0 ? Y->dims[Y->rank - 1] : 1, ls = Y->rank > 0 ? p->bias_s[Y->rank - 1] : 0;
    int64_t rows = last ? total / last : 0, idx[KILN_MAX_RANK] = {0}, ob = 0;
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * last;
        for (int64_t j = 0; j < last; j++) {
            float v = yr[j] + kn_cpu_ld(bias->data, bias->dtype, ob + j * ls);
            if (act != KN_ACT_NONE) v = kn_cpu_act(act, v, p->act.alpha, p->act.beta);
            if (via) kn_cpu_st(Y->data, Y->dtype, r * last + j, v);
            else yr[j] = v;
        }
        kn_nn_odometer(outer_rank, Y->dims, idx, p->bias_s, &ob, NULL, NULL);
    }
}

/* Bias and activation for the plain (f64, int) path. */
static void kn_matmul_plain_epilogue(const kn_mm_plan *p, const kn_tensor *bias, const kn_tensor *Y) {
    int64_t total = kn_tensor_numel(Y), idx[KILN_MAX_RANK] = {0}, ob = 0;
    int is_int = !kn_dtype_is_float(Y->dtype);
    if (!bias && (is_int || p->act.act == KN_ACT_NONE)) return;
    for (int64_t i = 0; i < total; i++) {
        if (is_int) {
            int64_t v = kn_ld_int(Y->data, Y->dtype, i) + kn_ld_int(bias->data, bias->dtype, ob);
            if (Y->dtype == KILN_I64) ((int64_t *)Y->data)[i] = v;
            else ((int32_t *)Y->data)[i] = (int32_t)v;
        } else {
            double v = ((double *)Y->data)[i] + (bias ? kn_nn_ld(bias->data, bias->dtype, ob) : 0.0);
            ((double *)Y->data)[i] = kn_nn_act_d(&p->act, v);
        }
        if (bias) kn_nn_odometer(Y->rank, Y->dims, idx, p->bias_s, &ob, NULL, NULL);
    }
}

static kiln_status kn_cpu_matmul(const kn_kernel_args *a) {
    const kn_mm_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the MatMul kernel ran without its prepare step");
    const kn_tensor *A = &a->in[0], *B = &a->in[1], *bias = kn_opt_in(a, 2), *Y = &a->out[0];
    if (Y->dtype == KILN_F64 || !kn_dtype_is_float(Y->dtype)) {
        kn_matmul_plain(p, A, B, Y);
        kn_matmul_plain_epilogue(p, bias, Y);
        return KILN_OK;
    }
    const float *af, *bf;
    float *y = kn_mm_f32_views(a, p, &af, &bf);
    int64_t lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
    if (p->fold) {
        kn_nn_sgemm(0, p->tb, p->batch * p->M, p->N, p->K, p->alpha, af, p->K, bf, ldb, 0.0f, y, p->N);
    } else {
        int64_t idx[KILN_MAX_RANK] = {0}, oa = 0, ob = 0;
        for (int64_t bi = 0; bi < p->batch; bi++) {
            kn_nn_sgemm(p->ta, p->tb, p->M, p->N, p->K, p->alpha, af + oa * p->M * p->K, lda, bf + ob * p->K * p->N,
                        ldb, 0.0f, y + bi * p->M * p->N, p->N);
            kn_nn_odometer(p->nb, p->bdims, idx, p->sa, &oa, p->sb, &ob);
        }
    }
    kn_matmul_epilogue(p, y, bias, Y);
    return KILN_OK;
}

void kn_cpu_register_nn_gemm(kn_kernel *t) {
    t[KN_OP_Gemm] = (kn_kernel){.name = "cpu.gemm_sgemm", .run = kn_cpu_gemm, .prepare = kn_gemm_prepare,
                                .release = kn_mm_release};
    t[KN_OP_MatMul] = (kn_kernel){.name = "cpu.matmul_sgemm", .run = kn_cpu_matmul, .prepare = kn_matmul_prepare,
                                  .release = kn_mm_release};
}
