/* Concrete shape inference over a whole graph, with host evaluation of shape arithmetic.
 * Given the dims of every graph input, it computes each value's dtype, rank and dims, and
 * evaluates on the host the nodes whose result is known before the run (Shape, Constant, and
 * integer arithmetic on known values), as TensorRT does with shape tensors. */
#ifndef KILN_SHAPE_INFER_H
#define KILN_SHAPE_INFER_H

#include "ops/ops.h"

typedef struct kn_shapes {
    int n_values;
    kn_tensor *vals;   /* per value: dtype, rank, dims; host set for known values */
    void **host_owned; /* per value: host buffer made here (or NULL) */
    uint8_t *host_node; /* per node index: 1 when evaluated on the host */
} kn_shapes;

/* in_dims[k] are the dims of graph input k (rank from the value). A node is evaluated on the
 * host when it is Shape or Constant, or a KN_OPF_HOST_EVAL op whose inputs are all known and
 * whose outputs are integer or bool; that depends on dtypes and structure, not on dims, so every
 * shape of a profile gets the same host nodes. */
kiln_status kn_shapes_infer(const kn_graph *g, const int *order, int n_order,
                            const int64_t (*in_dims)[KILN_MAX_RANK], kn_shapes *out);
void kn_shapes_free(kn_shapes *s);

/* Runs inference at two probe bindings of the symbols and writes static dims (constant,
 * symbolic or unknown) and dtypes into the graph's values. */
kiln_status kn_graph_infer_static(kn_graph *g);

/* Host evaluation of one node with the CPU reference kernels (src/backend/cpu). */
kiln_status kn_cpu_eval_node(const kn_node *n, const kn_tensor *in, int n_in, kn_tensor *out,
                             int n_out);

#endif
