/* The graph passes on the CPU: every pass is checked twice, numerically (the optimized module
 * against the unoptimized one, and where cheap against a float64 loop written here) and
 * structurally (the optimized module's graph has the shape the pass should leave). The legality
 * rules are checked too: no fusion across a second reader, a graph output or a forced fallback. */
#include "test_passes_util.h"

#include "resnet.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

/* ---- references ------------------------------------------------------------------------------- */

/* y[n,m,h,w] = sum_c,i,j x[n,c,h+i-p,w+j-p] w[m,c,i,j] + b[m], stride 1, pad p = k/2. */
static void ref_conv(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *w, int64_t M, int64_t k,
                     const float *b, double *y) {
    int64_t p = k / 2;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t ww = 0; ww < W; ww++) {
                    double s = b ? b[m] : 0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t i = 0; i < k; i++)
                            for (int64_t j = 0; j < k; j++) {
                                int64_t hh = h + i - p, wj = ww + j - p;
                                if (hh < 0 || hh >= H || wj < 0 || wj >= W) continue;
                                s += (double)x[((n * C + c) * H + hh) * W + wj] * w[((m * C + c) * k + i) * k + j];
                            }
                    y[((n * M + m) * H + h) * W + ww] = s;
                }
}

static void fill(float *x, int64_t n) { kt_fill_uniform(x, n, -1, 1); }

static void add_init(kiln_graph *g, const char *name, int rank, const int64_t *dims, const float *data) {
    KT_OK(kiln_graph_add_initializer(g, name, KILN_F32, rank, dims, data));
}

/* Runs m on the given inputs and checks output 0 against a float64 reference. */
static void check_against(const kiln_module *m, float *const *ins, const double *ref, int64_t n, double tol,
                          const char *what) {
    float *out[8] = {0};
    int64_t on[8] = {0};
    if (!m || !kt_run(m, ins, NULL, out, on)) return;
    KT_CHECK(on[0] == n, "%s: %lld outputs, expected %lld", what, (long long)on[0], (long long)n);
    if (on[0] == n) {
        double ratio = kt_max_tol_ratio(out[0], ref, n, tol, tol);
        KT_CHECK(ratio <= 1.0, "%s: output off the float64 reference by %g x tolerance", what, ratio);
    }
    for (int k = 0; k < 8; k++) free(out[k]);
}

/* Captures what the library writes on stderr while compiling. */
static char *compile_capturing_stderr(const kiln_graph *g, const kt_opts *o, kiln_module **m) {
    char path[] = "/tmp/kiln_test_passes_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    *m = kt_compile(g, o);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc((size_t)len + 1, 1);
    if (text && len > 0 && pread(fd, text, (size_t)len, 0) != len) text[0] = 0;
    close(fd);
    unlink(path);
    return text;
}

/* ---- BatchNormalization folding ------------------------------------------------------------------ */

static void test_fold_batchnorm_conv(void) {
    enum { N = 2, C = 3, H = 7, W = 6, M = 4, K = 3 };
    float x[N * C * H * W], w[M * C * K * K], b[M], sc[M], bb[M], mu[M], var[M];
    fill(x, N * C * H * W);
    fill(w, M * C * K * K);
    fill(b, M);
    kt_fill_uniform(sc, M, 0.5f, 1.5f);
    fill(bb, M);
    fill(mu, M);
    kt_fill_uniform(var, M, 0.2f, 2.0f);
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {N, C, H, W}, wd[4] = {M, C, K, K}, vd[1] = {M};
    kt_input(g, "x", 4, xd);
    add_init(g, "w", 4, wd, w);
    add_init(g, "b", 1, vd, b);
    add_init(g, "sc", 1, vd, sc);
    add_init(g, "bb", 1, vd, bb);
    add_init(g, "mu", 1, vd, mu);
    add_init(g, "var", 1, vd, var);
    const int64_t ks[2] = {K, K}, pads[4] = {1, 1, 1, 1};
    kiln_attr ca[2] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pads)};
    const char *cin[3] = {"x", "w", "b"};
    kt_node_attrs(g, "Conv", "conv", 3, cin, "c", 2, ca);
    const char *bin[5] = {"c", "sc", "bb", "mu", "var"};
    kiln_attr eps = kiln_attr_float("epsilon", 1e-3f);
    kt_node_attrs(g, "BatchNormalization", "bn", 5, bin, "y", 1, &eps);
    KT_OK(kiln_graph_add_output(g, "y"));

    static double ref[N * M * H * W];
    ref_conv(x, N, C, H, W, w, M, K, b, ref);
    for (int64_t i = 0; i < N * M * H * W; i++) {
        int64_t m = (i / (H * W)) % M;
        ref[i] = (ref[i] - mu[m]) / sqrt((double)var[m] + 1e-3) * sc[m] + bb[m];
    }
    float *ins[1] = {x};
    kt_opts o = {.optimize = false};
    kiln_module *plain = kt_compile(g, &o);
    check_against(plain, ins, ref, N * M * H * W, 1e-4, "conv+bn unoptimized");
    KT_CHECK(kt_count_op(plain, "BatchNormalization") == 1, "unoptimized keeps the BatchNormalization");
    o.optimize = true;
    o.verbose = 1;
    kiln_module *opt = NULL;
    char *log = compile_capturing_stderr(g, &o, &opt);
    check_against(opt, ins, ref, N * M * H * W, 1e-4, "conv+bn optimized");
    KT_CHECK(kt_count_op(opt, "BatchNormalization") == 0 && kt_count_op(opt, "Conv") == 1 && kt_count_nodes(opt) == 1,
             "BatchNormalization folds into the Conv (%d BN, %d nodes)", kt_count_op(opt, "BatchNormalization"),
             kt_count_nodes(opt));
    KT_CHECK(kt_report_has(opt, "BatchNormalization") == 0, "the module report names no BatchNormalization step");
    KT_CHECK(log && strstr(log, "fold_batchnorm: folded 1 BatchNormalization into Conv"),
             "verbose build logs the fold; got: %s", log ? log : "(nothing)");
    kiln_io_info io;
    if (opt) {
        KT_OK(kiln_module_output_info(opt, 0, &io));
        KT_CHECK(strcmp(io.name, "y") == 0, "the output keeps its name, got '%s'", io.name);
    }
    free(log);
    /* the user's graph is not changed by compiling it */
    KT_CHECK(kiln_graph_num_nodes(g) == 2, "compile leaves the graph alone");
    kiln_module_free(plain);
    kiln_module_free(opt);
    kiln_graph_free(g);
}

static void test_fold_batchnorm_gemm_matmul(void) {
    /* Gemm with transB and a bias C, then BN over the 5 output columns */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 6}, wd[2] = {5, 6}, cd[1] = {5};
        kt_input(g, "x", 2, xd);
        kt_const(g, "w", 2, wd, -1, 1);
        kt_const(g, "c", 1, cd, -1, 1);
        kiln_attr ga[3] = {kiln_attr_int("transB", 1), kiln_attr_float("alpha", 0.7f), kiln_attr_float("beta", 1.3f)};
        const char *in[3] = {"x", "w", "c"};
        kt_node_attrs(g, "Gemm", "fc", 3, in, "h", 3, ga);
        kt_bn(g, "bn", "h", "y", 5);
        KT_OK(kiln_graph_add_output(g, "y"));
        float x[24];
        fill(x, 24);
        float *ins[1] = {x};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, "gemm+bn");
        KT_CHECK(kt_count_op(m, "BatchNormalization") == 0 && kt_count_nodes(m) == 1, "BN folds into Gemm");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* MatMul with constant weights, no bias: BN gives it one */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {3, 6}, wd[2] = {6, 5};
        kt_input(g, "x", 2, xd);
        kt_const(g, "w", 2, wd, -1, 1);
        kt_node(g, "MatMul", "mm", "x", "w", "h");
        kt_bn(g, "bn", "h", "y", 5);
        KT_OK(kiln_graph_add_output(g, "y"));
        float x[18];
        fill(x, 18);
        float *ins[1] = {x};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, "matmul+bn");
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(kt_count_op(m, "BatchNormalization") == 0 && kt_count_nodes(m) == 1 && mm && mm->n_in == 3,
                 "BN folds into MatMul as weights and a bias");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* conv -> bn, plus the variant `variant` that makes the fold illegal */
static kiln_graph *conv_bn_graph(int variant) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {1, 2, 5, 5};
    kt_input(g, "x", 4, xd);
    kt_conv(g, "conv", "x", "c", 2, 3, 3, 1);
    kt_bn(g, "bn", "c", "y", 3);
    KT_OK(kiln_graph_add_output(g, "y"));
    if (variant == 1) { /* a second reader of the conv output */
        kt_node(g, "Relu", "relu", "c", NULL, "r");
        KT_OK(kiln_graph_add_output(g, "r"));
    }
    if (variant == 2) KT_OK(kiln_graph_add_output(g, "c")); /* the conv output is a graph output */
    return g;
}

static void test_batchnorm_fold_legality(void) {
    float x[50];
    fill(x, 50);
    float *ins[1] = {x};
    for (int variant = 1; variant <= 2; variant++) {
        kiln_graph *g = conv_bn_graph(variant);
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, variant == 1 ? "conv read twice" : "conv output named");
        KT_CHECK(kt_count_op(m, "BatchNormalization") == 1, "variant %d: the BN must stay", variant);
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* forced fallback, by op type and by node name, on either node */
    const char *forced[3] = {"BatchNormalization", "conv", "bn"};
    for (int f = 0; f < 3; f++) {
        kiln_graph *g = conv_bn_graph(0);
        kt_opts o = {.fallback = &forced[f], .n_fallback = 1};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, forced[f]);
        KT_CHECK(kt_count_op(m, "BatchNormalization") == 1, "forcing '%s' keeps the BN out of the Conv", forced[f]);
        const kn_node *n = kt_find_node(m, f == 1 ? "conv" : "bn");
        KT_CHECK(n && n->fallback, "the forced node stays marked");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* ---- conv epilogues ------------------------------------------------------------------------------ */

static void test_fuse_conv_bias_residual_relu(void) {
    enum { N = 1, C = 3, H = 6, W = 5, M = 4, K = 3 };
    float x[N * C * H * W], r[N * M * H * W], w[M * C * K * K], cb[M];
    fill(x, N * C * H * W);
    fill(r, N * M * H * W);
    fill(w, M * C * K * K);
    fill(cb, M);
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {N, C, H, W}, rd[4] = {N, M, H, W}, wd[4] = {M, C, K, K}, bd[4] = {1, M, 1, 1};
    kt_input(g, "x", 4, xd);
    kt_input(g, "r", 4, rd);
    add_init(g, "w", 4, wd, w);
    add_init(g, "cb", 4, bd, cb);
    const int64_t ks[2] = {K, K}, pads[4] = {1, 1, 1, 1};
    kiln_attr ca[2] = {kiln_attr_ints("kernel_shape", 2, ks), kiln_attr_ints("pads", 4, pads)};
    const char *cin[2] = {"x", "w"};
    kt_node_attrs(g, "Conv", "conv", 2, cin, "c", 2, ca);
    kt_node(g, "Add", "bias", "c", "cb", "cbias");
    kt_node(g, "Add", "residual", "r", "cbias", "s");
    kt_node(g, "Relu", "relu", "s", NULL, "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    static double ref[N * M * H * W];
    ref_conv(x, N, C, H, W, w, M, K, cb, ref);
    for (int i = 0; i < N * M * H * W; i++) ref[i] = fmax(ref[i] + r[i], 0.0);
    float *ins[2] = {x, r};
    kt_opts o = {.optimize = true};
    kiln_module *m = kt_compile(g, &o);
    check_against(m, ins, ref, N * M * H * W, 1e-4, "conv+bias+residual+relu optimized");
    const kn_node *cv = kt_find_op(m, "Conv");
    KT_CHECK(kt_count_nodes(m) == 1 && cv, "one Conv is left (%d nodes)", kt_count_nodes(m));
    if (cv) {
        KT_CHECK(kn_attr_i(cv, "kiln.act", 0) == KN_ACT_RELU, "the Relu is the Conv's epilogue");
        KT_CHECK(cv->n_in == 4 && cv->in[2] >= 0 && cv->in[3] >= 0 &&
                     strcmp(m->graph->values[cv->in[3]].name, "r") == 0,
                 "bias folded into B and the residual is input 3");
    }
    kiln_module_free(m);
    o.optimize = false;
    m = kt_compile(g, &o);
    check_against(m, ins, ref, N * M * H * W, 1e-4, "conv+bias+residual+relu unoptimized");
    kiln_module_free(m);
    kiln_graph_free(g);
}

typedef struct act_case {
    const char *name;
    int act;
    float alpha, beta;
} act_case;

/* conv -> activation `which`; returns the graph */
static kiln_graph *conv_act_graph(int which) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {2, 3, 5, 4};
    kt_input(g, "x", 4, xd);
    kt_conv(g, "conv", "x", "c", 3, 4, 3, 1);
    switch (which) {
    case 0: kt_node(g, "Relu", "act", "c", NULL, "y"); break;
    case 1: case 2: {
        kt_scalar(g, "lo", which == 1 ? 0.0f : -0.3f);
        kt_scalar(g, "hi", which == 1 ? 6.0f : 0.4f);
        const char *in[3] = {"c", "lo", "hi"};
        kt_node_attrs(g, "Clip", "act", 3, in, "y", 0, NULL);
        break;
    }
    case 3: kt_node(g, "Sigmoid", "act", "c", NULL, "y"); break;
    case 4: kt_node(g, "HardSwish", "act", "c", NULL, "y"); break;
    case 5: {
        kiln_attr a = kiln_attr_float("alpha", 0.3f);
        const char *in[1] = {"c"};
        kt_node_attrs(g, "LeakyRelu", "act", 1, in, "y", 1, &a);
        break;
    }
    case 6:
        kt_node(g, "Sigmoid", "sig", "c", NULL, "s");
        kt_node(g, "Mul", "act", "c", "s", "y");
        break;
    case 7:
        kt_node(g, "Sigmoid", "sig", "c", NULL, "s");
        kt_node(g, "Mul", "act", "s", "c", "y");
        break;
    case 8: kt_node(g, "Gelu", "act", "c", NULL, "y"); break;
    case 10: case 11: { /* Relu then Clip(0, 6) (PyTorch's relu6 export), Clip(-1, 2) then Relu */
        kt_scalar(g, "lo", which == 10 ? 0.0f : -1.0f);
        kt_scalar(g, "hi", which == 10 ? 6.0f : 2.0f);
        const char *in[3] = {which == 10 ? "r" : "c", "lo", "hi"};
        if (which == 10) kt_node(g, "Relu", "relu", "c", NULL, "r");
        kt_node_attrs(g, "Clip", "act", 3, in, which == 10 ? "y" : "k", 0, NULL);
        if (which == 11) kt_node(g, "Relu", "relu", "k", NULL, "y");
        break;
    }
    case 9: { /* Clip with only a lower bound of 0: Relu */
        kt_scalar(g, "lo", 0.0f);
        const char *in[2] = {"c", "lo"};
        kt_node_attrs(g, "Clip", "act", 2, in, "y", 0, NULL);
        break;
    }
    }
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static void test_conv_activations(void) {
    static const act_case cases[] = {
        {"relu", KN_ACT_RELU, 0, 0},        {"clip(0,6)", KN_ACT_RELU6, 0, 0}, {"clip(-0.3,0.4)", KN_ACT_CLIP, -0.3f, 0.4f},
        {"sigmoid", KN_ACT_SIGMOID, 0, 0},  {"hardswish", KN_ACT_HARDSWISH, 0, 0}, {"leaky_relu", KN_ACT_LEAKY_RELU, 0.3f, 0},
        {"x*sigmoid(x)", KN_ACT_SILU, 0, 0}, {"sigmoid(x)*x", KN_ACT_SILU, 0, 0}, {"gelu", KN_ACT_GELU_ERF, 0, 0},
        {"clip(0,)", KN_ACT_RELU, 0, 0},    {"relu then clip(0,6)", KN_ACT_RELU6, 0, 0},
        {"clip(-1,2) then relu", KN_ACT_CLIP, 0, 2},
    };
    float x[120];
    fill(x, 120);
    float *ins[1] = {x};
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) {
        kiln_graph *g = conv_act_graph(k);
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, cases[k].name);
        const kn_node *cv = kt_find_op(m, "Conv");
        KT_CHECK(cv && kt_count_nodes(m) == 1, "%s: fused into one Conv (%d nodes)", cases[k].name, kt_count_nodes(m));
        if (cv) {
            KT_CHECK(kn_attr_i(cv, "kiln.act", -1) == cases[k].act, "%s: kiln.act %lld, expected %d", cases[k].name,
                     (long long)kn_attr_i(cv, "kiln.act", -1), cases[k].act);
            if (cases[k].act == KN_ACT_CLIP || cases[k].act == KN_ACT_LEAKY_RELU)
                KT_CHECK(fabsf(kn_attr_f(cv, "kiln.act_alpha", 99) - cases[k].alpha) < 1e-6f &&
                             (cases[k].act != KN_ACT_CLIP || fabsf(kn_attr_f(cv, "kiln.act_beta", 99) - cases[k].beta) < 1e-6f),
                         "%s: alpha/beta", cases[k].name);
        }
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

static void test_conv_fusion_legality(void) {
    float x[120], r[120];
    fill(x, 120);
    fill(r, 120);
    /* an Add that broadcasts a non-constant is no residual; the Relu after it still cannot fuse */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[4] = {2, 3, 5, 4}, rd[4] = {1, 4, 1, 1};
        kt_input(g, "x", 4, xd);
        kt_input(g, "r", 4, rd);
        kt_conv(g, "conv", "x", "c", 3, 4, 3, 1);
        kt_node(g, "Add", "add", "c", "r", "s");
        kt_node(g, "Relu", "relu", "s", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        float *ins[2] = {x, r};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, "broadcast add");
        KT_CHECK(kt_count_op(m, "Add") == 1 && kt_count_op(m, "Relu") == 1, "a broadcast Add is not a residual");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* the conv output is a graph output, or read twice: nothing fuses */
    for (int variant = 0; variant < 2; variant++) {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[4] = {2, 3, 5, 4};
        kt_input(g, "x", 4, xd);
        kt_conv(g, "conv", "x", "c", 3, 4, 3, 1);
        kt_node(g, "Relu", "relu", "c", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        if (variant == 0) KT_OK(kiln_graph_add_output(g, "c"));
        else {
            kt_node(g, "Sigmoid", "sig", "c", NULL, "z");
            KT_OK(kiln_graph_add_output(g, "z"));
        }
        float *ins[1] = {x};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, variant ? "conv read twice" : "conv output named");
        const kn_node *cv = kt_find_op(m, "Conv");
        KT_CHECK(kt_count_op(m, "Relu") == 1 && cv && kn_attr_i(cv, "kiln.act", 0) == 0,
                 "variant %d: the Relu stays a node", variant);
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* forced fallback: neither the activation nor the conv may fuse */
    const char *forced[3] = {"Relu", "relu", "conv"};
    for (int f = 0; f < 3; f++) {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[4] = {2, 3, 5, 4};
        kt_input(g, "x", 4, xd);
        kt_conv(g, "conv", "x", "c", 3, 4, 3, 1);
        kt_node(g, "Relu", "relu", "c", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        float *ins[1] = {x};
        kt_opts o = {.fallback = &forced[f], .n_fallback = 1};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, forced[f]);
        const kn_node *relu = kt_find_op(m, "Relu");
        KT_CHECK(relu && kt_count_nodes(m) == 2, "forcing '%s' keeps the Relu a node", forced[f]);
        KT_CHECK(kiln_module_num_segments(m) == 2, "forcing '%s': 2 segments, got %d", forced[f],
                 kiln_module_num_segments(m));
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* A backend whose engine takes no fused epilogue: every fusion must be undone. */
static int no_fused_forms(const kn_graph *g, const kn_node *n) {
    if (kn_node_attr(n, "kiln.act")) return 0;
    if (n->op == KN_OP_Conv && n->n_in > 3 && n->in[3] >= 0) return 0;
    if (n->op == KN_OP_MatMul && n->n_in > 2) return 0;
    return 1;
}

static void test_fusion_needs_backend(void) {
    kiln_graph *graph = NULL;
    KT_OK(kiln_graph_create(&graph));
    int64_t xd[4] = {1, 3, 5, 5}, rd[4] = {1, 4, 5, 5}, wd[2] = {5, 5};
    kt_input(graph, "x", 4, xd);
    kt_input(graph, "r", 4, rd);
    kt_conv(graph, "conv", "x", "c", 3, 4, 3, 1);
    kt_node(graph, "Add", "res", "c", "r", "s");
    kt_node(graph, "Relu", "relu", "s", NULL, "t");
    kt_const(graph, "w", 2, wd, -1, 1);
    kt_node(graph, "MatMul", "mm", "t", "w", "y");
    kt_node(graph, "Sigmoid", "sig", "y", NULL, "z");
    KT_OK(kiln_graph_add_output(graph, "z"));
    kn_graph *g = &graph->g;
    KT_OK(kn_graph_verify(g));
    KT_OK(kn_graph_infer_static(g));
    kn_backend be = *kn_backend_cpu();
    be.supports_op = no_fused_forms;
    kn_pass_options po = {.precision = KILN_PRECISION_FP32, .backend = &be};
    KT_OK(kn_passes_run(g, &po));
    int live = 0, conv_ok = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        live++;
        if (n->op == KN_OP_Conv) conv_ok = n->n_in <= 3 && !kn_node_attr(n, "kiln.act") && n->out[0] == kn_graph_find_value(g, "c");
    }
    KT_CHECK(live == 5 && conv_ok, "a backend without fused forms keeps every node as it was (%d live)", live);
    /* the same graph with the CPU backend fuses */
    kn_graph *g2 = NULL;
    KT_OK(kn_graph_clone(g, &g2));
    if (g2) {
        po.backend = kn_backend_cpu();
        KT_OK(kn_passes_run(g2, &po));
        live = 0;
        for (int i = 0; i < g2->n_nodes; i++) live += !g2->nodes[i].dead;
        KT_CHECK(live == 2, "the CPU backend takes the fused forms (%d live)", live);
        kn_graph_destroy(g2);
    }
    kiln_graph_free(graph);
}

/* ---- gemm / matmul epilogues -------------------------------------------------------------------- */

/* MatMul(x, W) + b -> GELU in form `form` (0..3: erf orderings, 4: Gelu op, 5: Relu) */
static kiln_graph *mlp_graph(int form, int gemm) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[2] = {4, 16}, wd[2] = {16, 8}, bd[1] = {8};
    kt_input(g, "x", 2, xd);
    kt_const(g, "w", 2, wd, -0.5f, 0.5f);
    kt_const(g, "b", 1, bd, -0.5f, 0.5f);
    kt_node(g, gemm ? "Gemm" : "MatMul", "mm", "x", "w", "p");
    kt_node(g, "Add", "bias", "p", "b", "h");
    kt_scalar(g, "sqrt2", 1.4142135f);
    kt_scalar(g, "isqrt2", 0.70710678f);
    kt_scalar(g, "one", 1.0f);
    kt_scalar(g, "half", 0.5f);
    switch (form) {
    case 0: /* (h * (1 + erf(h / sqrt2))) * 0.5: PyTorch's export */
        kt_node(g, "Div", "div", "h", "sqrt2", "d");
        kt_node(g, "Erf", "erf", "d", NULL, "e");
        kt_node(g, "Add", "add1", "e", "one", "a");
        kt_node(g, "Mul", "mul1", "h", "a", "m");
        kt_node(g, "Mul", "mul2", "m", "half", "y");
        break;
    case 1: /* (0.5 * h) * (1 + erf(h / sqrt2)) */
        kt_node(g, "Div", "div", "h", "sqrt2", "d");
        kt_node(g, "Erf", "erf", "d", NULL, "e");
        kt_node(g, "Add", "add1", "one", "e", "a");
        kt_node(g, "Mul", "mul1", "half", "h", "m");
        kt_node(g, "Mul", "mul2", "a", "m", "y");
        break;
    case 2: /* h * ((erf(h * isqrt2) + 1) * 0.5) */
        kt_node(g, "Mul", "div", "isqrt2", "h", "d");
        kt_node(g, "Erf", "erf", "d", NULL, "e");
        kt_node(g, "Add", "add1", "e", "one", "a");
        kt_node(g, "Mul", "mul1", "a", "half", "m");
        kt_node(g, "Mul", "mul2", "h", "m", "y");
        break;
    case 3: /* 0.5 * (h * (1 + erf(h / sqrt2))) with the product the other way round */
        kt_node(g, "Div", "div", "h", "sqrt2", "d");
        kt_node(g, "Erf", "erf", "d", NULL, "e");
        kt_node(g, "Add", "add1", "e", "one", "a");
        kt_node(g, "Mul", "mul1", "a", "h", "m");
        kt_node(g, "Mul", "mul2", "half", "m", "y");
        break;
    case 4: kt_node(g, "Gelu", "gelu", "h", NULL, "y"); break;
    case 5: kt_node(g, "Relu", "relu", "h", NULL, "y"); break;
    }
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static void test_fuse_gemm(void) {
    float x[64];
    fill(x, 64);
    float *ins[1] = {x};
    static const char *const forms[6] = {"gelu erf (h*a)*0.5", "gelu erf (0.5*h)*a", "gelu erf h*(a*0.5)",
                                         "gelu erf 0.5*(a*h)", "Gelu op", "relu"};
    for (int gemm = 0; gemm < 2; gemm++)
        for (int f = 0; f < 6; f++) {
            if (gemm && f < 4 && f != 0) continue;
            char what[96];
            snprintf(what, sizeof what, "%s + bias + %s", gemm ? "Gemm" : "MatMul", forms[f]);
            kiln_graph *g = mlp_graph(f, gemm);
            kt_opts o = {0};
            kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, what);
            const kn_node *mm = kt_find_op(m, gemm ? "Gemm" : "MatMul");
            KT_CHECK(mm && kt_count_nodes(m) == 1, "%s: one node left, got %d", what, kt_count_nodes(m));
            if (mm) {
                KT_CHECK(mm->n_in == 3 && mm->in[2] >= 0, "%s: the bias is input 2", what);
                KT_CHECK(kn_attr_i(mm, "kiln.act", 0) == (f == 5 ? KN_ACT_RELU : KN_ACT_GELU_ERF), "%s: kiln.act %lld",
                         what, (long long)kn_attr_i(mm, "kiln.act", 0));
            }
            kiln_module_free(m);
            kiln_graph_free(g);
        }
    /* look-alikes that are not GELU: x / 2 instead of x / sqrt(2), and + 2 instead of + 1 */
    for (int wrong = 0; wrong < 2; wrong++) {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 16}, wd[2] = {16, 8};
        kt_input(g, "x", 2, xd);
        kt_const(g, "w", 2, wd, -0.5f, 0.5f);
        kt_node(g, "MatMul", "mm", "x", "w", "h");
        kt_scalar(g, "div", wrong == 0 ? 2.0f : 1.4142135f);
        kt_scalar(g, "one", wrong == 1 ? 2.0f : 1.0f);
        kt_scalar(g, "half", 0.5f);
        kt_node(g, "Div", "div", "h", "div", "d");
        kt_node(g, "Erf", "erf", "d", NULL, "e");
        kt_node(g, "Add", "add1", "e", "one", "a");
        kt_node(g, "Mul", "mul1", "h", "a", "m");
        kt_node(g, "Mul", "mul2", "m", "half", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, wrong ? "not gelu (+2)" : "not gelu (/2)");
        KT_CHECK(kt_count_op(m, "Erf") == 1 && kt_count_nodes(m) == 6, "a look-alike of GELU is left alone");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* a GELU whose intermediate has a second reader stays unfused (and right) */
    {
        kiln_graph *g = mlp_graph(0, 0);
        KT_OK(kiln_graph_add_output(g, "e"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, "gelu with a named intermediate");
        KT_CHECK(kt_count_op(m, "Erf") == 1, "the erf stays");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* Gemm with a C and a second constant Add of shape [1, N]: C absorbs it (beta applied) */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 16}, wd[2] = {16, 8}, cd[1] = {8}, bd[2] = {1, 8};
        kt_input(g, "x", 2, xd);
        kt_const(g, "w", 2, wd, -0.5f, 0.5f);
        kt_const(g, "c", 1, cd, -0.5f, 0.5f);
        kt_const(g, "b", 2, bd, -0.5f, 0.5f);
        kiln_attr beta = kiln_attr_float("beta", 0.5f);
        const char *in[3] = {"x", "w", "c"};
        kt_node_attrs(g, "Gemm", "fc", 3, in, "p", 1, &beta);
        kt_node(g, "Add", "bias", "b", "p", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-5, "gemm C + add");
        KT_CHECK(kt_count_nodes(m) == 1, "the Add folds into C");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* ---- constant and shape folding ------------------------------------------------------------------- */

static void test_constant_folding(void) {
    /* y = x * ((c1 + c2) * c3): the constant subtree folds to one constant */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {3, 4}, cd[1] = {4};
        kt_input(g, "x", 2, xd);
        kt_const(g, "c1", 1, cd, -1, 1);
        kt_const(g, "c2", 1, cd, -1, 1);
        kt_const(g, "c3", 1, cd, -1, 1);
        kt_node(g, "Add", "a", "c1", "c2", "s");
        kt_node(g, "Mul", "b", "s", "c3", "t");
        kt_node(g, "Mul", "c", "x", "t", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        float x[12];
        fill(x, 12);
        float *ins[1] = {x};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-6, "constant subtree");
        KT_CHECK(kt_count_nodes(m) == 1, "only x * t is left, got %d nodes", kt_count_nodes(m));
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* an output that folds entirely: no steps are left, the value comes from the host */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {3, 4};
        float c1[4] = {1, 2, 3, 4}, c2[4] = {0.5f, -1, 2, 8};
        kt_input(g, "x", 2, xd);
        KT_OK(kiln_graph_add_initializer(g, "c1", KILN_F32, 1, xd + 1, c1));
        KT_OK(kiln_graph_add_initializer(g, "c2", KILN_F32, 1, xd + 1, c2));
        kt_node(g, "Mul", "m", "c1", "c2", "y");
        kt_node(g, "Relu", "r", "x", NULL, "z");
        KT_OK(kiln_graph_add_output(g, "y"));
        KT_OK(kiln_graph_add_output(g, "z"));
        float x[12];
        fill(x, 12);
        float *ins[1] = {x};
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 0, "folded output");
        KT_CHECK(kt_count_nodes(m) == 1, "the Mul folds away (%d nodes)", kt_count_nodes(m));
        float *out[2] = {0};
        int64_t on[2] = {0};
        if (m && kt_run(m, ins, NULL, out, on))
            KT_CHECK(on[0] == 4 && out[0][0] == 0.5f && out[0][1] == -2 && out[0][2] == 6 && out[0][3] == 32,
                     "the folded output's values");
        free(out[0]);
        free(out[1]);
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* the shape arithmetic an exporter writes for x.view(x.size(0), -1), static and symbolic */
    for (int symbolic = 0; symbolic < 2; symbolic++) {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[4] = {symbolic ? -1 : 2, 3, 4, 5};
        const char *names[4] = {"batch", NULL, NULL, NULL};
        KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, names));
        int64_t zero[1] = {0}, minus1[1] = {-1}, axes[1] = {0};
        KT_OK(kiln_graph_add_initializer(g, "zero", KILN_I64, 0, NULL, zero));
        kt_ints(g, "minus1", 1, minus1);
        kt_ints(g, "axes", 1, axes);
        kt_node(g, "Relu", "relu", "x", NULL, "r");
        kt_node(g, "Shape", "shape", "r", NULL, "sh");
        kt_node(g, "Gather", "gather", "sh", "zero", "n");
        kt_node(g, "Unsqueeze", "unsq", "n", "axes", "n1");
        const char *cin[2] = {"n1", "minus1"};
        kiln_attr ax = kiln_attr_int("axis", 0);
        kt_node_attrs(g, "Concat", "concat", 2, cin, "shp", 1, &ax);
        kt_node(g, "Reshape", "reshape", "r", "shp", "v");
        kt_node(g, "Relu", "relu2", "v", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 4, 5}, .opt = {2, 3, 4, 5}, .max = {4, 3, 4, 5}};
        kt_opts o = {.profiles = symbolic ? &p : NULL, .n_profiles = symbolic};
        float x[4 * 60];
        fill(x, 4 * 60);
        float *ins[1] = {x};
        kiln_module *m = kt_compare_opt(g, o, ins, 0, symbolic ? "symbolic view" : "static view");
        if (!symbolic) {
            kiln_io_info io;
            if (m) KT_OK(kiln_module_output_info(m, 0, &io));
            KT_CHECK(m && io.rank == 2 && io.opt[0] == 2 && io.opt[1] == 60, "the view is 2 x 60");
            KT_CHECK(kt_count_nodes(m) == 3 && kt_count_op(m, "Shape") == 0 && kt_count_op(m, "Concat") == 0,
                     "static shape chain folds to a constant (%d nodes left)", kt_count_nodes(m));
        } else {
            KT_CHECK(kt_count_op(m, "Shape") == 1 && kt_count_op(m, "Concat") == 1,
                     "a chain over a symbolic dim stays for the host");
            /* and it is right at another batch than the opt one */
            int64_t d3[1][KILN_MAX_RANK] = {{3, 3, 4, 5}};
            float *out[1] = {0};
            int64_t on[1] = {0};
            kiln_tensor sh[1];
            if (m && kt_run_shapes(m, ins, (const int64_t(*)[KILN_MAX_RANK])d3, out, on, sh)) {
                KT_CHECK(sh[0].rank == 2 && sh[0].dims[0] == 3 && sh[0].dims[1] == 60, "batch 3 views as 3 x 60");
                int bad = on[0] != 180;
                for (int i = 0; !bad && i < 180; i++) bad = out[0][i] != fmaxf(fmaxf(x[i], 0), 0);
                KT_CHECK(!bad, "batch 3 through the symbolic view");
            }
            free(out[0]);
        }
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* ---- identity, dropout, CSE, DCE ------------------------------------------------------------------- */

static void test_cleanup_passes(void) {
    float x[24];
    fill(x, 24);
    float *ins[1] = {x};
    /* Identity and Dropout go; the output keeps its name */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 6};
        kt_input(g, "x", 2, xd);
        kt_node(g, "Identity", "id", "x", NULL, "a");
        kt_node(g, "Relu", "relu", "a", NULL, "b");
        kt_node(g, "Dropout", "drop", "b", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 0, "identity/dropout");
        KT_CHECK(kt_count_nodes(m) == 1 && kt_count_op(m, "Relu") == 1, "only the Relu is left (%d)", kt_count_nodes(m));
        kiln_io_info io;
        if (m) {
            KT_OK(kiln_module_output_info(m, 0, &io));
            KT_CHECK(strcmp(io.name, "y") == 0, "output name kept, got '%s'", io.name);
        }
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* an Identity copying an input to an output stays (something must copy it) */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 6};
        kt_input(g, "x", 2, xd);
        kt_node(g, "Identity", "id", "x", NULL, "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 0, "identity of an input");
        KT_CHECK(kt_count_op(m, "Identity") == 1, "the Identity stays");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* CSE: two equal Relu and two equal Mul by equal (separate) constants merge; DCE drops the
     * unused Sigmoid */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 6};
        kt_input(g, "x", 2, xd);
        kt_scalar(g, "k1", 1.5f);
        kt_scalar(g, "k2", 1.5f);
        kt_node(g, "Relu", "r1", "x", NULL, "a");
        kt_node(g, "Relu", "r2", "x", NULL, "b");
        kt_node(g, "Mul", "m1", "a", "k1", "c");
        kt_node(g, "Mul", "m2", "b", "k2", "d");
        kt_node(g, "Sub", "sub", "c", "x", "e");
        kt_node(g, "Add", "add", "e", "d", "y");
        kt_node(g, "Sigmoid", "unused", "x", NULL, "z");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-6, "cse/dce");
        KT_CHECK(kt_count_op(m, "Relu") == 1 && kt_count_op(m, "Mul") == 1 && kt_count_op(m, "Sigmoid") == 0 &&
                     kt_count_nodes(m) == 4,
                 "Relu x1, Mul x1, no Sigmoid, 4 nodes (got %d)", kt_count_nodes(m));
        kiln_module_free(m);
        /* unoptimized, the dead Sigmoid is still built */
        o.optimize = false;
        m = kt_compile(g, &o);
        KT_CHECK(kt_count_op(m, "Sigmoid") == 1 && kt_count_nodes(m) == 7, "no passes: all 7 nodes");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* CSE keeps nodes with different attributes apart */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[2] = {4, 6};
        kt_input(g, "x", 2, xd);
        kiln_attr a1 = kiln_attr_float("alpha", 0.1f), a2 = kiln_attr_float("alpha", 0.2f);
        const char *in[1] = {"x"};
        kt_node_attrs(g, "LeakyRelu", "l1", 1, in, "a", 1, &a1);
        kt_node_attrs(g, "LeakyRelu", "l2", 1, in, "b", 1, &a2);
        kt_node(g, "Sub", "sub", "a", "b", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {0};
        kiln_module *m = kt_compare_opt(g, o, ins, 1e-6, "cse attributes");
        KT_CHECK(kt_count_op(m, "LeakyRelu") == 2, "different alphas stay two nodes");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
}

/* ---- precision lowering --------------------------------------------------------------------------- */

static void test_lower_precision(void) {
    for (int p = 0; p < 2; p++) {
        kiln_precision prec = p ? KILN_PRECISION_BF16 : KILN_PRECISION_FP16;
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[4] = {1, 3, 6, 6};
        kt_input(g, "x", 4, xd);
        kt_conv(g, "conv", "x", "c", 3, 4, 3, 1);
        kt_bn(g, "bn", "c", "b", 4);
        kt_node(g, "Relu", "relu", "b", NULL, "r");
        int64_t shp[2] = {1, -1};
        kt_ints(g, "shp", 2, shp);
        kt_node(g, "Reshape", "flat", "r", "shp", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        float x[108];
        fill(x, 108);
        float *ins[1] = {x};
        for (int optimize = 0; optimize < 2; optimize++) {
            kt_opts o32 = {.optimize = optimize}, olo = {.optimize = optimize, .precision = prec};
            kiln_module *m32 = kt_compile(g, &o32), *mlo = kt_compile(g, &olo);
            kiln_io_info in, out;
            if (mlo) {
                KT_OK(kiln_module_input_info(mlo, 0, &in));
                KT_OK(kiln_module_output_info(mlo, 0, &out));
                KT_CHECK(in.dtype == KILN_F32 && out.dtype == KILN_F32, "%s module keeps f32 I/O",
                         kiln_dtype_name(p ? KILN_BF16 : KILN_F16));
                KT_CHECK(kt_count_op(mlo, "Cast") == 2, "a Cast at the input and one at the output (%d)",
                         kt_count_op(mlo, "Cast"));
                const kn_node *cv = kt_find_op(mlo, "Conv");
                KT_CHECK(cv && mlo->graph->values[cv->in[1]].constant &&
                             mlo->graph->values[cv->in[1]].constant->dtype == (p ? KILN_BF16 : KILN_F16),
                         "the conv weights are stored low");
                const kn_node *rs = kt_find_op(mlo, "Reshape");
                KT_CHECK(rs && mlo->graph->values[rs->in[1]].constant &&
                             mlo->graph->values[rs->in[1]].constant->dtype == KILN_I64,
                         "the shape constant stays int64");
            }
            float *a[1] = {0}, *b[1] = {0};
            int64_t na[1], nb[1];
            if (m32 && mlo && kt_run(m32, ins, NULL, a, na) && kt_run(mlo, ins, NULL, b, nb)) {
                double err = kt_max_rel_err(b[0], a[0], na[0]);
                double tol = p ? 3e-2 : 5e-3;
                KT_CHECK(na[0] == nb[0] && err <= tol, "%s result within %g of fp32 (got %g)", p ? "bf16" : "fp16", tol, err);
                double diff = 0;
                for (int64_t i = 0; i < na[0]; i++) diff += fabs((double)a[0][i] - b[0][i]);
                KT_CHECK(diff > 0, "the low-precision module really computes in low precision");
            }
            free(a[0]);
            free(b[0]);
            kiln_module_free(m32);
            kiln_module_free(mlo);
        }
        kiln_graph_free(g);
    }
    /* a transformer-ish block: LayerNorm keeps its parameters in f32, the MatMul weights go low */
    for (int p = 0; p < 2; p++) {
        kiln_precision prec = p ? KILN_PRECISION_BF16 : KILN_PRECISION_FP16;
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[3] = {2, 5, 8}, wd[2] = {8, 8}, vd[1] = {8};
        kt_input(g, "x", 3, xd);
        kt_const(g, "ln.s", 1, vd, 0.5f, 1.5f);
        kt_const(g, "ln.b", 1, vd, -0.5f, 0.5f);
        kt_const(g, "w", 2, wd, -0.5f, 0.5f);
        kt_const(g, "b", 1, vd, -0.5f, 0.5f);
        const char *lin[3] = {"x", "ln.s", "ln.b"};
        kiln_attr axis = kiln_attr_int("axis", -1);
        kt_node_attrs(g, "LayerNormalization", "ln", 3, lin, "n", 1, &axis);
        kt_node(g, "MatMul", "mm", "n", "w", "h");
        kt_node(g, "Add", "bias", "h", "b", "hb");
        kt_node(g, "Gelu", "gelu", "hb", NULL, "a");
        kt_node_attrs(g, "Softmax", "softmax", 1, (const char *const[]){"a"}, "y", 1, &axis);
        KT_OK(kiln_graph_add_output(g, "y"));
        float x[80];
        kt_fill_uniform(x, 80, -2, 2);
        float *ins[1] = {x};
        kt_opts o32 = {.optimize = true}, olo = {.optimize = true, .precision = prec};
        kiln_module *m32 = kt_compile(g, &o32), *mlo = kt_compile(g, &olo);
        const kn_node *ln = kt_find_op(mlo, "LayerNormalization"), *mm = kt_find_op(mlo, "MatMul");
        KT_CHECK(ln && mlo->graph->values[ln->in[1]].constant->dtype == KILN_F32 &&
                     mlo->graph->values[ln->in[2]].constant->dtype == KILN_F32,
                 "LayerNormalization's Scale and B stay f32");
        KT_CHECK(mm && mlo->graph->values[mm->in[1]].constant->dtype == (p ? KILN_BF16 : KILN_F16) && mm->n_in == 3 &&
                     mlo->graph->values[mm->in[2]].constant->dtype == (p ? KILN_BF16 : KILN_F16),
                 "the MatMul weights and fused bias are low");
        float *a[1] = {0}, *b[1] = {0};
        int64_t na[1], nb[1];
        if (m32 && mlo && kt_run(m32, ins, NULL, a, na) && kt_run(mlo, ins, NULL, b, nb)) {
            double err = kt_max_rel_err(b[0], a[0], na[0]), tol = p ? 3e-2 : 5e-3;
            KT_CHECK(na[0] == nb[0] && err <= tol, "%s block within %g of fp32 (got %g)", p ? "bf16" : "fp16", tol, err);
        }
        free(a[0]);
        free(b[0]);
        kiln_module_free(m32);
        kiln_module_free(mlo);
        kiln_graph_free(g);
    }
    /* TF32 changes nothing in the graph */
    kiln_graph *g = conv_act_graph(0);
    kt_opts o = {.optimize = false, .precision = KILN_PRECISION_TF32};
    kiln_module *m = kt_compile(g, &o);
    KT_CHECK(kt_count_op(m, "Cast") == 0, "tf32 adds no casts");
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* ---- a whole network ------------------------------------------------------------------------------- */

static void test_resnet18(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_resnet_build(18, 64, 7, &g));
    if (!g) return;
    KT_CHECK(kiln_graph_num_nodes(g) == 69, "ResNet-18 has 69 nodes as built, got %d", kiln_graph_num_nodes(g));
    static float x[2 * 3 * 64 * 64];
    fill(x, 2 * 3 * 64 * 64);
    float *ins[1] = {x};
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 64, 64}, .opt = {2, 3, 64, 64}, .max = {2, 3, 64, 64}};
    kt_opts o = {.min_block_size = 5, .profiles = &p, .n_profiles = 1};
    kiln_module *m = kt_compare_opt(g, o, ins, 1e-4, "resnet18");
    KT_CHECK(kiln_module_num_segments(m) == 1 && kiln_module_num_engine_blocks(m) == 1,
             "nothing forced: one engine block (%d segments)", kiln_module_num_segments(m));
    KT_CHECK(kt_count_op(m, "BatchNormalization") == 0 && kt_count_op(m, "Relu") == 0 && kt_count_op(m, "Add") == 0,
             "every BN, Relu and residual Add is folded or fused (%d BN, %d Relu, %d Add)",
             kt_count_op(m, "BatchNormalization"), kt_count_op(m, "Relu"), kt_count_op(m, "Add"));
    KT_CHECK(kt_count_op(m, "Conv") == 20 && kt_count_nodes(m) == 24, "20 Conv + MaxPool + pool + Flatten + Gemm, got %d",
             kt_count_nodes(m));
    KT_CHECK(kt_report_has(m, "BatchNormalization") == 0, "the report lists no BatchNormalization");
    kiln_module_free(m);
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(4);
    test_fold_batchnorm_conv();
    test_fold_batchnorm_gemm_matmul();
    test_batchnorm_fold_legality();
    test_fuse_conv_bias_residual_relu();
    test_conv_activations();
    test_conv_fusion_legality();
    test_fusion_needs_backend();
    test_fuse_gemm();
    test_constant_folding();
    test_cleanup_passes();
    test_lower_precision();
    test_resnet18();
    return kt_finish();
}
