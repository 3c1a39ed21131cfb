/* The NHWC layout pass (issue 10), run after precision lowering when the backend's prefers_nhwc
 * says so for the build's precision (the CPU backend never does).
 *
 * Logical dims never change: a value stays [N,C,H,W] in the IR and in shape inference. A node
 * with "kiln.layout" = 1 reads and writes its 4-D activations physically as NHWC, and a Conv with
 * it reads its weight constant physically as KRSC (OHWI; the pass makes a permuted copy, the
 * shared constant is left alone). A layout change is an Identity with "kiln.to_layout" = 1
 * (NCHW -> NHWC) or 0 (NHWC -> NCHW): logically the identity, physically a transpose.
 *
 * Which nodes go NHWC: the "capable" ones (Conv on 4-D data with a constant 4-D weight, MaxPool
 * without indices, AveragePool, GlobalAveragePool, unary elementwise ops, Add/Sub/Mul/Div of two
 * same-shape 4-D activations, nothing marked fallback, all taken by the backend's engine), grouped
 * into components joined by the activations they share; only components with a Conv are
 * rewritten (a layout change must pay for itself). GlobalAveragePool's output [N,C,1,1] has the
 * same bytes in both layouts: it is declared NCHW. A value written by an NHWC node and read by
 * anything else (or a graph output) keeps its name as the NCHW copy, written by a to_layout 0
 * Identity; an NCHW value read by NHWC nodes gets one to_layout 1 Identity shared by them all.
 *
 * Two things the conversion to NHWC may also do, both for the image that enters a network:
 * - pad the channels with zeros to what the backend's nhwc_pad_channels asks (cuDNN has kernels
 *   for a first layer on 4 channels, none on 3), when every NHWC reader is a one-group Conv; the
 *   padded value's dim 1 is the padded count ("kiln.pad_channels") and those Convs' OHWI weights
 *   get zero channels to match;
 * - take over the Cast that lowered the input to f16/bf16 when nothing else reads the Cast's
 *   output ("kiln.to_dtype"), so the image is read once. */
#include "passes.h"
#include "ir/shape_infer.h"

int kn_layout_free_unary(kn_op op) {
    switch (op) {
    case KN_OP_Relu:
    case KN_OP_LeakyRelu:
    case KN_OP_Elu:
    case KN_OP_Selu:
    case KN_OP_Clip:
    case KN_OP_HardSigmoid:
    case KN_OP_HardSwish:
    case KN_OP_Sigmoid:
    case KN_OP_Tanh:
    case KN_OP_Erf:
    case KN_OP_Gelu:
    case KN_OP_Softplus:
    case KN_OP_Mish: return 1;
    default: return 0;
    }
}

static int kn_is_binary_ew(kn_op op) {
    return op == KN_OP_Add || op == KN_OP_Sub || op == KN_OP_Mul || op == KN_OP_Div;
}

/* Input slot k of n carries a 4-D activation whose layout follows the node's. */
static int kn_act_slot(const kn_node *n, int k) {
    if (n->op == KN_OP_Conv) return k == 0 || k == 3;
    if (kn_is_binary_ew(n->op)) return k == 0 || k == 1;
    return k == 0;
}

/* The node's output 0 follows the node's layout (GlobalAveragePool's does not: same bytes). */
static int kn_act_out(const kn_node *n) { return n->op != KN_OP_GlobalAveragePool; }

/* A 4-D activation the pass may lay out NHWC: f16/bf16, or f32 in a TF32 build (TF32 is a math
 * mode of f32 storage, and cuDNN's tensor-core engines want NHWC there too). */
static int kn_low_4d(const kn_graph *g, const kn_pass_options *opt, int v) {
    if (v < 0) return 0;
    const kn_value *val = &g->values[v];
    if (val->constant || val->rank != 4) return 0;
    return val->dtype == KILN_F16 || val->dtype == KILN_BF16 || (val->dtype == KILN_F32 && opt->precision == KILN_PRECISION_TF32);
}

static int kn_capable(const kn_graph *g, const kn_pass_options *opt, const kn_node *n) {
    if (n->dead || n->fallback || n->n_in < 1 || n->n_out < 1 || n->out[0] < 0) return 0;
    int op_ok = n->op == KN_OP_Conv || n->op == KN_OP_MaxPool || n->op == KN_OP_AveragePool ||
                n->op == KN_OP_GlobalAveragePool || kn_layout_free_unary(n->op) || kn_is_binary_ew(n->op);
    if (!op_ok) return 0;
    for (int k = 0; k < n->n_in; k++) {
        if (kn_act_slot(n, k)) {
            if (k > 0 && n->in[k] < 0 && n->op == KN_OP_Conv) continue; /* no residual */
            if (!kn_low_4d(g, opt, n->in[k])) return 0;
        } else if (n->in[k] >= 0 && !g->values[n->in[k]].constant) {
            return 0; /* weights, bias, clip bounds: constants only */
        }
    }
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0) return 0; /* MaxPool's indices, Dropout-like extras */
    if (kn_act_out(n) && !kn_low_4d(g, opt, n->out[0])) return 0;
    if (n->op == KN_OP_Conv) {
        const kn_host_tensor *w = n->n_in > 1 ? kn_pass_const(g, n->in[1]) : NULL;
        if (!w || w->rank != 4) return 0;
    }
    if (kn_is_binary_ew(n->op)) {
        if (n->n_in != 2 || !kn_pass_same_shape(&g->values[n->in[0]], &g->values[n->in[1]]) ||
            !kn_pass_same_shape(&g->values[n->in[0]], &g->values[n->out[0]]))
            return 0;
    }
    return kn_pass_backend_takes(opt, g, (int)(n - g->nodes));
}

static int kn_find(int *parent, int a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
}

static kiln_status kn_add_convert(kn_graph *g, int from, int to, int to_nhwc, int *node) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", g->values[to_nhwc ? from : to].name, to_nhwc ? "to_nhwc" : "to_nchw");
    KN_TRY(kn_graph_new_node(g, KN_OP_Identity, name, 1, &from, 1, &to, node));
    return kn_node_set_attr_int(&g->nodes[*node], "kiln.to_layout", to_nhwc);
}

/* The channel count v's conversion to NHWC pads to, or 0: when the backend asks for it at v's
 * static channel count and every NHWC reader of v is a one-group Conv reading it as X (its
 * weight gets zero channels to match; a zero channel adds nothing to any output). */
static int64_t kn_pad_channels(const kn_graph *g, const kn_pass_options *opt, int v, const uint8_t *in_l, int n_nodes) {
    const kn_value *val = &g->values[v];
    if (!opt->backend->nhwc_pad_channels || val->rank != 4 || val->dims[1].sym >= 0 || val->dims[1].v < 1) return 0;
    int64_t c = val->dims[1].v, p = opt->backend->nhwc_pad_channels(opt->precision, c);
    if (p <= c) return 0;
    for (int i = 0; i < n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead || !in_l[i]) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v && kn_act_slot(n, k) && (n->op != KN_OP_Conv || k != 0 || kn_attr_i(n, "group", 1) != 1))
                return 0;
    }
    return p;
}

/* The input Cast that v's conversion to NHWC can take over (reading the Cast's f32 input and
 * converting as it transposes, one pass over the image instead of two), or -1: v is a Cast's
 * float output that nothing else reads. */
static int kn_absorbable_cast(const kn_graph *g, int v, int nchw_uses, int is_out) {
    int p = kn_pass_producer(g, v);
    if (p < 0 || nchw_uses || is_out) return -1;
    const kn_node *c = &g->nodes[p];
    if (c->op != KN_OP_Cast || c->dead || c->n_in < 1 || c->in[0] < 0) return -1;
    const kn_value *x = &g->values[c->in[0]];
    if (x->constant || x->rank != 4 || !kn_dtype_is_float(x->dtype) || !kn_dtype_is_float(g->values[v].dtype)) return -1;
    return p;
}

/* A copy of the OHWI weight w with zero input channels after its own, to p channels. */
static kn_host_tensor *kn_weight_pad_channels(const kn_host_tensor *w, int64_t p) {
    int64_t dims[4] = {w->dims[0], p, w->dims[2], w->dims[3]};
    kn_host_tensor *t = kn_host_tensor_new(w->dtype, 4, dims);
    if (!t) return NULL;
    size_t es = kiln_dtype_size(w->dtype);
    int64_t c = w->dims[1], rows = w->dims[0] * w->dims[2] * w->dims[3];
    memset(t->data, 0, (size_t)(rows * p) * es);
    for (int64_t r = 0; r < rows; r++) memcpy((char *)t->data + (size_t)(r * p) * es, (const char *)w->data + (size_t)(r * c) * es, (size_t)c * es);
    return t;
}

/* A new value like v (dtype, shape), named v.nhwc. */
static kiln_status kn_nhwc_twin(kn_graph *g, int v, int *out) {
    char name[256];
    snprintf(name, sizeof name, "%s.nhwc", g->values[v].name);
    KN_TRY(kn_graph_new_value(g, name, out));
    kn_value *src = &g->values[v], *dst = &g->values[*out];
    dst->dtype = src->dtype;
    dst->rank = src->rank;
    for (int i = 0; i < src->rank; i++) dst->dims[i] = src->dims[i];
    return KILN_OK;
}

/* A copy of the OIHW weight w with its data in OHWI order (dims unchanged). */
static kn_host_tensor *kn_weight_ohwi(const kn_host_tensor *w) {
    kn_host_tensor *t = kn_host_tensor_new(w->dtype, 4, w->dims);
    if (!t) return NULL;
    size_t es = kiln_dtype_size(w->dtype);
    int64_t K = w->dims[0], C = w->dims[1], R = w->dims[2], S = w->dims[3];
    const char *src = w->data;
    char *dst = t->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t s = 0; s < S; s++)
                    memcpy(dst + (size_t)(((k * R + r) * S + s) * C + c) * es,
                           src + (size_t)(((k * C + c) * R + r) * S + s) * es, es);
    return t;
}

static kiln_status kn_layout_rewrite(kn_graph *g, const kn_pass_options *opt, int *parent, uint8_t *in_l, int *wmap,
                                     int64_t *padded, int *changed) {
    int n_nodes = g->n_nodes, n_values = g->n_values;
    /* components of capable nodes joined by shared activations */
    for (int i = 0; i < n_nodes; i++) {
        parent[i] = i;
        in_l[i] = (uint8_t)kn_capable(g, opt, &g->nodes[i]);
    }
    for (int i = 0; i < n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (!in_l[i]) continue;
        for (int k = 0; k < n->n_in; k++) {
            if (!kn_act_slot(n, k) || n->in[k] < 0) continue;
            int p = kn_pass_producer(g, n->in[k]);
            if (p >= 0 && in_l[p] && kn_act_out(&g->nodes[p]) && g->nodes[p].out[0] == n->in[k])
                parent[kn_find(parent, i)] = kn_find(parent, p);
        }
    }
    uint8_t *has_conv = kn_calloc((size_t)n_nodes + 1, 1);
    if (!has_conv) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory in the layout pass");
    for (int i = 0; i < n_nodes; i++)
        if (in_l[i] && g->nodes[i].op == KN_OP_Conv) has_conv[kn_find(parent, i)] = 1;
    int count = 0;
    for (int i = 0; i < n_nodes; i++) {
        if (in_l[i] && !has_conv[kn_find(parent, i)]) in_l[i] = 0;
        count += in_l[i];
    }
    kn_free(has_conv);
    *changed = count;
    if (!count) return KILN_OK;

    int to_nhwc = 0, to_nchw = 0, pads = 0, casts = 0;
    for (int v = 0; v < n_values; v++) {
        if (!kn_low_4d(g, opt, v)) continue;
        int p = kn_pass_producer(g, v);
        int home_nhwc = p >= 0 && p < n_nodes && in_l[p] && kn_act_out(&g->nodes[p]) && g->nodes[p].out[0] == v;
        int nhwc_uses = 0, nchw_uses = 0;
        for (int i = 0; i < n_nodes; i++) {
            const kn_node *n = &g->nodes[i];
            if (n->dead) continue;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == v) {
                    if (in_l[i] && kn_act_slot(n, k)) nhwc_uses++;
                    else nchw_uses++;
                }
        }
        int is_out = kn_pass_is_output(g, v);
        if (home_nhwc) {
            if (!nchw_uses && !is_out) continue; /* v itself is physically NHWC */
            int vh;
            KN_TRY(kn_nhwc_twin(g, v, &vh));
            int slot = 0;
            while (g->nodes[p].out[slot] != v) slot++;
            kn_pass_take_output(g, p, slot, vh);
            for (int i = 0; i < n_nodes; i++) {
                kn_node *n = &g->nodes[i];
                if (n->dead || !in_l[i]) continue;
                for (int k = 0; k < n->n_in; k++)
                    if (n->in[k] == v && kn_act_slot(n, k)) n->in[k] = vh;
            }
            int node;
            KN_TRY(kn_add_convert(g, vh, v, 0, &node));
            to_nchw++;
        } else if (nhwc_uses) {
            int vh, node;
            int64_t pad = kn_pad_channels(g, opt, v, in_l, n_nodes);
            KN_TRY(kn_nhwc_twin(g, v, &vh));
            for (int i = 0; i < n_nodes; i++) {
                kn_node *n = &g->nodes[i];
                if (n->dead || !in_l[i]) continue;
                for (int k = 0; k < n->n_in; k++)
                    if (n->in[k] == v && kn_act_slot(n, k)) {
                        n->in[k] = vh;
                        if (pad) padded[i] = pad;
                    }
            }
            KN_TRY(kn_add_convert(g, v, vh, 1, &node));
            if (pad) {
                g->values[vh].dims[1] = (kn_dim){.v = pad, .sym = -1};
                KN_TRY(kn_node_set_attr_int(&g->nodes[node], "kiln.pad_channels", pad));
                pads++;
            }
            int cast = kn_absorbable_cast(g, v, nchw_uses, is_out);
            if (cast >= 0) {
                KN_TRY(kn_node_set_attr_int(&g->nodes[node], "kiln.to_dtype", kn_attr_i(&g->nodes[cast], "to", 0)));
                g->nodes[node].in[0] = g->nodes[cast].in[0];
                if (kn_pass_backend_takes(opt, g, node)) {
                    kn_pass_kill(g, cast);
                    casts++;
                } else { /* the backend converts types apart: the Cast stays */
                    g->nodes[node].in[0] = v;
                    kn_pass_remove_attr(&g->nodes[node], "kiln.to_dtype");
                }
            }
            to_nhwc++;
        }
    }
    /* conv weights in OHWI, a copy per distinct constant */
    int weights = 0;
    for (int v = 0; v < n_values; v++) wmap[v] = -1;
    for (int i = 0; i < n_nodes; i++) {
        if (!in_l[i]) continue;
        if (g->nodes[i].op == KN_OP_Conv && padded[i]) { /* its own copy: OHWI with zero channels */
            int w = g->nodes[i].in[1];
            char name[256];
            snprintf(name, sizeof name, "%s.ohwi_c%lld", g->values[w].name, (long long)padded[i]);
            kn_host_tensor *t = kn_weight_ohwi(g->values[w].constant), *tp = t ? kn_weight_pad_channels(t, padded[i]) : NULL;
            kn_host_tensor_free(t);
            if (!tp) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory padding conv weights");
            int wp;
            KN_TRY(kn_pass_add_const(g, name, tp, &wp));
            weights++;
            g->nodes[i].in[1] = wp;
            kn_pass_drop_const(g, w);
        } else if (g->nodes[i].op == KN_OP_Conv) {
            int w = g->nodes[i].in[1];
            if (wmap[w] < 0) {
                char name[256];
                snprintf(name, sizeof name, "%s.ohwi", g->values[w].name);
                kn_host_tensor *t = kn_weight_ohwi(g->values[w].constant);
                if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory permuting conv weights");
                KN_TRY(kn_pass_add_const(g, name, t, &wmap[w]));
                weights++;
            }
            g->nodes[i].in[1] = wmap[w];
            kn_pass_drop_const(g, w);
        }
        KN_TRY(kn_node_set_attr_int(&g->nodes[i], "kiln.layout", 1));
    }
    kn_pass_log(opt,
                "layout_nhwc: %d node%s NHWC, %d conversion%s to NHWC (%d padding channels, %d taking over a Cast), "
                "%d back to NCHW, %d weight%s in OHWI",
                count, count == 1 ? "" : "s", to_nhwc, to_nhwc == 1 ? "" : "s", pads, casts, to_nchw, weights,
                weights == 1 ? "" : "s");
    return kn_graph_infer_static(g);
}

kiln_status kn_pass_layout_nhwc(kn_graph *g, const kn_pass_options *opt, int *changed) {
    KN_ARG_CHECK(g && opt && changed, "graph/options");
    *changed = 0;
    if (!opt->backend || !opt->backend->prefers_nhwc || !opt->backend->prefers_nhwc(opt->precision)) return KILN_OK;
    int *parent = kn_malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    uint8_t *in_l = kn_calloc((size_t)g->n_nodes + 1, 1);
    int *wmap = kn_malloc(((size_t)g->n_values + 1) * sizeof(int));
    int64_t *padded = kn_calloc((size_t)g->n_nodes + 1, sizeof(int64_t)); /* per Conv: the channels its X was padded to */
    kiln_status st = parent && in_l && wmap && padded
                         ? kn_layout_rewrite(g, opt, parent, in_l, wmap, padded, changed)
                         : kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory in the layout pass");
    kn_free(padded);
    kn_free(parent);
    kn_free(in_l);
    kn_free(wmap);
    return st;
}
