/* Conv and ConvTranspose on CUDA through cuDNN 9's graph (backend) API.
 *
 * Conv builds one operation graph per shape in prepare: convolution -> add bias -> add residual
 * -> activation (the fused form the passes make) and asks the heuristics for engine configs. The
 * step's tactics are the first KN_DNN_MAX_HEUR configs of heuristics mode A (in strict fp32, where
 * the heuristics rank tensor-core engines first and leave knob variants of one or two engines, the
 * last KN_DNN_GLOBAL_SLOTS places and any left free go to the graph's other global engines, FFT
 * and Winograd first) plus one more, the
 * first config of the fallback list whose plan finalizes; counting them finalizes nothing, and
 * preparing tactic t finalizes that one plan only (finalizing is the expensive part of a build:
 * some engines compile kernels at run time). A tactic whose plan does not finalize at a shape
 * (other shapes rank configs differently) takes the first one that does. When no engine takes
 * the fused graph, the graph is the convolution alone and kiln's epilogue kernel adds bias and
 * residual and applies the activation. ConvTranspose is the convolution's backward-data
 * operation, with the bias through the epilogue.
 *
 * A step prepared from its tactic key (what the timed tactic resolved to: graph variant, engine
 * id, knobs) builds that engine config directly at any shape, with no heuristics query; engines
 * that compile their kernel at run time are tried on a dynamic-shape graph with a kernel cache
 * per session and step, and left out altogether under the module's avoid_runtime_compilation
 * (docs/DESIGN.md, "Stored engine configs").
 *
 * Tensors are NCHW (NCDHW), except for a node the layout pass marked kiln.layout = 1 (fp16/bf16/tf32
 * 2-D convolutions): X, Y and the residual are NHWC in memory and W is KRSC, given to cuDNN as the
 * same logical dims with channels-innermost strides (the bias stays [1, K, 1, 1]). 1-D convolutions run as 2-D
 * with a unit height. With precision fp32, engines that use tensor cores (TF32) or down-convert
 * inputs are filtered out, so fp32 is true fp32; tf32 allows them. Engines noted non-deterministic
 * are left out whenever another engine is offered.
 *
 * An NHWC f16/bf16 one-group convolution on multiples of 8 channels has kiln's implicit-GEMM kernel
 * (igemm.cu: tensor cores, the reduction split over a thread-block cluster for small outputs) as
 * tactic 0 and cuDNN's engines after it, as a depthwise one has kiln's depthwise kernel.
 *
 * An NHWC f16/bf16 convolution on fewer than 8 input channels (an image stem on 3) also competes
 * padded to 8 channels: its tactics 1..KN_CONV_SLOTS zero-pad X into a buffer of the step's own
 * each run and run cuDNN's tensor-core engines on a weight padded once in prepare; tactic 0 and
 * the rest are the unpadded ones, shifted (docs/DESIGN.md, "Convolution tactics"). */
#include "cuda_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define KN_DNN_MAX_HEUR 8  /* tactics from heuristics mode A; one more from the fallback list */
#define KN_CONV_SLOTS (KN_DNN_MAX_HEUR + 1) /* tactics of a fused graph, when the convolution alone competes */
#define KN_DNN_MAX_DESC 48
#define KN_DNN_MAX_CFGS 64 /* engine configs read from one heuristics query */
#define KN_DNN_MIN_PRECOMPILED 3 /* of the mode-A tactics, engines that compile nothing per shape */
#define KN_DNN_GLOBAL_SLOTS 3    /* strict fp32: of the KN_DNN_MAX_HEUR, places kept for other engines */
#define KN_CPAD 8          /* channels a narrow NHWC input is padded to */

enum { KN_UID_X = 1, KN_UID_W, KN_UID_Y, KN_UID_BIAS, KN_UID_RES, KN_UID_VIRT = 100 };

typedef struct kn_conv_state {
    int transpose;
    int fused; /* the plans include bias / residual / activation (1), bias / residual only (2) */
    int nd;    /* tensor rank given to cuDNN (4 or 5) */
    int nhwc;  /* kiln.layout = 1: X, Y and the residual are NHWC in memory, W is KRSC */
    int n_plans; /* 0 or 1 */
    cudnnBackendDescriptor_t plan;
    int64_t plan_ws;
    int n_tactics; /* candidates of the graph the plan came from */
    int n_global;  /* of them, global engines added in strict fp32 (kn_dnn_global_cfgs) */
    int n_desc;
    cudnnBackendDescriptor_t desc[KN_DNN_MAX_DESC]; /* everything the plans were built from */
    int has_bias, has_res;
    int act;
    float act_alpha, act_beta;
    int64_t k; /* output channels, for the bias view */
    int kiln_dw; /* tactic 0 of an NHWC depthwise convolution: kiln's kernel, no cuDNN plan */
    int kiln_ig; /* tactic 0 of an NHWC one-group convolution: kiln's implicit GEMM, no cuDNN plan */
    knc_igemm ig;
    int kiln_dc; /* provisional only: kiln's direct kernel for few input channels, no cuDNN plan */
    knc_dconv dc;
    int cpad;    /* X and W padded to KN_CPAD channels into xpad / wpad (owned) */
    void *xpad, *wpad;
    knc_dwconv dw;
    /* the engine config of the plan, "e<global index>[:k<knob>=<value>...]" (kn_dnn_cfg_key) */
    char eng_key[KN_TACTIC_KEY_MAX];
    int eng_rt;          /* that engine compiles its kernel at run time (cuDNN's behaviour note) */
    const char *use_eng; /* set: build this engine config instead of asking the heuristics */
    int dynamic;         /* the graph is built with dynamic shapes, its plan with the step's kernel cache */
    struct kn_dnn_shared *shared; /* set: `plan` is that shared plan's (not owned) */
    kn_cuda_ctx *shared_ctx;
    int deferred; /* its shared plan was being built on another thread: the step put itself back */
} kn_conv_state;

/* ---- shared plans ------------------------------------------------------------------------------
 * Steps whose cuDNN graph and stored engine config are the same at a shape (ResNet-50 has 37
 * cuDNN convolutions, about 20 distinct) share one plan: built once per session and shape by the
 * first step that needs it, counted by reference, freed with its last user. A step that finds it
 * being built on another preparation thread puts itself back (kn_prepare_defer) while it may,
 * and waits for it when prepared again. Everything here holds the context's lock. */
#define KN_DNN_SIG_MAX 640

typedef struct kn_dnn_shared {
    char sig[KN_DNN_SIG_MAX]; /* the graph's description and the engine config (kn_conv_signature) */
    int refs, waiters;
    int ready, failed;
    cudnnBackendDescriptor_t plan;
    int64_t ws;
    int n_desc;
    cudnnBackendDescriptor_t desc[KN_DNN_MAX_DESC]; /* what the plan was built from */
} kn_dnn_shared;

static void kn_dnn_shared_destroy(kn_dnn_shared *e) {
    if (e->plan) cudnnBackendDestroyDescriptor(e->plan);
    for (int i = e->n_desc - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(e->desc[i]);
    kn_free(e);
}

/* Unlinks and frees e (lock held). */
static void kn_dnn_shared_remove(kn_cuda_ctx *c, kn_dnn_shared *e) {
    for (int i = 0; i < c->n_shared; i++)
        if (c->shared[i] == e) {
            c->shared[i] = c->shared[--c->n_shared];
            break;
        }
    kn_dnn_shared_destroy(e);
}

static void kn_dnn_shared_release(kn_cuda_ctx *c, kn_dnn_shared *e) {
    pthread_mutex_lock(&c->lock);
    if (--e->refs == 0 && e->waiters == 0) kn_dnn_shared_remove(c, e);
    pthread_mutex_unlock(&c->lock);
}

void kn_dnn_shared_free_all(kn_cuda_ctx *c) {
    for (int i = 0; i < c->n_shared; i++) kn_dnn_shared_destroy(c->shared[i]);
    kn_free(c->shared);
    c->shared = NULL;
    c->n_shared = c->cap_shared = 0;
}

/* Drops the plan (or the reference to a shared one) and the descriptors it was built from, to
 * build another graph. */
static void kn_conv_drop_plans(kn_conv_state *s) {
    if (s->shared) kn_dnn_shared_release(s->shared_ctx, s->shared);
    else if (s->plan) cudnnBackendDestroyDescriptor(s->plan);
    for (int i = s->n_desc - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(s->desc[i]);
    s->shared = NULL;
    s->plan = NULL;
    s->n_plans = s->n_desc = s->n_tactics = 0;
}

static void kn_conv_state_free(void *state) {
    kn_conv_state *s = state;
    if (!s) return;
    kn_conv_drop_plans(s);
    if (s->xpad) cudaFree(s->xpad);
    if (s->wpad) cudaFree(s->wpad);
    kn_free(s);
}

static pthread_once_t kn_dnn_once = PTHREAD_ONCE_INIT;
static cudnnHandle_t kn_dnn_global;
static void kn_dnn_global_init(void) {
    if (cudnnCreate(&kn_dnn_global) != CUDNN_STATUS_SUCCESS) kn_dnn_global = NULL;
}
/* The handle to build plans with: the preparing thread's (kn_cuda_dnn_for_thread). */
static cudnnHandle_t kn_dnn_handle(const kn_kernel_args *a) {
    if (a->ctx) return kn_cuda_dnn_for_thread(kn_cuda_ctx_of(a));
    pthread_once(&kn_dnn_once, kn_dnn_global_init);
    return kn_dnn_global;
}

/* ---- descriptor helpers ------------------------------------------------------------------------ */

static kiln_status kn_dnn_new(kn_conv_state *s, cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t *out) {
    if (s->n_desc >= KN_DNN_MAX_DESC) return kn_error(KILN_ERR_INTERNAL, "too many cuDNN descriptors for one step");
    KN_CUDNN(cudnnBackendCreateDescriptor(type, out));
    s->desc[s->n_desc++] = *out;
    return KILN_OK;
}

#define KN_SET(d, attr, type, count, ptr) KN_CUDNN(cudnnBackendSetAttribute((d), (attr), (type), (count), (ptr)))

static cudnnDataType_t kn_dnn_dtype(kiln_dtype t) {
    return t == KILN_F16 ? CUDNN_DATA_HALF : t == KILN_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static int64_t kn_dnn_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    if (!v) return 16;
    int64_t al = 16;
    while (al > 1 && (v % (uintptr_t)al) != 0) al >>= 1;
    return al;
}

/* Packed strides for dims [N, C, spatial...]: NCHW order, or with s->nhwc (4-D only) channels
 * innermost, [N, H, W, C] in memory (the weight's [K, C, R, S] then is KRSC). */
static kiln_status kn_dnn_tensor(kn_conv_state *s, int64_t uid, cudnnDataType_t dt, int nd, const int64_t *dims,
                                 int64_t align, bool is_virtual, cudnnBackendDescriptor_t *out) {
    int64_t strides[8], st = 1;
    if (s->nhwc && nd == 4) {
        strides[1] = 1;
        strides[3] = dims[1];
        strides[2] = dims[1] * dims[3];
        strides[0] = dims[1] * dims[3] * dims[2];
    } else {
        for (int i = nd - 1; i >= 0; i--) { strides[i] = st; st *= dims[i]; }
    }
    KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_TENSOR_DESCRIPTOR, out));
    KN_SET(*out, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    KN_SET(*out, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims);
    KN_SET(*out, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides);
    KN_SET(*out, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    KN_SET(*out, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    KN_SET(*out, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    KN_CUDNN(cudnnBackendFinalize(*out));
    return KILN_OK;
}

/* A pointwise op: y = mode(x[, b]). */
static kiln_status kn_dnn_pointwise(kn_conv_state *s, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                                    cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y, int act, float act_alpha,
                                    float act_beta, cudnnBackendDescriptor_t *op) {
    cudnnBackendDescriptor_t pw;
    KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw));
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    KN_SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    KN_SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (mode == CUDNN_POINTWISE_SWISH_FWD) {
        double beta = 1.0;
        KN_SET(pw, CUDNN_ATTR_POINTWISE_SWISH_BETA, CUDNN_TYPE_DOUBLE, 1, &beta);
    }
    if (mode == CUDNN_POINTWISE_RELU_FWD && act == KN_ACT_LEAKY_RELU) {
        double slope = act_alpha;
        KN_SET(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE, CUDNN_TYPE_DOUBLE, 1, &slope);
    }
    if (mode == CUDNN_POINTWISE_RELU_FWD && (act == KN_ACT_RELU6 || act == KN_ACT_CLIP)) {
        /* Clip(lo, hi) is a ReLU clipped below at lo (slope 0 under it) and above at hi */
        double lo = act == KN_ACT_RELU6 ? 0.0 : act_alpha, hi = act == KN_ACT_RELU6 ? 6.0 : act_beta;
        KN_SET(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, 1, &lo);
        KN_SET(pw, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_DOUBLE, 1, &hi);
    }
    KN_CUDNN(cudnnBackendFinalize(pw));
    KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op));
    KN_SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    KN_SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) KN_SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    KN_SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    KN_CUDNN(cudnnBackendFinalize(*op));
    return KILN_OK;
}

/* The cuDNN pointwise mode of a fused activation, or -1 when cuDNN has none we trust. */
static int kn_dnn_act_mode(int act, float alpha, float beta) {
    switch (act) {
    case KN_ACT_CLIP: /* finite bounds only: cuDNN's clips are doubles, an infinite one is not documented */
        return isfinite(alpha) && isfinite(beta) && alpha <= beta ? CUDNN_POINTWISE_RELU_FWD : -1;
    case KN_ACT_RELU: case KN_ACT_LEAKY_RELU: case KN_ACT_RELU6: return CUDNN_POINTWISE_RELU_FWD;
    case KN_ACT_SIGMOID: return CUDNN_POINTWISE_SIGMOID_FWD;
    case KN_ACT_SILU: return CUDNN_POINTWISE_SWISH_FWD;
    case KN_ACT_GELU_ERF: return CUDNN_POINTWISE_GELU_FWD;
    case KN_ACT_GELU_TANH: return CUDNN_POINTWISE_GELU_APPROX_TANH_FWD;
    default: return -1;
    }
}

/* ---- geometry -------------------------------------------------------------------------------------- */

typedef struct kn_conv_geom {
    int nsp;     /* the node's spatial dims */
    int cnsp;    /* cuDNN's (at least 2) */
    int64_t x[5], w[5], y[5]; /* cuDNN dims */
    int64_t stride[3], dil[3], pre[3], post[3];
} kn_conv_geom;

static kiln_status kn_conv_geometry(const kn_kernel_args *a, int transpose, kn_conv_geom *g) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    int nsp = x->rank - 2;
    if (nsp < 1 || nsp > 3) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "convolution over %d spatial dims (1 to 3 supported)", nsp);
    if (w->rank != x->rank || y->rank != x->rank) return kn_node_error(n, KILN_ERR_SHAPE, "X, W and Y must have the same rank");
    const int64_t *ss = NULL, *ds = NULL, *ps = NULL, *ops = NULL;
    int nss = kn_attr_ints(n, "strides", &ss), nd = kn_attr_ints(n, "dilations", &ds);
    int npd = kn_attr_ints(n, "pads", &ps), nop = kn_attr_ints(n, "output_padding", &ops);
    if ((nss && nss != nsp) || (nd && nd != nsp) || (npd && npd != 2 * nsp) || (nop && nop != nsp))
        return kn_node_error(n, KILN_ERR_SHAPE, "strides, dilations, pads or output_padding do not match %d spatial dims", nsp);
    const char *auto_pad = kn_attr_s(n, "auto_pad", "NOTSET");
    int has_out_shape = kn_node_attr(n, "output_shape") != NULL;
    g->nsp = nsp;
    g->cnsp = nsp < 2 ? 2 : nsp;
    int lead = g->cnsp - nsp; /* unit spatial dims put in front */
    for (int i = 0; i < 2; i++) { g->x[i] = x->dims[i]; g->w[i] = w->dims[i]; g->y[i] = y->dims[i]; }
    for (int d = 0; d < g->cnsp; d++) {
        int j = d - lead;
        if (j < 0) {
            g->x[2 + d] = g->w[2 + d] = g->y[2 + d] = 1;
            g->stride[d] = g->dil[d] = 1;
            g->pre[d] = g->post[d] = 0;
            continue;
        }
        g->x[2 + d] = x->dims[2 + j];
        g->w[2 + d] = w->dims[2 + j];
        g->y[2 + d] = y->dims[2 + j];
        int64_t s = nss ? ss[j] : 1, dl = nd ? ds[j] : 1, k = w->dims[2 + j];
        if (s < 1 || dl < 1) return kn_node_error(n, KILN_ERR_SHAPE, "strides and dilations must be positive");
        g->stride[d] = s;
        g->dil[d] = dl;
        int64_t dk = (k - 1) * dl + 1;
        int same = strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0;
        int upper = strcmp(auto_pad, "SAME_UPPER") == 0;
        if (!transpose) {
            if (same) {
                int64_t total = (y->dims[2 + j] - 1) * s + dk - x->dims[2 + j];
                if (total < 0) total = 0;
                g->pre[d] = upper ? total / 2 : total - total / 2;
                g->post[d] = total - g->pre[d];
            } else if (strcmp(auto_pad, "VALID") == 0) {
                g->pre[d] = g->post[d] = 0;
            } else {
                g->pre[d] = npd ? ps[j] : 0;
                g->post[d] = npd ? ps[nsp + j] : 0;
            }
        } else {
            int64_t op = nop ? ops[j] : 0;
            if (same || has_out_shape) {
                int64_t total = s * (x->dims[2 + j] - 1) + op + dk - y->dims[2 + j];
                if (total < 0) total = 0;
                g->pre[d] = upper ? total / 2 : total - total / 2;
                g->post[d] = total - g->pre[d];
            } else if (strcmp(auto_pad, "VALID") == 0) {
                g->pre[d] = g->post[d] = 0;
            } else {
                g->pre[d] = npd ? ps[j] : 0;
                g->post[d] = npd ? ps[nsp + j] : 0;
            }
        }
    }
    return KILN_OK;
}

/* ---- plans ----------------------------------------------------------------------------------------- */

/* What cuDNN notes about an engine: numerics (non-deterministic; tensor cores or down-converted
 * inputs, which strict fp32 leaves out; a reduction in reduced precision; an FFT or Winograd
 * transform; known: the notes could be read) and whether it compiles its kernel at run time. */
typedef struct kn_dnn_notes { int known, nondet, tensor_core, reduced, transform, runtime; } kn_dnn_notes;

static kn_dnn_notes kn_dnn_engine_notes(cudnnBackendDescriptor_t eng) {
    kn_dnn_notes r = {0};
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    cudnnBackendBehaviorNote_t bnotes[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
    int64_t nn = 0;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn, notes) == CUDNN_STATUS_SUCCESS) {
        r.known = 1;
        for (int64_t k = 0; k < nn && k < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; k++) {
            if (notes[k] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) r.nondet = 1;
            if (notes[k] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || notes[k] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS)
                r.tensor_core = 1;
            if (notes[k] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) r.reduced = 1;
            if (notes[k] == CUDNN_NUMERICAL_NOTE_FFT || notes[k] == CUDNN_NUMERICAL_NOTE_WINOGRAD ||
                notes[k] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4 || notes[k] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6 ||
                notes[k] == CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13)
                r.transform = 1;
        }
    }
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                 CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &nn, bnotes) == CUDNN_STATUS_SUCCESS)
        for (int64_t k = 0; k < nn && k < CUDNN_BEHAVIOR_NOTE_TYPE_COUNT; k++)
            if (bnotes[k] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) r.runtime = 1;
    return r;
}

/* The engine configs of one heuristics query on `graph`, strict-fp32 filtered, at most `cap`;
 * *n is how many (0 when the heuristics take no engine). The caller destroys them. */
static kiln_status kn_dnn_cfgs(cudnnBackendDescriptor_t graph, int strict_fp32, int no_runtime,
                               cudnnBackendHeurMode_t mode, cudnnBackendDescriptor_t *out, int cap, int *n) {
    cudnnBackendDescriptor_t heur = NULL;
    cudnnBackendDescriptor_t cfgs[KN_DNN_MAX_CFGS] = {0};
    int n_filtered = 0, n_nondet = 0, nondet_idx[KN_DNN_MAX_CFGS], n_rt = 0, n_rt_out = 0;
    int64_t count = 0, got = 0;
    kiln_status st = KILN_OK;
    double t0 = kn_now_ms();
    *n = 0;
    KN_CUDNN_GOTO(st, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur), done);
    KN_CUDNN_GOTO(st, cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph), done);
    KN_CUDNN_GOTO(st, cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode), done);
    if (cudnnBackendFinalize(heur) != CUDNN_STATUS_SUCCESS) goto done; /* no engine for this graph */
    if (cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL) !=
            CUDNN_STATUS_SUCCESS ||
        count <= 0)
        count = KN_DNN_MAX_CFGS;
    if (count > KN_DNN_MAX_CFGS) count = KN_DNN_MAX_CFGS;
    for (int i = 0; i < count; i++)
        KN_CUDNN_GOTO(st, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]), done);
    if (cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs) !=
        CUDNN_STATUS_SUCCESS)
        got = 0;
    if (got > count) got = count;
    int usable[KN_DNN_MAX_CFGS] = {0}, runtime[KN_DNN_MAX_CFGS] = {0}, n_pre = 0;
    for (int i = 0; i < got; i++) {
        /* engines noted non-deterministic (atomics) are left out: the same input gives the same
         * bits in every run, eager or replayed; strict fp32 also leaves out tensor-core engines */
        kn_dnn_notes nt = {0};
        cudnnBackendDescriptor_t eng = NULL;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) == CUDNN_STATUS_SUCCESS) {
            int64_t ne = 0;
            if (cudnnBackendGetAttribute(cfgs[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ne, &eng) ==
                CUDNN_STATUS_SUCCESS)
                nt = kn_dnn_engine_notes(eng);
            cudnnBackendDestroyDescriptor(eng);
        }
        int nondet = nt.nondet;
        runtime[i] = nt.runtime;
        if (strict_fp32 && (nt.tensor_core || !nt.known)) { n_filtered++; continue; }
        if (no_runtime && runtime[i]) { n_rt_out++; continue; }
        if (nondet) { nondet_idx[n_nondet++] = i; continue; }
        usable[i] = 1;
        n_pre += !runtime[i];
    }
    /* in the heuristics' order, but with room for KN_DNN_MIN_PRECOMPILED engines that compile
     * nothing per shape where the list has them (mode A may rank only runtime-fusion configs
     * first; those cost ~30 ms at every new shape, docs/DESIGN.md "Stored engine configs") */
    int want_pre = mode == CUDNN_HEUR_MODE_A ? (n_pre < KN_DNN_MIN_PRECOMPILED ? n_pre : KN_DNN_MIN_PRECOMPILED) : 0;
    int have_pre = 0;
    for (int i = 0; i < got && *n < cap; i++) {
        if (!usable[i]) continue;
        if (runtime[i] && cap - *n <= want_pre - have_pre) continue;
        have_pre += !runtime[i];
        n_rt += runtime[i];
        out[(*n)++] = cfgs[i];
        cfgs[i] = NULL; /* handed to the caller */
    }
    if (*n == 0) { /* a non-deterministic engine still beats none */
        for (int j = 0; j < n_nondet && *n < cap; j++) {
            out[(*n)++] = cfgs[nondet_idx[j]];
            cfgs[nondet_idx[j]] = NULL;
        }
    }
done:
    KN_VERBOSE("cuda: cuDNN heuristics (mode %s): %lld configs, %d left out for fp32 (tensor cores), %d as "
               "non-deterministic, %d as compiled at run time, %d kept (%d compile at run time), %.2f ms",
               mode == CUDNN_HEUR_MODE_A ? "A" : "fallback", (long long)got, n_filtered, n_nondet, n_rt_out, *n, n_rt,
               kn_now_ms() - t0);
    for (int i = 0; i < KN_DNN_MAX_CFGS; i++)
        if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
    if (heur) cudnnBackendDestroyDescriptor(heur);
    if (st != KILN_OK) {
        for (int i = 0; i < *n; i++) cudnnBackendDestroyDescriptor(out[i]);
        *n = 0;
    }
    return st;
}

/* cuDNN's global engine index of an engine config; -1 when it cannot be read. */
static int64_t kn_dnn_cfg_engine(cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng = NULL;
    int64_t n = 0, gidx = -1;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return -1;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &gidx) != CUDNN_STATUS_SUCCESS)
        gidx = -1;
    cudnnBackendDestroyDescriptor(eng);
    return gidx;
}

/* Strict fp32: fills out[*n..cap) with the graph's global engines, default knobs, that none of
 * out[0..*n) uses and that strict fp32 allows (no tensor cores or reduced-precision reductions,
 * deterministic; none compiling at run time under no_runtime): first those cuDNN notes as FFT or
 * Winograd, then the others, each in index order. The heuristics rank tensor-core engines first,
 * so mode A leaves only a few knob variants of one or two engines for an fp32 convolution; the
 * transform engines it never ranks (workspace-hungry, fp32 arithmetic throughout) took ResNet-18's
 * 3x3 convolutions at batch 16 from 186 to 65 us (layer4) and 128 to 73 us (layer1) in a probe
 * on an H200 (bench/NOTES.md section 15). Engine finalization refuses the indexes that do not
 * take the graph; a config whose plan does not finalize at a shape is skipped when timed.
 * engs[j] gets the engine of out[j] for each config added (the caller destroys both). */
#define KN_DNN_MAX_GLOBAL 160
static void kn_dnn_global_cfgs(cudnnBackendDescriptor_t graph, int no_runtime, cudnnBackendDescriptor_t *out, int cap,
                               int *n, cudnnBackendDescriptor_t *engs) {
    int64_t count = 0, got = 0, used[KN_DNN_MAX_HEUR + 1];
    int n_used = 0, nc = 0;
    cudnnBackendDescriptor_t cand[KN_DNN_MAX_GLOBAL];
    int transform[KN_DNN_MAX_GLOBAL];
    for (int i = 0; i < *n && n_used < KN_DNN_MAX_HEUR + 1; i++) used[n_used++] = kn_dnn_cfg_engine(out[i]);
    if (cudnnBackendGetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &got, &count) !=
        CUDNN_STATUS_SUCCESS)
        return;
    for (int64_t gi = 0; gi < count && nc < KN_DNN_MAX_GLOBAL; gi++) {
        int dup = 0;
        for (int i = 0; i < n_used; i++) dup |= used[i] == gi;
        if (dup) continue;
        cudnnBackendDescriptor_t eng = NULL;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) break;
        int ok = cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph) ==
                     CUDNN_STATUS_SUCCESS &&
                 cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &gi) == CUDNN_STATUS_SUCCESS &&
                 cudnnBackendFinalize(eng) == CUDNN_STATUS_SUCCESS;
        kn_dnn_notes nt = {0};
        if (ok) nt = kn_dnn_engine_notes(eng);
        if (ok && nt.known && !nt.tensor_core && !nt.reduced && !nt.nondet && !(no_runtime && nt.runtime)) {
            transform[nc] = nt.transform;
            cand[nc++] = eng;
        } else {
            cudnnBackendDestroyDescriptor(eng);
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nc; i++) {
            if (!cand[i] || transform[i] != (pass == 0) || *n >= cap) continue;
            cudnnBackendDescriptor_t cfg = NULL;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendSetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cand[i]) ==
                    CUDNN_STATUS_SUCCESS &&
                cudnnBackendFinalize(cfg) == CUDNN_STATUS_SUCCESS) {
                engs[*n] = cand[i];
                out[(*n)++] = cfg;
                cand[i] = NULL;
            } else if (cfg) {
                cudnnBackendDestroyDescriptor(cfg);
            }
        }
    for (int i = 0; i < nc; i++)
        if (cand[i]) cudnnBackendDestroyDescriptor(cand[i]);
    (void)cudaGetLastError(); /* engines refusing the graph may leave an error behind */
}

/* Finalizes the plan of one engine config; 0 when it does not finalize or needs more workspace
 * than `ws_limit`. */
static int kn_dnn_finalize(cudnnHandle_t h, cudnnBackendDescriptor_t cfg, cudnnBackendDescriptor_t kcache,
                           size_t ws_limit, cudnnBackendDescriptor_t *plan, int64_t *ws_out) {
    cudnnBackendDescriptor_t p = NULL;
    *plan = NULL;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p) != CUDNN_STATUS_SUCCESS) return 0;
    int64_t ws = 0, nw = 0;
    if (cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg) !=
            CUDNN_STATUS_SUCCESS ||
        (kcache && cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_KERNEL_CACHE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                            &kcache) != CUDNN_STATUS_SUCCESS) ||
        cudnnBackendFinalize(p) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &nw, &ws) !=
            CUDNN_STATUS_SUCCESS ||
        ws < 0 || (size_t)ws > ws_limit) {
        cudnnBackendDestroyDescriptor(p);
        (void)cudaGetLastError(); /* engines that failed to finalize may leave a launch error behind */
        return 0;
    }
    *plan = p;
    *ws_out = ws;
    return 1;
}

/* ---- stored engine configs (tactic keys) ---------------------------------------------------------- */

#define KN_DNN_MAX_KNOBS 24

/* Writes "e<engine global index>[:k<knob type>=<value>...]" for an engine config: enough to build
 * the same config on the same operation graph at another shape without a heuristics query. */
static int kn_dnn_cfg_key(cudnnBackendDescriptor_t cfg, char *buf, size_t cap, int *runtime) {
    cudnnBackendDescriptor_t eng = NULL, knobs[KN_DNN_MAX_KNOBS] = {0};
    int64_t n = 0, gidx = -1, nk = 0;
    int ok = 0;
    buf[0] = 0;
    *runtime = 0;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return 0;
    for (int i = 0; i < KN_DNN_MAX_KNOBS; i++)
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[i]) != CUDNN_STATUS_SUCCESS) goto done;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &gidx) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, KN_DNN_MAX_KNOBS,
                                 &nk, knobs) != CUDNN_STATUS_SUCCESS ||
        gidx < 0 || nk < 0 || nk > KN_DNN_MAX_KNOBS)
        goto done;
    *runtime = kn_dnn_engine_notes(eng).runtime;
    size_t len = (size_t)snprintf(buf, cap, "e%lld", (long long)gidx);
    for (int64_t i = 0; i < nk && len < cap; i++) {
        cudnnBackendKnobType_t type;
        int64_t value = 0;
        if (cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &n, &type) !=
                CUDNN_STATUS_SUCCESS ||
            cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &n, &value) !=
                CUDNN_STATUS_SUCCESS)
            goto done;
        len += (size_t)snprintf(buf + len, cap - len, ":k%d=%lld", (int)type, (long long)value);
    }
    ok = len < cap;
done:
    for (int i = 0; i < KN_DNN_MAX_KNOBS; i++)
        if (knobs[i]) cudnnBackendDestroyDescriptor(knobs[i]);
    if (eng) cudnnBackendDestroyDescriptor(eng);
    if (!ok) buf[0] = 0;
    return ok;
}

/* Builds and finalizes the plan of the engine config `key` (kn_dnn_cfg_key) on `graph`; 0 when
 * the key does not parse, the engine does not take this graph, or the plan does not finalize
 * here (a knob value that this shape does not allow). */
static int kn_dnn_plan_from_key(cudnnHandle_t h, cudnnBackendDescriptor_t graph, const char *key,
                                cudnnBackendDescriptor_t kcache, size_t ws_limit, cudnnBackendDescriptor_t *plan,
                                int64_t *ws) {
    long long gidx = -1;
    int used = 0, nk = 0, ok = 0;
    int types[KN_DNN_MAX_KNOBS];
    int64_t values[KN_DNN_MAX_KNOBS];
    *plan = NULL;
    if (sscanf(key, "e%lld%n", &gidx, &used) != 1 || gidx < 0) return 0;
    for (const char *p = key + used; *p;) {
        int t, u = 0;
        long long v;
        if (nk == KN_DNN_MAX_KNOBS || sscanf(p, ":k%d=%lld%n", &t, &v, &u) != 2 || u == 0) return 0;
        types[nk] = t;
        values[nk++] = (int64_t)v;
        p += u;
    }
    cudnnBackendDescriptor_t eng = NULL, cfg = NULL, knobs[KN_DNN_MAX_KNOBS] = {0};
    int64_t gi = gidx;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &gi) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendFinalize(eng) != CUDNN_STATUS_SUCCESS)
        goto done;
    for (int i = 0; i < nk; i++) {
        cudnnBackendKnobType_t type = (cudnnBackendKnobType_t)types[i];
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[i]) != CUDNN_STATUS_SUCCESS ||
            cudnnBackendSetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &type) !=
                CUDNN_STATUS_SUCCESS ||
            cudnnBackendSetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &values[i]) !=
                CUDNN_STATUS_SUCCESS ||
            cudnnBackendFinalize(knobs[i]) != CUDNN_STATUS_SUCCESS)
            goto done;
    }
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng) !=
            CUDNN_STATUS_SUCCESS ||
        (nk > 0 && cudnnBackendSetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk,
                                            knobs) != CUDNN_STATUS_SUCCESS) ||
        cudnnBackendFinalize(cfg) != CUDNN_STATUS_SUCCESS)
        goto done;
    ok = kn_dnn_finalize(h, cfg, kcache, ws_limit, plan, ws);
done:
    if (cfg) cudnnBackendDestroyDescriptor(cfg);
    for (int i = 0; i < nk; i++)
        if (knobs[i]) cudnnBackendDestroyDescriptor(knobs[i]);
    if (eng) cudnnBackendDestroyDescriptor(eng);
    if (!ok) (void)cudaGetLastError();
    return ok;
}

/* The session's kernel caches, one per step and graph variant. Steps prepare on several threads
 * (kn_kernel.prepare_concurrent): every access holds the context's lock. */
static kn_dnn_kcache *kn_dnn_kcache_find(kn_cuda_ctx *c, const kn_node *node, int variant) {
    for (int i = 0; c && i < c->n_kcache; i++)
        if (c->kcache[i].node == node && c->kcache[i].variant == variant) return &c->kcache[i];
    return NULL;
}

/* Whether this step's engine made no plan on the dynamic graph before (in this session). */
static int kn_dnn_kcache_refused(kn_cuda_ctx *c, const kn_node *node, int variant) {
    if (!c) return 0;
    pthread_mutex_lock(&c->lock);
    const kn_dnn_kcache *e = kn_dnn_kcache_find(c, node, variant);
    int refused = e && e->refused;
    pthread_mutex_unlock(&c->lock);
    return refused;
}

static void kn_dnn_kcache_refuse(kn_cuda_ctx *c, const kn_node *node, int variant) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    kn_dnn_kcache *e = kn_dnn_kcache_find(c, node, variant);
    if (e) e->refused = 1;
    pthread_mutex_unlock(&c->lock);
}

/* The kernel cache for this step and graph variant, made on first use from `graph` (a
 * dynamic-shape graph of that variant); NULL when cuDNN makes none. */
static kiln_status kn_dnn_kernel_cache_locked(kn_cuda_ctx *c, const kn_node *node, int variant,
                                              cudnnBackendDescriptor_t graph, cudnnBackendDescriptor_t *out) {
    kn_dnn_kcache *e = kn_dnn_kcache_find(c, node, variant);
    if (e) {
        *out = e->cache;
        return KILN_OK;
    }
    KN_TRY(KN_GROW(c->kcache, c->cap_kcache, c->n_kcache + 1));
    cudnnBackendDescriptor_t kc = NULL;
    KN_CUDNN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_KERNEL_CACHE_DESCRIPTOR, &kc));
    if (cudnnBackendSetAttribute(kc, CUDNN_ATTR_KERNEL_CACHE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnBackendFinalize(kc) != CUDNN_STATUS_SUCCESS) {
        cudnnBackendDestroyDescriptor(kc);
        return KILN_OK;
    }
    c->kcache[c->n_kcache++] = (kn_dnn_kcache){node, variant, 0, kc};
    *out = kc;
    return KILN_OK;
}

static kiln_status kn_dnn_kernel_cache(const kn_kernel_args *a, int variant, cudnnBackendDescriptor_t graph,
                                       cudnnBackendDescriptor_t *out) {
    kn_cuda_ctx *c = kn_cuda_ctx_of(a);
    *out = NULL;
    if (!c) return KILN_OK;
    pthread_mutex_lock(&c->lock);
    kiln_status st = kn_dnn_kernel_cache_locked(c, a->node, variant, graph, out);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* A stored engine config of an engine that compiles at run time, on a dynamic-shape graph with
 * the step's kernel cache; 1 when it made the plan. A refusal is remembered for the step and
 * session. (The engine with default knobs, and the heuristics' configs on the dynamic graph, were
 * tried too and never made a plan where the stored knobs did not: cuDNN 9.19, ResNet-18/50.) */
static int kn_dnn_plan_dynamic(const kn_kernel_args *a, kn_conv_state *s, cudnnBackendDescriptor_t graph, size_t ws_limit) {
    cudnnBackendDescriptor_t kc = NULL;
    if (kn_dnn_kernel_cache(a, s->fused * 2 + s->cpad, graph, &kc) != KILN_OK || !kc) {
        kn_clear_error();
        return 0;
    }
    if (kn_dnn_plan_from_key(kn_dnn_handle(a), graph, s->use_eng, kc, ws_limit, &s->plan, &s->plan_ws)) return 1;
    kn_dnn_kcache_refuse(kn_cuda_ctx_of(a), a->node, s->fused * 2 + s->cpad);
    return 0;
}

/* The tactics of `graph`: mode A's first KN_DNN_MAX_HEUR configs (in strict fp32 filled up with
 * global engines, kn_dnn_global_cfgs), then the fallback list as one
 * more tactic. Sets s->n_tactics; with want >= 0, finalizes the plan of tactic `want` (or, when
 * that one does not finalize here, of the first that does) into s->plan. */
static kiln_status kn_dnn_plans(const kn_kernel_args *a, kn_conv_state *s, cudnnBackendDescriptor_t graph, int is_float,
                                int want) {
    cudnnHandle_t h = kn_dnn_handle(a);
    kn_cuda_ctx *c = kn_cuda_ctx_of(a);
    size_t ws_limit = c ? kn_cuda_dnn_ws_limit(c) : KN_CUDNN_WS_MAX;
    int strict_fp32 = is_float && !(c && c->precision == KILN_PRECISION_TF32);
    int no_rtc = c && c->avoid_runtime_compilation;
    cudnnBackendDescriptor_t ha[KN_DNN_MAX_HEUR], fb[KN_DNN_MAX_CFGS];
    int na = 0, nf = 0, have_fb = 0;
    if (s->use_eng) { /* the stored engine config only: no heuristics query */
        double t0 = kn_now_ms();
        s->n_plans = s->dynamic ? kn_dnn_plan_dynamic(a, s, graph, ws_limit)
                                : kn_dnn_plan_from_key(h, graph, s->use_eng, NULL, ws_limit, &s->plan, &s->plan_ws);
        s->n_tactics = s->n_plans;
        if (s->n_plans) snprintf(s->eng_key, sizeof s->eng_key, "%s", s->use_eng);
        KN_VERBOSE("cuda: stored engine config %s%s: %s in %.2f ms", s->use_eng, s->dynamic ? ", dynamic shapes" : "",
                   s->n_plans ? "plan made" : "no plan", kn_now_ms() - t0);
        return KILN_OK;
    }
    /* heuristics queries cost more than finalizing a plan (~10 ms each, the fallback list's
     * most): the fallback list is read only when it is counted or needed */
    /* strict fp32: mode A's list is knob variants of one or two engines; the last
     * KN_DNN_GLOBAL_SLOTS places go to other engines (kn_dnn_global_cfgs) */
    kiln_status st = kn_dnn_cfgs(graph, strict_fp32, no_rtc, CUDNN_HEUR_MODE_A, ha,
                                 strict_fp32 ? KN_DNN_MAX_HEUR - KN_DNN_GLOBAL_SLOTS : KN_DNN_MAX_HEUR, &na);
    cudnnBackendDescriptor_t ge[KN_DNN_MAX_HEUR] = {0}; /* engines of global configs in ha */
    const int n_heur = na;
    if (st == KILN_OK && strict_fp32 && na < KN_DNN_MAX_HEUR) kn_dnn_global_cfgs(graph, no_rtc, ha, KN_DNN_MAX_HEUR, &na, ge);
    s->n_global = na - n_heur;
    if (st == KILN_OK && (want < 0 || want >= na)) {
        st = kn_dnn_cfgs(graph, strict_fp32, no_rtc, CUDNN_HEUR_MODE_FALLBACK, fb, KN_DNN_MAX_CFGS, &nf);
        have_fb = 1;
    }
    s->n_tactics = na + (have_fb ? nf > 0 : 1);
    if (st == KILN_OK && want >= 0) {
        int t = want <= na ? want : 0;
        int n_tried = 0;
        /* the wanted tactic first, then every other one in order (the fallback list last) */
        for (int k = -1; k <= na && !s->plan && st == KILN_OK; k++) {
            int cand = k < 0 ? t : k;
            if (k >= 0 && cand == t) continue;
            if (cand < na) {
                n_tried++;
                if (kn_dnn_finalize(h, ha[cand], NULL, ws_limit, &s->plan, &s->plan_ws)) {
                    kn_dnn_cfg_key(ha[cand], s->eng_key, sizeof s->eng_key, &s->eng_rt);
                    break;
                }
                continue;
            }
            if (!have_fb) {
                st = kn_dnn_cfgs(graph, strict_fp32, no_rtc, CUDNN_HEUR_MODE_FALLBACK, fb, KN_DNN_MAX_CFGS, &nf);
                have_fb = 1;
            }
            for (int j = 0; j < nf && !s->plan; j++, n_tried++)
                if (kn_dnn_finalize(h, fb[j], NULL, ws_limit, &s->plan, &s->plan_ws)) {
                    kn_dnn_cfg_key(fb[j], s->eng_key, sizeof s->eng_key, &s->eng_rt);
                    break;
                }
        }
        s->n_plans = s->plan != NULL;
        KN_VERBOSE("cuda: tactic %d of %d: %s after %d finalize attempt(s)", want, s->n_tactics,
                   s->plan ? "plan made" : "no plan", n_tried);
    }
    for (int i = 0; i < na; i++) {
        cudnnBackendDestroyDescriptor(ha[i]);
        if (ge[i]) cudnnBackendDestroyDescriptor(ge[i]);
    }
    for (int i = 0; i < nf; i++) cudnnBackendDestroyDescriptor(fb[i]);
    return st;
}

/* Builds the operation graph (fused or the convolution alone) and its plans. */
static kiln_status kn_conv_build(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g, int fused, int want) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    int nd = 2 + g->cnsp;
    cudnnDataType_t io = kn_dnn_dtype(x->dtype), comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t tx, tw, ty, conv, op_conv, ops[4];
    int n_ops = 0;
    KN_TRY(kn_dnn_tensor(s, KN_UID_X, io, nd, g->x, kn_dnn_align(x->data), false, &tx));
    KN_TRY(kn_dnn_tensor(s, KN_UID_W, io, nd, g->w, kn_dnn_align(w->data), false, &tw));
    KN_TRY(kn_dnn_tensor(s, KN_UID_Y, io, nd, g->y, kn_dnn_align(y->data), false, &ty));

    KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv));
    int64_t nsp = g->cnsp;
    cudnnConvolutionMode_t cm = CUDNN_CROSS_CORRELATION;
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &cm);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nsp);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, nsp, g->dil);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, nsp, g->stride);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, nsp, g->pre);
    KN_SET(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, nsp, g->post);
    KN_CUDNN(cudnnBackendFinalize(conv));

    float alpha = 1.0f, beta = 0.0f;
    cudnnBackendDescriptor_t conv_out = ty;
    /* fused: 1 bias, residual and activation in the graph; 2 bias and residual only */
    int with_act = fused == 1 && s->act != KN_ACT_NONE;
    int need_pw = fused && (s->has_bias || s->has_res || with_act);
    if (need_pw) KN_TRY(kn_dnn_tensor(s, KN_UID_VIRT, comp, nd, g->y, 16, true, &conv_out));
    if (!s->transpose) {
        KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op_conv));
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tx);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tw);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv_out);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    } else {
        /* ConvTranspose: dx = our Y, dy = our X */
        KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, &op_conv));
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ty);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tw);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tx);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
        KN_SET(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    }
    KN_CUDNN(cudnnBackendFinalize(op_conv));
    ops[n_ops++] = op_conv;

    if (need_pw) {
        cudnnBackendDescriptor_t cur = conv_out;
        int steps = s->has_bias + s->has_res + with_act;
        int64_t vuid = KN_UID_VIRT + 1;
        if (s->has_bias) {
            int64_t bd[5] = {1, g->y[1], 1, 1, 1};
            cudnnBackendDescriptor_t tb, out, op;
            KN_TRY(kn_dnn_tensor(s, KN_UID_BIAS, io, nd, bd, kn_dnn_align(a->in[2].data), false, &tb));
            if (--steps) KN_TRY(kn_dnn_tensor(s, vuid++, comp, nd, g->y, 16, true, &out));
            else out = ty;
            KN_TRY(kn_dnn_pointwise(s, CUDNN_POINTWISE_ADD, cur, tb, out, 0, 0, 0, &op));
            ops[n_ops++] = op;
            cur = out;
        }
        if (s->has_res) {
            cudnnBackendDescriptor_t tr, out, op;
            KN_TRY(kn_dnn_tensor(s, KN_UID_RES, io, nd, g->y, kn_dnn_align(a->in[3].data), false, &tr));
            if (--steps) KN_TRY(kn_dnn_tensor(s, vuid++, comp, nd, g->y, 16, true, &out));
            else out = ty;
            KN_TRY(kn_dnn_pointwise(s, CUDNN_POINTWISE_ADD, cur, tr, out, 0, 0, 0, &op));
            ops[n_ops++] = op;
            cur = out;
        }
        if (with_act) {
            cudnnBackendDescriptor_t op;
            KN_TRY(kn_dnn_pointwise(s, (cudnnPointwiseMode_t)kn_dnn_act_mode(s->act, s->act_alpha, s->act_beta), cur, NULL, ty, s->act, s->act_alpha, s->act_beta, &op));
            ops[n_ops++] = op;
        }
    }
    cudnnBackendDescriptor_t graph;
    cudnnHandle_t h = kn_dnn_handle(a);
    if (!h) return kn_node_error(a->node, KILN_ERR_DEVICE, "no cuDNN handle");
    KN_TRY(kn_dnn_new(s, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
    KN_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops);
    KN_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    if (s->dynamic) {
        bool dyn = true;
        KN_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED, CUDNN_TYPE_BOOLEAN, 1, &dyn);
    }
    if (cudnnBackendFinalize(graph) != CUDNN_STATUS_SUCCESS) return KILN_OK; /* no plans: caller falls back */
    /* the fallback list adds engines the heuristics rank low (true-fp32 ones among them) */
    return kn_dnn_plans(a, s, graph, x->dtype == KILN_F32, want);
}

/* Whether kiln's NHWC depthwise kernel takes the step: a 2-D NHWC f16/bf16 convolution with
 * one input and one output channel per group, channels a multiple of 8. */
static int kn_conv_dw_eligible(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    if (s->transpose || !s->nhwc || g->nsp != 2 || (x->dtype != KILN_F16 && x->dtype != KILN_BF16)) return 0;
    int64_t c = x->dims[1];
    if (kn_attr_i(a->node, "group", 1) != c || y->dims[1] != c || w->dims[1] != 1 || c % 8) return 0;
    if (kn_tensor_numel(x) > INT32_MAX || kn_tensor_numel(y) > INT32_MAX) return 0;
    for (int d = 0; d < 2; d++)
        if (g->stride[d] > 65536 || g->dil[d] > 65536 || g->pre[d] > 65536 || g->w[2 + d] > 65536) return 0;
    if (s->has_bias && a->in[2].dtype != x->dtype) return 0;
    return 1; /* the planner aligns every buffer to 256 bytes; the launch checks 16 */
}

/* The 2-D geometry and epilogue activation kiln's NHWC kernels share, from cuDNN's view of it. */
static knc_conv2d kn_conv2d_of(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g) {
    knc_conv2d c = {.dtype = a->in[0].dtype,
                    .n = (int)g->x[0],
                    .c = (int)g->x[1],
                    .h = (int)g->x[2],
                    .w = (int)g->x[3],
                    .oh = (int)g->y[2],
                    .ow = (int)g->y[3],
                    .r = (int)g->w[2],
                    .s = (int)g->w[3],
                    .act = s->act,
                    .alpha = s->act_alpha,
                    .beta = s->act_beta};
    for (int d = 0; d < 2; d++) {
        c.stride[d] = (int)g->stride[d];
        c.dil[d] = (int)g->dil[d];
        c.pad[d] = (int)g->pre[d];
    }
    return c;
}

static void kn_conv_dw_fill(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g) {
    memset(&s->dw, 0, sizeof s->dw);
    s->dw.g = kn_conv2d_of(a, s, g);
}

/* Whether kiln's implicit-GEMM kernel competes: a 2-D NHWC f16/bf16 convolution with one group,
 * input and output channels multiples of 8 (the kernel's 16-byte copies and paired stores).
 * Depends on the node, the dtype and the channel counts only, so the numbering is the same at
 * every shape. */
static int kn_conv_ig_eligible(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    if (s->transpose || !s->nhwc || g->nsp != 2 || (x->dtype != KILN_F16 && x->dtype != KILN_BF16)) return 0;
    int64_t c = x->dims[1], k = y->dims[1];
    if (kn_attr_i(a->node, "group", 1) != 1 || w->dims[1] != c || c % 8 || k % 8) return 0;
    if (kn_tensor_numel(x) > INT32_MAX || kn_tensor_numel(y) > INT32_MAX || kn_tensor_numel(w) > INT32_MAX) return 0;
    for (int d = 0; d < 2; d++)
        if (g->stride[d] > 65536 || g->dil[d] > 65536 || g->pre[d] > 65536 || g->w[2 + d] > 65536) return 0;
    if (s->has_bias && a->in[2].dtype != x->dtype) return 0;
    if (s->has_res && a->in[3].dtype != x->dtype) return 0;
    return 1;
}

static void kn_conv_ig_fill(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g) {
    knc_igemm *p = &s->ig;
    memset(p, 0, sizeof *p);
    p->g = kn_conv2d_of(a, s, g);
    p->k = (int)g->y[1];
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        (void)cudaGetLastError(); /* not left for a later launch check to report */
        sms = 132;                /* an H100's count: the split is a performance choice only */
    }
    p->splits = knc_igemm_splits(p, sms);
}

/* Whether kiln's direct kernel for few input channels takes the step (a provisional kernel only,
 * not a tactic): a 2-D NHWC f16/bf16 convolution with one group on fewer than 8 input channels (an
 * image stem on 3-4), output channels a multiple of 8, weights within the kernel's 48 KB of
 * shared memory. */
static int kn_conv_dc_eligible(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    if (s->transpose || !s->nhwc || g->nsp != 2 || (x->dtype != KILN_F16 && x->dtype != KILN_BF16)) return 0;
    int64_t c = x->dims[1], k = y->dims[1];
    if (kn_attr_i(a->node, "group", 1) != 1 || w->dims[1] != c || c >= 8 || k % 8) return 0;
    if (kn_tensor_numel(w) * 2 > 48 * 1024) return 0;
    if (kn_tensor_numel(x) > INT32_MAX || kn_tensor_numel(y) > INT32_MAX) return 0;
    for (int d = 0; d < 2; d++)
        if (g->stride[d] > 65536 || g->dil[d] > 65536 || g->pre[d] > 65536 || g->w[2 + d] > 65536) return 0;
    if (s->has_bias && a->in[2].dtype != x->dtype) return 0;
    if (s->has_res && a->in[3].dtype != x->dtype) return 0;
    return 1;
}

/* Whether the padded-channel variant competes: an NHWC f16/bf16 2-D convolution with one group
 * and fewer than KN_CPAD input channels, not a multiple of 4 (cuDNN's tensor-core engines want
 * multiples of 8; on 3 channels ResNet's 7x7 stem ran at a fifth of the speed of the next
 * layers; on 4, which the layout pass pads a network's image to, cuDNN has first-layer kernels
 * that beat 8 channels at every batch). Depends on the node, the dtype and the channel count
 * only, so the tactic numbering is the same at every shape. */
static int kn_conv_cpad_eligible(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1];
    if (s->transpose || !s->nhwc || g->nsp != 2 || (x->dtype != KILN_F16 && x->dtype != KILN_BF16)) return 0;
    return kn_attr_i(a->node, "group", 1) == 1 && x->dims[1] < KN_CPAD && x->dims[1] % 4 != 0 && w->dims[1] == x->dims[1];
}

/* The padded variant's buffers for this shape: xpad for X, wpad filled from W on the session's
 * stream (prepare runs outside any capture), and the workspace of the plan. */
static kiln_status kn_conv_cpad_buffers(const kn_kernel_args *a, kn_conv_state *s) {
    const kn_tensor *x = &a->in[0], *w = &a->in[1];
    if (!a->ctx || !w->data)
        return kn_node_error(a->node, KILN_ERR_UNSUPPORTED, "the padded-channel convolution needs a session and its weight");
    int64_t c = x->dims[1], rows_x = kn_tensor_numel(x) / c, rows_w = kn_tensor_numel(w) / c;
    KN_TRY(kn_cuda_malloc(&s->xpad, (size_t)rows_x * KN_CPAD * 2, "a convolution's padded input"));
    KN_TRY(kn_cuda_malloc(&s->wpad, (size_t)rows_w * KN_CPAD * 2, "a convolution's padded weight"));
    KN_CU(knc_pad_channels8(w->data, s->wpad, (int)c, rows_w, kn_cuda_stream(a)));
    s->cpad = 1;
    return kn_cuda_reserve_dnn_ws(kn_cuda_ctx_of(a), (size_t)s->plan_ws);
}

/* Everything the cuDNN graph of this step and its plan depend on, with the stored tactic key; 0
 * when it does not fit (the step then builds its own plan). */
static int kn_conv_signature(const kn_kernel_args *a, const kn_conv_state *s, const kn_conv_geom *g, const char *key,
                             char *buf, size_t cap) {
    size_t n = 0;
#define KN_SIG(...)                                                                  \
    do {                                                                             \
        int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);                            \
        if (w_ < 0 || (size_t)w_ >= cap - n) return 0;                               \
        n += (size_t)w_;                                                             \
    } while (0)
    KN_SIG("%s|t%d h%d d%d b%d r%d a%d:%a:%a s%d|", key, s->transpose, s->nhwc, (int)a->in[0].dtype, s->has_bias,
           s->has_res, s->act, s->act_alpha, s->act_beta, g->cnsp);
    for (int i = 0; i < 2 + g->cnsp; i++) KN_SIG("%lld,%lld,%lld;", (long long)g->x[i], (long long)g->w[i], (long long)g->y[i]);
    for (int i = 0; i < g->cnsp; i++)
        KN_SIG("%lld,%lld,%lld,%lld;", (long long)g->stride[i], (long long)g->dil[i], (long long)g->pre[i],
               (long long)g->post[i]);
    KN_SIG("al%lld,%lld,%lld,%lld,%lld", (long long)kn_dnn_align(a->in[0].data), (long long)kn_dnn_align(a->in[1].data),
           (long long)kn_dnn_align(a->out[0].data), (long long)(s->has_bias ? kn_dnn_align(a->in[2].data) : 0),
           (long long)(s->has_res ? kn_dnn_align(a->in[3].data) : 0));
#undef KN_SIG
    return 1;
}

/* The stored engine config's plan for graph variant `fused`, shared with the session's other
 * steps of the same signature (see "shared plans" above); builds its own where it cannot share. */
static kiln_status kn_conv_plan_shared(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g, int fused,
                                       const char *key) {
    kn_cuda_ctx *c = kn_cuda_ctx_of(a);
    char sig[KN_DNN_SIG_MAX];
    if (!c || !kn_conv_signature(a, s, g, key, sig, sizeof sig)) return kn_conv_build(a, s, g, fused, 0);
    pthread_mutex_lock(&c->lock);
    kn_dnn_shared *e = NULL;
    for (int i = 0; i < c->n_shared && !e; i++)
        if (strcmp(c->shared[i]->sig, sig) == 0) e = c->shared[i];
    if (e && !e->ready && kn_prepare_may_defer()) {
        /* another thread is building it: build something else meanwhile (prepare.c) */
        pthread_mutex_unlock(&c->lock);
        kn_prepare_defer();
        s->deferred = 1;
        return KILN_OK;
    }
    if (e) {
        e->waiters++;
        while (!e->ready) pthread_cond_wait(&c->shared_ready, &c->lock);
        e->waiters--;
        int usable = !e->failed && (size_t)e->ws <= kn_cuda_dnn_ws_limit_locked(c);
        if (usable) {
            e->refs++;
            s->shared = e;
            s->shared_ctx = c;
            s->plan = e->plan;
            s->plan_ws = e->ws;
            s->n_plans = s->n_tactics = 1;
            snprintf(s->eng_key, sizeof s->eng_key, "%s", s->use_eng);
        } else if (e->refs == 0 && e->waiters == 0) {
            kn_dnn_shared_remove(c, e);
        }
        pthread_mutex_unlock(&c->lock);
        if (!usable) return kn_conv_build(a, s, g, fused, 0);
        KN_VERBOSE("cuda: %s '%s': plan shared with an earlier step of the same graph and engine", kn_op_name(a->node->op),
                   a->node->name ? a->node->name : "");
        return KILN_OK;
    }
    e = kn_calloc(1, sizeof *e);
    if (!e || KN_GROW(c->shared, c->cap_shared, c->n_shared + 1) != KILN_OK) {
        pthread_mutex_unlock(&c->lock);
        kn_free(e);
        kn_clear_error();
        return kn_conv_build(a, s, g, fused, 0);
    }
    memcpy(e->sig, sig, sizeof sig);
    c->shared[c->n_shared++] = e;
    pthread_mutex_unlock(&c->lock);
    kiln_status st = kn_conv_build(a, s, g, fused, 0);
    pthread_mutex_lock(&c->lock);
    e->ready = 1;
    if (st == KILN_OK && s->plan) { /* the entry takes the plan and its descriptors over */
        e->plan = s->plan;
        e->ws = s->plan_ws;
        e->n_desc = s->n_desc;
        memcpy(e->desc, s->desc, sizeof(s->desc[0]) * (size_t)s->n_desc);
        s->n_desc = 0;
        e->refs = 1;
        s->shared = e;
        s->shared_ctx = c;
    } else {
        e->failed = 1;
        if (e->waiters == 0) kn_dnn_shared_remove(c, e);
    }
    pthread_cond_broadcast(&c->shared_ready);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* The step from its tactic key "cudnn1:f<fused>:p<padded>:r<runtime>:<engine config>": the graph variant
 * and the engine config that won when the builder timed the tactic, built at this shape without
 * a heuristics query (docs/DESIGN.md, "Convolution tactics"). An error when the key does not
 * build here; the caller then prepares the tactic index as usual. */
static kiln_status kn_conv_plan_keyed(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g, const char *key) {
    const kn_node *n = a->node;
    int fused = -1, pad = -1, rt = -1, used = 0;
    if (sscanf(key, "cudnn1:f%d:p%d:r%d:%n", &fused, &pad, &rt, &used) != 3 || used == 0 || fused < 0 || fused > 2 ||
        pad < 0 || pad > 1 || rt < 0 || rt > 1)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "tactic key '%s' is not a cuDNN engine config", key);
    const kn_cuda_ctx *cx = kn_cuda_ctx_of(a);
    if (rt && cx && cx->avoid_runtime_compilation)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "tactic key '%s' compiles at run time, which the module avoids", key);
    if ((pad && !kn_conv_cpad_eligible(a, s, g)) || (fused && s->transpose) ||
        (fused == 1 && s->act != KN_ACT_NONE && kn_dnn_act_mode(s->act, s->act_alpha, s->act_beta) < 0))
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "tactic key '%s' does not fit this convolution", key);
    kn_conv_geom pg = *g;
    if (pad) pg.x[1] = pg.w[1] = KN_CPAD;
    s->use_eng = key + used;
    s->fused = fused; /* the kernel cache's variant */
    s->cpad = pad;
    kiln_status st = KILN_ERR_UNSUPPORTED;
    if (rt && a->ctx && !kn_dnn_kcache_refused(kn_cuda_ctx_of(a), a->node, fused * 2 + pad)) {
        /* an engine that compiles at run time (~30 ms a shape): on a dynamic-shape graph with the
         * step's kernel cache, a later shape may bind the kernel compiled at the first */
        s->dynamic = 1;
        st = kn_conv_build(a, s, &pg, fused, 0);
        if (st != KILN_OK || !s->plan) {
            kn_clear_error();
            kn_conv_drop_plans(s);
            s->dynamic = 0;
            st = KILN_ERR_UNSUPPORTED;
        }
    }
    if (st != KILN_OK) st = rt || pad ? kn_conv_build(a, s, &pg, fused, 0) : kn_conv_plan_shared(a, s, &pg, fused, key);
    s->use_eng = NULL;
    s->cpad = 0;
    KN_TRY(st);
    if (s->deferred) return KILN_OK; /* nothing built: the caller drops this state */
    if (!s->plan) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "the stored engine config does not build at this shape");
    s->fused = fused;
    s->eng_rt = rt;
    if (pad) return kn_conv_cpad_buffers(a, s);
    return a->ctx ? kn_cuda_reserve_dnn_ws(kn_cuda_ctx_of(a), (size_t)s->plan_ws) : KILN_OK;
}

/* The padded variant, tactic `inner` of its graph: the fused graph where an engine takes it,
 * else the convolution alone with kiln's epilogue. Allocates xpad for this shape and fills wpad
 * from W on the session's stream (prepare runs outside any capture). */
static kiln_status kn_conv_plan_cpad(const kn_kernel_args *a, kn_conv_state *s, const kn_conv_geom *g, int inner) {
    const kn_node *n = a->node;
    if (!a->ctx || !a->in[1].data)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "the padded-channel convolution needs a session and its weight");
    kn_conv_geom pg = *g;
    pg.x[1] = pg.w[1] = KN_CPAD;
    int fusable = (s->has_bias || s->has_res || s->act != KN_ACT_NONE) &&
                  (s->act == KN_ACT_NONE || kn_dnn_act_mode(s->act, s->act_alpha, s->act_beta) >= 0);
    if (fusable && kn_conv_build(a, s, &pg, 1, inner) == KILN_OK && s->n_plans > 0) s->fused = 1;
    kn_clear_error();
    if (!s->fused) {
        kn_conv_drop_plans(s);
        KN_TRY(kn_conv_build(a, s, &pg, 0, inner));
    }
    if (s->n_plans == 0 || (a->timing && inner >= s->n_tactics))
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "padded-channel tactic %d is not offered at this shape", inner);
    KN_TRY(kn_conv_cpad_buffers(a, s));
    KN_VERBOSE("cuda: %s '%s': padded to %d channels, tactic %d of %d, %s", kn_op_name(n->op), n->name ? n->name : "",
               KN_CPAD, inner, s->n_tactics, s->fused ? "bias/residual/activation fused" : "epilogue by kiln");
    return KILN_OK;
}

/* Executes `plan` on handle h's stream with the variant pack (uids[i] -> ptrs[i]) and workspace. */
static kiln_status kn_conv_execute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, void *const *ptrs,
                                   const int64_t *uids, int np, void *ws) {
    cudnnBackendDescriptor_t vp = NULL;
    kiln_status st = KILN_OK;
    KN_CUDNN_GOTO(st, cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp), done);
    KN_CUDNN_GOTO(st, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, np, ptrs), done);
    KN_CUDNN_GOTO(st, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, np, uids), done);
    KN_CUDNN_GOTO(st, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws), done);
    KN_CUDNN_GOTO(st, cudnnBackendFinalize(vp), done);
    KN_CUDNN_GOTO(st, cudnnBackendExecute(h, plan, vp), done);
done:
    if (vp) cudnnBackendDestroyDescriptor(vp);
    return st;
}

/* Prepares a step for tactic `want` (want < 0: only counts the tactics, s->n_tactics). */
/* A new state with what every tactic needs: epilogue, layout, geometry (checked). */
static kiln_status kn_conv_begin(const kn_kernel_args *a, kn_conv_state **out, kn_conv_geom *g) {
    *out = NULL;
    const kn_node *n = a->node;
    kn_conv_state *s = kn_calloc(1, sizeof *s);
    if (!s) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a convolution");
    s->transpose = n->op == KN_OP_ConvTranspose;
    s->has_bias = a->n_in > 2 && kn_tensor_present(&a->in[2]);
    s->has_res = !s->transpose && a->n_in > 3 && kn_tensor_present(&a->in[3]);
    kn_cuda_node_act(n, &s->act, &s->act_alpha, &s->act_beta);
    s->nhwc = !s->transpose && kn_attr_i(n, "kiln.layout", 0) == 1 && a->in[0].rank == 4;
    kiln_status st = kn_conv_geometry(a, s->transpose, g);
    s->nd = 2 + g->cnsp;
    s->k = a->out[0].dims[1];
    if (st == KILN_OK && (a->in[0].dtype != a->in[1].dtype || a->in[0].dtype != a->out[0].dtype))
        st = kn_node_error(n, KILN_ERR_DTYPE, "X, W and Y must have one element type");
    if (st == KILN_OK && s->has_bias && kn_tensor_numel(&a->in[2]) != s->k)
        st = kn_node_error(n, KILN_ERR_SHAPE, "B has %lld elements, expected %lld", (long long)kn_tensor_numel(&a->in[2]),
                           (long long)s->k);
    if (st != KILN_OK) {
        kn_conv_state_free(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

static kiln_status kn_conv_plan(const kn_kernel_args *a, int want, kn_conv_state **state) {
    *state = NULL;
    kn_cuda_set_node(a->node);
    const kn_node *n = a->node;
    double t_prep = kn_now_ms();
    kn_conv_state *s = NULL;
    kn_conv_geom g;
    KN_TRY(kn_conv_begin(a, &s, &g));
    kiln_status st = KILN_OK;
    if (kn_tensor_numel(&a->in[0]) == 0 || kn_tensor_numel(&a->out[0]) == 0) {
        *state = s; /* an empty batch: nothing for cuDNN, run does nothing */
        return KILN_OK;
    }
    if (a->tactic_key && !a->timing && want >= 0) {
        double t0 = kn_now_ms();
        st = kn_conv_plan_keyed(a, s, &g, a->tactic_key);
        if (st == KILN_OK && s->deferred) { /* prepared again later (kn_prepare_defer) */
            kn_conv_state_free(s);
            return KILN_OK;
        }
        if (st == KILN_OK) {
            KN_VERBOSE("cuda: %s '%s': stored engine %s, %s%s, prepared in %.2f ms", kn_op_name(n->op),
                       n->name ? n->name : "", a->tactic_key, s->cpad ? "padded" : "unpadded",
                       s->dynamic ? ", dynamic shapes" : "", kn_now_ms() - t0);
            *state = s;
            return KILN_OK;
        }
        if (st == KILN_ERR_OUT_OF_MEMORY) goto fail;
        KN_VERBOSE("cuda: %s '%s': stored engine %s not used here (%s); tactic %d from the heuristics", kn_op_name(n->op),
                   n->name ? n->name : "", a->tactic_key, kiln_last_error(), want);
        kn_clear_error();
        st = KILN_OK;
        kn_conv_drop_plans(s);
        if (s->xpad) cudaFree(s->xpad);
        if (s->wpad) cudaFree(s->wpad);
        s->xpad = s->wpad = NULL;
        s->fused = s->cpad = s->dynamic = s->eng_rt = 0;
        s->eng_key[0] = 0;
    }
    /* An NHWC f16/bf16 depthwise convolution has kiln's kernel as tactic 0 and cuDNN's as 1..n
     * (eligibility depends on the node and the dtype only, so the numbering is the same at every
     * shape) */
    int dw = kn_conv_dw_eligible(a, s, &g);
    if (dw && want == 0) {
        s->kiln_dw = 1;
        kn_conv_dw_fill(a, s, &g);
        KN_VERBOSE("cuda: %s '%s': tactic 0, kiln's depthwise kernel", kn_op_name(n->op), n->name ? n->name : "");
        *state = s;
        return KILN_OK;
    }
    if (dw && want > 0) want--;
    /* likewise an NHWC f16/bf16 one-group convolution with kiln's implicit GEMM as tactic 0 (the
     * two exclude each other: one group against one per channel, and 8 channels or more) */
    int ig = kn_conv_ig_eligible(a, s, &g);
    if (ig && want == 0) {
        s->kiln_ig = 1;
        kn_conv_ig_fill(a, s, &g);
        KN_VERBOSE("cuda: %s '%s': tactic 0, kiln's implicit GEMM (%d-way split)", kn_op_name(n->op),
                   n->name ? n->name : "", s->ig.splits);
        *state = s;
        return KILN_OK;
    }
    if (ig && want > 0) want--;
    /* a narrow NHWC input: tactics 1..KN_CONV_SLOTS are the padded variant's, the rest shift */
    int cp = kn_conv_cpad_eligible(a, s, &g);
    if (cp && want >= 1 && want <= KN_CONV_SLOTS) {
        KN_CHECK_GOTO(st, kn_conv_plan_cpad(a, s, &g, want - 1), fail);
        *state = s;
        return KILN_OK;
    }
    if (cp && want > KN_CONV_SLOTS) want -= KN_CONV_SLOTS;
    int fusable = !s->transpose && (s->has_bias || s->has_res || s->act != KN_ACT_NONE) &&
                  (s->act == KN_ACT_NONE || kn_dnn_act_mode(s->act, s->act_alpha, s->act_beta) >= 0);
    /* Tactics of a fusable convolution: 0..KN_CONV_SLOTS-1 are the fused graph's configs. When
     * cuDNN offers fewer than KN_DNN_MAX_HEUR engines for the fused graph (generic runtime-fusion
     * engines only, as for a clipped ReLU: measured up to 30x slower than the convolution alone
     * on MobileNetV2), the convolution alone with kiln's epilogue competes as tactics
     * KN_CONV_SLOTS + j, and timing decides. */
    int alone_want = want; /* the tactic among the configs of the convolution alone */
    if (fusable && want >= KN_CONV_SLOTS) {
        alone_want = want - KN_CONV_SLOTS;
    } else if (fusable) {
        /* any failure here only means no engine takes the fused graph */
        if (kn_conv_build(a, s, &g, 1, want) == KILN_OK && (want < 0 ? s->n_tactics > 0 : s->n_plans > 0)) s->fused = 1;
        kn_clear_error();
        if (s->fused && want >= 0 && a->timing && want >= s->n_tactics) {
            st = kn_node_error(n, KILN_ERR_UNSUPPORTED, "tactic %d is not offered at this shape", want);
            goto fail;
        }
    }
    int fused_count = s->fused && want < 0 ? s->n_tactics : 0;
    /* weak: fewer than KN_DNN_MAX_HEUR ranked by the heuristics (global engines added for strict
     * fp32 do not count: they fill the slots the tensor-core engines left) */
    if (!s->fused || (fused_count > 0 && fused_count - s->n_global <= KN_DNN_MAX_HEUR)) {
        /* start over without the activation in the graph (the fused descriptors are not needed):
         * bias and residual still in cuDNN's graph where the second list stands in for a fused
         * one (cuDNN 9.19's engines for a convolution alone were 8x slower than for convolution
         * + bias on MobileNetV2's 1x1 layers), the convolution alone otherwise */
        int partial = (fusable && (want < 0 ? fused_count > 0 : want >= KN_CONV_SLOTS)) && (s->has_bias || s->has_res);
        kn_conv_drop_plans(s);
        s->fused = 0;
        if (partial) {
            if (kn_conv_build(a, s, &g, 2, alone_want) == KILN_OK && (want < 0 ? s->n_tactics > 0 : s->n_plans > 0))
                s->fused = 2;
            kn_clear_error();
        }
        if (!s->fused) {
            kn_conv_drop_plans(s);
            KN_CHECK_GOTO(st, kn_conv_build(a, s, &g, 0, alone_want), fail);
        }
        if (fused_count > 0) s->n_tactics += KN_CONV_SLOTS; /* counted: both lists */
    }
    if (want < 0) {
        s->n_tactics += dw + ig + (cp ? KN_CONV_SLOTS : 0);
        *state = s;
        return KILN_OK;
    }
    if (s->n_plans == 0) {
        char lbl[160], dims[64];
        st = kn_error(KILN_ERR_UNSUPPORTED, "step %s: cuDNN has no engine for this %s (%s, X %s)",
                      kn_node_label(n, lbl, sizeof lbl), s->transpose ? "transposed convolution" : "convolution",
                      kiln_dtype_name(a->in[0].dtype), kn_dims_str(a->in[0].rank, a->in[0].dims, dims, sizeof dims));
        goto fail;
    }
    if (a->ctx) KN_CHECK_GOTO(st, kn_cuda_reserve_dnn_ws(kn_cuda_ctx_of(a), (size_t)s->plan_ws), fail);
    KN_VERBOSE("cuda: %s '%s': tactic %d of %d, %s, prepared in %.2f ms", kn_op_name(n->op), n->name ? n->name : "", want,
               s->n_tactics,
               s->fused == 1 ? "bias/residual/activation fused" : s->fused == 2 ? "bias/residual fused, activation by kiln" : "epilogue by kiln",
               kn_now_ms() - t_prep);
    *state = s;
    return KILN_OK;
fail:
    kn_conv_state_free(s);
    return st;
}

static kiln_status kn_conv_prepare(const kn_kernel_args *a, void **state) {
    kn_conv_state *s = NULL;
    kiln_status st = kn_conv_plan(a, a->tactic > 0 ? a->tactic : 0, &s);
    *state = s;
    return st;
}

/* Provisional kernels (kiln_session_set_provisional_kernels): where the stored tactic is a cuDNN
 * plan and kiln's depthwise, implicit-GEMM or few-channel direct kernel takes the convolution,
 * that kernel, which needs no setup, runs until the plan is ready; where the stored tactic is that kernel (tactic 0,
 * no cuDNN key), its state is the tuned one. */
static kiln_status kn_conv_prepare_provisional(const kn_kernel_args *a, void **state, int *tuned) {
    *state = NULL;
    *tuned = !a->tactic_key && a->tactic == 0;
    kn_cuda_set_node(a->node);
    kn_conv_state *s = NULL;
    kn_conv_geom g;
    KN_TRY(kn_conv_begin(a, &s, &g));
    if (kn_tensor_numel(&a->in[0]) == 0 || kn_tensor_numel(&a->out[0]) == 0) {
        kn_conv_state_free(s); /* prepare has nothing slow to do */
        return KILN_ERR_UNSUPPORTED;
    }
    if (kn_conv_dw_eligible(a, s, &g)) {
        s->kiln_dw = 1;
        kn_conv_dw_fill(a, s, &g);
    } else if (kn_conv_ig_eligible(a, s, &g)) {
        s->kiln_ig = 1;
        kn_conv_ig_fill(a, s, &g);
    } else if (kn_conv_dc_eligible(a, s, &g)) {
        *tuned = 0; /* never a tactic: tactic 0 is a cuDNN plan here */
        s->kiln_dc = 1;
        s->dc = (knc_dconv){.g = kn_conv2d_of(a, s, &g), .k = (int)g.y[1]};
    } else {
        kn_conv_state_free(s);
        return KILN_ERR_UNSUPPORTED;
    }
    *state = s;
    return KILN_OK;
}

/* "cudnn1:f<fused>:p<padded>:r<compiles at run time>:<engine config>" of a step prepared on a cuDNN plan; kiln's own
 * depthwise kernel and an empty batch keep none. */
static int kn_conv_tactic_key(const void *state, char *buf, size_t cap) {
    const kn_conv_state *s = state;
    if (!s || !s->plan || !s->eng_key[0]) return 0;
    int n = snprintf(buf, cap, "cudnn1:f%d:p%d:r%d:%s", s->fused, s->cpad, s->eng_rt, s->eng_key);
    return n > 0 && (size_t)n < cap ? n : 0;
}

/* "cudnn:e<engine>" of a step prepared on a cuDNN plan (the engine part of its key). */
static int kn_conv_setup_family(const void *state, char *buf, size_t cap) {
    const kn_conv_state *s = state;
    if (!s || !s->plan || !s->eng_key[0]) return 0;
    int len = (int)strcspn(s->eng_key, ":");
    int n = snprintf(buf, cap, "cudnn:%.*s", len, s->eng_key);
    return n > 0 && (size_t)n < cap ? n : 0;
}

static int kn_conv_compiles_per_shape(const void *state) {
    const kn_conv_state *s = state;
    return s && s->plan && s->eng_rt;
}

static int kn_conv_num_tactics(const kn_kernel_args *a) {
    kn_conv_state *s = NULL;
    if (kn_conv_plan(a, -1, &s) != KILN_OK) {
        kn_clear_error();
        return 1;
    }
    int n = s->n_tactics;
    kn_conv_state_free(s);
    return n > 0 ? n : 1;
}

static kiln_status kn_conv_run(const kn_kernel_args *a) {
    kn_conv_state *s = a->state;
    kn_cuda_ctx *c = kn_cuda_ctx_of(a);
    if (!s) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the convolution was not prepared for this shape");
    if (!c) return kn_node_error(a->node, KILN_ERR_INTERNAL, "a convolution ran outside a session");
    const kn_tensor *x = &a->in[0], *w = &a->in[1], *y = &a->out[0];
    if (kn_tensor_numel(y) == 0) return KILN_OK;
    if (s->kiln_dw) {
        knc_dwconv p = s->dw;
        p.x = x->data;
        p.wt = w->data;
        p.bias = s->has_bias ? a->in[2].data : NULL;
        p.res = s->has_res ? a->in[3].data : NULL;
        p.y = y->data;
        KN_CU(knc_dwconv_launch(&p, kn_cuda_stream(a)));
        return KILN_OK;
    }
    if (s->kiln_dc) {
        knc_dconv p = s->dc;
        p.x = x->data;
        p.w = w->data;
        p.bias = s->has_bias ? a->in[2].data : NULL;
        p.res = s->has_res ? a->in[3].data : NULL;
        p.y = y->data;
        KN_CU(knc_dconv_launch(&p, kn_cuda_stream(a)));
        return KILN_OK;
    }
    if (s->kiln_ig) {
        knc_igemm p = s->ig;
        p.x = x->data;
        p.w = w->data;
        p.bias = s->has_bias ? a->in[2].data : NULL;
        p.res = s->has_res ? a->in[3].data : NULL;
        p.y = y->data;
        KN_CU(knc_igemm_launch(&p, kn_cuda_stream(a)));
        return KILN_OK;
    }
    if (!s->plan) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the convolution has no cuDNN plan for this shape");
    if ((size_t)s->plan_ws > c->dnn_ws_bytes)
        return kn_node_error(a->node, KILN_ERR_INTERNAL, "the cuDNN workspace is smaller than the plan needs");
    void *ptrs[5];
    int64_t uids[5];
    int np = 0;
    ptrs[np] = x->data; uids[np++] = KN_UID_X;
    ptrs[np] = w->data; uids[np++] = KN_UID_W;
    if (s->cpad) {
        int64_t c = x->dims[1];
        KN_CU(knc_pad_channels8(x->data, s->xpad, (int)c, kn_tensor_numel(x) / c, kn_cuda_stream(a)));
        ptrs[0] = s->xpad;
        ptrs[1] = s->wpad;
    }
    ptrs[np] = y->data; uids[np++] = KN_UID_Y;
    if (s->fused && s->has_bias) { ptrs[np] = a->in[2].data; uids[np++] = KN_UID_BIAS; }
    if (s->fused && s->has_res) { ptrs[np] = a->in[3].data; uids[np++] = KN_UID_RES; }
    kiln_status st = kn_conv_execute(c->dnn, s->plan, ptrs, uids, np, c->dnn_ws);
    if (st != KILN_OK) return st;
    if (s->fused == 2 && s->act != KN_ACT_NONE) {
        st = kn_cuda_epilogue(a, y, NULL, 1.0f, NULL, s->act, s->act_alpha, s->act_beta);
    } else if (!s->fused && s->nhwc && (s->has_bias || s->has_res || s->act != KN_ACT_NONE)) {
        /* NHWC: the epilogue sees the physical [N, H, W, C]; the bias [K] broadcasts over the last dim */
        kn_tensor y_view = *y, res_view, bias_view;
        const int64_t ld[4] = {y->dims[0], y->dims[2], y->dims[3], y->dims[1]};
        for (int i = 0; i < 4; i++) y_view.dims[i] = ld[i];
        if (s->has_res) {
            res_view = a->in[3];
            for (int i = 0; i < 4; i++) res_view.dims[i] = ld[i];
        }
        if (s->has_bias) {
            bias_view = a->in[2];
            bias_view.rank = 1;
            bias_view.dims[0] = s->k;
        }
        st = kn_cuda_epilogue(a, &y_view, s->has_bias ? &bias_view : NULL, 1.0f, s->has_res ? &res_view : NULL, s->act,
                              s->act_alpha, s->act_beta);
    } else if (!s->fused && (s->has_bias || s->has_res || s->act != KN_ACT_NONE)) {
        kn_tensor bias_view;
        const kn_tensor *bias = NULL;
        if (s->has_bias) {
            /* [K] seen as [K, 1, ..., 1] so that it broadcasts over the channel dim */
            bias_view = a->in[2];
            bias_view.rank = y->rank - 1;
            bias_view.dims[0] = s->k;
            for (int i = 1; i < bias_view.rank; i++) bias_view.dims[i] = 1;
            bias = &bias_view;
        }
        st = kn_cuda_epilogue(a, y, bias, 1.0f, s->has_res ? &a->in[3] : NULL, s->act, s->act_alpha, s->act_beta);
    }
    return st;
}

static int kn_sup_conv(const kn_graph *g, const kn_node *n) {
    kiln_dtype t = kn_cuda_in_dtype(g, n, 0);
    if (!kn_cuda_is_fp(t) || kn_cuda_in_dtype(g, n, 1) != t) return 0;
    const kn_value *x = n->in[0] >= 0 ? &g->values[n->in[0]] : NULL;
    if (x && x->rank >= 0 && (x->rank < 3 || x->rank > 5)) return 0;
    if (kn_attr_i(n, "kiln.layout", 0) != 0 && (n->op != KN_OP_Conv || !x || x->rank != 4)) return 0;
    return 1;
}

void kn_cuda_register_conv(kn_cuda_op *t) {
    kn_kernel k = {.name = "cudnn.conv", .run = kn_conv_run, .prepare = kn_conv_prepare, .release = kn_conv_state_free,
                   .num_tactics = kn_conv_num_tactics, .tactic_key = kn_conv_tactic_key,
                   .compiles_per_shape = kn_conv_compiles_per_shape, .setup_family = kn_conv_setup_family,
                   .prepare_concurrent = 1, .prepare_provisional = kn_conv_prepare_provisional};
    t[KN_OP_Conv] = (kn_cuda_op){.engine = k, .supports = kn_sup_conv};
    k.name = "cudnn.conv_transpose";
    t[KN_OP_ConvTranspose] = (kn_cuda_op){.engine = k, .supports = kn_sup_conv};
}
