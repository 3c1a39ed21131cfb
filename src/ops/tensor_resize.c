/* Resize (opset 19 definition): modes nearest and linear over any axes, with roi/scales/sizes
 * inputs, the "axes" and keep_aspect_ratio_policy attributes, and every coordinate
 * transformation mode. Cubic and antialias are refused with KILN_ERR_UNSUPPORTED. The output size
 * and the coordinate mapping follow the ONNX reference implementation: with scales the output is
 * floor(in * scale); with sizes the scale is out / in (or one scale for all axes under a keep
 * aspect ratio policy, output rounded half up). */
#include "tensor.h"

#include <math.h>

static int kn_str_pick(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

kiln_status kn_resize_attrs(const kn_node *n, kn_resize_plan *p) {
    static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                         "align_corners", "asymmetric", "tf_crop_and_resize"};
    static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *mode = kn_attr_s(n, "mode", "nearest");
    if (strcmp(mode, "nearest") == 0) p->mode = KN_RESIZE_NEAREST;
    else if (strcmp(mode, "linear") == 0) p->mode = KN_RESIZE_LINEAR;
    else if (strcmp(mode, "cubic") == 0)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute 'mode' = 'cubic' is not supported (kiln takes nearest and linear)");
    else
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'mode' = '%s', expected nearest, linear or cubic", mode);
    if (kn_attr_i(n, "antialias", 0) != 0)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute 'antialias' = 1 is not supported");
    const char *cm = kn_attr_s(n, "coordinate_transformation_mode", "half_pixel");
    int c = kn_str_pick(cm, coords, 6);
    if (c < 0)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'coordinate_transformation_mode' = '%s', expected half_pixel, half_pixel_symmetric, "
                             "pytorch_half_pixel, align_corners, asymmetric or tf_crop_and_resize", cm);
    p->coord = (kn_resize_coord)c;
    const char *nm = kn_attr_s(n, "nearest_mode", "round_prefer_floor");
    int k = kn_str_pick(nm, nearest, 4);
    if (k < 0)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'nearest_mode' = '%s', expected round_prefer_floor, round_prefer_ceil, floor or ceil", nm);
    p->nearest = (kn_resize_nearest)k;
    const char *ka = kn_attr_s(n, "keep_aspect_ratio_policy", "stretch");
    if (strcmp(ka, "stretch") && strcmp(ka, "not_larger") && strcmp(ka, "not_smaller"))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'keep_aspect_ratio_policy' = '%s', expected stretch, not_larger or not_smaller", ka);
    p->extrapolation_value = kn_attr_f(n, "extrapolation_value", 0.0f);
    return KILN_OK;
}

kiln_status kn_check_resize(const kn_graph *g, const kn_node *n) {
    kn_resize_plan p;
    return kn_resize_attrs(n, &p);
}

static int kn_given(const kn_tensor *in, int n_in, int k) {
    return n_in > k && kn_tensor_present(&in[k]) && kn_tensor_numel(&in[k]) > 0;
}

/* Reads float input k (host-known) into out. */
static kiln_status kn_host_floats(const kn_node *n, const kn_tensor *t, int k, const char *name, double *out,
                                  int cap, int *count) {
    if (!t->host)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "input %d (%s) must be known before the run (a constant or computed from shapes)", k, name);
    if (!kn_dtype_is_float(t->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "input %d (%s) must be a float tensor, got %s", k, name,
                             kiln_dtype_name(t->dtype));
    int64_t c = kn_tensor_numel(t);
    if (t->rank > 1 || c > cap)
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) must be 1-D with at most %d entries, got shape %s", k,
                             name, cap, kn_dims_str(t->rank, t->dims, (char[96]){0}, 96));
    for (int64_t i = 0; i < c; i++) out[i] = kn_load_f64(t->host, t->dtype, i);
    *count = (int)c;
    return KILN_OK;
}

kiln_status kn_resize_plan_make(const kn_node *n, const kn_tensor *in, int n_in, kn_resize_plan *p) {
    const kn_tensor *x = &in[0];
    char xs[96];
    KN_TRY(kn_resize_attrs(n, p));
    if (p->mode == KN_RESIZE_LINEAR && !kn_dtype_is_float(x->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "mode 'linear' needs a float input 0, got %s", kiln_dtype_name(x->dtype));
    int r = x->rank;
    p->rank = r;
    if (r == 0) return kn_node_error(n, KILN_ERR_SHAPE, "input 0 is a scalar; Resize needs rank >= 1");
    /* the axes the scales/sizes/roi entries refer to */
    int axes[KILN_MAX_RANK], na = r;
    const int64_t *aa;
    int nattr = kn_attr_ints(n, "axes", &aa);
    if (kn_node_attr(n, "axes")) {
        if (nattr > r)
            return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axes' has %d entries, input 0 has rank %d", nattr, r);
        unsigned seen = 0;
        for (int i = 0; i < nattr; i++) {
            int64_t a = aa[i] < 0 ? aa[i] + r : aa[i];
            if (a < 0 || a >= r)
                return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axes' entry %d = %lld is out of range for input 0 of shape %s",
                                     i, (long long)aa[i], kn_dims_str(r, x->dims, xs, sizeof xs));
            if (seen >> a & 1u) return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axes' lists axis %lld twice", (long long)a);
            seen |= 1u << a;
            axes[i] = (int)a;
        }
        na = nattr;
    } else {
        for (int i = 0; i < r; i++) axes[i] = i;
    }
    for (int d = 0; d < r; d++) {
        p->in[d] = p->out[d] = x->dims[d];
        p->scale[d] = 1.0;
        p->roi_start[d] = 0.0;
        p->roi_end[d] = 1.0;
    }
    int has_scales = kn_given(in, n_in, 2), has_sizes = kn_given(in, n_in, 3);
    if (has_scales && has_sizes)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "only one of input 2 (scales) and input 3 (sizes) may be given");
    if (!has_scales && !has_sizes)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs input 2 (scales) or input 3 (sizes)");
    if (has_scales) {
        double s[KILN_MAX_RANK];
        int k;
        KN_TRY(kn_host_floats(n, &in[2], 2, "scales", s, KILN_MAX_RANK, &k));
        if (k != na)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 2 (scales) has %d entries, expected %d", k, na);
        for (int i = 0; i < na; i++) {
            int d = axes[i];
            if (!(s[i] > 0) || !isfinite(s[i]))
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "input 2 (scales) entry %d = %g, expected > 0", i, s[i]);
            double o = floor(s[i] * (double)x->dims[d]);
            if (o > 1e15) return kn_node_error(n, KILN_ERR_SHAPE, "input 2 (scales) entry %d = %g makes axis %d too large", i, s[i], d);
            p->scale[d] = s[i];
            p->out[d] = (int64_t)o;
        }
    } else {
        int64_t sz[KILN_MAX_RANK];
        int k;
        if (in[3].rank > 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (sizes) must be 1-D, got rank %d", in[3].rank);
        KN_TRY(kn_host_ints(n, &in[3], 3, sz, KILN_MAX_RANK, &k));
        if (k != na)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (sizes) has %d entries, expected %d", k, na);
        for (int i = 0; i < na; i++) {
            int d = axes[i];
            if (sz[i] < 0)
                return kn_node_error(n, KILN_ERR_SHAPE, "input 3 (sizes) entry %d = %lld is negative", i, (long long)sz[i]);
            if (x->dims[d] == 0 && sz[i] > 0)
                return kn_node_error(n, KILN_ERR_SHAPE, "cannot resize axis %d of size 0 to %lld", d, (long long)sz[i]);
            p->out[d] = sz[i];
            p->scale[d] = x->dims[d] ? (double)sz[i] / (double)x->dims[d] : 1.0;
        }
        const char *ka = kn_attr_s(n, "keep_aspect_ratio_policy", "stretch");
        if (strcmp(ka, "stretch") != 0 && na > 0) {
            double s = p->scale[axes[0]];
            for (int i = 1; i < na; i++) {
                double t = p->scale[axes[i]];
                s = strcmp(ka, "not_larger") == 0 ? (t < s ? t : s) : (t > s ? t : s);
            }
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                p->scale[d] = s;
                p->out[d] = (int64_t)(s * (double)x->dims[d] + 0.5);
            }
        }
    }
    if (p->coord == KN_COORD_TF_CROP_AND_RESIZE) {
        double roi[2 * KILN_MAX_RANK];
        int k;
        if (!kn_given(in, n_in, 1))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "coordinate_transformation_mode 'tf_crop_and_resize' needs input 1 (roi)");
        KN_TRY(kn_host_floats(n, &in[1], 1, "roi", roi, 2 * KILN_MAX_RANK, &k));
        if (k != 2 * na)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (roi) has %d entries, expected %d (2 x %d axes)", k, 2 * na, na);
        for (int i = 0; i < na; i++) {
            p->roi_start[axes[i]] = roi[i];
            p->roi_end[axes[i]] = roi[na + i];
        }
    }
    return KILN_OK;
}

double kn_resize_src_coord(const kn_resize_plan *p, int axis, int64_t x) {
    double s = p->scale[axis], in = (double)p->in[axis], xr = (double)x;
    double width = s * in; /* the reference's "output_width": not rounded */
    switch (p->coord) {
    case KN_COORD_HALF_PIXEL: return (xr + 0.5) / s - 0.5;
    case KN_COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)p->out[axis] / width, center = in / 2;
        return center * (1 - adjustment) + (xr + 0.5) / s - 0.5;
    }
    case KN_COORD_PYTORCH_HALF_PIXEL: return p->out[axis] > 1 ? (xr + 0.5) / s - 0.5 : 0.0;
    case KN_COORD_ALIGN_CORNERS: return width == 1 ? 0.0 : xr * (in - 1) / (width - 1);
    case KN_COORD_ASYMMETRIC: return xr / s;
    case KN_COORD_TF_CROP_AND_RESIZE: {
        double a = p->roi_start[axis], b = p->roi_end[axis];
        double v = width == 1 ? (b - a) * (in - 1) / 2 : xr * (b - a) * (in - 1) / (width - 1);
        return v + a * (in - 1);
    }
    }
    return 0.0;
}

int64_t kn_resize_nearest_index(const kn_resize_plan *p, int axis, double x) {
    double f = floor(x);
    int64_t i, last = p->in[axis] - 1;
    if (f < -1.0) return 0; /* far outside: clamp before any conversion to an integer */
    if (f > (double)last) return last;
    if (x == f) {
        i = (int64_t)f;
    } else {
        double frac = x - f;
        int up;
        switch (p->nearest) {
        case KN_NEAREST_ROUND_PREFER_CEIL: up = frac >= 0.5; break;
        case KN_NEAREST_FLOOR: up = 0; break;
        case KN_NEAREST_CEIL: up = 1; break;
        default: up = frac > 0.5; break;
        }
        i = (int64_t)f + up;
    }
    return i < 0 ? 0 : i > last ? last : i;
}

kiln_status kn_infer_resize(kn_infer_ctx *c) {
    kn_resize_plan p;
    KN_TRY(kn_resize_plan_make(c->node, c->in, c->n_in, &p));
    c->out[0].dtype = c->in[0].dtype;
    c->out[0].rank = p.rank;
    memcpy(c->out[0].dims, p.out, (size_t)p.rank * sizeof p.out[0]);
    return KILN_OK;
}
