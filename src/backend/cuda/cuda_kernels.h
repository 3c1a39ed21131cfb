/* kiln's own CUDA kernels: plain-C launchers with POD parameter blocks. The host code (.c)
 * reads the node, works out shapes, strides and scalars, fills a block and calls a launcher;
 * the .cu files know nothing of the IR. Every launcher enqueues on `s` and returns the launch
 * status (cudaGetLastError after the launch), never synchronizes and never allocates, so all of
 * them can be captured into a CUDA graph. Strides and offsets are in elements. */
#ifndef KILN_CUDA_KERNELS_H
#define KILN_CUDA_KERNELS_H

#include "kiln.h"

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KNC_MAX_RANK 8
#define KNC_EW_MAX_IN 8

/* ---- elementwise: one broadcasting kernel, the op picked by a switch ----------------------- */
typedef enum knc_ew_op {
    KNC_NONE = 0,
    /* unary (in[0]) */
    KNC_RELU, KNC_LEAKY_RELU, KNC_ELU, KNC_SELU, KNC_CLIP, KNC_HARD_SIGMOID, KNC_HARD_SWISH,
    KNC_SIGMOID, KNC_TANH, KNC_ERF, KNC_GELU, KNC_GELU_TANH, KNC_SOFTPLUS, KNC_MISH, KNC_SQRT,
    KNC_RECIPROCAL, KNC_NEG, KNC_ABS, KNC_EXP, KNC_LOG, KNC_FLOOR, KNC_CEIL, KNC_IDENTITY,
    /* binary (in[0], in[1]) */
    KNC_ADD, KNC_SUB, KNC_MUL, KNC_DIV, KNC_POW, KNC_PRELU,
    /* variadic, folded over in[0..n_in) */
    KNC_MIN, KNC_MAX, KNC_SUM, KNC_MEAN,
    /* comparisons and logic: bool (u8 0/1) output */
    KNC_EQUAL, KNC_LESS, KNC_GREATER, KNC_NOT, KNC_AND,
    /* Where: in[0] is the bool condition, in[1] and in[2] of `dtype` */
    KNC_WHERE,
    /* fused epilogue: in[0] (+ scale * in[1] when flags & 1) (+ in[2] when flags & 2), then act */
    KNC_EPILOGUE,
    /* Mod (in[0], in[1]): KNC_MOD the divisor's sign (fmod = 0), KNC_FMOD C's fmod; x mod 0 = 0 for integers */
    KNC_MOD, KNC_FMOD,
    KNC_EW_OP_COUNT
} knc_ew_op;

/* Activations of the epilogue; the same numbers as kn_act in ir/ir.h. */
enum {
    KNC_ACT_NONE = 0, KNC_ACT_RELU, KNC_ACT_RELU6, KNC_ACT_CLIP, KNC_ACT_SIGMOID, KNC_ACT_HARDSWISH,
    KNC_ACT_SILU, KNC_ACT_GELU_ERF, KNC_ACT_GELU_TANH, KNC_ACT_LEAKY_RELU
};

typedef struct knc_ew {
    int op, n_in;
    kiln_dtype dtype;     /* element type of the computing inputs (in[1] for Where) */
    kiln_dtype out_dtype; /* dtype, or BOOL for comparisons and logic */
    kiln_dtype dtype1;    /* Pow: the exponent's (in[1]) element type, which may differ from dtype;
                           * a mixed or integer Pow takes its own kernel (see knc_ew_launch) */
    int rank;             /* after coalescing; 0 or 1 takes the index-free path */
    int64_t n;            /* output elements */
    int64_t dims[KNC_MAX_RANK];
    int64_t strides[KNC_EW_MAX_IN][KNC_MAX_RANK]; /* 0 on broadcast dims */
    const void *in[KNC_EW_MAX_IN];                /* NULL: absent (epilogue) */
    void *out;
    float alpha, beta, gamma; /* op attributes; epilogue: activation alpha/beta */
    int act;                  /* epilogue activation */
    int flags;                /* epilogue: 1 bias, 2 residual; Clip: 1 has min, 2 has max */
    float scale;              /* Mean: 1/n_total; epilogue: bias multiplier */
    const void *lo_ptr, *hi_ptr; /* Clip bounds in device memory (of dtype), or NULL */
} knc_ew;
/* Pow with an integer base or an exponent of another type follows the CPU backend: an int64
 * power by squaring (wrapping) when both are integers, else pow in double, stored into the
 * base's type (integers truncate toward zero and saturate, NaN -> 0). */
cudaError_t knc_ew_launch(const knc_ew *p, cudaStream_t s);

/* Contiguous conversion between any two element types (bool is 0/1). */
cudaError_t knc_cast(const void *in, kiln_dtype it, void *out, kiln_dtype ot, int64_t n, cudaStream_t s);

/* ---- data movement ------------------------------------------------------------------------ */
/* dst[dst_strides . idx] = src[src_strides . idx] for every idx in dims (strides may be 0 or
 * negative; src and dst already point at the first element). */
typedef struct knc_copy {
    int rank, elem_size;
    int64_t dims[KNC_MAX_RANK];
    int64_t src_strides[KNC_MAX_RANK], dst_strides[KNC_MAX_RANK];
    const void *src;
    void *dst;
} knc_copy;
cudaError_t knc_copy_launch(const knc_copy *p, cudaStream_t s);

/* out[idx] = in[idx mod in_dims] (Tile). */
cudaError_t knc_tile(const void *in, void *out, int elem_size, int rank, const int64_t *in_dims,
                     const int64_t *out_dims, cudaStream_t s);

enum { KNC_PAD_CONSTANT = 0, KNC_PAD_REFLECT, KNC_PAD_EDGE, KNC_PAD_WRAP };
typedef struct knc_pad {
    int rank, mode;
    kiln_dtype dtype;
    int64_t in_dims[KNC_MAX_RANK], out_dims[KNC_MAX_RANK], begin[KNC_MAX_RANK];
    double value;            /* constant mode */
    const void *value_ptr;   /* device scalar of dtype, used instead of value when not NULL */
    const void *in;
    void *out;
} knc_pad;
cudaError_t knc_pad_launch(const knc_pad *p, cudaStream_t s);

/* NCHW [n, c, hw] of type st to NHWC [n, hw, p] of type dt (f32, f16, bf16), zeros in channels
 * c..p-1; p is 4 or 8 (a network's input image for a first layer on 4 channels). */
cudaError_t knc_to_nhwc_narrow(const void *src, kiln_dtype st, void *dst, kiln_dtype dt, int64_t n, int64_t c,
                               int64_t hw, int64_t p, cudaStream_t s);

/* [rows, c] 2-byte elements (c < 8) to [rows, 8], zeros after c: the padded-channel input of a
 * narrow NHWC convolution (an image stem). `out` is 16-byte aligned. */
cudaError_t knc_pad_channels8(const void *in, void *out, int c, int64_t rows, cudaStream_t s);

/* out[o, j, i] = data[o, idx[j] (negative wraps, clamped), i]. */
cudaError_t knc_gather(const void *data, const void *idx, kiln_dtype idx_dtype, void *out,
                       int elem_size, int64_t outer, int64_t axis_len, int64_t n_idx,
                       int64_t inner, cudaStream_t s);

enum { KNC_RESIZE_NEAREST = 0, KNC_RESIZE_LINEAR, KNC_RESIZE_CUBIC };
enum {
    KNC_CT_HALF_PIXEL = 0, KNC_CT_ASYMMETRIC, KNC_CT_ALIGN_CORNERS, KNC_CT_PYTORCH_HALF_PIXEL,
    KNC_CT_TF_CROP_AND_RESIZE, KNC_CT_HALF_PIXEL_SYMMETRIC
};
enum { KNC_NEAREST_ROUND_PREFER_FLOOR = 0, KNC_NEAREST_ROUND_PREFER_CEIL, KNC_NEAREST_FLOOR, KNC_NEAREST_CEIL };
typedef struct knc_resize {
    int rank, mode, coord, nearest;
    kiln_dtype dtype;
    int64_t in_dims[KNC_MAX_RANK], out_dims[KNC_MAX_RANK];
    float scales[KNC_MAX_RANK];
    float roi_start[KNC_MAX_RANK], roi_end[KNC_MAX_RANK];
    float cubic_a, extrapolation;
    int exclude_outside;
    const void *in;
    void *out;
} knc_resize;
cudaError_t knc_resize_launch(const knc_resize *p, cudaStream_t s);

/* Fills n elements of elem_size bytes with the pattern `value` (up to 8 bytes). */
cudaError_t knc_fill(void *out, int elem_size, uint64_t value, int64_t n, cudaStream_t s);
/* out[i] = start + i * delta, in dtype. */
cudaError_t knc_range(void *out, kiln_dtype dtype, double start, double delta, int64_t n, cudaStream_t s);

/* ---- neural-network kernels ----------------------------------------------------------------- */
typedef struct knc_pool {
    int is_max, nsp, count_include_pad;
    kiln_dtype dtype;
    int64_t nc; /* N * C */
    int64_t in_sp[3], out_sp[3];
    int64_t k[3], stride[3], dil[3], pad_begin[3], pad_end[3];
    const void *in;
    void *out;
    int64_t *indices; /* MaxPool's optional second output, or NULL */
    int col_major;    /* storage_order=1: the indices count the spatial dims column major */
    int64_t c;        /* channels, for the indices' layout and NHWC indexing */
    int nhwc;         /* data is [N, spatial..., C] (no indices then) */
} knc_pool;
cudaError_t knc_pool_launch(const knc_pool *p, cudaStream_t s);

/* Depthwise 2-D convolution of NHWC f16/bf16 data (group == C == K, C % 8 == 0): a thread per 8
 * channels of an output pixel, bias, residual (NHWC like y) and activation fused. w is [C, R, S]. */
/* What kiln's 2-D NHWC convolution kernels share: X [n, h, w, c] -> Y [n, oh, ow, k] through an
 * r x s window, and the epilogue's activation. */
typedef struct knc_conv2d {
    kiln_dtype dtype;
    int n, c, h, w, oh, ow, r, s;
    int stride[2], dil[2], pad[2];
    int act;
    float alpha, beta;
} knc_conv2d;

typedef struct knc_dwconv {
    knc_conv2d g; /* k == c */
    const void *x, *wt, *bias, *res;
    void *y;
} knc_dwconv;
cudaError_t knc_dwconv_launch(const knc_dwconv *p, cudaStream_t s);

/* Direct 2-D convolution of NHWC f16/bf16 data on few input channels (an image stem on 3-4,
 * which the implicit GEMM's 8-channel copies do not take), one group, K % 8 == 0: a thread per 8
 * output channels of an output pixel, the weights staged in shared memory (knc_dconv_smem bytes,
 * at most 48 KB), bias [K], residual (NHWC like y) and activation fused. w is KRSC. The
 * provisional kernel for such convolutions at a new shape (it needs no cuDNN plan). */
typedef struct knc_dconv {
    knc_conv2d g;
    int k;
    const void *x, *w, *bias, *res;
    void *y;
} knc_dconv;
size_t knc_dconv_smem(const knc_dconv *p);
cudaError_t knc_dconv_launch(const knc_dconv *p, cudaStream_t s);

/* Convolution of NHWC f16/bf16 data as an implicit GEMM on tensor cores (src/backend/cuda/
 * igemm.cu): Y[pixel, k] = sum over (r, s, c) of X[pixel's window at (r, s), c] W[k, r, s, c],
 * fp32 accumulation, one group, C and K multiples of 8. The reduction splits over `splits`
 * blocks of one thread-block cluster (1, 2, 4, 8 or 16) that add their partial tiles through
 * distributed shared memory in a fixed order (deterministic), so a small output (a batch-1
 * layer on 7x7 pixels) still fills the card. Bias [K], residual (NHWC like y) and activation
 * are fused. w is KRSC. */
typedef struct knc_igemm {
    knc_conv2d g;
    int k;
    const void *x, *w, *bias, *res;
    void *y;
    int splits;
} knc_igemm;
/* The split count for this shape on a card of `sms` SMs (the launch takes any of 1, 2, 4, 8, 16). */
int knc_igemm_splits(const knc_igemm *p, int sms);
cudaError_t knc_igemm_launch(const knc_igemm *p, cudaStream_t s);

/* Softmax over the middle dim of [outer, len, inner]. */
cudaError_t knc_softmax(const void *in, void *out, kiln_dtype dtype, int64_t outer, int64_t len,
                        int64_t inner, int log, cudaStream_t s);

/* KilnAttention (src/ops/attention.h): O[n] = softmax(alpha Q[n] K[n]^T) V[n] in one pass over
 * the keys (running max and sum), operands and output through strided views. Dk, Dv <= 128. */
typedef struct knc_attn_operand {
    const void *p;
    int64_t n_inner, s_outer, s_inner, s_l, s_d;
} knc_attn_operand;
typedef struct knc_attention {
    kiln_dtype dtype;
    int64_t n, lq, lk;
    int dk, dv;
    float alpha;
    knc_attn_operand q, k, v;
    void *y;
    int64_t y_n_inner, y_s_outer, y_s_inner, y_s_l, y_s_d; /* as an operand's view */
} knc_attention;
#define KNC_ATTN_MAX_D 128
cudaError_t knc_attention_launch(const knc_attention *p, cudaStream_t s);

/* Normalizes each contiguous row of `len` elements (layer and instance norm).
 * gamma/beta: per element j of the row (per_channel == 0; *_scalar: one value), or per channel
 * row % channels (per_channel == 1). mean/rstd: optional f32 outputs, one per row. */
typedef struct knc_rownorm {
    kiln_dtype dtype, param_dtype;
    int64_t rows, len, channels;
    int per_channel, gamma_scalar, beta_scalar;
    float eps;
    const void *x, *gamma, *beta;
    const void *res; /* NULL, or a tensor like x added to it before normalizing (LayerNormalization's fused residual) */
    void *y;
    void *mean, *rstd;
    kiln_dtype stat_dtype;
} knc_rownorm;
cudaError_t knc_rownorm_launch(const knc_rownorm *p, cudaStream_t s);

/* Inference batch norm on [N, C, inner]: per-channel scale, bias, mean, var. */
typedef struct knc_batchnorm {
    kiln_dtype dtype, scale_dtype, stat_dtype;
    int64_t n, c, inner;
    float eps;
    const void *x, *scale, *bias, *mean, *var;
    void *y;
} knc_batchnorm;
cudaError_t knc_batchnorm_launch(const knc_batchnorm *p, cudaStream_t s);

/* ---- reductions --------------------------------------------------------------------------- */
enum { KNC_RED_SUM = 0, KNC_RED_MEAN, KNC_RED_MAX, KNC_RED_MIN };
enum { KNC_RED_ROWS = 0, KNC_RED_COLS, KNC_RED_GENERIC };
typedef struct knc_reduce {
    int op, mode;
    kiln_dtype dtype;
    /* ROWS: [outer, len] contiguous; COLS: [outer, len, inner] reducing len */
    int64_t outer, len, inner;
    /* GENERIC: output index over keep dims, loop over red dims */
    int n_keep, n_red;
    int64_t keep_dims[KNC_MAX_RANK], keep_strides[KNC_MAX_RANK];
    int64_t red_dims[KNC_MAX_RANK], red_strides[KNC_MAX_RANK];
    int64_t n_out, n_red_total;
    const void *in;
    void *out;
} knc_reduce;
cudaError_t knc_reduce_launch(const knc_reduce *p, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
