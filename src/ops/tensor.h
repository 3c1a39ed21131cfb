/* Parameters of the tensor ops that both the shape functions (src/ops/tensor*.c) and every
 * backend's kernels need, computed in one place so that the two can never disagree: Slice's
 * clamped starts and steps, Pad's per-axis pads and mode, Resize's output size, scales and
 * coordinate mapping, Shape's start/end and Range's element count. Each reads the node's
 * attributes and its host-known inputs (kn_tensor.host) and fails naming the node. */
#ifndef KILN_OPS_TENSOR_H
#define KILN_OPS_TENSOR_H

#include "ops.h"

/* ---- Slice ------------------------------------------------------------------------------------- */
/* Per input dim: the first source index, the step and the output length (axes not sliced get
 * start 0, step 1, len = dim). */
typedef struct kn_slice_plan {
    int rank;
    int64_t start[KILN_MAX_RANK];
    int64_t step[KILN_MAX_RANK];
    int64_t len[KILN_MAX_RANK];
} kn_slice_plan;

/* Reads starts/ends/axes/steps (inputs 1..4, or the opset-1 attributes when there is one input). */
kiln_status kn_slice_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_slice_plan *p);

/* ---- Pad --------------------------------------------------------------------------------------- */
typedef enum kn_pad_mode { KN_PAD_CONSTANT = 0, KN_PAD_REFLECT, KN_PAD_EDGE, KN_PAD_WRAP } kn_pad_mode;

typedef struct kn_pad_plan {
    int rank;
    kn_pad_mode mode;
    int64_t begin[KILN_MAX_RANK]; /* may be negative (crop) */
    int64_t end[KILN_MAX_RANK];
    int64_t out[KILN_MAX_RANK];
    /* constant value: input 2 when present (bytes of the data's dtype), else value_f (the old
     * "value" attribute or 0) converted to the data's dtype */
    const void *value;
    double value_f;
} kn_pad_plan;

kiln_status kn_pad_mode_parse(const kn_node *n, kn_pad_mode *mode);
kiln_status kn_pad_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_pad_plan *p);

/* Maps an output coordinate on one axis to a source index, or -1 for the constant value. */
static inline int64_t kn_pad_src_index(kn_pad_mode mode, int64_t x, int64_t dim) {
    if (x >= 0 && x < dim) return x;
    switch (mode) {
    case KN_PAD_EDGE: return x < 0 ? 0 : dim - 1;
    case KN_PAD_WRAP: { int64_t m = x % dim; return m < 0 ? m + dim : m; }
    case KN_PAD_REFLECT: {
        if (dim == 1) return 0;
        int64_t period = 2 * (dim - 1), m = x % period;
        if (m < 0) m += period;
        return m < dim ? m : period - m;
    }
    default: return -1;
    }
}

/* ---- Resize ------------------------------------------------------------------------------------ */
typedef enum kn_resize_mode { KN_RESIZE_NEAREST = 0, KN_RESIZE_LINEAR } kn_resize_mode;
typedef enum kn_resize_coord {
    KN_COORD_HALF_PIXEL = 0,
    KN_COORD_HALF_PIXEL_SYMMETRIC,
    KN_COORD_PYTORCH_HALF_PIXEL,
    KN_COORD_ALIGN_CORNERS,
    KN_COORD_ASYMMETRIC,
    KN_COORD_TF_CROP_AND_RESIZE,
} kn_resize_coord;
typedef enum kn_resize_nearest {
    KN_NEAREST_ROUND_PREFER_FLOOR = 0,
    KN_NEAREST_ROUND_PREFER_CEIL,
    KN_NEAREST_FLOOR,
    KN_NEAREST_CEIL,
} kn_resize_nearest;

typedef struct kn_resize_plan {
    int rank;
    kn_resize_mode mode;
    kn_resize_coord coord;
    kn_resize_nearest nearest;
    float extrapolation_value;  /* tf_crop_and_resize: value outside the roi */
    int64_t in[KILN_MAX_RANK];
    int64_t out[KILN_MAX_RANK];
    double scale[KILN_MAX_RANK];     /* the scale of the coordinate mapping */
    double roi_start[KILN_MAX_RANK]; /* tf_crop_and_resize only (normalized coordinates) */
    double roi_end[KILN_MAX_RANK];
} kn_resize_plan;

/* The attribute checks (mode, coordinate mode, nearest mode, unsupported cubic/antialias). */
kiln_status kn_resize_attrs(const kn_node *n, kn_resize_plan *p);
kiln_status kn_resize_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_resize_plan *p);
/* The source coordinate of output coordinate x on `axis` (may lie outside [0, in-1]). */
double kn_resize_src_coord(const kn_resize_plan *p, int axis, int64_t x);
/* The source index that nearest mode picks for a source coordinate, clamped into [0, in-1]. */
int64_t kn_resize_nearest_index(const kn_resize_plan *p, int axis, double x);

/* ---- Shape, Range, Gather, Split ----------------------------------------------------------- */
/* Shape's [start, end) over an input of `rank` dims, after clamping. */
void kn_shape_bounds(const kn_node *n, int rank, int *start, int *end);
/* Range's element count from host-known start/limit/delta (inputs 0..2 of one dtype). */
kiln_status kn_range_count(const kn_node *n, const kn_tensor *in, int64_t *count);

/* ---- shape functions defined in tensor_window.c and tensor_resize.c ---------------------------- */
kiln_status kn_infer_slice(kn_infer_ctx *c);
kiln_status kn_check_pad(const kn_graph *g, const kn_node *n);
kiln_status kn_infer_pad(kn_infer_ctx *c);
kiln_status kn_check_resize(const kn_graph *g, const kn_node *n);
kiln_status kn_infer_resize(kn_infer_ctx *c);

#endif
