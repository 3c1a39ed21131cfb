/* Shape, Constant, ConstantOfShape, Range (ops that make values rather than move them), and
 * shape arithmetic through a whole graph: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, where
 * the integer ops must be evaluated on the host during shape inference. */
#include "tensor_testutil.h"

static void test_shape(void) {
    int64_t d[4] = {7, 3, 5, 2};
    kn_tensor x = kt_tensor(KILN_F16, 4, d), y;
    kt_free(&x); /* Shape must not read the data: give it none */
    struct { int has_s, has_e; int64_t s, e; } c[] = {
        {0, 0, 0, 0}, {1, 0, 1, 0}, {0, 1, 0, -1}, {1, 1, 1, 2}, {1, 0, -10, 0}, {0, 1, 0, 10}, {1, 1, 3, 1}, {1, 1, -1, 4},
    };
    for (int i = 0; i < (int)(sizeof c / sizeof c[0]); i++) {
        kn_node n;
        kt_node(&n, KN_OP_Shape, "shape");
        if (c[i].has_s) kt_attr_i(&n, "start", c[i].s);
        if (c[i].has_e) kt_attr_i(&n, "end", c[i].e);
        KT_OK(kt_run(&n, &x, 1, &y, 1));
        /* reference: Python's dims[start:end] */
        int64_t s = c[i].has_s ? c[i].s : 0, e = c[i].has_e ? c[i].e : 4;
        if (s < 0) s += 4;
        if (e < 0) e += 4;
        s = s < 0 ? 0 : s > 4 ? 4 : s;
        e = e < 0 ? 0 : e > 4 ? 4 : e;
        int64_t len = e > s ? e - s : 0;
        int ok = y.dtype == KILN_I64 && y.rank == 1 && y.dims[0] == len;
        for (int64_t j = 0; ok && j < len; j++) ok = ((int64_t *)y.data)[j] == d[s + j];
        KT_CHECK(ok, "Shape case %d: got %s", i, kt_dims(&y));
        kt_free(&y);
        kt_node_free(&n);
    }
}

static void test_constant(void) {
    int64_t d[2] = {2, 3};
    kn_tensor v = kt_tensor(KILN_F16, 2, d), y;
    kt_randomize(&v);
    kiln_tensor kv = {.data = v.data, .dtype = KILN_F16, .rank = 2, .dims = {2, 3}};
    kiln_attr a = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &kv};
    kn_node n;
    kt_node(&n, KN_OP_Constant, "c");
    kn_node_set_attr(&n, &a);
    KT_OK(kt_run(&n, NULL, 0, &y, 1));
    KT_CHECK(y.dtype == KILN_F16 && kt_dims_are(&y, 2, d) && memcmp(y.data, v.data, 12) == 0, "Constant value: %s", kt_dims(&y));
    kt_free(&y);
    kt_attr_f(&n, "value_float", 1.5f);
    KT_FAILS(kt_run(&n, NULL, 0, &y, 1), KILN_ERR_INVALID_ARGUMENT,
             "Constant 'c': has both attribute 'value' and 'value_float'; exactly one value is allowed");
    kt_node_free(&n);

    kt_node(&n, KN_OP_Constant, "cf");
    kt_attr_f(&n, "value_float", 1.5f);
    KT_OK(kt_run(&n, NULL, 0, &y, 1));
    KT_CHECK(y.dtype == KILN_F32 && y.rank == 0 && *(float *)y.data == 1.5f, "Constant value_float");
    kt_free(&y);
    kt_node_free(&n);

    float fl[3] = {0.25f, -2.0f, 7.0f};
    kt_node(&n, KN_OP_Constant, "cfs");
    kiln_attr af = kiln_attr_floats("value_floats", 3, fl);
    kn_node_set_attr(&n, &af);
    KT_OK(kt_run(&n, NULL, 0, &y, 1));
    KT_CHECK(y.dtype == KILN_F32 && y.rank == 1 && y.dims[0] == 3 && memcmp(y.data, fl, 12) == 0, "Constant value_floats");
    kt_free(&y);
    kt_node_free(&n);

    kt_node(&n, KN_OP_Constant, "ci");
    kt_attr_i(&n, "value_int", INT64_C(1) << 62);
    KT_OK(kt_run(&n, NULL, 0, &y, 1));
    KT_CHECK(y.dtype == KILN_I64 && y.rank == 0 && *(int64_t *)y.data == INT64_C(1) << 62, "Constant value_int");
    kt_free(&y);
    kt_node_free(&n);

    int64_t is[4] = {-1, INT64_MAX, 3, 0};
    kt_node(&n, KN_OP_Constant, "cis");
    kt_attr_ints(&n, "value_ints", 4, is);
    KT_OK(kt_run(&n, NULL, 0, &y, 1));
    KT_CHECK(y.dtype == KILN_I64 && y.rank == 1 && y.dims[0] == 4 && memcmp(y.data, is, 32) == 0, "Constant value_ints");
    kt_free(&y);
    kt_node_free(&n);

    kt_node(&n, KN_OP_Constant, "cs");
    kt_attr_s(&n, "value_string", "hello");
    KT_FAILS(kt_run(&n, NULL, 0, &y, 1), KILN_ERR_UNSUPPORTED, "Constant 'cs': attribute 'value_string' is not supported");
    kt_node_free(&n);
    kt_node(&n, KN_OP_Constant, "cnone");
    KT_FAILS(kt_run(&n, NULL, 0, &y, 1), KILN_ERR_INVALID_ARGUMENT, "Constant 'cnone': needs one of the attributes");
    kt_node_free(&n);
    kt_free(&v);
}

static void test_constant_of_shape(void) {
    int64_t big = INT64_C(0x123456789abcdef), one = 1;
    kiln_tensor kv = {.data = &big, .dtype = KILN_I64, .rank = 1, .dims = {1}};
    kiln_attr a = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &kv};
    kn_node n;
    kn_tensor y;
    int64_t s23[2] = {2, 3}, s20[2] = {2, 0}, sneg[2] = {2, -3};
    kt_node(&n, KN_OP_ConstantOfShape, "cos");
    kn_node_set_attr(&n, &a);
    kn_tensor in = kt_host_i64(2, s23);
    KT_OK(kt_run(&n, &in, 1, &y, 1));
    int ok = y.dtype == KILN_I64 && kt_dims_are(&y, 2, s23);
    for (int i = 0; ok && i < 6; i++) ok = ((int64_t *)y.data)[i] == big;
    KT_CHECK(ok, "ConstantOfShape i64: %s", kt_dims(&y));
    kt_free(&y);
    kt_free(&in);
    in = kt_host_i64(2, s20);
    KT_OK(kt_run(&n, &in, 1, &y, 1));
    KT_CHECK(kt_dims_are(&y, 2, s20), "ConstantOfShape empty: %s", kt_dims(&y));
    kt_free(&y);
    kt_free(&in);
    in = kt_host_i64(0, NULL); /* an empty shape: a scalar */
    KT_OK(kt_run(&n, &in, 1, &y, 1));
    KT_CHECK(y.rank == 0 && *(int64_t *)y.data == big, "ConstantOfShape scalar: %s", kt_dims(&y));
    kt_free(&y);
    kt_free(&in);
    in = kt_host_i64(2, sneg);
    KT_FAILS(kt_run(&n, &in, 1, &y, 1), KILN_ERR_SHAPE, "ConstantOfShape 'cos': input 0 (shape) entry 1 = -3 is negative");
    kt_free(&in);
    kt_node_free(&n);

    /* default: f32 zeros */
    kt_node(&n, KN_OP_ConstantOfShape, "cos0");
    in = kt_host_i64(2, s23);
    KT_OK(kt_run(&n, &in, 1, &y, 1));
    ok = y.dtype == KILN_F32 && kt_dims_are(&y, 2, s23);
    for (int i = 0; ok && i < 6; i++) ok = ((float *)y.data)[i] == 0.0f;
    KT_CHECK(ok, "ConstantOfShape default");
    kt_free(&y);
    int64_t two[2] = {5, 6};
    kiln_tensor k2 = {.data = two, .dtype = KILN_I64, .rank = 1, .dims = {2}};
    kiln_attr a2 = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &k2};
    kn_node_set_attr(&n, &a2);
    KT_FAILS(kt_run(&n, &in, 1, &y, 1), KILN_ERR_INVALID_ARGUMENT, "ConstantOfShape 'cos0': attribute 'value' must be a tensor of one element");
    kt_free(&in);
    kt_node_free(&n);
    (void)one;
}

static kiln_status run_range(const char *name, kiln_dtype dt, double s, double l, double d, kn_tensor *y) {
    kn_node n;
    kt_node(&n, KN_OP_Range, name);
    kn_tensor in[3] = {kt_host_scalar(dt, s), kt_host_scalar(dt, l), kt_host_scalar(dt, d)};
    kiln_status st = kt_run(&n, in, 3, y, 1);
    for (int i = 0; i < 3; i++) kt_free(&in[i]);
    kt_node_free(&n);
    return st;
}

static void test_range(void) {
    kn_tensor y;
    /* random integers against a loop */
    for (int it = 0; it < 60; it++) {
        kiln_dtype dt = it % 2 ? KILN_I32 : KILN_I64;
        int64_t s = kt_rand_int(-20, 20), l = kt_rand_int(-20, 20), d = kt_rand_int(1, 5) * (kt_rand_int(0, 1) ? 1 : -1);
        KT_OK(run_range("range", dt, (double)s, (double)l, (double)d, &y));
        int64_t want[64], nw = 0;
        for (int64_t v = s; d > 0 ? v < l : v > l; v += d) want[nw++] = v;
        int ok = y.dtype == dt && y.rank == 1 && y.dims[0] == nw;
        for (int64_t i = 0; ok && i < nw; i++)
            ok = (dt == KILN_I64 ? ((int64_t *)y.data)[i] : ((int32_t *)y.data)[i]) == want[i];
        KT_CHECK(ok, "Range %s (%lld, %lld, %lld): got %s, expected %lld elements", kiln_dtype_name(dt), (long long)s,
                 (long long)l, (long long)d, kt_dims(&y), (long long)nw);
        kt_free(&y);
    }
    /* exact beyond 2^53 */
    {
        kn_node n;
        kt_node(&n, KN_OP_Range, "range_big");
        int64_t s = (INT64_C(1) << 60) + 1, l = s + 10, d = 3;
        kn_tensor in[3] = {kt_host_i64(1, &s), kt_host_i64(1, &l), kt_host_i64(1, &d)};
        for (int i = 0; i < 3; i++) in[i].rank = 0;
        KT_OK(kt_run(&n, in, 3, &y, 1));
        int ok = y.dims[0] == 4;
        for (int i = 0; ok && i < 4; i++) ok = ((int64_t *)y.data)[i] == s + 3 * i;
        KT_CHECK(ok, "Range i64 beyond 2^53");
        kt_free(&y);
        for (int i = 0; i < 3; i++) kt_free(&in[i]);
        kt_node_free(&n);
    }
    /* floats */
    kiln_dtype fts[3] = {KILN_F32, KILN_F16, KILN_F64};
    for (int t = 0; t < 3; t++) {
        KT_OK(run_range("rangef", fts[t], 1.5, 4.0, 0.5, &y));
        int ok = y.dtype == fts[t] && y.rank == 1 && y.dims[0] == 5;
        for (int i = 0; ok && i < 5; i++) ok = kn_load_f64(y.data, fts[t], i) == 1.5 + 0.5 * i;
        KT_CHECK(ok, "Range %s: %s", kiln_dtype_name(fts[t]), kt_dims(&y));
        kt_free(&y);
    }
    KT_OK(run_range("rangef", KILN_F32, 1, 2, 0.3, &y)); /* ceil(3.33) = 4 */
    KT_CHECK(y.dims[0] == 4, "Range f32 count %lld", (long long)y.dims[0]);
    kt_free(&y);
    KT_OK(run_range("rangee", KILN_F32, 5, 1, 1, &y));
    KT_CHECK(y.rank == 1 && y.dims[0] == 0, "Range empty");
    kt_free(&y);
    KT_FAILS(run_range("range0", KILN_I64, 1, 5, 0, &y), KILN_ERR_INVALID_ARGUMENT, "Range 'range0': input 2 (delta) is 0");
    {
        kn_node n;
        kt_node(&n, KN_OP_Range, "range_mix");
        kn_tensor in[3] = {kt_host_scalar(KILN_I64, 0), kt_host_scalar(KILN_I32, 5), kt_host_scalar(KILN_I64, 1)};
        KT_FAILS(kt_run(&n, in, 3, &y, 1), KILN_ERR_DTYPE, "Range 'range_mix': input 1 (limit) has element type i32, input 0 (start) has i64");
        in[1].dtype = KILN_I64;
        in[1].host = NULL;
        KT_FAILS(kt_run(&n, in, 3, &y, 1), KILN_ERR_UNSUPPORTED, "input 1 (limit) must be known before the run");
        for (int i = 0; i < 3; i++) kt_free(&in[i]);
        kt_node_free(&n);
    }
}

/* ---- shape arithmetic through a graph -------------------------------------------------------- */

static void test_shape_arithmetic_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {-1, 3, 4, 5};
    const char *names[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, xd, names));
    int64_t zero = 0, axes0 = 0, minus1 = -1, one = 1, big = INT64_MAX;
    KT_OK(kiln_graph_add_initializer(g, "idx0", KILN_I64, 0, NULL, &zero));
    KT_OK(kiln_graph_add_initializer(g, "axes0", KILN_I64, 1, &one, &axes0));
    KT_OK(kiln_graph_add_initializer(g, "minus1", KILN_I64, 1, &one, &minus1));
    KT_OK(kiln_graph_add_initializer(g, "one", KILN_I64, 1, &one, &one));
    KT_OK(kiln_graph_add_initializer(g, "big", KILN_I64, 1, &one, &big));
    kiln_attr ax0 = kiln_attr_int("axis", 0);
    const char *i1[1] = {"x"}, *o1[1] = {"s"};
    KT_OK(kiln_graph_add_node(g, "Shape", "shape", 1, i1, 1, o1, 0, NULL));
    const char *i2[2] = {"s", "idx0"}, *o2[1] = {"b"};
    KT_OK(kiln_graph_add_node(g, "Gather", "gather", 2, i2, 1, o2, 1, &ax0));
    const char *i3[2] = {"b", "axes0"}, *o3[1] = {"b1"};
    KT_OK(kiln_graph_add_node(g, "Unsqueeze", "unsq", 2, i3, 1, o3, 0, NULL));
    const char *i4[2] = {"b1", "minus1"}, *o4[1] = {"shp"};
    KT_OK(kiln_graph_add_node(g, "Concat", "cat", 2, i4, 1, o4, 1, &ax0));
    const char *i5[2] = {"x", "shp"}, *o5[1] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Reshape", "reshape", 2, i5, 1, o5, 0, NULL));
    /* the trailing dims, by Slice: s[1:] */
    const char *i6[3] = {"s", "one", "big"}, *o6[1] = {"tail"};
    KT_OK(kiln_graph_add_node(g, "Slice", "slice", 3, i6, 1, o6, 0, NULL));
    const char *i7[1] = {"tail"}, *o7[1] = {"z"};
    KT_OK(kiln_graph_add_node(g, "ConstantOfShape", "cos", 1, i7, 1, o7, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_OK(kiln_graph_add_output(g, "z"));
    KT_OK(kiln_graph_verify(g));
    kn_graph *kg = &g->g;
    const kn_value *y = &kg->values[kn_graph_find_value(kg, "y")];
    KT_CHECK(y->rank == 2 && y->dims[0].sym >= 0 && y->dims[1].sym < 0 && y->dims[1].v == 60,
             "static dims of y: rank %d, dim0 sym %d, dim1 %lld", y->rank, y->dims[0].sym, (long long)y->dims[1].v);
    const kn_value *z = &kg->values[kn_graph_find_value(kg, "z")];
    KT_CHECK(z->rank == 3 && z->dims[0].v == 3 && z->dims[1].v == 4 && z->dims[2].v == 5 && z->dtype == KILN_F32,
             "static dims of z: rank %d", z->rank);

    int *order, n_order;
    KT_OK(kn_graph_topo_order(kg, &order, &n_order));
    int64_t dims[1][KILN_MAX_RANK] = {{7, 3, 4, 5}};
    kn_shapes sh;
    KT_OK(kn_shapes_infer(kg, order, n_order, (const int64_t(*)[KILN_MAX_RANK])dims, &sh));
    const kn_tensor *ty = &sh.vals[kn_graph_find_value(kg, "y")];
    KT_CHECK(ty->rank == 2 && ty->dims[0] == 7 && ty->dims[1] == 60, "y at batch 7: %s", kt_dims(ty));
    const kn_tensor *ts = &sh.vals[kn_graph_find_value(kg, "shp")];
    KT_CHECK(ts->host && ((const int64_t *)ts->host)[0] == 7 && ((const int64_t *)ts->host)[1] == -1, "shp is known on the host");
    for (int k = 0; k < n_order; k++) {
        const kn_node *nd = &kg->nodes[order[k]];
        int want = nd->op != KN_OP_Reshape && nd->op != KN_OP_ConstantOfShape;
        KT_CHECK(sh.host_node[order[k]] == want, "node %s: host-evaluated %d, expected %d", nd->name, sh.host_node[order[k]], want);
    }
    kn_shapes_free(&sh);
    kn_free(order);
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(41);
    test_shape();
    test_constant();
    test_constant_of_shape();
    test_range();
    test_shape_arithmetic_graph();
    return kt_finish();
}
