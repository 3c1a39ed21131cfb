/* The nn ops through the public builder API: a small CNN + MLP graph with a symbolic batch
 * verifies and gets the expected static (and symbolic) shapes; bad shapes and attributes fail
 * with messages naming the node; and the graph's nodes evaluate with kn_cpu_eval_node over the
 * shapes kn_shapes_infer gives (a Conv checked against a float64 loop). */
#include "nn_testutil.h"

static float *rand_floats(int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    kt_fill_uniform(x, n, -1, 1);
    return x;
}

static kiln_status add_init(kiln_graph *g, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *v = malloc((size_t)n * sizeof *v);
    kt_fill_uniform(v, n, lo, hi);
    kiln_status st = kiln_graph_add_initializer(g, name, KILN_F32, rank, dims, v);
    free(v);
    return st;
}

static const kn_value *value(const kiln_graph *g, const char *name) {
    int v = kn_graph_find_value(&g->g, name);
    return v >= 0 ? &g->g.values[v] : NULL;
}

/* dims of a value: -2 marks "the batch symbol". */
static int has_dims(const kiln_graph *g, const char *name, int rank, const int64_t *want, int batch_sym) {
    const kn_value *v = value(g, name);
    if (!v || v->rank != rank || v->dtype != KILN_F32) return 0;
    for (int i = 0; i < rank; i++) {
        if (want[i] == -2) {
            if (v->dims[i].sym != batch_sym) return 0;
        } else if (v->dims[i].sym >= 0 || v->dims[i].v != want[i]) {
            return 0;
        }
    }
    return 1;
}

static void test_cnn_graph(void) {
    kiln_graph *g;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {-1, 3, 16, 16};
    const char *names[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, names));
    int64_t wd[4] = {8, 3, 3, 3}, c8[1] = {8}, w2d[4] = {8, 8, 1, 1}, fc[2] = {8, 10}, c10[1] = {10}, ln[1] = {4};
    KT_OK(add_init(g, "W1", 4, wd, -1, 1));
    KT_OK(add_init(g, "B1", 1, c8, -1, 1));
    KT_OK(add_init(g, "W2", 4, w2d, -1, 1));
    KT_OK(add_init(g, "scale", 1, c8, 0.5f, 1.5f));
    KT_OK(add_init(g, "bias", 1, c8, -1, 1));
    KT_OK(add_init(g, "mean", 1, c8, -1, 1));
    KT_OK(add_init(g, "var", 1, c8, 0.5f, 1.5f));
    KT_OK(add_init(g, "Wfc", 2, fc, -1, 1));
    KT_OK(add_init(g, "Bfc", 1, c10, -1, 1));
    KT_OK(add_init(g, "lns", 1, ln, -1, 1));
    int64_t p1[4] = {1, 1, 1, 1}, s2[2] = {2, 2}, k2[2] = {2, 2};
    kiln_attr conv_at[3] = {kiln_attr_ints("pads", 4, p1), kiln_attr_ints("strides", 2, s2),
                            kiln_attr_int("kiln.act", KN_ACT_RELU)};
    KT_OK(kiln_graph_add_node(g, "Conv", "conv1", 3, (const char *[]){"x", "W1", "B1"}, 1, (const char *[]){"c1"}, 3,
                              conv_at));
    KT_OK(kiln_graph_add_node(g, "Conv", "conv2", 4, (const char *[]){"c1", "W2", "", "c1"}, 1,
                              (const char *[]){"c2"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "BatchNormalization", "bn1", 5, (const char *[]){"c2", "scale", "bias", "mean", "var"},
                              1, (const char *[]){"b1"}, 0, NULL));
    kiln_attr pool_at[2] = {kiln_attr_ints("kernel_shape", 2, k2), kiln_attr_ints("strides", 2, s2)};
    KT_OK(kiln_graph_add_node(g, "MaxPool", "pool1", 1, (const char *[]){"b1"}, 2, (const char *[]){"p1", ""}, 2,
                              pool_at));
    KT_OK(kiln_graph_add_node(g, "LayerNormalization", "ln1", 2, (const char *[]){"p1", "lns"}, 1,
                              (const char *[]){"l1"}, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "GlobalAveragePool", "gap", 1, (const char *[]){"l1"}, 1, (const char *[]){"g1"}, 0,
                              NULL));
    /* (batch, 8, 1, 1) x (1, 10)? no: MatMul on the pooled map's last two dims (1x1) needs K = 1 */
    int64_t wm[2] = {1, 10};
    KT_OK(add_init(g, "Wm", 2, wm, -1, 1));
    KT_OK(kiln_graph_add_node(g, "MatMul", "mm1", 3, (const char *[]){"g1", "Wm", "Bfc"}, 1, (const char *[]){"m1"},
                              0, NULL));
    KT_OK(kiln_graph_add_output(g, "m1"));
    KT_OK(kiln_graph_verify(g));
    int batch = value(g, "x")->dims[0].sym;
    KT_CHECK(batch >= 0, "the batch dim is symbolic");
    KT_CHECK(has_dims(g, "c1", 4, (int64_t[]){-2, 8, 8, 8}, batch), "c1 dims");
    KT_CHECK(has_dims(g, "c2", 4, (int64_t[]){-2, 8, 8, 8}, batch), "c2 dims");
    KT_CHECK(has_dims(g, "p1", 4, (int64_t[]){-2, 8, 4, 4}, batch), "p1 dims");
    KT_CHECK(has_dims(g, "l1", 4, (int64_t[]){-2, 8, 4, 4}, batch), "l1 dims");
    KT_CHECK(has_dims(g, "g1", 4, (int64_t[]){-2, 8, 1, 1}, batch), "g1 dims");
    KT_CHECK(has_dims(g, "m1", 4, (int64_t[]){-2, 8, 1, 10}, batch), "m1 dims");

    /* evaluate node by node with the reference kernels at batch 2, and check conv1 */
    int *order, n_order;
    KT_OK(kn_graph_topo_order(&g->g, &order, &n_order));
    int64_t in_dims[1][KILN_MAX_RANK] = {{2, 3, 16, 16}};
    kn_shapes s;
    KT_OK(kn_shapes_infer(&g->g, order, n_order, (const int64_t(*)[KILN_MAX_RANK])in_dims, &s));
    void **buf = calloc((size_t)g->g.n_values, sizeof *buf);
    float *x = rand_floats(2 * 3 * 16 * 16);
    int vx = kn_graph_find_value(&g->g, "x");
    buf[vx] = x;
    for (int v = 0; v < g->g.n_values; v++)
        if (g->g.values[v].constant) buf[v] = g->g.values[v].constant->data;
    kiln_status st = KILN_OK;
    for (int k = 0; k < n_order && st == KILN_OK; k++) {
        const kn_node *n = &g->g.nodes[order[k]];
        kn_tensor ins[8], outs[4];
        for (int i = 0; i < n->n_in; i++) {
            memset(&ins[i], 0, sizeof ins[i]);
            if (n->in[i] < 0) continue;
            ins[i] = s.vals[n->in[i]];
            ins[i].data = buf[n->in[i]];
        }
        for (int o = 0; o < n->n_out; o++) {
            memset(&outs[o], 0, sizeof outs[o]);
            if (n->out[o] < 0) continue;
            outs[o] = s.vals[n->out[o]];
            outs[o].data = buf[n->out[o]] = calloc((size_t)kn_tensor_numel(&outs[o]) + 1, 8);
        }
        st = kn_cpu_eval_node(n, ins, n->n_in, outs, n->n_out);
        KT_CHECK(st == KILN_OK, "%s", kiln_last_error());
    }
    int vc1 = kn_graph_find_value(&g->g, "c1");
    KT_CHECK(s.vals[vc1].dims[0] == 2 && s.vals[vc1].dims[2] == 8, "c1 at batch 2");
    if (st == KILN_OK) {
        const float *w = value(g, "W1")->constant->data, *b = value(g, "B1")->constant->data, *y = buf[vc1];
        double worst = 0;
        for (int n = 0; n < 2; n++)
            for (int m = 0; m < 8; m++)
                for (int oh = 0; oh < 8; oh++)
                    for (int ow = 0; ow < 8; ow++) {
                        double acc = b[m];
                        for (int c = 0; c < 3; c++)
                            for (int kh = 0; kh < 3; kh++)
                                for (int kw = 0; kw < 3; kw++) {
                                    int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                                    if (ih < 0 || ih >= 16 || iw < 0 || iw >= 16) continue;
                                    acc += (double)x[((n * 3 + c) * 16 + ih) * 16 + iw] * w[((m * 3 + c) * 3 + kh) * 3 + kw];
                                }
                        acc = acc > 0 ? acc : 0;
                        double e = fabs(y[((n * 8 + m) * 8 + oh) * 8 + ow] - acc);
                        if (e > worst) worst = e;
                    }
        KT_CHECK(worst < 1e-5, "conv1 through the graph: max error %g", worst);
    }
    for (int v = 0; v < g->g.n_values; v++)
        if (v != vx && !g->g.values[v].constant) free(buf[v]);
    free(buf);
    free(x);
    free(order);
    kn_shapes_free(&s);
    kiln_graph_free(g);
}

static void test_graph_errors(void) {
    kiln_graph *g;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {1, 4, 8, 8}, wd[4] = {2, 3, 3, 3};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, NULL));
    KT_OK(add_init(g, "W", 4, wd, -1, 1));
    KT_OK(kiln_graph_add_node(g, "Conv", "layer3.0.conv1", 2, (const char *[]){"x", "W"}, 1, (const char *[]){"y"}, 0,
                              NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_FAILS(kiln_graph_verify(g), KILN_ERR_SHAPE, "Conv 'layer3.0.conv1': input 'W' has 3 channels per group, X has 4 / group 1");
    /* attribute checks run when the node is added */
    kiln_attr ap = kiln_attr_string("auto_pad", "same");
    KT_FAILS(kiln_graph_add_node(g, "MaxPool", "pool9", 1, (const char *[]){"x"}, 1, (const char *[]){"p"}, 1, &ap),
             KILN_ERR_INVALID_ARGUMENT, "MaxPool 'pool9': attribute 'kernel_shape' is required");
    int64_t k2[2] = {2, 2};
    kiln_attr pat[2] = {kiln_attr_ints("kernel_shape", 2, k2), ap};
    KT_FAILS(kiln_graph_add_node(g, "MaxPool", "pool10", 1, (const char *[]){"x"}, 1, (const char *[]){"p2"}, 2, pat),
             KILN_ERR_INVALID_ARGUMENT, "MaxPool 'pool10': attribute 'auto_pad' is 'same'");
    kiln_attr tm = kiln_attr_int("training_mode", 1);
    KT_FAILS(kiln_graph_add_node(g, "BatchNormalization", "bn9", 5, (const char *[]){"x", "W", "W", "W", "W"}, 1,
                                 (const char *[]){"b"}, 1, &tm),
             KILN_ERR_UNSUPPORTED, "BatchNormalization 'bn9': attribute 'training_mode' is 1");
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(5);
    test_cnn_graph();
    test_graph_errors();
    return kt_finish();
}
