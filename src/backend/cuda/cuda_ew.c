/* Elementwise ops on CUDA: unary math and activations, broadcasting binaries, variadic
 * Min/Max/Sum/Mean, comparisons, logic, Where, Clip, Cast, Identity and Dropout, plus the fused
 * epilogue used after cuDNN and cuBLASLt calls. One kernel (ew.cu) serves them all. */
#include "cuda_internal.h"

/* ---- broadcasting setup ------------------------------------------------------------------------ */

kiln_status kn_cuda_ew_setup(knc_ew *p, const kn_node *n, const kn_tensor *out,
                             const kn_tensor *const *in, int n_in) {
    memset(p, 0, sizeof *p);
    if (n_in > KNC_EW_MAX_IN)
        return kn_node_error(n, KILN_ERR_INTERNAL, "%d inputs for one elementwise launch (at most %d)", n_in,
                             KNC_EW_MAX_IN);
    if (out->rank > KNC_MAX_RANK) return kn_node_error(n, KILN_ERR_SHAPE, "rank %d is above %d", out->rank, KNC_MAX_RANK);
    int r = out->rank;
    int64_t dims[KNC_MAX_RANK], st[KNC_EW_MAX_IN][KNC_MAX_RANK];
    memset(st, 0, sizeof st);
    for (int d = 0; d < r; d++) dims[d] = out->dims[d];
    for (int k = 0; k < n_in; k++) {
        const kn_tensor *t = in[k];
        p->in[k] = t ? t->data : NULL;
        if (!t) continue;
        if (t->rank > r)
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d has rank %d, above the output's %d", k, t->rank, r);
        int off = r - t->rank;
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int j = d - off;
            if (j < 0 || t->dims[j] == 1) {
                st[k][d] = 0;
            } else {
                if (t->dims[j] != dims[d])
                    return kn_node_error(n, KILN_ERR_SHAPE, "input %d dim %d is %lld, does not broadcast to %lld", k, j,
                                         (long long)t->dims[j], (long long)dims[d]);
                st[k][d] = s;
            }
            if (j >= 0) s *= t->dims[j];
        }
    }
    /* drop dims of size 1, then merge neighbours that are contiguous for every input */
    int cr = 0;
    for (int d = 0; d < r; d++) {
        if (dims[d] == 1) continue;
        if (cr > 0) {
            int merge = 1;
            /* against the kept dim's stride as merged so far (comparing the original stride of
             * dim cr - 1 stopped every merge after the first: 4-D tensors stayed rank 3 and
             * every elementwise op took the slow indexed path) */
            for (int k = 0; k < n_in && merge; k++)
                if (p->strides[k][cr - 1] != st[k][d] * dims[d]) merge = 0;
            if (merge) {
                p->dims[cr - 1] *= dims[d];
                for (int k = 0; k < n_in; k++) p->strides[k][cr - 1] = st[k][d];
                continue;
            }
        }
        p->dims[cr] = dims[d];
        for (int k = 0; k < n_in; k++) p->strides[k][cr] = st[k][d];
        cr++;
    }
    p->rank = cr;
    p->n = kn_numel(r, dims);
    p->n_in = n_in;
    p->out = out->data;
    p->dtype = out->dtype;
    p->out_dtype = out->dtype;
    return KILN_OK;
}

void kn_cuda_node_act(const kn_node *n, int *act, float *alpha, float *beta) {
    *act = (int)kn_attr_i(n, "kiln.act", KN_ACT_NONE);
    *alpha = kn_attr_f(n, "kiln.act_alpha", *act == KN_ACT_LEAKY_RELU ? 0.01f : 0.0f);
    *beta = kn_attr_f(n, "kiln.act_beta", 0.0f);
    if (*act == KN_ACT_RELU6) { *alpha = 0; *beta = 6; }
}

kiln_status kn_cuda_epilogue(const kn_kernel_args *a, const kn_tensor *y, const kn_tensor *bias, float scale,
                             const kn_tensor *residual, int act, float act_alpha, float act_beta) {
    if (!bias && !residual && act == KN_ACT_NONE) return KILN_OK;
    knc_ew p;
    const kn_tensor *ins[3] = {y, bias, residual};
    KN_TRY(kn_cuda_ew_setup(&p, a->node, y, ins, 3));
    p.op = KNC_EPILOGUE;
    p.flags = (bias ? 1 : 0) | (residual ? 2 : 0);
    p.scale = scale;
    p.act = act;
    p.alpha = act_alpha;
    p.beta = act_beta;
    KN_CU(knc_ew_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* ---- ops ------------------------------------------------------------------------------------------ */

static int kn_ew_code(kn_op op) {
    switch (op) {
    case KN_OP_Relu: return KNC_RELU;
    case KN_OP_LeakyRelu: return KNC_LEAKY_RELU;
    case KN_OP_Elu: return KNC_ELU;
    case KN_OP_Selu: return KNC_SELU;
    case KN_OP_HardSigmoid: return KNC_HARD_SIGMOID;
    case KN_OP_HardSwish: return KNC_HARD_SWISH;
    case KN_OP_Sigmoid: return KNC_SIGMOID;
    case KN_OP_Tanh: return KNC_TANH;
    case KN_OP_Erf: return KNC_ERF;
    case KN_OP_Gelu: return KNC_GELU;
    case KN_OP_Softplus: return KNC_SOFTPLUS;
    case KN_OP_Mish: return KNC_MISH;
    case KN_OP_Sqrt: return KNC_SQRT;
    case KN_OP_Reciprocal: return KNC_RECIPROCAL;
    case KN_OP_Neg: return KNC_NEG;
    case KN_OP_Abs: return KNC_ABS;
    case KN_OP_Exp: return KNC_EXP;
    case KN_OP_Log: return KNC_LOG;
    case KN_OP_Floor: return KNC_FLOOR;
    case KN_OP_Ceil: return KNC_CEIL;
    case KN_OP_Add: return KNC_ADD;
    case KN_OP_Sub: return KNC_SUB;
    case KN_OP_Mul: return KNC_MUL;
    case KN_OP_Div: return KNC_DIV;
    case KN_OP_Pow: return KNC_POW;
    case KN_OP_PRelu: return KNC_PRELU;
    case KN_OP_Min: return KNC_MIN;
    case KN_OP_Max: return KNC_MAX;
    case KN_OP_Sum: return KNC_SUM;
    case KN_OP_Mean: return KNC_MEAN;
    case KN_OP_Equal: return KNC_EQUAL;
    case KN_OP_Less: return KNC_LESS;
    case KN_OP_Greater: return KNC_GREATER;
    case KN_OP_Not: return KNC_NOT;
    case KN_OP_And: return KNC_AND;
    case KN_OP_Where: return KNC_WHERE;
    case KN_OP_Clip: return KNC_CLIP;
    default: return KNC_NONE;
    }
}

/* Unary ops and the two-input binaries. */
static kiln_status kn_cuda_ew_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    int code = kn_ew_code(n->op);
    int n_in = n->op == KN_OP_Where ? 3 : (code >= KNC_ADD && code <= KNC_PRELU) || code == KNC_EQUAL ||
                                                  code == KNC_LESS || code == KNC_GREATER || code == KNC_AND
                                              ? 2
                                              : 1;
    if (a->n_in < n_in) return kn_node_error(n, KILN_ERR_INTERNAL, "expected %d inputs, got %d", n_in, a->n_in);
    const kn_tensor *ins[3] = {&a->in[0], n_in > 1 ? &a->in[1] : NULL, n_in > 2 ? &a->in[2] : NULL};
    knc_ew p;
    KN_TRY(kn_cuda_ew_setup(&p, n, &a->out[0], ins, n_in));
    p.op = code;
    p.dtype = n->op == KN_OP_Where ? a->in[1].dtype : a->in[0].dtype;
    p.out_dtype = a->out[0].dtype;
    if (n->op == KN_OP_Pow) p.dtype1 = a->in[1].dtype; /* the exponent may have its own type */
    switch (n->op) {
    case KN_OP_LeakyRelu: p.alpha = kn_attr_f(n, "alpha", 0.01f); break;
    case KN_OP_Elu: p.alpha = kn_attr_f(n, "alpha", 1.0f); break;
    case KN_OP_Selu:
        p.alpha = kn_attr_f(n, "alpha", 1.67326319217681884765625f);
        p.gamma = kn_attr_f(n, "gamma", 1.05070102214813232421875f);
        break;
    case KN_OP_HardSigmoid:
        p.alpha = kn_attr_f(n, "alpha", 0.2f);
        p.beta = kn_attr_f(n, "beta", 0.5f);
        break;
    case KN_OP_Gelu:
        if (strcmp(kn_attr_s(n, "approximate", "none"), "tanh") == 0) p.op = KNC_GELU_TANH;
        break;
    default: break;
    }
    KN_CU(knc_ew_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* Mod: two inputs of one type; the attribute fmod picks the kernel's op. */
static kiln_status kn_cuda_mod_run(const kn_kernel_args *a) {
    const kn_tensor *ins[2] = {&a->in[0], &a->in[1]};
    knc_ew p;
    KN_TRY(kn_cuda_ew_setup(&p, a->node, &a->out[0], ins, 2));
    p.op = kn_attr_i(a->node, "fmod", 0) ? KNC_FMOD : KNC_MOD;
    p.dtype = a->in[0].dtype;
    KN_CU(knc_ew_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* Reads a scalar Clip bound: host-known value, or a device pointer. */
static void kn_clip_bound(const kn_tensor *t, float *v, const void **ptr, int *has) {
    *has = 0;
    *ptr = NULL;
    if (!kn_tensor_present(t)) return;
    *has = 1;
    if (t->host) *v = (float)kn_load_f64(t->host, t->dtype, 0);
    else *ptr = t->data;
}

static kiln_status kn_cuda_clip_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *ins[1] = {&a->in[0]};
    knc_ew p;
    KN_TRY(kn_cuda_ew_setup(&p, n, &a->out[0], ins, 1));
    p.op = KNC_CLIP;
    int has_lo = 0, has_hi = 0;
    if (a->n_in > 1) kn_clip_bound(&a->in[1], &p.alpha, &p.lo_ptr, &has_lo);
    if (a->n_in > 2) kn_clip_bound(&a->in[2], &p.beta, &p.hi_ptr, &has_hi);
    if (a->n_in <= 1) { /* the old attribute form */
        const kn_attr *lo = kn_node_attr(n, "min"), *hi = kn_node_attr(n, "max");
        if (lo) { p.alpha = lo->f; has_lo = 1; }
        if (hi) { p.beta = hi->f; has_hi = 1; }
    }
    p.flags = (has_lo ? 1 : 0) | (has_hi ? 2 : 0);
    KN_CU(knc_ew_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

/* Min, Max, Sum, Mean over any number of inputs, KNC_EW_MAX_IN at a time. */
static kiln_status kn_cuda_variadic_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    int code = kn_ew_code(n->op);
    int done = 0;
    while (done < a->n_in) {
        const kn_tensor *ins[KNC_EW_MAX_IN];
        int k = 0;
        if (done > 0) ins[k++] = &a->out[0]; /* running result */
        while (k < KNC_EW_MAX_IN && done < a->n_in) ins[k++] = &a->in[done++];
        knc_ew p;
        KN_TRY(kn_cuda_ew_setup(&p, n, &a->out[0], ins, k));
        int last = done == a->n_in;
        p.op = code == KNC_MEAN && !last ? KNC_SUM : code;
        p.scale = 1.0f / (float)a->n_in;
        p.dtype = a->out[0].dtype;
        if (k == 1) { /* a single input: a broadcast copy */
            p.op = code == KNC_MEAN ? KNC_MEAN : KNC_SUM;
        }
        KN_CU(knc_ew_launch(&p, kn_cuda_stream(a)));
    }
    return KILN_OK;
}

static kiln_status kn_cuda_cast_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (x->dtype == y->dtype) return kn_cuda_copy_tensor(a, y->data, x->data, kn_tensor_bytes(y));
    KN_CU(knc_cast(x->data, x->dtype, y->data, y->dtype, kn_tensor_numel(y), kn_cuda_stream(a)));
    return KILN_OK;
}

/* Identity, Dropout (inference), and the reshaping ops share it: the bytes are the same. */
kiln_status kn_cuda_copy_run(const kn_kernel_args *a) {
    if (a->node->op == KN_OP_Identity && kn_node_attr(a->node, "kiln.to_layout")) return kn_cuda_layout_run(a);
    KN_TRY(kn_cuda_copy_tensor(a, a->out[0].data, a->in[0].data, kn_tensor_bytes(&a->out[0])));
    if (a->node->op == KN_OP_Dropout && a->n_out > 1 && kn_tensor_present(&a->out[1]) && a->out[1].data)
        KN_CU(knc_fill(a->out[1].data, 1, 1, kn_tensor_numel(&a->out[1]), kn_cuda_stream(a))); /* mask: all kept */
    return KILN_OK;
}

/* ---- what the kernels take --------------------------------------------------------------------- */

static int kn_sup_float(const kn_graph *g, const kn_node *n) {
    return kn_cuda_is_fp_or_f64(kn_cuda_in_dtype(g, n, 0));
}
static int kn_sup_numeric(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    return t != KILN_DTYPE_INVALID && t != KILN_BOOL;
}
/* Pow takes what the op takes: a float, int32 or int64 base and an exponent of any numeric type. */
static int kn_sup_pow(const kn_graph *g, const kn_node *n) {
    kiln_dtype t0 = kn_cuda_in_dtype(g, n, 0), t1 = kn_cuda_in_dtype(g, n, 1);
    int base_ok = kn_cuda_is_fp_or_f64(t0) || t0 == KILN_I32 || t0 == KILN_I64;
    int exp_ok = kn_cuda_is_fp_or_f64(t1) || t1 == KILN_I64 || t1 == KILN_I32 || t1 == KILN_I8 || t1 == KILN_U8;
    return base_ok && exp_ok;
}
static int kn_sup_binary(const kn_graph *g, const kn_node *n) {
    kiln_dtype t0 = kn_cuda_in_dtype(g, n, 0), t1 = kn_cuda_in_dtype(g, n, 1);
    if (t0 != t1 || t0 == KILN_DTYPE_INVALID) return 0;
    if (n->op == KN_OP_PRelu) return kn_cuda_is_fp_or_f64(t0);
    if (n->op == KN_OP_Equal) return 1;
    return t0 != KILN_BOOL;
}
static int kn_sup_mod(const kn_graph *g, const kn_node *n) {
    kiln_dtype t0 = kn_cuda_in_dtype(g, n, 0);
    if (t0 != kn_cuda_in_dtype(g, n, 1) || t0 == KILN_DTYPE_INVALID || t0 == KILN_BOOL) return 0;
    return kn_attr_i(n, "fmod", 0) || !kn_cuda_is_fp_or_f64(t0); /* fmod = 0 is for integers */
}
static int kn_sup_variadic(const kn_graph *g, const kn_node *n) {
    kiln_dtype t0 = kn_cuda_in_dtype(g, n, 0);
    if (t0 == KILN_DTYPE_INVALID || t0 == KILN_BOOL) return 0;
    if (n->op == KN_OP_Mean && !kn_cuda_is_fp_or_f64(t0)) return 0;
    for (int i = 1; i < n->n_in; i++)
        if (kn_cuda_in_dtype(g, n, i) != t0) return 0;
    return n->n_in >= 1;
}
static int kn_sup_bool(const kn_graph *g, const kn_node *n) {
    for (int i = 0; i < n->n_in; i++)
        if (kn_cuda_in_dtype(g, n, i) != KILN_BOOL) return 0;
    return 1;
}
static int kn_sup_where(const kn_graph *g, const kn_node *n) {
    return kn_cuda_in_dtype(g, n, 0) == KILN_BOOL && kn_cuda_in_dtype(g, n, 1) == kn_cuda_in_dtype(g, n, 2) &&
           kn_cuda_in_dtype(g, n, 1) != KILN_DTYPE_INVALID;
}
static int kn_sup_any(const kn_graph *g, const kn_node *n) {
    return kn_cuda_in_dtype(g, n, 0) != KILN_DTYPE_INVALID;
}

void kn_cuda_register_elementwise(kn_cuda_op *t) {
#define KN_EW(op, fn, sup, nm) t[KN_OP_##op] = (kn_cuda_op){.engine = {.name = nm, .run = fn}, .supports = sup}
    KN_EW(Relu, kn_cuda_ew_run, kn_sup_numeric, "cuda.ew.relu");
    KN_EW(LeakyRelu, kn_cuda_ew_run, kn_sup_float, "cuda.ew.leaky_relu");
    KN_EW(Elu, kn_cuda_ew_run, kn_sup_float, "cuda.ew.elu");
    KN_EW(Selu, kn_cuda_ew_run, kn_sup_float, "cuda.ew.selu");
    KN_EW(HardSigmoid, kn_cuda_ew_run, kn_sup_float, "cuda.ew.hard_sigmoid");
    KN_EW(HardSwish, kn_cuda_ew_run, kn_sup_float, "cuda.ew.hard_swish");
    KN_EW(Sigmoid, kn_cuda_ew_run, kn_sup_float, "cuda.ew.sigmoid");
    KN_EW(Tanh, kn_cuda_ew_run, kn_sup_float, "cuda.ew.tanh");
    KN_EW(Erf, kn_cuda_ew_run, kn_sup_float, "cuda.ew.erf");
    KN_EW(Gelu, kn_cuda_ew_run, kn_sup_float, "cuda.ew.gelu");
    KN_EW(Softplus, kn_cuda_ew_run, kn_sup_float, "cuda.ew.softplus");
    KN_EW(Mish, kn_cuda_ew_run, kn_sup_float, "cuda.ew.mish");
    KN_EW(Sqrt, kn_cuda_ew_run, kn_sup_float, "cuda.ew.sqrt");
    KN_EW(Reciprocal, kn_cuda_ew_run, kn_sup_float, "cuda.ew.reciprocal");
    KN_EW(Neg, kn_cuda_ew_run, kn_sup_numeric, "cuda.ew.neg");
    KN_EW(Abs, kn_cuda_ew_run, kn_sup_numeric, "cuda.ew.abs");
    KN_EW(Exp, kn_cuda_ew_run, kn_sup_float, "cuda.ew.exp");
    KN_EW(Log, kn_cuda_ew_run, kn_sup_float, "cuda.ew.log");
    KN_EW(Floor, kn_cuda_ew_run, kn_sup_float, "cuda.ew.floor");
    KN_EW(Ceil, kn_cuda_ew_run, kn_sup_float, "cuda.ew.ceil");
    KN_EW(Add, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.add");
    KN_EW(Sub, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.sub");
    KN_EW(Mul, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.mul");
    KN_EW(Div, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.div");
    KN_EW(Pow, kn_cuda_ew_run, kn_sup_pow, "cuda.ew.pow");
    KN_EW(PRelu, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.prelu");
    KN_EW(Mod, kn_cuda_mod_run, kn_sup_mod, "cuda.ew.mod");
    KN_EW(Equal, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.equal");
    KN_EW(Less, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.less");
    KN_EW(Greater, kn_cuda_ew_run, kn_sup_binary, "cuda.ew.greater");
    KN_EW(Not, kn_cuda_ew_run, kn_sup_bool, "cuda.ew.not");
    KN_EW(And, kn_cuda_ew_run, kn_sup_bool, "cuda.ew.and");
    KN_EW(Where, kn_cuda_ew_run, kn_sup_where, "cuda.ew.where");
    KN_EW(Clip, kn_cuda_clip_run, kn_sup_numeric, "cuda.ew.clip");
    KN_EW(Min, kn_cuda_variadic_run, kn_sup_variadic, "cuda.ew.min");
    KN_EW(Max, kn_cuda_variadic_run, kn_sup_variadic, "cuda.ew.max");
    KN_EW(Sum, kn_cuda_variadic_run, kn_sup_variadic, "cuda.ew.sum");
    KN_EW(Mean, kn_cuda_variadic_run, kn_sup_variadic, "cuda.ew.mean");
    KN_EW(Cast, kn_cuda_cast_run, kn_sup_any, "cuda.cast");
    KN_EW(Identity, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
    KN_EW(Dropout, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
#undef KN_EW
}
