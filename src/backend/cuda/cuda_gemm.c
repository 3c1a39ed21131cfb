/* Gemm and MatMul on CUDA through cuBLASLt. Row-major Y = op(A) op(B) is computed as the
 * column-major Y^T = op(B)^T op(A)^T, so no data moves. Batched MatMul uses strided batches (B
 * without batch dims folds into M); irregular broadcasting loops over batch entries. Bias and
 * activation use cuBLASLt epilogues (BIAS, RELU_BIAS, GELU_BIAS) where they fit, else kiln's
 * epilogue kernel. MatMul's fused operand forms map onto cuBLASLt directly: kiln.trans_a /
 * kiln.trans_b (the operand's last two dims swapped) are op T, kiln.alpha is alpha. Tactics are
 * the algorithms cublasLtMatmulAlgoGetHeuristic returns for the shape; prepare (outside any
 * capture) builds the descriptors once per shape. */
#include "cuda_internal.h"

#include <pthread.h>

#define KN_LT_MAX_ALGOS 8

enum { KN_BIAS_NONE = 0, KN_BIAS_LT, KN_BIAS_C, KN_BIAS_KILN };

typedef struct kn_mm_plan {
    int64_t M, N, K;
    int ta, tb;
    int64_t batch, sa, sb, sd;   /* strided batches */
    int orank;                   /* irregular broadcast: outer loop over these batch dims */
    int64_t odims[KILN_MAX_RANK], oa[KILN_MAX_RANK], ob[KILN_MAX_RANK], od[KILN_MAX_RANK];
    int64_t n_outer;
    kiln_dtype dtype;
    int bias_mode;               /* how the bias (Gemm's C or MatMul's 3rd input) is applied */
    int bias_input;              /* input index of the bias, -1 when none */
    float alpha, beta;
    int act;                     /* the fused activation */
    float act_alpha, act_beta;
    int lt_act;                  /* 1: cuBLASLt's epilogue applies the activation */
    cublasLtEpilogue_t epilogue;
    /* cuBLASLt objects */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    uint32_t align;              /* pointer alignment the algorithms were chosen for */
    int n_algo;
    cublasLtMatmulHeuristicResult_t algo[KN_LT_MAX_ALGOS];
} kn_mm_plan;

static pthread_once_t kn_lt_once = PTHREAD_ONCE_INIT;
static cublasLtHandle_t kn_lt_global;

static void kn_lt_global_init(void) {
    if (cublasLtCreate(&kn_lt_global) != CUBLAS_STATUS_SUCCESS) kn_lt_global = NULL;
}

static cublasLtHandle_t kn_lt_handle(const kn_kernel_args *a) {
    if (a->ctx) return kn_cuda_ctx_of(a)->lt;
    pthread_once(&kn_lt_once, kn_lt_global_init);
    return kn_lt_global;
}

static kiln_precision kn_precision_of(const kn_kernel_args *a) {
    return a->ctx ? kn_cuda_ctx_of(a)->precision : KILN_PRECISION_FP32;
}

static void kn_mm_plan_free(void *state) {
    kn_mm_plan *p = state;
    if (!p) return;
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    kn_free(p);
}

static uint32_t kn_align_of(uint64_t v) {
    uint32_t al = 256;
    while (al > 1 && (v % al) != 0) al >>= 1;
    return al;
}

/* Broadcast strides (in elements) of a batch shape bd (rank br) into the out batch dims. */
static void kn_batch_strides(int orank, const int64_t *odims, int br, const int64_t *bd, int64_t mat, int64_t *st) {
    int off = orank - br;
    int64_t s = mat;
    for (int i = orank - 1; i >= 0; i--) {
        int j = i - off;
        st[i] = (j < 0 || bd[j] == 1) ? 0 : s;
        if (j >= 0) s *= bd[j];
        (void)odims;
    }
}

/* Shapes, batching and the bias/activation plan of a Gemm or MatMul step. */
static kiln_status kn_mm_shape(const kn_kernel_args *a, kn_mm_plan *p) {
    const kn_node *n = a->node;
    const kn_tensor *A = &a->in[0], *B = &a->in[1], *Y = &a->out[0];
    p->dtype = Y->dtype;
    p->batch = 1;
    p->n_outer = 1;
    p->bias_input = -1;
    p->alpha = 1.0f;
    p->beta = 1.0f;
    kn_cuda_node_act(n, &p->act, &p->act_alpha, &p->act_beta);
    if (A->dtype != B->dtype || A->dtype != Y->dtype)
        return kn_node_error(n, KILN_ERR_DTYPE, "A, B and Y must have one element type (%s, %s, %s)",
                             kiln_dtype_name(A->dtype), kiln_dtype_name(B->dtype), kiln_dtype_name(Y->dtype));
    if (n->op == KN_OP_Gemm) {
        if (A->rank != 2 || B->rank != 2) return kn_node_error(n, KILN_ERR_SHAPE, "Gemm takes 2-D A and B");
        p->ta = (int)kn_attr_i(n, "transA", 0);
        p->tb = (int)kn_attr_i(n, "transB", 0);
        p->alpha = kn_attr_f(n, "alpha", 1.0f);
        p->beta = kn_attr_f(n, "beta", 1.0f);
        p->M = p->ta ? A->dims[1] : A->dims[0];
        p->K = p->ta ? A->dims[0] : A->dims[1];
        p->N = p->tb ? B->dims[0] : B->dims[1];
        int64_t kb = p->tb ? B->dims[1] : B->dims[0];
        if (kb != p->K) return kn_node_error(n, KILN_ERR_SHAPE, "inner dims differ: A gives K=%lld, B gives %lld", (long long)p->K, (long long)kb);
        if (a->n_in > 2 && kn_tensor_present(&a->in[2]) && p->beta != 0.0f) p->bias_input = 2;
    } else {
        /* numpy matmul: 1-D operands gain a dim that the output drops */
        int ra = A->rank, rb = B->rank;
        if (ra < 1 || rb < 1) return kn_node_error(n, KILN_ERR_SHAPE, "MatMul operands must have rank >= 1");
        p->ta = ra >= 2 && kn_attr_i(n, "kiln.trans_a", 0);
        p->tb = rb >= 2 && kn_attr_i(n, "kiln.trans_b", 0);
        p->alpha = kn_attr_f(n, "kiln.alpha", 1.0f);
        p->M = ra == 1 ? 1 : A->dims[ra - 2 + p->ta];
        p->K = A->dims[ra - 1 - p->ta];
        int64_t kb = rb == 1 ? B->dims[0] : B->dims[rb - 2 + p->tb];
        p->N = rb == 1 ? 1 : B->dims[rb - 1 - p->tb];
        if (kb != p->K) return kn_node_error(n, KILN_ERR_SHAPE, "inner dims differ: A gives K=%lld, B gives %lld", (long long)p->K, (long long)kb);
        int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;
        int orank = ba > bb ? ba : bb;
        int64_t od[KILN_MAX_RANK];
        for (int i = 0; i < orank; i++) {
            int ja = i - (orank - ba), jb = i - (orank - bb);
            int64_t da = ja >= 0 ? A->dims[ja] : 1, db = jb >= 0 ? B->dims[jb] : 1;
            if (da != db && da != 1 && db != 1)
                return kn_node_error(n, KILN_ERR_SHAPE, "batch dims %lld and %lld do not broadcast", (long long)da, (long long)db);
            od[i] = da == 1 ? db : da;
        }
        int64_t total = 1, ta = 1, tbb = 1;
        for (int i = 0; i < orank; i++) total *= od[i];
        for (int i = 0; i < ba; i++) ta *= A->dims[i];
        for (int i = 0; i < bb; i++) tbb *= B->dims[i];
        if (tbb == 1 && !p->ta) {
            p->M *= ta; /* B is shared: the batch folds into M (A's rows are contiguous) */
            if (ta != total) return kn_node_error(n, KILN_ERR_INTERNAL, "batch bookkeeping");
        } else if (tbb == 1) { /* B shared, A transposed: A's rows are not contiguous, a strided batch */
            p->batch = total; p->sa = p->M * p->K; p->sb = 0; p->sd = p->M * p->N;
            if (ta != total) return kn_node_error(n, KILN_ERR_INTERNAL, "batch bookkeeping");
        } else if (ta == total && tbb == total) {
            p->batch = total; p->sa = p->M * p->K; p->sb = p->K * p->N; p->sd = p->M * p->N;
        } else if (ta == 1 && tbb == total) {
            p->batch = total; p->sa = 0; p->sb = p->K * p->N; p->sd = p->M * p->N;
        } else {
            p->orank = orank;
            memcpy(p->odims, od, sizeof od);
            kn_batch_strides(orank, od, ba, A->dims, p->M * p->K, p->oa);
            kn_batch_strides(orank, od, bb, B->dims, p->K * p->N, p->ob);
            int64_t s = p->M * p->N;
            for (int i = orank - 1; i >= 0; i--) { p->od[i] = s; s *= od[i]; }
            p->n_outer = total;
        }
        if (a->n_in > 2 && kn_tensor_present(&a->in[2])) p->bias_input = 2;
    }
    /* bias and activation */
    p->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    int lt_act_ok = p->act == KN_ACT_NONE || p->act == KN_ACT_RELU || p->act == KN_ACT_GELU_TANH;
    if (p->bias_input >= 0) {
        const kn_tensor *c = &a->in[p->bias_input];
        if (c->dtype != p->dtype) return kn_node_error(n, KILN_ERR_DTYPE, "the bias must be %s", kiln_dtype_name(p->dtype));
        int64_t cn = kn_tensor_numel(c);
        int row_vec = cn == p->N && (c->rank == 1 || (c->rank >= 1 && c->dims[c->rank - 1] == p->N));
        int full = n->op == KN_OP_Gemm && c->rank == 2 && c->dims[0] == p->M && c->dims[1] == p->N;
        if (row_vec && p->beta == 1.0f && p->N > 1) p->bias_mode = KN_BIAS_LT;
        else if (full) p->bias_mode = KN_BIAS_C;
        else p->bias_mode = KN_BIAS_KILN;
    }
    if (p->bias_mode == KN_BIAS_LT) {
        p->lt_act = lt_act_ok;
        p->epilogue = !p->lt_act || p->act == KN_ACT_NONE ? CUBLASLT_EPILOGUE_BIAS
                    : p->act == KN_ACT_RELU                ? CUBLASLT_EPILOGUE_RELU_BIAS
                                                           : CUBLASLT_EPILOGUE_GELU_BIAS;
    } else if (p->bias_mode != KN_BIAS_KILN && p->act != KN_ACT_NONE && lt_act_ok) {
        p->lt_act = 1;
        p->epilogue = p->act == KN_ACT_RELU ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_GELU;
    }
    return KILN_OK;
}

static kiln_status kn_mm_lt_types(const kn_kernel_args *a, kiln_dtype t, cudaDataType_t *dt, cublasComputeType_t *ct, cudaDataType_t *st) {
    switch (t) {
    case KILN_F32:
        *dt = CUDA_R_32F; *st = CUDA_R_32F;
        *ct = kn_precision_of(a) == KILN_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        return KILN_OK;
    case KILN_F16: *dt = CUDA_R_16F; *st = CUDA_R_32F; *ct = CUBLAS_COMPUTE_32F; return KILN_OK;
    case KILN_BF16: *dt = CUDA_R_16BF; *st = CUDA_R_32F; *ct = CUBLAS_COMPUTE_32F; return KILN_OK;
    case KILN_F64: *dt = CUDA_R_64F; *st = CUDA_R_64F; *ct = CUBLAS_COMPUTE_64F; return KILN_OK;
    default: return kn_node_error(a->node, KILN_ERR_DTYPE, "cuBLASLt does not take %s here", kiln_dtype_name(t));
    }
}

static kiln_status kn_mm_set_layout_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
    if (batch <= 1) return KILN_OK;
    int32_t bc = (int32_t)batch;
    KN_CUBLAS(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
    KN_CUBLAS(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    return KILN_OK;
}

/* Alignment (bytes) of every pointer a launch of this plan can use. */
static uint32_t kn_mm_align(const kn_kernel_args *a, const kn_mm_plan *p) {
    size_t es = kiln_dtype_size(p->dtype);
    uint64_t acc = 0;
    acc |= (uint64_t)(uintptr_t)a->in[0].data | (uint64_t)(uintptr_t)a->in[1].data | (uint64_t)(uintptr_t)a->out[0].data;
    if (p->bias_mode == KN_BIAS_C || p->bias_mode == KN_BIAS_LT) acc |= (uint64_t)(uintptr_t)a->in[p->bias_input].data;
    acc |= (uint64_t)(p->sa * es) | (uint64_t)(p->sb * es) | (uint64_t)(p->sd * es);
    for (int i = 0; i < p->orank; i++) acc |= (uint64_t)(p->oa[i] * es) | (uint64_t)(p->ob[i] * es) | (uint64_t)(p->od[i] * es);
    return kn_align_of(acc ? acc : 256);
}

static kiln_status kn_mm_heuristics(const kn_kernel_args *a, kn_mm_plan *p, uint32_t align) {
    cublasLtHandle_t h = kn_lt_handle(a);
    if (!h) return kn_node_error(a->node, KILN_ERR_DEVICE, "no cuBLASLt handle");
    cublasLtMatmulPreference_t pref = NULL;
    kiln_status st = KILN_OK;
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceCreate(&pref), done);
    uint64_t ws = KN_CUBLASLT_WS_BYTES;
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), done);
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, sizeof align), done);
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, sizeof align), done);
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof align), done);
    KN_CUBLAS_GOTO(st, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof align), done);
    int got = 0;
    cublasStatus_t e = cublasLtMatmulAlgoGetHeuristic(h, p->op, p->la, p->lb, p->lc, p->lc, pref, KN_LT_MAX_ALGOS, p->algo, &got);
    if (e != CUBLAS_STATUS_SUCCESS || got <= 0) {
        char lbl[160];
        st = kn_error(KILN_ERR_UNSUPPORTED,
                      "step %s: cuBLASLt has no algorithm for %s M=%lld N=%lld K=%lld batch=%lld (%s)",
                      kn_node_label(a->node, lbl, sizeof lbl), kiln_dtype_name(p->dtype), (long long)p->M,
                      (long long)p->N, (long long)p->K, (long long)p->batch, kn_cublas_status_name(e));
        goto done;
    }
    p->n_algo = got;
    p->align = align;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    return st;
}

static kiln_status kn_mm_prepare(const kn_kernel_args *a, void **state) {
    *state = NULL;
    kn_cuda_set_node(a->node);
    kn_mm_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a matrix product");
    kiln_status st = kn_mm_shape(a, p);
    if (st != KILN_OK) goto fail;
    if (p->M == 0 || p->N == 0 || p->K == 0) { *state = p; return KILN_OK; } /* nothing for cuBLASLt */
    cudaDataType_t dt = CUDA_R_32F, sct = CUDA_R_32F;
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    KN_CHECK_GOTO(st, kn_mm_lt_types(a, p->dtype, &dt, &ct, &sct), fail);
    KN_CUBLAS_GOTO(st, cublasLtMatmulDescCreate(&p->op, ct, sct), fail);
    cublasOperation_t opa = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    KN_CUBLAS_GOTO(st, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), fail);
    KN_CUBLAS_GOTO(st, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), fail);
    KN_CUBLAS_GOTO(st, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &p->epilogue, sizeof p->epilogue), fail);
    if (p->bias_mode == KN_BIAS_LT) {
        const void *bp = a->in[p->bias_input].data;
        KN_CUBLAS_GOTO(st, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp), fail);
        if (p->batch > 1) {
            int64_t zero = 0;
            KN_CUBLAS_GOTO(st, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &zero, sizeof zero), fail);
        }
    }
    /* Lt's A is our B, Lt's B is our A (column-major view of row-major data) */
    uint64_t la_r = p->tb ? p->K : p->N, la_c = p->tb ? p->N : p->K;
    uint64_t lb_r = p->ta ? p->M : p->K, lb_c = p->ta ? p->K : p->M;
    KN_CUBLAS_GOTO(st, cublasLtMatrixLayoutCreate(&p->la, dt, la_r, la_c, (int64_t)la_r), fail);
    KN_CUBLAS_GOTO(st, cublasLtMatrixLayoutCreate(&p->lb, dt, lb_r, lb_c, (int64_t)lb_r), fail);
    KN_CUBLAS_GOTO(st, cublasLtMatrixLayoutCreate(&p->lc, dt, (uint64_t)p->N, (uint64_t)p->M, p->N), fail);
    KN_CHECK_GOTO(st, kn_mm_set_layout_batch(p->la, p->batch, p->sb), fail);
    KN_CHECK_GOTO(st, kn_mm_set_layout_batch(p->lb, p->batch, p->sa), fail);
    KN_CHECK_GOTO(st, kn_mm_set_layout_batch(p->lc, p->batch, p->sd), fail);
    KN_CHECK_GOTO(st, kn_mm_heuristics(a, p, kn_mm_align(a, p)), fail);
    *state = p;
    return KILN_OK;
fail:
    kn_mm_plan_free(p);
    return st;
}

static int kn_mm_num_tactics(const kn_kernel_args *a) {
    void *s = NULL;
    if (kn_mm_prepare(a, &s) != KILN_OK) {
        kn_clear_error();
        return 1;
    }
    kn_mm_plan *p = s;
    int n = p->n_algo > 0 ? p->n_algo : 1;
    kn_mm_plan_free(p);
    return n;
}

static kiln_status kn_mm_run(const kn_kernel_args *a) {
    kn_mm_plan *p = a->state;
    kn_mm_plan local_plan;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the matrix product was not prepared for this shape");
    cudaStream_t s = kn_cuda_stream(a);
    kn_cuda_ctx *c = kn_cuda_ctx_of(a);
    const kn_tensor *A = &a->in[0], *B = &a->in[1], *Y = &a->out[0];
    const kn_tensor *bias = p->bias_input >= 0 ? &a->in[p->bias_input] : NULL;
    if (p->M == 0 || p->N == 0) return KILN_OK;
    if (p->K == 0) {
        KN_CU(cudaMemsetAsync(Y->data, 0, kn_tensor_bytes(Y), s));
        return kn_cuda_epilogue(a, Y, bias, p->beta, NULL, p->act, p->act_alpha, p->act_beta);
    }
    if (!c) return kn_node_error(a->node, KILN_ERR_INTERNAL, "a matrix product ran outside a session");
    if (kn_mm_align(a, p) < p->align) {
        /* the pointers moved to a coarser alignment than planned: re-query (host only) */
        local_plan = *p;
        KN_TRY(kn_mm_heuristics(a, &local_plan, kn_mm_align(a, p)));
        p = &local_plan;
    }
    if (p->bias_mode == KN_BIAS_LT) {
        const void *bp = bias->data;
        KN_CUBLAS(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
    }
    int t = a->tactic >= 0 && a->tactic < p->n_algo ? a->tactic : 0;
    const cublasLtMatmulAlgo_t *algo = &p->algo[t].algo;
    double alpha_d = p->alpha, beta_d = p->bias_mode == KN_BIAS_C ? p->beta : 0.0;
    float alpha_f = p->alpha, beta_f = (float)beta_d;
    const void *alpha = p->dtype == KILN_F64 ? (const void *)&alpha_d : (const void *)&alpha_f;
    const void *beta = p->dtype == KILN_F64 ? (const void *)&beta_d : (const void *)&beta_f;
    const void *cptr = p->bias_mode == KN_BIAS_C ? bias->data : Y->data;
    size_t es = kiln_dtype_size(p->dtype);
    for (int64_t o = 0; o < p->n_outer; o++) {
        int64_t oa = 0, ob = 0, od = 0, rem = o;
        for (int i = p->orank - 1; i >= 0; i--) {
            int64_t idx = rem % p->odims[i];
            rem /= p->odims[i];
            oa += idx * p->oa[i]; ob += idx * p->ob[i]; od += idx * p->od[i];
        }
        const char *pa = (const char *)A->data + oa * es, *pb = (const char *)B->data + ob * es;
        char *pd = (char *)Y->data + od * es;
        const char *pc = p->bias_mode == KN_BIAS_C ? (const char *)cptr : pd;
        KN_CUBLAS(cublasLtMatmul(c->lt, p->op, alpha, pb, p->la, pa, p->lb, beta, pc, p->lc, pd, p->lc, algo,
                                 c->lt_ws, c->lt_ws_bytes, s));
    }
    /* what cuBLASLt did not do */
    const kn_tensor *kb = p->bias_mode == KN_BIAS_KILN ? bias : NULL;
    int act = p->lt_act ? KN_ACT_NONE : p->act;
    float scale = a->node->op == KN_OP_Gemm ? p->beta : 1.0f; /* Gemm's C is scaled by beta */
    return kn_cuda_epilogue(a, Y, kb, scale, NULL, act, p->act_alpha, p->act_beta);
}

static int kn_sup_mm(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    return kn_cuda_is_fp_or_f64(t) && kn_cuda_in_dtype(g, n, 1) == t;
}

void kn_cuda_register_gemm(kn_cuda_op *t) {
    kn_kernel k = {.name = "cublaslt.matmul", .run = kn_mm_run, .prepare = kn_mm_prepare, .release = kn_mm_plan_free,
                   .num_tactics = kn_mm_num_tactics};
    t[KN_OP_Gemm] = (kn_cuda_op){.engine = k, .supports = kn_sup_mm};
    k.name = "cublaslt.matmul";
    t[KN_OP_MatMul] = (kn_cuda_op){.engine = k, .supports = kn_sup_mm};
}
