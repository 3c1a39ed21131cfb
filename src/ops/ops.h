/* Op definitions: arity, attribute checks and concrete shape inference, one table entry per op.
 * Kernels live with their backend (src/backend/...); this room says what an op means. */
#ifndef KILN_OPS_H
#define KILN_OPS_H

#include "ir/ir.h"

/* A value at run time or during shape inference. */
typedef struct kn_tensor {
    void *data;       /* backend memory of the value; NULL during shape inference */
    const void *host; /* host copy when the value is known before running (constants, shape math) */
    kiln_dtype dtype; /* KILN_DTYPE_INVALID for an omitted optional input */
    int rank;
    int64_t dims[KILN_MAX_RANK];
} kn_tensor;

static inline int64_t kn_tensor_numel(const kn_tensor *t) { return kn_numel(t->rank, t->dims); }
static inline size_t kn_tensor_bytes(const kn_tensor *t) {
    return (size_t)kn_tensor_numel(t) * kiln_dtype_size(t->dtype);
}
static inline int kn_tensor_present(const kn_tensor *t) { return t->dtype != KILN_DTYPE_INVALID; }

typedef struct kn_infer_ctx {
    const kn_graph *g;
    const kn_node *node;
    int n_in, n_out;
    const kn_tensor *in; /* dtype, rank, dims; host set when the value is known on the host */
    kn_tensor *out;      /* the op fills dtype, rank, dims */
} kn_infer_ctx;

enum {
    KN_OPF_ELEMENTWISE = 1 << 0, /* unary or broadcasting binary: fusable into chains */
    KN_OPF_HOST_EVAL = 1 << 1,   /* on small int tensors known on the host, evaluate at shape time */
    KN_OPF_PURE = 1 << 2,        /* no side effects: CSE may merge equal nodes */
    KN_OPF_INTERNAL = 1 << 3,    /* a fused form kiln's passes make (KilnAttention): no model may name it */
};

typedef struct kn_op_def {
    const char *name;
    int min_in, max_in, min_out, max_out;
    uint32_t host_inputs; /* bit i: input i is read on the host (shape params, axes, pads) */
    uint32_t flags;
    /* Attribute checks, independent of shapes (optional). */
    kiln_status (*check)(const kn_graph *g, const kn_node *n);
    /* Output dtypes and dims from concrete input dims. Errors name the node via kn_node_error. */
    kiln_status (*infer)(kn_infer_ctx *ctx);
} kn_op_def;

/* The op table, filled once from the families' register functions. */
const kn_op_def *kn_op_get(kn_op op);

/* Each op family registers its entries (src/ops/<family>.c). */
void kn_ops_register_elementwise(kn_op_def *table);
void kn_ops_register_nn(kn_op_def *table);      /* conv, pooling, norms, gemm/matmul, softmax */
void kn_ops_register_tensor(kn_op_def *table);  /* shape, layout and data movement */
void kn_ops_register_reduce(kn_op_def *table);
void kn_ops_register_attention(kn_op_def *table); /* KilnAttention (src/ops/attention.c) */

/* ---- helpers for shape functions --------------------------------------------------------------- */
/* numpy broadcasting of a and b into out (rank, dims); error names the node and both shapes. */
kiln_status kn_broadcast_dims(const kn_node *n, int ra, const int64_t *da, int rb,
                              const int64_t *db, int *rank, int64_t *dims);
/* Reads a host-known integer tensor into int64 (at most `cap` elements); errors if not known. */
kiln_status kn_host_ints(const kn_node *n, const kn_tensor *t, int input_index, int64_t *out,
                         int cap, int *count);
/* Normalizes a possibly negative axis for a rank; error names the node. */
kiln_status kn_norm_axis(const kn_node *n, int64_t axis, int rank, int *out);
/* Fails with a dtype message unless t's dtype is one of the allowed floats/ints. */
kiln_status kn_expect_float(const kn_node *n, const kn_tensor *t, const char *what);
/* Sets out[0] = same dtype and dims as in[k]. */
void kn_infer_same_as(kn_infer_ctx *ctx, int k);
/* ReduceMean/Sum/Max/Min: the reduced axes of a rank-`rank` input as a bit mask, from the axes
 * input (`axes`, read through its `host` pointer; NULL or not present when omitted) or else the
 * opset < 18 "axes" attribute. No axes means all, or the identity (*noop = 1) when the node has
 * noop_with_empty_axes = 1. Errors name the node: axes out of range, repeated, not host-known. */
kiln_status kn_reduce_mask(const kn_node *n, const kn_tensor *axes, int rank, uint32_t *mask, int *noop);

#endif
