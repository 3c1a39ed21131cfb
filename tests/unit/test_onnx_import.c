/* The ONNX importer: models made by tests/onnx/make_test_models.py (PyTorch's exporter and
 * onnx.helper; committed under tests/onnx/data), checked for structure after import, for results
 * against PyTorch / numpy outputs, for every error path, and against truncated and mutated copies
 * (nothing may crash; the suite also runs under ASan/UBSan). */
#include "testlib.h"

#include "ir/ir.h"
#include "onnx/onnx_import.h"

#include <stdlib.h>
#include <string.h>

#ifndef KILN_ONNX_TEST_DATA
#define KILN_ONNX_TEST_DATA "tests/onnx/data"
#endif

static char *path_of(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", KILN_ONNX_TEST_DATA, name);
    return p;
}

static kn_graph *G(kiln_graph *g) { return &g->g; }

static const kn_value *value(kiln_graph *g, const char *name) {
    int v = kn_graph_find_value(G(g), name);
    return v >= 0 ? &G(g)->values[v] : NULL;
}

/* The live node that produces `value_name`. */
static const kn_node *producer(kiln_graph *g, const char *value_name) {
    const kn_value *v = value(g, value_name);
    if (!v || v->producer < 0) return NULL;
    const kn_node *n = &G(g)->nodes[v->producer];
    return n->dead ? NULL : n;
}

static int count_ops(kiln_graph *g, kn_op op) {
    int c = 0;
    for (int i = 0; i < G(g)->n_nodes; i++) c += !G(g)->nodes[i].dead && G(g)->nodes[i].op == op;
    return c;
}

static const kn_host_tensor *const_input(kiln_graph *g, const kn_node *n, int slot) {
    if (!n || slot >= n->n_in || n->in[slot] < 0) return NULL;
    return G(g)->values[n->in[slot]].constant;
}

static int ints_equal(const kn_host_tensor *t, int n, const int64_t *want) {
    if (!t || t->dtype != KILN_I64 || kn_host_numel(t) != n) return 0;
    return memcmp(t->data, want, (size_t)n * sizeof(int64_t)) == 0;
}

/* ---- running a model on the CPU against expected outputs ------------------------------------- */

static kn_host_tensor *read_tensor(const char *name) {
    kn_host_tensor *t = NULL;
    KT_OK(kn_onnx_read_tensor_file(path_of(name), &t, NULL));
    return t;
}

/* Compiles g for the static shape of `x` (its only input), runs it, compares each output with the
 * expected tensors by tolerance ratio. */
static void run_and_compare(kiln_graph *g, const kn_host_tensor *x, int n_out, kn_host_tensor **want,
                            double rtol, double atol, const char *what) {
    const kn_value *in = &G(g)->values[G(g)->inputs[0]];
    kiln_input_profile p = {.name = in->name, .rank = x->rank};
    for (int d = 0; d < x->rank; d++) p.min[d] = p.opt[d] = p.max[d] = x->dims[d];
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    kiln_session *s = NULL;
    kiln_status st = kiln_compile(g, &cfg, &m);
    KT_CHECK(st == KILN_OK, "%s: compile: %s", what, kiln_last_error());
    if (st != KILN_OK) return;
    KT_OK(kiln_session_create(m, &s));
    kiln_tensor ti = {.data = x->data, .dtype = x->dtype, .rank = x->rank, .device = KILN_DEVICE_CPU};
    memcpy(ti.dims, x->dims, sizeof ti.dims);
    kiln_tensor outs[4] = {{0}};
    KT_CHECK(kiln_module_num_outputs(m) == n_out, "%s: %d outputs", what, kiln_module_num_outputs(m));
    st = s ? kiln_session_run(s, &ti, 1, outs, n_out) : KILN_ERR_INTERNAL;
    KT_CHECK(st == KILN_OK, "%s: run: %s", what, kiln_last_error());
    for (int k = 0; k < n_out && st == KILN_OK; k++) {
        const kn_host_tensor *w = want[k];
        int same = outs[k].dtype == KILN_F32 && outs[k].rank == w->rank;
        for (int d = 0; same && d < w->rank; d++) same = outs[k].dims[d] == w->dims[d];
        KT_CHECK(same, "%s: output %d has the wrong type or shape (rank %d)", what, k, outs[k].rank);
        if (!same) continue;
        int64_t n = kn_host_numel(w);
        double *ref = malloc((size_t)n * sizeof *ref);
        for (int64_t i = 0; i < n; i++) ref[i] = ((const float *)w->data)[i];
        double r = kt_max_tol_ratio(outs[k].data, ref, n, rtol, atol);
        KT_CHECK(r <= 1.0, "%s: output %d is off by %.3g x tolerance", what, k, r);
        free(ref);
    }
    kiln_session_free(s);
    kiln_module_free(m);
}

/* ---- models that import --------------------------------------------------------------------------- */

static void test_cnn_from_pytorch(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("cnn.onnx"), &g));
    if (!g) return;
    KT_CHECK(G(g)->n_inputs == 1 && G(g)->n_outputs == 1, "one input, one output");
    const kn_value *x = &G(g)->values[G(g)->inputs[0]];
    KT_CHECK(x->rank == 4 && x->dims[0].sym >= 0 && !strcmp(G(g)->syms[x->dims[0].sym].name, "N") &&
             x->dims[1].v == 3 && x->dims[2].v == 8, "input x is [N,3,8,8] with symbol N");
    KT_CHECK(G(g)->opset == 13, "opset %d", G(g)->opset);
    KT_CHECK(count_ops(g, KN_OP_Conv) == 2, "two convolutions");
    kn_host_tensor *in = read_tensor("cnn_input.pb"), *out = read_tensor("cnn_output.pb");
    if (in && out) run_and_compare(g, in, 1, &out, 1e-4, 1e-6, "cnn vs PyTorch");
    kn_host_tensor_free(in);
    kn_host_tensor_free(out);
    kiln_graph_free(g);
}

static void test_legacy_opset9(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("legacy9.onnx"), &g));
    if (!g) return;
    /* Upsample -> Resize(X, -, scales) with Upsample's index mapping */
    const kn_node *n = producer(g, "u");
    KT_CHECK(n && n->op == KN_OP_Resize && n->n_in == 3 && n->in[1] < 0 && const_input(g, n, 2),
             "Upsample becomes Resize with scales as input 2");
    if (n) {
        KT_CHECK(!strcmp(kn_attr_s(n, "coordinate_transformation_mode", ""), "asymmetric") &&
                 !strcmp(kn_attr_s(n, "nearest_mode", ""), "floor") && !strcmp(kn_attr_s(n, "mode", ""), "nearest"),
                 "Upsample's mapping: asymmetric, floor");
    }
    n = producer(g, "s");
    static const int64_t one_one[2] = {1, 1}, seven[2] = {7, 7}, axes23[2] = {2, 3};
    KT_CHECK(n && n->op == KN_OP_Slice && n->n_attrs == 0 && ints_equal(const_input(g, n, 1), 2, one_one) &&
             ints_equal(const_input(g, n, 2), 2, seven) && ints_equal(const_input(g, n, 3), 2, axes23),
             "Slice attributes become inputs");
    n = producer(g, "p");
    static const int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    const kn_host_tensor *pv = const_input(g, n, 2);
    KT_CHECK(n && ints_equal(const_input(g, n, 1), 8, pads) && !kn_node_attr(n, "pads") && !kn_node_attr(n, "value"),
             "Pad's pads and value become inputs");
    KT_CHECK(pv && pv->dtype == KILN_F32 && pv->rank == 0 && *(float *)pv->data == 0.5f, "Pad's value is an f32 scalar");
    n = producer(g, "c");
    const kn_host_tensor *lo = const_input(g, n, 1), *hi = const_input(g, n, 2);
    KT_CHECK(lo && hi && lo->rank == 0 && *(float *)lo->data == -0.2f && *(float *)hi->data == 0.9f &&
             !kn_node_attr(n, "min"), "Clip's min/max become scalar inputs");
    static const int64_t three[1] = {3}, zero[1] = {0}, split[2] = {3, 5};
    KT_CHECK(ints_equal(const_input(g, producer(g, "r"), 1), 1, three), "ReduceMean axes input");
    KT_CHECK(ints_equal(const_input(g, producer(g, "q"), 1), 1, three), "Squeeze axes input");
    KT_CHECK(ints_equal(const_input(g, producer(g, "q2"), 1), 1, zero), "Unsqueeze axes input");
    KT_CHECK(ints_equal(const_input(g, producer(g, "a"), 1), 2, split), "Split's split input");
    KT_CHECK(ints_equal(const_input(g, producer(g, "rs"), 1), 1, three), "ReduceSum axes input");
    n = producer(g, "d");
    KT_CHECK(n && n->op == KN_OP_Dropout && !kn_node_attr(n, "ratio"), "Dropout's ratio is dropped");
    /* Softmax(axis=2) of opset 9 on a rank-4 input: Flatten -> Softmax -> Reshape(Shape(x)) */
    n = producer(g, "sm");
    KT_CHECK(n && n->op == KN_OP_Reshape, "the coerced Softmax ends in a Reshape");
    KT_CHECK(count_ops(g, KN_OP_Flatten) == 1 && count_ops(g, KN_OP_Shape) == 1 && count_ops(g, KN_OP_Softmax) == 1,
             "Flatten, Shape and Softmax");
    kn_host_tensor *in = read_tensor("legacy9_input.pb");
    kn_host_tensor *out[2] = {read_tensor("legacy9_output_0.pb"), read_tensor("legacy9_output_1.pb")};
    if (in && out[0] && out[1]) run_and_compare(g, in, 2, out, 1e-5, 1e-6, "legacy9 vs numpy");
    kn_host_tensor_free(in);
    kn_host_tensor_free(out[0]);
    kn_host_tensor_free(out[1]);
    kiln_graph_free(g);
}

static void test_legacy_opset7(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("legacy7.onnx"), &g));
    if (!g) return;
    KT_CHECK(G(g)->n_inputs == 1, "W, an initializer listed as an input, is a constant (%d inputs)", G(g)->n_inputs);
    const kn_value *w = value(g, "W");
    KT_CHECK(w && w->constant && !(w->flags & KN_VALUE_INPUT), "W is a constant");
    const kn_node *bn = producer(g, "bn");
    KT_CHECK(bn && !kn_node_attr(bn, "spatial"), "BatchNormalization's spatial is dropped");
    const kn_node *up = producer(g, "u");
    const kn_host_tensor *sc = const_input(g, up, 2);
    KT_CHECK(sc && sc->dtype == KILN_F32 && kn_host_numel(sc) == 4 && ((float *)sc->data)[3] == 2.0f,
             "Upsample-7's scales attribute becomes input 2");
    /* Softmax with the default axis 1 on a rank-4 input is coerced to 2-D */
    KT_CHECK(producer(g, "y") && producer(g, "y")->op == KN_OP_Reshape, "coerced Softmax");
    kn_host_tensor *in = read_tensor("legacy7_input.pb"), *out = read_tensor("legacy7_output.pb");
    if (in && out) run_and_compare(g, in, 1, &out, 1e-5, 1e-6, "legacy7 vs numpy");
    kn_host_tensor_free(in);
    kn_host_tensor_free(out);
    kiln_graph_free(g);
}

static void test_legacy_opset7_more(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("legacy7b.onnx"), &g));
    if (!g) return;
    const kn_node *n = producer(g, "u");
    KT_CHECK(n && n->op == KN_OP_Resize && !strcmp(kn_attr_s(n, "mode", ""), "linear") &&
             !strcmp(kn_attr_s(n, "coordinate_transformation_mode", ""), "asymmetric"), "Upsample linear -> Resize");
    n = producer(g, "c");
    KT_CHECK(n && n->n_in == 3 && n->in[1] < 0 && const_input(g, n, 2), "Clip with only max: input 1 omitted");
    n = producer(g, "q");
    KT_CHECK(n && n->op == KN_OP_Squeeze && n->n_in == 1, "Squeeze without axes keeps one input");
    kn_host_tensor *in = read_tensor("legacy7b_input.pb");
    kn_host_tensor *out[2] = {read_tensor("legacy7b_output_0.pb"), read_tensor("legacy7b_output_1.pb")};
    if (in && out[0] && out[1]) run_and_compare(g, in, 2, out, 1e-5, 1e-6, "legacy7b vs numpy");
    kn_host_tensor_free(in);
    kn_host_tensor_free(out[0]);
    kn_host_tensor_free(out[1]);
    kiln_graph_free(g);
}

static void test_resize_10_and_11(void) {
    kiln_graph *g = NULL;
    kn_host_tensor *in = read_tensor("legacy10_input.pb");
    KT_OK(kiln_graph_load_onnx(path_of("legacy10.onnx"), &g));
    if (g) {
        const kn_node *n = producer(g, "n");
        KT_CHECK(n && n->n_in == 3 && n->in[1] < 0 && const_input(g, n, 2) &&
                 !strcmp(kn_attr_s(n, "nearest_mode", ""), "floor"), "Resize-10 -> (X, -, scales), floor");
        kn_host_tensor *out = read_tensor("legacy10_output.pb");
        if (in && out) run_and_compare(g, in, 1, &out, 1e-5, 1e-6, "Resize-10 vs numpy");
        kn_host_tensor_free(out);
        kiln_graph_free(g);
    }
    KT_OK(kiln_graph_load_onnx(path_of("legacy11.onnx"), &g));
    if (g) {
        const kn_node *n = producer(g, "r");
        KT_CHECK(n && n->n_in == 4 && n->in[1] < 0 && n->in[2] < 0 && const_input(g, n, 3),
                 "Resize-11: empty roi and scales become omitted inputs");
        KT_CHECK(count_ops(g, KN_OP_Flatten) == 0 && producer(g, "y") && producer(g, "y")->op == KN_OP_Softmax,
                 "Softmax-11 on its last axis is not rewritten");
        kn_host_tensor *out = read_tensor("legacy11_output.pb");
        if (in && out) run_and_compare(g, in, 1, &out, 1e-5, 1e-6, "Resize-11 + Softmax vs numpy");
        kn_host_tensor_free(out);
        kiln_graph_free(g);
    }
    kn_host_tensor_free(in);
}

static void test_constants(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("constants.onnx"), &g));
    if (!g) return;
    KT_CHECK(kiln_graph_num_nodes(g) == 5, "Constant nodes are not nodes (%d nodes)", kiln_graph_num_nodes(g));
    const kn_value *v = value(g, "c_tensor");
    KT_CHECK(v && v->constant && v->constant->dtype == KILN_F32 && v->constant->rank == 2 &&
             ((float *)v->constant->data)[1] == -2.0f, "value");
    v = value(g, "c_float");
    KT_CHECK(v && v->constant && v->constant->rank == 0 && *(float *)v->constant->data == 0.25f, "value_float");
    v = value(g, "c_floats");
    KT_CHECK(v && v->constant && v->constant->rank == 1 && ((float *)v->constant->data)[1] == 2.0f, "value_floats");
    v = value(g, "c_int");
    KT_CHECK(v && v->constant && v->constant->dtype == KILN_I64 && *(int64_t *)v->constant->data == 7, "value_int");
    v = value(g, "c_ints");
    KT_CHECK(v && v->constant && v->constant->dtype == KILN_I64 && ((int64_t *)v->constant->data)[1] == -4, "value_ints");
    v = value(g, "i");
    KT_CHECK(v && (v->flags & KN_VALUE_INPUT) && v->dims[0].sym >= 0 && !strcmp(G(g)->syms[v->dims[0].sym].name, "n"),
             "dim_param becomes a symbol");
    kiln_graph_free(g);
}

static void test_external_data(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("external/model.onnx"), &g));
    if (g) {
        const kn_value *w = value(g, "W");
        int ok = w && w->constant && kn_host_numel(w->constant) == 12;
        for (int i = 0; ok && i < 12; i++) ok = ((float *)w->constant->data)[i] == (float)i / 4 - 1;
        KT_CHECK(ok, "external weights read at offset 16");
        kiln_graph_free(g);
    }
    KT_FAILS(kiln_graph_load_onnx(path_of("external/escape.onnx"), &g), KILN_ERR_INVALID_ARGUMENT, "leaves the model's folder");
    KT_CHECK(g == NULL, "no graph on failure");
    KT_FAILS(kiln_graph_load_onnx(path_of("external/absolute.onnx"), &g), KILN_ERR_INVALID_ARGUMENT, "relative");
    KT_FAILS(kiln_graph_load_onnx(path_of("external/short.onnx"), &g), KILN_ERR_CORRUPT, "too few");
    /* from memory: external data needs a folder */
    void *data;
    size_t size;
    KT_OK(kn_onnx_read_file(path_of("external/model.onnx"), &data, &size));
    KT_FAILS(kiln_graph_load_onnx_memory(data, size, NULL, &g), KILN_ERR_NOT_FOUND, "from memory");
    KT_OK(kiln_graph_load_onnx_memory(data, size, path_of("external"), &g));
    kiln_graph_free(g);
    kn_free(data);
}

static void test_unsorted_nodes(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_load_onnx(path_of("unsorted.onnx"), &g));
    KT_CHECK(g && kiln_graph_num_nodes(g) == 2, "both nodes");
    kiln_graph_free(g);
}

/* ---- errors ------------------------------------------------------------------------------------- */

static void test_errors(void) {
    static const struct {
        const char *file;
        kiln_status st;
        const char *needle;
    } cases[] = {
        {"err_unsupported_ops.onnx", KILN_ERR_UNSUPPORTED, "unsupported ops: NonMaxSuppression (nms_1), TopK (topk_0, topk_3)"},
        {"err_domain.onnx", KILN_ERR_UNSUPPORTED, "domain 'com.microsoft': FusedGemm (fg)"},
        {"err_opset5.onnx", KILN_ERR_UNSUPPORTED, "opset 5"},
        {"err_opset30.onnx", KILN_ERR_UNSUPPORTED, "opset 30"},
        {"err_ir2.onnx", KILN_ERR_UNSUPPORTED, "IR version 2"},
        {"err_attr_type.onnx", KILN_ERR_INVALID_ARGUMENT, "Conv 'conv_bad': attribute 'strides' must be INTS, got FLOAT"},
        {"err_unknown_attr.onnx", KILN_ERR_UNSUPPORTED, "attribute 'alpha'"},
        {"err_shapes.onnx", KILN_ERR_SHAPE, "add_bad"},
        {"err_declared.onnx", KILN_ERR_SHAPE, "relu_decl"},
        {"err_sparse_const.onnx", KILN_ERR_UNSUPPORTED, "sparse_c"},
        {"err_string_const.onnx", KILN_ERR_UNSUPPORTED, "value_string"},
        {"err_undefined_input.onnx", KILN_ERR_NOT_FOUND, "relu_undef"},
        {"err_dup_output.onnx", KILN_ERR_INVALID_ARGUMENT, "'y' is the output of two nodes"},
        {"err_cycle.onnx", KILN_ERR_INVALID_ARGUMENT, "cycle"},
        {"err_input_type.onnx", KILN_ERR_UNSUPPORTED, "UINT16"},
        {"err_bn_spatial.onnx", KILN_ERR_UNSUPPORTED, "spatial = 0"},
        {"err_bn_outputs.onnx", KILN_ERR_UNSUPPORTED, "bn_stats"},
        {"does_not_exist.onnx", KILN_ERR_NOT_FOUND, "does_not_exist.onnx"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_graph *g = (kiln_graph *)1;
        KT_FAILS(kiln_graph_load_onnx(path_of(cases[i].file), &g), cases[i].st, cases[i].needle);
        KT_CHECK(g == NULL, "%s: *out is NULL after a failure", cases[i].file);
    }
    kiln_graph *g = NULL;
    static const char text[] = "this is not an ONNX model, just text\n";
    KT_FAILS(kiln_graph_load_onnx_memory(text, sizeof text - 1, NULL, &g), KILN_ERR_PARSE, "not an ONNX model");
    KT_FAILS(kiln_graph_load_onnx_memory(text, 0, NULL, &g), KILN_ERR_PARSE, "empty");
    KT_FAILS(kiln_graph_load_onnx(KILN_ONNX_TEST_DATA, &g), KILN_ERR_IO, "not a regular file");
    KT_FAILS(kiln_graph_load_onnx(NULL, &g), KILN_ERR_INVALID_ARGUMENT, "path");
}

/* ---- truncated and mutated models ----------------------------------------------------------------- */

static void test_truncated(void) {
    static const char *const files[] = {"cnn.onnx", "legacy9.onnx", "legacy7.onnx", "constants.onnx"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        void *data;
        size_t size;
        KT_OK(kn_onnx_read_file(path_of(files[f]), &data, &size));
        if (!data) continue;
        int ok = 0, silent = 0;
        for (size_t len = 0; len < size; len++) {
            kiln_graph *g = NULL;
            void *copy = malloc(len ? len : 1); /* an exact-size copy, so ASan sees overreads */
            memcpy(copy, data, len);
            kiln_status st = kiln_graph_load_onnx_memory(copy, len, NULL, &g);
            free(copy);
            if (st == KILN_OK) {
                ok++;
                kiln_graph_free(g);
            } else if (!kiln_last_error()[0]) {
                silent++;
            }
        }
        KT_CHECK(ok == 0, "%s: %d truncated copies imported", files[f], ok);
        KT_CHECK(silent == 0, "%s: %d failures without a message", files[f], silent);
        kn_free(data);
    }
}

static void test_mutations(void) {
    static const char *const files[] = {"cnn.onnx", "legacy9.onnx", "legacy7.onnx", "legacy7b.onnx",
                                        "legacy10.onnx", "legacy11.onnx", "constants.onnx",
                                        "err_unsupported_ops.onnx"};
    kt_seed(1234);
    int imported = 0, failed = 0, silent = 0;
    for (int iter = 0; iter < 2000; iter++) {
        void *data;
        size_t size;
        const char *file = files[iter % (int)(sizeof files / sizeof files[0])];
        if (kn_onnx_read_file(path_of(file), &data, &size) != KILN_OK) {
            KT_CHECK(0, "cannot read %s", file);
            return;
        }
        uint8_t *p = data;
        int edits = 1 + (int)(kt_rand_u64() % 4);
        for (int e = 0; e < edits && size > 0; e++) {
            size_t at = (size_t)(kt_rand_u64() % size);
            switch (kt_rand_u64() % 4) {
            case 0: p[at] ^= (uint8_t)(1u << (kt_rand_u64() % 8)); break; /* flip a bit */
            case 1: p[at] = (uint8_t)kt_rand_u64(); break;               /* a random byte */
            case 2: p[at] = (uint8_t)(kt_rand_u64() & 1 ? 0xff : 0x00); break;
            default: size = at; break;                                     /* truncate */
            }
        }
        void *copy = malloc(size ? size : 1);
        memcpy(copy, p, size);
        kiln_graph *g = NULL;
        kiln_status st = kiln_graph_load_onnx_memory(copy, size, NULL, &g);
        free(copy);
        kn_free(data);
        if (st == KILN_OK) {
            imported++;
            char *txt = NULL;
            if (kiln_graph_to_text(g, &txt) == KILN_OK) kiln_free(txt);
            kiln_graph_free(g);
        } else {
            failed++;
            silent += !kiln_last_error()[0] || g != NULL;
        }
    }
    KT_CHECK(silent == 0, "%d failures without a message (or with a graph)", silent);
    KT_CHECK(failed > 0, "mutations were refused (%d refused, %d imported)", failed, imported);
    printf("mutations: %d imported, %d refused\n", imported, failed);
}

/* ---- TensorProto files ------------------------------------------------------------------------------- */

static void test_tensor_files(void) {
    kn_host_tensor *t = NULL;
    char *name = NULL;
    KT_OK(kn_onnx_read_tensor_file(path_of("t_f16_int32data.pb"), &t, &name));
    KT_CHECK(t && t->dtype == KILN_F16 && kn_host_numel(t) == 3 && name && !strcmp(name, "h"), "f16 tensor named h");
    if (t && t->dtype == KILN_F16)
        KT_CHECK(kn_f16_to_f32(((uint16_t *)t->data)[1]) == -2.5f && kn_f16_to_f32(((uint16_t *)t->data)[2]) == 65504.0f,
                 "f16 bit patterns from int32_data");
    kn_host_tensor_free(t);
    kn_free(name);

    KT_OK(kn_onnx_read_tensor_file(path_of("t_bool_int32data.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_BOOL && t->rank == 2 && ((uint8_t *)t->data)[0] == 1 && ((uint8_t *)t->data)[1] == 0 &&
             ((uint8_t *)t->data)[3] == 1, "bool from int32_data");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_i8_int32data.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_I8 && ((int8_t *)t->data)[0] == -128 && ((int8_t *)t->data)[2] == 127, "int8");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_i64_int64data.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_I64 && ((int64_t *)t->data)[0] == -((int64_t)1 << 40), "int64");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_f64_doubledata.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_F64 && ((double *)t->data)[0] == 0.1, "double");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_f32_floatdata.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_F32 && t->rank == 2 && ((float *)t->data)[1] == 1.25f, "float_data");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_f32_raw.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_F32 && t->dims[1] == 3 && ((float *)t->data)[2] == 3.0f, "raw_data");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_scalar.pb"), &t, NULL));
    KT_CHECK(t && t->rank == 0 && *(float *)t->data == 42.0f, "scalar");
    kn_host_tensor_free(t);
    KT_OK(kn_onnx_read_tensor_file(path_of("t_bf16_raw.pb"), &t, NULL));
    KT_CHECK(t && t->dtype == KILN_BF16 && kn_bf16_to_f32(((uint16_t *)t->data)[1]) == -3.0f, "bf16 raw");
    kn_host_tensor_free(t);
    KT_FAILS(kn_onnx_read_tensor_file(path_of("t_bad_count.pb"), &t, NULL), KILN_ERR_PARSE, "float_data holds 2 values");
    KT_FAILS(kn_onnx_read_tensor_file(path_of("t_u16.pb"), &t, NULL), KILN_ERR_UNSUPPORTED, "UINT16");
    KT_FAILS(kn_onnx_read_tensor_file(path_of("nope.pb"), &t, NULL), KILN_ERR_NOT_FOUND, "nope.pb");
    KT_CHECK(t == NULL, "no tensor on failure");
    /* mutated tensors: no crash */
    void *data;
    size_t size;
    KT_OK(kn_onnx_read_file(path_of("t_f32_raw.pb"), &data, &size));
    int refused = 0;
    for (int iter = 0; iter < 500 && data; iter++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, data, size);
        copy[kt_rand_u64() % size] ^= (uint8_t)(1u << (kt_rand_u64() % 8));
        size_t len = kt_rand_u64() % 3 ? size : (size_t)(kt_rand_u64() % size);
        kn_host_tensor *m = NULL;
        kiln_status st = kn_onnx_parse_tensor(copy, len, NULL, &m, NULL);
        refused += st != KILN_OK;
        kn_host_tensor_free(m);
        free(copy);
    }
    KT_CHECK(refused > 0, "some mutated tensors are refused");
    kn_free(data);
}

/* Models shaped like the inputs fuzz_onnx found: each loads or is refused with a message. */
static void test_fuzz_regressions(void) {
    static const char *const files[] = {"fuzz_softmax_nameless.onnx", "fuzz_squeeze_noinputs.onnx",
                                        "fuzz_empty_string_attr.onnx"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        kiln_graph *g = NULL;
        kiln_status st = kiln_graph_load_onnx(path_of(files[i]), &g);
        KT_CHECK(st == KILN_OK ? g != NULL : g == NULL && kiln_last_error()[0] != 0,
                 "%s: %s with a message (%s)", files[i], kiln_status_name(st), kiln_last_error());
        kiln_graph_free(g);
    }
    /* the arity one must be refused, naming the node */
    kiln_graph *g = NULL;
    KT_FAILS(kiln_graph_load_onnx(path_of("fuzz_squeeze_noinputs.onnx"), &g), KILN_ERR_INVALID_ARGUMENT, "sq_empty");
}

int main(void) {
    test_tensor_files();
    test_errors();
    test_constants();
    test_external_data();
    test_unsorted_nodes();
    test_legacy_opset9();
    test_legacy_opset7();
    test_legacy_opset7_more();
    test_resize_10_and_11();
    test_cnn_from_pytorch();
    test_truncated();
    test_mutations();
    test_fuzz_regressions();
    return kt_finish();
}
