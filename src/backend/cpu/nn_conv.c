/* CPU Conv and ConvTranspose: im2col + sgemm (Conv) and sgemm + col2im (ConvTranspose) per
 * image and group, with the fused epilogue (bias, residual, activation). f16/bf16 go through f32
 * scratch; f64 uses direct loops in double. All scratch is sized and allocated in prepare. */
#include "nn_kernels.h"

/* One convolution planned for one shape. Spatial dims are normalized to three (D, H, W); a
 * missing leading dim has size 1, kernel 1, stride 1, dilation 1 and no padding. For
 * ConvTranspose `in` is X's spatial size and `out` Y's, as for Conv. */
/* Floats of im2col scratch before the output rows are tiled (16 MiB). */
#define KN_CONV_COLS_CAP ((int64_t)4 << 20)

typedef struct kn_conv_plan {
    int64_t N, C, M, G, Cg, Mg;
    int64_t in[3], out[3], k[3], s[3], d[3], p[3];
    int64_t isp, osp, K; /* spatial sizes of X and Y; kernel taps */
    int direct;          /* 1x1 kernel, stride 1, no padding: X is its own column matrix */
    int depthwise;       /* one input channel per group: a direct loop beats 1-row sgemms */
    int64_t tile_rows;   /* im2col works on this many output rows (od, oh) at a time */
    kn_nn_act act;
    float *cols, *xf, *wf, *yf; /* carved from mem */
    void *mem;
} kn_conv_plan;

static void kn_conv_release(void *state) {
    kn_conv_plan *p = state;
    if (!p) return;
    kn_aligned_free(p->mem);
    kn_free(p);
}

static kiln_status kn_conv_prepare_common(const kn_kernel_args *a, int transpose, void **state) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    *state = NULL;
    if (!kn_dtype_is_float(x->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "the CPU kernel takes float inputs, got %s", kiln_dtype_name(x->dtype));
    int nsp = x->rank - 2;
    kn_window win;
    if (transpose) KN_TRY(kn_nn_window_transpose(n, nsp, x->dims + 2, w->dims + 2, &win));
    else KN_TRY(kn_nn_window(n, nsp, x->dims + 2, w->dims + 2, 0, &win));
    kn_conv_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a convolution");
    p->G = kn_attr_i(n, "group", 1);
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = y->dims[1];
    p->Cg = p->C / p->G;
    p->Mg = p->M / p->G;
    p->act = kn_nn_act_of(n);
    p->isp = p->osp = p->K = 1;
    int pad_end_zero = 1;
    for (int i = 0; i < 3; i++) {
        int j = i - (3 - nsp);
        if (j < 0) {
            p->in[i] = p->out[i] = p->k[i] = p->s[i] = p->d[i] = 1;
            p->p[i] = 0;
        } else {
            p->in[i] = win.in[j];
            p->out[i] = win.out[j];
            p->k[i] = win.k[j];
            p->s[i] = win.stride[j];
            p->d[i] = win.dil[j];
            p->p[i] = win.pad_begin[j];
            pad_end_zero &= win.pad_end[j] == 0;
            if (win.out[j] != y->dims[2 + j]) {
                kn_conv_release(p);
                return kn_node_error(n, KILN_ERR_INTERNAL, "output dim %d is %lld, the window gives %lld", 2 + j,
                                     (long long)y->dims[2 + j], (long long)win.out[j]);
            }
        }
        p->isp *= p->in[i];
        p->osp *= p->out[i];
        p->K *= p->k[i];
    }
    p->direct = !transpose && p->K == 1 && pad_end_zero;
    for (int i = 0; i < 3; i++) p->direct &= p->s[i] == 1 && p->p[i] == 0;
    p->depthwise = !transpose && !p->direct && p->Cg == 1 && p->G > 1;
    /* bound the column matrix to about KN_CONV_COLS_CAP floats by tiling the output rows */
    int64_t rows = p->out[0] * p->out[1], per_row = p->Cg * p->K * p->out[2];
    p->tile_rows = per_row > 0 ? KN_CONV_COLS_CAP / per_row : rows;
    if (p->tile_rows < 1) p->tile_rows = 1;
    if (p->tile_rows > rows) p->tile_rows = rows;
    kiln_status st = transpose ? kn_nn_blas_fits(n, p->Mg * p->K, p->isp, p->Cg)
                               : kn_nn_blas_fits(n, p->Mg, p->osp, p->Cg * p->K);
    if (st != KILN_OK) {
        kn_conv_release(p);
        return st;
    }
    if (x->dtype != KILN_F64) {
        kn_nn_carver cv = {0};
        int via = kn_nn_via_f32(x->dtype);
        for (int pass = 0; pass < 2; pass++) {
            p->cols = p->direct || p->depthwise ? NULL
                      : kn_nn_carve(&cv, transpose ? p->Mg * p->K * p->isp : p->Cg * p->K * p->tile_rows * p->out[2]);
            p->xf = via ? kn_nn_carve(&cv, p->C * p->isp) : NULL;
            p->wf = via ? kn_nn_carve(&cv, kn_tensor_numel(w)) : NULL;
            p->yf = via ? kn_nn_carve(&cv, p->M * p->osp) : NULL;
            if (pass == 0) {
                p->mem = kn_aligned_alloc(cv.used ? cv.used : 64);
                if (!p->mem) {
                    kn_conv_release(p);
                    return kn_node_error(n, KILN_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of scratch", cv.used);
                }
                cv = (kn_nn_carver){.base = p->mem};
            }
        }
    }
    *state = p;
    return KILN_OK;
}

static kiln_status kn_conv_prepare(const kn_kernel_args *a, void **state) { return kn_conv_prepare_common(a, 0, state); }
static kiln_status kn_conv_transpose_prepare(const kn_kernel_args *a, void **state) {
    return kn_conv_prepare_common(a, 1, state);
}

static int64_t kn_floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* The positions i in [0, n) with 0 <= i * s + off < limit, as [*lo, *hi). */
static void kn_valid_range(int64_t n, int64_t limit, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t l = -kn_floor_div(off, s); /* ceil(-off / s) */
    int64_t h = kn_floor_div(limit - 1 - off, s) + 1;
    if (l < 0) l = 0;
    if (h > n) h = n;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* cols[(c, kd, kh, kw), (r - r0, ow)] = x[c, od*s - p + kd*d, ...] (0 in the padding) for the
 * output rows r = (od, oh) in [r0, r1). */
static void kn_im2col(const kn_conv_plan *p, const float *x, float *cols, int64_t r0, int64_t r1) {
    const int64_t ID = p->in[0], IH = p->in[1], IW = p->in[2], OH = p->out[1], OW = p->out[2];
    float *dst = cols;
    for (int64_t c = 0; c < p->Cg; c++) {
        const float *xc = x + c * p->isp;
        for (int64_t kd = 0; kd < p->k[0]; kd++)
            for (int64_t kh = 0; kh < p->k[1]; kh++)
                for (int64_t kw = 0; kw < p->k[2]; kw++) {
                    int64_t offw = kw * p->d[2] - p->p[2], lo, hi;
                    kn_valid_range(OW, IW, p->s[2], offw, &lo, &hi);
                    for (int64_t r = r0; r < r1; r++, dst += OW) {
                        int64_t od = r / OH, oh = r % OH;
                        int64_t zd = od * p->s[0] - p->p[0] + kd * p->d[0];
                        int64_t zh = oh * p->s[1] - p->p[1] + kh * p->d[1];
                        if (zd < 0 || zd >= ID || zh < 0 || zh >= IH) {
                            memset(dst, 0, (size_t)OW * sizeof *dst);
                            continue;
                        }
                        const float *row = xc + (zd * IH + zh) * IW;
                        int64_t ow = 0;
                        for (; ow < lo; ow++) dst[ow] = 0;
                        if (p->s[2] == 1) {
                            memcpy(dst + lo, row + lo + offw, (size_t)(hi - lo) * sizeof *dst);
                            ow = hi;
                        } else {
                            for (; ow < hi; ow++) dst[ow] = row[ow * p->s[2] + offw];
                        }
                        for (; ow < OW; ow++) dst[ow] = 0;
                    }
                }
    }
}

/* One input channel per group (depthwise, with any channel multiplier): y[m] for the Mg output
 * channels of group g, accumulated tap by tap over whole output rows. */
static void kn_conv_depthwise(const kn_conv_plan *p, const float *xg, const float *wg, float *yg) {
    const int64_t ID = p->in[0], IH = p->in[1], IW = p->in[2], OD = p->out[0], OH = p->out[1], OW = p->out[2];
    for (int64_t m = 0; m < p->Mg; m++) {
        float *ym = yg + m * p->osp;
        const float *wm = wg + m * p->K;
        memset(ym, 0, (size_t)p->osp * sizeof *ym);
        for (int64_t kd = 0; kd < p->k[0]; kd++)
            for (int64_t kh = 0; kh < p->k[1]; kh++)
                for (int64_t kw = 0; kw < p->k[2]; kw++) {
                    float wv = wm[(kd * p->k[1] + kh) * p->k[2] + kw];
                    int64_t offw = kw * p->d[2] - p->p[2], lo, hi, sw = p->s[2];
                    kn_valid_range(OW, IW, sw, offw, &lo, &hi);
                    for (int64_t od = 0; od < OD; od++) {
                        int64_t zd = od * p->s[0] - p->p[0] + kd * p->d[0];
                        if (zd < 0 || zd >= ID) continue;
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t zh = oh * p->s[1] - p->p[1] + kh * p->d[1];
                            if (zh < 0 || zh >= IH) continue;
                            const float *row = xg + (zd * IH + zh) * IW + offw;
                            float *yr = ym + (od * OH + oh) * OW;
                            if (sw == 1)
                                for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * row[ow];
                            else
                                for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * row[ow * sw];
                        }
                    }
                }
    }
}

/* y[m, (od, oh, ow)] += cols[(m, kd, kh, kw), (id, ih, iw)] where o = i*s - p + k*d. */
static void kn_col2im(const kn_conv_plan *p, const float *cols, float *y) {
    const int64_t ID = p->in[0], IH = p->in[1], IW = p->in[2], OD = p->out[0], OH = p->out[1], OW = p->out[2];
    const float *src = cols;
    for (int64_t m = 0; m < p->Mg; m++) {
        float *ym = y + m * p->osp;
        for (int64_t kd = 0; kd < p->k[0]; kd++)
            for (int64_t kh = 0; kh < p->k[1]; kh++)
                for (int64_t kw = 0; kw < p->k[2]; kw++, src += p->isp) {
                    int64_t offw = kw * p->d[2] - p->p[2], lo, hi;
                    kn_valid_range(IW, OW, p->s[2], offw, &lo, &hi);
                    for (int64_t id = 0; id < ID; id++) {
                        int64_t zd = id * p->s[0] - p->p[0] + kd * p->d[0];
                        if (zd < 0 || zd >= OD) continue;
                        for (int64_t ih = 0; ih < IH; ih++) {
                            int64_t zh = ih * p->s[1] - p->p[1] + kh * p->d[1];
                            if (zh < 0 || zh >= OH) continue;
                            float *row = ym + (zd * OH + zh) * OW;
                            const float *s = src + (id * IH + ih) * IW;
                            for (int64_t iw = lo; iw < hi; iw++) row[iw * p->s[2] + offw] += s[iw];
                        }
                    }
                }
    }
}

/* y = act(y + bias[m] + residual) for image n; stores into the output when y is f32 scratch. */
static void kn_conv_epilogue(const kn_conv_plan *p, float *yn, int64_t n, const kn_tensor *b,
                             const kn_tensor *r, const kn_tensor *y) {
    int via = kn_nn_via_f32(y->dtype), act = p->act.act;
    if (!via && !b && !r && act == KN_ACT_NONE) return;
    for (int64_t m = 0; m < p->M; m++) {
        float bm = b ? kn_cpu_ld(b->data, b->dtype, m) : 0.0f;
        float *row = yn + m * p->osp;
        int64_t o = (n * p->M + m) * p->osp;
        for (int64_t s = 0; s < p->osp; s++) {
            float v = row[s] + bm;
            if (r) v += kn_cpu_ld(r->data, r->dtype, o + s);
            if (act != KN_ACT_NONE) v = kn_cpu_act(act, v, p->act.alpha, p->act.beta);
            if (via) kn_cpu_st(y->data, y->dtype, o + s, v);
            else row[s] = v;
        }
    }
}

static const kn_tensor *kn_opt_in(const kn_kernel_args *a, int i) {
    return a->n_in > i && kn_tensor_present(&a->in[i]) ? &a->in[i] : NULL;
}

/* f64: the direct definition, accumulated in double. */
static void kn_conv_f64(const kn_conv_plan *p, const kn_tensor *x, const kn_tensor *w, const kn_tensor *b,
                        const kn_tensor *r, const kn_tensor *y) {
    const double *X = x->data, *W = w->data;
    double *Y = y->data;
    const int64_t *I = p->in, *O = p->out, *k = p->k;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t m = 0; m < p->M; m++) {
            int64_t g = m / p->Mg;
            double bm = b ? kn_nn_ld(b->data, b->dtype, m) : 0.0;
            for (int64_t od = 0; od < O[0]; od++)
                for (int64_t oh = 0; oh < O[1]; oh++)
                    for (int64_t ow = 0; ow < O[2]; ow++) {
                        double acc = bm;
                        for (int64_t c = 0; c < p->Cg; c++) {
                            const double *xc = X + (n * p->C + g * p->Cg + c) * p->isp;
                            const double *wc = W + (m * p->Cg + c) * p->K;
                            for (int64_t kd = 0; kd < k[0]; kd++) {
                                int64_t zd = od * p->s[0] - p->p[0] + kd * p->d[0];
                                if (zd < 0 || zd >= I[0]) continue;
                                for (int64_t kh = 0; kh < k[1]; kh++) {
                                    int64_t zh = oh * p->s[1] - p->p[1] + kh * p->d[1];
                                    if (zh < 0 || zh >= I[1]) continue;
                                    for (int64_t kw = 0; kw < k[2]; kw++) {
                                        int64_t zw = ow * p->s[2] - p->p[2] + kw * p->d[2];
                                        if (zw < 0 || zw >= I[2]) continue;
                                        acc += xc[(zd * I[1] + zh) * I[2] + zw] * wc[(kd * k[1] + kh) * k[2] + kw];
                                    }
                                }
                            }
                        }
                        int64_t o = (n * p->M + m) * p->osp + (od * O[1] + oh) * O[2] + ow;
                        if (r) acc += kn_nn_ld(r->data, r->dtype, o);
                        Y[o] = kn_nn_act_d(&p->act, acc);
                    }
        }
}

static kiln_status kn_cpu_conv(const kn_kernel_args *a) {
    const kn_conv_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the Conv kernel ran without its prepare step");
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    const kn_tensor *b = kn_opt_in(a, 2), *r = kn_opt_in(a, 3);
    if (x->dtype == KILN_F64) {
        kn_conv_f64(p, x, w, b, r, y);
        return KILN_OK;
    }
    int via = kn_nn_via_f32(x->dtype);
    size_t esize = kiln_dtype_size(x->dtype);
    const float *wm = w->data;
    if (via) {
        kn_convert(w->data, w->dtype, p->wf, KILN_F32, kn_tensor_numel(w));
        wm = p->wf;
    }
    int64_t CK = p->Cg * p->K;
    for (int64_t n = 0; n < p->N; n++) {
        const float *xn = (const float *)x->data + n * p->C * p->isp;
        if (via) {
            kn_convert((const char *)x->data + (size_t)(n * p->C * p->isp) * esize, x->dtype, p->xf, KILN_F32,
                       p->C * p->isp);
            xn = p->xf;
        }
        float *yn = via ? p->yf : (float *)y->data + n * p->M * p->osp;
        for (int64_t g = 0; g < p->G; g++) {
            const float *xg = xn + g * p->Cg * p->isp, *wg = wm + g * p->Mg * CK;
            float *yg = yn + g * p->Mg * p->osp;
            if (p->depthwise) {
                kn_conv_depthwise(p, xg, wg, yg);
            } else if (p->direct) {
                kn_nn_sgemm(0, 0, p->Mg, p->osp, CK, 1.0f, wg, CK, xg, p->osp, 0.0f, yg, p->osp);
            } else {
                int64_t rows = p->out[0] * p->out[1], OW = p->out[2];
                for (int64_t r0 = 0; r0 < rows; r0 += p->tile_rows) {
                    int64_t r1 = r0 + p->tile_rows < rows ? r0 + p->tile_rows : rows, ncol = (r1 - r0) * OW;
                    kn_im2col(p, xg, p->cols, r0, r1);
                    kn_nn_sgemm(0, 0, p->Mg, ncol, CK, 1.0f, wg, CK, p->cols, ncol, 0.0f, yg + r0 * OW, p->osp);
                }
            }
        }
        kn_conv_epilogue(p, yn, n, b, r, y);
    }
    return KILN_OK;
}

/* f64 ConvTranspose: scatter every input value through the kernel, in double. */
static void kn_conv_transpose_f64(const kn_conv_plan *p, const kn_tensor *x, const kn_tensor *w,
                                  const kn_tensor *b, const kn_tensor *y) {
    const double *X = x->data, *W = w->data;
    double *Y = y->data;
    const int64_t *I = p->in, *O = p->out, *k = p->k;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t m = 0; m < p->M; m++) {
            double bm = b ? kn_nn_ld(b->data, b->dtype, m) : 0.0;
            for (int64_t s = 0; s < p->osp; s++) Y[(n * p->M + m) * p->osp + s] = bm;
        }
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t c = 0; c < p->C; c++) {
            int64_t g = c / p->Cg;
            const double *xc = X + (n * p->C + c) * p->isp;
            for (int64_t ml = 0; ml < p->Mg; ml++) {
                double *ym = Y + (n * p->M + g * p->Mg + ml) * p->osp;
                const double *wk = W + (c * p->Mg + ml) * p->K;
                for (int64_t id = 0; id < I[0]; id++)
                    for (int64_t ih = 0; ih < I[1]; ih++)
                        for (int64_t iw = 0; iw < I[2]; iw++) {
                            double xv = xc[(id * I[1] + ih) * I[2] + iw];
                            for (int64_t kd = 0; kd < k[0]; kd++) {
                                int64_t zd = id * p->s[0] - p->p[0] + kd * p->d[0];
                                if (zd < 0 || zd >= O[0]) continue;
                                for (int64_t kh = 0; kh < k[1]; kh++) {
                                    int64_t zh = ih * p->s[1] - p->p[1] + kh * p->d[1];
                                    if (zh < 0 || zh >= O[1]) continue;
                                    for (int64_t kw = 0; kw < k[2]; kw++) {
                                        int64_t zw = iw * p->s[2] - p->p[2] + kw * p->d[2];
                                        if (zw < 0 || zw >= O[2]) continue;
                                        ym[(zd * O[1] + zh) * O[2] + zw] += xv * wk[(kd * k[1] + kh) * k[2] + kw];
                                    }
                                }
                            }
                        }
            }
        }
    if (p->act.act != KN_ACT_NONE)
        for (int64_t i = 0; i < p->N * p->M * p->osp; i++) Y[i] = kn_nn_act_d(&p->act, Y[i]);
}

static kiln_status kn_cpu_conv_transpose(const kn_kernel_args *a) {
    const kn_conv_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the ConvTranspose kernel ran without its prepare step");
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0], *b = kn_opt_in(a, 2);
    if (x->dtype == KILN_F64) {
        kn_conv_transpose_f64(p, x, w, b, y);
        return KILN_OK;
    }
    int via = kn_nn_via_f32(x->dtype);
    size_t esize = kiln_dtype_size(x->dtype);
    const float *wm = w->data;
    if (via) {
        kn_convert(w->data, w->dtype, p->wf, KILN_F32, kn_tensor_numel(w));
        wm = p->wf;
    }
    int64_t MK = p->Mg * p->K;
    for (int64_t n = 0; n < p->N; n++) {
        const float *xn = (const float *)x->data + n * p->C * p->isp;
        if (via) {
            kn_convert((const char *)x->data + (size_t)(n * p->C * p->isp) * esize, x->dtype, p->xf, KILN_F32,
                       p->C * p->isp);
            xn = p->xf;
        }
        float *yn = via ? p->yf : (float *)y->data + n * p->M * p->osp;
        for (int64_t m = 0; m < p->M; m++) {
            float bm = b ? kn_cpu_ld(b->data, b->dtype, m) : 0.0f;
            for (int64_t s = 0; s < p->osp; s++) yn[m * p->osp + s] = bm;
        }
        for (int64_t g = 0; g < p->G; g++) {
            kn_nn_sgemm(1, 0, MK, p->isp, p->Cg, 1.0f, wm + g * p->Cg * MK, MK, xn + g * p->Cg * p->isp, p->isp,
                        0.0f, p->cols, p->isp);
            kn_col2im(p, p->cols, yn + g * p->Mg * p->osp);
        }
        kn_conv_epilogue(p, yn, n, NULL, NULL, y);
    }
    return KILN_OK;
}

void kn_cpu_register_nn_conv(kn_kernel *t) {
    t[KN_OP_Conv] = (kn_kernel){.name = "cpu.conv_im2col_sgemm", .run = kn_cpu_conv, .prepare = kn_conv_prepare,
                                .release = kn_conv_release};
    t[KN_OP_ConvTranspose] = (kn_kernel){.name = "cpu.conv_transpose_sgemm_col2im", .run = kn_cpu_conv_transpose,
                                         .prepare = kn_conv_transpose_prepare, .release = kn_conv_release};
}
