/* The public graph builder API (kiln_graph_*), as TensorRT's network definition: inputs with
 * dims, initializers, nodes by ONNX op type with attributes, outputs. */
#include "shape_infer.h"

kiln_status kiln_graph_create(kiln_graph **out) {
    KN_ARG_CHECK(out, "out");
    *out = (kiln_graph *)kn_graph_new();
    if (!*out) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory creating a graph");
    return KILN_OK;
}

void kiln_graph_free(kiln_graph *graph) { kn_graph_destroy(graph ? &graph->g : NULL); }

int kiln_graph_num_nodes(const kiln_graph *graph) {
    if (!graph) return 0;
    int n = 0;
    for (int i = 0; i < graph->g.n_nodes; i++) n += !graph->g.nodes[i].dead;
    return n;
}

static kiln_status kn_check_new_name(const kn_graph *g, const char *name, const char *what) {
    if (!name || !*name) return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s needs a non-empty name", what);
    if (kn_graph_find_value(g, name) >= 0)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s': a value of that name already exists", what, name);
    return KILN_OK;
}

static kiln_status kn_check_dims(const char *what, const char *name, kiln_dtype dtype, int rank,
                                 const int64_t *dims) {
    if (kiln_dtype_size(dtype) == 0)
        return kn_error(KILN_ERR_DTYPE, "%s '%s': invalid element type %d", what, name, (int)dtype);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kn_error(KILN_ERR_SHAPE, "%s '%s': rank %d is outside 0..%d", what, name, rank, KILN_MAX_RANK);
    if (rank > 0 && !dims) return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s': dims is NULL", what, name);
    return KILN_OK;
}

kiln_status kiln_graph_add_input(kiln_graph *graph, const char *name, kiln_dtype dtype, int rank,
                                 const int64_t *dims, const char *const *dim_names) {
    KN_ARG_CHECK(graph, "graph");
    kn_graph *g = &graph->g;
    KN_TRY(kn_check_new_name(g, name, "input"));
    KN_TRY(kn_check_dims("input", name, dtype, rank, dims));
    kn_dim d[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        d[i] = (kn_dim){dims[i] < 0 ? -1 : dims[i], -1};
        if (dims[i] < 0 && dim_names && dim_names[i] && *dim_names[i])
            KN_TRY(kn_graph_add_sym(g, dim_names[i], &d[i].sym));
    }
    int v;
    KN_TRY(kn_graph_new_value(g, name, &v));
    KN_TRY(KN_GROW(g->inputs, g->cap_inputs, g->n_inputs + 1));
    kn_value *val = &g->values[v];
    val->dtype = dtype;
    val->rank = rank;
    memcpy(val->dims, d, (size_t)rank * sizeof d[0]);
    val->flags |= KN_VALUE_INPUT;
    g->inputs[g->n_inputs++] = v;
    return KILN_OK;
}

kiln_status kiln_graph_add_initializer(kiln_graph *graph, const char *name, kiln_dtype dtype,
                                       int rank, const int64_t *dims, const void *data) {
    KN_ARG_CHECK(graph, "graph");
    kn_graph *g = &graph->g;
    KN_TRY(kn_check_new_name(g, name, "initializer"));
    KN_TRY(kn_check_dims("initializer", name, dtype, rank, dims));
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0) return kn_error(KILN_ERR_SHAPE, "initializer '%s': dim %d is negative", name, i);
    if (!data && kn_numel(rank, dims) > 0)
        return kn_error(KILN_ERR_INVALID_ARGUMENT, "initializer '%s': data is NULL", name);
    kn_host_tensor *t = kn_host_tensor_new(dtype, rank, dims);
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "initializer '%s': out of host memory", name);
    if (data) memcpy(t->data, data, (size_t)kn_numel(rank, dims) * kiln_dtype_size(dtype));
    int v;
    kiln_status st = kn_graph_new_value(g, name, &v);
    if (st != KILN_OK) { kn_host_tensor_free(t); return st; }
    kn_value_set_constant(&g->values[v], t);
    return KILN_OK;
}

kiln_status kiln_graph_add_node(kiln_graph *graph, const char *op_type, const char *name,
                                int num_inputs, const char *const *inputs, int num_outputs,
                                const char *const *outputs, int num_attrs, const kiln_attr *attrs) {
    KN_ARG_CHECK(graph, "graph");
    KN_ARG_CHECK(op_type, "op_type");
    KN_ARG_CHECK(num_inputs >= 0 && (num_inputs == 0 || inputs), "inputs");
    KN_ARG_CHECK(num_outputs > 0 && outputs, "outputs");
    KN_ARG_CHECK(num_attrs >= 0 && (num_attrs == 0 || attrs), "attrs");
    kn_graph *g = &graph->g;
    const char *label = name && *name ? name : "(unnamed)";
    kn_op op = kn_op_from_model_name(op_type);
    if (op == KN_OP_INVALID)
        return kn_error(KILN_ERR_UNSUPPORTED, "node '%s': op type '%s' is not in kiln's op set", label, op_type);
    if (num_inputs > 64 || num_outputs > 8)
        return kn_error(KILN_ERR_UNSUPPORTED, "%s '%s': too many inputs or outputs", op_type, label);
    int in[64], out[8];
    for (int i = 0; i < num_inputs; i++) {
        if (!inputs[i] || !*inputs[i]) { in[i] = -1; continue; }
        in[i] = kn_graph_find_value(g, inputs[i]);
        if (in[i] < 0)
            return kn_error(KILN_ERR_NOT_FOUND, "%s '%s': input %d '%s' is not defined before this node",
                            op_type, label, i, inputs[i]);
    }
    for (int o = 0; o < num_outputs; o++) {
        if (!outputs[o] || !*outputs[o]) { out[o] = -1; continue; }
        out[o] = 0; /* named: created below once every check passed */
        if (kn_graph_find_value(g, outputs[o]) >= 0)
            return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s': output '%s' is already defined",
                            op_type, label, outputs[o]);
        for (int p = 0; p < o; p++)
            if (out[p] >= 0 && strcmp(outputs[p], outputs[o]) == 0)
                return kn_error(KILN_ERR_INVALID_ARGUMENT, "%s '%s': output '%s' is listed twice",
                                op_type, label, outputs[o]);
    }
    for (int o = 0; o < num_outputs; o++)
        if (out[o] != -1) KN_TRY(kn_graph_new_value(g, outputs[o], &out[o]));
    int k;
    KN_TRY(kn_graph_new_node(g, op, name, num_inputs, in, num_outputs, out, &k));
    for (int a = 0; a < num_attrs; a++) {
        kiln_status st = kn_node_set_attr(&g->nodes[k], &attrs[a]);
        if (st != KILN_OK) {
            g->nodes[k].dead = 1;
            return st;
        }
    }
    const kn_op_def *d = kn_op_get(op);
    kiln_status st = KILN_OK;
    if (num_inputs < d->min_in || num_inputs > d->max_in)
        st = kn_node_error(&g->nodes[k], KILN_ERR_INVALID_ARGUMENT, "has %d inputs, expected %d to %d",
                           num_inputs, d->min_in, d->max_in);
    else if (num_outputs < d->min_out || num_outputs > d->max_out)
        st = kn_node_error(&g->nodes[k], KILN_ERR_INVALID_ARGUMENT, "has %d outputs, expected %d to %d",
                           num_outputs, d->min_out, d->max_out);
    else if (d->check)
        st = d->check(g, &g->nodes[k]);
    if (st != KILN_OK) g->nodes[k].dead = 1; /* the graph stays usable without it */
    return st;
}

kiln_status kiln_graph_add_output(kiln_graph *graph, const char *name) {
    KN_ARG_CHECK(graph, "graph");
    KN_ARG_CHECK(name, "name");
    kn_graph *g = &graph->g;
    int v = kn_graph_find_value(g, name);
    if (v < 0) return kn_error(KILN_ERR_NOT_FOUND, "output '%s' is not a value of the graph", name);
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == v) return kn_error(KILN_ERR_INVALID_ARGUMENT, "output '%s' is listed twice", name);
    KN_TRY(KN_GROW(g->outputs, g->cap_outputs, g->n_outputs + 1));
    g->outputs[g->n_outputs++] = v;
    g->values[v].flags |= KN_VALUE_OUTPUT;
    return KILN_OK;
}

kiln_status kiln_graph_verify(kiln_graph *graph) {
    KN_ARG_CHECK(graph, "graph");
    KN_TRY(kn_graph_verify(&graph->g));
    return kn_graph_infer_static(&graph->g);
}
