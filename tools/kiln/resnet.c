/* ResNet through the public builder API; see resnet.h. Weights are He-uniform, BatchNorm
 * statistics random around (0, 1) so that folding them is not a no-op. */
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kiln_resnet_options_init(kiln_resnet_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->height = o->width = 224;
    o->base_width = 64;
    for (int s = 0; s < 4; s++) o->blocks[s] = 2;
    o->num_classes = 1000;
    o->seed = 1;
}

typedef struct kn_rn {
    kiln_graph *g;
    uint64_t state;
    float *buf; /* scratch for weights */
    size_t cap;
} kn_rn;

static uint64_t kn_rn_next(kn_rn *r) { /* splitmix64 */
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float kn_rn_uniform(kn_rn *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(kn_rn_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

static kiln_status kn_rn_scratch(kn_rn *r, size_t n) {
    if (n <= r->cap) return KILN_OK;
    float *p = realloc(r->buf, n * sizeof(float));
    if (!p) return KILN_ERR_OUT_OF_MEMORY;
    r->buf = p;
    r->cap = n;
    return KILN_OK;
}

/* A constant of `n` uniform values in [lo, hi]. */
static kiln_status kn_rn_param(kn_rn *r, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    kiln_status st = kn_rn_scratch(r, n);
    if (st != KILN_OK) return st;
    for (size_t i = 0; i < n; i++) r->buf[i] = kn_rn_uniform(r, lo, hi);
    return kiln_graph_add_initializer(r->g, name, KILN_F32, rank, dims, r->buf);
}

static kiln_status kn_rn_conv(kn_rn *r, const char *name, const char *x, const char *y, int64_t cin, int64_t cout,
                              int64_t k, int64_t stride, int64_t pad) {
    char w[256];
    snprintf(w, sizeof w, "%s.weight", name);
    int64_t dims[4] = {cout, cin, k, k};
    float bound = sqrtf(6.0f / (float)(cin * k * k));
    kiln_status st = kn_rn_param(r, w, 4, dims, -bound, bound);
    if (st != KILN_OK) return st;
    const int64_t ks[2] = {k, k}, strides[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    kiln_attr attrs[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("strides", 2, strides),
                          kiln_attr_ints("pads", 4, pads)};
    const char *in[2] = {x, w}, *out[1] = {y};
    return kiln_graph_add_node(r->g, "Conv", name, 2, in, 1, out, 3, attrs);
}

static kiln_status kn_rn_bn(kn_rn *r, const char *name, const char *x, const char *y, int64_t c) {
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float lo[4] = {0.5f, -0.2f, -0.2f, 0.5f}, hi[4] = {1.0f, 0.2f, 0.2f, 1.5f};
    char pn[4][256];
    for (int i = 0; i < 4; i++) {
        snprintf(pn[i], sizeof pn[i], "%s.%s", name, suffix[i]);
        kiln_status st = kn_rn_param(r, pn[i], 1, &c, lo[i], hi[i]);
        if (st != KILN_OK) return st;
    }
    kiln_attr eps = kiln_attr_float("epsilon", 1e-5f);
    const char *in[5] = {x, pn[0], pn[1], pn[2], pn[3]}, *out[1] = {y};
    return kiln_graph_add_node(r->g, "BatchNormalization", name, 5, in, 1, out, 1, &eps);
}

static kiln_status kn_rn_unary(kn_rn *r, const char *op, const char *name, const char *x, const char *y) {
    const char *in[1] = {x}, *out[1] = {y};
    return kiln_graph_add_node(r->g, op, name, 1, in, 1, out, 0, NULL);
}

#define KN_RN_TRY(e)                                                                                \
    do {                                                                                            \
        kiln_status s_ = (e);                                                                       \
        if (s_ != KILN_OK) return s_;                                                               \
    } while (0)

/* One basic block: conv3x3(stride) bn relu conv3x3 bn (+ 1x1 downsample shortcut) add relu. */
static kiln_status kn_rn_block(kn_rn *r, const char *p, const char *x, const char *y, int64_t cin, int64_t cout,
                               int64_t stride) {
    char n[8][256], v[8][256];
    static const char *const names[8] = {"conv1", "bn1", "relu", "conv2", "bn2", "downsample.0", "downsample.1", "add"};
    for (int i = 0; i < 8; i++) {
        snprintf(n[i], sizeof n[i], "%s.%s", p, names[i]);
        snprintf(v[i], sizeof v[i], "%s.%s.out", p, names[i]);
    }
    KN_RN_TRY(kn_rn_conv(r, n[0], x, v[0], cin, cout, 3, stride, 1));
    KN_RN_TRY(kn_rn_bn(r, n[1], v[0], v[1], cout));
    KN_RN_TRY(kn_rn_unary(r, "Relu", n[2], v[1], v[2]));
    KN_RN_TRY(kn_rn_conv(r, n[3], v[2], v[3], cout, cout, 3, 1, 1));
    KN_RN_TRY(kn_rn_bn(r, n[4], v[3], v[4], cout));
    const char *shortcut = x;
    if (stride != 1 || cin != cout) {
        KN_RN_TRY(kn_rn_conv(r, n[5], x, v[5], cin, cout, 1, stride, 0));
        KN_RN_TRY(kn_rn_bn(r, n[6], v[5], v[6], cout));
        shortcut = v[6];
    }
    const char *in[2] = {v[4], shortcut}, *out[1] = {v[7]};
    KN_RN_TRY(kiln_graph_add_node(r->g, "Add", n[7], 2, in, 1, out, 0, NULL));
    char relu[256];
    snprintf(relu, sizeof relu, "%s.relu2", p);
    return kn_rn_unary(r, "Relu", relu, v[7], y);
}

static kiln_status kn_rn_body(kn_rn *r, const kiln_resnet_options *o) {
    int64_t dims[4] = {o->batch > 0 ? o->batch : -1, 3, o->height, o->width};
    const char *dn[4] = {"batch", NULL, NULL, NULL};
    KN_RN_TRY(kiln_graph_add_input(r->g, "input", KILN_F32, 4, dims, o->batch > 0 ? NULL : dn));
    int64_t c = o->base_width;
    KN_RN_TRY(kn_rn_conv(r, "conv1", "input", "conv1.out", 3, c, 7, 2, 3));
    KN_RN_TRY(kn_rn_bn(r, "bn1", "conv1.out", "bn1.out", c));
    KN_RN_TRY(kn_rn_unary(r, "Relu", "relu", "bn1.out", "relu.out"));
    {
        const int64_t ks[2] = {3, 3}, strides[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
        kiln_attr attrs[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("strides", 2, strides),
                              kiln_attr_ints("pads", 4, pads)};
        const char *in[1] = {"relu.out"}, *out[1] = {"maxpool.out"};
        KN_RN_TRY(kiln_graph_add_node(r->g, "MaxPool", "maxpool", 1, in, 1, out, 3, attrs));
    }
    char x[256] = "maxpool.out";
    int64_t cin = c;
    for (int s = 0; s < 4; s++) {
        int64_t cout = (int64_t)o->base_width << s;
        for (int b = 0; b < o->blocks[s]; b++) {
            char p[64], y[256];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, b);
            snprintf(y, sizeof y, "%s.out", p);
            KN_RN_TRY(kn_rn_block(r, p, x, y, cin, cout, b == 0 && s > 0 ? 2 : 1));
            memcpy(x, y, sizeof x);
            cin = cout;
        }
    }
    KN_RN_TRY(kn_rn_unary(r, "GlobalAveragePool", "avgpool", x, "avgpool.out"));
    {
        kiln_attr axis = kiln_attr_int("axis", 1);
        const char *in[1] = {"avgpool.out"}, *out[1] = {"flatten.out"};
        KN_RN_TRY(kiln_graph_add_node(r->g, "Flatten", "flatten", 1, in, 1, out, 1, &axis));
    }
    int64_t wd[2] = {o->num_classes, cin}, bd[1] = {o->num_classes};
    float bound = 1.0f / sqrtf((float)cin);
    KN_RN_TRY(kn_rn_param(r, "fc.weight", 2, wd, -bound, bound));
    KN_RN_TRY(kn_rn_param(r, "fc.bias", 1, bd, -bound, bound));
    kiln_attr tb = kiln_attr_int("transB", 1);
    const char *in[3] = {"flatten.out", "fc.weight", "fc.bias"}, *out[1] = {"logits"};
    KN_RN_TRY(kiln_graph_add_node(r->g, "Gemm", "fc", 3, in, 1, out, 1, &tb));
    return kiln_graph_add_output(r->g, "logits");
}

kiln_status kiln_resnet_build(const kiln_resnet_options *o, kiln_graph **out) {
    if (!out) return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!o || o->height < 32 || o->width < 32 || o->base_width < 1 || o->num_classes < 1) return KILN_ERR_INVALID_ARGUMENT;
    for (int s = 0; s < 4; s++)
        if (o->blocks[s] < 1) return KILN_ERR_INVALID_ARGUMENT;
    kn_rn r = {.state = o->seed};
    kiln_status st = kiln_graph_create(&r.g);
    if (st != KILN_OK) return st;
    st = kn_rn_body(&r, o);
    free(r.buf);
    if (st != KILN_OK) {
        kiln_graph_free(r.g);
        return st;
    }
    *out = r.g;
    return KILN_OK;
}
