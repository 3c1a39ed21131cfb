/* Shared by the importer's files: decoding of protobuf-c messages into kiln's IR pieces, the
 * import context and the per-op upgrades from older opsets. */
#ifndef KILN_ONNX_PRIVATE_H
#define KILN_ONNX_PRIVATE_H

#include "onnx/onnx.pb-c.h"
#include "onnx/onnx_import.h"
#include "ops/ops.h"

/* Decodes a TensorProto (raw_data, typed fields or external data below base_dir) into a new host
 * tensor. `what` names the tensor in messages ("initializer 'w'"). */
kiln_status kn_onnx_tensor_decode(const Onnx__TensorProto *tp, const char *base_dir,
                                  const char *what, kn_host_tensor **out);

/* A string -> int map (open addressing); keys are borrowed, not copied. */
typedef struct kn_strmap {
    const char **keys;
    int *vals;
    int cap, n;
} kn_strmap;

kiln_status kn_strmap_put(kn_strmap *m, const char *key, int val); /* replaces */
int kn_strmap_get(const kn_strmap *m, const char *key, int def);
void kn_strmap_free(kn_strmap *m);

typedef struct kn_onnx_ctx {
    kn_graph *g;
    const char *src;      /* the file (or "(memory)") for messages */
    const char *base_dir; /* folder of external data, or NULL */
    int64_t opset;        /* default-domain opset */
    const Onnx__GraphProto *graph;
    kn_strmap vinfo;      /* value name -> index in graph->value_info (type hints) */
    kn_strmap used;       /* value names read by a node or listed as graph outputs */
    int *fixups;          /* nodes whose upgrade needs the inferred element types */
    int n_fixups, cap_fixups;
} kn_onnx_ctx;

/* Checks the attributes of node k against kiln's table of ONNX attributes for its op (name and
 * type); `onnx_op` is the op type in the model (Upsample for a node made into Resize). */
kiln_status kn_onnx_check_attrs(kn_onnx_ctx *c, int k, const char *onnx_op);
/* Rewrites node k, just added from an ONNX node of type onnx_op, into kiln's op semantics (the
 * latest definition at opset <= 21): attributes of older opsets become constant inputs, etc. */
kiln_status kn_onnx_upgrade(kn_onnx_ctx *c, int k, const char *onnx_op);
/* Upgrades that need the inferred types or ranks, run after shape inference: Clip's and Pad's old
 * attributes when the data's type was not known while importing, and old-opset Softmax/LogSoftmax
 * whose input rank was not known. Sets *changed when a node was rewritten. */
kiln_status kn_onnx_upgrade_typed(kn_onnx_ctx *c, int *changed);

/* Adds a node made by the importer (inputs and outputs by value index). */
kiln_status kn_onnx_new_node(kn_onnx_ctx *c, kn_op op, const char *name, int n_in, const int *in,
                             int n_out, const int *out, int *k);
/* Makes input `slot` of node k be value v (-1: omitted), growing the input list as needed. */
kiln_status kn_onnx_set_input(kn_graph *g, int k, int slot, int v);
/* Removes an attribute from node k if present. */
void kn_onnx_del_attr(kn_graph *g, int k, const char *name);

#endif
