/* NHWC convolution blocks on CUDA (the layout pass, issue 10): small conv graphs and ResNet-18
 * compiled for CUDA in fp16 and in tf32 (the pass runs: checked structurally) against the CPU fp32
 * module of the same graph, with CUDA graphs off and whole-module, including a forced fallback in
 * the middle and blocks demoted to fallback (min block size above the graph's size).
 * Tolerance: max |gpu - cpu| <= 1e-2 * max |cpu| (2e-2 for ResNet-18's 20 convs).
 * Prints "SKIP: no CUDA device" and passes on a machine without a GPU. */
#include "test_passes_util.h"

#include "backend/backend.h"
#include "resnet.h"

static int layout_nodes(const kiln_module *m, int *conv, int *conversions) {
    int n = 0;
    *conv = *conversions = 0;
    for (int i = 0; m && i < m->graph->n_nodes; i++) {
        const kn_node *nd = &m->graph->nodes[i];
        if (nd->dead) continue;
        if (kn_attr_i(nd, "kiln.layout", 0) == 1) {
            n++;
            *conv += nd->op == KN_OP_Conv;
        }
        *conversions += nd->op == KN_OP_Identity && kn_node_attr(nd, "kiln.to_layout") != NULL;
    }
    return n;
}

/* Runs a CUDA module `runs` times in graphs mode gm on host input x (the profile's opt dims) into
 * a malloc'd host buffer *y (the caller frees) of *n elements. kt_run_mode cannot serve here: it
 * lets kiln point the output at the session's own (device) buffer. */
static int run_cuda(const kiln_module *m, const float *x, kiln_cudagraphs_mode gm, int runs, float **y, int64_t *n) {
    *y = NULL;
    *n = 0;
    kiln_io_info ii, oi;
    KT_OK(kiln_module_input_info(m, 0, &ii));
    KT_OK(kiln_module_output_info(m, 0, &oi));
    *n = kn_numel(oi.rank, oi.opt);
    *y = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    if (!s || !*y) {
        kiln_session_free(s);
        return 0;
    }
    KT_OK(kiln_session_set_cudagraphs_mode(s, gm));
    kiln_tensor in = {.data = (void *)x, .dtype = KILN_F32, .rank = ii.rank, .device = KILN_DEVICE_CPU};
    for (int i = 0; i < ii.rank; i++) in.dims[i] = ii.opt[i];
    kiln_status st = KILN_OK;
    for (int r = 0; r < runs && st == KILN_OK; r++) {
        kiln_tensor out = {.data = *y, .device = KILN_DEVICE_CPU};
        st = kiln_session_run(s, &in, 1, &out, 1);
        if (st == KILN_OK) st = kiln_session_synchronize(s);
        if (st == KILN_OK && (out.dtype != KILN_F32 || kn_numel(out.rank, out.dims) != *n)) {
            KT_CHECK(0, "the output is %s with %lld elements, expected f32 with %lld", kiln_dtype_name(out.dtype),
                     (long long)kn_numel(out.rank, out.dims), (long long)*n);
            st = KILN_ERR_SHAPE;
        }
    }
    KT_CHECK(st == KILN_OK, "CUDA run: %s", kiln_last_error());
    kiln_session_free(s);
    return st == KILN_OK;
}

/* the CUDA builds' precision: fp16, then tf32 (f32 storage, NHWC too) */
static kiln_precision g_prec = KILN_PRECISION_FP16;
/* no tactic timing: every step runs its tactic 0 (kiln's implicit GEMM for the one-group fp16
 * convolutions) */
static bool g_no_timing = false;

/* Compiles g for CUDA at g_prec and CPU fp32 and compares output 0 with graphs off and whole. */
static void check(const kiln_graph *g, const char *what, int n_in, const int64_t (*in_dims)[4], kt_opts o, double tol,
                  int want_conv) {
    float *ins[4] = {0};
    for (int k = 0; k < n_in; k++) {
        int64_t n = kn_numel(4, in_dims[k]);
        ins[k] = malloc((size_t)n * sizeof(float));
        kt_fill_uniform(ins[k], n, -1, 1);
    }
    o.optimize = true;
    kiln_module *ref = kt_compile(g, &o);
    kiln_build_config c;
    o.precision = g_prec;
    kt_config(&c, &o);
    c.device = KILN_DEVICE_CUDA;
    c.time_tactics = !g_no_timing;
    kiln_module *m = NULL;
    kiln_status st = kiln_compile(g, &c, &m);
    const char *pn = g_prec == KILN_PRECISION_TF32 ? "tf32" : g_prec == KILN_PRECISION_BF16 ? "bf16" : "fp16";
    KT_CHECK(st == KILN_OK, "%s: CUDA %s build: %s", what, pn, kiln_last_error());
    if (m && ref) {
        int conv, conversions, nl = layout_nodes(m, &conv, &conversions);
        KT_CHECK(conv == want_conv && nl >= conv && conversions >= 1,
                 "%s %s: %d conv%s NHWC (want %d), %d layout nodes, %d conversions", what, pn, conv, conv == 1 ? "" : "s",
                 want_conv, nl, conversions);
        /* an fp16 image of fewer than 4 channels enters padded to 4 (cuda_backend.c) */
        int64_t c_in = in_dims[0][1], padded = 0;
        for (int i = 0; i < m->graph->n_nodes; i++)
            if (!m->graph->nodes[i].dead) padded += kn_attr_i(&m->graph->nodes[i], "kiln.pad_channels", 0);
        int64_t want_pad = (g_prec == KILN_PRECISION_FP16 || g_prec == KILN_PRECISION_BF16) && c_in < 4 ? 4 : 0;
        KT_CHECK(padded == want_pad, "%s %s: the image's conversion pads to %lld channels (want %lld)", what, pn,
                 (long long)padded, (long long)want_pad);
        float *a[4] = {0}, *b = NULL;
        int64_t na[4] = {0}, nb = 0;
        if (kt_run(ref, ins, NULL, a, na)) {
            for (int mode = 0; mode < 2; mode++) {
                kiln_cudagraphs_mode gm = mode ? KILN_CUDAGRAPHS_WHOLE : KILN_CUDAGRAPHS_OFF;
                if (run_cuda(m, ins[0], gm, 2, &b, &nb)) {
                    KT_CHECK(na[0] == nb && nb > 0, "%s: %lld vs %lld elements", what, (long long)na[0], (long long)nb);
                    if (na[0] == nb) {
                        double err = kt_max_rel_err(b, a[0], nb);
                        KT_CHECK(err <= tol,
                                 "%s (graphs %s): %s NHWC differs from fp32 CPU by %g of the output scale (tol %g)",
                                 what, mode ? "whole" : "off", pn, err, tol);
                    }
                }
                free(b);
                b = NULL;
            }
        }
        for (int k = 0; k < 4; k++) free(a[k]);
    }
    kiln_module_free(m);
    kiln_module_free(ref);
    for (int k = 0; k < n_in; k++) free(ins[k]);
}

static kiln_graph *new_graph(const int64_t *xd) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    kt_input(g, "x", 4, xd);
    return g;
}

static void pool(kiln_graph *g, const char *op, const char *name, const char *x, const char *y, int64_t k, int64_t s,
                 int64_t p) {
    const int64_t ks[2] = {k, k}, st[2] = {s, s}, pd[4] = {p, p, p, p};
    kiln_attr a[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("strides", 2, st),
                      kiln_attr_ints("pads", 4, pd)};
    const char *in[1] = {x};
    kt_node_attrs(g, op, name, 1, in, y, 3, a);
}

/* A conv, a strided 3x3 depthwise conv with bias, HardSwish, and a GAP + Flatten + Gemm head. */
static kiln_graph *dw_head_graph(const int64_t *xd) {
    kiln_graph *g = new_graph(xd);
    kt_conv(g, "c1", "x", "a", 8, 16, 3, 1);
    int64_t dwd[4] = {16, 1, 3, 3}, dbd[1] = {16};
    kt_const(g, "dw.w", 4, dwd, -0.5f, 0.5f);
    kt_const(g, "dw.b", 1, dbd, -0.5f, 0.5f);
    {
        const int64_t ks[2] = {3, 3}, pd[4] = {1, 1, 1, 1}, st[2] = {2, 2};
        kiln_attr a[4] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pd),
                          kiln_attr_ints("strides", 2, st), kiln_attr_int("group", 16)};
        const char *in[3] = {"a", "dw.w", "dw.b"};
        kt_node_attrs(g, "Conv", "dw", 3, in, "b", 4, a);
    }
    kt_node(g, "HardSwish", "hs", "b", NULL, "c");
    kt_node(g, "GlobalAveragePool", "gap", "c", NULL, "d");
    kt_node(g, "Flatten", "fl", "d", NULL, "e");
    int64_t wd[2] = {10, 16}, bd[1] = {10};
    kt_const(g, "fc.w", 2, wd, -0.5f, 0.5f);
    kt_const(g, "fc.b", 1, bd, -0.5f, 0.5f);
    kiln_attr tb = kiln_attr_int("transB", 1);
    const char *gin[3] = {"e", "fc.w", "fc.b"};
    kt_node_attrs(g, "Gemm", "fc", 3, gin, "y", 1, &tb);
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

/* Max pools after a conv: the 3x3/2 window (the unrolled form) with padding, 2x2/2 (the general
 * loop) and 2x2/1 with padding on every side; 16 channels (two vectors a pixel). */
static void test_max_pools(double tol) {
    static const int64_t xd[1][4] = {{2, 8, 11, 13}};
    kiln_graph *g = new_graph(xd[0]);
    kt_conv(g, "c1", "x", "a", 8, 16, 3, 1);
    pool(g, "MaxPool", "mp3", "a", "b", 3, 2, 1);
    pool(g, "MaxPool", "mp2", "b", "c", 2, 2, 0);
    pool(g, "MaxPool", "mp2p", "c", "y", 2, 1, 1);
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "max pools", 1, xd, (kt_opts){0}, tol, 1);
    kiln_graph_free(g);
}

static void test_small_graphs(void) {
    static const int64_t xd[1][4] = {{2, 8, 9, 10}};
    kt_opts o = {0};
    /* conv+bias+relu chain */
    kiln_graph *g = new_graph(xd[0]);
    kt_conv(g, "c1", "x", "a", 8, 16, 3, 1);
    kt_node(g, "Relu", "r1", "a", NULL, "b");
    kt_conv(g, "c2", "b", "c", 16, 8, 3, 1);
    kt_node(g, "Relu", "r2", "c", NULL, "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "conv chain", 1, xd, o, 1e-2, 2);
    /* the same with blocks demoted to fallback: the plain kernels honour the layout too */
    kt_opts demote = {.min_block_size = 100};
    check(g, "conv chain, demoted", 1, xd, demote, 1e-2, 2);
    kiln_graph_free(g);

    /* residual add + relu, then max and average pooling */
    g = new_graph(xd[0]);
    kt_conv(g, "c1", "x", "a", 8, 8, 3, 1);
    kt_node(g, "Relu", "r1", "a", NULL, "b");
    kt_conv(g, "c2", "b", "c", 8, 8, 3, 1);
    kt_node(g, "Add", "res", "c", "x", "d");
    kt_node(g, "Relu", "r2", "d", NULL, "e");
    pool(g, "MaxPool", "mp", "e", "f", 3, 2, 1);
    kt_conv(g, "c3", "f", "h", 8, 16, 1, 1);
    pool(g, "AveragePool", "ap", "h", "y", 2, 2, 0);
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "residual + pools", 1, xd, o, 1e-2, 3);
    /* a forced fallback MaxPool in the middle */
    const char *const fb[1] = {"MaxPool"};
    kt_opts forced = {.fallback = fb, .n_fallback = 1};
    check(g, "forced fallback MaxPool", 1, xd, forced, 1e-2, 3);
    kiln_graph_free(g);

    g = dw_head_graph(xd[0]);
    check(g, "depthwise + GAP head", 1, xd, o, 1e-2, 2);
    kiln_graph_free(g);

    /* narrow images: 3 and 1 channels padded to 4 by the conversion to NHWC in fp16 (which also
     * takes the input Cast over: f32 read, f16 written), 4 channels cast without padding */
    static const int64_t nd[3][1][4] = {{{2, 3, 9, 10}}, {{2, 1, 9, 10}}, {{3, 4, 7, 6}}};
    for (int i = 0; i < 3; i++) {
        g = new_graph(nd[i][0]);
        kt_conv(g, "c1", "x", "a", nd[i][0][1], 8, 3, 1);
        kt_node(g, "Relu", "r1", "a", NULL, "b");
        kt_conv(g, "c2", "b", "y", 8, 8, 3, 1);
        KT_OK(kiln_graph_add_output(g, "y"));
        char what[64];
        snprintf(what, sizeof what, "%lld-channel image", (long long)nd[i][0][1]);
        check(g, what, 1, nd[i], o, 1e-2, 2);
        kiln_graph_free(g);
    }

    /* Softmax over channels between convs: NCHW there */
    g = new_graph(xd[0]);
    kt_conv(g, "c1", "x", "a", 8, 8, 3, 1);
    kiln_attr ax = kiln_attr_int("axis", 1);
    const char *sin[1] = {"a"};
    kt_node_attrs(g, "Softmax", "sm", 1, sin, "s", 1, &ax);
    kt_conv(g, "c2", "s", "t", 8, 8, 3, 1);
    const char *cin[2] = {"t", "a"};
    kiln_attr cax = kiln_attr_int("axis", 1);
    kt_node_attrs(g, "Concat", "cat", 2, cin, "y", 1, &cax);
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "softmax/concat between convs", 1, xd, o, 1e-2, 2);
    kiln_graph_free(g);
}

static void conv_s2(kiln_graph *g, const char *name, const char *x, const char *y, int64_t cin, int64_t cout, int64_t k) {
    char w[128], b[128];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(b, sizeof b, "%s.b", name);
    int64_t wd[4] = {cout, cin, k, k}, bd[1] = {cout}, p = k / 2;
    kt_const(g, w, 4, wd, -0.5f, 0.5f);
    kt_const(g, b, 1, bd, -0.5f, 0.5f);
    const int64_t ks[2] = {k, k}, pads[4] = {p, p, p, p}, st[2] = {2, 2};
    kiln_attr a[3] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pads), kiln_attr_ints("strides", 2, st)};
    const char *in[3] = {x, w, b};
    kt_node_attrs(g, "Conv", name, 3, in, y, 3, a);
}

/* kiln's implicit-GEMM convolution (tactic 0, no timing): partial tiles of pixels and channels,
 * a reduction that does not fill its last step, stride 2, 1x1, bias, residual and ReLU fused, and
 * the reduction split 1, 4, 8 and 16 ways (the split grows as the pixels shrink: 7x7 with 512
 * channels takes 16) */
static void test_igemm(void) {
    g_no_timing = true;
    kt_opts o = {0};
    static const int64_t x1[1][4] = {{1, 16, 9, 9}}, x2[1][4] = {{2, 64, 7, 7}}, x3[1][4] = {{1, 256, 7, 7}},
                         x4[1][4] = {{1, 512, 7, 7}};
    kiln_graph *g = new_graph(x1[0]);
    kt_conv(g, "c1", "x", "a", 16, 24, 3, 1);
    kt_node(g, "Relu", "r1", "a", NULL, "b");
    conv_s2(g, "c2", "b", "y", 24, 32, 3);
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "igemm: 9x9, 16 -> 24 -> 32 channels, stride 2", 1, x1, o, 1e-2, 2);
    kiln_graph_free(g);

    g = new_graph(x2[0]);
    kt_conv(g, "c1", "x", "a", 64, 64, 3, 1);
    kt_node(g, "Add", "res", "a", "x", "b");
    kt_node(g, "Relu", "r1", "b", NULL, "c");
    conv_s2(g, "c2", "c", "y", 64, 128, 1);
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "igemm: batch 2, 7x7, residual, 1x1 stride 2", 1, x2, o, 1e-2, 2);
    kiln_graph_free(g);

    g = new_graph(x3[0]);
    kt_conv(g, "c1", "x", "a", 256, 256, 3, 1);
    kt_node(g, "Relu", "r1", "a", NULL, "b");
    kt_conv(g, "c2", "b", "c", 256, 256, 3, 1);
    kt_node(g, "Add", "res", "c", "x", "d");
    kt_node(g, "Relu", "r2", "d", NULL, "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "igemm: 7x7, 256 channels (8-way split), residual", 1, x3, o, 1e-2, 2);
    kiln_graph_free(g);

    g = new_graph(x4[0]);
    kt_conv(g, "c1", "x", "a", 512, 512, 3, 1);
    kt_node(g, "Relu", "r1", "a", NULL, "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    check(g, "igemm: 7x7, 512 channels (16-way split)", 1, x4, o, 1e-2, 1);
    kiln_graph_free(g);
    g_no_timing = false;
}

static void test_resnet18(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_resnet_build(18, 64, 7, &g));
    if (!g) return;
    static const int64_t xd[1][4] = {{2, 3, 64, 64}};
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 64, 64}, .opt = {2, 3, 64, 64}, .max = {2, 3, 64, 64}};
    kt_opts o = {.profiles = &p, .n_profiles = 1, .min_block_size = 5};
    check(g, "resnet18", 1, xd, o, 2e-2, 20);
    kiln_graph_free(g);
}

/* ResNet-50 fp16 (built to avoid runtime compilation, so every convolution prepares from its
 * stored engine config) at several batch sizes in one session that keeps one shape's graphs:
 * convolutions of the same graph share a cuDNN plan per shape (cuda_conv.c, "shared plans"), an
 * evicted shape releases its plans and a later one builds them again. Each batch against the
 * fp32 CPU run at that batch. */
/* With provisional kernels every batch starts on kiln's own convolutions (the 4-channel stem on
 * the direct kernel, the rest on the implicit GEMM) and is checked, then again after the
 * background preparation has finished and the next run swapped the tuned kernels in. */
static void test_resnet50_shapes(int provisional) {
    kiln_graph *g = NULL;
    KT_OK(kiln_resnet_build(50, 64, 11, &g));
    if (!g) return;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 64, 64}, .opt = {2, 3, 64, 64}, .max = {3, 3, 64, 64}};
    kt_opts o = {.profiles = &p, .n_profiles = 1, .min_block_size = 5, .optimize = true};
    kiln_module *ref = kt_compile(g, &o);
    kiln_build_config c;
    o.precision = KILN_PRECISION_FP16;
    kt_config(&c, &o);
    c.device = KILN_DEVICE_CUDA;
    c.avoid_runtime_compilation = true;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &c, &m));
    kiln_session *s = NULL;
    if (m) KT_OK(kiln_session_create(m, &s));
    if (s) {
        KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
        KT_OK(kiln_session_set_graph_cache_size(s, 1));
        KT_OK(kiln_session_set_provisional_kernels(s, provisional));
    }
    float *x = malloc((size_t)3 * 3 * 64 * 64 * sizeof(float)), *y = malloc((size_t)3 * 1000 * sizeof(float));
    if (x) kt_fill_uniform(x, 3 * 3 * 64 * 64, -1, 1);
    static const int batches[] = {1, 2, 1, 3, 2, 3};
    for (int i = 0; s && ref && x && y && i < (int)(sizeof batches / sizeof batches[0]); i++) {
        int64_t dims[1][KILN_MAX_RANK] = {{batches[i], 3, 64, 64}};
        float *a[1] = {0};
        int64_t na[1] = {0};
        float *xs[1] = {x};
        if (!kt_run(ref, xs, (const int64_t(*)[KILN_MAX_RANK])dims, a, na)) continue;
        kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {batches[i], 3, 64, 64}, .device = KILN_DEVICE_CPU};
        for (int pass = 0; pass < 1 + provisional; pass++) { /* provisional: then the tuned kernels */
            if (pass) KT_OK(kiln_session_finish_preparation(s));
            kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
            kiln_status st = kiln_session_run(s, &in, 1, &out, 1);
            if (st == KILN_OK) st = kiln_session_synchronize(s);
            KT_CHECK(st == KILN_OK, "resnet50 batch %d: %s", batches[i], kiln_last_error());
            int64_t n = kn_numel(out.rank, out.dims);
            KT_CHECK(st != KILN_OK || n == na[0], "resnet50 batch %d: %lld outputs, the CPU has %lld", batches[i],
                     (long long)n, (long long)na[0]);
            if (st == KILN_OK && n == na[0]) {
                double err = kt_max_rel_err(y, a[0], n);
                KT_CHECK(err <= 2e-2, "resnet50 batch %d (run %d%s): fp16 differs from fp32 CPU by %g of the output scale",
                         batches[i], i, !provisional ? "" : pass ? ", tuned kernels" : ", provisional kernels", err);
            }
        }
        free(a[0]);
    }
    kiln_counters cn = {0};
    if (s) KT_OK(kiln_session_counters(s, &cn));
    KT_CHECK(cn.evictions >= 5, "one graph kept: every change of batch evicts one, got %llu", (unsigned long long)cn.evictions);
    if (provisional)
        KT_CHECK(cn.provisional == 6 && cn.upgrades == 6,
                 "provisional kernels: each of the 6 new shapes started on them and was swapped, got %llu and %llu",
                 (unsigned long long)cn.provisional, (unsigned long long)cn.upgrades);
    free(x);
    free(y);
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_module_free(ref);
    kiln_graph_free(g);
}

int main(void) {
    if (!kn_backend_cuda()) {
        printf("SKIP: no CUDA device\n");
        return 0;
    }
    kt_seed(10);
    test_small_graphs();
    test_max_pools(1e-2);
    test_resnet18();
    test_resnet50_shapes(0);
    test_resnet50_shapes(1);
    test_igemm();
    /* ResNet-18 and the depthwise graph once more on kiln's convolutions alone */
    g_no_timing = true;
    test_resnet18();
    {
        static const int64_t xd[1][4] = {{2, 8, 9, 10}};
        kiln_graph *g = dw_head_graph(xd[0]);
        check(g, "depthwise + GAP head, kiln's depthwise kernel", 1, xd, (kt_opts){0}, 1e-2, 2);
        kiln_graph_free(g);
    }
    g_no_timing = false;
    g_prec = KILN_PRECISION_BF16; /* 8 bits of mantissa: the pools only select, the conv rounds */
    test_max_pools(2e-2);
    g_prec = KILN_PRECISION_TF32;
    test_small_graphs();
    test_resnet18();
    return kt_finish();
}
