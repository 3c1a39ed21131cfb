/* A readable text dump of a graph (kiln inspect). */
#include "ir.h"

static void kn_dump_value_type(const kn_graph *g, const kn_value *v, kn_strbuf *sb) {
    if (v->dtype == KILN_DTYPE_INVALID || v->rank < 0) {
        kn_sb_puts(sb, "?");
        return;
    }
    kn_sb_printf(sb, "%s[", kiln_dtype_name(v->dtype));
    for (int i = 0; i < v->rank; i++) {
        if (i) kn_sb_puts(sb, ",");
        if (v->dims[i].sym >= 0) kn_sb_puts(sb, g->syms[v->dims[i].sym].name);
        else if (v->dims[i].v >= 0) kn_sb_printf(sb, "%lld", (long long)v->dims[i].v);
        else kn_sb_puts(sb, "?");
    }
    kn_sb_puts(sb, "]");
}

static void kn_dump_attr(const kn_attr *a, kn_strbuf *sb) {
    kn_sb_printf(sb, "%s=", a->name);
    switch (a->type) {
    case KILN_ATTR_INT: kn_sb_printf(sb, "%lld", (long long)a->i); break;
    case KILN_ATTR_FLOAT: kn_sb_printf(sb, "%g", a->f); break;
    case KILN_ATTR_STRING: kn_sb_printf(sb, "\"%s\"", a->s); break;
    case KILN_ATTR_INTS:
        kn_sb_puts(sb, "[");
        for (int i = 0; i < a->count; i++) kn_sb_printf(sb, i ? ",%lld" : "%lld", (long long)a->ints[i]);
        kn_sb_puts(sb, "]");
        break;
    case KILN_ATTR_FLOATS:
        kn_sb_puts(sb, "[");
        for (int i = 0; i < a->count; i++) kn_sb_printf(sb, i ? ",%g" : "%g", a->floats[i]);
        kn_sb_puts(sb, "]");
        break;
    case KILN_ATTR_TENSOR: {
        char d[96];
        kn_sb_printf(sb, "tensor<%s %s>", kiln_dtype_name(a->tensor->dtype),
                     kn_dims_str(a->tensor->rank, a->tensor->dims, d, sizeof d));
        break;
    }
    }
}

kiln_status kiln_graph_to_text(const kiln_graph *graph, char **out) {
    KN_ARG_CHECK(graph && out, "graph/out");
    const kn_graph *g = &graph->g;
    kn_strbuf sb = {0};
    int *order = NULL, n = 0;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    int n_const = 0;
    size_t const_bytes = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].constant) {
            n_const++;
            const_bytes += (size_t)kn_host_numel(g->values[v].constant) * kiln_dtype_size(g->values[v].constant->dtype);
        }
    kn_sb_printf(&sb, "graph: %d nodes, %d constants (%.2f MiB), opset %d\n", n, n_const,
                 (double)const_bytes / (1024.0 * 1024.0), g->opset);
    for (int k = 0; k < g->n_inputs; k++) {
        const kn_value *v = &g->values[g->inputs[k]];
        kn_sb_printf(&sb, "  input  %s: ", v->name);
        kn_dump_value_type(g, v, &sb);
        kn_sb_puts(&sb, "\n");
    }
    for (int k = 0; k < n; k++) {
        const kn_node *nd = &g->nodes[order[k]];
        kn_sb_printf(&sb, "  %4d %s '%s' (", k, kn_op_name(nd->op), nd->name);
        for (int i = 0; i < nd->n_in; i++)
            kn_sb_printf(&sb, "%s%s", i ? ", " : "", nd->in[i] >= 0 ? g->values[nd->in[i]].name : "-");
        kn_sb_puts(&sb, ") -> ");
        for (int o = 0; o < nd->n_out; o++) {
            if (o) kn_sb_puts(&sb, ", ");
            if (nd->out[o] < 0) { kn_sb_puts(&sb, "-"); continue; }
            const kn_value *v = &g->values[nd->out[o]];
            kn_sb_printf(&sb, "%s: ", v->name);
            kn_dump_value_type(g, v, &sb);
        }
        if (nd->n_attrs) {
            kn_sb_puts(&sb, "  {");
            for (int a = 0; a < nd->n_attrs; a++) {
                if (a) kn_sb_puts(&sb, ", ");
                kn_dump_attr(&nd->attrs[a], &sb);
            }
            kn_sb_puts(&sb, "}");
        }
        if (nd->fallback) kn_sb_puts(&sb, "  [fallback]");
        kn_sb_puts(&sb, "\n");
    }
    for (int k = 0; k < g->n_outputs; k++) {
        const kn_value *v = &g->values[g->outputs[k]];
        kn_sb_printf(&sb, "  output %s: ", v->name);
        kn_dump_value_type(g, v, &sb);
        kn_sb_puts(&sb, "\n");
    }
    kn_free(order);
    return kn_sb_finish(&sb, out);
}
