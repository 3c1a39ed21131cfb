/* The CUDA backend through its vtable, without the compiler: sessions, constants, copies, the
 * cuDNN convolutions (fused and not, grouped, strided, 1-D, fp16, transposed), the cuBLASLt
 * matrix products (epilogues, batches, broadcasting, tf32), a few of kiln's own kernels, and the
 * recorder (capture, replay, update, a capture that breaks and leaves the stream usable).
 * References are naive float64 loops written here. Prints "SKIP: no CUDA device" and passes on a
 * machine without a GPU. Tolerances: fp32 1e-4 relative (+1e-4 absolute), tf32 and fp16 1e-2. */
#include "testlib.h"

#include "backend/backend.h"
#include "build/module.h"
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

static const kn_backend *be;
static void *ctx;
static struct kiln_module mod;

/* ---- a one-node case ------------------------------------------------------------------------------ */

typedef struct kc_case {
    kn_graph *g;
    int node;
    int n_in, n_out;
    kn_tensor in[6], out[3];
    int64_t *host_ints[6];
} kc_case;

static kn_node *kc_node(kc_case *c) { return &c->g->nodes[c->node]; }

static void kc_begin(kc_case *c, const char *op, const char *name, int n_in, int n_out) {
    memset(c, 0, sizeof *c);
    c->g = kn_graph_new();
    c->n_in = n_in;
    c->n_out = n_out;
    int in[6], out[3];
    char nm[32];
    for (int i = 0; i < n_in; i++) {
        snprintf(nm, sizeof nm, "in%d", i);
        kn_graph_new_value(c->g, nm, &in[i]);
    }
    for (int i = 0; i < n_out; i++) {
        snprintf(nm, sizeof nm, "out%d", i);
        kn_graph_new_value(c->g, nm, &out[i]);
    }
    kn_graph_new_node(c->g, kn_op_from_name(op), name, n_in, in, n_out, out, &c->node);
}

static void kc_absent(kc_case *c, int i) {
    c->in[i].dtype = KILN_DTYPE_INVALID;
    kc_node(c)->in[i] = -1;
}

/* Device tensor from float data (converted to dt). */
static void kc_in(kc_case *c, int i, kiln_dtype dt, int rank, const int64_t *dims, const float *data) {
    kn_tensor *t = &c->in[i];
    t->dtype = dt;
    t->rank = rank;
    memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    c->g->values[kc_node(c)->in[i]].dtype = dt;
    c->g->values[kc_node(c)->in[i]].rank = rank;
    size_t bytes = kn_tensor_bytes(t);
    KT_OK(be->alloc(ctx, bytes, &t->data));
    void *h = malloc(bytes ? bytes : 1);
    kn_convert(data, KILN_F32, h, dt, kn_tensor_numel(t));
    KT_OK(be->copy_in(ctx, t->data, h, bytes, KILN_DEVICE_CPU));
    free(h);
}

/* A host-known integer input (shape params), also on the device. */
static void kc_in_ints(kc_case *c, int i, int n, const int64_t *v) {
    kn_tensor *t = &c->in[i];
    t->dtype = KILN_I64;
    t->rank = 1;
    t->dims[0] = n;
    c->g->values[kc_node(c)->in[i]].dtype = KILN_I64;
    c->host_ints[i] = malloc((size_t)(n ? n : 1) * 8);
    memcpy(c->host_ints[i], v, (size_t)n * 8);
    t->host = c->host_ints[i];
    KT_OK(be->alloc(ctx, (size_t)n * 8, &t->data));
    KT_OK(be->copy_in(ctx, t->data, v, (size_t)n * 8, KILN_DEVICE_CPU));
}

static void kc_out(kc_case *c, int i, kiln_dtype dt, int rank, const int64_t *dims) {
    kn_tensor *t = &c->out[i];
    t->dtype = dt;
    t->rank = rank;
    memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    c->g->values[kc_node(c)->out[i]].dtype = dt;
    size_t bytes = kn_tensor_bytes(t);
    KT_OK(be->alloc(ctx, bytes, &t->data));
    void *h = malloc(bytes ? bytes : 1);
    memset(h, 0xff, bytes); /* NaN poison: every element must be written */
    KT_OK(be->copy_in(ctx, t->data, h, bytes, KILN_DEVICE_CPU));
    free(h);
}

static kn_kernel_args kc_args(kc_case *c, int tactic) {
    kn_kernel_args a = {.node = kc_node(c), .in = c->in, .n_in = c->n_in, .out = c->out, .n_out = c->n_out,
                        .ctx = ctx, .tactic = tactic};
    return a;
}

/* Prepares (when the kernel wants it), launches and synchronizes. */
static kiln_status kc_run_tactic(kc_case *c, int tactic) {
    const kn_node *n = kc_node(c);
    if (!be->supports_op(c->g, n)) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "not supported by the CUDA backend");
    const kn_kernel *k = be->engine_kernel(c->g, n);
    if (!k) return KILN_ERR_UNSUPPORTED;
    kn_kernel_args a = kc_args(c, tactic);
    void *state = NULL;
    if (k->prepare) KN_TRY(k->prepare(&a, &state));
    a.state = state;
    kiln_status st = be->launch(ctx, k, &a);
    if (st == KILN_OK) st = be->synchronize(ctx);
    if (k->release && state) k->release(state);
    return st;
}
static kiln_status kc_run(kc_case *c) { return kc_run_tactic(c, 0); }

/* kc_run_tactic with a tactic key (NULL: none); writes the prepared state's own key to got. */
static kiln_status kc_run_keyed(kc_case *c, int tactic, const char *key, char *got, size_t cap) {
    const kn_kernel *k = be->engine_kernel(c->g, kc_node(c));
    kn_kernel_args a = kc_args(c, tactic);
    a.tactic_key = key;
    void *state = NULL;
    got[0] = 0;
    if (k->prepare) KN_TRY(k->prepare(&a, &state));
    a.state = state;
    if (k->tactic_key && state && k->tactic_key(state, got, cap) <= 0) got[0] = 0;
    kiln_status st = be->launch(ctx, k, &a);
    if (st == KILN_OK) st = be->synchronize(ctx);
    if (k->release && state) k->release(state);
    return st;
}

static int kc_tactics(kc_case *c) {
    const kn_kernel *k = be->engine_kernel(c->g, kc_node(c));
    if (!k || !k->num_tactics) return 1;
    kn_kernel_args a = kc_args(c, 0);
    return k->num_tactics(&a);
}

static float *kc_fetch(kc_case *c, int i) {
    kn_tensor *t = &c->out[i];
    size_t bytes = kn_tensor_bytes(t);
    void *h = malloc(bytes ? bytes : 1);
    float *f = malloc((size_t)(kn_tensor_numel(t) ? kn_tensor_numel(t) : 1) * sizeof *f);
    KT_OK(be->copy_out(ctx, h, KILN_DEVICE_CPU, t->data, bytes));
    kn_convert(h, t->dtype, f, KILN_F32, kn_tensor_numel(t));
    free(h);
    return f;
}

/* Poisons the outputs, records the step into a CUDA graph, replays it and returns output 0. */
static float *kc_replay(kc_case *c, int tactic) {
    const kn_kernel *k = be->engine_kernel(c->g, kc_node(c));
    kn_kernel_args a = kc_args(c, tactic);
    void *state = NULL, *graph = NULL;
    if (k->prepare) KT_OK(k->prepare(&a, &state));
    a.state = state;
    KT_OK(be->launch(ctx, k, &a)); /* warm-up, as the runtime does before a capture */
    for (int i = 0; i < c->n_out; i++) {
        size_t bytes = kn_tensor_bytes(&c->out[i]);
        void *h = malloc(bytes ? bytes : 1);
        memset(h, 0xff, bytes);
        KT_OK(be->copy_in(ctx, c->out[i].data, h, bytes, KILN_DEVICE_CPU));
        free(h);
    }
    KT_OK(be->record_begin(ctx));
    KT_OK(be->launch(ctx, k, &a));
    KT_OK(be->record_end(ctx, &graph));
    if (graph) {
        KT_OK(be->graph_launch(ctx, graph));
        KT_OK(be->synchronize(ctx));
        be->graph_free(ctx, graph);
    }
    if (k->release && state) k->release(state);
    return kc_fetch(c, 0);
}

static void kc_end(kc_case *c) {
    for (int i = 0; i < c->n_in; i++) {
        if (c->in[i].data) be->free(ctx, c->in[i].data);
        free(c->host_ints[i]);
    }
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i].data) be->free(ctx, c->out[i].data);
    kn_graph_destroy(c->g);
}

static float *rnd(int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    kt_fill_uniform(x, n, -1.0f, 1.0f);
    return x;
}

/* Rounds data through a storage type, so that the reference sees what the device sees. */
static void round_to(float *x, int64_t n, kiln_dtype dt) {
    if (dt == KILN_F32) return;
    uint16_t *h = malloc((size_t)n * 2);
    kn_convert(x, KILN_F32, h, dt, n);
    kn_convert(h, dt, x, KILN_F32, n);
    free(h);
}

static double act_ref(int act, double x, double al, double bt) {
    switch (act) {
    case KN_ACT_RELU: return x > 0 ? x : 0;
    case KN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case KN_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KN_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case KN_ACT_SILU: return x / (1 + exp(-x));
    case KN_ACT_HARDSWISH: { double t = x + 3; t = t < 0 ? 0 : t > 6 ? 6 : t; return x * t / 6; }
    case KN_ACT_LEAKY_RELU: return x >= 0 ? x : al * x;
    case KN_ACT_CLIP: return x < al ? al : x > bt ? bt : x;
    case KN_ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    default: return x;
    }
}

static void check(const char *what, const float *got, const double *ref, int64_t n, double tol) {
    double r = kt_max_tol_ratio(got, ref, n, tol, tol);
    KT_CHECK(r <= 1.0, "%s: error ratio %.3g (tolerance %.0e)", what, r, tol);
    printf("  %-44s max err/tol %.3f\n", what, r);
}

/* ---- convolution ------------------------------------------------------------------------------ */

typedef struct conv_cfg {
    const char *name;
    kiln_dtype dt;
    int nsp; /* 1 or 2 */
    int64_t n, c, h, w, k, kh, kw, group, stride, pad, dil;
    int bias, res, act;
    int transpose;
    int64_t out_pad;
    int nhwc; /* kiln.layout = 1: X, Y and the residual NHWC in memory, W as KRSC (2-D only) */
} conv_cfg;

/* [n, c, hw] -> [n, hw, c] (NCHW data to NHWC, or KCRS weights to KRSC with hw = R*S) */
static float *to_nhwc(const float *a, int64_t n, int64_t c, int64_t hw) {
    float *o = malloc((size_t)(n * c * hw) * sizeof *o);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            for (int64_t k = 0; k < hw; k++) o[(i * hw + k) * c + j] = a[(i * c + j) * hw + k];
    return o;
}

static void conv_case(const conv_cfg *f) {
    int64_t kh = f->nsp == 1 ? 1 : f->kh, h = f->nsp == 1 ? 1 : f->h;
    int64_t dk_h = (kh - 1) * f->dil + 1, dk_w = (f->kw - 1) * f->dil + 1;
    int64_t ph = f->nsp == 1 ? 0 : f->pad;
    int64_t oh, ow;
    if (!f->transpose) {
        oh = (h + 2 * ph - dk_h) / f->stride + 1;
        ow = (f->w + 2 * f->pad - dk_w) / f->stride + 1;
    } else {
        oh = f->nsp == 1 ? 1 : f->stride * (h - 1) + f->out_pad + dk_h - 2 * ph;
        ow = f->stride * (f->w - 1) + f->out_pad + dk_w - 2 * f->pad;
    }
    int64_t cg = f->c / f->group, kg = f->k / f->group;
    /* W: conv [K, C/g, kh, kw]; transpose [C, K/g, kh, kw] */
    int64_t wn = f->transpose ? f->c * kg * kh * f->kw : f->k * cg * kh * f->kw;
    int64_t xn = f->n * f->c * h * f->w, yn = f->n * f->k * oh * ow;
    float *x = rnd(xn), *w = rnd(wn), *b = rnd(f->k), *r = rnd(yn);
    round_to(x, xn, f->dt); round_to(w, wn, f->dt); round_to(b, f->k, f->dt); round_to(r, yn, f->dt);
    double *ref = calloc((size_t)yn, sizeof *ref);
    for (int64_t n = 0; n < f->n; n++)
        for (int64_t gi = 0; gi < f->group; gi++)
            for (int64_t kk = 0; kk < kg; kk++)
                for (int64_t cc = 0; cc < cg; cc++)
                    for (int64_t i = 0; i < kh; i++)
                        for (int64_t j = 0; j < f->kw; j++) {
                            int64_t k = gi * kg + kk, c = gi * cg + cc;
                            if (!f->transpose) {
                                double wv = w[((k * cg + cc) * kh + i) * f->kw + j];
                                for (int64_t p = 0; p < oh; p++)
                                    for (int64_t q = 0; q < ow; q++) {
                                        int64_t ih = p * f->stride - ph + i * f->dil, iw = q * f->stride - f->pad + j * f->dil;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= f->w) continue;
                                        ref[((n * f->k + k) * oh + p) * ow + q] += wv * x[((n * f->c + c) * h + ih) * f->w + iw];
                                    }
                            } else {
                                double wv = w[((c * kg + kk) * kh + i) * f->kw + j];
                                for (int64_t p = 0; p < h; p++)
                                    for (int64_t q = 0; q < f->w; q++) {
                                        int64_t yh = p * f->stride - ph + i * f->dil, yw = q * f->stride - f->pad + j * f->dil;
                                        if (yh < 0 || yh >= oh || yw < 0 || yw >= ow) continue;
                                        ref[((n * f->k + k) * oh + yh) * ow + yw] += wv * x[((n * f->c + c) * h + p) * f->w + q];
                                    }
                            }
                        }
    for (int64_t i = 0; i < yn; i++) {
        int64_t k = (i / (oh * ow)) % f->k;
        double v = ref[i] + (f->bias ? b[k] : 0) + (f->res ? r[i] : 0);
        ref[i] = f->act == KN_ACT_CLIP ? act_ref(f->act, v, -0.3, 0.4) : act_ref(f->act, v, 0.1, 0);
    }
    kc_case c;
    kc_begin(&c, f->transpose ? "ConvTranspose" : "Conv", f->name, f->res ? 4 : 3, 1);
    int r4 = f->nsp + 2;
    int64_t xd[4] = {f->n, f->c, h, f->w}, wd[4] = {f->transpose ? f->c : f->k, f->transpose ? kg : cg, kh, f->kw},
            yd[4] = {f->n, f->k, oh, ow};
    if (f->nsp == 1) { xd[2] = f->w; wd[2] = f->kw; yd[2] = ow; }
    if (f->nhwc) { /* the same numbers in NHWC memory; the reference follows */
        float *t;
        t = to_nhwc(x, f->n, f->c, h * f->w); free(x); x = t;
        t = to_nhwc(w, f->k, cg, kh * f->kw); free(w); w = t;
        t = to_nhwc(r, f->n, f->k, oh * ow); free(r); r = t;
        double *rh = malloc((size_t)yn * sizeof *rh);
        for (int64_t n = 0; n < f->n; n++)
            for (int64_t k = 0; k < f->k; k++)
                for (int64_t q = 0; q < oh * ow; q++) rh[(n * oh * ow + q) * f->k + k] = ref[(n * f->k + k) * oh * ow + q];
        free(ref);
        ref = rh;
    }
    kc_in(&c, 0, f->dt, r4, xd, x);
    kc_in(&c, 1, f->dt, r4, wd, w);
    int64_t bd[1] = {f->k};
    if (f->bias) kc_in(&c, 2, f->dt, 1, bd, b);
    else kc_absent(&c, 2);
    if (f->res) kc_in(&c, 3, f->dt, r4, yd, r);
    kc_out(&c, 0, f->dt, r4, yd);
    kn_node *nd = kc_node(&c);
    if (f->nhwc) kn_node_set_attr_int(nd, "kiln.layout", 1);
    int64_t st[2] = {f->stride, f->stride}, dl[2] = {f->dil, f->dil}, pd[4] = {ph, f->pad, ph, f->pad};
    int64_t pd1[2] = {f->pad, f->pad}, op[2] = {f->out_pad, f->out_pad};
    int64_t ks[2] = {kh, f->kw};
    kn_node_set_attr_ints(nd, "strides", f->nsp, f->nsp == 1 ? st + 1 : st);
    kn_node_set_attr_ints(nd, "dilations", f->nsp, dl);
    kn_node_set_attr_ints(nd, "pads", 2 * f->nsp, f->nsp == 1 ? pd1 : pd);
    kn_node_set_attr_ints(nd, "kernel_shape", f->nsp, f->nsp == 1 ? ks + 1 : ks);
    kn_node_set_attr_int(nd, "group", f->group);
    if (f->transpose && f->out_pad) kn_node_set_attr_ints(nd, "output_padding", f->nsp, op);
    if (f->act) {
        kn_node_set_attr_int(nd, "kiln.act", f->act);
        if (f->act == KN_ACT_LEAKY_RELU) kn_node_set_attr_float(nd, "kiln.act_alpha", 0.1f);
        if (f->act == KN_ACT_CLIP) { /* bounds inside the outputs' range, so both clip */
            kn_node_set_attr_float(nd, "kiln.act_alpha", -0.3f);
            kn_node_set_attr_float(nd, "kiln.act_beta", 0.4f);
        }
    }
    int nt = kc_tactics(&c);
    KT_CHECK(nt >= 1, "%s: %d tactics", f->name, nt);
    double tol = f->dt == KILN_F32 ? (mod.precision == KILN_PRECISION_TF32 ? 1e-2 : 1e-4) : 1e-2;
    /* the first few tactics must all be right; in strict fp32 every one, since there the list
     * holds cuDNN's FFT and Winograd engines too (kn_dnn_global_cfgs), each rounding its own way */
    const int strict = f->dt == KILN_F32 && mod.precision == KILN_PRECISION_FP32;
    for (int t = 0; t < nt && (t < 3 || strict); t++) {
        KT_OK(kc_run_tactic(&c, t));
        float *y = kc_fetch(&c, 0);
        char what[96];
        snprintf(what, sizeof what, "%s tactic %d/%d", f->name, t, nt);
        check(what, y, ref, yn, tol);
        free(y);
    }
    float *yg = kc_replay(&c, nt - 1);
    char what[96];
    snprintf(what, sizeof what, "%s graph replay, tactic %d", f->name, nt - 1);
    check(what, yg, ref, yn, tol);
    free(yg);
    /* tactic keys: the engine config tactic 1 resolved to builds again from its key alone (with
     * another tactic index given), and a key that does not build falls back to the index */
    int tk = nt > 1 ? 1 : 0;
    char key[KN_TACTIC_KEY_MAX], again[KN_TACTIC_KEY_MAX];
    KT_OK(kc_run_keyed(&c, tk, NULL, key, sizeof key));
    if (key[0]) {
        KT_CHECK(kn_tactic_key_valid(key), "%s: tactic %d's key '%s' is valid", f->name, tk, key);
        KT_OK(kc_run_keyed(&c, 0, key, again, sizeof again));
        KT_CHECK(!strcmp(key, again), "%s: key %s built again (got '%s')", f->name, key, again);
        float *yk = kc_fetch(&c, 0);
        snprintf(what, sizeof what, "%s from key %.60s", f->name, key);
        check(what, yk, ref, yn, tol);
        free(yk);
    }
    KT_OK(kc_run_keyed(&c, tk, "cudnn1:f0:p0:r0:e987654", again, sizeof again));
    float *yb = kc_fetch(&c, 0);
    snprintf(what, sizeof what, "%s with a key that does not build", f->name);
    check(what, yb, ref, yn, tol);
    free(yb);
    kc_end(&c);
    free(x); free(w); free(b); free(r); free(ref);
}

/* ---- matrix products ------------------------------------------------------------------------------- */

static void gemm_case(const char *name, kiln_dtype dt, int64_t M, int64_t N, int64_t K, int ta, int tb, int crank,
                      float alpha, float beta, int act) {
    float *A = rnd(M * K), *B = rnd(K * N), *C = rnd(M * N);
    round_to(A, M * K, dt); round_to(B, K * N, dt); round_to(C, M * N, dt);
    double *ref = malloc((size_t)(M * N) * sizeof *ref);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
            double cv = crank == 2 ? C[i * N + j] : crank == 1 ? C[j] : 0;
            ref[i * N + j] = act_ref(act, alpha * s + beta * cv, 0, 0);
        }
    kc_case c;
    kc_begin(&c, "Gemm", name, crank ? 3 : 2, 1);
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, cd2[2] = {M, N}, cd1[1] = {N};
    kc_in(&c, 0, dt, 2, ad, A);
    kc_in(&c, 1, dt, 2, bd, B);
    if (crank == 2) kc_in(&c, 2, dt, 2, cd2, C);
    if (crank == 1) kc_in(&c, 2, dt, 1, cd1, C);
    kc_out(&c, 0, dt, 2, cd2);
    kn_node *nd = kc_node(&c);
    kn_node_set_attr_int(nd, "transA", ta);
    kn_node_set_attr_int(nd, "transB", tb);
    kn_node_set_attr_float(nd, "alpha", alpha);
    kn_node_set_attr_float(nd, "beta", beta);
    if (act) kn_node_set_attr_int(nd, "kiln.act", act);
    int nt = kc_tactics(&c);
    KT_CHECK(nt >= 1, "%s: %d tactics", name, nt);
    double tol = dt == KILN_F32 ? (mod.precision == KILN_PRECISION_TF32 ? 1e-2 : 1e-4) : 1e-2;
    for (int t = 0; t < nt && t < 3; t++) {
        KT_OK(kc_run_tactic(&c, t));
        float *y = kc_fetch(&c, 0);
        char what[96];
        snprintf(what, sizeof what, "%s tactic %d/%d", name, t, nt);
        check(what, y, ref, M * N, tol);
        free(y);
    }
    float *yg = kc_replay(&c, nt - 1);
    char what[96];
    snprintf(what, sizeof what, "%s graph replay, tactic %d", name, nt - 1);
    check(what, yg, ref, M * N, tol);
    free(yg);
    kc_end(&c);
    free(A); free(B); free(C); free(ref);
}

/* The float64 reference of a batched MatMul: batch dims ab / bb of rank nb broadcast to ob (no
 * items), A [.., M, K] ([.., K, M] with ta), B [.., K, N] ([.., N, K] with tb), alpha * A B + bias[N]. */
static double *matmul_ref(int nb, const int64_t *ab, const int64_t *bb, const int64_t *ob, int64_t no, int64_t M,
                          int64_t K, int64_t N, const float *A, const float *B, const float *bias, int ta, int tb,
                          float alpha) {
    double *ref = malloc((size_t)(no * M * N) * sizeof *ref);
    for (int64_t o = 0; o < no; o++) {
        int64_t rem = o, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t idx = rem % ob[d];
            rem /= ob[d];
            ia += (ab[d] == 1 ? 0 : idx) * sa;
            ib += (bb[d] == 1 ? 0 : idx) * sb;
            sa *= ab[d]; sb *= bb[d];
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)A[ia * M * K + (ta ? k * M + i : i * K + k)] * B[ib * K * N + (tb ? j * K + k : k * N + j)];
                ref[(o * M + i) * N + j] = alpha * s + (bias ? bias[j] : 0);
            }
    }
    return ref;
}

/* MatMul with batch dims ab (A) and bb (B), both of rank nb (1 = broadcast), and a [N] bias. */
static void matmul_case(const char *name, kiln_dtype dt, int nb, const int64_t *ab, const int64_t *bb, int64_t M,
                        int64_t K, int64_t N, int bias) {
    int64_t ob[4], na = 1, nbb = 1, no = 1;
    for (int i = 0; i < nb; i++) {
        ob[i] = ab[i] > bb[i] ? ab[i] : bb[i];
        na *= ab[i]; nbb *= bb[i]; no *= ob[i];
    }
    float *A = rnd(na * M * K), *B = rnd(nbb * K * N), *bv = rnd(N);
    round_to(A, na * M * K, dt); round_to(B, nbb * K * N, dt); round_to(bv, N, dt);
    double *ref = matmul_ref(nb, ab, bb, ob, no, M, K, N, A, B, bias ? bv : NULL, 0, 0, 1.0f);
    kc_case c;
    kc_begin(&c, "MatMul", name, bias ? 3 : 2, 1);
    int64_t ad[6], bd[6], yd[6];
    for (int i = 0; i < nb; i++) { ad[i] = ab[i]; bd[i] = bb[i]; yd[i] = ob[i]; }
    ad[nb] = M; ad[nb + 1] = K; bd[nb] = K; bd[nb + 1] = N; yd[nb] = M; yd[nb + 1] = N;
    int brank = nb + 2;
    if (nbb == 1) { bd[0] = K; bd[1] = N; brank = 2; } /* B without batch dims */
    kc_in(&c, 0, dt, nb + 2, ad, A);
    kc_in(&c, 1, dt, brank, bd, B);
    int64_t nd1[1] = {N};
    if (bias) kc_in(&c, 2, dt, 1, nd1, bv);
    kc_out(&c, 0, dt, nb + 2, yd);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check(name, y, ref, no * M * N, dt == KILN_F32 ? 1e-4 : 1e-2);
    free(y);
    kc_end(&c);
    free(A); free(B); free(bv); free(ref);
}

/* MatMul's fused operand forms: kiln.trans_a / kiln.trans_b (A stored [.., K, M], B [.., N, K]) and
 * kiln.alpha, with batch dims ab / bb of rank nb (1 = broadcast; B all ones: a 2-D B) and an
 * optional [N] bias added after the scale. */
static void matmul_fused_case(const char *name, kiln_dtype dt, int nb, const int64_t *ab, const int64_t *bb,
                              int64_t M, int64_t K, int64_t N, int bias, int ta, int tb, float alpha) {
    int64_t ob[4], na = 1, nbb = 1, no = 1;
    for (int i = 0; i < nb; i++) {
        ob[i] = ab[i] > bb[i] ? ab[i] : bb[i];
        na *= ab[i]; nbb *= bb[i]; no *= ob[i];
    }
    float *A = rnd(na * M * K), *B = rnd(nbb * K * N), *bv = rnd(N);
    round_to(A, na * M * K, dt); round_to(B, nbb * K * N, dt); round_to(bv, N, dt);
    double *ref = matmul_ref(nb, ab, bb, ob, no, M, K, N, A, B, bias ? bv : NULL, ta, tb, alpha);
    kc_case c;
    kc_begin(&c, "MatMul", name, bias ? 3 : 2, 1);
    if (ta) KT_OK(kn_node_set_attr_int(kc_node(&c), "kiln.trans_a", 1));
    if (tb) KT_OK(kn_node_set_attr_int(kc_node(&c), "kiln.trans_b", 1));
    if (alpha != 1.0f) KT_OK(kn_node_set_attr_float(kc_node(&c), "kiln.alpha", alpha));
    int64_t ad[6], bd[6], yd[6];
    for (int i = 0; i < nb; i++) { ad[i] = ab[i]; bd[i] = bb[i]; yd[i] = ob[i]; }
    ad[nb] = ta ? K : M; ad[nb + 1] = ta ? M : K;
    bd[nb] = tb ? N : K; bd[nb + 1] = tb ? K : N;
    yd[nb] = M; yd[nb + 1] = N;
    int brank = nb + 2;
    if (nbb == 1) { bd[0] = bd[nb]; bd[1] = bd[nb + 1]; brank = 2; } /* B without batch dims */
    kc_in(&c, 0, dt, nb + 2, ad, A);
    kc_in(&c, 1, dt, brank, bd, B);
    int64_t nd1[1] = {N};
    if (bias) kc_in(&c, 2, dt, 1, nd1, bv);
    kc_out(&c, 0, dt, nb + 2, yd);
    int nt = kc_tactics(&c);
    for (int t = 0; t < nt; t++) {
        KT_OK(kc_run_tactic(&c, t));
        float *y = kc_fetch(&c, 0);
        char what[128];
        snprintf(what, sizeof what, "%s (tactic %d)", name, t);
        check(what, y, ref, no * M * N, dt == KILN_F32 ? 1e-4 : 1e-2);
        free(y);
    }
    kc_end(&c);
    free(A); free(B); free(bv); free(ref);
}

/* LayerNormalization's fused residual (kiln.residual, input 3): LN(x + r) over the last dim. */
static void layernorm_residual_case(kiln_dtype dt) {
    int64_t d[3] = {2, 5, 256}, sd[1] = {256};
    const int64_t rows = 10, len = 256, n = rows * len;
    float *x = rnd(n), *r = rnd(n), *g = rnd(len), *b = rnd(len);
    round_to(x, n, dt); round_to(r, n, dt);
    double *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i = 0; i < rows; i++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < len; j++) m += (double)x[i * len + j] + r[i * len + j];
        m /= len;
        for (int64_t j = 0; j < len; j++) {
            double e = (double)x[i * len + j] + r[i * len + j] - m;
            v += e * e;
        }
        v /= len;
        for (int64_t j = 0; j < len; j++)
            ref[i * len + j] = ((double)x[i * len + j] + r[i * len + j] - m) / sqrt(v + 1e-5) * g[j] + b[j];
    }
    kc_case c;
    kc_begin(&c, "LayerNormalization", "ln_res", 4, 1);
    KT_OK(kn_node_set_attr_int(kc_node(&c), "kiln.residual", 1));
    kc_in(&c, 0, dt, 3, d, x);
    kc_in(&c, 1, KILN_F32, 1, sd, g); /* the parameters stay f32 under precision lowering */
    kc_in(&c, 2, KILN_F32, 1, sd, b);
    kc_in(&c, 3, dt, 3, d, r);
    kc_out(&c, 0, dt, 3, d);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check(dt == KILN_F32 ? "LayerNormalization + residual f32" : "LayerNormalization + residual f16", y, ref, n,
          dt == KILN_F32 ? 1e-4 : 2e-2);
    free(y); kc_end(&c); free(x); free(r); free(g); free(b); free(ref);
}

/* ---- kiln kernels ------------------------------------------------------------------------------------ */

static void add_broadcast_case(void) {
    int64_t ad[3] = {2, 3, 5}, bd[2] = {3, 1};
    float *a = rnd(30), *b = rnd(3);
    double ref[30];
    for (int i = 0; i < 30; i++) ref[i] = (double)a[i] + b[(i / 5) % 3];
    kc_case c;
    kc_begin(&c, "Add", "add_bcast", 2, 1);
    kc_in(&c, 0, KILN_F32, 3, ad, a);
    kc_in(&c, 1, KILN_F32, 2, bd, b);
    kc_out(&c, 0, KILN_F32, 3, ad);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check("Add [2,3,5] + [3,1]", y, ref, 30, 1e-6);
    free(y); kc_end(&c); free(a); free(b);
}

/* Contiguous launches (the 16-byte vector path and its tail) and scalar broadcasts. */
static void ew_vector_cases(void) {
    struct { const char *op; kiln_dtype dt; int64_t n; int n_in; int scalar_last; } cs[] = {
        {"Add", KILN_F32, 1001, 2, 1}, {"Mul", KILN_F16, 2006, 2, 0}, {"Relu", KILN_BF16, 515, 1, 0},
        {"Sum", KILN_F32, 1000, 3, 0}, {"Clip", KILN_F32, 999, 3, 1}, {"Sub", KILN_F16, 7, 2, 0},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        int64_t n = cs[ci].n, d[1] = {n}, d1[1] = {1};
        float *x[3];
        for (int k = 0; k < 3; k++) { x[k] = rnd(n); round_to(x[k], n, cs[ci].dt); }
        double *ref = malloc((size_t)n * sizeof *ref);
        for (int64_t i = 0; i < n; i++) {
            double a = x[0][i], b = x[1][cs[ci].scalar_last ? 0 : i], c = x[2][cs[ci].scalar_last ? 0 : i];
            const char *op = cs[ci].op;
            if (!strcmp(op, "Add")) ref[i] = a + b;
            else if (!strcmp(op, "Mul")) ref[i] = a * b;
            else if (!strcmp(op, "Sub")) ref[i] = a - b;
            else if (!strcmp(op, "Relu")) ref[i] = a > 0 ? a : 0;
            else if (!strcmp(op, "Sum")) ref[i] = a + b + c;
            else { double lo = -0.25, hi = 0.5; ref[i] = a < lo ? lo : a > hi ? hi : a; }
        }
        kc_case c;
        kc_begin(&c, cs[ci].op, cs[ci].op, cs[ci].n_in, 1);
        kc_in(&c, 0, cs[ci].dt, 1, d, x[0]);
        if (!strcmp(cs[ci].op, "Clip")) {
            float lo = -0.25f, hi = 0.5f;
            kc_in(&c, 1, cs[ci].dt, 0, d1, &lo); /* device scalars, not host-known */
            kc_in(&c, 2, cs[ci].dt, 0, d1, &hi);
        } else {
            for (int k = 1; k < cs[ci].n_in; k++) kc_in(&c, k, cs[ci].dt, cs[ci].scalar_last ? 1 : 1, cs[ci].scalar_last ? d1 : d, x[k]);
        }
        kc_out(&c, 0, cs[ci].dt, 1, d);
        KT_OK(kc_run(&c));
        float *y = kc_fetch(&c, 0);
        char what[96];
        snprintf(what, sizeof what, "%s %s [%lld]%s", cs[ci].op, kiln_dtype_name(cs[ci].dt), (long long)n,
                 cs[ci].scalar_last ? " with a scalar" : "");
        check(what, y, ref, n, cs[ci].dt == KILN_F32 ? 1e-6 : 1e-2);
        free(y); kc_end(&c); free(ref);
        for (int k = 0; k < 3; k++) free(x[k]);
    }
}

static void softmax_case(int axis) {
    int64_t d[3] = {3, 7, 33};
    int64_t n = 3 * 7 * 33;
    float *x = rnd(n);
    double *ref = malloc((size_t)n * sizeof *ref);
    int64_t len = d[axis], inner = 1, outer = 1;
    for (int i = axis + 1; i < 3; i++) inner *= d[i];
    for (int i = 0; i < axis; i++) outer *= d[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            double m = -1e30, s = 0;
            for (int64_t j = 0; j < len; j++) m = fmax(m, x[(o * len + j) * inner + k]);
            for (int64_t j = 0; j < len; j++) s += exp(x[(o * len + j) * inner + k] - m);
            for (int64_t j = 0; j < len; j++) ref[(o * len + j) * inner + k] = exp(x[(o * len + j) * inner + k] - m) / s;
        }
    kc_case c;
    kc_begin(&c, "Softmax", "softmax", 1, 1);
    kc_in(&c, 0, KILN_F32, 3, d, x);
    kc_out(&c, 0, KILN_F32, 3, d);
    kn_node_set_attr_int(kc_node(&c), "axis", axis);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check(axis == 2 ? "Softmax axis -1 (rows)" : "Softmax axis 1 (columns)", y, ref, n, 1e-5);
    free(y); kc_end(&c); free(x); free(ref);
}

static void layernorm_case(void) {
    int64_t d[2] = {5, 300}, sd[1] = {300};
    float *x = rnd(1500), *g = rnd(300), *b = rnd(300);
    double *ref = malloc(1500 * sizeof *ref);
    for (int r = 0; r < 5; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < 300; j++) m += x[r * 300 + j];
        m /= 300;
        for (int j = 0; j < 300; j++) v += (x[r * 300 + j] - m) * (x[r * 300 + j] - m);
        v /= 300;
        for (int j = 0; j < 300; j++) ref[r * 300 + j] = (x[r * 300 + j] - m) / sqrt(v + 1e-5) * g[j] + b[j];
    }
    kc_case c;
    kc_begin(&c, "LayerNormalization", "ln", 3, 1);
    kc_in(&c, 0, KILN_F32, 2, d, x);
    kc_in(&c, 1, KILN_F32, 1, sd, g);
    kc_in(&c, 2, KILN_F32, 1, sd, b);
    kc_out(&c, 0, KILN_F32, 2, d);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check("LayerNormalization [5,300]", y, ref, 1500, 1e-4);
    free(y); kc_end(&c); free(x); free(g); free(b); free(ref);
}

static void reduce_case(const char *op, int na, const int64_t *axes, const char *what) {
    int64_t d[4] = {2, 3, 4, 5};
    float *x = rnd(120);
    int red[4] = {0};
    for (int i = 0; i < na; i++) red[axes[i]] = 1;
    int64_t od[4];
    for (int i = 0; i < 4; i++) od[i] = red[i] ? 1 : d[i];
    int64_t on = od[0] * od[1] * od[2] * od[3];
    double *ref = calloc((size_t)on, sizeof *ref);
    int is_max = strcmp(op, "ReduceMax") == 0;
    for (int64_t i = 0; i < on; i++) ref[i] = is_max ? -1e30 : 0;
    int64_t cnt = 120 / on;
    for (int64_t i = 0; i < 120; i++) {
        int64_t idx[4], r = i;
        for (int k = 3; k >= 0; k--) { idx[k] = r % d[k]; r /= d[k]; }
        int64_t o = 0;
        for (int k = 0; k < 4; k++) o = o * od[k] + (red[k] ? 0 : idx[k]);
        if (is_max) ref[o] = fmax(ref[o], x[i]);
        else ref[o] += x[i];
    }
    if (strcmp(op, "ReduceMean") == 0)
        for (int64_t i = 0; i < on; i++) ref[i] /= (double)cnt;
    kc_case c;
    kc_begin(&c, op, "reduce", 2, 1);
    kc_in(&c, 0, KILN_F32, 4, d, x);
    kc_in_ints(&c, 1, na, axes);
    kc_out(&c, 0, KILN_F32, 4, od);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check(what, y, ref, on, 1e-5);
    free(y); kc_end(&c); free(x); free(ref);
}

static void transpose_case(void) {
    int64_t d[3] = {4, 5, 6}, od[3] = {6, 4, 5}, perm[3] = {2, 0, 1};
    float *x = rnd(120);
    double ref[120];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 6; k++) ref[(k * 4 + i) * 5 + j] = x[(i * 5 + j) * 6 + k];
    kc_case c;
    kc_begin(&c, "Transpose", "tr", 1, 1);
    kc_in(&c, 0, KILN_F32, 3, d, x);
    kc_out(&c, 0, KILN_F32, 3, od);
    kn_node_set_attr_ints(kc_node(&c), "perm", 3, perm);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check("Transpose perm (2,0,1)", y, ref, 120, 1e-7);
    free(y); kc_end(&c); free(x);
}

static void pool_case(int is_max) {
    int64_t d[4] = {2, 3, 11, 10}, k = 3, s = 2, p = 1;
    int64_t oh = (11 + 2 - 3) / 2 + 1, ow = (10 + 2 - 3) / 2 + 1;
    int64_t od[4] = {2, 3, oh, ow};
    int64_t n = 2 * 3 * 11 * 10, on = 6 * oh * ow;
    float *x = rnd(n);
    double *ref = malloc((size_t)on * sizeof *ref);
    for (int64_t nc = 0; nc < 6; nc++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                double m = -1e30, sum = 0;
                int cnt = 0;
                for (int64_t a = 0; a < k; a++)
                    for (int64_t b = 0; b < k; b++) {
                        int64_t h = i * s - p + a, w = j * s - p + b;
                        if (h < 0 || h >= 11 || w < 0 || w >= 10) continue;
                        double v = x[(nc * 11 + h) * 10 + w];
                        m = fmax(m, v); sum += v; cnt++;
                    }
                ref[(nc * oh + i) * ow + j] = is_max ? m : sum / cnt;
            }
    kc_case c;
    kc_begin(&c, is_max ? "MaxPool" : "AveragePool", "pool", 1, 1);
    kc_in(&c, 0, KILN_F32, 4, d, x);
    kc_out(&c, 0, KILN_F32, 4, od);
    int64_t ks[2] = {k, k}, ss[2] = {s, s}, ps[4] = {p, p, p, p};
    kn_node_set_attr_ints(kc_node(&c), "kernel_shape", 2, ks);
    kn_node_set_attr_ints(kc_node(&c), "strides", 2, ss);
    kn_node_set_attr_ints(kc_node(&c), "pads", 4, ps);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    check(is_max ? "MaxPool 3x3 s2 p1" : "AveragePool 3x3 s2 p1 (exclude pad)", y, ref, on, 1e-6);
    free(y); kc_end(&c); free(x); free(ref);
}

/* ---- the recorder ------------------------------------------------------------------------------------- */

static kiln_status bad_sync_run(const kn_kernel_args *a) {
    (void)a;
    /* a synchronize is illegal while the stream is captured: the capture breaks */
    return be->synchronize(ctx);
}

static void recorder_case(void) {
    /* Gemm with bias + relu, captured, replayed on new data, updated from a fresh recording */
    int64_t M = 16, N = 24, K = 40;
    float *A = rnd(M * K), *B = rnd(K * N), *C = rnd(N);
    kc_case c;
    kc_begin(&c, "Gemm", "fc_captured", 3, 1);
    int64_t ad[2] = {M, K}, bd[2] = {K, N}, cd[1] = {N}, yd[2] = {M, N};
    kc_in(&c, 0, KILN_F32, 2, ad, A);
    kc_in(&c, 1, KILN_F32, 2, bd, B);
    kc_in(&c, 2, KILN_F32, 1, cd, C);
    kc_out(&c, 0, KILN_F32, 2, yd);
    kn_node_set_attr_int(kc_node(&c), "kiln.act", KN_ACT_RELU);
    const kn_kernel *k = be->engine_kernel(c.g, kc_node(&c));
    KT_CHECK(k != NULL, "Gemm has a CUDA kernel");
    if (!k) { kc_end(&c); return; }
    kn_kernel_args a = kc_args(&c, 0);
    void *state = NULL;
    KT_OK(k->prepare(&a, &state));
    a.state = state;
    void *graph = NULL, *fresh = NULL;
    KT_OK(be->record_begin(ctx));
    KT_OK(be->launch(ctx, k, &a));
    KT_OK(be->record_end(ctx, &graph));
    KT_CHECK(graph != NULL, "a graph was recorded");
    double *ref = malloc((size_t)(M * N) * sizeof *ref);
    for (int round = 0; round < 2 && graph; round++) {
        kt_fill_uniform(A, M * K, -1, 1); /* new inputs, same addresses */
        KT_OK(be->copy_in(ctx, c.in[0].data, A, (size_t)(M * K) * 4, KILN_DEVICE_CPU));
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = C[j];
                for (int64_t q = 0; q < K; q++) s += (double)A[i * K + q] * B[q * N + j];
                ref[i * N + j] = s > 0 ? s : 0;
            }
        KT_OK(be->graph_launch(ctx, graph));
        KT_OK(be->synchronize(ctx));
        float *y = kc_fetch(&c, 0);
        check(round ? "replay after graph_update" : "replayed CUDA graph (Gemm+bias+relu)", y, ref, M * N, 1e-4);
        free(y);
        if (round == 0) { /* record again and update in place */
            KT_OK(be->record_begin(ctx));
            KT_OK(be->launch(ctx, k, &a));
            KT_OK(be->record_end(ctx, &fresh));
            int updated = 0;
            KT_OK(be->graph_update(ctx, graph, fresh, &updated));
            KT_CHECK(updated == 1, "cudaGraphExecUpdate took the same topology");
            be->graph_free(ctx, fresh);
        }
    }
    /* a step that breaks the capture: error names it, the stream stays usable */
    kn_kernel bad = {.name = "test.bad_sync", .run = bad_sync_run};
    kn_node bad_node = {.name = "breaks_capture", .op = KN_OP_Relu};
    kn_kernel_args ba = {.node = &bad_node, .ctx = ctx};
    void *g2 = NULL;
    KT_OK(be->record_begin(ctx));
    KT_OK(be->launch(ctx, k, &a));
    kiln_status st = be->launch(ctx, &bad, &ba);
    KT_CHECK(st != KILN_OK, "a synchronize inside a capture fails");
    KT_FAILS(be->record_end(ctx, &g2), KILN_ERR_DEVICE, "breaks_capture");
    KT_CHECK(g2 == NULL, "no graph from a broken capture");
    printf("  broken capture says: %s\n", kiln_last_error());
    /* the stream records again, and still works eagerly */
    void *g3 = NULL;
    KT_OK(be->record_begin(ctx));
    KT_OK(be->launch(ctx, k, &a));
    KT_OK(be->record_end(ctx, &g3));
    if (g3) be->graph_free(ctx, g3);
    KT_OK(be->launch(ctx, k, &a));
    KT_OK(be->synchronize(ctx));
    float *y = kc_fetch(&c, 0);
    check("eager run after a broken capture", y, ref, M * N, 1e-4);
    free(y);
    if (graph) be->graph_free(ctx, graph);
    k->release(state);
    kc_end(&c);
    free(A); free(B); free(C); free(ref);
}

static int never_capturable(const kn_node *n) { (void)n; return 0; }

static void uncapturable_case(void) {
    kn_kernel k = {.name = "test.host_sync", .run = bad_sync_run, .capturable = never_capturable};
    kn_node node = {.name = "needs_sync", .op = KN_OP_Relu};
    kn_kernel_args a = {.node = &node, .ctx = ctx};
    void *g = NULL;
    KT_OK(be->record_begin(ctx));
    KT_FAILS(be->launch(ctx, &k, &a), KILN_ERR_UNSUPPORTED, "needs_sync");
    KT_FAILS(be->record_end(ctx, &g), KILN_ERR_UNSUPPORTED, "needs_sync");
    KT_OK(be->synchronize(ctx));
}

/* ---- module constants and errors -------------------------------------------------------------------- */

/* A caller's stream (cudaStream_t), declared here to keep CUDA headers out of the tests; weak,
 * so that a CPU-only build (which never gets this far) still links. */
typedef struct CUstream_st *kt_stream;
extern int cudaStreamCreateWithFlags(kt_stream *stream, unsigned int flags) __attribute__((weak));
extern int cudaStreamDestroy(kt_stream stream) __attribute__((weak));

static void stream_case(void) {
    kt_stream st = NULL;
    KT_CHECK(cudaStreamCreateWithFlags && cudaStreamDestroy, "the CUDA runtime is linked");
    if (!cudaStreamCreateWithFlags || !cudaStreamDestroy) return;
    KT_CHECK(cudaStreamCreateWithFlags(&st, 1) == 0 && st, "a caller's stream");
    if (!st) return;
    KT_OK(be->set_stream(ctx, st));
    gemm_case("gemm on a caller's stream", KILN_F32, 20, 30, 40, 0, 1, 1, 1.0f, 1.0f, KN_ACT_RELU);
    conv_cfg cv = {"conv on a caller's stream", KILN_F32, 2, 1, 4, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_RELU, 0, 0};
    conv_case(&cv);
    KT_OK(be->set_stream(ctx, NULL));
    cudaStreamDestroy(st);
}

static void module_case(void) {
    kn_graph *g = kn_graph_new();
    int v;
    kn_graph_new_value(g, "w", &v);
    int64_t d[1] = {1000};
    kn_host_tensor *t = kn_host_tensor_new(KILN_F32, 1, d);
    kt_fill_uniform(t->data, 1000, -1, 1);
    kn_value_set_constant(&g->values[v], t);
    struct kiln_module m = mod;
    m.graph = g;
    m.const_ptr = calloc((size_t)g->n_values, sizeof *m.const_ptr);
    void *ms = NULL;
    KT_OK(be->module_init(&m, &ms));
    KT_CHECK(m.const_ptr[v] != NULL, "the constant has a device pointer");
    float back[1000];
    if (m.const_ptr[v]) {
        KT_OK(be->copy_out(ctx, back, KILN_DEVICE_CPU, m.const_ptr[v], sizeof back));
        KT_CHECK(memcmp(back, t->data, sizeof back) == 0, "the constant came back unchanged");
    }
    be->module_free(&m, ms);
    free(m.const_ptr);
    kn_graph_destroy(g);
    /* a bad device index is an error, not a crash */
    struct kiln_module bad = mod;
    bad.device_index = 999;
    void *bctx = NULL;
    KT_FAILS(be->session_init(&bad, 1024, &bctx), KILN_ERR_INVALID_ARGUMENT, "999");
}

static void error_case(void) {
    /* a tiny exact case, then an input the kernels do not take */
    kc_case c;
    kc_begin(&c, "Relu", "relu4", 1, 1);
    int64_t d[1] = {4};
    float x[4] = {1, -2, 3, -4};
    kc_in(&c, 0, KILN_F32, 1, d, x);
    kc_out(&c, 0, KILN_F32, 1, d);
    KT_OK(kc_run(&c));
    float *y = kc_fetch(&c, 0);
    KT_CHECK(y[0] == 1 && y[1] == 0 && y[2] == 3 && y[3] == 0, "Relu on 4 values");
    free(y);
    kc_end(&c);
    kc_begin(&c, "Gather", "gather_float_idx", 2, 1);
    kc_in(&c, 0, KILN_F32, 1, d, x);
    kc_in(&c, 1, KILN_F32, 1, d, x);
    kc_out(&c, 0, KILN_F32, 1, d);
    KT_CHECK(!be->supports_op(c.g, kc_node(&c)), "Gather with float indices is not taken");
    KT_CHECK(be->fallback_kernel(c.g, kc_node(&c)) == NULL, "no fallback kernel either");
    kc_end(&c);
}

int main(void) {
    if (!kiln_cuda_available()) {
        printf("SKIP: no CUDA device\n");
        return kt_finish();
    }
    be = kn_backend_cuda();
    KT_CHECK(be != NULL, "kn_backend_cuda() with a device");
    if (!be) return kt_finish();
    kt_seed(5);
    kiln_set_log_level(2); /* the conv prepare says whether cuDNN fused the epilogue */
    for (int prec = 0; prec < 2; prec++) {
        memset(&mod, 0, sizeof mod);
        mod.device = KILN_DEVICE_CUDA;
        mod.precision = prec ? KILN_PRECISION_TF32 : KILN_PRECISION_FP32;
        /* KILN_TEST_NO_RTC=1: no cuDNN engine that compiles per shape (the module option), for
         * racecheck runs, which spend minutes in those engines' compiled kernels */
        const char *nr = getenv("KILN_TEST_NO_RTC");
        mod.avoid_runtime_compilation = nr && *nr && *nr != '0';
        KT_OK(be->session_init(&mod, 1 << 20, &ctx));
        if (!ctx) return kt_finish();
        printf("precision %s\n", prec ? "tf32" : "fp32");
        if (prec == 0) {
            conv_cfg cv[] = {
                {"conv 3x3 p1", KILN_F32, 2, 2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0},
                {"conv+bias+relu", KILN_F32, 2, 2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_RELU, 0, 0},
                {"conv+bias+res+relu", KILN_F32, 2, 2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, KN_ACT_RELU, 0, 0},
                {"conv+bias+hardswish (kiln epilogue)", KILN_F32, 2, 1, 4, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_HARDSWISH, 0, 0},
                {"conv group2 s2 d2", KILN_F32, 2, 1, 8, 13, 11, 6, 3, 3, 2, 2, 2, 2, 1, 0, 0, 0, 0},
                {"conv depthwise s2", KILN_F32, 2, 2, 8, 10, 10, 8, 3, 3, 8, 2, 1, 1, 1, 0, KN_ACT_SILU, 0, 0},
                {"conv+bias+relu6 (cuDNN clipped relu)", KILN_F32, 2, 2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_RELU6, 0, 0},
                {"conv+bias+clip(-0.3, 0.4)", KILN_F32, 2, 2, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_CLIP, 0, 0},
                {"conv depthwise fp16+bias+clip", KILN_F16, 2, 2, 16, 10, 10, 16, 3, 3, 16, 1, 1, 1, 1, 0, KN_ACT_CLIP, 0, 0},
                /* NHWC: tactic 0 of a depthwise conv is kiln's kernel, the others cuDNN's */
                {"conv NHWC depthwise fp16+bias+relu6", KILN_F16, 2, 2, 32, 10, 9, 32, 3, 3, 32, 1, 1, 1, 1, 0, KN_ACT_RELU6, 0, 0, 1},
                {"conv NHWC depthwise fp16 s2 d2 +res+clip", KILN_F16, 2, 3, 16, 13, 11, 16, 3, 3, 16, 2, 2, 2, 1, 1, KN_ACT_CLIP, 0, 0, 1},
                {"conv NHWC depthwise bf16 5x5 no bias", KILN_BF16, 2, 1, 24, 8, 8, 24, 5, 5, 24, 1, 2, 1, 0, 0, 0, 0, 0, 1},
                {"conv NHWC fp16 1x1 +bias+relu6", KILN_F16, 2, 2, 24, 7, 7, 48, 1, 1, 1, 1, 0, 1, 1, 0, KN_ACT_RELU6, 0, 0, 1},
                {"conv NHWC fp16 3x3 +bias+res+relu", KILN_F16, 2, 2, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1, KN_ACT_RELU, 0, 0, 1},
                /* fewer than 8 channels: tactics 1.. pad X and W to 8 channels */
                {"conv NHWC fp16 stem c3 7x7 s2 +bias+relu", KILN_F16, 2, 2, 3, 19, 17, 16, 7, 7, 1, 2, 3, 1, 1, 0, KN_ACT_RELU, 0, 0, 1},
                {"conv NHWC bf16 c5 3x3 +bias+res+silu", KILN_BF16, 2, 1, 5, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, KN_ACT_SILU, 0, 0, 1},
                {"conv1d k5 p2", KILN_F32, 1, 2, 4, 1, 20, 6, 1, 5, 1, 1, 2, 1, 1, 0, 0, 0, 0},
                {"conv fp16+bias+relu", KILN_F16, 2, 2, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_RELU, 0, 0},
                {"conv bf16+bias", KILN_BF16, 2, 1, 16, 8, 8, 16, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0},
                {"convT s2 p1 op1 +bias", KILN_F32, 2, 2, 6, 5, 4, 4, 3, 3, 1, 2, 1, 1, 1, 0, 0, 1, 1},
                {"convT group2", KILN_F32, 2, 1, 4, 6, 6, 6, 3, 3, 2, 1, 1, 1, 0, 0, 0, 1, 0},
            };
            for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) conv_case(&cv[i]);
            gemm_case("gemm transB +bias[N] relu", KILN_F32, 33, 17, 65, 0, 1, 1, 1.0f, 1.0f, KN_ACT_RELU);
            gemm_case("gemm transA C[M,N] a.5 b2", KILN_F32, 31, 20, 12, 1, 0, 2, 0.5f, 2.0f, 0);
            gemm_case("gemm bias[N] beta.5 (kiln epilogue)", KILN_F32, 8, 9, 10, 0, 0, 1, 1.0f, 0.5f, 0);
            gemm_case("gemm +bias gelu_tanh (cuBLASLt GELU)", KILN_F32, 64, 32, 48, 0, 1, 1, 1.0f, 1.0f, KN_ACT_GELU_TANH);
            gemm_case("gemm +bias gelu_erf (kiln)", KILN_F32, 16, 32, 48, 0, 1, 1, 1.0f, 1.0f, KN_ACT_GELU_ERF);
            gemm_case("gemm fp16 +bias relu", KILN_F16, 64, 64, 64, 0, 1, 1, 1.0f, 1.0f, KN_ACT_RELU);
            int64_t b23[2] = {2, 3}, b1[2] = {1, 1}, b21[2] = {2, 1}, b13[2] = {1, 3};
            matmul_case("matmul batch [2,3] strided", KILN_F32, 2, b23, b23, 7, 9, 5, 0);
            matmul_case("matmul batch x 2-D B (folded) +bias", KILN_F32, 2, b23, b1, 7, 9, 5, 1);
            matmul_case("matmul A[1,1] x B[2,3] (stride 0)", KILN_F32, 2, b1, b23, 7, 9, 5, 0);
            matmul_case("matmul [2,1] x [1,3] (loop)", KILN_F32, 2, b21, b13, 4, 6, 8, 1);
            matmul_case("matmul fp16 batch", KILN_F16, 2, b23, b23, 16, 32, 8, 0);
            /* fused operand forms (fuse_matmul) */
            matmul_fused_case("matmul trans_b batch [2,3]", KILN_F32, 2, b23, b23, 7, 9, 5, 0, 0, 1, 1.0f);
            matmul_fused_case("matmul trans_a x 2-D B (no fold)", KILN_F32, 2, b23, b1, 7, 9, 5, 1, 1, 0, 1.0f);
            matmul_fused_case("matmul trans_a trans_b alpha .125", KILN_F32, 2, b23, b23, 8, 16, 8, 0, 1, 1, 0.125f);
            matmul_fused_case("matmul [2,1] x [1,3] trans_b alpha +bias", KILN_F32, 2, b21, b13, 4, 6, 8, 1, 0, 1, 0.5f);
            matmul_fused_case("matmul A[1,1] trans_a x B[2,3]", KILN_F32, 2, b1, b23, 7, 9, 5, 0, 1, 0, 2.0f);
            matmul_fused_case("matmul 2-D B trans_b alpha +bias (folded)", KILN_F32, 2, b23, b1, 7, 9, 5, 1, 0, 1, 0.25f);
            matmul_fused_case("matmul fp16 trans_b alpha (attention)", KILN_F16, 2, b13, b13, 128, 32, 128, 0, 0, 1, 0.1767767f);
            matmul_fused_case("matmul bf16 trans_a alpha", KILN_BF16, 2, b23, b23, 16, 32, 8, 0, 1, 0, 0.5f);
            layernorm_residual_case(KILN_F32);
            layernorm_residual_case(KILN_F16);
            add_broadcast_case();
            ew_vector_cases();
            softmax_case(2);
            softmax_case(1);
            layernorm_case();
            int64_t ax1[1] = {1}, ax02[2] = {0, 2}, ax23[2] = {2, 3}, ax0[1] = {0};
            reduce_case("ReduceMean", 1, ax1, "ReduceMean axis 1 (columns)");
            reduce_case("ReduceSum", 2, ax02, "ReduceSum axes 0,2 (generic)");
            reduce_case("ReduceMax", 2, ax23, "ReduceMax axes 2,3 (rows)");
            reduce_case("ReduceSum", 1, ax0, "ReduceSum axis 0 (columns)");
            transpose_case();
            pool_case(1);
            pool_case(0);
            recorder_case();
            uncapturable_case();
            stream_case();
            module_case();
            error_case();
        } else {
            conv_cfg cv[] = {
                {"tf32 conv+bias+relu", KILN_F32, 2, 2, 32, 9, 9, 32, 3, 3, 1, 1, 1, 1, 1, 0, KN_ACT_RELU, 0, 0},
            };
            conv_case(&cv[0]);
            gemm_case("tf32 gemm transB +bias", KILN_F32, 128, 64, 256, 0, 1, 1, 1.0f, 1.0f, 0);
        }
        be->session_free(ctx);
        ctx = NULL;
    }
    return kt_finish();
}
