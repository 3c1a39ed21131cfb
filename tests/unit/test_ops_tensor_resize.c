/* Resize: hand-computed cases (the ONNX documentation's), then random NCHW cases against a
 * reference written here that follows the ONNX reference implementation's structure (nested
 * 1-D interpolation; neighbours found on an edge-padded row), and the error paths. */
#include "tensor_testutil.h"

typedef struct rs_case {
    const char *mode, *coord, *nearest, *keep;
    float extrapolation;
    int use_sizes;
    double scale[4];  /* the coordinate scale per axis */
    int64_t out[4];
    double roi[8];
} rs_case;

static int rs_is(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* ONNX reference _interpolate_1d_with_x on a row of doubles. */
static double rs_interp_1d(const double *row, int64_t len, double scale, int64_t out_int, int64_t x, const rs_case *c,
                           double roi0, double roi1) {
    double ow = scale * (double)len, xo, xr = (double)x;
    if (rs_is(c->coord, "align_corners")) xo = ow == 1 ? 0 : xr * (double)(len - 1) / (ow - 1);
    else if (rs_is(c->coord, "asymmetric")) xo = xr / scale;
    else if (rs_is(c->coord, "tf_crop_and_resize")) {
        xo = ow == 1 ? (roi1 - roi0) * (double)(len - 1) / 2 : xr * (roi1 - roi0) * (double)(len - 1) / (ow - 1);
        xo += roi0 * (double)(len - 1);
        if (xo < 0 || xo > (double)(len - 1)) return c->extrapolation;
    } else if (rs_is(c->coord, "pytorch_half_pixel")) {
        /* the spec (and onnxruntime) test the integer output length here; the ONNX Python
         * reference tests the unrounded width, which differs only when scale * len is fractional
         * with one output pixel. kiln follows the spec. */
        xo = out_int <= 1 ? -0.5 : (xr + 0.5) / scale - 0.5;
    }
    else if (rs_is(c->coord, "half_pixel")) xo = (xr + 0.5) / scale - 0.5;
    else {
        double adj = (double)out_int / ow, center = (double)len / 2, offset = center * (1 - adj);
        xo = offset + (xr + 0.5) / scale - 0.5;
    }
    double xi = floor(xo), ratio = xo == xi ? 1.0 : xo - xi, c0, c1;
    if (rs_is(c->mode, "linear")) {
        c0 = 1 - ratio;
        c1 = ratio;
    } else if (xo == xi) {
        c0 = 0, c1 = 1;
    } else if (rs_is(c->nearest, "round_prefer_floor")) {
        c0 = ratio <= 0.5, c1 = ratio > 0.5;
    } else if (rs_is(c->nearest, "round_prefer_ceil")) {
        c0 = ratio < 0.5, c1 = ratio >= 0.5;
    } else if (rs_is(c->nearest, "floor")) {
        c0 = 1, c1 = 0;
    } else {
        c0 = 0, c1 = 1;
    }
    /* the two indices nearest to xo+1 in the row padded by one edge value each side */
    double xp = xo + 1;
    int64_t best[2] = {-1, -1};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < len + 2; i++) {
            if (i == best[0]) continue;
            if (best[k] < 0 || fabs(xp - (double)i) < fabs(xp - (double)best[k])) best[k] = i; /* ties: smaller index */
        }
    int64_t lo = best[0] < best[1] ? best[0] : best[1], hi = best[0] < best[1] ? best[1] : best[0];
    int64_t l0 = lo - 1 < 0 ? 0 : lo - 1 > len - 1 ? len - 1 : lo - 1;
    int64_t h0 = hi - 1 < 0 ? 0 : hi - 1 > len - 1 ? len - 1 : hi - 1;
    return c0 * row[l0] + c1 * row[h0];
}

/* ONNX reference _interpolate_nd_with_x: data of `n` dims, output coordinate x. */
static double rs_interp_nd(const double *data, int n, const int64_t *dims, const int64_t *x, const rs_case *c, int axis0, int r) {
    if (n == 1)
        return rs_interp_1d(data, dims[0], c->scale[axis0], c->out[axis0], x[0], c, c->roi[axis0], c->roi[r + axis0]);
    int64_t inner = 1;
    for (int i = 1; i < n; i++) inner *= dims[i];
    double res[16];
    for (int64_t i = 0; i < dims[0]; i++) res[i] = rs_interp_nd(data + i * inner, n - 1, dims + 1, x + 1, c, axis0 + 1, r);
    return rs_interp_1d(res, dims[0], c->scale[axis0], c->out[axis0], x[0], c, c->roi[axis0], c->roi[r + axis0]);
}

/* Runs Resize on x with attributes from c; scales (f32) or sizes given for `na` axes. */
static kiln_status run_resize(const char *name, const rs_case *c, const kn_tensor *x, int na, const int64_t *axes,
                              const float *scales, const int64_t *sizes, const float *roi, kn_tensor *y) {
    kn_node n;
    kt_node(&n, KN_OP_Resize, name);
    if (c->mode) kt_attr_s(&n, "mode", c->mode);
    if (c->coord) kt_attr_s(&n, "coordinate_transformation_mode", c->coord);
    if (c->nearest) kt_attr_s(&n, "nearest_mode", c->nearest);
    if (c->keep) kt_attr_s(&n, "keep_aspect_ratio_policy", c->keep);
    if (c->extrapolation != 0) kt_attr_f(&n, "extrapolation_value", c->extrapolation);
    if (axes) kt_attr_ints(&n, "axes", na, axes);
    kn_tensor in[4] = {*x, kt_host_f32(roi ? 2 * na : 0, roi), kt_host_f32(scales ? na : 0, scales),
                       kt_host_i64(sizes ? na : 0, sizes)};
    int n_in = sizes ? 4 : 3;
    kiln_status st = kt_run(&n, in, n_in, y, 1);
    for (int i = 1; i < 4; i++) kt_free(&in[i]);
    kt_node_free(&n);
    return st;
}

static void check_f32(const char *what, const kn_tensor *y, int rank, const int64_t *dims, const float *want, double tol) {
    KT_CHECK(kt_dims_are(y, rank, dims), "%s: dims %s", what, kt_dims(y));
    if (!kt_dims_are(y, rank, dims)) return;
    int bad = 0;
    for (int64_t i = 0; i < kn_tensor_numel(y); i++) {
        float g = ((float *)y->data)[i];
        if (fabs(g - want[i]) > tol) {
            if (!bad) fprintf(stderr, "  %s: element %lld is %.7g, expected %.7g\n", what, (long long)i, g, want[i]);
            bad++;
        }
    }
    KT_CHECK(bad == 0, "%s: %d elements differ", what, bad);
}

static void test_resize_hand(void) {
    int64_t d4[4] = {1, 1, 2, 2}, d24[4] = {1, 1, 2, 4};
    kn_tensor x = kt_tensor(KILN_F32, 4, d4), x24 = kt_tensor(KILN_F32, 4, d24), y;
    for (int i = 0; i < 4; i++) ((float *)x.data)[i] = (float)(i + 1);
    for (int i = 0; i < 8; i++) ((float *)x24.data)[i] = (float)(i + 1);
    {
        rs_case c = {.mode = "nearest"};
        float s[4] = {1, 1, 2, 3};
        int64_t e[4] = {1, 1, 4, 6};
        float want[24] = {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4};
        KT_OK(run_resize("rs", &c, &x, 4, NULL, s, NULL, NULL, &y));
        check_f32("upsample nearest", &y, 4, e, want, 0);
        kt_free(&y);
    }
    {
        rs_case c = {.mode = "linear"};
        float s[4] = {1, 1, 2, 2};
        int64_t e[4] = {1, 1, 4, 4};
        float want[16] = {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4};
        KT_OK(run_resize("rs", &c, &x, 4, NULL, s, NULL, NULL, &y));
        check_f32("upsample linear half_pixel", &y, 4, e, want, 1e-6);
        kt_free(&y);
        c.coord = "align_corners";
        float wa[16] = {1, 4 / 3.f, 5 / 3.f, 2, 5 / 3.f, 2, 7 / 3.f, 8 / 3.f, 7 / 3.f, 8 / 3.f, 3, 10 / 3.f, 3, 10 / 3.f, 11 / 3.f, 4};
        KT_OK(run_resize("rs", &c, &x, 4, NULL, s, NULL, NULL, &y));
        check_f32("upsample linear align_corners", &y, 4, e, wa, 1e-6);
        kt_free(&y);
    }
    {
        rs_case c = {.mode = "linear"};
        float s[4] = {1, 1, 0.6f, 0.6f};
        int64_t e[4] = {1, 1, 1, 2};
        float want[2] = {2.6666665f, 4.3333331f};
        KT_OK(run_resize("rs", &c, &x24, 4, NULL, s, NULL, NULL, &y));
        check_f32("downsample linear", &y, 4, e, want, 1e-6);
        kt_free(&y);
        c.coord = "align_corners";
        float wa[2] = {1, 3.142857f};
        KT_OK(run_resize("rs", &c, &x24, 4, NULL, s, NULL, NULL, &y));
        check_f32("downsample linear align_corners", &y, 4, e, wa, 1e-6);
        kt_free(&y);
        c.mode = "nearest";
        c.coord = NULL;
        float wn[2] = {1, 3};
        KT_OK(run_resize("rs", &c, &x24, 4, NULL, s, NULL, NULL, &y));
        check_f32("downsample nearest", &y, 4, e, wn, 0);
        kt_free(&y);
    }
    {
        /* sizes 1x1x3x2 on the 2x2 input, nearest with asymmetric + round_prefer_ceil: rows 0,1,1 */
        rs_case c = {.mode = "nearest", .coord = "asymmetric", .nearest = "round_prefer_ceil"};
        int64_t sz[4] = {1, 1, 3, 2};
        float want[6] = {1, 2, 3, 4, 3, 4};
        KT_OK(run_resize("rs", &c, &x, 4, NULL, NULL, sz, NULL, &y));
        check_f32("sizes nearest asymmetric", &y, 4, sz, want, 0);
        kt_free(&y);
    }
    kt_free(&x);
    kt_free(&x24);
}

static const char *const rs_coords[6] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                         "asymmetric", "tf_crop_and_resize"};
static const char *const rs_nearest[4] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
static const float rs_scales[8] = {0.5f, 0.6f, 0.8f, 1.0f, 1.5f, 1.7f, 2.0f, 3.0f};

static void test_resize_random(void) {
    for (int it = 0; it < 240; it++) {
        int64_t dims[4];
        kt_rand_dims(2, 1, 2, dims);
        kt_rand_dims(2, 1, 5, dims + 2);
        rs_case c = {0};
        c.mode = it % 2 ? "linear" : "nearest";
        c.coord = rs_coords[(it / 2) % 6];
        c.nearest = rs_nearest[kt_rand_int(0, 3)];
        c.extrapolation = it % 3 ? 0.0f : -7.5f;
        kiln_dtype dt = it % 2 && it % 5 == 0 ? KILN_F16 : !(it % 2) && it % 3 == 0 ? KILN_I64 : KILN_F32;
        int with_axes = it % 4 == 1; /* the opset-18 axes attribute over H, W */
        int na = with_axes ? 2 : 4, first = 4 - na;
        int64_t axes[2] = {2, -1};
        float scales[4], roi[8];
        int64_t sizes[4];
        c.use_sizes = it % 7 >= 4;
        if (c.use_sizes && it % 11 == 0) c.keep = it % 2 ? "not_larger" : "not_smaller";
        for (int a = 0; a < 4; a++) {
            c.roi[a] = 0;
            c.roi[4 + a] = 1;
            c.scale[a] = 1;
            c.out[a] = dims[a];
        }
        for (int i = 0; i < na; i++) {
            int a = first + i;
            int resized = a >= 2 || kt_rand_int(0, 3) == 0;
            scales[i] = resized ? rs_scales[kt_rand_int(0, 7)] : 1.0f;
            sizes[i] = resized ? kt_rand_int(1, 8) : dims[a];
            roi[i] = a >= 2 ? kt_uniform(0.0f, 0.4f) : 0;
            roi[na + i] = a >= 2 ? kt_uniform(0.6f, 1.0f) : 1;
            c.roi[a] = roi[i];
            c.roi[4 + a] = roi[na + i];
            if (c.use_sizes) {
                c.out[a] = sizes[i];
                c.scale[a] = (double)sizes[i] / (double)dims[a];
            } else {
                c.scale[a] = scales[i];
                c.out[a] = (int64_t)floor((double)scales[i] * (double)dims[a]);
            }
        }
        if (c.keep) {
            double s = c.scale[first];
            for (int i = 1; i < na; i++) {
                double t = c.scale[first + i];
                s = rs_is(c.keep, "not_larger") ? fmin(s, t) : fmax(s, t);
            }
            for (int i = 0; i < na; i++) {
                c.scale[first + i] = s;
                c.out[first + i] = (int64_t)(s * (double)dims[first + i] + 0.5);
            }
        }
        kn_tensor x = kt_tensor(dt, 4, dims), y;
        kt_randomize(&x);
        int use_roi = rs_is(c.coord, "tf_crop_and_resize");
        KT_OK(run_resize("rs", &c, &x, na, with_axes ? axes : NULL, c.use_sizes ? NULL : scales, c.use_sizes ? sizes : NULL,
                         use_roi ? roi : NULL, &y));
        KT_CHECK(kt_dims_are(&y, 4, c.out), "Resize %s %s: dims %s", c.mode, c.coord, kt_dims(&y));
        if (!kt_dims_are(&y, 4, c.out)) {
            kt_free(&y);
            kt_free(&x);
            continue;
        }
        double xd[4 * 5 * 5];
        int64_t nx = kn_tensor_numel(&x);
        for (int64_t i = 0; i < nx; i++)
            xd[i] = dt == KILN_I64 ? (double)((int64_t *)x.data)[i] : kn_load_f64(x.data, dt, i);
        int bad = 0;
        int64_t oi[4];
        for (int64_t o = 0; o < kn_tensor_numel(&y); o++) {
            kt_unravel(o, 4, c.out, oi);
            double want = rs_interp_nd(xd, 4, dims, oi, &c, 0, 4);
            int ok;
            if (dt == KILN_I64) {
                /* nearest moves elements: recover which one by value, exactly */
                int64_t got = ((int64_t *)y.data)[o];
                ok = (double)got == want;
                if (want == c.extrapolation && use_roi) ok = got == (int64_t)c.extrapolation;
            } else {
                double got = kn_load_f64(y.data, dt, o);
                double tol = dt == KILN_F16 ? 2e-3 * (1 + fabs(want)) : 2e-6 * (1 + fabs(want));
                ok = fabs(got - want) <= tol;
            }
            if (!ok && !bad)
                fprintf(stderr, "  Resize %s %s %s %s in %s out %s (scales %g %g %g %g%s%s): element %lld got %.7g want %.7g\n",
                        c.mode, c.coord, c.nearest, kiln_dtype_name(dt), kt_dims(&x), kt_dims(&y), c.scale[0], c.scale[1],
                        c.scale[2], c.scale[3], c.use_sizes ? ", from sizes" : "", with_axes ? ", axes 2,3" : "", (long long)o,
                        kn_load_f64(y.data, dt, o), want);
            bad += !ok;
        }
        KT_CHECK(bad == 0, "Resize %s %s: %d of %lld elements differ", c.mode, c.coord, bad, (long long)kn_tensor_numel(&y));
        kt_free(&y);
        kt_free(&x);
    }
}

static void test_resize_errors(void) {
    int64_t d[4] = {1, 1, 2, 2};
    kn_tensor x = kt_tensor(KILN_F32, 4, d), y;
    float s4[4] = {1, 1, 2, 2}, s3[3] = {1, 2, 2};
    int64_t sz[4] = {1, 1, 4, 4};
    rs_case c = {.mode = "cubic"};
    KT_FAILS(run_resize("rs_cubic", &c, &x, 4, NULL, s4, NULL, NULL, &y), KILN_ERR_UNSUPPORTED,
             "Resize 'rs_cubic': attribute 'mode' = 'cubic' is not supported");
    c.mode = "linear";
    {
        kn_node n;
        kt_node(&n, KN_OP_Resize, "rs_aa");
        kt_attr_i(&n, "antialias", 1);
        kn_tensor in[3] = {x, kt_host_f32(0, NULL), kt_host_f32(4, s4)};
        KT_FAILS(kt_run(&n, in, 3, &y, 1), KILN_ERR_UNSUPPORTED, "Resize 'rs_aa': attribute 'antialias' = 1 is not supported");
        kt_free(&in[1]);
        kt_free(&in[2]);
        kt_node_free(&n);
    }
    KT_FAILS(run_resize("rs_len", &c, &x, 3, NULL, s3, NULL, NULL, &y), KILN_ERR_SHAPE,
             "Resize 'rs_len': input 2 (scales) has 3 entries, expected 4");
    KT_FAILS(run_resize("rs_none", &c, &x, 4, NULL, NULL, NULL, NULL, &y), KILN_ERR_INVALID_ARGUMENT,
             "Resize 'rs_none': needs input 2 (scales) or input 3 (sizes)");
    {
        kn_node n;
        kt_node(&n, KN_OP_Resize, "rs_both");
        kn_tensor in[4] = {x, kt_host_f32(0, NULL), kt_host_f32(4, s4), kt_host_i64(4, sz)};
        KT_FAILS(kt_run(&n, in, 4, &y, 1), KILN_ERR_INVALID_ARGUMENT, "only one of input 2 (scales) and input 3 (sizes)");
        in[3].dtype = KILN_DTYPE_INVALID;
        in[2].host = NULL; /* scales computed at run time: not supported */
        KT_FAILS(kt_run(&n, in, 4, &y, 1), KILN_ERR_UNSUPPORTED, "Resize 'rs_both': input 2 (scales) must be known before the run");
        for (int i = 1; i < 4; i++) kt_free(&in[i]);
        kt_node_free(&n);
    }
    c.coord = "bogus";
    KT_FAILS(run_resize("rs_coord", &c, &x, 4, NULL, s4, NULL, NULL, &y), KILN_ERR_INVALID_ARGUMENT,
             "attribute 'coordinate_transformation_mode' = 'bogus'");
    c.coord = "tf_crop_and_resize";
    KT_FAILS(run_resize("rs_roi", &c, &x, 4, NULL, s4, NULL, NULL, &y), KILN_ERR_INVALID_ARGUMENT,
             "Resize 'rs_roi': coordinate_transformation_mode 'tf_crop_and_resize' needs input 1 (roi)");
    kn_tensor xi = kt_tensor(KILN_I64, 4, d);
    c.coord = NULL;
    KT_FAILS(run_resize("rs_int", &c, &xi, 4, NULL, s4, NULL, NULL, &y), KILN_ERR_DTYPE,
             "Resize 'rs_int': mode 'linear' needs a float input 0, got i64");
    kt_free(&xi);
    kt_free(&x);
}

int main(void) {
    kt_seed(37);
    test_resize_hand();
    test_resize_random();
    test_resize_errors();
    return kt_finish();
}
