/* The graph passes (one file each) and the helpers they share. Every pass rewrites the graph in
 * place, marks removed nodes dead (kn_graph_compact drops them later) and reports how many
 * rewrites it made, so the pipeline can run a group of passes to a fixed point.
 *
 * Rules every rewrite follows:
 * - a value named as a graph output keeps its name: a fused node takes over the output value of
 *   the last node of its pattern instead of renaming the output;
 * - an intermediate value is fused away only when it has exactly one consumer and is not a graph
 *   output;
 * - a node marked fallback (forced by the user) is never folded, merged, fused away or fused
 *   into something;
 * - a fused node must still be taken by the backend's engine (supports_op), else the fusion is
 *   undone. */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "build/module.h"

/* ---- the passes (each sets *changed to the number of rewrites it made) -------------------------- */
kiln_status kn_pass_remove_identity(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fold_constants(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_cse(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_dce(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fold_batchnorm(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fuse_conv(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fuse_matmul(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fuse_gemm(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fuse_norm(kn_graph *g, const kn_pass_options *opt, int *changed);
kiln_status kn_pass_fuse_attention(kn_graph *g, const kn_pass_options *opt, int *changed);
/* kn_pass_layout_nhwc (layout_nhwc.c) is declared in build/module.h: compile.c calls it. */

/* ---- helpers (src/passes/pass_util.c) ----------------------------------------------------------- */

/* Prints one line of a pass's effect when the build is verbose (opt->verbose or log level 2). */
void kn_pass_log(const kn_pass_options *opt, const char *fmt, ...) KN_PRINTF(2, 3);

int kn_pass_is_output(const kn_graph *g, int v);
/* Uses of value v: input slots of live nodes plus one per listing as a graph output. */
int kn_pass_uses(const kn_graph *g, int v);
/* The node that is the only use of v (v not a graph output), or -1. */
int kn_pass_sole_consumer(const kn_graph *g, int v);
/* Live nodes reading v, one entry per input slot (at most cap); returns the number of such uses. */
int kn_pass_consumers(const kn_graph *g, int v, int *nodes, int cap);
/* The live node producing v, or -1. */
int kn_pass_producer(const kn_graph *g, int v);

/* The constant held by v (NULL when v < 0 or v is not a constant). */
const kn_host_tensor *kn_pass_const(const kn_graph *g, int v);
/* A float constant with one element: its value. */
int kn_pass_const_scalar(const kn_graph *g, int v, double *out);
/* v's static shape is fully known (every dim a constant). */
int kn_pass_static_shape(const kn_value *v);
/* Two dims are the same at every shape: the same symbol, or the same known constant. */
int kn_pass_same_dim(kn_dim a, kn_dim b);
/* a and b have the same static shape: same rank, each dim the same constant or the same symbol. */
int kn_pass_same_shape(const kn_value *a, const kn_value *b);

/* Sets input `slot` of n to v, growing the input list (omitted inputs in between read -1). */
kiln_status kn_pass_set_input(kn_node *n, int slot, int v);
/* Adds a constant value named after `name` (made unique); takes t (freed on failure). */
kiln_status kn_pass_add_const(kn_graph *g, const char *name, kn_host_tensor *t, int *v);
/* Drops a constant that nothing uses any more (its value stays, as an orphan). */
void kn_pass_drop_const(kn_graph *g, int v);
void kn_pass_remove_attr(kn_node *n, const char *name);
/* Node `node` now writes value v as its output `slot`; the value it wrote before is orphaned. */
void kn_pass_take_output(kn_graph *g, int node, int slot, int v);
/* Marks a node dead and orphans its outputs. */
void kn_pass_kill(kn_graph *g, int node);

/* A copy of a node's inputs and attributes, to undo a rewrite the backend does not take. */
typedef struct kn_node_backup {
    int n_in;
    int *in;
    int n_attrs;
    kn_attr *attrs;
} kn_node_backup;
kiln_status kn_node_backup_save(const kn_node *n, kn_node_backup *b);
/* Puts the saved inputs and attributes back (and frees the backup). */
void kn_node_backup_restore(kn_node *n, kn_node_backup *b);
void kn_node_backup_free(kn_node_backup *b);
/* Node `node` now also does the work of node `absorbed`: its "kiln.nodes" (the model ops it
 * stands for, 1 when absent) grows by absorbed's, so min_block_size counts the model's ops. */
kiln_status kn_pass_absorb(kn_graph *g, int node, int absorbed);
/* Whether the backend's engine takes node `node` as it is now (no backend: yes). */
int kn_pass_backend_takes(const kn_pass_options *opt, const kn_graph *g, int node);

/* An activation that consumes value v and can move into the producer's epilogue. */
typedef struct kn_act_match {
    int act;       /* enum kn_act */
    float alpha, beta;
    int out;       /* the value the fused node writes instead of v */
    int n_kill;
    int kill[8];   /* nodes the fusion removes */
} kn_act_match;
/* Matches Relu, LeakyRelu, Clip (constant bounds), Sigmoid, HardSwish, Gelu, x*sigmoid(x) and the
 * erf form of GELU applied to v. Nodes marked fallback never match. */
int kn_pass_match_act(const kn_graph *g, int v, kn_act_match *m);
/* Writes kiln.act / kiln.act_alpha / kiln.act_beta on a node. */
kiln_status kn_pass_set_act(kn_node *n, const kn_act_match *m);
const char *kn_act_name(int act);
/* Moves a matched activation into node's epilogue: the node writes m->out and the matched nodes
 * die; undone (and *done 0) when the backend's engine does not take the fused node. */
kiln_status kn_pass_fuse_activation(kn_graph *g, const kn_pass_options *opt, int node, const kn_act_match *m,
                                    int *done);
/* A node whose epilogue is already a clip-like activation (Relu, Relu6, Clip) followed by another
 * one (Relu then Clip(0, 6), as exporters write relu6): the two merge into one interval. */
kiln_status kn_pass_fuse_second_act(kn_graph *g, const kn_pass_options *opt, int node, int *done);

/* Elementwise out = a*sa + b*sb with numpy broadcasting, in the dtype `dt` (b may be NULL). */
kiln_status kn_pass_broadcast_axpby(const kn_host_tensor *a, double sa, const kn_host_tensor *b, double sb,
                                    kiln_dtype dt, kn_host_tensor **out);

#endif
