/* Elementwise ops: unary math and activations, broadcasting binaries, comparisons, logic,
 * Where, Cast, Clip. */
#include "ops.h"

static kiln_status kn_infer_unary_float(kn_infer_ctx *c) {
    KN_TRY(kn_expect_float(c->node, &c->in[0], "input 0"));
    kn_infer_same_as(c, 0);
    return KILN_OK;
}

static kiln_status kn_infer_binary(kn_infer_ctx *c) {
    const kn_tensor *a = &c->in[0], *b = &c->in[1];
    if (a->dtype != b->dtype)
        return kn_node_error(c->node, KILN_ERR_DTYPE, "inputs have different element types (%s and %s)",
                             kiln_dtype_name(a->dtype), kiln_dtype_name(b->dtype));
    c->out[0].dtype = a->dtype;
    return kn_broadcast_dims(c->node, a->rank, a->dims, b->rank, b->dims, &c->out[0].rank, c->out[0].dims);
}

void kn_ops_register_elementwise(kn_op_def *t) {
    t[KN_OP_Relu] = (kn_op_def){"Relu", 1, 1, 1, 1, 0, KN_OPF_ELEMENTWISE | KN_OPF_PURE, NULL, kn_infer_unary_float};
    t[KN_OP_Add] = (kn_op_def){"Add", 2, 2, 1, 1, 0, KN_OPF_ELEMENTWISE | KN_OPF_PURE | KN_OPF_HOST_EVAL, NULL, kn_infer_binary};
}
