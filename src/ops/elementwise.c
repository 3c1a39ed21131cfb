/* Elementwise ops: unary math and activations, broadcasting binaries, variadic Min/Max/Sum/Mean,
 * comparisons, logic, Where, Cast, Clip, Identity, Dropout (inference form).
 * Each op is one row of a table: arity, flags, the element types it takes and its shape
 * function; the shape functions are shared by op class (unary, binary, variadic, ...). */
#include "ops.h"

/* ---- element type sets ----------------------------------------------------------------------- */

#define KN_T(d) (1u << (d))
enum {
    KN_TF = KN_T(KILN_F32) | KN_T(KILN_F16) | KN_T(KILN_BF16) | KN_T(KILN_F64),
    KN_TSI = KN_T(KILN_I64) | KN_T(KILN_I32) | KN_T(KILN_I8),
    KN_TI = KN_TSI | KN_T(KILN_U8),
    KN_TB = KN_T(KILN_BOOL),
    KN_TNUM = KN_TF | KN_TI,
    KN_TALL = KN_TNUM | KN_TB,
};

/* Element types each op takes for its data inputs (0: no check). */
static uint32_t kn_ew_types[KN_OP_COUNT];

static const char *kn_in_name(const kn_infer_ctx *c, int k) {
    const kn_node *n = c->node;
    if (c->g && k < n->n_in && n->in[k] >= 0 && n->in[k] < c->g->n_values && c->g->values[n->in[k]].name)
        return c->g->values[n->in[k]].name;
    return "?";
}

/* Fails with KILN_ERR_DTYPE unless input k's type is in `allowed`; the message lists the set. */
static kiln_status kn_expect_types(const kn_infer_ctx *c, int k, uint32_t allowed) {
    kiln_dtype t = c->in[k].dtype;
    if ((int)t > 0 && t < KILN_DTYPE_COUNT && (allowed & KN_T(t))) return KILN_OK;
    char list[128] = "";
    size_t len = 0;
    for (int d = 1; d < KILN_DTYPE_COUNT && len < sizeof list; d++)
        if (allowed & KN_T(d))
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    kiln_dtype_name((kiln_dtype)d));
    return kn_node_error(c->node, KILN_ERR_DTYPE, "input %d '%s' has element type %s, expected one of %s",
                         k, kn_in_name(c, k), kiln_dtype_name(t), list);
}

static kiln_status kn_expect_same_type(const kn_infer_ctx *c, int k, int j) {
    if (c->in[k].dtype == c->in[j].dtype) return KILN_OK;
    return kn_node_error(c->node, KILN_ERR_DTYPE,
                         "input %d '%s' (%s) and input %d '%s' (%s) must have the same element type", j,
                         kn_in_name(c, j), kiln_dtype_name(c->in[j].dtype), k, kn_in_name(c, k),
                         kiln_dtype_name(c->in[k].dtype));
}

static kiln_status kn_expect_scalar(const kn_infer_ctx *c, int k) {
    if (kn_tensor_numel(&c->in[k]) == 1 && c->in[k].rank <= 1) return KILN_OK;
    char s[96];
    return kn_node_error(c->node, KILN_ERR_SHAPE, "input %d '%s' must be a scalar, got shape %s", k,
                         kn_in_name(c, k), kn_dims_str(c->in[k].rank, c->in[k].dims, s, sizeof s));
}

static int kn_is_compare(kn_op op) { return op == KN_OP_Equal || op == KN_OP_Less || op == KN_OP_Greater; }

/* ---- shape functions --------------------------------------------------------------------------- */

/* One input, output of the same type and shape (math, activations, Not, Identity). */
static kiln_status kn_infer_unary(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[c->node->op]));
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

/* Two inputs of one type, numpy broadcasting; comparisons give bool. Pow's exponent may have
 * its own numeric type. */
static kiln_status kn_infer_binary(kn_infer_ctx *c) {
    kn_op op = c->node->op;
    const kn_tensor *a = &c->in[0], *b = &c->in[1];
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[op]));
    if (op == KN_OP_Pow) KN_TRY(kn_expect_types(c, 1, KN_TNUM));
    else KN_TRY(kn_expect_same_type(c, 1, 0));
    c->out[0].dtype = kn_is_compare(op) ? KILN_BOOL : a->dtype;
    return kn_broadcast_dims(c->node, a->rank, a->dims, b->rank, b->dims, &c->out[0].rank, c->out[0].dims);
}

/* Mod: a binary op whose attribute fmod picks the remainder's sign. fmod = 0 (integer mod, the
 * sign of the divisor, like Python's %) is defined for integers only, as ONNX says. */
static kiln_status kn_infer_mod(kn_infer_ctx *c) {
    KN_TRY(kn_infer_binary(c));
    if (kn_attr_i(c->node, "fmod", 0) == 0 && kn_dtype_is_float(c->in[0].dtype))
        return kn_node_error(c->node, KILN_ERR_INVALID_ARGUMENT,
                             "input 0 '%s' is %s, but fmod = 0 (integer mod) needs integer inputs; "
                             "set fmod = 1 for floating-point types",
                             kn_in_name(c, 0), kiln_dtype_name(c->in[0].dtype));
    return KILN_OK;
}

/* Min, Max, Sum, Mean: one or more inputs of one type, broadcast together. */
static kiln_status kn_infer_variadic(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[c->node->op]));
    kn_tensor *y = &c->out[0];
    kn_infer_same_as(c, 0);
    for (int k = 1; k < c->n_in; k++) {
        if (!kn_tensor_present(&c->in[k]))
            return kn_node_error(c->node, KILN_ERR_INVALID_ARGUMENT, "input %d is missing", k);
        KN_TRY(kn_expect_same_type(c, k, 0));
        int64_t d[KILN_MAX_RANK];
        int r;
        KN_TRY(kn_broadcast_dims(c->node, y->rank, y->dims, c->in[k].rank, c->in[k].dims, &r, d));
        y->rank = r;
        memcpy(y->dims, d, sizeof d);
    }
    return KILN_OK;
}

/* PRelu: slope broadcasts to X (unidirectionally); the output has X's shape. */
static kiln_status kn_infer_prelu(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[c->node->op]));
    KN_TRY(kn_expect_same_type(c, 1, 0));
    const kn_tensor *x = &c->in[0], *s = &c->in[1];
    int64_t d[KILN_MAX_RANK];
    int r;
    KN_TRY(kn_broadcast_dims(c->node, x->rank, x->dims, s->rank, s->dims, &r, d));
    if (r != x->rank || memcmp(d, x->dims, (size_t)r * sizeof d[0]) != 0) {
        char sx[96], ss[96];
        return kn_node_error(c->node, KILN_ERR_SHAPE, "slope '%s' of shape %s does not broadcast to X of shape %s",
                             kn_in_name(c, 1), kn_dims_str(s->rank, s->dims, ss, sizeof ss),
                             kn_dims_str(x->rank, x->dims, sx, sizeof sx));
    }
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

static kiln_status kn_infer_where(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, KN_TB));
    KN_TRY(kn_expect_types(c, 1, KN_TALL));
    KN_TRY(kn_expect_same_type(c, 2, 1));
    kn_tensor *y = &c->out[0];
    int64_t d[KILN_MAX_RANK];
    int r;
    KN_TRY(kn_broadcast_dims(c->node, c->in[0].rank, c->in[0].dims, c->in[1].rank, c->in[1].dims, &r, d));
    KN_TRY(kn_broadcast_dims(c->node, r, d, c->in[2].rank, c->in[2].dims, &y->rank, y->dims));
    y->dtype = c->in[1].dtype;
    return KILN_OK;
}

/* Clip: min and max are optional scalar inputs of X's type (opset >= 11); the opset-6 float
 * attributes are taken when the inputs are absent. */
static kiln_status kn_infer_clip(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[c->node->op]));
    for (int k = 1; k < c->n_in; k++) {
        if (!kn_tensor_present(&c->in[k])) continue;
        KN_TRY(kn_expect_same_type(c, k, 0));
        KN_TRY(kn_expect_scalar(c, k));
    }
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

/* ONNX TensorProto.DataType codes kiln takes, to kiln_dtype (0 where kiln has none). */
static kiln_dtype kn_onnx_dtype(int64_t code) {
    switch (code) {
    case 1: return KILN_F32;
    case 2: return KILN_U8;
    case 3: return KILN_I8;
    case 6: return KILN_I32;
    case 7: return KILN_I64;
    case 9: return KILN_BOOL;
    case 10: return KILN_F16;
    case 11: return KILN_F64;
    case 16: return KILN_BF16;
    default: return KILN_DTYPE_INVALID;
    }
}

static kiln_status kn_check_cast(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "to");
    if (!a || a->type != KILN_ATTR_INT)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs the int attribute 'to' (an ONNX element type code)");
    if (kn_onnx_dtype(a->i) == KILN_DTYPE_INVALID)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "attribute 'to' = %lld names an element type kiln does not take (it takes "
                             "1 float, 2 uint8, 3 int8, 6 int32, 7 int64, 9 bool, 10 float16, 11 double, "
                             "16 bfloat16)", (long long)a->i);
    return KILN_OK;
}

static kiln_status kn_infer_cast(kn_infer_ctx *c) {
    KN_TRY(kn_check_cast(c->g, c->node));
    KN_TRY(kn_expect_types(c, 0, KN_TALL));
    kn_infer_same_as(c, 0);
    c->out[0].dtype = kn_onnx_dtype(kn_attr_i(c->node, "to", 0));
    return KILN_OK;
}

/* Identity. The layout pass's conversions (kiln.to_layout) may also pad the channels with zeros
 * (kiln.pad_channels: the output's channel count, dim 1 of a 4-D value) and change a float type
 * (kiln.to_dtype, an ONNX type code: an input Cast the conversion took over). */
static kiln_status kn_infer_identity(kn_infer_ctx *c) {
    KN_TRY(kn_infer_unary(c));
    const kn_node *n = c->node;
    int64_t pad = kn_attr_i(n, "kiln.pad_channels", 0);
    if (pad) {
        if (c->in[0].rank != 4 || pad < c->in[0].dims[1])
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "kiln.pad_channels = %lld needs a 4-D input with at most that many channels",
                                 (long long)pad);
        c->out[0].dims[1] = pad;
    }
    if (kn_node_attr(n, "kiln.to_dtype")) {
        kiln_dtype t = kn_onnx_dtype(kn_attr_i(n, "kiln.to_dtype", 0));
        if (!kn_dtype_is_float(t) || !kn_dtype_is_float(c->in[0].dtype))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "kiln.to_dtype converts between float types only (input '%s' is %s)", kn_in_name(c, 0),
                                 kiln_dtype_name(c->in[0].dtype));
        c->out[0].dtype = t;
    }
    return KILN_OK;
}

/* Dropout at inference: output 0 is the input, the optional mask is all true. A training_mode
 * known to be true on the host is refused (kiln does not train), unless the ratio is known to
 * be 0, which makes training mode the identity too. */
static kiln_status kn_infer_dropout(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, 0, kn_ew_types[c->node->op]));
    if (c->n_in > 1 && kn_tensor_present(&c->in[1])) {
        KN_TRY(kn_expect_types(c, 1, KN_TF));
        KN_TRY(kn_expect_scalar(c, 1));
    }
    if (c->n_in > 2 && kn_tensor_present(&c->in[2])) {
        KN_TRY(kn_expect_types(c, 2, KN_TB));
        KN_TRY(kn_expect_scalar(c, 2));
        const kn_tensor *r = c->n_in > 1 ? &c->in[1] : NULL;
        int zero_ratio = r && kn_tensor_present(r) && r->host && kn_load_f64(r->host, r->dtype, 0) == 0;
        if (!c->in[2].host)
            return kn_node_error(c->node, KILN_ERR_UNSUPPORTED,
                                 "training_mode '%s' must be known before the run (a constant); kiln runs "
                                 "Dropout in inference mode only", kn_in_name(c, 2));
        if (*(const uint8_t *)c->in[2].host && !zero_ratio)
            return kn_node_error(c->node, KILN_ERR_UNSUPPORTED,
                                 "training_mode '%s' is true; kiln runs Dropout in inference mode only",
                                 kn_in_name(c, 2));
    }
    kn_infer_same_as(c, 0);
    if (c->n_out > 1) {
        c->out[1] = c->out[0];
        c->out[1].dtype = KILN_BOOL;
    }
    return KILN_OK;
}

/* ---- attribute checks -------------------------------------------------------------------------- */

static kiln_status kn_check_gelu(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "approximate");
    if (!a) return KILN_OK;
    if (a->type != KILN_ATTR_STRING || (strcmp(a->s, "none") != 0 && strcmp(a->s, "tanh") != 0))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                             "attribute 'approximate' must be \"none\" or \"tanh\", got %s%s%s",
                             a->type == KILN_ATTR_STRING ? "\"" : "",
                             a->type == KILN_ATTR_STRING ? a->s : "a non-string",
                             a->type == KILN_ATTR_STRING ? "\"" : "");
    return KILN_OK;
}

static kiln_status kn_check_mod(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "fmod");
    if (a && (a->type != KILN_ATTR_INT || (a->i != 0 && a->i != 1)))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'fmod' must be the int 0 or 1");
    return KILN_OK;
}

/* Float attributes (alpha, beta, gamma, min, max) must be numbers when present. */
static kiln_status kn_check_float_attrs(const kn_graph *g, const kn_node *n) {
    static const char *const names[] = {"alpha", "beta", "gamma", "min", "max"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const kn_attr *a = kn_node_attr(n, names[i]);
        if (a && a->type != KILN_ATTR_FLOAT && a->type != KILN_ATTR_INT)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' must be a float", names[i]);
    }
    return KILN_OK;
}

/* ---- the table ----------------------------------------------------------------------------------- */

enum { KN_PE = KN_OPF_PURE | KN_OPF_ELEMENTWISE, KN_PEH = KN_PE | KN_OPF_HOST_EVAL };

typedef struct kn_ew_row {
    kn_op op;
    int min_in, max_in, min_out, max_out;
    uint32_t flags, types;
    kiln_status (*check)(const kn_graph *g, const kn_node *n);
    kiln_status (*infer)(kn_infer_ctx *c);
} kn_ew_row;

#define KN_UNARY(name, flags, types, check) {KN_OP_##name, 1, 1, 1, 1, flags, types, check, kn_infer_unary}
#define KN_BINARY(name, flags, types) {KN_OP_##name, 2, 2, 1, 1, flags, types, NULL, kn_infer_binary}
#define KN_VARIADIC(name, flags, types) {KN_OP_##name, 1, 32, 1, 1, flags, types, NULL, kn_infer_variadic}

static const kn_ew_row kn_ew_rows[] = {
    KN_UNARY(Relu, KN_PE, KN_TF | KN_TSI, NULL),
    KN_UNARY(LeakyRelu, KN_PE, KN_TF, kn_check_float_attrs),
    KN_UNARY(Elu, KN_PE, KN_TF, kn_check_float_attrs),
    KN_UNARY(Selu, KN_PE, KN_TF, kn_check_float_attrs),
    KN_UNARY(HardSigmoid, KN_PE, KN_TF, kn_check_float_attrs),
    KN_UNARY(HardSwish, KN_PE, KN_TF, NULL),
    KN_UNARY(Sigmoid, KN_PE, KN_TF, NULL),
    KN_UNARY(Tanh, KN_PE, KN_TF, NULL),
    KN_UNARY(Erf, KN_PE, KN_TF, NULL),
    KN_UNARY(Gelu, KN_PE, KN_TF, kn_check_gelu),
    KN_UNARY(Softplus, KN_PE, KN_TF, NULL),
    KN_UNARY(Mish, KN_PE, KN_TF, NULL),
    KN_UNARY(Sqrt, KN_PE, KN_TF, NULL),
    KN_UNARY(Reciprocal, KN_PE, KN_TF, NULL),
    KN_UNARY(Exp, KN_PE, KN_TF, NULL),
    KN_UNARY(Log, KN_PE, KN_TF, NULL),
    KN_UNARY(Floor, KN_PE, KN_TF, NULL),
    KN_UNARY(Ceil, KN_PE, KN_TF, NULL),
    KN_UNARY(Neg, KN_PEH, KN_TF | KN_TSI, NULL),
    KN_UNARY(Abs, KN_PEH, KN_TNUM, NULL),
    KN_UNARY(Not, KN_PEH, KN_TB, NULL),
    {KN_OP_Identity, 1, 1, 1, 1, KN_PEH, KN_TALL, NULL, kn_infer_identity},
    KN_BINARY(Add, KN_PEH, KN_TNUM),
    KN_BINARY(Sub, KN_PEH, KN_TNUM),
    KN_BINARY(Mul, KN_PEH, KN_TNUM),
    KN_BINARY(Div, KN_PEH, KN_TNUM),
    KN_BINARY(Pow, KN_PE, KN_TF | KN_T(KILN_I32) | KN_T(KILN_I64)),
    {KN_OP_Mod, 2, 2, 1, 1, KN_PEH, KN_TNUM, kn_check_mod, kn_infer_mod},
    KN_BINARY(Equal, KN_PEH, KN_TALL),
    KN_BINARY(Less, KN_PEH, KN_TNUM),
    KN_BINARY(Greater, KN_PEH, KN_TNUM),
    KN_BINARY(And, KN_PEH, KN_TB),
    KN_VARIADIC(Min, KN_PEH, KN_TNUM),
    KN_VARIADIC(Max, KN_PEH, KN_TNUM),
    KN_VARIADIC(Sum, KN_PEH, KN_TNUM),
    KN_VARIADIC(Mean, KN_PE, KN_TF),
    {KN_OP_PRelu, 2, 2, 1, 1, KN_PE, KN_TF | KN_TSI, NULL, kn_infer_prelu},
    {KN_OP_Where, 3, 3, 1, 1, KN_PEH, KN_TALL, NULL, kn_infer_where},
    {KN_OP_Clip, 1, 3, 1, 1, KN_PE, KN_TNUM, kn_check_float_attrs, kn_infer_clip},
    {KN_OP_Cast, 1, 1, 1, 1, KN_PEH, KN_TALL, kn_check_cast, kn_infer_cast},
    /* Dropout: not ELEMENTWISE (it has a second output); PURE at inference */
    {KN_OP_Dropout, 1, 3, 1, 2, KN_OPF_PURE, KN_TF, NULL, kn_infer_dropout},
};

void kn_ops_register_elementwise(kn_op_def *t) {
    for (size_t i = 0; i < sizeof kn_ew_rows / sizeof kn_ew_rows[0]; i++) {
        const kn_ew_row *r = &kn_ew_rows[i];
        /* Dropout's ratio and training_mode decide what it computes: read them on the host */
        uint32_t host = r->op == KN_OP_Dropout ? 0x6u : 0u;
        t[r->op] = (kn_op_def){kn_op_name(r->op), r->min_in, r->max_in, r->min_out, r->max_out, host,
                               r->flags, r->check, r->infer};
        kn_ew_types[r->op] = r->types;
    }
}
