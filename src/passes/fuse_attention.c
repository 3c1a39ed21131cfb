/* Attention fusion: MatMul(Q, B) -> Softmax(last axis) -> MatMul(P, V) becomes one KilnAttention
 * node (src/ops/attention.h), so the scores never reach memory and one kernel does what took
 * five steps. Rank 3, or rank 4 where each operand is a Reshape [B * H, L, D] -> [B, H, L, D]
 * (torch 2.x's export; its operands start at a Gather of one index from the packed projection,
 * which the view takes too, and through the copy that packs q, k and v apart when it only moves
 * them to the front: the view then reads the projection itself). Each operand is taken through the Transpose <- Reshape (heads split off the last
 * dim) <- Slice (of the last dim) chain that torch's multi-head attention export writes, as a
 * strided view of the chain's root (the packed QKV projection), and a Transpose that is the
 * output's only reader is folded into the output; the chain nodes then have no reader and DCE
 * drops them. The first MatMul's kiln.alpha (a folded 1/sqrt(d)) and kiln.trans_b carry over.
 *
 * When: every tensor rank 3 (or 4, as above, with one constant H); the scores and probabilities read only by the pattern (not graph
 * outputs); the first MatMul without kiln.trans_a or a bias, the second plain; Q's and K's
 * inner dims and K's and V's lengths the same static dim; no node marked fallback; the backend
 * takes the fused node, and its fuses_attention (if any) says yes at the build's precision
 * (CUDA: fp32 only). The batch dims need no proof here: KilnAttention broadcasts a batch of 1
 * and refuses other mismatches at run time, as the two MatMuls would (their batch dims follow
 * the same rule). A mask or a causal Add between the MatMul and the Softmax is not fused. */
#include "passes.h"
#include "ops/attention.h"

#include <string.h>

/* A dim's constant value, or -1. */
static int64_t kn_at_const(kn_dim d) { return d.sym < 0 ? d.v : -1; }

/* The live node producing v when it is not fallback and of op `op`; else -1. */
static int kn_at_producer(const kn_graph *g, int v, kn_op op) {
    int p = kn_pass_producer(g, v);
    return p >= 0 && !g->nodes[p].fallback && g->nodes[p].op == op ? p : -1;
}

/* One int of a small int constant (index i, or the only element); 0 on success. */
static int kn_at_const_int(const kn_graph *g, int v, int i, int64_t *out) {
    const kn_host_tensor *t = kn_pass_const(g, v);
    if (!t || (t->dtype != KILN_I64 && t->dtype != KILN_I32) || kn_numel(t->rank, t->dims) <= i) return -1;
    *out = t->dtype == KILN_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    return 0;
}

typedef struct kn_at_view {
    int root;            /* the value the fused node reads */
    int64_t ints[KN_ATTN_VIEW_INTS];
    int chain[9], n_chain; /* Reshape (rank 4 -> 3), Transpose, Reshape, Slice, Gather, then the packed
                              projection's Squeeze, Transpose, Unsqueeze and Reshape: nodes taken through */
} kn_at_view;

/* A Slice of the last dim only (constant axes [2] or [-1], step 1) of a rank-3 X: 0 on success.
 * Without axes a Slice cuts dim 0 (ONNX's default axes are 0..len(starts)-1). */
static int kn_at_slice_last(const kn_graph *g, const kn_node *s) {
    int64_t a, st = 1;
    if (s->n_in < 4 || s->in[0] < 0 || s->in[3] < 0 || g->values[s->in[0]].rank != 3) return -1;
    const kn_host_tensor *axes = kn_pass_const(g, s->in[3]);
    if (kn_at_const_int(g, s->in[3], 0, &a) || kn_numel(axes->rank, axes->dims) != 1) return -1;
    if (s->n_in > 4 && s->in[4] >= 0 && kn_at_const_int(g, s->in[4], 0, &st)) return -1;
    return (a == 2 || a == -1) && st == 1 ? 0 : -1;
}

/* X[:, :, start:end] of a rank-3 X with a static last dim, as constants: 0 on success. */
static int kn_at_slice(const kn_graph *g, const kn_node *s, int64_t *start, int64_t *end) {
    if (kn_at_slice_last(g, s)) return -1;
    const kn_value *x = &g->values[s->in[0]];
    int64_t w = kn_at_const(x->dims[2]), b, e;
    if (w <= 0 || kn_at_const_int(g, s->in[1], 0, &b) || kn_at_const_int(g, s->in[2], 0, &e)) return -1;
    const kn_host_tensor *starts = kn_pass_const(g, s->in[1]), *ends = kn_pass_const(g, s->in[2]);
    if (kn_numel(starts->rank, starts->dims) != 1 || kn_numel(ends->rank, ends->dims) != 1) return -1;
    b = b < 0 ? b + w : b;
    e = e < 0 ? e + w : e;
    b = b < 0 ? 0 : b > w ? w : b;
    e = e < 0 ? 0 : e > w ? w : e;
    if (b >= e) return -1;
    *start = b;
    *end = e;
    return 0;
}

/* One axis from a constant axes input of one element, normalized for `rank` dims; -1 if not. */
static int kn_at_one_axis(const kn_graph *g, const kn_node *n, int rank) {
    int64_t a;
    const kn_host_tensor *t = n->n_in == 2 && n->in[1] >= 0 ? kn_pass_const(g, n->in[1]) : NULL;
    if (!t || kn_numel(t->rank, t->dims) != 1 || kn_at_const_int(g, n->in[1], 0, &a)) return -1;
    a = a < 0 ? a + rank : a;
    return a >= 0 && a < rank ? (int)a : -1;
}

/* torch 2.x packs q, k and v as data [C, a0, a1, E] = X [a0, a1, C * E] through Reshape
 * [a0, a1, C, E], Unsqueeze, Transpose and Squeeze (a copy of the whole projection). When those
 * three only bring C to the front, data[c] is X[:, :, c * E:(c + 1) * E], and the view can read X
 * itself. Tracks what each dim is (a0, a1, C, E or an inserted 1) through the chain; returns X,
 * with C * E's E in *e and the four nodes in chain[], or -1. */
static int kn_at_packed(const kn_graph *g, int data, int64_t *e, int chain[4]) {
    enum { A0, A1, C, E, ONE };
    int sq = kn_at_producer(g, data, KN_OP_Squeeze);
    int tr = sq >= 0 ? kn_at_producer(g, g->nodes[sq].in[0], KN_OP_Transpose) : -1;
    int un = tr >= 0 ? kn_at_producer(g, g->nodes[tr].in[0], KN_OP_Unsqueeze) : -1;
    int rs = un >= 0 ? kn_at_producer(g, g->nodes[un].in[0], KN_OP_Reshape) : -1;
    if (rs < 0) return -1;
    const kn_value *x = &g->values[g->nodes[rs].in[0]], *r4 = &g->values[g->nodes[rs].out[0]];
    if (x->rank != 3 || r4->rank != 4 || g->values[g->nodes[un].out[0]].rank != 5 || g->values[data].rank != 4) return -1;
    int64_t w = kn_at_const(x->dims[2]), c = kn_at_const(r4->dims[2]), ew = kn_at_const(r4->dims[3]);
    if (w <= 0 || c <= 0 || ew <= 0 || c * ew != w || !kn_pass_same_dim(x->dims[0], r4->dims[0]) ||
        !kn_pass_same_dim(x->dims[1], r4->dims[1]))
        return -1;
    int role[5] = {A0, A1, C, E}, moved[5];
    int au = kn_at_one_axis(g, &g->nodes[un], 5), as = kn_at_one_axis(g, &g->nodes[sq], 5);
    const int64_t *perm;
    if (au < 0 || as < 0 || kn_attr_ints(&g->nodes[tr], "perm", &perm) != 5) return -1;
    for (int i = 4; i > au; i--) role[i] = role[i - 1];
    role[au] = ONE;
    for (int i = 0; i < 5; i++) {
        if (perm[i] < 0 || perm[i] > 4) return -1;
        moved[i] = role[perm[i]];
    }
    if (moved[as] != ONE) return -1;
    for (int i = as; i < 4; i++) moved[i] = moved[i + 1];
    if (moved[0] != C || moved[1] != A0 || moved[2] != A1 || moved[3] != E) return -1;
    *e = ew;
    chain[0] = sq; chain[1] = tr; chain[2] = un; chain[3] = rs;
    return g->nodes[rs].in[0];
}

/* Operand value u through [Transpose] <- [Reshape splitting heads] <- [Slice], as far as the
 * chain is one the kernel can index (a split dim must become the batch dim). */
static void kn_at_resolve(const kn_graph *g, int u, kn_at_view *v) {
    *v = (kn_at_view){.root = u, .ints = {0, -1, 0, 0, 1, 2, -1}};
    int cur = u, tr = kn_at_producer(g, u, KN_OP_Transpose);
    int64_t perm[3] = {0, 1, 2};
    if (tr >= 0) {
        const int64_t *p;
        const kn_node *t = &g->nodes[tr];
        if (kn_attr_ints(t, "perm", &p) != 3 || g->values[t->in[0]].rank != 3) return;
        for (int i = 0; i < 3; i++) perm[i] = p[i];
        cur = t->in[0];
        v->root = cur;
        for (int i = 0; i < 3; i++) v->ints[3 + i] = perm[i];
        v->chain[v->n_chain++] = tr;
    }
    /* a Reshape [a0, a1, w] -> [a0, a1 * w / hd, hd] whose split dim becomes the batch */
    int rs = kn_at_producer(g, cur, KN_OP_Reshape);
    if (rs < 0 || perm[0] != 1) return;
    const kn_value *ri = &g->values[g->nodes[rs].in[0]], *ro = &g->values[cur];
    int64_t w = ri->rank == 3 ? kn_at_const(ri->dims[2]) : -1, hd = ro->rank == 3 ? kn_at_const(ro->dims[2]) : -1;
    if (w <= 0 || hd <= 0 || w % hd || !kn_pass_same_dim(ri->dims[0], ro->dims[0])) return;
    int root = g->nodes[rs].in[0];
    int64_t start = 0, end = -1;
    int sl = kn_at_producer(g, root, KN_OP_Slice);
    if (sl >= 0 && !kn_at_slice(g, &g->nodes[sl], &start, &end)) root = g->nodes[sl].in[0];
    else sl = -1;
    /* a Gather of one constant index on axis 0 of a rank-4 value: root entry `select` */
    int ga = kn_at_producer(g, root, KN_OP_Gather);
    int64_t select = -1;
    if (ga >= 0) {
        const kn_node *gn = &g->nodes[ga];
        const kn_host_tensor *it = gn->n_in == 2 ? kn_pass_const(g, gn->in[1]) : NULL;
        const kn_value *data = gn->in[0] >= 0 ? &g->values[gn->in[0]] : NULL;
        int64_t c = data && data->rank == 4 ? kn_at_const(data->dims[0]) : -1, idx;
        if (it && it->rank == 0 && kn_attr_i(gn, "axis", 0) == 0 && c > 0 && !kn_at_const_int(g, gn->in[1], 0, &idx)) {
            idx = idx < 0 ? idx + c : idx;
            if (idx >= 0 && idx < c) select = idx;
        }
    }
    v->root = select >= 0 ? g->nodes[ga].in[0] : root;
    /* the packed projection's copy: Gather `select` is a slice of its input */
    int64_t e = 0;
    int packed[4], x = select >= 0 ? kn_at_packed(g, v->root, &e, packed) : -1;
    if (x >= 0) {
        end = select * e + (end < 0 ? e : end);
        start += select * e;
        v->root = x;
    }
    v->ints[0] = start;
    v->ints[1] = end;
    v->ints[2] = hd;
    v->ints[6] = x >= 0 ? -1 : select;
    v->chain[v->n_chain++] = rs;
    if (sl >= 0) v->chain[v->n_chain++] = sl;
    if (select >= 0) v->chain[v->n_chain++] = ga;
    for (int i = 0; x >= 0 && i < 4; i++) v->chain[v->n_chain++] = packed[i];
}

static int kn_at_rank(const kn_graph *g, int v, int rank) { return v >= 0 && g->values[v].rank == rank; }

/* A rank-4 operand [B, H, L, D] that a Reshape made of a rank-3 [B * H, L, D] (torch 2.x's
 * export views the heads apart before scaled_dot_product_attention): that rank-3 value, with H
 * (a constant) in *heads and the Reshape in *rs; -1 when u is not one. */
static int kn_at_unsplit(const kn_graph *g, int u, int64_t *heads, int *rs) {
    const kn_value *uv = &g->values[u];
    int r = kn_at_producer(g, u, KN_OP_Reshape);
    if (uv->rank != 4 || r < 0) return -1;
    int w = g->nodes[r].in[0];
    const kn_value *wv = &g->values[w];
    int64_t h = kn_at_const(uv->dims[1]);
    if (wv->rank != 3 || h <= 0 || !kn_pass_same_dim(wv->dims[1], uv->dims[2]) || !kn_pass_same_dim(wv->dims[2], uv->dims[3]))
        return -1;
    *heads = h;
    *rs = r;
    return w;
}

static kiln_status kn_at_fuse(kn_graph *g, const kn_pass_options *opt, int m2, int *done) {
    *done = 0;
    kn_node *n2 = &g->nodes[m2];
    if ((n2->n_in > 2 && n2->in[2] >= 0) || kn_attr_i(n2, "kiln.trans_a", 0) || kn_attr_i(n2, "kiln.trans_b", 0) ||
        kn_attr_f(n2, "kiln.alpha", 1.0f) != 1.0f)
        return KILN_OK;
    int p = n2->in[0], vv = n2->in[1];
    int sm = kn_at_producer(g, p, KN_OP_Softmax);
    const int rank = p >= 0 ? g->values[p].rank : -1;
    if (sm < 0 || kn_pass_sole_consumer(g, p) != m2 || (rank != 3 && rank != 4) || !kn_at_rank(g, vv, rank)) return KILN_OK;
    int64_t axis = kn_attr_i(&g->nodes[sm], "axis", -1);
    if (axis != -1 && axis != rank - 1) return KILN_OK;
    int s = g->nodes[sm].in[0];
    int m1 = kn_at_producer(g, s, KN_OP_MatMul);
    if (m1 < 0 || kn_pass_sole_consumer(g, s) != sm || !kn_at_rank(g, s, rank)) return KILN_OK;
    const kn_node *n1 = &g->nodes[m1];
    if ((n1->n_in > 2 && n1->in[2] >= 0) || kn_attr_i(n1, "kiln.trans_a", 0) || !kn_at_rank(g, n1->in[0], rank) ||
        !kn_at_rank(g, n1->in[1], rank))
        return KILN_OK;
    int tb = (int)kn_attr_i(n1, "kiln.trans_b", 0);
    float alpha = kn_attr_f(n1, "kiln.alpha", 1.0f);
    /* the rank-3 operands: in the rank-4 form, the values the heads were viewed apart from */
    int opnd[3] = {n1->in[0], n1->in[1], vv}, split[3] = {-1, -1, -1};
    int64_t heads = 0;
    if (rank == 4) {
        for (int k = 0; k < 3; k++) {
            int64_t h = 0;
            int w = kn_at_unsplit(g, opnd[k], &h, &split[k]);
            if (w < 0 || (heads && h != heads)) return KILN_OK;
            heads = h;
            opnd[k] = w;
        }
        if (kn_at_const(g->values[n2->out[0]].dims[1]) != heads) return KILN_OK;
    }
    const kn_value *qv = &g->values[opnd[0]], *bv = &g->values[opnd[1]], *vval = &g->values[opnd[2]];
    /* K's [Lk, Dk] from B ([Dk, Lk], or [Lk, Dk] with trans_b): Dk must meet Q's, Lk V's */
    kn_dim k_l = bv->dims[tb ? 1 : 2], k_d = bv->dims[tb ? 2 : 1];
    if (!kn_pass_same_dim(qv->dims[2], k_d) || !kn_pass_same_dim(k_l, vval->dims[1])) return KILN_OK;
    if (qv->dtype != bv->dtype || qv->dtype != vval->dtype || !kn_dtype_is_float(qv->dtype)) return KILN_OK;

    kn_at_view view[3];
    for (int k = 0; k < 3; k++) {
        kn_at_resolve(g, opnd[k], &view[k]);
        if (split[k] >= 0) { /* the rank-4 Reshape heads the chain */
            memmove(view[k].chain + 1, view[k].chain, (size_t)view[k].n_chain * sizeof(int));
            view[k].chain[0] = split[k];
            view[k].n_chain++;
        }
    }
    if (!tb) { /* B is K^T: K's perm is B's with the last two swapped */
        int64_t t = view[1].ints[4];
        view[1].ints[4] = view[1].ints[5];
        view[1].ints[5] = t;
    }

    /* the output's only reader, a Transpose of its rank, folds into the output */
    int y = n2->out[0], tr_out = -1, c = kn_pass_sole_consumer(g, y);
    int64_t out_perm[4] = {0, 1, 2, 3};
    if (c >= 0 && !g->nodes[c].dead && !g->nodes[c].fallback && g->nodes[c].op == KN_OP_Transpose) {
        const int64_t *pp;
        if (kn_attr_ints(&g->nodes[c], "perm", &pp) == rank) {
            tr_out = c;
            for (int i = 0; i < rank; i++) out_perm[i] = pp[i];
        }
    }

    kn_op op_before = n2->op;
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(n2, &bk));
    static const char *const names[3] = {"kiln.q_view", "kiln.k_view", "kiln.v_view"};
    n2->op = KN_OP_KilnAttention;
    kiln_status st = KILN_OK;
    for (int k = 0; k < 3 && st == KILN_OK; k++) st = kn_pass_set_input(n2, k, view[k].root);
    for (int k = 0; k < 3 && st == KILN_OK; k++) st = kn_node_set_attr_ints(n2, names[k], KN_ATTN_VIEW_INTS, view[k].ints);
    if (st == KILN_OK && alpha != 1.0f) st = kn_node_set_attr_float(n2, "kiln.alpha", alpha);
    if (st == KILN_OK && heads > 0) st = kn_node_set_attr_int(n2, "kiln.heads", heads);
    if (st == KILN_OK && tr_out >= 0) st = kn_node_set_attr_ints(n2, "kiln.out_perm", rank, out_perm);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, m2)) {
        kn_node_backup_restore(n2, &bk);
        g->nodes[m2].op = op_before;
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, m2, m1));
    KN_TRY(kn_pass_absorb(g, m2, sm));
    kn_pass_kill(g, m1);
    kn_pass_kill(g, sm);
    if (tr_out >= 0) {
        KN_TRY(kn_pass_absorb(g, m2, tr_out));
        kn_pass_take_output(g, m2, 0, g->nodes[tr_out].out[0]);
        kn_pass_kill(g, tr_out);
    }
    /* chain nodes nothing reads any more are the fused node's work now */
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < view[k].n_chain; j++) {
            int cn = view[k].chain[j];
            if (g->nodes[cn].dead || kn_pass_uses(g, g->nodes[cn].out[0]) != 0) continue;
            KN_TRY(kn_pass_absorb(g, m2, cn));
            kn_pass_kill(g, cn);
        }
    *done = 1;
    return KILN_OK;
}

kiln_status kn_pass_fuse_attention(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    if (opt->backend && opt->backend->fuses_attention && !opt->backend->fuses_attention(opt->precision)) return KILN_OK;
    int fused = 0;
    kiln_status st = KILN_OK;
    for (int i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead || n->fallback || n->op != KN_OP_MatMul) continue;
        int done = 0;
        st = kn_at_fuse(g, opt, i, &done);
        fused += done;
    }
    KN_TRY(st);
    if (fused) kn_pass_log(opt, "fuse_attention: fused %d MatMul-Softmax-MatMul into KilnAttention", fused);
    *changed = fused;
    return KILN_OK;
}
