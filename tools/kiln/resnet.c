/* ResNet through the builder API; see resnet.h. Weights are uniform in +-sqrt(3/fan_in) (unit
 * variance through each conv) and BatchNorm statistics are random but sane, so activations stay
 * in a range where fp16 and fp32 agree. */
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct rn_ctx {
    kiln_graph *g;
    uint64_t rng;
    int counter;
    kiln_status st;
} rn_ctx;

static float rn_uniform(rn_ctx *c) {
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(c->rng >> 40) / 16777216.0); /* [0, 1) */
}

static void rn_name(rn_ctx *c, char *buf, size_t cap, const char *base) {
    snprintf(buf, cap, "%s_%d", base, c->counter++);
}

static void rn_init(rn_ctx *c, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    if (c->st != KILN_OK) return;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *w = malloc((size_t)n * sizeof *w);
    if (!w) { c->st = KILN_ERR_OUT_OF_MEMORY; return; }
    for (int64_t i = 0; i < n; i++) w[i] = lo + (hi - lo) * rn_uniform(c);
    c->st = kiln_graph_add_initializer(c->g, name, KILN_F32, rank, dims, w);
    free(w);
}

/* conv (no bias) + BatchNorm (+ ReLU); returns the output name in out */
static void rn_conv_bn(rn_ctx *c, const char *x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                       int relu, char *out, size_t cap) {
    char w[64], conv[64], bn[64], s[64], b[64], mu[64], var[64], node[64];
    rn_name(c, w, sizeof w, "conv_w");
    rn_name(c, conv, sizeof conv, "conv");
    int64_t wd[4] = {cout, cin, k, k};
    float bound = sqrtf(3.0f / (float)(cin * k * k));
    rn_init(c, w, 4, wd, -bound, bound);
    int64_t pad = k / 2;
    int64_t pads[4] = {pad, pad, pad, pad}, strides[2] = {stride, stride}, ks[2] = {k, k};
    kiln_attr attrs[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pads),
                          kiln_attr_ints("strides", 2, strides)};
    const char *cin_names[] = {x, w}, *cout_names[] = {conv};
    if (c->st == KILN_OK) c->st = kiln_graph_add_node(c->g, "Conv", conv, 2, cin_names, 1, cout_names, 3, attrs);
    rn_name(c, s, sizeof s, "bn_scale");
    rn_name(c, b, sizeof b, "bn_bias");
    rn_name(c, mu, sizeof mu, "bn_mean");
    rn_name(c, var, sizeof var, "bn_var");
    int64_t cd[1] = {cout};
    rn_init(c, s, 1, cd, 0.5f, 1.0f);
    rn_init(c, b, 1, cd, -0.1f, 0.1f);
    rn_init(c, mu, 1, cd, -0.1f, 0.1f);
    rn_init(c, var, 1, cd, 0.5f, 1.5f);
    rn_name(c, bn, sizeof bn, "bn");
    const char *bin[] = {conv, s, b, mu, var}, *bout[] = {bn};
    kiln_attr eps = kiln_attr_float("epsilon", 1e-5f);
    if (c->st == KILN_OK) c->st = kiln_graph_add_node(c->g, "BatchNormalization", bn, 5, bin, 1, bout, 1, &eps);
    if (!relu) {
        snprintf(out, cap, "%s", bn);
        return;
    }
    rn_name(c, node, sizeof node, "relu");
    const char *rin[] = {bn}, *rout[] = {node};
    if (c->st == KILN_OK) c->st = kiln_graph_add_node(c->g, "Relu", node, 1, rin, 1, rout, 0, NULL);
    snprintf(out, cap, "%s", node);
}

static void rn_add_relu(rn_ctx *c, const char *a, const char *b, char *out, size_t cap) {
    char add[64], relu[64];
    rn_name(c, add, sizeof add, "add");
    rn_name(c, relu, sizeof relu, "relu");
    const char *ain[] = {a, b}, *aout[] = {add}, *rin[] = {add}, *rout[] = {relu};
    if (c->st == KILN_OK) c->st = kiln_graph_add_node(c->g, "Add", add, 2, ain, 1, aout, 0, NULL);
    if (c->st == KILN_OK) c->st = kiln_graph_add_node(c->g, "Relu", relu, 1, rin, 1, rout, 0, NULL);
    snprintf(out, cap, "%s", relu);
}

static void rn_basic_block(rn_ctx *c, const char *x, int64_t cin, int64_t cout, int64_t stride, char *out, size_t cap) {
    char h1[64], h2[64], sc[64];
    rn_conv_bn(c, x, cin, cout, 3, stride, 1, h1, sizeof h1);
    rn_conv_bn(c, h1, cout, cout, 3, 1, 0, h2, sizeof h2);
    if (stride != 1 || cin != cout) rn_conv_bn(c, x, cin, cout, 1, stride, 0, sc, sizeof sc);
    else snprintf(sc, sizeof sc, "%s", x);
    rn_add_relu(c, h2, sc, out, cap);
}

static void rn_bottleneck(rn_ctx *c, const char *x, int64_t cin, int64_t width, int64_t stride, char *out, size_t cap) {
    char h1[64], h2[64], h3[64], sc[64];
    int64_t cout = width * 4;
    rn_conv_bn(c, x, cin, width, 1, 1, 1, h1, sizeof h1);
    rn_conv_bn(c, h1, width, width, 3, stride, 1, h2, sizeof h2);
    rn_conv_bn(c, h2, width, cout, 1, 1, 0, h3, sizeof h3);
    if (stride != 1 || cin != cout) rn_conv_bn(c, x, cin, cout, 1, stride, 0, sc, sizeof sc);
    else snprintf(sc, sizeof sc, "%s", x);
    rn_add_relu(c, h3, sc, out, cap);
}

kiln_status kiln_resnet_build(int depth, int64_t spatial, uint64_t seed, kiln_graph **out) {
    *out = NULL;
    static const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
    const int *blocks = depth == 18 ? blocks18 : blocks34; /* 50 uses the 34 layout with bottlenecks */
    if (depth != 18 && depth != 34 && depth != 50) return KILN_ERR_INVALID_ARGUMENT;
    rn_ctx c = {.rng = seed * 2654435761u + 12345u};
    c.st = kiln_graph_create(&c.g);
    if (c.st != KILN_OK) return c.st;
    int64_t xd[4] = {-1, 3, spatial, spatial};
    const char *dn[4] = {"batch", NULL, NULL, NULL};
    c.st = kiln_graph_add_input(c.g, "x", KILN_F32, 4, xd, dn);
    char cur[64], next[64], pool[64] = "maxpool";
    rn_conv_bn(&c, "x", 3, 64, 7, 2, 1, cur, sizeof cur);
    int64_t ks[2] = {3, 3}, st2[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
    kiln_attr pa[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("strides", 2, st2),
                       kiln_attr_ints("pads", 4, pads)};
    const char *pin[] = {cur}, *pout[] = {pool};
    if (c.st == KILN_OK) c.st = kiln_graph_add_node(c.g, "MaxPool", "maxpool", 1, pin, 1, pout, 3, pa);
    snprintf(cur, sizeof cur, "%s", pool);
    int64_t cin = 64;
    for (int stage = 0; stage < 4; stage++) {
        int64_t width = 64 << stage;
        for (int b = 0; b < blocks[stage]; b++) {
            int64_t stride = (b == 0 && stage > 0) ? 2 : 1;
            if (depth == 50) {
                rn_bottleneck(&c, cur, cin, width, stride, next, sizeof next);
                cin = width * 4;
            } else {
                rn_basic_block(&c, cur, cin, width, stride, next, sizeof next);
                cin = width;
            }
            snprintf(cur, sizeof cur, "%s", next);
        }
    }
    const char *gin[] = {cur}, *gout[] = {"gap"}, *fin[] = {"gap"}, *fout[] = {"flat"};
    if (c.st == KILN_OK) c.st = kiln_graph_add_node(c.g, "GlobalAveragePool", "gap", 1, gin, 1, gout, 0, NULL);
    kiln_attr axis = kiln_attr_int("axis", 1);
    if (c.st == KILN_OK) c.st = kiln_graph_add_node(c.g, "Flatten", "flatten", 1, fin, 1, fout, 1, &axis);
    int64_t fcw[2] = {1000, cin}, fcb[1] = {1000};
    float bound = sqrtf(1.0f / (float)cin);
    rn_init(&c, "fc_w", 2, fcw, -bound, bound);
    rn_init(&c, "fc_b", 1, fcb, -bound, bound);
    const char *fcin[] = {"flat", "fc_w", "fc_b"}, *fcout[] = {"logits"};
    kiln_attr tb = kiln_attr_int("transB", 1);
    if (c.st == KILN_OK) c.st = kiln_graph_add_node(c.g, "Gemm", "fc", 3, fcin, 1, fcout, 1, &tb);
    if (c.st == KILN_OK) c.st = kiln_graph_add_output(c.g, "logits");
    if (c.st != KILN_OK) {
        kiln_graph_free(c.g);
        return c.st;
    }
    *out = c.g;
    return KILN_OK;
}
