/* Geometry of the nn ops (Conv, ConvTranspose, pooling) and their fused epilogue attributes,
 * shared by the shape functions (src/ops/nn.c) and the kernels of every backend, so that pads,
 * strides and output sizes are computed in one place. */
#ifndef KILN_OPS_NN_H
#define KILN_OPS_NN_H

#include "ops.h"

/* Spatial dims the nn kernels take (1-D, 2-D and 3-D convolutions and pools). */
#define KN_NN_MAX_SPATIAL 3

/* A sliding window over the spatial dims of an N x C x spatial... tensor. For ConvTranspose,
 * `in` is the (small) input and `out` the (large) output; pads may then be negative when an
 * output_shape asks for more than the natural size. */
typedef struct kn_window {
    int nsp; /* spatial dims */
    int64_t in[KN_NN_MAX_SPATIAL], out[KN_NN_MAX_SPATIAL], k[KN_NN_MAX_SPATIAL];
    int64_t stride[KN_NN_MAX_SPATIAL], dil[KN_NN_MAX_SPATIAL];
    int64_t pad_begin[KN_NN_MAX_SPATIAL], pad_end[KN_NN_MAX_SPATIAL];
} kn_window;

/* The window of Conv, MaxPool and AveragePool from the node's strides, dilations, pads and
 * auto_pad, input spatial dims `in` and kernel dims `k` (nsp each). ceil_mode is the pools'
 * attribute (0 for Conv). Errors name the node and the attribute or dim that is wrong. */
kiln_status kn_nn_window(const kn_node *n, int nsp, const int64_t *in, const int64_t *k,
                         int ceil_mode, kn_window *w);
/* The window of ConvTranspose (strides, dilations, pads, auto_pad, output_padding,
 * output_shape). */
kiln_status kn_nn_window_transpose(const kn_node *n, int nsp, const int64_t *in, const int64_t *k,
                                   kn_window *w);

/* The fused epilogue of a node ("kiln.act", "kiln.act_alpha", "kiln.act_beta"). */
typedef struct kn_nn_act {
    int act; /* enum kn_act */
    float alpha, beta;
} kn_nn_act;
kn_nn_act kn_nn_act_of(const kn_node *n);

#endif
