/* KilnAttention's meaning (src/ops/attention.h): attribute checks, operand views, shapes. */
#include "attention.h"

static const char *const kn_attn_view_attr[3] = {"kiln.q_view", "kiln.k_view", "kiln.v_view"};
static const char *const kn_attn_name[3] = {"Q", "K", "V"};

static int kn_attn_perm_ok(const int64_t *p, int rank) {
    int seen = 0;
    for (int i = 0; i < rank; i++) {
        if (p[i] < 0 || p[i] >= rank || (seen >> p[i]) & 1) return 0;
        seen |= 1 << p[i];
    }
    return 1;
}

static kiln_status kn_check_attention(const kn_graph *g, const kn_node *n) {
    (void)g;
    for (int k = 0; k < 3; k++) {
        const int64_t *v;
        int c = kn_attr_ints(n, kn_attn_view_attr[k], &v);
        if (c < 0) continue;
        if (c != KN_ATTN_VIEW_INTS || v[0] < 0 || v[1] < -1 || (v[1] >= 0 && v[1] <= v[0]) || v[2] < 0 ||
            !kn_attn_perm_ok(v + 3, 3) || v[6] < -1)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "attribute '%s' must be [start, end (-1: all), head_dim (0: none), perm0, perm1, perm2, "
                                 "select (-1: none)] with 0 <= start < end and a permutation of 0,1,2",
                                 kn_attn_view_attr[k]);
    }
    const int64_t *p;
    int64_t heads = kn_attr_i(n, "kiln.heads", 0);
    int rank = heads > 0 ? 4 : 3, c = kn_attr_ints(n, "kiln.out_perm", &p);
    if (heads < 0) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kiln.heads' must be >= 0, got %lld", (long long)heads);
    if (c >= 0 && (c != rank || !kn_attn_perm_ok(p, rank)))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'kiln.out_perm' must be a permutation of 0..%d", rank - 1);
    return KILN_OK;
}

/* One view dim: size, and up to two (size, stride) parts, outer first (a dim the heads joined). */
typedef struct kn_vdim {
    int64_t size, outer, s_outer, inner, s_inner;
} kn_vdim;

static kiln_status kn_attn_operand_view(const kn_node *n, int which, const kn_tensor *x, int64_t dims[3], kn_attn_operand *o) {
    static const int64_t ident[KN_ATTN_VIEW_INTS] = {0, -1, 0, 0, 1, 2, -1};
    const int64_t *v = ident;
    if (kn_attr_ints(n, kn_attn_view_attr[which], &v) != KN_ATTN_VIEW_INTS) v = ident;
    const int sel = v[6] >= 0;
    if (x->rank != 3 + sel)
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) has rank %d; its view takes rank %d", which,
                             kn_attn_name[which], x->rank, 3 + sel);
    if (sel && v[6] >= x->dims[0])
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s): its view picks entry %lld of %lld", which,
                             kn_attn_name[which], (long long)v[6], (long long)x->dims[0]);
    int64_t a0 = x->dims[sel], a1 = x->dims[sel + 1], a2 = x->dims[sel + 2];
    int64_t start = v[0], end = v[1] < 0 ? a2 : v[1], hd = v[2];
    if (end > a2 || start >= end)
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) has %lld columns; its view takes columns %lld..%lld", which,
                             kn_attn_name[which], (long long)a2, (long long)start, (long long)end);
    int64_t w = end - start;
    kn_vdim vd[3];
    vd[0] = (kn_vdim){a0, a0, a1 * a2, 1, 0};
    if (hd > 0) {
        if (w % hd)
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s): %lld columns do not split into heads of %lld", which,
                                 kn_attn_name[which], (long long)w, (long long)hd);
        vd[1] = (kn_vdim){a1 * (w / hd), a1, a2, w / hd, hd};
        vd[2] = (kn_vdim){hd, hd, 1, 1, 0};
    } else {
        vd[1] = (kn_vdim){a1, a1, a2, 1, 0};
        vd[2] = (kn_vdim){w, w, 1, 1, 0};
    }
    /* operand dim i is view dim p[i]; only N may keep two parts */
    const int64_t *p = v + 3;
    int64_t s[3];
    for (int i = 0; i < 3; i++) {
        const kn_vdim *d = &vd[p[i]];
        dims[i] = d->size;
        s[i] = d->inner == 1 ? d->s_outer : d->outer == 1 ? d->s_inner : -1;
        if (i > 0 && s[i] < 0)
            return kn_node_error(n, KILN_ERR_SHAPE,
                                 "input %d (%s): its view's dim %d joins two strides; only the batch dim (0) may", which,
                                 kn_attn_name[which], i);
    }
    const kn_vdim *nd = &vd[p[0]];
    o->off = start + (sel ? v[6] * a0 * a1 * a2 : 0);
    if (s[0] >= 0) {
        o->n_inner = 1, o->s_outer = s[0], o->s_inner = 0;
    } else {
        o->n_inner = nd->inner, o->s_outer = nd->s_outer, o->s_inner = nd->s_inner;
    }
    o->s_l = s[1];
    o->s_d = s[2];
    return KILN_OK;
}

kiln_status kn_attn_geometry(const kn_node *n, const kn_tensor *q, const kn_tensor *k, const kn_tensor *v, kn_attn_geom *g) {
    int64_t qd[3], kd[3], vd[3];
    KN_TRY(kn_attn_operand_view(n, 0, q, qd, &g->q));
    KN_TRY(kn_attn_operand_view(n, 1, k, kd, &g->k));
    KN_TRY(kn_attn_operand_view(n, 2, v, vd, &g->v));
    /* the batch broadcasts as the MatMuls' batch dims do: each operand's is N or 1, or in the
     * rank-4 form H (a batch B of 1) */
    const int64_t heads = kn_attr_i(n, "kiln.heads", 0);
    int64_t nb = qd[0] > kd[0] ? qd[0] : kd[0];
    nb = vd[0] > nb ? vd[0] : nb;
    const int64_t on[3] = {qd[0], kd[0], vd[0]};
    int nb_ok = heads == 0 || nb % heads == 0;
    for (int k = 0; k < 3; k++) nb_ok &= on[k] == nb || on[k] == 1 || (heads > 0 && on[k] == heads);
    if (!nb_ok || kd[1] != vd[1] || qd[2] != kd[2])
        return kn_node_error(n, KILN_ERR_SHAPE,
                             "operands Q [%lld, %lld, %lld], K [%lld, %lld, %lld] and V [%lld, %lld, %lld] do not fit: "
                             "expected Q [N, Lq, D], K [N, Lk, D], V [N, Lk, Dv] (a batch of 1 broadcasts)",
                             (long long)qd[0], (long long)qd[1], (long long)qd[2], (long long)kd[0], (long long)kd[1],
                             (long long)kd[2], (long long)vd[0], (long long)vd[1], (long long)vd[2]);
    g->n = nb, g->lq = qd[1], g->lk = kd[1], g->dk = qd[2], g->dv = vd[2];
    kn_attn_operand *ops[3] = {&g->q, &g->k, &g->v};
    for (int k = 0; k < 3; k++) {
        kn_attn_operand *o = ops[k];
        if (on[k] == nb) continue;
        if (on[k] == 1) {
            o->n_inner = 1, o->s_outer = 0, o->s_inner = 0;
        } else if (o->n_inner == 1) { /* N = H of B * H: n % H picks the head, B broadcasts */
            o->n_inner = heads, o->s_inner = o->s_outer, o->s_outer = 0;
        } else if (o->n_inner == heads) {
            o->s_outer = 0;
        } else {
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s): a batch of %lld heads does not broadcast over %lld", k,
                                 kn_attn_name[k], (long long)on[k], (long long)nb);
        }
    }
    g->alpha = kn_attr_f(n, "kiln.alpha", 1.0f);
    /* the output: O [N, Lq, Dv] (or [N / H, H, Lq, Dv]) permuted, packed */
    static const int64_t ident[4] = {0, 1, 2, 3};
    const int rank = heads > 0 ? 4 : 3;
    const int64_t *p = ident;
    if (kn_attr_ints(n, "kiln.out_perm", &p) != rank) p = ident;
    int64_t od[4], os[4], ys[4];
    if (heads > 0) od[0] = nb / heads, od[1] = heads, od[2] = g->lq, od[3] = g->dv;
    else od[0] = nb, od[1] = g->lq, od[2] = g->dv;
    g->y_rank = rank;
    for (int i = 0; i < rank; i++) g->y_dims[i] = od[p[i]];
    ys[rank - 1] = 1;
    for (int i = rank - 2; i >= 0; i--) ys[i] = ys[i + 1] * g->y_dims[i + 1];
    for (int i = 0; i < rank; i++) os[p[i]] = ys[i];
    if (heads > 0) g->y = (kn_attn_operand){0, heads, os[0], os[1], os[2], os[3]};
    else g->y = (kn_attn_operand){0, 1, os[0], 0, os[1], os[2]};
    return KILN_OK;
}

static kiln_status kn_infer_attention(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    for (int k = 0; k < 3; k++) {
        KN_TRY(kn_expect_float(n, &c->in[k], kn_attn_name[k]));
        if (c->in[k].dtype != c->in[0].dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "input %d (%s) is %s, Q is %s; they must match", k, kn_attn_name[k],
                                 kiln_dtype_name(c->in[k].dtype), kiln_dtype_name(c->in[0].dtype));
    }
    kn_attn_geom g;
    KN_TRY(kn_attn_geometry(n, &c->in[0], &c->in[1], &c->in[2], &g));
    kn_tensor *y = &c->out[0];
    y->dtype = c->in[0].dtype;
    y->rank = g.y_rank;
    for (int i = 0; i < g.y_rank; i++) y->dims[i] = g.y_dims[i];
    return KILN_OK;
}

void kn_ops_register_attention(kn_op_def *t) {
    t[KN_OP_KilnAttention] = (kn_op_def){"KilnAttention", 3, 3, 1, 1, 0, KN_OPF_PURE | KN_OPF_INTERNAL, kn_check_attention,
                                         kn_infer_attention};
}
