/* Helpers that add constant values to a graph: importers and passes use them to turn attributes
 * into inputs (axes, pads, scales) and to materialise folded results. */
#include "ir.h"

kiln_status kn_graph_new_constant(kn_graph *g, const char *name, kn_host_tensor *t, int *out) {
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory making constant '%s'", name ? name : "?");
    int v;
    kiln_status st = kn_graph_new_value(g, name, &v);
    if (st != KILN_OK) {
        kn_host_tensor_free(t);
        return st;
    }
    kn_value_set_constant(&g->values[v], t);
    if (out) *out = v;
    return KILN_OK;
}

kiln_status kn_graph_new_const_i64(kn_graph *g, const char *name, int rank, const int64_t *vals,
                                   int64_t count, int *out) {
    if (rank != 0 && rank != 1) return kn_error(KILN_ERR_INTERNAL, "constant '%s': rank %d", name ? name : "?", rank);
    if (rank == 0 && count != 1) return kn_error(KILN_ERR_INTERNAL, "scalar constant '%s' with %lld values", name ? name : "?", (long long)count);
    int64_t dims[1] = {count};
    kn_host_tensor *t = kn_host_tensor_new(KILN_I64, rank, dims);
    if (t && count) memcpy(t->data, vals, (size_t)count * sizeof(int64_t));
    return kn_graph_new_constant(g, name, t, out);
}

kiln_status kn_graph_new_const_scalar(kn_graph *g, const char *name, kiln_dtype dtype, double v,
                                      int *out) {
    kn_host_tensor *t = kn_host_tensor_new(dtype, 0, NULL);
    if (t) kn_store_f64(t->data, dtype, 0, v);
    return kn_graph_new_constant(g, name, t, out);
}
