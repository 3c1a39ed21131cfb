/* Reductions over axes (ReduceMean, ReduceSum, ReduceMax, ReduceMin) and over one axis
 * (Softmax, LogSoftmax, opset >= 13 semantics: the single `axis`, default -1). */
#include "ops.h"

#define KN_T(d) (1u << (d))
enum {
    KN_TF = KN_T(KILN_F32) | KN_T(KILN_F16) | KN_T(KILN_BF16) | KN_T(KILN_F64),
    KN_TNUM = KN_TF | KN_T(KILN_I64) | KN_T(KILN_I32) | KN_T(KILN_I8) | KN_T(KILN_U8),
};

kiln_status kn_reduce_mask(const kn_node *n, const kn_tensor *axes, int rank, uint32_t *mask, int *noop) {
    int64_t buf[KILN_MAX_RANK + 1];
    const int64_t *ax = buf;
    int count = 0;
    if (axes && kn_tensor_present(axes)) {
        if (axes->rank > 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (axes) must be 1-D, got rank %d", axes->rank);
        KN_TRY(kn_host_ints(n, axes, 1, buf, KILN_MAX_RANK + 1, &count));
    } else {
        count = kn_attr_ints(n, "axes", &ax);
    }
    *mask = 0;
    *noop = 0;
    if (count == 0) {
        if (kn_attr_i(n, "noop_with_empty_axes", 0)) *noop = 1;
        else *mask = rank ? (1u << rank) - 1 : 0;
        return KILN_OK;
    }
    for (int i = 0; i < count; i++) {
        int a;
        KN_TRY(kn_norm_axis(n, ax[i], rank, &a));
        if (a >= rank) /* kn_norm_axis lets axis 0 through for a scalar */
            return kn_node_error(n, KILN_ERR_SHAPE, "axis %lld is out of range for a scalar input", (long long)ax[i]);
        if (*mask & (1u << a))
            return kn_node_error(n, KILN_ERR_SHAPE, "axis %lld is listed twice", (long long)ax[i]);
        *mask |= 1u << a;
    }
    return KILN_OK;
}

static kiln_status kn_expect_types(const kn_infer_ctx *c, uint32_t allowed, const char *want) {
    kiln_dtype t = c->in[0].dtype;
    if ((int)t > 0 && t < KILN_DTYPE_COUNT && (allowed & KN_T(t))) return KILN_OK;
    const kn_node *n = c->node;
    const char *name = c->g && n->in[0] >= 0 ? c->g->values[n->in[0]].name : "?";
    return kn_node_error(n, KILN_ERR_DTYPE, "input 0 '%s' has element type %s, expected %s", name,
                         kiln_dtype_name(t), want);
}

static kiln_status kn_check_reduce(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "axes");
    if (a && a->type != KILN_ATTR_INTS)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'axes' must be a list of ints");
    static const char *const flags[] = {"keepdims", "noop_with_empty_axes"};
    for (int i = 0; i < 2; i++) {
        a = kn_node_attr(n, flags[i]);
        if (a && (a->type != KILN_ATTR_INT || (a->i != 0 && a->i != 1)))
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' must be 0 or 1", flags[i]);
    }
    return KILN_OK;
}

static kiln_status kn_infer_reduce(kn_infer_ctx *c) {
    kn_op op = c->node->op;
    if (op == KN_OP_ReduceMax || op == KN_OP_ReduceMin)
        KN_TRY(kn_expect_types(c, KN_TNUM | KN_T(KILN_BOOL), "a number or bool"));
    else
        KN_TRY(kn_expect_types(c, KN_TNUM, "a number (float or integer)"));
    const kn_tensor *x = &c->in[0];
    uint32_t mask;
    int noop;
    KN_TRY(kn_reduce_mask(c->node, c->n_in > 1 ? &c->in[1] : NULL, x->rank, &mask, &noop));
    kn_infer_same_as(c, 0);
    if (noop) return KILN_OK;
    int keep = (int)kn_attr_i(c->node, "keepdims", 1), r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!(mask & (1u << i))) c->out[0].dims[r++] = x->dims[i];
        else if (keep) c->out[0].dims[r++] = 1;
    }
    c->out[0].rank = r;
    return KILN_OK;
}

static kiln_status kn_check_softmax(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "axis");
    if (a && a->type != KILN_ATTR_INT)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'axis' must be an int");
    return KILN_OK;
}

static kiln_status kn_infer_softmax(kn_infer_ctx *c) {
    KN_TRY(kn_expect_types(c, KN_TF, "a float (f32, f16, bf16, f64)"));
    int axis;
    if (c->in[0].rank == 0)
        return kn_node_error(c->node, KILN_ERR_SHAPE, "input 0 must have rank >= 1, got a scalar");
    KN_TRY(kn_norm_axis(c->node, kn_attr_i(c->node, "axis", -1), c->in[0].rank, &axis));
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

void kn_ops_register_reduce(kn_op_def *t) {
    static const kn_op reduce[] = {KN_OP_ReduceMean, KN_OP_ReduceSum, KN_OP_ReduceMax, KN_OP_ReduceMin};
    for (int i = 0; i < 4; i++)
        t[reduce[i]] = (kn_op_def){kn_op_name(reduce[i]), 1, 2, 1, 1, 1u << 1,
                                   KN_OPF_PURE | KN_OPF_HOST_EVAL, kn_check_reduce, kn_infer_reduce};
    t[KN_OP_Softmax] = (kn_op_def){"Softmax", 1, 1, 1, 1, 0, KN_OPF_PURE, kn_check_softmax, kn_infer_softmax};
    t[KN_OP_LogSoftmax] = (kn_op_def){"LogSoftmax", 1, 1, 1, 1, 0, KN_OPF_PURE, kn_check_softmax, kn_infer_softmax};
}
