/* kiln's graph IR: named values with (possibly symbolic) shapes, nodes with attributes, constants.
 * A kn_graph is what importers and the builder API produce, what passes rewrite and what the
 * builder compiles. Values and nodes are addressed by index; removed nodes are marked dead and
 * dropped by kn_graph_compact. */
#ifndef KILN_IR_H
#define KILN_IR_H

#include "base/base.h"
#include "ops/op_list.h"

/* A dim is a constant (sym < 0, v >= 0), a symbol (sym >= 0, an index into graph->syms), or
 * unknown (sym < 0, v < 0). */
typedef struct kn_dim {
    int64_t v;
    int32_t sym;
} kn_dim;

typedef struct kn_symbol {
    char *name;
    int64_t min, max; /* range, from the profile once known (1..INT64_MAX before) */
} kn_symbol;

/* A dense tensor in host memory, owned by whoever made it (constants: the graph). */
typedef struct kn_host_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    void *data; /* kn_aligned_alloc'd */
} kn_host_tensor;

enum {
    KN_VALUE_INPUT = 1 << 0,
    KN_VALUE_OUTPUT = 1 << 1,
};

typedef struct kn_value {
    char *name;
    kiln_dtype dtype; /* KILN_DTYPE_INVALID until known */
    int rank;         /* -1 until known */
    kn_dim dims[KILN_MAX_RANK];
    kn_host_tensor *constant; /* initializers and folded constants */
    int producer;             /* node index, -1 for inputs and constants */
    uint32_t flags;
} kn_value;

typedef struct kn_attr {
    char *name;
    kiln_attr_type type;
    int64_t i;
    float f;
    char *s;
    int64_t *ints;
    float *floats;
    int count;
    kn_host_tensor *tensor;
} kn_attr;

/* Fused forms the passes make (docs/DESIGN.md, "Fused forms"); kernels must honour them:
 * - "kiln.act" (enum below) with "kiln.act_alpha"/"kiln.act_beta": an epilogue activation;
 * - Conv input 3: a residual added before the activation; MatMul input 2: a broadcast bias;
 * - MatMul "kiln.trans_a"/"kiln.trans_b" = 1: that input is read with its last two dims swapped;
 *   "kiln.alpha" (float): Y = act(alpha * op(A) op(B) + bias);
 * - LayerNormalization input 3 with "kiln.residual" = 1: a tensor like X added to X before
 *   normalizing.
 * Activation fused into a node's epilogue by the passes (attribute "kiln.act"). */
typedef enum kn_act {
    KN_ACT_NONE = 0,
    KN_ACT_RELU,
    KN_ACT_RELU6,     /* Clip(0, 6) */
    KN_ACT_CLIP,      /* Clip(kiln.act_alpha, kiln.act_beta) */
    KN_ACT_SIGMOID,
    KN_ACT_HARDSWISH,
    KN_ACT_SILU,      /* x * sigmoid(x) */
    KN_ACT_GELU_ERF,  /* exact GELU */
    KN_ACT_GELU_TANH,
    KN_ACT_LEAKY_RELU, /* kiln.act_alpha */
    KN_ACT_COUNT
} kn_act;

typedef struct kn_node {
    char *name;
    kn_op op;
    int n_in, n_out;
    int *in;  /* value indices; -1 for an omitted optional input */
    int *out;
    int n_attrs;
    kn_attr *attrs;
    int dead;     /* removed by a pass; dropped by kn_graph_compact */
    int fallback; /* forced to run as a fallback op (set by the partitioner's marking) */
} kn_node;

typedef struct kn_graph {
    kn_value *values;
    int n_values, cap_values;
    kn_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs; /* value indices, in declaration order */
    int n_inputs, cap_inputs;
    int *outputs;
    int n_outputs, cap_outputs;
    kn_symbol *syms;
    int n_syms, cap_syms;
    int opset; /* default-domain opset the graph was written for (builder: latest) */
    /* name -> value index; open addressing, rebuilt on growth */
    int *name_index;
    int name_index_cap;
} kn_graph;

struct kiln_graph {
    kn_graph g;
};

/* ---- building ------------------------------------------------------------------------------ */
kn_graph *kn_graph_new(void);
void kn_graph_destroy(kn_graph *g);
void kn_graph_reset(kn_graph *g);
kiln_status kn_graph_clone(const kn_graph *src, kn_graph **out);

int kn_graph_find_value(const kn_graph *g, const char *name); /* -1 if absent */
/* Adds a value with a unique name (a suffix is added when `name` is taken or NULL). */
kiln_status kn_graph_new_value(kn_graph *g, const char *name, int *out);
/* Adds a node; in/out are value indices (copied). */
kiln_status kn_graph_new_node(kn_graph *g, kn_op op, const char *name, int n_in, const int *in,
                              int n_out, const int *out, int *node_out);
kiln_status kn_graph_add_sym(kn_graph *g, const char *name, int *out); /* finds or adds */
/* Makes value v a constant, taking ownership of t. */
void kn_value_set_constant(kn_value *v, kn_host_tensor *t);
/* Constants (src/ir/constants.c). Each adds a value with a unique name made from `name` and
 * stores its index in *out (if out is not NULL). kn_graph_new_constant takes ownership of t, also on
 * failure, and reports OUT_OF_MEMORY when t is NULL (so a failed kn_host_tensor_new can be passed). */
kiln_status kn_graph_new_constant(kn_graph *g, const char *name, kn_host_tensor *t, int *out);
/* An int64 vector (rank 1, `count` values) or scalar (rank 0, count 1). */
kiln_status kn_graph_new_const_i64(kn_graph *g, const char *name, int rank, const int64_t *vals,
                                   int64_t count, int *out);
/* A scalar of `dtype` holding v, converted as kn_store_f64 does. */
kiln_status kn_graph_new_const_scalar(kn_graph *g, const char *name, kiln_dtype dtype, double v,
                                      int *out);

/* ---- attributes ----------------------------------------------------------------------------- */
kiln_status kn_node_set_attr(kn_node *n, const kiln_attr *a); /* copies; replaces same name */
kiln_status kn_node_set_attr_int(kn_node *n, const char *name, int64_t v);
kiln_status kn_node_set_attr_float(kn_node *n, const char *name, float v);
kiln_status kn_node_set_attr_ints(kn_node *n, const char *name, int count, const int64_t *v);
const kn_attr *kn_node_attr(const kn_node *n, const char *name);
int64_t kn_attr_i(const kn_node *n, const char *name, int64_t def);
float kn_attr_f(const kn_node *n, const char *name, float def);
const char *kn_attr_s(const kn_node *n, const char *name, const char *def);
/* Returns the count (0 if absent) and points *v at the ints. */
int kn_attr_ints(const kn_node *n, const char *name, const int64_t **v);
int kn_attr_floats(const kn_node *n, const char *name, const float **v);
void kn_attr_clear(kn_attr *a);
kiln_status kn_attr_copy(kn_attr *dst, const kn_attr *src);

/* ---- host tensors ------------------------------------------------------------------------- */
kn_host_tensor *kn_host_tensor_new(kiln_dtype dtype, int rank, const int64_t *dims);
kn_host_tensor *kn_host_tensor_dup(const kn_host_tensor *t);
void kn_host_tensor_free(kn_host_tensor *t);
static inline int64_t kn_host_numel(const kn_host_tensor *t) { return kn_numel(t->rank, t->dims); }

/* ---- analysis ---------------------------------------------------------------------------------- */
/* Live node indices in a topological order (*order has n_nodes entries, *n_order live ones).
 * Fails with a message naming a node on a cycle or a value with no producer. */
kiln_status kn_graph_topo_order(const kn_graph *g, int **order, int *n_order);
/* Sorts the node array topologically and drops dead nodes and unreferenced values' producers. */
kiln_status kn_graph_compact(kn_graph *g);
/* Structural checks: names resolve, arities and attributes fit each op, no cycles. */
kiln_status kn_graph_verify(const kn_graph *g);
/* Number of live consumers of each value (array of n_values, caller frees). */
kiln_status kn_graph_use_counts(const kn_graph *g, int **counts);
/* Replaces every use of value `from` (node inputs and graph outputs) with `to`. */
void kn_graph_replace_uses(kn_graph *g, int from, int to);

/* Formats "Conv 'layer1.conv'" for messages. */
const char *kn_node_label(const kn_node *n, char *buf, size_t cap);
/* kn_error with the node's label as prefix. */
kiln_status kn_node_error(const kn_node *n, kiln_status code, const char *fmt, ...) KN_PRINTF(3, 4);

#endif
