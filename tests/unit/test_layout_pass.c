/* The NHWC layout pass, checked structurally on the CPU with a backend that asks for NHWC: where
 * the conversions go, which nodes are marked, the OHWI weight copies; and that the real CPU
 * backend never gets a rewritten graph. The numerics of NHWC kernels are tested on the GPU
 * (test_cuda_nhwc.c). */
#include "test_passes_util.h"

#include "passes/passes.h"
#include "ir/shape_infer.h"
#include "resnet.h"

/* says yes at every precision: which activations qualify (f16/bf16, or f32 under tf32) is the pass's rule */
static int yes_nhwc(kiln_precision p) {
    (void)p;
    return 1;
}

typedef struct counts {
    int to_nhwc, to_nchw, layout, layout_conv, identity;
} counts;

static counts count(const kn_graph *g) {
    counts c = {0};
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        if (n->op == KN_OP_Identity) {
            c.identity++;
            int64_t t = kn_attr_i(n, "kiln.to_layout", -1);
            c.to_nhwc += t == 1;
            c.to_nchw += t == 0;
        }
        if (kn_attr_i(n, "kiln.layout", 0) == 1) {
            c.layout++;
            c.layout_conv += n->op == KN_OP_Conv;
        }
    }
    return c;
}

/* pads 1-3 channels to 4, like the CUDA backend at f16/bf16 */
static int64_t pad_to_4(kiln_precision p, int64_t c) {
    (void)p;
    return c < 4 ? 4 : c;
}

/* Lowers g to `prec` and runs the layout pass with a CPU backend copy whose prefers_nhwc is set
 * (and nhwc_pad_channels to `pad`). */
static counts rewrite_pad(kiln_graph *graph, kiln_precision prec, int *changed, int64_t (*pad)(kiln_precision, int64_t)) {
    kn_graph *g = &graph->g;
    KT_OK(kn_graph_verify(g));
    KT_OK(kn_graph_infer_static(g));
    KT_OK(kn_lower_precision(g, prec));
    kn_backend be = *kn_backend_cpu();
    be.prefers_nhwc = yes_nhwc;
    be.nhwc_pad_channels = pad;
    kn_pass_options po = {.precision = prec, .backend = &be};
    *changed = -1;
    KT_OK(kn_pass_layout_nhwc(g, &po, changed));
    KT_OK(kn_graph_verify(g));
    return count(g);
}

static counts rewrite(kiln_graph *graph, kiln_precision prec, int *changed) { return rewrite_pad(graph, prec, changed, NULL); }

static const kn_node *find_node(const kn_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return &g->nodes[i];
    return NULL;
}

static kiln_graph *new_graph(const int64_t *xd) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    kt_input(g, "x", 4, xd);
    return g;
}

/* x [2, 3, 5, 6] -> conv c1 -> relu -> conv c2 -> y */
static kiln_graph *conv_chain(void) {
    int64_t xd[4] = {2, 3, 5, 6};
    kiln_graph *graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "a", 3, 4, 3, 1);
    kt_node(graph, "Relu", "r1", "a", NULL, "b");
    kt_conv(graph, "c2", "b", "y", 4, 5, 3, 1);
    KT_OK(kiln_graph_add_output(graph, "y"));
    return graph;
}

/* x -> conv -> relu -> conv -> y: one conversion in, one out; the weights are OHWI copies. */
static void test_conv_chain(void) {
    kiln_graph *graph = conv_chain();
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(changed == 3 && c.layout == 3 && c.layout_conv == 2, "conv, relu, conv go NHWC (%d, %d marked)", changed,
             c.layout);
    KT_CHECK(c.to_nhwc == 1 && c.to_nchw == 1, "a pure conv chain gets exactly 2 conversions (%d in, %d out)", c.to_nhwc,
             c.to_nchw);
    kn_graph *g = &graph->g;
    KT_CHECK(kn_graph_find_value(g, "y") >= 0 && kn_pass_is_output(g, kn_graph_find_value(g, "y")),
             "the output keeps its name");
    /* c1's weight: OHWI copy of the f16 OIHW original, dims unchanged */
    const kn_node *c1 = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].name && strcmp(g->nodes[i].name, "c1") == 0) c1 = &g->nodes[i];
    int w0 = kn_graph_find_value(g, "c1.w");
    KT_CHECK(c1 && w0 >= 0, "c1 and its weight exist");
    if (c1 && w0 >= 0) {
        const kn_host_tensor *w = g->values[c1->in[1]].constant, *o = g->values[w0].constant;
        KT_CHECK(c1->in[1] != w0 && w && w->dtype == KILN_F16 && w->rank == 4 && w->dims[0] == 4 && w->dims[1] == 3 &&
                     w->dims[2] == 3 && w->dims[3] == 3,
                 "c1 reads a new f16 [4,3,3,3] constant");
        KT_CHECK(o == NULL, "the original weight, read by nothing now, is released");
    }
    /* remove_identity keeps the conversions */
    int removed = -1;
    kn_pass_options po = {.precision = KILN_PRECISION_FP16};
    KT_OK(kn_pass_remove_identity(g, &po, &removed));
    KT_CHECK(removed == 0 && count(g).to_nhwc == 1 && count(g).to_nchw == 1, "remove_identity keeps kiln.to_layout (%d removed)",
             removed);
    kiln_graph_free(graph);
}

/* TF32 keeps f32 storage; its activations go NHWC like f16 ones, the weights as f32 OHWI copies. */
static void test_conv_chain_tf32(void) {
    kiln_graph *graph = conv_chain();
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_TF32, &changed);
    KT_CHECK(changed == 3 && c.layout == 3 && c.layout_conv == 2 && c.to_nhwc == 1 && c.to_nchw == 1,
             "tf32: conv, relu, conv go NHWC with 2 conversions (%d marked, %d in, %d out)", c.layout, c.to_nhwc, c.to_nchw);
    kn_graph *g = &graph->g;
    int w0 = kn_graph_find_value(g, "c1.w");
    const kn_node *c1 = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].name && strcmp(g->nodes[i].name, "c1") == 0) c1 = &g->nodes[i];
    KT_CHECK(c1 && w0 >= 0 && c1->in[1] != w0 && g->values[c1->in[1]].constant &&
                 g->values[c1->in[1]].constant->dtype == KILN_F32,
             "tf32: c1 reads a new f32 OHWI constant");
    kiln_graph_free(graph);
}

/* The OHWI copy holds the OIHW data permuted: checked element by element against the f32 input. */
static void test_weight_permutation(void) {
    int64_t xd[4] = {1, 3, 4, 4}, wd[4] = {5, 3, 2, 3};
    kiln_graph *graph = new_graph(xd);
    float w[5 * 3 * 2 * 3];
    kt_fill_uniform(w, 90, -1, 1);
    KT_OK(kiln_graph_add_initializer(graph, "w", KILN_F32, 4, wd, w));
    const int64_t ks[2] = {2, 3};
    kiln_attr a = kiln_attr_ints("kernel_shape", 2, ks);
    const char *in[2] = {"x", "w"};
    kt_node_attrs(graph, "Conv", "conv", 2, in, "y", 1, &a);
    KT_OK(kiln_graph_add_output(graph, "y"));
    int changed;
    rewrite(graph, KILN_PRECISION_BF16, &changed);
    kn_graph *g = &graph->g;
    const kn_host_tensor *t = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == KN_OP_Conv) t = g->values[g->nodes[i].in[1]].constant;
    KT_CHECK(changed == 1 && t && t->dtype == KILN_BF16, "the conv goes NHWC with a bf16 weight");
    if (t && t->dtype == KILN_BF16) {
        int bad = 0;
        for (int k = 0; k < 5; k++)
            for (int c = 0; c < 3; c++)
                for (int r = 0; r < 2; r++)
                    for (int s = 0; s < 3; s++) {
                        float want = kn_bf16_to_f32(kn_f32_to_bf16(w[((k * 3 + c) * 2 + r) * 3 + s]));
                        float got = (float)kn_load_f64(t->data, KILN_BF16, ((k * 2 + r) * 3 + s) * 3 + c);
                        bad += want != got;
                    }
        KT_CHECK(bad == 0, "OHWI copy holds w[k,c,r,s] at ((k*R + r)*S + s)*C + c (%d wrong)", bad);
    }
    kiln_graph_free(graph);
}

/* The f16 build's input Cast is taken over by the conversion to NHWC: it reads the f32 input and
 * writes f16, and no Cast is left. */
static void test_input_cast_taken(void) {
    kiln_graph *graph = conv_chain();
    int changed;
    rewrite(graph, KILN_PRECISION_FP16, &changed);
    kn_graph *g = &graph->g;
    const kn_node *cv = find_node(g, "x.f16.to_nhwc");
    int x = kn_graph_find_value(g, "x"), casts = 0;
    for (int i = 0; i < g->n_nodes; i++) casts += !g->nodes[i].dead && g->nodes[i].op == KN_OP_Cast;
    KT_CHECK(cv && cv->in[0] == x && kn_attr_i(cv, "kiln.to_dtype", 0) == 10 && !kn_node_attr(cv, "kiln.pad_channels"),
             "the conversion reads the f32 input and converts to f16 (ONNX type 10), with no padding asked for");
    KT_CHECK(casts == 1, "only the output's Cast is left (%d Casts)", casts);
    if (cv) {
        const kn_value *y = &g->values[cv->out[0]];
        KT_CHECK(y->dtype == KILN_F16 && y->rank == 4 && y->dims[1].v == 3, "the converted image is f16 with 3 channels");
    }
    kiln_graph_free(graph);
}

/* With a backend that pads narrow inputs to 4 channels: the conversion pads, the first Conv's
 * OHWI weight gets a zero fourth channel (checked element by element), the second Conv (fed by
 * the first, already 4 channels) is left as it is. */
static void test_pad_channels(void) {
    int64_t xd[4] = {1, 3, 4, 4}, wd[4] = {5, 3, 2, 3};
    kiln_graph *graph = new_graph(xd);
    float w[5 * 3 * 2 * 3];
    kt_fill_uniform(w, 5 * 3 * 2 * 3, -1, 1);
    KT_OK(kiln_graph_add_initializer(graph, "w", KILN_F32, 4, wd, w));
    const int64_t ks[2] = {2, 3};
    kiln_attr a = kiln_attr_ints("kernel_shape", 2, ks);
    const char *in[2] = {"x", "w"};
    kt_node_attrs(graph, "Conv", "conv", 2, in, "a", 1, &a);
    kt_conv(graph, "c2", "a", "y", 5, 6, 1, 1);
    KT_OK(kiln_graph_add_output(graph, "y"));
    int changed;
    counts c = rewrite_pad(graph, KILN_PRECISION_FP16, &changed, pad_to_4);
    kn_graph *g = &graph->g;
    const kn_node *cv = find_node(g, "x.f16.to_nhwc"), *conv = find_node(g, "conv"), *c2 = find_node(g, "c2");
    KT_CHECK(changed == 2 && c.to_nhwc == 1 && cv && conv && c2, "both convs go NHWC behind one conversion");
    if (!cv || !conv || !c2) {
        kiln_graph_free(graph);
        return;
    }
    const kn_value *xv = &g->values[cv->out[0]];
    KT_CHECK(kn_attr_i(cv, "kiln.pad_channels", 0) == 4 && xv->dims[1].v == 4 && xv->dims[0].v == 1 && xv->dims[2].v == 4,
             "the conversion pads 3 channels to 4 (value dims [%lld, %lld, %lld, %lld])", (long long)xv->dims[0].v,
             (long long)xv->dims[1].v, (long long)xv->dims[2].v, (long long)xv->dims[3].v);
    KT_CHECK(conv->in[0] == cv->out[0], "the first conv reads the padded image");
    const kn_host_tensor *t = g->values[conv->in[1]].constant, *t2 = g->values[c2->in[1]].constant;
    KT_CHECK(t && t->dtype == KILN_F16 && t->dims[0] == 5 && t->dims[1] == 4 && t->dims[2] == 2 && t->dims[3] == 3,
             "the first conv's weight is f16 [5, 4, 2, 3]");
    KT_CHECK(t2 && t2->dims[1] == 5, "the second conv's weight keeps its 5 channels");
    if (t && t->dims[1] == 4) {
        int bad = 0;
        for (int k = 0; k < 5; k++)
            for (int r = 0; r < 2; r++)
                for (int s2 = 0; s2 < 3; s2++)
                    for (int ch = 0; ch < 4; ch++) {
                        float want = ch < 3 ? kn_f16_to_f32(kn_f32_to_f16(w[((k * 3 + ch) * 2 + r) * 3 + s2])) : 0.0f;
                        float got = (float)kn_load_f64(t->data, KILN_F16, ((k * 2 + r) * 3 + s2) * 4 + ch);
                        bad += want != got;
                    }
        KT_CHECK(bad == 0, "the padded OHWI weight holds w[k,c,r,s] at ((k*R + r)*S + s)*4 + c and zeros at c = 3 (%d wrong)", bad);
    }
    kiln_graph_free(graph);
}

/* No padding where the image is also read by something other than a Conv's X (an NHWC Relu). */
static void test_pad_needs_conv_readers(void) {
    int64_t xd[4] = {2, 3, 5, 6};
    kiln_graph *graph = new_graph(xd);
    kt_node(graph, "Relu", "r0", "x", NULL, "xr");
    kt_conv(graph, "c1", "x", "a", 3, 4, 3, 1);
    kt_node(graph, "Add", "add", "a", "a", "y");
    kt_conv(graph, "c2", "xr", "z", 3, 4, 3, 1);
    KT_OK(kiln_graph_add_output(graph, "y"));
    KT_OK(kiln_graph_add_output(graph, "z"));
    int changed;
    counts c = rewrite_pad(graph, KILN_PRECISION_FP16, &changed, pad_to_4);
    kn_graph *g = &graph->g;
    const kn_node *cv = find_node(g, "x.f16.to_nhwc");
    KT_CHECK(c.to_nhwc == 1 && cv && !kn_node_attr(cv, "kiln.pad_channels"),
             "an image read by a Relu and a Conv is converted without padding");
    kiln_graph_free(graph);
}

/* conv -> relu -> GAP -> Flatten -> Gemm: GAP exits NCHW without a conversion. */
static void test_gap_exit(void) {
    int64_t xd[4] = {2, 3, 6, 6};
    kiln_graph *graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "a", 3, 8, 3, 1);
    kt_node(graph, "Relu", "r1", "a", NULL, "b");
    const int64_t ks[2] = {2, 2}, st[2] = {2, 2};
    kiln_attr pa[2] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("strides", 2, st)};
    const char *pin[1] = {"b"};
    kt_node_attrs(graph, "MaxPool", "mp", 1, pin, "p", 2, pa);
    kt_node(graph, "GlobalAveragePool", "gap", "p", NULL, "g");
    kt_node(graph, "Flatten", "fl", "g", NULL, "f");
    int64_t wd[2] = {4, 8}, bd[1] = {4};
    kt_const(graph, "fc.w", 2, wd, -1, 1);
    kt_const(graph, "fc.b", 1, bd, -1, 1);
    kiln_attr tb = kiln_attr_int("transB", 1);
    const char *gin[3] = {"f", "fc.w", "fc.b"};
    kt_node_attrs(graph, "Gemm", "fc", 3, gin, "y", 1, &tb);
    KT_OK(kiln_graph_add_output(graph, "y"));
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(changed == 4 && c.layout == 4, "conv, relu, maxpool, GAP go NHWC (%d)", changed);
    KT_CHECK(c.to_nhwc == 1 && c.to_nchw == 0, "GAP exits without a conversion (%d in, %d out)", c.to_nhwc, c.to_nchw);
    kiln_graph_free(graph);
}

/* conv -> Softmax(axis 1) -> conv: each conv is its own NHWC region (4 conversions); a residual Add
 * of two NHWC values stays inside; a broadcasting Mul is not taken. */
static void test_edges(void) {
    int64_t xd[4] = {1, 4, 5, 5};
    kiln_graph *graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "a", 4, 4, 3, 1);
    kiln_attr ax = kiln_attr_int("axis", 1);
    const char *sin[1] = {"a"};
    kt_node_attrs(graph, "Softmax", "sm", 1, sin, "s", 1, &ax);
    kt_conv(graph, "c2", "s", "b", 4, 4, 3, 1);
    kt_conv(graph, "c3", "b", "c", 4, 4, 1, 0);
    kt_node(graph, "Add", "res", "b", "c", "d"); /* same shapes: NHWC */
    int64_t sd[4] = {1, 4, 1, 1};
    kt_const(graph, "scale", 4, sd, 0.5f, 1.5f);
    kt_node(graph, "Mul", "bc", "d", "scale", "y"); /* constant operand: not taken */
    KT_OK(kiln_graph_add_output(graph, "y"));
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(changed == 4 && c.layout_conv == 3, "three convs and the residual Add go NHWC (%d)", changed);
    KT_CHECK(c.to_nhwc == 2 && c.to_nchw == 2, "conversions around the Softmax and before the Mul (%d in, %d out)",
             c.to_nhwc, c.to_nchw);
    kiln_graph_free(graph);
}

/* No conv: nothing pays; FP32: nothing asked; a forced fallback conv stays NCHW. */
static void test_no_rewrite(void) {
    int64_t xd[4] = {1, 3, 6, 6};
    kiln_graph *graph = new_graph(xd);
    kt_node(graph, "Relu", "r", "x", NULL, "a");
    const int64_t ks[2] = {2, 2};
    kiln_attr pa = kiln_attr_ints("kernel_shape", 2, ks);
    const char *pin[1] = {"a"};
    kt_node_attrs(graph, "MaxPool", "mp", 1, pin, "y", 1, &pa);
    KT_OK(kiln_graph_add_output(graph, "y"));
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(changed == 0 && c.identity == 0 && c.layout == 0, "no conv: no rewrite (%d)", changed);
    kiln_graph_free(graph);

    graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "y", 3, 4, 3, 1);
    KT_OK(kiln_graph_add_output(graph, "y"));
    c = rewrite(graph, KILN_PRECISION_FP32, &changed);
    KT_CHECK(changed == 0 && c.identity == 0, "fp32: f32 activations stay NCHW outside tf32 (%d)", changed);
    kiln_graph_free(graph);

    graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "a", 3, 4, 3, 1);
    kt_node(graph, "Relu", "r", "a", NULL, "y");
    KT_OK(kiln_graph_add_output(graph, "y"));
    for (int i = 0; i < graph->g.n_nodes; i++) graph->g.nodes[i].fallback = graph->g.nodes[i].op == KN_OP_Conv;
    c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(changed == 0 && c.identity == 0, "a fallback conv stays NCHW, so the Relu alone does not pay (%d)", changed);
    kiln_graph_free(graph);
}

/* The CPU backend has no prefers_nhwc: an fp16 CPU build has no layout nodes. */
static void test_cpu_never(void) {
    int64_t xd[4] = {1, 3, 6, 6};
    kiln_graph *graph = new_graph(xd);
    kt_conv(graph, "c1", "x", "a", 3, 4, 3, 1);
    kt_node(graph, "Relu", "r", "a", NULL, "y");
    KT_OK(kiln_graph_add_output(graph, "y"));
    kt_opts o = {.optimize = true, .precision = KILN_PRECISION_FP16};
    kiln_module *m = kt_compile(graph, &o);
    if (m) {
        counts c = count(m->graph);
        KT_CHECK(c.identity == 0 && c.layout == 0, "CPU fp16 build: no layout rewrite");
    }
    kiln_module_free(m);
    kiln_graph_free(graph);
}

/* ResNet-18 after the pipeline: one conversion after the input Cast, none back (GAP exits). */
static void test_resnet18(void) {
    kiln_graph *graph = NULL;
    KT_OK(kiln_resnet_build(18, 64, 7, &graph));
    if (!graph) return;
    kn_graph *g = &graph->g;
    KT_OK(kn_graph_infer_static(g));
    kn_pass_options po = {.precision = KILN_PRECISION_FP16, .backend = kn_backend_cpu()};
    KT_OK(kn_passes_run(g, &po));
    int changed;
    counts c = rewrite(graph, KILN_PRECISION_FP16, &changed);
    KT_CHECK(c.layout_conv == 20 && c.layout == 22, "20 convs, MaxPool and GAP go NHWC (%d conv, %d nodes)",
             c.layout_conv, c.layout);
    KT_CHECK(c.to_nhwc == 1 && c.to_nchw == 0, "ResNet-18: one conversion in, none out (%d, %d)", c.to_nhwc, c.to_nchw);
    kiln_graph_free(graph);
}

int main(void) {
    kt_seed(10);
    test_conv_chain();
    test_conv_chain_tf32();
    test_weight_permutation();
    test_input_cast_taken();
    test_pad_channels();
    test_pad_needs_conv_readers();
    test_gap_exit();
    test_edges();
    test_no_rewrite();
    test_cpu_never();
    test_resnet18();
    return kt_finish();
}
