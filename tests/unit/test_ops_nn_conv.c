/* Conv and ConvTranspose: shape inference and the CPU kernels against direct float64 loops
 * written here, over strides, pads, dilations, groups, depthwise, 1x1, auto_pad, 1-D/3-D,
 * kiln's fused residual and activation, f32/f16/bf16/f64; and the error paths. */
#include "nn_testutil.h"

typedef struct conv_cfg {
    const char *label;
    kiln_dtype dt;
    int nsp;
    int64_t N, C, M, G;
    int64_t in[3], k[3], s[3], d[3], pads[6]; /* pads: begins then ends */
    const char *auto_pad;                     /* NULL: explicit pads */
    int bias, residual, act;
    float alpha;
    /* ConvTranspose only */
    int64_t opad[3];
    int64_t oshape[3]; /* oshape[0] > 0: pass output_shape */
} conv_cfg;

static double ref_act(int act, double x, double alpha) {
    switch (act) {
    case KN_ACT_NONE: return x;
    case KN_ACT_RELU: return x > 0 ? x : 0;
    case KN_ACT_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case KN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case KN_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: return NAN;
    }
}

/* Splits a linear index over dims[0..n) into coords (row major). */
static void unravel(int64_t i, int n, const int64_t *dims, int64_t *c) {
    for (int d = n - 1; d >= 0; d--) {
        c[d] = i % dims[d];
        i /= dims[d];
    }
}

static int64_t prod(int n, const int64_t *d) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= d[i];
    return p;
}

/* Output size and begin pads of a Conv, from the ONNX spec's formulas. */
static void conv_geom(const conv_cfg *c, int64_t *out, int64_t *pb) {
    for (int i = 0; i < c->nsp; i++) {
        int64_t ek = (c->k[i] - 1) * c->d[i] + 1;
        if (c->auto_pad && !strncmp(c->auto_pad, "SAME", 4)) {
            out[i] = (c->in[i] + c->s[i] - 1) / c->s[i];
            int64_t total = (out[i] - 1) * c->s[i] + ek - c->in[i];
            if (total < 0) total = 0;
            pb[i] = !strcmp(c->auto_pad, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
        } else if (c->auto_pad && !strcmp(c->auto_pad, "VALID")) {
            pb[i] = 0;
            out[i] = (c->in[i] - ek) / c->s[i] + 1;
        } else {
            pb[i] = c->pads[i];
            out[i] = (c->in[i] + c->pads[i] + c->pads[i + c->nsp] - ek) / c->s[i] + 1;
        }
    }
}

static void ref_conv(const conv_cfg *c, const int64_t *out, const int64_t *pb, const double *x, const double *w,
                     const double *b, const double *r, double *y) {
    int ns = c->nsp;
    int64_t isp = prod(ns, c->in), osp = prod(ns, out), K = prod(ns, c->k), Cg = c->C / c->G, Mg = c->M / c->G;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < c->M; m++)
            for (int64_t o = 0; o < osp; o++) {
                int64_t oc[3], kc[3], g = m / Mg;
                unravel(o, ns, out, oc);
                double acc = b ? b[m] : 0;
                for (int64_t ci = 0; ci < Cg; ci++)
                    for (int64_t kk = 0; kk < K; kk++) {
                        unravel(kk, ns, c->k, kc);
                        int64_t lin = 0, ok = 1;
                        for (int i = 0; i < ns; i++) {
                            int64_t z = oc[i] * c->s[i] - pb[i] + kc[i] * c->d[i];
                            ok &= z >= 0 && z < c->in[i];
                            lin = lin * c->in[i] + z;
                        }
                        if (ok) acc += x[(n * c->C + g * Cg + ci) * isp + lin] * w[(m * Cg + ci) * K + kk];
                    }
                int64_t yi = (n * c->M + m) * osp + o;
                if (r) acc += r[yi];
                y[yi] = ref_act(c->act, acc, c->alpha);
            }
}

/* Builds the node's attributes from a config (storage in the caller's arrays). */
static int conv_attrs(const conv_cfg *c, kiln_attr *at, int64_t *pads_buf, int transpose) {
    int na = 0;
    at[na++] = kiln_attr_ints("strides", c->nsp, c->s);
    at[na++] = kiln_attr_ints("dilations", c->nsp, c->d);
    at[na++] = kiln_attr_int("group", c->G);
    if (c->auto_pad) {
        at[na++] = kiln_attr_string("auto_pad", c->auto_pad);
    } else {
        memcpy(pads_buf, c->pads, sizeof c->pads);
        at[na++] = kiln_attr_ints("pads", 2 * c->nsp, pads_buf);
    }
    if (c->act) {
        at[na++] = kiln_attr_int("kiln.act", c->act);
        if (c->act == KN_ACT_LEAKY_RELU) at[na++] = kiln_attr_float("kiln.act_alpha", c->alpha);
    }
    if (transpose) {
        at[na++] = kiln_attr_ints("output_padding", c->nsp, c->opad);
        if (c->oshape[0] > 0) at[na++] = kiln_attr_ints("output_shape", c->nsp, c->oshape);
    }
    return na;
}

static void run_conv_case(const conv_cfg *c) {
    int ns = c->nsp;
    int64_t xd[5] = {c->N, c->C}, wd[5] = {c->M, c->C / c->G}, bd[1] = {c->M}, out[3], pb[3];
    for (int i = 0; i < ns; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
    }
    conv_geom(c, out, pb);
    int64_t yd[5] = {c->N, c->M};
    for (int i = 0; i < ns; i++) yd[2 + i] = out[i];
    kt_t in[4] = {kt_rand(c->dt, 2 + ns, xd, -1, 1), kt_rand(c->dt, 2 + ns, wd, -1, 1),
                  c->bias ? kt_rand(c->dt, 1, bd, -1, 1) : kt_absent(),
                  c->residual ? kt_rand(c->dt, 2 + ns, yd, -1, 1) : kt_absent()};
    kiln_attr at[12];
    int64_t pads[6];
    int na = conv_attrs(c, at, pads, 0);
    kt_t y;
    kiln_status st = kt_run_op(KN_OP_Conv, c->label, c->residual ? 4 : c->bias ? 3 : 2, in, 1, &y, na, at);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y, 2 + ns, yd), "%s: output dims", c->label);
        KT_CHECK(y.t.dtype == c->dt, "%s: output dtype", c->label);
        int64_t n = prod(2 + ns, yd);
        double *ref = calloc((size_t)n, sizeof *ref);
        ref_conv(c, out, pb, in[0].v, in[1].v, c->bias ? in[2].v : NULL, c->residual ? in[3].v : NULL, ref);
        double r = kt_ratio(y.v, ref, n, kt_rtol(c->dt), kt_atol(c->dt));
        KT_CHECK(r <= 1, "%s: off by %.3g tolerances", c->label, r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 4; i++) kt_free(&in[i]);
}

/* ---- ConvTranspose -------------------------------------------------------------------------------- */

static void convt_geom(const conv_cfg *c, int64_t *out, int64_t *pb) {
    for (int i = 0; i < c->nsp; i++) {
        int64_t natural = c->s[i] * (c->in[i] - 1) + c->opad[i] + (c->k[i] - 1) * c->d[i] + 1;
        if (c->oshape[0] > 0 || (c->auto_pad && !strncmp(c->auto_pad, "SAME", 4))) {
            out[i] = c->oshape[0] > 0 ? c->oshape[i] : c->in[i] * c->s[i];
            int64_t total = natural - out[i], half = (int64_t)floor(total / 2.0);
            pb[i] = c->auto_pad && !strcmp(c->auto_pad, "SAME_UPPER") ? half : total - half;
        } else {
            int64_t b = c->auto_pad ? 0 : c->pads[i], e = c->auto_pad ? 0 : c->pads[i + c->nsp];
            pb[i] = b;
            out[i] = natural - b - e;
        }
    }
}

static void ref_convt(const conv_cfg *c, const int64_t *out, const int64_t *pb, const double *x, const double *w,
                      const double *b, double *y) {
    int ns = c->nsp;
    int64_t isp = prod(ns, c->in), osp = prod(ns, out), K = prod(ns, c->k), Cg = c->C / c->G, Mg = c->M / c->G;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < c->M; m++)
            for (int64_t o = 0; o < osp; o++) y[(n * c->M + m) * osp + o] = b ? b[m] : 0;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ci = 0; ci < c->C; ci++)
            for (int64_t i = 0; i < isp; i++) {
                int64_t ic[3], kc[3], g = ci / Cg;
                unravel(i, ns, c->in, ic);
                double xv = x[(n * c->C + ci) * isp + i];
                for (int64_t ml = 0; ml < Mg; ml++)
                    for (int64_t kk = 0; kk < K; kk++) {
                        unravel(kk, ns, c->k, kc);
                        int64_t lin = 0, ok = 1;
                        for (int d = 0; d < ns; d++) {
                            int64_t z = ic[d] * c->s[d] - pb[d] + kc[d] * c->d[d];
                            ok &= z >= 0 && z < out[d];
                            lin = lin * out[d] + z;
                        }
                        if (ok) y[(n * c->M + g * Mg + ml) * osp + lin] += xv * w[(ci * Mg + ml) * K + kk];
                    }
            }
    for (int64_t i = 0; i < c->N * c->M * osp; i++) y[i] = ref_act(c->act, y[i], c->alpha);
}

static void run_convt_case(const conv_cfg *c) {
    int ns = c->nsp;
    int64_t xd[5] = {c->N, c->C}, wd[5] = {c->C, c->M / c->G}, bd[1] = {c->M}, out[3], pb[3];
    for (int i = 0; i < ns; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
    }
    convt_geom(c, out, pb);
    int64_t yd[5] = {c->N, c->M};
    for (int i = 0; i < ns; i++) yd[2 + i] = out[i];
    kt_t in[3] = {kt_rand(c->dt, 2 + ns, xd, -1, 1), kt_rand(c->dt, 2 + ns, wd, -1, 1),
                  c->bias ? kt_rand(c->dt, 1, bd, -1, 1) : kt_absent()};
    kiln_attr at[12];
    int64_t pads[6];
    int na = conv_attrs(c, at, pads, 1);
    kt_t y;
    /* two runs of one prepared kernel: the recorder replays run, so it must not accumulate */
    kiln_status st = kt_run_op_n(KN_OP_ConvTranspose, c->label, c->bias ? 3 : 2, in, 1, &y, na, at, 2);
    KT_CHECK(st == KILN_OK, "%s: %s", c->label, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(kt_dims_are(&y, 2 + ns, yd), "%s: output dims %lldx%lld", c->label, (long long)y.t.dims[2],
                 (long long)y.t.dims[3]);
        int64_t n = prod(2 + ns, yd);
        double *ref = calloc((size_t)n, sizeof *ref);
        ref_convt(c, out, pb, in[0].v, in[1].v, c->bias ? in[2].v : NULL, ref);
        double r = kt_ratio(y.v, ref, n, kt_rtol(c->dt), kt_atol(c->dt));
        KT_CHECK(r <= 1, "%s: off by %.3g tolerances", c->label, r);
        free(ref);
    }
    kt_free(&y);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
}

/* ---- cases ------------------------------------------------------------------------------------------ */

#define S2(a, b) {1, a, b}
static const conv_cfg conv_cases[] = {
    {"conv3x3_pad1", KILN_F32, 2, 2, 3, 4, 1, {9, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_stride2_asym_pads", KILN_F32, 2, 2, 3, 5, 1, {10, 9}, {3, 2}, {2, 2}, {1, 1}, {0, 1, 1, 2}, NULL, 1},
    {"conv_dilation2", KILN_F32, 2, 1, 4, 3, 1, {11, 12}, {3, 3}, {1, 2}, {2, 2}, {2, 1, 2, 1}, NULL, 0},
    {"conv_group2", KILN_F32, 2, 2, 4, 6, 2, {8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_depthwise_s2", KILN_F32, 2, 2, 8, 8, 8, {9, 10}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_depthwise_mult2", KILN_F32, 2, 1, 4, 8, 4, {7, 7}, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, NULL, 1},
    {"conv_depthwise_dil_asym", KILN_F32, 2, 2, 6, 6, 6, {9, 8}, {3, 3}, {1, 2}, {2, 1}, {2, 1, 1, 0}, NULL, 1, 1,
     KN_ACT_RELU},
    {"conv_depthwise_1d", KILN_F32, 1, 2, 5, 10, 5, {19}, {4}, {3}, {1}, {2, 2}, NULL, 1},
    {"conv_depthwise_3d", KILN_F32, 3, 1, 3, 3, 3, {4, 5, 6}, {2, 3, 3}, {1, 2, 1}, {1, 1, 2}, {1, 1, 0, 0, 1, 2}, NULL,
     0},
    {"conv_tiled_im2col", KILN_F32, 2, 1, 64, 4, 1, {100, 97}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_tiled_im2col_s2", KILN_F32, 2, 1, 64, 4, 2, {300, 150}, {3, 3}, {2, 1}, {1, 1}, {1, 0, 0, 1}, NULL, 1},
    {"conv_1x1", KILN_F32, 2, 2, 16, 8, 1, {6, 5}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, 1},
    {"conv_1x1_stride2", KILN_F32, 2, 2, 6, 4, 1, {7, 6}, {1, 1}, {2, 2}, {1, 1}, {0}, NULL, 0},
    {"conv_1x1_pad", KILN_F32, 2, 1, 3, 2, 1, {4, 4}, {1, 1}, {1, 1}, {1, 1}, {1, 0, 0, 1}, NULL, 0},
    {"conv_same_upper", KILN_F32, 2, 1, 3, 4, 1, {9, 8}, {4, 3}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", 1},
    {"conv_same_lower", KILN_F32, 2, 1, 3, 4, 1, {9, 8}, {4, 3}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", 1},
    {"conv_valid", KILN_F32, 2, 1, 3, 4, 1, {9, 8}, {3, 2}, {2, 3}, {1, 1}, {0}, "VALID", 0},
    {"conv_kernel_eq_input", KILN_F32, 2, 3, 2, 5, 1, {4, 3}, {4, 3}, {1, 1}, {1, 1}, {0}, NULL, 1},
    {"conv1d", KILN_F32, 1, 2, 3, 4, 1, {17}, {5}, {2}, {2}, {3, 1}, NULL, 1},
    {"conv3d", KILN_F32, 3, 1, 2, 3, 1, {5, 6, 4}, {3, 2, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 1, 1, 1}, NULL, 1},
    {"conv_fused_residual_relu", KILN_F32, 2, 2, 4, 4, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1,
     KN_ACT_RELU},
    {"conv_fused_leaky", KILN_F32, 2, 1, 3, 4, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0,
     KN_ACT_LEAKY_RELU, 0.2f},
    {"conv_fused_residual_nobias", KILN_F32, 2, 1, 3, 3, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 1,
     KN_ACT_SIGMOID},
    {"conv_f16", KILN_F16, 2, 2, 3, 4, 1, {9, 7}, {3, 3}, {2, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_f16_group", KILN_F16, 2, 1, 6, 4, 2, {7, 7}, {3, 3}, {1, 1}, {1, 2}, {1, 2, 1, 2}, NULL, 1},
    {"conv_f16_fused_residual_relu", KILN_F16, 2, 2, 4, 4, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1,
     1, KN_ACT_RELU},
    {"conv_f16_1x1", KILN_F16, 2, 1, 8, 4, 1, {5, 5}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, 1},
    {"conv_f16_depthwise", KILN_F16, 2, 2, 8, 8, 8, {9, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1,
     KN_ACT_RELU},
    {"conv_bf16", KILN_BF16, 2, 1, 3, 4, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"conv_f64_residual", KILN_F64, 2, 2, 4, 6, 2, {7, 6}, {3, 2}, {2, 1}, {1, 2}, {1, 1, 0, 1}, NULL, 1, 1,
     KN_ACT_RELU},
    {"conv_f64_3d", KILN_F64, 3, 1, 2, 2, 1, {4, 4, 4}, {2, 2, 2}, {2, 1, 1}, {1, 1, 1}, {0, 1, 0, 0, 1, 0}, NULL, 1},
};

static const conv_cfg convt_cases[] = {
    {"convt_basic", KILN_F32, 2, 2, 3, 4, 1, {5, 4}, {3, 3}, {1, 1}, {1, 1}, {0}, NULL, 1},
    {"convt_stride2_pads", KILN_F32, 2, 2, 3, 2, 1, {4, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 0, 1, 2}, NULL, 1},
    {"convt_output_padding", KILN_F32, 2, 1, 2, 3, 1, {4, 4}, {3, 3}, {3, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0, 0, 0,
     {2, 1}},
    {"convt_dilations", KILN_F32, 2, 1, 2, 2, 1, {4, 3}, {2, 3}, {1, 2}, {2, 2}, {0}, NULL, 0},
    {"convt_group2", KILN_F32, 2, 2, 4, 6, 2, {4, 4}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1},
    {"convt_output_shape", KILN_F32, 2, 1, 3, 2, 1, {3, 3}, {3, 3}, {3, 2}, {1, 1}, {0}, NULL, 1, 0, 0, 0, {0},
     {10, 8}},
    {"convt_same_upper", KILN_F32, 2, 1, 2, 3, 1, {3, 4}, {3, 3}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", 1},
    {"convt_same_lower", KILN_F32, 2, 1, 2, 3, 1, {3, 4}, {3, 3}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", 1},
    {"convt_valid_act", KILN_F32, 2, 1, 2, 3, 1, {3, 4}, {2, 2}, {2, 2}, {1, 1}, {0}, "VALID", 1, 0, KN_ACT_RELU},
    {"convt1d", KILN_F32, 1, 2, 3, 2, 1, {7}, {4}, {3}, {1}, {1, 2}, NULL, 1},
    {"convt3d", KILN_F32, 3, 1, 2, 3, 1, {3, 4, 3}, {2, 3, 2}, {2, 1, 2}, {1, 1, 1}, {0, 1, 0, 0, 0, 1}, NULL, 1},
    {"convt_f16", KILN_F16, 2, 2, 3, 4, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0, 0, 0, {1, 1}},
    {"convt_f16_group", KILN_F16, 2, 1, 4, 4, 2, {4, 3}, {3, 2}, {2, 1}, {1, 1}, {0}, NULL, 1},
    {"convt_f64", KILN_F64, 2, 2, 3, 4, 1, {4, 5}, {3, 3}, {2, 2}, {2, 1}, {1, 0, 0, 1}, NULL, 1},
};

/* ---- error paths ------------------------------------------------------------------------------------ */

static kiln_status conv_shapes(const char *name, int64_t *xd, int xr, int64_t *wd, int wr, int n_attr,
                               const kiln_attr *at) {
    kt_t in[2] = {kt_rand(KILN_F32, xr, xd, -1, 1), kt_rand(KILN_F32, wr, wd, -1, 1)}, y;
    kiln_status st = kt_run_op(KN_OP_Conv, name, 2, in, 1, &y, n_attr, at);
    kt_free(&y);
    kt_free(&in[0]);
    kt_free(&in[1]);
    return st;
}

static void test_conv_errors(void) {
    int64_t x[4] = {1, 4, 8, 8}, w[4] = {2, 3, 3, 3}, w3[3] = {2, 4, 3}, wbig[4] = {2, 4, 9, 3};
    KT_FAILS(conv_shapes("conv1", x, 4, w, 4, 0, NULL), KILN_ERR_SHAPE,
             "Conv 'conv1': input 'W' has 3 channels per group, X has 4 / group 1");
    KT_FAILS(conv_shapes("conv_rank", x, 4, w3, 3, 0, NULL), KILN_ERR_SHAPE, "Conv 'conv_rank': input 'W' has dims 2x4x3");
    KT_FAILS(conv_shapes("conv_big", x, 4, wbig, 4, 0, NULL), KILN_ERR_SHAPE,
             "Conv 'conv_big': kernel of size 9 (dilated: 9) is larger than the padded input");
    int64_t g3 = 3;
    kiln_attr grp = kiln_attr_int("group", g3);
    int64_t w4[4] = {3, 1, 3, 3};
    KT_FAILS(conv_shapes("conv_group", x, 4, w4, 4, 1, &grp), KILN_ERR_SHAPE, "not divisible by group 3");
    int64_t ks[2] = {3, 2};
    kiln_attr kshape = kiln_attr_ints("kernel_shape", 2, ks);
    int64_t w44[4] = {2, 4, 3, 3};
    KT_FAILS(conv_shapes("conv_ks", x, 4, w44, 4, 1, &kshape), KILN_ERR_SHAPE, "Conv 'conv_ks': attribute 'kernel_shape' is 2");
    kiln_attr ap = kiln_attr_string("auto_pad", "SAME");
    KT_FAILS(conv_shapes("conv_ap", x, 4, w44, 4, 1, &ap), KILN_ERR_INVALID_ARGUMENT, "Conv 'conv_ap': attribute 'auto_pad' is 'SAME'");
    int64_t badpads[4] = {1, -1, 1, 1};
    kiln_attr pads = kiln_attr_ints("pads", 4, badpads);
    KT_FAILS(conv_shapes("conv_pads", x, 4, w44, 4, 1, &pads), KILN_ERR_INVALID_ARGUMENT, "attribute 'pads' has -1");
    int64_t pads3[3] = {1, 1, 1};
    pads = kiln_attr_ints("pads", 3, pads3);
    KT_FAILS(conv_shapes("conv_pads3", x, 4, w44, 4, 1, &pads), KILN_ERR_INVALID_ARGUMENT, "attribute 'pads' has 3 values");
    int64_t st3[3] = {1, 1, 1};
    kiln_attr strides = kiln_attr_ints("strides", 3, st3);
    KT_FAILS(conv_shapes("conv_strides", x, 4, w44, 4, 1, &strides), KILN_ERR_SHAPE,
             "Conv 'conv_strides': attribute 'strides' has 3 values, expected 2");
    kiln_attr g0 = kiln_attr_int("group", 0);
    KT_FAILS(conv_shapes("conv_g0", x, 4, w44, 4, 1, &g0), KILN_ERR_INVALID_ARGUMENT, "attribute 'group' is 0");
    kiln_attr badact = kiln_attr_int("kiln.act", 99);
    KT_FAILS(conv_shapes("conv_act", x, 4, w44, 4, 1, &badact), KILN_ERR_INVALID_ARGUMENT, "'kiln.act' is 99");
    int64_t x2[2] = {1, 4};
    KT_FAILS(conv_shapes("conv_x2", x2, 2, w44, 4, 0, NULL), KILN_ERR_SHAPE, "Conv 'conv_x2': input 'X' has dims 1x4");

    /* bias and residual of the wrong size */
    int64_t bd[1] = {3}, rd[4] = {1, 2, 8, 7};
    kt_t in[4] = {kt_rand(KILN_F32, 4, x, -1, 1), kt_rand(KILN_F32, 4, w44, -1, 1), kt_rand(KILN_F32, 1, bd, -1, 1),
                  kt_absent()},
         y;
    int64_t p1[4] = {1, 1, 1, 1};
    pads = kiln_attr_ints("pads", 4, p1);
    KT_FAILS(kt_run_op(KN_OP_Conv, "conv_b", 3, in, 1, &y, 1, &pads), KILN_ERR_SHAPE,
             "Conv 'conv_b': input 'B' has dims 3; expected [2]");
    kt_free(&in[2]);
    in[2] = kt_absent();
    in[3] = kt_rand(KILN_F32, 4, rd, -1, 1);
    KT_FAILS(kt_run_op(KN_OP_Conv, "conv_res", 4, in, 1, &y, 1, &pads), KILN_ERR_SHAPE,
             "Conv 'conv_res': input 3 (the fused residual) has dims 1x2x8x7, the output has 1x2x8x8");
    kt_free(&in[3]);
    in[3] = kt_absent();
    kt_free(&in[1]);
    in[1] = kt_rand(KILN_F16, 4, w44, -1, 1);
    KT_FAILS(kt_run_op(KN_OP_Conv, "conv_dt", 2, in, 1, &y, 0, NULL), KILN_ERR_DTYPE, "Conv 'conv_dt': input 'W' is f16, X is f32");
    for (int i = 0; i < 4; i++) kt_free(&in[i]);

    /* ConvTranspose */
    int64_t tw[4] = {3, 2, 3, 3};
    in[0] = kt_rand(KILN_F32, 4, x, -1, 1);
    in[1] = kt_rand(KILN_F32, 4, tw, -1, 1);
    KT_FAILS(kt_run_op(KN_OP_ConvTranspose, "up1", 2, in, 1, &y, 0, NULL), KILN_ERR_SHAPE,
             "ConvTranspose 'up1': input 'W' has 3 input channels (dim 0), X has 4");
    kt_free(&in[1]);
    int64_t tw2[4] = {4, 2, 3, 3}, op2[2] = {2, 0}, s2[2] = {2, 2};
    in[1] = kt_rand(KILN_F32, 4, tw2, -1, 1);
    kiln_attr tat[2] = {kiln_attr_ints("output_padding", 2, op2), kiln_attr_ints("strides", 2, s2)};
    KT_FAILS(kt_run_op(KN_OP_ConvTranspose, "up2", 2, in, 1, &y, 2, tat), KILN_ERR_INVALID_ARGUMENT,
             "ConvTranspose 'up2': attribute 'output_padding' is 2 in spatial dim 0");
    int64_t bigpads[4] = {5, 5, 5, 5};
    tat[0] = kiln_attr_ints("pads", 4, bigpads);
    KT_FAILS(kt_run_op(KN_OP_ConvTranspose, "up3", 2, in, 1, &y, 1, tat), KILN_ERR_SHAPE,
             "ConvTranspose 'up3': pads 5 + 5 leave no output");
    int64_t os3[3] = {1, 2, 3};
    tat[0] = kiln_attr_ints("output_shape", 3, os3);
    KT_FAILS(kt_run_op(KN_OP_ConvTranspose, "up4", 2, in, 1, &y, 1, tat), KILN_ERR_SHAPE,
             "attribute 'output_shape' has 3 values, expected 2");
    kt_free(&in[0]);
    kt_free(&in[1]);
}

/* A prepared Conv kernel run twice on new data (as the recorder replays it) gives fresh results. */
static void test_conv_replay(void) {
    conv_cfg c = {"conv_replay", KILN_F16, 2, 2, 3, 4, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1,
                  KN_ACT_RELU};
    int64_t xd[4] = {2, 3, 6, 6}, wd[4] = {4, 3, 3, 3}, bd[1] = {4}, yd[4] = {2, 4, 6, 6}, out[2] = {6, 6}, pb[2] = {1, 1};
    kt_t in[4] = {kt_rand(KILN_F16, 4, xd, -1, 1), kt_rand(KILN_F16, 4, wd, -1, 1), kt_rand(KILN_F16, 1, bd, -1, 1),
                  kt_rand(KILN_F16, 4, yd, -1, 1)};
    kt_t y = kt_make(KILN_F16, 4, yd);
    kn_graph *g = kn_graph_new();
    int v[5], ni;
    for (int i = 0; i < 5; i++) kn_graph_new_value(g, NULL, &v[i]);
    kn_graph_new_node(g, KN_OP_Conv, "conv_replay", 4, v, 1, v + 4, &ni);
    int64_t p[4] = {1, 1, 1, 1};
    kn_node_set_attr_ints(&g->nodes[ni], "pads", 4, p);
    kn_node_set_attr_int(&g->nodes[ni], "kiln.act", KN_ACT_RELU);
    kn_tensor tin[4] = {in[0].t, in[1].t, in[2].t, in[3].t};
    const kn_kernel *k = kn_cpu_kernel(KN_OP_Conv);
    kn_kernel_args a = {.node = &g->nodes[ni], .in = tin, .n_in = 4, .out = &y.t, .n_out = 1};
    void *state = NULL;
    KT_OK(k->prepare(&a, &state));
    a.state = state;
    double *ref = calloc(2 * 4 * 36, sizeof *ref);
    for (int round = 0; round < 3; round++) {
        if (round) { /* new input values in the same buffers */
            kt_t nx = kt_rand(KILN_F16, 4, xd, -2, 2);
            memcpy(in[0].t.data, nx.t.data, kn_tensor_bytes(&nx.t));
            memcpy(in[0].v, nx.v, (size_t)kt_numel(&nx) * sizeof(double));
            kt_free(&nx);
        }
        KT_OK(k->run(&a));
        kt_sync(&y);
        ref_conv(&c, out, pb, in[0].v, in[1].v, in[2].v, in[3].v, ref);
        double r = kt_ratio(y.v, ref, 2 * 4 * 36, kt_rtol(KILN_F16), kt_atol(KILN_F16));
        KT_CHECK(r <= 1, "replay round %d: off by %.3g tolerances", round, r);
    }
    k->release(state);
    free(ref);
    kn_graph_destroy(g);
    kt_free(&y);
    for (int i = 0; i < 4; i++) kt_free(&in[i]);
}

int main(void) {
    kt_seed(1234);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) run_conv_case(&conv_cases[i]);
    for (size_t i = 0; i < sizeof convt_cases / sizeof convt_cases[0]; i++) run_convt_case(&convt_cases[i]);
    test_conv_errors();
    test_conv_replay();
    return kt_finish();
}
