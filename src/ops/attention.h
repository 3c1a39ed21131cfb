/* KilnAttention: the fused form of scaled dot-product attention, made by the fuse_attention pass
 * (src/passes/fuse_attention.c) from MatMul -> Softmax -> MatMul; not an ONNX op (the importer and
 * the graph builder refuse it). Semantics, for operands Q [N, Lq, Dk], K [N, Lk, Dk], V [N, Lk, Dv]:
 *     O[n] = softmax(alpha * Q[n] K[n]^T, last axis) V[n],  O: [N, Lq, Dv]
 * and the output Y is O transposed by "kiln.out_perm" (default 0,1,2).
 *
 * Each operand is a strided view of its input X (rank 3, [a0, a1, a2], dense), so that the
 * Slice/Reshape/Transpose chains around attention cost nothing. Attribute "kiln.q_view" (and
 * k_view, v_view) holds seven ints [start, end, head_dim, p0, p1, p2, select]:
 *   0. select >= 0: X is rank 4, [C, a0, a1, a2], and the operand reads X[select] (a Gather of
 *      one index on axis 0, as torch 2.x's export picks q, k, v from the packed projection);
 *   1. X[:, :, start:end] (end -1: a2);
 *   2. head_dim > 0: that [a0, a1, w] is reshaped to [a0, a1 * w / head_dim, head_dim] (the
 *      heads join the batch, as torch's multi-head attention does);
 *   3. the operand is that tensor transposed by (p0, p1, p2).
 * Absent, the view is [0, -1, 0, 0, 1, 2, -1]: X itself. The split dim must become N (p0 = 1) unless
 * it is trivially strided; kn_attn_geometry says so with an error otherwise.
 *
 * "kiln.heads" = H > 0 is the rank-4 form (torch 2.x's export views the heads apart, [B, H, L, D],
 * before scaled_dot_product_attention): N = B * H, the output is O viewed as [B, H, Lq, Dv], and
 * an operand with N = H (B = 1) broadcasts over B as one with N = 1 does over everything.
 * "kiln.out_perm" then has 4 ints. */
#ifndef KILN_OPS_ATTENTION_H
#define KILN_OPS_ATTENTION_H

#include "ops.h"

#define KN_ATTN_VIEW_INTS 7

/* Element (n, l, j) of an operand sits at off + (n / n_inner) * s_outer + (n % n_inner) * s_inner
 * + l * s_l + j * s_d elements from its input's start. */
typedef struct kn_attn_operand {
    int64_t off, n_inner, s_outer, s_inner, s_l, s_d;
} kn_attn_operand;

typedef struct kn_attn_geom {
    int64_t n, lq, lk, dk, dv;
    kn_attn_operand q, k, v;
    kn_attn_operand y; /* where O element (n, l, j) goes in Y (off 0) */
    int y_rank;
    int64_t y_dims[4];
    float alpha;
} kn_attn_geom;

/* The views of q, k, v (concrete dims) and the output; errors name the node and the operand. */
kiln_status kn_attn_geometry(const kn_node *n, const kn_tensor *q, const kn_tensor *k, const kn_tensor *v, kn_attn_geom *g);

#endif
