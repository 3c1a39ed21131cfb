/* Pooling, softmax and normalization ops on CUDA (kiln's own kernels in nn.cu and reduce.cu). */
#include "cuda_internal.h"
#include "ops/attention.h"

/* ---- pooling ---------------------------------------------------------------------------------- */

static kiln_status kn_cuda_pool_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int nsp = x->rank - 2;
    if (nsp < 1 || nsp > 3) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "pooling over %d spatial dims (1 to 3 supported)", nsp);
    const int64_t *ks = NULL, *ss = NULL, *ps = NULL, *ds = NULL;
    int nk = kn_attr_ints(n, "kernel_shape", &ks), nss = kn_attr_ints(n, "strides", &ss);
    int npd = kn_attr_ints(n, "pads", &ps), nd = kn_attr_ints(n, "dilations", &ds);
    if (nk != nsp) return kn_node_error(n, KILN_ERR_SHAPE, "kernel_shape has %d entries for %d spatial dims", nk, nsp);
    if ((nss && nss != nsp) || (nd && nd != nsp) || (npd && npd != 2 * nsp))
        return kn_node_error(n, KILN_ERR_SHAPE, "strides, dilations or pads do not match %d spatial dims", nsp);
    const char *auto_pad = kn_attr_s(n, "auto_pad", "NOTSET");
    knc_pool p = {.is_max = n->op == KN_OP_MaxPool, .nsp = nsp, .dtype = x->dtype, .in = x->data, .out = y->data};
    p.count_include_pad = (int)kn_attr_i(n, "count_include_pad", 0);
    p.nc = x->dims[0] * x->dims[1];
    p.c = x->dims[1];
    /* kiln.layout = 1: physically [N, H, W, C] (the dims stay logical NCHW); nc then counts batch
     * rows in the kernel's index arithmetic (nc / c of them, each with c channels innermost) */
    p.nhwc = kn_attr_i(n, "kiln.layout", 0) == 1 && x->rank == 4;
    for (int d = 0; d < 3; d++) {
        int j = d - (3 - nsp); /* spatial index, < 0 for the unused leading slots */
        if (j < 0) {
            p.in_sp[d] = p.out_sp[d] = p.k[d] = p.stride[d] = p.dil[d] = 1;
            p.pad_begin[d] = p.pad_end[d] = 0;
            continue;
        }
        p.in_sp[d] = x->dims[2 + j];
        p.out_sp[d] = y->dims[2 + j];
        p.k[d] = ks[j];
        p.stride[d] = nss ? ss[j] : 1;
        p.dil[d] = nd ? ds[j] : 1;
        if (p.k[d] < 1 || p.stride[d] < 1 || p.dil[d] < 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "kernel, stride and dilation must be positive");
        if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
            int64_t total = (p.out_sp[d] - 1) * p.stride[d] + (p.k[d] - 1) * p.dil[d] + 1 - p.in_sp[d];
            if (total < 0) total = 0;
            p.pad_begin[d] = auto_pad[5] == 'U' ? total / 2 : total - total / 2;
            p.pad_end[d] = total - p.pad_begin[d];
        } else if (strcmp(auto_pad, "VALID") == 0) {
            p.pad_begin[d] = p.pad_end[d] = 0;
        } else {
            p.pad_begin[d] = npd ? ps[j] : 0;
            p.pad_end[d] = npd ? ps[nsp + j] : 0;
        }
    }
    if (p.is_max && a->n_out > 1 && kn_tensor_present(&a->out[1]) && a->out[1].data) {
        if (p.nhwc) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "MaxPool indices in NHWC layout are not supported");
        p.indices = a->out[1].data;
        p.col_major = kn_attr_i(n, "storage_order", 0) == 1;
    }
    KN_CU(knc_pool_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_global_pool_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (x->rank < 2) return kn_node_error(a->node, KILN_ERR_SHAPE, "the input needs rank 2 or more, got %d", x->rank);
    knc_reduce p = {.op = a->node->op == KN_OP_GlobalMaxPool ? KNC_RED_MAX : KNC_RED_MEAN, .mode = KNC_RED_ROWS,
                    .dtype = x->dtype, .in = x->data, .out = y->data};
    p.outer = x->dims[0] * x->dims[1];
    p.len = kn_tensor_numel(x) / (p.outer ? p.outer : 1);
    p.inner = 1;
    if (kn_attr_i(a->node, "kiln.layout", 0) == 1 && x->rank == 4) {
        /* NHWC input [N, H*W, C]: reduce the middle dim; the [N, C, 1, 1] output has the same bytes in
         * both layouts */
        p.mode = KNC_RED_COLS;
        p.outer = x->dims[0];
        p.len = x->dims[2] * x->dims[3];
        p.inner = x->dims[1];
    }
    KN_CU(knc_reduce_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* ---- softmax -------------------------------------------------------------------------------------- */

static kiln_status kn_cuda_softmax_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", -1), x->rank, &axis));
    int64_t outer = 1, inner = 1, len = x->rank ? x->dims[axis] : 1;
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++) inner *= x->dims[d];
    KN_CU(knc_softmax(x->data, y->data, x->dtype, outer, len, inner, a->node->op == KN_OP_LogSoftmax, kn_cuda_stream(a)));
    return KILN_OK;
}

/* ---- normalization ------------------------------------------------------------------------------- */

static kiln_status kn_cuda_layernorm_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int axis;
    KN_TRY(kn_norm_axis(n, kn_attr_i(n, "axis", -1), x->rank, &axis));
    knc_rownorm p = {.dtype = x->dtype, .x = x->data, .y = y->data, .eps = kn_attr_f(n, "epsilon", 1e-5f)};
    p.rows = 1;
    p.len = 1;
    for (int d = 0; d < axis; d++) p.rows *= x->dims[d];
    for (int d = axis; d < x->rank; d++) p.len *= x->dims[d];
    const kn_tensor *sc = a->n_in > 1 ? &a->in[1] : NULL, *b = a->n_in > 2 ? &a->in[2] : NULL;
    if (sc && kn_tensor_present(sc)) {
        int64_t k = kn_tensor_numel(sc);
        if (k != p.len && k != 1)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "Scale has %lld elements; the CUDA kernel takes %lld or 1",
                                 (long long)k, (long long)p.len);
        p.gamma = sc->data;
        p.gamma_scalar = k == 1;
        p.param_dtype = sc->dtype;
    }
    if (b && kn_tensor_present(b)) {
        int64_t k = kn_tensor_numel(b);
        if (k != p.len && k != 1)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "B has %lld elements; the CUDA kernel takes %lld or 1",
                                 (long long)k, (long long)p.len);
        if (sc && kn_tensor_present(sc) && b->dtype != sc->dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "Scale and B have different element types");
        p.beta = b->data;
        p.beta_scalar = k == 1;
        p.param_dtype = b->dtype;
    }
    if (a->n_in > 3 && kn_tensor_present(&a->in[3])) { /* the fused residual, added to X before normalizing */
        const kn_tensor *r = &a->in[3];
        if (r->dtype != x->dtype || kn_tensor_numel(r) != kn_tensor_numel(x))
            return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (the fused residual) must have X's type and size");
        p.res = r->data;
    }
    if (a->n_out > 1 && kn_tensor_present(&a->out[1])) { p.mean = a->out[1].data; p.stat_dtype = a->out[1].dtype; }
    if (a->n_out > 2 && kn_tensor_present(&a->out[2])) { p.rstd = a->out[2].data; p.stat_dtype = a->out[2].dtype; }
    if (!p.stat_dtype) p.stat_dtype = KILN_F32;
    KN_CU(knc_rownorm_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_instnorm_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (x->rank < 3) return kn_node_error(n, KILN_ERR_SHAPE, "the input needs rank 3 or more, got %d", x->rank);
    if (a->in[1].dtype != a->in[2].dtype) return kn_node_error(n, KILN_ERR_DTYPE, "scale and B have different element types");
    knc_rownorm p = {.dtype = x->dtype, .param_dtype = a->in[1].dtype, .x = x->data, .y = y->data,
                     .gamma = a->in[1].data, .beta = a->in[2].data, .per_channel = 1, .stat_dtype = KILN_F32,
                     .eps = kn_attr_f(n, "epsilon", 1e-5f)};
    p.channels = x->dims[1];
    p.rows = x->dims[0] * x->dims[1];
    p.len = p.rows ? kn_tensor_numel(x) / p.rows : 0;
    KN_CU(knc_rownorm_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_batchnorm_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (kn_attr_i(n, "training_mode", 0)) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "training_mode is not supported");
    if (x->rank < 2) return kn_node_error(n, KILN_ERR_SHAPE, "the input needs rank 2 or more, got %d", x->rank);
    if (a->in[1].dtype != a->in[2].dtype || a->in[3].dtype != a->in[4].dtype)
        return kn_node_error(n, KILN_ERR_DTYPE, "scale/B or mean/var have different element types");
    knc_batchnorm p = {.dtype = x->dtype, .scale_dtype = a->in[1].dtype, .stat_dtype = a->in[3].dtype, .x = x->data,
                       .scale = a->in[1].data, .bias = a->in[2].data, .mean = a->in[3].data, .var = a->in[4].data,
                       .y = y->data, .eps = kn_attr_f(n, "epsilon", 1e-5f)};
    p.n = x->dims[0];
    p.c = x->dims[1];
    p.inner = 1;
    for (int d = 2; d < x->rank; d++) p.inner *= x->dims[d];
    KN_CU(knc_batchnorm_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_attention_run(const kn_kernel_args *a) {
    kn_attn_geom g;
    KN_TRY(kn_attn_geometry(a->node, &a->in[0], &a->in[1], &a->in[2], &g));
    if (g.dk > KNC_ATTN_MAX_D || g.dv > KNC_ATTN_MAX_D)
        return kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "heads of %lld (Q/K) and %lld (V) columns; the CUDA kernel takes up to %d",
                             (long long)g.dk, (long long)g.dv, KNC_ATTN_MAX_D);
    const kn_attn_operand *src[3] = {&g.q, &g.k, &g.v};
    knc_attn_operand op[3];
    for (int k = 0; k < 3; k++) {
        size_t es = kiln_dtype_size(a->in[k].dtype);
        op[k] = (knc_attn_operand){.p = (const char *)a->in[k].data + (size_t)src[k]->off * es, .n_inner = src[k]->n_inner,
                                   .s_outer = src[k]->s_outer, .s_inner = src[k]->s_inner, .s_l = src[k]->s_l, .s_d = src[k]->s_d};
    }
    knc_attention p = {.dtype = a->in[0].dtype, .n = g.n, .lq = g.lq, .lk = g.lk, .dk = (int)g.dk, .dv = (int)g.dv,
                       .alpha = g.alpha, .q = op[0], .k = op[1], .v = op[2], .y = a->out[0].data,
                       .y_n_inner = g.y.n_inner, .y_s_outer = g.y.s_outer, .y_s_inner = g.y.s_inner, .y_s_l = g.y.s_l,
                       .y_s_d = g.y.s_d};
    KN_CU(knc_attention_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* ---- what the kernels take --------------------------------------------------------------------- */

static int kn_sup_float(const kn_graph *g, const kn_node *n) { return kn_cuda_is_fp_or_f64(kn_cuda_in_dtype(g, n, 0)); }
/* KilnAttention: f32/f16/bf16 with heads of at most KNC_ATTN_MAX_D columns at every shape. The
 * static dims, unknown and symbolic ones set to 1 and then to 1000, must give the same small
 * Dk and Dv (so the head sizes do not depend on a symbol). */
static int kn_sup_attention(const kn_graph *g, const kn_node *n) {
    if (!kn_cuda_is_fp(kn_cuda_in_dtype(g, n, 0)) || n->n_in != 3) return 0;
    int64_t d[2][2];
    for (int probe = 0; probe < 2; probe++) {
        kn_tensor t[3];
        for (int k = 0; k < 3; k++) {
            if (n->in[k] < 0) return 0;
            const kn_value *v = &g->values[n->in[k]];
            t[k] = (kn_tensor){.dtype = v->dtype, .rank = v->rank};
            if (v->rank < 0 || v->rank > KILN_MAX_RANK) return 0;
            for (int i = 0; i < v->rank; i++) t[k].dims[i] = v->dims[i].sym < 0 && v->dims[i].v >= 0 ? v->dims[i].v : probe ? 1000 : 1;
        }
        kn_attn_geom ag;
        if (kn_attn_geometry(n, &t[0], &t[1], &t[2], &ag) != KILN_OK) {
            kn_clear_error();
            return 0;
        }
        d[probe][0] = ag.dk;
        d[probe][1] = ag.dv;
    }
    return d[0][0] == d[1][0] && d[0][1] == d[1][1] && d[0][0] <= KNC_ATTN_MAX_D && d[0][1] <= KNC_ATTN_MAX_D;
}
/* MaxPool takes what the op takes (floats, int8, uint8), AveragePool floats only. */
static int kn_sup_pool(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    if (!kn_cuda_is_fp_or_f64(t) && !(n->op == KN_OP_MaxPool && (t == KILN_I8 || t == KILN_U8))) return 0;
    const kn_value *x = n->in[0] >= 0 ? &g->values[n->in[0]] : NULL;
    return !x || x->rank < 0 || (x->rank >= 3 && x->rank <= 5);
}
static int kn_sup_batchnorm(const kn_graph *g, const kn_node *n) {
    return kn_sup_float(g, n) && kn_attr_i(n, "training_mode", 0) == 0;
}

void kn_cuda_register_nn(kn_cuda_op *t) {
#define KN_NN(op, fn, sup, nm) t[KN_OP_##op] = (kn_cuda_op){.engine = {.name = nm, .run = fn}, .supports = sup}
    KN_NN(MaxPool, kn_cuda_pool_run, kn_sup_pool, "cuda.maxpool");
    KN_NN(AveragePool, kn_cuda_pool_run, kn_sup_pool, "cuda.avgpool");
    KN_NN(GlobalAveragePool, kn_cuda_global_pool_run, kn_sup_float, "cuda.global_avgpool");
    KN_NN(GlobalMaxPool, kn_cuda_global_pool_run, kn_sup_float, "cuda.global_maxpool");
    KN_NN(Softmax, kn_cuda_softmax_run, kn_sup_float, "cuda.softmax");
    KN_NN(LogSoftmax, kn_cuda_softmax_run, kn_sup_float, "cuda.log_softmax");
    KN_NN(LayerNormalization, kn_cuda_layernorm_run, kn_sup_float, "cuda.layer_norm");
    KN_NN(InstanceNormalization, kn_cuda_instnorm_run, kn_sup_float, "cuda.instance_norm");
    KN_NN(BatchNormalization, kn_cuda_batchnorm_run, kn_sup_batchnorm, "cuda.batch_norm");
    KN_NN(KilnAttention, kn_cuda_attention_run, kn_sup_attention, "cuda.attention");
#undef KN_NN
}
