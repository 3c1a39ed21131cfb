/* Common-subexpression elimination: two live pure nodes with the same op, the same inputs and the
 * same attributes compute the same values, so the later one's readers read the earlier one's
 * outputs. Small constants compare by content (exporters write one Constant per use). Nodes are
 * visited in topological order, so merging one node makes its readers comparable in turn. */
#include "passes.h"

#include <math.h>

/* Constants up to this many bytes are compared by content. */
#define KN_CSE_CONST_BYTES 256

static size_t kn_tensor_nbytes(const kn_host_tensor *t) {
    return (size_t)kn_host_numel(t) * kiln_dtype_size(t->dtype);
}

static int kn_small_const(const kn_graph *g, int v) {
    const kn_host_tensor *t = kn_pass_const(g, v);
    return t && kn_tensor_nbytes(t) <= KN_CSE_CONST_BYTES;
}

static int kn_tensors_equal(const kn_host_tensor *a, const kn_host_tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return memcmp(a->data, b->data, kn_tensor_nbytes(a)) == 0;
}

static int kn_same_input(const kn_graph *g, int a, int b) {
    if (a == b) return 1;
    if (a < 0 || b < 0 || !kn_small_const(g, a) || !kn_small_const(g, b)) return 0;
    return kn_tensors_equal(g->values[a].constant, g->values[b].constant);
}

static int kn_attrs_equal(const kn_attr *a, const kn_attr *b) {
    if (a->type != b->type || a->count != b->count) return 0;
    switch (a->type) {
    case KILN_ATTR_INT: return a->i == b->i;
    case KILN_ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case KILN_ATTR_STRING: return a->s && b->s && strcmp(a->s, b->s) == 0;
    case KILN_ATTR_INTS: return a->count == 0 || memcmp(a->ints, b->ints, (size_t)a->count * sizeof(int64_t)) == 0;
    case KILN_ATTR_FLOATS: return a->count == 0 || memcmp(a->floats, b->floats, (size_t)a->count * sizeof(float)) == 0;
    case KILN_ATTR_TENSOR: return a->tensor && b->tensor && kn_tensors_equal(a->tensor, b->tensor);
    }
    return 0;
}

static int kn_nodes_equal(const kn_graph *g, const kn_node *a, const kn_node *b) {
    if (a->op != b->op || a->n_in != b->n_in || a->n_out != b->n_out || a->n_attrs != b->n_attrs) return 0;
    for (int k = 0; k < a->n_in; k++)
        if (!kn_same_input(g, a->in[k], b->in[k])) return 0;
    for (int o = 0; o < a->n_out; o++)
        if ((a->out[o] < 0) != (b->out[o] < 0)) return 0;
    for (int i = 0; i < a->n_attrs; i++) {
        const kn_attr *other = kn_node_attr(b, a->attrs[i].name);
        if (!other || !kn_attrs_equal(&a->attrs[i], other)) return 0;
    }
    return 1;
}

static uint64_t kn_node_hash(const kn_graph *g, const kn_node *n) {
    uint64_t h = kn_hash_bytes(KN_HASH_SEED, &n->op, sizeof n->op);
    h = kn_hash_bytes(h, &n->n_in, sizeof n->n_in);
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (kn_small_const(g, v)) {
            const kn_host_tensor *t = g->values[v].constant;
            h = kn_hash_bytes(h, t->data, kn_tensor_nbytes(t));
        } else {
            h = kn_hash_bytes(h, &v, sizeof v);
        }
    }
    /* attributes: order-independent (a sum of per-attribute hashes of name and scalar payload) */
    uint64_t ah = 0;
    for (int i = 0; i < n->n_attrs; i++) {
        const kn_attr *a = &n->attrs[i];
        uint64_t x = kn_hash_bytes(KN_HASH_SEED, a->name, strlen(a->name));
        x = kn_hash_bytes(x, &a->i, sizeof a->i);
        if (a->ints && a->count) x = kn_hash_bytes(x, a->ints, (size_t)a->count * sizeof(int64_t));
        ah += x;
    }
    return kn_hash_bytes(h, &ah, sizeof ah);
}

static int kn_cse_candidate(const kn_graph *g, const kn_node *n) {
    if (n->dead || n->fallback || n->n_out < 1) return 0;
    const kn_op_def *d = kn_op_get(n->op);
    return d && (d->flags & KN_OPF_PURE);
}

kiln_status kn_pass_cse(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    int cap = 16;
    while (cap < 2 * n) cap *= 2;
    int *table = kn_malloc((size_t)cap * sizeof(int));
    uint64_t *hashes = kn_calloc((size_t)g->n_nodes + 1, sizeof(uint64_t));
    if (!table || !hashes) {
        kn_free(order); kn_free(table); kn_free(hashes);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory in common-subexpression elimination");
    }
    for (int i = 0; i < cap; i++) table[i] = -1;
    int merged = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        kn_node *nd = &g->nodes[i];
        if (!kn_cse_candidate(g, nd)) continue;
        uint64_t h = kn_node_hash(g, nd);
        hashes[i] = h;
        size_t slot = (size_t)(h & (uint64_t)(cap - 1));
        int keep = -1;
        for (; table[slot] >= 0; slot = (slot + 1) & (size_t)(cap - 1)) {
            int j = table[slot];
            if (hashes[j] == h && kn_nodes_equal(g, &g->nodes[j], nd)) { keep = j; break; }
        }
        int names_output = 0;
        for (int o = 0; o < nd->n_out; o++) names_output |= nd->out[o] >= 0 && kn_pass_is_output(g, nd->out[o]);
        if (keep < 0 || names_output) {
            if (keep < 0) table[slot] = i;
            continue;
        }
        const kn_node *kp = &g->nodes[keep];
        for (int o = 0; o < nd->n_out; o++)
            if (nd->out[o] >= 0) kn_graph_replace_uses(g, nd->out[o], kp->out[o]);
        kn_pass_kill(g, i);
        merged++;
    }
    kn_free(order);
    kn_free(table);
    kn_free(hashes);
    if (merged) kn_pass_log(opt, "cse: merged %d duplicate node%s", merged, merged == 1 ? "" : "s");
    *changed = merged;
    return KILN_OK;
}
