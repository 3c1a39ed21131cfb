/* The nn ops: Conv, ConvTranspose, BatchNormalization, InstanceNormalization,
 * LayerNormalization, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Gemm, MatMul.
 * Attribute checks, shape inference and the window geometry the kernels share (nn.h).
 * Semantics: the latest ONNX definition at opset <= 21, plus kiln's fused forms (a Conv residual
 * input, a MatMul bias input, MatMul's kiln.trans_a/kiln.trans_b/kiln.alpha, a LayerNormalization
 * residual input with kiln.residual, the "kiln.act" epilogue). Where the spec is loose, kiln follows
 * ONNX's reference implementation and node test data (checked in tests/unit/test_ops_nn_onnx.c):
 * - pools with ceil_mode drop a last window that would start in the end padding (as PyTorch);
 * - AveragePool's count_include_pad counts the taps inside the padded extent, not beyond it;
 * - ConvTranspose with output_shape (or SAME_*) halves the total padding with floor division,
 *   so an output_shape beyond the natural size grows the end;
 * - MaxPool's Indices are flat indices into X (storage_order=1: spatial dims column major);
 * - 1 to 3 spatial dims; BatchNormalization in inference form only (one output). */
#include "nn.h"

#include <math.h>

/* ---- window geometry ---------------------------------------------------------------------------- */

typedef enum { KN_PAD_NOTSET, KN_PAD_SAME_UPPER, KN_PAD_SAME_LOWER, KN_PAD_VALID, KN_PAD_BAD } kn_auto_pad;

static kn_auto_pad kn_auto_pad_of(const kn_node *n) {
    const char *s = kn_attr_s(n, "auto_pad", "NOTSET");
    if (!*s || !strcmp(s, "NOTSET")) return KN_PAD_NOTSET;
    if (!strcmp(s, "SAME_UPPER")) return KN_PAD_SAME_UPPER;
    if (!strcmp(s, "SAME_LOWER")) return KN_PAD_SAME_LOWER;
    if (!strcmp(s, "VALID")) return KN_PAD_VALID;
    return KN_PAD_BAD;
}

/* Reads an optional ints attribute of `want` values into out (default `def` when absent). */
static kiln_status kn_window_ints(const kn_node *n, const char *name, int want, int64_t def,
                                  int64_t *out) {
    const int64_t *v;
    int c = kn_attr_ints(n, name, &v);
    if (c == 0) {
        for (int i = 0; i < want; i++) out[i] = def;
        return KILN_OK;
    }
    if (c != want)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "attribute '%s' has %d values, expected %d for an input with %d spatial dims",
                             name, c, want, !strcmp(name, "pads") ? want / 2 : want);
    memcpy(out, v, (size_t)c * sizeof *out);
    return KILN_OK;
}

static int64_t kn_ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

kiln_status kn_nn_window(const kn_node *n, int nsp, const int64_t *in, const int64_t *k,
                         int ceil_mode, kn_window *w) {
    memset(w, 0, sizeof *w);
    if (nsp < 1 || nsp > KN_NN_MAX_SPATIAL)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "input 'X' has %d spatial dims; kiln takes 1 to %d", nsp, KN_NN_MAX_SPATIAL);
    w->nsp = nsp;
    int64_t pads[2 * KN_NN_MAX_SPATIAL];
    KN_TRY(kn_window_ints(n, "strides", nsp, 1, w->stride));
    KN_TRY(kn_window_ints(n, "dilations", nsp, 1, w->dil));
    KN_TRY(kn_window_ints(n, "pads", 2 * nsp, 0, pads));
    kn_auto_pad ap = kn_auto_pad_of(n);
    if (ap == KN_PAD_BAD)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'auto_pad' is '%s'; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                             kn_attr_s(n, "auto_pad", ""));
    for (int i = 0; i < nsp; i++) {
        if (w->stride[i] < 1 || w->dil[i] < 1 || k[i] < 1)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "spatial dim %d has stride %lld, dilation %lld and kernel %lld; all must be >= 1",
                                 i, (long long)w->stride[i], (long long)w->dil[i], (long long)k[i]);
        w->in[i] = in[i];
        w->k[i] = k[i];
        int64_t ek = (k[i] - 1) * w->dil[i] + 1, s = w->stride[i];
        if (ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER) {
            w->out[i] = kn_ceil_div(in[i], s);
            int64_t total = (w->out[i] - 1) * s + ek - in[i];
            if (total < 0) total = 0;
            int64_t small = total / 2;
            w->pad_begin[i] = ap == KN_PAD_SAME_UPPER ? small : total - small;
            w->pad_end[i] = total - w->pad_begin[i];
            continue;
        }
        if (ap == KN_PAD_NOTSET) {
            w->pad_begin[i] = pads[i];
            w->pad_end[i] = pads[i + nsp];
            if (pads[i] < 0 || pads[i + nsp] < 0)
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                     "attribute 'pads' has a negative value for spatial dim %d", i);
        }
        int64_t span = in[i] + w->pad_begin[i] + w->pad_end[i] - ek;
        if (span < 0)
            return kn_node_error(n, KILN_ERR_SHAPE,
                                 "kernel of size %lld (dilated: %lld) is larger than the padded input "
                                 "(%lld + %lld + %lld) in spatial dim %d",
                                 (long long)k[i], (long long)ek, (long long)in[i],
                                 (long long)w->pad_begin[i], (long long)w->pad_end[i], i);
        if (ceil_mode) {
            w->out[i] = kn_ceil_div(span, s) + 1;
            /* the last window must start inside the input or its left padding */
            if ((w->out[i] - 1) * s >= in[i] + w->pad_begin[i]) w->out[i]--;
        } else {
            w->out[i] = span / s + 1;
        }
    }
    return KILN_OK;
}

kiln_status kn_nn_window_transpose(const kn_node *n, int nsp, const int64_t *in, const int64_t *k,
                                   kn_window *w) {
    memset(w, 0, sizeof *w);
    if (nsp < 1 || nsp > KN_NN_MAX_SPATIAL)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "input 'X' has %d spatial dims; kiln takes 1 to %d", nsp, KN_NN_MAX_SPATIAL);
    w->nsp = nsp;
    int64_t pads[2 * KN_NN_MAX_SPATIAL], opad[KN_NN_MAX_SPATIAL];
    KN_TRY(kn_window_ints(n, "strides", nsp, 1, w->stride));
    KN_TRY(kn_window_ints(n, "dilations", nsp, 1, w->dil));
    KN_TRY(kn_window_ints(n, "pads", 2 * nsp, 0, pads));
    KN_TRY(kn_window_ints(n, "output_padding", nsp, 0, opad));
    const int64_t *oshape;
    int n_os = kn_attr_ints(n, "output_shape", &oshape);
    if (n_os == nsp + 2) oshape += 2; /* some exporters write the full N, C, spatial... shape */
    else if (n_os && n_os != nsp)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "attribute 'output_shape' has %d values, expected %d (the spatial dims)",
                             n_os, nsp);
    kn_auto_pad ap = kn_auto_pad_of(n);
    if (ap == KN_PAD_BAD)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'auto_pad' is '%s'; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                             kn_attr_s(n, "auto_pad", ""));
    for (int i = 0; i < nsp; i++) {
        if (w->stride[i] < 1 || w->dil[i] < 1 || k[i] < 1)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "spatial dim %d has stride %lld, dilation %lld and kernel %lld; all must be >= 1",
                                 i, (long long)w->stride[i], (long long)w->dil[i], (long long)k[i]);
        if (opad[i] < 0 || (opad[i] >= w->stride[i] && opad[i] >= w->dil[i]))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "attribute 'output_padding' is %lld in spatial dim %d; it must be >= 0 and "
                                 "smaller than the stride (%lld) or the dilation (%lld)",
                                 (long long)opad[i], i, (long long)w->stride[i], (long long)w->dil[i]);
        w->in[i] = in[i];
        w->k[i] = k[i];
        int64_t natural = w->stride[i] * (in[i] - 1) + opad[i] + (k[i] - 1) * w->dil[i] + 1;
        if (n_os || ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER) {
            int64_t want = n_os ? oshape[i] : in[i] * w->stride[i];
            if (want < 1)
                return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'output_shape' has %lld in spatial dim %d",
                                     (long long)want, i);
            /* ONNX's reference halves with floor division: a negative total (an output_shape
             * beyond the natural size) adds its extra rows at the end */
            int64_t total = natural - want, half = total >= 0 ? total / 2 : -((-total + 1) / 2);
            w->pad_begin[i] = ap == KN_PAD_SAME_UPPER ? half : total - half;
            w->pad_end[i] = total - w->pad_begin[i];
            w->out[i] = want;
            continue;
        }
        if (ap == KN_PAD_NOTSET) {
            if (pads[i] < 0 || pads[i + nsp] < 0)
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                     "attribute 'pads' has a negative value for spatial dim %d", i);
            w->pad_begin[i] = pads[i];
            w->pad_end[i] = pads[i + nsp];
        }
        w->out[i] = natural - w->pad_begin[i] - w->pad_end[i];
        if (w->out[i] < 1)
            return kn_node_error(n, KILN_ERR_SHAPE,
                                 "pads %lld + %lld leave no output in spatial dim %d (unpadded size %lld)",
                                 (long long)w->pad_begin[i], (long long)w->pad_end[i], i, (long long)natural);
    }
    return KILN_OK;
}

kn_nn_act kn_nn_act_of(const kn_node *n) {
    kn_nn_act a;
    a.act = (int)kn_attr_i(n, "kiln.act", KN_ACT_NONE);
    a.alpha = kn_attr_f(n, "kiln.act_alpha", a.act == KN_ACT_LEAKY_RELU ? 0.01f : a.act == KN_ACT_CLIP ? -INFINITY : 0.0f);
    a.beta = kn_attr_f(n, "kiln.act_beta", a.act == KN_ACT_CLIP ? INFINITY : 0.0f);
    return a;
}

/* ---- attribute checks (shape independent) -------------------------------------------------------- */

static kiln_status kn_check_act(const kn_node *n) {
    int64_t act = kn_attr_i(n, "kiln.act", KN_ACT_NONE);
    if (act < 0 || act >= KN_ACT_COUNT)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kiln.act' is %lld, not a known activation",
                             (long long)act);
    return KILN_OK;
}

static kiln_status kn_check_01(const kn_node *n, const char *name) {
    int64_t v = kn_attr_i(n, name, 0);
    if (v != 0 && v != 1)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' is %lld; expected 0 or 1", name,
                             (long long)v);
    return KILN_OK;
}

/* strides, dilations, kernel_shape, pads (and output_padding): positive, and of one spatial rank. */
static kiln_status kn_check_window_attrs(const kn_node *n, int need_kernel) {
    static const char *const names[] = {"kernel_shape", "strides", "dilations", "output_padding"};
    int rank = -1;
    const char *rank_from = NULL;
    for (int a = 0; a < 4; a++) {
        const int64_t *v;
        int c = kn_attr_ints(n, names[a], &v);
        if (!c) {
            if (a == 0 && need_kernel)
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kernel_shape' is required");
            continue;
        }
        for (int i = 0; i < c; i++)
            if (v[i] < (a == 3 ? 0 : 1))
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has %lld at %d; expected %s",
                                     names[a], (long long)v[i], i, a == 3 ? ">= 0" : ">= 1");
        if (rank >= 0 && c != rank)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "attribute '%s' has %d values but '%s' has %d", names[a], c, rank_from, rank);
        rank = c;
        rank_from = names[a];
    }
    const int64_t *p;
    int c = kn_attr_ints(n, "pads", &p);
    if (c) {
        if (c % 2 || (rank >= 0 && c != 2 * rank))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "attribute 'pads' has %d values; expected 2 per spatial dim (begins, then ends)",
                                 c);
        for (int i = 0; i < c; i++)
            if (p[i] < 0)
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'pads' has %lld at %d; expected >= 0",
                                     (long long)p[i], i);
    }
    if (kn_auto_pad_of(n) == KN_PAD_BAD)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'auto_pad' is '%s'; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                             kn_attr_s(n, "auto_pad", ""));
    return KILN_OK;
}

static kiln_status kn_check_conv(const kn_graph *g, const kn_node *n) {
    KN_TRY(kn_check_window_attrs(n, 0));
    int64_t group = kn_attr_i(n, "group", 1);
    if (group < 1)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'group' is %lld; expected >= 1", (long long)group);
    return kn_check_act(n);
}

static kiln_status kn_check_pool(const kn_graph *g, const kn_node *n) {
    KN_TRY(kn_check_window_attrs(n, 1));
    KN_TRY(kn_check_01(n, "ceil_mode"));
    if (n->op == KN_OP_AveragePool) KN_TRY(kn_check_01(n, "count_include_pad"));
    if (n->op == KN_OP_MaxPool) KN_TRY(kn_check_01(n, "storage_order"));
    return KILN_OK;
}

static kiln_status kn_check_batchnorm(const kn_graph *g, const kn_node *n) {
    if (kn_attr_i(n, "training_mode", 0) != 0)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "attribute 'training_mode' is %lld; kiln runs inference only (training_mode=0)",
                             (long long)kn_attr_i(n, "training_mode", 0));
    for (int o = 1; o < n->n_out; o++)
        if (n->out[o] >= 0)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                                 "has %d outputs; outputs beyond 'Y' (running mean and variance) exist only "
                                 "in training mode",
                                 n->n_out);
    return KILN_OK;
}

/* ONNX TensorProto element types that stash_type may name. */
static kiln_dtype kn_stash_dtype(int64_t t) {
    switch (t) {
    case 1: return KILN_F32;
    case 10: return KILN_F16;
    case 11: return KILN_F64;
    case 16: return KILN_BF16;
    default: return KILN_DTYPE_INVALID;
    }
}

static kiln_status kn_check_layernorm(const kn_graph *g, const kn_node *n) {
    int64_t st = kn_attr_i(n, "stash_type", 1);
    if (kn_stash_dtype(st) == KILN_DTYPE_INVALID)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'stash_type' is %lld; expected an ONNX float type (1, 10, 11 or 16)",
                             (long long)st);
    /* the fused form: input 3 is a residual added to X before normalizing, only with kiln.residual = 1 */
    KN_TRY(kn_check_01(n, "kiln.residual"));
    int has_res = n->n_in > 3 && n->in[3] >= 0;
    if (has_res != (kn_attr_i(n, "kiln.residual", 0) == 1))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             has_res ? "has a 4th input; LayerNormalization takes 2 or 3 (X, Scale, B)"
                                     : "has attribute 'kiln.residual' but no residual input");
    return KILN_OK;
}

static kiln_status kn_check_gemm(const kn_graph *g, const kn_node *n) {
    KN_TRY(kn_check_01(n, "transA"));
    KN_TRY(kn_check_01(n, "transB"));
    return kn_check_act(n);
}

static kiln_status kn_check_matmul(const kn_graph *g, const kn_node *n) {
    KN_TRY(kn_check_01(n, "kiln.trans_a"));
    KN_TRY(kn_check_01(n, "kiln.trans_b"));
    const kn_attr *al = kn_node_attr(n, "kiln.alpha");
    if (al && (al->type != KILN_ATTR_FLOAT || !isfinite(al->f)))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kiln.alpha' must be a finite float");
    return kn_check_act(n);
}

/* ---- shape helpers --------------------------------------------------------------------------------- */

static const char *kn_dstr(const kn_tensor *t, char *buf, size_t cap) { return kn_dims_str(t->rank, t->dims, buf, cap); }

static kiln_status kn_same_dtype(const kn_node *n, const kn_tensor *t, const char *what, const kn_tensor *x) {
    if (t->dtype != x->dtype)
        return kn_node_error(n, KILN_ERR_DTYPE, "input '%s' is %s, X is %s; they must match", what,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
    return KILN_OK;
}

/* A per-channel parameter: present, rank 1 with `c` elements (or rank 0 / one element when c == 1). */
static kiln_status kn_expect_vec(const kn_node *n, const kn_tensor *t, const char *what, int64_t c,
                                 const char *of) {
    char b[96];
    if (!kn_tensor_present(t)) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "input '%s' is missing", what);
    if (!kn_dtype_is_float(t->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "input '%s' must be a float tensor, got %s", what,
                             kiln_dtype_name(t->dtype));
    if (t->rank != 1 || t->dims[0] != c)
        return kn_node_error(n, KILN_ERR_SHAPE, "input '%s' has dims %s; expected [%lld] (%s)", what,
                             kn_dstr(t, b, sizeof b), (long long)c, of);
    return KILN_OK;
}

/* X of an N x C x spatial... op: float, rank >= min_rank. */
static kiln_status kn_expect_nc(const kn_node *n, const kn_tensor *x, int min_rank) {
    KN_TRY(kn_expect_float(n, x, "input 'X'"));
    if (x->rank < min_rank) {
        char b[96];
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'X' has dims %s; expected rank >= %d (N, C, spatial...)",
                             kn_dstr(x, b, sizeof b), min_rank);
    }
    return KILN_OK;
}

/* kernel_shape, when given, must agree with the weight's spatial dims. */
static kiln_status kn_kernel_shape_matches(const kn_node *n, const kn_tensor *w) {
    const int64_t *ks;
    int c = kn_attr_ints(n, "kernel_shape", &ks);
    if (!c) return KILN_OK;
    char b[96];
    if (c != w->rank - 2)
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'kernel_shape' has %d values, input 'W' (%s) has %d spatial dims",
                             c, kn_dstr(w, b, sizeof b), w->rank - 2);
    for (int i = 0; i < c; i++)
        if (ks[i] != w->dims[2 + i])
            return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'kernel_shape' is %lld in spatial dim %d, input 'W' (%s) has %lld",
                                 (long long)ks[i], i, kn_dstr(w, b, sizeof b), (long long)w->dims[2 + i]);
    return KILN_OK;
}

/* ---- Conv / ConvTranspose ----------------------------------------------------------------------------- */

static kiln_status kn_infer_conv(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0], *w = &c->in[1];
    char bx[96], bw[96], bo[96];
    KN_TRY(kn_expect_nc(n, x, 3));
    KN_TRY(kn_same_dtype(n, w, "W", x));
    if (w->rank != x->rank)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "input 'W' has dims %s, X has dims %s; expected W of rank %d (M, C/group, kernel...)",
                             kn_dstr(w, bw, sizeof bw), kn_dstr(x, bx, sizeof bx), x->rank);
    int64_t group = kn_attr_i(n, "group", 1), C = x->dims[1], M = w->dims[0];
    if (group < 1) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'group' is %lld", (long long)group);
    if (C % group)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'X' has %lld channels, not divisible by group %lld",
                             (long long)C, (long long)group);
    if (w->dims[1] * group != C)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'W' has %lld channels per group, X has %lld / group %lld",
                             (long long)w->dims[1], (long long)C, (long long)group);
    if (M % group)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'W' has %lld output channels, not divisible by group %lld",
                             (long long)M, (long long)group);
    KN_TRY(kn_kernel_shape_matches(n, w));
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) {
        KN_TRY(kn_expect_vec(n, &c->in[2], "B", M, "one bias per output channel"));
        KN_TRY(kn_same_dtype(n, &c->in[2], "B", x));
    }
    kn_window win;
    KN_TRY(kn_nn_window(n, x->rank - 2, x->dims + 2, w->dims + 2, 0, &win));
    kn_tensor *y = &c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < win.nsp; i++) y->dims[2 + i] = win.out[i];
    if (c->n_in > 3 && kn_tensor_present(&c->in[3])) {
        const kn_tensor *r = &c->in[3];
        KN_TRY(kn_same_dtype(n, r, "residual", x));
        int same = r->rank == y->rank;
        for (int i = 0; same && i < y->rank; i++) same = r->dims[i] == y->dims[i];
        if (!same)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (the fused residual) has dims %s, the output has %s",
                                 kn_dstr(r, bx, sizeof bx), kn_dstr(y, bo, sizeof bo));
    }
    return KILN_OK;
}

static kiln_status kn_infer_conv_transpose(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0], *w = &c->in[1];
    char bx[96], bw[96];
    KN_TRY(kn_expect_nc(n, x, 3));
    KN_TRY(kn_same_dtype(n, w, "W", x));
    if (w->rank != x->rank)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "input 'W' has dims %s, X has dims %s; expected W of rank %d (C, M/group, kernel...)",
                             kn_dstr(w, bw, sizeof bw), kn_dstr(x, bx, sizeof bx), x->rank);
    int64_t group = kn_attr_i(n, "group", 1), C = x->dims[1];
    if (group < 1) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'group' is %lld", (long long)group);
    if (w->dims[0] != C)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'W' has %lld input channels (dim 0), X has %lld",
                             (long long)w->dims[0], (long long)C);
    if (C % group)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'X' has %lld channels, not divisible by group %lld",
                             (long long)C, (long long)group);
    int64_t M = w->dims[1] * group;
    KN_TRY(kn_kernel_shape_matches(n, w));
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) {
        KN_TRY(kn_expect_vec(n, &c->in[2], "B", M, "one bias per output channel"));
        KN_TRY(kn_same_dtype(n, &c->in[2], "B", x));
    }
    kn_window win;
    KN_TRY(kn_nn_window_transpose(n, x->rank - 2, x->dims + 2, w->dims + 2, &win));
    kn_tensor *y = &c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < win.nsp; i++) y->dims[2 + i] = win.out[i];
    return KILN_OK;
}

/* ---- pooling --------------------------------------------------------------------------------------------- */

static kiln_status kn_infer_pool(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    if (n->op == KN_OP_MaxPool) {
        if (!kn_dtype_is_float(x->dtype) && x->dtype != KILN_I8 && x->dtype != KILN_U8)
            return kn_node_error(n, KILN_ERR_DTYPE, "input 'X' must be a float, int8 or uint8 tensor, got %s",
                                 kiln_dtype_name(x->dtype));
        if (x->rank < 3) {
            char b[96];
            return kn_node_error(n, KILN_ERR_SHAPE, "input 'X' has dims %s; expected rank >= 3 (N, C, spatial...)",
                                 kn_dstr(x, b, sizeof b));
        }
    } else {
        KN_TRY(kn_expect_nc(n, x, 3));
    }
    const int64_t *ks;
    int nk = kn_attr_ints(n, "kernel_shape", &ks);
    if (!nk) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kernel_shape' is required");
    if (nk != x->rank - 2) {
        char b[96];
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'kernel_shape' has %d values, input 'X' (%s) has %d spatial dims",
                             nk, kn_dstr(x, b, sizeof b), x->rank - 2);
    }
    kn_window win;
    KN_TRY(kn_nn_window(n, nk, x->dims + 2, ks, (int)kn_attr_i(n, "ceil_mode", 0), &win));
    for (int o = 0; o < c->n_out && o < 2; o++) {
        kn_tensor *y = &c->out[o];
        y->dtype = o == 0 ? x->dtype : KILN_I64;
        y->rank = x->rank;
        y->dims[0] = x->dims[0];
        y->dims[1] = x->dims[1];
        for (int i = 0; i < nk; i++) y->dims[2 + i] = win.out[i];
    }
    return KILN_OK;
}

static kiln_status kn_infer_global_pool(kn_infer_ctx *c) {
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_expect_nc(c->node, x, 3));
    kn_tensor *y = &c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 2; i < x->rank; i++) y->dims[i] = 1;
    return KILN_OK;
}

/* ---- normalizations -------------------------------------------------------------------------------------- */

static kiln_status kn_infer_batchnorm(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_expect_nc(n, x, 2));
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 1; i < 5; i++) KN_TRY(kn_expect_vec(n, &c->in[i], names[i], x->dims[1], "the channels of X, dim 1"));
    if (kn_attr_i(n, "training_mode", 0) != 0)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute 'training_mode' is set; kiln runs inference only");
    kn_infer_same_as(c, 0);
    for (int o = 1; o < c->n_out; o++) { /* refused by check(); keep outputs well formed */
        c->out[o].dtype = c->in[3].dtype;
        c->out[o].rank = 1;
        c->out[o].dims[0] = x->dims[1];
    }
    return KILN_OK;
}

static kiln_status kn_infer_instancenorm(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_expect_nc(n, x, 3));
    KN_TRY(kn_expect_vec(n, &c->in[1], "scale", x->dims[1], "the channels of X, dim 1"));
    KN_TRY(kn_expect_vec(n, &c->in[2], "B", x->dims[1], "the channels of X, dim 1"));
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

/* Scale and B of LayerNormalization broadcast unidirectionally to X.shape[axis:]. */
static kiln_status kn_expect_norm_param(const kn_node *n, const kn_tensor *t, const char *what,
                                        const kn_tensor *x, int axis) {
    char bt[96], bx[96];
    if (!kn_dtype_is_float(t->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "input '%s' must be a float tensor, got %s", what, kiln_dtype_name(t->dtype));
    int nr = x->rank - axis;
    int ok = t->rank <= nr;
    for (int i = 0; ok && i < t->rank; i++) {
        int64_t d = t->dims[t->rank - 1 - i], xd = x->dims[x->rank - 1 - i];
        ok = d == xd || d == 1;
    }
    if (!ok)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "input '%s' has dims %s; it must broadcast to the normalized dims of X (%s from axis %d)",
                             what, kn_dstr(t, bt, sizeof bt), kn_dstr(x, bx, sizeof bx), axis);
    return KILN_OK;
}

static kiln_status kn_infer_layernorm(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_expect_float(n, x, "input 'X'"));
    if (x->rank < 1)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 'X' is a scalar; expected rank >= 1");
    int axis;
    KN_TRY(kn_norm_axis(n, kn_attr_i(n, "axis", -1), x->rank, &axis));
    KN_TRY(kn_expect_norm_param(n, &c->in[1], "Scale", x, axis));
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) KN_TRY(kn_expect_norm_param(n, &c->in[2], "B", x, axis));
    if (c->n_in > 3 && kn_tensor_present(&c->in[3])) {
        const kn_tensor *r = &c->in[3];
        char br[96], bx[96];
        KN_TRY(kn_same_dtype(n, r, "residual", x));
        int same = r->rank == x->rank;
        for (int i = 0; same && i < x->rank; i++) same = r->dims[i] == x->dims[i];
        if (!same)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (the fused residual) has dims %s, X has %s",
                                 kn_dstr(r, br, sizeof br), kn_dstr(x, bx, sizeof bx));
    }
    kn_infer_same_as(c, 0);
    kiln_dtype st = kn_stash_dtype(kn_attr_i(n, "stash_type", 1));
    if (st == KILN_DTYPE_INVALID)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'stash_type' is not an ONNX float type");
    for (int o = 1; o < c->n_out && o < 3; o++) {
        kn_tensor *t = &c->out[o];
        t->dtype = st;
        t->rank = x->rank;
        for (int i = 0; i < x->rank; i++) t->dims[i] = i < axis ? x->dims[i] : 1;
    }
    return KILN_OK;
}

/* ---- Gemm / MatMul ---------------------------------------------------------------------------------------- */

static kiln_status kn_infer_gemm(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *a = &c->in[0], *b = &c->in[1];
    char ba[96], bb[96];
    KN_TRY(kn_expect_float(n, a, "input 'A'"));
    if (b->dtype != a->dtype)
        return kn_node_error(n, KILN_ERR_DTYPE, "input 'B' is %s, A is %s; they must match",
                             kiln_dtype_name(b->dtype), kiln_dtype_name(a->dtype));
    if (a->rank != 2 || b->rank != 2)
        return kn_node_error(n, KILN_ERR_SHAPE, "inputs 'A' (%s) and 'B' (%s) must both be matrices (rank 2)",
                             kn_dstr(a, ba, sizeof ba), kn_dstr(b, bb, sizeof bb));
    int ta = (int)kn_attr_i(n, "transA", 0), tb = (int)kn_attr_i(n, "transB", 0);
    int64_t M = a->dims[ta], K = a->dims[1 - ta], Kb = b->dims[tb], N = b->dims[1 - tb];
    if (K != Kb)
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "inner dims differ: A%s is %s (K = %lld), B%s is %s (K = %lld)", ta ? "^T" : "",
                             kn_dstr(a, ba, sizeof ba), (long long)K, tb ? "^T" : "", kn_dstr(b, bb, sizeof bb),
                             (long long)Kb);
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) {
        const kn_tensor *cc = &c->in[2];
        if (cc->dtype != a->dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "input 'C' is %s, A is %s; they must match",
                                 kiln_dtype_name(cc->dtype), kiln_dtype_name(a->dtype));
        int ok = cc->rank <= 2;
        int64_t mn[2] = {M, N};
        for (int i = 0; ok && i < cc->rank; i++) {
            int64_t d = cc->dims[cc->rank - 1 - i];
            ok = d == 1 || d == mn[1 - i];
        }
        if (!ok)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 'C' has dims %s; it must broadcast to the output %lldx%lld",
                                 kn_dstr(cc, ba, sizeof ba), (long long)M, (long long)N);
    }
    kn_tensor *y = &c->out[0];
    y->dtype = a->dtype;
    y->rank = 2;
    y->dims[0] = M;
    y->dims[1] = N;
    return KILN_OK;
}

/* The fused form's kiln.trans_a / kiln.trans_b: the operand as the product reads it, its last two
 * dims swapped (it must have two). */
static kiln_status kn_matmul_operand(const kn_node *n, const kn_tensor *t, const char *flag, const char *what,
                                     kn_tensor *view) {
    *view = *t;
    if (!kn_attr_i(n, flag, 0)) return KILN_OK;
    if (t->rank < 2)
        return kn_node_error(n, KILN_ERR_SHAPE, "input '%s' has rank %d; attribute '%s' needs rank >= 2", what,
                             t->rank, flag);
    view->dims[t->rank - 1] = t->dims[t->rank - 2];
    view->dims[t->rank - 2] = t->dims[t->rank - 1];
    return KILN_OK;
}

static kiln_status kn_infer_matmul(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    kn_tensor av, bv;
    KN_TRY(kn_matmul_operand(n, &c->in[0], "kiln.trans_a", "A", &av));
    KN_TRY(kn_matmul_operand(n, &c->in[1], "kiln.trans_b", "B", &bv));
    const kn_tensor *a = &av, *b = &bv;
    char ba[96], bb[96];
    if (!kn_dtype_is_float(a->dtype) && a->dtype != KILN_I32 && a->dtype != KILN_I64)
        return kn_node_error(n, KILN_ERR_DTYPE, "input 'A' must be a float, int32 or int64 tensor, got %s",
                             kiln_dtype_name(a->dtype));
    if (b->dtype != a->dtype)
        return kn_node_error(n, KILN_ERR_DTYPE, "input 'B' is %s, A is %s; they must match",
                             kiln_dtype_name(b->dtype), kiln_dtype_name(a->dtype));
    if (a->rank < 1 || b->rank < 1)
        return kn_node_error(n, KILN_ERR_SHAPE, "inputs 'A' (%s) and 'B' (%s) must have rank >= 1",
                             kn_dstr(a, ba, sizeof ba), kn_dstr(b, bb, sizeof bb));
    int64_t K = a->dims[a->rank - 1], Kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    if (K != Kb)
        return kn_node_error(n, KILN_ERR_SHAPE, "inner dims differ: A is %s (K = %lld), B is %s (K = %lld)",
                             kn_dstr(a, ba, sizeof ba), (long long)K, kn_dstr(b, bb, sizeof bb), (long long)Kb);
    int rba = a->rank > 2 ? a->rank - 2 : 0, rbb = b->rank > 2 ? b->rank - 2 : 0, rb;
    int64_t batch[KILN_MAX_RANK];
    KN_TRY(kn_broadcast_dims(n, rba, a->dims, rbb, b->dims, &rb, batch));
    kn_tensor *y = &c->out[0];
    y->dtype = a->dtype;
    y->rank = 0;
    for (int i = 0; i < rb; i++) y->dims[y->rank++] = batch[i];
    if (a->rank > 1) y->dims[y->rank++] = a->dims[a->rank - 2];
    if (b->rank > 1) y->dims[y->rank++] = b->dims[b->rank - 1];
    if (y->rank > KILN_MAX_RANK)
        return kn_node_error(n, KILN_ERR_SHAPE, "the output would have rank %d, more than %d", y->rank, KILN_MAX_RANK);
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) {
        const kn_tensor *bias = &c->in[2];
        char bo[96];
        if (bias->dtype != a->dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "input 2 (the fused bias) is %s, A is %s; they must match",
                                 kiln_dtype_name(bias->dtype), kiln_dtype_name(a->dtype));
        int ok = bias->rank <= y->rank;
        for (int i = 0; ok && i < bias->rank; i++) {
            int64_t d = bias->dims[bias->rank - 1 - i];
            ok = d == 1 || d == y->dims[y->rank - 1 - i];
        }
        if (!ok)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 2 (the fused bias) has dims %s; it must broadcast to the output %s",
                                 kn_dstr(bias, ba, sizeof ba), kn_dstr(y, bo, sizeof bo));
    }
    return KILN_OK;
}

void kn_ops_register_nn(kn_op_def *t) {
    const uint32_t P = KN_OPF_PURE;
    t[KN_OP_Conv] = (kn_op_def){"Conv", 2, 4, 1, 1, 0, P, kn_check_conv, kn_infer_conv};
    t[KN_OP_ConvTranspose] = (kn_op_def){"ConvTranspose", 2, 3, 1, 1, 0, P, kn_check_conv, kn_infer_conv_transpose};
    t[KN_OP_BatchNormalization] = (kn_op_def){"BatchNormalization", 5, 5, 1, 3, 0, P, kn_check_batchnorm, kn_infer_batchnorm};
    t[KN_OP_InstanceNormalization] = (kn_op_def){"InstanceNormalization", 3, 3, 1, 1, 0, P, NULL, kn_infer_instancenorm};
    t[KN_OP_LayerNormalization] = (kn_op_def){"LayerNormalization", 2, 4, 1, 3, 0, P, kn_check_layernorm, kn_infer_layernorm};
    t[KN_OP_MaxPool] = (kn_op_def){"MaxPool", 1, 1, 1, 2, 0, P, kn_check_pool, kn_infer_pool};
    t[KN_OP_AveragePool] = (kn_op_def){"AveragePool", 1, 1, 1, 1, 0, P, kn_check_pool, kn_infer_pool};
    t[KN_OP_GlobalAveragePool] = (kn_op_def){"GlobalAveragePool", 1, 1, 1, 1, 0, P, NULL, kn_infer_global_pool};
    t[KN_OP_GlobalMaxPool] = (kn_op_def){"GlobalMaxPool", 1, 1, 1, 1, 0, P, NULL, kn_infer_global_pool};
    t[KN_OP_Gemm] = (kn_op_def){"Gemm", 2, 3, 1, 1, 0, P, kn_check_gemm, kn_infer_gemm};
    t[KN_OP_MatMul] = (kn_op_def){"MatMul", 2, 3, 1, 1, 0, P, kn_check_matmul, kn_infer_matmul};
}
