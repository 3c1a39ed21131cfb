/* Shape, layout and data-movement ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat,
 * Split, Gather, Expand, Tile, Shape, Constant, ConstantOfShape, Range (Identity and Dropout are
 * with the elementwise ops).
 * Slice and Pad live in tensor_window.c, Resize in tensor_resize.c. Semantics follow the latest
 * ONNX definition at opset <= 21; where it is cheap the older attribute forms are taken too
 * (Squeeze/Unsqueeze "axes", Split "split", Slice/Pad attributes). Inputs that shape the output
 * (shapes, axes, pads, repeats) are host inputs: known before the run and read with
 * kn_host_ints. */
#include "tensor.h"

#include <math.h>

#define KN_DIMS(t, buf) kn_dims_str((t)->rank, (t)->dims, buf, sizeof buf)

/* The dims of ints[0..k) as "5x-1" (for messages that quote a requested shape). */
static const char *kn_ints_str(int k, const int64_t *v, char *buf, size_t cap) {
    if (k == 0) { snprintf(buf, cap, "scalar"); return buf; }
    return kn_dims_str(k, v, buf, cap);
}

/* Host-known 1-D (or scalar) integer input k, at most `cap` entries. */
static kiln_status kn_host_list(const kn_node *n, const kn_tensor *t, int k, const char *what,
                                int64_t *out, int cap, int *count) {
    if (t->rank > 1)
        return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) must be 1-D, got shape %s", k, what,
                             kn_dims_str(t->rank, t->dims, (char[96]){0}, 96));
    return kn_host_ints(n, t, k, out, cap, count);
}

/* axes from input k when present, else the old "axes" attribute; *have = 0 when neither. */
static kiln_status kn_axes_input_or_attr(const kn_node *n, const kn_tensor *in, int n_in, int k,
                                         int64_t *axes, int *count, int *have) {
    *have = 0;
    *count = 0;
    if (n_in > k && kn_tensor_present(&in[k])) {
        KN_TRY(kn_host_list(n, &in[k], k, "axes", axes, KILN_MAX_RANK, count));
        *have = 1;
        return KILN_OK;
    }
    const int64_t *a;
    int c = kn_attr_ints(n, "axes", &a);
    if (kn_node_attr(n, "axes")) {
        if (c > KILN_MAX_RANK)
            return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axes' has %d entries, at most %d allowed", c, KILN_MAX_RANK);
        memcpy(axes, a, (size_t)c * sizeof *a);
        *count = c;
        *have = 1;
    }
    return KILN_OK;
}

/* ---- Flatten, Reshape ------------------------------------------------------------------------- */

static kiln_status kn_infer_flatten(kn_infer_ctx *c) {
    const kn_tensor *x = &c->in[0];
    int64_t axis = kn_attr_i(c->node, "axis", 1);
    if (axis < -x->rank || axis > x->rank)
        return kn_node_error(c->node, KILN_ERR_SHAPE,
                             "attribute 'axis' = %lld is out of range [%d, %d] for input 0 of shape %s",
                             (long long)axis, -x->rank, x->rank, KN_DIMS(x, (char[96]){0}));
    if (axis < 0) axis += x->rank;
    c->out[0].dtype = x->dtype;
    c->out[0].rank = 2;
    c->out[0].dims[0] = kn_numel((int)axis, x->dims);
    c->out[0].dims[1] = kn_numel(x->rank - (int)axis, x->dims + axis);
    return KILN_OK;
}

static kiln_status kn_infer_reshape(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    int64_t shape[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    int k;
    KN_TRY(kn_host_list(n, &c->in[1], 1, "shape", shape, KILN_MAX_RANK, &k));
    int allowzero = kn_attr_i(n, "allowzero", 0) != 0;
    int infer = -1, has_zero = 0;
    int64_t known = 1, total = kn_tensor_numel(x);
    char xs[96], ss[96];
    for (int i = 0; i < k; i++) {
        int64_t v = shape[i];
        if (v == -1) {
            if (infer >= 0)
                return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (shape) %s has more than one -1 (entries %d and %d)",
                                     kn_ints_str(k, shape, ss, sizeof ss), infer, i);
            infer = i;
            continue;
        }
        if (v < -1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (shape) %s has entry %d = %lld, expected >= -1",
                                 kn_ints_str(k, shape, ss, sizeof ss), i, (long long)v);
        if (v == 0 && !allowzero) {
            if (i >= x->rank)
                return kn_node_error(n, KILN_ERR_SHAPE,
                                     "input 1 (shape) %s has a 0 at entry %d, which copies a dim of input 0, but input 0 (%s) has rank %d",
                                     kn_ints_str(k, shape, ss, sizeof ss), i, KN_DIMS(x, xs), x->rank);
            v = x->dims[i];
        } else if (v == 0) {
            has_zero = 1;
        }
        dims[i] = v;
        known *= v;
    }
    if (infer >= 0) {
        if (has_zero)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (shape) %s has both 0 and -1 while allowzero=1",
                                 kn_ints_str(k, shape, ss, sizeof ss));
        if (known == 0 || total % known != 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "cannot reshape %s (%lld elements) into %s",
                                 KN_DIMS(x, xs), (long long)total, kn_ints_str(k, shape, ss, sizeof ss));
        dims[infer] = total / known;
    } else if (known != total) {
        return kn_node_error(n, KILN_ERR_SHAPE, "cannot reshape %s (%lld elements) into %s",
                             KN_DIMS(x, xs), (long long)total, kn_ints_str(k, shape, ss, sizeof ss));
    }
    c->out[0].dtype = x->dtype;
    c->out[0].rank = k;
    memcpy(c->out[0].dims, dims, (size_t)k * sizeof dims[0]);
    return KILN_OK;
}

/* ---- Transpose -------------------------------------------------------------------------------- */

static kiln_status kn_check_transpose(const kn_graph *g, const kn_node *n) {
    const int64_t *perm;
    int k = kn_attr_ints(n, "perm", &perm);
    if (k > KILN_MAX_RANK)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute 'perm' has %d entries, at most %d allowed", k, KILN_MAX_RANK);
    unsigned seen = 0;
    for (int i = 0; i < k; i++) {
        if (perm[i] < 0 || perm[i] >= k || (seen >> perm[i] & 1u)) {
            char ps[96];
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT,
                                 "attribute 'perm' = [%s] is not a permutation of 0..%d",
                                 kn_dims_str(k, perm, ps, sizeof ps), k - 1);
        }
        seen |= 1u << perm[i];
    }
    return KILN_OK;
}

static kiln_status kn_infer_transpose(kn_infer_ctx *c) {
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_check_transpose(c->g, c->node));
    const int64_t *perm;
    int k = kn_attr_ints(c->node, "perm", &perm);
    if (kn_node_attr(c->node, "perm") && k != x->rank)
        return kn_node_error(c->node, KILN_ERR_SHAPE, "attribute 'perm' has %d entries, expected %d (the rank of input 0, %s)",
                             k, x->rank, KN_DIMS(x, (char[96]){0}));
    c->out[0].dtype = x->dtype;
    c->out[0].rank = x->rank;
    for (int i = 0; i < x->rank; i++)
        c->out[0].dims[i] = x->dims[kn_node_attr(c->node, "perm") ? perm[i] : x->rank - 1 - i];
    return KILN_OK;
}

/* ---- Squeeze, Unsqueeze ----------------------------------------------------------------------- */

static kiln_status kn_infer_squeeze(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    int64_t axes[KILN_MAX_RANK];
    int k, have;
    KN_TRY(kn_axes_input_or_attr(n, c->in, c->n_in, 1, axes, &k, &have));
    unsigned drop = 0;
    char xs[96];
    if (!have || k == 0) { /* no axes (or an empty list, as onnxruntime reads it): every dim of 1 */
        for (int i = 0; i < x->rank; i++)
            if (x->dims[i] == 1) drop |= 1u << i;
    }
    for (int i = 0; i < k; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + x->rank : axes[i];
        if (a < 0 || a >= x->rank)
            return kn_node_error(n, KILN_ERR_SHAPE, "axes entry %d = %lld is out of range for input 0 of shape %s",
                                 i, (long long)axes[i], KN_DIMS(x, xs));
        if (drop >> a & 1u)
            return kn_node_error(n, KILN_ERR_SHAPE, "axes lists axis %lld twice", (long long)a);
        if (x->dims[a] != 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "cannot squeeze axis %lld of size %lld (input 0 has shape %s)",
                                 (long long)a, (long long)x->dims[a], KN_DIMS(x, xs));
        drop |= 1u << a;
    }
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(drop >> i & 1u)) c->out[0].dims[r++] = x->dims[i];
    c->out[0].rank = r;
    c->out[0].dtype = x->dtype;
    return KILN_OK;
}

static kiln_status kn_infer_unsqueeze(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    int64_t axes[KILN_MAX_RANK];
    int k, have;
    KN_TRY(kn_axes_input_or_attr(n, c->in, c->n_in, 1, axes, &k, &have));
    if (!have) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs input 1 (axes)");
    int r = x->rank + k;
    if (r > KILN_MAX_RANK)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "the output would have rank %d (input rank %d + %d axes), at most %d allowed",
                             r, x->rank, k, KILN_MAX_RANK);
    unsigned add = 0;
    for (int i = 0; i < k; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r)
            return kn_node_error(n, KILN_ERR_SHAPE, "axes entry %d = %lld is out of range for an output of rank %d",
                                 i, (long long)axes[i], r);
        if (add >> a & 1u) return kn_node_error(n, KILN_ERR_SHAPE, "axes lists axis %lld twice", (long long)a);
        add |= 1u << a;
    }
    for (int i = 0, j = 0; i < r; i++) c->out[0].dims[i] = (add >> i & 1u) ? 1 : x->dims[j++];
    c->out[0].rank = r;
    c->out[0].dtype = x->dtype;
    return KILN_OK;
}

/* ---- Concat, Split ---------------------------------------------------------------------------- */

static kiln_status kn_check_concat(const kn_graph *g, const kn_node *n) {
    if (!kn_node_attr(n, "axis")) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'axis' is required");
    return KILN_OK;
}

static kiln_status kn_infer_concat(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    KN_TRY(kn_check_concat(c->g, n));
    const kn_tensor *x0 = &c->in[0];
    char s0[96], si[96];
    for (int i = 0; i < c->n_in; i++)
        if (!kn_tensor_present(&c->in[i])) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "input %d is missing", i);
    if (x0->rank == 0) return kn_node_error(n, KILN_ERR_SHAPE, "input 0 is a scalar; Concat needs rank >= 1");
    int64_t axis_attr = kn_attr_i(n, "axis", 0);
    if (axis_attr < -x0->rank || axis_attr >= x0->rank)
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axis' = %lld is out of range for inputs of rank %d",
                             (long long)axis_attr, x0->rank);
    int axis = (int)(axis_attr < 0 ? axis_attr + x0->rank : axis_attr);
    int64_t sum = 0;
    for (int i = 0; i < c->n_in; i++) {
        const kn_tensor *t = &c->in[i];
        if (t->dtype != x0->dtype)
            return kn_node_error(n, KILN_ERR_DTYPE, "input %d has element type %s, input 0 has %s", i,
                                 kiln_dtype_name(t->dtype), kiln_dtype_name(x0->dtype));
        if (t->rank != x0->rank)
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d has shape %s (rank %d), input 0 has shape %s (rank %d)",
                                 i, KN_DIMS(t, si), t->rank, KN_DIMS(x0, s0), x0->rank);
        for (int d = 0; d < t->rank; d++)
            if (d != axis && t->dims[d] != x0->dims[d])
                return kn_node_error(n, KILN_ERR_SHAPE, "input %d has shape %s, input 0 has shape %s: they must match except on axis %d",
                                     i, KN_DIMS(t, si), KN_DIMS(x0, s0), axis);
        sum += t->dims[axis];
    }
    kn_infer_same_as(c, 0);
    c->out[0].dims[axis] = sum;
    return KILN_OK;
}

static kiln_status kn_check_split(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "num_outputs");
    if (a && a->i != n->n_out)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'num_outputs' = %lld, but the node has %d outputs",
                             (long long)a->i, n->n_out);
    return KILN_OK;
}

static kiln_status kn_infer_split(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    KN_TRY(kn_check_split(c->g, n));
    if (x->rank == 0) return kn_node_error(n, KILN_ERR_SHAPE, "input 0 is a scalar; Split needs rank >= 1");
    int64_t a = kn_attr_i(n, "axis", 0);
    char xs[96];
    if (a < -x->rank || a >= x->rank)
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axis' = %lld is out of range for input 0 of shape %s",
                             (long long)a, KN_DIMS(x, xs));
    int axis = (int)(a < 0 ? a + x->rank : a);
    int64_t dim = x->dims[axis], sizes[64];
    int k = c->n_out;
    if (k > 64) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "has %d outputs, at most 64 allowed", k);
    const int64_t *attr;
    int na = kn_attr_ints(n, "split", &attr);
    /* an empty split input means "not given" (some exporters write one) */
    int have_in = c->n_in > 1 && kn_tensor_present(&c->in[1]) && kn_tensor_numel(&c->in[1]) > 0;
    if (have_in || kn_node_attr(n, "split")) {
        int cnt;
        const char *what = have_in ? "input 1 (split)" : "attribute 'split'";
        if (have_in) {
            KN_TRY(kn_host_list(n, &c->in[1], 1, "split", sizes, 64, &cnt));
        } else {
            if (na > 64) return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute 'split' has %d entries, at most 64 allowed", na);
            memcpy(sizes, attr, (size_t)na * sizeof *attr);
            cnt = na;
        }
        if (cnt != k)
            return kn_node_error(n, KILN_ERR_SHAPE, "%s has %d entries, but the node has %d outputs", what, cnt, k);
        int64_t sum = 0;
        for (int i = 0; i < k; i++) {
            if (sizes[i] < 0)
                return kn_node_error(n, KILN_ERR_SHAPE, "%s entry %d = %lld is negative", what, i, (long long)sizes[i]);
            sum += sizes[i];
        }
        if (sum != dim)
            return kn_node_error(n, KILN_ERR_SHAPE, "%s sums to %lld, but axis %d of input 0 (%s) has %lld",
                                 what, (long long)sum, axis, KN_DIMS(x, xs), (long long)dim);
    } else if (kn_node_attr(n, "num_outputs")) {
        int64_t chunk = (dim + k - 1) / k, last = dim - chunk * (k - 1);
        if (last < 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "cannot split axis %d of size %lld into %d outputs of %lld (input 0 has shape %s)",
                                 axis, (long long)dim, k, (long long)chunk, KN_DIMS(x, xs));
        for (int i = 0; i < k; i++) sizes[i] = i == k - 1 ? last : chunk;
    } else {
        if (dim % k != 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "axis %d of size %lld does not split evenly into %d outputs (input 0 has shape %s)",
                                 axis, (long long)dim, k, KN_DIMS(x, xs));
        for (int i = 0; i < k; i++) sizes[i] = dim / k;
    }
    for (int i = 0; i < k; i++) {
        c->out[i] = (kn_tensor){.dtype = x->dtype, .rank = x->rank};
        memcpy(c->out[i].dims, x->dims, sizeof x->dims);
        c->out[i].dims[axis] = sizes[i];
    }
    return KILN_OK;
}

/* ---- Gather, Expand, Tile --------------------------------------------------------------------- */

static kiln_status kn_infer_gather(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0], *idx = &c->in[1];
    char xs[96];
    if (idx->dtype != KILN_I64 && idx->dtype != KILN_I32)
        return kn_node_error(n, KILN_ERR_DTYPE, "input 1 (indices) must be i32 or i64, got %s", kiln_dtype_name(idx->dtype));
    if (x->rank == 0) return kn_node_error(n, KILN_ERR_SHAPE, "input 0 is a scalar; Gather needs rank >= 1");
    int64_t a = kn_attr_i(n, "axis", 0);
    if (a < -x->rank || a >= x->rank)
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'axis' = %lld is out of range for input 0 of shape %s",
                             (long long)a, KN_DIMS(x, xs));
    int axis = (int)(a < 0 ? a + x->rank : a);
    int r = x->rank - 1 + idx->rank;
    if (r > KILN_MAX_RANK)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "the output would have rank %d, at most %d allowed", r, KILN_MAX_RANK);
    /* indices known on the host are checked now; others at run time */
    if (idx->host) {
        int64_t nidx = kn_tensor_numel(idx), dim = x->dims[axis];
        for (int64_t i = 0; i < nidx; i++) {
            int64_t v = idx->dtype == KILN_I64 ? ((const int64_t *)idx->host)[i] : ((const int32_t *)idx->host)[i];
            if (v < -dim || v >= dim)
                return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (indices) entry %lld = %lld is out of range for axis %d of size %lld",
                                     (long long)i, (long long)v, axis, (long long)dim);
        }
    }
    kn_tensor *o = &c->out[0];
    o->dtype = x->dtype;
    o->rank = r;
    int j = 0;
    for (int i = 0; i < axis; i++) o->dims[j++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) o->dims[j++] = idx->dims[i];
    for (int i = axis + 1; i < x->rank; i++) o->dims[j++] = x->dims[i];
    return KILN_OK;
}

static kiln_status kn_infer_expand(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    int64_t shape[KILN_MAX_RANK];
    int k;
    KN_TRY(kn_host_list(n, &c->in[1], 1, "shape", shape, KILN_MAX_RANK, &k));
    for (int i = 0; i < k; i++)
        if (shape[i] < 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (shape) entry %d = %lld is negative", i, (long long)shape[i]);
    c->out[0].dtype = x->dtype;
    return kn_broadcast_dims(n, x->rank, x->dims, k, shape, &c->out[0].rank, c->out[0].dims);
}

static kiln_status kn_infer_tile(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    const kn_tensor *x = &c->in[0];
    int64_t rep[KILN_MAX_RANK];
    int k;
    KN_TRY(kn_host_list(n, &c->in[1], 1, "repeats", rep, KILN_MAX_RANK, &k));
    if (k != x->rank)
        return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (repeats) has %d entries, expected %d (the rank of input 0, %s)",
                             k, x->rank, KN_DIMS(x, (char[96]){0}));
    kn_infer_same_as(c, 0);
    for (int i = 0; i < k; i++) {
        if (rep[i] < 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 1 (repeats) entry %d = %lld is negative", i, (long long)rep[i]);
        c->out[0].dims[i] *= rep[i];
    }
    return KILN_OK;
}

/* ---- Shape, Constant, ConstantOfShape, Range ---------------------------------------------------- */

void kn_shape_bounds(const kn_node *n, int rank, int *start, int *end) {
    int64_t s = kn_attr_i(n, "start", 0), e = kn_attr_i(n, "end", rank);
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *start = (int)s;
    *end = (int)(e > s ? e : s);
}

static kiln_status kn_infer_shape(kn_infer_ctx *c) {
    int s, e;
    kn_shape_bounds(c->node, c->in[0].rank, &s, &e);
    c->out[0].dtype = KILN_I64;
    c->out[0].rank = 1;
    c->out[0].dims[0] = e - s;
    return KILN_OK;
}

static const char *const kn_constant_attrs[] = {"value", "value_float", "value_floats", "value_int",
                                                "value_ints", "value_string", "value_strings", "sparse_value"};

static kiln_status kn_check_constant(const kn_graph *g, const kn_node *n) {
    const char *which = NULL;
    for (size_t i = 0; i < sizeof kn_constant_attrs / sizeof kn_constant_attrs[0]; i++) {
        if (!kn_node_attr(n, kn_constant_attrs[i])) continue;
        if (which)
            return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "has both attribute '%s' and '%s'; exactly one value is allowed",
                                 which, kn_constant_attrs[i]);
        which = kn_constant_attrs[i];
    }
    if (!which)
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "needs one of the attributes value, value_float(s), value_int(s)");
    const kn_attr *a = kn_node_attr(n, which);
    if (strncmp(which, "value_string", 12) == 0 || strcmp(which, "sparse_value") == 0)
        return kn_node_error(n, KILN_ERR_UNSUPPORTED, "attribute '%s' is not supported (kiln has no string or sparse tensors)", which);
    kiln_attr_type want = strcmp(which, "value") == 0 ? KILN_ATTR_TENSOR
                        : strcmp(which, "value_float") == 0 ? KILN_ATTR_FLOAT
                        : strcmp(which, "value_floats") == 0 ? KILN_ATTR_FLOATS
                        : strcmp(which, "value_int") == 0 ? KILN_ATTR_INT : KILN_ATTR_INTS;
    if (a->type != want || (want == KILN_ATTR_TENSOR && !a->tensor))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute '%s' has the wrong type", which);
    return KILN_OK;
}

static kiln_status kn_infer_constant(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    KN_TRY(kn_check_constant(c->g, n));
    kn_tensor *o = &c->out[0];
    const kn_attr *a;
    if ((a = kn_node_attr(n, "value"))) {
        o->dtype = a->tensor->dtype;
        o->rank = a->tensor->rank;
        memcpy(o->dims, a->tensor->dims, sizeof o->dims);
    } else if ((a = kn_node_attr(n, "value_float")) || (a = kn_node_attr(n, "value_int"))) {
        o->dtype = a->type == KILN_ATTR_FLOAT ? KILN_F32 : KILN_I64;
        o->rank = 0;
    } else {
        a = kn_node_attr(n, "value_floats");
        if (!a) a = kn_node_attr(n, "value_ints");
        o->dtype = a->type == KILN_ATTR_FLOATS ? KILN_F32 : KILN_I64;
        o->rank = 1;
        o->dims[0] = a->count;
    }
    return KILN_OK;
}

static kiln_status kn_check_constant_of_shape(const kn_graph *g, const kn_node *n) {
    const kn_attr *a = kn_node_attr(n, "value");
    if (a && (a->type != KILN_ATTR_TENSOR || !a->tensor || kn_host_numel(a->tensor) != 1))
        return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "attribute 'value' must be a tensor of one element");
    return KILN_OK;
}

static kiln_status kn_infer_constant_of_shape(kn_infer_ctx *c) {
    const kn_node *n = c->node;
    KN_TRY(kn_check_constant_of_shape(c->g, n));
    int64_t shape[KILN_MAX_RANK];
    int k;
    KN_TRY(kn_host_list(n, &c->in[0], 0, "shape", shape, KILN_MAX_RANK, &k));
    for (int i = 0; i < k; i++)
        if (shape[i] < 0)
            return kn_node_error(n, KILN_ERR_SHAPE, "input 0 (shape) entry %d = %lld is negative", i, (long long)shape[i]);
    const kn_attr *a = kn_node_attr(n, "value");
    c->out[0].dtype = a ? a->tensor->dtype : KILN_F32;
    c->out[0].rank = k;
    memcpy(c->out[0].dims, shape, (size_t)k * sizeof shape[0]);
    return KILN_OK;
}

kiln_status kn_range_count(const kn_node *n, const kn_tensor *in, int64_t *count) {
    static const char *const names[3] = {"start", "limit", "delta"};
    kiln_dtype t = in[0].dtype;
    for (int i = 0; i < 3; i++) {
        if (!in[i].host)
            return kn_node_error(n, KILN_ERR_UNSUPPORTED, "input %d (%s) must be known before the run (a constant or computed from shapes)", i, names[i]);
        if (in[i].dtype != t)
            return kn_node_error(n, KILN_ERR_DTYPE, "input %d (%s) has element type %s, input 0 (start) has %s", i, names[i],
                                 kiln_dtype_name(in[i].dtype), kiln_dtype_name(t));
        if (kn_tensor_numel(&in[i]) != 1)
            return kn_node_error(n, KILN_ERR_SHAPE, "input %d (%s) must be a scalar, got shape %s", i, names[i],
                                 KN_DIMS(&in[i], (char[96]){0}));
    }
    if (t == KILN_BOOL) return kn_node_error(n, KILN_ERR_DTYPE, "inputs must be numbers, got bool");
    int64_t cnt;
    if (kn_dtype_is_int(t)) {
        int64_t v[3];
        for (int i = 0; i < 3; i++)
            v[i] = t == KILN_I64 ? *(const int64_t *)in[i].host : (int64_t)kn_load_f64(in[i].host, t, 0);
        if (v[2] == 0) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "input 2 (delta) is 0");
        if (v[2] > 0) cnt = v[1] > v[0] ? (v[1] - v[0] - 1) / v[2] + 1 : 0;
        else cnt = v[1] < v[0] ? (v[0] - v[1] - 1) / -v[2] + 1 : 0;
    } else {
        double s = kn_load_f64(in[0].host, t, 0), l = kn_load_f64(in[1].host, t, 0), d = kn_load_f64(in[2].host, t, 0);
        if (d == 0) return kn_node_error(n, KILN_ERR_INVALID_ARGUMENT, "input 2 (delta) is 0");
        double q = ceil((l - s) / d);
        if (!(q < 9.0e15)) /* also NaN */
            return kn_node_error(n, KILN_ERR_SHAPE, "start %g, limit %g, delta %g give no finite element count", s, l, d);
        cnt = q > 0 ? (int64_t)q : 0;
    }
    *count = cnt;
    return KILN_OK;
}

static kiln_status kn_infer_range(kn_infer_ctx *c) {
    int64_t cnt;
    KN_TRY(kn_range_count(c->node, c->in, &cnt));
    c->out[0].dtype = c->in[0].dtype;
    c->out[0].rank = 1;
    c->out[0].dims[0] = cnt;
    return KILN_OK;
}

/* ---- registration ----------------------------------------------------------------------------- */

#define KN_PURE_HOST (KN_OPF_PURE | KN_OPF_HOST_EVAL)

void kn_ops_register_tensor(kn_op_def *t) {
    t[KN_OP_Flatten] = (kn_op_def){"Flatten", 1, 1, 1, 1, 0, KN_PURE_HOST, NULL, kn_infer_flatten};
    t[KN_OP_Reshape] = (kn_op_def){"Reshape", 2, 2, 1, 1, 1u << 1, KN_PURE_HOST, NULL, kn_infer_reshape};
    t[KN_OP_Transpose] = (kn_op_def){"Transpose", 1, 1, 1, 1, 0, KN_PURE_HOST, kn_check_transpose, kn_infer_transpose};
    t[KN_OP_Squeeze] = (kn_op_def){"Squeeze", 1, 2, 1, 1, 1u << 1, KN_PURE_HOST, NULL, kn_infer_squeeze};
    t[KN_OP_Unsqueeze] = (kn_op_def){"Unsqueeze", 1, 2, 1, 1, 1u << 1, KN_PURE_HOST, NULL, kn_infer_unsqueeze};
    t[KN_OP_Concat] = (kn_op_def){"Concat", 1, 64, 1, 1, 0, KN_PURE_HOST, kn_check_concat, kn_infer_concat};
    t[KN_OP_Split] = (kn_op_def){"Split", 1, 2, 1, 64, 1u << 1, KN_PURE_HOST, kn_check_split, kn_infer_split};
    t[KN_OP_Slice] = (kn_op_def){"Slice", 1, 5, 1, 1, 0x1eu, KN_PURE_HOST, NULL, kn_infer_slice};
    t[KN_OP_Gather] = (kn_op_def){"Gather", 2, 2, 1, 1, 0, KN_PURE_HOST, NULL, kn_infer_gather};
    t[KN_OP_Expand] = (kn_op_def){"Expand", 2, 2, 1, 1, 1u << 1, KN_PURE_HOST, NULL, kn_infer_expand};
    t[KN_OP_Tile] = (kn_op_def){"Tile", 2, 2, 1, 1, 1u << 1, KN_PURE_HOST, NULL, kn_infer_tile};
    t[KN_OP_Pad] = (kn_op_def){"Pad", 1, 4, 1, 1, 0xeu, KN_PURE_HOST, kn_check_pad, kn_infer_pad};
    t[KN_OP_Resize] = (kn_op_def){"Resize", 1, 4, 1, 1, 0xeu, KN_OPF_PURE, kn_check_resize, kn_infer_resize};
    t[KN_OP_Shape] = (kn_op_def){"Shape", 1, 1, 1, 1, 0, KN_PURE_HOST, NULL, kn_infer_shape};
    t[KN_OP_Constant] = (kn_op_def){"Constant", 0, 0, 1, 1, 0, KN_PURE_HOST, kn_check_constant, kn_infer_constant};
    t[KN_OP_ConstantOfShape] = (kn_op_def){"ConstantOfShape", 1, 1, 1, 1, 1u << 0, KN_PURE_HOST, kn_check_constant_of_shape,
                                           kn_infer_constant_of_shape};
    t[KN_OP_Range] = (kn_op_def){"Range", 3, 3, 1, 1, 0x7u, KN_PURE_HOST, NULL, kn_infer_range};
}
