/* The tensor ops through the whole pipeline on the CPU: a graph with Transpose, Slice (negative
 * step), Pad (reflect), Resize (linear), Gather, and shape arithmetic feeding a Reshape, compiled
 * for a batch range and run at several batches, with and without recorded graphs. The result must
 * match the same ops run one at a time (each of which test_ops_tensor_* checks against naive
 * references), so what this test checks is the plumbing: host inputs at run time, prepared
 * Resize tables per shape, the memory plan. */
#include "tensor_testutil.h"

static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {-1, 3, 4, 6};
    const char *names[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, names));
    int64_t two = 2, four = 4, eight = 8, one = 1;
    int64_t starts[2] = {1, -1}, ends[2] = {4, -7}, axes[2] = {1, 2}, steps[2] = {1, -2};
    int64_t pads[8] = {0, 0, 1, 0, 0, 0, 0, 2}, idx0 = 0, minus1 = -1, gidx[2] = {2, 0};
    float scales[4] = {1, 1, 2, 1.5f};
    KT_OK(kiln_graph_add_initializer(g, "starts", KILN_I64, 1, &two, starts));
    KT_OK(kiln_graph_add_initializer(g, "ends", KILN_I64, 1, &two, ends));
    KT_OK(kiln_graph_add_initializer(g, "axes", KILN_I64, 1, &two, axes));
    KT_OK(kiln_graph_add_initializer(g, "steps", KILN_I64, 1, &two, steps));
    KT_OK(kiln_graph_add_initializer(g, "pads", KILN_I64, 1, &eight, pads));
    KT_OK(kiln_graph_add_initializer(g, "scales", KILN_F32, 1, &four, scales));
    KT_OK(kiln_graph_add_initializer(g, "idx0", KILN_I64, 1, &one, &idx0));
    KT_OK(kiln_graph_add_initializer(g, "minus1", KILN_I64, 1, &one, &minus1));
    KT_OK(kiln_graph_add_initializer(g, "gidx", KILN_I64, 1, &two, gidx));
    int64_t perm[4] = {0, 2, 3, 1};
    kiln_attr aperm = kiln_attr_ints("perm", 4, perm), ax0 = kiln_attr_int("axis", 0), ax1 = kiln_attr_int("axis", 1);
    kiln_attr reflect = kiln_attr_string("mode", "reflect"), linear = kiln_attr_string("mode", "linear");
    const char *i1[] = {"x"}, *o1[] = {"t"};
    KT_OK(kiln_graph_add_node(g, "Transpose", "transpose", 1, i1, 1, o1, 1, &aperm));          /* b,4,6,3 */
    const char *i2[] = {"t", "starts", "ends", "axes", "steps"}, *o2[] = {"sl"};
    KT_OK(kiln_graph_add_node(g, "Slice", "slice", 5, i2, 1, o2, 0, NULL));                    /* b,3,3,3 */
    const char *i3[] = {"sl", "pads"}, *o3[] = {"p"};
    KT_OK(kiln_graph_add_node(g, "Pad", "pad", 2, i3, 1, o3, 1, &reflect));                    /* b,3,4,5 */
    const char *i4[] = {"p", "", "scales"}, *o4[] = {"r"};
    KT_OK(kiln_graph_add_node(g, "Resize", "resize", 3, i4, 1, o4, 1, &linear));               /* b,3,8,7 */
    const char *i5[] = {"r", "gidx"}, *o5[] = {"gt"};
    KT_OK(kiln_graph_add_node(g, "Gather", "gather", 2, i5, 1, o5, 1, &ax1));                  /* b,2,8,7 */
    const char *i6[] = {"gt"}, *o6[] = {"s"};
    KT_OK(kiln_graph_add_node(g, "Shape", "shape", 1, i6, 1, o6, 0, NULL));
    const char *i7[] = {"s", "idx0"}, *o7[] = {"b"};
    KT_OK(kiln_graph_add_node(g, "Gather", "gather_b", 2, i7, 1, o7, 1, &ax0));
    const char *i8[] = {"b", "minus1"}, *o8[] = {"shp"};
    KT_OK(kiln_graph_add_node(g, "Concat", "cat", 2, i8, 1, o8, 1, &ax0));
    const char *i9[] = {"gt", "shp"}, *o9[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Reshape", "reshape", 2, i9, 1, o9, 0, NULL));                /* b,112 */
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

/* The same chain, one op at a time through kt_run. */
static void reference(const kn_tensor *x, kn_tensor *y) {
    kn_node n;
    kn_tensor t, sl, p, r, gt;
    int64_t perm[4] = {0, 2, 3, 1};
    kt_node(&n, KN_OP_Transpose, "transpose");
    kt_attr_ints(&n, "perm", 4, perm);
    KT_OK(kt_run(&n, x, 1, &t, 1));
    kt_node_free(&n);
    int64_t starts[2] = {1, -1}, ends[2] = {4, -7}, axes[2] = {1, 2}, steps[2] = {1, -2};
    kn_tensor si[5] = {t, kt_host_i64(2, starts), kt_host_i64(2, ends), kt_host_i64(2, axes), kt_host_i64(2, steps)};
    kt_node(&n, KN_OP_Slice, "slice");
    KT_OK(kt_run(&n, si, 5, &sl, 1));
    for (int i = 1; i < 5; i++) kt_free(&si[i]);
    int64_t pads[8] = {0, 0, 1, 0, 0, 0, 0, 2};
    kn_tensor pi[2] = {sl, kt_host_i64(8, pads)};
    kt_node(&n, KN_OP_Pad, "pad");
    kt_attr_s(&n, "mode", "reflect");
    KT_OK(kt_run(&n, pi, 2, &p, 1));
    kt_node_free(&n);
    kt_free(&pi[1]);
    float scales[4] = {1, 1, 2, 1.5f};
    kn_tensor ri[3] = {p, {0}, kt_host_f32(4, scales)};
    kt_node(&n, KN_OP_Resize, "resize");
    kt_attr_s(&n, "mode", "linear");
    KT_OK(kt_run(&n, ri, 3, &r, 1));
    kt_node_free(&n);
    kt_free(&ri[2]);
    int64_t gidx[2] = {2, 0};
    kn_tensor gi[2] = {r, kt_host_i64(2, gidx)};
    kt_node(&n, KN_OP_Gather, "gather");
    kt_attr_i(&n, "axis", 1);
    KT_OK(kt_run(&n, gi, 2, &gt, 1));
    kt_node_free(&n);
    kt_free(&gi[1]);
    *y = gt;
    kt_free(&t);
    kt_free(&sl);
    kt_free(&p);
    kt_free(&r);
}

static void run_at(kiln_session *s, int64_t batch) {
    int64_t xd[4] = {batch, 3, 4, 6};
    kn_tensor x = kt_tensor(KILN_F32, 4, xd), want;
    kt_randomize(&x);
    reference(&x, &want);
    float y[4 * 112];
    kiln_tensor in = {.data = x.data, .dtype = KILN_F32, .rank = 4, .dims = {batch, 3, 4, 6}, .device = KILN_DEVICE_CPU};
    kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
    kiln_status st = kiln_session_run(s, &in, 1, &out, 1);
    KT_CHECK(st == KILN_OK, "run at batch %lld: %s", (long long)batch, kiln_last_error());
    if (st == KILN_OK) {
        KT_CHECK(out.rank == 2 && out.dims[0] == batch && out.dims[1] == 112, "output dims %lldx%lld", (long long)out.dims[0],
                 (long long)out.dims[1]);
        KT_CHECK(kn_tensor_numel(&want) == batch * 112 && memcmp(y, want.data, (size_t)batch * 112 * 4) == 0,
                 "batch %lld: the compiled module differs from the ops run one by one", (long long)batch);
    }
    kt_free(&want);
    kt_free(&x);
}

int main(void) {
    kt_seed(53);
    kiln_graph *g = make_graph();
    KT_OK(kiln_graph_verify(g));
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = 1;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, 4, 6}, .opt = {2, 3, 4, 6}, .max = {4, 3, 4, 6}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    kiln_session *s = NULL;
    if (m) KT_OK(kiln_session_create(m, &s));
    if (s) {
        int64_t seq[4] = {2, 3, 1, 4};
        for (int i = 0; i < 4; i++) run_at(s, seq[i]);
        KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
        for (int i = 0; i < 4; i++) run_at(s, seq[i]);
        for (int i = 0; i < 4; i++) run_at(s, seq[i]);
        kiln_counters c;
        KT_OK(kiln_session_counters(s, &c));
        KT_CHECK(c.replays >= 4, "recorded graphs were replayed (%llu)", (unsigned long long)c.replays);
    }
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
    return kt_finish();
}
