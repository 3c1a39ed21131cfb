/* Helpers shared by the passes: uses and consumers, constants, node surgery with undo, and the
 * activation matcher that the conv and gemm fusions share. */
#include "passes.h"

#include <float.h>
#include <math.h>

void kn_pass_log(const kn_pass_options *opt, const char *fmt, ...) {
    if (!(opt && opt->verbose) && kn_log_level < 2) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln verbose: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- uses ----------------------------------------------------------------------------------- */

int kn_pass_is_output(const kn_graph *g, int v) {
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == v) return 1;
    return 0;
}

int kn_pass_consumers(const kn_graph *g, int v, int *nodes, int cap) {
    int n = 0;
    if (v < 0) return 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        if (nd->dead) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] == v) {
                if (n < cap) nodes[n] = i;
                n++;
            }
    }
    return n;
}

int kn_pass_uses(const kn_graph *g, int v) {
    int n = kn_pass_consumers(g, v, NULL, 0);
    for (int k = 0; k < g->n_outputs; k++) n += g->outputs[k] == v;
    return n;
}

int kn_pass_sole_consumer(const kn_graph *g, int v) {
    int node;
    if (v < 0 || kn_pass_is_output(g, v)) return -1;
    return kn_pass_consumers(g, v, &node, 1) == 1 ? node : -1;
}

int kn_pass_producer(const kn_graph *g, int v) {
    if (v < 0) return -1;
    int p = g->values[v].producer;
    return p >= 0 && p < g->n_nodes && !g->nodes[p].dead ? p : -1;
}

/* ---- constants and shapes ----------------------------------------------------------------------- */

const kn_host_tensor *kn_pass_const(const kn_graph *g, int v) {
    return v >= 0 && v < g->n_values ? g->values[v].constant : NULL;
}

int kn_pass_const_scalar(const kn_graph *g, int v, double *out) {
    const kn_host_tensor *t = kn_pass_const(g, v);
    if (!t || kn_host_numel(t) != 1 || !kn_dtype_is_float(t->dtype)) return 0;
    *out = kn_load_f64(t->data, t->dtype, 0);
    return 1;
}

int kn_pass_static_shape(const kn_value *v) {
    if (v->rank < 0) return 0;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i].sym >= 0 || v->dims[i].v < 0) return 0;
    return 1;
}

int kn_pass_same_dim(kn_dim a, kn_dim b) {
    if (a.sym >= 0 || b.sym >= 0) return a.sym == b.sym;
    return a.v >= 0 && a.v == b.v;
}

int kn_pass_same_shape(const kn_value *a, const kn_value *b) {
    if (a->rank < 0 || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (!kn_pass_same_dim(a->dims[i], b->dims[i])) return 0;
    return 1;
}

/* ---- node surgery ------------------------------------------------------------------------------- */

kiln_status kn_pass_set_input(kn_node *n, int slot, int v) {
    if (slot >= n->n_in) {
        int *in = kn_realloc(n->in, (size_t)(slot + 1) * sizeof(int));
        if (!in) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory rewriting a node");
        for (int k = n->n_in; k <= slot; k++) in[k] = -1;
        n->in = in;
        n->n_in = slot + 1;
    }
    n->in[slot] = v;
    return KILN_OK;
}

kiln_status kn_pass_add_const(kn_graph *g, const char *name, kn_host_tensor *t, int *v) {
    kiln_status st = kn_graph_new_value(g, name, v);
    if (st != KILN_OK) {
        kn_host_tensor_free(t);
        return st;
    }
    kn_value_set_constant(&g->values[*v], t);
    return KILN_OK;
}

void kn_pass_drop_const(kn_graph *g, int v) {
    kn_value *val = &g->values[v];
    if (!val->constant || (val->flags & (KN_VALUE_INPUT | KN_VALUE_OUTPUT)) || kn_pass_uses(g, v)) return;
    kn_host_tensor_free(val->constant);
    val->constant = NULL;
}

void kn_pass_remove_attr(kn_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            kn_attr_clear(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (size_t)(n->n_attrs - i - 1) * sizeof *n->attrs);
            n->n_attrs--;
            return;
        }
}

void kn_pass_take_output(kn_graph *g, int node, int slot, int v) {
    kn_node *n = &g->nodes[node];
    int old = n->out[slot];
    if (old >= 0 && g->values[old].producer == node) g->values[old].producer = -1;
    n->out[slot] = v;
    if (v >= 0) g->values[v].producer = node;
}

void kn_pass_kill(kn_graph *g, int node) {
    kn_node *n = &g->nodes[node];
    n->dead = 1;
    for (int o = 0; o < n->n_out; o++) {
        int v = n->out[o];
        if (v >= 0 && g->values[v].producer == node) g->values[v].producer = -1;
    }
}

void kn_node_backup_free(kn_node_backup *b) {
    kn_free(b->in);
    for (int i = 0; i < b->n_attrs; i++) kn_attr_clear(&b->attrs[i]);
    kn_free(b->attrs);
    memset(b, 0, sizeof *b);
}

kiln_status kn_node_backup_save(const kn_node *n, kn_node_backup *b) {
    memset(b, 0, sizeof *b);
    b->in = kn_malloc((size_t)(n->n_in ? n->n_in : 1) * sizeof(int));
    b->attrs = kn_calloc((size_t)(n->n_attrs ? n->n_attrs : 1), sizeof *b->attrs);
    if (!b->in || !b->attrs) {
        kn_node_backup_free(b);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory saving a node");
    }
    b->n_in = n->n_in;
    if (n->n_in) memcpy(b->in, n->in, (size_t)n->n_in * sizeof(int));
    for (int i = 0; i < n->n_attrs; i++) {
        kiln_status st = kn_attr_copy(&b->attrs[i], &n->attrs[i]);
        if (st != KILN_OK) {
            kn_node_backup_free(b);
            return st;
        }
        b->n_attrs++;
    }
    return KILN_OK;
}

void kn_node_backup_restore(kn_node *n, kn_node_backup *b) {
    kn_free(n->in);
    for (int i = 0; i < n->n_attrs; i++) kn_attr_clear(&n->attrs[i]);
    kn_free(n->attrs);
    n->in = b->in;
    n->n_in = b->n_in;
    n->attrs = b->attrs;
    n->n_attrs = b->n_attrs;
    memset(b, 0, sizeof *b);
}

kiln_status kn_pass_absorb(kn_graph *g, int node, int absorbed) {
    int64_t a = kn_attr_i(&g->nodes[node], "kiln.nodes", 1), b = kn_attr_i(&g->nodes[absorbed], "kiln.nodes", 1);
    return kn_node_set_attr_int(&g->nodes[node], "kiln.nodes", (a < 1 ? 1 : a) + (b < 1 ? 1 : b));
}

int kn_pass_backend_takes(const kn_pass_options *opt, const kn_graph *g, int node) {
    if (!opt || !opt->backend || !opt->backend->supports_op) return 1;
    return opt->backend->supports_op(g, &g->nodes[node]) != 0;
}

/* ---- activations -------------------------------------------------------------------------------- */

const char *kn_act_name(int act) {
    static const char *const names[KN_ACT_COUNT] = {"none", "relu", "relu6", "clip", "sigmoid", "hardswish",
                                                    "silu", "gelu_erf", "gelu_tanh", "leaky_relu"};
    return act >= 0 && act < KN_ACT_COUNT ? names[act] : "?";
}

static int kn_live(const kn_graph *g, int node) {
    return node >= 0 && !g->nodes[node].dead && !g->nodes[node].fallback;
}

/* For a binary node reading v: the other input (v itself for op(v, v)), or -1. */
static int kn_other_input(const kn_node *n, int v) {
    if (n->n_in != 2) return -1;
    if (n->in[0] == v) return n->in[1];
    if (n->in[1] == v) return n->in[0];
    return -1;
}

static int kn_near(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* Node `node` is Mul(v, c) or Mul(c, v) with a scalar constant c close to `want`. */
static int kn_is_mul_by(const kn_graph *g, int node, int v, double want) {
    const kn_node *n = &g->nodes[node];
    double c;
    int o = kn_other_input(n, v);
    return n->op == KN_OP_Mul && o >= 0 && o != v && kn_pass_const_scalar(g, o, &c) && kn_near(c, want, 1e-6);
}

/* x / sqrt(2) as Div(x, 1.4142...) or Mul(x, 0.7071...). */
static int kn_is_div_sqrt2(const kn_graph *g, int node, int x) {
    const kn_node *n = &g->nodes[node];
    double c;
    if (n->op == KN_OP_Div && n->n_in == 2 && n->in[0] == x && n->in[1] != x && kn_pass_const_scalar(g, n->in[1], &c))
        return kn_near(c, 1.4142135623730951, 1e-3);
    if (n->op == KN_OP_Mul) {
        int o = kn_other_input(n, x);
        return o >= 0 && o != x && kn_pass_const_scalar(g, o, &c) && kn_near(c, 0.7071067811865476, 1e-3);
    }
    return 0;
}

/* GELU as exporters write it: x * 0.5 * (1 + erf(x / sqrt(2))), the three multiplications in any
 * order and with their operands either way round. */
static int kn_match_gelu_erf(const kn_graph *g, int x, kn_act_match *m) {
    int cons[2];
    if (kn_pass_is_output(g, x) || kn_pass_consumers(g, x, cons, 2) != 2 || cons[0] == cons[1]) return 0;
    for (int pick = 0; pick < 2; pick++) {
        int dn = cons[pick], u = cons[1 - pick];
        if (!kn_live(g, dn) || !kn_live(g, u) || !kn_is_div_sqrt2(g, dn, x)) continue;
        int e = kn_pass_sole_consumer(g, g->nodes[dn].out[0]);
        if (!kn_live(g, e) || g->nodes[e].op != KN_OP_Erf) continue;
        int a = kn_pass_sole_consumer(g, g->nodes[e].out[0]);
        double one;
        if (!kn_live(g, a) || g->nodes[a].op != KN_OP_Add) continue;
        int c1 = kn_other_input(&g->nodes[a], g->nodes[e].out[0]);
        if (c1 < 0 || !kn_pass_const_scalar(g, c1, &one) || !kn_near(one, 1.0, 1e-6)) continue;
        int p = g->nodes[a].out[0];
        int q = kn_pass_sole_consumer(g, p);
        if (!kn_live(g, q) || g->nodes[q].op != KN_OP_Mul || g->nodes[u].op != KN_OP_Mul) continue;
        int final = -1, mid = -1;
        if (u == q && kn_other_input(&g->nodes[u], x) == p) {
            /* (x * p) * 0.5 */
            int f = kn_pass_sole_consumer(g, g->nodes[u].out[0]);
            if (kn_live(g, f) && kn_is_mul_by(g, f, g->nodes[u].out[0], 0.5)) { mid = u; final = f; }
        } else if (u != q && kn_is_mul_by(g, u, x, 0.5) && kn_other_input(&g->nodes[q], p) == g->nodes[u].out[0] &&
                   kn_pass_sole_consumer(g, g->nodes[u].out[0]) == q) {
            /* (x * 0.5) * p */
            mid = u; final = q;
        } else if (u != q && kn_is_mul_by(g, q, p, 0.5) && kn_pass_sole_consumer(g, g->nodes[q].out[0]) == u &&
                   kn_other_input(&g->nodes[u], x) == g->nodes[q].out[0]) {
            /* x * (p * 0.5) */
            mid = q; final = u;
        }
        if (final < 0) continue;
        m->act = KN_ACT_GELU_ERF;
        m->alpha = m->beta = 0;
        m->out = g->nodes[final].out[0];
        m->n_kill = 5;
        m->kill[0] = dn; m->kill[1] = e; m->kill[2] = a; m->kill[3] = mid; m->kill[4] = final;
        return 1;
    }
    return 0;
}

/* x * sigmoid(x) */
static int kn_match_silu(const kn_graph *g, int x, kn_act_match *m) {
    int cons[2];
    if (kn_pass_is_output(g, x) || kn_pass_consumers(g, x, cons, 2) != 2 || cons[0] == cons[1]) return 0;
    for (int pick = 0; pick < 2; pick++) {
        int s = cons[pick], mul = cons[1 - pick];
        if (!kn_live(g, s) || !kn_live(g, mul) || g->nodes[s].op != KN_OP_Sigmoid || g->nodes[mul].op != KN_OP_Mul)
            continue;
        int sv = g->nodes[s].out[0];
        if (kn_pass_sole_consumer(g, sv) != mul || kn_other_input(&g->nodes[mul], x) != sv) continue;
        m->act = KN_ACT_SILU;
        m->alpha = m->beta = 0;
        m->out = g->nodes[mul].out[0];
        m->n_kill = 2;
        m->kill[0] = s; m->kill[1] = mul;
        return 1;
    }
    return 0;
}

/* A Clip bound: a constant scalar input, the old attribute, or none (def). */
static int kn_clip_bound(const kn_graph *g, const kn_node *n, int slot, const char *attr, double def, double *out) {
    if (n->n_in > slot && n->in[slot] >= 0) return kn_pass_const_scalar(g, n->in[slot], out);
    const kn_attr *a = kn_node_attr(n, attr);
    *out = a && a->type == KILN_ATTR_FLOAT ? a->f : def;
    return 1;
}

int kn_pass_match_act(const kn_graph *g, int v, kn_act_match *m) {
    memset(m, 0, sizeof *m);
    if (v < 0 || !kn_dtype_is_float(g->values[v].dtype)) return 0;
    if (kn_match_silu(g, v, m) || kn_match_gelu_erf(g, v, m)) return 1;
    int c = kn_pass_sole_consumer(g, v);
    if (!kn_live(g, c)) return 0;
    const kn_node *n = &g->nodes[c];
    if (n->n_in < 1 || n->in[0] != v || n->n_out < 1) return 0;
    for (int k = 1; k < n->n_in; k++)
        if (n->in[k] == v) return 0;
    switch (n->op) {
    case KN_OP_Relu: m->act = KN_ACT_RELU; break;
    case KN_OP_Sigmoid: m->act = KN_ACT_SIGMOID; break;
    case KN_OP_HardSwish: m->act = KN_ACT_HARDSWISH; break;
    case KN_OP_LeakyRelu:
        m->act = KN_ACT_LEAKY_RELU;
        m->alpha = kn_attr_f(n, "alpha", 0.01f);
        break;
    case KN_OP_Gelu: {
        const char *approx = kn_attr_s(n, "approximate", "none");
        if (strcmp(approx, "none") == 0) m->act = KN_ACT_GELU_ERF;
        else if (strcmp(approx, "tanh") == 0) m->act = KN_ACT_GELU_TANH;
        else return 0;
        break;
    }
    case KN_OP_Clip: {
        double lo, hi;
        if (!kn_clip_bound(g, n, 1, "min", -INFINITY, &lo) || !kn_clip_bound(g, n, 2, "max", INFINITY, &hi)) return 0;
        if (lo > hi) return 0; /* ONNX gives max everywhere then; leave it to the Clip kernel */
        if (lo == 0 && hi == 6) m->act = KN_ACT_RELU6;
        else if (lo == 0 && isinf(hi)) m->act = KN_ACT_RELU;
        else {
            m->act = KN_ACT_CLIP;
            m->alpha = isinf(lo) ? -FLT_MAX : (float)lo;
            m->beta = isinf(hi) ? FLT_MAX : (float)hi;
        }
        break;
    }
    default: return 0;
    }
    m->out = n->out[0];
    m->n_kill = 1;
    m->kill[0] = c;
    return 1;
}

kiln_status kn_pass_set_act(kn_node *n, const kn_act_match *m) {
    KN_TRY(kn_node_set_attr_int(n, "kiln.act", m->act));
    KN_TRY(kn_node_set_attr_float(n, "kiln.act_alpha", m->alpha));
    return kn_node_set_attr_float(n, "kiln.act_beta", m->beta);
}

/* ---- small tensor arithmetic ---------------------------------------------------------------------- */

kiln_status kn_pass_broadcast_axpby(const kn_host_tensor *a, double sa, const kn_host_tensor *b, double sb,
                                    kiln_dtype dt, kn_host_tensor **out) {
    *out = NULL;
    int rank = a->rank;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    if (b) {
        rank = a->rank > b->rank ? a->rank : b->rank;
        for (int i = 0; i < rank; i++) {
            int64_t x = i < rank - a->rank ? 1 : a->dims[i - (rank - a->rank)];
            int64_t y = i < rank - b->rank ? 1 : b->dims[i - (rank - b->rank)];
            if (x != y && x != 1 && y != 1)
                return kn_error(KILN_ERR_SHAPE, "constants of dims that do not broadcast");
            dims[i] = x == 1 ? y : x;
        }
    }
    kn_host_tensor *t = kn_host_tensor_new(dt, rank, dims);
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory folding constants");
    int64_t n = kn_numel(rank, dims), idx[KILN_MAX_RANK] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = 0, ib = 0, sta = 1, stb = 1;
        for (int d = rank - 1; d >= 0; d--) {
            int ja = d - (rank - a->rank), jb = b ? d - (rank - b->rank) : -1;
            if (ja >= 0) {
                if (a->dims[ja] != 1) ia += idx[d] * sta;
                sta *= a->dims[ja];
            }
            if (jb >= 0) {
                if (b->dims[jb] != 1) ib += idx[d] * stb;
                stb *= b->dims[jb];
            }
        }
        double v = kn_load_f64(a->data, a->dtype, ia) * sa;
        if (b) v += kn_load_f64(b->data, b->dtype, ib) * sb;
        kn_store_f64(t->data, dt, i, v);
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) break;
            idx[d] = 0;
        }
    }
    *out = t;
    return KILN_OK;
}

kiln_status kn_pass_fuse_activation(kn_graph *g, const kn_pass_options *opt, int node, const kn_act_match *m,
                                    int *done) {
    *done = 0;
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(&g->nodes[node], &bk));
    kiln_status st = kn_pass_set_act(&g->nodes[node], m);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, node)) {
        kn_node_backup_restore(&g->nodes[node], &bk);
        return st;
    }
    kn_node_backup_free(&bk);
    for (int k = 0; k < m->n_kill; k++) KN_TRY(kn_pass_absorb(g, node, m->kill[k]));
    kn_pass_take_output(g, node, 0, m->out);
    for (int k = 0; k < m->n_kill; k++) kn_pass_kill(g, m->kill[k]);
    *done = 1;
    return KILN_OK;
}

/* Clip-like activations as an interval [lo, hi]. */
static int kn_act_interval(int act, float alpha, float beta, float *lo, float *hi) {
    switch (act) {
    case KN_ACT_RELU: *lo = 0; *hi = FLT_MAX; return 1;
    case KN_ACT_RELU6: *lo = 0; *hi = 6; return 1;
    case KN_ACT_CLIP: *lo = alpha; *hi = beta; return 1;
    default: return 0;
    }
}

kiln_status kn_pass_fuse_second_act(kn_graph *g, const kn_pass_options *opt, int node, int *done) {
    *done = 0;
    const kn_node *n = &g->nodes[node];
    int act = (int)kn_attr_i(n, "kiln.act", KN_ACT_NONE);
    float lo1, hi1, lo2, hi2;
    kn_act_match m;
    if (n->n_out < 1 || !kn_act_interval(act, kn_attr_f(n, "kiln.act_alpha", 0), kn_attr_f(n, "kiln.act_beta", 0), &lo1, &hi1) ||
        !kn_pass_match_act(g, n->out[0], &m) || !kn_act_interval(m.act, m.alpha, m.beta, &lo2, &hi2))
        return KILN_OK;
    float lo = lo1 > lo2 ? lo1 : lo2, hi = hi1 < hi2 ? hi1 : hi2;
    if (lo > hi) return KILN_OK; /* disjoint ranges: a constant output; leave it */
    m.alpha = m.beta = 0;
    if (lo == 0 && hi == FLT_MAX) m.act = KN_ACT_RELU;
    else if (lo == 0 && hi == 6) m.act = KN_ACT_RELU6;
    else {
        m.act = KN_ACT_CLIP;
        m.alpha = lo;
        m.beta = hi;
    }
    return kn_pass_fuse_activation(g, opt, node, &m, done);
}
