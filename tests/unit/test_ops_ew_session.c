/* Elementwise and reduce ops end to end: a graph built with the public API, compiled for the CPU
 * with a dynamic batch and run in a session at several batch sizes, against float64 math here.
 * Covers host inputs (ReduceMean's axes), optional inputs (Clip), dtype changes (Cast) and
 * broadcasting constants inside a compiled module. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define S(...) ((const char *[]){__VA_ARGS__})

static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 3, (const int64_t[]){-1, 4, 6}, S("batch", NULL, NULL)));
    float b[6] = {0.5f, -0.25f, 0.125f, 1.0f, -1.0f, 0.0f}, lo = -0.1f, hi = 1.5f, thr = 0.25f;
    int64_t axes[1] = {2}, axes2[2] = {1, -1};
    KT_OK(kiln_graph_add_initializer(g, "b", KILN_F32, 1, (const int64_t[]){6}, b));
    KT_OK(kiln_graph_add_initializer(g, "lo", KILN_F32, 0, NULL, &lo));
    KT_OK(kiln_graph_add_initializer(g, "hi", KILN_F32, 0, NULL, &hi));
    KT_OK(kiln_graph_add_initializer(g, "thr", KILN_F32, 0, NULL, &thr));
    KT_OK(kiln_graph_add_initializer(g, "axes", KILN_I64, 1, (const int64_t[]){1}, axes));
    KT_OK(kiln_graph_add_initializer(g, "axes2", KILN_I64, 1, (const int64_t[]){2}, axes2));
    KT_OK(kiln_graph_add_node(g, "Add", "add", 2, S("x", "b"), 1, S("s"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Gelu", "gelu", 1, S("s"), 1, S("ge"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Clip", "clip", 3, S("ge", "lo", "hi"), 1, S("c"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "ReduceMean", "mean", 2, S("c", "axes"), 1, S("m"), 1,
                              (const kiln_attr[]){kiln_attr_int("keepdims", 0)}));
    KT_OK(kiln_graph_add_node(g, "Softmax", "softmax", 1, S("m"), 1, S("p"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Greater", "gt", 2, S("p", "thr"), 1, S("big"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Neg", "neg", 1, S("p"), 1, S("np"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Where", "where", 3, S("big", "p", "np"), 1, S("w"), 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Cast", "to_f16", 1, S("w"), 1, S("wh"), 1, (const kiln_attr[]){kiln_attr_int("to", 10)}));
    KT_OK(kiln_graph_add_node(g, "Cast", "to_f32", 1, S("wh"), 1, S("y"), 1, (const kiln_attr[]){kiln_attr_int("to", 1)}));
    KT_OK(kiln_graph_add_node(g, "ReduceMax", "max", 2, S("x", "axes2"), 1, S("mx"), 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_OK(kiln_graph_add_output(g, "mx"));
    return g;
}

static double gelu(double v) { return 0.5 * v * (1 + erf(v / sqrt(2.0))); }

static void run_batch(kiln_session *s, int64_t batch) {
    float x[8 * 24], y[8 * 4], mx[8];
    static const double b[6] = {0.5, -0.25, 0.125, 1.0, -1.0, 0.0};
    for (int i = 0; i < batch * 24; i++) x[i] = kt_uniform(-3, 3);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 3, .dims = {batch, 4, 6}, .device = KILN_DEVICE_CPU};
    kiln_tensor out[2] = {{.data = y, .device = KILN_DEVICE_CPU}, {.data = mx, .device = KILN_DEVICE_CPU}};
    kiln_status st = kiln_session_run(s, &in, 1, out, 2);
    KT_CHECK(st == KILN_OK, "run at batch %lld: %s", (long long)batch, kiln_last_error());
    if (st != KILN_OK) return;
    KT_CHECK(out[0].dtype == KILN_F32 && out[0].rank == 2 && out[0].dims[0] == batch && out[0].dims[1] == 4, "y dims");
    KT_CHECK(out[1].rank == 3 && out[1].dims[0] == batch && out[1].dims[1] == 1 && out[1].dims[2] == 1, "mx dims");
    double ref[8 * 4], worst = 0, worst_mx = 0;
    for (int n = 0; n < batch; n++) {
        double m[4], sum = 0, mxr = -INFINITY;
        for (int r = 0; r < 4; r++) {
            m[r] = 0;
            for (int c = 0; c < 6; c++) {
                double v = gelu((double)x[(n * 4 + r) * 6 + c] + b[c]);
                m[r] += (v < -0.1f ? -0.1f : v > 1.5f ? 1.5f : v) / 6;
                mxr = fmax(mxr, x[(n * 4 + r) * 6 + c]);
            }
        }
        for (int r = 0; r < 4; r++) sum += exp(m[r]);
        for (int r = 0; r < 4; r++) {
            double p = exp(m[r]) / sum;
            ref[n * 4 + r] = p > 0.25f ? p : -p;
            worst = fmax(worst, fabs(y[n * 4 + r] - ref[n * 4 + r]));
        }
        worst_mx = fmax(worst_mx, fabs(mx[n] - mxr));
    }
    KT_CHECK(worst < 1e-3, "batch %lld: y off by %g (f16 round trip)", (long long)batch, worst);
    KT_CHECK(worst_mx == 0, "batch %lld: ReduceMax off by %g", (long long)batch, worst_mx);
}

int main(void) {
    kt_seed(3);
    kiln_graph *g = make_graph();
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    kiln_input_profile p = {.name = "x", .rank = 3, .min = {1, 4, 6}, .opt = {4, 4, 6}, .max = {8, 4, 6}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    kiln_session *s = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    if (m) KT_OK(kiln_session_create(m, &s));
    if (s) {
        run_batch(s, 1);
        run_batch(s, 8);
        run_batch(s, 3);
        KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE)); /* the CPU recorder replays */
        run_batch(s, 5);
        run_batch(s, 5);
        run_batch(s, 2);
    }
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
    return kt_finish();
}
