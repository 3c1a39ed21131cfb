/* Shape and data-movement ops on CUDA: the reshaping family (a copy), Transpose, Concat, Split,
 * Slice, Expand (one strided-copy kernel), Gather, Tile, Pad, Resize, and the few producers that
 * can reach the device (Shape, ConstantOfShape, Range). Parameters such as perm, pads, starts
 * and scales are read on the host (in[i].host); data stays on the device. */
#include "cuda_internal.h"
#include "ops/tensor.h"

/* Drops unit dims and merges neighbours contiguous on both sides, then launches (a plain
 * memcpy when the whole copy is contiguous). */
static kiln_status kn_cuda_copy_go(const kn_kernel_args *a, knc_copy *p) {
    int cr = 0;
    for (int d = 0; d < p->rank; d++) {
        if (p->dims[d] == 0) return KILN_OK;
        if (p->dims[d] == 1) continue;
        if (cr > 0 && p->src_strides[cr - 1] == p->src_strides[d] * p->dims[d] &&
            p->dst_strides[cr - 1] == p->dst_strides[d] * p->dims[d]) {
            p->dims[cr - 1] *= p->dims[d];
            p->src_strides[cr - 1] = p->src_strides[d];
            p->dst_strides[cr - 1] = p->dst_strides[d];
            continue;
        }
        p->dims[cr] = p->dims[d];
        p->src_strides[cr] = p->src_strides[d];
        p->dst_strides[cr] = p->dst_strides[d];
        cr++;
    }
    p->rank = cr;
    if (cr == 0 || (cr == 1 && p->src_strides[0] == 1 && p->dst_strides[0] == 1)) {
        size_t bytes = (size_t)(cr ? p->dims[0] : 1) * (size_t)p->elem_size;
        return kn_cuda_copy_tensor(a, p->dst, p->src, bytes);
    }
    KN_CU(knc_copy_launch(p, kn_cuda_stream(a)));
    return KILN_OK;
}

static int64_t kn_prod(const int64_t *d, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

static kiln_status kn_cuda_transpose_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    const int64_t *perm = NULL;
    int np = kn_attr_ints(a->node, "perm", &perm);
    int64_t in_st[KILN_MAX_RANK], out_st[KILN_MAX_RANK];
    kn_cuda_strides(x->rank, x->dims, in_st);
    kn_cuda_strides(y->rank, y->dims, out_st);
    knc_copy p = {.rank = y->rank, .elem_size = (int)kiln_dtype_size(y->dtype), .src = x->data, .dst = y->data};
    for (int i = 0; i < y->rank; i++) {
        int64_t j = np ? perm[i] : y->rank - 1 - i;
        if (np && np != y->rank) return kn_node_error(a->node, KILN_ERR_SHAPE, "perm has %d entries for rank %d", np, y->rank);
        if (j < 0) j += x->rank;
        if (j < 0 || j >= x->rank) return kn_node_error(a->node, KILN_ERR_SHAPE, "perm[%d] = %lld is out of range", i, (long long)j);
        p.dims[i] = y->dims[i];
        p.src_strides[i] = in_st[j];
        p.dst_strides[i] = out_st[i];
    }
    return kn_cuda_copy_go(a, &p);
}

static kiln_status kn_cuda_concat_run(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", 0), y->rank, &axis));
    int64_t outer = kn_prod(y->dims, 0, axis), inner = kn_prod(y->dims, axis + 1, y->rank), L = y->dims[axis];
    int es = (int)kiln_dtype_size(y->dtype);
    int64_t off = 0;
    for (int i = 0; i < a->n_in; i++) {
        const kn_tensor *x = &a->in[i];
        if (!kn_tensor_present(x)) continue;
        int64_t len = x->rank ? x->dims[axis] : 1;
        if (len == 0 || kn_tensor_numel(x) == 0) continue;
        knc_copy p = {.rank = 3, .elem_size = es, .src = x->data, .dst = (char *)y->data + (size_t)(off * inner) * es,
                      .dims = {outer, len, inner}, .src_strides = {len * inner, inner, 1}, .dst_strides = {L * inner, inner, 1}};
        KN_TRY(kn_cuda_copy_go(a, &p));
        off += len;
    }
    return KILN_OK;
}

static kiln_status kn_cuda_split_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0];
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", 0), x->rank, &axis));
    int64_t outer = kn_prod(x->dims, 0, axis), inner = kn_prod(x->dims, axis + 1, x->rank), L = x->dims[axis];
    int es = (int)kiln_dtype_size(x->dtype);
    int64_t off = 0;
    for (int i = 0; i < a->n_out; i++) {
        const kn_tensor *y = &a->out[i];
        if (!kn_tensor_present(y) || !y->data) continue;
        int64_t len = y->dims[axis];
        if (off + len > L) return kn_node_error(a->node, KILN_ERR_SHAPE, "the outputs are longer than the input along axis %d", axis);
        knc_copy p = {.rank = 3, .elem_size = es, .src = (const char *)x->data + (size_t)(off * inner) * es, .dst = y->data,
                      .dims = {outer, len, inner}, .src_strides = {L * inner, inner, 1}, .dst_strides = {len * inner, inner, 1}};
        KN_TRY(kn_cuda_copy_go(a, &p));
        off += len;
    }
    return KILN_OK;
}

static kiln_status kn_cuda_slice_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int r = x->rank;
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    int ns = 0, ne = 0, na = 0, nst = 0;
    KN_TRY(kn_host_ints(n, &a->in[1], 1, starts, KILN_MAX_RANK, &ns));
    KN_TRY(kn_host_ints(n, &a->in[2], 2, ends, KILN_MAX_RANK, &ne));
    if (a->n_in > 3 && kn_tensor_present(&a->in[3])) KN_TRY(kn_host_ints(n, &a->in[3], 3, axes, KILN_MAX_RANK, &na));
    if (a->n_in > 4 && kn_tensor_present(&a->in[4])) KN_TRY(kn_host_ints(n, &a->in[4], 4, steps, KILN_MAX_RANK, &nst));
    if (ne != ns || (na && na != ns) || (nst && nst != ns))
        return kn_node_error(n, KILN_ERR_SHAPE, "starts, ends, axes and steps have different lengths");
    int64_t st_in[KILN_MAX_RANK], st_out[KILN_MAX_RANK], start[KILN_MAX_RANK], step[KILN_MAX_RANK];
    kn_cuda_strides(r, x->dims, st_in);
    kn_cuda_strides(r, y->dims, st_out);
    for (int d = 0; d < r; d++) { start[d] = 0; step[d] = 1; }
    for (int i = 0; i < ns; i++) {
        int ax;
        KN_TRY(kn_norm_axis(n, na ? axes[i] : i, r, &ax));
        int64_t dim = x->dims[ax], s = starts[i], sp = nst ? steps[i] : 1;
        if (sp == 0) return kn_node_error(n, KILN_ERR_SHAPE, "step %d is 0", i);
        if (s < 0) s += dim;
        if (sp > 0) s = s < 0 ? 0 : s > dim ? dim : s;
        else s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
        start[ax] = s;
        step[ax] = sp;
    }
    int es = (int)kiln_dtype_size(x->dtype);
    int64_t base = 0;
    knc_copy p = {.rank = r, .elem_size = es, .dst = y->data};
    for (int d = 0; d < r; d++) {
        base += start[d] * st_in[d];
        p.dims[d] = y->dims[d];
        p.src_strides[d] = step[d] * st_in[d];
        p.dst_strides[d] = st_out[d];
    }
    p.src = (const char *)x->data + base * es;
    return kn_cuda_copy_go(a, &p);
}

static kiln_status kn_cuda_expand_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int r = y->rank, off = r - x->rank;
    if (off < 0) return kn_node_error(a->node, KILN_ERR_SHAPE, "the input has a higher rank than the output");
    int64_t xs[KILN_MAX_RANK], ys[KILN_MAX_RANK];
    kn_cuda_strides(x->rank, x->dims, xs);
    kn_cuda_strides(r, y->dims, ys);
    knc_copy p = {.rank = r, .elem_size = (int)kiln_dtype_size(y->dtype), .src = x->data, .dst = y->data};
    for (int d = 0; d < r; d++) {
        int j = d - off;
        p.dims[d] = y->dims[d];
        p.src_strides[d] = (j < 0 || x->dims[j] == 1) ? 0 : xs[j];
        p.dst_strides[d] = ys[d];
    }
    return kn_cuda_copy_go(a, &p);
}

static kiln_status kn_cuda_gather_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *idx = &a->in[1], *y = &a->out[0];
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", 0), x->rank, &axis));
    if (idx->dtype != KILN_I64 && idx->dtype != KILN_I32)
        return kn_node_error(a->node, KILN_ERR_DTYPE, "indices must be i32 or i64, got %s", kiln_dtype_name(idx->dtype));
    if (!idx->data) return kn_node_error(a->node, KILN_ERR_INTERNAL, "indices have no device copy");
    KN_CU(knc_gather(x->data, idx->data, idx->dtype, y->data, (int)kiln_dtype_size(x->dtype), kn_prod(x->dims, 0, axis),
                     x->dims[axis], kn_tensor_numel(idx), kn_prod(x->dims, axis + 1, x->rank), kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_tile_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (x->rank != y->rank) return kn_node_error(a->node, KILN_ERR_SHAPE, "input and output ranks differ");
    KN_CU(knc_tile(x->data, y->data, (int)kiln_dtype_size(x->dtype), x->rank, x->dims, y->dims, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_pad_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int r = x->rank;
    knc_pad p = {.rank = r, .dtype = x->dtype, .in = x->data, .out = y->data};
    const char *mode = kn_attr_s(n, "mode", "constant");
    if (strcmp(mode, "constant") == 0) p.mode = KNC_PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0) p.mode = KNC_PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0) p.mode = KNC_PAD_EDGE;
    else if (strcmp(mode, "wrap") == 0) p.mode = KNC_PAD_WRAP;
    else return kn_node_error(n, KILN_ERR_UNSUPPORTED, "pad mode '%s' is not supported", mode);
    int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    int np = 0, na = 0;
    if (a->n_in > 1 && kn_tensor_present(&a->in[1])) {
        KN_TRY(kn_host_ints(n, &a->in[1], 1, pads, 2 * KILN_MAX_RANK, &np));
    } else { /* the old attribute form */
        const int64_t *pa = NULL;
        np = kn_attr_ints(n, "pads", &pa);
        if (np > 2 * KILN_MAX_RANK) np = 2 * KILN_MAX_RANK;
        for (int i = 0; i < np; i++) pads[i] = pa[i];
        p.value = kn_attr_f(n, "value", 0.0f);
    }
    if (a->n_in > 3 && kn_tensor_present(&a->in[3])) KN_TRY(kn_host_ints(n, &a->in[3], 3, axes, KILN_MAX_RANK, &na));
    int cnt = na ? na : r;
    if (np != 2 * cnt) return kn_node_error(n, KILN_ERR_SHAPE, "pads has %d entries, expected %d", np, 2 * cnt);
    for (int d = 0; d < r; d++) p.begin[d] = 0;
    for (int i = 0; i < cnt; i++) {
        int ax = i;
        if (na) KN_TRY(kn_norm_axis(n, axes[i], r, &ax));
        p.begin[ax] = pads[i];
    }
    for (int d = 0; d < r; d++) {
        p.in_dims[d] = x->dims[d];
        p.out_dims[d] = y->dims[d];
        if (p.mode != KNC_PAD_CONSTANT && x->dims[d] == 0 && y->dims[d] > 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "mode '%s' cannot pad an empty dim", mode);
    }
    if (a->n_in > 2 && kn_tensor_present(&a->in[2])) {
        if (a->in[2].host) p.value = kn_load_f64(a->in[2].host, a->in[2].dtype, 0);
        else p.value_ptr = a->in[2].data;
    }
    KN_CU(knc_pad_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_host_floats(const kn_node *n, const kn_tensor *t, int idx, float *out, int cap, int *count) {
    if (!t->host)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "input %d must be known before the run", idx);
    int64_t k = kn_tensor_numel(t);
    if (k > cap) return kn_node_error(n, KILN_ERR_SHAPE, "input %d has %lld elements, at most %d", idx, (long long)k, cap);
    for (int64_t i = 0; i < k; i++) out[i] = (float)kn_load_f64(t->host, t->dtype, i);
    *count = (int)k;
    return KILN_OK;
}

static kiln_status kn_cuda_resize_run(const kn_kernel_args *a) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int r = x->rank;
    knc_resize p = {.rank = r, .dtype = x->dtype, .in = x->data, .out = y->data};
    const char *mode = kn_attr_s(n, "mode", "nearest");
    p.mode = strcmp(mode, "linear") == 0 ? KNC_RESIZE_LINEAR : strcmp(mode, "cubic") == 0 ? KNC_RESIZE_CUBIC : KNC_RESIZE_NEAREST;
    const char *ct = kn_attr_s(n, "coordinate_transformation_mode", "half_pixel");
    if (strcmp(ct, "asymmetric") == 0) p.coord = KNC_CT_ASYMMETRIC;
    else if (strcmp(ct, "align_corners") == 0) p.coord = KNC_CT_ALIGN_CORNERS;
    else if (strcmp(ct, "pytorch_half_pixel") == 0) p.coord = KNC_CT_PYTORCH_HALF_PIXEL;
    else if (strcmp(ct, "tf_crop_and_resize") == 0) p.coord = KNC_CT_TF_CROP_AND_RESIZE;
    else if (strcmp(ct, "half_pixel_symmetric") == 0) p.coord = KNC_CT_HALF_PIXEL_SYMMETRIC;
    else p.coord = KNC_CT_HALF_PIXEL;
    const char *nm = kn_attr_s(n, "nearest_mode", "round_prefer_floor");
    p.nearest = strcmp(nm, "round_prefer_ceil") == 0 ? KNC_NEAREST_ROUND_PREFER_CEIL
                : strcmp(nm, "floor") == 0       ? KNC_NEAREST_FLOOR
                : strcmp(nm, "ceil") == 0        ? KNC_NEAREST_CEIL
                                                 : KNC_NEAREST_ROUND_PREFER_FLOOR;
    p.cubic_a = kn_attr_f(n, "cubic_coeff_a", -0.75f);
    p.exclude_outside = (int)kn_attr_i(n, "exclude_outside", 0);
    p.extrapolation = kn_attr_f(n, "extrapolation_value", 0.0f);
    if (kn_attr_i(n, "antialias", 0)) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "antialias is not supported on CUDA");

    const int64_t *ax_attr = NULL;
    int na = kn_attr_ints(n, "axes", &ax_attr);
    int axes[KILN_MAX_RANK];
    int cnt = na ? na : r;
    if (cnt > r) return kn_node_error(n, KILN_ERR_SHAPE, "axes has %d entries for rank %d", cnt, r);
    for (int i = 0; i < cnt; i++) {
        if (na) KN_TRY(kn_norm_axis(n, ax_attr[i], r, &axes[i]));
        else axes[i] = i;
    }
    for (int d = 0; d < r; d++) {
        p.in_dims[d] = x->dims[d];
        p.out_dims[d] = y->dims[d];
        p.scales[d] = 1.0f;
        p.roi_start[d] = 0.0f;
        p.roi_end[d] = 1.0f;
    }
    /* scales, roi and the keep_aspect_ratio_policy as the shape function and the CPU kernel see
     * them (src/ops/tensor_resize.c): one computation, so the backends cannot disagree */
    kn_resize_plan plan;
    KN_TRY(kn_resize_plan_make(n, a->in, a->n_in, &plan));
    for (int d = 0; d < r; d++) {
        p.scales[d] = (float)plan.scale[d];
        if (p.coord == KNC_CT_TF_CROP_AND_RESIZE) {
            p.roi_start[d] = (float)plan.roi_start[d];
            p.roi_end[d] = (float)plan.roi_end[d];
        }
    }
    (void)axes;
    int resized = 0;
    for (int d = 0; d < r; d++)
        if (x->dims[d] != y->dims[d] || p.scales[d] != 1.0f) resized++;
    if (p.mode == KNC_RESIZE_CUBIC && resized > 3)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "cubic resize of %d dims (at most 3)", resized);
    KN_CU(knc_resize_launch(&p, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_shape_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int64_t start = kn_attr_i(a->node, "start", 0), end = kn_attr_i(a->node, "end", x->rank);
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    start = start < 0 ? 0 : start > x->rank ? x->rank : start;
    end = end < 0 ? 0 : end > x->rank ? x->rank : end;
    for (int64_t i = start; i < end && i - start < kn_tensor_numel(y); i++)
        KN_CU(knc_fill((int64_t *)y->data + (i - start), 8, (uint64_t)x->dims[i], 1, kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_const_of_shape_run(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    const kn_attr *v = kn_node_attr(a->node, "value");
    uint64_t pattern = 0;
    if (v && v->tensor && kn_host_numel(v->tensor) >= 1)
        kn_convert(v->tensor->data, v->tensor->dtype, &pattern, y->dtype, 1);
    KN_CU(knc_fill(y->data, (int)kiln_dtype_size(y->dtype), pattern, kn_tensor_numel(y), kn_cuda_stream(a)));
    return KILN_OK;
}

static kiln_status kn_cuda_range_run(const kn_kernel_args *a) {
    const kn_tensor *y = &a->out[0];
    for (int i = 0; i < 3; i += 2)
        if (!a->in[i].host) return kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "input %d must be known before the run", i);
    double start = kn_load_f64(a->in[0].host, a->in[0].dtype, 0), delta = kn_load_f64(a->in[2].host, a->in[2].dtype, 0);
    KN_CU(knc_range(y->data, y->dtype, start, delta, kn_tensor_numel(y), kn_cuda_stream(a)));
    return KILN_OK;
}

/* ---- what the kernels take --------------------------------------------------------------------- */

kiln_status kn_cuda_layout_run(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    if (x->rank != 4 || y->rank != 4) return kn_node_error(a->node, KILN_ERR_SHAPE, "a layout change needs 4-D data, got rank %d", x->rank);
    int64_t N = y->dims[0], C = y->dims[1], H = y->dims[2], W = y->dims[3];
    if (x->dtype != y->dtype || x->dims[1] != C) { /* a converting or padding conversion (layout_nhwc.c) */
        if (kn_attr_i(a->node, "kiln.to_layout", 1) != 1)
            return kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "only a conversion to NHWC pads or changes the type");
        KN_CU(knc_to_nhwc_narrow(x->data, x->dtype, y->data, y->dtype, N, x->dims[1], H * W, C, kn_cuda_stream(a)));
        return KILN_OK;
    }
    knc_copy p = {.rank = 4, .elem_size = (int)kiln_dtype_size(y->dtype), .src = x->data, .dst = y->data};
    if (kn_attr_i(a->node, "kiln.to_layout", 1) == 1) {
        /* walk the destination NHWC [N,H,W,C]; the source is NCHW */
        int64_t d[4] = {N, H, W, C}, ss[4] = {C * H * W, W, 1, H * W};
        for (int i = 0; i < 4; i++) p.dims[i] = d[i], p.src_strides[i] = ss[i];
    } else {
        /* walk the destination NCHW [N,C,H,W]; the source is NHWC */
        int64_t d[4] = {N, C, H, W}, ss[4] = {H * W * C, 1, W * C, C};
        for (int i = 0; i < 4; i++) p.dims[i] = d[i], p.src_strides[i] = ss[i];
    }
    kn_cuda_strides(4, p.dims, p.dst_strides);
    return kn_cuda_copy_go(a, &p);
}

static int kn_sup_any(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    return t != KILN_DTYPE_INVALID && kiln_dtype_size(t) > 0 && kiln_dtype_size(t) <= 8;
}
static int kn_sup_gather(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 1);
    return kn_sup_any(g, n) && (t == KILN_I64 || t == KILN_I32);
}
static int kn_sup_resize(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    if (kn_attr_i(n, "antialias", 0)) return 0;
    const char *mode = kn_attr_s(n, "mode", "nearest");
    if (strcmp(mode, "nearest") == 0) return kn_sup_any(g, n);
    return kn_cuda_is_fp_or_f64(t);
}
static int kn_sup_out(const kn_graph *g, const kn_node *n) {
    return kn_cuda_out_dtype(g, n, 0) != KILN_DTYPE_INVALID;
}

void kn_cuda_register_tensor(kn_cuda_op *t) {
#define KN_TS(op, fn, sup, nm) t[KN_OP_##op] = (kn_cuda_op){.engine = {.name = nm, .run = fn}, .supports = sup}
    KN_TS(Flatten, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
    KN_TS(Reshape, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
    KN_TS(Squeeze, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
    KN_TS(Unsqueeze, kn_cuda_copy_run, kn_sup_any, "cuda.copy");
    KN_TS(Transpose, kn_cuda_transpose_run, kn_sup_any, "cuda.transpose");
    KN_TS(Concat, kn_cuda_concat_run, kn_sup_any, "cuda.concat");
    KN_TS(Split, kn_cuda_split_run, kn_sup_any, "cuda.split");
    KN_TS(Slice, kn_cuda_slice_run, kn_sup_any, "cuda.slice");
    KN_TS(Expand, kn_cuda_expand_run, kn_sup_any, "cuda.expand");
    KN_TS(Gather, kn_cuda_gather_run, kn_sup_gather, "cuda.gather");
    KN_TS(Tile, kn_cuda_tile_run, kn_sup_any, "cuda.tile");
    KN_TS(Pad, kn_cuda_pad_run, kn_sup_any, "cuda.pad");
    KN_TS(Resize, kn_cuda_resize_run, kn_sup_resize, "cuda.resize");
    KN_TS(Shape, kn_cuda_shape_run, kn_sup_any, "cuda.shape");
    KN_TS(ConstantOfShape, kn_cuda_const_of_shape_run, kn_sup_out, "cuda.constant_of_shape");
    KN_TS(Range, kn_cuda_range_run, kn_sup_out, "cuda.range");
#undef KN_TS
}
