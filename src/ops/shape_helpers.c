/* Helpers shared by the ops' shape functions. */
#include "ops.h"

kiln_status kn_broadcast_dims(const kn_node *n, int ra, const int64_t *da, int rb,
                              const int64_t *db, int *rank, int64_t *dims) {
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        int64_t a = i < r - ra ? 1 : da[i - (r - ra)];
        int64_t b = i < r - rb ? 1 : db[i - (r - rb)];
        if (a != b && a != 1 && b != 1) {
            char sa[96], sb[96];
            return kn_node_error(n, KILN_ERR_SHAPE,
                                 "shapes %s and %s do not broadcast (dim %d: %lld vs %lld)",
                                 kn_dims_str(ra, da, sa, sizeof sa), kn_dims_str(rb, db, sb, sizeof sb),
                                 i, (long long)a, (long long)b);
        }
        dims[i] = a == 1 ? b : a;
    }
    *rank = r;
    return KILN_OK;
}

kiln_status kn_host_ints(const kn_node *n, const kn_tensor *t, int input_index, int64_t *out,
                         int cap, int *count) {
    if (!t->host)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED,
                             "input %d must be known before the run (a constant or computed from "
                             "shapes); a data-dependent value is not supported",
                             input_index);
    if (!kn_dtype_is_int(t->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "input %d must be an integer tensor, got %s",
                             input_index, kiln_dtype_name(t->dtype));
    int64_t k = kn_tensor_numel(t);
    if (k > cap)
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d has %lld elements, at most %d allowed",
                             input_index, (long long)k, cap);
    for (int64_t i = 0; i < k; i++) out[i] = (int64_t)kn_load_f64(t->host, t->dtype, i);
    if (t->dtype == KILN_I64) memcpy(out, t->host, (size_t)k * 8); /* exact for large values */
    *count = (int)k;
    return KILN_OK;
}

kiln_status kn_norm_axis(const kn_node *n, int64_t axis, int rank, int *out) {
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank ? rank : 1))
        return kn_node_error(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                             (long long)axis, rank);
    *out = (int)a;
    return KILN_OK;
}

kiln_status kn_expect_float(const kn_node *n, const kn_tensor *t, const char *what) {
    if (!kn_dtype_is_float(t->dtype))
        return kn_node_error(n, KILN_ERR_DTYPE, "%s must be a float tensor, got %s", what,
                             kiln_dtype_name(t->dtype));
    return KILN_OK;
}

void kn_infer_same_as(kn_infer_ctx *ctx, int k) {
    ctx->out[0].dtype = ctx->in[k].dtype;
    ctx->out[0].rank = ctx->in[k].rank;
    memcpy(ctx->out[0].dims, ctx->in[k].dims, sizeof ctx->out[0].dims);
}
