/* Graph-level precision lowering for FP16/BF16: float32 activations and constants become
 * f16/bf16 inside the graph, with Cast nodes at the graph inputs (f32 -> low) and outputs
 * (low -> f32), so the module's I/O keeps the model's element types. Integer, bool and f64 values
 * (shapes, indices) are left alone. The parameters and statistics of BatchNormalization,
 * LayerNormalization and InstanceNormalization stay f32 (their kernels read them as they are and
 * compute in f32; Softmax has none and computes in f32 too), as do Resize's roi and scales (read
 * on the host). FP32 and TF32 change nothing: TF32 is a math mode of the engine, not a storage type. */
#include "passes.h"

/* ONNX element type codes, for Cast's "to". */
enum { KN_ONNX_FLOAT = 1, KN_ONNX_FLOAT16 = 10, KN_ONNX_BFLOAT16 = 16 };

/* Input slot k of n reads an f32 tensor that must stay f32. */
static int kn_keeps_f32(const kn_node *n, int k) {
    switch (n->op) {
    case KN_OP_BatchNormalization:
    case KN_OP_InstanceNormalization: return k >= 1;
    case KN_OP_LayerNormalization: return k == 1 || k == 2; /* input 3 (the fused residual) is data */
    case KN_OP_Resize: return k == 1 || k == 2;
    default: return 0;
    }
}

/* Replaces v by `to` in the inputs of live nodes (not in the graph's output list); slots that
 * must stay f32 are skipped when skip_keep is set. */
static void kn_redirect(kn_graph *g, int v, int to, int skip_keep) {
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v && !(skip_keep && kn_keeps_f32(n, k))) n->in[k] = to;
    }
}

static kn_host_tensor *kn_converted(const kn_host_tensor *t, kiln_dtype to) {
    kn_host_tensor *c = kn_host_tensor_new(to, t->rank, t->dims);
    if (c) kn_convert(t->data, t->dtype, c->data, to, kn_host_numel(t));
    return c;
}

static kiln_status kn_add_cast(kn_graph *g, int from, int to, int64_t code, const char *name) {
    int node;
    KN_TRY(kn_graph_new_node(g, KN_OP_Cast, name, 1, &from, 1, &to, &node));
    return kn_node_set_attr_int(&g->nodes[node], "to", code);
}

/* Constants: converted in place when every reader takes the low type, else a low copy serves the
 * readers that do. */
static kiln_status kn_lower_constants(kn_graph *g, kiln_dtype lo, int *count) {
    int n_values = g->n_values; /* copies made here are already low */
    for (int v = 0; v < n_values; v++) {
        const kn_value *val = &g->values[v];
        if (!val->constant || val->constant->dtype != KILN_F32 || (val->flags & KN_VALUE_INPUT)) continue;
        int low_uses = 0, keep_uses = kn_pass_is_output(g, v);
        for (int i = 0; i < g->n_nodes; i++) {
            const kn_node *n = &g->nodes[i];
            if (n->dead) continue;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == v) {
                    if (kn_keeps_f32(n, k)) keep_uses++;
                    else low_uses++;
                }
        }
        if (!low_uses) continue;
        kn_host_tensor *c = kn_converted(val->constant, lo);
        if (!c) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory lowering constants");
        if (!keep_uses) {
            kn_value_set_constant(&g->values[v], c);
        } else {
            char name[256];
            snprintf(name, sizeof name, "%s.%s", g->values[v].name, kiln_dtype_name(lo));
            int nv;
            KN_TRY(kn_pass_add_const(g, name, c, &nv));
            kn_redirect(g, v, nv, 1);
        }
        (*count)++;
    }
    return KILN_OK;
}

/* Nodes that make f32 out of nothing: Cast(to=float), Constant, ConstantOfShape. */
static kiln_status kn_lower_sources(kn_graph *g, kiln_dtype lo, int64_t code) {
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (n->dead || n->n_out < 1 || n->out[0] < 0) continue;
        if (n->op == KN_OP_Cast) {
            /* a Cast to f32 that names a graph output already gives the output its type */
            if (kn_attr_i(n, "to", 0) == KN_ONNX_FLOAT && !kn_pass_is_output(g, n->out[0]))
                KN_TRY(kn_node_set_attr_int(n, "to", code));
            continue;
        }
        if (n->op != KN_OP_Constant && n->op != KN_OP_ConstantOfShape) continue;
        const kn_attr *a = kn_node_attr(n, "value");
        if (a && a->type == KILN_ATTR_TENSOR && a->tensor && a->tensor->dtype == KILN_F32) {
            kn_host_tensor *c = kn_converted(a->tensor, lo);
            if (!c) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory lowering constants");
            kn_attr *w = (kn_attr *)a;
            kn_host_tensor_free(w->tensor);
            w->tensor = c;
            continue;
        }
        if (a) continue;
        /* value_float(s) of Constant; ConstantOfShape's default, an f32 zero */
        const kn_attr *f1 = kn_node_attr(n, "value_float"), *fs = kn_node_attr(n, "value_floats");
        if (n->op == KN_OP_Constant && !f1 && !fs) continue;
        int64_t count = fs ? fs->count : 1;
        uint16_t buf[1];
        uint16_t *data = count > 1 ? kn_malloc((size_t)count * sizeof(uint16_t)) : buf;
        if (!data) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory lowering constants");
        for (int64_t k = 0; k < count; k++) {
            float x = fs ? fs->floats[k] : f1 ? f1->f : 0.0f;
            data[k] = lo == KILN_F16 ? kn_f32_to_f16(x) : kn_f32_to_bf16(x);
        }
        kiln_tensor t = {.data = data, .dtype = lo, .rank = fs || !f1 ? 1 : 0, .dims = {count}};
        kiln_attr na = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &t};
        kiln_status st = kn_node_set_attr(n, &na);
        if (data != buf) kn_free(data);
        KN_TRY(st);
        kn_pass_remove_attr(n, "value_float");
        kn_pass_remove_attr(n, "value_floats");
    }
    return KILN_OK;
}

kiln_status kn_lower_precision(kn_graph *g, kiln_precision p) {
    if (p != KILN_PRECISION_FP16 && p != KILN_PRECISION_BF16) return KILN_OK;
    kiln_dtype lo = p == KILN_PRECISION_FP16 ? KILN_F16 : KILN_BF16;
    int64_t code = p == KILN_PRECISION_FP16 ? KN_ONNX_FLOAT16 : KN_ONNX_BFLOAT16;
    for (int k = 0; k < g->n_outputs; k++) {
        const kn_value *v = &g->values[g->outputs[k]];
        if (v->dtype == KILN_DTYPE_INVALID)
            return kn_error(KILN_ERR_UNSUPPORTED,
                            "%s lowering: the element type of output '%s' is not known before the build "
                            "(static shape inference could not run at the profile's bounds)",
                            kiln_dtype_name(lo), v->name);
    }
    int consts = 0, in_casts = 0, out_casts = 0;
    KN_TRY(kn_lower_constants(g, lo, &consts));
    KN_TRY(kn_lower_sources(g, lo, code));
    /* graph inputs: one Cast each, read by every node that reads the data (Shape needs no Cast) */
    for (int k = 0; k < g->n_inputs; k++) {
        int x = g->inputs[k];
        if (g->values[x].dtype != KILN_F32 || g->values[x].constant) continue;
        int data_uses = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            const kn_node *n = &g->nodes[i];
            if (n->dead || n->op == KN_OP_Shape) continue;
            for (int s = 0; s < n->n_in; s++) data_uses += n->in[s] == x && !kn_keeps_f32(n, s);
        }
        if (!data_uses) continue;
        char name[256];
        snprintf(name, sizeof name, "%s.%s", g->values[x].name, kiln_dtype_name(lo));
        int xl;
        KN_TRY(kn_graph_new_value(g, name, &xl));
        for (int i = 0; i < g->n_nodes; i++) {
            kn_node *n = &g->nodes[i];
            if (n->dead || n->op == KN_OP_Shape) continue;
            for (int s = 0; s < n->n_in; s++)
                if (n->in[s] == x && !kn_keeps_f32(n, s)) n->in[s] = xl;
        }
        snprintf(name, sizeof name, "%s.cast_in", g->values[x].name);
        KN_TRY(kn_add_cast(g, x, xl, code, name));
        in_casts++;
    }
    /* graph outputs: the producer writes a low value, a Cast gives the output back its f32 */
    for (int k = 0; k < g->n_outputs; k++) {
        int y = g->outputs[k];
        const kn_value *yv = &g->values[y];
        int prod = kn_pass_producer(g, y);
        if (yv->dtype != KILN_F32 || yv->constant || (yv->flags & KN_VALUE_INPUT) || prod < 0) continue;
        const kn_node *pn = &g->nodes[prod];
        if (pn->op == KN_OP_Cast && kn_attr_i(pn, "to", 0) == KN_ONNX_FLOAT) continue;
        char name[256];
        snprintf(name, sizeof name, "%s.%s", yv->name, kiln_dtype_name(lo));
        int yl;
        KN_TRY(kn_graph_new_value(g, name, &yl));
        int slot = 0;
        while (g->nodes[prod].out[slot] != y) slot++;
        kn_pass_take_output(g, prod, slot, yl);
        kn_redirect(g, y, yl, 0);
        snprintf(name, sizeof name, "%s.cast_out", g->values[y].name);
        KN_TRY(kn_add_cast(g, yl, y, KN_ONNX_FLOAT, name));
        out_casts++;
    }
    KN_VERBOSE("lower_precision: %s storage inside the graph: %d constant%s converted, %d input Cast%s, %d output Cast%s",
               kiln_dtype_name(lo), consts, consts == 1 ? "" : "s", in_casts, in_casts == 1 ? "" : "s", out_casts,
               out_casts == 1 ? "" : "s");
    return kn_graph_infer_static(g);
}
