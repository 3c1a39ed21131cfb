/* Topological order, compaction, structural verification, use counts. */
#include "ops/ops.h"

#include <stdlib.h>

kiln_status kn_graph_topo_order(const kn_graph *g, int **order_out, int *n_order) {
    *order_out = NULL;
    *n_order = 0;
    int *pending = kn_calloc((size_t)g->n_nodes + 1, sizeof(int));
    int *order = kn_malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    int *users_start = kn_calloc((size_t)g->n_values + 1, sizeof(int));
    int *users = NULL;
    int total = 0;
    kiln_status st = KILN_OK;
    if (!pending || !order || !users_start) goto oom;
    /* CSR of value -> consuming nodes */
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            if (v >= g->n_values) {
                st = kn_node_error(n, KILN_ERR_INTERNAL, "input %d refers to value %d of %d", k, v, g->n_values);
                goto done;
            }
            int p = g->values[v].producer;
            if (p >= 0 && !g->nodes[p].dead) { users_start[v + 1]++; pending[i]++; total++; }
        }
    }
    for (int v = 0; v < g->n_values; v++) users_start[v + 1] += users_start[v];
    users = kn_malloc((size_t)(total ? total : 1) * sizeof(int));
    int *fill = kn_calloc((size_t)g->n_values + 1, sizeof(int));
    if (!users || !fill) { kn_free(fill); goto oom; }
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            int p = g->values[v].producer;
            if (p >= 0 && !g->nodes[p].dead) users[users_start[v] + fill[v]++] = i;
        }
    }
    kn_free(fill);
    /* Kahn's algorithm; a stack keeps producers next to consumers, which shortens lifetimes */
    int head = 0, tail = 0, live = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead) { live++; if (pending[i] == 0) order[tail++] = i; }
    /* process in original order: a queue keeps the author's order where it is already valid */
    while (head < tail) {
        int i = order[head++];
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            for (int u = users_start[v]; u < users_start[v + 1]; u++)
                if (--pending[users[u]] == 0) order[tail++] = users[u];
        }
    }
    if (tail != live) {
        for (int i = 0; i < g->n_nodes; i++)
            if (!g->nodes[i].dead && pending[i] > 0) {
                st = kn_node_error(&g->nodes[i], KILN_ERR_INVALID_ARGUMENT,
                                   "the graph has a cycle through this node");
                break;
            }
        goto done;
    }
    *order_out = order;
    *n_order = tail;
    order = NULL;
    goto done;
oom:
    st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory ordering the graph");
done:
    kn_free(pending); kn_free(order); kn_free(users_start); kn_free(users);
    return st;
}

kiln_status kn_graph_compact(kn_graph *g) {
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    kn_node *nodes = kn_malloc((size_t)(n ? n : 1) * sizeof *nodes);
    if (!nodes) { kn_free(order); return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); }
    char *keep = kn_calloc((size_t)g->n_nodes + 1, 1);
    if (!keep) { kn_free(order); kn_free(nodes); return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); }
    for (int k = 0; k < n; k++) { nodes[k] = g->nodes[order[k]]; keep[order[k]] = 1; }
    for (int i = 0; i < g->n_nodes; i++)
        if (!keep[i]) { /* dead: free its storage */
            kn_node *d = &g->nodes[i];
            kn_free(d->name); kn_free(d->in); kn_free(d->out);
            for (int a = 0; a < d->n_attrs; a++) kn_attr_clear(&d->attrs[a]);
            kn_free(d->attrs);
        }
    kn_free(keep);
    kn_free(g->nodes);
    g->nodes = nodes;
    g->n_nodes = g->cap_nodes = n;
    for (int v = 0; v < g->n_values; v++) g->values[v].producer = -1;
    for (int k = 0; k < n; k++)
        for (int o = 0; o < nodes[k].n_out; o++)
            if (nodes[k].out[o] >= 0) g->values[nodes[k].out[o]].producer = k;
    kn_free(order);
    return KILN_OK;
}

kiln_status kn_graph_use_counts(const kn_graph *g, int **counts) {
    int *c = kn_calloc((size_t)g->n_values + 1, sizeof(int));
    if (!c) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) c[g->nodes[i].in[k]]++;
    }
    for (int k = 0; k < g->n_outputs; k++) c[g->outputs[k]]++;
    *counts = c;
    return KILN_OK;
}

void kn_graph_replace_uses(kn_graph *g, int from, int to) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == from) g->nodes[i].in[k] = to;
    }
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == from) g->outputs[k] = to;
}

kiln_status kn_graph_verify(const kn_graph *g) {
    if (g->n_outputs == 0) return kn_error(KILN_ERR_INVALID_ARGUMENT, "the graph has no outputs");
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        const kn_op_def *d = kn_op_get(n->op);
        if (!d) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "unknown op");
        if (n->n_in < d->min_in || n->n_in > d->max_in)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has %d inputs, expected %d to %d",
                                 n->n_in, d->min_in, d->max_in);
        if (n->n_out < d->min_out || n->n_out > d->max_out)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has %d outputs, expected %d to %d",
                                 n->n_out, d->min_out, d->max_out);
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) {
                if (k < d->min_in)
                    return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "required input %d is missing", k);
                continue;
            }
            const kn_value *val = &g->values[v];
            int has_source = val->constant || (val->flags & KN_VALUE_INPUT) ||
                             (val->producer >= 0 && !g->nodes[val->producer].dead);
            if (!has_source)
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                     "input '%s' is not a graph input, an initializer or the output of any node",
                                     val->name);
        }
        if (d->check) KN_TRY(d->check(g, n));
    }
    for (int k = 0; k < g->n_outputs; k++) {
        const kn_value *val = &g->values[g->outputs[k]];
        if (!val->constant && !(val->flags & KN_VALUE_INPUT) &&
            (val->producer < 0 || g->nodes[val->producer].dead))
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "graph output '%s' is produced by no node", val->name);
    }
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    kn_free(order);
    return KILN_OK;
}
