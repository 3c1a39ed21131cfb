/* Attribute checks and upgrades from older opsets into kiln's op semantics (the latest ONNX
 * definition at opset <= 21).
 *
 * What each upgrade does (also in docs/onnx.md):
 * - attributes that later opsets made inputs become constant int64 inputs, whatever the opset,
 *   whenever the attribute is present: Squeeze/Unsqueeze/ReduceMean/ReduceSum/ReduceMax/ReduceMin
 *   "axes", Split "split", Slice "starts"/"ends"/"axes", Pad "pads";
 * - Clip "min"/"max" and Pad "value" become scalar inputs of the data's element type; when that
 *   type is not known while importing, the conversion runs after shape inference;
 * - Softmax/LogSoftmax before opset 13 (axis default 1; the input is coerced to 2-D at the axis):
 *   when the input's rank is known (while importing, or else after shape inference) and the axis
 *   is the last one, the node only gets axis -1; otherwise it becomes
 *   Flatten(axis) -> Softmax(axis -1) -> Reshape(Shape(x));
 * - Upsample (opsets 7..9) and Resize-10 become Resize with scales as input 2,
 *   coordinate_transformation_mode "asymmetric" and, for nearest, nearest_mode "floor"
 *   (Upsample's out[i] = in[floor(i / scale)]); empty constant roi/scales/sizes of Resize-11/12
 *   become omitted inputs;
 * - Dropout: ratio/seed/is_test are dropped (inference is the identity);
 *   BatchNormalization: spatial (refused when 0), is_test, consumed_inputs and momentum are dropped,
 *   training_mode 1 is refused; Cast: saturate (which concerns float8 only) is dropped. */
#include "onnx_private.h"

/* ---- attribute table ------------------------------------------------------------------------------ */

/* For each op: its ONNX attributes over opsets 7..21 (and the later ones kiln reads), as
 * "name:type" with i INT, f FLOAT, s STRING, I INTS, F FLOATS, t TENSOR. */
static const struct {
    const char *op, *attrs;
} kn_onnx_attr_table[] = {
    {"Conv", "auto_pad:s dilations:I group:i kernel_shape:I pads:I strides:I"},
    {"ConvTranspose", "auto_pad:s dilations:I group:i kernel_shape:I output_padding:I output_shape:I pads:I strides:I"},
    {"BatchNormalization", "epsilon:f momentum:f training_mode:i spatial:i is_test:i consumed_inputs:I"},
    {"InstanceNormalization", "epsilon:f"},
    {"LayerNormalization", "axis:i epsilon:f stash_type:i"},
    {"LeakyRelu", "alpha:f"},
    {"Elu", "alpha:f"},
    {"Selu", "alpha:f gamma:f"},
    {"Clip", "min:f max:f"},
    {"HardSigmoid", "alpha:f beta:f"},
    {"Gelu", "approximate:s"},
    {"Mod", "fmod:i"},
    {"Softmax", "axis:i"},
    {"LogSoftmax", "axis:i"},
    {"MaxPool", "auto_pad:s ceil_mode:i dilations:I kernel_shape:I pads:I storage_order:i strides:I"},
    {"AveragePool", "auto_pad:s ceil_mode:i count_include_pad:i dilations:I kernel_shape:I pads:I strides:I"},
    {"Gemm", "alpha:f beta:f transA:i transB:i"},
    {"Flatten", "axis:i"},
    {"Reshape", "allowzero:i"},
    {"Transpose", "perm:I"},
    {"Concat", "axis:i"},
    {"Split", "axis:i split:I num_outputs:i"},
    {"Slice", "starts:I ends:I axes:I"},
    {"Squeeze", "axes:I"},
    {"Unsqueeze", "axes:I"},
    {"Gather", "axis:i"},
    {"Pad", "mode:s pads:I value:f"},
    {"Resize", "antialias:i axes:I coordinate_transformation_mode:s cubic_coeff_a:f exclude_outside:i "
               "extrapolation_value:f keep_aspect_ratio_policy:s mode:s nearest_mode:s"},
    {"Upsample", "mode:s scales:F"},
    {"Shape", "start:i end:i"},
    {"ConstantOfShape", "value:t"},
    {"Dropout", "ratio:f seed:i is_test:i"},
    {"Cast", "to:i saturate:i"},
    {"ReduceMean", "axes:I keepdims:i noop_with_empty_axes:i"},
    {"ReduceSum", "axes:I keepdims:i noop_with_empty_axes:i"},
    {"ReduceMax", "axes:I keepdims:i noop_with_empty_axes:i"},
    {"ReduceMin", "axes:I keepdims:i noop_with_empty_axes:i"},
};

static const char *kn_attr_type_word(kiln_attr_type t) {
    switch (t) {
    case KILN_ATTR_INT: return "INT";
    case KILN_ATTR_FLOAT: return "FLOAT";
    case KILN_ATTR_STRING: return "STRING";
    case KILN_ATTR_INTS: return "INTS";
    case KILN_ATTR_FLOATS: return "FLOATS";
    case KILN_ATTR_TENSOR: return "TENSOR";
    default: return "?";
    }
}

static kiln_attr_type kn_attr_code(char c) {
    switch (c) {
    case 'i': return KILN_ATTR_INT;
    case 'f': return KILN_ATTR_FLOAT;
    case 's': return KILN_ATTR_STRING;
    case 'I': return KILN_ATTR_INTS;
    case 'F': return KILN_ATTR_FLOATS;
    default: return KILN_ATTR_TENSOR;
    }
}

/* Finds `name` in a spec string; returns its type code char or 0. */
static char kn_spec_find(const char *spec, const char *name) {
    size_t len = strlen(name);
    for (const char *p = spec; *p;) {
        while (*p == ' ') p++;
        const char *colon = strchr(p, ':');
        if (!colon) break;
        if ((size_t)(colon - p) == len && !strncmp(p, name, len)) return colon[1];
        p = colon + 2;
    }
    return 0;
}

kiln_status kn_onnx_check_attrs(kn_onnx_ctx *c, int k, const char *onnx_op) {
    kn_node *n = &c->g->nodes[k];
    const char *spec = "";
    for (size_t i = 0; i < sizeof kn_onnx_attr_table / sizeof kn_onnx_attr_table[0]; i++)
        if (!strcmp(kn_onnx_attr_table[i].op, onnx_op)) spec = kn_onnx_attr_table[i].attrs;
    for (int i = 0; i < n->n_attrs; i++) {
        kn_attr *a = &n->attrs[i];
        char code = kn_spec_find(spec, a->name);
        if (!code)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute '%s' is not one kiln knows for %s",
                                 a->name, onnx_op);
        kiln_attr_type want = kn_attr_code(code);
        if (a->type == want) continue;
        if (want == KILN_ATTR_FLOAT && a->type == KILN_ATTR_INT) { /* a float written as an int */
            a->f = (float)a->i;
            a->type = KILN_ATTR_FLOAT;
            continue;
        }
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' must be %s, got %s", a->name,
                             kn_attr_type_word(want), kn_attr_type_word(a->type));
    }
    return KILN_OK;
}

/* ---- helpers -------------------------------------------------------------------------------------- */

static int kn_has_input(const kn_node *n, int slot) { return slot < n->n_in && n->in[slot] >= 0; }

/* Names of values the importer makes start with "kiln.", so that they do not take the name of a
 * model value defined further on (kn_graph_new_value makes names unique, but only against the
 * values that exist already). */
static kiln_status kn_const_name(kn_graph *g, int k, const char *what, char *buf, size_t cap) {
    snprintf(buf, cap, "kiln.%.160s.%s", g->nodes[k].name, what); /* short: unique suffixes must fit */
    return KILN_OK;
}

/* Moves the INTS attribute `attr` into a constant int64 input at `slot`. */
static kiln_status kn_ints_attr_to_input(kn_onnx_ctx *c, int k, const char *attr, int slot) {
    kn_graph *g = c->g;
    const kn_attr *a = kn_node_attr(&g->nodes[k], attr);
    if (!a) return KILN_OK;
    if (kn_has_input(&g->nodes[k], slot))
        return kn_node_error(&g->nodes[k], KILN_ERR_INVALID_ARGUMENT,
                             "has both the attribute '%s' and input %d", attr, slot);
    char name[300];
    kn_const_name(g, k, attr, name, sizeof name);
    int v;
    KN_TRY(kn_graph_new_const_i64(g, name, 1, a->ints, a->count, &v));
    KN_TRY(kn_onnx_set_input(g, k, slot, v));
    kn_onnx_del_attr(g, k, attr);
    return KILN_OK;
}

/* Moves the FLOAT attribute `attr` into a scalar input of type dt at `slot`. */
static kiln_status kn_float_attr_to_input(kn_onnx_ctx *c, int k, const char *attr, int slot, kiln_dtype dt) {
    kn_graph *g = c->g;
    const kn_attr *a = kn_node_attr(&g->nodes[k], attr);
    if (!a) return KILN_OK;
    if (kn_has_input(&g->nodes[k], slot))
        return kn_node_error(&g->nodes[k], KILN_ERR_INVALID_ARGUMENT,
                             "has both the attribute '%s' and input %d", attr, slot);
    char name[300];
    kn_const_name(g, k, attr, name, sizeof name);
    int v;
    KN_TRY(kn_graph_new_const_scalar(g, name, dt, (double)a->f, &v));
    KN_TRY(kn_onnx_set_input(g, k, slot, v));
    kn_onnx_del_attr(g, k, attr);
    return KILN_OK;
}

static kiln_status kn_set_attr_str(kn_graph *g, int k, const char *name, const char *v) {
    kiln_attr a = kiln_attr_string(name, v);
    return kn_node_set_attr(&g->nodes[k], &a);
}

/* Clip's min/max and Pad's value: scalars of the data's type. */
static kiln_status kn_upgrade_typed_node(kn_onnx_ctx *c, int k, int *done) {
    kn_graph *g = c->g;
    const kn_node *n = &g->nodes[k];
    *done = 0;
    if (n->n_in < 1 || n->in[0] < 0) return KILN_OK;
    kiln_dtype dt = g->values[n->in[0]].dtype;
    if (dt == KILN_DTYPE_INVALID) return KILN_OK;
    if (n->op == KN_OP_Clip) {
        KN_TRY(kn_float_attr_to_input(c, k, "min", 1, dt));
        KN_TRY(kn_float_attr_to_input(c, k, "max", 2, dt));
    } else if (n->op == KN_OP_Pad) {
        const kn_attr *a = kn_node_attr(&g->nodes[k], "value");
        if (a && a->f == 0.0f && !kn_has_input(&g->nodes[k], 2)) kn_onnx_del_attr(g, k, "value"); /* the default */
        else KN_TRY(kn_float_attr_to_input(c, k, "value", 2, dt));
    }
    *done = 1;
    return KILN_OK;
}

static kiln_status kn_upgrade_softmax_v1(kn_onnx_ctx *c, int k, int late);

static kiln_status kn_defer_typed(kn_onnx_ctx *c, int k) {
    int done;
    KN_TRY(kn_upgrade_typed_node(c, k, &done));
    if (done) return KILN_OK;
    KN_TRY(KN_GROW(c->fixups, c->cap_fixups, c->n_fixups + 1));
    c->fixups[c->n_fixups++] = k;
    return KILN_OK;
}

kiln_status kn_onnx_upgrade_typed(kn_onnx_ctx *c, int *changed) {
    *changed = 0;
    int n = c->n_fixups; /* the Softmax rewrite adds nodes, not fixups */
    for (int i = 0; i < n; i++) {
        int k = c->fixups[i], done = 1;
        if (c->g->nodes[k].op == KN_OP_Softmax || c->g->nodes[k].op == KN_OP_LogSoftmax)
            KN_TRY(kn_upgrade_softmax_v1(c, k, 1));
        else
            KN_TRY(kn_upgrade_typed_node(c, k, &done));
        *changed |= done;
    }
    return KILN_OK;
}

/* Softmax and LogSoftmax before opset 13: the input is coerced to 2-D [prod(d[:axis]), prod(d[axis:])]
 * and normalized along the second dim. */
static kiln_status kn_upgrade_softmax_v1(kn_onnx_ctx *c, int k, int late) {
    kn_graph *g = c->g;
    int64_t axis = kn_attr_i(&g->nodes[k], "axis", 1);
    int x = g->nodes[k].in[0];
    int rank = x >= 0 ? g->values[x].rank : -1;
    if (rank >= 0) {
        int64_t a = axis < 0 ? axis + rank : axis;
        if (rank == 0 || a == rank - 1) /* the same as the opset-13 form along the last axis */
            return kn_node_set_attr_int(&g->nodes[k], "axis", -1);
    } else if (!late) {
        /* decide after shape inference, which keeps the node's output shape either way */
        KN_TRY(kn_node_set_attr_int(&g->nodes[k], "axis", axis));
        KN_TRY(KN_GROW(c->fixups, c->cap_fixups, c->n_fixups + 1));
        c->fixups[c->n_fixups++] = k;
        return KILN_OK;
    }
    int y = g->nodes[k].out[0];
    char name[300];
    const char *base = g->nodes[k].name;
    int flat, two_d, shape, nk;
    snprintf(name, sizeof name, "kiln.%.160s/flatten", g->values[y].name);
    KN_TRY(kn_graph_new_value(g, name, &flat));
    snprintf(name, sizeof name, "kiln.%.160s/2d", g->values[y].name);
    KN_TRY(kn_graph_new_value(g, name, &two_d));
    snprintf(name, sizeof name, "kiln.%.160s/shape", g->values[y].name);
    KN_TRY(kn_graph_new_value(g, name, &shape));
    snprintf(name, sizeof name, "%s/flatten", base);
    KN_TRY(kn_onnx_new_node(c, KN_OP_Flatten, name, 1, &x, 1, &flat, &nk));
    KN_TRY(kn_node_set_attr_int(&g->nodes[nk], "axis", axis));
    snprintf(name, sizeof name, "%s/shape", base);
    KN_TRY(kn_onnx_new_node(c, KN_OP_Shape, name, 1, &x, 1, &shape, &nk));
    g->nodes[k].in[0] = flat;
    g->nodes[k].out[0] = two_d;
    g->values[two_d].producer = k;
    KN_TRY(kn_node_set_attr_int(&g->nodes[k], "axis", -1));
    int rin[2] = {two_d, shape};
    snprintf(name, sizeof name, "%s/reshape", base);
    KN_TRY(kn_onnx_new_node(c, KN_OP_Reshape, name, 2, rin, 1, &y, &nk));
    return KILN_OK;
}

/* Upsample and Resize-10: (X, scales) with Upsample's index mapping. */
static kiln_status kn_upgrade_upsample(kn_onnx_ctx *c, int k, int is_upsample) {
    kn_graph *g = c->g;
    kn_node *n = &g->nodes[k];
    const kn_attr *sa = kn_node_attr(n, "scales");
    if (sa) {
        if (kn_has_input(n, 1))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has both the attribute 'scales' and a scales input");
        char name[300];
        kn_const_name(g, k, "scales", name, sizeof name);
        int64_t dims[1] = {sa->count};
        kn_host_tensor *t = kn_host_tensor_new(KILN_F32, 1, dims);
        if (t && sa->count) memcpy(t->data, sa->floats, (size_t)sa->count * sizeof(float));
        int v;
        KN_TRY(kn_graph_new_constant(g, name, t, &v));
        KN_TRY(kn_onnx_set_input(g, k, 2, v));
        kn_onnx_del_attr(g, k, "scales");
    } else if (kn_has_input(n, 1)) {
        int s = n->in[1];
        n->in[1] = -1;
        KN_TRY(kn_onnx_set_input(g, k, 2, s));
    } else {
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "%s needs scales (an attribute or input 1)",
                             is_upsample ? "Upsample" : "Resize-10");
    }
    const char *mode = kn_attr_s(&g->nodes[k], "mode", "nearest");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "bilinear"))
        return kn_node_error(&g->nodes[k], KILN_ERR_UNSUPPORTED, "mode '%s' is not supported", mode);
    int nearest = !strcmp(mode, "nearest"); /* mode points into the attribute replaced next */
    KN_TRY(kn_set_attr_str(g, k, "mode", nearest ? "nearest" : "linear"));
    KN_TRY(kn_set_attr_str(g, k, "coordinate_transformation_mode", "asymmetric"));
    if (nearest) KN_TRY(kn_set_attr_str(g, k, "nearest_mode", "floor"));
    return KILN_OK;
}

kiln_status kn_onnx_upgrade(kn_onnx_ctx *c, int k, const char *onnx_op) {
    kn_graph *g = c->g;
    kn_node *n = &g->nodes[k];
    switch (n->op) {
    case KN_OP_Squeeze:
    case KN_OP_Unsqueeze:
    case KN_OP_ReduceMean:
    case KN_OP_ReduceSum:
    case KN_OP_ReduceMax:
    case KN_OP_ReduceMin:
        return kn_ints_attr_to_input(c, k, "axes", 1);
    case KN_OP_Split:
        return kn_ints_attr_to_input(c, k, "split", 1);
    case KN_OP_Slice:
        if (kn_node_attr(n, "starts") || kn_node_attr(n, "ends")) {
            if (!kn_node_attr(n, "starts") || !kn_node_attr(n, "ends"))
                return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs both 'starts' and 'ends'");
            KN_TRY(kn_ints_attr_to_input(c, k, "starts", 1));
            KN_TRY(kn_ints_attr_to_input(c, k, "ends", 2));
            KN_TRY(kn_ints_attr_to_input(c, k, "axes", 3));
        }
        return KILN_OK;
    case KN_OP_Pad:
        KN_TRY(kn_ints_attr_to_input(c, k, "pads", 1));
        if (kn_node_attr(&g->nodes[k], "value")) return kn_defer_typed(c, k);
        return KILN_OK;
    case KN_OP_Clip:
        if (kn_node_attr(n, "min") || kn_node_attr(n, "max")) return kn_defer_typed(c, k);
        return KILN_OK;
    case KN_OP_Softmax:
    case KN_OP_LogSoftmax:
        if (c->opset < 13 && n->n_in >= 1 && n->in[0] >= 0 && n->n_out >= 1 && n->out[0] >= 0)
            return kn_upgrade_softmax_v1(c, k, 0);
        return KILN_OK;
    case KN_OP_Resize:
        if (!strcmp(onnx_op, "Upsample")) return kn_upgrade_upsample(c, k, 1);
        if (c->opset < 11) return kn_upgrade_upsample(c, k, 0);
        for (int i = 1; i < 4 && i < g->nodes[k].n_in; i++) { /* empty constant roi/scales/sizes */
            int v = g->nodes[k].in[i];
            if (v >= 0 && g->values[v].constant && kn_host_numel(g->values[v].constant) == 0)
                KN_TRY(kn_onnx_set_input(g, k, i, -1));
        }
        return KILN_OK;
    case KN_OP_Dropout:
        kn_onnx_del_attr(g, k, "ratio");
        kn_onnx_del_attr(g, k, "seed");
        kn_onnx_del_attr(g, k, "is_test");
        return KILN_OK;
    case KN_OP_BatchNormalization:
        if (kn_attr_i(n, "spatial", 1) == 0)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "spatial = 0 (per-activation statistics) is not supported");
        if (kn_attr_i(n, "training_mode", 0) != 0)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "training_mode = 1 is not supported; kiln runs inference");
        kn_onnx_del_attr(g, k, "spatial");
        kn_onnx_del_attr(g, k, "is_test");
        kn_onnx_del_attr(g, k, "consumed_inputs");
        kn_onnx_del_attr(g, k, "momentum");
        kn_onnx_del_attr(g, k, "training_mode");
        return KILN_OK;
    case KN_OP_Cast:
        kn_onnx_del_attr(g, k, "saturate");
        return KILN_OK;
    default:
        return KILN_OK;
    }
}
