/* The nn ops end to end: a graph of every nn op (Conv with kiln's fused bias + residual + ReLU,
 * ConvTranspose, the norms, the pools, MatMul with fused bias + GELU, Gemm with ReLU) compiled
 * for the CPU with a dynamic batch and run in a session at several batch sizes, eagerly and with
 * the recorder (CUDA-graph mode WHOLE replays the prepared kernel calls). Each output is checked
 * against the same nodes run one by one outside any module (the kernels themselves are checked
 * against float64 loops in the other test_ops_nn_*.c): this tests prepare/run under the memory
 * plan and replay, with no state leaking between shapes. */
#include "nn_testutil.h"

#define S(...) ((const char *[]){__VA_ARGS__})

typedef struct node_spec {
    const char *op, *name;
    int n_in;
    const char *in[5];
    const char *out;
    int n_attr;
    kiln_attr attrs[4];
} node_spec;

static const int64_t P1[4] = {1, 1, 1, 1}, S2[2] = {2, 2}, K2[2] = {2, 2}, K3[2] = {3, 3};

static const node_spec nodes[] = {
    {"Conv", "conv1", 3, {"x", "W1", "B1"}, "c1", 2, {{"pads", KILN_ATTR_INTS, .ints = P1, .count = 4},
                                                      {"kiln.act", KILN_ATTR_INT, .i = KN_ACT_RELU}}},
    {"Conv", "conv2", 4, {"c1", "W2", "B2", "c1"}, "c2", 1, {{"kiln.act", KILN_ATTR_INT, .i = KN_ACT_RELU}}},
    {"BatchNormalization", "bn", 5, {"c2", "bs", "bb", "bm", "bv"}, "b1", 0},
    {"MaxPool", "pool", 1, {"b1"}, "p1", 2, {{"kernel_shape", KILN_ATTR_INTS, .ints = K2, .count = 2},
                                             {"strides", KILN_ATTR_INTS, .ints = S2, .count = 2}}},
    {"AveragePool", "avg", 1, {"p1"}, "a1", 3, {{"kernel_shape", KILN_ATTR_INTS, .ints = K3, .count = 2},
                                                {"strides", KILN_ATTR_INTS, .ints = S2, .count = 2},
                                                {"pads", KILN_ATTR_INTS, .ints = P1, .count = 4}}},
    {"GlobalAveragePool", "gap", 1, {"a1"}, "g1", 0},
    {"MatMul", "mm", 3, {"g1", "Wm", "Bm"}, "m1", 1, {{"kiln.act", KILN_ATTR_INT, .i = KN_ACT_GELU_ERF}}},
    {"LayerNormalization", "ln", 3, {"m1", "lns", "lnb"}, "y", 0},
    {"Gemm", "fc", 3, {"v", "Wg", "Cg"}, "z", 2, {{"transB", KILN_ATTR_INT, .i = 1},
                                                  {"kiln.act", KILN_ATTR_INT, .i = KN_ACT_RELU}}},
    {"ConvTranspose", "up", 2, {"p1", "Wt"}, "t", 1, {{"strides", KILN_ATTR_INTS, .ints = S2, .count = 2}}},
    {"GlobalMaxPool", "gmp", 1, {"t"}, "gm", 0},
    {"InstanceNormalization", "inorm", 3, {"t", "is", "ib"}, "in1", 0},
};
#define N_NODES ((int)(sizeof nodes / sizeof nodes[0]))

typedef struct named {
    const char *name;
    kt_t t;
} named;

static named vals[64];
static int n_vals;

static kt_t *find(const char *name) {
    for (int i = 0; i < n_vals; i++)
        if (!strcmp(vals[i].name, name)) return &vals[i].t;
    return NULL;
}

static void add_weight(kiln_graph *g, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    kt_t t = kt_rand(KILN_F32, rank, dims, lo, hi);
    KT_OK(kiln_graph_add_initializer(g, name, KILN_F32, rank, dims, t.t.data));
    vals[n_vals++] = (named){name, t};
}

static const char *const outputs[] = {"y", "z", "gm", "in1"};

static void run_batch(kiln_session *s, int64_t batch) {
    int64_t xd[4] = {batch, 3, 10, 10}, vd[2] = {batch, 5};
    kt_t x = kt_rand(KILN_F32, 4, xd, -1, 1), v = kt_rand(KILN_F32, 2, vd, -1, 1);
    int base = n_vals;
    vals[n_vals++] = (named){"x", x};
    vals[n_vals++] = (named){"v", v};
    /* the reference: each node on its own */
    for (int k = 0; k < N_NODES; k++) {
        const node_spec *ns = &nodes[k];
        kt_t in[5], out;
        for (int i = 0; i < ns->n_in; i++) in[i] = *find(ns->in[i]);
        kiln_status st = kt_run_op(kn_op_from_name(ns->op), ns->name, ns->n_in, in, 1, &out, ns->n_attr, ns->attrs);
        KT_CHECK(st == KILN_OK, "reference %s: %s", ns->name, kiln_last_error());
        vals[n_vals++] = (named){ns->out, out};
    }
    kiln_tensor ins[2] = {{.data = x.t.data, .dtype = KILN_F32, .rank = 4, .dims = {batch, 3, 10, 10}, .device = KILN_DEVICE_CPU},
                          {.data = v.t.data, .dtype = KILN_F32, .rank = 2, .dims = {batch, 5}, .device = KILN_DEVICE_CPU}};
    kiln_tensor outs[4] = {{0}};
    kiln_status st = kiln_session_run(s, ins, 2, outs, 4);
    KT_CHECK(st == KILN_OK, "run at batch %lld: %s", (long long)batch, kiln_last_error());
    for (int o = 0; st == KILN_OK && o < 4; o++) {
        const kt_t *want = find(outputs[o]);
        int same = outs[o].rank == want->t.rank && outs[o].dtype == KILN_F32;
        for (int i = 0; same && i < outs[o].rank; i++) same = outs[o].dims[i] == want->t.dims[i];
        KT_CHECK(same, "batch %lld: output %s dims", (long long)batch, outputs[o]);
        if (!same) continue;
        int64_t n = kt_numel(want);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)((const float *)outs[o].data)[i] - want->v[i]) / (1e-5 + 1e-5 * fabs(want->v[i]));
            if (!(e <= worst)) worst = e;
        }
        KT_CHECK(worst <= 1, "batch %lld: output %s off by %.3g tolerances", (long long)batch, outputs[o], worst);
    }
    for (int i = base; i < n_vals; i++) kt_free(&vals[i].t);
    n_vals = base;
}

int main(void) {
    kt_seed(11);
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, (const int64_t[]){-1, 3, 10, 10}, S("batch", NULL, NULL, NULL)));
    KT_OK(kiln_graph_add_input(g, "v", KILN_F32, 2, (const int64_t[]){-1, 5}, S("batch", NULL)));
    add_weight(g, "W1", 4, (const int64_t[]){8, 3, 3, 3}, -1, 1);
    add_weight(g, "B1", 1, (const int64_t[]){8}, -1, 1);
    add_weight(g, "W2", 4, (const int64_t[]){8, 8, 1, 1}, -1, 1);
    add_weight(g, "B2", 1, (const int64_t[]){8}, -1, 1);
    add_weight(g, "bs", 1, (const int64_t[]){8}, 0.5f, 1.5f);
    add_weight(g, "bb", 1, (const int64_t[]){8}, -1, 1);
    add_weight(g, "bm", 1, (const int64_t[]){8}, -1, 1);
    add_weight(g, "bv", 1, (const int64_t[]){8}, 0.5f, 2);
    add_weight(g, "Wm", 2, (const int64_t[]){1, 6}, -1, 1);
    add_weight(g, "Bm", 1, (const int64_t[]){6}, -1, 1);
    add_weight(g, "lns", 1, (const int64_t[]){6}, 0.5f, 1.5f);
    add_weight(g, "lnb", 1, (const int64_t[]){6}, -1, 1);
    add_weight(g, "Wg", 2, (const int64_t[]){4, 5}, -1, 1);
    add_weight(g, "Cg", 1, (const int64_t[]){4}, -1, 1);
    add_weight(g, "Wt", 4, (const int64_t[]){8, 2, 2, 2}, -1, 1);
    add_weight(g, "is", 1, (const int64_t[]){2}, 0.5f, 1.5f);
    add_weight(g, "ib", 1, (const int64_t[]){2}, -1, 1);
    for (int k = 0; k < N_NODES; k++)
        KT_OK(kiln_graph_add_node(g, nodes[k].op, nodes[k].name, nodes[k].n_in, nodes[k].in, 1, &nodes[k].out,
                                  nodes[k].n_attr, nodes[k].attrs));
    for (int o = 0; o < 4; o++) KT_OK(kiln_graph_add_output(g, outputs[o]));

    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    kiln_input_profile p[2] = {{.name = "x", .rank = 4, .min = {1, 3, 10, 10}, .opt = {4, 3, 10, 10}, .max = {6, 3, 10, 10}},
                               {.name = "v", .rank = 2, .min = {1, 5}, .opt = {4, 5}, .max = {6, 5}}};
    cfg.profiles = p;
    cfg.num_profiles = 2;
    kiln_module *m = NULL;
    kiln_session *s = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    if (m) KT_OK(kiln_session_create(m, &s));
    if (s) {
        run_batch(s, 1);
        run_batch(s, 6);
        run_batch(s, 3);
        KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE)); /* the CPU recorder replays */
        run_batch(s, 2);
        run_batch(s, 2);
        run_batch(s, 5);
        run_batch(s, 2);
        kiln_counters c;
        KT_OK(kiln_session_counters(s, &c));
        KT_CHECK(c.replays >= 2 && c.captures >= 2, "replays %llu, captures %llu", (unsigned long long)c.replays,
                 (unsigned long long)c.captures);
    }
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
    for (int i = 0; i < n_vals; i++) kt_free(&vals[i].t);
    return kt_finish();
}
