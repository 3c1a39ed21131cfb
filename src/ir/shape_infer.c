/* Concrete and static shape inference; see shape_infer.h. */
#include "shape_infer.h"

#include <stdlib.h>

void kn_shapes_free(kn_shapes *s) {
    if (s->host_owned)
        for (int v = 0; v < s->n_values; v++) kn_aligned_free(s->host_owned[v]);
    kn_free(s->host_owned);
    kn_free(s->host_node);
    kn_free(s->vals);
    memset(s, 0, sizeof *s);
}

kiln_status kn_shapes_infer(const kn_graph *g, const int *order, int n_order,
                            const int64_t (*in_dims)[KILN_MAX_RANK], kn_shapes *out) {
    memset(out, 0, sizeof *out);
    out->n_values = g->n_values;
    out->vals = kn_calloc((size_t)g->n_values + 1, sizeof *out->vals);
    out->host_owned = kn_calloc((size_t)g->n_values + 1, sizeof(void *));
    out->host_node = kn_calloc((size_t)g->n_nodes + 1, 1);
    if (!out->vals || !out->host_owned || !out->host_node) {
        kn_shapes_free(out);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory inferring shapes");
    }
    kiln_status st = KILN_OK;
    for (int v = 0; v < g->n_values; v++) {
        const kn_value *val = &g->values[v];
        if (val->constant) {
            kn_tensor *t = &out->vals[v];
            t->dtype = val->constant->dtype;
            t->rank = val->constant->rank;
            memcpy(t->dims, val->constant->dims, sizeof t->dims);
            t->host = val->constant->data;
        }
    }
    for (int k = 0; k < g->n_inputs; k++) {
        int v = g->inputs[k];
        const kn_value *val = &g->values[v];
        if (val->constant) continue; /* an input that is also an initializer: the constant wins */
        kn_tensor *t = &out->vals[v];
        t->dtype = val->dtype;
        t->rank = val->rank;
        for (int i = 0; i < val->rank; i++) t->dims[i] = in_dims[k][i];
    }
    kn_tensor ins[64], outs[8];
    for (int k = 0; k < n_order && st == KILN_OK; k++) {
        const kn_node *n = &g->nodes[order[k]];
        const kn_op_def *d = kn_op_get(n->op);
        if (!d || !d->infer) {
            st = kn_node_error(n, KILN_ERR_UNSUPPORTED, "op has no shape inference");
            break;
        }
        if (n->n_in > 64 || n->n_out > 8) {
            st = kn_node_error(n, KILN_ERR_UNSUPPORTED, "too many inputs or outputs (%d, %d)", n->n_in, n->n_out);
            break;
        }
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] < 0) memset(&ins[i], 0, sizeof ins[i]);
            else ins[i] = out->vals[n->in[i]];
            ins[i].data = NULL;
        }
        memset(outs, 0, sizeof outs);
        kn_infer_ctx ctx = {.g = g, .node = n, .n_in = n->n_in, .n_out = n->n_out, .in = ins, .out = outs};
        st = d->infer(&ctx);
        if (st != KILN_OK) break;
        for (int o = 0; o < n->n_out; o++) {
            if (outs[o].rank < 0 || outs[o].rank > KILN_MAX_RANK || !kiln_dtype_size(outs[o].dtype)) {
                st = kn_node_error(n, KILN_ERR_INTERNAL, "shape inference left output %d incomplete", o);
                break;
            }
            for (int i = 0; i < outs[o].rank; i++)
                if (outs[o].dims[i] < 0) {
                    st = kn_node_error(n, KILN_ERR_SHAPE, "output %d gets a negative dim %lld", o,
                                       (long long)outs[o].dims[i]);
                    break;
                }
        }
        if (st != KILN_OK) break;
        int host = n->op == KN_OP_Shape || n->op == KN_OP_Constant;
        if (!host && (d->flags & KN_OPF_HOST_EVAL)) {
            host = 1;
            for (int i = 0; i < n->n_in && host; i++) host = n->in[i] < 0 || ins[i].host != NULL;
            for (int o = 0; o < n->n_out && host; o++)
                host = kn_dtype_is_int(outs[o].dtype) || outs[o].dtype == KILN_BOOL;
        }
        if (host) {
            out->host_node[order[k]] = 1;
            for (int i = 0; i < n->n_in; i++)
                if (n->in[i] >= 0) ins[i].data = (void *)ins[i].host;
            for (int o = 0; o < n->n_out; o++) {
                outs[o].data = kn_aligned_alloc(kn_tensor_bytes(&outs[o]) + 8);
                if (!outs[o].data) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); break; }
                memset(outs[o].data, 0, kn_tensor_bytes(&outs[o]) + 8);
                /* `out` owns what a value keeps (freed with it); the buffer of an absent optional
                 * output lives until the node has run (a fuzzed engine freed it first) */
                if (n->out[o] >= 0) out->host_owned[n->out[o]] = outs[o].data;
            }
            if (st == KILN_OK) st = kn_cpu_eval_node(n, ins, n->n_in, outs, n->n_out);
            for (int o = 0; o < n->n_out; o++) {
                if (n->out[o] < 0) kn_aligned_free(outs[o].data);
                outs[o].host = n->out[o] >= 0 ? outs[o].data : NULL;
                outs[o].data = NULL;
            }
            if (st != KILN_OK) break;
        }
        for (int o = 0; o < n->n_out; o++)
            if (n->out[o] >= 0) out->vals[n->out[o]] = outs[o];
    }
    if (st != KILN_OK) kn_shapes_free(out);
    return st;
}

/* ---- static (symbolic) inference by two probes ---------------------------------------------- */

static int64_t kn_probe(const kn_symbol *s, int which, int k) {
    /* a symbol with a known range probes at its ends; a range of one value is that value */
    if (s && s->max != INT64_MAX) return which && s->max > s->min ? s->max : s->min;
    return which ? 97 + 2 * k : 64 + 2 * k;
}

kiln_status kn_graph_infer_static(kn_graph *g) {
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    kiln_status st = KILN_OK;
    int64_t (*dims[2])[KILN_MAX_RANK] = {0};
    int32_t (*syms)[KILN_MAX_RANK] = kn_calloc((size_t)g->n_inputs + 1, sizeof *syms);
    dims[0] = kn_calloc((size_t)g->n_inputs + 1, sizeof *dims[0]);
    dims[1] = kn_calloc((size_t)g->n_inputs + 1, sizeof *dims[1]);
    kn_shapes s[2] = {{0}};
    int have[2] = {0, 0};
    int anon = g->n_syms, any_sym = 0;
    if (!syms || !dims[0] || !dims[1]) { st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory"); goto done; }
    for (int k = 0; k < g->n_inputs; k++) {
        const kn_value *v = &g->values[g->inputs[k]];
        if (v->rank < 0 || v->dtype == KILN_DTYPE_INVALID) {
            st = kn_error(KILN_ERR_INVALID_ARGUMENT, "graph input '%s' has no %s", v->name,
                          v->rank < 0 ? "rank" : "element type");
            goto done;
        }
        for (int i = 0; i < v->rank; i++) {
            kn_dim d = v->dims[i];
            syms[k][i] = d.sym;
            if (d.sym >= 0 || d.v < 0) {
                int id = d.sym >= 0 ? d.sym : anon++;
                const kn_symbol *sy = d.sym >= 0 ? &g->syms[d.sym] : NULL;
                dims[0][k][i] = kn_probe(sy, 0, id);
                dims[1][k][i] = kn_probe(sy, 1, id);
                any_sym = 1;
            } else {
                dims[0][k][i] = dims[1][k][i] = d.v;
            }
        }
    }
    for (int p = 0; p < 2; p++) {
        st = kn_shapes_infer(g, order, n, (const int64_t(*)[KILN_MAX_RANK])dims[p], &s[p]);
        if (st != KILN_OK) {
            /* with symbols the probes may be illegal for the model (a fixed sequence length, say):
             * keep declared shapes; the profile's real dims are checked at compile time */
            if (any_sym) { KN_VERBOSE("static shape inference skipped: %s", kiln_last_error()); st = KILN_OK; kn_clear_error(); }
            goto done;
        }
        have[p] = 1;
        if (!any_sym) break;
    }
    for (int v = 0; v < g->n_values; v++) {
        kn_value *val = &g->values[v];
        const kn_tensor *a = &s[0].vals[v], *b = any_sym ? &s[1].vals[v] : a;
        if (val->constant || (val->flags & KN_VALUE_INPUT) || a->dtype == KILN_DTYPE_INVALID) continue;
        val->dtype = a->dtype;
        if (a->rank != b->rank) { val->rank = -1; continue; }
        val->rank = a->rank;
        for (int i = 0; i < a->rank; i++) {
            if (a->dims[i] == b->dims[i]) { val->dims[i] = (kn_dim){a->dims[i], -1}; continue; }
            val->dims[i] = (kn_dim){-1, -1};
            for (int k = 0; k < g->n_inputs; k++)
                for (int j = 0; j < g->values[g->inputs[k]].rank; j++)
                    if (syms[k][j] >= 0 && dims[0][k][j] == a->dims[i] && dims[1][k][j] == b->dims[i])
                        val->dims[i].sym = syms[k][j];
        }
    }
done:
    if (have[0]) kn_shapes_free(&s[0]);
    if (have[1]) kn_shapes_free(&s[1]);
    kn_free(order); kn_free(syms); kn_free(dims[0]); kn_free(dims[1]);
    return st;
}
