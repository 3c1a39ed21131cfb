/* ReduceSum, ReduceMean, ReduceMax, ReduceMin on CUDA. The axes (an input, or the old attribute)
 * are read on the host; the dims are coalesced into kept and reduced groups and the launch picks
 * rows, columns or the generic walk (reduce.cu). An empty input into a non-empty output is a fill
 * with the reduction's identity. Max and Min also take bool. */
#include "cuda_internal.h"

/* The bit pattern an empty reduction yields, as the CPU backend defines it (ONNX 18): Sum 0, Mean
 * NaN (integers 0), Max the lowest value of the type (-inf), Min the highest (+inf). */
static int kn_reduce_identity(int op, kiln_dtype t, uint64_t *bits) {
    uint64_t lowest, highest, nan = 0;
    switch (t) {
    case KILN_F32: lowest = 0xFF800000u; highest = 0x7F800000u; nan = 0x7FC00000u; break;
    case KILN_F16: lowest = 0xFC00u; highest = 0x7C00u; nan = 0x7E00u; break;
    case KILN_BF16: lowest = 0xFF80u; highest = 0x7F80u; nan = 0x7FC0u; break;
    case KILN_F64: lowest = 0xFFF0000000000000ull; highest = 0x7FF0000000000000ull; nan = 0x7FF8000000000000ull; break;
    case KILN_I64: lowest = 0x8000000000000000ull; highest = 0x7FFFFFFFFFFFFFFFull; break;
    case KILN_I32: lowest = 0x80000000u; highest = 0x7FFFFFFFu; break;
    case KILN_I8: lowest = 0x80u; highest = 0x7Fu; break;
    case KILN_U8: lowest = 0; highest = 0xFFu; break;
    case KILN_BOOL: lowest = 0; highest = 1; break;
    default: return 0;
    }
    *bits = op == KNC_RED_MAX ? lowest : op == KNC_RED_MIN ? highest : op == KNC_RED_MEAN ? nan : 0;
    return 1;
}

static kiln_status kn_cuda_reduce_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int r = x->rank;
    int64_t axes[KILN_MAX_RANK];
    int na = 0, have_axes = 0;
    if (a->n_in > 1 && kn_tensor_present(&a->in[1])) {
        KN_TRY(kn_host_ints(n, &a->in[1], 1, axes, KILN_MAX_RANK, &na));
        have_axes = 1;
    } else {
        const int64_t *aa = NULL;
        na = kn_attr_ints(n, "axes", &aa);
        if (na > KILN_MAX_RANK) return kn_node_error(n, KILN_ERR_SHAPE, "%d axes for rank %d", na, r);
        for (int i = 0; i < na; i++) axes[i] = aa[i];
        have_axes = na > 0;
    }
    int mask[KILN_MAX_RANK] = {0};
    if (!have_axes || na == 0) {
        if (kn_attr_i(n, "noop_with_empty_axes", 0))
            return kn_cuda_copy_tensor(a, y->data, x->data, kn_tensor_bytes(y));
        for (int d = 0; d < r; d++) mask[d] = 1;
    } else {
        for (int i = 0; i < na; i++) {
            int ax;
            KN_TRY(kn_norm_axis(n, axes[i], r, &ax));
            mask[ax] = 1;
        }
    }
    /* coalesce: unit dims vanish, neighbours with the same role merge */
    int64_t gd[KILN_MAX_RANK];
    int gm[KILN_MAX_RANK], ng = 0;
    for (int d = 0; d < r; d++) {
        if (x->dims[d] == 1) continue;
        if (ng > 0 && gm[ng - 1] == mask[d]) {
            gd[ng - 1] *= x->dims[d];
            continue;
        }
        gd[ng] = x->dims[d];
        gm[ng] = mask[d];
        ng++;
    }
    int n_red_groups = 0;
    for (int i = 0; i < ng; i++) n_red_groups += gm[i];
    int op = n->op == KN_OP_ReduceSum ? KNC_RED_SUM : n->op == KN_OP_ReduceMean ? KNC_RED_MEAN
           : n->op == KN_OP_ReduceMax ? KNC_RED_MAX : KNC_RED_MIN;
    knc_reduce p = {.op = op, .dtype = x->dtype, .in = x->data, .out = y->data};
    if (kn_tensor_numel(x) == 0) {
        /* an empty reduced extent: every output is the reduction's identity (a fill kernel, so the
         * step stays capturable) */
        if (kn_tensor_numel(y) == 0) return KILN_OK;
        uint64_t bits;
        if (!kn_reduce_identity(op, y->dtype, &bits))
            return kn_node_error(n, KILN_ERR_DTYPE, "an empty reduction into %s is not supported on CUDA",
                                 kiln_dtype_name(y->dtype));
        KN_CU(knc_fill(y->data, (int)kiln_dtype_size(y->dtype), bits, kn_tensor_numel(y), kn_cuda_stream(a)));
        return KILN_OK;
    }
    if (n_red_groups == 0) return kn_cuda_copy_tensor(a, y->data, x->data, kn_tensor_bytes(y));
    if (gm[ng - 1] && (ng == 1 || (ng == 2 && !gm[0]))) {
        p.mode = KNC_RED_ROWS;
        p.outer = ng == 2 ? gd[0] : 1;
        p.len = gd[ng - 1];
        p.inner = 1;
    } else if (n_red_groups == 1 && !gm[ng - 1] && (ng == 2 || (ng == 3 && !gm[0]))) {
        p.mode = KNC_RED_COLS;
        p.outer = ng == 3 ? gd[0] : 1;
        p.len = gd[ng - 2];
        p.inner = gd[ng - 1];
    } else {
        p.mode = KNC_RED_GENERIC;
        int64_t st[KILN_MAX_RANK], s = 1;
        for (int i = ng - 1; i >= 0; i--) { st[i] = s; s *= gd[i]; }
        p.n_out = 1;
        p.n_red_total = 1;
        for (int i = 0; i < ng; i++) {
            if (gm[i]) {
                p.red_dims[p.n_red] = gd[i];
                p.red_strides[p.n_red++] = st[i];
                p.n_red_total *= gd[i];
            } else {
                p.keep_dims[p.n_keep] = gd[i];
                p.keep_strides[p.n_keep++] = st[i];
                p.n_out *= gd[i];
            }
        }
    }
    KN_CU(knc_reduce_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* The op's types: numbers, and bool for Max and Min (0/1 in uint8: max is any, min is all). */
static int kn_sup_reduce(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    if (n->op == KN_OP_ReduceMean) return kn_cuda_is_fp_or_f64(t);
    if (t == KILN_BOOL) return n->op == KN_OP_ReduceMax || n->op == KN_OP_ReduceMin;
    return t != KILN_DTYPE_INVALID;
}

void kn_cuda_register_reduce(kn_cuda_op *t) {
    t[KN_OP_ReduceSum] = (kn_cuda_op){.engine = {.name = "cuda.reduce_sum", .run = kn_cuda_reduce_run}, .supports = kn_sup_reduce};
    t[KN_OP_ReduceMean] = (kn_cuda_op){.engine = {.name = "cuda.reduce_mean", .run = kn_cuda_reduce_run}, .supports = kn_sup_reduce};
    t[KN_OP_ReduceMax] = (kn_cuda_op){.engine = {.name = "cuda.reduce_max", .run = kn_cuda_reduce_run}, .supports = kn_sup_reduce};
    t[KN_OP_ReduceMin] = (kn_cuda_op){.engine = {.name = "cuda.reduce_min", .run = kn_cuda_reduce_run}, .supports = kn_sup_reduce};
}
