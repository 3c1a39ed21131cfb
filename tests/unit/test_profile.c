/* kiln_session_profile on the CPU backend: the report lists every step once with a positive
 * time, sorted by time, with shares that add up to the sum, and the sum against the end-to-end
 * latency; the JSON form parses the same way; bad arguments are refused. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

/* conv -> relu -> maxpool -> conv(+x2 residual) -> gap -> flatten -> gemm */
static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {-1, 3, 16, 16};
    const char *xn[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, xn));
    float w1[8 * 3 * 3 * 3], b1[8], w2[8 * 8 * 3 * 3], fw[10 * 8], fb[10];
    kt_fill_uniform(w1, 8 * 27, -0.5f, 0.5f);
    kt_fill_uniform(b1, 8, -0.5f, 0.5f);
    kt_fill_uniform(w2, 8 * 72, -0.5f, 0.5f);
    kt_fill_uniform(fw, 80, -0.5f, 0.5f);
    kt_fill_uniform(fb, 10, -0.5f, 0.5f);
    int64_t w1d[4] = {8, 3, 3, 3}, bd[1] = {8}, w2d[4] = {8, 8, 3, 3}, fwd[2] = {10, 8}, fbd[1] = {10};
    KT_OK(kiln_graph_add_initializer(g, "w1", KILN_F32, 4, w1d, w1));
    KT_OK(kiln_graph_add_initializer(g, "b1", KILN_F32, 1, bd, b1));
    KT_OK(kiln_graph_add_initializer(g, "w2", KILN_F32, 4, w2d, w2));
    KT_OK(kiln_graph_add_initializer(g, "fw", KILN_F32, 2, fwd, fw));
    KT_OK(kiln_graph_add_initializer(g, "fb", KILN_F32, 1, fbd, fb));
    int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2}, s2[2] = {2, 2};
    kiln_attr cp = kiln_attr_ints("pads", 4, pads);
    const char *i1[] = {"x", "w1", "b1"}, *o1[] = {"c1"};
    KT_OK(kiln_graph_add_node(g, "Conv", "conv1", 3, i1, 1, o1, 1, &cp));
    const char *i2[] = {"c1"}, *o2[] = {"r1"};
    KT_OK(kiln_graph_add_node(g, "Relu", "relu1", 1, i2, 1, o2, 0, NULL));
    kiln_attr pa[2] = {kiln_attr_ints("kernel_shape", 2, k2), kiln_attr_ints("strides", 2, s2)};
    const char *i3[] = {"r1"}, *o3[] = {"p1"};
    KT_OK(kiln_graph_add_node(g, "MaxPool", "pool1", 1, i3, 1, o3, 2, pa));
    const char *i4[] = {"p1", "w2"}, *o4[] = {"c2"};
    KT_OK(kiln_graph_add_node(g, "Conv", "conv2", 2, i4, 1, o4, 1, &cp));
    const char *i5[] = {"c2", "p1"}, *o5[] = {"a2"};
    KT_OK(kiln_graph_add_node(g, "Add", "add2", 2, i5, 1, o5, 0, NULL));
    const char *i6[] = {"a2"}, *o6[] = {"gp"};
    KT_OK(kiln_graph_add_node(g, "GlobalAveragePool", "gap", 1, i6, 1, o6, 0, NULL));
    const char *i7[] = {"gp"}, *o7[] = {"fl"};
    KT_OK(kiln_graph_add_node(g, "Flatten", "flatten", 1, i7, 1, o7, 0, NULL));
    kiln_attr tb = kiln_attr_int("transB", 1);
    const char *i8[] = {"fl", "fw", "fb"}, *o8[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Gemm", "fc", 3, i8, 1, o8, 1, &tb));
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static kiln_module *compile(kiln_graph *g, int optimize) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = 1;
    cfg.optimize = optimize;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 16, 16}, .opt = {2, 3, 16, 16}, .max = {4, 3, 16, 16}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

/* Node names the module's steps run, from its report's text. */
static const char *const k_nodes[] = {"conv1", "pool1", "conv2", "gap", "flatten", "fc"};

static void check_text(const char *r, int optimize) {
    /* every step appears once; times positive and sorted; shares add up to ~100 % */
    int lines = 0;
    double prev = 1e30, share_sum = 0, ms_sum = 0;
    int views = 0;
    const char *p = strchr(r, '\n'); /* skip the title */
    KT_CHECK(p != NULL, "report has a title line");
    if (!p) return;
    p = strchr(p + 1, '\n'); /* skip the header */
    KT_CHECK(p != NULL, "report has a header line");
    if (!p) return;
    for (p = p + 1; *p && strncmp(p, "sum of steps", 12) != 0;) {
        double ms = 0, share = 0;
        int step = -1;
        int got = sscanf(p, "%lf %lf%% %d", &ms, &share, &step);
        KT_CHECK(got == 3, "step line parses: %.60s", p);
        const char *eol = strchr(p, '\n');
        int view = strstr(p, "(aliases its input: no launch)") && (!eol || strstr(p, "(aliases its input") < eol);
        views += view;
        /* a view (Flatten here) is not launched: 0, and it says so; every other step takes time */
        if (view) KT_CHECK(ms == 0, "view step %d has time %g us", step, ms);
        else KT_CHECK(ms > 0, "step %d has a positive time (%g us)", step, ms);
        ms *= 1e-3;
        KT_CHECK(ms <= prev, "steps are sorted by time (%g after %g)", ms, prev);
        prev = ms;
        share_sum += share;
        ms_sum += ms;
        lines++;
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    KT_CHECK(share_sum > 99.0 && share_sum < 101.0, "shares add up to %g %%", share_sum);
    double sum = 0, e2e = 0;
    const char *tail = strstr(r, "sum of steps: ");
    KT_CHECK(tail != NULL, "report ends with the sum");
    if (tail) {
        KT_CHECK(sscanf(tail, "sum of steps: %lf ms", &sum) == 1, "sum parses");
        const char *e = strstr(tail, "): ");
        KT_CHECK(e && sscanf(e, "): %lf ms", &e2e) == 1 && e2e > 0, "end-to-end latency is positive");
        KT_CHECK(sum > 0 && sum < ms_sum * 1.01 + 1e-3 && sum > ms_sum * 0.99 - 1e-3, "sum %g matches the lines' %g", sum,
                 ms_sum);
    }
    /* the optimized module fuses relu1 and add2 into the convolutions: 6 steps; unoptimized 8 */
    int want = optimize ? 6 : 8;
    KT_CHECK(lines == want, "%d step lines, expected %d", lines, want);
    KT_CHECK(views == 1, "%d view lines (the Flatten), expected 1", views);
    for (size_t i = 0; i < sizeof k_nodes / sizeof k_nodes[0]; i++)
        KT_CHECK(strstr(r, k_nodes[i]) != NULL, "node '%s' is in the report", k_nodes[i]);
}

static void test_profile(int optimize, kiln_cudagraphs_mode mode) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g, optimize);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_cudagraphs_mode(s, mode));
    float x[2 * 3 * 16 * 16];
    kt_fill_uniform(x, 2 * 3 * 16 * 16, -1, 1);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {2, 3, 16, 16}, .device = KILN_DEVICE_CPU};
    char *r = NULL;
    KT_OK(kiln_session_profile(s, &in, 1, false, &r));
    if (r) {
        check_text(r, optimize);
        const char *name = mode == KILN_CUDAGRAPHS_OFF ? "cudagraphs off" : mode == KILN_CUDAGRAPHS_WHOLE ? "cudagraphs whole" : "cudagraphs block";
        KT_CHECK(strstr(r, name) != NULL, "the mode is named (%s)", name);
    }
    kiln_free(r);
    /* JSON: one object per step with a positive ms */
    r = NULL;
    KT_OK(kiln_session_profile(s, &in, 1, true, &r));
    if (r) {
        int n = 0;
        for (const char *p = strstr(r, "\"ms\": "); p; p = strstr(p + 1, "\"ms\": ")) {
            double ms = strtod(p + 6, NULL);
            const char *end = strchr(p, '}');
            const char *view = strstr(p, "\"view\": true");
            if (view && end && view < end) KT_CHECK(ms == 0, "JSON view step time %g == 0", ms);
            else KT_CHECK(ms > 0, "JSON step time %g > 0", ms);
            n++;
        }
        KT_CHECK(n == (optimize ? 6 : 8), "JSON lists %d steps", n);
        KT_CHECK(strstr(r, "\"end_to_end_ms\"") && strstr(r, "\"sum_ms\""), "JSON has the totals");
    }
    kiln_free(r);
    /* the session still runs correctly after profiling: compare with a fresh session */
    float y1[20], y2[20];
    kiln_tensor o1 = {.data = y1, .device = KILN_DEVICE_CPU}, o2 = {.data = y2, .device = KILN_DEVICE_CPU};
    kiln_session *s2 = NULL;
    KT_OK(kiln_session_create(m, &s2));
    KT_OK(kiln_session_run(s, &in, 1, &o1, 1));
    KT_OK(kiln_session_run(s2, &in, 1, &o2, 1));
    int bad = 0;
    for (int i = 0; i < 20; i++) bad += y1[i] != y2[i];
    KT_CHECK(bad == 0, "%d outputs differ after profiling", bad);
    kiln_session_free(s2);
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
}

static void test_errors(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g, 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    float x[8 * 3 * 16 * 16] = {0};
    char *r = (char *)"x";
    KT_FAILS(kiln_session_profile(NULL, NULL, 0, false, &r), KILN_ERR_INVALID_ARGUMENT, "session");
    KT_CHECK(r == NULL, "report is NULL on failure");
    KT_FAILS(kiln_session_profile(s, NULL, 0, false, NULL), KILN_ERR_INVALID_ARGUMENT, "report");
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {8, 3, 16, 16}, .device = KILN_DEVICE_CPU};
    r = NULL;
    KT_FAILS(kiln_session_profile(s, &in, 1, false, &r), KILN_ERR_SHAPE, "'x'");
    KT_CHECK(r == NULL, "no report on failure");
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(7);
    test_profile(1, KILN_CUDAGRAPHS_OFF);
    test_profile(1, KILN_CUDAGRAPHS_WHOLE);
    test_profile(0, KILN_CUDAGRAPHS_PER_BLOCK);
    test_errors();
    return kt_finish();
}
